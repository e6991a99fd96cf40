"""The engine simulator's provisioning, through the real ovirtsdk4: templates (in the recorded shape), a VM created
from a template with a cloud-init initialization, its asynchronous statuses (image_locked → down → powering_up →
up), start/stop, tagging, and removal with its disks; the engine's refusals as 409 faults."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirtsdk4.reader import Reader

from ovirt_cloudprovider.simulators.engine import EngineSimulator, Fleet, generate_fleet
from tests.helpers import SAMPLES


def _fleet() -> Fleet:
    fleet = generate_fleet(3, seed=5)
    fleet.add_template("k8s-node", "east-a", cores=4, memory=8 * 1024**3, disks=2)
    fleet.add_template("k8s-node", "east-a", version=2, cores=8)
    fleet.add_tag("autoscaled")
    return fleet


@pytest.fixture
def sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    return engine_sims(_fleet(), image_lock_seconds=0.3, boot_seconds=0.3)


@pytest.fixture
def conn(sim: EngineSimulator) -> Iterator[sdk.Connection]:
    c = sdk.Connection(url=sim.url, username=sim.username, password=sim.password, ca_file=sim.ca_file, timeout=5)
    yield c
    c.close()


def _tags(obj: Any) -> set[str]:
    return {k.lstrip("_") for k, v in vars(obj).items() if v is not None and k != "_href"}


def _wait_status(service: Any, status: types.VmStatus, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while service.get().status != status:
        assert time.monotonic() < end, f"VM never reached {status}"
        time.sleep(0.05)


def test_templates_are_served_in_the_recorded_shape(conn: sdk.Connection) -> None:
    templates = conn.system_service().templates_service().list(search="name=k8s-node")
    assert sorted(t.version.version_number for t in templates) == [1, 2]
    base = next(t for t in templates if t.version.version_number == 1)
    assert base.cpu.topology.cores == 4 and base.memory == 8 * 1024**3
    assert templates[1].version.base_template.id == base.id or templates[0].version.base_template.id == base.id
    recorded = Reader.read((SAMPLES / "manageiq" / "templates.xml").read_bytes())[1]
    assert _tags(base) <= _tags(recorded) | {"cluster"}
    one = conn.system_service().templates_service().template_service(base.id).get()
    assert one.name == "k8s-node"


def test_create_from_template_goes_through_the_engine_statuses(sim: EngineSimulator, conn: sdk.Connection) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.add(types.Vm(
        name="pool-a-x1", cluster=types.Cluster(name="east-a"), template=types.Template(name="k8s-node"),
        description="ovirt-cloudprovider-nodegroup:pool-a", comment="made by the autoscaler",
        initialization=types.Initialization(custom_script="#cloud-config\nruncmd: [join]\n", host_name="pool-a-x1"),
    ))
    assert vm.status == types.VmStatus.IMAGE_LOCKED
    assert vm.description == "ovirt-cloudprovider-nodegroup:pool-a" and vm.comment == "made by the autoscaler"
    assert vm.cpu.topology.cores == 4
    sim_vm = sim.fleet.vm(vm.id)
    assert sim_vm.custom_script == "#cloud-config\nruncmd: [join]\n" and len(sim_vm.disk_ids) == 2
    service = vms.vm_service(vm.id)
    with pytest.raises(sdk.Error) as refused:
        service.start()
    assert refused.value.code == 409 and "being created" in str(refused.value)
    _wait_status(service, types.VmStatus.DOWN)
    service.start()
    assert service.get().status == types.VmStatus.POWERING_UP
    _wait_status(service, types.VmStatus.UP)
    assert service.get().fqdn == "pool-a-x1"
    service.tags_service().add(types.Tag(name="autoscaled"))
    assert [t.name for t in service.tags_service().list()] == ["autoscaled"]
    found = vms.list(search="description=ovirt-cloudprovider-nodegroup:* and tag=autoscaled")
    assert [v.id for v in found] == [vm.id]
    with pytest.raises(sdk.Error) as running:
        service.remove()
    assert running.value.code == 409 and "VM is running" in str(running.value)
    service.stop()
    assert service.get().status == types.VmStatus.DOWN
    disks = list(sim_vm.disk_ids)
    service.remove(detach_only=False)
    assert vm.id not in sim.fleet.vms and not set(disks) & set(sim.fleet.disks)
    codes = [e.code for e in sim.fleet.events[-8:]]
    assert 53 in codes and 113 in codes  # creation completed, removal finished


def test_a_slow_power_off_is_powering_down_then_down(sim: EngineSimulator, conn: sdk.Connection) -> None:
    sim.fleet.stop_seconds = 0.3
    vms = conn.system_service().vms_service()
    vm = vms.add(types.Vm(name="slow-off", cluster=types.Cluster(name="east-a"),
                          template=types.Template(name="k8s-node")))
    service = vms.vm_service(vm.id)
    _wait_status(service, types.VmStatus.DOWN)
    service.start()
    _wait_status(service, types.VmStatus.UP)
    service.stop()
    assert service.get().status == types.VmStatus.POWERING_DOWN
    with pytest.raises(sdk.Error) as running:
        service.remove()
    assert running.value.code == 409
    _wait_status(service, types.VmStatus.DOWN)
    service.remove(detach_only=False)
    assert vm.id not in sim.fleet.vms


def test_refusals(sim: EngineSimulator, conn: sdk.Connection) -> None:
    vms = conn.system_service().vms_service()
    add = types.Vm(name="dup", cluster=types.Cluster(name="east-a"), template=types.Template(name="k8s-node"))
    vms.add(add)
    with pytest.raises(sdk.Error) as dup:
        vms.add(add)
    assert dup.value.code == 409 and "already in use" in str(dup.value)
    with pytest.raises(sdk.Error) as missing:
        vms.add(types.Vm(name="x", cluster=types.Cluster(name="east-a")))
    assert missing.value.code == 400 and "template" in str(missing.value)
    with pytest.raises(sdk.Error) as unknown:
        vms.add(types.Vm(name="y", cluster=types.Cluster(name="east-a"), template=types.Template(name="nope")))
    assert unknown.value.code == 404
    with pytest.raises(sdk.NotFoundError):
        vms.vm_service("00000000-0000-0000-0000-00000000abcd").remove()
    vm = sim.fleet.vm("dup")
    with pytest.raises(sdk.Error) as no_tag:
        vms.vm_service(vm.id).tags_service().add(types.Tag(name="no-such-tag"))
    assert no_tag.value.code == 404


def test_detach_only_keeps_the_disks(sim: EngineSimulator, conn: sdk.Connection) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.add(types.Vm(name="keep", cluster=types.Cluster(name="east-a"),
                          template=types.Template(name="k8s-node")))
    _wait_status(vms.vm_service(vm.id), types.VmStatus.DOWN)
    disks = list(sim.fleet.vm(vm.id).disk_ids)
    vms.vm_service(vm.id).remove(detach_only=True)
    assert all(sim.fleet.disks[d] is None for d in disks)


def test_standalone_serves_the_k8s_node_template() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider.simulators.engine", "--port", "0",
                             "--vms", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "template k8s-node" in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
