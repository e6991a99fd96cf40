"""The loop: when to sweep, and one sweep from discovery to applied Actions.

One sweep (:func:`run_sweep`) is the pipeline of ARCHITECTURE.md: ``EngineClient.discover`` → ``desired_nodes``
→ ``plan_sync`` (against the node cache) → ``NodeWriter`` (a bounded, rate-limited pool; each action only
while this replica may write). :class:`Controller` runs sweeps when :class:`~.core.schedule.Schedule` says
(its docstring has the rules; in short):

- every ``sync_interval`` seconds, jittered by up to 10 %;
- early, when the engine reports a relevant event (VM started, stopped, removed, migrated, renamed,
  tagged; with ``[filters] hosts`` a host's status changed or it was removed) or the node watch shows a node
  that waits for initialization. When the events only say that a few known VMs started, stopped, were
  suspended or migrated, or that known hosts changed status (maintenance, activation, failure, up), the early
  sweep is *targeted*: those VMs and hosts are fetched by id (one GET each instead of the paged searches; a VM
  whose record cannot tell whether it still matches the filter: one search narrowed to it; a host: always
  ``[filters] hosts`` narrowed to it; one that may have left its filter makes it a full sweep, with no write)
  and only their nodes are planned (core/targeted.py: at the cost of those few, not of the fleet; the whole
  fleet when it cannot prove the same answer), with deletion off; anything else (a removal, a tag change,
  missed events) is a full sweep. A node that waits for initialization (a kubelet joining) whose systemUUID
  names a VM or host of the last discovery is a targeted sweep of those too (core/targeted.py
  ``Fleet.joining``): refreshed when few, planned from the last discovery in a burst (core/schedule.py), and a
  VM whose record was too old for the kubelet's ``--node-ip`` is refreshed after; any other is a full sweep.
  Kubelets that join while a targeted sweep applies are planned by it, from its index, whenever its writer's
  queued nodes' first writes have run out (its extension: ``Schedule.take_joining``), not after it and a
  debounce. A kubelet's node whose initializing patch met a conflict (409) and which still waits is a joining
  trigger again after that sweep when the node cache has seen it change since planning (a change the node
  watch does not report, such as its status' image list, would otherwise leave it to the periodic sweep);
- never two sweeps at once (one thread sweeps), none while this replica does not lead, and after a failure
  only after a jittered exponential backoff (``backoff_base`` doubling up to ``backoff_max``); the engine
  event poller backs off the same way.

Every engine request of one sweep (full or targeted, the confirmations of deletions included) carries one
``Correlation-Id`` header, a new one per sweep, logged with the sweep's lines (``correlation_id``): the engine
writes it into engine.log, so an engine admin can find our calls. A full sweep also checks its filter against
the engine's tag tree (core/vmfilter.unknown_tags): a ``tag=`` of ``[filters] vms`` or ``[filters] hosts`` naming a
tag the engine does not have (it matches nothing, without an error) is a Warning line, the metric
``filter_unknown_tags`` and a ``/readyz`` reason; meanwhile no node of that kind is counted absent (core/absence.py,
``UnknownFilterTag``), and a sweep that blocked any says so in one more Warning line.

Lifecycle: see :class:`Controller`.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

from .core import schedule
from .core.absence import REASON_UNKNOWN_FILTER_TAG
from .core.confirm import confirm_deletions, confirm_host_deletions, pending_deletions, pending_host_deletions
from .core.desired import desired_nodes
from .core.naming import skip_code
from .core.ownership import unowned_names
from .core.plan import REASON_OUT_OF_SERVICE_TAINTED, REASON_OUT_OF_SERVICE_UNTAINTED, plan_sync
from .core.providerid import normalize_vm_id
from .core.records import (
    KIND_HOST,
    KIND_VM,
    Action,
    ActionKind,
    ApplyResult,
    Desired,
    Host,
    ObservedNode,
    Plan,
    Snapshot,
    VirtualMachine,
)
from .core.schedule import StepKind
from .core.settings import Config
from .core.targeted import Fleet, fleet_of, plan_targeted, restrict, stale_for, targets_of
from .core.vmfilter import filter_match, narrowed, unknown_tags
from .engine.errors import EngineError, EngineEvent, EngineLoginBackoff
from .health import HealthState
from .logs import kv, one_line
from .metrics import VM_STATUSES, Metrics, reason_label

log = logging.getLogger(__name__)


class _Engine(Protocol):
    def discover(self, query: str) -> Snapshot: ...
    def fetch_vms(self, vm_ids: Sequence[str]) -> dict[str, VirtualMachine | None]: ...
    def vm_ids_matching(self, query: str) -> frozenset[str]: ...
    def fetch_hosts(self, host_ids: Sequence[str]) -> dict[str, Host | None]: ...
    def host_ids_matching(self, query: str) -> frozenset[str]: ...
    def last_event_index(self) -> int: ...
    def events_since(self, index: int) -> tuple[int, Sequence[EngineEvent]]: ...
    def reset(self) -> None: ...
    def correlated(self, correlation_id: str) -> AbstractContextManager[None]: ...


class _Cache(Protocol):
    @property
    def synced(self) -> bool: ...
    def nodes(self) -> tuple[ObservedNode, ...]: ...


class _Writer(Protocol):
    def apply(self, actions: Sequence[Action], *, may_write: Callable[[], bool] | None = None,
              more: Callable[[], Sequence[Action]] | None = None) -> ApplyResult: ...


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did. ``ok`` is False when discovery failed or any write failed; a write the API refused for
    one node (``refused``: 400, 422) skips that node and fails nothing: one bad node never backs off the fleet."""

    ok: bool
    plan: Plan | None = None
    snapshot: Snapshot | None = None
    error: str | None = None
    applied: int = 0
    failed: int = 0
    conflicts: int = 0
    refused: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    # the discovery indexed for targeted sweeps (core/targeted.py): set by every sweep that planned
    fleet: Fleet | None = None


