"""A discovery :class:`Snapshot` → the Nodes the VMs should become (:class:`Desired`). Pure.

Node name (``[nodes] name_source``): the VM name (default), its FQDN, or the FQDN's first label, made a
valid node name as :mod:`.naming` says; when it cannot be, the VM is skipped, and so are all VMs whose names end
up equal (both are named in the reason): a name is never guessed. Their NodeSpecs go to ``Desired.contested``:
the planner, which sees the nodes, keeps the one whose providerID the node of that name already carries. A
skipped VM's ``reason`` starts with a stable short code (:mod:`.naming`). One bad datum affects one VM: a VM
whose name or NodeSpec derivation raises is skipped as ``unreadable``, the others go on.

Labels (sorted), each value made a valid label value (:func:`.naming.label_value`) or omitted:

- ``topology.kubernetes.io/zone``: ``zone_source`` (cluster by default; datacenter; host; none);
- ``topology.kubernetes.io/region``: ``region_source`` (data center by default; cluster; none);
- ``node.kubernetes.io/instance-type``: the VM's oVirt instance type name when it uses one, else
  computed from its size as ``<vCPUs>cpu-<memory>gib`` (``2cpu-4gib``), or ``<vCPUs>cpu-<memory>mib``
  when the memory is not a whole number of GiB (``1cpu-1536mib``); omitted when the size is unknown;
- ``ovirt.org/host``, ``ovirt.org/cluster``, ``ovirt.org/datacenter``: where the VM runs / belongs;
- ``ovirt.org/kind``: ``vm`` (a host's node says ``host``, core/hosts.py);
- ``kubernetes.io/arch``: the GOARCH name of the VM's architecture (:func:`.naming.kube_arch`);
- ``kubernetes.io/os``: windows or linux when the guest agent's OS name or the VM's OS type says so;
  omitted when unknown (OS type ``other``, no guest agent);
- oVirt's metadata (:mod:`.metadata`): ``ovirt.org/migratable`` from the placement policy, and when configured
  ``tags.ovirt.org/<key>`` from the tags under ``[nodes] tag_labels``, ``affinity.ovirt.org/<name>`` from its
  affinity labels and ``topology.scs.community/host-id``; what cannot be derived is a note on the NodeSpec
  (``label_notes``), never a skipped VM; while the tag tree lacks the ``[nodes] tag_labels`` parent, the
  NodeSpec keeps the node's ``tags.ovirt.org/`` labels as they are (``kept_label_prefixes``);
- ``[nodes] extra_labels`` (they never replace a computed label).

The filters' tags: when the discovery listed the tag tree, ``Desired.vm_filter_unknown_tags`` and
``host_filter_unknown_tags`` are the ``tag=`` names of ``[filters] vms`` and ``[filters] hosts`` that it does not
have (:func:`.vmfilter.unknown_tags`; :mod:`.absence` counts no absence of that kind while there are any).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

from . import providerid
from .addresses import garbled_ips, hostname, node_addresses
from .hosts import with_hosts
from .metadata import TagLabels, tag_labels, vm_metadata
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
    KIND_VM,
    LABEL_ARCH,
    LABEL_INSTANCE_TYPE,
    LABEL_OS,
    LABEL_OVIRT_CLUSTER,
    LABEL_OVIRT_DATACENTER,
    LABEL_OVIRT_HOST,
    LABEL_OVIRT_KIND,
    LABEL_REGION,
    LABEL_ZONE,
    RUNNING_STATUSES,
    SHUTDOWN_STATUSES,
    TAG_LABEL_PREFIX,
    Desired,
    NodeInfo,
    NodeSpec,
    SkippedVM,
    Snapshot,
    VirtualMachine,
)
from .settings import NodesConfig
from .vmfilter import unknown_tags

_GIB = 1024**3
_MIB = 1024**2
# Linux in a guest OS name ("CentOS Linux 7", "Fedora 39") or an oVirt OS type ("rhel_8x64", "sles_12").
_LINUX = re.compile(
    r"linux|red hat|\b(rhel|centos|fedora|ubuntu|debian|suse|sles|opensuse|rocky|alma|rhcos|coreos|flatcar|"
    r"alpine|gentoo|mageia|photon)")


def node_name(vm: VirtualMachine, nodes: NodesConfig) -> tuple[str | None, str | None]:
    """The node name for ``vm`` → ``(name, None)``, or ``(None, reason)`` with a coded reason."""
    if nodes.name_source == "name":
        name, problem = make_node_name(vm.name)
        if problem:
            return None, f"{SKIP_INVALID_NAME}: VM name {quote(vm.name)} {problem}"
        return name, None
    fqdn = hostname(vm)
    if fqdn is None:
        got = f" (it reports {quote(vm.fqdn)})" if vm.fqdn else ""
        return None, (f"{SKIP_NO_FQDN}: name_source is {nodes.name_source} but the guest agent reports no "
                      f"usable FQDN{got}")
    return (fqdn.split(".", 1)[0] if nodes.name_source == "short-fqdn" else fqdn), None


def instance_type(vm: VirtualMachine) -> str | None:
    """The oVirt instance type name, else ``<cpus>cpu-<N>gib`` (or ``-<N>mib``), else ``None``."""
    if vm.instance_type:
        return vm.instance_type
    if not vm.cpus or not vm.memory_bytes or vm.cpus < 1 or vm.memory_bytes < _MIB:
        return None
    if vm.memory_bytes % _GIB == 0:
        return f"{vm.cpus}cpu-{vm.memory_bytes // _GIB}gib"
    return f"{vm.cpus}cpu-{vm.memory_bytes // _MIB}mib"


def kube_os(vm: VirtualMachine) -> str | None:
    """``"windows"``, ``"linux"`` or ``None`` (unknown), from the guest agent's OS name first, then the
    VM's configured OS type."""
    for text in (vm.guest_os, vm.os_type):
        lowered = (text or "").lower()
        if "windows" in lowered:
            return "windows"
        if _LINUX.search(lowered):
            return "linux"
    return None


