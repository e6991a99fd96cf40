"""Which controller instance a Node belongs to (pure): one owner per node, and an instance touches only its own.

Several instances of the controller may run in one cluster: one per oVirt engine (one cluster spanning several
engines), or several against one engine with different filters (one for the VMs ``tag=kubernetes``, one for the
hypervisors ``hosts = cluster=east-a``). Each has a name (``[controller] instance``, a DNS label, default
``ovirt-cloudprovider``; its Lease is named after it) and an engine (the host, and a port other than the
scheme's default, of ``[connection] uri``: never user info, never anything secret). Together they are its
:class:`Owner`, written on every node it registers or initializes, in the one create that registers and in the
initialization patch, as the annotations ``ovirt.org/owner`` (the instance) and ``ovirt.org/engine``.

:func:`partition` sorts the observed nodes for the planner:

ours
    ``ovirt.org/owner`` and ``ovirt.org/engine`` are this instance's name and engine: the planner's rules apply
    (sync, count absent, delete).
others
    any other owner, or the same name with another engine, or an owner without an engine: never counted absent,
    deleted, tainted, relabelled, rewritten or adopted. A NodeSpec whose name such a node holds is not registered
    (``NodeNameConflict``), and one whose VM or host such a node carries in its providerID gets no node from this
    instance (``NodeOwnedByOtherInstance``, a Warning log line); both are SKIPs that write nothing.
unowned
    no ``ovirt.org/owner``: kubelet nodes waiting for initialization, foreign nodes (another providerID), and the
    nodes of releases before owners were recorded (*legacy*: an ``ovirt://`` providerID, no owner).

Upgrade: how legacy nodes get an owner without a window in which they can be deleted
    - Adoption needs positive evidence: a legacy node is adopted (owner and engine written) only by an instance
      whose own successful discovery holds the node's VM or host, i.e. when the planner matches the node to a
      NodeSpec by its providerID. The owner annotations travel in the node's first write of that sweep, which
      carries the node's resourceVersion as a precondition (an adoption never overwrites a concurrent one: two
      instances racing for one node, only the first write lands, the other gets 409 and sees an owned node).
    - Absence of a legacy node counts only for the instance named ``ovirt-cloudprovider`` (the default:
      :data:`DEFAULT_INSTANCE`), because before owners existed only one instance could run in a cluster, and the
      upgrade of that single instance keeps its name. So a single-instance upgrade keeps working unchanged: its
      present nodes are adopted in its first sweep, the nodes of VMs deleted meanwhile still go after
      ``delete_after_sweeps`` sweeps and the engine's confirmation. An instance with another name never counts a
      legacy node absent, so a new instance (another filter, another engine) can never delete the old nodes,
      whenever it starts, even before the upgraded default instance has adopted them.
    - And the default instance deletes a legacy node only when its VM or host is gone (the engine's own 404
      and the search narrowed to it empty: :mod:`.confirm`), never because it left the filter (``VMLeftFilter``,
      ``HostLeftFilter`` need an owner recorded): when the upgrade splits the filter, the VMs and hosts that
      move to a new instance still exist, so their nodes wait, whichever instance starts first, until the new
      instance adopts them. A legacy node whose VM left every filter stays (a ``DeletionUnconfirmed`` Warning
      each sweep) until an operator deletes it.
    - Hence the one rule for operators: every additional instance gets its own name (a second engine's instance
      too). Two instances with the default name in one namespace share one Lease, so only one of them runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .records import ANNOTATION_ENGINE, ANNOTATION_OWNER, ObservedNode
from .settings import DEFAULT_INSTANCE

# a SKIP reason: the NodeSpec's VM or host has a node of another instance
REASON_OWNED_ELSEWHERE = "NodeOwnedByOtherInstance"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def valid_instance(name: str) -> bool:
    """An instance name is a DNS label (RFC 1123): it names the Lease and appears in annotations and logs."""
    return bool(_DNS_LABEL.fullmatch(name))


@dataclass(frozen=True, slots=True)
class Owner:
    """This instance's identity: its name and the engine it discovers from (``host[:port]``)."""

    instance: str
    engine: str

    @property
    def claims_legacy(self) -> bool:
        """Whether nodes without an owner (the legacy ones) count absent for this instance: only the default."""
        return self.instance == DEFAULT_INSTANCE

    @property
    def annotations(self) -> tuple[tuple[str, str], ...]:
        """The annotations that record this owner on a node."""
        return ((ANNOTATION_ENGINE, self.engine), (ANNOTATION_OWNER, self.instance))

    def describe(self) -> str:
        return f"instance {self.instance!r} of engine {self.engine!r}"

    def adoption(self, node: ObservedNode) -> tuple[tuple[str, str | None], ...] | None:
        """The annotation writes that make an unowned (or our own, incompletely annotated) node ours; None when
        it already records this owner."""
        have = node.annotation_map
        changes = tuple((k, v) for k, v in self.annotations if have.get(k) != v)
        return changes or None