def new_correlation_id() -> str:
    """A sweep's Correlation-Id (the engine logs it with every request of the sweep)."""
    return f"ovirt-cloudprovider-{uuid.uuid4()}"


def unknown_filter_tags(config: Config, snapshot: Snapshot) -> tuple[str, ...]:
    """The tags the ``[filters] vms`` and ``[filters] hosts`` searches (and ``[nodes] tag_labels``) name that the
    engine's tag tree, when the discovery listed it, does not have (each once)."""
    if snapshot.tags is None:
        return ()
    names = [t.name for t in snapshot.tags]
    missing = [*unknown_tags(config.filters.vms, names), *unknown_tags(config.filters.hosts or "", names)]
    parent = config.nodes.tag_labels
    if parent is not None and parent not in names:
        missing.append(parent)
    return tuple(dict.fromkeys(missing))


def run_sweep(*, config: Config, engine: _Engine, nodes: Sequence[ObservedNode], writer: _Writer | None,
              metrics: Metrics | None = None, may_write: Callable[[], bool] = lambda: True,
              health: HealthState | None = None) -> SweepReport:
    """Discover, plan and (unless ``writer`` is None: dry run) apply one sweep.

    Nothing is planned after a failed discovery, so a failure never deletes, taints or rewrites a node.
    ``may_write`` is asked before every action: a replica that lost its lease stops at once.
    """
    correlation_id = new_correlation_id()
    with engine.correlated(correlation_id):
        return _sweep(config=config, engine=engine, nodes=nodes, writer=writer, metrics=metrics,
                      may_write=may_write, health=health, correlation_id=correlation_id)


def _check_filter_tags(config: Config, snapshot: Snapshot, metrics: Metrics | None,
                       health: HealthState | None) -> None:
    missing = unknown_filter_tags(config, snapshot)
    if missing:
        log.warning(f"the engine has no tag {', '.join(repr(t) for t in missing)}: a filter naming it matches "
                    "no VM", extra=kv(tags=",".join(missing), filter=config.filters.vms,
                                      hosts_filter=config.filters.hosts, tag_labels=config.nodes.tag_labels))
    if metrics:
        metrics.filter_unknown_tags.set(len(missing))
    if health:
        health.filter_problem(f"the engine has no tag {', '.join(repr(t) for t in missing)} (named in [filters] "
                              "vms, [filters] hosts or [nodes] tag_labels)" if missing else None)


def _log_unknown_tag_blocks(plan: Plan, desired: Desired, correlation_id: str) -> None:
    """One Warning line for a sweep whose filter names a tag the engine does not have and that therefore counted
    no absence of that kind (core/absence.py); the blocked nodes' own lines are at the same level."""
    blocked = Counter(a.owner_kind for a in plan.actions
                      if a.kind is ActionKind.BLOCK_DELETE and a.reason == REASON_UNKNOWN_FILTER_TAG)
    if blocked:
        tags = dict.fromkeys((*desired.vm_filter_unknown_tags, *desired.host_filter_unknown_tags))
        log.warning("deletions blocked: the filter names a tag the engine does not have",
                    extra=kv(tags=",".join(tags), vm_nodes=blocked[KIND_VM], host_nodes=blocked[KIND_HOST],
                             reason=REASON_UNKNOWN_FILTER_TAG, correlation_id=correlation_id))


def _sweep(*, config: Config, engine: _Engine, nodes: Sequence[ObservedNode], writer: _Writer | None,
           metrics: Metrics | None, may_write: Callable[[], bool], health: HealthState | None,
           correlation_id: str) -> SweepReport:
    start = time.monotonic()
    if health:
        health.sweep_started()
    try:
        log.info("sweep started", extra=kv(query=config.filters.vms or "<all VMs>", correlation_id=correlation_id))
        try:
            snapshot = engine.discover(config.filters.vms)
        except EngineError as exc:
            if health:
                health.engine_failed(str(exc))
            seconds = time.monotonic() - start
            log.error("sweep failed: discovery did not complete; no node was changed",
                      extra=kv(error=str(exc), seconds=round(seconds, 3), correlation_id=correlation_id))
            if metrics:
                metrics.syncs_total.labels("failure").inc()
                metrics.sync_duration_seconds.observe(seconds)
            return SweepReport(ok=False, error=str(exc), seconds=seconds)
        if health:
            health.engine_ok()
        _check_filter_tags(config, snapshot, metrics, health)
        desired = desired_nodes(snapshot, config.nodes)
        plan = plan_sync(desired, nodes, nodes=config.nodes, controller=config.controller, now=time.time())
        _log_unknown_tag_blocks(plan, desired, correlation_id)
        plan = _confirm_deletions(plan, engine, config.filters.vms, config.filters.hosts,
                                  unowned=unowned_names(nodes))
        report = replace(_apply(plan, snapshot, writer=writer, may_write=may_write, start=start),
                         fleet=fleet_of(snapshot, desired, config.nodes))
        if metrics:
            _record(metrics, snapshot, desired, plan, ok=report.ok, seconds=report.seconds,
                    dry_run=writer is None)
        _log_report("sweep finished", report, correlation_id=correlation_id)
        return report
    finally:
        if health:
            health.sweep_finished()


