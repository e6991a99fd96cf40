"""Planning: desired Nodes + observed Nodes → :class:`~ovirt_cloudprovider.core.records.Plan` (pure).

:func:`plan_sync` compares what one complete, successful discovery says the Nodes should be
(:class:`Desired`) with the Nodes the informer cache holds (:class:`ObservedNode`) and returns the
Actions that the kube writer applies. No I/O, no clock: the same inputs give the same Plan, whatever the
order of ``observed``. Memory between sweeps (the deletion counter) lives on the Nodes themselves (see
:mod:`.absence`).

Semantics, in the order the planner applies them:

Ownership
    A Node is *managed* when its ``spec.providerID`` is ``ovirt://<vm-id>``. The legacy in-tree oVirt
    provider wrote ``ovirt:///<vm-id>`` (its instance id was ``"/" + uuid``); both forms name the same VM.
    VM ids are UUIDs and any spelling of one names the same VM (upper case, without dashes, in braces;
    :mod:`.providerid` normalises them). A node with another providerID (``aws://``, ``vsphere://``) or
    with an ``ovirt://`` providerID that is no VM id (none, ``ovirt://not-a-uuid``,
    ``ovirt://<uuid>/extra``) is *foreign*: never touched, never counted absent or deleted, and the
    latter get a note in the Plan. A node without a providerID is
    *unprovisioned*: it is only touched when it matches exactly one VM.

Owner (see :mod:`.ownership`)
    Before anything else the observed nodes are split by the instance they record (``ovirt.org/owner`` and
    ``ovirt.org/engine``). Another instance's nodes are never touched: they only hold their names
    (``NodeNameConflict``) and their VMs (``NodeOwnedByOtherInstance``: no node of ours for that VM). Unowned nodes
    are matched as below; the node's first write records our owner (adoption, only for a node matched to a present
    NodeSpec), and REGISTER and INITIALIZE record it too. An unowned node with a providerID (legacy) counts absent
    only for the default instance; for any other it is neither marked, deleted, cleared nor counted as managed.

Contested names (``Desired.contested``)
    VMs and hosts whose node names are equal are all skipped as ``duplicate-name`` by :mod:`.desired` and
    :mod:`.hosts`, which do not see nodes. When the node of that name (one this instance may plan) already carries
    the providerID of exactly one of them, that one keeps it and is planned as usual (a rename of another tenant's
    VM never freezes its node); the others stay skipped, their SKIP saying which VM keeps the node. With no node
    of that name, or one carrying no contender's providerID, all stay skipped: a name is never guessed.

Matching a VM (NodeSpec) to nodes
    1. providerID: managed nodes whose VM id is the VM's id. Authoritative.
    2. systemUUID, name, FQDN: unprovisioned nodes whose ``status.nodeInfo.systemUUID`` equals the VM id
       (case-insensitively, also in the mixed-endian form some firmware reports), whose name is the
       NodeSpec's name, or whose name or hostname is the VM's FQDN (case-insensitively). A node that
       reports a well-formed systemUUID that is *not* the VM's id is never matched by name or FQDN:
       oVirt's SMBIOS UUID is the VM id, so that node is another machine, and a providerID, once set,
       cannot be changed. (So a node named like VM B that reports VM A's UUID is A's, and B's name is
       taken: NodeNameConflict.)
    All weak rules count alike: a VM that matches several unprovisioned nodes, or a node that matches
    several VMs, is ambiguous (AMBIGUOUS, a Warning Event, no writes for those nodes, no registration).
    A VM claimed by two kubelet nodes with its providerID is ambiguous too.
    Our own placeholder (``app.kubernetes.io/managed-by=ovirt-cloudprovider``) gives way to a kubelet
    node of the same VM: the kubelet node is initialized/updated, and the placeholder is deleted
    (``ReplacedByKubelet``, with uid + resourceVersion preconditions; needs ``nodes.delete``; not
    counted by the circuit breaker, since the VM is present) only once the kubelet node is initialized
    (our providerID, no uninitialized taint): in the sweep that initializes it the placeholder is kept
    (the INITIALIZE's message says so) and the next sweep deletes it. The writer applies different
    nodes' actions in parallel, so a lease lost mid-apply or a failed initialization never leaves the VM
    with only an uninitialized node.

Writes to a matched node (the *owner*)
    - INITIALIZE (``nodes.initialize``) when it has no providerID or carries the
      ``node.cloudprovider.kubernetes.io/uninitialized`` taint: one action that sets the providerID
      (only if empty), the label and address changes below, the ``ovirt.org/vm-id`` annotation, and the
      taint list without the uninitialized taint and with the shutdown rule applied (``None`` when that
      changes nothing). With ``initialize`` off an unprovisioned node is left alone; a managed one still
      gets UPDATE/TAINT (its uninitialized taint stays).
    - UPDATE (``nodes.update``): only what differs. Labels: every label the NodeSpec carries is set
      when it differs, except the kubelet's own labels (``kubernetes.io/{arch,os,hostname}``), which
      are only added when missing, and ``app.kubernetes.io/managed-by``, which is never changed.
      ``ovirt.org/host`` is removed when no longer produced and the VM is down or suspended (a running
      VM without a host, or any VM without a cluster or data center, is an incomplete answer: those labels
      stay); other labels are never removed (a zone we can no longer compute keeps its last value).
      Addresses: the complete list when it differs (order included), except that an engine answer with a
      garbled IP (``NodeSpec.addresses_trusted`` False) changes no address, and a NodeSpec without
      an IP address (silent guest agent, VM down) never replaces a node's addresses that contain an IP,
      and an empty list never blanks a node's addresses. When the NodeSpec has no Hostname address (the
      engine knows no FQDN for the VM), the node's own Hostname address(es) (the kubelet's) are kept,
      after the NodeSpec's addresses; an FQDN from the engine replaces them. This holds for
      INITIALIZE too.
      The kubelet's ``--node-ip`` (annotation ``alpha.kubernetes.io/provided-node-ip``, one IP or a
      dual-stack pair) is applied to that list on every INITIALIZE and UPDATE, as the upstream node
      controller does: the address(es) equal to it first, no other address of their type, other types
      after (see :mod:`.addresses`). When the annotation is not a usable IP (``ProvidedNodeIPInvalid``)
      or the engine does not report it (``ProvidedNodeIPNotFound``, also when it reports no IP at all),
      the node's addresses are left as they are and a SKIP Warning action on the node (its uid, the
      reason, why) says so; a node that needs initialization is then not initialized at all (no
      providerID, taints, labels; CLEAR_ABSENT still happens), while on an initialized node the other
      changes go through. A NodeSpec without any IP (silent guest agent) changes nothing and warns
      nothing on an initialized node. A missing or wrong ``ovirt.org/vm-id``
      annotation is restored.
    - TAINT / UNTAINT (``nodes.taint_shutdown``): ``node.cloudprovider.kubernetes.io/shutdown:
      NoSchedule`` is added when the VM is down or suspended and removed when its status is a running
      one; ``unknown``, ``not_responding``, ``image_locked`` change nothing. ``Action.taints`` is the
      complete new list, other taints kept in order. Taints match by key and effect, never by value
      (:mod:`.changes`): an operator's ``shutdown=true:NoSchedule`` is ours, present, and goes when the VM runs.
    - Out of service (``nodes.out_of_service_taint``, off by default; KEP-2268 non-graceful node shutdown):
      ``node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`` is added (TAINT, ``OutOfServiceTaintAdded``)
      only when the node is NotReady (its Ready condition False or Unknown since at least
      ``nodes.out_of_service_after`` seconds before ``now``: the sweep's clock, passed in; without it, never)
      and the engine read the VM (or host) ``down`` in this sweep and in the one before (the annotation
      ``ovirt.org/down-reads``, set by UPDATE on a ``down`` read and removed on any other read, so a restart
      does not forget the first read; a stale one is removed while the switch is off). Only ``down``: not
      ``unknown``, ``not_responding``, ``suspended``, ``migrating`` or anything else; a host is ``down`` only
      after a power-management stop or fencing. An absent VM, a failed or empty discovery never gets here. It
      is removed (UNTAINT, ``OutOfServiceTaintRemoved``) when the VM runs again and the node is Ready, with the
      switch on or off (one put on before the switch was turned off must not outlive the outage). It
      rides in the same taint list (and action) as the shutdown and maintenance rules.
    - CLEAR_ABSENT: the node's owner is present and it carries the absence counter (see :mod:`.absence`).
    Per node the actions come in the order INITIALIZE, TAINT/UNTAINT, UPDATE, CLEAR_ABSENT: at most one
    action writes ``spec`` (the taint list, the providerID) and it comes first, so an applier that
    guards those writes with the planned resourceVersion (the kube writer does) finds it unchanged; the later
    ones only patch labels, annotations and addresses.

SKIP actions with a node name (``NodeNameConflict``, ``ProvidedNodeIPNotFound``, ``ProvidedNodeIPInvalid``,
    ``Unplannable``, and ``TagLabelConflict`` / ``InvalidMetadataLabel`` for each of the NodeSpec's ``label_notes``
    on a matched node whose labels we write: a label of oVirt's metadata that could not be derived, see
    :mod:`.metadata`) are Warning notices that write nothing; the controller counts them in ``skipped_vms`` by
    reason. ``Unplannable``: planning one VM's or host's nodes raised (a datum no rule foresaw); its partial
    actions are dropped, it stays present, and the other nodes are planned as if it were not there.

REGISTER (``nodes.register``, off by default)
    A running VM (``NodeSpec.running``) with no candidate node at all gets a Node: ``Action.labels``
    (the NodeSpec's labels plus ``app.kubernetes.io/managed-by=ovirt-cloudprovider``),
    ``annotations`` (``ovirt.org/vm-id``), ``taints`` (``node.kubernetes.io/not-ready:NoSchedule``, as kube-apiserver's
    TaintNodesByCondition admission adds it, sent for clusters with that admission off; never the
    uninitialized taint; no write of ours ever removes not-ready: the node lifecycle controller does when
    the kubelet reports Ready), ``provider_id``
    and ``addresses`` are the body to create; capacity and nodeInfo come from ``Action.spec``. When the
    name is taken by a node that is not a candidate (foreign, another VM's, or a node whose systemUUID
    says it is another machine) nothing is registered: SKIP ``NodeNameConflict`` (warning). The same
    holds when the VM's FQDN is the name or hostname of a node without a providerID that reports a
    well-formed systemUUID other than the VM id and that matches no VM at all (a kubelet named by FQDN
    on a machine whose SMBIOS UUID is not the VM's): no second node is registered for the VM while that
    node exists. (A node that another VM matches is that VM's; it blocks nothing.)

Absence and deletion (``nodes.delete``): see :mod:`.absence` (the absence counter, MARK_ABSENT, DELETE, and the
    guards: empty discovery, vanished cluster, circuit breaker). The planner hands it the managed nodes once
    every NodeSpec is matched.

Confirmation: see :mod:`.confirm` (between planning and applying, the controller asks the engine about
    every VM and host whose node is due for deletion: a GET by id, and for one that still exists its filter
    searched narrowed to it; a VM record that clearly matches its filter is a veto, hosts have no such veto).

Targeted sweeps: see :mod:`.targeted` (the plan of a few VMs or hosts, deletion off, equal to this plan over
    the whole discovery filtered to them).

oVirt hosts (``[filters] hosts``, NodeSpecs with ``kind="host"``, see :mod:`.hosts`)
    Every rule above holds for a host's node, with these differences. Ownership is per kind: a host's
    node has ``ovirt://host/<host-id>``, and a node's owner is keyed by kind and id
    (:func:`.providerid.owner_key`), so a VM id never claims, clears or deletes a host's node and a host
    id never a VM's. The systemUUID rule compares the host's SMBIOS uuid (``NodeInfo.system_uuid``), not
    its id; a host whose SMBIOS uuid is unknown matches by name and FQDN only and contradicts no node.
    A node that weakly matches a VM and a host is ambiguous like any node matching two (a VM and a host
    never match the same node). The id annotation is ``ovirt.org/host-id``. TAINT / UNTAINT also carry
    ``ovirt.org/maintenance:NoSchedule``: added while the host is in (or preparing for) maintenance, removed
    when it is up (``MaintenanceTaintAdded`` / ``MaintenanceTaintRemoved``, in the same action and taint list
    as the shutdown rule; switched by ``nodes.taint_shutdown``). The empty-discovery rule is per kind (see
    :mod:`.absence`). When the snapshot did not search hosts (``Desired.hosts_discovered``
    False: ``[filters] hosts`` unset), host nodes are not managed: left alone, with a note.

Unadopted placeholders (``nodes.register`` off, ``nodes.delete`` on)
    A managed node of this instance (its ``ovirt.org/owner``, or a legacy node without one for the default
    instance, see :mod:`.ownership`; never another instance's) that this controller registered
    (``app.kubernetes.io/managed-by=ovirt-cloudprovider``) and
    that no kubelet ever adopted (:attr:`ObservedNode.kubelet_joined`: no ``status.nodeInfo.kubeletVersion``, no
    condition with a kubelet's reason, no ``volumes.kubernetes.io/controller-managed-attach-detach`` annotation,
    which a kubelet sets when it registers or adopts a node) is deleted (DELETE ``UnadoptedPlaceholder``, uid +
    resourceVersion preconditions, an Event), whether its VM is present or not; it takes no other part in the
    plan and is not counted as managed. A node a kubelet adopted is never deleted for this reason (it is an
    ordinary managed node), nor one whose VM's record could not be planned (``Unplannable``). Its owner's
    absence rules, the circuit breaker and the engine's confirmation do not apply: nothing runs on a node no
    kubelet joined, and the node is not deleted because its VM is gone. (The
    node's Lease in ``kube-node-lease`` is not read: that needs cluster-wide read access to Leases, and a
    kubelet posts its version in the same status update that follows its adoption.)

REGISTER conditions
    The body of a REGISTER carries ``status.conditions`` = one ``Ready=False`` condition (reason
    ``KubeletNotJoined``, written by the kube writer with the time), so that kube-controller-manager's node
    lifecycle controller keeps ``node.kubernetes.io/not-ready:NoSchedule`` (it rebuilds NoSchedule taints from
    conditions, and a node without a Ready condition loses that taint for its startup grace period). After its
    grace period it sets ``Ready=Unknown`` and swaps the taint for ``node.kubernetes.io/unreachable``; no write
    of ours ever touches a condition, nor the not-ready and unreachable taints (every taint rule keeps the
    taints it does not own), so the planner never fights it.

Plan.managed_nodes
    The number of managed nodes once the plan is applied: managed now, minus planned DELETEs, plus
    REGISTERs and INITIALIZEs that set a providerID. It equals the current count in a steady state.
    ``Plan.managed_hosts`` counts the hosts' nodes among them the same way (the rest are VMs' nodes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from . import ownership, providerid
from .absence import (
    clear_absent,
    plan_absence,
)
from .changes import (
    MAINTENANCE_TAINT,
    NOT_READY_TAINT,
    OUT_OF_SERVICE_TAINT,
    REASON_UNPLANNABLE,
    SHUTDOWN_TAINT,
    address_change,
    down_read_change,
    has_ip,
    has_taint,
    id_of_key,
    label_changes,
    maintenance_change,
    node_action,
    node_ip_addresses,
    not_ready_for,
    out_of_service_change,
    out_of_service_removal,
    shutdown_change,
    taint_changes,
)
from .changes import describe_owner as _vm  # how messages name a node's VM or host
from .records import (
    ANNOTATION_DOWN_READS,
    ANNOTATION_HOST_ID,
    ANNOTATION_VM_ID,
    KIND_HOST,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    TAINT_UNINITIALIZED,
    Action,
    ActionKind,
    Desired,
    NodeAddress,
    NodeSpec,
    ObservedNode,
    Plan,
)
from .settings import ControllerConfig, NodesConfig

# Action reasons (also the Event reasons).
REASON_REGISTERED = "RegisteredNode"
REASON_INITIALIZED = "InitializedNode"
REASON_UPDATED = "UpdatedNode"
REASON_TAINTED = "ShutdownTaintAdded"
REASON_UNTAINTED = "ShutdownTaintRemoved"
REASON_MAINTENANCE_TAINTED = "MaintenanceTaintAdded"
REASON_MAINTENANCE_UNTAINTED = "MaintenanceTaintRemoved"
REASON_REPLACED = "ReplacedByKubelet"
REASON_AMBIGUOUS = "AmbiguousMatch"
REASON_SKIPPED = "SkippedVM"
REASON_NAME_CONFLICT = "NodeNameConflict"
REASON_UNADOPTED = "UnadoptedPlaceholder"
REASON_OUT_OF_SERVICE_TAINTED = "OutOfServiceTaintAdded"
REASON_OUT_OF_SERVICE_UNTAINTED = "OutOfServiceTaintRemoved"

_MANAGED_BY = (LABEL_MANAGED_BY, MANAGED_BY_VALUE)  # the label of every registration, one pair for all of them

# Order of actions on one node (see the module docstring); REGISTER and SKIP concern no existing node.
_KIND_ORDER = {
    kind: i for i, kind in enumerate((
        ActionKind.INITIALIZE, ActionKind.TAINT, ActionKind.UNTAINT, ActionKind.UPDATE,
        ActionKind.CLEAR_ABSENT, ActionKind.MARK_ABSENT, ActionKind.DELETE, ActionKind.BLOCK_DELETE,
        ActionKind.AMBIGUOUS, ActionKind.REGISTER, ActionKind.SKIP,
    ))
}


# --- small pure helpers -----------------------------------------------------------------------------

def _contradicts(system_uuid: str | None, vm_id: str | None) -> bool:
    """The node reports a well-formed systemUUID that is not this VM's (or host's SMBIOS uuid): it is another
    machine. Nothing contradicts a machine whose uuid is unknown (``vm_id`` None: a host without one)."""
    if not system_uuid or not providerid.is_uuid(system_uuid) or not vm_id:
        return False
    return not providerid.same_uuid(system_uuid, vm_id)


def _key(spec: NodeSpec) -> str:
    """The owner key of a NodeSpec (:func:`.providerid.owner_key`): a VM's id, or ``host/<id>``."""
    return providerid.owner_key(spec.kind, spec.vm_id)


