"""oVirt hosts (hypervisors) → the Nodes they should be, as :class:`NodeSpec` with ``kind="host"``. Pure.

A :class:`Host` becomes the same NodeSpec the planner handles for VMs (``vm_id``/``vm_name`` hold the
host's id and name), so every planning rule applies to hosts unchanged; ownership is per kind
(:func:`~.providerid.owner_key`): a VM never matches or deletes a host's node, nor a host a VM's.

- providerID ``ovirt://host/<host-id>`` (:func:`~.providerid.build_host`); ``status.nodeInfo.systemUUID``
  is the host's SMBIOS uuid (``hardware_information.uuid``), which is what its kubelet reports.
- Name: ``[nodes] name_source`` as for VMs, the host's address (the FQDN the engine uses) being its FQDN:
  ``name`` (the host name), ``fqdn``, ``short-fqdn`` (an IP address as the address is no FQDN: skipped).
- Addresses: the host's NICs through the VM rules of :mod:`.addresses` (CIDRs, ``ignore_interfaces``,
  order); on top of them the NICs that never carry the node IP are dropped (:data:`HOST_IGNORED_NICS`:
  ``vnet*`` (VM taps), ``;vdsmdummy;``, and the slaves of a bond (the bond carries the address)). The
  management network (ovirtmgmt) is a bridge on the NIC the engine reports with the host's IP, so within
  each address group (InternalIP IPv4, IPv6, ExternalIP IPv4, IPv6) the addresses of bridged NICs come
  first: the management IP is the node's primary address, not a storage or VLAN address that happens to
  sort first. The host's address is its Hostname address when it is a DNS name. A NIC address that is no IP
  at all (a garbled answer) makes the addresses untrusted, as for VMs: the node's addresses are kept.
- Labels: zone and region as for VMs (``zone_source = host`` is the host's own name),
  ``node.kubernetes.io/instance-type`` the hardware product name (else the CPU model),
  ``ovirt.org/kind=host``, ``ovirt.org/{host,cluster,datacenter}``, ``kubernetes.io/arch`` from the cluster's
  CPU architecture, ``kubernetes.io/os=linux`` (an oVirt host runs vdsm on Linux), ``[nodes] extra_labels``.
- Status: ``up`` → running (a node may be registered, the shutdown and maintenance taints go);
  ``maintenance`` and ``preparing_for_maintenance`` → the maintenance taint ``ovirt.org/maintenance:NoSchedule``;
  ``down`` → the shutdown taint; every other status (``non_responsive``, ``connecting``, ``initializing``,
  ``installing``, ``unassigned``, ``error``, one we do not know) → exists, no change.
- Names: a host whose node name equals another host's or a VM's is skipped, and so is the other one
  (``duplicate-name``): a name is never guessed, and a VM and a host never share a node. A host and VM(s) that
  share a name are ``Desired.contested``: the planner keeps the one whose providerID that node already carries.
- Ids are compared canonically: a host listed twice with the same record counts once (a page shift's repeat); two
  different records of one id, in any spelling (a garbled search), make that id inconsistent (``inconsistent``):
  neither record is used, its node is left as it is, and the planner counts no absence in that sweep (as for VMs).
- One bad datum affects one host: whatever raises while one host's name or NodeSpec is derived skips that host
  (``unreadable``, as for VMs); the others go on.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections import defaultdict
from dataclasses import replace

from . import providerid
from .addresses import HOSTNAME, garbled_ips, hostname, node_addresses
from .metadata import affinity
from .naming import (
    SKIP_DUPLICATE_NAME,
    SKIP_INCONSISTENT,
    SKIP_INVALID_ID,
    SKIP_INVALID_NAME,
    SKIP_NO_FQDN,
    and_list,
    kube_arch,
    label_value,
    make_node_name,
    quote,
    safe_text,
    unreadable,
)
from .records import (
    HOST_MAINTENANCE_STATUSES,
    HOST_RUNNING_STATUSES,
    HOST_SHUTDOWN_STATUSES,
    KIND_HOST,
    LABEL_ARCH,
    LABEL_HOST_ID,
    LABEL_INSTANCE_TYPE,
    LABEL_OS,
    LABEL_OVIRT_CLUSTER,
    LABEL_OVIRT_DATACENTER,
    LABEL_OVIRT_HOST,
    LABEL_OVIRT_KIND,
    LABEL_REGION,
    LABEL_ZONE,
    Desired,
    GuestNic,
    Host,
    HostNic,
    NodeAddress,
    NodeInfo,
    NodeSpec,
    SkippedVM,
    VirtualMachine,
)
from .settings import NodesConfig

# Host interfaces that never carry the node's IP, whatever ``ignore_interfaces`` says.
HOST_IGNORED_NICS = ("vnet*", ";vdsmdummy;")
_VMLINUZ = re.compile(r"(?:^|\s)BOOT_IMAGE=\S*?vmlinuz-(\S+)")


def kernel_of_cmdline(cmdline: str | None) -> str | None:
    """The kernel release in a reported kernel command line (``BOOT_IMAGE=/vmlinuz-<release> ...``), or None."""
    match = _VMLINUZ.search(cmdline or "")
    return match.group(1) if match else None


def address_nics(host: Host) -> tuple[HostNic, ...]:
    """The host's NICs that may carry the node's addresses: without bond slaves, VM taps and vdsm's dummy."""
    slaves = {name for nic in host.nics for name in nic.bond_slaves}
    return tuple(nic for nic in host.nics
                 if nic.name not in slaves and not any(fnmatch.fnmatchcase(nic.name, p) for p in HOST_IGNORED_NICS))