def run_targeted_sweep(*, config: Config, engine: _Engine, base: Snapshot, vm_ids: Sequence[str],
                       nodes: Sequence[ObservedNode], writer: _Writer, metrics: Metrics | None = None,
                       may_write: Callable[[], bool] = lambda: True, health: HealthState | None = None,
                       host_ids: Sequence[str] = (), fleet: Fleet | None = None,
                       cached_vm_ids: Sequence[str] = (), cached_host_ids: Sequence[str] = (),
                       more: Callable[[Fleet], Sequence[Action]] | None = None) -> SweepReport:
    """Refresh only ``vm_ids`` and ``host_ids`` (of ``base``, the last complete discovery; ``fleet`` its index
    when the caller has it) and apply the actions for their nodes and for those of ``cached_vm_ids`` and
    ``cached_host_ids`` (a burst of joining kubelets), which are planned from ``base`` as it is. Deletion is off
    here (it needs complete discoveries); a VM or host the engine no longer has keeps its old record until the
    next full sweep. The last discovery's membership is no evidence that a VM still matches the filter: a
    refreshed VM whose record does not match, or cannot tell and the search narrowed to it does not return it,
    and a refreshed host that ``[filters] hosts`` narrowed to it does not return, fail the targeted sweep without
    a write (the controller then sweeps in full).

    The plan is that of core/targeted.py, which costs the targets, not the fleet; where it cannot prove its
    answer equal to the whole plan filtered to the targets, the whole fleet is planned and filtered. ``more``
    (the controller's extension: kubelets that joined meanwhile) is asked, with the updated index, for further
    actions whenever the writer's queued nodes' first writes have run out; they are applied and counted with
    this sweep's. Returns a report whose ``snapshot`` is ``base`` updated (and ``fleet`` its index)."""
    correlation_id = new_correlation_id()
    with engine.correlated(correlation_id):
        return _targeted_sweep(config=config, engine=engine, base=base, vm_ids=vm_ids, nodes=nodes, writer=writer,
                               metrics=metrics, may_write=may_write, health=health, host_ids=host_ids, fleet=fleet,
                               cached_vm_ids=cached_vm_ids, cached_host_ids=cached_host_ids, more=more,
                               correlation_id=correlation_id)


def _targeted_sweep(*, config: Config, engine: _Engine, base: Snapshot, vm_ids: Sequence[str],
                    nodes: Sequence[ObservedNode], writer: _Writer, metrics: Metrics | None,
                    may_write: Callable[[], bool], health: HealthState | None, host_ids: Sequence[str],
                    fleet: Fleet | None, cached_vm_ids: Sequence[str], cached_host_ids: Sequence[str],
                    more: Callable[[Fleet], Sequence[Action]] | None, correlation_id: str) -> SweepReport:
    start = time.monotonic()
    if health:
        health.sweep_started()
    try:
        try:
            fresh = engine.fetch_vms(vm_ids) if vm_ids else {}
            fresh_hosts = engine.fetch_hosts(host_ids) if host_ids else {}
            outside = _outside_the_filter(engine, config.filters.vms, fresh)
            outside += _hosts_outside_the_filter(engine, config.filters.hosts, fresh_hosts)
        except EngineError as exc:
            if health:
                health.engine_failed(str(exc))
            log.warning("targeted sweep failed; no node was changed",
                        extra=kv(error=str(exc), correlation_id=correlation_id))
            if metrics:
                metrics.targeted_syncs_total.labels("failure").inc()
            return SweepReport(ok=False, error=str(exc), seconds=time.monotonic() - start)
        if health:
            health.engine_ok()
        if outside:  # the last full discovery's membership is no evidence: a full sweep decides, nothing is written
            error = f"{', '.join(outside)} may no longer match the filter; a full sweep decides"
            log.info("targeted sweep not applied; no node was changed", extra=kv(error=error))
            if metrics:
                metrics.targeted_syncs_total.labels("failure").inc()
            return SweepReport(ok=False, error=error, seconds=time.monotonic() - start)
        targets = targets_of([*vm_ids, *cached_vm_ids], [*host_ids, *cached_host_ids])
        updated = fleet.updated(fresh, fresh_hosts) if fleet is not None and fleet.snapshot is base else None
        now = time.time()  # the out-of-service rule's clock (how long a node has been NotReady)
        plan = plan_targeted(updated, targets, nodes, controller=config.controller, now=now) if updated else None
        whole = plan is None
        if plan is None or updated is None:  # not provably equal: the whole fleet, filtered
            snapshot = replace(base, vms=tuple(fresh.get(vm.id) or vm for vm in base.vms),
                               hosts=tuple(fresh_hosts.get(h.id) or h for h in base.hosts))
            desired = desired_nodes(snapshot, config.nodes)
            plan = restrict(plan_sync(desired, nodes, nodes=replace(config.nodes, delete=False),
                                      controller=config.controller, now=now), targets)
            updated = fleet_of(snapshot, desired, config.nodes)
        snapshot = updated.snapshot
        index = updated
        extended: list[int] = []

        def extension() -> Sequence[Action]:
            actions = more(index) if more is not None else ()
            extended.append(len(actions))
            return actions

        report = replace(_apply(plan, replace(snapshot, requests=len(fresh) + len(fresh_hosts)), writer=writer,
                                may_write=may_write, start=start, more=extension if more is not None else None),
                         fleet=updated)
        if metrics:
            _record_vms(metrics, snapshot)
            _record_out_of_service(metrics, plan)
            metrics.targeted_syncs_total.labels("success" if report.ok else "failure").inc()
        _log_report("targeted sweep finished", report, whole_fleet=whole, joined_meanwhile=sum(extended),
                    correlation_id=correlation_id)
        return report
    finally:
        if health:
            health.sweep_finished()


def _reasons(reasons: Sequence[str], shown: int = 5) -> str:
    """A sweep's triggers for its log line: the first few and how many more (a burst of kubelets is thousands)."""
    more = f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    return "; ".join(reasons[:shown]) + more


