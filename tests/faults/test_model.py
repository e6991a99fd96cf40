"""The model-based fault test (issue 17, "Explore instead of enumerate"): a hypothesis rule-based state machine
over both loopback simulators and the real clients (ovirtsdk4, kubernetes), driving the real sweeps
(``controller.run_sweep``, ``run_targeted_sweep``), the real informer and the real writer, of two controller
instances in one cluster (core/ownership.py): the default one (``tag=kubernetes``, hosts ``cluster=east-a``) and a
second one, ``infra`` (``tag=infra``, hosts ``cluster=east-b``), on the same engine, each with its own config,
engine session, writer and Kubernetes identity (a token of its own user, so the Kubernetes API simulator's request
log says which instance sent each write).

Each step changes one thing, then the default instance sweeps once:

- the engine: start, stop, remove, rename, retag a VM (into and out of either filter, or both), move a tag out
  from under the filter's tag (no VM event), move a VM to another cluster, put a host into maintenance and back;
- engine glitches (they last until a "glitches off" step or the heal): a search that loses a subset, an Apache
  HTML "404 Not Found" page for every GET by id, a twin of a VM with its id in another spelling, slow answers
  (some beyond the client's timeout), expired tokens;
- the nodes, as people and kubelets edit them: a taint with a value (ours included), a label removed, a node
  deleted, a kubelet registering a Node with the uninitialized taint (by the VM's name or FQDN), a node's owner
  annotations removed (a legacy node, as written before owners were recorded);
- leadership: a standby (``may_write`` False) and a lease lost during the next sweep (``may_write`` True for a
  few requests, then False for good);
- a targeted sweep of a few VMs of the last complete discovery, as the loop runs on engine events (a start or
  stop may be followed by one of that VM instead of a full sweep; by the second instance too when it knows it);
- the second instance: a full sweep (leading, standby or losing its lease), alone or at the same time as one of
  the default instance (two threads: their requests interleave), or a targeted one.

After every sweep: no node of a VM (or host) that exists and matches its owner's filter is deleted (the owner
recorded on the node; a legacy node's is the default instance, the only one that counts legacy nodes absent; a
placeholder gives way only to its VM's kubelet node once that one is initialized) (``nodes_lost``); no write to a
foreign node (another providerID, or none and no match) (``foreign_touched``); no write by an instance to a node
another instance owns, to a legacy node of a VM or host outside its filter (but the default instance's), or to a
kubelet's node none of its VMs or hosts claims, and no node's owner replaced (``cross_writes``); no more writes by
an instance than its ``may_write`` granted (``writes_while_standby``); no node registered or initialized for a VM
outside its owner's filter, and no targeted sweep writing to the node of one (``outside_filter``); no shutdown or
maintenance taint added to a running VM's or up host's node, or removed from a stopped one's (``wrong_taints``). At
the end a heal phase (glitches off, both leading, rounds of sweeps) must converge to the state computed from the
engine simulator's own model and each instance's filters: every node owned by an instance whose filter holds its VM
or host; an instance whose VM (or host) search matches nothing keeps its VM (host) nodes as they are, EmptyDiscovery
(``converged``).

Bounded: ``OVCP_MODEL_EXAMPLES`` examples (20 by default) of at most ``OVCP_MODEL_STEPS`` steps (12),
derandomized; ``OVCP_MODEL_SEED=N`` explores other examples. Prints
``faults: family=model examples=N steps=M instances=2 nodes_lost=0 foreign_touched=0 cross_writes=0 ...``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from kubernetes import client as k8s

from ovirt_cloudprovider.controller import SweepReport, run_sweep, run_targeted_sweep
from ovirt_cloudprovider.core import providerid
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ENGINE,
    ANNOTATION_OWNER,
    HOST_MAINTENANCE_STATUSES,
    LABEL_MANAGED_BY,
    LABEL_OVIRT_CLUSTER,
    LABEL_OVIRT_DATACENTER,
    LABEL_REGION,
    LABEL_ZONE,
    TAINT_MAINTENANCE,
    TAINT_SHUTDOWN,
    TAINT_UNINITIALIZED,
    Snapshot,
)
from ovirt_cloudprovider.core.settings import (
    DEFAULT_INSTANCE,
    Config,
    ConnectionConfig,
    ControllerConfig,
    FiltersConfig,
    NodesConfig,
)
from ovirt_cloudprovider.core.targeted import Fleet as TargetedFleet
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.endpoint import engine_identity
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import API_PREFIX, EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.engine.search import search_hosts, search_vms
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.faults.conftest import MODEL

EXAMPLES = int(os.environ.get("OVCP_MODEL_EXAMPLES", "20"))
STEPS = int(os.environ.get("OVCP_MODEL_STEPS", "12"))
SEED = os.environ.get("OVCP_MODEL_SEED")
VMS, HOSTS = "tag=kubernetes", "cluster=east-a"  # the default instance's filters
INFRA, VMS_B, HOSTS_B = "infra", "tag=infra", "cluster=east-b"  # the second instance: its name and filters
TIMEOUT = 1.0  # the engine client's timeout: a "slow" answer beyond it fails that sweep
FOREIGN_AWS, FOREIGN_BARE = "aws-node-1", "edge-1"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
NODE_RESOURCES = frozenset({"nodes", "nodes/status"})
HEAL_ROUNDS = 6  # rounds of sweeps (each instance once) in which the heal must come to rest

# Rules whose known defect (issue 17) another helper is fixing: enabled once the fix is on main. A disabled rule
# is skipped, never weakened; see the report of helper "model".
KNOWN_DEFECTS: dict[str, str] = {
    # What this model found on main before the fixes of issue 17 landed (each shrunk by hypothesis; all fixed now):
    # rule 1: start(fleet_seed=0), lose_subset(mask=1), html_404_by_id() → a VM's and a host's node deleted;
    # rule 4: start(fleet_seed=0), taint_node(i=1, key=shutdown, value="true") on a running VM's node → never removed;
    # rule 5: start(fleet_seed=0), twin(i=26, spelling="nodash", before=True) → shutdown taint on k8s-cp-1 (up);
    # rule 6: stop_vm(k8s-worker-0002), move_worker_tag() (no sweep), start_vm(k8s-worker-0002, event=True) → the
    #   targeted sweep patched the node of a VM that had left the filter.
}


def enabled(rule_name: str) -> bool:
    return rule_name not in KNOWN_DEFECTS


Node = dict[str, Any]


def _taints(node: Node) -> list[dict[str, Any]]:
    return list((node.get("spec") or {}).get("taints") or [])


def has_taint(node: Node, key: str, effect: str = "NoSchedule") -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in _taints(node))


def pid(node: Node) -> str:
    return str((node.get("spec") or {}).get("providerID") or "")


def key_of(node: Node) -> str | None:
    """The planner's owner key of the node's providerID (a VM's or host's), None when it has none of ours."""
    return providerid.owner_key_of(pid(node))


def system_uuid(node: Node) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("systemUUID") or "")


def name_of(node: Node) -> str:
    return str(node["metadata"]["name"])


def recorded_owner(node: Node) -> tuple[str, str | None] | None:
    """The (instance, engine) the node's annotations record, None when they record no owner."""
    annotations = node["metadata"].get("annotations") or {}
    instance = annotations.get(ANNOTATION_OWNER)
    return None if instance is None else (instance, annotations.get(ANNOTATION_ENGINE))


