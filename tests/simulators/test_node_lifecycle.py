"""The Kubernetes API simulator's node lifecycle mode against what a real control plane did (issue #20: a real
kube-apiserver with kube-controller-manager's node lifecycle controller and no kubelet).

Recorded there: a Node with no conditions loses ``node.kubernetes.io/not-ready:NoSchedule`` within about 1 s and
has no taint for the startup grace period (~60 s); then ``Ready=Unknown`` (``NodeStatusNeverUpdated``) and
``node.kubernetes.io/unreachable:NoSchedule``, plus ``unreachable:NoExecute`` when at least one node is Ready. A
Node created with ``Ready=False`` kept ``not-ready:NoSchedule`` and after the grace period had it swapped for
``unreachable:NoSchedule`` and ``Ready=Unknown``, with no moment without a NoSchedule taint.
"""

from __future__ import annotations

import time
from typing import Any

from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from ovirt_cloudprovider.simulators.kubeapi.lifecycle import NodeLifecycle
from tests.helpers import wait_for

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def taints(sim: KubeApiSimulator, name: str) -> set[tuple[str, str]]:
    node = sim.get_node(name)
    assert node is not None
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


def ready(sim: KubeApiSimulator, name: str) -> dict[str, Any]:
    node = sim.get_node(name)
    assert node is not None
    return next(c for c in node["status"].get("conditions") or [] if c["type"] == "Ready")


