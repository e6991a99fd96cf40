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

from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS
from ovirt_cloudprovider.simulators.engine import EngineSimulator, SimHost
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running

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
    world.engine.fail_requests(404, path_prefix=f"{API}/vms/{vm.id}")  # a proxy's Apache "Not Found" page
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
            engine.fail_requests(404, path_prefix=f"{API}/hosts/{host_id}")
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
