"""The loop: when to sweep, and one sweep from discovery to applied Actions.

One sweep (:func:`run_sweep`) is the pipeline of ARCHITECTURE.md: ``EngineClient.discover`` → ``desired_nodes``
→ ``plan_sync`` (against the node cache) → ``NodeWriter`` (a bounded, rate-limited pool; each action only
while this replica may write). :class:`Controller` decides when to sweep:

- every ``sync_interval`` seconds, jittered by up to 10 %;
- early, when the engine reports a relevant event (VM started, stopped, removed, migrated, renamed,
  tagged; with ``[filters] hosts`` a host's status changed or it was removed) or the node watch shows a node
  that waits for initialization. When the events only say that a few known VMs started, stopped, were
  suspended or migrated, or that known hosts changed status (maintenance, activation, failure, up), the early
  sweep is *targeted*: those VMs and hosts are fetched by id (one GET each instead of the paged searches; a VM
  whose record cannot tell whether it still matches the filter: one search narrowed to it, and one that may
  have left the filter makes it a full sweep, with no write) and only their nodes are planned
  (core/targeted.py: at the cost of those few, not of the fleet; the whole fleet when it cannot prove the same
  answer), with deletion off; anything else (a removal, a tag change, missed events) is a full sweep;
- never two sweeps at once (one thread sweeps), and after a failure only after a jittered exponential
  backoff (``backoff_base`` doubling up to ``backoff_max``).

Lifecycle: :meth:`Controller.run` blocks until ``stop`` is set; it starts the event poller thread,
and returns within about a second of ``stop`` (a sweep in flight finishes its current request first;
no action is applied after ``stop`` or after leadership is lost).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from .core.confirm import confirm_deletions, confirm_host_deletions, pending_deletions, pending_host_deletions
from .core.desired import desired_nodes
from .core.naming import skip_code
from .core.plan import plan_sync
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
from .core.settings import Config
from .core.targeted import Fleet, fleet_of, plan_targeted, restrict, targets_of
from .core.vmfilter import filter_match, narrowed
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
    def discover_hosts(self, query: str) -> tuple[tuple[Host, ...], int]: ...
    def last_event_index(self) -> int: ...
    def events_since(self, index: int) -> tuple[int, Sequence[EngineEvent]]: ...
    def reset(self) -> None: ...


class _Cache(Protocol):
    @property
    def synced(self) -> bool: ...
    def nodes(self) -> tuple[ObservedNode, ...]: ...


class _Writer(Protocol):
    def apply(self, actions: Sequence[Action], *, may_write: Callable[[], bool] | None = None) -> ApplyResult: ...


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did. ``ok`` is False when discovery failed or any write failed."""

    ok: bool
    plan: Plan | None = None
    snapshot: Snapshot | None = None
    error: str | None = None
    applied: int = 0
    failed: int = 0
    conflicts: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    # the discovery indexed for targeted sweeps (core/targeted.py): set by every sweep that planned
    fleet: Fleet | None = None


