"""A VM's guest-reported network devices → the Node's ``status.addresses``. Pure.

Rules (:func:`node_addresses`):

- NICs whose name matches a ``[nodes] ignore_interfaces`` pattern (``fnmatch``, case-sensitive) are
  skipped: container, CNI and bridge interfaces carry pod or service addresses, not the node's.
- Unusable addresses are dropped: strings that are not IP addresses, loopback, link-local
  (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::), multicast and 255.255.255.255. An IPv6 zone
  (``%eth0``) or a prefix length (``/24``) on an address is ignored; IPv4-mapped IPv6 addresses are
  read as IPv4; IPv6 is written in compressed form.
- Classification: an address inside ``internal_cidrs`` is an InternalIP, inside ``external_cidrs`` an
  ExternalIP; when both lists have a network holding it, the more specific network (the longer prefix)
  decides (the config reader refuses the same network in both lists; if it happens anyway, internal wins).
  An address in neither follows ``unmatched_addresses``: internal, external or ignore.
- Order (the first address is the node's primary one, as the kubelet and the cloud-node controller
  read it): InternalIP IPv4, InternalIP IPv6, ExternalIP IPv4, ExternalIP IPv6, then Hostname. Within a
  group, NICs come in the order of their names, compared with numbers as numbers (``eth2`` before
  ``eth10``, ``ens3`` before ``ens4``; same names by MAC address), and a NIC's addresses in numeric
  order: never in the order the guest agent happens to report them, so a reordered report changes
  nothing. An address that appears twice (on two NICs) is listed once, where it first appears in that
  order. (To pin the primary address, start the kubelet with ``--node-ip``.)
- Hostname: the VM's FQDN as the guest agent reports it, lowercased and without a trailing dot, when it
  is a valid DNS name (and not ``localhost`` or an IP address); nothing otherwise.

The kubelet's ``--node-ip`` (:func:`parse_node_ips`, :func:`enforce_node_ips`), as the upstream node
controller applies it (k8s.io/cloud-provider ``GetNodeAddressesFromNodeIP``): the annotation holds one IP
or a dual-stack pair (one IPv4, one IPv6, comma-separated). Every address equal to a provided IP comes
first (in the annotation's order); every other address of the same type as a matched one (for an
InternalIP node IP: all other InternalIPs, of both families) is dropped; addresses of other types
(ExternalIP, Hostname) follow in their order. A provided IP that is not among the addresses is an
error: the caller keeps the node's addresses.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re

from .records import GuestNic, NodeAddress, VirtualMachine
from .settings import NodesConfig

INTERNAL_IP = "InternalIP"
EXTERNAL_IP = "ExternalIP"
HOSTNAME = "Hostname"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
_LOCALHOST_LABELS = frozenset({"localhost", "localhost4", "localhost6"})
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_DIGIT_RUNS = re.compile(r"([0-9]+)")


def parse_ip(text: str) -> IPAddress | None:
    """A usable node address from a guest-reported string, or ``None`` (invalid, loopback,
    link-local, unspecified, multicast, broadcast)."""
    address, slash, prefix = text.strip().partition("/")
    address = address.split("%", 1)[0]  # an IPv6 zone
    try:
        ip: IPAddress = (ipaddress.ip_interface(f"{address}/{prefix}").ip if slash
                         else ipaddress.ip_address(address))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip == _LIMITED_BROADCAST:
        return None
    return ip


def invalid_ips(vm: VirtualMachine, nodes: NodesConfig | None = None) -> tuple[str, ...]:
    """The guest-reported addresses of ``vm`` that are no IP address at all (``abc``, ``999.1.1.1``,
    ``01.02.03.004``): a garbled answer. An optional ``/prefix`` and an IPv6 ``%zone`` are allowed; valid but
    unusable addresses (loopback, link-local) are not invalid. With ``nodes``, only the interfaces we use."""
    out: list[str] = []
    for nic in vm.nics:
        if nodes is not None and interface_ignored(nic.name, nodes):
            continue
        for raw in nic.ips:
            address, slash, prefix = raw.strip().partition("/")
            try:
                if slash:
                    ipaddress.ip_interface(f"{address.split('%', 1)[0]}/{prefix}")
                else:
                    ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                out.append(raw)
    return tuple(out)


def garbled_ips(vm: VirtualMachine, nodes: NodesConfig) -> bool:
    """The guest reported, on an interface we use, a string that is no IP address at all (:func:`invalid_ips`)."""
    return bool(invalid_ips(vm, nodes))


def hostname(vm: VirtualMachine) -> str | None:
    """The VM's FQDN as a Hostname address (lowercase, no trailing dot), or ``None`` when the guest
    agent reported none or something that is not a usable DNS name."""
    if not vm.fqdn:
        return None
    name = vm.fqdn.strip().rstrip(".").lower()
    if not _DNS_SUBDOMAIN.fullmatch(name) or name.split(".", 1)[0] in _LOCALHOST_LABELS:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None  # an IP address reported as the FQDN


def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _longest_match(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> int:
    """The prefix length of the most specific network holding ``ip``, or -1."""
    best = -1
    for network in networks:
        if network.version == ip.version and ip in network and network.prefixlen > best:
            best = network.prefixlen
    return best


def _classify(ip: IPAddress, internal_networks: tuple[IPNetwork, ...],
              external_networks: tuple[IPNetwork, ...], unmatched: str) -> str | None:
    internal = _longest_match(ip, internal_networks)
    external = _longest_match(ip, external_networks)
    if internal >= 0 or external >= 0:
        return INTERNAL_IP if internal >= external else EXTERNAL_IP
    return {"internal": INTERNAL_IP, "external": EXTERNAL_IP}.get(unmatched)


def interface_ignored(name: str, nodes: NodesConfig) -> bool:
    """Whether ``name`` matches one of ``ignore_interfaces`` (``fnmatch.fnmatchcase`` of each pattern)."""
    return _ignore_pattern(nodes.ignore_interfaces).match(name) is not None


@functools.lru_cache(maxsize=16)
def _ignore_pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """The patterns as one regular expression (each anchored, as fnmatchcase does): one match per NIC, not
    one per pattern (about 70 per VM with the default list)."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


