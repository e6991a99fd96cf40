"""Writes at scale: the token bucket (deterministic, injected clock), the writer's bounded pool (every action
applied and counted, per-node order kept, stop and may_write honoured, every request rate-limited) and its
progress log."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.core.records import TAINT_SHUTDOWN, TAINT_UNINITIALIZED, Action, ActionKind, Taint
from ovirt_cloudprovider.kube.ratelimit import TokenBucket
from ovirt_cloudprovider.kube.workqueue import MAX_FOLLOW_UPS
from ovirt_cloudprovider.kube.writer import NodeWriter, _by_node
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.kube.test_kube import observe, register, spec_for, taints_of, writes


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float, stop: threading.Event | None) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


# --- the token bucket -----------------------------------------------------------------------------------

def test_bucket_starts_full_then_paces_at_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 3, clock=clock, wait=clock.wait)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # empty: the next callers reserve the coming tokens, in order, 1/qps apart
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)


def test_bucket_refills_up_to_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 4, clock=clock, wait=clock.wait)
    for _ in range(4):
        bucket.reserve()
    clock.now += 1.0  # two tokens back
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.5)
    clock.now += 3600  # a long pause refills to burst, not beyond
    assert [bucket.reserve() for _ in range(4)] == [0.0] * 4
    assert bucket.reserve() == pytest.approx(0.5)


def test_acquire_waits_for_the_reserved_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4, 1, clock=clock, wait=clock.wait)
    assert bucket.acquire() and clock.waits == []
    assert bucket.acquire() and clock.waits == [pytest.approx(0.25)]
    assert bucket.acquire() and clock.waits == [pytest.approx(0.25), pytest.approx(0.25)]
    # 20 acquisitions at 4/s take 5 s of (fake) time after the first token
    for _ in range(20):
        bucket.acquire()
    assert clock.now == pytest.approx(100.0 + 0.5 + 5.0)


def test_acquire_honours_stop() -> None:
    clock = FakeClock()
    stop = threading.Event()
    interrupted: list[float] = []

    def wait(seconds: float, ev: threading.Event | None) -> bool:
        interrupted.append(seconds)
        assert ev is stop
        return True  # stop came while waiting

    bucket = TokenBucket(1, 1, clock=clock, wait=wait)
    assert bucket.acquire(stop)
    assert not bucket.acquire(stop) and interrupted == [pytest.approx(1.0)]
    stop.set()
    assert not bucket.acquire(stop) and len(interrupted) == 1  # stopped: no wait, no token taken


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 5), (5, 0)])
def test_bucket_rejects_bad_settings(qps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(qps, burst)


# --- the pool -------------------------------------------------------------------------------------------

def specs(n: int) -> list[Any]:
    return [spec_for(f"w{i:03d}", vm_id=f"6f1c8f0e-1111-4b4b-9c9c-{i:012d}") for i in range(n)]


class CountingBucket(TokenBucket):
    def __init__(self) -> None:
        super().__init__(1e9, 1_000_000)
        self.taken = 0
        self._count_lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> bool:
        with self._count_lock:
            self.taken += 1
        return super().acquire(stop)


def test_pool_applies_and_counts_every_action(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client
    limiter = CountingBucket()
    writer = NodeWriter(api, workers=4, limiter=limiter, event_repeat_interval=0.0)
    result = writer.apply([register(s) for s in specs(24)])
    assert (result.applied, result.failed, result.conflicts, result.interrupted) == (24, 0, 0, 0)
    assert result.tallies == (("register", "success", 24),)
    assert sorted(n["metadata"]["name"] for n in kubeapi.list_nodes()) == [f"w{i:03d}" for i in range(24)]
    # every request went through the limiter: a create (carrying the status) and an Event per node
    assert limiter.taken == writes(kubeapi) == 24 * 2


def test_pool_keeps_the_order_of_one_nodes_actions(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client
    writer = NodeWriter(api, workers=8)
    assert writer.apply([register(s) for s in specs(16)]).applied == 16
    actions: list[Action] = []
    for i in range(16):
        node = observe(kubeapi, f"w{i:03d}")
        # the taint carries the planned resourceVersion; the label update after it would change the
        # node, so applying the two out of order answers 409
        actions.append(Action(kind=ActionKind.TAINT, node=node.name, reason="VMShutdown", message="down",
                              uid=node.uid, resource_version=node.resource_version,
                              taints=(Taint(TAINT_SHUTDOWN, "NoSchedule"),)))
        actions.append(Action(kind=ActionKind.UPDATE, node=node.name, reason="LabelsChanged", message="labels",
                              uid=node.uid, resource_version=node.resource_version,
                              labels=(("example.test/sweep", "2"),)))
    result = writer.apply(actions)
    assert (result.applied, result.conflicts, result.failed) == (32, 0, 0), result.errors
    assert all(taints_of(kubeapi, f"w{i:03d}")[0]["key"] == TAINT_SHUTDOWN for i in range(16))


def test_pool_counts_conflicts_and_failures(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client
    writer = NodeWriter(api, workers=4, attempts=1)  # no retries: one 500 fails one action
    kubeapi.fail_next(1, code=409, verb="create", resource="nodes")  # AlreadyExists: a conflict
    kubeapi.fail_next(1, code=500, verb="create", resource="nodes")
    result = writer.apply([register(s) for s in specs(6)])
    assert (result.applied, result.conflicts, result.failed, result.interrupted) == (4, 1, 1, 0)
    assert result.count("register", "conflict") == 1 and result.count("register", "error") == 1
    assert len(result.errors) == 2 and all("\n" not in e for e in result.errors)


def test_no_write_after_may_write_says_no(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client

    def may_write() -> bool:  # leadership lost once the fifth node exists (asked right before every request)
        return len(kubeapi.list_nodes()) < 5

    writer = NodeWriter(api, workers=1)
    result = writer.apply([register(s) for s in specs(40)], may_write=may_write)
    assert result.applied == 5 and result.interrupted == 35 and result.failed == 0
    assert len(kubeapi.list_nodes()) == 5
    # the Events come after the nodes' first writes (kube/workqueue.py): once the fence said no, none was sent
    assert kubeapi.list_events() == []


def test_stop_before_apply_writes_nothing(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client
    stop = threading.Event()
    stop.set()
    result = NodeWriter(api, workers=4, stop=stop).apply([register(s) for s in specs(10)])
    assert (result.applied, result.interrupted) == (0, 10)
    assert writes(kubeapi) == 0


def test_stop_interrupts_a_wait_for_a_token(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = kube_api_client
    stop = threading.Event()
    # one token, then one every 1000 s: the first create goes, everything else waits for a token
    writer = NodeWriter(api, workers=4, stop=stop, limiter=TokenBucket(0.001, 1))
    results: list[Any] = []
    t = threading.Thread(target=lambda: results.append(writer.apply([register(s) for s in specs(8)])))
    t.start()
    threading.Timer(0.3, stop.set).start()
    t.join(60)
    assert not t.is_alive(), "stop did not interrupt the wait for a rate-limit token"
    result = results[0]
    # the one create is a whole registration (its status came with it; its Event waited for a token and
    # was dropped by the stop); the other seven were interrupted
    assert result.applied == 1 and result.interrupted == 7
    assert writes(kubeapi, "nodes") == 1 and writes(kubeapi, "nodes/status") == 0 and not kubeapi.list_events()
    (node,) = kubeapi.list_nodes()
    assert node["status"]["nodeInfo"]["systemUUID"] and node["status"]["addresses"]


# --- the progress log -----------------------------------------------------------------------------------

def skips(n: int) -> list[Action]:
    return [Action(kind=ActionKind.SKIP, node=f"s{i:05d}", reason="InvalidName", message="bad",
                   vm_id=f"vm-{i}") for i in range(n)]


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(r.fields) for r in caplog.records  # type: ignore[attr-defined]
            if r.getMessage() == "applying actions"]


def test_progress_every_thousand_actions(kube_api_client: k8s.ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    api = kube_api_client
    caplog.set_level(logging.INFO, logger="ovirt_cloudprovider.kube.writer")
    clock = FakeClock()  # time stands still: only the count triggers
    NodeWriter(api, workers=4, clock=clock).apply(skips(2500))
    lines = progress_lines(caplog)
    assert [(x["done"], x["total"]) for x in lines] == [(1000, 2500), (2000, 2500)]


def test_progress_every_five_seconds(kube_api_client: k8s.ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    api = kube_api_client
    caplog.set_level(logging.INFO, logger="ovirt_cloudprovider.kube.writer")
    def clock() -> float:  # one second per action: the time is the number of actions done so far
        return float(sum(r.getMessage() == "VM skipped" for r in caplog.records))

    NodeWriter(api, workers=1, clock=clock).apply(skips(12))
    lines = progress_lines(caplog)
    assert [x["done"] for x in lines] == [5, 10]
    assert lines[0]["rate"] == 1.0 and lines[1]["seconds"] == 10.0


# --- the order of a batch's writes (kube/workqueue.py) -----------------------------------------------------

def initializations(kubeapi: KubeApiSimulator, n: int) -> list[Action]:
    """``n`` kubelet nodes (the uninitialized taint, no providerID) and the INITIALIZE of each."""
    actions = []
    for spec in specs(n):
        kubeapi.register_kubelet_node(spec.name, lease=False)
        obs = observe(kubeapi, spec.name)
        actions.append(Action(kind=ActionKind.INITIALIZE, node=spec.name, reason="InitializedNode",
                              message=f"Initialized node from VM {spec.name}", vm_id=spec.vm_id, uid=obs.uid,
                              resource_version=obs.resource_version, spec=spec, labels=spec.labels,
                              taints=tuple(t for t in obs.taints if t.key != TAINT_UNINITIALIZED),
                              provider_id=spec.provider_id, addresses=spec.addresses))
    return actions


def writes_in_order(kubeapi: KubeApiSimulator) -> list[tuple[str, str]]:
    """(what, node) of every write the simulator answered, in the order it received them."""
    found = []
    for r in sorted(kubeapi.requests, key=lambda r: r.received):
        if r.verb == "patch" and r.resource in ("nodes", "nodes/status"):
            found.append((r.resource, r.name))
        elif r.verb == "create" and r.resource == "events":
            found.append(("events", ""))
    return found


def test_a_batch_of_initializations_removes_every_taint_before_the_follow_ups(
        kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    """Issue 20, part 4: the initializing patch (providerID, taint removal: when the node becomes usable) of every
    node of a batch goes before the batch's address patches, and those before its Events; one node's requests stay
    in order (its addresses after its taint removal, its Event last)."""
    actions = initializations(kubeapi, 24)
    kubeapi.reset_counts()
    # one worker: the order in which the requests are handed out is the order the API receives them
    result = NodeWriter(kube_api_client, workers=1, event_repeat_interval=0.0).apply(actions)
    assert (result.applied, result.failed, result.conflicts) == (24, 0, 0), result.errors
    names = [spec.name for spec in specs(24)]
    assert writes_in_order(kubeapi) == [("nodes", n) for n in names] + [("nodes/status", n) for n in names] + \
        [("events", "")] * 24
    for spec in specs(24):  # every node initialized, with its addresses and its Event
        node = kubeapi.get_node(spec.name) or {}
        assert node["spec"]["providerID"] == spec.provider_id
        assert TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints") or []}
        assert [(a["type"], a["address"]) for a in node["status"]["addresses"]] == \
            [(a.type, a.address) for a in spec.addresses]
        assert [e["reason"] for e in kubeapi.list_events(involved_name=spec.name)] == ["InitializedNode"]


def test_a_nodes_addresses_wait_for_a_bounded_number_of_other_nodes(
        kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    """The rule that keeps the reordering safe: a node's address patch waits for at most MAX_FOLLOW_UPS other
    nodes' initializing patches (plus a few in flight), never for a whole large batch."""
    actions = initializations(kubeapi, MAX_FOLLOW_UPS * 2 + 40)
    kubeapi.reset_counts()
    result = NodeWriter(kube_api_client, workers=1, event_repeat_interval=0.0).apply(actions)
    assert result.applied == len(actions), result.errors
    order = writes_in_order(kubeapi)
    waited = []
    for spec in specs(len(actions)):
        first = order.index(("nodes", spec.name))
        then = order.index(("nodes/status", spec.name))
        assert first < then
        waited.append(sum(1 for what, _ in order[first + 1:then] if what == "nodes"))
    assert max(waited) == MAX_FOLLOW_UPS - 1, waited


