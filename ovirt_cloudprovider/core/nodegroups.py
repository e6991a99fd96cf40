"""The autoscaler's node groups, decided purely: ownership marks, VM names, target sizes, what to start, tag and
delete, and what a new node of a group will look like. No I/O.

- **Ownership**: a VM belongs to node group ``NAME`` when its description is the signed mark
  ``ovirt-cloudprovider-nodegroup:NAME:<MAC>`` (:func:`signed_mark`), written when the VM is created, so the
  engine keeps it: a restarted service or a second replica finds the same groups, and a VM created just before a
  crash is found too. The MAC is HMAC-SHA256 under the autoscaler's mark key (``[autoscaler] mark_key_file``) over
  the group and the VM's name: whoever may edit a VM's description but does not hold the key cannot write a mark
  that verifies, nor move one to a VM of another name. And the VM must also be where the group puts its VMs
  (:func:`ownership_problem`): in the group's cluster, made from the group's template (``template`` or
  ``original_template``, any version of it), named ``<name_prefix>-<slot>``. A VM that fails any of these is in no
  group and never touched (not counted, mapped, started, tagged or removed). One search (:data:`MARK_SEARCH`)
  finds the VMs of every group at once. A VM whose mark names a group that is not configured belongs to no group.
- **Target size** of a group = its VMs in the engine, whatever their status (a VM being created counts, so a
  retried or repeated increase never creates more than asked).
- **Names**: ``<name_prefix>-<slot>``, the slot a number from 0 to ``max_size`` - 1 (:func:`slot_name`,
  :func:`free_slots`): the engine refuses a second VM of the same name (409), so two replicas (or a retry after a
  lost answer) never create more than ``max_size`` VMs: the loser of a race for a slot looks the name up and counts
  the winner's VM instead of creating another.
- **Scale up** (:func:`increase_problem`): a positive delta that keeps the group at or below ``max_size``.
- **Scale down** (:func:`deletion`): every requested node must be a VM of this group (by providerID) that no
  other request is removing, the group must stay at or above ``min_size`` counting the VMs other requests are
  removing as gone; otherwise the whole request is refused and nothing is removed.
- **Repairs** a refresh makes: a ``down`` VM of a group is started (:func:`to_start`: a restart between the
  create and the start, or a VM stopped by hand), a VM missing one of the group's tags gets it
  (:func:`missing_tags`).
- **Template node** (:func:`template_node`): the capacity of the template (or the group's ``cpus``/``memory``)
  and the labels the node controller will set (zone, region, cluster, data center, instance type, arch, os,
  ``[nodes] extra_labels``), computed by :mod:`.desired` from a VM as the group would create it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from . import providerid
from .desired import node_labels
from .naming import kube_arch
from .records import LABEL_HOSTNAME, VirtualMachine
from .settings import NodeGroupConfig, NodesConfig

MARK_PREFIX = "ovirt-cloudprovider-nodegroup:"
# The one engine search that finds the VMs of every node group (the description field, a trailing wildcard).
MARK_SEARCH = f"description={MARK_PREFIX}*"
# The shortest mark key accepted (bytes): 256 bits, as HMAC-SHA256's output.
MARK_KEY_MIN_BYTES = 32
_MAC_CONTEXT = b"ovirt-cloudprovider nodegroup mark v1"

# InstanceStatus.InstanceState of the externalgrpc protocol.
INSTANCE_RUNNING, INSTANCE_CREATING, INSTANCE_DELETING = 1, 2, 3
# VM statuses of a VM that has not come up yet since its creation or start.
_CREATING_STATUSES = frozenset({"image_locked", "down", "powering_up", "wait_for_launch"})
_DELETING_STATUSES = frozenset({"powering_down"})
# What a kubelet reserves by default is not known here: the template node's allocatable equals its capacity, as
# the cluster-autoscaler's own providers do for a node group without a running node.
DEFAULT_MAX_PODS = 110
_MIB = 1024**2


@dataclass(frozen=True, slots=True)
class GroupVm:
    """One VM of a node group as the group search found it."""

    id: str
    name: str
    status: str  # an ovirtsdk4.types.VmStatus value
    group: str  # the group its mark names ("" when its description is no mark)
    tags: tuple[str, ...] = ()
    mac: str = ""  # the MAC of its mark ("" when none)
    cluster_id: str = ""  # the engine's cluster of the VM
    template_ids: tuple[str, ...] = ()  # its template and original template, as the engine reports them

    @property
    def provider_id(self) -> str:
        return providerid.build(self.id)


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What the engine says about a group's template and cluster: the hardware a new VM gets, where it runs."""

    id: str
    name: str
    cpus: int | None
    memory_bytes: int | None
    architecture: str | None  # the cluster's CPU architecture (x86_64, ppc64, aarch64...)
    os_type: str | None  # the template's OS type (rhel_9x64, other_linux...)
    cluster: str
    datacenter: str | None
    cluster_id: str = ""  # the group's cluster's id
    template_ids: tuple[str, ...] = ()  # every version of the group's template (what a group VM's template is)


