"""One bad datum affects one node, never the sweep (issue 17, rule 4), end to end: the real ovirtsdk4 and
kubernetes clients against both loopback simulators (the shared sync World).

A guest agent's NIC name or a node's annotation that no rule foresaw, an operator's taint with a value on one of
our keys, a write the API refuses for one node, a record whose derivation raises: each skips (or is handled for)
that one VM, host or node, with a reason; the sweep goes on for the others and counts as successful.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ovirt_cloudprovider.cli import sync_summary
from ovirt_cloudprovider.controller import run_sweep
from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, TAINT_MAINTENANCE, TAINT_SHUTDOWN, ActionKind
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, poisoned_sweep, running


@pytest.fixture
def world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube, delete_after_sweeps=3, max_delete_fraction=0.5) as w:
        yield w


def taints_of(node: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t["key"] == key]


def action_count(world: World, kind: str, result: str) -> float:
    value: float = world.metrics.actions_total.labels(kind, result)._value.get()
    return value


def skipped_count(world: World, reason: str, kind: str = "vm") -> float:
    value: float = world.metrics.skipped_vms.labels(reason, kind)._value.get()
    return value


def test_a_superscript_digit_in_a_nic_name_stops_nothing(world: World) -> None:
    """``eth0²``: str.isdigit() is true for ``²``, int() refuses it; every VM still gets its node."""
    vms = running(world.engine)
    bad = vms[0]
    world.engine.set_ips(bad.id, ["10.77.0.9"], device="eth0²")
    report = world.sweep()
    assert report.ok, report.error
    for vm in vms:
        assert world.node_of(vm.id) is not None, vm.name
    addresses = world.node_of(bad.id)["status"]["addresses"]  # type: ignore[index]
    assert {"type": "InternalIP", "address": "10.77.0.9"} in addresses
    world.converge()


def test_a_superscript_absence_counter_reads_as_zero(world: World) -> None:
    world.converge()
    present, leaving = running(world.engine)[:2]
    name = world.node_of(present.id)["metadata"]["name"]  # type: ignore[index]
    world.kube.patch_node(name, {"metadata": {"annotations": {ANNOTATION_ABSENT_SWEEPS: "²"}}})
    gone = world.node_of(leaving.id)["metadata"]["name"]  # type: ignore[index]
    world.kube.patch_node(gone, {"metadata": {"annotations": {ANNOTATION_ABSENT_SWEEPS: "¹"}}})
    world.engine.set_tags(leaving.id, [])  # another VM leaves the filter, its node with a garbled counter too
    report = world.sweep()
    assert report.ok, report.error
    annotations = world.kube.get_node(name)["metadata"].get("annotations") or {}  # type: ignore[index]
    assert ANNOTATION_ABSENT_SWEEPS not in annotations  # the VM is present: the garbled counter is cleared
    gone_annotations = world.kube.get_node(gone)["metadata"].get("annotations") or {}  # type: ignore[index]
    assert gone_annotations.get(ANNOTATION_ABSENT_SWEEPS) == "1"  # a garbled counter counts as 0: this is sweep 1


def test_an_operators_valued_shutdown_taint_counts_as_ours(world: World) -> None:
    """``kubectl taint node X node.cloudprovider.kubernetes.io/shutdown=true:NoSchedule``: matched by key and
    effect, not value, so no second one is added (422 "taints must be unique by key and effect") and the sweep
    succeeds; once the VM runs again it is removed by key and effect, as upstream's cloud-node-lifecycle does."""
    world.converge()
    vms = running(world.engine)
    vm, other = vms[0], vms[1]
    name = world.node_of(vm.id)["metadata"]["name"]  # type: ignore[index]
    node = world.kube.get_node(name)
    assert node is not None
    taints = [*(node["spec"].get("taints") or []), {"key": TAINT_SHUTDOWN, "value": "true", "effect": "NoSchedule"}]
    world.kube.patch_node(name, {"spec": {"taints": taints}})
    world.engine.set_status(vm.id, "down")
    world.engine.set_status(other.id, "down")
    report = world.sweep()
    assert report.ok, report.error
    assert taints_of(world.kube.get_node(name), TAINT_SHUTDOWN) == [
        {"key": TAINT_SHUTDOWN, "value": "true", "effect": "NoSchedule"}]
    assert len(taints_of(world.node_of(other.id), TAINT_SHUTDOWN)) == 1  # the other VM's taint is not delayed
    world.kube.reset_counts()
    assert world.sweep().ok and world.kube.writes("nodes") == 0  # present: nothing to write
    world.engine.set_status(vm.id, "up")
    assert world.sweep().ok
    assert taints_of(world.kube.get_node(name), TAINT_SHUTDOWN) == []


def test_an_operators_valued_maintenance_taint_counts_as_ours(engine: EngineSimulator,
                                                               kube: KubeApiSimulator) -> None:
    with World(engine, kube, hosts="cluster=east-a") as world:
        world.converge()
        host = sorted(world.host_nodes())[0]
        ref = next(h for h in engine.fleet.hosts.values() if h.name == host)
        node = world.kube.get_node(host)
        assert node is not None
        taints = [*(node["spec"].get("taints") or []),
                  {"key": TAINT_MAINTENANCE, "value": "planned", "effect": "NoSchedule"}]
        world.kube.patch_node(host, {"spec": {"taints": taints}})
        world.engine.set_host_status(ref.id, "maintenance")
        report = world.sweep()
        assert report.ok, report.error
        assert taints_of(world.kube.get_node(host), TAINT_MAINTENANCE) == [
            {"key": TAINT_MAINTENANCE, "value": "planned", "effect": "NoSchedule"}]
        world.engine.set_host_status(ref.id, "up")
        assert world.sweep().ok
        assert taints_of(world.kube.get_node(host), TAINT_MAINTENANCE) == []