def placeholder(name: str, *, ready_false: bool = False) -> dict[str, Any]:
    """A Node shaped like our placeholder: a providerID, the not-ready taint, and (when asked) Ready=False."""
    labels = {"app.kubernetes.io/managed-by": "ovirt-cloudprovider"}
    body: dict[str, Any] = {"metadata": {"name": name, "labels": labels},
                            "spec": {"providerID": f"ovirt://{name}",
                                     "taints": [{"key": NOT_READY, "effect": "NoSchedule"}]}}
    if ready_false:
        body["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotJoined",
                                          "message": "no kubelet has joined yet",
                                          "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                          "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return body


def mode(sim: KubeApiSimulator, clock: Clock) -> NodeLifecycle:
    return NodeLifecycle(sim, startup_grace=60, monitor_grace=50, clock=clock)


def no_schedule_history(sim: KubeApiSimulator, name: str) -> list[set[str]]:
    """The NoSchedule taint keys of every stored version of the node, oldest first."""
    out = []
    for ev in sim.store.events_after(0):
        if ev.key == ("nodes", "", name) and ev.obj is not None:
            out.append({t["key"] for t in ev.obj["spec"].get("taints") or [] if t["effect"] == "NoSchedule"})
    return out


def test_a_node_without_conditions_loses_not_ready_within_a_second(kubeapi: KubeApiSimulator) -> None:
    kubeapi.create_node(placeholder("p1"))
    assert taints(kubeapi, "p1") == {(NOT_READY, "NoSchedule")}  # the admission's taint
    kubeapi.start_node_lifecycle(period=0.1)
    wait_for(lambda: taints(kubeapi, "p1") == set(), timeout=1.0, what="not-ready removed")


def test_startup_grace_then_unknown_and_unreachable_with_no_execute_when_a_node_is_ready(
        kubeapi: KubeApiSimulator) -> None:
    clock = Clock()
    lc = mode(kubeapi, clock)
    kubeapi.register_kubelet_node("kubelet-1", internal_ip="192.0.2.1", external_cloud_provider=False)
    kubeapi.create_node(placeholder("p1"))
    lc.tick()
    assert taints(kubeapi, "p1") == set()  # schedulable during the startup grace period
    clock.offset = 59
    lc.tick()
    assert taints(kubeapi, "p1") == set()
    node = kubeapi.get_node("p1")
    assert node is not None and "conditions" not in node["status"]
    clock.offset = 65
    lc.tick()
    cond = ready(kubeapi, "p1")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")
    assert taints(kubeapi, "p1") == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    node = kubeapi.get_node("p1")
    assert node is not None
    kinds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert kinds == {"Ready": "Unknown", "MemoryPressure": "Unknown", "DiskPressure": "Unknown",
                     "PIDPressure": "Unknown"}
    # the live kubelet's node stays Ready and untainted: its Lease is renewed
    assert ready(kubeapi, "kubelet-1")["status"] == "True"
    assert taints(kubeapi, "kubelet-1") == set()


def test_no_no_execute_taint_while_no_node_is_ready(kubeapi: KubeApiSimulator) -> None:
    clock = Clock()
    lc = mode(kubeapi, clock)
    kubeapi.create_node(placeholder("p1"))
    lc.tick()
    clock.offset = 65
    lc.tick()
    lc.tick()
    assert ready(kubeapi, "p1")["status"] == "Unknown"
    assert taints(kubeapi, "p1") == {(UNREACHABLE, "NoSchedule")}


def test_ready_false_keeps_not_ready_then_swaps_to_unreachable_without_a_gap(kubeapi: KubeApiSimulator) -> None:
    clock = Clock()
    lc = mode(kubeapi, clock)
    kubeapi.create_node(placeholder("p1", ready_false=True))
    for offset in (0, 1, 30, 49):
        clock.offset = offset
        lc.tick()
        assert (NOT_READY, "NoSchedule") in taints(kubeapi, "p1")
    clock.offset = 55  # past the monitor grace period: a Ready condition gets that one, not the startup one
    lc.tick()
    cond = ready(kubeapi, "p1")
    assert (cond["status"], cond["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert taints(kubeapi, "p1") == {(UNREACHABLE, "NoSchedule")}
    history = no_schedule_history(kubeapi, "p1")
    assert history and all(keys for keys in history), history  # never a version without a NoSchedule taint


def test_ready_false_gets_not_ready_no_execute_when_another_node_is_ready(kubeapi: KubeApiSimulator) -> None:
    lc = mode(kubeapi, Clock())
    kubeapi.register_kubelet_node("kubelet-1", external_cloud_provider=False)
    kubeapi.create_node(placeholder("p1", ready_false=True))
    lc.tick()
    lc.tick()
    assert taints(kubeapi, "p1") == {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}


def test_a_stopped_kubelet_goes_unknown_after_the_monitor_grace_and_back_when_it_posts(
        kubeapi: KubeApiSimulator) -> None:
    clock = Clock()
    lc = mode(kubeapi, clock)
    for name in ("kubelet-1", "kubelet-2"):
        kubeapi.register_kubelet_node(name, external_cloud_provider=False)
    lc.tick()
    lc.stop_kubelet("kubelet-2")
    clock.offset = 30
    lc.tick()
    assert ready(kubeapi, "kubelet-2")["status"] == "True"
    clock.offset = 51 + lc.renew_interval
    lc.tick()
    lc.tick()
    assert ready(kubeapi, "kubelet-1")["status"] == "True"
    assert (ready(kubeapi, "kubelet-2")["status"], ready(kubeapi, "kubelet-2")["reason"]) == (
        "Unknown", "NodeStatusUnknown")
    assert taints(kubeapi, "kubelet-2") == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    lc.resume_kubelet("kubelet-2")  # the kubelet is back: it renews its Lease and posts Ready
    kubeapi.update_node_status("kubelet-2", ready=True)
    lc.tick()
    assert taints(kubeapi, "kubelet-2") == set()


def test_other_taints_are_kept(kubeapi: KubeApiSimulator) -> None:
    lc = mode(kubeapi, Clock())
    body = placeholder("p1", ready_false=True)
    body["spec"]["taints"].append({"key": "node.cloudprovider.kubernetes.io/shutdown", "effect": "NoSchedule"})
    kubeapi.create_node(body)
    lc.tick()
    assert ("node.cloudprovider.kubernetes.io/shutdown", "NoSchedule") in taints(kubeapi, "p1")