@dataclass(frozen=True)
class Members:
    """What matches filters now, from the engine simulator's own model: VM id → VM, host key → host."""

    vms: dict[str, Any]
    hosts: dict[str, Any]

    @staticmethod
    def of(engine: EngineSimulator, vms: str, hosts: str) -> Members:
        with engine.fleet.lock:
            return Members({providerid.normalize_vm_id(v.id): v for v in search_vms(engine.fleet, vms)},
                           {providerid.owner_key("host", h.id): h for h in search_hosts(engine.fleet, hosts)})

    @staticmethod
    def union(members: Sequence[Members]) -> Members:
        return Members({k: v for m in members for k, v in m.vms.items()},
                       {k: h for m in members for k, h in m.hosts.items()})

    def owner(self, key: str | None) -> Any:
        if key is None:
            return None
        return self.hosts.get(key) if providerid.is_host_key(key) else self.vms.get(key)

    def weak_match(self, node: Node) -> bool:
        """A node without providerID that one of ours may claim (systemUUID, name, FQDN)."""
        name, su = name_of(node).lower(), system_uuid(node)
        for vm in self.vms.values():
            if providerid.same_uuid(su, vm.id) or name in (vm.name.lower(), (vm.fqdn or "").lower()):
                return True
        return any(providerid.same_uuid(su, h.system_uuid) or name in (h.name.lower(), h.address.lower())
                   for h in self.hosts.values())

    def claims(self, node: Node) -> bool:
        """Whether one of these VMs or hosts may own ``node``: by its providerID, or, without one, weakly."""
        key = key_of(node)
        return self.owner(key) is not None if key is not None else not pid(node) and self.weak_match(node)

    def foreign(self, node: Node) -> bool:
        p = pid(node)
        return providerid.owner_key_of(p) is None if p else not self.weak_match(node)


def running(owner: Any) -> bool | None:
    """Whether a VM or host's node should carry no shutdown/maintenance taint (True), carry one (False), or is
    not told (None)."""
    status = owner.status
    if status in ("up",):
        return True
    if status in ("down", "suspended", *HOST_MAINTENANCE_STATUSES):
        return False
    return None


def off_taint(owner: Any) -> str:
    return TAINT_MAINTENANCE if owner.status in HOST_MAINTENANCE_STATUSES else TAINT_SHUTDOWN


@dataclass
class Fence:
    """``may_write`` of one sweep: True for the first ``budget`` questions (None: always), then False."""

    budget: int | None
    granted: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if self.budget is not None and self.granted >= self.budget:
                return False
            self.granted += 1
            return True


