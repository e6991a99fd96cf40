"""Process faults: real ``ovirt-cloudprovider run`` processes (debug verbosity, the hard password) against both
loopback simulators. kill -9 in the middle of a sweep and of an apply, then a restart: no duplicate node, no
orphaned placeholder. Two replicas, the leader paused (SIGSTOP) past its lease and resumed: it writes nothing
after losing the lease; the leader killed: the standby takes over. SIGTERM during a sweep and during a hung SSO:
exit within 5 s, Lease released. Replica A authenticates as the deploy/ service account (RBAC enforced), replica
B as the admin, so that the API server's request log says who wrote what.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovirt_cloudprovider.core.records import LABEL_MANAGED_BY, RUNNING_STATUSES, TAINT_SHUTDOWN
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.deploy.test_rbac import ADMIN, NAMESPACE, SA_USER, TOKEN
from tests.faults.conftest import FIGURES, SECRET, sightings
from tests.faults.world import FOREIGN, make_engine, rbac_kube, seed_cluster
from tests.helpers import REPO, wait_for, write_config

LEASE = "ovirt-cloudprovider"
API_VMS = "/ovirt-engine/api/vms"
CONTROLLER = ("[controller]\nsync_interval = 5\nevent_poll_interval = 1\nlease_duration = 3\nrenew_deadline = 2\n"
              f"retry_period = 0.5\ndelete_after_sweeps = 2\nleader_elect_namespace = {NAMESPACE}\n")
WRITES = ("create", "update", "patch", "delete")


class Replica:
    def __init__(self, name: str, config: Path, kubeconfig: str, log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}
        env["POD_NAME"] = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ovirt_cloudprovider", "run", "-v", "--config", str(config), "--kubeconfig",
             kubeconfig, "--metrics-bind-address=127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env=env, cwd=REPO)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with make_engine() as sim:
        yield sim


@pytest.fixture
def kube() -> Iterator[KubeApiSimulator]:
    with rbac_kube() as sim:
        yield sim


@pytest.fixture
def start(tmp_path: Path, engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[Callable[..., Replica]]:
    config = write_config(tmp_path / "ovirt-cloud.conf", uri=engine.url, password=SECRET, ca_file=engine.ca_file,
                          extra=CONTROLLER)
    configs = {"sa": kube.write_kubeconfig(tmp_path / "kubeconfig-sa", token=TOKEN),
               "admin": kube.write_kubeconfig(tmp_path / "kubeconfig-admin", token=ADMIN)}
    started: list[Replica] = []

    def run(name: str, who: str = "sa") -> Replica:
        r = Replica(name, config, configs[who], tmp_path)
        started.append(r)
        return r

    yield run
    for r in started:
        r.kill()
    texts = [line for r in started for line in r.logs().splitlines()]
    tracebacks = sum(1 for t in texts if "Traceback (most recent call last)" in t)
    seen = sightings(texts)
    FIGURES.record("process", cases=0, tracebacks=tracebacks, secret_sightings=len(seen))
    assert tracebacks == 0 and not seen, (seen or [t for t in texts if "Traceback" in t])[:3]


def holder(kube: KubeApiSimulator) -> str | None:
    return ((kube.get_lease(NAMESPACE, LEASE) or {}).get("spec") or {}).get("holderIdentity") or None


def converged(engine: EngineSimulator, kube: KubeApiSimulator) -> bool:
    running = {vm.id for vm in engine.fleet.vms.values()
               if vm.status in RUNNING_STATUSES and vm.name.startswith("k8s-")}
    ids = Counter(n["spec"].get("providerID", "").removeprefix("ovirt://") for n in kube.list_nodes())
    return running <= set(ids)


def check_nodes(engine: EngineSimulator, kube: KubeApiSimulator, kubelet: dict[str, str]) -> tuple[int, int]:
    """(nodes lost, wrong nodes): duplicates, orphaned placeholders, kubelet/foreign nodes gone or replaced."""
    nodes = kube.list_nodes()
    ids = Counter(n["spec"].get("providerID") for n in nodes if n["spec"].get("providerID", "").startswith("ovirt"))
    duplicates = sum(c - 1 for c in ids.values() if c > 1)
    running = {vm.id for vm in engine.fleet.vms.values() if vm.status in RUNNING_STATUSES}
    orphans = sum(1 for n in nodes if (n["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY)
                  and n["spec"].get("providerID", "").removeprefix("ovirt://") not in running
                  and engine.fleet.vms.get(n["spec"].get("providerID", "").removeprefix("ovirt://")) is None)
    uids = {n["metadata"]["name"]: n["metadata"]["uid"] for n in nodes}
    lost = sum(1 for name, uid in kubelet.items() if uids.get(name) != uid)
    return lost, duplicates + orphans


def kubelet_uids(kube: KubeApiSimulator) -> dict[str, str]:
    return {n["metadata"]["name"]: n["metadata"]["uid"] for n in kube.list_nodes()
            if not (n["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY)}


def _record(engine: EngineSimulator, kube: KubeApiSimulator, kubelet: dict[str, str]) -> None:
    lost, wrong = check_nodes(engine, kube, kubelet)
    FIGURES.record("process", cases=0, nodes_lost=lost, wrong_writes=wrong)
    assert (lost, wrong) == (0, 0)


@pytest.mark.parametrize("moment", ["sweep", "apply"])
def test_kill_9_then_restart(moment: str, start: Callable[..., Replica], engine: EngineSimulator,
                             kube: KubeApiSimulator) -> None:
    seed_cluster(engine, kube)
    kubelet = kubelet_uids(kube)
    assert FOREIGN in kubelet
    if moment == "sweep":
        engine.set_latency(1.0, path_prefix=API_VMS)
    else:
        kube.set_latency(0.4, verb="create", resource="nodes")
    a = start("replica-a")
    if moment == "sweep":
        wait_for(lambda: engine.request_count("/vms") >= 1, 20, "a sweep in flight", a.logs)
    else:
        wait_for(lambda: kube.count("create", "nodes") >= 1, 20, "an apply in flight", a.logs)
    a.kill()
    engine.clear_faults()
    kube.clear_faults()
    b = start("replica-a2")
    wait_for(lambda: converged(engine, kube), 30, "convergence after the restart", b.logs)
    time.sleep(1.0)
    _record(engine, kube, kubelet)
    FIGURES.record("process")


def test_paused_leader_writes_nothing_after_losing_its_lease(start: Callable[..., Replica], engine: EngineSimulator,
                                                             kube: KubeApiSimulator) -> None:
    seed_cluster(engine, kube)
    kubelet = kubelet_uids(kube)
    a = start("replica-a")  # the service account
    wait_for(lambda: holder(kube) == "replica-a" and converged(engine, kube), 30, "replica-a leading", a.logs)
    b = start("replica-b", "admin")
    time.sleep(1.0)
    a.proc.send_signal(signal.SIGSTOP)
    wait_for(lambda: holder(kube) == "replica-b", 20, "replica-b taking over", b.logs)
    mark = len(kube.requests)
    vm = next(v for v in engine.fleet.vms.values() if v.status == "up" and v.name.startswith("k8s-w"))
    engine.set_status(vm.id, "down")  # both would want to write now
    a.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: any(t["key"] == TAINT_SHUTDOWN for n in kube.list_nodes()
                         if n["spec"].get("providerID") == f"ovirt://{vm.id}"
                         for t in n["spec"].get("taints") or []), 15, "the new leader's taint", b.logs)
    time.sleep(3.0)  # let the resumed replica do whatever it would do
    late = [r for r in kube.requests[mark:] if r.user == SA_USER and r.verb in WRITES and r.code < 300
            and r.resource != "leases"]
    assert holder(kube) == "replica-b"
    FIGURES.record("process", cases=0, wrong_writes=len(late))
    assert late == [], [(r.verb, r.resource, r.name) for r in late]
    _record(engine, kube, kubelet)
    # the leader killed: the standby (now replica-a) takes over
    b.kill()
    wait_for(lambda: holder(kube) == "replica-a", 20, "replica-a taking over again", a.logs)
    assert kube.forbidden == []
    FIGURES.record("process")


@pytest.mark.parametrize("moment", ["sweep", "hung-sso", "slow-engine"])
def test_sigterm_exits_within_5s_and_releases_the_lease(moment: str, start: Callable[..., Replica],
                                                        engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    """SIGTERM → exit 0 within 5 s, the Lease released: during a sweep, during a hung SSO login, and with an
    engine that answers everything (SSO logout included) after 4 s, slower than any step's own bound but
    within the connection's 5 s timeout: the steps share one shutdown deadline."""
    seed_cluster(engine, kube)
    a = start("replica-a")
    wait_for(lambda: holder(kube) == "replica-a" and converged(engine, kube), 30, "replica-a leading", a.logs)
    if moment == "slow-engine":
        engine.set_latency(4.0, path_prefix="/")
        engine.set_status(next(v.id for v in engine.fleet.vms.values() if v.status == "up"), "down")
        time.sleep(2.5)  # every engine call now takes 4 s: the loop is in the middle of one
    elif moment == "sweep":
        engine.set_latency(30.0, path_prefix=API_VMS)
        engine.set_status(next(v.id for v in engine.fleet.vms.values() if v.status == "up"), "down")
        wait_for(lambda: any(r.path.startswith(API_VMS) and r.time > time.time() - 2 for r in engine.requests), 15,
                 "a sweep in flight", a.logs)
    else:
        engine.expire_tokens()
        engine.hang_sso()
        wait_for(lambda: any(r.path.endswith("/sso/oauth/token") and r.status == 0 for r in engine.requests)
                 or engine.request_count("/ovirt-engine/sso") > 1, 15, "a login in flight", a.logs)
    time.sleep(0.3)
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    code = a.proc.wait(10)
    elapsed = time.monotonic() - t0
    engine.clear_faults()
    assert code == 0, a.logs()[-2000:]
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    assert holder(kube) is None
    FIGURES.record("process")