@dataclass(frozen=True, slots=True)
class TemplateNode:
    """A new node of a group, as the cluster-autoscaler simulates it (a v1.Node, trimmed)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    capacity: tuple[tuple[str, str], ...]  # resource name -> quantity (cpu, memory, pods)
    architecture: str
    operating_system: str


@dataclass(frozen=True, slots=True)
class Deletion:
    """The VMs a NodeGroupDeleteNodes request removes, or why the whole request is refused."""

    vms: tuple[GroupVm, ...] = ()
    problem: str | None = None


def mark(group: str) -> str:
    """The public part of the mark of every VM of ``group`` (``ovirt-cloudprovider-nodegroup:NAME``)."""
    return MARK_PREFIX + group


def mark_mac(key: bytes, group: str, name: str) -> str:
    """HMAC-SHA256 under ``key`` over ``group`` and the VM name ``name`` (hex)."""
    message = b"\0".join((_MAC_CONTEXT, group.encode("utf-8"), name.encode("utf-8")))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_mark(key: bytes, group: str, name: str) -> str:
    """The description of the VM ``name`` of ``group``: ``ovirt-cloudprovider-nodegroup:GROUP:MAC``."""
    return f"{mark(group)}:{mark_mac(key, group, name)}"


def parse_mark(description: str | None) -> tuple[str, str] | None:
    """(group, MAC) of a description that has the shape of a mark (the MAC "" when it has none), or None."""
    text = description or ""
    if not text.startswith(MARK_PREFIX):
        return None
    group, _, mac = text[len(MARK_PREFIX):].partition(":")
    if not group or group != group.strip() or " " in group:
        return None
    return group, mac


def group_of(description: str | None) -> str | None:
    """The group a VM's description claims it for (verified by :func:`ownership_problem`, not here), or None."""
    parsed = parse_mark(description)
    return parsed[0] if parsed is not None else None


def slot_name(group: NodeGroupConfig, slot: int) -> str:
    """``<name_prefix>-<slot>``: the name of the VM of ``group`` in ``slot`` (and of its node)."""
    return f"{group.prefix}-{slot}"


def vm_name(group: NodeGroupConfig, suffix: str) -> str:
    """``<name_prefix>-<suffix>``."""
    return f"{group.prefix}-{suffix}"


def slot_of(group: NodeGroupConfig, name: str) -> int | None:
    """The slot of the VM name ``name`` in ``group`` (``<name_prefix>-<n>``, n without leading zeros), or None."""
    head = group.prefix + "-"
    if not name.startswith(head):
        return None
    rest = name[len(head):]
    if not rest.isascii() or not rest.isdigit() or (len(rest) > 1 and rest[0] == "0") or len(rest) > 6:
        return None
    return int(rest)


def free_slots(group: NodeGroupConfig, taken_names: Iterable[str]) -> list[int]:
    """The slots 0 .. ``max_size`` - 1 whose names are not in ``taken_names``, lowest first."""
    taken = {s for s in (slot_of(group, n) for n in taken_names) if s is not None}
    return [s for s in range(group.max_size) if s not in taken]