@dataclass(eq=False)
class Instance:
    """One controller instance: its config (name, filters), its own engine session, Kubernetes client (a token of
    its own user: the request log's ``user`` says which instance wrote), writer and metrics; its leadership and
    its last complete discovery (the base of its targeted sweeps)."""

    name: str
    vms: str
    hosts: str
    user: str
    config: Config
    api: k8s.ApiClient
    client: EngineClient
    writer: NodeWriter
    metrics: Metrics
    leading: bool = True
    lease_budget: int | None = None
    base: Snapshot | None = None
    index: TargetedFleet | None = None

    @staticmethod
    def build(engine: EngineSimulator, kube: KubeApiSimulator, *, name: str, vms: str, hosts: str,
              token: str) -> Instance:
        config = Config(
            path=f"<model {name}>",
            connection=ConnectionConfig(uri=engine.url, username=engine.username, password=engine.password,
                                        ca_file=engine.ca_file, timeout=TIMEOUT),
            filters=FiltersConfig(vms=vms, hosts=hosts), nodes=NodesConfig(register=True),  # placeholders: opt-in
            controller=replace(ControllerConfig(), instance=name, page_size=4, delete_after_sweeps=2,
                               max_delete_fraction=1.0, max_delete_count=0, allow_cluster_removal=True))
        cfg = k8s.Configuration()
        cfg.host = kube.url
        cfg.api_key = {"authorization": f"Bearer {token}"}
        api = k8s.ApiClient(cfg)
        metrics = Metrics()
        return Instance(name, vms, hosts, kube.users[token], config, api,
                        EngineClient(config.connection, page_size=4, hosts=hosts),
                        NodeWriter(api, metrics=metrics, backoff_initial=0.01, event_repeat_interval=0), metrics)

    @property
    def identity(self) -> tuple[str, str | None]:
        """The owner it records on its nodes: (``ovirt.org/owner``, ``ovirt.org/engine``)."""
        return self.name, engine_identity(self.config.connection.uri)

    def members(self, engine: EngineSimulator) -> Members:
        return Members.of(engine, self.vms, self.hosts)

    def knows(self, vm_id: str) -> bool:
        return self.base is not None and vm_id in {v.id for v in self.base.vms}

    def fence(self) -> Fence:
        """This sweep's ``may_write``; a lost lease stays lost until a step makes the instance lead again."""
        fence = Fence(None if self.leading and self.lease_budget is None else (self.lease_budget or 0))
        self.lease_budget = None
        if fence.budget is not None:
            self.leading = False
        return fence

    def sweep(self, targets: Sequence[str], fence: Fence) -> SweepReport:
        """One sweep (full, or targeted at ``targets``) with a freshly synced informer of its own."""
        cache = NodeCache(self.api)
        cache.start()
        try:
            assert cache.wait_synced(10)
            if targets and self.base is not None:
                report = run_targeted_sweep(config=self.config, engine=self.client, base=self.base,
                                            vm_ids=list(targets), nodes=cache.nodes(), writer=self.writer,
                                            metrics=self.metrics, may_write=fence, fleet=self.index)
                if report.ok and report.fleet is not None:
                    self.base, self.index = report.fleet.snapshot, report.fleet
            else:
                report = run_sweep(config=self.config, engine=self.client, nodes=cache.nodes(), writer=self.writer,
                                   metrics=self.metrics, may_write=fence)
                if report.snapshot is not None:
                    self.base, self.index = report.snapshot, report.fleet
            return report
        finally:
            cache.stop()

    def close(self) -> None:
        self.client.close()
        self.api.close()  # type: ignore[no-untyped-call]


@dataclass
class Run:
    """One instance's part of a step: its targets (none: a full sweep), its fence, and afterwards its report."""

    instance: Instance
    targets: Sequence[str] = ()
    fence: Fence = field(default_factory=lambda: Fence(None))
    report: SweepReport | None = None
    node_writes: int = 0


