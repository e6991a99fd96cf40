"""What changes on a node: the label, address and taint changes that bring an observed node to its NodeSpec (pure).

The planner (:mod:`.plan`, whose rulebook says when each applies) decides which node gets which change; these
functions compute the change itself: the labels we own or add (the kubelet's are never overwritten), the
addresses (the kubelet's ``--node-ip`` and Hostname respected), and the taint lists with the shutdown and
maintenance rules applied, every other taint kept in order; and how an Action on an existing node is built
(:func:`node_action`, with the uid/resourceVersion it was planned against) and how messages name its owner.

Taints are matched by key and effect, never by value, as kube-apiserver keys them ("taints must be unique by key
and effect pair") and as upstream's cloud-node-lifecycle controller matches its shutdown taint: an operator's
``kubectl taint node X node.cloudprovider.kubernetes.io/shutdown=true:NoSchedule`` is our taint present (no second
one is added, which the API would refuse with 422), and it is removed like ours when the VM runs again (the key
is the cloud provider's; ``ovirt.org/maintenance`` likewise when the host is up).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import providerid
from .addresses import HOSTNAME, enforce_node_ips, parse_node_ips
from .records import (
    ANNOTATION_DOWN_READS,
    ANNOTATION_PROVIDED_NODE_IP,
    KIND_HOST,
    KIND_VM,
    LABEL_ARCH,
    LABEL_HOST_ID,
    LABEL_HOSTNAME,
    LABEL_MANAGED_BY,
    LABEL_OS,
    LABEL_OVIRT_HOST,
    OUT_OF_SERVICE_VALUE,
    OWNED_LABEL_PREFIXES,
    RUNNING_STATUSES,
    TAINT_MAINTENANCE,
    TAINT_NOT_READY,
    TAINT_OUT_OF_SERVICE,
    TAINT_SHUTDOWN,
    Action,
    ActionKind,
    NodeAddress,
    NodeSpec,
    ObservedNode,
    Taint,
)

REASON_NODE_IP_NOT_FOUND = "ProvidedNodeIPNotFound"
REASON_NODE_IP_INVALID = "ProvidedNodeIPInvalid"
# A SKIP Warning on a node whose planning raised (a datum no rule foresaw): that node only, never the sweep.
REASON_UNPLANNABLE = "Unplannable"


def describe_owner(spec: NodeSpec) -> str:
    """``VM web1 (<id>)`` or ``host h1 (<id>)``: how messages name a node's VM or host."""
    return f"{'host' if spec.kind == KIND_HOST else 'VM'} {spec.vm_name} ({spec.vm_id})"


def who_key(key: str) -> str:
    """``VM <id>`` or ``host <id>`` for an owner key (:func:`.providerid.owner_key`)."""
    return f"host {key[len(providerid.HOST_KEY_PREFIX):]}" if providerid.is_host_key(key) else f"VM {key}"


def id_of_key(key: str) -> str:
    """The VM or host id of an owner key."""
    return key[len(providerid.HOST_KEY_PREFIX):] if providerid.is_host_key(key) else key


def node_action(
    kind: ActionKind, node: ObservedNode, spec: NodeSpec | None, reason: str, message: str, *,
    labels: tuple[tuple[str, str | None], ...] | None = None,
    annotations: tuple[tuple[str, str | None], ...] | None = None,
    taints: tuple[Taint, ...] | None = None,
    provider_id: str | None = None,
    addresses: tuple[NodeAddress, ...] | None = None,
    vm_id: str | None = None,
    warning: bool = False,
) -> Action:
    """An Action on an existing node, with the uid/resourceVersion it was planned against; it serves a host when
    its NodeSpec is a host's or (no NodeSpec: an absent owner) the node's providerID names a host."""
    host = spec.kind == KIND_HOST if spec else providerid.host_id_of(node.provider_id) is not None
    return Action(
        kind=kind, node=node.name, reason=reason, message=message, owner_kind=KIND_HOST if host else KIND_VM,
        vm_id=vm_id if vm_id is not None else (spec.vm_id if spec else None),
        uid=node.uid, resource_version=node.resource_version, spec=spec, labels=labels,
        annotations=annotations, taints=taints, provider_id=provider_id, addresses=addresses, warning=warning,
    )


SHUTDOWN_TAINT = Taint(key=TAINT_SHUTDOWN, effect="NoSchedule")
NOT_READY_TAINT = Taint(key=TAINT_NOT_READY, effect="NoSchedule")
MAINTENANCE_TAINT = Taint(key=TAINT_MAINTENANCE, effect="NoSchedule")
OUT_OF_SERVICE_TAINT = Taint(key=TAINT_OUT_OF_SERVICE, effect="NoExecute", value=OUT_OF_SERVICE_VALUE)

