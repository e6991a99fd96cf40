"""The autoscaler's write client (engine/provisioner.py) through the real ovirtsdk4 against the engine simulator:
the one node-group search, create from a template with the mark and cloud-init, tag, start, stop, remove with
disks, the template's hardware and place; engine refusals as EngineError kinds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from ovirt_cloudprovider.core.nodegroups import GroupVm, signed_mark
from ovirt_cloudprovider.core.settings import ConnectionConfig, NodeGroupConfig
from ovirt_cloudprovider.engine.errors import EngineFaultError
from ovirt_cloudprovider.engine.provisioner import Provisioner
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet

KEY = b"k" * 32
GROUP = NodeGroupConfig(name="pool-a", template="k8s-node", cluster="east-a", max_size=5, tags=("autoscaled",))


@pytest.fixture
def sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    fleet = generate_fleet(3, seed=5)
    fleet.add_template("k8s-node", "east-a", cores=4, memory=8 * 1024**3, disks=2)
    fleet.add_template("k8s-node", "east-a", version=2, cores=8)
    fleet.add_tag("autoscaled")
    return engine_sims(fleet, image_lock_seconds=0.2, boot_seconds=0.2)


@pytest.fixture
def prov(sim: EngineSimulator, engine_conn_for: Callable[..., ConnectionConfig]) -> Iterator[Provisioner]:
    p = Provisioner(engine_conn_for(sim), metrics=Metrics())
    yield p
    p.close()


def _wait(prov: Provisioner, vm_id: str, status: str) -> GroupVm:
    end = time.monotonic() + 5
    while True:
        vm = prov.get_vm(vm_id)
        assert vm is not None
        if vm.status == status:
            return vm
        assert time.monotonic() < end, f"VM never {status}: {vm.status}"
        time.sleep(0.05)


def test_create_start_stop_remove(sim: EngineSimulator, prov: Provisioner) -> None:
    assert prov.group_vms() == ()
    description = signed_mark(KEY, "pool-a", "pool-a-0")
    vm = prov.create(GROUP, "pool-a-0", "#cloud-config\n", description)
    assert vm.status == "image_locked" and vm.group == "pool-a" and vm.name == "pool-a-0"
    assert sim.fleet.vm(vm.id).description == description and description.endswith(":" + vm.mac)
    # what the ownership check compares: the VM's cluster and template as the engine reports them
    info = prov.template(GROUP)
    assert vm.cluster_id == info.cluster_id and set(vm.template_ids) <= set(info.template_ids)
    assert sim.fleet.vm(vm.id).custom_script == "#cloud-config\n"
    prov.tag(vm.id, "autoscaled")
    assert [v.id for v in prov.group_vms()] == [vm.id]
    assert prov.group_vms()[0].tags == ("autoscaled",)
    _wait(prov, vm.id, "down")
    prov.start(vm.id)
    _wait(prov, vm.id, "up")
    found = prov.find_vm("pool-a-0")
    assert found is not None and found.id == vm.id
    assert prov.find_vm("pool-a-nope") is None
    disks = list(sim.fleet.vm(vm.id).disk_ids)
    prov.stop(vm.id)
    _wait(prov, vm.id, "down")
    prov.remove(vm.id)
    assert prov.get_vm(vm.id) is None
    assert not set(disks) & set(sim.fleet.disks)


def test_template_info(prov: Provisioner) -> None:
    info = prov.template(GROUP)
    assert (info.cpus, info.memory_bytes, info.architecture) == (4, 8 * 1024**3, "x86_64")
    assert (info.cluster, info.datacenter) == ("east-a", "dc-east")
    v2 = prov.template(NodeGroupConfig(name="b", template="k8s-node", template_version=2, cluster="east-a",
                                       max_size=1))
    assert v2.cpus == 8 and v2.id != info.id
    assert set(info.template_ids) == set(v2.template_ids) == {info.id, v2.id}  # every version of the template
    assert info.cluster_id and info.cluster_id == v2.cluster_id
    with pytest.raises(EngineFaultError, match="no template 'nope'"):
        prov.template(NodeGroupConfig(name="c", template="nope", cluster="east-a", max_size=1))
    with pytest.raises(EngineFaultError, match="no cluster 'mars'"):
        prov.template(NodeGroupConfig(name="c", template="k8s-node", cluster="mars", max_size=1))


def test_refusals_are_engine_errors(prov: Provisioner) -> None:
    vm = prov.create(GROUP, "pool-a-1", None, "x")
    with pytest.raises(EngineFaultError) as dup:
        prov.create(GROUP, "pool-a-1", None, "x")
    assert dup.value.code == 409
    with pytest.raises(EngineFaultError) as locked:
        prov.start(vm.id)
    assert locked.value.code == 409
