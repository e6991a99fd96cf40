"""Targeted planning: the plan for a few VMs or hosts, equal to the whole plan filtered to them (pure).

A targeted sweep (the controller's answer to engine status events) refreshes a few owners (VMs, hosts) of
the last complete discovery and applies the actions for their nodes, with deletion off. The contract: its
actions are exactly those of :func:`.plan.plan_sync` over the whole updated discovery and every observed node
(deletion off), kept when their owner (:func:`.providerid.owner_key` of ``owner_kind`` and ``vm_id``) is one
of the targets (:func:`targets_of`). :func:`plan_targeted` reaches that result at the cost of the targets:

- :class:`Fleet` is a complete discovery's Desired indexed by owner (each owner's NodeSpec or skip records,
  node names, FQDNs, hosts' SMBIOS uuids). :meth:`Fleet.updated` re-derives only the refreshed owners (through
  :func:`.desired.desired_nodes` / :func:`.hosts.desired_hosts` of that one owner) and returns None when
  that is not provably what the whole discovery would give: the owner's id is listed twice or in another
  spelling, it is one of several owners of a node name, its new node name is taken (or the fleet has
  duplicate names at all), or the engine answered with another id.
- The planner then sees only the targets' NodeSpecs and skip records, plus every NodeSpec that may weakly
  match (systemUUID, name, FQDN) a node without a providerID, and only the nodes that can matter: those
  without a providerID, those whose providerID names a target, and those named like a target's node. That
  is everything a target's actions depend on: a node without a providerID is ambiguous when two NodeSpecs
  match it and claimed when one does (all those NodeSpecs are in), a target's own nodes and the node its
  name would take are in; nothing another NodeSpec plans touches a target's nodes. The contested NodeSpecs
  (``Desired.contested``, duplicate names) and the nodes of their names are always in: the planner decides from
  that node which contender keeps the name, and a kept one may claim a node without a providerID. Observed nodes with a
  repeated name give None (the planner keeps one of them by uid; the whole plan is then the safe path), and
  so does a target that :meth:`Fleet.updated` could not re-derive.

The targets of a node that waits for initialization (a kubelet joining) are :meth:`Fleet.joining`: every owner
that may claim it, when its systemUUID names one of them; the controller plans them from the last complete
discovery when a burst of kubelets joins (core/schedule.py), the plan is then the whole plan over that discovery;
:func:`stale_for` names those whose record was too old to initialize their node (the controller refreshes them).

``Plan.managed_nodes`` and ``Plan.notes`` of a targeted plan concern only the nodes it looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from . import providerid
from .changes import REASON_NODE_IP_NOT_FOUND
from .desired import desired_nodes
from .hosts import desired_hosts
from .naming import SKIP_DUPLICATE_NAME, SKIP_INCONSISTENT, skip_code
from .plan import _fold, plan_sync
from .records import (
    KIND_HOST,
    KIND_VM,
    Action,
    ActionKind,
    Desired,
    Host,
    NodeSpec,
    ObservedNode,
    Plan,
    SkippedVM,
    Snapshot,
    VirtualMachine,
)
from .settings import ControllerConfig, NodesConfig

Entry = NodeSpec | tuple[SkippedVM, ...]


def owner_of(action: Action) -> str | None:
    """The owner key of the VM or host an action serves, None for an action of no owner."""
    return None if action.vm_id is None else providerid.owner_key(action.owner_kind, action.vm_id)


def targets_of(vm_ids: Iterable[str] = (), host_ids: Iterable[str] = ()) -> frozenset[str]:
    """The owner keys of VM ids and host ids."""
    return frozenset({providerid.owner_key(KIND_VM, i) for i in vm_ids}
                     | {providerid.owner_key(KIND_HOST, i) for i in host_ids})


def restrict(plan: Plan, targets: frozenset[str]) -> Plan:
    """``plan`` with only the actions whose owner is one of ``targets``."""
    return replace(plan, actions=tuple(a for a in plan.actions if owner_of(a) in targets))


def _spec_key(spec: NodeSpec) -> str:
    return providerid.owner_key(spec.kind, spec.vm_id)


@dataclass(frozen=True)
class Fleet:
    """A complete discovery (``snapshot``) and its Desired, indexed by owner key. Build with :func:`fleet_of`."""

    snapshot: Snapshot
    nodes: NodesConfig
    hosts_discovered: bool
    entries: Mapping[str, Entry]  # owner key → its NodeSpec, or its skip record(s)
    names: Mapping[str, str]  # node name → owner key of the NodeSpec of that name
    # folded FQDN → owner keys of NodeSpecs with it, sorted (a tuple: nearly always one key, and a frozenset of one
    # costs four times a tuple's memory, for every node of the fleet)
    fqdns: Mapping[str, tuple[str, ...]]
    host_uuids: Mapping[str, tuple[str, ...]]  # a host NodeSpec's SMBIOS uuid → owner keys, sorted
    unsafe: frozenset[str]  # owners that cannot be re-derived alone (listed twice, duplicate names, inconsistent)
    duplicate_names: bool  # some node name has several owners
    contested: tuple[NodeSpec, ...] = ()  # Desired.contested: every targeted plan sees them all (few)

    def updated(self, vms: Mapping[str, VirtualMachine | None] = {},
                hosts: Mapping[str, Host | None] = {}) -> Fleet | None:
        """This fleet with the refreshed records (by the id they were asked for; None: the engine no longer has
        it, its old record stays), or None when re-deriving only them is not provably exact (module docstring)."""
        changed_vms = {i: vm for i, vm in vms.items() if vm is not None}
        changed_hosts = {i: h for i, h in hosts.items() if h is not None}
        entries = dict(self.entries)
        names = dict(self.names)
        fqdns = dict(self.fqdns)
        host_uuids = dict(self.host_uuids)
        fresh: list[tuple[str, Entry | None]] = []
        for asked, vm in changed_vms.items():
            single = desired_nodes(Snapshot(vms=(vm,), query="", tags=self.snapshot.tags), self.nodes)
            fresh.append((providerid.owner_key(KIND_VM, asked), _entry_of(single)))
        for asked, host in changed_hosts.items():
            specs, skipped = desired_hosts((host,), self.nodes)
            fresh.append((providerid.owner_key(KIND_HOST, asked),
                          _entry_of(Desired(nodes=tuple(specs), skipped=tuple(skipped)))))
        for key, entry in fresh:
            old = entries.get(key)
            if entry is None:
                return None
            new_key = _spec_key(entry) if isinstance(entry, NodeSpec) else \
                providerid.owner_key(entry[0].kind, entry[0].vm_id)
            if old is None or key in self.unsafe or new_key != key:
                return None
            old_name = old.name if isinstance(old, NodeSpec) else None
            new_name = entry.name if isinstance(entry, NodeSpec) else None
            if new_name is not None and new_name != old_name and (self.duplicate_names or new_name in names):
                return None
            if isinstance(old, NodeSpec):
                names.pop(old.name, None)
                _discard(fqdns, _fold(old.fqdn), key)
                _discard(host_uuids, _host_uuid(old), key)
            entries[key] = entry
            if isinstance(entry, NodeSpec):
                names[entry.name] = key
                _add(fqdns, _fold(entry.fqdn), key)
                _add(host_uuids, _host_uuid(entry), key)
        snapshot = replace(
            self.snapshot,
            vms=tuple(changed_vms.get(vm.id) or vm for vm in self.snapshot.vms) if changed_vms else self.snapshot.vms,
            hosts=tuple(changed_hosts.get(h.id) or h for h in self.snapshot.hosts) if changed_hosts
            else self.snapshot.hosts)
        return replace(self, snapshot=snapshot, entries=entries, names=names, fqdns=fqdns, host_uuids=host_uuids)

    def claimants(self, node: ObservedNode) -> set[str]:
        """Owner keys of every NodeSpec that may weakly match ``node`` (a superset: the planner decides)."""
        found: set[str] = set()
        for form in providerid.uuid_forms(node.system_uuid) if node.system_uuid else ():
            if isinstance(self.entries.get(form), NodeSpec):
                found.add(form)  # a VM's machine uuid is its key
            found.update(self.host_uuids.get(form, ()))
        named = self.names.get(node.name)
        if named is not None:
            found.add(named)
        for key in {_fold(node.name), _fold(node.hostname)} - {""}:
            found.update(self.fqdns.get(key, ()))
        return found


    def joining(self, node: ObservedNode) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The VM ids and host ids (as this discovery spells them) of every owner that may claim ``node``, a node
        waiting for its cloud provider, when its systemUUID names one of them (a VM's id, a host's SMBIOS
        uuid): the targets of a targeted sweep that plans it. None when it names none (no systemUUID, or a
        machine this discovery does not have: only a new discovery can say), or when any owner of this
        discovery cannot be planned alone (:attr:`unsafe`) or any name is contested."""
        if node.provider_id:  # a kubelet's node carries none; one that does is matched by it: planned whole
            return None
        forms = providerid.uuid_forms(node.system_uuid) if node.system_uuid else ()
        if not any(isinstance(self.entries.get(f), NodeSpec) or f in self.host_uuids for f in forms):
            return None
        keys = self.claimants(node)
        # An unclaimed node's matching reads every spec that may weakly claim it, so a discovery with any owner
        # that cannot be planned alone (listed twice, inconsistent, duplicate names) or any contested name is
        # planned whole: which spec a weak match goes to is then not decidable from the claimants alone.
        if not keys or self.unsafe or self.contested:
            return None
        vm_ids: list[str] = []
        host_ids: list[str] = []
        for key in sorted(keys):
            entry = self.entries.get(key)
            if not isinstance(entry, NodeSpec):
                return None
            if entry.kind != KIND_HOST:
                vm_ids.append(entry.vm_id)
                continue
            spelled = [h.id for h in self.snapshot.hosts if providerid.owner_key(KIND_HOST, h.id) == key]
            if not spelled:
                return None
            host_ids.append(spelled[0])
        return tuple(vm_ids), tuple(host_ids)


