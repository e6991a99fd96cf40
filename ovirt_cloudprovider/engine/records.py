"""SDK objects → our records: ``ovirtsdk4.types.Vm`` → :class:`~ovirt_cloudprovider.model.VirtualMachine`.

Pure functions over the SDK's objects (duck-typed, so no ``ovirtsdk4`` import). :func:`vm_record` expects a VM
as a search or GET with :data:`DISCOVERY_FOLLOW` returns it: links that were not followed (only an id) give ids
without names; absent data gives None. The FQDN, guest OS, kernel, architecture and NICs (with their IPs) come
from the guest agent; a VM whose agent reports nothing has ``guest_agent`` False.
"""

from __future__ import annotations

from typing import Any

from ..core.records import GuestNic, VirtualMachine

# What one discovery search inlines per VM: guest-reported NICs, tags, cluster + data center, host and
# instance type (their names), so that a whole fleet costs ceil((N + 1) / page_size) requests.
DISCOVERY_FOLLOW = "reported_devices,tags,cluster.data_center,host,instance_type"
# ... and the VM's affinity labels, with [nodes] affinity_labels
AFFINITY_FOLLOW = "affinity_labels"


def discovery_follow(affinity_labels: bool) -> str:
    """The ``follow`` of a VM search or GET read by :func:`vm_record`."""
    return f"{DISCOVERY_FOLLOW},{AFFINITY_FOLLOW}" if affinity_labels else DISCOVERY_FOLLOW


def affinity_label_names(labels: Any) -> tuple[str, ...]:
    """The names of an SDK list of ``AffinityLabel`` (sorted, each once)."""
    return tuple(sorted({label.name for label in (labels or ()) if label is not None and label.name}))


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def event_index(event: Any) -> int:
    """The index of an ``ovirtsdk4.types.Event`` (its id when the index is absent; 0 when neither is a number)."""
    if getattr(event, "index", None) is not None:
        return int(event.index)
    try:
        return int(event.id)
    except (TypeError, ValueError):
        return 0


def _guest_nic(device: Any) -> GuestNic | None:
    if not device.name or _enum(device.type) not in (None, "network"):
        return None
    mac = device.mac.address.lower() if device.mac is not None and device.mac.address else None
    ips = tuple(ip.address for ip in (device.ips or ()) if ip is not None and ip.address)
    return GuestNic(name=device.name, mac=mac, ips=ips)


def cpu_count(cpu: Any) -> int | None:
    """sockets x cores x threads of an SDK ``Cpu`` (a missing factor counts 1), or None without a topology."""
    topology = cpu.topology if cpu is not None else None
    if topology is None or all(x is None for x in (topology.sockets, topology.cores, topology.threads)):
        return None
    return int((topology.sockets or 1) * (topology.cores or 1) * (topology.threads or 1))


def vm_record(vm: Any) -> VirtualMachine:
    """An ``ovirtsdk4.types.Vm`` (as a search with DISCOVERY_FOLLOW returns it) as our own record.

    Links that were not followed (only an id) give ids without names; absent data gives None.
    """
    cluster = vm.cluster
    dc = cluster.data_center if cluster is not None else None
    host = vm.host
    cpu = vm.cpu
    cpus = cpu_count(cpu)
    gos = vm.guest_operating_system
    guest_os = kernel = architecture = None
    if gos is not None:
        version = gos.version.full_version if gos.version is not None else None
        guest_os = " ".join(p.strip() for p in (gos.distribution, version) if p and p.strip()) or None
        if gos.kernel is not None and gos.kernel.version is not None:
            kernel = gos.kernel.version.full_version or None
        architecture = (gos.architecture or "").strip() or None
    if architecture is None and cpu is not None:
        architecture = _enum(cpu.architecture)
    nics = tuple(n for n in (_guest_nic(d) for d in (vm.reported_devices or ())) if n is not None)
    tags = tuple(sorted({t.name for t in (vm.tags or ()) if t is not None and t.name}))
    fqdn = (vm.fqdn or "").strip() or None
    instance_type = vm.instance_type.name if vm.instance_type is not None else None
    placement = vm.placement_policy.affinity if vm.placement_policy is not None else None
    return VirtualMachine(
        id=vm.id,
        name=vm.name or "",
        status=_enum(vm.status) or "unknown",
        fqdn=fqdn,
        cluster=cluster.name if cluster is not None else None,
        cluster_id=cluster.id if cluster is not None else None,
        datacenter=dc.name if dc is not None else None,
        datacenter_id=dc.id if dc is not None else None,
        host=host.name if host is not None else None,
        host_id=host.id if host is not None else None,
        tags=tags,
        nics=nics,
        cpus=cpus,
        memory_bytes=int(vm.memory) if vm.memory is not None else None,
        os_type=(vm.os.type or None) if vm.os is not None else None,
        guest_os=guest_os,
        kernel=kernel,
        architecture=architecture,
        instance_type=instance_type,
        guest_agent=bool(nics or fqdn or gos is not None),
        affinity_labels=affinity_label_names(vm.affinity_labels),
        placement=_enum(placement),
    )


__all__ = ["AFFINITY_FOLLOW", "DISCOVERY_FOLLOW", "affinity_label_names", "discovery_follow", "event_index",
           "vm_record"]
