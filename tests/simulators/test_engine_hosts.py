"""The engine simulator's hosts agree with the recorded real engine answers (``manageiq/hosts.xml``,
``host_*_nics.xml``), field by field through the SDK reader; and its host search, paging and follow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovirt_cloudprovider.engine.host_records import HOST_DISCOVERY_FOLLOW, host_record
from ovirt_cloudprovider.simulators.engine import EngineSimulator, Fleet, search_hosts
from tests.simulators.test_engine_simulator import read_sample, sdk_connection, shape

HOST_1 = "ce40bb38-f10a-43f3-8e15-d0ffad692a19"  # bodh1
HOST_2 = "9be35c00-6523-4c2f-89d2-680a6b6da4c0"  # bodh2
# HostNic fields the recorded single-NIC hosts do not show but the API model documents (bond, VLAN).
NIC_EXTRAS = {"bonding", "bonding.options", "bonding.options[].name", "bonding.options[].type",
              "bonding.options[].value", "bonding.slaves", "bonding.slaves[].id", "base_interface", "vlan", "vlan.id"}
# What the recorded hosts carry that the simulator leaves out (site-specific details of no use to us).
HOST_MISSING = {
    "device_passthrough", "device_passthrough.enabled", "hardware_information.serial_number",
    "hardware_information.supported_rng_sources", "hardware_information.supported_rng_sources[]",
    "hardware_information.version", "iscsi", "iscsi.initiator", "ksm", "ksm.enabled", "libvirt_version",
    "libvirt_version.build", "libvirt_version.full_version", "libvirt_version.major", "libvirt_version.minor",
    "libvirt_version.revision", "os.custom_kernel_cmdline", "power_management",
    "power_management.automatic_pm_enabled", "power_management.enabled", "power_management.kdump_detection",
    "power_management.pm_proxies", "se_linux", "se_linux.mode", "spm", "spm.priority", "spm.status", "ssh",
    "ssh.fingerprint", "ssh.port", "transparent_huge_pages", "transparent_huge_pages.enabled", "vgpu_placement",
}


def recorded_host_fleet() -> Fleet:
    fleet = Fleet(seed=2)
    dc = fleet.add_datacenter("newd1")
    cluster = fleet.add_cluster("newd1_cluster", dc.id)
    fleet.add_host("bodh1", cluster.id, address="bodh1.usersys.redhat.com", host_id=HOST_1, ip="10.46.10.132")
    fleet.add_host("bodh2", cluster.id, address="bodh2.usersys.redhat.com", host_id=HOST_2, ip="10.46.10.133")
    return fleet


@pytest.fixture
def host_sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    return engine_sims(recorded_host_fleet())


@pytest.fixture
def conn(host_sim: EngineSimulator) -> Iterator[sdk.Connection]:
    c = sdk_connection(host_sim)
    yield c
    c.close()


def union(objs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for o in objs:
        out.update(shape(o))
    return out


def test_simulated_hosts_have_the_shape_of_recorded_hosts(conn: sdk.Connection) -> None:
    recorded = {h.id: h for h in read_sample("manageiq/hosts.xml")}
    simulated = {h.id: h for h in conn.system_service().hosts_service().list()}
    assert set(simulated) == set(recorded)
    for host_id in (HOST_1, HOST_2):
        want, got = shape(recorded[host_id]), shape(simulated[host_id])
        assert set(want) - set(got) <= HOST_MISSING, sorted(set(want) - set(got) - HOST_MISSING)
        assert set(got) - set(want) == set(), sorted(set(got) - set(want))
        assert {k: got[k] for k in want if k in got} == {k: want[k] for k in want if k in got}
        for attr in ("id", "name", "address", "status", "type"):
            assert getattr(simulated[host_id], attr) == getattr(recorded[host_id], attr), attr
        assert simulated[host_id].status == types.HostStatus.UP
        assert simulated[host_id].cpu.name == recorded[host_id].cpu.name
        assert simulated[host_id].os.type == recorded[host_id].os.type


@pytest.mark.parametrize(("host_id", "sample"), [(HOST_1, "host_ce40bb38_nics.xml"),
                                                  (HOST_2, "host_9be35c00_nics.xml")])
def test_simulated_host_nics_have_the_shape_of_recorded_nics(conn: sdk.Connection, host_id: str, sample: str) -> None:
    recorded = read_sample(f"manageiq/{sample}")
    simulated = conn.system_service().hosts_service().host_service(host_id).nics_service().list()
    want, got = union(recorded), union(simulated)
    assert set(want) - set(got) == set(), sorted(set(want) - set(got))
    assert set(got) - set(want) <= NIC_EXTRAS, sorted(set(got) - set(want) - NIC_EXTRAS)
    assert {k: got[k] for k in want if k in got} == {k: want[k] for k in want if k in got}
    mgmt = next(n for n in simulated if n.name == "eth0")
    rec = recorded[0]
    assert (mgmt.name, mgmt.bridged, mgmt.ip.address, mgmt.ip.version) == \
        (rec.name, rec.bridged, rec.ip.address, rec.ip.version)
    assert mgmt.network.id and rec.network.id  # the management network (ovirtmgmt) of the host's data center


def test_our_record_of_a_recorded_host_equals_the_one_of_the_simulated_host(conn: sdk.Connection) -> None:
    recorded = {h.id: h for h in read_sample("manageiq/hosts.xml")}[HOST_1]
    recorded.nics = read_sample("manageiq/host_ce40bb38_nics.xml")
    simulated = conn.system_service().hosts_service().host_service(HOST_1).get(follow="nics")
    want, got = host_record(recorded), host_record(simulated)
    assert want.kernel == "3.10.0-957.21.2.el7.x86_64" and got.kernel
    assert want.system_uuid == "4587CAA0-8F1A-4246-838B-0F5380A7E67E" and got.system_uuid
    assert want.nics[0].ips == ("10.46.10.132", "2620:52:0:2e08:21a:4aff:fe16:384") and want.nics[0].bridged
    same = ("id", "name", "status", "address", "cpu_model")
    assert {k: getattr(got, k) for k in same} == {k: getattr(want, k) for k in same}
    assert got.nics[0].name == want.nics[0].name and got.nics[0].ips[0] == want.nics[0].ips[0]
    # what the simulator has of its own: the cluster's id, the other NICs, sizes, product name, OS version
    own: dict[str, Any] = {"nics": (), "cpus": None, "memory_bytes": None, "manufacturer": None, "product": None,
                           "os": None, "kernel": None, "system_uuid": None, "cluster_id": None}
    assert replace(got, **own) == replace(want, **own)


def test_host_search_paging_and_follow(conn: sdk.Connection, host_sim: EngineSimulator) -> None:
    fleet = host_sim.fleet
    c2 = fleet.add_cluster("k8s-metal", next(iter(fleet.datacenters)))
    for i in range(5):
        fleet.add_host(f"metal{i}", c2.id, tags=("kubernetes",) if i % 2 == 0 else ())
    assert [h.name for h in search_hosts(fleet, "cluster=k8s-metal sortby name asc")] == [f"metal{i}" for i in range(5)]
    assert [h.name for h in search_hosts(fleet, "Hosts: tag=kubernetes sortby name asc")] == ["metal0", "metal2",
                                                                                             "metal4"]
    assert [h.name for h in search_hosts(fleet, "cluster=k8s-metal sortby name asc page 2", max_results=2)] == \
        ["metal2", "metal3"]
    assert search_hosts(fleet, "fqdn=x") == [] and search_hosts(fleet, "status=maintenance") == []
    service = conn.system_service().hosts_service()
    page = service.list(search="cluster=k8s-metal sortby name asc page 1", max=3, follow=HOST_DISCOVERY_FOLLOW)
    assert [h.name for h in page] == ["metal0", "metal1", "metal2"]
    record = host_record(page[0])
    assert record.cluster == "k8s-metal" and record.datacenter == "newd1" and record.architecture == "x86_64"
    assert [n.name for n in record.nics] == ["eth0", "eth1", "eth2", "bond0", "bond0.100"]
    bond = record.nics[3]
    assert bond.bond_slaves == ("eth1", "eth2") and record.nics[4].vlan == 100
    assert record.nics[4].base_interface == "bond0"
    with pytest.raises(sdk.Error):
        service.list(follow="vms")


def test_a_host_search_narrowed_by_id_and_a_lossy_host_search(conn: sdk.Connection, host_sim: EngineSimulator) -> None:
    service = conn.system_service().hosts_service()
    # the search core/vmfilter.narrowed builds for a host: the filter with "and id=<id>" in every or-branch
    assert [h.name for h in service.list(search=f"Hosts: cluster=newd1_cluster and id={HOST_2}")] == ["bodh2"]
    assert service.list(search=f"cluster=other and id={HOST_2} or name=x* and id={HOST_2}") == []
    host_sim.lose_in_search([HOST_1])  # a glitch loses it from searches of the fleet, not from id= searches
    assert [h.name for h in service.list(search="cluster=newd1_cluster")] == ["bodh2"]
    assert [h.name for h in service.list(search=f"cluster=newd1_cluster and id={HOST_1}")] == ["bodh1"]
    assert service.host_service(HOST_1).get().name == "bodh1"


def test_host_status_changes_and_removal_log_engine_events(host_sim: EngineSimulator) -> None:
    # what ovirt-engine logs (AuditLogType codes, AuditLogMessages.properties texts): MaintenanceVdsCommand logs
    # USER_VDS_MAINTENANCE_WITHOUT_REASON (620) when the host starts preparing; HostMonitoring moves it on to
    # maintenance without an audit log; ActivateVdsCommand logs VDS_ACTIVATE (16), InitVdsOnUpCommand
    # VDS_DETECTED (13) once up; StopVdsCommand (power management) USER_VDS_STOP (21), StartVdsCommand
    # USER_VDS_START (20); VdsManager VDS_FAILURE (12) for a non responsive host; RemoveVdsCommand USER_REMOVE_VDS
    before = host_sim.fleet.last_event_id()
    host_sim.set_host_status("bodh1", "preparing_for_maintenance")
    host_sim.set_host_status("bodh1", "maintenance")
    host_sim.set_host_status("bodh1", "up")
    host_sim.set_host_status("bodh1", "maintenance")
    host_sim.set_host_status("bodh1", "down")
    host_sim.set_host_status("bodh1", "up")
    host_sim.set_host_status("bodh1", "non_responsive")
    host_sim.remove_host("bodh2")
    events = [(e.code, e.description, e.host_id) for e in host_sim.fleet.events if e.id > before]
    u = "admin@internal-authz"
    assert events == [
        (620, f"Host bodh1 was switched to Maintenance mode by {u}.", HOST_1),
        (16, f"Activation of host bodh1 initiated by {u}.", HOST_1),
        (13, "Status of host bodh1 was set to Up.", HOST_1),
        (620, f"Host bodh1 was switched to Maintenance mode by {u}.", HOST_1),
        (21, f"Host bodh1 was stopped by {u}.", HOST_1),
        (20, f"Host bodh1 was started by {u}.", HOST_1),
        (13, "Status of host bodh1 was set to Up.", HOST_1),
        (12, "Host bodh1 is non responsive.", HOST_1),
        (44, f"Host bodh2 was removed by {u}.", HOST_2),
    ]
    with pytest.raises(ValueError):
        host_sim.set_host_status("bodh1", "sleeping")