# Labels the kubelet sets and reconciles itself: we add them when missing, never overwrite them.
KUBELET_LABELS = frozenset(
    {LABEL_ARCH, LABEL_OS, LABEL_HOSTNAME, "beta.kubernetes.io/arch", "beta.kubernetes.io/os"}
)

_IP_TYPES = frozenset({"InternalIP", "ExternalIP"})


def has_ip(addresses: Iterable[NodeAddress]) -> bool:
    return any(a.type in _IP_TYPES for a in addresses)


def label_changes(node: ObservedNode, spec: NodeSpec) -> tuple[tuple[str, str | None], ...]:
    """The smallest label patch that brings ``node`` to ``spec`` (None removes a key), sorted by key."""
    current = node.label_map
    wanted = spec.label_map
    changes: dict[str, str | None] = {}
    for key, value in wanted.items():
        if key == LABEL_MANAGED_BY:
            continue
        if key in KUBELET_LABELS:
            if key not in current:
                changes[key] = value
        elif current.get(key) != value:
            changes[key] = value
    # only the host label goes when no longer produced, and only when the VM is down or suspended: a running
    # VM has a host and every VM a cluster, so an answer without them is incomplete, not news
    for where in (LABEL_OVIRT_HOST, LABEL_HOST_ID):
        if spec.shutdown and where in current and where not in wanted:
            changes[where] = None
    # the labels under our own prefixes (tags, affinity labels: core/metadata.py) that are no longer derived go,
    # except under a prefix the NodeSpec could not derive this sweep (an unknown [nodes] tag_labels parent)
    for key in current:
        if key not in wanted and key.startswith(OWNED_LABEL_PREFIXES) \
                and not (spec.kept_label_prefixes and key.startswith(spec.kept_label_prefixes)):
            changes[key] = None
    return tuple(sorted(changes.items(), key=lambda kv: kv[0]))


def wanted_addresses(node: ObservedNode, spec: NodeSpec) -> tuple[NodeAddress, ...]:
    """The NodeSpec's addresses, plus the node's own Hostname address(es) when the NodeSpec has none
    (no FQDN from the engine: the kubelet's Hostname stays, as the upstream node controller keeps it)."""
    wanted = tuple(spec.addresses)
    if any(a.type == HOSTNAME for a in wanted):
        return wanted
    return wanted + tuple(a for a in node.addresses if a.type == HOSTNAME and a not in wanted)


def node_ip_addresses(node: ObservedNode, spec: NodeSpec) -> tuple[tuple[NodeAddress, ...], tuple[str, str] | None]:
    """:func:`wanted_addresses` with the kubelet's ``--node-ip`` applied (see :mod:`.addresses`), and
    ``None``; or the unchanged list and ``(reason, why)`` when the node IP cannot be applied (not an IP,
    or not among the addresses the engine reports)."""
    wanted = wanted_addresses(node, spec)
    raw = node.provided_node_ip
    if raw is None:
        return wanted, None
    try:
        provided = parse_node_ips(raw)
    except ValueError as exc:
        return wanted, (REASON_NODE_IP_INVALID,
                        f"its annotation {ANNOTATION_PROVIDED_NODE_IP}={raw!r} cannot be used: {exc}")
    try:
        return enforce_node_ips(provided, wanted), None
    except LookupError as exc:
        reported = ", ".join(a.address for a in spec.addresses if a.type in _IP_TYPES) or "none"
        return wanted, (REASON_NODE_IP_NOT_FOUND,
                        f"the kubelet's node IP {exc.args[0]} ({ANNOTATION_PROVIDED_NODE_IP}={raw}) is not among "
                        f"the IP addresses the engine reports for {describe_owner(spec)} ({reported})")


def address_change(node: ObservedNode, wanted: tuple[NodeAddress, ...], *,
                   trusted: bool = True) -> tuple[NodeAddress, ...] | None:
    """The complete new address list, or None to keep the node's (equal, a silent guest agent, or an engine
    answer with a garbled IP: ``trusted`` False)."""
    if not trusted:
        return None
    if not has_ip(wanted) and (has_ip(node.addresses) or not wanted):
        return None
    return wanted if wanted != tuple(node.addresses) else None


def has_taint(taints: Iterable[Taint], taint: Taint) -> bool:
    """A taint with ``taint``'s key and effect is in ``taints`` (whatever its value)."""
    return any(t.key == taint.key and t.effect == taint.effect for t in taints)


