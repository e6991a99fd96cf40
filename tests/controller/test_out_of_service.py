"""The out-of-service taint end to end (issue #20, part 2): kubelet nodes, the engine simulator saying a VM is
down, and the Kubernetes API simulator's node lifecycle mode turning the node NotReady as kube-controller-manager
does when the kubelet stops posting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ovirt_cloudprovider.core.settings import NodesConfig
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from ovirt_cloudprovider.simulators.kubeapi.lifecycle import NodeLifecycle
from tests.controller.world import World, running
from tests.helpers import wait_for

OUT_OF_SERVICE = ("node.kubernetes.io/out-of-service", "NoExecute", "nodeshutdown")
NODES = NodesConfig(out_of_service_taint=True, out_of_service_after=0.5)


def taints(kube: KubeApiSimulator, name: str) -> set[tuple[str, str, str | None]]:
    node = kube.get_node(name)
    assert node is not None
    return {(t["key"], t["effect"], t.get("value")) for t in node["spec"].get("taints") or []}


def ready(kube: KubeApiSimulator, name: str) -> str:
    node = kube.get_node(name)
    assert node is not None
    return str(next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"])


def sample(world: World, change: str) -> float:
    return world.metrics.registry.get_sample_value(
        "ovirt_cloudprovider_out_of_service_taints_total", {"change": change, "kind": "vm"}) or 0.0


def settled(kube: KubeApiSimulator, lifecycle: NodeLifecycle) -> None:
    """Wait until the node lifecycle mode made two passes without changing a node (its writes and ours would
    otherwise race: a write of ours planned before one of its changes is a conflict, re-planned next sweep)."""
    def still() -> bool:
        before, passes = {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in kube.list_nodes()}, \
            lifecycle.passes
        wait_for(lambda: lifecycle.passes >= passes + 2, what="two lifecycle passes")
        return before == {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in kube.list_nodes()}
    wait_for(still, timeout=5, what="the node lifecycle mode to settle")


def kubelet_ready_again(kube: KubeApiSimulator, lifecycle: NodeLifecycle, name: str) -> None:
    """The node's kubelet posts status again and reports Ready; then the lifecycle mode settles."""
    lifecycle.resume_kubelet(name)
    kube.update_node_status(name, ready=True)
    wait_for(lambda: ready(kube, name) == "True", timeout=5, what="the node Ready")
    settled(kube, lifecycle)


def reasons(kube: KubeApiSimulator, name: str) -> set[str]:
    return {str(e.get("reason")) for e in kube.list_events(involved_name=name)}