def _entry_of(single: Desired) -> Entry | None:
    """The one owner's entry in the Desired of a discovery of that owner alone."""
    if len(single.nodes) + len(single.skipped) != 1:
        return None
    return single.nodes[0] if single.nodes else single.skipped


def _host_uuid(spec: NodeSpec) -> str:
    return (spec.node_info.system_uuid if spec.node_info else "") if spec.kind == KIND_HOST else ""


def _add(index: dict[str, tuple[str, ...]], value: str, key: str) -> None:
    if value:
        got = index.get(value, ())
        index[value] = got if key in got else tuple(sorted((*got, key)))


def _discard(index: dict[str, tuple[str, ...]], value: str, key: str) -> None:
    if value and value in index:
        rest = tuple(k for k in index[value] if k != key)
        if rest:
            index[value] = rest
        else:
            del index[value]


def fleet_of(snapshot: Snapshot, desired: Desired, nodes: NodesConfig) -> Fleet:
    """Index ``desired``, which must be ``desired_nodes(snapshot, nodes)``."""
    entries: dict[str, Entry] = {}
    names: dict[str, str] = {}
    fqdns: dict[str, tuple[str, ...]] = {}
    host_uuids: dict[str, tuple[str, ...]] = {}
    for spec in desired.nodes:
        key = _spec_key(spec)
        entries[key] = spec
        names[spec.name] = key
        _add(fqdns, _fold(spec.fqdn), key)
        _add(host_uuids, _host_uuid(spec), key)
    unsafe: set[str] = set()
    grouped: dict[str, list[SkippedVM]] = {}
    records = 0  # skip records of listed VMs and hosts: with the NodeSpecs, one per record listed unless one repeats
    for skipped in desired.skipped:
        key = providerid.owner_key(skipped.kind, skipped.vm_id)
        grouped.setdefault(key, []).append(skipped)
        code = skip_code(skipped)
        if code in (SKIP_DUPLICATE_NAME, SKIP_INCONSISTENT):
            unsafe.add(key)
        if code != SKIP_INCONSISTENT:
            records += 1
    for key, group in grouped.items():
        if key in entries or len(group) > 1:
            unsafe.add(key)
        entries.setdefault(key, tuple(group))
    duplicate_names = any(skip_code(s) == SKIP_DUPLICATE_NAME for s in desired.skipped)
    if records + len(desired.nodes) != len(snapshot.vms) + len(snapshot.hosts):
        # an id listed twice (in any spelling): desired.py kept its first record; those owners are not re-derived
        counts: dict[str, int] = {}
        for key in [providerid.owner_key(KIND_VM, vm.id) for vm in snapshot.vms] + \
                   [providerid.owner_key(KIND_HOST, h.id) for h in snapshot.hosts]:
            counts[key] = counts.get(key, 0) + 1
        unsafe |= {key for key, n in counts.items() if n > 1}
    return Fleet(snapshot=snapshot, nodes=nodes, hosts_discovered=desired.hosts_discovered, entries=entries,
                 names=names, fqdns=fqdns, host_uuids=host_uuids, unsafe=frozenset(unsafe),
                 duplicate_names=duplicate_names, contested=desired.contested)


