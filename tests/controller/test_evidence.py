"""Issue 17, rules 1, 5 and 6 end to end: the real ovirtsdk4 and kubernetes clients against both loopback
simulators, one sweep at a time.

1. Only the engine's own answer is evidence: a node is deleted only on two independent answers of the engine,
   its own 404 for the VM (or host) by id *and* its filter searched narrowed to that id returning nothing. A
   proxy's HTML 404 page, or an engine 404 while the narrowed search still returns the VM, deletes nothing.
5. An inconsistent answer counts no absences: a second ``<vm>`` with the same UUID in another spelling is
   caught like any duplicate, its node is not rewritten, and no node is counted absent in that sweep.
6. A targeted sweep never acts outside the filter: a VM whose child tag was moved out from under the filter's
   tag (no VM event) is not registered by the event-driven targeted sweep; a full sweep decides.
"""

from __future__ import annotations

import base64
import copy
import logging
import ssl
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.controller import Controller, run_targeted_sweep
from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, RUNNING_STATUSES, TAINT_SHUTDOWN
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.records import DISCOVERY_FOLLOW
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.simulators.engine import EngineSimulator, SimHost, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running, taint_keys
from tests.helpers import wait_for

API = "/ovirt-engine/api"


@pytest.fixture
def world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube, delete_after_sweeps=2, max_delete_fraction=1.0, max_delete_count=0) as w:
        yield w


def _absent(node: dict[str, object] | None) -> str | None:
    meta = (node or {}).get("metadata") or {}
    return ((meta.get("annotations") if isinstance(meta, dict) else None) or {}).get(ANNOTATION_ABSENT_SWEEPS)


# --- rule 1 ----------------------------------------------------------------------------------------------

def test_a_proxy_html_404_never_confirms_a_deletion(world: World) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    world.engine.lose_in_search([vm.id])  # the search glitch: the running VM is missing from every full search
    world.engine.html_not_found("vms")  # a proxy's Apache "Not Found" page for every GET of a VM by id
    for _ in range(4):
        assert world.sweep().ok
        assert world.node_of(vm.id) is not None, "a running VM's node was deleted on a proxy's 404 page"
    assert not any(e["reason"] in ("DeletedNode", "VMLeftFilter") for e in world.kube.list_events())
    blocked = [e for e in world.kube.list_events() if e["reason"] == "DeletionUnconfirmed"]
    assert blocked and "not the engine's own answer" in blocked[-1]["message"]


def test_an_engine_404_the_narrowed_search_contradicts_deletes_nothing(world: World) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    world.engine.lose_in_search([vm.id])
    # a 404 shaped exactly like the engine's own (empty body, no content type) while the VM runs
    world.engine.serve_static(f"/vms/{vm.id}", b"", status=404, content_type=None)
    for _ in range(4):
        assert world.sweep().ok
        assert world.node_of(vm.id) is not None
    blocked = [e for e in world.kube.list_events() if e["reason"] == "DeletionUnconfirmed"]
    assert blocked and "still returns it" in blocked[-1]["message"]


def test_a_removed_vm_is_deleted_on_both_answers(world: World) -> None:
    world.converge()
    vm = running(world.engine)[-1]
    world.engine.remove_vm(vm.id)
    assert world.sweep().ok and _absent(world.node_of(vm.id)) == "1"
    world.engine.reset_requests()
    assert world.sweep().ok
    assert world.node_of(vm.id) is None
    searches = [r.query.get("search", "") for r in world.engine.requests if r.path == f"{API}/vms"]
    assert any(f"id={vm.id}" in s for s in searches)  # the second answer was asked for
    event = next(e for e in world.kube.list_events() if e["reason"] == "DeletedNode")
    assert "(404)" in event["message"] and f"id={vm.id}' returns nothing" in event["message"]


def _east_a_host(engine: EngineSimulator) -> SimHost:
    cluster = next(c for c in engine.fleet.clusters.values() if c.name == "east-a")
    return sorted((h for h in engine.fleet.hosts.values() if h.cluster_id == cluster.id), key=lambda h: h.name)[-1]


