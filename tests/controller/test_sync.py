"""Node sync end to end: one sweep at a time, through the real ovirtsdk4 and kubernetes clients, against both
loopback simulators. The sweeps run in-process (``run_sweep``, exactly what ``sync --once`` and the controller
loop run); the CLI's ``sync --once`` is exercised as a real process at the end.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovirt_cloudprovider.controller import run_targeted_sweep
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    RUNNING_STATUSES,
    TAINT_SHUTDOWN,
    TAINT_UNINITIALIZED,
)
from ovirt_cloudprovider.simulators.engine import EngineSimulator, GuestDevice
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running, taint_keys
from tests.helpers import REPO, run_cli, write_config


@pytest.fixture
def world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube, delete_after_sweeps=3) as w:
        yield w


def test_running_tagged_vms_become_nodes_and_second_sweep_writes_nothing(world: World) -> None:
    report = world.sweep()
    assert report.ok
    vms = running(world.engine)
    nodes = {n["spec"]["providerID"]: n for n in world.kube.list_nodes()}
    assert set(nodes) == {f"ovirt://{vm.id}" for vm in vms}  # untagged and down VMs get no node
    fleet = world.engine.fleet
    for vm in vms:
        node = nodes[f"ovirt://{vm.id}"]
        assert node["metadata"]["name"] == vm.name
        labels = node["metadata"]["labels"]
        cluster = fleet.clusters[vm.cluster_id]
        assert labels["topology.kubernetes.io/zone"] == cluster.name
        assert labels["topology.kubernetes.io/region"] == fleet.datacenters[cluster.datacenter_id].name
        assert labels["ovirt.org/host"] == fleet.hosts[vm.host_id].name
        ips = [str(ipaddress.ip_address(ip)) for d in vm.devices if d.name.startswith("eth") for ip in d.ips
               if not ip.startswith("fe80")]
        addresses = [(a["type"], a["address"]) for a in node["status"].get("addresses") or []]
        internal = [a for t, a in addresses if t == "InternalIP"]
        assert sorted(internal) == sorted(ips)  # IPv6 kept, link-local dropped
        assert internal[0] == ips[0]  # the primary address first (eth0's IPv4)
        assert all(not a.startswith(("172.17.", "127.")) for _, a in addresses)  # docker0, lo ignored
        assert node["status"]["nodeInfo"]["systemUUID"] == vm.id
    world.kube.reset_counts()
    engine_before = len(world.engine.requests)
    assert world.sweep().ok
    assert world.kube.writes() == 0  # a steady sweep makes zero writes (events included)
    paths = sorted(r.path.rsplit("/", 1)[1] for r in world.engine.requests[engine_before:])
    # 12 VMs, page size 5: pages of 5, 5, 2 and the two sent (engine_concurrency 2) before the short one was
    # read; each list it joins once; never a request per VM
    assert paths == ["clusters", "datacenters", "events", "hosts", "instancetypes", "tags"] + ["vms"] * 5 \
        or paths == ["clusters", "datacenters", "hosts", "instancetypes", "tags"] + ["vms"] * 5


def test_shutdown_taints_and_start_untaints(world: World) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    world.engine.set_status(vm.id, "down")
    assert world.sweep().ok
    assert TAINT_SHUTDOWN in taint_keys(world.node_of(vm.id))
    world.engine.set_status(vm.id, "up")
    assert world.sweep().ok
    assert TAINT_SHUTDOWN not in taint_keys(world.node_of(vm.id))
    reasons = [e["reason"] for e in world.kube.list_events()]
    assert "ShutdownTaintAdded" in reasons and "ShutdownTaintRemoved" in reasons


@pytest.mark.parametrize("how", ["removed", "untagged"])
def test_vm_gone_deletes_its_node_on_the_third_sweep(world: World, how: str) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    if how == "removed":
        world.engine.remove_vm(vm.id)
    else:
        world.engine.set_tags(vm.id, ["backup"])
    for sweep in (1, 2):
        assert world.sweep().ok
        node = world.node_of(vm.id)
        assert node is not None, f"deleted on sweep {sweep}"
        assert node["metadata"]["annotations"][ANNOTATION_ABSENT_SWEEPS] == str(sweep)
    assert world.sweep().ok
    assert world.node_of(vm.id) is None
    reason = "DeletedNode" if how == "removed" else "VMLeftFilter"  # the engine still has an untagged VM
    assert any(e["reason"] == reason for e in world.kube.list_events())


def test_vm_seen_again_resets_the_count(world: World) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    world.engine.set_tags(vm.id, ["backup"])
    world.sweep()
    world.sweep()
    world.engine.set_tags(vm.id, ["kubernetes"])
    world.sweep()
    node = world.node_of(vm.id)
    assert node is not None and ANNOTATION_ABSENT_SWEEPS not in (node["metadata"].get("annotations") or {})


@pytest.mark.parametrize("fault", ["proxy_errors", "fail_requests", "drop_connections", "engine_faults"])
def test_engine_errors_change_nothing(world: World, fault: str) -> None:
    world.converge()
    world.engine.remove_vm(running(world.engine)[-1].id)
    before = world.node_versions()
    getattr(world.engine, fault)()
    world.kube.reset_counts()
    world.failed_sweeps(4)
    assert world.kube.writes() == 0 and world.node_versions() == before
    assert world.metrics.syncs_total.labels("failure")._value.get() == 4


def test_engine_error_on_a_later_page_is_a_failed_sweep(world: World) -> None:
    world.converge()
    before = world.node_versions()
    # page 1 (5 VMs) answers, page 2 fails: a partial answer would look like 7 vanished VMs
    for _ in range(3):
        world.engine.fail_requests(503, count=1, path_prefix="/ovirt-engine/api/vms", skip=1)
        report = world.sweep()
        assert not report.ok and report.plan is None
        assert "503" in (report.error or "")
    assert world.node_versions() == before


def test_empty_answer_deletes_nothing(world: World) -> None:
    world.converge()
    nodes = len(world.kube.list_nodes())
    for vm in list(world.engine.fleet.vms.values()):
        if vm.name.startswith("k8s-"):
            world.engine.set_tags(vm.id, [])  # the filter now matches nothing
    for _ in range(5):
        report = world.sweep()
        assert report.ok
    assert len(world.kube.list_nodes()) == nodes
    assert all(ANNOTATION_ABSENT_SWEEPS not in (n["metadata"].get("annotations") or {})
               for n in world.kube.list_nodes())
    assert world.metrics.deletions_blocked_total.labels("empty-discovery", "vm")._value.get() >= nodes


def test_burst_of_disappearances_trips_the_circuit_breaker(world: World) -> None:
    world.converge()
    nodes = len(world.kube.list_nodes())
    vms = running(world.engine)
    for vm in vms[: len(vms) * 2 // 3]:  # two thirds vanish at once
        world.engine.remove_vm(vm.id)
    for _ in range(5):
        assert world.sweep().ok
    assert len(world.kube.list_nodes()) == nodes
    assert world.metrics.deletions_blocked_total.labels("circuit-breaker", "vm")._value.get() > 0
    assert any(e["reason"] == "CircuitBreaker" and e["type"] == "Warning" for e in world.kube.list_events())


def test_kubelet_registered_node_is_initialized(world: World) -> None:
    vm = running(world.engine)[0]
    node_ip = next(ip for d in vm.devices if d.name == "eth0" for ip in d.ips if "." in ip)  # its --node-ip
    world.kube.register_kubelet_node(vm.name, internal_ip=node_ip, system_uuid=vm.id.upper())
    assert world.sweep().ok
    node = world.kube.get_node(vm.name)
    assert node is not None
    assert node["spec"]["providerID"] == f"ovirt://{vm.id}"
    assert TAINT_UNINITIALIZED not in taint_keys(node)
    assert "topology.kubernetes.io/zone" in node["metadata"]["labels"]
    assert "app.kubernetes.io/managed-by" not in node["metadata"]["labels"]  # the kubelet's node, not ours
    assert any(e["reason"] == "InitializedNode" for e in world.kube.list_events(involved_name=vm.name))
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [node_ip]  # the kubelet's --node-ip decides the node's IPv4 InternalIP


def test_kubelet_node_ip_the_engine_does_not_report_blocks_initialization(world: World) -> None:
    vm = running(world.engine)[0]
    world.kube.register_kubelet_node(vm.name, internal_ip="192.0.2.10", system_uuid=vm.id.upper())
    assert world.sweep().ok
    node = world.kube.get_node(vm.name)
    assert node is not None
    assert not node["spec"].get("providerID") and TAINT_UNINITIALIZED in taint_keys(node)
    assert [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"] == ["192.0.2.10"]


def test_foreign_node_is_untouched(world: World) -> None:
    world.kube.create_node({"metadata": {"name": "aws-node", "labels": {"a": "b"}},
                            "spec": {"providerID": "aws:///us-east-1a/i-0123456789"}})
    world.kube.create_node({"metadata": {"name": "bare-metal-1"}})  # no providerID, matches no VM

    def rv(name: str) -> str:
        node = world.kube.get_node(name)
        assert node is not None, name
        version: str = node["metadata"]["resourceVersion"]
        return version

    before = {n: rv(n) for n in ("aws-node", "bare-metal-1")}
    for _ in range(4):
        assert world.sweep().ok
    assert {n: rv(n) for n in before} == before


def test_invalid_vm_names_are_made_valid_or_skipped(engine: EngineSimulator, world: World) -> None:
    engine.add_vm("Web_Frontend 01", devices=[GuestDevice("eth0", "56:6f:00:00:00:01", ["10.99.0.1"])])
    engine.add_vm("!!!", devices=[GuestDevice("eth0", "56:6f:00:00:00:02", ["10.99.0.2"])])
    assert world.sweep().ok
    names = {n["metadata"]["name"] for n in world.kube.list_nodes()}
    assert "web-frontend-01" in names
    assert all(n.replace("-", "").replace(".", "").isalnum() and n == n.lower() for n in names)
    assert world.metrics.skipped_vms.labels("invalid-name", "vm")._value.get() == 1


@pytest.mark.parametrize("fault", ["conflict", "throttle", "fail", "drop_watch"])
def test_kube_api_faults_converge_to_the_same_state(engine: EngineSimulator, kube: KubeApiSimulator,
                                                    world: World, fault: str) -> None:
    if fault == "conflict":
        kube.conflict_next(3)
    elif fault == "throttle":
        kube.throttle_next(5, retry_after=1)
    elif fault == "fail":
        kube.fail_next(3, code=500)
    world.sweep()
    if fault == "drop_watch":
        kube.drop_watches()
    vm = running(engine)[-1]
    engine.set_status(vm.id, "down")
    world.converge(max_sweeps=5)
    expected = {f"ovirt://{v.id}" for v in engine.fleet.vms.values()
                if v.name.startswith("k8s-") and (v.status in RUNNING_STATUSES or v.id == vm.id)}
    assert {n["spec"].get("providerID") for n in kube.list_nodes()} == expected
    assert TAINT_SHUTDOWN in taint_keys(world.node_of(vm.id))


def test_sync_once_cli_dry_run_and_apply(tmp_path: Path, engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    n = len(running(engine))
    r = run_cli(["sync", "--once", "--dry-run", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ACTION", "NODE", "REASON"]
    assert sum(line.startswith("register ") for line in lines) == n
    assert max(len(line) for line in lines) <= 80  # an 80-column terminal; -o wide for the rest
    assert lines[-1] == f"12 VM(s) matched; planned: {n} register; dry run, nothing was changed"
    r = run_cli(["sync", "--once", "--dry-run", "-o", "wide", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.stdout.splitlines()[0].split() == ["ACTION", "NODE", "VM", "REASON", "DETAIL"]
    # planned, not done: "would register", never the Event's past tense
    assert "Would register node" in r.stdout and "Registered node" not in r.stdout  # (RegisteredNode: the reason)
    assert kube.writes() == 0 and kube.list_nodes() == []
    r = run_cli(["sync", "--once", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.returncode == 0, r.stderr
    assert len(kube.list_nodes()) == n
    assert r.stdout == f"12 VM(s) matched; done: {n} register ({n} of {n} write(s) applied)\n"  # what was done
    r = run_cli(["sync", "--once", "--dry-run", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.stdout.strip() == "12 VM(s) matched; no actions: the nodes match the VMs"
    engine.proxy_errors()
    r = run_cli(["sync", "--once", "--config", str(cfg), "--kubeconfig", kubeconfig, "--log-format", "json"])
    assert r.returncode == 1
    assert "no node was changed" in r.stderr
    for line in r.stderr.splitlines():
        if line.startswith("{"):
            json.loads(line)  # structured logs stay parseable


def test_sync_is_one_sweep_without_once(tmp_path: Path, engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file)
    r = run_cli(["sync", "--config", str(cfg), "--kubeconfig", kube.write_kubeconfig(tmp_path / "kubeconfig")])
    assert r.returncode == 0, r.stderr
    assert len(kube.list_nodes()) == len(running(engine))
    assert "write(s) applied" in r.stdout


def test_sync_dry_run_into_a_closed_pipe_exits_quietly(tmp_path: Path, engine: EngineSimulator,
                                                       kube: KubeApiSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file)
    args = ["sync", "--once", "--dry-run", "--config", str(cfg), "--kubeconfig",
            kube.write_kubeconfig(tmp_path / "kubeconfig")]
    proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -2` once head has its two lines
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert "error" not in err.lower() and "Traceback" not in err, err
    assert kube.writes() == 0


def test_targeted_sweep_touches_only_the_named_vms_and_never_deletes(world: World) -> None:
    world.converge()
    base = world.sweep().snapshot
    assert base is not None
    first, second, third = running(world.engine)[-3:]
    world.engine.set_status(first.id, "down")
    world.engine.set_status(second.id, "down")  # not named: left to the next full sweep
    world.engine.remove_vm(third.id)  # named, but gone: no deletion without complete discoveries
    with world.synced_nodes() as nodes:
        world.engine.reset_requests()
        report = run_targeted_sweep(config=world.config, engine=world.client, base=base,
                                    vm_ids=[first.id, third.id], nodes=nodes, writer=world.writer)
    assert report.ok
    # no paged search, one GET per named VM; a VM whose record cannot tell whether it still matches the filter
    # (a child tag of kubernetes) is checked with one search narrowed to it (issue 17, rule 6)
    searches = [r.query for r in world.engine.requests if r.path.endswith("/vms")]
    assert searches == ([] if world.engine.fleet.vms[first.id].tag_ids == [world.engine.fleet.tag("kubernetes").id]
                        else [{"search": f"tag=kubernetes and id={first.id}", "max": "5"}])
    assert world.engine.request_count("/vms/", method="GET") == 2
    assert TAINT_SHUTDOWN in taint_keys(world.node_of(first.id))
    assert TAINT_SHUTDOWN not in taint_keys(world.node_of(second.id))
    node = world.node_of(third.id)
    assert node is not None and ANNOTATION_ABSENT_SWEEPS not in (node["metadata"].get("annotations") or {})


def test_targeted_sweep_keeps_the_vms_by_status_gauge_current(world: World) -> None:
    world.converge()
    base = world.sweep().snapshot
    assert base is not None

    def vms(status: str) -> float:
        return world.metrics.registry.get_sample_value("ovirt_cloudprovider_vms", {"status": status}) or 0.0

    up, down = vms("up"), vms("down")
    assert up > 0
    vm = running(world.engine)[0]
    world.engine.set_status(vm.id, "down")
    with world.synced_nodes() as nodes:
        report = run_targeted_sweep(config=world.config, engine=world.client, base=base, vm_ids=[vm.id],
                                    nodes=nodes, writer=world.writer, metrics=world.metrics)
    assert report.ok
    assert (vms("up"), vms("down")) == (up - 1, down + 1)


def test_a_vm_with_a_negative_cpu_topology_is_registered_without_a_capacity_kube_apiserver_refuses(
        world: World, engine: EngineSimulator) -> None:
    world.converge()
    vm = engine.add_vm("odd-topology", sockets=-2, cores=3, memory=-4096)  # garbled engine numbers
    report = world.sweep()
    assert report.ok, report.error  # one VM's garbled numbers do not fail (and back off) every sweep
    node = world.node_of(vm.id)
    assert node is not None
    assert "cpu" not in node["status"].get("capacity", {}) and "memory" not in node["status"].get("capacity", {})