def node_labels(vm: VirtualMachine, nodes: NodesConfig,
                tags: TagLabels | None = None) -> tuple[tuple[str, str], ...]:
    """All labels for ``vm``'s Node, sorted by key; invalid values omitted (``tags``: the labels of the tags
    under ``[nodes] tag_labels``, :func:`.metadata.tag_labels`)."""
    return _labels(vm, nodes, tags)[0]


def _labels(vm: VirtualMachine, nodes: NodesConfig,
            tags: TagLabels | None) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    zone = {"cluster": vm.cluster, "datacenter": vm.datacenter, "host": vm.host}.get(nodes.zone_source)
    region = {"datacenter": vm.datacenter, "cluster": vm.cluster}.get(nodes.region_source)
    candidates = {
        LABEL_OVIRT_KIND: KIND_VM,  # as a host's node says ovirt.org/kind=host
        LABEL_ZONE: zone,
        LABEL_REGION: region,
        LABEL_INSTANCE_TYPE: instance_type(vm),
        LABEL_OVIRT_HOST: vm.host,
        LABEL_OVIRT_CLUSTER: vm.cluster,
        LABEL_OVIRT_DATACENTER: vm.datacenter,
        LABEL_ARCH: kube_arch(vm.architecture),
        LABEL_OS: kube_os(vm),
    }
    labels: dict[str, str] = {}
    for key, raw in candidates.items():
        value = label_value(raw)
        if value is not None:
            labels[key] = value
    metadata, notes = vm_metadata(vm, nodes, tags)
    labels.update(metadata)
    for key, value in nodes.extra_labels:
        labels.setdefault(key, value)
    return tuple(sorted(labels.items())), notes


