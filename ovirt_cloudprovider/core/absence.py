"""Absence and deletion: the absence counter, the deletions it leads to and the guards in front of them (pure).

The planner (:mod:`.plan`) calls :func:`plan_absence` once per full sweep, after it has matched every NodeSpec to
its node; this module decides what happens to the managed nodes whose VM or host the discovery did not return,
and when the absence counter of a node whose owner is present is reset. Memory between sweeps (the counter)
lives on the Nodes themselves, in the ``ovirt.org/absent-sweeps`` annotation, so it survives restarts, leader
changes and ``sync --once``. The rules:

CLEAR_ABSENT
    The node's VM is present (also when the VM is skipped) and the node carries the
    absence counter: the annotation is removed. This is done whatever the switches, and even on a
    node that is otherwise ambiguous, because a stale counter could later shorten the grace period.
    (:func:`clear_absent`; the planner asks for it after the writes of every node it syncs, and this module for
    every other managed node whose owner is present: ambiguous, unsynced or skipped.)

Deletion (``nodes.delete``), N = ``controller.delete_after_sweeps`` (at least 1)
    A managed node whose VM id is in neither ``desired.nodes`` nor ``desired.skipped`` is absent. With a
    counter ``c`` in ``ovirt.org/absent-sweeps`` (missing or not a non-negative integer: 0), this sweep is
    its ``c + 1``-th consecutive absent sweep: below N it is MARK_ABSENT (annotation set to ``c + 1``); at
    N or more it is DELETE (uid + resourceVersion preconditions). With N = 3: sweeps 1 and 2 mark,
    sweep 3 deletes. With ``nodes.delete`` off no node is marked or deleted. Safety:
    - inconsistent discovery: when the VM answer held two different records of one id (in any spelling,
      ``Desired.inconsistent``), no VM's node is counted absent in this sweep (nothing marked, nothing deleted,
      counters left as they are): an answer that contradicts itself is no evidence of an absence.
    - unknown filter tag: while ``[filters] vms`` names a tag (``tag=``) that the discovery's tag tree does not
      have (``Desired.vm_filter_unknown_tags``: a tag renamed or removed; the engine answers such a search with
      the other conditions' VMs, or none, without an error), no VM's node is counted absent: every absent VM's
      node gets BLOCK_DELETE ``UnknownFilterTag`` (Warning), nothing is marked or deleted, counters are left as
      they are. The VMs missing from that answer may be the renamed tag's, unchanged: their absence is data the
      controller does not understand, and it never deletes for that (no ``VMLeftFilter`` follows). The same
      for hosts with ``[filters] hosts`` (``host_filter_unknown_tags``, per kind as below). Decided: a VM
      really removed meanwhile waits too (telling it apart needs a GET per absent node per sweep, and a wrong
      guess deletes): its node stays until the filter names tags the engine has again (``check-config``, the
      Warning, ``filter_unknown_tags`` and ``/readyz`` say so), then its absence is counted and it goes after N
      sweeps as usual. Applied before the empty-discovery rule (it is the cause of such an empty answer). The
      controller logs one Warning line per sweep that blocked any.
    - empty discovery: when the snapshot holds no VM at all (no NodeSpec, no skipped VM), every absent
      node gets BLOCK_DELETE ``EmptyDiscovery`` and nothing is marked: an empty answer never advances a
      counter.
    - circuit breaker: when the DELETEs planned for absent VMs outnumber
      ``deletion_limit(managed)`` = ``max(1, floor(max_delete_fraction * managed))``, capped by
      ``max_delete_count`` when that is > 0 (``managed`` = managed nodes observed now), every one of them
      becomes BLOCK_DELETE ``CircuitBreaker`` and its counter is left as it is (at N - 1 or more, no
      write): deletion stays one sweep away and happens on the first sweep the breaker lets it through,
      or the counter resets if the VM comes back. Marking is not gated by the breaker: a mark only writes
      an annotation, is undone by CLEAR_ABSENT, and keeps the count visible; the breaker guards the step
      that cannot be undone.
    - vanished cluster: the zone of a managed node is its ``topology.kubernetes.io/zone`` label, else its
      ``ovirt.org/cluster`` label (a NodeSpec's likewise). When every managed node of one zone is absent in
      the same sweep while the discovery produced nodes of another zone (other clusters are present), that
      is an outage (an engine that lost part of its permissions answers exactly like this), not a
      decommission: their DELETEs become BLOCK_DELETE ``ClusterVanished`` (Warning), counters left as
      they are, until an operator confirms: ``[controller] allow_cluster_removal = true``, or the
      annotation ``ovirt.org/allow-cluster-removal=true`` on one node of that zone. Applied before the
      circuit breaker, which still counts those deletions: when all due deletions together exceed its limit,
      the ones not blocked as ClusterVanished are blocked as CircuitBreaker.

Confirmation: see :mod:`.confirm` (between planning and applying, the controller asks the engine about every
    VM and host whose node is due for deletion; a DELETE here is a candidate, not yet a decision). An unowned
    (legacy) node, which only the default instance counts absent (:mod:`.ownership`), is deleted there only when
    its VM or host is gone, never because it left the filter.

One bad datum affects one node: a node whose counter cannot be read counts 0 (only up to nine ASCII digits are a
    number), and a node whose absence rules raise gets a SKIP ``Unplannable`` Warning instead, neither marked nor
    deleted; the others go on.

oVirt hosts: a host's node is absent like a VM's (owner keys per kind, :func:`.providerid.owner_key`); the
    empty-discovery rule is per kind: an empty host answer blocks the deletion of every absent host's node (and an
    empty VM answer every VM's), whatever the other kind returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from fractions import Fraction

from . import providerid
from .changes import REASON_UNPLANNABLE, describe_owner, id_of_key, node_action, who_key
from .records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ALLOW_CLUSTER_REMOVAL,
    LABEL_OVIRT_CLUSTER,
    LABEL_ZONE,
    Action,
    ActionKind,
    Desired,
    NodeSpec,
    ObservedNode,
)
from .settings import ControllerConfig

# Action reasons (also the Event reasons).
REASON_ABSENT = "VMAbsent"
REASON_REAPPEARED = "VMReappeared"
REASON_DELETED = "DeletedNode"
REASON_EMPTY_DISCOVERY = "EmptyDiscovery"
REASON_CIRCUIT_BREAKER = "CircuitBreaker"
REASON_CLUSTER_VANISHED = "ClusterVanished"
REASON_UNKNOWN_FILTER_TAG = "UnknownFilterTag"


def deletion_limit(managed: int, controller: ControllerConfig) -> int:
    """How many nodes of absent VMs one sweep may delete before the circuit breaker blocks them all.

    ``max(1, floor(max_delete_fraction * managed))``, and at most ``max_delete_count`` when that is > 0.
    The fraction is taken at its decimal value (0.29 * 100 is 29, not 28.999...).
    """
    limit = max(1, math.floor(Fraction(str(controller.max_delete_fraction)) * managed))
    if controller.max_delete_count > 0:
        limit = min(limit, controller.max_delete_count)
    return limit


def absent_count(node: ObservedNode) -> int:
    """The node's absence counter; a missing or malformed value counts as 0 (counting starts over). Only up to
    nine ASCII digits are a number: ``²`` is a digit to str.isdigit(), not to int(), and int() refuses more than
    4,300 digits."""
    raw = node.annotation_map.get(ANNOTATION_ABSENT_SWEEPS, "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


def clear_absent(node: ObservedNode, spec: NodeSpec | None) -> Action | None:
    """CLEAR_ABSENT for a node whose owner is present and that carries the absence counter, else None."""
    if ANNOTATION_ABSENT_SWEEPS not in node.annotation_map:
        return None
    count = node.annotation_map[ANNOTATION_ABSENT_SWEEPS]
    key = providerid.owner_key_of(node.provider_id) or ""
    who = describe_owner(spec) if spec else who_key(key)
    return node_action(
        ActionKind.CLEAR_ABSENT, node, spec, REASON_REAPPEARED,
        f"{who} of node {node.name} is present again after {count} absent sweep(s); "
        "the absence count is reset.",
        annotations=((ANNOTATION_ABSENT_SWEEPS, None),),
        vm_id=None if spec else id_of_key(key),
    )


def plan_absence(
    desired: Desired, managed: Mapping[str, Sequence[ObservedNode]], *, handled: Set[str], delete: bool,
    controller: ControllerConfig,
) -> tuple[list[Action], list[str]]:
    """The absence actions of one full sweep, and the Plan's notes about them.

    ``managed``: owner key → the managed nodes with that providerID; ``handled``: the nodes the planner already
    cleared or deletes (a CLEAR_ABSENT or a placeholder's DELETE is planned for them); ``delete``: the
    ``nodes.delete`` switch. CLEAR_ABSENT for the other nodes of present owners, then MARK_ABSENT, DELETE and
    BLOCK_DELETE for the nodes of absent ones (see the module docstring).
    """
    return _Absence(desired, managed, controller).plan(handled, delete=delete)


class _Absence:
    """One run of the absence rules. Mutable inside, but only :meth:`plan`'s lists leave it."""

    def __init__(self, desired: Desired, managed: Mapping[str, Sequence[ObservedNode]],
                 controller: ControllerConfig) -> None:
        self.desired = desired
        self.managed = managed
        self.controller = controller
        self.managed_count = sum(len(v) for v in managed.values())
        self.actions: list[Action] = []
        self.notes: list[str] = []

    def plan(self, handled: Set[str], *, delete: bool) -> tuple[list[Action], list[str]]:
        present = {providerid.owner_key(s.kind, s.vm_id) for s in self.desired.nodes}
        present |= {providerid.owner_key(k.kind, k.vm_id) for k in self.desired.skipped}
        spec_by_id = {providerid.owner_key(s.kind, s.vm_id): s for s in self.desired.nodes}
        absent: list[tuple[str, ObservedNode]] = []
        for vm_id, claimed in sorted(self.managed.items()):
            for node in claimed:
                if vm_id not in present:
                    absent.append((vm_id, node))
                elif node.name not in handled:
                    try:  # one node's unforeseen datum skips that node, never the sweep
                        cleared = clear_absent(node, spec_by_id.get(vm_id))  # ambiguous, unsynced or skipped VM
                    except Exception as exc:
                        cleared = self._unplannable(node, vm_id, exc)
                    if cleared is not None:
                        self.actions.append(cleared)
        absent = self._countable(absent)
        if absent and delete:
            absent = self._understood(absent)
        if absent and delete:
            self._absent(absent, present)
        return self.actions, self.notes

    @staticmethod
    def _unplannable(node: ObservedNode, key: str, exc: Exception) -> Action:
        """A SKIP Warning on ``node``, whose absence rules raised: it is left as it is this sweep."""
        detail = " ".join(str(exc).split())[:200]
        return node_action(ActionKind.SKIP, node, None, REASON_UNPLANNABLE,
                           f"Node {node.name} is skipped this sweep: its absence could not be planned "
                           f"({type(exc).__name__}: {detail}); it is left as it is.", vm_id=id_of_key(key),
                           warning=True)

    def _countable(self, absent: list[tuple[str, ObservedNode]]) -> list[tuple[str, ObservedNode]]:
        """``absent`` without the VMs' nodes when the VM answer was inconsistent (no absence counted)."""
        if not self.desired.inconsistent or all(providerid.is_host_key(k) for k, _ in absent):
            return absent
        self.notes.append("InconsistentDiscovery: the engine's VM answer held two different VMs of one id; no "
                          "VM's node is counted absent in this sweep")
        return [(key, node) for key, node in absent if providerid.is_host_key(key)]

    def _understood(self, absent: list[tuple[str, ObservedNode]]) -> list[tuple[str, ObservedNode]]:
        """``absent`` without the nodes of a kind whose filter names a tag the engine does not have: those are
        blocked (``UnknownFilterTag``), neither marked nor deleted."""
        kept = absent
        for host_kind, tags, section in ((False, self.desired.vm_filter_unknown_tags, "[filters] vms"),
                                         (True, self.desired.host_filter_unknown_tags, "[filters] hosts")):
            blocked = [(key, node) for key, node in kept if providerid.is_host_key(key) == host_kind]
            if not tags or not blocked:
                continue
            named = ", ".join(repr(t) for t in tags)
            things = "hosts" if host_kind else "VMs"
            self.notes.append(f"{REASON_UNKNOWN_FILTER_TAG}: {section} names tag(s) {named} that the engine does not "
                              f"have; {len(blocked)} absent node(s) not counted absent")
            for key, node in blocked:
                self._block(node, id_of_key(key), REASON_UNKNOWN_FILTER_TAG,
                            f"Deletion of node {node.name} ({who_key(key)}) is blocked: {section} names tag(s) "
                            f"{named} that the engine does not have (renamed or removed?), so {things} missing "
                            "from its answer may only be the ones that tag selected; their absence is not counted "
                            "until the filter names tags the engine has.")
            kept = [(key, node) for key, node in kept if providerid.is_host_key(key) != host_kind]
        return kept

    def _absent(self, absent: list[tuple[str, ObservedNode]], present: set[str]) -> None:
        n = max(1, self.controller.delete_after_sweeps)
        managed = self.managed_count
        present_kinds = {providerid.is_host_key(key) for key in present}
        for host_kind in sorted({providerid.is_host_key(key) for key, _ in absent} - present_kinds):
            things = "hosts" if host_kind else "VMs"  # the empty-discovery rule is per kind
            self.notes.append(f"EmptyDiscovery: the discovery returned no {things} while {managed} managed "
                              "node(s) exist; no node is marked or deleted")
            for vm_id, node in absent:
                if providerid.is_host_key(vm_id) == host_kind:
                    self._block(node, id_of_key(vm_id), REASON_EMPTY_DISCOVERY,
                                f"Deletion of node {node.name} ({who_key(vm_id)}) is blocked: the discovery "
                                f"returned no {things} while {managed} managed node(s) exist, so absence is "
                                "not counted.")
        absent = [(key, node) for key, node in absent if providerid.is_host_key(key) in present_kinds]
        if not absent:
            return
        due: list[tuple[str, ObservedNode, int]] = []
        for vm_id, node in absent:
            try:  # a node whose absence cannot be counted is neither marked nor deleted; the others go on
                count = absent_count(node) + 1
                if count >= n:
                    due.append((vm_id, node, count))
                    continue
                self.actions.append(node_action(
                    ActionKind.MARK_ABSENT, node, None, REASON_ABSENT,
                    f"{who_key(vm_id)} of node {node.name} was absent from {count} consecutive successful "
                    f"sweep(s); the node is deleted at {n}.",
                    annotations=((ANNOTATION_ABSENT_SWEEPS, str(count)),), vm_id=id_of_key(vm_id),
                ))
            except Exception as exc:
                self.actions.append(self._unplannable(node, vm_id, exc))
        # the breaker counts every due deletion, those of a vanished cluster too (blocking them must not let the
        # rest of a burst through)
        wanted = len(due)
        due = self._vanished_clusters(absent, due)
        limit = deletion_limit(managed, self.controller)
        if wanted > limit:
            self.notes.append(f"CircuitBreaker: {wanted} of {managed} managed node(s) would be deleted at "
                              f"once, more than the limit of {limit}; all {wanted} deletions blocked")
            for vm_id, node, count in due:
                self._block(node, id_of_key(vm_id), REASON_CIRCUIT_BREAKER,
                            f"Deletion of node {node.name} ({who_key(vm_id)}, absent from {count} consecutive "
                            f"sweeps) is blocked by the circuit breaker: {wanted} of {managed} managed "
                            f"nodes would be deleted at once, more than the limit of {limit} "
                            f"(max_delete_fraction={self.controller.max_delete_fraction}, "
                            f"max_delete_count={self.controller.max_delete_count}).")
            return
        for vm_id, node, count in due:
            self.actions.append(node_action(
                ActionKind.DELETE, node, None, REASON_DELETED,
                f"Deleting node {node.name}: {who_key(vm_id)} was absent from {count} consecutive successful "
                f"sweeps (threshold {n}).", vm_id=id_of_key(vm_id),
            ))

    def _vanished_clusters(self, absent: list[tuple[str, ObservedNode]],
                           due: list[tuple[str, ObservedNode, int]]) -> list[tuple[str, ObservedNode, int]]:
        """Block the DELETEs of zones whose every managed node is absent while other zones are present."""
        if self.controller.allow_cluster_removal or not due:
            return due
        zones: dict[str, list[ObservedNode]] = {}
        for claimed in self.managed.values():
            for node in claimed:
                zone = _zone(node.label_map)
                if zone:
                    zones.setdefault(zone, []).append(node)
        absent_names = {node.name for _, node in absent}
        present_zones = {z for z in (_zone(s.label_map) for s in self.desired.nodes) if z}
        vanished = {z for z, members in zones.items()
                    if all(n.name in absent_names for n in members) and (present_zones - {z})
                    and not any(n.annotation_map.get(ANNOTATION_ALLOW_CLUSTER_REMOVAL, "").strip().lower() == "true"
                                for n in members)}
        if not vanished:
            return due
        kept: list[tuple[str, ObservedNode, int]] = []
        for vm_id, node, count in due:
            zone = _zone(node.label_map)
            if zone not in vanished:
                kept.append((vm_id, node, count))
                continue
            total = len(zones[zone])
            self._block(node, id_of_key(vm_id), REASON_CLUSTER_VANISHED,
                        f"Deletion of node {node.name} ({who_key(vm_id)}, absent from {count} consecutive sweeps) is "
                        f"blocked: all {total} managed node(s) of zone {zone} are absent while other zones are "
                        "present, which looks like an engine outage or lost permissions, not a decommission. "
                        f"To confirm, annotate one node of the zone {ANNOTATION_ALLOW_CLUSTER_REMOVAL}=true or set "
                        "[controller] allow_cluster_removal = true.")
        for zone in sorted(vanished):
            self.notes.append(f"ClusterVanished: every managed node of zone {zone} is absent while other zones "
                              "are present; their deletions are blocked until an operator confirms")
        return kept

    def _block(self, node: ObservedNode, vm_id: str, reason: str, message: str) -> None:
        self.actions.append(node_action(ActionKind.BLOCK_DELETE, node, None, reason, message, vm_id=vm_id,
                                        warning=True))


def _zone(labels: Mapping[str, str | None]) -> str | None:
    """A node's (or NodeSpec's) oVirt cluster for the vanished-cluster rule: zone label, else ovirt.org/cluster."""
    return labels.get(LABEL_ZONE) or labels.get(LABEL_OVIRT_CLUSTER) or None
