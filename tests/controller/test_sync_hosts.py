"""oVirt hosts as nodes, end to end: sweeps through the real ovirtsdk4 and kubernetes clients against both
loopback simulators (as tests/controller/test_sync.py does for VMs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ovirt_cloudprovider.controller import SweepReport, run_targeted_sweep
from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, TAINT_MAINTENANCE, TAINT_SHUTDOWN
from ovirt_cloudprovider.engine.errors import EngineError, EngineEvent
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, taint_keys
from tests.helpers import run_cli, write_config

HOSTS = "cluster=east-a"  # three hosts of the generated fleet


@pytest.fixture
def world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube, hosts=HOSTS, delete_after_sweeps=3, max_delete_fraction=0.5) as w:
        yield w


def east_a_hosts(engine: EngineSimulator) -> list[Any]:
    cluster = next(c for c in engine.fleet.clusters.values() if c.name == "east-a")
    return sorted((h for h in engine.fleet.hosts.values() if h.cluster_id == cluster.id), key=lambda h: h.name)


def test_hosts_become_nodes_beside_the_vms_with_their_management_ips(world: World) -> None:
    world.converge()
    hosts = east_a_hosts(world.engine)
    nodes = world.host_nodes()
    assert sorted(nodes) == [h.name for h in hosts]
    vm_nodes = [n for n in world.kube.list_nodes() if n["metadata"]["name"] not in nodes]
    assert vm_nodes and all(n["spec"]["providerID"].startswith("ovirt://") for n in vm_nodes)
    for h in hosts:
        node = nodes[h.name]
        assert node["spec"]["providerID"] == f"ovirt://host/{h.id}"
        labels = node["metadata"]["labels"]
        assert labels["ovirt.org/kind"] == "host" and labels["node.kubernetes.io/instance-type"] == "SYS-1029P"
        assert labels["topology.kubernetes.io/zone"] == "east-a"
        addresses = node["status"]["addresses"]
        mgmt = next(n for n in h.nics if n.name == "eth0")
        assert addresses[0] == {"type": "InternalIP", "address": mgmt.ipv4}  # what kubectl -o wide shows
        assert {"type": "Hostname", "address": h.address} in addresses
        info = node["status"]["nodeInfo"]
        assert info["systemUUID"] == h.system_uuid.lower() and info["kernelVersion"] == h.kernel
        assert node["status"]["capacity"]["cpu"] == "64"
    world.kube.reset_counts()
    assert world.sweep().ok and world.kube.writes() == 0


def test_a_host_in_maintenance_is_tainted_and_untainted_when_activated(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[0]
    world.engine.set_host_status(host.id, "preparing_for_maintenance")
    assert world.sweep().ok
    assert TAINT_MAINTENANCE in taint_keys(world.host_nodes()[host.name])
    world.engine.set_host_status(host.id, "maintenance")
    world.kube.reset_counts()
    assert world.sweep().ok and world.kube.writes("nodes") == 0  # still tainted: nothing to write
    world.engine.set_host_status(host.id, "up")
    assert world.sweep().ok
    assert TAINT_MAINTENANCE not in taint_keys(world.host_nodes()[host.name])
    world.engine.set_host_status(host.id, "down")
    assert world.sweep().ok
    assert TAINT_SHUTDOWN in taint_keys(world.host_nodes()[host.name])
    world.engine.set_host_status(host.id, "non_responsive")  # exists: no change
    world.kube.reset_counts()
    assert world.sweep().ok and world.kube.writes("nodes") == 0


def test_host_events_are_read_only_when_hosts_are_configured(world: World, engine: EngineSimulator,
                                                              kube: KubeApiSimulator) -> None:
    index = world.client.last_event_index()
    host = east_a_hosts(engine)[0]
    engine.set_host_status(host.id, "maintenance")
    _, events = world.client.events_since(index)
    assert [e.kind for e in events] == ["host-maintenance"] and events[0].vm_id is None
    with World(engine, kube, hosts=None) as without:
        assert without.client.events_since(index)[1] == ()


def test_a_host_stopped_by_power_management_is_an_event(world: World, engine: EngineSimulator) -> None:
    index = world.client.last_event_index()
    host = east_a_hosts(engine)[0]
    engine.set_host_status(host.id, "down")  # the engine logs USER_VDS_STOP (21), not VDS_FAILURE
    _, events = world.client.events_since(index)
    assert [(e.code, e.kind) for e in events] == [(21, "host-stopped")]
    assert events[0].description == f"Host {host.name} was stopped by {engine.fleet.user_name}."


@pytest.mark.parametrize(("code", "kind"), [
    (12, "host-failed"), (13, "host-detected"), (15, "host-maintenance"), (16, "host-activated"),
    (21, "host-stopped"), (44, "host-removed"), (600, "host-maintenance"), (620, "host-maintenance"),
    (10452, "host-maintenance"), (10453, "host-maintenance"),  # hosted-engine hosts: HA maintenance not set
    (17, "other"), (602, "other"),  # VDS_MAINTENANCE_FAILED, USER_VDS_MAINTENANCE_MIGRATION_FAILED
])
def test_host_event_codes_are_the_engines(code: int, kind: str) -> None:
    assert EngineEvent(index=1, code=code, vm_id=None, vm_name=None, description="").kind == kind


def test_a_removed_host_node_goes_on_the_third_sweep(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[-1]
    world.engine.remove_host(host.id)
    for sweep in (1, 2):
        assert world.sweep().ok
        node = world.host_nodes()[host.name]
        assert node["metadata"]["annotations"][ANNOTATION_ABSENT_SWEEPS] == str(sweep)
    assert world.sweep().ok
    assert host.name not in world.host_nodes() and len(world.host_nodes()) == 2


@pytest.mark.parametrize("fault", ["outage", "host-search-fails"])
def test_engine_errors_delete_no_host_node(world: World, fault: str) -> None:
    world.converge()
    world.engine.remove_host(east_a_hosts(world.engine)[-1].id)
    before = world.node_versions()
    if fault == "outage":
        world.engine.fail_requests(503)
    else:
        world.engine.fail_requests(503, path_prefix="/ovirt-engine/api/hosts")
    world.kube.reset_counts()
    world.failed_sweeps(4)
    assert world.kube.writes() == 0 and world.node_versions() == before


def test_an_empty_host_answer_deletes_nothing(world: World) -> None:
    world.converge()
    hosts = len(world.host_nodes())
    for h in east_a_hosts(world.engine):
        world.engine.remove_host(h.id)  # the host search now matches nothing; the VMs are still there
    for _ in range(5):
        assert world.sweep().ok
    assert len(world.host_nodes()) == hosts
    assert all(ANNOTATION_ABSENT_SWEEPS not in (n["metadata"].get("annotations") or {})
               for n in world.host_nodes().values())
    assert world.metrics.deletions_blocked_total.labels("empty-discovery", "host")._value.get() >= hosts
    assert world.metrics.deletions_blocked_total.labels("empty-discovery", "vm")._value.get() == 0


def sample(world: World, name: str, **labels: str) -> float | None:
    return world.metrics.registry.get_sample_value(f"ovirt_cloudprovider_{name}", labels)


def test_metrics_count_host_nodes_by_kind_and_the_total_stays_all_nodes(world: World) -> None:
    world.converge()
    hosts = len(world.host_nodes())
    total = sum((n["spec"].get("providerID") or "").startswith("ovirt://") for n in world.kube.list_nodes())
    assert hosts == 3 and total > hosts
    assert sample(world, "managed_nodes") == total  # the total, as before hosts existed
    assert sample(world, "managed_nodes_by_kind", kind="host") == hosts
    assert sample(world, "managed_nodes_by_kind", kind="vm") == total - hosts
    # a host named like a VM's node: the node carries the VM's providerID, so the VM keeps it; the host is skipped
    vm_name = next(n["metadata"]["name"] for n in world.kube.list_nodes()
                   if n["metadata"]["name"] not in world.host_nodes() and n["spec"].get("providerID"))
    world.engine.add_host(vm_name, "east-a")
    assert world.sweep().ok
    assert sample(world, "skipped_vms", reason="duplicate-name", kind="host") == 1
    assert sample(world, "skipped_vms", reason="duplicate-name", kind="vm") == 0
    assert sample(world, "skipped_vms", reason="invalid-name", kind="host") == 0  # known: there, at 0
    # a removed host's node goes: the host count follows, the VM count does not move
    world.engine.remove_host(east_a_hosts(world.engine)[0].id)
    for _ in range(3):
        assert world.sweep().ok
    assert sample(world, "managed_nodes_by_kind", kind="host") == hosts - 1 == len(world.host_nodes())
    assert sample(world, "managed_nodes") == total - 1


def test_without_hosts_every_managed_node_is_a_vm_node(engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    with World(engine, kube, hosts=None) as w:
        w.converge()
        managed = sample(w, "managed_nodes")
        assert managed and sample(w, "managed_nodes_by_kind", kind="vm") == managed
        assert sample(w, "managed_nodes_by_kind", kind="host") == 0


def requests_of_a_sweep(world: World) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    world.sweep()  # log in, converge
    world.sweep()
    start = len(world.engine.requests)
    assert world.sweep().ok
    return [(r.method, r.path, tuple(sorted(r.query.items()))) for r in world.engine.requests[start:]]


def test_without_hosts_the_engine_requests_are_exactly_as_before(engine: EngineSimulator,
                                                                 kube: KubeApiSimulator) -> None:
    with World(engine, kube) as plain:  # as before: no hosts argument anywhere
        before = requests_of_a_sweep(plain)
    with World(engine, kube, hosts=None) as unset:
        after = requests_of_a_sweep(unset)
    assert sorted(after) == sorted(before)  # (the lean discovery has two requests in flight: any order)
    assert not any("/hosts" in path and query for _, path, query in after)  # no host search (the list: joined)
    assert len([p for _, p, _ in before if p.endswith("/vms")]) == 5  # 12 tagged VMs in pages of 5, 2 more sent


def test_with_hosts_a_sweep_adds_one_request_per_page_of_hosts(world: World, engine: EngineSimulator,
                                                               kube: KubeApiSimulator) -> None:
    with_hosts = requests_of_a_sweep(world)
    host_requests = [q for _, path, q in with_hosts if path.endswith("/hosts") and q]  # not the VMs' host list
    assert len(host_requests) == 1  # 3 hosts, page size 5: one request, never one per host
    assert dict(host_requests[0])["follow"] == "nics"  # lean: cluster and data center joined from the lists
    with World(engine, kube, hosts="name=*") as every:
        requests = requests_of_a_sweep(every)
    assert len([p for _, p, q in requests if p.endswith("/hosts") and q]) == 2  # 9 hosts: pages of 5
    assert not any("/hosts/" in p for _, p, _ in requests)


def test_sync_once_dry_run_shows_the_kind_of_each_action(tmp_path: Path, engine: EngineSimulator,
                                                          kube: KubeApiSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file,
                       vms=f"tag=kubernetes\nhosts = {HOSTS}")
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    r = run_cli(["sync", "--once", "--dry-run", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KIND", "ACTION", "NODE", "REASON"]
    assert "VM(s), 3 host(s) matched; planned: " in lines[-1]
    r = run_cli(["sync", "--once", "--dry-run", "-o", "wide", "--config", str(cfg), "--kubeconfig", kubeconfig])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KIND", "ACTION", "NODE", "ID", "REASON", "DETAIL"]
    hosts = [line for line in lines if line.startswith("host ")]
    assert len(hosts) == 3 and all(line.split()[1] == "register" for line in hosts)
    assert any(line.startswith("vm ") for line in lines)
    assert "Would register node" in r.stdout and kube.writes() == 0


def _targeted(world: World, host_ids: list[str]) -> Callable[[], SweepReport]:
    """A full sweep now; a targeted sweep of ``host_ids`` on that sweep's snapshot and fleet when called."""
    full = world.sweep()
    assert full.ok and full.snapshot is not None and full.fleet is not None
    base, fleet = full.snapshot, full.fleet

    def targeted() -> SweepReport:
        with world.synced_nodes() as nodes:
            return run_targeted_sweep(config=world.config, engine=world.client, base=base, fleet=fleet, vm_ids=[],
                                      host_ids=host_ids, nodes=nodes, writer=world.writer)
    return targeted