class FleetModel(RuleBasedStateMachine):
    """Both simulators, two instances' real clients and sweeps; the rules and the invariants of the module
    docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.clean = True  # no rule or check failed (the heal runs only then)
        self.instances: list[Instance] = []
        self.renamed = 0
        self.steps = 0
        self.foreign: dict[str, str] = {}  # foreign node name → its resourceVersion after our last edit
        self.writes: list[Any] = []  # the write requests of the last step's sweeps (the simulator's records)
        self.history: list[str] = []

    @property
    def a(self) -> Instance:
        """The default instance (``tag=kubernetes``, hosts of east-a): it alone counts legacy nodes absent."""
        return self.instances[0]

    @property
    def b(self) -> Instance:
        """The second instance, ``infra`` (``tag=infra``, hosts of east-b)."""
        return self.instances[1]

    # --- setup and teardown ----------------------------------------------------------------------

    @initialize(fleet_seed=st.integers(0, 7))
    def start(self, fleet_seed: int) -> None:
        fleet = generate_fleet(6, seed=fleet_seed, untagged=2, quirks=False, control_plane=2)
        for vm in fleet.vms.values():  # up or down only: the other statuses change no taint
            if vm.status not in ("up", "down"):
                fleet.set_status(vm.id, "up")
            if not vm.name.startswith("k8s-"):
                fleet.tag_vm(vm.id, "infra")  # the untagged VMs are the second instance's
        self.engine = EngineSimulator(fleet)
        self.kube = KubeApiSimulator(users={"token-a": "system:serviceaccount:kube-system:ovirt-cloudprovider",
                                            "token-b": "system:serviceaccount:kube-system:ovirt-infra"})
        self.engine.start()
        self.kube.start()
        self.started = True
        self.instances = [
            Instance.build(self.engine, self.kube, name=DEFAULT_INSTANCE, vms=VMS, hosts=HOSTS, token="token-a"),
            Instance.build(self.engine, self.kube, name=INFRA, vms=VMS_B, hosts=HOSTS_B, token="token-b")]
        up = sorted((v for v in fleet.vms.values() if v.status == "up"), key=lambda v: v.name)
        tagged = [v for v in up if v.name.startswith("k8s-")]
        for vm in [*tagged[:2], *[v for v in up if v not in tagged][:1]]:  # kubelets registered before we ran
            self.kube.register_kubelet_node(vm.name, system_uuid=vm.id)
        aws = self.kube.register_kubelet_node(FOREIGN_AWS, provider_id="aws:///us-east-1a/i-0abc",
                                              external_cloud_provider=False)
        bare = self.kube.register_kubelet_node(FOREIGN_BARE)  # uninitialized, matches no VM
        self.foreign = {FOREIGN_AWS: aws["metadata"]["resourceVersion"],
                        FOREIGN_BARE: bare["metadata"]["resourceVersion"]}
        MODEL.record(examples=1)
        MODEL.saw_instances(len(self.instances))
        self.heal("baseline")

    def teardown(self) -> None:
        if not self.started:
            return
        MODEL.record(steps=self.steps)
        try:
            if self.clean:
                self.heal("heal")
                MODEL.record(converged=1)
        finally:
            for inst in self.instances:
                inst.close()
            self.engine.stop()
            self.kube.stop()

    def heal(self, phase: str) -> None:
        """Glitches off, both instances leading again, rounds of full sweeps (each instance once) until one in
        which nobody writes; then the nodes must be what the engine's model and each instance's filters say."""
        self.engine.clear_faults()
        for inst in self.instances:
            inst.leading, inst.lease_budget = True, None
        errors: list[str] = []
        for _ in range(HEAL_ROUNDS):
            runs = [self.sweep(f"{phase} sweep {inst.name}", [Run(inst)])[0] for inst in self.instances]
            errors = [f"{r.instance.name}: {r.report.error}" for r in runs if r.report and not r.report.ok]
            if not errors and not any(r.node_writes for r in runs):
                break
        else:
            self.fail(f"{phase}: no steady state after {HEAL_ROUNDS} rounds (last errors: {errors})")
        problems = self.divergence()
        if problems:
            self.fail(f"{phase}: not converged: " + "; ".join(problems))

    def fail(self, message: str) -> None:
        self.clean = False
        raise AssertionError(message + "\n  steps: " + " → ".join(self.history))

    # --- the sweep and the invariants checked after each -----------------------------------------

    def nodes(self) -> dict[str, Node]:
        return {name_of(n): n for n in self.kube.list_nodes()}

    def sweep(self, what: str, runs: list[Run]) -> list[Run]:
        """One step's sweeps: each run's instance sweeps (several at once: in threads, their requests interleave),
        then the invariants over every write in the request log, attributed by its user."""
        self.history.append(what)
        members = {inst.name: inst.members(self.engine) for inst in self.instances}  # no engine change meanwhile
        before = self.nodes()
        for run in runs:
            run.fence = run.instance.fence()
        self.kube.reset_counts()
        if len(runs) == 1:
            runs[0].report = runs[0].instance.sweep(runs[0].targets, runs[0].fence)
        else:
            with ThreadPoolExecutor(len(runs)) as pool:
                futures = [pool.submit(r.instance.sweep, r.targets, r.fence) for r in runs]
                for run, future in zip(runs, futures, strict=True):
                    run.report = future.result()
        self.writes = [r for r in self.kube.requests if r.resource is not None and r.verb in WRITE_VERBS]
        for run in runs:
            run.node_writes = sum(1 for r in self.writes
                                  if r.user == run.instance.user and r.resource in NODE_RESOURCES)
        self.check(members, before, self.nodes(), runs)
        return runs

    def rules_of(self, node: Node) -> Instance | None:
        """The instance whose rules a node is under: its recorded owner; a legacy node (ours, no owner) the
        default instance's, the only one that counts it absent."""
        recorded = recorded_owner(node)
        if recorded is None:
            return self.a if key_of(node) is not None else None
        return next((inst for inst in self.instances if inst.identity == recorded), None)

    def cross_writes(self, members: dict[str, Members], before: dict[str, Node], after: dict[str, Node],
                     foreign: set[str]) -> list[str]:
        """Writes of an instance to a node it has no claim on, and nodes whose owner was replaced."""
        out = []
        users = {inst.user: inst for inst in self.instances}
        for r in self.writes:
            inst = users.get(r.user)
            if inst is None:
                out.append(f"{r.verb} {r.resource} {r.name} by an unknown client {r.user!r}")
                continue
            node = before.get(r.name)
            if r.resource not in NODE_RESOURCES or node is None or r.name in foreign:
                continue
            recorded, key, mine = recorded_owner(node), key_of(node), members[inst.name]
            if recorded is not None and recorded != inst.identity:
                out.append(f"{inst.name}: {r.verb} {r.name} of {recorded[0]}")
            elif recorded is None and key is not None and inst is not self.a and mine.owner(key) is None:
                out.append(f"{inst.name}: {r.verb} legacy {r.name}, not in its filter")
            elif recorded is None and key is None and not mine.claims(node):
                out.append(f"{inst.name}: {r.verb} kubelet's {r.name}, none of its VMs or hosts")
        ours = {inst.identity for inst in self.instances}
        out += [f"{name}: owner {recorded_owner(node)} replaced by {recorded_owner(after[name])}"
                for name, node in before.items() if name in after and recorded_owner(node) in ours
                and recorded_owner(after[name]) != recorded_owner(node)]
        return out

    def check(self, members: dict[str, Members], before: dict[str, Node], after: dict[str, Node],
              runs: list[Run]) -> None:
        union = Members.union(list(members.values()))
        lost, outside, wrong = [], [], []
        for name, node in before.items():
            key = key_of(node)
            rules = self.rules_of(node)
            if name not in after and rules is not None and members[rules.name].owner(key) is not None:
                # A placeholder gives way to its kubelet's node (ReplacedByKubelet) only once that node is
                # initialized (our providerID, no uninitialized taint): never in the sweep that initializes it.
                replaced = (node["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) and any(
                    key_of(n) == key and not has_taint(n, TAINT_UNINITIALIZED) for n in after.values())
                if not replaced:
                    lost.append(name)
            owner = union.owner(key)
            if name in after and owner is not None and (state := running(owner)) is not None:
                taint = off_taint(owner)
                if has_taint(after[name], taint) != has_taint(node, taint) and has_taint(after[name], taint) == state:
                    wrong.append(f"{name}: {taint} {'added' if state else 'removed'} ({owner.status})")
        foreign = {name for name, node in before.items() if union.foreign(node)}
        node_writes = [r for r in self.writes if r.resource in NODE_RESOURCES]
        touched = sorted({f"{r.verb} {r.name}" for r in node_writes if r.name in foreign})
        for name, node in after.items():
            key, old = key_of(node), before.get(name)
            rules = self.rules_of(node)
            if key is not None and (old is None or not pid(old)) and (
                    members[rules.name] if rules else union).owner(key) is None:
                outside.append(f"{name} ({pid(node)})")
        for run in runs:  # a targeted sweep deletes nothing: a write to a node outside its filter is out of place
            if run.targets:
                mine = members[run.instance.name]
                outside += sorted({f"{run.instance.name}: {r.verb} {r.name}" for r in node_writes
                                   if r.user == run.instance.user and r.name in before and r.name not in foreign
                                   and not mine.claims(before[r.name])})
        cross = self.cross_writes(members, before, after, foreign)
        unfenced = {run.instance.name: (n, run.fence.granted) for run in runs if run.fence.budget is not None
                    and (n := sum(1 for r in self.writes if r.user == run.instance.user)) > run.fence.granted}
        MODEL.record(nodes_lost=len(lost), foreign_touched=len(touched), cross_writes=len(cross),
                     writes_while_standby=sum(n - g for n, g in unfenced.values()), outside_filter=len(outside),
                     wrong_taints=len(wrong))
        problems = [f"{label}: {items}" for label, items in (
            ("nodes lost", lost), ("foreign nodes touched", touched), ("writes to another instance's nodes", cross),
            ("acted outside the filter", outside), ("wrong taints", wrong)) if items]
        problems += [f"{name}: {n} writes while may_write granted {g}" for name, (n, g) in unfenced.items()]
        if problems:
            self.fail("; ".join(problems))

    def divergence(self) -> list[str]:
        """How the nodes differ from the desired state of the engine's model and each instance's filters.

        An instance whose VM (or host) search matches nothing deletes none of its VM (host) nodes (EmptyDiscovery:
        an empty answer is no evidence), so those nodes stay as they are, whoever else's filter holds them."""
        members = {inst.name: inst.members(self.engine) for inst in self.instances}
        union = Members.union(list(members.values()))
        nodes = self.nodes()
        owned: dict[str, list[Node]] = {}
        for node in nodes.values():
            key = key_of(node)
            if key is not None:
                owned.setdefault(key, []).append(node)

        def frozen(node: Node) -> bool:
            rules, key = self.rules_of(node), key_of(node)
            if rules is None or key is None or members[rules.name].owner(key) is not None:
                return False
            mine = members[rules.name]
            return not (mine.hosts if providerid.is_host_key(key) else mine.vms)

        problems = []
        for key, owner in [*union.vms.items(), *union.hosts.items()]:
            mine = owned.pop(key, [])
            state = running(owner)
            if len(mine) > 1 or (state is True and not mine):
                problems.append(f"{owner.name} ({owner.status}) has nodes {[name_of(n) for n in mine]}")
            claimants = {inst.identity for inst in self.instances if members[inst.name].owner(key) is not None}
            for node in (n for n in mine if not frozen(n)):
                if recorded_owner(node) not in claimants:
                    problems.append(f"{name_of(node)} is owned by {recorded_owner(node)}, not by one of {claimants}")
                problems += self.node_problems(node, owner, state)
        problems += [f"{name_of(n)} of {key}, in no instance's filter, is still there"
                     for key, ns in owned.items() for n in ns if not frozen(n)]
        problems += [f"{name} is unprovisioned but matches a filter" for name, n in nodes.items()
                     if not pid(n) and union.weak_match(n)]
        for name, rv in self.foreign.items():
            if name not in nodes or nodes[name]["metadata"]["resourceVersion"] != rv:
                problems.append(f"foreign node {name} was changed or deleted")
        return problems

    def node_problems(self, node: Node, owner: Any, state: bool | None) -> list[str]:
        name = name_of(node)
        labels = node["metadata"].get("labels") or {}
        out = []
        if has_taint(node, TAINT_UNINITIALIZED):
            out.append(f"{name} is still uninitialized")
        if ANNOTATION_ABSENT_SWEEPS in (node["metadata"].get("annotations") or {}):
            out.append(f"{name} still counts absences")
        if state is not None and has_taint(node, off_taint(owner)) == state:
            out.append(f"{name} ({owner.status}): {off_taint(owner)} {'present' if state else 'missing'}")
        if state is True and owner.status == "up" and has_taint(node, TAINT_SHUTDOWN):
            out.append(f"{name}: shutdown taint on a running {owner.name}")
        cluster = self.engine.fleet.clusters[owner.cluster_id].name
        if labels.get(LABEL_OVIRT_CLUSTER) != cluster:
            out.append(f"{name}: cluster label {labels.get(LABEL_OVIRT_CLUSTER)!r}, not {cluster!r}")
        missing = [k for k in (LABEL_ZONE, LABEL_REGION, LABEL_OVIRT_DATACENTER) if k not in labels]
        if missing:
            out.append(f"{name}: labels {missing} missing")
        return out

    # --- helpers for the rules -------------------------------------------------------------------

    def pick(self, items: Sequence[Any], i: int) -> Any:
        return items[i % len(items)] if items else None

    def vms(self, *, removable: bool = False, status: str | None = None) -> list[Any]:
        with self.engine.fleet.lock:
            found = sorted(self.engine.fleet.vms.values(), key=lambda v: v.id)
        return [v for v in found if (not removable or not v.name.startswith("k8s-cp-"))
                and (status is None or v.status == status)]

    def step(self, what: str, change: Callable[[], object] | None = None, *, event_for: Any = None,
             sweep: bool = True) -> None:
        """One step: the change, then a full sweep of the default instance; with ``event_for`` (a VM whose
        change the engine logs) a targeted sweep of it instead when its last complete discovery knows it (as the
        loop does on an engine event), and one of the second instance too when its discovery knows it; without
        ``sweep`` none (a change the engine logs no event for waits for the next timed sweep)."""
        self.steps += 1
        if change is not None:
            change()
        if event_for is not None and self.a.knows(event_for.id):
            self.sweep(what + " (targeted)", [Run(self.a, [event_for.id])])
        elif sweep:
            self.sweep(what, [Run(self.a)])
        else:
            self.history.append(what + " (no sweep)")
        if event_for is not None and self.b.knows(event_for.id):
            self.sweep(what + f" ({self.b.name} targeted)", [Run(self.b, [event_for.id])])

    # --- the engine ------------------------------------------------------------------------------

    @rule(i=st.integers(0, 99), event=st.booleans())
    def start_vm(self, i: int, event: bool) -> None:
        vm = self.pick(self.vms(status="down"), i)
        self.step(f"start {vm.name if vm else '-'}", (lambda: self.engine.set_status(vm.id, "up")) if vm else None,
                  event_for=vm if event else None)

    @rule(i=st.integers(0, 99), event=st.booleans())
    def stop_vm(self, i: int, event: bool) -> None:
        vm = self.pick(self.vms(status="up"), i)
        self.step(f"stop {vm.name if vm else '-'}", (lambda: self.engine.set_status(vm.id, "down")) if vm else None,
                  event_for=vm if event else None)

    @rule(i=st.integers(0, 99))
    def remove_vm(self, i: int) -> None:
        vm = self.pick(self.vms(removable=True), i)
        self.step(f"remove {vm.name if vm else '-'}", (lambda: self.engine.remove_vm(vm.id)) if vm else None)

    @rule(i=st.integers(0, 99))
    def rename_vm(self, i: int) -> None:
        vm = self.pick(self.vms(), i)
        self.renamed += 1
        new = f"k8s-renamed-{self.renamed}"
        self.step(f"rename {vm.name} {new}", lambda: self.engine.rename(vm.id, new))

    @rule(i=st.integers(0, 99), tags=st.sampled_from([("kubernetes",), ("k8s-worker",), (), ("backup",), ("infra",),
                                                           ("kubernetes", "infra")]))
    def retag_vm(self, i: int, tags: tuple[str, ...]) -> None:
        vm = self.pick(self.vms(removable=True), i)
        self.step(f"retag {vm.name if vm else '-'} {list(tags)}",
                  (lambda: self.engine.set_tags(vm.id, tags)) if vm else None)

    @rule()
    def move_worker_tag(self) -> None:
        """The tag k8s-worker moved out from under kubernetes, or back (the engine logs no VM event)."""
        fleet = self.engine.fleet
        with fleet.lock:
            worker, k8s_tag = fleet.tag("k8s-worker"), fleet.tag("kubernetes")
            parent = "root" if worker.parent_id == k8s_tag.id else "kubernetes"
            worker.parent_id = fleet.tag(parent).id
        self.step(f"move tag k8s-worker under {parent}", sweep=not enabled("targeted_filter"))

    @rule(i=st.integers(0, 99), cluster=st.sampled_from(["east-a", "east-b", "west-arm"]))
    def move_cluster(self, i: int, cluster: str) -> None:
        vm = self.pick(self.vms(), i)

        def move() -> None:
            fleet = self.engine.fleet
            with fleet.lock:
                vm.cluster_id = fleet.cluster(cluster).id
                if vm.host_id is not None:
                    vm.host_id = next(h.id for h in fleet.hosts.values() if h.cluster_id == vm.cluster_id)
        self.step(f"move {vm.name} to {cluster}", move)

    @rule(i=st.integers(0, 5), status=st.sampled_from(["maintenance", "preparing_for_maintenance", "up"]))
    def host_maintenance(self, i: int, status: str) -> None:
        """A host of east-a (the default instance's) or east-b (the second's)."""
        with self.engine.fleet.lock:
            hosts = sorted((h for h in self.engine.fleet.hosts.values()), key=lambda h: h.name)
        host = self.pick([h for h in hosts if h.name.startswith(("east-a", "east-b"))], i)
        self.step(f"host {host.name} {status}", lambda: self.engine.set_host_status(host.id, status))

    # --- engine glitches (until "glitches off" or the heal) --------------------------------------

    @rule(mask=st.integers(1, 2**12 - 1))
    def lose_subset(self, mask: int) -> None:
        with self.engine.fleet.lock:
            ids = sorted([*self.engine.fleet.vms, *self.engine.fleet.hosts])
        lost = [x for n, x in enumerate(ids) if mask >> (n % 12) & 1]
        self.step(f"search loses {len(lost)} of {len(ids)}", lambda: self.engine.lose_in_search(lost))

    @precondition(lambda self: enabled("html_404"))
    @rule()
    def html_404_by_id(self) -> None:
        """A proxy in front of a restarting engine: every GET of a VM or host by id gets an HTML 404 page."""
        def glitch() -> None:
            self.engine.html_not_found("vms")
            self.engine.html_not_found("hosts")
        self.step("HTML 404 for GETs by id", glitch)

    @rule(i=st.integers(0, 99), spelling=st.sampled_from(["same", "upper", "nodash", "braces"]), before=st.booleans())
    def twin(self, i: int, spelling: str, before: bool) -> None:
        vm = self.pick(self.vms(), i)
        if not enabled("twin_spellings"):
            spelling = "same"
        self.step(f"twin of {vm.name} ({spelling}, {'before' if before else 'after'})",
                  lambda: self.engine.twin_in_search([vm.id], spelling=spelling, before=before))

    @rule(seconds=st.sampled_from([0.2, TIMEOUT + 0.5]))
    def slow_answer(self, seconds: float) -> None:
        self.step(f"slow search {seconds}s",
                  lambda: self.engine.set_latency(seconds, path_prefix=API_PREFIX + "/vms", count=1))

    @rule()
    def expire_tokens(self) -> None:
        self.step("tokens expired", self.engine.expire_tokens)

    @rule()
    def glitches_off(self) -> None:
        self.step("glitches off", self.engine.clear_faults)

    # --- people and kubelets ---------------------------------------------------------------------

    def node_names(self) -> list[str]:
        return sorted(self.nodes())

    def edited(self, name: str, node: Node) -> None:
        if name in self.foreign:
            self.foreign[name] = node["metadata"]["resourceVersion"]

    @rule(i=st.integers(0, 99), key=st.sampled_from([TAINT_SHUTDOWN, TAINT_MAINTENANCE, TAINT_UNINITIALIZED,
                                                     "example.com/dedicated"]),
          value=st.sampled_from(["true", "yes", ""]))
    def taint_node(self, i: int, key: str, value: str) -> None:
        name = self.pick(self.node_names(), i)
        node = self.nodes()[name]
        if key in (TAINT_SHUTDOWN, TAINT_MAINTENANCE) and not enabled("valued_taints"):
            value = ""

        def taint() -> None:
            if not has_taint(node, key):
                taints = [*_taints(node), {"key": key, "value": value, "effect": "NoSchedule"}]
                self.edited(name, self.kube.patch_node(name, {"spec": {"taints": taints}}, patch_type="merge"))
        self.step(f"kubectl taint {name} {key}={value}:NoSchedule", taint)

    @rule(i=st.integers(0, 99), key=st.sampled_from([LABEL_ZONE, LABEL_REGION, LABEL_OVIRT_CLUSTER,
                                                     LABEL_OVIRT_DATACENTER, "ovirt.org/host"]))
    def remove_label(self, i: int, key: str) -> None:
        name = self.pick(self.node_names(), i)
        self.step(f"kubectl label {name} {key}-", lambda: self.edited(
            name, self.kube.patch_node(name, {"metadata": {"labels": {key: None}}}, patch_type="merge")))

    @precondition(lambda self: enabled("junk_counter"))
    @rule(i=st.integers(0, 99), value=st.sampled_from(["²", "-1", "x", "99999999999999999999"]))
    def junk_absence_counter(self, i: int, value: str) -> None:
        name = self.pick(self.node_names(), i)
        self.step(f"kubectl annotate {name} {ANNOTATION_ABSENT_SWEEPS}={value}", lambda: self.edited(
            name, self.kube.patch_node(name, {"metadata": {"annotations": {ANNOTATION_ABSENT_SWEEPS: value}}},
                                       patch_type="merge")))

    @rule(i=st.integers(0, 99))
    def delete_node(self, i: int) -> None:
        name = self.pick(self.node_names(), i)

        def delete() -> None:
            self.kube.delete_node(name)
            self.foreign.pop(name, None)
        self.step(f"kubectl delete node {name}", delete)

    @rule(i=st.integers(0, 99), upper=st.booleans())
    def kubelet_registers(self, i: int, upper: bool) -> None:
        """A VM's kubelet (--cloud-provider=external) registers its Node, named by the VM's name or, when that
        is taken, its FQDN; only while the VM has no node but our placeholder (a second kubelet of one machine
        is not a thing)."""
        vm = self.pick(self.vms(status="up"), i)
        nodes = self.nodes()
        key = providerid.normalize_vm_id(vm.id) if vm else ""
        mine = [n for n in nodes.values() if providerid.owner_key_of(pid(n)) == key
                or (not pid(n) and providerid.same_uuid(system_uuid(n), key))]
        placeholder = all((n["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) for n in mine)
        name = next((x for x in (vm.name, vm.fqdn) if x and x not in nodes), None) if vm and placeholder else None

        def register() -> None:
            assert vm is not None and name is not None
            self.kube.register_kubelet_node(name, system_uuid=vm.id.upper() if upper else vm.id, lease=False)
        self.step(f"kubelet registers {name or '-'}", register if name else None)

    # --- leadership and targeted sweeps ----------------------------------------------------------

    @rule()
    def standby(self) -> None:
        self.a.leading = False
        self.step("standby")

    @rule()
    def lead(self) -> None:
        self.a.leading = True
        self.step("leading")

    @rule(budget=st.integers(0, 3))
    def lease_lost_during_sweep(self, budget: int) -> None:
        self.a.lease_budget = budget
        self.step(f"lease lost after {budget} writes")

    def targets(self, inst: Instance, i: int, j: int) -> list[str]:
        known = sorted(v.id for v in inst.base.vms) if inst.base is not None else []
        return sorted({self.pick(known, i), self.pick(known, j)} - {None})

    @rule(i=st.integers(0, 99), j=st.integers(0, 99))
    def targeted_sweep(self, i: int, j: int) -> None:
        """Engine events about two VMs of the last complete discovery: a targeted sweep of them."""
        targets = self.targets(self.a, i, j)
        self.steps += 1
        self.sweep(f"targeted sweep of {len(targets)}", [Run(self.a, targets)])

    # --- the second instance ---------------------------------------------------------------------

    @rule(leadership=st.sampled_from(["leading", "standby", "lease lost after 0", "lease lost after 2"]),
          together=st.booleans())
    def second_instance_sweeps(self, leadership: str, together: bool) -> None:
        """The second instance sweeps, leading or not (its own Lease), alone or while the default one sweeps."""
        b = self.b
        if leadership.startswith("lease lost"):
            b.lease_budget = int(leadership.rsplit(" ", 1)[1])
        else:
            b.leading = leadership == "leading"
        self.steps += 1
        runs = [Run(b), *([Run(self.a)] if together else [])]
        self.sweep(f"{b.name} sweeps ({leadership}{', the default one at once' if together else ''})", runs)

    @rule(i=st.integers(0, 99), j=st.integers(0, 99))
    def second_targeted_sweep(self, i: int, j: int) -> None:
        """Engine events about two VMs of the second instance's last complete discovery."""
        targets = self.targets(self.b, i, j)
        self.steps += 1
        self.sweep(f"{self.b.name}: targeted sweep of {len(targets)}", [Run(self.b, targets)])

    @rule(i=st.integers(0, 99), then=st.sampled_from(["default", "second", "both"]))
    def legacy_node(self, i: int, then: str) -> None:
        """A node as the release before owners wrote it (its owner annotations removed: an upgrade writes
        nothing), then a sweep of the default instance, of the second one, or of both at once."""
        names = [n for n, node in sorted(self.nodes().items()) if recorded_owner(node) is not None]
        name = self.pick(names, i)
        self.steps += 1
        if name:
            self.kube.patch_node(name, {"metadata": {"annotations": {ANNOTATION_OWNER: None, ANNOTATION_ENGINE: None}}},
                                 patch_type="merge")
        runs = {"default": [Run(self.a)], "second": [Run(self.b)], "both": [Run(self.a), Run(self.b)]}[then]
        self.sweep(f"{name or '-'} without owner, then {then} sweep", runs)


@pytest.mark.timeout(max(180, 20 * EXAMPLES))  # a failure's shrinking takes longer than the examples
def test_model() -> None:
    machine: type[FleetModel] = seed(int(SEED))(FleetModel) if SEED else FleetModel
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=SEED is None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], print_blob=False))
