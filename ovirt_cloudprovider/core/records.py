"""Records shared by the pure core and the shell.

Everything here is a frozen dataclass of plain values: no SDK objects, no Kubernetes client models,
no I/O. the engine package produces :class:`VirtualMachine` and :class:`Snapshot`; ``core/desired.py`` turns
them into :class:`NodeSpec`; the kube informer produces :class:`ObservedNode`; ``core/plan.py`` compares the
two and returns :class:`Action` records that the kube writer applies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# --- well-known keys --------------------------------------------------------------------------------

PROVIDER_PREFIX = "ovirt://"

LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"
LABEL_OVIRT_HOST = "ovirt.org/host"
LABEL_OVIRT_CLUSTER = "ovirt.org/cluster"
LABEL_OVIRT_DATACENTER = "ovirt.org/datacenter"
# oVirt's own metadata as labels (core/metadata.py): the VM's placement policy, the host it runs on (the label the
# Sovereign Cloud Stack standard proposes), and the prefixes of the labels made of tags and affinity labels (ours:
# a label under them that we no longer derive is removed)
LABEL_MIGRATABLE = "ovirt.org/migratable"
LABEL_HOST_ID = "topology.scs.community/host-id"
TAG_LABEL_PREFIX = "tags.ovirt.org/"
AFFINITY_LABEL_PREFIX = "affinity.ovirt.org/"
OWNED_LABEL_PREFIXES = (TAG_LABEL_PREFIX, AFFINITY_LABEL_PREFIX)
# Marks a Node that this controller registered (created) itself, as opposed to a kubelet.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "ovirt-cloudprovider"

# How many consecutive successful sweeps have not seen this node's VM (deletion safety).
ANNOTATION_ABSENT_SWEEPS = "ovirt.org/absent-sweeps"
# The VM id of a node we registered or initialized (for humans and for matching).
ANNOTATION_VM_ID = "ovirt.org/vm-id"
# The host id of a node we registered or initialized for an oVirt host (the VM-id annotation's twin).
ANNOTATION_HOST_ID = "ovirt.org/host-id"
# The controller instance that owns a node ([controller] instance) and the engine it came from (the host[:port] of
# [connection] uri): an instance touches only the nodes that record its own pair (core/ownership.py).
ANNOTATION_OWNER = "ovirt.org/owner"
ANNOTATION_ENGINE = "ovirt.org/engine"
# On one node of an oVirt cluster (zone): the operator confirms that the whole cluster may be removed.
ANNOTATION_ALLOW_CLUSTER_REMOVAL = "ovirt.org/allow-cluster-removal"
# The kubelet's --node-ip (one IP, or "IPv4,IPv6" for dual-stack), set by a kubelet with
# --cloud-provider=external (k8s.io/cloud-provider api.AnnotationAlphaProvidedIPAddr).
ANNOTATION_PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"

TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
TAINT_SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"
# An oVirt host in (or preparing for) maintenance: nothing new is scheduled on its node until it is up again.
TAINT_MAINTENANCE = "ovirt.org/maintenance"
# kube-apiserver's TaintNodesByCondition admission puts it on every new Node; the node lifecycle controller
# removes it once the kubelet reports Ready. We send it on the Nodes we register and never remove it.
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
# Non-graceful node shutdown (KEP-2268): Kubernetes force-detaches the volumes of a node with this taint and deletes
# its pods at once. ``[nodes] out_of_service_taint`` puts it (value "nodeshutdown", NoExecute) on a NotReady node
# whose VM or host the engine read ``down`` twice in a row; the annotation remembers the first of the two reads.
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
OUT_OF_SERVICE_VALUE = "nodeshutdown"
ANNOTATION_DOWN_READS = "ovirt.org/down-reads"
# kube-controller-manager's node lifecycle controller puts it on a node whose Ready condition is Unknown.
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"

# The Ready condition a placeholder is created with (``[nodes] register``): False, so that kube-controller-manager's
# node lifecycle controller keeps node.kubernetes.io/not-ready:NoSchedule until a kubelet reports (a node without a
# Ready condition loses that taint for the startup grace period).
PLACEHOLDER_READY_REASON = "KubeletNotJoined"
PLACEHOLDER_READY_MESSAGE = ("No kubelet has joined this node yet: it is a placeholder that ovirt-cloudprovider "
                             "registered.")
# Evidence that a kubelet adopted a node: the reasons of the conditions a kubelet posts (pkg/kubelet/nodestatus), and
# the annotation a kubelet sets on the node it registers or adopts (enableControllerAttachDetach, on by default).
KUBELET_CONDITION_REASONS = frozenset({
    "KubeletReady", "KubeletNotReady", "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
    "KubeletHasNoDiskPressure", "KubeletHasDiskPressure", "KubeletHasSufficientPID", "KubeletHasInsufficientPID",
})
ANNOTATION_KUBELET_ATTACH_DETACH = "volumes.kubernetes.io/controller-managed-attach-detach"

# oVirt VM statuses (ovirtsdk4.types.VmStatus values) by what they mean for a Node.
RUNNING_STATUSES = frozenset(
    {"up", "powering_up", "reboot_in_progress", "migrating", "powering_down", "restoring_state",
     "saving_state", "wait_for_launch", "paused"}
)
SHUTDOWN_STATUSES = frozenset({"down", "suspended"})
# "unknown", "not_responding" and "image_locked" mean the VM exists but we cannot tell more.
EXISTS_STATUSES = frozenset({"unknown", "not_responding", "image_locked"})


# ovirt.org/kind: "vm" or "host", on the Nodes of VMs and of oVirt hosts (and NodeSpec.kind).
LABEL_OVIRT_KIND = "ovirt.org/kind"
KIND_VM = "vm"
KIND_HOST = "host"

# oVirt host statuses (ovirtsdk4.types.HostStatus values) by what they mean for a Node. Any other status
# (non_responsive, connecting, initializing, installing, unassigned, error, ...) means: exists, no change.
HOST_RUNNING_STATUSES = frozenset({"up"})
HOST_MAINTENANCE_STATUSES = frozenset({"maintenance", "preparing_for_maintenance"})
HOST_SHUTDOWN_STATUSES = frozenset({"down"})


# --- oVirt side ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GuestNic:
    """One network device as the guest agent reports it (``reported_devices``)."""

    name: str
    mac: str | None = None
    ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VirtualMachine:
    """What we know of one oVirt VM after discovery. Built by the engine package only."""

    id: str
    name: str
    status: str  # an ovirtsdk4.types.VmStatus value: "up", "down", "suspended", "unknown", ...
    fqdn: str | None = None
    cluster: str | None = None
    cluster_id: str | None = None
    datacenter: str | None = None
    datacenter_id: str | None = None
    host: str | None = None
    host_id: str | None = None
    tags: tuple[str, ...] = ()
    nics: tuple[GuestNic, ...] = ()
    cpus: int | None = None  # sockets * cores * threads
    memory_bytes: int | None = None
    os_type: str | None = None  # vm.os.type, e.g. "rhel_8x64", "other_linux"
    guest_os: str | None = None  # "<distribution> <version>" from the guest agent, e.g. "Fedora 39"
    kernel: str | None = None  # guest kernel release from the guest agent
    architecture: str | None = None  # "x86_64", "ppc64", "aarch64", ...
    instance_type: str | None = None  # oVirt instance type name, if the VM uses one
    guest_agent: bool = False  # True when the guest agent reported anything (devices, fqdn or OS)
    affinity_labels: tuple[str, ...] = ()  # names of its oVirt affinity labels (sorted; read only when asked for)
    placement: str | None = None  # placement_policy/affinity: "migratable", "user_migratable", "pinned"


@dataclass(frozen=True, slots=True)
class HostNic:
    """One network interface of an oVirt host as the engine reports it (``/hosts/<id>/nics``)."""

    name: str
    mac: str | None = None
    ips: tuple[str, ...] = ()  # its IPv4 then IPv6 address, when it has them
    bridged: bool = False  # carries a bridged network (ovirtmgmt usually)
    bond_slaves: tuple[str, ...] = ()  # names of the NICs this bond is made of (a bond has some)
    vlan: int | None = None  # the VLAN id of a VLAN interface
    base_interface: str | None = None  # the NIC a VLAN interface sits on


@dataclass(frozen=True, slots=True)
class Host:
    """What we know of one oVirt host (hypervisor) after discovery. Built by the engine package only."""

    id: str
    name: str
    status: str  # an ovirtsdk4.types.HostStatus value: "up", "maintenance", "non_responsive", ...
    address: str | None = None  # the FQDN or IP the engine uses to reach the host
    cluster: str | None = None
    cluster_id: str | None = None
    datacenter: str | None = None
    datacenter_id: str | None = None
    manufacturer: str | None = None
    product: str | None = None  # hardware_information.product_name
    system_uuid: str | None = None  # the SMBIOS uuid (hardware_information.uuid)
    cpu_model: str | None = None  # cpu.name, e.g. "Intel Xeon Processor (Skylake)"
    cpus: int | None = None  # sockets * cores * threads
    memory_bytes: int | None = None
    os: str | None = None  # "<os type> <version>", e.g. "RHEL 8.9 - 1.el8"
    kernel: str | None = None  # from the reported kernel command line (BOOT_IMAGE=/vmlinuz-<release>)
    architecture: str | None = None  # from the cluster's CPU architecture
    nics: tuple[HostNic, ...] = ()
    affinity_labels: tuple[str, ...] = ()  # names of its oVirt affinity labels (sorted; read only when asked for)


@dataclass(frozen=True, slots=True)
class Tag:
    """One oVirt tag of the engine's tag tree (``/tags``): its parent by id (None for the root tag)."""

    id: str
    name: str
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The result of one complete discovery: every VM the filter matched, at one point in time.

    A Snapshot only exists for a search that finished: any error raises instead, so a Snapshot is
    never partial. ``requests`` is how many HTTP requests the search took (for logs and metrics).
    """

    vms: tuple[VirtualMachine, ...]
    query: str
    requests: int = 0
    # ids for which the answer held two different VMs: left out of ``vms``; their nodes are neither written
    # nor counted absent in this sweep
    inconsistent_ids: tuple[str, ...] = ()
    # The oVirt hosts ``[filters] hosts`` matched; ``hosts_query`` is None when hosts are not discovered
    # at all (then host nodes are left alone), "" for every host.
    hosts: tuple[Host, ...] = ()
    hosts_query: str | None = None
    # The engine that answered (host[:port] of the API URL, never user info): the owner identity's engine.
    engine: str = ""
    # The engine's tag tree (one list of /tags per discovery), when it was listed ([nodes] tag_labels, or a
    # filter naming a tag); None: not listed
    tags: tuple[Tag, ...] | None = None


# --- Kubernetes side -------------------------------------------------------------------------------

@dataclass(frozen=True, order=True, slots=True)
class NodeAddress:
    type: str  # "InternalIP" | "ExternalIP" | "Hostname" | "InternalDNS" | "ExternalDNS"
    address: str


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str  # "NoSchedule" | "PreferNoSchedule" | "NoExecute"
    value: str | None = None
    # ``timeAdded`` (RFC 3339) as the API server reported it. ``spec.taints`` is written as a whole
    # list, so the kube writer sends it back unchanged for other writers' taints (NoExecute eviction timers).
    # Not part of equality: planning compares key, effect and value only.
    time_added: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The part of ``status.nodeInfo`` we can fill from the engine (registration only)."""

    system_uuid: str
    os_image: str = ""
    kernel_version: str = ""
    architecture: str = ""
    operating_system: str = "linux"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The Node one VM should become. Built by ``core/desired.py`` (pure)."""

    name: str
    provider_id: str
    vm_id: str
    vm_name: str
    status: str
    addresses: tuple[NodeAddress, ...]
    labels: tuple[tuple[str, str], ...]  # sorted (key, value) pairs
    shutdown: bool  # the VM is down or suspended: the shutdown taint belongs on the node
    running: bool  # the VM runs: only running VMs get a new Node registered
    fqdn: str | None = None
    cpus: int | None = None
    memory_bytes: int | None = None
    node_info: NodeInfo | None = None
    # "vm", or "host" for an oVirt host: then vm_id/vm_name are the host's id and name.
    kind: str = KIND_VM
    maintenance: bool = False  # a host in (or preparing for) maintenance: the maintenance taint belongs on it
    # False when the engine reported an IP that is no IP at all ("::g", "999.1.1.1"): the answer is garbled, so
    # it does not replace the node's addresses
    addresses_trusted: bool = True
    # (reason, message) for each metadata label that could not be derived (core/metadata.py): an invalid key or
    # value, two values for one key; the planner reports them as Warning Events on the node
    label_notes: tuple[tuple[str, str], ...] = ()
    # the prefixes of our own labels that could not be derived this sweep (``tags.ovirt.org/`` while the tag tree
    # lacks the ``[nodes] tag_labels`` parent): the node's labels under them are left as they are, not removed
    kept_label_prefixes: tuple[str, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class SkippedVM:
    """A VM (or host, ``kind="host"``) that matched the filter but cannot become a Node, and why."""

    vm_id: str
    vm_name: str
    reason: str
    kind: str = KIND_VM


@dataclass(frozen=True, slots=True)
class Desired:
    """core/desired.py's answer for a whole Snapshot."""

    nodes: tuple[NodeSpec, ...]
    skipped: tuple[SkippedVM, ...] = ()
    hosts_discovered: bool = False  # the Snapshot searched hosts: host nodes are managed (core/hosts.py)
    # the engine's VM answer held two different records of some id (any spelling): those ids are skipped, and no
    # VM's node is counted absent in this sweep (issue 17, rule 5)
    inconsistent: bool = False
    engine: str = ""  # the Snapshot's engine (core/ownership.py)
    # the NodeSpecs of the VMs and hosts skipped as duplicate-name (each also in ``skipped``): the planner keeps the
    # one whose providerID the node of that name already carries, the others stay skipped (core/plan.py)
    contested: tuple[NodeSpec, ...] = ()
    # the tags that [filters] vms / [filters] hosts name (tag=) and the engine's tag tree does not have (a tag
    # renamed or removed): while there are any, no node of that kind is counted absent (core/absence.py)
    vm_filter_unknown_tags: tuple[str, ...] = ()
    host_filter_unknown_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObservedNode:
    """A Node as the informer cache holds it, reduced to what planning needs. Built by the kube informer."""

    name: str
    uid: str
    resource_version: str
    provider_id: str | None = None
    system_uuid: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    addresses: tuple[NodeAddress, ...] = ()
    hostname: str | None = None  # the Hostname address or kubernetes.io/hostname label, if any
    # The Ready condition: its status ("True", "False", "Unknown"; None without one), reason, and when it last
    # changed (lastTransitionTime as seconds since the epoch; the informer converts it, the core has no clock).
    ready_status: str | None = None
    ready_reason: str | None = None
    ready_since: float | None = None
    kubelet_version: str | None = None  # status.nodeInfo.kubeletVersion ("" and None: no kubelet ever posted)
    kubelet_reported: bool = False  # some condition carries a kubelet's reason (KUBELET_CONDITION_REASONS)

    @property
    def kubelet_joined(self) -> bool:
        """A kubelet registered or adopted this node: it posted its version or a condition, or set its annotation."""
        return bool(self.kubelet_version) or self.kubelet_reported or \
            ANNOTATION_KUBELET_ATTACH_DETACH in self.annotation_map

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def annotation_map(self) -> dict[str, str]:
        return dict(self.annotations)

    @property
    def provided_node_ip(self) -> str | None:
        """The kubelet's ``--node-ip`` (annotation ``alpha.kubernetes.io/provided-node-ip``), if it set one."""
        return self.annotation_map.get(ANNOTATION_PROVIDED_NODE_IP)

    @property
    def registered_by_us(self) -> bool:
        return self.label_map.get(LABEL_MANAGED_BY) == MANAGED_BY_VALUE

    @property
    def waits_for_cloud_provider(self) -> bool:
        """The kubelet registered it with ``--cloud-provider=external``: it carries the uninitialized taint."""
        return any(t.key == TAINT_UNINITIALIZED for t in self.taints)