def test_sigterm_exits_within_5s_with_node_writes_hung_in_the_writers_pool(
        start: Callable[..., Replica], engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    """SIGTERM → exit 0 within 5 s, the Lease released, while the writer's pool threads wait for node patches the
    API does not answer (their read timeout is 30 s): the shutdown deadline does not wait for them."""
    seed_cluster(engine, kube)
    a = start("replica-a")
    wait_for(lambda: holder(kube) == "replica-a" and converged(engine, kube), 30, "replica-a leading", a.logs)
    kube.set_latency(60.0, verb="patch", resource="nodes")  # every node patch hangs
    sweeps = a.logs().count("sweep triggered")
    ups = [v.id for v in engine.fleet.vms.values() if v.status == "up" and v.name.startswith("k8s-")][:2]
    for vm_id in ups:  # two nodes to taint: two of the pool's threads in flight
        engine.set_status(vm_id, "down")
    wait_for(lambda: a.logs().count("sweep triggered") > sweeps, 15, "a sweep for the stopped VMs", a.logs)
    time.sleep(1.5)  # its two patches are sent (and hang)
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    try:
        code = a.proc.wait(10)
    finally:
        kube.set_latency(0, verb="patch", resource="nodes")
    elapsed = time.monotonic() - t0
    assert code == 0, a.logs()[-2000:]
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    assert holder(kube) is None
    FIGURES.record("process")
