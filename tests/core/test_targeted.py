"""Targeted planning (core/targeted.py): on generated fleets, the targeted plan is the whole plan filtered to the
targets, and the updated Fleet is the Fleet of the updated discovery."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ovirt_cloudprovider.core import providerid
from ovirt_cloudprovider.core.desired import desired_nodes
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_PROVIDED_NODE_IP,
    KIND_HOST,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    ActionKind,
    GuestNic,
    Host,
    HostNic,
    ObservedNode,
    Snapshot,
    Taint,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from ovirt_cloudprovider.core.targeted import Fleet, fleet_of, plan_targeted, restrict, stale_for, targets_of
from tests.core.plan_builders import UNINITIALIZED

IDS = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(1, 9)]
HOST_IDS = [f"{i:08x}-1111-4000-8000-{i:012x}" for i in range(1, 4)]
HOST_UUIDS = [f"{i:08x}-2222-4000-8000-{i:012x}" for i in range(1, 4)]
NAMES = ["web", "db", "Web", "cache", "bad_name!", "h1", "h2", "???"]
FQDNS = [None, "web.example.com", "db.example.com", "h1.example.com", "localhost.localdomain"]
STATUSES = ["up", "down", "suspended", "unknown", "migrating", "powering_up"]
HOST_STATUSES = ["up", "maintenance", "preparing_for_maintenance", "down", "non_responsive"]
CONTROLLER = ControllerConfig()
# a discovery, the nodes, the configuration, and the targets' refreshed records (None: 404)
World = tuple[Snapshot, tuple[ObservedNode, ...], NodesConfig, dict[str, VirtualMachine | None], dict[str, Host | None]]


def spelled(vm_id: str, how: int) -> str:
    return [vm_id, vm_id.upper(), vm_id.replace("-", ""), "{" + vm_id + "}"][how]


@st.composite
def vms(draw: st.DrawFn) -> VirtualMachine:
    vm_id = draw(st.sampled_from(IDS))
    name = draw(st.sampled_from(NAMES))
    if draw(st.integers(0, 9)) == 0:
        vm_id = draw(st.sampled_from([vm_id.upper(), "not-a-uuid"]))
    ip = f"10.0.0.{draw(st.integers(1, 4))}"
    return VirtualMachine(
        id=vm_id, name=name, status=draw(st.sampled_from(STATUSES)),
        fqdn=draw(st.sampled_from(FQDNS)) if draw(st.booleans()) else f"{name.lower()}.example.com",
        cluster=draw(st.sampled_from(["east", "west", None])),
        datacenter="dc", host=draw(st.sampled_from(["h1", "h2", None])), cpus=2, memory_bytes=2 * 1024**3,
        nics=draw(st.sampled_from([(), (GuestNic("eth0", ips=(ip,)),), (GuestNic("eth0", ips=("::g",)),)])),
        guest_agent=True)


@st.composite
def hosts(draw: st.DrawFn) -> Host:
    i = draw(st.integers(0, len(HOST_IDS) - 1))
    return Host(id=HOST_IDS[i], name=draw(st.sampled_from(["h1", "h2", "web", "h3"])),
                status=draw(st.sampled_from(HOST_STATUSES)), address=draw(st.sampled_from(FQDNS[1:4])),
                cluster="east", datacenter="dc", system_uuid=draw(st.sampled_from([*HOST_UUIDS, None])),
                nics=(HostNic("eth0", ips=(f"10.1.0.{i + 1}",), bridged=True),), cpus=8)


@st.composite
def nodes(draw: st.DrawFn) -> ObservedNode:
    """Nodes of every shape: managed (any spelling, legacy, host), placeholders, kubelet nodes waiting for
    initialization, nodes without providerID matching by name / systemUUID (also mixed-endian) / FQDN,
    foreign and malformed ones."""
    shape = draw(st.sampled_from(["managed", "legacy", "host", "placeholder", "waiting", "waiting", "bare", "bare",
                                  "bare", "bare", "foreign"]))
    name = draw(st.sampled_from([*NAMES[:4], "h1", "h2", "web.example.com", "db.example.com", "k-1", "k-2",
                                 "bad-name", "h1.example.com"])).lower()
    vm_id = draw(st.sampled_from(IDS))
    pid: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    system_uuid = draw(st.sampled_from([None, None, None, None, vm_id, vm_id.upper(), providerid.uuid_forms(vm_id)[1],
                                        IDS[0], *HOST_UUIDS[:2]]))
    if shape in ("managed", "placeholder", "waiting"):
        pid = "ovirt://" + spelled(vm_id, draw(st.integers(0, 3)))
    elif shape == "legacy":
        pid = "ovirt:///" + vm_id
    elif shape == "host":
        pid = "ovirt://host/" + draw(st.sampled_from(HOST_IDS))
    elif shape == "foreign":
        pid = draw(st.sampled_from(["aws:///i-1", "ovirt://", "ovirt://" + vm_id + "/x"]))
    if shape == "placeholder":
        labels = ((LABEL_MANAGED_BY, MANAGED_BY_VALUE),)
    if shape in ("waiting", "bare") or draw(st.booleans()):
        taints = (UNINITIALIZED,) if shape != "bare" or draw(st.booleans()) else ()
    hostname = draw(st.sampled_from([None, "web.example.com", "db.example.com", "h1.example.com", name]))
    return ObservedNode(name=name, uid=f"uid-{name}", resource_version="1", provider_id=pid,
                        system_uuid=system_uuid, labels=labels, taints=taints, hostname=hostname)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    fleet_vms = draw(st.lists(vms(), min_size=1, max_size=7))
    with_hosts = draw(st.booleans())
    fleet_hosts = draw(st.lists(hosts(), max_size=3)) if with_hosts else []
    snapshot = Snapshot(vms=tuple(fleet_vms), query="tag=k8s", hosts=tuple(fleet_hosts),
                        hosts_query="" if with_hosts else None,
                        inconsistent_ids=tuple(i for i in draw(st.lists(st.sampled_from(IDS[6:]), max_size=1))
                                               if i not in {providerid.normalize_vm_id(vm.id) for vm in fleet_vms}))
    observed = {n.name: n for n in draw(st.lists(nodes(), max_size=9))}  # names are unique in a cluster
    cfg = NodesConfig(name_source=draw(st.sampled_from(["name", "name", "fqdn", "short-fqdn"])),
                      register=draw(st.booleans()), initialize=draw(st.booleans()))
    fresh: dict[str, VirtualMachine | None] = {}
    for vm in draw(st.lists(st.sampled_from(fleet_vms), max_size=3)):
        if draw(st.integers(0, 5)) == 0:
            fresh[vm.id] = None  # the engine no longer has it
            continue
        changed = replace(vm, status=draw(st.sampled_from(STATUSES)))
        if draw(st.integers(0, 3)) == 0:
            changed = replace(changed, name=draw(st.sampled_from(NAMES)), fqdn=draw(st.sampled_from(FQDNS)))
        fresh[vm.id] = changed
    fresh_hosts: dict[str, Host | None] = {}
    for host in draw(st.lists(st.sampled_from(fleet_hosts), max_size=2)) if fleet_hosts else ():
        fresh_hosts[host.id] = replace(host, status=draw(st.sampled_from(HOST_STATUSES)),
                                       name=draw(st.sampled_from([host.name, "h1", "web"])))
    return snapshot, tuple(sorted(observed.values(), key=lambda n: n.name)), cfg, fresh, fresh_hosts


def whole(snapshot: Snapshot, cfg: NodesConfig, fresh: dict[str, VirtualMachine | None],
          fresh_hosts: dict[str, Host | None]) -> Snapshot:
    """What the targeted sweep's discovery is: the base with the refreshed records (a 404 keeps the old one)."""
    return replace(snapshot, vms=tuple(fresh.get(vm.id) or vm for vm in snapshot.vms),
                   hosts=tuple(fresh_hosts.get(h.id) or h for h in snapshot.hosts))