def _machine_uuid(spec: NodeSpec) -> str | None:
    """The systemUUID a kubelet on this machine reports: a VM's id; a host's SMBIOS uuid (None if unknown)."""
    if spec.kind != KIND_HOST:
        return providerid.normalize_vm_id(spec.vm_id)
    return (spec.node_info.system_uuid if spec.node_info else "") or None


def _id_annotation(spec: NodeSpec) -> str:
    return ANNOTATION_HOST_ID if spec.kind == KIND_HOST else ANNOTATION_VM_ID


def _fold(name: str | None) -> str:
    return (name or "").strip().rstrip(".").lower()


def _names(nodes: Iterable[ObservedNode]) -> str:
    return ", ".join(n.name for n in nodes)


def _needs_initialization(node: ObservedNode) -> bool:
    return not node.provider_id or node.waits_for_cloud_provider


# --- the planner ---------------------------------------------------------------------------------------


def _unreadable_owner(node: ObservedNode, exc: Exception) -> Action:
    """A SKIP Warning on ``node``, whose owner annotations could not be read: it is left as it is this sweep."""
    detail = " ".join(str(exc).split())[:200]
    return node_action(ActionKind.SKIP, node, None, REASON_UNPLANNABLE,
                       f"Node {node.name} is skipped this sweep: its owner could not be read "
                       f"({type(exc).__name__}: {detail}); it is left as it is.", warning=True)