def ownership_problem(group: NodeGroupConfig, vm: GroupVm, key: bytes, place: TemplateInfo) -> str | None:
    """Why ``vm`` is not a VM of ``group`` (its mark does not verify under ``key``, or it is not in the group's
    cluster, not made from its template, not named ``<name_prefix>-<slot>``), or None when it is."""
    if vm.group != group.name:
        return f"its mark names {vm.group or 'no group'}"
    if not vm.mac or not hmac.compare_digest(vm.mac, mark_mac(key, group.name, vm.name)):
        return "its mark does not verify (not written by this autoscaler's mark key for this VM name)"
    if slot_of(group, vm.name) is None:
        return f"its name is not {group.prefix}-<number>"
    if not place.cluster_id or vm.cluster_id != place.cluster_id:
        return f"it is not in the cluster {group.cluster}"
    if not set(vm.template_ids) & set(place.template_ids):
        return f"it was not made from the template {group.template}"
    return None


@dataclass(frozen=True, slots=True)
class Membership:
    """The VMs of each configured group, and the VMs that claim a configured group but are not its (with why)."""

    groups: dict[str, tuple[GroupVm, ...]]
    unverified: tuple[tuple[GroupVm, str], ...] = ()


def members(groups: Sequence[NodeGroupConfig], vms: Iterable[GroupVm], key: bytes,
            places: Mapping[str, TemplateInfo]) -> Membership:
    """The VMs of each configured group (sorted by name) whose ownership verifies (:func:`ownership_problem`; a
    group without a place in ``places`` has none); a VM marked for an unknown group is in none, and is not listed
    as unverified either (another autoscaler's)."""
    by_name = {g.name: g for g in groups}
    out: dict[str, list[GroupVm]] = {g.name: [] for g in groups}
    unverified: list[tuple[GroupVm, str]] = []
    seen: set[str] = set()
    for vm in vms:
        vm_key = providerid.normalize_vm_id(vm.id)
        group = by_name.get(vm.group)
        if group is None or vm_key in seen:
            continue
        seen.add(vm_key)
        place = places.get(group.name)
        problem = ownership_problem(group, vm, key, place) if place is not None else "its group's template is unknown"
        if problem is None:
            out[group.name].append(vm)
        else:
            unverified.append((vm, problem))
    return Membership({name: tuple(sorted(found, key=lambda v: (v.name, v.id))) for name, found in out.items()},
                      tuple(unverified))


def increase_problem(group: NodeGroupConfig, current: int, delta: int) -> str | None:
    """Why ``delta`` more VMs cannot be created in ``group`` holding ``current`` VMs, or None."""
    if delta <= 0:
        return f"node group {group.name}: the size increase must be positive, got {delta}"
    if current + delta > group.max_size:
        return (f"node group {group.name}: {current} VMs + {delta} would exceed max_size {group.max_size}")
    return None


def deletion(group: NodeGroupConfig, vms: Sequence[GroupVm], provider_ids: Sequence[str],
             removing: Collection[str] = ()) -> Deletion:
    """The VMs of ``group`` (holding ``vms``) the nodes ``provider_ids`` name; refused as a whole when one of
    them is no VM of this group, or is being removed by another request (VM ids in ``removing``), or when the
    group would go below ``min_size``: the VMs other requests are removing count as gone already, so parallel
    requests (the cluster-autoscaler sends one per node) never take the group below ``min_size`` together."""
    busy = {providerid.normalize_vm_id(i) for i in removing}
    by_id = {providerid.normalize_vm_id(vm.id): vm for vm in vms}
    chosen: dict[str, GroupVm] = {}
    for pid in provider_ids:
        vm_id = providerid.vm_id_of(pid)
        vm = by_id.get(vm_id) if vm_id is not None else None
        if vm is None:
            return Deletion(problem=f"node group {group.name}: node {pid or '(no providerID)'} is not a VM of "
                                    "this node group; nothing was removed")
        if vm_id in busy:
            return Deletion(problem=f"node group {group.name}: VM {vm.name} ({vm.id}) is already being removed "
                                    "by another request; nothing else was removed")
        chosen[providerid.normalize_vm_id(vm.id)] = vm
    staying = len([k for k in by_id if k not in busy])
    if staying - len(chosen) < group.min_size:
        pending = f" ({len(by_id) - staying} more being removed)" if staying < len(by_id) else ""
        return Deletion(problem=f"node group {group.name}: removing {len(chosen)} of its {staying} VMs{pending} "
                                f"would go below min_size {group.min_size}; nothing was removed")
    return Deletion(vms=tuple(chosen.values()))