def recorded_owner(node: ObservedNode) -> tuple[str, str | None] | None:
    """The node's recorded (instance, engine), or None when it records no owner."""
    have = node.annotation_map
    instance = have.get(ANNOTATION_OWNER)
    if instance is None:
        return None
    return instance, have.get(ANNOTATION_ENGINE)


def describe(node: ObservedNode) -> str:
    """``instance X of engine Y``, for messages."""
    owner = recorded_owner(node)
    if owner is None:
        return "no instance"
    instance, engine = owner
    return f"instance {instance!r} of engine {engine!r}" if engine is not None else f"instance {instance!r}"


@dataclass(frozen=True, slots=True)
class Partition:
    """The observed nodes by owner (each in its input order)."""

    ours: tuple[ObservedNode, ...] = ()
    unowned: tuple[ObservedNode, ...] = ()
    others: tuple[ObservedNode, ...] = ()
    # Nodes whose owner could not be read (an annotation no rule foresaw), each with the error: touched by no one,
    # as if another instance owned them; the planner says so with a SKIP Warning.
    unreadable: tuple[tuple[ObservedNode, Exception], ...] = ()


def is_ours(node: ObservedNode, owner: Owner) -> bool:
    return recorded_owner(node) == (owner.instance, owner.engine)


def unowned_names(observed: Iterable[ObservedNode]) -> frozenset[str]:
    """The names of the nodes of ``observed`` that record no owner (legacy, kubelet, foreign), and of those
    whose owner cannot be read (the stricter answer: such a node is deleted only when its VM or host is gone;
    :func:`partition` holds it anyway)."""
    names: set[str] = set()
    for node in observed:
        try:
            unowned = recorded_owner(node) is None
        except Exception:  # one node's datum never stops the sweep (rule 4)
            unowned = True
        if unowned:
            names.add(node.name)
    return frozenset(names)


def partition(observed: Iterable[ObservedNode], owner: Owner) -> Partition:
    """Split ``observed`` into this instance's nodes, unowned nodes and other instances' nodes."""
    ours: list[ObservedNode] = []
    unowned: list[ObservedNode] = []
    others: list[ObservedNode] = []
    unreadable: list[tuple[ObservedNode, Exception]] = []
    for node in observed:
        try:
            recorded = recorded_owner(node)
        except Exception as exc:  # one node's datum never stops the sweep (rule 4): that node is left alone
            unreadable.append((node, exc))
            continue
        if recorded is None:
            unowned.append(node)
        elif recorded == (owner.instance, owner.engine):
            ours.append(node)
        else:
            others.append(node)
    return Partition(ours=tuple(ours), unowned=tuple(unowned), others=tuple(others), unreadable=tuple(unreadable))


__all__ = ["REASON_OWNED_ELSEWHERE", "Owner", "Partition", "describe", "is_ours", "partition", "recorded_owner",
           "unowned_names", "valid_instance"]