@pytest.mark.parametrize("answer", ["html-404", "engine-404"])
def test_a_host_is_deleted_only_on_the_engines_own_404_and_an_empty_narrowed_search(
        answer: str, engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    with World(engine, kube, hosts="cluster=east-a", delete_after_sweeps=2, max_delete_fraction=1.0,
               max_delete_count=0) as world:
        world.converge()
        host = _east_a_host(engine)
        name, host_id = host.name, host.id
        engine.lose_in_search([host_id])  # the host runs; the host search glitches
        if answer == "html-404":
            engine.html_not_found("hosts")
        else:  # shaped like the engine's own, but the narrowed search still returns the host
            engine.serve_static(f"/hosts/{host_id}", b"", status=404, content_type=None)
        for _ in range(4):
            assert world.sweep().ok
            assert name in world.host_nodes(), "a running host's node was deleted"
        engine.clear_faults()
        engine.clear_static()
        engine.remove_host(host_id)  # now really gone: both answers agree
        for _ in range(2):
            assert world.sweep().ok
        assert name not in world.host_nodes()
def test_a_confirmation_is_one_get_and_one_light_search_each_and_keeps_the_fleets_state(
        engine: EngineSimulator, kube: KubeApiSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """Confirming a deletion asks the engine two light questions per VM or host (a GET by id, one search narrowed
    to it: ids only, no follow, no lists, no host search) and leaves what the client keeps about the fleet (the
    invalid guest IPs gauge and the log-once state) as the full discovery left it."""
    with World(engine, kube, hosts="cluster=east-a", delete_after_sweeps=2, max_delete_fraction=1.0,
               max_delete_count=0) as world:
        world.client.close()
        world.client = EngineClient(world.config.connection, page_size=5, metrics=world.metrics,
                                    hosts="cluster=east-a")
        up = running(engine)
        kept, gone = up[0], up[-1]
        engine.set_ips(kept.id, ["abc", "10.0.0.5"])  # one invalid guest IP in the fleet
        caplog.set_level(logging.WARNING)
        world.converge()
        host = _east_a_host(engine)
        engine.remove_vm(gone.id)
        engine.remove_host(host.id)
        assert world.sweep().ok
        engine.reset_requests()
        report = world.sweep()
        assert report.ok and report.snapshot is not None
        assert world.node_of(gone.id) is None and host.name not in world.host_nodes()
        api = [r for r in engine.requests if r.path.startswith(API)]
        narrowed = [r for r in api if "id=" in r.query.get("search", "")]
        assert sorted(r.path for r in narrowed) == [f"{API}/hosts", f"{API}/vms"]
        assert all("follow" not in r.query for r in narrowed)
        assert engine.request_count(f"/vms/{gone.id}", method="GET") == 1
        assert engine.request_count(f"/hosts/{host.id}", method="GET") == 1
        assert engine.request_count("/clusters", exact=True) == 1  # the discovery's list only
        assert len(api) - report.snapshot.requests == 4  # 2 per confirmation (before: 1 GET + 6 for a VM's)
        assert world.metrics.registry.get_sample_value("ovirt_cloudprovider_invalid_guest_ips") == 1
        assert world.sweep().ok
        logged = [r for r in caplog.records if "reports invalid IP addresses" in r.getMessage()]
        assert len(logged) == 1  # logged once, not again after a confirmation forgot it


# --- rule 5 ----------------------------------------------------------------------------------------------

def _vm_list(sim: EngineSimulator) -> ET.Element:
    """The simulator's real /vms answer for the discovery's search (read with Basic auth)."""
    query = urllib.parse.urlencode({"search": "tag=kubernetes sortby name asc page 1", "max": "100",
                                    "follow": DISCOVERY_FOLLOW})
    req = urllib.request.Request(f"{sim.url}/vms?{query}", headers={
        "Authorization": "Basic " + base64.b64encode(f"{sim.username}:{sim.password}".encode()).decode()})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=sim.ca_file), timeout=5) as r:
        return ET.fromstring(r.read())


@pytest.fixture
def single_page() -> Iterator[World]:
    with EngineSimulator(generate_fleet(6, seed=21, untagged=0)) as engine, KubeApiSimulator() as kube, \
            World(engine, kube, delete_after_sweeps=2, max_delete_fraction=1.0, max_delete_count=0) as w:
        w.client.close()
        w.client = EngineClient(w.config.connection, page_size=100, metrics=w.metrics)
        yield w