def as_machine(host: Host) -> VirtualMachine:
    """The host in the shape the address and name rules read (its address as the FQDN, its usable NICs)."""
    return VirtualMachine(
        id=host.id, name=host.name, status=host.status, fqdn=host.address,
        nics=tuple(GuestNic(name=n.name, mac=n.mac, ips=n.ips) for n in address_nics(host)),
    )


def host_addresses(host: Host, nodes: NodesConfig) -> tuple[NodeAddress, ...]:
    """The Node addresses of ``host``: :func:`~.addresses.node_addresses` of its usable NICs, the bridged NICs'
    addresses first within each group (type, IP family), then the Hostname."""
    machine = as_machine(host)
    bridged = {n.name for n in address_nics(host) if n.bridged}
    first = node_addresses(replace(machine, fqdn=None, nics=tuple(n for n in machine.nics if n.name in bridged)),
                           nodes)
    rest = node_addresses(replace(machine, fqdn=None, nics=tuple(n for n in machine.nics if n.name not in bridged)),
                          nodes)
    out: list[NodeAddress] = []
    for group in ((t, v) for t in ("InternalIP", "ExternalIP") for v in (4, 6)):
        for address in (*first, *rest):
            if (address.type, ipaddress.ip_address(address.address).version) == group and address not in out:
                out.append(address)
    name = hostname(machine)
    return (*out, NodeAddress(HOSTNAME, name)) if name else tuple(out)


def host_node_name(host: Host, nodes: NodesConfig) -> tuple[str | None, str | None]:
    """The node name for ``host`` → ``(name, None)``, or ``(None, reason)`` with a coded reason."""
    if nodes.name_source == "name":
        name, problem = make_node_name(host.name)
        if problem:
            return None, f"{SKIP_INVALID_NAME}: host name {quote(host.name)} {problem}"
        return name, None
    fqdn = hostname(as_machine(host))
    if fqdn is None:
        got = f" (its address is {quote(host.address)})" if host.address else ""
        return None, f"{SKIP_NO_FQDN}: name_source is {nodes.name_source} but the host has no FQDN address{got}"
    return (fqdn.split(".", 1)[0] if nodes.name_source == "short-fqdn" else fqdn), None


