"""When to sweep (core/schedule.py): every rule as a table, and a property test over random histories of clock
advances, triggers, leadership and cache changes and sweep results (pure, fast)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovirt_cloudprovider.core.schedule import (
    MAX_EXTENSION,
    MAX_TARGETED,
    MAX_WAIT,
    MIN_WAIT,
    REASON_PERIODIC,
    REASON_TARGETED_FAILED,
    WAIT_BACKOFF,
    WAIT_CACHE,
    WAIT_DEBOUNCE,
    WAIT_IDLE,
    WAIT_SWEEPING,
    Schedule,
    Step,
    StepKind,
    Timing,
    backoff,
    poll_delay,
)

TIMING = Timing(interval=60.0, debounce=0.5, backoff_base=5.0, backoff_max=300.0)
T0 = 1000.0


def everything_known(vm_ids: Sequence[str], host_ids: Sequence[str]) -> bool:
    return True


def nothing_known(vm_ids: Sequence[str], host_ids: Sequence[str]) -> bool:
    return False


def step(s: Schedule, now: float, *, leading: bool = True, synced: bool = True,
         known: bool = True) -> tuple[Schedule, Step]:
    return s.next_step(now, leading=leading, synced=synced, known=everything_known if known else nothing_known)


def after_first_sweep(*, end: float = T0, jitter: float = 0.0) -> Schedule:
    """A schedule whose first (full) sweep ran and ended at ``end`` successfully."""
    s, first = step(Schedule(TIMING), end)
    assert first.kind is StepKind.FULL
    return s.full_finished(end, ok=True, jitter=jitter)


# --- backoff and poll delays ---------------------------------------------------------------------------

@pytest.mark.parametrize(("failures", "jitter", "expected"), [
    (1, 0.0, 2.5), (1, 0.5, 3.75), (2, 0.0, 5.0), (3, 0.0, 10.0), (4, 0.0, 20.0), (6, 0.0, 80.0),
    (7, 0.0, 150.0),  # 5 * 64 = 320 is capped at 300, then jittered down
    (50, 0.0, 150.0), (5000, 0.999, 299.85),  # no overflow, still capped
    (0, 0.0, 2.5),  # 0 counts as the first failure
])
def test_backoff_doubles_up_to_the_cap_jittered_down_to_half(failures: int, jitter: float, expected: float) -> None:
    assert backoff(failures, base=5.0, cap=300.0, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(("failures", "jitter", "expected"), [
    (0, 0.9, 3.0),  # polls succeed: the interval, no jitter
    (1, 0.0, 3.0),  # the backoff (2.5) is never shorter than the interval
    (1, 0.999, 4.9975),
    (2, 0.0, 5.0), (3, 0.0, 10.0), (10, 0.0, 150.0), (10, 0.999, 299.85),
])
def test_event_polls_back_off_as_the_sweeps_do(failures: int, jitter: float, expected: float) -> None:
    assert poll_delay(failures, period=3.0, base=5.0, cap=300.0, jitter=jitter) == pytest.approx(expected)


def test_an_outage_of_ten_minutes_costs_a_handful_of_event_polls() -> None:
    """The figure of issue 17, rule 10: polled every 3 s an outage made 19 failed polls (and log lines) a minute."""
    for jitter in (0.0, 0.5, 0.999):
        t, failures = 0.0, 0
        while t < 600:
            failures += 1
            t += poll_delay(failures, period=3.0, base=5.0, cap=300.0, jitter=jitter)
        assert failures <= 9, (jitter, failures)


# --- full sweeps ---------------------------------------------------------------------------------------

def test_the_first_sweep_is_full_and_at_once() -> None:
    s, first = step(Schedule(TIMING), T0)
    assert first == Step(StepKind.FULL, reasons=(REASON_PERIODIC,))
    assert s.sweeping is StepKind.FULL


@pytest.mark.parametrize(("jitter", "next_full"), [(0.0, T0 + 60.0), (0.5, T0 + 63.0), (0.999, T0 + 65.994)])
def test_after_a_success_the_next_full_sweep_is_one_jittered_interval_later(jitter: float, next_full: float) -> None:
    s = after_first_sweep(jitter=jitter)
    assert s.sweeping is None and s.failures == 0
    assert s.next_full == pytest.approx(next_full)
    assert s.not_before == T0 + 0.5
    s, idle = step(s, T0 + 1)
    assert idle == Step(StepKind.WAIT, seconds=MAX_WAIT, why=WAIT_IDLE)
    s, near = step(s, next_full - 0.3)
    assert near.kind is StepKind.WAIT and near.seconds == pytest.approx(0.3)
    s, due = step(s, next_full)
    assert due == Step(StepKind.FULL, reasons=(REASON_PERIODIC,))


def test_failures_back_off_exponentially_and_a_success_resets() -> None:
    s = after_first_sweep()
    now = s.next_full
    delays = []
    for _ in range(8):
        s, sweep = step(s, now)
        assert sweep.kind is StepKind.FULL
        s = s.full_finished(now, ok=False, jitter=0.0)
        delays.append(s.next_full - now)
        assert s.not_before == s.next_full  # early sweeps wait for the backoff too
        s, waiting = step(s.trigger("engine events"), now + delays[-1] / 2)
        assert waiting.kind is StepKind.WAIT and waiting.why == WAIT_BACKOFF
        now = s.next_full
    assert delays == pytest.approx([2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 150.0, 150.0])
    assert s.failures == 8
    s, sweep = step(s, now)
    assert sweep.kind is StepKind.FULL
    s = s.full_finished(now, ok=True, jitter=0.0)
    assert s.failures == 0 and s.next_full == now + 60.0


def test_an_interrupted_sweep_counts_as_no_failure() -> None:
    """The loop reports an interrupted sweep (leadership lost, stopping) as ok: nothing failed."""
    s, _ = step(Schedule(TIMING), T0)
    s = s.full_finished(T0 + 1, ok=True, jitter=0.0)
    assert s.failures == 0 and s.next_full == T0 + 61


# --- early sweeps ----------------------------------------------------------------------------------------

def test_status_events_of_known_vms_make_a_targeted_sweep_after_the_debounce() -> None:
    s = after_first_sweep().trigger("engine events for web1", vm_ids=["b", "a"], host_ids=["h"])
    s, waiting = step(s, T0 + 0.2)
    assert waiting.kind is StepKind.WAIT and waiting.why == WAIT_DEBOUNCE
    assert waiting.seconds == pytest.approx(0.3)
    s, sweep = step(s, T0 + 0.5)
    assert sweep == Step(StepKind.TARGETED, reasons=("engine events for web1",), vm_ids=("a", "b"), host_ids=("h",))
    assert s.sweeping is StepKind.TARGETED and not s.early and not s.vm_targets and not s.host_targets
    s = s.targeted_finished(T0 + 0.7, ok=True)
    assert s.sweeping is None and s.not_before == T0 + 1.2 and not s.early
    s, idle = step(s, T0 + 2)
    assert idle.why == WAIT_IDLE


@pytest.mark.parametrize(("why", "make"), [
    ("unknown targets", lambda s: (s.trigger("e", vm_ids=["x"]), False)),
    ("too many targets", lambda s: (s.trigger("e", vm_ids=[str(i) for i in range(MAX_TARGETED + 1)]), True)),
    ("a trigger without ids", lambda s: (s.trigger("e", vm_ids=["x"]).trigger("node n waits"), True)),
    ("removed after started", lambda s: (s.trigger("node n waits").trigger("e", vm_ids=["x"]), True)),
])
def test_an_early_sweep_is_full_when_targets_cannot_answer_it(
        why: str, make: Callable[[Schedule], tuple[Schedule, bool]]) -> None:
    s, known = make(after_first_sweep())
    s, sweep = step(s, T0 + 1, known=known)
    assert sweep.kind is StepKind.FULL, why
    assert not s.early and not s.vm_targets and not s.needs_full  # a full sweep answers every trigger


def test_exactly_max_targeted_targets_are_still_targeted() -> None:
    s = after_first_sweep().trigger("e", vm_ids=[str(i) for i in range(MAX_TARGETED - 1)], host_ids=["h"])
    assert step(s, T0 + 1)[1].kind is StepKind.TARGETED


def test_a_due_periodic_sweep_is_full_even_with_targets() -> None:
    s = after_first_sweep().trigger("e", vm_ids=["x"])
    _, sweep = step(s, T0 + 60.0)
    assert sweep == Step(StepKind.FULL, reasons=("e",))


def test_a_failed_targeted_sweep_asks_for_a_full_one_without_backoff() -> None:
    s = after_first_sweep().trigger("e", vm_ids=["x"])
    s, sweep = step(s, T0 + 1)
    assert sweep.kind is StepKind.TARGETED
    s = s.targeted_finished(T0 + 2, ok=False)
    assert s.failures == 0 and s.needs_full and s.reasons == {REASON_TARGETED_FAILED}
    assert step(s, T0 + 2.2)[1].why == WAIT_DEBOUNCE
    _, full = step(s, T0 + 2.5)
    assert full == Step(StepKind.FULL, reasons=(REASON_TARGETED_FAILED,))


def test_triggers_during_a_sweep_wait_for_it_and_then_its_debounce() -> None:
    s, _ = step(Schedule(TIMING), T0)
    s = s.trigger("e", vm_ids=["x"])
    s, waiting = step(s, T0 + 5)
    assert waiting == Step(StepKind.WAIT, seconds=MAX_WAIT, why=WAIT_SWEEPING)
    s = s.full_finished(T0 + 5, ok=True, jitter=0.0)
    assert s.vm_targets == {"x"}  # kept: it came after the sweep's discovery
    assert step(s, T0 + 5.1)[1].why == WAIT_DEBOUNCE
    assert step(s, T0 + 5.5)[1].kind is StepKind.TARGETED


# --- joining nodes --------------------------------------------------------------------------------------------

def test_a_few_joining_nodes_make_a_targeted_sweep_that_refreshes_their_vms() -> None:
    """A kubelet joining: one GET of its VM, as the upstream node controller makes one cloud call per node, not a
    paged search of the fleet (before: every node waiting for initialization made a full sweep)."""
    s = after_first_sweep().trigger("node a waits", vm_ids=["a"], joining=True)
    s = s.trigger("node h waits", host_ids=["h"], joining=True)
    s, sweep = step(s, T0 + 0.5)
    assert sweep == Step(StepKind.TARGETED, reasons=("node a waits", "node h waits"), vm_ids=("a",),
                         host_ids=("h",))
    assert not s.joining_vms and not s.joining_hosts


def test_a_burst_of_joining_nodes_is_planned_from_the_last_discovery_with_the_events_refreshed() -> None:
    s = after_first_sweep().trigger("e", vm_ids=["x"])
    burst = [f"vm{i:04d}" for i in range(1000)]
    for vm_id in burst:
        s = s.trigger(f"node {vm_id} waits", vm_ids=[vm_id], joining=True)
    s = s.trigger("node x waits", vm_ids=["x"], joining=True)  # an event target is refreshed, not cached
    s, sweep = step(s, T0 + 0.5)
    assert sweep.kind is StepKind.TARGETED
    assert sweep.vm_ids == ("x",) and sweep.cached_vm_ids == tuple(burst) and sweep.host_ids == ()
    assert len(sweep.reasons) == 1002


def test_a_targeted_sweep_in_flight_takes_the_nodes_that_joined_meanwhile() -> None:
    """Its extension: no debounce, no second sweep; what it took already stays for the next sweep."""
    s, sweep = step(after_first_sweep().trigger("node a waits", vm_ids=["a"], joining=True), T0 + 0.5)
    assert sweep.kind is StepKind.TARGETED and s.sweeping is StepKind.TARGETED
    s = s.trigger("node b waits", vm_ids=["b"], joining=True).trigger("node h waits", host_ids=["h"], joining=True)
    taken, vm_ids, host_ids = s.take_joining(T0 + 0.6, everything_known, taken=frozenset({"a"}))
    assert (vm_ids, host_ids) == (("b",), ("h",))
    assert not taken.early and not taken.joining_vms and not taken.joining_hosts
    # a node whose owner the sweep took already (its node changed again meanwhile) waits for the next sweep
    again = taken.trigger("node a waits", vm_ids=["a"], joining=True)
    kept, vm_ids, host_ids = again.take_joining(T0 + 0.7, everything_known, taken=frozenset({"a", "b"}))
    assert (vm_ids, host_ids) == ((), ()) and kept == again
    both = again.trigger("node c waits", vm_ids=["c"], joining=True)
    left, vm_ids, _ = both.take_joining(T0 + 0.7, everything_known, taken=frozenset({"a", "b"}))
    assert vm_ids == ("c",) and left.joining_vms == {"a"} and left.early


@pytest.mark.parametrize(("why", "make", "now"), [
    ("a full sweep asked for", lambda s: s.trigger("became leader"), T0 + 1),
    ("an event target to refresh", lambda s: s.trigger("e", vm_ids=["x"]), T0 + 1),
    ("the periodic sweep due", lambda s: s, T0 + TIMING.interval + 1),
    ("the sweep started a minute ago", lambda s: replace(s, next_full=T0 + 3600), T0 + 0.5 + MAX_EXTENSION),
])
def test_no_extension_while_anything_else_is_pending(why: str, make: Callable[[Schedule], Schedule],
                                                     now: float) -> None:
    s, _ = step(after_first_sweep().trigger("node a waits", vm_ids=["a"], joining=True), T0 + 0.5)
    s = make(s.trigger("node b waits", vm_ids=["b"], joining=True))
    assert s.take_joining(now, everything_known) == (s, (), ()), why
    assert s.take_joining(T0 + 1, nothing_known)[1] == ()
    idle = after_first_sweep().trigger("node b waits", vm_ids=["b"], joining=True)
    assert idle.take_joining(T0 + 1, everything_known)[1] == ()  # no sweep in flight: the next one takes it


def test_exactly_max_targeted_joining_and_event_targets_are_all_refreshed() -> None:
    s = after_first_sweep().trigger("e", vm_ids=["x"])
    s = s.trigger("n", vm_ids=[str(i) for i in range(MAX_TARGETED - 1)], joining=True)
    _, sweep = step(s, T0 + 1)
    assert len(sweep.vm_ids) == MAX_TARGETED and sweep.cached_vm_ids == ()
    _, sweep = step(s.trigger("n2", vm_ids=["y"], joining=True), T0 + 1)
    assert sweep.vm_ids == ("x",) and len(sweep.cached_vm_ids) == MAX_TARGETED


@pytest.mark.parametrize(("why", "make"), [
    ("unknown joining owner", lambda s: (s.trigger("n", vm_ids=["x"], joining=True), False)),
    ("a node that names no VM", lambda s: (s.trigger("n", vm_ids=["x"], joining=True).trigger("node m waits"),
                                           True)),
    ("too many event targets", lambda s: (s.trigger("n", vm_ids=["x"], joining=True).trigger(
        "e", vm_ids=[str(i) for i in range(MAX_TARGETED + 1)]), True)),
])
def test_joining_nodes_go_with_a_full_sweep_when_one_is_needed(
        why: str, make: Callable[[Schedule], tuple[Schedule, bool]]) -> None:
    s, known = make(after_first_sweep())
    s, sweep = step(s, T0 + 1, known=known)
    assert sweep.kind is StepKind.FULL, why
    assert not s.early and not s.joining_vms


# --- standby and the node cache -------------------------------------------------------------------------------

def test_a_standby_never_sweeps_and_a_new_leader_sweeps_at_once() -> None:
    s = Schedule(TIMING).trigger("node n waits")
    s, standby = step(s, T0, leading=False)
    assert standby == Step(StepKind.STANDBY, seconds=MAX_WAIT)  # not a 0.05 s spin for the pending trigger
    assert s.next_full == T0 + 60 and s.early and s.sweeping is None
    s, idle = step(s, T0 + 2, leading=False)
    assert idle.kind is StepKind.STANDBY
    s, sweep = step(s.trigger("became leader"), T0 + 3)
    assert sweep == Step(StepKind.FULL, reasons=("became leader", "node n waits"))


def test_a_due_sweep_waits_for_the_node_cache() -> None:
    s, waiting = step(Schedule(TIMING), T0, synced=False)
    assert waiting == Step(StepKind.WAIT, seconds=0.5, why=WAIT_CACHE)
    assert s.sweeping is None
    assert step(s, T0 + 0.5)[1].kind is StepKind.FULL


# --- properties over random histories ----------------------------------------------------------------------

@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Trigger:
    vm_ids: tuple[str, ...]
    host_ids: tuple[str, ...]
    joining: bool = False


@dataclass(frozen=True)
class Lead:
    leading: bool


@dataclass(frozen=True)
class Sync:
    synced: bool


@dataclass(frozen=True)
class Finish:
    ok: bool
    jitter: float
    seconds: float


IDS = st.lists(st.sampled_from(["a", "b", "c", "unknown"]), max_size=3).map(tuple)
EVENTS = st.lists(st.one_of(
    st.builds(Advance, st.floats(0.0, 400.0)),
    st.builds(Trigger, IDS, st.lists(st.sampled_from(["h1", "h2"]), max_size=2).map(tuple), st.booleans()),
    st.builds(Trigger, st.lists(st.sampled_from("defghijk"), max_size=8).map(tuple), st.just(()), st.just(True)),
    st.builds(Lead, st.booleans()),
    st.builds(Sync, st.booleans()),
    st.builds(Finish, st.booleans(), st.floats(0.0, 0.999), st.floats(0.0, 30.0)),
), max_size=60)
TIMINGS = st.builds(Timing, interval=st.floats(1.0, 600.0), debounce=st.floats(0.0, 5.0),
                    backoff_base=st.floats(0.1, 60.0), backoff_max=st.floats(1.0, 900.0),
                    max_targeted=st.integers(1, 5))


def known(vm_ids: Sequence[str], host_ids: Sequence[str]) -> bool:
    return "unknown" not in vm_ids


@settings(max_examples=300, deadline=None)
@given(TIMINGS, EVENTS)
def test_the_schedule_never_overlaps_sweeps_never_sweeps_on_standby_and_bounds_backoff(
        timing: Timing, events: list[object]) -> None:
    s, now, leading, synced = Schedule(timing), T0, True, True
    in_flight: StepKind | None = None
    pending: set[str] = set()  # every target triggered and not yet taken by a sweep
    for event in events:
        if isinstance(event, Advance):
            now += event.seconds
        elif isinstance(event, Trigger):
            s = s.trigger("t", vm_ids=event.vm_ids, host_ids=event.host_ids, joining=event.joining)
            pending |= set(event.vm_ids) | set(event.host_ids)
        elif isinstance(event, Lead):
            leading = event.leading
        elif isinstance(event, Sync):
            synced = event.synced
        elif isinstance(event, Finish) and in_flight is not None:
            now += event.seconds
            before = s.failures
            if in_flight is StepKind.FULL:
                s = s.full_finished(now, ok=event.ok, jitter=event.jitter)
                if event.ok:
                    assert s.failures == 0
                    assert now + timing.interval - 1e-6 <= s.next_full <= now + timing.interval * 1.1 + 1e-6
                else:
                    assert s.failures == before + 1
                    wait = s.next_full - now
                    assert wait <= timing.backoff_max + 1e-6  # backoff bounded (the clock is a float near T0)
                    assert wait >= min(timing.backoff_max,
                                       timing.backoff_base * 2.0 ** min(s.failures - 1, 64)) / 2 - 1e-6
            else:
                s = s.targeted_finished(now, ok=event.ok)
                assert s.failures == before
                assert event.ok or s.needs_full
            in_flight = None
        previous = s
        s, nxt = s.next_step(now, leading=leading, synced=synced, known=known)
        if nxt.sweeps:
            assert in_flight is None  # never two sweeps at once
            assert leading and synced  # never a sweep on standby or without the node cache
            assert previous.due(now)  # never before the debounce or backoff, unless the periodic one is due
            assert not s.early and not s.vm_targets and not s.host_targets and not s.needs_full
            assert not s.joining_vms and not s.joining_hosts
            if nxt.kind is StepKind.TARGETED:
                assert now < previous.next_full and not previous.needs_full
                refreshed, cached = {*nxt.vm_ids, *nxt.host_ids}, {*nxt.cached_vm_ids, *nxt.cached_host_ids}
                assert len(refreshed) + len(cached) > 0 and len(refreshed) <= timing.max_targeted
                assert not cached or len(refreshed) + len(cached) > timing.max_targeted  # few: all refreshed
                assert not refreshed & cached
                assert known((*nxt.vm_ids, *nxt.cached_vm_ids), nxt.host_ids)
                # every target taken; the refreshed ones are every event target and, when few, the joining ones
                assert refreshed | cached == (previous.vm_targets | previous.host_targets | previous.joining_vms
                                              | previous.joining_hosts)
                assert previous.vm_targets | previous.host_targets <= refreshed
            pending.clear()
            in_flight = nxt.kind
            assert s.sweeping is nxt.kind
        else:
            assert MIN_WAIT <= nxt.seconds <= MAX_WAIT
            assert s.vm_targets | s.host_targets | s.joining_vms | s.joining_hosts == pending  # no trigger lost
            if in_flight is None and leading and synced:
                assert not previous.due(now)  # a due sweep is never postponed
            if nxt.kind is StepKind.STANDBY:
                assert not leading and s.next_full == now + timing.interval



def test_an_owner_the_sweep_took_is_not_taken_again_whatever_its_spelling() -> None:
    """The controller hands ``taken`` in canonical form (core/providerid.py) while the joining owners are spelled as
    the discovery spells them: an owner the sweep took must not be planned a second time by its extension (a
    second initialization from a node cache that has not seen the first: a spurious 409) because the engine
    spells its id in upper case or with braces."""
    vm = "6F1C8F0E-1111-4B4B-9C9C-000000000001"
    s, _ = step(after_first_sweep().trigger("node a waits", vm_ids=[vm], joining=True), T0 + 0.5)
    s = s.trigger("node a changed", vm_ids=[vm], joining=True).trigger("node h", host_ids=["{H-1}"], joining=True)
    kept, vm_ids, host_ids = s.take_joining(T0 + 0.6, everything_known, taken=frozenset({vm.lower()}),
                                            taken_hosts=frozenset({"{h-1}"}))
    assert (vm_ids, host_ids) == ((), ()) and kept == s
