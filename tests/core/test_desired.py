"""desired.py: VM → NodeSpec (name, providerID, addresses, labels, shutdown, nodeInfo) and skips."""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import replace
from typing import Any

import pytest

from ovirt_cloudprovider.config.schema import label_key_problem, label_value_problem
from ovirt_cloudprovider.core.changes import label_changes
from ovirt_cloudprovider.core.desired import desired_nodes, instance_type, kube_os, node_labels, node_name
from ovirt_cloudprovider.core.naming import (
    SKIP_DUPLICATE_NAME,
    SKIP_INVALID_ID,
    SKIP_INVALID_NAME,
    SKIP_NO_FQDN,
    kube_arch,
    label_value,
    make_node_name,
    skip_code,
)
from ovirt_cloudprovider.core.records import (
    EXISTS_STATUSES,
    RUNNING_STATUSES,
    SHUTDOWN_STATUSES,
    GuestNic,
    NodeAddress,
    NodeInfo,
    NodeSpec,
    ObservedNode,
    SkippedVM,
    Snapshot,
    Tag,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import NodesConfig

DEFAULT = NodesConfig()
GIB = 1024**3
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# vm_on from manageiq/vms_list_down_and_up.xml + vm_up_reported_devices_ipv4_ipv6.xml (cluster, data
# center and host names as the engine package resolves them with follow=; the recording has only their ids).
VM_ON = VirtualMachine(
    id="a1293e54-dae8-496f-baa4-27719592113e", name="vm_on", status="up",
    fqdn="dhcp-8-199.lab.eng.tlv2.redhat.com", cluster="Default",
    cluster_id="1c273044-e6ca-492f-9ac2-47381b626808",
    datacenter="Default", host="host_1", host_id="ce40bb38-f10a-43f3-8e15-d0ffad692a19",
    nics=(GuestNic("eth0", "00:1a:4a:16:01:05",
                   ("10.46.8.199", "2620:52:0:2e08:21a:4aff:fe16:105", "fe80::21a:4aff:fe16:105")),),
    cpus=2, memory_bytes=2 * GIB, os_type="other", guest_os="CentOS Linux 7",
    kernel="3.10.0-957.27.2.el7.x86_64", architecture="x86_64", guest_agent=True,
)
# vm_off from the same recording: down, no host, no guest agent data.
VM_OFF = VirtualMachine(
    id="8070fa6d-5b82-412c-9d41-a00017205c73", name="vm_off", status="down", cluster="Default",
    datacenter="Default", cpus=1, memory_bytes=1 * GIB, os_type="other", architecture="x86_64",
)


def machine(name: str = "node-1", vm_id: str | None = None, **kwargs: Any) -> VirtualMachine:
    if vm_id is None:
        vm_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
    return VirtualMachine(id=vm_id, name=name, status=str(kwargs.pop("status", "up")), **kwargs)


def snapshot(*vms: VirtualMachine) -> Snapshot:
    return Snapshot(vms=vms, query="tag=kubernetes")


# --- the recorded VMs --------------------------------------------------------------------------------

def test_manageiq_vm_on() -> None:
    desired = desired_nodes(snapshot(VM_ON), DEFAULT)
    assert desired.skipped == ()
    assert desired.nodes == (NodeSpec(
        name="vm-on",
        provider_id="ovirt://a1293e54-dae8-496f-baa4-27719592113e",
        vm_id="a1293e54-dae8-496f-baa4-27719592113e",
        vm_name="vm_on",
        status="up",
        addresses=(NodeAddress("InternalIP", "10.46.8.199"),
                   NodeAddress("InternalIP", "2620:52:0:2e08:21a:4aff:fe16:105"),
                   NodeAddress("Hostname", "dhcp-8-199.lab.eng.tlv2.redhat.com")),
        labels=(
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/os", "linux"),
            ("node.kubernetes.io/instance-type", "2cpu-2gib"),
            ("ovirt.org/cluster", "Default"),
            ("ovirt.org/datacenter", "Default"),
            ("ovirt.org/host", "host_1"),
            ("ovirt.org/kind", "vm"),
            ("topology.kubernetes.io/region", "Default"),
            ("topology.kubernetes.io/zone", "Default"),
        ),
        shutdown=False,
        running=True,
        fqdn="dhcp-8-199.lab.eng.tlv2.redhat.com",
        cpus=2,
        memory_bytes=2 * GIB,
        node_info=NodeInfo(system_uuid="a1293e54-dae8-496f-baa4-27719592113e", os_image="CentOS Linux 7",
                           kernel_version="3.10.0-957.27.2.el7.x86_64", architecture="amd64",
                           operating_system="linux"),
    ),)


def test_manageiq_vm_off_without_guest_agent_still_gets_a_node() -> None:
    (spec,) = desired_nodes(snapshot(VM_OFF), DEFAULT).nodes
    assert spec.name == "vm-off"
    assert spec.addresses == ()
    assert spec.shutdown is True and spec.running is False
    assert spec.fqdn is None
    assert spec.node_info == NodeInfo(system_uuid=VM_OFF.id, os_image="", kernel_version="",
                                      architecture="amd64", operating_system="")
    assert "kubernetes.io/os" not in spec.label_map  # os type "other": unknown
    assert "ovirt.org/host" not in spec.label_map  # a down VM has no host


def test_no_guest_agent_but_known_fqdn_gets_only_a_hostname() -> None:
    (spec,) = desired_nodes(snapshot(machine("n1", fqdn="n1.example.com")), DEFAULT).nodes
    assert spec.addresses == (NodeAddress("Hostname", "n1.example.com"),)


# --- names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "name"), [
    ("node-1", "node-1"),
    ("Node-1", "node-1"),
    ("NODE1.Example.COM", "node1.example.com"),
    ("a--b", "a--b"),  # valid as it is: kept (the kubelet registers it so)
    ("x" * 63, "x" * 63),
    (".".join(["a" * 63] * 3 + ["a" * 61]), ".".join(["a" * 63] * 3 + ["a" * 61])),  # 253
    ("my_vm", "my-vm"),
    ("My VM 01", "my-vm-01"),
    ("web..Front_", "web.front"),
    ("a__b", "a-b"),
    ("a_-_b", "a-b"),
    ("-x-", "x"),
    (".a.", "a"),
    ("a.-b-.c", "a.b.c"),
    ("über", "ber"),
    ("k8s node (old)", "k8s-node-old"),
    (" node1 ", "node1"),
    ("vm_on", "vm-on"),
    ("1", "1"),
])
def test_make_node_name(raw: str, name: str) -> None:
    assert make_node_name(raw) == (name, None)