def plan_sync(
    desired: Desired,
    observed: Sequence[ObservedNode],
    *,
    nodes: NodesConfig,
    controller: ControllerConfig,
    now: float | None = None,
) -> Plan:
    """Plan one sweep. Call it only with the Desired of a complete, successful discovery.

    Pure and deterministic: actions are sorted by node name, then by kind (INITIALIZE, TAINT, UNTAINT,
    UPDATE, CLEAR_ABSENT, MARK_ABSENT, DELETE, BLOCK_DELETE, AMBIGUOUS, REGISTER, SKIP); SKIPs of VMs
    that have no node name come last, by VM name. ``now`` (seconds since the epoch, the caller's clock) is only
    read by the out-of-service rule. See the module docstring for the rules.
    """
    return _Planner(desired, observed, nodes, controller, now).plan()


class _Planner:
    """One planning run. Mutable inside, but only :meth:`plan`'s frozen result leaves it."""

    def __init__(
        self, desired: Desired, observed: Sequence[ObservedNode], nodes: NodesConfig,
        controller: ControllerConfig, now: float | None,
    ) -> None:
        self.desired = desired
        self.now = now
        self.cfg = nodes
        self.controller = controller
        self.actions: list[Action] = []
        self.notes: list[str] = []
        self.deleting: set[str] = set()  # nodes a DELETE is planned for
        self.ambiguous: set[str] = set()  # nodes an AMBIGUOUS is planned for
        # Node names are unique in a cluster; keep the first by (name, uid) if a caller repeats one.
        self.by_name: dict[str, ObservedNode] = {}
        for node in sorted(observed, key=lambda n: (n.name, n.uid)):
            self.by_name.setdefault(node.name, node)
        # Ownership (core/ownership.py): other instances' nodes only hold their names and VMs; unclaimed legacy nodes
        # are matched (and adopted when present) but never counted absent by an instance with another name.
        self.owner = ownership.Owner(controller.instance, desired.engine)
        self.owner_annotations = self.owner.annotations  # one tuple for every registration
        self.registered_labels: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}
        parts = ownership.partition(self.by_name.values(), self.owner)
        # A node whose owner cannot be read is held like another instance's node: its name and VM stay taken,
        # nothing is written to it, and a SKIP Warning says why.
        held = [*parts.others, *(node for node, _ in parts.unreadable)]
        self.others = {node.name: node for node in held}
        self.others_keys = {providerid.owner_key_of(node.provider_id) for node in held} - {None}
        for node, exc in parts.unreadable:
            self.actions.append(_unreadable_owner(node, exc))
        self.by_name = {name: node for name, node in self.by_name.items() if name not in self.others}
        self.unclaimed: set[str] = set() if self.owner.claims_legacy else {n.name for n in parts.unowned}
        self.adopted: set[str] = set()  # unclaimed nodes this plan writes our owner on
        if parts.others:
            self.notes.append(f"{len(parts.others)} node(s) of other controller instances left alone")
        self.managed: dict[str, list[ObservedNode]] = {}  # vm id → nodes with that providerID
        self.unprovisioned: list[ObservedNode] = []
        self.by_fqdn: dict[str, list[ObservedNode]] = {}  # folded name / hostname → unprovisioned nodes
        self.claimed: set[str] = set()  # unprovisioned nodes that some VM matches (weakly)
        self.unadopted: list[ObservedNode] = []  # our placeholders no kubelet adopted, with register off
        self.unplannable: set[str] = set()  # owner keys whose planning raised
        for node in self.by_name.values():
            key = providerid.owner_key_of(node.provider_id)  # a VM id, or host/<id> (see the docstring)
            if key is not None and (desired.hosts_discovered or not providerid.is_host_key(key)):
                # our own placeholders only: owned by this instance, or legacy ones the default instance claims
                if not nodes.register and nodes.delete and node.registered_by_us and not node.kubelet_joined \
                        and node.name not in self.unclaimed:
                    self.unadopted.append(node)
                    continue
                self.managed.setdefault(key, []).append(node)
            elif not node.provider_id:
                self.unprovisioned.append(node)
            elif providerid.is_ovirt(node.provider_id):
                self.notes.append(f"node {node.name} has providerID {node.provider_id!r} without a VM id: "
                                  "left alone")
        self.managed_count = sum(1 for v in self.managed.values() for n in v if n.name not in self.unclaimed)

    # -- entry point --

    def plan(self) -> Plan:
        kept = self._uncontested()
        specs = sorted([*self.desired.nodes, *kept.values()], key=lambda s: (s.name, s.vm_id))
        weak = self._weak_matches(specs)
        claims: dict[str, list[tuple[NodeSpec, list[str]]]] = {}
        for spec in specs:
            for name, rules in weak[_key(spec)].items():
                claims.setdefault(name, []).append((spec, rules))
        poisoned = {name for name, cl in claims.items() if len(cl) > 1}
        self.claimed = set(claims)
        for name in sorted(poisoned):
            found = "; ".join(f"{_vm(s)} by {', '.join(r)}" for s, r in claims[name])
            self._ambiguous(self.by_name[name], None,
                            f"Node {name} has no providerID and matches {len(claims[name])} VMs ({found}); "
                            "it is left alone until only one matches.")
        for spec in specs:
            mark = len(self.actions)
            try:
                self._resolve(spec, weak[_key(spec)], poisoned)
            except Exception as exc:  # one node's unforeseen datum skips that node, never the sweep
                self._unplannable(spec, mark, exc)
        self._absence()
        spec_of = {_key(spec): spec for spec in specs}
        for node in self.unadopted:
            key = providerid.owner_key_of(node.provider_id)
            if key in self.unplannable:
                continue  # its VM's record could not be planned: the node is left as it is
            self.actions.append(node_action(
                ActionKind.DELETE, node, spec_of.get(key or ""), REASON_UNADOPTED,
                f"Deleting placeholder node {node.name}: [nodes] register is off and no kubelet ever joined it (no "
                "kubelet version, condition or annotation); a VM becomes a node when its kubelet registers.",
                vm_id=id_of_key(providerid.owner_key_of(node.provider_id) or ""),
            ))
        kept_keys = {_key(spec) for spec in kept.values()}
        names = {providerid.owner_key(spec.kind, spec.vm_id): spec.name for spec in self.desired.contested}
        for skipped in sorted(self.desired.skipped, key=lambda k: (k.vm_name, k.vm_id)):
            key = providerid.owner_key(skipped.kind, skipped.vm_id)
            if key in kept_keys:
                continue  # it keeps the node that carries its providerID, planned above
            winner = kept.get(names.get(key, ""))
            keeps = (f"; node {winner.name} carries the providerID of {_vm(winner)}, which keeps it"
                     if winner is not None else "")
            self.actions.append(Action(
                kind=ActionKind.SKIP, node="", reason=REASON_SKIPPED, vm_id=skipped.vm_id, warning=True,
                owner_kind=skipped.kind,
                message=f"{'host' if skipped.kind == KIND_HOST else 'VM'} {skipped.vm_name} ({skipped.vm_id}) "
                        f"cannot become a node: {skipped.reason}{keeps}.",
            ))
        managed, hosts = self._managed_after()
        return Plan(actions=tuple(sorted(self.actions, key=_sort_key)), managed_nodes=managed,
                    managed_hosts=hosts, notes=tuple(self.notes))

    def _uncontested(self) -> dict[str, NodeSpec]:
        """node name → the one contested NodeSpec (``Desired.contested``: VMs and hosts skipped as duplicate-name)
        that keeps it: the node of that name (ours to plan) already carries its providerID. The others stay
        skipped; with no such node, or one of no contender, all do (a name is never guessed)."""
        groups: dict[str, list[NodeSpec]] = {}
        for spec in self.desired.contested:
            groups.setdefault(spec.name, []).append(spec)
        kept: dict[str, NodeSpec] = {}
        for name, group in sorted(groups.items()):
            node = self.by_name.get(name)
            key = providerid.owner_key_of(node.provider_id) if node is not None else None
            holders = [spec for spec in group if _key(spec) == key]
            if len(group) > 1 and len(holders) == 1 and key in self.managed:
                kept[name] = holders[0]
        return kept

    # -- matching --

    def _weak_matches(self, specs: Sequence[NodeSpec]) -> dict[str, dict[str, list[str]]]:
        """vm id → {unprovisioned node name → the rules it matched by}, via indexes (no n*m scan)."""
        by_uuid: dict[str, list[ObservedNode]] = {}
        by_fqdn = self.by_fqdn
        for node in self.unprovisioned:
            for form in set(providerid.uuid_forms(node.system_uuid)) if node.system_uuid else ():
                by_uuid.setdefault(form, []).append(node)
            for key in {_fold(node.name), _fold(node.hostname)} - {""}:
                by_fqdn.setdefault(key, []).append(node)
        result: dict[str, dict[str, list[str]]] = {}
        for spec in specs:
            found: dict[str, list[str]] = {}
            vm_id = _machine_uuid(spec)
            for node in by_uuid.get(vm_id, ()) if vm_id else ():
                found.setdefault(node.name, []).append("systemUUID")
            named = self.by_name.get(spec.name)
            if named is not None and not named.provider_id and not _contradicts(named.system_uuid, vm_id):
                found.setdefault(named.name, []).append("name")
            if _fold(spec.fqdn):
                for node in by_fqdn.get(_fold(spec.fqdn), ()):
                    if not _contradicts(node.system_uuid, vm_id):
                        found.setdefault(node.name, []).append("FQDN")
            result[_key(spec)] = found
        return result

    def _resolve(self, spec: NodeSpec, weak: dict[str, list[str]], poisoned: set[str]) -> None:
        vm = _vm(spec)
        claimed = self.managed.get(_key(spec), [])
        if not claimed and _key(spec) in self.others_keys:
            self.actions.append(Action(
                kind=ActionKind.SKIP, node=spec.name, reason=ownership.REASON_OWNED_ELSEWHERE, vm_id=spec.vm_id,
                spec=spec, warning=True, owner_kind=spec.kind,
                message=f"{vm} has a node of another controller instance; this instance ({self.owner.instance!r}) "
                        "leaves it alone and registers or initializes no node for it.",
            ))
            return
        kubelet = [n for n in claimed if not n.registered_by_us]
        placeholders = [n for n in claimed if n.registered_by_us]
        clean = [self.by_name[name] for name in sorted(weak) if name not in poisoned]
        has_poisoned = any(name in poisoned for name in weak)
        described = ", ".join(f"{name} by {' and '.join(rules)}" for name, rules in sorted(weak.items()))

        if len(kubelet) > 1:
            for node in [*claimed, *clean]:
                self._ambiguous(node, spec, f"{vm} is claimed by {len(kubelet)} kubelet nodes with its "
                                            f"providerID ({_names(kubelet)}); none of them is changed.")
            return
        if kubelet:
            owner = kubelet[0]
            for node in clean:
                rules = " and ".join(weak[node.name])
                self._ambiguous(node, spec, f"Node {node.name} matches {vm} by {rules}, but the VM already "
                                            f"has node {owner.name}; {node.name} is left alone.")
            self._replace(placeholders, owner, spec)
            self._sync(owner, spec)
            self._note_kept(placeholders, owner)
            return
        if has_poisoned or len(clean) > 1:
            for node in clean:
                self._ambiguous(node, spec, f"{vm} matches {len(weak)} nodes without a providerID "
                                            f"({described}); none of them is initialized.")
            self._placeholder_only(placeholders, spec)
            return
        if clean:
            self._replace(placeholders, clean[0], spec)
            self._sync(clean[0], spec)
            self._note_kept(placeholders, clean[0])
            return
        if placeholders:
            self._placeholder_only(placeholders, spec)
            return
        self._register(spec)

    def _unplannable(self, spec: NodeSpec, mark: int, exc: Exception) -> None:
        """Planning ``spec``'s nodes raised: its partial actions (from ``mark`` on) are dropped and a SKIP Warning
        says why (on its node, when it has one); the node stays present (never counted absent), the others go on."""
        dropped = self.actions[mark:]
        del self.actions[mark:]
        self.unplannable.add(_key(spec))
        self.deleting -= {a.node for a in dropped if a.kind == ActionKind.DELETE}
        self.ambiguous -= {a.node for a in dropped if a.kind == ActionKind.AMBIGUOUS}
        node = next(iter(self.managed.get(_key(spec), ())), None)
        detail = " ".join(str(exc).split())[:200]
        self.actions.append(Action(
            kind=ActionKind.SKIP, node=node.name if node else "", reason=REASON_UNPLANNABLE, vm_id=spec.vm_id,
            spec=spec, warning=True, owner_kind=spec.kind, uid=node.uid if node else None,
            resource_version=node.resource_version if node else None,
            message=f"{_vm(spec)} is skipped this sweep: its node could not be planned "
                    f"({type(exc).__name__}: {detail}); the node is left as it is.",
        ))

    def _placeholder_only(self, placeholders: list[ObservedNode], spec: NodeSpec) -> None:
        if len(placeholders) == 1:
            self._sync(placeholders[0], spec)
        elif placeholders:
            for node in placeholders:
                self._ambiguous(node, spec, f"{_vm(spec)} has {len(placeholders)} placeholder nodes with its "
                                            f"providerID ({_names(placeholders)}); none of them is changed.")

    def _ambiguous(self, node: ObservedNode, spec: NodeSpec | None, message: str) -> None:
        if node.name in self.ambiguous:
            return
        self.ambiguous.add(node.name)
        self.actions.append(node_action(ActionKind.AMBIGUOUS, node, spec, REASON_AMBIGUOUS, message,
                                         warning=True))

    # -- writes for present VMs --

    def _replace(self, placeholders: list[ObservedNode], owner: ObservedNode, spec: NodeSpec) -> None:
        """Delete our placeholders of ``spec``'s VM once its kubelet node ``owner`` is initialized; while it still
        waits for initialization they are kept (the writer applies different nodes' actions in parallel: a lease
        lost mid-apply, or a failed initialization, must not leave the VM with only an uninitialized node), and
        the sweep's INITIALIZE of ``owner`` says so (:meth:`_note_kept`)."""
        if not self.cfg.delete or _needs_initialization(owner):
            return
        for node in placeholders:
            self.deleting.add(node.name)
            self.actions.append(node_action(
                ActionKind.DELETE, node, spec, REASON_REPLACED,
                f"Deleting placeholder node {node.name} of {_vm(spec)}: the kubelet registered node "
                f"{owner.name} for the same VM.",
            ))

    def _note_kept(self, placeholders: list[ObservedNode], owner: ObservedNode) -> None:
        """The INITIALIZE of a kubelet node planned while our placeholders of its VM are kept (:meth:`_replace`)
        names them: they are deleted in a later sweep, once ``owner`` is initialized."""
        if not (placeholders and self.cfg.delete and _needs_initialization(owner)):
            return
        for i, action in enumerate(self.actions):
            if action.kind == ActionKind.INITIALIZE and action.node == owner.name:
                self.actions[i] = replace(action, message=(
                    f"{action.message} Placeholder node {_names(placeholders)} is kept until node {owner.name} "
                    "is initialized, and deleted in a later sweep (ReplacedByKubelet)."))

    def _register(self, spec: NodeSpec) -> None:
        if not (self.cfg.register and spec.running):
            return
        other = self.others.get(spec.name)
        if other is not None:
            self.actions.append(Action(
                kind=ActionKind.SKIP, node=spec.name, reason=REASON_NAME_CONFLICT, vm_id=spec.vm_id,
                spec=spec, warning=True, owner_kind=spec.kind,
                message=f"{_vm(spec)} has no node, but the name {spec.name} is taken by a node of "
                        f"{ownership.describe(other)}; not registering.",
            ))
            return
        taken = self.by_name.get(spec.name)
        if taken is not None:
            why = (f"providerID {taken.provider_id}" if taken.provider_id
                   else f"systemUUID {taken.system_uuid}, which is not the VM id")
            self.actions.append(Action(
                kind=ActionKind.SKIP, node=spec.name, reason=REASON_NAME_CONFLICT, vm_id=spec.vm_id,
                spec=spec, warning=True, owner_kind=spec.kind,
                message=f"{_vm(spec)} has no node, but the name {spec.name} is taken by a node with {why}; "
                        "not registering.",
            ))
            return
        fqdn = _fold(spec.fqdn)
        impostors = [n for n in self.by_fqdn.get(fqdn, ()) if fqdn and n.name not in self.claimed
                     and _contradicts(n.system_uuid, _machine_uuid(spec))]
        if impostors:
            found = ", ".join(f"{n.name} (systemUUID {n.system_uuid})" for n in impostors)
            self.actions.append(Action(
                kind=ActionKind.SKIP, node=spec.name, reason=REASON_NAME_CONFLICT, vm_id=spec.vm_id,
                spec=spec, warning=True, owner_kind=spec.kind,
                message=f"{_vm(spec)} has no node, but its FQDN {fqdn} is taken by node {found} without a "
                        "providerID, whose systemUUID is not the VM id; not registering a second node for it.",
            ))
            return
        labels = self._registered_labels(spec.labels)
        self.actions.append(Action(
            kind=ActionKind.REGISTER, node=spec.name, reason=REASON_REGISTERED, vm_id=spec.vm_id, spec=spec,
            owner_kind=spec.kind,
            labels=labels,
            annotations=((_id_annotation(spec), spec.vm_id), *self.owner_annotations), taints=(NOT_READY_TAINT,),
            provider_id=spec.provider_id,
            addresses=tuple(spec.addresses),
            message=f"Registered node {spec.name} for {_vm(spec)} with {len(spec.addresses)} address(es) "
                    f"and {len(labels)} label(s).",
        ))

    def _registered_labels(self, labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """A registration's labels: the NodeSpec's and ``app.kubernetes.io/managed-by``, sorted by key; equal sets
        are one tuple of the NodeSpec's own pairs (a registration of thousands of nodes copies no pair)."""
        got = self.registered_labels.get(labels)
        if got is None:
            pairs = {pair[0]: pair for pair in labels}
            pairs[LABEL_MANAGED_BY] = _MANAGED_BY
            got = self.registered_labels[labels] = tuple(sorted(pairs.values(), key=lambda kv: kv[0]))
        return got

    def _sync(self, node: ObservedNode, spec: NodeSpec) -> None:
        """Bring one owner node to ``spec`` (:meth:`_sync_node`), and record this instance as its owner."""
        first = len(self.actions)
        self._sync_node(node, spec)
        self._adopt(node, spec, first)

    def _adopt(self, node: ObservedNode, spec: NodeSpec, first: int) -> None:
        """Write our owner annotations on ``node`` (its VM or host is in our discovery: positive evidence) in the
        node's first write of this plan, which carries the node's resourceVersion as a precondition; a node not
        initialized (no providerID, no INITIALIZE) is not adopted."""
        adoption = self.owner.adoption(node)
        writes = [i for i in range(first, len(self.actions)) if self.actions[i].writes
                  and self.actions[i].node == node.name]
        initializes = any(self.actions[i].kind == ActionKind.INITIALIZE for i in writes)
        if adoption is None or not (node.provider_id or initializes):
            return
        if node.name in self.unclaimed:
            self.adopted.add(node.name)
        if writes:
            action = self.actions[writes[0]]
            merged = dict(action.annotations or ())
            merged.update(adoption)
            self.actions[writes[0]] = replace(action, annotations=tuple(sorted(merged.items(), key=lambda kv: kv[0])))
            return
        self.actions.append(node_action(
            ActionKind.UPDATE, node, spec, REASON_UPDATED,
            f"Updated node {node.name} for {_vm(spec)}: recorded its owner, {self.owner.describe()}.",
            annotations=adoption,
        ))

    def _sync_node(self, node: ObservedNode, spec: NodeSpec) -> None:
        """Bring one owner node to ``spec``: INITIALIZE, or TAINT/UNTAINT plus UPDATE; then CLEAR_ABSENT."""
        vm = _vm(spec)
        vm_annotation = (None if node.annotation_map.get(_id_annotation(spec)) == spec.vm_id
                         else ((_id_annotation(spec), spec.vm_id),))
        wanted, node_ip_problem = node_ip_addresses(node, spec)
        if self.cfg.update or (self.cfg.initialize and _needs_initialization(node)):
            for reason, note in spec.label_notes:
                self.actions.append(node_action(ActionKind.SKIP, node, spec, reason,
                                                f"A label of node {node.name} for {vm} is not set: {note}.",
                                                warning=True))
        if _needs_initialization(node):
            if self.cfg.initialize:
                if node_ip_problem:
                    self._node_ip_warning(node, spec, node_ip_problem,
                                          f"Node {node.name} is not initialized for {vm}")
                else:
                    self._initialize(node, spec, vm_annotation, wanted)
                self._clear_absent(node, spec)
                return
            if not node.provider_id:
                return  # not ours until initialized, and initializing is switched off
        self._taints(node, spec)
        if self.cfg.out_of_service_taint:
            down_read = down_read_change(node, spec)
        else:  # a stale first read must not count as one when the switch is turned on again
            down_read = ((ANNOTATION_DOWN_READS, None),) if ANNOTATION_DOWN_READS in node.annotation_map else None
        labels: tuple[tuple[str, str | None], ...] = ()
        addresses = None
        if self.cfg.update:
            labels = label_changes(node, spec)
            addresses = None if node_ip_problem else address_change(node, wanted, trusted=spec.addresses_trusted)
            if node_ip_problem and has_ip(spec.addresses):  # else: a silent guest agent changes nothing
                self._node_ip_warning(node, spec, node_ip_problem, f"The addresses of node {node.name} are kept")
        else:
            vm_annotation = None
        annotations = (*(vm_annotation or ()), *(down_read or ()))
        if labels or addresses is not None or annotations:
            parts = [f"{k}={v}" if v is not None else f"-{k}" for k, v in labels]
            if addresses is not None:
                parts.append(f"{len(addresses)} address(es)")
            parts += [f"annotation {k}" if v is not None else f"-annotation {k}" for k, v in annotations]
            self.actions.append(node_action(
                ActionKind.UPDATE, node, spec, REASON_UPDATED,
                f"Updated node {node.name} for {vm}: " + ", ".join(parts) + ".",
                labels=labels or None, addresses=addresses, annotations=annotations or None,
            ))
        self._clear_absent(node, spec)

    def _taints(self, node: ObservedNode, spec: NodeSpec) -> None:
        """TAINT / UNTAINT: the shutdown and maintenance rules (``taint_shutdown``), the out-of-service rule."""
        before = list(node.taints)
        after = before
        if self.cfg.taint_shutdown:
            after = maintenance_change(shutdown_change(after, spec), spec)
        if self.cfg.out_of_service_taint:
            after = out_of_service_change(after, node, spec, after=self.cfg.out_of_service_after, now=self.now)
        else:  # switched off: a taint put on while it was on still goes when the VM runs and the node is Ready
            after = out_of_service_removal(after, node, spec)
        if after == before:
            return
        added = len(after) > len(before)
        verb = " and ".join(taint_changes(before, after))
        tainted = has_taint(after, OUT_OF_SERVICE_TAINT)
        if tainted != has_taint(before, OUT_OF_SERVICE_TAINT):
            waited = not_ready_for(node, self.now)
            why = (f"{_vm(spec)} was read down in two consecutive sweeps and node {node.name} has been NotReady "
                   f"for {waited:.0f}s" if tainted and waited is not None
                   else f"{_vm(spec)} is {status_words(spec.status)} and node {node.name} is Ready")
            reason = REASON_OUT_OF_SERVICE_TAINTED if tainted else REASON_OUT_OF_SERVICE_UNTAINTED
            message = f"{why}: {verb} node {node.name} ({len(after)} taint(s) now)."
        else:
            shutdown_rule = has_taint(after, SHUTDOWN_TAINT) != has_taint(before, SHUTDOWN_TAINT)
            reason = ((REASON_TAINTED if added else REASON_UNTAINTED) if shutdown_rule
                      else (REASON_MAINTENANCE_TAINTED if added else REASON_MAINTENANCE_UNTAINTED))
            message = (f"{_vm(spec)} is {status_words(spec.status)}: {verb} node {node.name} "
                       f"({len(after)} taint(s) now).")
        self.actions.append(node_action(ActionKind.TAINT if added else ActionKind.UNTAINT, node, spec, reason,
                                        message, taints=tuple(after)))

    def _node_ip_warning(self, node: ObservedNode, spec: NodeSpec, problem: tuple[str, str], what: str) -> None:
        reason, why = problem
        self.actions.append(node_action(ActionKind.SKIP, node, spec, reason, f"{what}: {why}.", warning=True))

    def _initialize(
        self, node: ObservedNode, spec: NodeSpec, vm_annotation: tuple[tuple[str, str | None], ...] | None,
        wanted: tuple[NodeAddress, ...],
    ) -> None:
        taints = [t for t in node.taints if t.key != TAINT_UNINITIALIZED]
        parts = [f"removed taint {TAINT_UNINITIALIZED}"] if len(taints) < len(node.taints) else []
        if self.cfg.taint_shutdown:
            shutdown = maintenance_change(shutdown_change(taints, spec), spec)
            for taint in (SHUTDOWN_TAINT, MAINTENANCE_TAINT):
                if has_taint(shutdown, taint) != has_taint(taints, taint):
                    parts.append(f"{'added' if has_taint(shutdown, taint) else 'removed'} taint {taint.key}")
            taints = shutdown
        provider_id = None if node.provider_id else spec.provider_id
        labels = label_changes(node, spec)
        addresses = address_change(node, wanted, trusted=spec.addresses_trusted)
        parts[:0] = [f"providerID {provider_id}"] if provider_id else []
        parts += [f"{len(labels)} label(s)"] if labels else []
        parts += [f"{len(addresses)} address(es)"] if addresses is not None else []
        self.actions.append(node_action(
            ActionKind.INITIALIZE, node, spec, REASON_INITIALIZED,
            f"Initialized node {node.name} for {_vm(spec)}: " + ", ".join(parts) + ".",
            provider_id=provider_id, labels=labels or None, annotations=vm_annotation, addresses=addresses,
            taints=tuple(taints) if taints != list(node.taints) else None,
        ))

    def _clear_absent(self, node: ObservedNode, spec: NodeSpec) -> None:
        cleared = clear_absent(node, spec)
        if cleared is not None:
            self.actions.append(cleared)

    def _absence(self) -> None:
        handled = {a.node for a in self.actions if a.kind == ActionKind.CLEAR_ABSENT} | self.deleting
        actions, notes = plan_absence(self.desired, self._counted(), handled=handled, delete=self.cfg.delete,
                                      controller=self.controller)
        self.deleting |= {a.node for a in actions if a.kind == ActionKind.DELETE}
        self.actions += actions
        self.notes += notes

    def _counted(self) -> dict[str, list[ObservedNode]]:
        """The managed nodes whose absence counts: all but the legacy ones of an instance that does not claim them
        (core/ownership.py)."""
        if not self.unclaimed:
            return self.managed
        counted = {key: [n for n in nodes if n.name not in self.unclaimed] for key, nodes in self.managed.items()}
        return {key: nodes for key, nodes in counted.items() if nodes}

    def _managed_after(self) -> tuple[int, int]:
        """The managed nodes once the plan is applied, and how many of them are hosts' nodes."""
        counted = {n.name for nodes in self.managed.values() for n in nodes} - self.unclaimed | self.adopted
        count = self.managed_count - len(self.deleting & counted) + len(self.adopted)
        hosts = sum(1 for key, nodes in self.managed.items() if providerid.is_host_key(key)
                    for n in nodes if n.name in counted)
        for action in self.actions:
            if action.kind == ActionKind.DELETE and action.owner_kind == KIND_HOST and action.node in counted:
                hosts -= 1
            elif action.kind == ActionKind.REGISTER or (
                    action.kind == ActionKind.INITIALIZE and action.provider_id is not None):
                count += 1
                hosts += action.owner_kind == KIND_HOST
        return count, hosts


def _sort_key(action: Action) -> tuple[bool, str, int, str, str]:
    return (action.node == "", action.node, _KIND_ORDER[action.kind], action.vm_id or "", action.reason)


def status_words(status: str) -> str:
    """An engine status as words after "is": "in maintenance", "preparing for maintenance", "down"."""
    words = status.strip().lower().replace("_", " ")
    return "in maintenance" if words == "maintenance" else words