@pytest.fixture
def cluster(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[tuple[World, NodeLifecycle, list[Any]]]:
    """Every running VM's kubelet joined and was initialized; the node lifecycle mode runs with short periods."""
    vms = running(engine)
    for vm in vms:
        kube.register_kubelet_node(vm.name, system_uuid=vm.id.upper())
    lifecycle = kube.start_node_lifecycle(startup_grace=1.0, monitor_grace=1.0, period=0.05, renew_interval=0.2)
    with World(engine, kube, nodes=NODES) as world:
        world.converge()
        yield world, lifecycle, vms


def test_a_vm_that_is_really_off_gets_the_taint_after_two_down_reads_and_loses_it_when_back(
        cluster: tuple[World, NodeLifecycle, list[Any]]) -> None:
    world, lifecycle, vms = cluster
    kube, engine, vm = world.kube, world.engine, vms[0]
    engine.set_status(vm.name, "down")
    lifecycle.stop_kubelet(vm.name)  # a VM that is off has no kubelet posting
    assert world.sweep().ok  # the first down read: the shutdown taint, no out-of-service yet
    assert OUT_OF_SERVICE not in taints(kube, vm.name)
    wait_for(lambda: ready(kube, vm.name) == "Unknown", timeout=5, what="the node NotReady")
    time.sleep(0.6)  # NotReady for out_of_service_after
    settled(kube, lifecycle)
    assert world.sweep().ok  # the second down read
    assert OUT_OF_SERVICE in taints(kube, vm.name)
    assert ("node.kubernetes.io/unreachable", "NoExecute", None) in taints(kube, vm.name)  # kept, not fought
    assert "OutOfServiceTaintAdded" in reasons(kube, vm.name)
    assert sample(world, "added") == 1
    kube.reset_counts()
    assert world.sweep().ok
    assert kube.writes("nodes") == 0  # steady while it stays off

    engine.set_status(vm.name, "up")
    settled(kube, lifecycle)
    assert world.sweep().ok
    assert OUT_OF_SERVICE in taints(kube, vm.name)  # running again, but no kubelet is Ready yet
    kubelet_ready_again(kube, lifecycle, vm.name)
    assert world.sweep().ok
    assert OUT_OF_SERVICE not in taints(kube, vm.name)
    assert "OutOfServiceTaintRemoved" in reasons(kube, vm.name)
    assert sample(world, "removed") == 1


@pytest.mark.parametrize("status", ["not_responding", "unknown", "suspended"])
def test_never_unless_the_engine_says_down(cluster: tuple[World, NodeLifecycle, list[Any]], status: str) -> None:
    world, lifecycle, vms = cluster
    kube, vm = world.kube, vms[1]
    world.engine.set_status(vm.name, status)
    lifecycle.stop_kubelet(vm.name)
    wait_for(lambda: ready(kube, vm.name) == "Unknown", timeout=5, what="the node NotReady")
    for _ in range(3):
        assert world.sweep().ok
    assert OUT_OF_SERVICE not in taints(kube, vm.name)
    assert sample(world, "added") == 0


def test_never_on_a_failed_discovery(cluster: tuple[World, NodeLifecycle, list[Any]]) -> None:
    world, lifecycle, vms = cluster
    kube, vm = world.kube, vms[2]
    world.engine.set_status(vm.name, "down")
    lifecycle.stop_kubelet(vm.name)
    assert world.sweep().ok  # one down read
    wait_for(lambda: ready(kube, vm.name) == "Unknown", timeout=5, what="the node NotReady")
    world.engine.stop()
    world.failed_sweeps(2)
    assert OUT_OF_SERVICE not in taints(kube, vm.name)


def test_a_taint_put_on_before_the_switch_was_turned_off_goes_when_the_vm_runs_again(
        cluster: tuple[World, NodeLifecycle, list[Any]]) -> None:
    # The runbook says to turn out_of_service_taint off when the engine reads running VMs down; the taints it had
    # put on stayed forever (NoExecute on a running, Ready node: its pods evicted, its volumes force-detachable).
    world, lifecycle, vms = cluster
    kube, engine, vm = world.kube, world.engine, vms[0]
    engine.set_status(vm.name, "down")
    lifecycle.stop_kubelet(vm.name)
    assert world.sweep().ok
    wait_for(lambda: ready(kube, vm.name) == "Unknown", timeout=5, what="the node NotReady")
    time.sleep(0.6)
    settled(kube, lifecycle)
    assert world.sweep().ok
    assert OUT_OF_SERVICE in taints(kube, vm.name)
    world.close()
    with World(engine, kube, nodes=NodesConfig()) as switched_off:  # out_of_service_taint = false
        settled(kube, lifecycle)
        assert switched_off.sweep().ok
        assert OUT_OF_SERVICE in taints(kube, vm.name)  # still down and NotReady: kept
        engine.set_status(vm.name, "up")
        kubelet_ready_again(kube, lifecycle, vm.name)
        assert switched_off.sweep().ok
        assert OUT_OF_SERVICE not in taints(kube, vm.name)
        assert "OutOfServiceTaintRemoved" in reasons(kube, vm.name)
        kube.reset_counts()
        assert switched_off.sweep().ok
        assert kube.writes("nodes") == 0
