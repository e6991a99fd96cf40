"""Small builders for planning tests: NodeSpecs, ObservedNodes, an in-memory applier, random fleets.

``apply_in_memory`` does to a list of ObservedNodes what ``kube/writer.py`` does to the cluster, so tests can
check that a plan, once applied, leaves nothing to do.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ovirt_cloudprovider.core.ownership import Owner
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ENGINE,
    ANNOTATION_OWNER,
    ANNOTATION_VM_ID,
    LABEL_ARCH,
    LABEL_HOSTNAME,
    LABEL_INSTANCE_TYPE,
    LABEL_MANAGED_BY,
    LABEL_OS,
    LABEL_OVIRT_CLUSTER,
    LABEL_OVIRT_DATACENTER,
    LABEL_OVIRT_HOST,
    LABEL_REGION,
    LABEL_ZONE,
    MANAGED_BY_VALUE,
    PROVIDER_PREFIX,
    RUNNING_STATUSES,
    SHUTDOWN_STATUSES,
    TAINT_SHUTDOWN,
    TAINT_UNINITIALIZED,
    Action,
    ActionKind,
    Desired,
    NodeAddress,
    NodeInfo,
    NodeSpec,
    ObservedNode,
    SkippedVM,
    Taint,
)
from ovirt_cloudprovider.core.settings import DEFAULT_INSTANCE, ControllerConfig, NodesConfig

# the owner of the planner's tests: the default instance, the engine of a Desired that names none
OWNER = Owner(DEFAULT_INSTANCE, "")
UNINITIALIZED = Taint(TAINT_UNINITIALIZED, "NoSchedule", "true")
SHUTDOWN = Taint(TAINT_SHUTDOWN, "NoSchedule")
NOT_READY = Taint("node.kubernetes.io/not-ready", "NoExecute")


def vm_id_for(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.vm.test"))


def ips(*values: str, hostname: str | None = None) -> tuple[NodeAddress, ...]:
    out = [NodeAddress("InternalIP", v) for v in values]
    if hostname:
        out.append(NodeAddress("Hostname", hostname))
    return tuple(out)


def make_spec(
    name: str,
    *,
    vm_id: str | None = None,
    status: str = "up",
    fqdn: str | None = None,
    host: str | None = "host1",
    cluster: str = "cluster1",
    datacenter: str = "dc1",
    addresses: tuple[NodeAddress, ...] | None = None,
    extra_labels: Iterable[tuple[str, str]] = (),
    vm_name: str | None = None,
) -> NodeSpec:
    """A NodeSpec as desired.py would build it (labels sorted; no host label for a VM that is down)."""
    vm_id = vm_id or vm_id_for(name)
    running = status in RUNNING_STATUSES
    labels = {
        LABEL_ZONE: cluster, LABEL_REGION: datacenter, LABEL_INSTANCE_TYPE: "2vcpu-4gib",
        LABEL_OVIRT_CLUSTER: cluster, LABEL_OVIRT_DATACENTER: datacenter, LABEL_ARCH: "amd64",
        **dict(extra_labels),
    }
    if host and running:
        labels[LABEL_OVIRT_HOST] = host
    if addresses is None:
        addresses = ips("10.0.0.1", hostname=fqdn)
    return NodeSpec(
        name=name, provider_id=f"{PROVIDER_PREFIX}{vm_id}", vm_id=vm_id, vm_name=vm_name or name,
        status=status, addresses=addresses, labels=tuple(sorted(labels.items())),
        shutdown=status in SHUTDOWN_STATUSES, running=running, fqdn=fqdn, cpus=2, memory_bytes=4 << 30,
        node_info=NodeInfo(system_uuid=vm_id, os_image="Fedora 39", kernel_version="6.5",
                           architecture="amd64"),
    )


def desired(*specs: NodeSpec, skipped: Iterable[SkippedVM] = ()) -> Desired:
    return Desired(nodes=tuple(specs), skipped=tuple(skipped))


def kubelet_node(
    name: str,
    *,
    provider_id: str | None = None,
    system_uuid: str | None = None,
    uninitialized: bool = True,
    taints: Iterable[Taint] = (),
    labels: Iterable[tuple[str, str]] = (),
    annotations: Iterable[tuple[str, str]] = (),
    addresses: tuple[NodeAddress, ...] = (),
    hostname: str | None = None,
    uid: str | None = None,
    resource_version: str = "7",
) -> ObservedNode:
    """A Node as a kubelet with --cloud-provider=external registers it."""
    base = {LABEL_HOSTNAME: hostname or name, LABEL_OS: "linux", LABEL_ARCH: "amd64", **dict(labels)}
    all_taints = ((UNINITIALIZED,) if uninitialized else ()) + tuple(taints)
    return ObservedNode(
        name=name, uid=uid or f"uid-{name}", resource_version=resource_version, provider_id=provider_id,
        system_uuid=system_uuid, labels=tuple(sorted(base.items())), annotations=tuple(sorted(annotations)),
        taints=all_taints, addresses=addresses, hostname=hostname or name,
    )


def synced_node(
    spec: NodeSpec, *, name: str | None = None, placeholder: bool = False, **changes: object,
) -> ObservedNode:
    """The node ``spec`` converges to (kubelet-registered and initialized, or our placeholder)."""
    labels = dict(spec.labels)
    if placeholder:
        labels[LABEL_MANAGED_BY] = MANAGED_BY_VALUE
    else:
        labels.update({LABEL_HOSTNAME: name or spec.name, LABEL_OS: "linux"})
    node = ObservedNode(
        name=name or spec.name, uid=f"uid-{name or spec.name}", resource_version="7",
        provider_id=spec.provider_id, system_uuid=spec.vm_id, labels=tuple(sorted(labels.items())),
        annotations=tuple(sorted(((ANNOTATION_VM_ID, spec.vm_id), *OWNER.annotations))),
        taints=(SHUTDOWN,) if spec.shutdown else (),
        addresses=spec.addresses, hostname=_hostname(spec.addresses, labels),
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def foreign_node(name: str, provider_id: str = "aws:///us-east-1a/i-0abc") -> ObservedNode:
    return kubelet_node(name, provider_id=provider_id, uninitialized=False, addresses=ips("172.16.0.9"))


def with_annotation(node: ObservedNode, key: str, value: str) -> ObservedNode:
    annotations = dict(node.annotations)
    annotations[key] = value
    return replace(node, annotations=tuple(sorted(annotations.items())))


def absent_counter(node: ObservedNode, count: int | str) -> ObservedNode:
    return with_annotation(node, ANNOTATION_ABSENT_SWEEPS, str(count))


# --- what kube/writer.py does, in memory ---------------------------------------------------------------

class ApplyError(AssertionError):
    """The plan asked for something the API server would refuse (conflict, not found, exists)."""


def _hostname(addresses: Iterable[NodeAddress], labels: dict[str, str]) -> str | None:
    for address in addresses:
        if address.type == "Hostname":
            return address.address
    return labels.get(LABEL_HOSTNAME)


def _merge(
    current: Iterable[tuple[str, str]], patch: Iterable[tuple[str, str | None]] | None,
) -> tuple[tuple[str, str], ...]:
    merged = dict(current)
    for key, value in patch or ():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return tuple(sorted(merged.items()))


def apply_in_memory(observed: Sequence[ObservedNode], actions: Iterable[Action]) -> tuple[ObservedNode, ...]:
    """Apply the writing actions in order, as kube/writer.py does against the API server.

    REGISTER creates the node from the action (providerID, labels, annotations, taints, addresses)
    and its spec (systemUUID); patches merge labels/annotations (None removes), replace the taint list and
    the addresses, set an empty providerID; DELETE honours uid + resourceVersion preconditions. Taint-list
    writes are checked against the planned resourceVersion (optimistic locking), every other write against
    the uid. Anything the API server would refuse raises ApplyError.
    """
    nodes = {n.name: n for n in observed}
    for action in actions:
        if not action.writes:
            continue
        if action.kind == ActionKind.REGISTER:
            if action.node in nodes:
                raise ApplyError(f"409 AlreadyExists: {action.node}")
            spec = action.spec
            assert spec is not None and action.labels is not None and action.provider_id
            labels = _merge((), action.labels)
            addresses = action.addresses or ()
            nodes[action.node] = ObservedNode(
                name=action.node, uid=f"uid-{action.node}-registered", resource_version="1",
                provider_id=action.provider_id,
                system_uuid=spec.node_info.system_uuid if spec.node_info else spec.vm_id,
                labels=labels, annotations=_merge((), action.annotations), taints=action.taints or (),
                addresses=addresses, hostname=_hostname(addresses, dict(labels)),
            )
            continue
        node = nodes.get(action.node)
        if node is None or node.uid != action.uid:
            raise ApplyError(f"404/uid precondition: {action.node}")
        if action.kind == ActionKind.DELETE:
            if node.resource_version != action.resource_version:
                raise ApplyError(f"409 resourceVersion precondition on delete: {action.node}")
            del nodes[action.node]
            continue
        if action.taints is not None and node.resource_version != action.resource_version:
            raise ApplyError(f"409 taint write planned against an older resourceVersion: {action.node}")
        if action.provider_id is not None and node.provider_id:
            raise ApplyError(f"422 providerID is immutable once set: {action.node}")
        labels = _merge(node.labels, action.labels)
        addresses = action.addresses if action.addresses is not None else node.addresses
        nodes[action.node] = replace(
            node,
            resource_version=str(int(node.resource_version) + 1),
            provider_id=action.provider_id or node.provider_id,
            labels=labels,
            annotations=_merge(node.annotations, action.annotations),
            taints=action.taints if action.taints is not None else node.taints,
            addresses=addresses,
            hostname=_hostname(addresses, dict(labels)),
        )
    return tuple(sorted(nodes.values(), key=lambda n: n.name))


# --- random fleets ---------------------------------------------------------------------------------------

STATUSES = ("up", "up", "up", "down", "suspended", "unknown", "not_responding", "image_locked", "migrating",
            "paused", "powering_up", "wait_for_launch")


@dataclass(frozen=True)
class World:
    desired: Desired
    observed: tuple[ObservedNode, ...]
    nodes: NodesConfig
    controller: ControllerConfig
    foreign_uids: frozenset[str]  # nodes with a foreign providerID or of another instance: never in any action
    stray_uids: frozenset[str]  # nodes without a providerID that match no VM: never in any action


def _rand_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _drift(rng: random.Random, node: ObservedNode) -> ObservedNode:
    """Random differences a real cluster accumulates: stale labels, addresses, taints, user labels."""
    labels = dict(node.labels)
    if rng.random() < 0.3:
        labels[LABEL_OVIRT_HOST] = rng.choice(["host1", "host2", "old-host"])
    if rng.random() < 0.2:
        labels.pop(LABEL_ZONE, None)
    if rng.random() < 0.2:
        labels["team"] = "payments"  # a user's label: never ours to change
    if rng.random() < 0.1:
        labels[LABEL_ARCH] = "arm64"  # the kubelet's word wins
    taints = list(node.taints)
    if rng.random() < 0.3:
        taints = [t for t in taints if t != SHUTDOWN] if SHUTDOWN in taints else [*taints, SHUTDOWN]
    if rng.random() < 0.2:
        taints.insert(0, NOT_READY)
    addresses = node.addresses
    if rng.random() < 0.3:
        addresses = rng.choice([(), ips("10.9.9.9"), tuple(reversed(node.addresses)), ips("10.0.0.1")])
    annotations = dict(node.annotations)
    if rng.random() < 0.2:
        annotations.pop(ANNOTATION_VM_ID, None)
    if rng.random() < 0.2:
        annotations[ANNOTATION_ABSENT_SWEEPS] = rng.choice(["1", "2", "junk"])
    if rng.random() < 0.2:  # a node of a release before owners were recorded: the default instance adopts it
        annotations.pop(ANNOTATION_OWNER, None)
        annotations.pop(ANNOTATION_ENGINE, None)
    return replace(node, labels=tuple(sorted(labels.items())), taints=tuple(taints), addresses=addresses,
                   annotations=tuple(sorted(annotations.items())), hostname=_hostname(addresses, labels))


# complexity: a generator: one branch per kind of random drift
def random_world(rng: random.Random) -> World:  # noqa: C901
    specs: list[NodeSpec] = []
    skipped: list[SkippedVM] = []
    observed: list[ObservedNode] = []
    foreign: set[str] = set()
    stray: set[str] = set()
    for i in range(rng.randint(0, 10)):
        name = f"vm{i}"
        vm_id = _rand_uuid(rng)
        status = rng.choice(STATUSES)
        fqdn = rng.choice([None, f"{name}.example.com"])
        addresses = rng.choice([
            ips(f"10.0.0.{i + 1}", hostname=fqdn), ips(f"10.0.0.{i + 1}", f"10.0.1.{i + 1}"),
            ips(hostname=fqdn), (),
        ])
        spec = make_spec(name, vm_id=vm_id, status=status, fqdn=fqdn, host=rng.choice(["host1", "host2"]),
                         addresses=addresses)
        if rng.random() < 0.1:
            skipped.append(SkippedVM(vm_id=vm_id, vm_name=name.upper() + "_", reason="invalid node name"))
        else:
            specs.append(spec)
        shape = rng.choice(["none", "none", "synced", "placeholder", "uninit-name", "uninit-uuid",
                            "uninit-fqdn", "uninit-pid", "both", "legacy", "foreign-name"])
        if shape == "synced":
            observed.append(_drift(rng, synced_node(spec)))
        elif shape == "placeholder":
            observed.append(_drift(rng, synced_node(spec, placeholder=True)))
        elif shape == "legacy":
            observed.append(_drift(rng, synced_node(spec, provider_id=f"{PROVIDER_PREFIX}/{vm_id.upper()}")))
        elif shape == "uninit-name":
            observed.append(kubelet_node(name))
        elif shape == "uninit-uuid":
            observed.append(kubelet_node(f"k-{name}", system_uuid=vm_id.upper()))
        elif shape == "uninit-fqdn" and fqdn:
            observed.append(kubelet_node(fqdn, system_uuid=rng.choice([None, vm_id])))
        elif shape == "uninit-pid":
            observed.append(kubelet_node(f"p-{name}", provider_id=spec.provider_id, system_uuid=vm_id))
        elif shape == "both":
            observed.append(_drift(rng, synced_node(spec, placeholder=True)))
            observed.append(kubelet_node(f"k-{name}", system_uuid=vm_id))
        elif shape == "foreign-name":
            node = foreign_node(name)
            foreign.add(node.uid)
            observed.append(node)
    # Managed nodes whose VM is gone, with counters in all states.
    for j in range(rng.randint(0, 5)):
        gone = make_spec(f"gone{j}", vm_id=_rand_uuid(rng))
        node = synced_node(gone, placeholder=rng.random() < 0.5)
        if rng.random() < 0.8:
            node = absent_counter(node, rng.choice(["0", "1", "2", "3", "5", "junk"]))
        observed.append(node)
    for j in range(rng.randint(0, 2)):
        node = foreign_node(f"aws{j}", provider_id=rng.choice(["aws:///eu-west-1a/i-1", "vsphere://42", "ovirt://"]))
        foreign.add(node.uid)
        observed.append(node)
    for j in range(rng.randint(0, 2)):
        node = kubelet_node(f"stray{j}", system_uuid=_rand_uuid(rng))
        stray.add(node.uid)
        observed.append(node)
    if len(specs) >= 2 and rng.random() < 0.3:
        # A node that matches two VMs, by name and by systemUUID or FQDN (the latter is ambiguous).
        a, b = rng.sample(specs, 2)
        if b.name not in {n.name for n in observed}:
            observed.append(kubelet_node(b.name, system_uuid=a.vm_id) if rng.random() < 0.5 or not a.fqdn
                            else kubelet_node(b.name, hostname=a.fqdn))
    nodes_cfg = NodesConfig(
        register=rng.random() < 0.85, initialize=rng.random() < 0.85, update=rng.random() < 0.85,
        taint_shutdown=rng.random() < 0.85, delete=rng.random() < 0.85,
    )
    controller = ControllerConfig(
        delete_after_sweeps=rng.randint(1, 4), max_delete_fraction=rng.choice([0.0, 0.1, 0.34, 0.5, 1.0]),
        max_delete_count=rng.randint(0, 4),
    )
    for j in range(rng.randint(0, 2)):
        # a node of another controller instance (another name, or ours against another engine), of one of our VMs
        # or of a VM we do not know: never in any action, like a foreign node
        spec = rng.choice(specs) if specs and rng.random() < 0.5 else make_spec(f"theirs{j}", vm_id=_rand_uuid(rng))
        name = rng.choice([spec.name, f"theirs{j}"])
        if name in {n.name for n in observed}:
            continue
        instance, engine = rng.choice([("hypervisors", ""), (DEFAULT_INSTANCE, "engine-b.example.com")])
        node = absent_counter(synced_node(spec, name=name, placeholder=rng.random() < 0.5), rng.choice(["0", "2"]))
        node = with_annotation(with_annotation(node, ANNOTATION_OWNER, instance), ANNOTATION_ENGINE, engine)
        foreign.add(node.uid)
        observed.append(node)
    rng.shuffle(observed)
    if rng.random() < 0.05:
        specs, skipped = [], []  # an empty discovery
    return World(
        desired=Desired(nodes=tuple(specs), skipped=tuple(skipped)), observed=tuple(observed),
        nodes=nodes_cfg, controller=controller, foreign_uids=frozenset(foreign), stray_uids=frozenset(stray),
    )
