"""INI configuration → :class:`Config`.

SCHEMA ONLY (the parser is being written): the dataclasses below are the contract every other
module uses. ``load_config(path, environ)`` reads the file, applies the environment overrides and
returns a frozen :class:`Config`, or raises :class:`ConfigError` whose ``str()`` is one line naming the
file, section and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_CONFIG_PATH = "/etc/ovirt/ovirt-cloud.conf"


class ConfigError(Exception):
    """A configuration mistake. ``str(err)`` is one line: ``<file>: [section] key: what is wrong``."""


@dataclass(frozen=True)
class ConnectionConfig:
    uri: str  # https://engine.example.com/ovirt-engine/api
    username: str
    password: str = field(default="", repr=False)  # never logged; see password_file
    password_file: str | None = None  # re-read on every login, so a rotated Secret is picked up
    ca_file: str | None = None  # PEM bundle; None = the system bundle
    insecure: bool = False  # skip TLS verification (only when asked)
    timeout: float = 30.0  # seconds, bounds every request including the SSO login


@dataclass(frozen=True)
class FiltersConfig:
    vms: str = ""  # the oVirt search query as it is sent (``tags=`` already rewritten to ``tag=``)


@dataclass(frozen=True)
class NodesConfig:
    name_source: str = "name"  # "name" (VM name) | "fqdn" | "short-fqdn"
    internal_cidrs: tuple[str, ...] = ()  # addresses in these networks are InternalIP
    external_cidrs: tuple[str, ...] = ()  # addresses in these networks are ExternalIP
    unmatched_addresses: str = "internal"  # "internal" | "external" | "ignore"
    ignore_interfaces: tuple[str, ...] = (
        "lo", "docker*", "cali*", "flannel*", "cni*", "veth*", "cilium*", "kube-ipvs*", "vxlan*",
        "tunl*", "weave*", "virbr*",
    )
    zone_source: str = "cluster"  # "cluster" | "datacenter" | "host" | "none"
    region_source: str = "datacenter"  # "datacenter" | "cluster" | "none"
    extra_labels: tuple[tuple[str, str], ...] = ()
    register: bool = True  # create Nodes for running VMs that have none
    initialize: bool = True  # initialize kubelet-registered nodes
    update: bool = True  # keep addresses and labels current
    taint_shutdown: bool = True  # taint nodes whose VM is down or suspended
    delete: bool = True  # delete nodes whose VM is confirmed gone


@dataclass(frozen=True)
class ControllerConfig:
    sync_interval: float = 60.0  # seconds between full sweeps (jittered by up to 10 %)
    event_poll_interval: float = 3.0  # seconds between /events polls; 0 disables
    page_size: int = 100  # VMs per search page
    delete_after_sweeps: int = 3  # consecutive successful sweeps a VM must be absent from
    max_delete_fraction: float = 0.5  # circuit breaker: share of managed nodes deletable at once
    max_delete_count: int = 10  # circuit breaker: absolute cap, whichever is smaller (0 = no cap)
    leader_elect: bool = True
    leader_elect_namespace: str = "kube-system"
    leader_elect_lease_name: str = "ovirt-cloudprovider"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    metrics_bind_address: str = "0.0.0.0:10270"
    backoff_max: float = 300.0  # cap of the exponential backoff after failed sweeps


@dataclass(frozen=True)
class Config:
    path: str
    connection: ConnectionConfig
    filters: FiltersConfig = FiltersConfig()
    nodes: NodesConfig = NodesConfig()
    controller: ControllerConfig = ControllerConfig()


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    raise NotImplementedError