def _outside_the_filter(engine: _Engine, query: str, fresh: Mapping[str, VirtualMachine | None]) -> list[str]:
    """The refreshed VMs that may no longer match the filter ``query`` (issue 17, rule 6): the record clearly
    does not (core.vmfilter), or it cannot tell and the engine's search narrowed to the VM does not return it
    (one search request, no follow). A VM the engine no longer has keeps its old
    record (no deletion in a targeted sweep) and is not asked about."""
    outside: list[str] = []
    for vm_id, vm in fresh.items():
        if vm is None:
            continue
        match = filter_match(query, vm)
        if match is None:
            match = normalize_vm_id(vm_id) in engine.vm_ids_matching(narrowed(query, vm_id))
        if not match:
            outside.append(f"VM {vm_id} ({query!r})")
    return outside


def _hosts_outside_the_filter(engine: _Engine, query: str | None, fresh: Mapping[str, Host | None]) -> list[str]:
    """The refreshed hosts that may no longer match ``[filters] hosts`` (issue 17, rule 6, for hosts): the
    engine's host search narrowed to the host does not return it (one search request, ids only; a host record
    has no veto, see core/confirm.py). A host the engine no longer has keeps its old record, as for VMs."""
    outside: list[str] = []
    for host_id, host in fresh.items():
        if host is None:
            continue
        if query is None or normalize_vm_id(host_id) not in engine.host_ids_matching(narrowed(query, host_id)):
            outside.append(f"host {host_id} ({query!r})")
    return outside


def _confirm_deletions(plan: Plan, engine: _Engine, query: str, host_query: str | None, *,
                       unowned: frozenset[str] = frozenset()) -> Plan:
    """Ask the engine about every VM and host whose node the plan deletes as absent (core.confirm): a GET by
    id, and, for one that is gone (the engine's own 404) or may have left the filter, its filter searched
    narrowed to it: two independent answers before a deletion. ``unowned``: the nodes that record no owner
    (deleted only when their VM or host is gone)."""
    plan = _confirm_host_deletions(plan, engine, host_query, unowned=unowned)
    vm_ids = pending_deletions(plan)
    if not vm_ids:
        return plan
    researched: set[str] = set()
    try:
        found = engine.fetch_vms(vm_ids)
        for vm_id, vm in found.items():
            if vm is None or filter_match(query, vm) is not True:
                # one light search, ids only (a VM it holds twice is returned too): never a discovery, which
                # would cost the lists and the host search and reset what the client keeps about the fleet
                researched |= engine.vm_ids_matching(narrowed(query, vm_id))
    except EngineError as exc:
        log.warning("could not confirm deletions; none is applied this sweep", extra=kv(error=str(exc)))
        return confirm_deletions(plan, query=query, found={}, error=str(exc))
    return confirm_deletions(plan, query=query, found=found, researched=frozenset(researched), unowned=unowned)


def _confirm_host_deletions(plan: Plan, engine: _Engine, query: str | None, *,
                            unowned: frozenset[str] = frozenset()) -> Plan:
    """Ask the engine about every host whose node the plan deletes as absent (core.confirm): a GET by id, and
    ``[filters] hosts`` searched narrowed to it (None: not searched, blocked)."""
    host_ids = pending_host_deletions(plan)
    if not host_ids:
        return plan
    researched: set[str] | None = None if query is None else set()
    try:
        found = engine.fetch_hosts(host_ids)
        for host_id in found:
            if query is not None and researched is not None:  # for a 404 too: the second answer
                researched |= engine.host_ids_matching(narrowed(query, host_id))
    except EngineError as exc:
        log.warning("could not confirm host deletions; none is applied this sweep", extra=kv(error=str(exc)))
        return confirm_host_deletions(plan, query=query or "", found={}, error=str(exc))
    return confirm_host_deletions(plan, query=query or "", found=found,
                                  researched=None if researched is None else frozenset(researched), unowned=unowned)


def _planned_versions(actions: Sequence[Action]) -> dict[str, str]:
    """The nodes of ``actions`` that initialize a node (a kubelet's), and the resourceVersion each was planned
    against."""
    return {a.node: a.resource_version for a in actions
            if a.kind is ActionKind.INITIALIZE and a.node and a.resource_version}


def _apply(plan: Plan, snapshot: Snapshot, *, writer: _Writer | None, may_write: Callable[[], bool],
           start: float, more: Callable[[], Sequence[Action]] | None = None) -> SweepReport:
    """Apply ``plan`` (``writer`` None: dry run); the writer asks ``may_write`` before each writing action, and
    ``more`` (when given) for further actions as it frees up."""
    counts = dict(Counter(a.kind.value for a in plan.actions))
    _log_plan(plan)
    applied = failed = conflicts = refused = 0
    interrupted = False
    if writer is not None and (plan.actions or more is not None):
        result = writer.apply(plan.actions, may_write=may_write, more=more)
        applied, failed, conflicts, remaining = result.applied, result.failed, result.conflicts, result.interrupted
        refused = result.refused
        if remaining:
            interrupted = True
            log.warning("stopped applying actions: stopping, or this replica may no longer write",
                        extra=kv(remaining=remaining))
    ok = failed == 0 and not interrupted
    return SweepReport(ok=ok, plan=plan, snapshot=snapshot, applied=applied, failed=failed,
                       conflicts=conflicts, refused=refused, interrupted=interrupted, seconds=time.monotonic() - start,
                       counts=counts,
                       error=None if ok else f"{failed} action(s) failed" if failed else "interrupted")


def _log_report(message: str, report: SweepReport, **more: object) -> None:
    plan, snapshot = report.plan, report.snapshot
    assert plan is not None and snapshot is not None
    log.info(message, extra=kv(**more,
        ok=report.ok, vms=len(snapshot.vms), engine_requests=snapshot.requests, managed_nodes=plan.managed_nodes,
        actions=len(plan.actions), applied=report.applied, failed=report.failed, conflicts=report.conflicts,
        refused=report.refused,
        seconds=round(report.seconds, 3),
        **{f"n_{k.replace('-', '_')}": v for k, v in sorted(report.counts.items())}))


