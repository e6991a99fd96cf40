"""addresses.py: which guest addresses become Node addresses, as what, and in which order."""

from __future__ import annotations

import fnmatch
import ipaddress
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovirt_cloudprovider.core.addresses import (
    enforce_node_ips,
    hostname,
    interface_ignored,
    node_addresses,
    parse_ip,
    parse_node_ips,
)
from ovirt_cloudprovider.core.records import GuestNic, NodeAddress, VirtualMachine
from ovirt_cloudprovider.core.settings import NodesConfig
from tests.helpers import SAMPLES as ALL_SAMPLES

SAMPLES = ALL_SAMPLES / "manageiq"
DEFAULT = NodesConfig()


def vm(*nics: GuestNic, fqdn: str | None = None) -> VirtualMachine:
    return VirtualMachine(id="a1293e54-dae8-496f-baa4-27719592113e", name="vm", status="up", fqdn=fqdn,
                          nics=nics)


def internal(address: str) -> NodeAddress:
    return NodeAddress("InternalIP", address)


def external(address: str) -> NodeAddress:
    return NodeAddress("ExternalIP", address)


def host(name: str) -> NodeAddress:
    return NodeAddress("Hostname", name)


# Real guest-agent data: manageiq/vm_up_reported_devices_ipv4_ipv6.xml (vm_on, fqdn from
# manageiq/vms_list_down_and_up.xml) and manageiq/vm_private_ip_reported_devices.xml (rhel_seven, no fqdn;
# the engine lists eth3, eth2, eth1 before eth0).
VM_ON_NICS = (GuestNic("eth0", "00:1a:4a:16:01:05",
                       ("10.46.8.199", "2620:52:0:2e08:21a:4aff:fe16:105", "fe80::21a:4aff:fe16:105")),)
VM_ON_FQDN = "dhcp-8-199.lab.eng.tlv2.redhat.com"
RHEL_SEVEN_NICS = (
    GuestNic("eth3", "56:6f:59:c0:00:03"), GuestNic("eth2", "56:6f:59:c0:00:02"),
    GuestNic("eth1", "56:6f:59:c0:00:06"),
    GuestNic("eth0", "56:6f:59:c0:00:00", ("192.168.178.62", "fe80::37ee:4ca9:9bba:d731")),
)


def _nics_from_sample(name: str) -> tuple[GuestNic, ...]:
    root = ET.parse(SAMPLES / name).getroot()
    return tuple(
        GuestNic(name=dev.findtext("name") or "", mac=dev.findtext("mac/address"),
                 ips=tuple(ip.findtext("address") or "" for ip in dev.findall("ips/ip")))
        for dev in root.findall("reported_device"))


@pytest.mark.parametrize(("sample", "nics"), [
    ("vm_up_reported_devices_ipv4_ipv6.xml", VM_ON_NICS),
    ("vm_private_ip_reported_devices.xml", RHEL_SEVEN_NICS),
])
def test_inlined_samples_match_the_recorded_files(sample: str, nics: tuple[GuestNic, ...]) -> None:
    assert _nics_from_sample(sample) == nics


def test_manageiq_vm_on_dual_stack() -> None:
    assert node_addresses(vm(*VM_ON_NICS, fqdn=VM_ON_FQDN), DEFAULT) == (
        internal("10.46.8.199"), internal("2620:52:0:2e08:21a:4aff:fe16:105"), host(VM_ON_FQDN))


def test_manageiq_rhel_seven_private_ip_without_fqdn() -> None:
    assert node_addresses(vm(*RHEL_SEVEN_NICS), DEFAULT) == (internal("192.168.178.62"),)


def test_manageiq_vm_on_with_cidr_rules() -> None:
    nodes = NodesConfig(internal_cidrs=("10.46.0.0/16",), external_cidrs=("2620:52::/32",))
    assert node_addresses(vm(*VM_ON_NICS, fqdn=VM_ON_FQDN), nodes) == (
        internal("10.46.8.199"), external("2620:52:0:2e08:21a:4aff:fe16:105"), host(VM_ON_FQDN))


