"""kube/leader.py against the Kubernetes API simulator: real Lease objects over HTTP, short durations.

Each elector gets its own ApiClient (its own connection pool), as separate replicas would.
Durations: lease 2 s, renew deadline 1.5 s, retry 0.3 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict, cast

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.core.records import Action, ApplyResult
from ovirt_cloudprovider.kube.client import load_api_client
from ovirt_cloudprovider.kube.leader import LeaderElector
from ovirt_cloudprovider.kube.ratelimit import TokenBucket
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.logs import TextFormatter
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from ovirt_cloudprovider.simulators.kubeapi.faults import WRITE_VERBS
from tests.helpers import REPO, wait_for
from tests.kube.test_kube import register, spec_for
from tests.kube_fixtures import write_rotating_kubeconfig
from tests.kube_types import close, wire

NS = "kube-system"
LEASE = "ovirt-cloudprovider"
class Timing(TypedDict):
    lease_duration: float
    renew_deadline: float
    retry_period: float


FAST: Timing = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


class Replica:
    """One elector running in its own thread, with what its callbacks saw."""

    def __init__(self, api: k8s.ApiClient, identity: str, *, name: str = LEASE, **kw: Any) -> None:
        self.calls: list[str] = []
        self.metrics = Metrics()
        self.elector = LeaderElector(api, namespace=NS, name=name, identity=identity, metrics=self.metrics,
                                     on_started_leading=lambda: self.calls.append("started"),
                                     on_stopped_leading=lambda: self.calls.append("stopped"),
                                     **{**FAST, **kw})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.elector.run, args=(self.stop,), daemon=True)
        self.thread.start()

    @property
    def leading(self) -> bool:
        return self.elector.is_leader

    @property
    def gauge(self) -> float:
        return self.metrics.registry.get_sample_value("ovirt_cloudprovider_leader") or 0.0

    def kill(self) -> None:
        """Stop without releasing the Lease, like a killed process."""
        self.stop.set()
        self.thread.join(3)


@pytest.fixture
def replicas(kubeapi: KubeApiSimulator, api_client_for: Callable[..., k8s.ApiClient]) -> Iterator[Any]:
    made: list[Replica] = []

    def start(identity: str, **kw: Any) -> Replica:
        r = Replica(api_client_for(kubeapi), identity, **kw)
        made.append(r)
        return r

    yield start
    for r in made:
        r.kill()


def lease_spec(sim: KubeApiSimulator, name: str = LEASE) -> dict[str, Any]:
    lease = sim.get_lease(NS, name)
    assert lease is not None
    return dict(lease["spec"])


def test_two_candidates_one_leader(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a, b = replicas("replica-a"), replicas("replica-b")
    assert wait_for(lambda: a.leading or b.leading, timeout=3)
    leader, standby = (a, b) if a.leading else (b, a)
    renewals = []
    for _ in range(40):  # 1.2 s: several renewals; never two leaders
        assert leader.leading and not standby.leading
        renewals.append(lease_spec(kubeapi)["renewTime"])
        time.sleep(0.03)
    spec = lease_spec(kubeapi)
    assert spec["holderIdentity"] == leader.elector.identity
    assert spec["leaseDurationSeconds"] == 2 and spec.get("leaseTransitions", 0) == 0
    assert len(set(renewals)) >= 3  # renewed every retry period
    assert (leader.gauge, standby.gauge) == (1.0, 0.0)
    assert leader.calls == ["started"] and standby.calls == []


def test_standby_takes_over_after_the_lease_expires(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    b = replicas("replica-b")
    time.sleep(0.5)
    assert not b.leading
    a.kill()
    killed = time.monotonic()
    assert not a.leading and a.calls == ["started", "stopped"]
    assert wait_for(lambda: b.leading, timeout=5)
    took = time.monotonic() - killed
    # not before the lease duration (counted from b's last observed renewal), soon after it
    # b last saw a renewal up to one (jittered) retry period before the kill
    assert 2.0 - 0.66 - 0.05 <= took <= 3.2, took
    spec = lease_spec(kubeapi)
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1


def test_release_hands_over_promptly(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    b = replicas("replica-b")
    time.sleep(0.4)
    a.stop.set()
    start = time.monotonic()
    assert a.elector.release()
    assert time.monotonic() - start < 1.0
    assert not a.leading and a.gauge == 0.0
    released = time.monotonic()
    assert wait_for(lambda: b.leading, timeout=3)
    assert time.monotonic() - released < 1.0
    spec = lease_spec(kubeapi)
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1


def test_release_as_standby_changes_nothing(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    b = replicas("replica-b")
    time.sleep(0.4)
    b.stop.set()
    kubeapi.reset_counts()
    assert b.elector.release()
    time.sleep(0.05)  # the simulator records a request after answering it
    assert kubeapi.count(verb="update", resource="leases") <= 2  # only a's renewals
    assert lease_spec(kubeapi)["holderIdentity"] == "replica-a" and a.leading


def test_renew_failure_stops_leading_within_the_deadline(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    kubeapi.fail_next(10_000, code=500, resource="leases")
    failing = time.monotonic()
    assert wait_for(lambda: not a.leading, timeout=3, interval=0.005)
    lost = time.monotonic() - failing
    assert lost <= 1.5 + 0.05, lost  # the renew deadline, counted from the last successful renewal
    assert wait_for(lambda: a.calls == ["started", "stopped"] and a.gauge == 0.0, timeout=1)
    # the API server recovers: the Lease still names us, so we lead again (no transition)
    kubeapi.clear_faults()
    assert wait_for(lambda: a.leading, timeout=3)
    assert a.calls == ["started", "stopped", "started"]
    assert lease_spec(kubeapi).get("leaseTransitions", 0) == 0


def test_expiry_is_measured_on_our_clock(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient,
                                         replicas: Any) -> None:
    """A holder whose clock is far behind (or ahead) is given a full lease duration from when we first
    saw its record, whatever renewTime says."""
    coord = k8s.CoordinationV1Api(kube_api_client)
    for name, when in (("behind", "2001-01-01T00:00:00.000001Z"), ("ahead", "2099-01-01T00:00:00.000001Z")):
        coord.create_namespaced_lease(NS, wire({
            "metadata": {"name": name},
            "spec": {"holderIdentity": "other-replica", "leaseDurationSeconds": 1, "renewTime": when,
                     "acquireTime": when, "leaseTransitions": 4}}))
    behind, ahead = replicas("me", name="behind"), replicas("me", name="ahead")
    time.sleep(0.7)
    assert not behind.leading and not ahead.leading  # seen only now: valid for another second
    assert wait_for(lambda: behind.leading and ahead.leading, timeout=3)
    for name in ("behind", "ahead"):
        spec = lease_spec(kubeapi, name)
        assert spec["holderIdentity"] == "me" and spec["leaseTransitions"] == 5


def test_lease_timestamps_are_micro_times(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    spec = lease_spec(kubeapi)
    for key in ("acquireTime", "renewTime"):
        assert len(spec[key]) == len("2026-01-01T00:00:00.000000Z") and spec[key].endswith("Z"), spec[key]


@pytest.mark.parametrize("durations", [(2.0, 2.0, 0.3), (2.0, 1.0, 1.0), (1.0, 2.0, 0.5), (2.0, 1.0, 0.0)])
def test_inconsistent_durations_are_refused(kube_api_client: k8s.ApiClient,
                                            durations: tuple[float, float, float]) -> None:
    lease, renew, retry = durations
    with pytest.raises(ValueError, match="lease_duration > renew_deadline > retry_period"):
        LeaderElector(kube_api_client, namespace=NS, name=LEASE, identity="x", lease_duration=lease,
                      renew_deadline=renew, retry_period=retry)
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(kube_api_client, namespace=NS, name=LEASE, identity="")


def test_the_shipped_role_is_enough(kubeapi_sims: Callable[..., KubeApiSimulator],
                                    api_client_for: Callable[..., k8s.ApiClient]) -> None:
    """Acquire, renew and release with only what deploy/role.yaml grants (get/update on the named Lease,
    create in the namespace)."""

    from ovirt_cloudprovider.simulators.kubeapi import RbacPolicy

    deploy = REPO / "deploy"
    policy = RbacPolicy.from_yaml_files(sorted(deploy.glob("*role*.yaml")),
                                        service_account="ovirt-cloudprovider:ovirt-cloudprovider")
    sim = kubeapi_sims(token="sa-token", rbac=policy, namespaces=("ovirt-cloudprovider",))
    elector = LeaderElector(api_client_for(sim), namespace="ovirt-cloudprovider", name="ovirt-cloudprovider",
                            identity="pod-0", **FAST)
    stop = threading.Event()
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: elector.is_leader, timeout=3)
        time.sleep(0.7)  # a few renewals
        assert elector.is_leader
    finally:
        stop.set()
        thread.join(3)
    assert elector.release()
    lease = sim.get_lease("ovirt-cloudprovider", "ovirt-cloudprovider")
    assert lease is not None and lease["spec"].get("holderIdentity", "") == ""
    assert lease["spec"]["leaseDurationSeconds"] == 1
    assert sim.forbidden == []


def test_micro_times_survive_the_client_round_trip() -> None:
    """The client turns our MicroTime string into a datetime and back with isoformat(), which drops a zero
    fraction; a real API server then rejects the Lease (exactly six digits required). We never send one."""
    from datetime import datetime, timezone

    from ovirt_cloudprovider.kube.leader import _micro_time

    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    text = _micro_time(whole)
    assert text == "2026-01-02T03:04:05.000001Z"
    spec = k8s.V1LeaseSpec(renew_time=cast(Any, text))  # the model parses the string (what this is about)
    sent = k8s.ApiClient().sanitize_for_serialization(spec)["renewTime"]  # type: ignore[no-untyped-call]
    assert len(sent.split(".")[1].rstrip("Z").split("+")[0]) == 6, sent


def test_renewing_keeps_a_whole_second_acquire_time_valid(kubeapi: KubeApiSimulator, replicas: Any) -> None:
    """Our own Lease, acquired at a whole second (e.g. by a previous version of us or client-go):
    renewals must keep acquireTime and still send a valid MicroTime."""
    import json
    import urllib.request

    # raw HTTP: the Python client itself cannot send a whole-second MicroTime
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE}, "spec": {
        "holderIdentity": "replica-a", "leaseDurationSeconds": 2, "leaseTransitions": 3,
        "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z"}}
    req = urllib.request.Request(f"{kubeapi.url}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    time.sleep(0.5)
    assert a.leading
    spec = lease_spec(kubeapi)
    assert spec["acquireTime"].startswith("2026-01-01T00:00:00.00000") and spec["leaseTransitions"] == 3


# --- the fence: no write reaches the API server after the renew deadline ---------------------------------

IN_FLIGHT = 0.1  # seconds between the last check and the request's arrival, for a write checked just in time


def late_writes(sim: KubeApiSimulator, deadline: float) -> list[tuple[str, str, int, float]]:
    """The node and Event writes (any answer) whose request arrived after ``deadline`` (plus IN_FLIGHT)."""
    time.sleep(0.05)  # the simulator records a request after answering it
    return [(r.verb, r.resource or "", r.code, round(r.received - deadline, 2)) for r in sim.requests
            if r.verb in WRITE_VERBS and r.resource != "leases" and r.received > deadline + IN_FLIGHT]


def apply_in_thread(writer: NodeWriter, actions: list[Action], may_write: Callable[[], bool]) -> Any:
    results: list[ApplyResult] = []
    t = threading.Thread(target=lambda: results.append(writer.apply(actions, may_write=may_write)), daemon=True)
    t.start()
    return t, results


def registrations(n: int) -> list[Action]:
    return [register(spec_for(f"fence{i:02d}", vm_id=f"6f1c8f0e-2222-4b4b-9c9c-{i:012d}")) for i in range(n)]


def test_no_write_after_the_fence_under_throttling(kubeapi: KubeApiSimulator, replicas: Any,
                                                   api_client_for: Callable[..., k8s.ApiClient]) -> None:
    """kube_api_qps = 1: the writer's workers queue for tokens; those that get one after the renew deadline
    (the lease renewals fail meanwhile) never send their write, nor an Event."""
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    writer = NodeWriter(api_client_for(kubeapi), workers=4, limiter=TokenBucket(1, 1), event_repeat_interval=0.0)
    t, results = apply_in_thread(writer, registrations(6), lambda: a.elector.is_leader)
    time.sleep(0.3)
    kubeapi.fail_next(100_000, code=500, resource="leases")  # the renewals fail from now on
    assert wait_for(lambda: not a.leading, timeout=3, interval=0.005)
    deadline = a.elector.fence_deadline
    t.join(30)
    assert not t.is_alive()
    assert late_writes(kubeapi, deadline) == []
    result = results[0]
    assert result.applied >= 1 and result.interrupted >= 1 and result.failed == 0


@pytest.mark.parametrize("code", [429, 503])
def test_no_retry_after_the_fence_in_an_error_storm(kubeapi: KubeApiSimulator, replicas: Any,
                                                    api_client_for: Callable[..., k8s.ApiClient], code: int) -> None:
    """Every request (the Lease renewals too) answered 429 or 503 with ``Retry-After: 1``: the writer's
    retries stop at the renew deadline instead of going on for seconds."""
    a = replicas("replica-a")
    assert wait_for(lambda: a.leading, timeout=3)
    kubeapi.fail_next(100_000, code=code, retry_after=1)
    writer = NodeWriter(api_client_for(kubeapi), workers=4, attempts=8, event_repeat_interval=0.0)
    t, results = apply_in_thread(writer, registrations(3), lambda: a.elector.is_leader)
    assert wait_for(lambda: not a.leading, timeout=3, interval=0.005)
    deadline = a.elector.fence_deadline
    t.join(30)
    assert not t.is_alive()
    assert late_writes(kubeapi, deadline) == []
    result = results[0]
    assert result.applied == 0 and result.interrupted == 3
    assert kubeapi.list_nodes() == []


def test_an_unexpected_error_ends_the_elector_with_its_reason_and_leadership(
        kubeapi_sims: Callable[..., KubeApiSimulator], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An exception that is no request error (here: the token rotated to a value http.client refuses as a header,
    a ValueError) ends ``run``: leadership and the fence end at once, ``failure`` says why in one line without the
    token, and one error line is logged (the traceback only with -v); app.run_controller then exits 1."""
    sim = kubeapi_sims(tls=True, token="leader-test-token")
    path, token_file = write_rotating_kubeconfig(sim, tmp_path)
    api = load_api_client(path)
    caplog.set_level(logging.INFO, logger="ovirt_cloudprovider.kube.leader")
    r = Replica(api, "replica-a")
    try:
        assert wait_for(lambda: r.leading, timeout=5)
        token_file.write_text("r0tated-S3cret\nrest")
        r.thread.join(5)
        assert not r.thread.is_alive() and not r.leading and r.gauge == 0 and r.calls == ["started", "stopped"]
        assert r.elector.failure is not None and r.elector.failure.startswith("ValueError: Invalid header value")
        errors = [TextFormatter().format(rec) for rec in caplog.records if rec.levelno >= logging.ERROR]
        assert len(errors) == 1 and "leader election failed" in errors[0] and "Traceback" not in errors[0], errors
        assert "r0tated-S3cret" not in r.elector.failure + errors[0]
    finally:
        r.kill()
        close(api)