def test_an_upper_case_twin_is_inconsistent_and_counts_no_absence(single_page: World) -> None:
    world = single_page
    world.converge()
    up = [v for v in world.engine.fleet.vms.values() if v.status in RUNNING_STATUSES]
    vm, dropped = up[0], up[-1]
    before = world.node_of(vm.id)
    assert before is not None and world.node_of(dropped.id) is not None
    root = _vm_list(world.engine)
    original = next(e for e in root if e.get("id") == vm.id)
    impostor = copy.deepcopy(original)
    impostor.set("id", vm.id.upper())
    impostor.set("href", f"{API}/vms/{vm.id.upper()}")
    for tag, text in (("name", "impostor"), ("status", "down")):
        element = impostor.find(tag)
        assert element is not None
        element.text = text
    root.insert(list(root).index(original), impostor)  # listed first
    root.remove(next(e for e in root if e.get("id") == dropped.id))  # the same garbled answer loses another VM
    world.engine.serve_static("/vms", ET.tostring(root))
    for _ in range(3):
        report = world.sweep()
        assert report.ok, report.error
        assert report.snapshot is not None and vm.id in report.snapshot.inconsistent_ids
    after = world.node_of(vm.id)
    assert after is not None and TAINT_SHUTDOWN not in taint_keys(after)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["name"] == vm.name
    assert _absent(world.node_of(dropped.id)) is None  # an inconsistent answer counts no absence at all


def test_an_event_naming_a_known_vm_in_another_spelling_is_a_targeted_sweep(engine: EngineSimulator,
                                                                           kube: KubeApiSimulator) -> None:
    """Which targets the last discovery knows is decided on canonical ids (core/providerid.py), as everywhere."""
    with World(engine, kube, sync_interval=600, event_poll_interval=0) as world:
        cache = NodeCache(world.api)
        cache.start()
        ctl = Controller(config=world.config, engine=world.client, cache=cache, writer=world.writer,
                         metrics=world.metrics, health=HealthState(), debounce=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: world.metrics.syncs_total.labels("success")._value.get() >= 1, 10, "the first sweep")
            vm = running(engine)[0]
            engine.set_status(vm.id, "down")
            ctl.trigger("the VM stopped", vm_ids=[vm.id.upper()])
            wait_for(lambda: world.metrics.targeted_syncs_total.labels("success")._value.get() >= 1
                     or world.metrics.syncs_total.labels("success")._value.get() >= 2, 10, "the sweep it triggers")
            assert TAINT_SHUTDOWN in taint_keys(world.node_of(vm.id))
            assert world.metrics.targeted_syncs_total.labels("success")._value.get() == 1
            assert world.metrics.syncs_total.labels("success")._value.get() == 1  # no full sweep for it
        finally:
            stop.set()
            thread.join(5)
            cache.stop()


# --- rule 6 ----------------------------------------------------------------------------------------------

def test_a_targeted_sweep_never_registers_a_vm_outside_the_filter(world: World) -> None:
    fleet = world.engine.fleet
    fleet.add_tag("k8s-pool", parent="kubernetes")
    fleet.add_tag("archive")
    vm = next(v for v in fleet.vms.values() if v.status not in RUNNING_STATUSES and v.name.startswith("k8s-"))
    world.engine.set_tags(vm.id, ["k8s-pool"])
    world.converge()
    base = world.sweep().snapshot
    assert base is not None and vm.id in {v.id for v in base.vms} and world.node_of(vm.id) is None
    fleet.tag("k8s-pool").parent_id = fleet.tag("archive").id  # the child tag moved: no VM event is logged
    world.engine.set_status(vm.id, "up")  # the "started" event names it: a targeted sweep
    with world.synced_nodes() as nodes:
        world.kube.reset_counts()
        report = run_targeted_sweep(config=world.config, engine=world.client, base=base, vm_ids=[vm.id],
                                    nodes=nodes, writer=world.writer)
    assert world.node_of(vm.id) is None, "a targeted sweep registered a VM outside the filter"
    assert world.kube.writes("nodes") == 0
    assert not report.ok and "full sweep" in (report.error or "")  # the controller sweeps in full next
    assert world.sweep().ok and world.node_of(vm.id) is None  # and the full sweep agrees