def test_a_write_the_api_refuses_for_one_node_skips_that_node_only(world: World) -> None:
    """422 for one node's taint: that node is skipped with a reason (log, Warning Event, the ``refused`` result of
    actions_total); the other node is tainted and the sweep succeeds (no backoff for the fleet)."""
    world.converge()
    vms = running(world.engine)
    refused, other = vms[0], vms[1]
    name = world.node_of(refused.id)["metadata"]["name"]  # type: ignore[index]
    world.engine.set_status(refused.id, "down")
    world.engine.set_status(other.id, "down")
    world.kube.fail_next(1, code=422, verb="patch", resource="nodes", name=name)
    report = world.sweep()
    assert report.ok, report.error
    assert report.failed == 0 and report.refused == 1
    assert "1 refused by the API (those nodes skipped)" in sync_summary(report, dry_run=False)  # sync --once says so
    assert taints_of(world.kube.get_node(name), TAINT_SHUTDOWN) == []
    assert len(taints_of(world.node_of(other.id), TAINT_SHUTDOWN)) == 1
    assert action_count(world, "taint", "refused") == 1
    events = world.kube.list_events(involved_name=name)
    assert any(e.get("reason") == "WriteRefused" and e.get("type") == "Warning" for e in events), events
    assert world.sweep().ok  # the API no longer refuses: the node gets its taint on the next sweep
    assert len(taints_of(world.kube.get_node(name), TAINT_SHUTDOWN)) == 1


def test_a_node_deleted_between_planning_and_writing_concerns_that_node_only(world: World) -> None:
    """The API's 404 for a patch (the node was deleted after the cache was read): that node is gone, a conflict
    re-planned next sweep, never a failed sweep; the other node is tainted."""
    world.converge()
    vms = running(world.engine)
    gone, other = vms[0], vms[1]
    name = world.node_of(gone.id)["metadata"]["name"]  # type: ignore[index]
    world.engine.set_status(gone.id, "down")
    world.engine.set_status(other.id, "down")
    with world.synced_nodes() as nodes:
        assert world.kube.delete_node(name)  # deleted by someone after planning's view, before the write
        report = run_sweep(config=world.config, engine=world.client, nodes=nodes, writer=world.writer,
                           metrics=world.metrics)
    assert report.ok, report.error
    assert report.plan is not None
    writes = [a for a in report.plan.actions if a.node == name and a.writes]
    assert report.failed == 0 and report.conflicts == len(writes) >= 1  # each of that node's writes, nothing else
    assert action_count(world, "taint", "conflict") == 1 and action_count(world, "taint", "error") == 0
    assert len(taints_of(world.node_of(other.id), TAINT_SHUTDOWN)) == 1
    assert world.sweep().ok  # re-planned without the node


def test_a_5xx_storm_still_fails_the_sweep(world: World) -> None:
    """A whole-sweep cause stays one: writes the API cannot take (5xx after every retry) fail the sweep."""
    world.converge()
    vm = running(world.engine)[0]
    world.engine.set_status(vm.id, "down")
    world.kube.fail_next(20, code=500, verb="patch", resource="nodes")
    report = world.sweep()
    assert not report.ok and report.failed >= 1 and report.refused == 0


def test_a_record_that_raises_skips_that_vm_and_its_node_is_not_absent(world: World) -> None:
    world.converge()
    vms = running(world.engine)
    bad, other = vms[0], vms[1]
    world.engine.set_status(other.id, "down")
    for _ in range(3):  # as many sweeps as delete a node: the skipped VM's node is present, never absent
        report = poisoned_sweep(world, bad.id)
        assert report.ok, report.error
    assert len(taints_of(world.node_of(other.id), TAINT_SHUTDOWN)) == 1
    node = world.node_of(bad.id)
    assert node is not None and ANNOTATION_ABSENT_SWEEPS not in (node["metadata"].get("annotations") or {})
    assert skipped_count(world, "unreadable") == 1
    assert report.plan is not None
    assert any(a.vm_id == bad.id and "unreadable" in a.message for a in report.plan.actions)


def test_a_vm_renamed_onto_another_vms_node_name_never_freezes_that_node(world: World) -> None:
    """One tenant renames VM B so that its node name is VM A's (``k8s-cp-0`` → ``k8s_cp_0``): A's node carries A's
    providerID, so A keeps it and is planned as usual; only B is skipped, with a reason naming the conflict."""
    world.converge()
    a, b = [vm for vm in running(world.engine) if vm.status == "up"][:2]
    world.engine.rename(b.id, a.name.replace("-", "_"))
    assert world.sweep().ok
    world.engine.set_status(a.id, "down")
    for _ in range(2):
        report = world.sweep()
        assert report.ok, report.error
    assert len(taints_of(world.kube.get_node(a.name), TAINT_SHUTDOWN)) == 1
    assert report.plan is not None
    skips = {act.vm_id: act.message for act in report.plan.actions if act.kind is ActionKind.SKIP and not act.node}
    assert a.id not in skips
    assert "duplicate-name" in skips[b.id] and a.name in skips[b.id] and a.id in skips[b.id]
    assert skipped_count(world, "duplicate-name") == 1