def same_index(a: Fleet, b: Fleet) -> None:
    assert (a.snapshot, a.entries, a.names, a.fqdns, a.host_uuids, a.contested) == (
        b.snapshot, b.entries, b.names, b.fqdns, b.host_uuids, b.contested)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_targeted_plan_is_the_whole_plan_filtered_to_its_targets(world: World) -> None:
    snapshot, observed, cfg, fresh, fresh_hosts = world
    base = fleet_of(snapshot, desired_nodes(snapshot, cfg), cfg)
    after = whole(snapshot, cfg, fresh, fresh_hosts)
    desired = desired_nodes(after, cfg)
    targets = targets_of(fresh, fresh_hosts)
    full = plan_sync(desired, observed, nodes=replace(cfg, delete=False), controller=CONTROLLER)
    expected = restrict(full, targets)
    contested = {spec.vm_id for spec in desired.contested}
    if any(a.vm_id in contested and a.kind is not ActionKind.SKIP for a in full.actions):
        event("a contested name kept by its node's VM or host")
    updated = base.updated(fresh, fresh_hosts)
    if updated is None:
        return  # not provably equal: the controller plans the whole fleet
    same_index(updated, fleet_of(after, desired, cfg))
    plan = plan_targeted(updated, targets, observed, controller=CONTROLLER)
    if plan is None:
        assert targets & updated.unsafe  # names are unique here: only an owner listed twice or so refuses
        return
    event("restricted")
    for kind in {f"{a.kind.value} {a.reason}" for a in plan.actions}:
        event(kind)
    assert plan.actions == expected.actions