def host_labels(host: Host, nodes: NodesConfig) -> tuple[tuple[str, str], ...]:
    """All labels for ``host``'s Node, sorted by key; invalid values omitted."""
    zone = {"cluster": host.cluster, "datacenter": host.datacenter, "host": host.name}.get(nodes.zone_source)
    region = {"datacenter": host.datacenter, "cluster": host.cluster}.get(nodes.region_source)
    candidates = {
        LABEL_ZONE: zone,
        LABEL_REGION: region,
        LABEL_INSTANCE_TYPE: host.product if label_value(host.product) else host.cpu_model,
        LABEL_OVIRT_KIND: KIND_HOST,
        LABEL_OVIRT_HOST: host.name,
        LABEL_OVIRT_CLUSTER: host.cluster,
        LABEL_OVIRT_DATACENTER: host.datacenter,
        LABEL_ARCH: kube_arch(host.architecture),
        LABEL_OS: "linux",
    }
    labels: dict[str, str] = {}
    for key, raw in candidates.items():
        value = label_value(raw)
        if value is not None:
            labels[key] = value
    if nodes.host_id_label and label_value(host.id) == host.id:
        labels[LABEL_HOST_ID] = host.id
    if nodes.affinity_labels:
        labels.update(affinity(host.affinity_labels)[0])
    for key, value in nodes.extra_labels:
        labels.setdefault(key, value)
    return tuple(sorted(labels.items()))


def host_label_notes(host: Host, nodes: NodesConfig) -> tuple[tuple[str, str], ...]:
    """Why some of the host's affinity labels are no node labels (:mod:`.metadata`)."""
    return tuple(affinity(host.affinity_labels)[1]) if nodes.affinity_labels else ()


def host_node_spec(host: Host, name: str, nodes: NodesConfig) -> NodeSpec:
    """The Node ``host`` should become under ``name``."""
    status = host.status.strip().lower()
    machine = as_machine(host)
    system_uuid = providerid.vm_uuid(host.system_uuid or "") or ""
    return NodeSpec(
        name=name,
        provider_id=providerid.build_host(host.id),
        vm_id=providerid.normalize_vm_id(host.id),
        vm_name=host.name,
        status=status,
        addresses=host_addresses(host, nodes),
        addresses_trusted=not garbled_ips(machine, nodes),
        labels=host_labels(host, nodes),
        shutdown=status in HOST_SHUTDOWN_STATUSES,
        running=status in HOST_RUNNING_STATUSES,
        fqdn=hostname(machine),
        cpus=host.cpus,
        memory_bytes=host.memory_bytes,
        node_info=NodeInfo(
            system_uuid=system_uuid,
            os_image=host.os or "",
            kernel_version=host.kernel or "",
            architecture=kube_arch(host.architecture) or "",
            operating_system="linux",
        ),
        kind=KIND_HOST,
        maintenance=status in HOST_MAINTENANCE_STATUSES,
        label_notes=host_label_notes(host, nodes),
    )


def _canonical(host_id: str) -> str:
    return providerid.vm_uuid(host_id) or providerid.normalize_vm_id(host_id)


def inconsistent_host_ids(hosts: tuple[Host, ...]) -> frozenset[str]:
    """The canonical ids of which ``hosts`` holds two different records (in any spelling of the id)."""
    first: dict[str, Host] = {}
    twins: set[str] = set()
    for host in hosts:
        try:
            key = _canonical(host.id)
        except Exception:  # an unreadable id is desired_hosts' to skip
            continue
        seen = first.setdefault(key, host)
        if seen is not host and seen != host:
            twins.add(key)
    return frozenset(twins)


def desired_hosts(hosts: tuple[Host, ...], nodes: NodesConfig) -> tuple[list[NodeSpec], list[SkippedVM]]:
    """A NodeSpec for every host with a usable, unique (among hosts) node name; a SkippedVM (kind host) for
    every other one. A host id listed twice counts once."""
    skipped: list[SkippedVM] = []
    by_name: dict[str, list[Host]] = defaultdict(list)
    seen: set[str] = set()
    for host in hosts:
        try:
            _name_host(host, nodes, seen, by_name, skipped)
        except Exception as exc:  # one host's unforeseen datum skips that host, never the sweep
            skipped.append(SkippedVM(safe_text(host.id), safe_text(host.name), unreadable("host", exc),
                                     kind=KIND_HOST))
    specs: list[NodeSpec] = []
    for name, group in by_name.items():
        if len(group) == 1:
            try:
                specs.append(host_node_spec(group[0], name, nodes))
            except Exception as exc:  # as above
                skipped.append(SkippedVM(group[0].id, group[0].name, unreadable("host", exc), kind=KIND_HOST))
            continue
        listed = and_list([f"{quote(h.name)} ({h.id})" for h in group])
        reason = f"{SKIP_DUPLICATE_NAME}: hosts {listed} map to the same node name {quote(name)}"
        skipped.extend(SkippedVM(h.id, h.name, reason, kind=KIND_HOST) for h in group)
    return specs, skipped


