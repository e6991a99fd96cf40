"""``ovirt-cloudprovider run`` as the pod runs it: real processes against both loopback simulators.

Covers the service behaviour: nodes appear, an engine event leads to the shutdown taint quickly, two
replicas make one writer and the standby takes over when the leader dies, SIGTERM exits in time and
releases the Lease, /metrics tells what happened, /readyz follows the engine's health.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ovirt_cloudprovider.core.records import TAINT_SHUTDOWN, TAINT_UNINITIALIZED
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.helpers import REPO, http_get, wait_for, write_config
from tests.kube_fixtures import write_rotating_kubeconfig

PASSWORD = "run-Test-pa55"
LEASE_NS, LEASE_NAME = "kube-system", "ovirt-cloudprovider"
CONTROLLER = ("[controller]\nsync_interval = 5\nevent_poll_interval = 1\nlease_duration = 3\n"
              "renew_deadline = 2\nretry_period = 0.5\ndelete_after_sweeps = 2\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if "{" in key:
            base, rest = key.split("{", 1)
            got = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            base, got = key, ""
        if base == name and got == want:
            return float(value)
    return None


class Replica:
    def __init__(self, name: str, config: Path, kubeconfig: str, log_dir: Path, *, leader_elect: bool = True) -> None:
        self.name = name
        self.port = free_port()
        self.log = log_dir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}
        env["POD_NAME"] = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ovirt_cloudprovider", "run", "--config", str(config), "--kubeconfig", kubeconfig,
             f"--metrics-bind-address=127.0.0.1:{self.port}", f"--leader-elect={str(leader_elect).lower()}",
             f"--leader-elect-namespace={LEASE_NS}"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env=env, cwd=REPO)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return http_get(self.url + "/metrics")[1]

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with EngineSimulator(generate_fleet(8, seed=11, control_plane=2, quirks=False), password=PASSWORD) as sim:
        yield sim


@pytest.fixture
def kube() -> Iterator[KubeApiSimulator]:
    with KubeApiSimulator() as sim:
        yield sim


@pytest.fixture
def setup(tmp_path: Path, engine: EngineSimulator, kube: KubeApiSimulator) -> tuple[Path, str]:
    cfg = write_config(tmp_path / "ovirt-cloud.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       extra=CONTROLLER)
    return cfg, kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def replicas(tmp_path: Path, setup: tuple[Path, str]) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(name: str, **kw: Any) -> Replica:
        r = Replica(name, setup[0], setup[1], tmp_path, **kw)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def running_vm_ids(engine: EngineSimulator) -> set[str]:
    from ovirt_cloudprovider.core.records import RUNNING_STATUSES
    return {vm.id for vm in engine.fleet.vms.values() if vm.status in RUNNING_STATUSES}


def node_ids(kube: KubeApiSimulator) -> set[str]:
    return {n["spec"].get("providerID", "").removeprefix("ovirt://") for n in kube.list_nodes()}


def holder(kube: KubeApiSimulator) -> str | None:
    lease = kube.get_lease(LEASE_NS, LEASE_NAME)
    return (lease or {}).get("spec", {}).get("holderIdentity") or None


def test_nodes_appear_metrics_and_health(replicas: Callable[..., Replica], engine: EngineSimulator,
                                         kube: KubeApiSimulator) -> None:
    r = replicas("replica-a")
    expected = running_vm_ids(engine)
    wait_for(lambda: expected <= node_ids(kube), 20, "nodes for the running VMs", r.logs)
    wait_for(lambda: http_get(r.url + "/readyz")[0] == 200, 10, "/readyz")
    assert http_get(r.url + "/healthz")[0] == 200
    text = wait_for(lambda: (t := r.metrics()) and metric(
        t, "ovirt_cloudprovider_syncs_total", result="success") and t, 10, "a successful sweep in /metrics")
    assert metric(text, "ovirt_cloudprovider_actions_total", kind="register", result="success") == len(expected)
    assert metric(text, "ovirt_cloudprovider_managed_nodes") == len(expected)
    assert metric(text, "ovirt_cloudprovider_leader") == 1
    assert (metric(text, "ovirt_cloudprovider_engine_requests_total", operation="search_vms", code="200") or 0) >= 1
    assert (metric(text, "ovirt_cloudprovider_kube_requests_total", operation="create_node", code="201") or 0) \
        == len(expected)
    assert (metric(text, "ovirt_cloudprovider_last_successful_sync_timestamp_seconds") or 0) > time.time() - 60
    vm_total = sum(metric(text, "ovirt_cloudprovider_vms", status=s) or 0
                   for s in {vm.status for vm in engine.fleet.vms.values()})
    assert vm_total == 8
    assert PASSWORD not in text and PASSWORD not in r.logs()


def test_engine_event_taints_within_target(replicas: Callable[..., Replica], engine: EngineSimulator,
                                           kube: KubeApiSimulator) -> None:
    r = replicas("replica-a")
    wait_for(lambda: running_vm_ids(engine) <= node_ids(kube), 20, "nodes", r.logs)
    vm = next(v for v in engine.fleet.vms.values() if v.status == "up" and not v.name.startswith("k8s-cp"))
    node = next(n for n in kube.list_nodes() if n["spec"].get("providerID") == f"ovirt://{vm.id}")
    name = node["metadata"]["name"]
    time.sleep(0.5)  # let the first sweep settle, so the next full sweep is ~5 s away
    searches = engine.request_count("/ovirt-engine/api/vms", exact=True)
    t0 = time.monotonic()
    engine.set_status(vm.id, "down")
    wait_for(lambda: any(t["key"] == TAINT_SHUTDOWN for t in (kube.get_node(name) or {}).get("spec", {})
                         .get("taints") or []), 5.0, "the shutdown taint within 5 s", r.logs)
    elapsed = time.monotonic() - t0
    assert elapsed < 5.0
    engine.set_status(vm.id, "up")
    wait_for(lambda: not any(t["key"] == TAINT_SHUTDOWN for t in (kube.get_node(name) or {}).get("spec", {})
                             .get("taints") or []), 5.0, "the taint removal")
    # both were targeted sweeps: one GET of that VM each, no new paged search of the whole fleet (at most the
    # search narrowed to that VM when its record cannot tell whether it still matches: a child tag, rule 6 of
    # issue 17)
    narrowed = sum(f"and id={vm.id}" in r.query.get("search", "") for r in engine.requests
                   if r.path == "/ovirt-engine/api/vms")
    assert engine.request_count("/ovirt-engine/api/vms", exact=True) == searches + narrowed
    assert engine.request_count(f"/ovirt-engine/api/vms/{vm.id}", exact=True) == 2
    # the sweep counts itself just after its last write: wait for the count, then check it is exact
    wait_for(lambda: (metric(r.metrics(), "ovirt_cloudprovider_targeted_syncs_total", result="success") or 0) >= 2,
             2.0, "the targeted sweep count")
    assert metric(r.metrics(), "ovirt_cloudprovider_targeted_syncs_total", result="success") == 2


def test_two_replicas_one_writer_and_failover(replicas: Callable[..., Replica], engine: EngineSimulator,
                                              kube: KubeApiSimulator) -> None:
    a = replicas("replica-a")
    first = wait_for(lambda: holder(kube), 15, "a leader", a.logs)
    assert first == "replica-a"
    wait_for(lambda: running_vm_ids(engine) <= node_ids(kube), 20, "nodes")
    b = replicas("replica-b")
    wait_for(lambda: http_get(b.url + "/readyz")[0] == 200, 15, "standby ready", b.logs)
    time.sleep(1.0)
    assert metric(b.metrics(), "ovirt_cloudprovider_leader") == 0
    assert metric(a.metrics(), "ovirt_cloudprovider_leader") == 1
    # the standby never writes: it registers nothing and applies no action
    # (the series exists from the start, at 0: zero-initialised label values)
    assert metric(b.metrics(), "ovirt_cloudprovider_actions_total", kind="register", result="success") == 0
    assert (metric(a.metrics(), "ovirt_cloudprovider_actions_total", kind="register", result="success") or 0) > 0
    # the leader dies without releasing its lease
    a.proc.kill()
    a.proc.wait(5)
    t0 = time.monotonic()
    wait_for(lambda: holder(kube) == "replica-b", 3 + 3, "takeover by replica-b", b.logs)
    assert time.monotonic() - t0 < 3 + 2.5  # within the lease duration (3 s) plus a retry period margin
    # the new leader works: a VM shut down now gets its taint from replica-b
    vm = next(v for v in engine.fleet.vms.values() if v.status == "up" and not v.name.startswith("k8s-cp"))
    engine.set_status(vm.id, "down")
    wait_for(lambda: any(t["key"] == TAINT_SHUTDOWN for n in kube.list_nodes()
                         if n["spec"].get("providerID") == f"ovirt://{vm.id}"
                         for t in n["spec"].get("taints") or []), 10, "taint by the new leader", b.logs)
    assert metric(b.metrics(), "ovirt_cloudprovider_leader") == 1


def test_sigterm_exits_in_time_and_releases_lease(replicas: Callable[..., Replica], engine: EngineSimulator,
                                                  kube: KubeApiSimulator) -> None:
    r = replicas("replica-a")
    wait_for(lambda: holder(kube) == "replica-a", 15, "leadership", r.logs)
    wait_for(lambda: running_vm_ids(engine) <= node_ids(kube), 20, "nodes")
    t0 = time.monotonic()
    r.proc.send_signal(signal.SIGTERM)
    code = r.proc.wait(10)
    elapsed = time.monotonic() - t0
    assert code == 0, r.logs()
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    assert holder(kube) is None  # released: a successor need not wait for the lease to expire
    assert engine.logouts >= 1  # logged out of the engine
    assert "Traceback" not in r.logs()


def test_readyz_follows_engine_health(replicas: Callable[..., Replica], engine: EngineSimulator,
                                      kube: KubeApiSimulator) -> None:
    r = replicas("replica-a", leader_elect=False)
    wait_for(lambda: http_get(r.url + "/readyz")[0] == 200, 20, "ready", r.logs)
    engine.drop_connections()
    _, body = wait_for(lambda: (s := http_get(r.url + "/readyz"))[0] == 503 and s, 10, "/readyz false")
    assert "[-]engine" in body
    assert http_get(r.url + "/healthz")[0] == 200  # alive: a down engine is no reason to restart us
    nodes_before = {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in kube.list_nodes()}
    engine.clear_faults()
    wait_for(lambda: http_get(r.url + "/readyz")[0] == 200, 15, "/readyz true again")
    # nothing was deleted or rewritten because of the outage
    assert set(nodes_before) <= {n["metadata"]["name"] for n in kube.list_nodes()}


def test_rotated_password_file_is_picked_up_without_restart(tmp_path: Path, engine: EngineSimulator,
                                                             kube: KubeApiSimulator) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    cfg = tmp_path / "rotating.conf"
    cfg.write_text(f"[connection]\nuri = {engine.url}\nusername = {engine.username}\npassword_file = {secret}\n"
                   f"ca_file = {engine.ca_file}\ntimeout = 5\n[filters]\nvms = tag=kubernetes\n"
                   f"[nodes]\nregister = true\n{CONTROLLER}")
    r = Replica("replica-a", cfg, kube.write_kubeconfig(tmp_path / "kc"), tmp_path, leader_elect=False)
    try:
        wait_for(lambda: running_vm_ids(engine) <= node_ids(kube), 20, "nodes", r.logs)
        rotated = "rotated-" + PASSWORD
        engine.password = rotated  # the engine's password changes and the Secret follows
        secret.write_text(rotated + "\n")
        engine.expire_tokens()
        logins = engine.logins
        vm = next(v for v in engine.fleet.vms.values() if v.status == "up" and not v.name.startswith("k8s-cp"))
        engine.set_status(vm.id, "down")
        wait_for(lambda: any(t["key"] == TAINT_SHUTDOWN for n in kube.list_nodes()
                             if n["spec"].get("providerID") == f"ovirt://{vm.id}"
                             for t in n["spec"].get("taints") or []), 10, "a sweep with the new password", r.logs)
        assert engine.logins > logins
        assert r.proc.poll() is None
        assert rotated not in r.logs() and PASSWORD not in r.logs()
    finally:
        r.stop()


def test_kubelet_registered_node_is_initialized_within_seconds(replicas: Callable[..., Replica],
                                                               engine: EngineSimulator,
                                                               kube: KubeApiSimulator) -> None:
    r = replicas("replica-a", leader_elect=False)
    wait_for(lambda: running_vm_ids(engine) <= node_ids(kube), 20, "nodes", r.logs)
    time.sleep(0.5)  # the next periodic sweep is ~5 s away
    vm = engine.add_vm("late-joiner", event=False)  # no engine event: only the node watch can trigger
    t0 = time.monotonic()
    node_ip = next(ip for d in vm.devices if d.name == "eth0" for ip in d.ips if "." in ip)  # its --node-ip
    kube.register_kubelet_node("late-joiner", internal_ip=node_ip, system_uuid=vm.id.upper())
    wait_for(lambda: "node.cloudprovider.kubernetes.io/uninitialized" not in {
        t["key"] for t in (kube.get_node("late-joiner") or {}).get("spec", {}).get("taints") or []}, 4,
        "initialization", r.logs)
    assert time.monotonic() - t0 < 4
    assert (kube.get_node("late-joiner") or {})["spec"].get("providerID") == f"ovirt://{vm.id}"


def test_a_leader_elector_that_dies_ends_the_process(tmp_path: Path, engine: EngineSimulator) -> None:
    """An unexpected error in the elector (here: the Kubernetes token rotated to a value http.client refuses as a
    header, a ValueError, no request error) used to kill its thread only: the replica stayed up forever as a silent
    standby, /healthz 200. As kube-controller-manager, the process exits 1 with one error line, and the pod
    restarts."""
    cfg = write_config(tmp_path / "ovirt-cloud.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       extra=CONTROLLER)
    with KubeApiSimulator(token="run-kube-token") as kube:
        kubeconfig, token_file = write_rotating_kubeconfig(kube, tmp_path / "kube")
        r = Replica("replica-a", cfg, kubeconfig, tmp_path)
        try:
            wait_for(lambda: holder(kube) == "replica-a", 20, "leadership", r.logs)
            token_file.write_text("r0tated-S3cret\nrest")
            code = wait_for(lambda: r.proc.poll() is not None, 20, "the process to exit", r.logs) and r.proc.returncode
        finally:
            r.stop()
    logs = r.logs()
    assert code == 1, logs
    assert "leader election failed" in logs and "leader election ended unexpectedly" in logs, logs
    assert "Traceback" not in logs and "r0tated-S3cret" not in logs


def test_a_kubelet_on_a_known_vm_is_initialized_by_a_targeted_sweep(tmp_path: Path, engine: EngineSimulator,
                                                                     kube: KubeApiSimulator) -> None:
    """Issue 20, part 4: a kubelet joining on a VM of the last discovery costs one GET of that VM, not a paged search
    of the fleet (join latency: benchmarks/join.py). The periodic sweep is a minute away and no engine event
    comes: only the node watch can trigger."""
    cfg = write_config(tmp_path / "join.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       extra="[controller]\nsync_interval = 60\nevent_poll_interval = 1\n", register=False)
    r = Replica("joiner", cfg, kube.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path, leader_elect=False)
    try:
        wait_for(lambda: "sweep finished" in r.logs(), 20, "the first sweep", r.logs)
        assert kube.list_nodes() == []  # register = false: nodes come from kubelets
        engine.reset_requests()
        vm = next(v for v in engine.fleet.vms.values() if v.status == "up" and v.name.startswith("k8s-worker"))
        node_ip = next(ip for d in vm.devices if d.name == "eth0" for ip in d.ips if "." in ip)
        kube.register_kubelet_node(vm.name, internal_ip=node_ip, system_uuid=vm.id.upper())
        wait_for(lambda: (kube.get_node(vm.name) or {}).get("spec", {}).get("providerID") == f"ovirt://{vm.id}",
                 20, "initialization", r.logs)
        node = kube.get_node(vm.name)
        assert node is not None and TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints") or []}
        searches = [r.query.get("search", "") for r in engine.requests if r.path.endswith("/api/vms")]
        assert all(f"id={vm.id}" in q for q in searches), searches  # no search of the fleet, its filter narrowed
        assert engine.request_count(f"/vms/{vm.id}", method="GET") >= 1  # its VM fetched: fresh addresses
        wait_for(lambda: "targeted sweep finished" in r.logs(), 10, "the targeted sweep's log line", r.logs)
        assert r.logs().count("sweep started") == 1  # the first full sweep only
    finally:
        r.stop()


def test_kubelets_joining_while_a_targeted_sweep_applies_are_taken_by_it(tmp_path: Path, engine: EngineSimulator,
                                                                          kube: KubeApiSimulator) -> None:
    """Issue 20, part 4: kubelets that join while a targeted sweep applies are planned and written by that sweep as
    its writer frees up (its extension), not held until it finishes and a debounce has passed; every one ends
    initialized, with its VM's addresses and an Event."""
    cfg = write_config(tmp_path / "join.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       extra="[controller]\nsync_interval = 60\nevent_poll_interval = 1\n", register=False)
    r = Replica("joiner", cfg, kube.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path, leader_elect=False)
    try:
        wait_for(lambda: "sweep finished" in r.logs(), 20, "the first sweep", r.logs)
        vms = [v for v in engine.fleet.vms.values() if v.status == "up" and v.name.startswith("k8s-worker")
               and any("." in ip for d in v.devices if d.name == "eth0" for ip in d.ips)][:4]
        assert len(vms) == 4
        kube.set_latency(1.0, verb="patch", resource="nodes")  # every initializing patch takes a second
        kube.register_kubelet_node(vms[0].name, system_uuid=vms[0].id.upper())
        wait_for(lambda: "targeted sweep triggered" in r.logs(), 10, "the first targeted sweep", r.logs)
        for vm in vms[1:]:  # while it applies (no --node-ip: the kubelet reports only its Hostname)
            kube.register_kubelet_node(vm.name, system_uuid=vm.id.upper())

        def done() -> bool:
            for vm in vms:
                node = kube.get_node(vm.name) or {}
                if (node.get("spec", {}).get("providerID") != f"ovirt://{vm.id}"
                        or TAINT_UNINITIALIZED in {t["key"] for t in node["spec"].get("taints") or []}
                        or not any(a["type"] == "InternalIP" for a in node["status"].get("addresses") or [])
                        or not kube.list_events(involved_name=vm.name)):
                    return False
            return True

        wait_for(done, 30, "every node initialized, with addresses and an Event", r.logs)
        wait_for(lambda: "targeted sweep finished" in r.logs(), 10, "the targeted sweep's log line", r.logs)
        first = next(line for line in r.logs().splitlines() if "targeted sweep finished" in line)
        assert "joined_meanwhile=3" in first, first  # the first sweep took the three that joined meanwhile
        assert r.logs().count("sweep started") == 1  # the first full sweep only
    finally:
        r.stop()