def test_no_guest_agent() -> None:
    assert node_addresses(vm(), DEFAULT) == ()
    assert node_addresses(vm(fqdn="node1.example.com"), DEFAULT) == (host("node1.example.com"),)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "::1", "169.254.10.1", "fe80::1", "fe80::1%eth0", "febf::1", "0.0.0.0", "::",
    "224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "not-an-ip", "", " ", "10.0.0.256",
    "1.2.3", "::ffff:127.0.0.1", "10.0.0.1/33", "fe80::1/64",
])
def test_unusable_addresses_are_dropped(address: str) -> None:
    assert parse_ip(address) is None
    assert node_addresses(vm(GuestNic("eth0", ips=(address,))), DEFAULT) == ()


@pytest.mark.parametrize(("address", "normalised"), [
    ("10.0.0.5", "10.0.0.5"),
    (" 10.0.0.8 ", "10.0.0.8"),
    ("10.0.0.5/24", "10.0.0.5"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
    ("2001:db8::1%eth0", "2001:db8::1"),
    ("::ffff:10.0.0.7", "10.0.0.7"),
    ("100.64.0.1", "100.64.0.1"),
    ("203.0.113.9", "203.0.113.9"),
    ("fd00::5", "fd00::5"),
])
def test_addresses_are_normalised(address: str, normalised: str) -> None:
    assert node_addresses(vm(GuestNic("eth0", ips=(address,))), DEFAULT) == (internal(normalised),)


@pytest.mark.parametrize("name", [
    "lo", "docker0", "cali1234abcd", "flannel.1", "cni0", "cni-podman0", "veth12ab", "cilium_host",
    "cilium_vxlan", "kube-ipvs0", "vxlan.calico", "tunl0", "weave", "virbr0", "lxc12ab34", "kube-bridge",
    "nodelocaldns", "ovn-k8s-mp0", "genev_sys_6081", "antrea-gw0", "podman1", "br-0123456789ab",
])
def test_container_interfaces_are_ignored(name: str) -> None:
    nics = (GuestNic(name, ips=("172.17.0.1", "fd12::1")), GuestNic("eth0", ips=("10.0.0.5",)))
    assert node_addresses(vm(*nics), DEFAULT) == (internal("10.0.0.5"),)


@pytest.mark.parametrize("name", [
    "eth0", "ens3", "enp1s0", "bond0", "br0", "br-ex", "br-0123456789", "eth0.100", "team0", "Ethernet",
    "LO", "Docker0",
])
def test_real_interfaces_are_kept(name: str) -> None:
    assert node_addresses(vm(GuestNic(name, ips=("10.0.0.5",))), DEFAULT) == (internal("10.0.0.5"),)


def test_ignore_interfaces_is_configurable() -> None:
    nics = (GuestNic("docker0", ips=("172.17.0.1",)), GuestNic("eth1", ips=("192.0.2.1",)),
            GuestNic("eth0", ips=("10.0.0.5",)))
    assert node_addresses(vm(*nics), NodesConfig(ignore_interfaces=())) == (  # NICs by name
        internal("172.17.0.1"), internal("10.0.0.5"), internal("192.0.2.1"))
    assert node_addresses(vm(*nics), NodesConfig(ignore_interfaces=("eth[1-9]", "docker*"))) == (
        internal("10.0.0.5"),)


@pytest.mark.parametrize(("internal_cidrs", "external_cidrs", "unmatched", "expected"), [
    ((), (), "internal", "InternalIP"),
    ((), (), "external", "ExternalIP"),
    ((), (), "ignore", None),
    (("10.0.0.0/8",), (), "ignore", "InternalIP"),
    ((), ("10.0.0.0/8",), "internal", "ExternalIP"),
    (("192.168.0.0/16",), (), "ignore", None),
    # both lists hold it: the more specific network wins, whichever list it is in
    (("10.0.0.0/8",), ("10.1.0.0/16",), "internal", "ExternalIP"),
    (("10.1.0.0/16",), ("10.0.0.0/8",), "external", "InternalIP"),
    (("10.0.0.0/8", "10.1.2.0/24"), ("10.1.0.0/16",), "ignore", "InternalIP"),
    (("10.1.2.3/32",), ("0.0.0.0/0",), "ignore", "InternalIP"),
    (("::/0",), ("0.0.0.0/0",), "internal", "ExternalIP"),  # families never mix
    # the same network in both lists (config.py refuses it): internal
    (("10.0.0.0/8",), ("10.0.0.0/8",), "ignore", "InternalIP"),
])
def test_classification(internal_cidrs: tuple[str, ...], external_cidrs: tuple[str, ...], unmatched: str,
                        expected: str | None) -> None:
    nodes = NodesConfig(internal_cidrs=internal_cidrs, external_cidrs=external_cidrs,
                        unmatched_addresses=unmatched)
    found = node_addresses(vm(GuestNic("eth0", ips=("10.1.2.3",))), nodes)
    assert found == ((NodeAddress(type=expected, address="10.1.2.3"),) if expected else ())


def test_ipv6_classification() -> None:
    nodes = NodesConfig(internal_cidrs=("fd00::/8",), external_cidrs=("2001:db8::/32",),
                        unmatched_addresses="ignore")
    nics = (GuestNic("eth0", ips=("2001:db8::10", "fd00::10", "2a00::1", "10.0.0.1")),)
    assert node_addresses(vm(*nics), nodes) == (internal("fd00::10"), external("2001:db8::10"))


def test_order_internal_v4_v6_then_external_v4_v6_then_hostname_in_nic_order() -> None:
    nodes = NodesConfig(external_cidrs=("203.0.113.0/24", "2001:db8:e::/48"))
    nics = (
        GuestNic("eth0", ips=("2001:db8:1::1", "10.0.0.1", "203.0.113.1", "fe80::1")),
        GuestNic("eth1", ips=("2001:db8:e::5", "10.0.1.1", "2001:db8:2::1")),
        GuestNic("eth2", ips=("203.0.113.2", "10.0.0.1", "192.168.5.5")),
    )
    assert node_addresses(vm(*nics, fqdn="Node-1.Example.COM."), nodes) == (
        internal("10.0.0.1"), internal("10.0.1.1"), internal("192.168.5.5"),
        internal("2001:db8:1::1"), internal("2001:db8:2::1"),
        external("203.0.113.1"), external("203.0.113.2"),
        external("2001:db8:e::5"),
        host("node-1.example.com"),
    )


def test_duplicates_are_listed_once_where_they_first_appear() -> None:
    nics = (GuestNic("eth1", ips=("10.0.0.2", "10.0.0.3")), GuestNic("eth0", ips=("10.0.0.3", "10.0.0.1")),
            GuestNic("eth2", ips=("2001:db8::1", "2001:DB8:0::1")))
    assert node_addresses(vm(*nics), DEFAULT) == (internal("10.0.0.1"), internal("10.0.0.3"),
                                                  internal("10.0.0.2"), internal("2001:db8::1"))


def test_a_duplicate_on_an_ignored_interface_does_not_hide_the_real_one() -> None:
    nics = (GuestNic("docker0", ips=("10.0.0.5",)), GuestNic("eth0", ips=("10.0.0.5",)))
    assert node_addresses(vm(*nics), DEFAULT) == (internal("10.0.0.5"),)


def test_result_is_stable_and_hashable() -> None:
    machine = vm(*VM_ON_NICS, *RHEL_SEVEN_NICS, fqdn=VM_ON_FQDN)
    first = node_addresses(machine, DEFAULT)
    assert first == node_addresses(machine, DEFAULT)
    assert len({first, node_addresses(machine, DEFAULT)}) == 1


@pytest.mark.parametrize(("fqdn", "expected"), [
    ("node1.example.com", "node1.example.com"),
    ("Node1.Example.COM", "node1.example.com"),
    ("node1.example.com.", "node1.example.com"),
    (" node1 ", "node1"),
    (VM_ON_FQDN, VM_ON_FQDN),
    ("host1", "host1"),
    (None, None),
    ("", None),
    ("localhost", None),
    ("localhost.localdomain", None),
    ("localhost6.localdomain6", None),
    ("10.0.0.1", None),
    ("bad_host.example.com", None),
    ("-x.example.com", None),
    ("a..b", None),
    ("x" * 64 + ".example.com", None),
    (".".join(["a" * 63] * 4), None),  # 255 characters
    ("localhost-ish.example.com", "localhost-ish.example.com"),
])
def test_hostname(fqdn: str | None, expected: str | None) -> None:
    assert hostname(vm(fqdn=fqdn)) == expected


@pytest.mark.parametrize(("text", "parsed"), [
    ("192.168.7.2", ("192.168.7.2",)),
    ("fd00::7,192.168.7.2", ("fd00::7", "192.168.7.2")),
    (" 192.168.7.2 , FD00:0::7", ("192.168.7.2", "fd00::7")),
])
def test_parse_node_ips(text: str, parsed: tuple[str, ...]) -> None:
    assert parse_node_ips(text) == tuple(ipaddress.ip_address(p) for p in parsed)


@pytest.mark.parametrize("text", ["", "eth0", "10.0.0.1,10.0.0.2", "fd00::1,fd00::2", "10.0.0.1,fd00::1,10.0.0.2",
                                  "10.0.0.0/24"])
def test_parse_node_ips_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_node_ips(text)


def test_enforce_node_ips_like_upstream() -> None:
    addresses = (internal("10.10.0.2"), internal("192.168.7.2"), internal("fd00::2"), external("203.0.113.7"),
                 host("web1.example.com"))
    ip = ipaddress.ip_address
    assert enforce_node_ips((ip("192.168.7.2"),), addresses) == (
        internal("192.168.7.2"), external("203.0.113.7"), host("web1.example.com"))
    assert enforce_node_ips((ip("203.0.113.7"), ip("fd00::2")), addresses) == (
        external("203.0.113.7"), internal("fd00::2"), host("web1.example.com"))
    with pytest.raises(LookupError, match=r"192\.168\.7\.9"):
        enforce_node_ips((ip("192.168.7.9"),), addresses)


def test_order_does_not_depend_on_the_order_the_guest_agent_reports() -> None:
    """NICs by name (eth2 before eth10), addresses within a NIC by value: a reversed report changes nothing."""
    nics = (
        GuestNic("eth10", mac="56:6f:00:00:00:03", ips=("10.0.10.1",)),
        GuestNic("eth0", mac="56:6f:00:00:00:01", ips=("10.0.0.9", "fd00::9", "10.0.0.2", "fd00::2")),
        GuestNic("eth2", mac="56:6f:00:00:00:02", ips=("10.0.2.1", "10.0.0.9")),
    )
    expected = (internal("10.0.0.2"), internal("10.0.0.9"), internal("10.0.2.1"), internal("10.0.10.1"),
                internal("fd00::2"), internal("fd00::9"))
    assert node_addresses(vm(*nics), DEFAULT) == expected
    reversed_report = tuple(GuestNic(n.name, n.mac, tuple(reversed(n.ips))) for n in reversed(nics))
    assert node_addresses(vm(*reversed_report), DEFAULT) == expected


@given(names=st.lists(st.text(alphabet="abcdeilnorstvx0129-_.*?[]!", max_size=12), max_size=8),
       patterns=st.lists(st.text(alphabet="abcdeilnorstvx0129-_.*?[]!", max_size=8), max_size=6))
def test_interface_ignored_is_fnmatchcase_of_any_pattern(names: list[str], patterns: list[str]) -> None:
    nodes = NodesConfig(ignore_interfaces=tuple(patterns))
    for name in [*names, *NodesConfig().ignore_interfaces, "eth0", "br-0123456789ab"]:
        assert interface_ignored(name, nodes) == any(fnmatch.fnmatchcase(name, p) for p in patterns), (name, patterns)