def without_taint(taints: Iterable[Taint], taint: Taint) -> list[Taint]:
    """``taints`` without every taint of ``taint``'s key and effect (whatever its value)."""
    return [t for t in taints if not (t.key == taint.key and t.effect == taint.effect)]


def shutdown_change(taints: list[Taint], spec: NodeSpec) -> list[Taint]:
    """``taints`` with the shutdown taint added (VM down/suspended) or removed (VM running)."""
    present = has_taint(taints, SHUTDOWN_TAINT)
    runs = spec.status in RUNNING_STATUSES
    if spec.shutdown and not runs and not present:
        return [*taints, SHUTDOWN_TAINT]
    if runs and not spec.shutdown and present:
        return without_taint(taints, SHUTDOWN_TAINT)
    return taints


def maintenance_change(taints: list[Taint], spec: NodeSpec) -> list[Taint]:
    """``taints`` with the maintenance taint added (host in maintenance) or removed (host up); VMs: unchanged."""
    if spec.kind != KIND_HOST:
        return taints
    present = has_taint(taints, MAINTENANCE_TAINT)
    if spec.maintenance and not present:
        return [*taints, MAINTENANCE_TAINT]
    if spec.running and present:
        return without_taint(taints, MAINTENANCE_TAINT)
    return taints


def taint_changes(before: list[Taint], after: list[Taint]) -> list[str]:
    """``added taint K:EFFECT to`` / ``removed taint K:EFFECT from`` for each rule's taint that changed."""
    parts = []
    for taint in (SHUTDOWN_TAINT, MAINTENANCE_TAINT, OUT_OF_SERVICE_TAINT):
        if has_taint(after, taint) != has_taint(before, taint):
            parts.append(f"added taint {taint.key}:{taint.effect} to" if has_taint(after, taint)
                         else f"removed taint {taint.key}:{taint.effect} from")
    return parts


def is_down(spec: NodeSpec) -> bool:
    """The engine says the VM (or host) is off: status ``down``, nothing else (not unknown, not_responding,
    suspended, migrating, ...). A host is ``down`` only after a power-management stop or fencing."""
    return spec.status == "down"


def not_ready_for(node: ObservedNode, now: float | None) -> float | None:
    """How long the node has been NotReady (Ready False or Unknown), in seconds; None when it is Ready, has no
    Ready condition or transition time, or the caller gave no clock."""
    if now is None or node.ready_since is None or node.ready_status not in ("False", "Unknown"):
        return None
    return now - node.ready_since


def out_of_service_change(taints: list[Taint], node: ObservedNode, spec: NodeSpec, *, after: float,
                          now: float | None) -> list[Taint]:
    """``taints`` with the out-of-service taint added or removed (KEP-2268, ``[nodes] out_of_service_taint``).

    Added when the node has been NotReady for at least ``after`` seconds and the engine read its VM (or host)
    ``down`` in two consecutive sweeps: this one, and the one recorded in ``ovirt.org/down-reads``. Removed when
    the VM runs again and the node is Ready. Anything else (an unknown status, a node Ready or NotReady for less,
    the first down read) changes nothing."""
    present = has_taint(taints, OUT_OF_SERVICE_TAINT)  # by key and effect: an operator's counts as present
    if not present and is_down(spec) and ANNOTATION_DOWN_READS in node.annotation_map:
        waited = not_ready_for(node, now)
        if waited is not None and waited >= after:
            return [*taints, OUT_OF_SERVICE_TAINT]
    return out_of_service_removal(taints, node, spec)


def out_of_service_removal(taints: list[Taint], node: ObservedNode, spec: NodeSpec) -> list[Taint]:
    """``taints`` without the out-of-service taint when the VM runs again and the node is Ready, else unchanged.
    Applied whether ``[nodes] out_of_service_taint`` is on or off: one put on while it was on (the runbook says to
    turn it off when an engine reads running VMs ``down``) must not keep a running, Ready node out of service."""
    if has_taint(taints, OUT_OF_SERVICE_TAINT) and spec.status in RUNNING_STATUSES and node.ready_status == "True":
        return without_taint(taints, OUT_OF_SERVICE_TAINT)
    return taints


def down_read_change(node: ObservedNode, spec: NodeSpec) -> tuple[tuple[str, str | None], ...] | None:
    """The ``ovirt.org/down-reads`` annotation change of this read: set when the engine reads the VM ``down`` and
    it is missing, removed when it reads anything else; None when it is as it should be."""
    present = ANNOTATION_DOWN_READS in node.annotation_map
    if is_down(spec) and not present:
        return ((ANNOTATION_DOWN_READS, "1"),)
    if not is_down(spec) and present:
        return ((ANNOTATION_DOWN_READS, None),)
    return None