def run_sweep(*, config: Config, engine: _Engine, nodes: Sequence[ObservedNode], writer: _Writer | None,
              metrics: Metrics | None = None, may_write: Callable[[], bool] = lambda: True,
              health: HealthState | None = None) -> SweepReport:
    """Discover, plan and (unless ``writer`` is None: dry run) apply one sweep.

    Nothing is planned after a failed discovery, so a failure never deletes, taints or rewrites a node.
    ``may_write`` is asked before every action: a replica that lost its lease stops at once.
    """
    start = time.monotonic()
    if health:
        health.sweep_started()
    try:
        log.info("sweep started", extra=kv(query=config.filters.vms or "<all VMs>"))
        try:
            snapshot = engine.discover(config.filters.vms)
        except EngineError as exc:
            if health:
                health.engine_failed(str(exc))
            seconds = time.monotonic() - start
            log.error("sweep failed: discovery did not complete; no node was changed",
                      extra=kv(error=str(exc), seconds=round(seconds, 3)))
            if metrics:
                metrics.syncs_total.labels("failure").inc()
                metrics.sync_duration_seconds.observe(seconds)
            return SweepReport(ok=False, error=str(exc), seconds=seconds)
        if health:
            health.engine_ok()
        desired = desired_nodes(snapshot, config.nodes)
        plan = plan_sync(desired, nodes, nodes=config.nodes, controller=config.controller)
        plan = _confirm_deletions(plan, engine, config.filters.vms, config.filters.hosts)
        report = replace(_apply(plan, snapshot, writer=writer, may_write=may_write, start=start),
                         fleet=fleet_of(snapshot, desired, config.nodes))
        if metrics:
            _record(metrics, snapshot, desired, plan, ok=report.ok, seconds=report.seconds,
                    dry_run=writer is None)
        _log_report("sweep finished", report)
        return report
    finally:
        if health:
            health.sweep_finished()


def run_targeted_sweep(*, config: Config, engine: _Engine, base: Snapshot, vm_ids: Sequence[str],
                       nodes: Sequence[ObservedNode], writer: _Writer, metrics: Metrics | None = None,
                       may_write: Callable[[], bool] = lambda: True, health: HealthState | None = None,
                       host_ids: Sequence[str] = (), fleet: Fleet | None = None) -> SweepReport:
    """Refresh only ``vm_ids`` and ``host_ids`` (of ``base``, the last complete discovery; ``fleet`` its index
    when the caller has it) and apply the actions for their nodes. Deletion is off here (it needs complete
    discoveries); a VM or host the engine no longer has keeps its old record until the next full sweep. The
    last discovery's membership is no evidence that a VM still matches the filter: a refreshed VM whose record
    does not match, or cannot tell and the search narrowed to it does not return it, fails the targeted sweep
    without a write (the controller then sweeps in full).

    The plan is that of core/targeted.py, which costs the targets, not the fleet; where it cannot prove its
    answer equal to the whole plan filtered to the targets, the whole fleet is planned and filtered. Returns a
    report whose ``snapshot`` is ``base`` updated (and ``fleet`` its index)."""
    start = time.monotonic()
    if health:
        health.sweep_started()
    try:
        try:
            fresh = engine.fetch_vms(vm_ids) if vm_ids else {}
            fresh_hosts = engine.fetch_hosts(host_ids) if host_ids else {}
            outside = _outside_the_filter(engine, config.filters.vms, fresh)
        except EngineError as exc:
            if health:
                health.engine_failed(str(exc))
            log.warning("targeted sweep failed; no node was changed", extra=kv(error=str(exc)))
            if metrics:
                metrics.targeted_syncs_total.labels("failure").inc()
            return SweepReport(ok=False, error=str(exc), seconds=time.monotonic() - start)
        if health:
            health.engine_ok()
        if outside:  # the last full discovery's membership is no evidence: a full sweep decides, nothing is written
            error = (f"VM(s) {', '.join(outside)} may no longer match the filter {config.filters.vms!r}; a full "
                     "sweep decides")
            log.info("targeted sweep not applied; no node was changed", extra=kv(error=error))
            if metrics:
                metrics.targeted_syncs_total.labels("failure").inc()
            return SweepReport(ok=False, error=error, seconds=time.monotonic() - start)
        targets = targets_of(vm_ids, host_ids)
        updated = fleet.updated(fresh, fresh_hosts) if fleet is not None and fleet.snapshot is base else None
        plan = plan_targeted(updated, targets, nodes, controller=config.controller) if updated else None
        whole = plan is None
        if plan is None or updated is None:  # not provably equal: the whole fleet, filtered
            snapshot = replace(base, vms=tuple(fresh.get(vm.id) or vm for vm in base.vms),
                               hosts=tuple(fresh_hosts.get(h.id) or h for h in base.hosts))
            desired = desired_nodes(snapshot, config.nodes)
            plan = restrict(plan_sync(desired, nodes, nodes=replace(config.nodes, delete=False),
                                      controller=config.controller), targets)
            updated = fleet_of(snapshot, desired, config.nodes)
        snapshot = updated.snapshot
        report = replace(_apply(plan, replace(snapshot, requests=len(fresh) + len(fresh_hosts)), writer=writer,
                                may_write=may_write, start=start), fleet=updated)
        if metrics:
            _record_vms(metrics, snapshot)
            metrics.targeted_syncs_total.labels("success" if report.ok else "failure").inc()
        _log_report("targeted sweep finished", report, whole_fleet=whole)
        return report
    finally:
        if health:
            health.sweep_finished()


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
            outside.append(vm_id)
    return outside