class LabelSets:
    """Equal label sets, and equal ``(key, value)`` pairs, kept once across the NodeSpecs of one discovery.

    VMs of one cluster, host and instance type have equal label sets, and most pairs (``("kubernetes.io/os",
    "linux")``, the zone, the cluster) repeat on nearly every node: thousands of specs then hold one tuple each at
    most and a few hundred pairs, not a copy of every pair each. Sharing changes no value, only how many copies
    exist."""

    __slots__ = ("_pairs", "_sets")

    def __init__(self) -> None:
        self._sets: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def one(self, labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """``labels``, or the equal set seen before; its pairs are the ones seen before."""
        got = self._sets.get(labels)
        if got is None:
            pairs = self._pairs
            got = tuple([pairs.setdefault(pair, pair) for pair in labels])
            self._sets[got] = got
        return got


def node_spec(vm: VirtualMachine, name: str, nodes: NodesConfig, shared: LabelSets | None = None,
              tags: TagLabels | None = None) -> NodeSpec:
    """The Node ``vm`` should become under ``name`` (see :mod:`.providerid`).

    ``shared``: label sets and pairs seen before (:class:`LabelSets`)."""
    system_uuid = providerid.vm_uuid(vm.id) or providerid.normalize_vm_id(vm.id)
    status = vm.status.strip().lower()
    labels, notes = _labels(vm, nodes, tags)
    if shared is not None:
        labels = shared.one(labels)
    return NodeSpec(
        name=name,
        provider_id=providerid.build(vm.id),
        vm_id=vm.id,
        vm_name=vm.name,
        status=vm.status,
        addresses=node_addresses(vm, nodes),
        addresses_trusted=not garbled_ips(vm, nodes),
        labels=labels,
        shutdown=status in SHUTDOWN_STATUSES,
        running=status in RUNNING_STATUSES,
        fqdn=hostname(vm),
        cpus=vm.cpus,
        memory_bytes=vm.memory_bytes,
        node_info=NodeInfo(
            system_uuid=system_uuid,
            os_image=vm.guest_os or "",
            kernel_version=vm.kernel or "",
            architecture=kube_arch(vm.architecture) or "",
            operating_system=kube_os(vm) or "",
        ),
        label_notes=notes,
        # [nodes] tag_labels names a parent the tag tree lacks (or the tree was not listed): no tag label is known,
        # so the node's tags.ovirt.org/ labels stay as they are (core/metadata.py)
        kept_label_prefixes=(TAG_LABEL_PREFIX,) if nodes.tag_labels is not None and tags is None else (),
    )


def desired_nodes(snapshot: Snapshot, nodes: NodesConfig) -> Desired:
    """A NodeSpec for every VM in ``snapshot`` that has a usable, unique node name (sorted by name);
    a SkippedVM for every other one, and for every id the engine answered inconsistently (sorted by VM name,
    then id). Ids are compared canonically (:func:`.providerid.normalize_vm_id`): a VM listed twice with the
    same record counts once (a page shift's repeat); two different records of one id, in any spelling, make
    that id inconsistent, like the client's ``inconsistent_ids`` (and then the planner counts no absence in
    this sweep). When the snapshot searched hosts (``hosts_query`` not None), its hosts too (:mod:`.hosts`)."""
    first: dict[str, VirtualMachine] = {}  # canonical id -> the first record listed
    inconsistent = dict.fromkeys(providerid.normalize_vm_id(i) for i in snapshot.inconsistent_ids)
    keys = [providerid.vm_uuid(vm.id) for vm in snapshot.vms]  # canonical ids (None: not a UUID)
    for vm, key in zip(snapshot.vms, keys, strict=True):
        canonical = key or providerid.normalize_vm_id(vm.id)
        seen = first.setdefault(canonical, vm)
        if seen is not vm and seen != vm:
            inconsistent[canonical] = None
    # The engine answered with two different VMs of one id: we know the VM exists, not what it is. A skipped
    # VM is present (its node is not counted absent) and gets no writes.
    skipped: list[SkippedVM] = [
        SkippedVM(vm_id, "", f"{SKIP_INCONSISTENT}: the engine answered with two different VMs of id "
                             f"{quote(vm_id)}; its node is left as it is until the answer is consistent")
        for vm_id in inconsistent]
    by_name: dict[str, list[VirtualMachine]] = defaultdict(list)
    seen_ids: set[str] = set()
    for vm, system_uuid in zip(snapshot.vms, keys, strict=True):
        try:
            _name_vm(vm, system_uuid, nodes, inconsistent, seen_ids, by_name, skipped)
        except Exception as exc:  # one VM's unforeseen datum skips that VM, never the sweep
            skipped.append(SkippedVM(safe_text(vm.id), safe_text(vm.name), unreadable("VM", exc)))

    specs: list[NodeSpec] = []
    contested: list[NodeSpec] = []  # the NodeSpecs of the duplicate-name VMs, for the planner (Desired.contested)
    label_sets = LabelSets()
    tags = tag_labels(snapshot.tags, nodes.tag_labels)
    for name, vms in by_name.items():
        if len(vms) == 1:
            try:
                specs.append(node_spec(vms[0], name, nodes, label_sets, tags))
            except Exception as exc:  # as above: that VM is skipped, the others go on
                skipped.append(SkippedVM(vms[0].id, vms[0].name, unreadable("VM", exc)))
            continue
        listed = and_list([f"{quote(vm.name)} ({vm.id})" for vm in vms])
        reason = (f"{SKIP_DUPLICATE_NAME}: VMs {listed} map to the same node name {quote(name)}; rename "
                  "all but one")
        skipped.extend(SkippedVM(vm.id, vm.name, reason) for vm in vms)
        contested.extend(_contested(vms, name, nodes, label_sets, tags))
    desired = Desired(
        nodes=tuple(sorted(specs, key=lambda spec: spec.name)),
        skipped=tuple(sorted(skipped, key=lambda s: (s.vm_name, s.vm_id))),
        inconsistent=bool(inconsistent),
        engine=snapshot.engine,
        contested=tuple(sorted(contested, key=lambda spec: (spec.name, spec.vm_id))),
    )
    if snapshot.hosts_query is not None:  # [filters] hosts is set: the hosts' nodes too (core/hosts.py)
        desired = with_hosts(desired, snapshot.hosts, nodes)
    if snapshot.tags is None:  # the tag tree was not listed: nothing is known about the filters' tags
        return desired
    names = [t.name for t in snapshot.tags]
    return replace(desired, vm_filter_unknown_tags=unknown_tags(snapshot.query, names),
                   host_filter_unknown_tags=unknown_tags(snapshot.hosts_query or "", names))


def _contested(vms: list[VirtualMachine], name: str, nodes: NodesConfig,
               shared: LabelSets, tags: TagLabels | None) -> list[NodeSpec]:
    """The NodeSpecs of VMs that map to one node name (all skipped as duplicate-name); a VM whose NodeSpec raises
    has none, so it can never keep the name."""
    found: list[NodeSpec] = []
    for vm in vms:
        try:
            found.append(node_spec(vm, name, nodes, shared, tags))
        except Exception:  # it stays skipped as duplicate-name, which is what it is
            continue
    return found


def _name_vm(vm: VirtualMachine, system_uuid: str | None, nodes: NodesConfig, inconsistent: dict[str, None],
             seen_ids: set[str], by_name: dict[str, list[VirtualMachine]], skipped: list[SkippedVM]) -> None:
    """File ``vm`` under its node name in ``by_name``, or skip it (invalid id, no usable name); a repeated or
    inconsistent id is left out."""
    if system_uuid is None:
        if providerid.normalize_vm_id(vm.id) not in inconsistent:
            skipped.append(SkippedVM(vm.id, vm.name, f"{SKIP_INVALID_ID}: VM id {quote(vm.id)} is not a UUID"))
        return
    if system_uuid in seen_ids or system_uuid in inconsistent:
        return
    seen_ids.add(system_uuid)
    name, problem = node_name(vm, nodes)
    if name is None:
        skipped.append(SkippedVM(vm.id, vm.name, problem or SKIP_INVALID_NAME))
        return
    by_name[name].append(vm)
