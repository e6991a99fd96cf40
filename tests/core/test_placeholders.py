"""Placeholders (issue #20, part 1): register is opt-in, our unadopted placeholders go when it is off, and the
planner never fights kube-controller-manager's node lifecycle controller over taints or conditions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ovirt_cloudprovider.core.plan import REASON_UNADOPTED, plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_KUBELET_ATTACH_DETACH,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    ActionKind,
    ObservedNode,
    Taint,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import desired, kubelet_node, make_spec, synced_node, with_annotation

K = ActionKind
OFF = NodesConfig()  # register is off by default
ON = NodesConfig(register=True)


def plan(want: object, observed: list[ObservedNode], nodes: NodesConfig = OFF) -> list[tuple[str, K, str]]:
    p = plan_sync(want, observed, nodes=nodes, controller=ControllerConfig())  # type: ignore[arg-type]
    return [(a.node, a.kind, a.reason) for a in p.actions]


def test_register_is_off_by_default() -> None:
    assert NodesConfig().register is False
    assert plan(desired(make_spec("web1")), []) == []


def test_an_unadopted_placeholder_is_deleted_when_register_is_off() -> None:
    spec = make_spec("web1", status="down")
    node = synced_node(spec, placeholder=True)
    p = plan_sync(desired(spec), [node], nodes=OFF, controller=ControllerConfig())
    assert [(a.node, a.kind, a.reason) for a in p.actions] == [("web1", K.DELETE, REASON_UNADOPTED)]
    action = p.actions[0]
    assert (action.uid, action.resource_version, action.vm_id) == (node.uid, node.resource_version, spec.vm_id)
    assert "no kubelet ever joined" in action.message
    assert p.managed_nodes == 0


def test_an_unadopted_placeholder_of_an_absent_vm_is_deleted_at_once() -> None:
    gone = synced_node(make_spec("old"), placeholder=True)
    assert plan(desired(make_spec("web1")), [gone]) == [("old", K.DELETE, REASON_UNADOPTED)]


@pytest.mark.parametrize("evidence", [
    {"kubelet_version": "v1.34.1"},
    {"kubelet_reported": True},
    {"ready_status": "True", "ready_reason": "KubeletReady", "kubelet_reported": True},
    "annotation",
])
def test_a_placeholder_a_kubelet_adopted_is_never_deleted_for_that(evidence: object) -> None:
    spec = make_spec("web1")
    node = synced_node(spec, placeholder=True)
    node = (with_annotation(node, ANNOTATION_KUBELET_ATTACH_DETACH, "true") if evidence == "annotation"
            else replace(node, **evidence))  # type: ignore[arg-type]
    assert plan(desired(spec), [node]) == []


def test_unadopted_placeholders_stay_while_register_is_on_or_delete_is_off() -> None:
    spec = make_spec("web1")
    node = synced_node(spec, placeholder=True)
    assert plan(desired(spec), [node], ON) == []
    assert plan(desired(spec), [node], NodesConfig(delete=False)) == []


def test_a_kubelet_node_without_kubelet_evidence_is_not_ours_to_delete() -> None:
    spec = make_spec("web1")
    node = synced_node(spec)  # initialized kubelet node (no managed-by label), no status posted yet
    assert plan(desired(spec), [node]) == []


def test_registration_sends_not_ready_and_never_the_unreachable_taint() -> None:
    p = plan_sync(desired(make_spec("web1")), [], nodes=ON, controller=ControllerConfig())
    (action,) = p.actions
    assert action.kind == K.REGISTER and action.taints == (Taint(TAINT_NOT_READY, "NoSchedule"),)


@pytest.mark.parametrize("status", ["up", "down"])
def test_the_node_lifecycle_controllers_taints_and_conditions_are_not_drift(status: str) -> None:
    """Once kube-controller-manager swapped not-ready for unreachable and Ready=False for Unknown, no write of ours
    puts ours back: a steady plan is empty."""
    spec = make_spec("web1", status=status)
    base = synced_node(spec, placeholder=True)
    stamp = "2026-01-01T00:00:00Z"
    swapped = replace(base, taints=(*base.taints, Taint(TAINT_UNREACHABLE, "NoSchedule", time_added=stamp),
                                    Taint(TAINT_UNREACHABLE, "NoExecute", time_added=stamp)),
                      ready_status="Unknown", ready_reason="NodeStatusUnknown", ready_since=1.0e9)
    assert plan(desired(spec), [swapped], ON) == []
    kubelet = replace(kubelet_node("web2", provider_id=make_spec("web2").provider_id, uninitialized=False),
                      taints=(Taint(TAINT_NOT_READY, "NoExecute"),), ready_status="False",
                      ready_reason="KubeletNotReady", kubelet_reported=True)
    actions = plan(desired(make_spec("web2")), [kubelet], ON)
    assert all(kind != K.TAINT and kind != K.UNTAINT for _, kind, _ in actions), actions
