"""oVirt hosts as Nodes (core/hosts.py, core/providerid.py, the host rules of core/plan.py). Pure."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from ovirt_cloudprovider.core import providerid
from ovirt_cloudprovider.core.changes import MAINTENANCE_TAINT, SHUTDOWN_TAINT
from ovirt_cloudprovider.core.desired import desired_nodes
from ovirt_cloudprovider.core.hosts import address_nics, host_node_spec, kernel_of_cmdline, with_hosts
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_HOST_ID,
    LABEL_INSTANCE_TYPE,
    LABEL_OVIRT_KIND,
    LABEL_REGION,
    LABEL_ZONE,
    ActionKind,
    Desired,
    Host,
    HostNic,
    NodeAddress,
    ObservedNode,
    Snapshot,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import OWNER, absent_counter, apply_in_memory, kubelet_node, make_spec, synced_node

NODES = NodesConfig(register=True)  # the placeholder rules; register is opt-in


def _owned(host_id: str) -> tuple[tuple[str, str], ...]:
    """A host node's annotations: its id, and the default instance as its owner (core/ownership.py)."""
    return ((ANNOTATION_HOST_ID, host_id), *OWNER.annotations)

CONTROLLER = ControllerConfig(delete_after_sweeps=3)


def host_id_for(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.host.test"))


def smbios_for(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.smbios.test")).upper()


def make_host(name: str = "hv1", *, status: str = "up", **changes: object) -> Host:
    host = Host(
        id=host_id_for(name), name=name, status=status, address=f"{name}.example.com", cluster="metal",
        cluster_id="c1", datacenter="dc1", datacenter_id="d1", manufacturer="Supermicro", product="SYS-1029P",
        system_uuid=smbios_for(name), cpu_model="Intel Xeon Processor (Skylake)", cpus=64, memory_bytes=256 << 30,
        os="RHEL 8.9 - 1.el8", kernel="4.18.0-513.el8.x86_64", architecture="x86_64",
        nics=(
            HostNic("eth0", mac="00:1a:4a:16:03:85", ips=("192.168.1.10",), bridged=True),
            HostNic("eth1", mac="00:1a:4a:16:03:86"),
            HostNic("eth2", mac="00:1a:4a:16:03:87", ips=("10.9.9.9",)),
            HostNic("bond0", ips=("10.1.0.5", "fd00::5"), bond_slaves=("eth2", "eth3")),
            HostNic("bond0.100", ips=("10.100.0.5",), vlan=100, base_interface="bond0"),
            HostNic("vnet3", ips=("10.200.0.1",)),
            HostNic(";vdsmdummy;", ips=("10.201.0.1",)),
        ),
    )
    return replace(host, **changes)  # type: ignore[arg-type]


def snapshot(vms: tuple[VirtualMachine, ...] = (), hosts: tuple[Host, ...] = (), *,
             hosts_query: str | None = "") -> Snapshot:
    return Snapshot(vms=vms, query="", hosts=hosts, hosts_query=hosts_query)


def host_desired(*hosts: Host, nodes: NodesConfig = NODES) -> Desired:
    return desired_nodes(snapshot(hosts=hosts), nodes)


# --- providerID -----------------------------------------------------------------------------------------

def test_host_provider_id_is_built_and_read_back_and_never_read_as_a_vm_id() -> None:
    hid = host_id_for("hv1")
    pid = providerid.build_host(hid.upper())
    assert pid == f"ovirt://host/{hid}"
    assert providerid.host_id_of(pid) == hid
    assert providerid.host_id_of(f"ovirt://host/{{{hid.replace('-', '').upper()}}}") == hid
    assert providerid.vm_id_of(pid) is None
    assert providerid.host_id_of(providerid.build(hid)) is None
    assert providerid.host_id_of("ovirt://host/not-a-uuid") is None
    assert providerid.host_id_of(f"ovirt://host/{hid}/x") is None
    assert providerid.owner_key_of(pid) == f"host/{hid}"
    assert providerid.owner_key_of(providerid.build(hid)) == hid
    assert providerid.owner_key_of("aws:///x") is None


# --- Host → NodeSpec ----------------------------------------------------------------------------------------

def test_host_node_spec_fields() -> None:
    spec = host_node_spec(make_host(), "hv1", NODES)
    assert spec.kind == "host" and spec.provider_id == f"ovirt://host/{host_id_for('hv1')}"
    assert spec.vm_id == host_id_for("hv1") and spec.running and not spec.shutdown and not spec.maintenance
    labels = spec.label_map
    assert labels[LABEL_OVIRT_KIND] == "host"
    assert labels[LABEL_INSTANCE_TYPE] == "SYS-1029P"
    assert labels[LABEL_ZONE] == "metal" and labels[LABEL_REGION] == "dc1"
    assert labels["kubernetes.io/arch"] == "amd64" and labels["kubernetes.io/os"] == "linux"
    assert spec.node_info is not None
    assert spec.node_info.system_uuid == smbios_for("hv1").lower()
    assert spec.node_info.os_image == "RHEL 8.9 - 1.el8" and spec.node_info.kernel_version == "4.18.0-513.el8.x86_64"
    assert spec.cpus == 64 and spec.memory_bytes == 256 << 30


def test_instance_type_falls_back_to_the_cpu_model() -> None:
    spec = host_node_spec(make_host(product=None), "hv1", NODES)
    assert spec.label_map[LABEL_INSTANCE_TYPE] == "Intel-Xeon-Processor-Skylake"


def test_addresses_skip_bond_slaves_vm_taps_and_vdsm_dummy() -> None:
    host = make_host()
    assert [n.name for n in address_nics(host)] == ["eth0", "eth1", "bond0", "bond0.100"]
    spec = host_node_spec(host, "hv1", NODES)
    assert spec.addresses == (  # the bridged (management) NIC's address first
        NodeAddress("InternalIP", "192.168.1.10"), NodeAddress("InternalIP", "10.1.0.5"),
        NodeAddress("InternalIP", "10.100.0.5"), NodeAddress("InternalIP", "fd00::5"),
        NodeAddress("Hostname", "hv1.example.com"),
    )


def test_addresses_follow_cidrs_and_ignore_interfaces() -> None:
    nodes = NodesConfig(internal_cidrs=("192.168.1.0/24",), unmatched_addresses="ignore",
                        ignore_interfaces=("bond0.*",))
    spec = host_node_spec(make_host(), "hv1", nodes)
    assert spec.addresses == (NodeAddress("InternalIP", "192.168.1.10"), NodeAddress("Hostname", "hv1.example.com"))


def test_a_garbled_nic_ip_makes_the_addresses_untrusted_unless_the_nic_is_never_used() -> None:
    garbled = make_host(nics=(HostNic("eth0", ips=("192.168.1.999",), bridged=True),
                              HostNic("bond0", ips=("10.1.0.5",))))
    assert host_node_spec(garbled, "hv1", NODES).addresses_trusted is False
    assert host_node_spec(make_host(), "hv1", NODES).addresses_trusted is True
    tap = make_host(nics=(*make_host().nics, HostNic("vnet9", ips=("not-an-ip",))))  # a VM tap: never read
    assert host_node_spec(tap, "hv1", NODES).addresses_trusted is True


def test_name_sources() -> None:
    host = make_host("HV_1", address="hv1.lab.example.com")
    assert [s.name for s in host_desired(host).nodes] == ["hv-1"]
    assert [s.name for s in host_desired(host, nodes=NodesConfig(name_source="fqdn")).nodes] == ["hv1.lab.example.com"]
    assert [s.name for s in host_desired(host, nodes=NodesConfig(name_source="short-fqdn")).nodes] == ["hv1"]
    by_ip = host_desired(replace(host, address="192.168.1.10"), nodes=NodesConfig(name_source="fqdn"))
    assert not by_ip.nodes and by_ip.skipped[0].reason.startswith("no-fqdn:") and by_ip.skipped[0].kind == "host"


def test_statuses() -> None:
    for status, running, shutdown, maintenance in (
            ("up", True, False, False), ("maintenance", False, False, True),
            ("preparing_for_maintenance", False, False, True), ("down", False, True, False),
            ("non_responsive", False, False, False), ("connecting", False, False, False),
            ("installing", False, False, False), ("error", False, False, False), ("whatever", False, False, False)):
        spec = host_node_spec(make_host(status=status), "hv1", NODES)
        assert (spec.running, spec.shutdown, spec.maintenance) == (running, shutdown, maintenance), status


def test_kernel_from_the_reported_command_line() -> None:
    assert kernel_of_cmdline("BOOT_IMAGE=/vmlinuz-3.10.0-957.21.2.el7.x86_64 root=/dev/x ro") == \
        "3.10.0-957.21.2.el7.x86_64"
    assert kernel_of_cmdline("BOOT_IMAGE=(hd0,msdos1)/vmlinuz-4.18.0-513.el8.x86_64 ro") == "4.18.0-513.el8.x86_64"
    assert kernel_of_cmdline("root=/dev/x") is None and kernel_of_cmdline(None) is None


def test_without_hosts_query_desired_is_as_before() -> None:
    vm = VirtualMachine(id=str(uuid.uuid4()), name="web", status="up")
    before = desired_nodes(Snapshot(vms=(vm,), query=""), NODES)
    assert not before.hosts_discovered and [s.kind for s in before.nodes] == ["vm"]
    assert desired_nodes(snapshot((vm,), (make_host(),), hosts_query=None), NODES) == before


def test_a_vm_and_a_host_with_the_same_node_name_are_both_skipped() -> None:
    vm = VirtualMachine(id=str(uuid.uuid4()), name="hv1", status="up")
    got = desired_nodes(snapshot((vm,), (make_host("hv1"), make_host("hv2"))), NODES)
    assert [(s.name, s.kind) for s in got.nodes] == [("hv2", "host")]
    assert sorted(s.kind for s in got.skipped) == ["host", "vm"]
    assert all(s.reason.startswith("duplicate-name:") for s in got.skipped)


def test_with_hosts_keeps_vm_specs_and_marks_discovered() -> None:
    vm_spec = make_spec("web")
    got = with_hosts(Desired(nodes=(vm_spec,)), (make_host(),), NODES)
    assert got.hosts_discovered and [s.name for s in got.nodes] == ["hv1", "web"]


# --- planning ------------------------------------------------------------------------------------------------

def plan(desired: Desired, observed: list[ObservedNode], controller: ControllerConfig = CONTROLLER):  # type: ignore[no-untyped-def]
    return plan_sync(desired, observed, nodes=NODES, controller=controller)


def test_a_running_host_is_registered_with_its_providerid_and_host_id_annotation() -> None:
    actions = plan(host_desired(make_host()), []).actions
    assert [a.kind for a in actions] == [ActionKind.REGISTER]
    a = actions[0]
    assert a.provider_id == f"ovirt://host/{host_id_for('hv1')}"
    assert a.annotations == ((ANNOTATION_HOST_ID, host_id_for("hv1")), *OWNER.annotations)
    assert "host hv1" in a.message


def test_a_host_in_maintenance_is_not_registered() -> None:
    assert plan(host_desired(make_host(status="maintenance")), []).actions == ()


def test_kubelet_node_of_a_host_matches_by_smbios_uuid_not_by_host_id() -> None:
    d = host_desired(make_host())
    by_uuid = kubelet_node("node-x", system_uuid=smbios_for("hv1").lower())
    actions = plan(d, [by_uuid]).actions
    assert [a.kind for a in actions] == [ActionKind.INITIALIZE]
    assert actions[0].provider_id == f"ovirt://host/{host_id_for('hv1')}"
    # a node that reports the host id as its systemUUID is another machine: not matched by name
    other = kubelet_node("hv1", system_uuid=host_id_for("hv1"))
    kinds = [a.kind for a in plan(d, [other]).actions]
    assert ActionKind.INITIALIZE not in kinds and ActionKind.REGISTER not in kinds


def test_matching_by_name_and_fqdn() -> None:
    d = host_desired(make_host())
    assert [a.kind for a in plan(d, [kubelet_node("hv1")]).actions] == [ActionKind.INITIALIZE]
    assert [a.kind for a in plan(d, [kubelet_node("hv1.example.com")]).actions] == [ActionKind.INITIALIZE]


def test_a_node_matching_a_vm_and_a_host_is_ambiguous() -> None:
    host_spec = host_node_spec(make_host(), "hv1", NODES)
    vm_spec = make_spec("web", fqdn="hv1.example.com")
    d = Desired(nodes=(host_spec, vm_spec), hosts_discovered=True)
    actions = plan(d, [kubelet_node("hv1.example.com")]).actions
    assert [a.kind for a in actions if a.node == "hv1.example.com"] == [ActionKind.AMBIGUOUS]


def test_maintenance_taint_added_and_removed() -> None:
    up = host_node_spec(make_host(), "hv1", NODES)
    node = synced_node(up, annotations=_owned(up.vm_id))
    assert plan(Desired(nodes=(up,), hosts_discovered=True), [node]).actions == ()
    maint = host_node_spec(make_host(status="preparing_for_maintenance"), "hv1", NODES)
    actions = plan(Desired(nodes=(maint,), hosts_discovered=True), [node]).actions
    assert [(a.kind, a.reason) for a in actions] == [(ActionKind.TAINT, "MaintenanceTaintAdded")]
    assert actions[0].taints == (MAINTENANCE_TAINT,)
    tainted = apply_in_memory([node], actions)[0]
    for status in ("maintenance", "non_responsive", "connecting"):  # no change
        spec = host_node_spec(make_host(status=status), "hv1", NODES)
        assert plan(Desired(nodes=(spec,), hosts_discovered=True), [tainted]).actions == (), status
    back = plan(Desired(nodes=(up,), hosts_discovered=True), [tainted]).actions
    assert [(a.kind, a.reason) for a in back] == [(ActionKind.UNTAINT, "MaintenanceTaintRemoved")]
    assert back[0].taints == ()


def test_down_host_gets_the_shutdown_taint() -> None:
    up = host_node_spec(make_host(), "hv1", NODES)
    node = synced_node(up, annotations=_owned(up.vm_id))
    down = host_node_spec(make_host(status="down"), "hv1", NODES)
    actions = plan(Desired(nodes=(down,), hosts_discovered=True), [node]).actions
    assert [(a.kind, a.reason, a.taints) for a in actions] == [
        (ActionKind.TAINT, "ShutdownTaintAdded", (SHUTDOWN_TAINT,))]


def test_a_vm_id_never_clears_or_deletes_a_host_node_and_vice_versa() -> None:
    shared = host_id_for("hv1")  # a VM with the same id as the host (never in practice; the rule holds anyway)
    host_spec = host_node_spec(make_host(), "hv1", NODES)
    host_node = absent_counter(synced_node(host_spec, annotations=_owned(shared)), 2)
    vm_spec = make_spec("web", vm_id=shared)
    vm_node = absent_counter(synced_node(vm_spec), 2)
    # only the VM is present: the host's node is absent (deleted at N=3), the VM's counter cleared
    other = host_node_spec(make_host("hv9"), "hv9", NODES)  # some host is present: not an empty host answer
    d = Desired(nodes=(other, vm_spec), skipped=(), hosts_discovered=True)
    other_node = synced_node(other, annotations=_owned(other.vm_id))
    got = {(a.node, a.kind) for a in plan(d, [host_node, vm_node, other_node]).actions}
    assert ("hv1", ActionKind.DELETE) in got and ("web", ActionKind.CLEAR_ABSENT) in got
    # only the host is present: the VM's node is absent, the host's counter cleared
    db = make_spec("db")
    d = Desired(nodes=(host_spec, db), hosts_discovered=True)
    got = {(a.node, a.kind) for a in plan(d, [host_node, vm_node, synced_node(db)]).actions}
    assert ("web", ActionKind.DELETE) in got and ("hv1", ActionKind.CLEAR_ABSENT) in got


def test_absent_host_marked_then_deleted_after_n_sweeps() -> None:
    gone = host_node_spec(make_host("hv2"), "hv2", NODES)
    node = synced_node(gone, annotations=_owned(gone.vm_id))
    d = host_desired(make_host("hv1"))
    observed = [synced_node(d.nodes[0], annotations=_owned(d.nodes[0].vm_id)), node]
    controller = ControllerConfig(delete_after_sweeps=3, max_delete_fraction=1.0)
    for sweep in (1, 2):
        actions = [a for a in plan(d, observed, controller).actions if a.node == "hv2"]
        assert [a.kind for a in actions] == [ActionKind.MARK_ABSENT], sweep
        assert "host " in actions[0].message
        observed = list(apply_in_memory(observed, actions))
    actions = [a for a in plan(d, observed, controller).actions if a.node == "hv2"]
    assert [a.kind for a in actions] == [ActionKind.DELETE] and actions[0].vm_id == gone.vm_id
    assert actions[0].owner_kind == "host"
    assert {a.owner_kind for a in plan(d, [], controller).actions} == {"host"}  # REGISTER


def test_an_empty_host_answer_deletes_no_host_node_even_when_vms_are_there() -> None:
    host_spec = host_node_spec(make_host(), "hv1", NODES)
    host_node = absent_counter(synced_node(host_spec, annotations=_owned(host_spec.vm_id)), 5)
    vm_spec = make_spec("web")
    d = Desired(nodes=(vm_spec,), hosts_discovered=True)  # hosts searched, none returned
    result = plan(d, [host_node, synced_node(vm_spec)])
    assert [(a.node, a.kind, a.reason) for a in result.actions] == [
        ("hv1", ActionKind.BLOCK_DELETE, "EmptyDiscovery")]
    assert any("no hosts" in note for note in result.notes)


def test_host_nodes_are_left_alone_when_hosts_are_not_discovered() -> None:
    host_spec = host_node_spec(make_host(), "hv1", NODES)
    host_node = absent_counter(synced_node(host_spec, annotations=_owned(host_spec.vm_id)), 5)
    vm_spec = make_spec("web")
    result = plan(Desired(nodes=(vm_spec,)), [host_node, synced_node(vm_spec)])
    assert result.actions == () and result.managed_nodes == 1


def test_host_nodes_and_vm_nodes_converge_together() -> None:
    vm = VirtualMachine(id=str(uuid.uuid4()), name="web", status="up")
    d = desired_nodes(snapshot((vm,), (make_host("hv1"), make_host("hv2", status="maintenance"))), NODES)
    observed = apply_in_memory([], plan(d, []).actions)
    assert [n.name for n in observed] == ["hv1", "web"]  # hv2 in maintenance is not registered
    assert plan(d, list(observed)).actions == ()


def test_managed_hosts_counts_the_host_nodes_among_the_managed_after_the_plan() -> None:
    present = host_node_spec(make_host("hv1"), "hv1", NODES)
    gone = host_node_spec(make_host("hv2"), "hv2", NODES)
    vm_spec = make_spec("web")
    observed = [synced_node(present, annotations=_owned(present.vm_id)),
                absent_counter(synced_node(gone, annotations=_owned(gone.vm_id)), 2),
                synced_node(vm_spec)]
    new_host = host_node_spec(make_host("hv3"), "hv3", NODES)
    d = Desired(nodes=(present, new_host, vm_spec, make_spec("db")), hosts_discovered=True)
    controller = ControllerConfig(delete_after_sweeps=3, max_delete_fraction=1.0)
    result = plan(d, observed, controller)
    assert {(a.node, a.kind) for a in result.actions if a.writes} == {
        ("hv2", ActionKind.DELETE), ("hv3", ActionKind.REGISTER), ("db", ActionKind.REGISTER)}
    # hv1 and hv3 (registered; hv2 deleted) of web, db, hv1, hv3
    assert (result.managed_nodes, result.managed_hosts) == (4, 2)
    after = apply_in_memory(observed, result.actions)
    assert sum(providerid.host_id_of(n.provider_id) is not None for n in after) == result.managed_hosts
    # not discovered: host nodes are not managed, not counted
    assert plan(Desired(nodes=(vm_spec,)), observed).managed_hosts == 0


@pytest.mark.parametrize(("status", "words"), [("maintenance", "is in maintenance"),
                                               ("preparing_for_maintenance", "is preparing for maintenance")])
def test_the_maintenance_taint_event_reads_as_english(status: str, words: str) -> None:
    up = host_node_spec(make_host(), "hv1", NODES)
    node = synced_node(up, annotations=((ANNOTATION_HOST_ID, up.vm_id),))
    spec = host_node_spec(make_host(status=status), "hv1", NODES)
    (action,) = plan(Desired(nodes=(spec,), hosts_discovered=True), [node]).actions
    assert f"host hv1 ({up.vm_id}) {words}: added taint ovirt.org/maintenance:NoSchedule" in action.message
