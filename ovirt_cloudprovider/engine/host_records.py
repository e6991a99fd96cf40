"""SDK objects → our records, for hosts: ``ovirtsdk4.types.Host`` → :class:`~ovirt_cloudprovider.core.records.Host`.

Pure functions over the SDK's objects (duck-typed, so no ``ovirtsdk4`` import). :func:`host_record` expects a host
as a search or GET with :data:`HOST_DISCOVERY_FOLLOW` returns it: its NICs, cluster and data center inline. Links
that were not followed (only an id) give ids without names; absent data gives None. The kernel is read from the
reported kernel command line (``BOOT_IMAGE=/vmlinuz-<release>``), the architecture from the cluster's CPU.
"""

from __future__ import annotations

from typing import Any

from ..core.hosts import kernel_of_cmdline
from ..core.records import Host, HostNic
from .records import affinity_label_names, cpu_count

# What one host search inlines per host: its NICs (with their IPs, bonds and VLANs), its cluster and the
# cluster's data center, so that all hosts cost ceil((N + 1) / page_size) requests, never one per host.
HOST_DISCOVERY_FOLLOW = "nics,cluster.data_center"


def host_follow(affinity_labels: bool) -> str:
    """The ``follow`` of a host search or GET read by :func:`host_record` (with the host's affinity labels when
    asked for)."""
    return f"{HOST_DISCOVERY_FOLLOW},affinity_labels" if affinity_labels else HOST_DISCOVERY_FOLLOW


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def _nic(nic: Any, names: dict[str, str]) -> HostNic:
    ips = tuple(a for a in (_text(getattr(nic.ip, "address", None)) if nic.ip is not None else None,
                            _text(getattr(nic.ipv6, "address", None)) if nic.ipv6 is not None else None) if a)
    bonding = nic.bonding
    slaves = tuple(s.name or names.get(s.id or "", "") for s in ((bonding.slaves or ()) if bonding is not None else ()))
    mac = nic.mac.address.lower() if nic.mac is not None and nic.mac.address else None
    vlan = nic.vlan.id if nic.vlan is not None and nic.vlan.id is not None else None
    return HostNic(name=nic.name or "", mac=mac, ips=ips, bridged=bool(nic.bridged),
                   bond_slaves=tuple(s for s in slaves if s), vlan=int(vlan) if vlan is not None else None,
                   base_interface=_text(nic.base_interface))


def host_record(host: Any) -> Host:
    """An ``ovirtsdk4.types.Host`` (as a search with HOST_DISCOVERY_FOLLOW returns it) as our own record."""
    cluster = host.cluster
    dc = cluster.data_center if cluster is not None else None
    hw = host.hardware_information
    cpu = host.cpu
    cpus = cpu_count(cpu)
    os_ = host.os
    os_text = None
    if os_ is not None:
        version = os_.version.full_version if os_.version is not None else None
        os_text = " ".join(p.strip() for p in (os_.type, version) if p and p.strip()) or None
    arch = None
    if cluster is not None and cluster.cpu is not None:
        arch = _enum(cluster.cpu.architecture)
    raw_nics = list(host.nics or ())
    names = {n.id: n.name for n in raw_nics if n.id and n.name}
    return Host(
        id=host.id,
        name=host.name or "",
        status=_enum(host.status) or "unknown",
        address=_text(host.address),
        cluster=cluster.name if cluster is not None else None,
        cluster_id=cluster.id if cluster is not None else None,
        datacenter=dc.name if dc is not None else None,
        datacenter_id=dc.id if dc is not None else None,
        manufacturer=_text(hw.manufacturer) if hw is not None else None,
        product=_text(hw.product_name) if hw is not None else None,
        system_uuid=_text(hw.uuid) if hw is not None else None,
        cpu_model=_text(cpu.name) if cpu is not None else None,
        cpus=cpus,
        memory_bytes=int(host.memory) if host.memory is not None else None,
        os=os_text,
        kernel=kernel_of_cmdline(os_.reported_kernel_cmdline) if os_ is not None else None,
        architecture=arch,
        nics=tuple(_nic(n, names) for n in raw_nics if n.name),
        affinity_labels=affinity_label_names(host.affinity_labels),
    )


__all__ = ["HOST_DISCOVERY_FOLLOW", "host_follow", "host_record"]
