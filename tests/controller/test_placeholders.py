"""Placeholders end to end (issue #20, part 1), with the real clients against both simulators and the Kubernetes
API simulator's node lifecycle mode doing what kube-controller-manager does to Node taints and conditions."""

from __future__ import annotations

from typing import Any

from ovirt_cloudprovider.core.settings import NodesConfig
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running
from tests.helpers import wait_for

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def taints(node: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in ((node or {}).get("spec") or {}).get("taints") or []}


def ready(node: dict[str, Any] | None) -> dict[str, Any]:
    return next(c for c in (node or {})["status"].get("conditions") or [] if c["type"] == "Ready")


def node_writes(kube: KubeApiSimulator) -> int:
    return kube.writes("nodes") + kube.writes("nodes/status")


def test_register_is_opt_in(engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    with World(engine, kube, nodes=NodesConfig()) as world:
        assert world.sweep().ok
    assert kube.list_nodes() == []


def test_placeholders_keep_a_no_schedule_taint_and_we_never_fight_the_node_lifecycle_controller(
        engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    vm = running(engine)[0]
    kube.register_kubelet_node("kubelet-ready", external_cloud_provider=False)  # some node is Ready
    lifecycle = kube.start_node_lifecycle(startup_grace=1.0, monitor_grace=1.5, period=0.05, renew_interval=0.3)
    with World(engine, kube) as world:
        assert world.sweep().ok
        node = world.node_of(vm.id)
        assert node is not None
        cond = ready(node)
        assert (cond["status"], cond["reason"]) == ("False", "KubeletNotJoined")
        assert "No kubelet has joined" in cond["message"]
        name = node["metadata"]["name"]
        # the controller-manager keeps not-ready (a node without a Ready condition would lose it), adds NoExecute
        # (a node is Ready), and after its grace period swaps both for unreachable and Ready for Unknown
        wait_for(lambda: (NOT_READY, "NoExecute") in taints(kube.get_node(name)), timeout=5, what="not-ready:NoExecute")
        assert (NOT_READY, "NoSchedule") in taints(kube.get_node(name))
        wait_for(lambda: taints(kube.get_node(name)) >= {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")},
                 timeout=10, what="the unreachable taints")
        assert ready(kube.get_node(name))["status"] == "Unknown"
        passes = lifecycle.passes
        wait_for(lambda: lifecycle.passes > passes + 2, what="lifecycle passes")
        kube.reset_counts()
        for _ in range(2):
            assert world.sweep().ok
        assert node_writes(kube) == 0  # not a single write puts our taint or condition back
        after = kube.get_node(name)
        assert ready(after)["status"] == "Unknown"
        assert (NOT_READY, "NoSchedule") not in taints(after)


def test_unadopted_placeholders_are_deleted_when_register_is_off_adopted_ones_never(
        engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    with World(engine, kube) as world:
        world.converge()
    placeholders = sorted(n["metadata"]["name"] for n in kube.list_nodes())
    assert len(placeholders) >= 3
    adopted, posted, unadopted = placeholders[0], placeholders[1], placeholders[2:]
    # a kubelet adopted one (its status update carries its version) and posted a condition on another
    kube.update_node_status(adopted, ready=True, node_info={"kubeletVersion": "v1.34.1"})
    kube.update_node_status(posted, ready=False)
    with World(engine, kube, nodes=NodesConfig()) as world:
        report = world.sweep()
        assert report.ok, report.error
        left = sorted(n["metadata"]["name"] for n in kube.list_nodes())
        assert left == [adopted, posted]
        events = {e["involvedObject"]["name"] for e in kube.list_events(reason="UnadoptedPlaceholder")}
        assert events == set(unadopted)
        kube.reset_counts()
        assert world.sweep().ok
        assert node_writes(kube) == 0