def _hex_of(key: str) -> str:
    return key[len(providerid.HOST_KEY_PREFIX):].replace("-", "") if providerid.is_host_key(key) \
        else key.replace("-", "")


def _tail_hex(provider_id: str) -> str:
    """The last 32 characters of a providerID without dashes, its closing brace and trailing blanks: the hex
    digits of the UUID whenever the providerID names a VM or host (a cheap necessary condition)."""
    tail = provider_id.strip().lower()
    if tail.endswith("}"):
        tail = tail[:-1]
    return tail.replace("-", "")[-32:]


def relevant_nodes(fleet: Fleet, targets: frozenset[str],
                   observed: Sequence[ObservedNode]) -> tuple[list[ObservedNode], set[str]] | None:
    """The observed nodes a targeted plan needs, and the owner keys of the NodeSpecs that may claim one of
    them weakly; None when observed names repeat."""
    hexes = {_hex_of(k) for k in targets}
    target_names = {e.name for k in targets if isinstance(e := fleet.entries.get(k), NodeSpec)}
    target_names |= {spec.name for spec in fleet.contested}  # which contender keeps a name is read off its node
    seen: set[str] = set()
    nodes: list[ObservedNode] = []
    claimants: set[str] = set()
    for node in observed:
        if node.name in seen:
            return None
        seen.add(node.name)
        pid = node.provider_id
        if not pid:
            nodes.append(node)
            claimants |= fleet.claimants(node)
        elif node.name in target_names or (_tail_hex(pid) in hexes and providerid.owner_key_of(pid) in targets):
            nodes.append(node)
    return nodes, claimants