@pytest.mark.parametrize(("raw", "problem"), [
    ("___", "has no letters or digits to make a node name of"),
    ("", "has no letters or digits to make a node name of"),
    ("...", "has no letters or digits to make a node name of"),
    ("ßü", "has no letters or digits to make a node name of"),
    ("x" * 64, "makes a node name with a part of 64 characters (at most 63)"),
    ("X" * 64, "makes a node name with a part of 64 characters (at most 63)"),
    (".".join(["a" * 60] * 5), "makes a node name of 304 characters (at most 253)"),
    ("_" + ".".join(["a" * 63] * 3 + ["a" * 62]), "makes a node name of 254 characters (at most 253)"),
])
def test_make_node_name_refuses(raw: str, problem: str) -> None:
    assert make_node_name(raw) == (None, problem)


def test_generated_names_are_always_valid_or_refused() -> None:
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + "-_. é/@" + "\t"
    for _ in range(3000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
        name, problem = make_node_name(raw)
        if name is None:
            assert problem
            continue
        assert DNS_SUBDOMAIN.fullmatch(name), (raw, name)
        assert len(name) <= 253 and all(len(label) <= 63 for label in name.split("."))
        assert make_node_name(name) == (name, None)  # stable: a made name maps to itself


@pytest.mark.parametrize(("source", "fqdn", "expected"), [
    ("name", "other.example.com", ("my-vm", None)),
    ("fqdn", "Node1.Example.com.", ("node1.example.com", None)),
    ("short-fqdn", "Node1.Example.com", ("node1", None)),
    ("short-fqdn", "node1", ("node1", None)),
])
def test_name_sources(source: str, fqdn: str, expected: tuple[str | None, str | None]) -> None:
    assert node_name(machine("My_VM", fqdn=fqdn), NodesConfig(name_source=source)) == expected


@pytest.mark.parametrize(("source", "fqdn", "reason"), [
    ("fqdn", None, "no-fqdn: name_source is fqdn but the guest agent reports no usable FQDN"),
    ("short-fqdn", "localhost",
     "no-fqdn: name_source is short-fqdn but the guest agent reports no usable FQDN "
     '(it reports "localhost")'),
    ("fqdn", "bad_name.example.com",
     "no-fqdn: name_source is fqdn but the guest agent reports no usable FQDN "
     '(it reports "bad_name.example.com")'),
])
def test_name_source_without_a_usable_fqdn(source: str, fqdn: str | None, reason: str) -> None:
    assert node_name(machine("vm", fqdn=fqdn), NodesConfig(name_source=source)) == (None, reason)


def test_invalid_name_is_skipped_with_a_reason() -> None:
    vm = machine("___", vm_id="11111111-1111-4111-8111-111111111111")
    desired = desired_nodes(snapshot(vm, machine("ok")), DEFAULT)
    assert [s.name for s in desired.nodes] == ["ok"]
    assert desired.skipped == (SkippedVM(
        vm.id, "___", 'invalid-name: VM name "___" has no letters or digits to make a node name of'),)
    assert skip_code(desired.skipped[0]) == SKIP_INVALID_NAME


def test_two_vms_with_the_same_node_name_are_both_skipped() -> None:
    a = machine("web_1", vm_id="aaaaaaaa-0000-4000-8000-000000000001")
    b = machine("Web-1", vm_id="bbbbbbbb-0000-4000-8000-000000000002")
    desired = desired_nodes(snapshot(a, machine("db-1"), b), DEFAULT)
    assert [s.name for s in desired.nodes] == ["db-1"]
    reason = ('duplicate-name: VMs "web_1" (aaaaaaaa-0000-4000-8000-000000000001) and "Web-1" '
              '(bbbbbbbb-0000-4000-8000-000000000002) map to the same node name "web-1"; rename all but one')
    assert desired.skipped == (SkippedVM(b.id, "Web-1", reason), SkippedVM(a.id, "web_1", reason))
    assert {skip_code(s) for s in desired.skipped} == {SKIP_DUPLICATE_NAME}


def test_three_vms_with_the_same_node_name() -> None:
    vms = [machine(n) for n in ("a_b", "a-b", "A B")]
    desired = desired_nodes(snapshot(*vms), DEFAULT)
    assert desired.nodes == ()
    assert len(desired.skipped) == 3
    assert all('"a_b"' in s.reason and '"a-b"' in s.reason and '"A B"' in s.reason for s in desired.skipped)
    assert all(" and " in s.reason for s in desired.skipped)


def test_duplicate_fqdns_are_skipped_too() -> None:
    a = machine("a", fqdn="node.example.com")
    b = machine("b", fqdn="NODE.example.com")
    desired = desired_nodes(snapshot(a, b), NodesConfig(name_source="fqdn"))
    assert desired.nodes == () and {skip_code(s) for s in desired.skipped} == {SKIP_DUPLICATE_NAME}


def test_a_vm_listed_twice_counts_once() -> None:
    vm = machine("n1", vm_id="a1293e54-dae8-496f-baa4-27719592113e")
    desired = desired_nodes(snapshot(vm, vm), DEFAULT)
    assert [s.name for s in desired.nodes] == ["n1"] and desired.skipped == ()


def test_a_vm_listed_again_in_another_spelling_is_inconsistent() -> None:
    # issue 17, rule 5: the engine never respells an id; an answer that does is garbled (see test_inconsistent_ids)
    vm = machine("n1", vm_id="A1293E54-DAE8-496F-BAA4-27719592113E")
    again = machine("n1", vm_id="a1293e54-dae8-496f-baa4-27719592113e")
    desired = desired_nodes(snapshot(vm, again), DEFAULT)
    assert desired.nodes == () and desired.inconsistent
    assert [(s.vm_id, skip_code(s)) for s in desired.skipped] == [(again.id, "inconsistent")]


def test_invalid_vm_id_is_skipped() -> None:
    desired = desired_nodes(snapshot(machine("n1", vm_id="123")), DEFAULT)
    assert desired.nodes == ()
    assert desired.skipped == (SkippedVM("123", "n1", 'invalid-id: VM id "123" is not a UUID'),)
    assert skip_code(desired.skipped[0]) == SKIP_INVALID_ID


def test_skip_codes() -> None:
    assert skip_code(SkippedVM("i", "n", "no-fqdn: x")) == SKIP_NO_FQDN
    assert skip_code(SkippedVM("i", "n", "something else")) == "other"
    assert skip_code(SkippedVM("i", "n", "")) == "other"


def test_uppercase_vm_id_gives_lowercase_provider_id_and_system_uuid() -> None:
    vm = machine("n1", vm_id="A1293E54-DAE8-496F-BAA4-27719592113E")
    (spec,) = desired_nodes(snapshot(vm), DEFAULT).nodes
    assert spec.provider_id == "ovirt://a1293e54-dae8-496f-baa4-27719592113e"
    assert spec.node_info is not None and spec.node_info.system_uuid == "a1293e54-dae8-496f-baa4-27719592113e"
    assert spec.vm_id == "A1293E54-DAE8-496F-BAA4-27719592113E"  # as the engine said it


def test_output_is_sorted_and_deterministic() -> None:
    vms = [machine(n) for n in ("zeta", "alpha", "___", "mid", "Beta")]
    first = desired_nodes(snapshot(*vms), DEFAULT)
    assert [s.name for s in first.nodes] == ["alpha", "beta", "mid", "zeta"]
    assert desired_nodes(snapshot(*reversed(vms)), DEFAULT) == first


def test_empty_snapshot() -> None:
    assert desired_nodes(snapshot(), DEFAULT).nodes == ()


# --- status ------------------------------------------------------------------------------------------

ALL_STATUSES = sorted(RUNNING_STATUSES | SHUTDOWN_STATUSES | EXISTS_STATUSES | {"Up", "DOWN"})


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_shutdown_and_running(status: str) -> None:
    (spec,) = desired_nodes(snapshot(machine("n1", status=status)), DEFAULT).nodes
    assert spec.status == status
    assert spec.running is (status.lower() in RUNNING_STATUSES)
    assert spec.shutdown is (status.lower() in SHUTDOWN_STATUSES)
    assert not (spec.running and spec.shutdown)


# --- labels ------------------------------------------------------------------------------------------

PLACED = dict(cluster="prod-a", datacenter="dc1", host="hv07.example.com")


@pytest.mark.parametrize(("zone_source", "region_source", "zone", "region"), [
    ("cluster", "datacenter", "prod-a", "dc1"),
    ("datacenter", "none", "dc1", None),
    ("host", "cluster", "hv07.example.com", "prod-a"),
    ("none", "none", None, None),
])
def test_zone_and_region_sources(zone_source: str, region_source: str, zone: str | None,
                                 region: str | None) -> None:
    nodes = NodesConfig(zone_source=zone_source, region_source=region_source)
    labels = dict(node_labels(machine(**PLACED), nodes))
    assert labels.get("topology.kubernetes.io/zone") == zone
    assert labels.get("topology.kubernetes.io/region") == region
    assert labels["ovirt.org/cluster"] == "prod-a"
    assert labels["ovirt.org/datacenter"] == "dc1"
    assert labels["ovirt.org/host"] == "hv07.example.com"


@pytest.mark.parametrize(("raw", "value"), [
    ("Default", "Default"), ("prod a", "prod-a"), ("Zone #1", "Zone-1"), ("_x_", "x"), ("a/b", "a-b"),
    ("x" * 63, "x" * 63), ("x" * 64, None), ("---", None), ("", None), (None, None), ("été", "t"),
    ("dc.1_b-2", "dc.1_b-2"),
])
def test_label_values_are_sanitised_or_omitted(raw: str | None, value: str | None) -> None:
    assert label_value(raw) == value
    if value is not None:
        assert label_value_problem(value) is None


def test_an_unusable_value_omits_the_label() -> None:
    labels = dict(node_labels(machine(cluster="x" * 70, datacenter="!!!"), DEFAULT))
    assert "topology.kubernetes.io/zone" not in labels and "ovirt.org/cluster" not in labels
    assert "topology.kubernetes.io/region" not in labels and "ovirt.org/datacenter" not in labels


@pytest.mark.parametrize(("kwargs", "expected"), [
    (dict(instance_type="Large"), "Large"),
    (dict(instance_type="Large", cpus=2, memory_bytes=4 * GIB), "Large"),
    (dict(cpus=2, memory_bytes=4 * GIB), "2cpu-4gib"),
    (dict(cpus=1, memory_bytes=1536 * 1024**2), "1cpu-1536mib"),
    (dict(cpus=16, memory_bytes=64 * GIB), "16cpu-64gib"),
    (dict(cpus=2, memory_bytes=4 * GIB + 1), "2cpu-4096mib"),
    (dict(cpus=2), None),
    (dict(memory_bytes=GIB), None),
    (dict(cpus=0, memory_bytes=GIB), None),
    (dict(), None),
])
def test_instance_type(kwargs: dict[str, Any], expected: str | None) -> None:
    vm = machine(**kwargs)
    assert instance_type(vm) == expected
    assert dict(node_labels(vm, DEFAULT)).get("node.kubernetes.io/instance-type") == expected


def test_instance_type_name_is_sanitised() -> None:
    labels = dict(node_labels(machine(instance_type="X Large"), DEFAULT))
    assert labels["node.kubernetes.io/instance-type"] == "X-Large"


@pytest.mark.parametrize(("architecture", "arch"), [
    ("x86_64", "amd64"), ("X86_64", "amd64"), ("aarch64", "arm64"), ("ppc64", "ppc64le"),
    ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("undefined", None), ("i686", None), ("", None), (None, None),
])
def test_arch(architecture: str | None, arch: str | None) -> None:
    assert kube_arch(architecture) == arch
    assert dict(node_labels(machine(architecture=architecture), DEFAULT)).get("kubernetes.io/arch") == arch


@pytest.mark.parametrize(("guest_os", "os_type", "expected"), [
    ("CentOS Linux 7", "other", "linux"),
    ("Fedora 39", None, "linux"),
    ("Red Hat Enterprise Linux 9.3", None, "linux"),
    ("Ubuntu 22.04", None, "linux"),
    ("Debian GNU/Linux 12", None, "linux"),
    (None, "rhel_8x64", "linux"),
    (None, "rhel_9x64", "linux"),
    (None, "other_linux", "linux"),
    (None, "sles_12", "linux"),
    (None, "ubuntu_20_04", "linux"),
    (None, "debian_9", "linux"),
    (None, "rhcos_x64", "linux"),
    ("Microsoft Windows Server 2019", None, "windows"),
    (None, "windows_2019x64", "windows"),
    ("Windows 10", "rhel_8x64", "windows"),  # the guest agent knows better than the VM's settings
    (None, "other", None),
    (None, None, None),
    ("", "", None),
    ("Solaris 11", "other", None),
])
def test_os(guest_os: str | None, os_type: str | None, expected: str | None) -> None:
    vm = machine(guest_os=guest_os, os_type=os_type)
    assert kube_os(vm) == expected
    assert dict(node_labels(vm, DEFAULT)).get("kubernetes.io/os") == expected


def test_extra_labels_are_added_but_never_replace_computed_ones() -> None:
    nodes = NodesConfig(extra_labels=(("example.com/pool", "general"), ("ovirt.org/cluster", "override"),
                                      ("topology.kubernetes.io/zone", "fixed")), zone_source="none")
    labels = dict(node_labels(machine(**PLACED), nodes))
    assert labels["example.com/pool"] == "general"
    assert labels["ovirt.org/cluster"] == "prod-a"
    assert labels["topology.kubernetes.io/zone"] == "fixed"


def test_labels_are_sorted_and_valid() -> None:
    rng = random.Random(99)
    alphabet = string.ascii_letters + string.digits + " _-./#é"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 70)))
        vm = machine(cluster=text, datacenter=text[::-1], host=text.upper(), instance_type=text or None)
        labels = node_labels(vm, NodesConfig(extra_labels=(("tier", "web"),)))
        assert list(labels) == sorted(labels)
        for key, value in labels:
            assert label_key_problem(key) is None and label_value_problem(value) is None, (key, value)