def _confirm_deletions(plan: Plan, engine: _Engine, query: str, host_query: str | None) -> Plan:
    """Ask the engine about every VM and host whose node the plan deletes as absent (core.confirm): a GET by
    id, and, for one that is gone (the engine's own 404) or may have left the filter, its filter searched
    narrowed to it: two independent answers before a deletion."""
    plan = _confirm_host_deletions(plan, engine, host_query)
    vm_ids = pending_deletions(plan)
    if not vm_ids:
        return plan
    researched: set[str] = set()
    try:
        found = engine.fetch_vms(vm_ids)
        for vm_id, vm in found.items():
            if vm is None or filter_match(query, vm) is not True:
                answer = engine.discover(narrowed(query, vm_id))
                # a VM the narrowed answer holds twice (inconsistent) is returned too: it exists
                researched |= {v.id for v in answer.vms} | set(answer.inconsistent_ids)
    except EngineError as exc:
        log.warning("could not confirm deletions; none is applied this sweep", extra=kv(error=str(exc)))
        return confirm_deletions(plan, query=query, found={}, error=str(exc))
    return confirm_deletions(plan, query=query, found=found, researched=frozenset(researched))


def _confirm_host_deletions(plan: Plan, engine: _Engine, query: str | None) -> Plan:
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
                researched |= {h.id for h in engine.discover_hosts(narrowed(query, host_id))[0]}
    except EngineError as exc:
        log.warning("could not confirm host deletions; none is applied this sweep", extra=kv(error=str(exc)))
        return confirm_host_deletions(plan, query=query or "", found={}, error=str(exc))
    return confirm_host_deletions(plan, query=query or "", found=found,
                                  researched=None if researched is None else frozenset(researched))


def _apply(plan: Plan, snapshot: Snapshot, *, writer: _Writer | None, may_write: Callable[[], bool],
           start: float) -> SweepReport:
    """Apply ``plan`` (``writer`` None: dry run); the writer asks ``may_write`` before each writing action."""
    counts = dict(Counter(a.kind.value for a in plan.actions))
    _log_plan(plan)
    applied = failed = conflicts = 0
    interrupted = False
    if writer is not None and plan.actions:
        result = writer.apply(plan.actions, may_write=may_write)
        applied, failed, conflicts, remaining = result.applied, result.failed, result.conflicts, result.interrupted
        if remaining:
            interrupted = True
            log.warning("stopped applying actions: stopping, or this replica may no longer write",
                        extra=kv(remaining=remaining))
    ok = failed == 0 and not interrupted
    return SweepReport(ok=ok, plan=plan, snapshot=snapshot, applied=applied, failed=failed,
                       conflicts=conflicts, interrupted=interrupted, seconds=time.monotonic() - start,
                       counts=counts,
                       error=None if ok else f"{failed} action(s) failed" if failed else "interrupted")


