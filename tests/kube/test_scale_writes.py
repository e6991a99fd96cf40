"""Writes at scale: the token bucket (deterministic, injected clock), the writer's bounded pool (every action
applied and counted, per-node order kept, stop and may_write honoured, every request rate-limited) and its
progress log."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.core.records import TAINT_SHUTDOWN, Action, ActionKind, Taint
from ovirt_cloudprovider.kube.ratelimit import TokenBucket
from ovirt_cloudprovider.kube.writer import NodeWriter
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
    assert len(kubeapi.list_events()) == 4  # the fifth node's Event came after the fence: not sent


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