def _log_plan(plan: Plan) -> None:
    for a in plan.actions:
        # writes are logged once by the writer when applied; notices (blocked, ambiguous, skipped) here
        level = logging.WARNING if a.warning else logging.DEBUG
        log.log(level, "planned action", extra=kv(kind=a.kind.value, node=a.node, vm_id=a.vm_id,
                                                  reason=a.reason, message=a.message))


def _record_vms(metrics: Metrics, snapshot: Snapshot) -> None:
    """The VMs-by-status gauge, from the latest view of the fleet (full or targeted sweep)."""
    by_status = Counter(vm.status for vm in snapshot.vms)
    metrics.set_gauge(metrics.vms, {(status,): n for status, n in by_status.items()},
                      known=((s,) for s in VM_STATUSES))


def _record_out_of_service(metrics: Metrics, plan: Plan) -> None:
    for a in plan.actions:
        if a.reason in (REASON_OUT_OF_SERVICE_TAINTED, REASON_OUT_OF_SERVICE_UNTAINTED):
            change = "added" if a.reason == REASON_OUT_OF_SERVICE_TAINTED else "removed"
            metrics.out_of_service_taints_total.labels(change, a.owner_kind).inc()


def _record(metrics: Metrics, snapshot: Snapshot, desired: Desired, plan: Plan, *, ok: bool, seconds: float,
            dry_run: bool) -> None:
    _record_vms(metrics, snapshot)
    # VMs and hosts desired.py could not turn into a node (invalid-name, duplicate-name, no-fqdn, ...), and those
    # whose node name is taken by a node that is not theirs (node-name-conflict); a duplicate-name VM or host the
    # planner let keep its node (core/plan.py, contested names) is not skipped
    shown = {(a.owner_kind, a.vm_id) for a in plan.actions if a.kind is ActionKind.SKIP and not a.node}
    skipped = Counter((skip_code(s), s.kind) for s in desired.skipped if (s.kind, s.vm_id) in shown)
    skipped.update((reason_label(a.reason), a.owner_kind) for a in plan.actions
                   if a.kind is ActionKind.SKIP and a.node)
    metrics.set_gauge(metrics.skipped_vms, {k: n for k, n in skipped.items()}, known=metrics.known_skipped())
    if dry_run:
        return
    metrics.managed_nodes.set(plan.managed_nodes)
    metrics.managed_nodes_by_kind.labels(KIND_VM).set(plan.managed_nodes - plan.managed_hosts)
    metrics.managed_nodes_by_kind.labels(KIND_HOST).set(plan.managed_hosts)
    for a in plan.actions:
        if a.kind is ActionKind.BLOCK_DELETE:
            metrics.deletions_blocked_total.labels(reason_label(a.reason), a.owner_kind).inc()
        elif a.kind is ActionKind.AMBIGUOUS:
            metrics.ambiguous_matches_total.labels(a.owner_kind).inc()
    _record_out_of_service(metrics, plan)
    metrics.sync_duration_seconds.observe(seconds)
    metrics.syncs_total.labels("success" if ok else "failure").inc()
    if ok:
        metrics.last_successful_sync_timestamp_seconds.set(time.time())


# Engine events that only change a VM's status or host, or a host's status: its node can be refreshed alone.
# Anything else (removed, renamed/updated, tagged, untagged, events missed) may change which VMs or hosts match:
# a full sweep.
TARGETED_EVENT_KINDS = frozenset({"started", "stopped", "suspended", "migrated"})
TARGETED_HOST_EVENT_KINDS = frozenset({"host-failed", "host-detected", "host-maintenance", "host-activated",
                                       "host-stopped"})


@dataclass
class _Extension:
    """What a targeted sweep took (canonical VM and host ids), its extensions included, and which of those were
    planned from a record too old for their kubelet's ``--node-ip`` (core/targeted.py ``stale_for``)."""

    vm_ids: frozenset[str]
    host_ids: frozenset[str]
    stale: set[str] = field(default_factory=set)
    planned: dict[str, str] = field(default_factory=dict)  # the extensions' nodes: the resourceVersion planned


class _Leader(Protocol):
    @property
    def is_leader(self) -> bool: ...


