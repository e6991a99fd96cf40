"""Two different VMs with one id in one engine answer: their node is neither written nor counted absent, a warning
is logged and ovirt_cloudprovider_engine_inconsistent_vms_total counts them. Identical repeats (a page shift) are
fine."""

from __future__ import annotations

import base64
import copy
import logging
import ssl
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, RUNNING_STATUSES, TAINT_MAINTENANCE
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.host_records import HOST_DISCOVERY_FOLLOW
from ovirt_cloudprovider.engine.records import DISCOVERY_FOLLOW
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World


@pytest.fixture
def world() -> Iterator[World]:
    with EngineSimulator(generate_fleet(6, seed=21, untagged=0)) as engine, KubeApiSimulator() as kube:
        w = World(engine, kube, delete_after_sweeps=2)
        w.client.close()
        w.client = EngineClient(w.config.connection, page_size=100, metrics=w.metrics)
        yield w
        w.close()


def vm_list(sim: EngineSimulator) -> ET.Element:
    """The simulator's real /vms answer for the discovery's search (read with Basic auth)."""
    return engine_list(sim, "vms", {"search": "tag=kubernetes sortby name asc page 1", "max": "100",
                                    "follow": DISCOVERY_FOLLOW})


def engine_list(sim: EngineSimulator, collection: str, params: dict[str, str]) -> ET.Element:
    query = urllib.parse.urlencode(params)
    req = urllib.request.Request(f"{sim.url}/{collection}?{query}", headers={
        "Authorization": "Basic " + base64.b64encode(f"{sim.username}:{sim.password}".encode()).decode()})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=sim.ca_file), timeout=5) as r:
        return ET.fromstring(r.read())


def metric(world: World, name: str) -> float:
    return float(world.metrics.registry.get_sample_value(name) or 0)


def test_two_vms_with_one_id_leave_that_node_alone(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.converge()
    vm = next(v for v in world.engine.fleet.vms.values() if v.status in RUNNING_STATUSES)
    before = world.node_of(vm.id)
    assert before is not None
    root = vm_list(world.engine)
    original = next(e for e in root if e.get("id") == vm.id)
    impostor = copy.deepcopy(original)
    name = impostor.find("name")
    assert name is not None
    name.text = "impostor"
    status = impostor.find("status")
    assert status is not None
    status.text = "down"
    root.append(impostor)
    world.engine.serve_static("/vms", ET.tostring(root))
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        report = world.sweep()
        assert report.ok, report.error
        assert report.snapshot is not None and vm.id in report.snapshot.inconsistent_ids
    after = world.node_of(vm.id)
    assert after is not None  # not deleted, not marked absent, not rewritten with the impostor's data
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert ANNOTATION_ABSENT_SWEEPS not in (after["metadata"].get("annotations") or {})
    assert metric(world, "ovirt_cloudprovider_engine_inconsistent_vms_total") == 3
    assert f"two different VMs with the id {vm.id}" in caplog.text
    assert caplog.text.count(vm.id) == 3  # once per sweep


def test_identical_repeat_is_fine(world: World) -> None:
    world.converge()
    root = vm_list(world.engine)
    root.append(copy.deepcopy(root[0]))
    world.engine.serve_static("/vms", ET.tostring(root))
    report = world.sweep()
    assert report.ok and report.snapshot is not None and report.snapshot.inconsistent_ids == ()
    assert metric(world, "ovirt_cloudprovider_engine_inconsistent_vms_total") == 0


def test_two_hosts_with_one_id_in_other_spellings_leave_that_node_alone() -> None:
    """A garbled host search that lists an impostor of a running host first (its id in upper case, another name,
    status maintenance): the host node got the maintenance taint and the impostor's labels, because a host id
    listed twice counted once, the first record winning. Now the id is inconsistent, as for VMs."""
    with EngineSimulator(generate_fleet(6, seed=21, untagged=0)) as engine, KubeApiSimulator() as kube, \
            World(engine, kube, hosts="cluster=east-a", delete_after_sweeps=2) as world:
        world.client.close()
        world.client = EngineClient(world.config.connection, page_size=100, hosts="cluster=east-a")
        root = engine_list(engine, "hosts", {"max": "100", "follow": HOST_DISCOVERY_FOLLOW})  # every host: the
        # static answer serves the host search and the list of hosts the VM search joins
        world.engine.serve_static("/hosts", ET.tostring(root))
        world.converge()
        original = next(e for e in root if (e.findtext("name") or "").startswith("east-a-"))
        name, host_id = original.findtext("name"), original.get("id")
        assert name is not None and host_id is not None
        before = world.host_nodes()[name]
        impostor = copy.deepcopy(original)
        impostor.set("id", host_id.upper())
        for field, value in (("name", "impostor"), ("status", "maintenance")):
            element = impostor.find(field)
            assert element is not None
            element.text = value
        root.insert(0, impostor)
        world.engine.serve_static("/hosts", ET.tostring(root))
        for _ in range(3):
            report = world.sweep()
            assert report.ok, report.error
        after = world.host_nodes()[name]
        assert TAINT_MAINTENANCE not in {t["key"] for t in after["spec"].get("taints") or []}
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert "impostor" not in {n["metadata"]["name"] for n in kube.list_nodes()}