def _nic_key(nic: GuestNic) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """NIC name with its runs of ASCII digits compared as numbers (by length, then digits, without int(): a guest
    agent names its NICs as it likes, and int() refuses ``²``, which str.isdigit() accepts, and 4,301 digits),
    other characters as text; then the MAC address."""
    parts = tuple((0, len(p.lstrip("0")), p.lstrip("0")) if p[0] in "0123456789" else (1, 0, p)
                  for p in _DIGIT_RUNS.split(nic.name) if p)
    return parts, (nic.mac or "").lower()


def _ip_key(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)


def node_addresses(vm: VirtualMachine, nodes: NodesConfig) -> tuple[NodeAddress, ...]:
    """The Node addresses for ``vm``, in the stable order described in the module docstring."""
    groups: dict[tuple[str, int], list[str]] = {
        (INTERNAL_IP, 4): [], (INTERNAL_IP, 6): [], (EXTERNAL_IP, 4): [], (EXTERNAL_IP, 6): [],
    }
    internal, external = _networks(nodes.internal_cidrs), _networks(nodes.external_cidrs)
    seen: set[str] = set()
    for nic in sorted(vm.nics, key=_nic_key):
        if interface_ignored(nic.name, nodes):
            continue
        usable = [(ip, raw) for raw in nic.ips if (ip := parse_ip(raw)) is not None]
        for ip, raw in sorted(usable, key=lambda pair: _ip_key(pair[0])):
            text = ip.compressed
            if text == raw:  # the discovery's own string, not a copy per node
                text = raw
            if text in seen:
                continue
            seen.add(text)
            kind = _classify(ip, internal, external, nodes.unmatched_addresses)
            if kind is not None:
                groups[(kind, ip.version)].append(text)
    addresses = [NodeAddress(kind, text) for (kind, _version), texts in groups.items() for text in texts]
    name = hostname(vm)
    if name:
        addresses.append(NodeAddress(HOSTNAME, name))
    return tuple(addresses)


def parse_node_ips(text: str) -> tuple[IPAddress, ...]:
    """The kubelet's ``--node-ip`` from its annotation: one IP or a dual-stack pair (IPv4 and IPv6).

    Raises ValueError, with the reason as its message, for anything else."""
    found: list[IPAddress] = []
    for part in text.split(","):
        try:
            found.append(ipaddress.ip_address(part.strip()))
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not an IP address") from None
    if len(found) > 2 or (len(found) == 2 and found[0].version == found[1].version):
        raise ValueError("it must be one IP address or a dual-stack pair (one IPv4 and one IPv6 address)")
    return tuple(found)


def _same_ip(text: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == ip
    except ValueError:
        return False


def enforce_node_ips(provided: tuple[IPAddress, ...], addresses: tuple[NodeAddress, ...]) -> tuple[NodeAddress, ...]:
    """``addresses`` with the kubelet's node IP(s) applied (see the module docstring).

    Raises LookupError, with the first provided IP not among ``addresses`` as its message."""
    first: list[NodeAddress] = []
    for ip in provided:
        matched = [a for a in addresses if _same_ip(a.address, ip)]
        if not matched:
            raise LookupError(ip.compressed)
        first.extend(a for a in matched if a not in first)
    enforced = {a.type for a in first}
    return tuple(first) + tuple(a for a in addresses if a.type not in enforced)