class Controller:
    """Runs sweeps until stopped; *when* is decided by :class:`~.core.schedule.Schedule` (its docstring has the
    rules), this class only does what it says.

    Lifecycle: :meth:`run` blocks until ``stop`` is set. It starts the engine event poller thread, then loops:
    beat the liveness, look for rotated secret files, ask the schedule for the next step at the current
    monotonic time (with this replica's leadership, the node cache's sync state and the last complete discovery
    to tell whether targets are known), and execute it: a full or targeted sweep (then report its result and a
    fresh jitter to the schedule), or a wait that a trigger (:meth:`trigger`, called from the event poller, the
    node watch and the elector's threads) ends early. ``run`` returns within about a second of ``stop`` (a
    sweep in flight finishes its current request first; no action is applied after ``stop`` or after
    leadership is lost). The poller is a daemon thread that ends with ``stop`` too; it polls only while this
    replica leads, every ``event_poll_interval``, after a failure after the sweeps' backoff
    (:func:`~.core.schedule.poll_delay`).
    """

    def __init__(self, *, config: Config, engine: _Engine, cache: _Cache, writer: _Writer,
                 metrics: Metrics, health: HealthState, leader: _Leader | None = None,
                 backoff_base: float = 5.0, debounce: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.engine = engine
        self.cache = cache
        self.writer = writer
        self.metrics = metrics
        self.health = health
        self.leader = leader
        self.backoff_base = backoff_base
        self.debounce = debounce
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._engine_back = threading.Event()  # a full sweep reached the engine: a backing-off poller polls now
        self._lock = threading.Lock()  # guards the schedule and the event index (triggers come from other threads)
        self._schedule = schedule.Schedule(schedule.Timing(
            interval=config.controller.sync_interval, debounce=debounce, backoff_base=backoff_base,
            backoff_max=config.controller.backoff_max))
        self._snapshot: Snapshot | None = None  # the last complete discovery
        self._fleet: Fleet | None = None  # the same, indexed for targeted sweeps (core/targeted.py)
        # the canonical ids of the last complete discovery's VMs and hosts (self._spellings), None until asked
        # for; a full sweep drops them (a targeted sweep replaces records, never the ids)
        self._spelling: tuple[dict[str, str], dict[str, str]] | None = None
        # where the event poller starts: read by the loop just before a full sweep (so that no event between
        # the sweep's discovery and the first poll is lost); None while this replica does not lead
        self._event_index: int | None = None
        self._watched_files = self._file_stamps()

    # --- triggers ----------------------------------------------------------------------------------
    def trigger(self, reason: str, *, vm_ids: Iterable[str] = (), host_ids: Iterable[str] = ()) -> None:
        """Ask for an early sweep (engine event, node waiting for initialization, new leader): a targeted one
        for ``vm_ids`` and ``host_ids`` when given (VMs and hosts whose status changed), else a full one."""
        with self._lock:
            self._schedule = self._schedule.trigger(reason, vm_ids=vm_ids, host_ids=host_ids)
        self._wake.set()

    def on_node_event(self, event_type: str, node: ObservedNode) -> None:
        """Node watch callback: a node that waits for its cloud provider starts a sweep: a targeted one of the
        VMs and hosts that may claim it when its systemUUID names one of the last complete discovery
        (core/targeted.py ``Fleet.joining``; core/schedule.py says when they are refreshed), else a full one."""
        if event_type not in ("ADDED", "MODIFIED") or not node.waits_for_cloud_provider:
            return
        fleet = self._fleet  # replaced whole by the loop, never changed: read once
        targets = fleet.joining(node) if fleet is not None else None
        reason = f"node {node.name} waits for initialization"
        if targets is None:
            self.trigger(reason)
            return
        with self._lock:
            self._schedule = self._schedule.trigger(reason, vm_ids=targets[0], host_ids=targets[1], joining=True)
        self._wake.set()

    def on_started_leading(self) -> None:
        self.trigger("became leader")

    # --- the loop ----------------------------------------------------------------------------------
    def may_write(self) -> bool:
        return self.leader is None or self.leader.is_leader

    def run(self, stop: threading.Event) -> None:
        poller = threading.Thread(target=self._poll_events, args=(stop,), name="engine-events", daemon=True)
        poller.start()
        while not stop.is_set():
            self.health.beat()
            self._check_secret_files()
            leading, synced = self.may_write(), self.cache.synced
            with self._lock:
                self._schedule, step = self._schedule.next_step(time.monotonic(), leading=leading, synced=synced,
                                                                known=self._known)
            if step.kind is StepKind.FULL:
                self._wake.clear()
                self._full_sweep(step)
            elif step.kind is StepKind.TARGETED:
                self._wake.clear()
                self._targeted_sweep(step)
            else:
                self._wake.wait(step.seconds)
                self._wake.clear()

    def _full_sweep(self, step: schedule.Step) -> None:
        log.info("sweep triggered", extra=kv(reasons=_reasons(step.reasons)))
        self._start_event_index()
        self._fleet = None  # the old index is not kept while the sweep builds its own (a targeted sweep
        # before the next complete discovery indexes self._snapshot again)
        report = self._survive("sweep", functools.partial(
            run_sweep, config=self.config, engine=self.engine, nodes=self.cache.nodes(), writer=self.writer,
            metrics=self.metrics, may_write=self.may_write, health=self.health))
        end = time.monotonic()
        if report.snapshot is not None:
            self._snapshot, self._fleet, self._spelling = report.snapshot, report.fleet, None
            self._engine_back.set()
        ok = report.ok or report.interrupted
        with self._lock:
            self._schedule = self._schedule.full_finished(end, ok=ok, jitter=self._rng.random())
            failures, delay = self._schedule.failures, self._schedule.next_full - end
        if report.conflicts and report.plan is not None:
            self._rejoin_changed(_planned_versions(report.plan.actions))
        if not ok:
            log.info("retrying after backoff", extra=kv(failures=failures, seconds=round(delay, 1)))
        # only the snapshot is kept (for targeted sweeps), not the plan

    def _targeted_sweep(self, step: schedule.Step) -> None:
        log.info("targeted sweep triggered", extra=kv(
            reasons=_reasons(step.reasons), vms=len(step.vm_ids), hosts=len(step.host_ids),
            cached=len(step.cached_vm_ids) + len(step.cached_host_ids)))
        base = self._snapshot
        spelled = self._spellings()
        joined = _Extension(vm_ids=frozenset(normalize_vm_id(i) for i in (*step.vm_ids, *step.cached_vm_ids)),
                            host_ids=frozenset(normalize_vm_id(i) for i in (*step.host_ids, *step.cached_host_ids)))
        report = self._survive("targeted sweep", functools.partial(
            run_targeted_sweep, config=self.config, engine=self.engine, base=base,
            vm_ids=self._spelled_as(step.vm_ids, spelled[0]), host_ids=self._spelled_as(step.host_ids, spelled[1]),
            fleet=self._fleet, cached_vm_ids=self._spelled_as(step.cached_vm_ids, spelled[0]),
            cached_host_ids=self._spelled_as(step.cached_host_ids, spelled[1]),
            nodes=self.cache.nodes(), writer=self.writer, metrics=self.metrics, may_write=self.may_write,
            health=self.health, more=functools.partial(self._joined_meanwhile, joined)))\
            if base is not None else SweepReport(ok=False, error="no complete discovery yet")
        ok = report.ok and report.fleet is not None
        if report.ok and report.fleet is not None:
            self._snapshot, self._fleet = report.fleet.snapshot, report.fleet
        # joining nodes planned from the last discovery whose --node-ip it did not report yet: their VMs refreshed
        stale = stale_for(report.plan, step.cached_vm_ids) if report.plan is not None else ()
        stale = tuple(sorted({*stale, *joined.stale}))
        with self._lock:  # a failure asks for a full sweep (with its backoff)
            self._schedule = self._schedule.targeted_finished(time.monotonic(), ok=ok)
            if stale:
                self._schedule = self._schedule.trigger("joining nodes' VMs refreshed", vm_ids=stale)
        if report.conflicts:
            planned = _planned_versions(report.plan.actions) if report.plan is not None else {}
            self._rejoin_changed({**planned, **joined.planned})
        # its plan is not kept while the next sweep plans (10k actions of a registration)

    def _rejoin_changed(self, planned: Mapping[str, str]) -> None:
        """After a sweep whose writes met conflicts: every node of ``planned`` (name → the resourceVersion its
        writes were planned against) that still waits for initialization and that the node cache has seen change
        since is a joining trigger again. A kubelet's change the node watch does not report (its status' image
        list: only the resourceVersion changes for us) answers the initializing patch 409 and would otherwise
        leave its node uninitialized until the periodic sweep; a node the cache has not seen change is not
        retried (its next write would conflict again: its next event or the periodic sweep plans it)."""
        fleet = self._fleet
        if fleet is None or not planned:
            return
        again = [(node.name, targets) for node in self.cache.nodes()
                 if node.name in planned and node.waits_for_cloud_provider
                 and node.resource_version != planned[node.name] and (targets := fleet.joining(node)) is not None]
        if not again:
            return
        with self._lock:
            for name, (vm_ids, host_ids) in again:
                self._schedule = self._schedule.trigger(f"node {name} waits for initialization after a conflict",
                                                        vm_ids=vm_ids, host_ids=host_ids, joining=True)
        self._wake.set()

    def _joined_meanwhile(self, joined: _Extension, fleet: Fleet) -> Sequence[Action]:
        """The targeted sweep's extension (called by the writer, from a worker thread, whenever its queued nodes'
        first writes have run out): the owners of the nodes that joined since the sweep started, taken from the
        schedule (core/schedule.py ``take_joining``: only while nothing but joining nodes is pending), planned
        from ``fleet`` (the sweep's updated index) as a burst is (core/targeted.py); never an owner the sweep
        took already (its node waits for the next sweep). A plan core/targeted.py cannot prove gives nothing
        and leaves them to the next sweep."""
        with self._lock:
            self._schedule, vm_ids, host_ids = self._schedule.take_joining(
                time.monotonic(), self._known, taken=joined.vm_ids, taken_hosts=joined.host_ids)
        if not vm_ids and not host_ids:
            return ()
        reason = f"{len(vm_ids) + len(host_ids)} joining nodes' owners"
        plan = plan_targeted(fleet, targets_of(vm_ids, host_ids), self.cache.nodes(),
                             controller=self.config.controller, now=time.time())
        if plan is None:
            with self._lock:
                self._schedule = self._schedule.trigger(reason, vm_ids=vm_ids, host_ids=host_ids, joining=True)
            return ()
        joined.vm_ids |= {normalize_vm_id(i) for i in vm_ids}
        joined.host_ids |= {normalize_vm_id(i) for i in host_ids}
        joined.stale |= set(stale_for(plan, vm_ids))
        joined.planned.update(_planned_versions(plan.actions))
        log.debug("targeted sweep extended", extra=kv(vms=len(vm_ids), hosts=len(host_ids),
                                                      actions=len(plan.actions)))
        return plan.actions

    def _spellings(self) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """The last complete discovery's VM and host ids by their canonical form (core/providerid.py), made once
        per discovery (a targeted sweep keeps every id): a burst of joins costs its own ids, not the fleet's."""
        snapshot, spelling = self._snapshot, self._spelling
        if snapshot is None:
            return {}, {}
        if spelling is None:
            spelling = ({normalize_vm_id(vm.id): vm.id for vm in snapshot.vms},
                        {normalize_vm_id(h.id): h.id for h in snapshot.hosts})
            self._spelling = spelling
        return spelling

    def _known(self, vm_ids: Sequence[str], host_ids: Sequence[str]) -> bool:
        """Every target is a VM or host of the last complete discovery (host targets only when it searched
        hosts); ids compared canonically (core/providerid.py)."""
        snapshot = self._snapshot
        if snapshot is None:
            return False
        vms, hosts = self._spellings()
        if host_ids and (snapshot.hosts_query is None or not all(normalize_vm_id(i) in hosts for i in host_ids)):
            return False
        return all(normalize_vm_id(i) in vms for i in vm_ids)

    @staticmethod
    def _spelled_as(ids: Sequence[str], spelling: Mapping[str, str]) -> tuple[str, ...]:
        """``ids`` as ``spelling`` (the snapshot's records, by canonical id) spells them, so that the targeted
        sweep refreshes those records; an id it does not know stays as it is."""
        return tuple(dict.fromkeys(spelling.get(normalize_vm_id(i), i) for i in ids))

    def _survive(self, what: str, sweep: Callable[[], SweepReport]) -> SweepReport:
        """Run ``sweep``; an error that is no engine error (a bug) fails that sweep, with its backoff, instead
        of ending the loop (which would restart the pod over and over). One line at error, the traceback at
        debug."""
        start = time.monotonic()
        try:
            return sweep()
        except Exception as exc:
            error = f"{type(exc).__name__}: {one_line(str(exc))}"
            log.error(f"{what} failed unexpectedly; the loop goes on", extra=kv(error=error))
            log.debug(f"{what} failure", exc_info=True)
            counter = self.metrics.targeted_syncs_total if what.startswith("targeted") else self.metrics.syncs_total
            counter.labels("failure").inc()
            return SweepReport(ok=False, error=error, seconds=time.monotonic() - start)

    def _poll_events(self, stop: threading.Event) -> None:
        """Engine event poller. Polls only while this replica leads: a standby makes no engine call at all
        (with a wrong password it would fail logins too); on becoming leader it starts from the index the loop
        read just before its first full sweep. After a failed poll it waits for the sweeps' backoff
        (:func:`~.core.schedule.poll_delay`; a full sweep that reaches the engine ends the wait): one attempt
        and one log line per backoff step, and one line when the engine answers again."""
        period = self.config.controller.event_poll_interval
        failures, since = 0, 0.0
        while not stop.is_set():
            if not self.may_write():
                with self._lock:
                    self._event_index = None
                failures = 0  # a new leader starts polling at the interval
                # a standby's readiness does not depend on the engine, which it does not contact
                self.health.standby()
                stop.wait(max(min(period, 1.0), 0.2) if period > 0 else 1.0)
                continue
            if period <= 0:  # events disabled: the sweeps alone contact the engine
                stop.wait(1.0)
                continue
            with self._lock:
                index = self._event_index
            if index is None:  # the loop reads it before its next full sweep
                stop.wait(0.05)
                continue
            ok, error = self._poll_once(index)
            if ok and failures:
                log.info("engine event poll recovered",
                         extra=kv(failures=failures, seconds=round(time.monotonic() - since, 1)))
                failures = 0
            elif ok is False:
                since = since if failures else time.monotonic()
                failures += 1
            delay = schedule.poll_delay(failures, period=period, base=self.backoff_base,
                                        cap=self.config.controller.backoff_max,
                                        jitter=self._rng.random() if failures else 0.0)
            if ok is False:
                log.warning("engine event poll failed",
                            extra=kv(error=error, failures=failures, retry_in=round(delay, 1)))
            self._poll_pause(stop, delay, backing_off=failures > 0)

    def _poll_once(self, index: int) -> tuple[bool | None, str]:
        """One poll of the engine's events from ``index``, triggering sweeps for them: (True, "") when the
        engine answered, (False, why) when it failed, (None, "") when the login backoff refused it (the login
        already warned; that gate is the backoff)."""
        try:
            index, events = self.engine.events_since(index)
            with self._lock:
                if self._event_index is not None:
                    self._event_index = index
            if events:  # (the engine client counts them in engine_events_total)
                names = sorted({e.vm_name or e.vm_id or e.host_name or e.host_id or "?" for e in events})
                log.info("engine events", extra=kv(count=len(events), vms=",".join(names[:10])))
                if self.may_write():
                    targetable = all((e.kind in TARGETED_EVENT_KINDS and e.vm_id)
                                     or (e.kind in TARGETED_HOST_EVENT_KINDS and e.host_id) for e in events)
                    self.trigger(f"engine events for {', '.join(names[:5])}",
                                 vm_ids=[str(e.vm_id) for e in events if e.kind in TARGETED_EVENT_KINDS]
                                 if targetable else (),
                                 host_ids=[str(e.host_id) for e in events if e.kind in TARGETED_HOST_EVENT_KINDS]
                                 if targetable else ())
            self.health.engine_ok()
            return True, ""
        except EngineLoginBackoff as exc:  # refused without contacting the engine: the login already warned
            self.health.engine_failed(str(exc))
            log.debug("engine event poll waits for the login backoff", extra=kv(error=str(exc)))
            return None, str(exc)
        except EngineError as exc:
            self.health.engine_failed(str(exc))
            return False, str(exc)
        except Exception as exc:  # never let the poller die silently: a failure like the others (a bug: the
            # traceback at debug)
            self.health.engine_failed(f"event poll: {exc.__class__.__name__}")
            log.debug("engine event poll crashed", exc_info=True)
            return False, f"unexpected {type(exc).__name__}: {one_line(str(exc))}"

    def _poll_pause(self, stop: threading.Event, seconds: float, *, backing_off: bool) -> None:
        """Wait ``seconds`` (at least 0.05) or until ``stop``; in a backoff also until a full sweep reaches the
        engine."""
        if not backing_off:
            stop.wait(max(seconds, 0.05))
            return
        self._engine_back.clear()
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._engine_back.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, 0.5))

    def _start_event_index(self) -> None:
        """Before a full sweep: read where the event poller starts, if it has no index yet."""
        if self.config.controller.event_poll_interval <= 0:
            return
        with self._lock:
            if self._event_index is not None:
                return
        try:
            index = self.engine.last_event_index()
        except EngineError as exc:  # the sweep that follows reports the failure
            log.debug("could not read the newest engine event", extra=kv(error=str(exc)))
            return
        with self._lock:
            self._event_index = index

    # --- rotated secrets ---------------------------------------------------------------------------
    def _file_stamps(self) -> dict[str, tuple[float, int] | None]:
        conn = self.config.connection
        stamps: dict[str, tuple[float, int] | None] = {}
        for path in (conn.password_file, conn.ca_file):
            if path:
                try:
                    st = os.stat(path)
                    stamps[path] = (st.st_mtime, st.st_ino)
                except OSError:
                    stamps[path] = None
        return stamps

    def _check_secret_files(self) -> None:
        stamps = self._file_stamps()
        if stamps != self._watched_files:
            changed = sorted(p for p in stamps if stamps[p] != self._watched_files.get(p))
            self._watched_files = stamps
            log.info("credentials or CA file changed; the next engine request logs in again",
                     extra=kv(files=",".join(changed)))
            self.engine.reset()
