"""The externalgrpc service driven as the cluster-autoscaler drives it (a gRPC client from our own .proto) against
the engine simulator: scale up → VMs created, tagged, started → a kubelet registers → the node controller
initializes the node → NodeGroupForNode and NodeGroupNodes agree → NodeGroupDeleteNodes removes exactly those VMs
with their disks. Then the faults: the engine failing mid-create, a create whose answer is lost, a restart
between create and start, a second replica, deletions of another group's or a hand-made VM, min and max."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import grpc
import pytest

from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.autoscaler.conftest import OTHER, POOL, Scaler, config_for, engine_fleet, is_marked
from tests.controller.world import World
from tests.helpers import wait_for


def _group_vms(sim: EngineSimulator, group: str) -> list[str]:
    sim.fleet.advance()
    return sorted(v.id for v in sim.fleet.vms.values() if is_marked(v.description, group))


def _statuses(sim: EngineSimulator, group: str) -> list[str]:
    sim.fleet.advance()
    return sorted(v.status for v in sim.fleet.vms.values() if is_marked(v.description, group))


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()  # type: ignore[no-any-return]


def _engine_requests(s: Scaler) -> float:
    return sum(sample.value for metric in s.server.metrics.engine_requests_total.collect()
               for sample in metric.samples if sample.name.endswith("_total"))


def test_scale_up_register_initialize_scale_down(engine_sims: Callable[..., EngineSimulator],
                                                 scalers: Callable[..., Scaler], kube: KubeApiSimulator) -> None:
    sim = engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2)
    s = scalers(config_for(sim))
    groups = s.call("NodeGroups").nodeGroups
    assert [(g.id, g.minSize, g.maxSize) for g in groups] == [("pool", 1, 5), ("other", 0, 3)]
    assert s.call("NodeGroupTargetSize", id="pool").targetSize == 0
    s.call("NodeGroupIncreaseSize", id="pool", delta=3)
    assert s.call("NodeGroupTargetSize", id="pool").targetSize == 3
    vms = _group_vms(sim, "pool")
    assert len(vms) == 3
    wait_for(lambda: _statuses(sim, "pool") == ["up"] * 3, 10, "the new VMs up")
    for vm_id in vms:
        vm = sim.fleet.vm(vm_id)
        assert vm.name.startswith("pool-") and "kubernetes" in {sim.fleet.tags[t].name for t in vm.tag_ids}
        kube.register_kubelet_node(vm.name, system_uuid=vm_id)
    with World(sim, kube) as world:
        world.converge()
        nodes = {n["metadata"]["name"]: n for n in kube.list_nodes()}
    s.call("Refresh")  # as the autoscaler does at the start of every loop
    for vm_id in vms:
        node = nodes[sim.fleet.vm(vm_id).name]
        assert node["spec"]["providerID"] == f"ovirt://{vm_id}"
        assert not [t for t in node["spec"].get("taints") or [] if "uninitialized" in t["key"]]
        assert s.call("NodeGroupForNode", node=s.node(node["spec"]["providerID"])).nodeGroup.id == "pool"
    instances = s.call("NodeGroupNodes", id="pool").instances
    assert sorted(i.id for i in instances) == sorted(f"ovirt://{v}" for v in vms)
    assert {i.status.instanceState for i in instances} == {s.pb.InstanceStatus.instanceRunning}
    # a node of no group
    other_node = next(n for n in kube.list_nodes() if n["spec"].get("providerID") not in
                      {f"ovirt://{v}" for v in vms})
    assert s.call("NodeGroupForNode", node=s.node(other_node["spec"].get("providerID", ""))).nodeGroup.id == ""
    disks = [d for v in vms for d in sim.fleet.vm(v).disk_ids]
    s.call("NodeGroupDeleteNodes", id="pool", nodes=[s.node(f"ovirt://{vms[0]}"), s.node(f"ovirt://{vms[1]}")])
    assert _group_vms(sim, "pool") == [vms[2]]
    assert not set(disks[:2]) & set(sim.fleet.disks)
    assert s.call("NodeGroupTargetSize", id="pool").targetSize == 1
    metrics = s.server.metrics.registry
    assert metrics.get_sample_value("ovirt_cloudprovider_nodegroup_vms_created_total", {"group": "pool"}) == 3
    assert metrics.get_sample_value("ovirt_cloudprovider_nodegroup_vms_removed_total", {"group": "pool"}) == 2
    assert metrics.get_sample_value("ovirt_cloudprovider_nodegroup_size", {"group": "pool"}) == 1


def test_memory_answers_never_reach_the_engine(sim: EngineSimulator, scaler: Scaler) -> None:
    scaler.call("Refresh")
    scaler.server.groups.stop()  # no background refresh in between
    before = _engine_requests(scaler)
    for _ in range(20):
        scaler.call("NodeGroups")
        scaler.call("NodeGroupTargetSize", id="pool")
        scaler.call("NodeGroupForNode", node=scaler.node("ovirt://0e0e0e0e-0000-0000-0000-000000000001"))
        scaler.call("NodeGroupNodes", id="other")
    # nodes of no group: a VM of none, no providerID yet (an uninitialized node), another provider's: id ""
    for pid, name in (("ovirt://0e0e0e0e-0000-0000-0000-000000000001", "vm-1"), ("", "fresh"),
                      ("aws:///us-east-1a/i-0123", "ec2")):
        assert scaler.call("NodeGroupForNode", node=scaler.node(pid, name)).nodeGroup.id == ""
    assert _engine_requests(scaler) == before
    scaler.call("Refresh")
    assert _engine_requests(scaler) == before + 1  # one search for every group


def test_never_above_max_and_a_second_replica_sees_the_same(sim: EngineSimulator,
                                                            scalers: Callable[..., Scaler]) -> None:
    a, b = scalers(config_for(sim)), scalers(config_for(sim))
    a.call("NodeGroupIncreaseSize", id="other", delta=2)
    assert b.call("NodeGroupTargetSize", id="other").targetSize == 0  # memory until Refresh
    b.call("Refresh")
    assert b.call("NodeGroupTargetSize", id="other").targetSize == 2
    assert _code(lambda: b.call("NodeGroupIncreaseSize", id="other", delta=2)) == grpc.StatusCode.FAILED_PRECONDITION
    b.call("NodeGroupIncreaseSize", id="other", delta=1)
    assert len(_group_vms(sim, "other")) == 3
    assert _code(lambda: a.call("NodeGroupIncreaseSize", id="other", delta=1)) == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: a.call("NodeGroupIncreaseSize", id="other", delta=0)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: a.call("NodeGroupIncreaseSize", id="nope", delta=1)) == grpc.StatusCode.NOT_FOUND
    a.call("Refresh")
    vm = _group_vms(sim, "other")[0]
    assert b.call("NodeGroupForNode", node=b.node(f"ovirt://{vm}")).nodeGroup.id == "other"


def test_deletion_refuses_foreign_and_hand_made_vms_and_min(sim: EngineSimulator, scaler: Scaler) -> None:
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=2)
    scaler.call("NodeGroupIncreaseSize", id="other", delta=1)
    pool, other = _group_vms(sim, "pool"), _group_vms(sim, "other")
    hand_made = next(v.id for v in sim.fleet.vms.values() if not v.description.startswith("ovirt-cloudprovider"))
    before = set(sim.fleet.vms)
    for victim in (other[0], hand_made, "0e0e0e0e-0000-0000-0000-000000000009"):
        code = _code(lambda victim=victim: scaler.call(  # type: ignore[misc]
            "NodeGroupDeleteNodes", id="pool", nodes=[scaler.node(f"ovirt://{pool[0]}"),
                                                      scaler.node(f"ovirt://{victim}")]))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
    # never below min (1): both at once refused, one at a time the second refused
    assert _code(lambda: scaler.call("NodeGroupDeleteNodes", id="pool", nodes=[
        scaler.node(f"ovirt://{v}") for v in pool])) == grpc.StatusCode.FAILED_PRECONDITION
    assert set(sim.fleet.vms) == before
    wait_for(lambda: _statuses(sim, "pool") == ["up", "up"], 10, "pool VMs up")
    scaler.call("NodeGroupDeleteNodes", id="pool", nodes=[scaler.node(f"ovirt://{pool[0]}")])
    assert _code(lambda: scaler.call("NodeGroupDeleteNodes", id="pool", nodes=[
        scaler.node(f"ovirt://{pool[1]}")])) == grpc.StatusCode.FAILED_PRECONDITION
    assert set(sim.fleet.vms) == before - {pool[0]}
    # a mark removed by hand after the search: the GET before the removal refuses
    sim.fleet.vm(other[0]).description = "mine now"
    assert _code(lambda: scaler.call("NodeGroupDeleteNodes", id="other", nodes=[
        scaler.node(f"ovirt://{other[0]}")])) == grpc.StatusCode.FAILED_PRECONDITION
    assert other[0] in sim.fleet.vms


def test_engine_failing_mid_create_never_makes_more_than_asked(sim: EngineSimulator, scaler: Scaler) -> None:
    sim.fail_requests(503, count=1, path_prefix="/ovirt-engine/api/vms", method="POST", skip=2)  # 2nd create
    assert _code(lambda: scaler.call("NodeGroupIncreaseSize", id="pool", delta=3)) == grpc.StatusCode.UNAVAILABLE
    assert len(_group_vms(sim, "pool")) == 1
    assert scaler.call("NodeGroupTargetSize", id="pool").targetSize == 1
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=2)  # the autoscaler asks for what is missing
    assert len(_group_vms(sim, "pool")) == 3


def test_a_create_whose_answer_is_lost_is_counted_once(sim: EngineSimulator, scaler: Scaler) -> None:
    sim.lose_answers(count=1, path_prefix="/ovirt-engine/api/vms", method="POST")
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=2)
    assert len(_group_vms(sim, "pool")) == 2
    assert scaler.call("NodeGroupTargetSize", id="pool").targetSize == 2
    wait_for(lambda: _statuses(sim, "pool") == ["up", "up"], 10, "both VMs started")


def test_a_restart_between_create_and_start(engine_sims: Callable[..., EngineSimulator],
                                            scalers: Callable[..., Scaler]) -> None:
    sim = engine_sims(engine_fleet(), image_lock_seconds=1.0, boot_seconds=0.2)
    first = scalers(config_for(sim))
    first.call("NodeGroupIncreaseSize", id="pool", delta=2)
    first.close()  # gone while the disks are copied: nobody started them
    wait_for(lambda: _statuses(sim, "pool") == ["down", "down"], 10, "the copies done")
    second = scalers(config_for(sim))
    assert second.call("NodeGroupTargetSize", id="pool").targetSize == 2
    second.call("Refresh")
    wait_for(lambda: _statuses(sim, "pool") == ["up", "up"], 10, "started by the new process")
    assert len(_group_vms(sim, "pool")) == 2


def test_template_node_info_and_the_optional_calls(sim: EngineSimulator, scaler: Scaler) -> None:
    resp = scaler.call("NodeGroupTemplateNodeInfo", id="pool")
    node = type(resp.nodeInfo).FromString(resp.nodeBytes)
    assert node == resp.nodeInfo
    labels = dict(node.metadata.labels)
    assert labels["topology.kubernetes.io/zone"] == "east-a" and labels["kubernetes.io/arch"] == "amd64"
    assert node.status.capacity["cpu"].string == "4" and node.status.capacity["memory"].string == "8388608Ki"
    assert _code(lambda: scaler.call("NodeGroupGetOptions", id="pool")) == grpc.StatusCode.UNIMPLEMENTED
    assert _code(lambda: scaler.call("PricingNodePrice")) == grpc.StatusCode.UNIMPLEMENTED
    assert _code(lambda: scaler.call("PricingPodPrice")) == grpc.StatusCode.UNIMPLEMENTED
    assert _code(lambda: scaler.call("NodeGroupDecreaseTargetSize", id="pool", delta=-1)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert scaler.call("GPULabel").label == "nvidia.com/gpu.present"
    assert not scaler.call("GetAvailableGPUTypes").gpuTypes
    scaler.call("Cleanup")  # the autoscaler's SIGTERM: nothing to release, the service serves its successor
    assert [g.id for g in scaler.call("NodeGroups").nodeGroups] == ["pool", "other"]
    assert scaler.call("NodeGroupTemplateNodeInfo", id="other").nodeBytes  # a group without nodes, again


def test_one_search_per_refresh_for_every_group(sim: EngineSimulator, scalers: Callable[..., Scaler]) -> None:
    groups = [replace(OTHER, name=f"g{i}", name_prefix=f"g{i}") for i in range(20)]
    s = scalers(config_for(sim, POOL, *groups))
    s.server.groups.stop()
    sim.reset_requests()
    s.call("Refresh")
    assert sim.request_count("/vms", method="GET") == 1


def test_each_new_vm_is_started_once(sim: EngineSimulator, scaler: Scaler) -> None:
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=2)
    wait_for(lambda: _statuses(sim, "pool") == ["up", "up"], 10, "both VMs up")
    time.sleep(1.0)  # ten rounds of the background thread (poll 0.1 s) after the starts
    starts = [r for r in sim.requests if r.method == "POST" and r.path.endswith("/start")]
    assert len(starts) == 2 and all(r.status == 200 for r in starts)


def test_a_create_that_times_out_but_happens(engine_sims: Callable[..., EngineSimulator],
                                             scalers: Callable[..., Scaler]) -> None:
    """The engine answers the create after the client gave up (the request timeout), and makes the VM then: the
    call fails, the late VM is found by its mark at the next Refresh, counted, tagged and started, and the
    autoscaler's retry creates only what is missing."""
    sim = engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2)
    s = scalers(config_for(sim, timeout=1.0))
    sim.set_latency(2.0, path_prefix="/ovirt-engine/api/vms", method="POST", count=1)
    assert _code(lambda: s.call("NodeGroupIncreaseSize", id="pool", delta=2)) == grpc.StatusCode.UNAVAILABLE
    wait_for(lambda: len(_group_vms(sim, "pool")) == 1, 10, "the late VM made")
    (late,) = _group_vms(sim, "pool")
    s.call("Refresh")  # the autoscaler's next loop
    assert s.call("NodeGroupTargetSize", id="pool").targetSize == 1
    s.call("NodeGroupIncreaseSize", id="pool", delta=1)  # what is still missing
    assert len(_group_vms(sim, "pool")) == 2
    wait_for(lambda: _statuses(sim, "pool") == ["up", "up"], 10, "both VMs started")
    assert "kubernetes" in {sim.fleet.tags[t].name for t in sim.fleet.vm(late).tag_ids}
    assert _code(lambda: s.call("NodeGroupIncreaseSize", id="pool", delta=4)) == grpc.StatusCode.FAILED_PRECONDITION