def test_every_name_in_a_generated_fleet_is_valid() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_. "
    vms = [machine("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))),
                   vm_id=f"00000000-0000-4000-8000-{i:012d}") for i in range(500)]
    desired = desired_nodes(snapshot(*vms), DEFAULT)
    assert len(desired.nodes) + len(desired.skipped) == len(vms)
    names = [s.name for s in desired.nodes]
    assert len(names) == len(set(names))
    assert all(DNS_SUBDOMAIN.fullmatch(n) and len(n) <= 253 for n in names)
    assert all(skip_code(s) in {SKIP_INVALID_NAME, SKIP_DUPLICATE_NAME} for s in desired.skipped)


def test_equal_label_sets_are_one_tuple_across_the_specs_of_a_sweep() -> None:
    vms = tuple(machine(f"w{i}", str(uuid.UUID(int=i + 1)), cluster="c1" if i < 3 else "c2", datacenter="dc",
                    host="h1", architecture="x86_64") for i in range(5))
    specs = {s.name: s for s in desired_nodes(Snapshot(vms=vms, query=""), DEFAULT).nodes}
    assert specs["w0"].labels is specs["w1"].labels is specs["w2"].labels
    assert specs["w3"].labels is specs["w4"].labels and specs["w3"].labels != specs["w0"].labels
    for vm in vms:  # the labels each spec carries are those of its own VM
        assert specs[vm.name].labels == node_labels(vm, DEFAULT)
        info = specs[vm.name].node_info
        assert info is not None and info.system_uuid == vm.id