def test_host_status_events_name_the_host(world: World, engine: EngineSimulator) -> None:
    index = world.client.last_event_index()
    host = east_a_hosts(engine)[0]
    engine.set_host_status(host.id, "maintenance")
    _, events = world.client.events_since(index)
    assert [(e.kind, e.host_id, e.vm_id) for e in events] == [("host-maintenance", host.id, None)]  # a link: no name


def test_fetch_hosts_gets_each_host_by_id_and_a_removed_one_is_none(world: World, engine: EngineSimulator) -> None:
    first, second = east_a_hosts(engine)[:2]
    engine.remove_host(second.id)
    engine.reset_requests()
    found = world.client.fetch_hosts([first.id, second.id])
    assert engine.request_count(f"/hosts/{first.id}", method="GET") == 1
    assert engine.request_count("/hosts", exact=True) == 0  # no search
    record = found[first.id]
    assert record is not None and record.name == first.name and record.cluster == "east-a" and record.nics
    assert found[second.id] is None
    engine.fail_requests(503, path_prefix=f"/ovirt-engine/api/hosts/{first.id}", count=1)
    with pytest.raises(EngineError):
        world.client.fetch_hosts([first.id])


def test_a_targeted_host_sweep_taints_maintenance_with_one_get(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[0]
    targeted = _targeted(world, [host.id])
    world.engine.set_host_status(host.id, "maintenance")
    world.engine.reset_requests()
    report = targeted()
    assert report.ok and report.counts == {"taint": 1}
    assert world.engine.request_count("/hosts/", method="GET") == 1
    searches = [r.query for r in world.engine.requests if r.path.endswith("/api/hosts")]
    assert searches == [{"search": f"{HOSTS} and id={host.id}", "max": "5"}]  # one light search: still in the filter
    assert TAINT_MAINTENANCE in taint_keys(world.host_nodes()[host.name])
    assert report.fleet is not None
    assert {h.id: h.status for h in report.fleet.snapshot.hosts}[host.id] == "maintenance"


@pytest.mark.parametrize("how", ["cluster", "tag"])
def test_a_targeted_sweep_never_writes_a_host_that_left_the_filter(request: pytest.FixtureRequest,
                                                                   how: str) -> None:
    w: World = request.getfixturevalue("world" if how == "cluster" else "tagged")
    w.converge()
    host = east_a_hosts(w.engine)[0]
    targeted = _targeted(w, [host.id])
    _leave_the_filter(w, host.id, how)  # no host event says so
    w.engine.set_host_status(host.id, "maintenance")  # this one does: a targeted sweep of the host
    w.kube.reset_counts()
    report = targeted()
    assert w.kube.writes("nodes") == 0 and TAINT_MAINTENANCE not in taint_keys(w.host_nodes()[host.name])
    assert not report.ok and "full sweep" in (report.error or "") and host.id in (report.error or "")


def _leave_the_filter(world: World, host_id: str, how: str) -> None:
    """Move the host out of ``[filters] hosts`` while the engine keeps it."""
    with world.engine.fleet.lock:
        if how == "cluster":  # HOSTS is cluster=east-a
            other = next(c for c in world.engine.fleet.clusters.values() if c.name == "east-b")
            world.engine.fleet.hosts[host_id].cluster_id = other.id
        else:  # the tagged world's filter is tag=metal
            world.engine.fleet.hosts[host_id].tag_ids.clear()


@pytest.fixture
def tagged(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    """A world whose hosts filter is a tag (``tag=metal``), with the three east-a hosts tagged."""
    metal = engine.fleet.add_tag("metal")
    with engine.fleet.lock:
        for h in east_a_hosts(engine):
            engine.fleet.hosts[h.id].tag_ids.add(metal.id)
    with World(engine, kube, hosts="Hosts: tag=metal", delete_after_sweeps=3, max_delete_fraction=0.5) as w:
        yield w


@pytest.mark.parametrize("how", ["cluster", "tag"])
def test_a_host_that_left_the_filter_loses_its_node_on_the_third_sweep(request: pytest.FixtureRequest,
                                                                       how: str) -> None:
    w: World = request.getfixturevalue("world" if how == "cluster" else "tagged")
    w.converge()
    assert len(w.host_nodes()) == 3
    host = east_a_hosts(w.engine)[-1]
    _leave_the_filter(w, host.id, how)
    for sweep in (1, 2):
        assert w.sweep().ok
        assert w.host_nodes()[host.name]["metadata"]["annotations"][ANNOTATION_ABSENT_SWEEPS] == str(sweep)
    report = w.sweep()
    assert report.ok and report.plan is not None
    assert host.name not in w.host_nodes() and len(w.host_nodes()) == 2
    deleted = [a for a in report.plan.actions if a.kind.value == "delete"]
    assert [(a.node, a.reason, a.warning) for a in deleted] == [(host.name, "HostLeftFilter", False)]
    assert host.id in deleted[0].message and f"and id={host.id}" in deleted[0].message
    events = [e for e in w.kube.list_events() if e["reason"] == "HostLeftFilter"]
    assert [(e["involvedObject"]["name"], e["type"]) for e in events] == [(host.name, "Normal")]
    assert report.plan.managed_hosts == 2


def test_a_host_the_search_lost_keeps_its_node(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[-1]
    world.engine.lose_in_search([host.id])  # still in the filter: the narrowed search (id=) returns it
    for _ in range(4):
        report = world.sweep()
        assert report.ok and report.plan is not None
    assert host.name in world.host_nodes()
    assert report.plan is not None
    blocked = [a for a in report.plan.actions if a.kind.value == "block-delete"]
    assert [(a.node, a.reason, a.warning) for a in blocked] == [(host.name, "DeletionUnconfirmed", True)]
    assert "matches the filter, so the search lost it" in blocked[0].message
    assert world.metrics.deletions_blocked_total.labels("deletion-unconfirmed", "host")._value.get() == 2
    # the blocked node stays a host's node in the counts by kind (not a VM's)
    assert sample(world, "managed_nodes_by_kind", kind="host") == 3 == len(world.host_nodes())
    vm_nodes = sum((n["spec"].get("providerID") or "").startswith("ovirt://") for n in world.kube.list_nodes()) - 3
    assert sample(world, "managed_nodes_by_kind", kind="vm") == vm_nodes


def test_a_failed_narrowed_host_search_deletes_no_host_node(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[-1]
    _leave_the_filter(world, host.id, "cluster")
    for _ in range(2):
        assert world.sweep().ok
    # the third sweep: its host search and the GET by id answer, the narrowed host search fails
    world.engine.fail_requests(503, path_prefix="/ovirt-engine/api/hosts", skip=2)
    world.kube.reset_counts()
    world.engine.reset_requests()
    report = world.sweep()
    assert report.ok and report.plan is not None
    assert world.engine.request_count("/hosts", method="GET", exact=True) == 2  # discovery, the narrowed one
    assert host.name in world.host_nodes() and world.kube.writes("nodes") == 0  # only the Warning Event
    blocked = [a for a in report.plan.actions if a.node == host.name]
    assert [(a.kind.value, a.reason) for a in blocked] == [("block-delete", "DeletionUnconfirmed")]
    assert "could not confirm" in blocked[0].message
    world.engine.clear_faults()
    report = world.sweep()  # the counter stayed at its limit: the next sweep with evidence deletes
    assert report.ok and host.name not in world.host_nodes()


def test_a_failed_host_get_deletes_no_host_node(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[-1]
    world.engine.remove_host(host.id)
    for _ in range(2):
        assert world.sweep().ok
    world.engine.fail_requests(503, path_prefix=f"/ovirt-engine/api/hosts/{host.id}")
    report = world.sweep()
    assert host.name in world.host_nodes() and report.plan is not None
    assert [a.reason for a in report.plan.actions if a.node == host.name] == ["DeletionUnconfirmed"]


def test_a_registered_host_node_carries_the_host_id_annotation_and_no_vm_id(world: World) -> None:
    world.converge()
    hosts = east_a_hosts(world.engine)
    nodes = world.host_nodes()
    for h in hosts:
        annotations = nodes[h.name]["metadata"].get("annotations") or {}
        assert annotations.get("ovirt.org/host-id") == h.id
        assert "ovirt.org/vm-id" not in annotations  # a host's node never claims to be a VM's


def test_a_garbled_host_nic_ip_rewrites_no_address_of_its_node(world: World) -> None:
    world.converge()
    host = east_a_hosts(world.engine)[0]
    before = world.host_nodes()[host.name]["status"]["addresses"]
    eth0 = next(n for n in host.nics if n.name == "eth0")
    eth0.ipv4 = "192.168.0.999"  # no IP address at all: a garbled answer, not a host that lost its IP
    world.kube.reset_counts()
    assert world.sweep().ok
    assert world.host_nodes()[host.name]["status"]["addresses"] == before
    assert world.kube.writes("nodes/status") == 0