def _log_report(message: str, report: SweepReport, **more: object) -> None:
    plan, snapshot = report.plan, report.snapshot
    assert plan is not None and snapshot is not None
    log.info(message, extra=kv(**more,
        ok=report.ok, vms=len(snapshot.vms), engine_requests=snapshot.requests, managed_nodes=plan.managed_nodes,
        actions=len(plan.actions), applied=report.applied, failed=report.failed, conflicts=report.conflicts,
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


def _record(metrics: Metrics, snapshot: Snapshot, desired: Desired, plan: Plan, *, ok: bool, seconds: float,
            dry_run: bool) -> None:
    _record_vms(metrics, snapshot)
    # VMs and hosts desired.py could not turn into a node (invalid-name, duplicate-name, no-fqdn, ...), and those
    # whose node name is taken by a node that is not theirs (node-name-conflict)
    skipped = Counter((skip_code(s), s.kind) for s in desired.skipped)
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
MAX_TARGETED = 20  # more VMs and hosts than this in one burst: one paged search is cheaper


class _Leader(Protocol):
    @property
    def is_leader(self) -> bool: ...


class Controller:
    """Runs sweeps forever; see the module docstring for when."""

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
        self._reasons: set[str] = set()
        self._targets: set[str] = set()  # VMs for a targeted sweep (status events)
        self._host_targets: set[str] = set()  # hosts for a targeted sweep (host status events)
        self._needs_full = False  # an early trigger that only a full sweep answers
        self._snapshot: Snapshot | None = None  # the last complete discovery
        self._fleet: Fleet | None = None  # the same, indexed for targeted sweeps (core/targeted.py)
        self._lock = threading.Lock()
        self._failures = 0
        # where the event poller starts: read by the loop just before a full sweep (so that no event between
        # the sweep's discovery and the first poll is lost); None while this replica does not lead
        self._event_index: int | None = None
        self._watched_files = self._file_stamps()

    # --- triggers ----------------------------------------------------------------------------------
    def trigger(self, reason: str, *, vm_ids: Iterable[str] = (), host_ids: Iterable[str] = ()) -> None:
        """Ask for an early sweep (engine event, node waiting for initialization, new leader): a targeted one
        for ``vm_ids`` and ``host_ids`` when given (VMs and hosts whose status changed), else a full one."""
        ids, hosts = set(vm_ids), set(host_ids)
        with self._lock:
            self._reasons.add(reason)
            if ids or hosts:
                self._targets |= ids
                self._host_targets |= hosts
            else:
                self._needs_full = True
        self._wake.set()

    def on_node_event(self, event_type: str, node: ObservedNode) -> None:
        """Node watch callback: a node that waits for its cloud provider starts a sweep."""
        if event_type in ("ADDED", "MODIFIED") and node.waits_for_cloud_provider:
            self.trigger(f"node {node.name} waits for initialization")

    def on_started_leading(self) -> None:
        self.trigger("became leader")

    # --- the loop ----------------------------------------------------------------------------------
    def may_write(self) -> bool:
        return self.leader is None or self.leader.is_leader

    def run(self, stop: threading.Event) -> None:
        poller = threading.Thread(target=self._poll_events, args=(stop,), name="engine-events", daemon=True)
        poller.start()
        interval = self.config.controller.sync_interval
        next_full = time.monotonic()  # first sweep at once
        not_before = 0.0
        while not stop.is_set():
            self.health.beat()
            now = time.monotonic()
            self._check_secret_files()
            with self._lock:
                early = bool(self._reasons)
            due = now >= next_full or (early and now >= not_before)
            if due and self.may_write() and self.cache.synced:
                with self._lock:
                    reasons = sorted(self._reasons) or ["periodic"]
                    targets, host_targets = sorted(self._targets), sorted(self._host_targets)
                    known = self._snapshot is not None and self._known(self._snapshot, targets, host_targets)
                    targeted = (now < next_full and not self._needs_full and known
                                and 0 < len(targets) + len(host_targets) <= MAX_TARGETED)
                    self._reasons.clear()
                    self._targets.clear()
                    self._host_targets.clear()
                    self._needs_full = False
                self._wake.clear()
                if targeted and self._snapshot is not None:
                    log.info("targeted sweep triggered", extra=kv(reasons="; ".join(reasons), vms=len(targets),
                                                                  hosts=len(host_targets)))
                    report = self._survive("targeted sweep", functools.partial(
                        run_targeted_sweep, config=self.config, engine=self.engine, base=self._snapshot,
                        vm_ids=targets, host_ids=host_targets, fleet=self._fleet, nodes=self.cache.nodes(),
                        writer=self.writer, metrics=self.metrics, may_write=self.may_write, health=self.health))
                    if report.ok and report.fleet is not None:
                        self._snapshot, self._fleet = report.fleet.snapshot, report.fleet
                    else:
                        self.trigger("targeted sweep failed")  # a full sweep (with its backoff) follows
                    not_before = time.monotonic() + self.debounce
                    del report  # its plan is not kept while the next sweep plans (10k actions of a registration)
                    continue
                log.info("sweep triggered", extra=kv(reasons="; ".join(reasons)))
                self._start_event_index()
                self._fleet = None  # the old index is not kept while the sweep builds its own (a targeted sweep
                # before the next complete discovery indexes self._snapshot again)
                report = self._survive("sweep", functools.partial(
                    run_sweep, config=self.config, engine=self.engine, nodes=self.cache.nodes(), writer=self.writer,
                    metrics=self.metrics, may_write=self.may_write, health=self.health))
                end = time.monotonic()
                if report.snapshot is not None:
                    self._snapshot, self._fleet = report.snapshot, report.fleet
                if report.ok or report.interrupted:
                    self._failures = 0
                    next_full = end + interval * (1 + self._rng.uniform(0.0, 0.1))
                    not_before = end + self.debounce
                else:
                    self._failures += 1
                    delay = min(self.config.controller.backoff_max,
                                self.backoff_base * 2 ** (self._failures - 1)) * self._rng.uniform(0.5, 1.0)
                    log.info("retrying after backoff", extra=kv(failures=self._failures, seconds=round(delay, 1)))
                    next_full = end + delay
                    not_before = next_full
                del report  # only the snapshot is kept (for targeted sweeps), not the plan
                continue
            if due and not self.may_write():
                next_full = now + interval  # standby: stay idle, wake on leadership
            wait = max(0.05, min(next_full - now, 2.0))
            if early:
                wait = max(0.05, min(wait, not_before - now))
            if due and not self.cache.synced:
                wait = 0.5  # the node cache is (re)listing: nothing to plan against yet
            self._wake.wait(wait)
            self._wake.clear()

    @staticmethod
    def _known(snapshot: Snapshot, vm_ids: Sequence[str], host_ids: Sequence[str]) -> bool:
        """Every target is a VM or host of ``snapshot`` (host targets only when it searched hosts)."""
        if host_ids and (snapshot.hosts_query is None or not set(host_ids) <= {h.id for h in snapshot.hosts}):
            return False
        return not vm_ids or set(vm_ids) <= {vm.id for vm in snapshot.vms}

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
        read just before its first full sweep."""
        period = self.config.controller.event_poll_interval
        while not stop.is_set():
            if not self.may_write():
                with self._lock:
                    self._event_index = None
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
            except EngineLoginBackoff as exc:  # refused without contacting the engine: the login already warned
                self.health.engine_failed(str(exc))
                log.debug("engine event poll waits for the login backoff", extra=kv(error=str(exc)))
            except EngineError as exc:
                self.health.engine_failed(str(exc))
                log.warning("engine event poll failed", extra=kv(error=str(exc)))
            except Exception as exc:  # never let the poller die silently
                self.health.engine_failed(f"event poll: {exc.__class__.__name__}")
                log.exception("engine event poll crashed", extra=kv(error=str(exc)))
            stop.wait(max(period, 0.05))

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