def test_the_restricted_path_is_taken_for_plain_status_changes_and_refused_when_unsure() -> None:
    cfg = NodesConfig()
    web = VirtualMachine(id=IDS[0], name="web", status="up", cluster="east", datacenter="dc")
    db = VirtualMachine(id=IDS[1], name="db", status="up", cluster="east", datacenter="dc")
    snapshot = Snapshot(vms=(web, db), query="")
    base = fleet_of(snapshot, desired_nodes(snapshot, cfg), cfg)
    assert base.updated({web.id: replace(web, status="down")}) is not None
    assert base.updated({web.id: replace(web, name="db")}) is None  # the name is taken: duplicate-name for both
    assert base.updated({web.id: replace(web, name="web2")}) is not None  # a free name
    assert base.updated({web.id: replace(web, id=IDS[2])}) is None  # the engine answered with another VM
    twice = Snapshot(vms=(web, replace(web, id=web.id.upper()), db), query="")
    assert fleet_of(twice, desired_nodes(twice, cfg), cfg).updated({web.id: replace(web, status="down")}) is None
    host = Host(id=HOST_IDS[0], name="h1", status="up")
    with_host = replace(snapshot, hosts=(host,), hosts_query="")
    fleet = fleet_of(with_host, desired_nodes(with_host, cfg), cfg)
    updated = fleet.updated(hosts={host.id: replace(host, status="maintenance")})
    assert updated is not None
    spec = updated.entries[providerid.owner_key(KIND_HOST, host.id)]
    assert not isinstance(spec, tuple) and spec.maintenance
    repeated = (ObservedNode(name="web", uid="a", resource_version="1"),
                ObservedNode(name="web", uid="b", resource_version="1"))
    assert plan_targeted(base, targets_of([web.id]), repeated, controller=CONTROLLER) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(0, 6), st.sampled_from(["web", "k-9", "db.example.com"]), st.integers(0, 3))
