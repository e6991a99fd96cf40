"""When to sweep, and when to poll the engine's events: the controller loop's schedule (pure).

:class:`Schedule` is the state of the loop's timing; the loop (:class:`ovirt_cloudprovider.controller.Controller`)
holds one, feeds it what happened and does what :meth:`Schedule.next_step` says. Every input is explicit: the
clock value (monotonic seconds), the triggers, the results of the sweeps, whether this replica leads and whether
the node cache is synced; randomness enters as ``jitter``, a number in [0, 1) the loop draws. Nothing here reads a
clock, sleeps or draws a random number.

Full sweeps
    The first one at once. After a full sweep that succeeded (or was interrupted: leadership lost, stopping;
    nothing failed) the next one is due ``sync_interval`` after its end, jittered by up to 10 %
    (``interval * (1 + 0.1 * jitter)``). After a failed one it is due after a backoff (:func:`backoff`:
    ``backoff_base`` doubling with every consecutive failure up to ``backoff_max``, times ``0.5 + 0.5 *
    jitter``); a success resets the count.

Early sweeps (triggers)
    A trigger asks for an early sweep: with VM or host ids (engine status events of known VMs and hosts) a
    *targeted* one of those (and joining nodes' owners, below), without (any other engine event, becoming
    leader, a failed targeted sweep) a full one. Triggers collect until a sweep takes them, so a burst
    becomes one sweep. An early sweep runs no sooner than ``not_before``: the end of the last sweep plus
    ``debounce``, or after a failed full sweep its backoff (early triggers do not shorten a backoff). It is
    targeted only when the periodic full sweep is not due yet, no pending trigger asked for a full one,
    every target is in the last complete discovery (the ``known`` question, answered by the loop's data),
    and there are 1 to ``max_targeted`` of them to refresh (joining nodes' owners not counted); else it is
    full. A full sweep answers every pending
    trigger. A targeted sweep's failure is itself a trigger for a full sweep (after the debounce); it
    does not count as a backoff failure.

Joining nodes
    A node that waits for initialization and whose systemUUID names a VM or host of the last complete discovery
    is a *joining* trigger for that owner (and every other owner that may claim the node): a targeted sweep
    too, but the owners are not counted against ``max_targeted`` and need not be refreshed. When the refreshed
    and joining targets together are at most ``max_targeted`` every one is refreshed (a GET each, as the
    upstream node controller makes one cloud call per node); with more (a burst of kubelets) the joining ones
    are planned from the last complete discovery (``Step.cached_vm_ids`` / ``cached_host_ids``), so that a
    thousand kubelets cost one planning of a thousand nodes, not a thousand engine calls or a paged search.
    Any other node waiting for initialization is a trigger for a full sweep. A node that joins while a targeted
    sweep applies is taken by that sweep (:meth:`Schedule.take_joining`: its *extension*, asked for by the
    writer whenever its queued nodes' first writes have run out), with no debounce, as long as every pending
    trigger is a joining one, the periodic full sweep is not due and the sweep started less than
    ``MAX_EXTENSION`` (60) seconds ago: a burst of kubelets is initialized as the writer frees up, not batch
    after batch.

Never two sweeps at once
    A sweep step marks the schedule as sweeping until :meth:`Schedule.full_finished` or
    :meth:`Schedule.targeted_finished`; meanwhile every step is a wait.

Standby and an unsynced cache
    While this replica does not lead no sweep is made: the step is STANDBY, and the periodic deadline moves
    to ``now + sync_interval`` (a replica that becomes leader is triggered, and sweeps at once). Pending
    triggers are kept. While the node cache is (re)listing, a due sweep waits for it (checked every 0.5 s).

Waits
    A wait is at most 2 s (the loop beats its liveness and looks for rotated secret files between steps) and
    at least 0.05 s; a trigger ends it early. Its reason says why: ``idle`` (the next periodic sweep),
    ``debounce`` (an early sweep waits for the debounce), ``backoff`` (it waits for the backoff),
    ``cache`` (the node cache is not synced), ``sweeping``.

Engine event polls (:func:`poll_delay`)
    Every ``event_poll_interval`` while they succeed; after a failed poll, the sweeps' backoff (never shorter
    than the interval), so an engine outage costs one attempt, and one log line, per backoff step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .providerid import normalize_vm_id

MAX_WAIT = 2.0  # the longest wait between two looks at the schedule
MIN_WAIT = 0.05
CACHE_WAIT = 0.5  # how often a due sweep looks whether the node cache has synced
SUCCESS_JITTER = 0.1  # a full sweep's interval is stretched by up to 10 %
MAX_TARGETED = 20  # more VMs and hosts than this in one burst: one paged search is cheaper
MAX_EXTENSION = 60.0  # seconds after its start a targeted sweep still takes the nodes that join meanwhile

REASON_PERIODIC = "periodic"
REASON_TARGETED_FAILED = "targeted sweep failed"

WAIT_IDLE = "idle"
WAIT_DEBOUNCE = "debounce"
WAIT_BACKOFF = "backoff"
WAIT_CACHE = "cache"
WAIT_SWEEPING = "sweeping"


def backoff(failures: int, *, base: float, cap: float, jitter: float) -> float:
    """The wait after ``failures`` (>= 1) consecutive failures: ``min(cap, base * 2 ** (failures - 1))``, times
    ``0.5 + 0.5 * jitter`` (``jitter`` in [0, 1))."""
    exponent = min(max(failures, 1) - 1, 64)  # beyond 2**64 every cap is reached; no float overflow
    return min(cap, base * 2.0 ** exponent) * (0.5 + 0.5 * jitter)


def poll_delay(failures: int, *, period: float, base: float, cap: float, jitter: float) -> float:
    """The wait before the next engine event poll: ``period`` while polls succeed (``failures`` 0), else the
    backoff of :func:`backoff`, never shorter than ``period``."""
    if failures <= 0:
        return period
    return max(period, backoff(failures, base=base, cap=cap, jitter=jitter))


class StepKind(enum.Enum):
    FULL = "full"  # a full sweep (paged searches, planning of the whole fleet, deletion on)
    TARGETED = "targeted"  # a targeted sweep of Step.vm_ids and Step.host_ids
    WAIT = "wait"  # wait Step.seconds (or until a trigger), then ask again
    STANDBY = "standby"  # not leading: no sweep; wait Step.seconds (or until a trigger), then ask again


@dataclass(frozen=True)
class Step:
    """What the loop does next."""

    kind: StepKind
    reasons: tuple[str, ...] = ()  # a sweep's triggers, sorted ("periodic" for the timer alone)
    vm_ids: tuple[str, ...] = ()  # a targeted sweep's VMs and hosts to refresh, sorted
    host_ids: tuple[str, ...] = ()
    cached_vm_ids: tuple[str, ...] = ()  # a targeted sweep's VMs and hosts planned from the last discovery, sorted
    cached_host_ids: tuple[str, ...] = ()
    seconds: float = 0.0  # a wait's length
    why: str = ""  # a wait's reason (WAIT_*)

    @property
    def sweeps(self) -> bool:
        return self.kind in (StepKind.FULL, StepKind.TARGETED)


@dataclass(frozen=True)
class Timing:
    """The schedule's settings: ``[controller]`` sync_interval and backoff_max, and the controller's backoff base
    and debounce."""

    interval: float
    debounce: float = 0.5
    backoff_base: float = 5.0
    backoff_max: float = 300.0
    max_targeted: int = MAX_TARGETED


# Whether every target (VM ids, host ids) is a VM or host of the last complete discovery.
Known = Callable[[tuple[str, ...], tuple[str, ...]], bool]


@dataclass(frozen=True)
class Schedule:
    """The loop's timing state. Immutable: every method returns the next state."""

    timing: Timing
    next_full: float = 0.0  # when the next full sweep is due (the first at once)
    not_before: float = 0.0  # no early sweep before this (debounce after a sweep, backoff after a failure)
    reasons: frozenset[str] = frozenset()  # pending triggers
    vm_targets: frozenset[str] = frozenset()
    host_targets: frozenset[str] = frozenset()
    joining_vms: frozenset[str] = frozenset()  # owners of joining nodes (refreshed only when few)
    joining_hosts: frozenset[str] = frozenset()
    needs_full: bool = False  # a pending trigger that only a full sweep answers
    failures: int = 0  # consecutive failed full sweeps
    sweeping: StepKind | None = None  # the sweep in flight
    sweep_started: float = 0.0  # when it started

    @property
    def early(self) -> bool:
        """A trigger is pending."""
        return bool(self.reasons)

    def trigger(self, reason: str, *, vm_ids: Iterable[str] = (), host_ids: Iterable[str] = (),
                joining: bool = False) -> Schedule:
        """Ask for an early sweep: targeted for ``vm_ids`` and ``host_ids`` when given (``joining``: the owners
        of a node waiting for initialization), else full."""
        ids, hosts = frozenset(vm_ids), frozenset(host_ids)
        if joining and (ids or hosts):
            return replace(self, reasons=self.reasons | {reason}, joining_vms=self.joining_vms | ids,
                           joining_hosts=self.joining_hosts | hosts)
        if ids or hosts:
            return replace(self, reasons=self.reasons | {reason}, vm_targets=self.vm_targets | ids,
                           host_targets=self.host_targets | hosts)
        return replace(self, reasons=self.reasons | {reason}, needs_full=True)

    def due(self, now: float) -> bool:
        """A sweep is due: the periodic one, or an early one whose debounce or backoff has passed."""
        return now >= self.next_full or (self.early and now >= self.not_before)

    def next_step(self, now: float, *, leading: bool, synced: bool, known: Known) -> tuple[Schedule, Step]:
        """What to do at ``now``; a sweep step takes the pending triggers and marks the schedule sweeping."""
        if self.sweeping is not None:
            return self, _wait(MAX_WAIT, WAIT_SWEEPING)
        due = self.due(now)
        if due and not leading:
            standby = replace(self, next_full=now + self.timing.interval)
            return standby, Step(StepKind.STANDBY, seconds=_clamp(min(self.timing.interval, MAX_WAIT)))
        if due and not synced:
            return self, _wait(CACHE_WAIT, WAIT_CACHE)
        if due:
            return self._sweep(now, known)
        if not self.early:
            return self, _wait(self.next_full - now, WAIT_IDLE)
        why = WAIT_BACKOFF if self.failures and self.not_before >= self.next_full else WAIT_DEBOUNCE
        return self, _wait(min(self.next_full, self.not_before) - now, why)

    def _sweep(self, now: float, known: Known) -> tuple[Schedule, Step]:
        reasons = tuple(sorted(self.reasons)) or (REASON_PERIODIC,)
        vm_ids, host_ids = tuple(sorted(self.vm_targets)), tuple(sorted(self.host_targets))
        cached_vms = tuple(sorted(self.joining_vms - self.vm_targets))
        cached_hosts = tuple(sorted(self.joining_hosts - self.host_targets))
        count, joining = len(vm_ids) + len(host_ids), len(cached_vms) + len(cached_hosts)
        targeted = (now < self.next_full and not self.needs_full and count + joining > 0
                    and count <= self.timing.max_targeted
                    and known(tuple(sorted({*vm_ids, *cached_vms})), tuple(sorted({*host_ids, *cached_hosts}))))
        kind = StepKind.TARGETED if targeted else StepKind.FULL
        taken = replace(self, reasons=frozenset(), vm_targets=frozenset(), host_targets=frozenset(),
                        joining_vms=frozenset(), joining_hosts=frozenset(), needs_full=False, sweeping=kind,
                        sweep_started=now)
        if not targeted:
            return taken, Step(kind, reasons=reasons)
        if count + joining <= self.timing.max_targeted:  # few: every one refreshed
            return taken, Step(kind, reasons=reasons, vm_ids=tuple(sorted({*vm_ids, *cached_vms})),
                               host_ids=tuple(sorted({*host_ids, *cached_hosts})))
        return taken, Step(kind, reasons=reasons, vm_ids=vm_ids, host_ids=host_ids, cached_vm_ids=cached_vms,
                           cached_host_ids=cached_hosts)

    def take_joining(self, now: float, known: Known, *, taken: frozenset[str] = frozenset(),
                     taken_hosts: frozenset[str] = frozenset()) -> tuple[Schedule, tuple[str, ...], tuple[str, ...]]:
        """The joining nodes' owners that a targeted sweep in flight may take (its extension, planned from the
        last discovery), and the schedule without them: only while every pending trigger is a joining one (no
        full sweep asked for or due at ``now``, no VM or host to refresh), they are all ``known`` and the sweep
        started less than ``MAX_EXTENSION`` seconds ago (a stream of joins never makes one endless sweep); never
        the owners that sweep took already (``taken``, ``taken_hosts``, canonical ids (core/providerid.py) compared
        with the owners' canonically: they stay for the next sweep). Nothing
        to take: ``(self, (), ())``."""
        left_vms = frozenset(i for i in self.joining_vms if normalize_vm_id(i) in taken)
        left_hosts = frozenset(i for i in self.joining_hosts if normalize_vm_id(i) in taken_hosts)
        vm_ids = tuple(sorted(self.joining_vms - left_vms))
        host_ids = tuple(sorted(self.joining_hosts - left_hosts))
        if (self.sweeping is not StepKind.TARGETED or now >= min(self.next_full, self.sweep_started + MAX_EXTENSION)
                or self.needs_full or self.vm_targets
                or self.host_targets or not (vm_ids or host_ids) or not known(vm_ids, host_ids)):
            return self, (), ()
        return replace(self, joining_vms=left_vms, joining_hosts=left_hosts,
                       reasons=self.reasons if left_vms or left_hosts else frozenset()), vm_ids, host_ids

    def full_finished(self, now: float, *, ok: bool, jitter: float) -> Schedule:
        """A full sweep ended at ``now``: ``ok`` (also when interrupted: nothing failed) → the next one after the
        jittered interval, early ones after the debounce; failed → both after the backoff."""
        if ok:
            return replace(self, sweeping=None, failures=0,
                           next_full=now + self.timing.interval * (1 + SUCCESS_JITTER * jitter),
                           not_before=now + self.timing.debounce)
        failures = self.failures + 1
        delay = backoff(failures, base=self.timing.backoff_base, cap=self.timing.backoff_max, jitter=jitter)
        return replace(self, sweeping=None, failures=failures, next_full=now + delay, not_before=now + delay)

    def targeted_finished(self, now: float, *, ok: bool) -> Schedule:
        """A targeted sweep ended at ``now``: early sweeps wait for the debounce; a failure asks for a full
        sweep."""
        done = replace(self, sweeping=None, not_before=now + self.timing.debounce)
        return done if ok else done.trigger(REASON_TARGETED_FAILED)


def _clamp(seconds: float) -> float:
    return max(MIN_WAIT, min(seconds, MAX_WAIT))


def _wait(seconds: float, why: str) -> Step:
    return Step(StepKind.WAIT, seconds=_clamp(seconds), why=why)