def test_parallel_workers_keep_each_nodes_order(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    actions = initializations(kubeapi, 40)
    kubeapi.reset_counts()
    result = NodeWriter(kube_api_client, workers=8, event_repeat_interval=0.0).apply(actions)
    assert (result.applied, result.failed, result.conflicts) == (40, 0, 0), result.errors
    order = writes_in_order(kubeapi)
    for spec in specs(40):
        assert order.index(("nodes", spec.name)) < order.index(("nodes/status", spec.name))
        assert [e["reason"] for e in kubeapi.list_events(involved_name=spec.name)] == ["InitializedNode"]
        assert (kubeapi.get_node(spec.name) or {})["spec"]["providerID"] == spec.provider_id


def test_actions_are_grouped_by_node_in_order_sorted_or_not() -> None:
    """The writer's groups: each node's actions in their order, nodes in the order of their first action, whether
    the actions come sorted by node (the planner's: then no index of every node is built) or not."""
    rng = random.Random(20)
    for _ in range(200):
        actions = [Action(kind=ActionKind.UPDATE, node=rng.choice(["a", "b", "c", "", "d"]), reason="r",
                          message=str(i), vm_id=rng.choice(["v1", "v2", None])) for i in range(rng.randrange(12))]
        for given in (actions, sorted(actions, key=lambda a: (a.node, a.vm_id or ""))):
            want: dict[str, list[tuple[int, Action]]] = {}
            for index, action in enumerate(given):
                want.setdefault(action.node or f"\x00vm:{action.vm_id or ''}", []).append((index, action))
            count, groups = _by_node(given)
            assert (count, list(groups)) == (len(want), list(want.values()))
