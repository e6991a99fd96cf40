"""The configuration as records: what ``ovirt-cloud.conf`` and the environment say, validated.

The reader (:mod:`ovirt_cloudprovider.config`) builds these from the INI file; every other module receives them.
Plain frozen dataclasses, no I/O: the pure core (addresses, desired, plan) depends on them, and tests build
them directly.

- :class:`Config` is one loaded configuration: its path, the four sections, and the :class:`Notice` records the
  reader produced while parsing (a rewritten ``tags=``, plain http, ``insecure``...). The caller logs them; the
  reader itself never logs.
- :class:`ConfigError` is a configuration mistake whose ``str()`` is one line naming the file, section and key
  (or the environment variable), never a value that could hold a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_CONFIG_PATH = "/etc/ovirt/ovirt-cloud.conf"
DEFAULT_API_PATH = "/ovirt-engine/api"
# The default [controller] instance: the name of the one instance of a cluster, and of every instance from before
# owners were recorded (core/ownership.py). Its Lease has the same name.
DEFAULT_INSTANCE = "ovirt-cloudprovider"
LEGACY_DEFAULT_USERNAME = "admin@internal"  # the in-tree provider's default when username was not set


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ConfigError(Exception):
    """A configuration mistake. ``str(err)`` is one line: ``<file>: [section] key: what is wrong``.

    For a value that came from the environment it reads ``environment variable OVIRT_URL: what is
    wrong``. ``ConfigError("text")`` (a bare message) also works. Never contains a password.
    """

    def __init__(self, problem: str, *, path: str | None = None, section: str | None = None,
                 key: str | None = None, env: str | None = None) -> None:
        self.problem = _one_line(problem)
        self.path = path
        self.section = section
        self.key = key
        self.env = env
        super().__init__(self.problem)

    def __str__(self) -> str:
        parts: list[str] = []
        if self.env:
            parts.append(f"environment variable {self.env}")
        else:
            if self.path:
                parts.append(self.path)
            if self.section is not None:
                parts.append(f"[{self.section}]" + (f" {self.key}" if self.key else ""))
        parts.append(self.problem)
        return ": ".join(parts)


@dataclass(frozen=True)
class ConnectionConfig:
    uri: str  # https://engine.example.com/ovirt-engine/api
    username: str = LEGACY_DEFAULT_USERNAME
    password: str = field(default="", repr=False)  # never logged; see password_file
    password_file: str | None = None  # re-read on every login, so a rotated Secret is picked up
    ca_file: str | None = None  # PEM bundle; None = the system bundle
    insecure: bool = False  # skip TLS verification (only when asked)
    timeout: float = 30.0  # seconds, bounds every request including the SSO login


@dataclass(frozen=True)
class FiltersConfig:
    vms: str = ""  # the oVirt search query as it is sent (``tags=`` already rewritten to ``tag=``)
    # The oVirt host search (``cluster=k8s-metal``) whose hosts become nodes too; None (absent or empty):
    # no host is discovered and no host request is made. ``name=*`` selects every host.
    hosts: str | None = None


@dataclass(frozen=True)
class NodesConfig:
    name_source: str = "name"  # "name" (VM name) | "fqdn" | "short-fqdn"
    internal_cidrs: tuple[str, ...] = ()  # addresses in these networks are InternalIP
    external_cidrs: tuple[str, ...] = ()  # addresses in these networks are ExternalIP
    unmatched_addresses: str = "internal"  # "internal" | "external" | "ignore"
    ignore_interfaces: tuple[str, ...] = (
        "lo", "docker*", "cali*", "flannel*", "cni*", "veth*", "cilium*", "kube-ipvs*", "vxlan*",
        "tunl*", "weave*", "virbr*", "lxc*", "kube-bridge", "nodelocaldns", "ovn-k8s-mp*", "genev_sys_*",
        "antrea-*", "podman*",
        # Docker's user-defined bridge networks: br-<12 hex digits> (not br-ex or other real bridges)
        "br-" + "[0-9a-f]" * 12,
    )
    zone_source: str = "cluster"  # "cluster" | "datacenter" | "host" | "none"
    region_source: str = "datacenter"  # "datacenter" | "cluster" | "none"
    extra_labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    # oVirt's metadata as labels (core/metadata.py): the tags under this parent tag (None: none), the VMs' and
    # hosts' affinity labels, the oVirt host id (topology.scs.community/host-id)
    tag_labels: str | None = None
    affinity_labels: bool = False
    host_id_label: bool = False
    # create placeholder Nodes for running VMs that have none (opt-in: kube-controller-manager schedules onto a
    # placeholder, and DaemonSet pods bound to one block that DaemonSet's rollouts; see the README)
    register: bool = False
    initialize: bool = True  # initialize kubelet-registered nodes
    update: bool = True  # keep addresses and labels current
    taint_shutdown: bool = True  # taint nodes whose VM is down or suspended
    delete: bool = True  # delete nodes whose VM is confirmed gone
    # node.kubernetes.io/out-of-service=nodeshutdown:NoExecute on a node NotReady for at least out_of_service_after
    # seconds whose VM (or host) the engine read down in two consecutive sweeps (opt-in: pods are deleted at once)
    out_of_service_taint: bool = False
    out_of_service_after: float = 60.0


@dataclass(frozen=True)
class ControllerConfig:
    # This instance's name (a DNS label): recorded on the nodes it owns; the default Lease name (core/ownership.py)
    instance: str = DEFAULT_INSTANCE
    sync_interval: float = 60.0  # seconds between full sweeps (jittered by up to 10 %)
    event_poll_interval: float = 3.0  # seconds between /events polls; 0 disables
    page_size: int = 100  # VMs per search page
    engine_concurrency: int = 2  # engine requests in flight at most during a discovery (the next page overlaps)
    delete_after_sweeps: int = 3  # consecutive successful sweeps a VM must be absent from
    max_delete_fraction: float = 0.5  # circuit breaker: share of managed nodes deletable at once
    max_delete_count: int = 10  # circuit breaker: absolute cap, whichever is smaller (0 = no cap)
    allow_cluster_removal: bool = False  # let every node of one oVirt cluster go while others are present
    leader_elect: bool = True
    leader_elect_namespace: str = "kube-system"
    leader_elect_lease_name: str = "ovirt-cloudprovider"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    metrics_bind_address: str = "0.0.0.0:10270"
    backoff_max: float = 300.0  # cap of the exponential backoff after failed sweeps and event polls
    kube_api_qps: float = 20.0  # client-side rate limit of the Kubernetes API writes (kube-controller-manager's)
    kube_api_burst: int = 30  # requests allowed at once above kube_api_qps


@dataclass(frozen=True)
class AutoscalerConfig:
    """The ``[autoscaler]`` section: what only the autoscaler (``ovirt-cloudprovider autoscaler``) reads."""

    # The key (at least 32 bytes) the ownership marks of its VMs are signed with (HMAC-SHA256); never logged.
    # Required by the autoscaler; keep it: VMs signed with another key are never touched.
    mark_key_file: str | None = None


@dataclass(frozen=True)
class NodeGroupConfig:
    """One ``[nodegroup NAME]`` section: a group of VMs the autoscaler creates from one template."""

    name: str  # the group's id for the cluster-autoscaler (a DNS label)
    template: str  # the engine template's name
    cluster: str  # the oVirt cluster the VMs are created in
    max_size: int
    min_size: int = 0
    template_version: int | None = None  # None: the template's base version
    name_prefix: str = ""  # VM names <name_prefix>-<suffix>; "" = the group's name
    tags: tuple[str, ...] = ()  # engine tags given to every VM (the node controller's filter matches them)
    user_data_file: str | None = None  # cloud-init user data, read at each creation; never logged
    cpus: int | None = None  # virtual CPUs (sockets of one core); None: the template's
    memory: int | None = None  # MiB; None: the template's
    affinity_group: str | None = None  # an affinity group of the cluster each VM joins

    @property
    def prefix(self) -> str:
        return self.name_prefix or self.name


@dataclass(frozen=True)
class Config:
    path: str
    connection: ConnectionConfig
    filters: FiltersConfig = FiltersConfig()
    nodes: NodesConfig = NodesConfig()
    controller: ControllerConfig = ControllerConfig()
    autoscaler: AutoscalerConfig = AutoscalerConfig()
    nodegroups: tuple[NodeGroupConfig, ...] = ()  # the [nodegroup NAME] sections (only the autoscaler uses them)
    # What the reader noticed while parsing, for the caller to log; not part of the configuration's value.
    notices: tuple[Notice, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Notice:
    """Something the reader noticed that the operator should hear about (logged by the caller).

    ``level`` is ``"info"`` or ``"warning"``; ``fields`` are the structured log fields (never a secret).
    """

    level: str
    message: str
    fields: tuple[tuple[str, Any], ...] = ()