def instance_state(status: str) -> int:
    """The externalgrpc InstanceState of a group VM in ``status``."""
    status = status.strip().lower()
    if status in _CREATING_STATUSES:
        return INSTANCE_CREATING
    if status in _DELETING_STATUSES:
        return INSTANCE_DELETING
    return INSTANCE_RUNNING


def to_start(vms: Iterable[GroupVm]) -> tuple[GroupVm, ...]:
    """The group VMs a refresh starts: those that are ``down``."""
    return tuple(vm for vm in vms if vm.status.strip().lower() == "down")


def missing_tags(group: NodeGroupConfig, vm: GroupVm) -> tuple[str, ...]:
    """The group's tags ``vm`` does not carry (in the group's order)."""
    have = set(vm.tags)
    return tuple(t for t in group.tags if t not in have)


def template_node(group: NodeGroupConfig, template: TemplateInfo, nodes: NodesConfig) -> TemplateNode:
    """A new node of ``group`` as the node controller will make it: the labels computed by :mod:`.desired` for a
    VM of the group's cluster with the template's (or the group's) size, architecture and OS type."""
    cpus = group.cpus or template.cpus
    memory = group.memory * _MIB if group.memory else template.memory_bytes
    name = vm_name(group, "template")
    vm = VirtualMachine(id="00000000-0000-0000-0000-000000000000", name=name, status="up",
                        cluster=template.cluster, datacenter=template.datacenter, cpus=cpus, memory_bytes=memory,
                        os_type=template.os_type or "other_linux", architecture=template.architecture)
    labels = dict(node_labels(vm, nodes))
    labels[LABEL_HOSTNAME] = name
    capacity: dict[str, str] = {"pods": str(DEFAULT_MAX_PODS)}
    if cpus:
        capacity["cpu"] = str(cpus)
    if memory:
        capacity["memory"] = f"{memory // 1024}Ki"
    return TemplateNode(name=name, labels=tuple(sorted(labels.items())), capacity=tuple(sorted(capacity.items())),
                        architecture=kube_arch(template.architecture) or "amd64",
                        operating_system=labels.get("kubernetes.io/os", "linux"))


def snapshot_by_provider_id(groups: Mapping[str, Sequence[GroupVm]]) -> dict[str, str]:
    """providerID (normalised VM id) → group name, for NodeGroupForNode answered from memory."""
    return {providerid.normalize_vm_id(vm.id): name for name, vms in groups.items() for vm in vms}


__all__ = [
    "DEFAULT_MAX_PODS",
    "INSTANCE_CREATING",
    "INSTANCE_DELETING",
    "INSTANCE_RUNNING",
    "MARK_KEY_MIN_BYTES",
    "MARK_PREFIX",
    "MARK_SEARCH",
    "Deletion",
    "GroupVm",
    "Membership",
    "TemplateInfo",
    "TemplateNode",
    "deletion",
    "free_slots",
    "group_of",
    "increase_problem",
    "instance_state",
    "mark",
    "mark_mac",
    "members",
    "missing_tags",
    "ownership_problem",
    "parse_mark",
    "signed_mark",
    "slot_name",
    "slot_of",
    "snapshot_by_provider_id",
    "template_node",
    "to_start",
    "vm_name",
]
