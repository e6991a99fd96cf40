"""Who may make a VM a node group's: only the autoscaler, with its mark key. Someone who can edit a VM's description
(a tenant) writes the mark ``ovirt-cloudprovider-nodegroup:pool`` on their own VM, copies a real group VM's mark, or
writes a mark with a MAC that is not this key's: the VM is counted in no group, mapped to none, never started,
tagged or removed (logged once, ``ovirt_cloudprovider_nodegroup_unverified_vms``). A VM with a mark that verifies
but not in the group's cluster, not from its template or not named ``<name_prefix>-<n>`` is not the group's either.
And two replicas asked for max_size VMs at the same moment create max_size VMs together, not twice as many."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from ovirt_cloudprovider.core.nodegroups import mark
from ovirt_cloudprovider.core.settings import NodeGroupConfig
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.autoscaler.conftest import Scaler, config_for, engine_fleet


def _claims(description: str, group: str) -> bool:
    """Whether ``description`` is (or forges) a mark of ``group``."""
    parts = description.split(":")
    return len(parts) >= 2 and parts[0] + ":" == mark("") and parts[1] == group


def _group_vms(sim: EngineSimulator, group: str) -> list[str]:
    sim.fleet.advance()
    return sorted(v.id for v in list(sim.fleet.vms.values()) if _claims(v.description, group))


def _tags(sim: EngineSimulator, vm_id: str) -> set[str]:
    return {sim.fleet.tags[t].name for t in sim.fleet.vm(vm_id).tag_ids}


def _untouched(sim: EngineSimulator, s: Scaler, vm_id: str) -> None:
    """Not counted, not mapped, not started, not tagged, and a removal of it is refused with the VM left."""
    s.call("Refresh")
    assert s.call("NodeGroupTargetSize", id="pool").targetSize == 0
    assert s.call("NodeGroupForNode", node=s.node(f"ovirt://{vm_id}")).nodeGroup.id == ""
    assert f"ovirt://{vm_id}" not in [i.id for i in s.call("NodeGroupNodes", id="pool").instances]
    time.sleep(1.5)  # fifteen rounds of the background thread (poll 0.1 s), which starts and tags group VMs
    sim.fleet.advance()
    assert sim.fleet.vm(vm_id).status == "down"
    assert _tags(sim, vm_id) == {"tenant"}
    with pytest.raises(grpc.RpcError) as err:
        s.call("NodeGroupDeleteNodes", id="pool", nodes=[s.node(f"ovirt://{vm_id}")])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert vm_id in sim.fleet.vms


def test_a_forged_mark_makes_no_vm_a_group_member(sim: EngineSimulator, scaler: Scaler,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The hostile repro: a tenant's stopped VM in the group's cluster with the description of the old mark."""
    tenant = sim.fleet.add_vm("tenant-vm", cluster="east-a", status="down", description=mark("pool"),
                              tags=["tenant"]).id
    with caplog.at_level(logging.WARNING, logger="ovirt_cloudprovider.autoscaler.groups"):
        _untouched(sim, scaler, tenant)
        scaler.call("Refresh")
    warnings = [r for r in caplog.records if "never touched" in r.getMessage()]
    assert len(warnings) == 1  # once per VM, not per search
    assert getattr(warnings[0], "fields", {}).get("vm") == "tenant-vm"
    assert scaler.server.metrics.registry.get_sample_value(
        "ovirt_cloudprovider_nodegroup_unverified_vms", {"group": "pool"}) == 1


def test_a_copied_or_made_up_mac_verifies_nowhere(sim: EngineSimulator, scaler: Scaler) -> None:
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=1)
    (real,) = _group_vms(sim, "pool")
    copied = sim.fleet.add_vm("tenant-copy", cluster="east-a", status="down", tags=["tenant"],
                              description=sim.fleet.vm(real).description).id
    made_up = sim.fleet.add_vm("pool-3", cluster="east-a", status="down", tags=["tenant"],
                               description=mark("pool") + ":" + "0" * 64).id
    scaler.call("Refresh")
    assert scaler.call("NodeGroupTargetSize", id="pool").targetSize == 1
    for vm_id in (copied, made_up):
        assert scaler.call("NodeGroupForNode", node=scaler.node(f"ovirt://{vm_id}")).nodeGroup.id == ""
        with pytest.raises(grpc.RpcError):
            scaler.call("NodeGroupDeleteNodes", id="pool", nodes=[scaler.node(f"ovirt://{vm_id}")])
        assert vm_id in sim.fleet.vms
    assert scaler.call("NodeGroupForNode", node=scaler.node(f"ovirt://{real}")).nodeGroup.id == "pool"


def test_a_signed_mark_on_a_vm_out_of_the_groups_place_is_not_the_groups(sim: EngineSimulator,
                                                                         scaler: Scaler) -> None:
    """A mark that verifies (the group's own VM's description, on a VM of that very name, as after the group's VM
    was removed) on a hand-made VM: not from the group's template, so not the group's."""
    scaler.call("NodeGroupIncreaseSize", id="pool", delta=1)
    (real,) = _group_vms(sim, "pool")
    vm = sim.fleet.vm(real)
    name, description = vm.name, vm.description
    sim.fleet.remove_vm(real)
    hand_made = sim.fleet.add_vm(name, cluster="east-a", status="down", tags=["tenant"],
                                 description=description).id  # the Blank template
    _untouched(sim, scaler, hand_made)


# --- two replicas -----------------------------------------------------------------------------------------------

WIDE = NodeGroupConfig(name="pool", template="k8s-node", cluster="east-a", min_size=0, max_size=5,
                       tags=("kubernetes",))


@pytest.mark.parametrize("attempt", range(4))
def test_two_replicas_increasing_at_once_never_exceed_max_size(engine_sims: Callable[..., EngineSimulator],
                                                              scalers: Callable[..., Scaler], attempt: int) -> None:
    """Both replicas see 0 VMs and may add 5 (max_size 5): the engine's unique VM names (slots pool-0..pool-4) let
    only one create each slot; the other finds that VM by name and counts it."""
    sim = engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2)
    replicas = [scalers(config_for(sim, WIDE)) for _ in range(2)]
    go = threading.Barrier(2)
    codes: list[grpc.StatusCode] = []

    def grow(s: Scaler) -> None:
        go.wait(10)
        try:
            s.call("NodeGroupIncreaseSize", id="pool", delta=5)
        except grpc.RpcError as err:
            codes.append(err.code())
        else:
            codes.append(grpc.StatusCode.OK)

    threads = [threading.Thread(target=grow, args=(s,)) for s in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(_group_vms(sim, "pool")) == WIDE.max_size, codes
    # the later one was refused when its search already saw the other's VMs (5 + 5 > max_size), else it counted them
    assert grpc.StatusCode.OK in codes and set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}
    for s in replicas:
        s.call("Refresh")
        assert s.call("NodeGroupTargetSize", id="pool").targetSize == WIDE.max_size