def stale_for(plan: Plan, vm_ids: Iterable[str]) -> tuple[str, ...]:
    """Of ``vm_ids`` (planned from the last discovery, not refreshed), those whose node ``plan`` could not
    initialize because the record does not report the kubelet's ``--node-ip`` (ProvidedNodeIPNotFound): a
    record older than the VM's addresses, worth refreshing."""
    keys = {providerid.owner_key(KIND_VM, i): i for i in vm_ids}
    return tuple(sorted({keys[k] for a in plan.actions if a.kind == ActionKind.SKIP
                         and a.reason == REASON_NODE_IP_NOT_FOUND and (k := owner_of(a)) in keys}))


def plan_targeted(fleet: Fleet, targets: frozenset[str], observed: Sequence[ObservedNode], *,
                  controller: ControllerConfig, now: float | None = None) -> Plan | None:
    """The actions of ``targets``' nodes (deletion off), equal to the whole plan's (module docstring); None
    when only the whole plan can say."""
    found = None if targets & fleet.unsafe else relevant_nodes(fleet, targets, observed)
    if found is None:
        return None
    nodes, claimants = found
    specs: dict[str, NodeSpec] = {}
    skipped: list[SkippedVM] = []
    for key in sorted(targets | claimants):
        entry = fleet.entries.get(key)
        if isinstance(entry, NodeSpec):
            specs[key] = entry
        elif entry is not None and key in targets:
            skipped.extend(entry)
    desired = Desired(nodes=tuple(specs.values()), skipped=tuple(skipped), hosts_discovered=fleet.hosts_discovered,
                      engine=fleet.snapshot.engine, contested=fleet.contested)
    plan = plan_sync(desired, nodes, nodes=replace(fleet.nodes, delete=False), controller=controller, now=now)
    return restrict(plan, targets)


__all__ = ["Fleet", "fleet_of", "owner_of", "plan_targeted", "relevant_nodes", "restrict", "stale_for", "targets_of"]