def _name_host(host: Host, nodes: NodesConfig, seen: set[str], by_name: dict[str, list[Host]],
               skipped: list[SkippedVM]) -> None:
    """File ``host`` under its node name in ``by_name``, or skip it (invalid id, no usable name); a repeated id
    counts once."""
    host_id = providerid.vm_uuid(host.id)
    if host_id is None:
        skipped.append(SkippedVM(host.id, host.name, f"{SKIP_INVALID_ID}: host id {quote(host.id)} is not a UUID",
                                 kind=KIND_HOST))
        return
    if host_id in seen:
        return
    seen.add(host_id)
    name, problem = host_node_name(host, nodes)
    if name is None:
        skipped.append(SkippedVM(host.id, host.name, problem or SKIP_INVALID_NAME, kind=KIND_HOST))
        return
    by_name[name].append(host)


def with_hosts(desired: Desired, hosts: tuple[Host, ...], nodes: NodesConfig) -> Desired:
    """``desired`` (the VMs' nodes) plus the hosts' nodes; a host and a VM (or several) that map to the same
    node name are all skipped (``duplicate-name``). ``hosts_discovered`` is set: host nodes are managed."""
    twins = inconsistent_host_ids(hosts)
    host_specs, host_skipped = desired_hosts(tuple(h for h in hosts if _canonical(h.id) not in twins), nodes)
    host_skipped += [SkippedVM(host_id, "", f"{SKIP_INCONSISTENT}: the engine answered with two different hosts of "
                                            f"id {quote(host_id)}; its node is left as it is until the answer is "
                                            "consistent", kind=KIND_HOST) for host_id in sorted(twins)]
    vm_names = {spec.name: spec for spec in (*desired.nodes, *desired.contested)}
    clash = {spec.name for spec in host_specs if spec.name in vm_names}
    vm_specs = [spec for spec in desired.nodes if spec.name not in clash]
    skipped = list(desired.skipped) + host_skipped
    contested = [*desired.contested]  # every NodeSpec of a shared name, for the planner (Desired.contested)
    for spec in [s for s in desired.nodes if s.name in clash] + [s for s in host_specs if s.name in clash]:
        vm, host = vm_names[spec.name], next(h for h in host_specs if h.name == spec.name)
        reason = (f"{SKIP_DUPLICATE_NAME}: VM {quote(vm.vm_name)} ({vm.vm_id}) and host {quote(host.vm_name)} "
                  f"({host.vm_id}) map to the same node name {quote(spec.name)}; rename one")
        skipped.append(SkippedVM(spec.vm_id, spec.vm_name, reason, kind=spec.kind))
        contested.append(spec)
    specs = vm_specs + [spec for spec in host_specs if spec.name not in clash]
    return Desired(
        nodes=tuple(sorted(specs, key=lambda spec: (spec.name, spec.kind))),
        skipped=tuple(sorted(skipped, key=lambda s: (s.vm_name, s.kind, s.vm_id))),
        hosts_discovered=True,
        inconsistent=desired.inconsistent or bool(twins),
        engine=desired.engine,
        contested=tuple(sorted(contested, key=lambda spec: (spec.name, spec.kind, spec.vm_id))),
    )


def what(kind: str) -> str:
    """``"VM"`` or ``"host"``, for messages."""
    return "host" if kind == KIND_HOST else "VM"


__all__ = ["HOST_IGNORED_NICS", "address_nics", "as_machine", "desired_hosts", "host_labels", "host_node_name",
           "host_node_spec", "kernel_of_cmdline", "what", "with_hosts"]
