"""The out-of-service taint (issue #20, part 2; KEP-2268 non-graceful node shutdown), in the pure planner."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ovirt_cloudprovider.core.plan import (
    REASON_OUT_OF_SERVICE_TAINTED,
    REASON_OUT_OF_SERVICE_UNTAINTED,
    REASON_UPDATED,
    plan_sync,
)
from ovirt_cloudprovider.core.records import (
    ANNOTATION_DOWN_READS,
    KIND_HOST,
    TAINT_OUT_OF_SERVICE,
    TAINT_SHUTDOWN,
    TAINT_UNREACHABLE,
    ActionKind,
    Desired,
    NodeSpec,
    ObservedNode,
    Plan,
    Taint,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import desired, make_spec, synced_node, with_annotation

K = ActionKind
ON = NodesConfig(out_of_service_taint=True)
NOW = 1_800_000_000.0
OOS = Taint(TAINT_OUT_OF_SERVICE, "NoExecute", "nodeshutdown")
SHUTDOWN = Taint(TAINT_SHUTDOWN, "NoSchedule")


def plan(spec: NodeSpec, node: ObservedNode, nodes: NodesConfig = ON, now: float | None = NOW,
         want: Desired | None = None) -> Plan:
    return plan_sync(want or desired(spec), [node], nodes=nodes, controller=ControllerConfig(), now=now)


def down_node(spec: NodeSpec, *, read_before: bool = True, ready: str = "Unknown", since: float = 61.0,
              taints: tuple[Taint, ...] = (SHUTDOWN,)) -> ObservedNode:
    """The node of a VM the engine read down before (the annotation), NotReady for ``since`` seconds."""
    node = replace(synced_node(spec), taints=taints, ready_status=ready, ready_reason="NodeStatusUnknown",
                   ready_since=NOW - since)
    return with_annotation(node, ANNOTATION_DOWN_READS, "1") if read_before else node


def summary(p: Plan) -> list[tuple[K, str]]:
    return [(a.kind, a.reason) for a in p.actions]


def test_off_by_default() -> None:
    assert NodesConfig().out_of_service_taint is False and NodesConfig().out_of_service_after == 60
    spec = make_spec("web1", status="down")
    assert plan(spec, down_node(spec, read_before=False, since=3600), nodes=NodesConfig()).actions == ()


def test_the_first_down_read_is_remembered_on_the_node() -> None:
    spec = make_spec("web1", status="down")
    p = plan(spec, down_node(spec, read_before=False))
    (action,) = p.actions
    assert (action.kind, action.reason) == (K.UPDATE, REASON_UPDATED)
    assert action.annotations == ((ANNOTATION_DOWN_READS, "1"),) and action.taints is None


@pytest.mark.parametrize("ready", ["False", "Unknown"])
def test_second_down_read_of_a_node_not_ready_long_enough_adds_the_taint(ready: str) -> None:
    spec = make_spec("web1", status="down")
    unreachable = Taint(TAINT_UNREACHABLE, "NoExecute", time_added="2026-01-01T00:00:00Z")
    p = plan(spec, down_node(spec, ready=ready, taints=(SHUTDOWN, unreachable)))
    (action,) = p.actions
    assert (action.kind, action.reason) == (K.TAINT, REASON_OUT_OF_SERVICE_TAINTED)
    assert action.taints == (SHUTDOWN, unreachable, OOS)
    assert action.taints[1].time_added == "2026-01-01T00:00:00Z"  # the controller-manager's taint kept as it is
    assert "two consecutive sweeps" in action.message and "NotReady for 61s" in action.message
    assert "node.kubernetes.io/out-of-service:NoExecute" in action.message


@pytest.mark.parametrize(("since", "ready", "now"), [
    (59.0, "Unknown", NOW),  # not NotReady for out_of_service_after yet
    (600.0, "True", NOW),  # the node is Ready: a kubelet reports
    (600.0, None, NOW),  # no Ready condition at all
    (600.0, "Unknown", None),  # no clock given
])
def test_no_taint_unless_not_ready_long_enough(since: float, ready: str | None, now: float | None) -> None:
    spec = make_spec("web1", status="down")
    assert plan(spec, down_node(spec, since=since, ready=ready), now=now).actions == ()  # type: ignore[arg-type]


def test_out_of_service_after_is_honoured() -> None:
    spec = make_spec("web1", status="down")
    node = down_node(spec, since=10.0)
    assert plan(spec, node).actions == ()
    assert summary(plan(spec, node, nodes=replace(ON, out_of_service_after=5))) == [
        (K.TAINT, REASON_OUT_OF_SERVICE_TAINTED)]


@pytest.mark.parametrize("status", ["unknown", "not_responding", "suspended", "migrating", "image_locked",
                                    "powering_down", "paused"])
def test_only_down_counts(status: str) -> None:
    spec = make_spec("web1", status=status)
    node = down_node(spec, since=600.0, taints=())
    p = plan(spec, node)
    assert all(TAINT_OUT_OF_SERVICE not in a.message for a in p.actions), summary(p)
    assert all(a.taints is None or OOS not in a.taints for a in p.actions)
    # a read that is not "down" ends the run of consecutive down reads
    updates = [a for a in p.actions if a.kind == K.UPDATE]
    assert updates and ((ANNOTATION_DOWN_READS, None) in (updates[0].annotations or ()))


def test_a_tainted_node_whose_vm_stays_down_is_steady() -> None:
    spec = make_spec("web1", status="down")
    assert plan(spec, down_node(spec, taints=(SHUTDOWN, OOS), since=3600)).actions == ()


def test_removed_when_the_vm_runs_and_the_node_is_ready() -> None:
    spec = make_spec("web1", status="up")
    still_not_ready = down_node(spec, read_before=False, taints=(OOS,))
    assert not any(a.kind == K.UNTAINT for a in plan(spec, still_not_ready).actions)
    ready = replace(still_not_ready, ready_status="True", ready_reason="KubeletReady")
    (action,) = plan(spec, ready).actions
    assert (action.kind, action.reason, action.taints) == (K.UNTAINT, REASON_OUT_OF_SERVICE_UNTAINTED, ())


def test_a_host_down_after_fencing_gets_it_too() -> None:
    vm = make_spec("hv1", status="down")
    spec = replace(vm, kind=KIND_HOST, provider_id=f"ovirt://host/{vm.vm_id}")
    node = down_node(spec)
    p = plan(spec, node, want=Desired(nodes=(spec,), hosts_discovered=True))
    (taint,) = [a for a in p.actions if a.kind == K.TAINT]  # (and the host-id annotation of a host's node)
    assert (taint.reason, taint.owner_kind, taint.taints) == (REASON_OUT_OF_SERVICE_TAINTED, KIND_HOST, (SHUTDOWN, OOS))


def test_switched_off_a_stale_first_read_is_removed_and_nothing_is_tainted() -> None:
    spec = make_spec("web1", status="down")
    p = plan(spec, down_node(spec, since=3600), nodes=NodesConfig())
    (action,) = p.actions
    assert action.kind == K.UPDATE and action.annotations == ((ANNOTATION_DOWN_READS, None),)


def test_never_for_an_absent_vm_or_an_empty_discovery() -> None:
    spec = make_spec("web1", status="down")
    node = down_node(spec, since=3600)
    for want in (desired(make_spec("other")), desired()):
        p = plan(spec, node, want=want)
        assert all(a.kind not in (K.TAINT, K.UNTAINT) for a in p.actions), summary(p)


def test_an_operators_out_of_service_taint_counts_as_present_by_key_and_effect() -> None:
    """As kube-apiserver keys taints (and the shutdown rule matches them): an operator's
    ``out-of-service=manual:NoExecute`` is the taint present; none is added beside it."""
    spec = make_spec("web1", status="down")
    manual = Taint(TAINT_OUT_OF_SERVICE, "NoExecute", "manual")
    assert plan(spec, down_node(spec, taints=(SHUTDOWN, manual), since=3600)).actions == ()