def test_equal_label_pairs_are_one_pair_across_the_specs_of_a_sweep() -> None:
    """Specs whose label sets differ (another host) still share the pairs they have in common."""
    vms = tuple(machine(f"w{i}", str(uuid.UUID(int=i + 1)), cluster="c1", datacenter="dc", host=f"h{i}",
                        architecture="x86_64") for i in range(2))
    a, b = desired_nodes(Snapshot(vms=vms, query=""), DEFAULT).nodes
    assert a.labels != b.labels
    common = [(x, y) for x, y in zip(a.labels, b.labels, strict=True) if x == y]
    assert len(common) >= 3 and all(x is y for x, y in common)
    assert a.labels == node_labels(vms[0], DEFAULT) and b.labels == node_labels(vms[1], DEFAULT)


def test_vm_nodes_carry_the_kind_label_as_host_nodes_do() -> None:
    (spec,) = desired_nodes(snapshot(VM_ON), DEFAULT).nodes
    assert dict(spec.labels)["ovirt.org/kind"] == "vm"
    overridden = NodesConfig(extra_labels=(("ovirt.org/kind", "other"),))
    assert dict(node_labels(VM_ON, overridden))["ovirt.org/kind"] == "vm"  # computed labels win


def test_the_filters_unknown_tags_and_an_unknown_tag_labels_parent() -> None:
    """A tag the tree lacks: named by a filter, it is on Desired (core/absence.py counts no absence of that kind);
    as the [nodes] tag_labels parent, no tag label is derived and the node's tags.ovirt.org/ labels are kept."""
    tree = (Tag("r", "root", None), Tag("p", "k8s-labels", "r"), Tag("s", "ssd", "p"), Tag("k", "kubernetes", "r"))
    vm = machine("web1", tags=("kubernetes", "ssd"))
    nodes = NodesConfig(tag_labels="k8s-labels")
    query = Snapshot(vms=(vm,), query="tag=kubernetes or tag=gpu*", hosts_query="tag=metal", tags=tree)
    want = desired_nodes(query, nodes)
    assert want.vm_filter_unknown_tags == ("gpu*",) and want.host_filter_unknown_tags == ("metal",)
    assert desired_nodes(replace(query, tags=None), nodes).vm_filter_unknown_tags == ()  # not listed: not known
    spec = want.nodes[0]
    assert spec.label_map["tags.ovirt.org/ssd"] == "true" and spec.kept_label_prefixes == ()
    node = ObservedNode(name="web1", uid="u", resource_version="1",
                        labels=(("tags.ovirt.org/gpu", "a100"), ("tags.ovirt.org/ssd", "true")))
    # understood: the stale label goes
    assert [c for c in label_changes(node, spec) if c[0].startswith("tags.")] == [("tags.ovirt.org/gpu", None)]
    for tags in (tree[:1] + tree[2:], None):  # the parent renamed or removed; the tree not listed
        lost = desired_nodes(replace(query, tags=tags), nodes).nodes[0]
        assert not any(k.startswith("tags.ovirt.org/") for k in lost.label_map)
        assert lost.kept_label_prefixes == ("tags.ovirt.org/",)
        assert not any(k.startswith("tags.ovirt.org/") for k, _ in label_changes(node, lost))
    assert desired_nodes(replace(query, tags=None), NodesConfig()).nodes[0].kept_label_prefixes == ()
