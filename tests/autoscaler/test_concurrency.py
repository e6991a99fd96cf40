"""Calls the cluster-autoscaler sends at the same time. Its scale-down sends one NodeGroupDeleteNodes per node, in
parallel (after tainting the nodes ToBeDeletedByClusterAutoscaler), while its loop keeps asking Refresh,
NodeGroupTargetSize and NodeGroupForNode (for every node, those of no group included). Each delete succeeds while
the group stays at or above min_size and none takes it below; parallel deletes do not wait for each other's VMs
to power off; the answers from memory never wait behind deletes in flight."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from ovirt_cloudprovider.core.settings import NodeGroupConfig
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.autoscaler.conftest import POOL, Scaler, config_for, engine_fleet, is_marked
from tests.helpers import wait_for

BIG = NodeGroupConfig(name="big", template="k8s-node", cluster="east-a", min_size=0, max_size=20)


def _vms(sim: EngineSimulator, group: str) -> list[str]:
    sim.fleet.advance()
    return sorted(v.id for v in sim.fleet.vms.values() if is_marked(v.description, group))


def _statuses(sim: EngineSimulator, ids: list[str]) -> list[str]:
    sim.fleet.advance()
    return [sim.fleet.vms[i].status if i in sim.fleet.vms else "removed" for i in ids]


def _grown(sim: EngineSimulator, s: Scaler, group: str, n: int) -> list[str]:
    s.call("NodeGroupIncreaseSize", id=group, delta=n)
    vms = _vms(sim, group)
    wait_for(lambda: _statuses(sim, vms) == ["up"] * n, 20, f"the {n} VMs of {group} up")
    return vms


def _delete(s: Scaler, group: str, vm_id: str) -> grpc.StatusCode:
    """One NodeGroupDeleteNodes with one node, as the autoscaler sends them; its status code."""
    try:
        s.stub.NodeGroupDeleteNodes(s.pb.NodeGroupDeleteNodesRequest(id=group, nodes=[s.node(f"ovirt://{vm_id}")]),
                                    timeout=60)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _in_parallel(calls: list[Callable[[], grpc.StatusCode]]) -> list[grpc.StatusCode]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(c) for c in calls]]


def test_two_parallel_deletes_at_min_plus_two_both_succeed(sim: EngineSimulator, scaler: Scaler) -> None:
    vms = _grown(sim, scaler, "pool", POOL.min_size + 2)
    codes = _in_parallel([lambda v=v: _delete(scaler, "pool", v) for v in vms[:2]])  # type: ignore[misc]
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK]
    assert _vms(sim, "pool") == vms[2:]
    assert scaler.call("NodeGroupTargetSize", id="pool").targetSize == POOL.min_size


def test_three_parallel_deletes_at_min_plus_two_never_go_below_min(sim: EngineSimulator, scaler: Scaler) -> None:
    vms = _grown(sim, scaler, "pool", POOL.min_size + 2)
    codes = _in_parallel([lambda v=v: _delete(scaler, "pool", v) for v in vms])  # type: ignore[misc]
    assert sorted(c.name for c in codes) == ["FAILED_PRECONDITION", "OK", "OK"]
    assert len(_vms(sim, "pool")) == POOL.min_size
    assert scaler.call("NodeGroupTargetSize", id="pool").targetSize == POOL.min_size


def test_parallel_deletes_power_off_their_vms_at_the_same_time(engine_sims: Callable[..., EngineSimulator],
                                                               scalers: Callable[..., Scaler]) -> None:
    """A power-off takes the engine a while: one delete waiting for its VM to be down does not hold the others
    (with the grpc_timeout of the autoscaler, 30 s in our cloud-config, ten serialized deletes would time out)."""
    sim = engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2, stop_seconds=2.0)
    s = scalers(config_for(sim))
    vms = _grown(sim, s, "pool", 3)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_delete, s, "pool", v) for v in vms[:2]]
        wait_for(lambda: _statuses(sim, vms[:2]) == ["powering_down"] * 2, 10,
                 "both VMs powering down at once", interval=0.01)
        assert [f.result(timeout=60) for f in futures] == [grpc.StatusCode.OK] * 2
    assert _vms(sim, "pool") == vms[2:]


def test_the_loop_is_answered_while_many_deletes_are_in_flight(engine_sims: Callable[..., EngineSimulator],
                                                               scalers: Callable[..., Scaler]) -> None:
    """The autoscaler deletes up to --max-scale-down-parallelism (default 10) nodes at once, each call waiting for
    its VM to power off; meanwhile its loop asks NodeGroupForNode for every node, from memory: never behind them."""
    sim = engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2, stop_seconds=3.0)
    s = scalers(config_for(sim, POOL, BIG))
    vms = _grown(sim, s, "big", 16)
    with ThreadPoolExecutor(len(vms)) as pool:
        futures = [pool.submit(_delete, s, "big", v) for v in vms]
        wait_for(lambda: "powering_down" in _statuses(sim, vms), 10, "deletes in flight")
        none: Any = s.stub.NodeGroupForNode(s.pb.NodeGroupForNodeRequest(node=s.node(
            "ovirt://0e0e0e0e-0000-0000-0000-00000000000f")), timeout=2)
        assert none.nodeGroup.id == ""
        mine: Any = s.stub.NodeGroupForNode(s.pb.NodeGroupForNodeRequest(node=s.node(f"ovirt://{vms[-1]}")),
                                            timeout=2)
        assert mine.nodeGroup.id == "big"
        assert s.stub.NodeGroups(s.pb.NodeGroupsRequest(), timeout=2).nodeGroups
        assert [f.result(timeout=120) for f in futures] == [grpc.StatusCode.OK] * len(vms)
    assert _vms(sim, "big") == []
    assert s.call("NodeGroupTargetSize", id="big").targetSize == 0