# --- plan ------------------------------------------------------------------------------------------

class ActionKind(str, enum.Enum):
    REGISTER = "register"  # create a Node (body from ``spec``)
    INITIALIZE = "initialize"  # fill a kubelet-registered node, remove the uninitialized taint
    UPDATE = "update"  # labels / addresses drifted
    TAINT = "taint"  # add the shutdown taint
    UNTAINT = "untaint"  # remove the shutdown taint
    MARK_ABSENT = "mark-absent"  # VM not seen: bump the absent-sweeps annotation
    CLEAR_ABSENT = "clear-absent"  # VM seen again: drop the annotation
    DELETE = "delete"  # VM confirmed gone: delete with uid + resourceVersion preconditions
    BLOCK_DELETE = "block-delete"  # a deletion the safety rules stopped (Event + metric only)
    AMBIGUOUS = "ambiguous"  # a VM or node matched more than one candidate (Event + metric only)
    SKIP = "skip"  # a VM that cannot become a Node (invalid name, ...): log + metric only


@dataclass(frozen=True, slots=True)
class Action:
    """One write (or one notice) for one Node. The kube writer applies it with the smallest request.

    Patch fields are ``None`` when that part does not change:
    - ``labels`` / ``annotations``: keys to set; a value of ``None`` removes the key;
    - ``taints``: the node's complete new taint list (``spec.taints`` is an atomic list);
    - ``provider_id``: set ``spec.providerID`` (only ever when it was empty);
    - ``addresses``: the complete new ``status.addresses`` (written through ``nodes/status``);
    - ``spec``: the NodeSpec to create (REGISTER) or that this action serves.
    ``uid`` and ``resource_version`` are the preconditions the node was planned against.
    """

    kind: ActionKind
    node: str
    reason: str  # short CamelCase reason, also used as the Event reason, e.g. "RegisteredNode"
    message: str  # one human sentence, also the Event message
    vm_id: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    spec: NodeSpec | None = None
    labels: tuple[tuple[str, str | None], ...] | None = None
    annotations: tuple[tuple[str, str | None], ...] | None = None
    taints: tuple[Taint, ...] | None = None
    provider_id: str | None = None
    addresses: tuple[NodeAddress, ...] | None = None
    warning: bool = False  # Event type Warning instead of Normal
    owner_kind: str = KIND_VM  # "host" when it serves an oVirt host's node (``vm_id`` is then the host id)

    @property
    def writes(self) -> bool:
        return self.kind not in (ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS, ActionKind.SKIP)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What applying actions did (the kube writer's answer to the controller).

    ``applied``: actions that succeeded (writes made, or notices recorded for block-delete, ambiguous
    and skip); ``conflicts``: actions refused because the node changed under us (409: re-planned next
    sweep); ``refused``: actions the API refused for that one node (400, 422; not a failure of the sweep);
    ``failed``: actions that failed otherwise (after retries). ``tallies`` are
    ``(kind, result, count)`` sorted; ``errors`` one line per failed, refused or conflicting action.
    ``interrupted`` counts actions not attempted because the writer was stopped.
    """

    applied: int = 0
    failed: int = 0
    conflicts: int = 0
    interrupted: int = 0
    refused: int = 0
    tallies: tuple[tuple[str, str, int], ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.conflicts == 0 and self.interrupted == 0

    def count(self, kind: ActionKind | str, result: str | None = None) -> int:
        k = kind.value if isinstance(kind, ActionKind) else kind
        return sum(n for kk, r, n in self.tallies if kk == k and (result is None or r == result))


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...] = ()
    managed_nodes: int = 0  # nodes with an ovirt:// providerID that we are responsible for
    managed_hosts: int = 0  # how many of ``managed_nodes`` are oVirt hosts' nodes (the rest are VMs')
    notes: tuple[str, ...] = field(default=())