def test_a_joining_nodes_targets_plan_what_the_whole_plan_does_to_it(world: World, which: int, name: str,
                                                                     how: int) -> None:
    """A kubelet's node waiting for initialization, planned from the last discovery with only the owners that may
    claim it (Fleet.joining): the same actions as the whole plan over that discovery filtered to them, and every
    action of the whole plan on that node among them."""
    snapshot, observed, cfg, _, _ = world
    machine = snapshot.vms[which % len(snapshot.vms)].id
    if name not in {n.name for n in observed}:  # a kubelet on one of the VMs joins too
        observed = tuple(sorted((*observed, ObservedNode(
            name=name, uid=f"uid-{name}", resource_version="1", system_uuid=spelled(machine, how),
            taints=(UNINITIALIZED,))), key=lambda n: n.name))
    desired = desired_nodes(snapshot, cfg)
    fleet = fleet_of(snapshot, desired, cfg)
    everything = plan_sync(desired, observed, nodes=replace(cfg, delete=False), controller=CONTROLLER)
    for node in observed:
        joining = fleet.joining(node) if node.waits_for_cloud_provider else None
        if joining is None:
            continue
        targets = targets_of(*joining)
        plan = plan_targeted(fleet, targets, observed, controller=CONTROLLER)
        assert plan is not None
        event("joining")
        assert plan.actions == restrict(everything, targets).actions
        assert {a for a in everything.actions if a.node == node.name} <= set(plan.actions)


def test_a_joining_node_is_targeted_only_when_its_system_uuid_names_a_vm_or_host_of_the_discovery() -> None:
    cfg = NodesConfig()
    web = VirtualMachine(id=IDS[0], name="web", status="up", cluster="east", datacenter="dc")
    db = VirtualMachine(id=IDS[1], name="db", status="up", cluster="east", datacenter="dc")
    host = Host(id=HOST_IDS[0], name="h1", status="up", system_uuid=HOST_UUIDS[0])
    snapshot = Snapshot(vms=(web, db), query="", hosts=(host,), hosts_query="")
    fleet = fleet_of(snapshot, desired_nodes(snapshot, cfg), cfg)

    def kubelet(name: str, system_uuid: str | None) -> ObservedNode:
        return ObservedNode(name=name, uid=f"uid-{name}", resource_version="1", system_uuid=system_uuid,
                            taints=(UNINITIALIZED,))

    assert fleet.joining(kubelet("web", IDS[0].upper())) == ((web.id,), ())
    assert fleet.joining(kubelet("web", providerid.uuid_forms(IDS[0])[1])) == ((web.id,), ())  # mixed-endian
    # named like db, but its machine is web: both may claim it (the planner decides), both are planned
    assert fleet.joining(kubelet("db", IDS[0])) == (tuple(sorted((web.id, db.id))), ())
    assert fleet.joining(kubelet("h1", HOST_UUIDS[0])) == ((), (host.id,))
    assert fleet.joining(kubelet("web", None)) is None  # no systemUUID: a full sweep decides
    assert fleet.joining(kubelet("web", IDS[5])) is None  # a machine the discovery does not have (a new VM)
    assert fleet.joining(kubelet("web", "not-a-uuid")) is None


def test_a_joining_node_whose_node_ip_the_last_discovery_lacks_names_its_vm_for_a_refresh() -> None:
    cfg = NodesConfig()
    booted = VirtualMachine(id=IDS[0], name="web", status="up", cluster="east", datacenter="dc",
                            nics=(GuestNic("eth0", ips=("10.0.0.1",)),), guest_agent=True)
    silent = VirtualMachine(id=IDS[1], name="db", status="up", cluster="east", datacenter="dc")  # no IP yet
    snapshot = Snapshot(vms=(booted, silent), query="")
    fleet = fleet_of(snapshot, desired_nodes(snapshot, cfg), cfg)
    observed = tuple(ObservedNode(name=vm.name, uid=f"uid-{vm.name}", resource_version="1", system_uuid=vm.id,
                                  annotations=((ANNOTATION_PROVIDED_NODE_IP, ip),), taints=(UNINITIALIZED,))
                     for vm, ip in ((booted, "10.0.0.1"), (silent, "10.0.0.2")))
    plan = plan_targeted(fleet, targets_of([booted.id, silent.id]), observed, controller=CONTROLLER)
    assert plan is not None
    assert {a.node for a in plan.actions if a.kind is ActionKind.INITIALIZE} == {"web"}
    assert stale_for(plan, [booted.id, silent.id]) == (silent.id,)
    assert stale_for(plan, [booted.id]) == ()  # only the ones asked about
