"""Planning (plan.py): every rule, plus property tests on random fleets (pure, fast)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ovirt_cloudprovider.core.absence import deletion_limit
from ovirt_cloudprovider.core.plan import REASON_UNADOPTED, plan_sync
from ovirt_cloudprovider.core.providerid import vm_id_of
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ENGINE,
    ANNOTATION_OWNER,
    ANNOTATION_VM_ID,
    LABEL_ARCH,
    LABEL_MANAGED_BY,
    LABEL_OS,
    LABEL_OVIRT_HOST,
    LABEL_ZONE,
    MANAGED_BY_VALUE,
    TAINT_NOT_READY,
    TAINT_SHUTDOWN,
    Action,
    ActionKind,
    Desired,
    NodeAddress,
    ObservedNode,
    Plan,
    SkippedVM,
    Taint,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import (
    NOT_READY,
    OWNER,
    SHUTDOWN,
    UNINITIALIZED,
    World,
    absent_counter,
    apply_in_memory,
    desired,
    foreign_node,
    ips,
    kubelet_node,
    make_spec,
    random_world,
    synced_node,
    with_annotation,
)

K = ActionKind
NODES = NodesConfig(register=True)  # the placeholder rules; register is opt-in
CONTROLLER = ControllerConfig()


def plan(
    want: Desired, observed: list[ObservedNode] | tuple[ObservedNode, ...], *,
    nodes: NodesConfig = NODES, controller: ControllerConfig = CONTROLLER,
) -> Plan:
    return plan_sync(want, observed, nodes=nodes, controller=controller)


def kinds(p: Plan) -> list[tuple[str, ActionKind]]:
    return [(a.node, a.kind) for a in p.actions]


def writes(p: Plan) -> list[Action]:
    return [a for a in p.actions if a.writes]


def only(p: Plan, kind: ActionKind) -> Action:
    found = [a for a in p.actions if a.kind == kind]
    assert len(found) == 1, kinds(p)
    return found[0]


def assert_converged(
    want: Desired, observed: list[ObservedNode] | tuple[ObservedNode, ...], **cfg: object,
) -> None:
    """Applying the plan leaves nothing to write: the next plan is empty of writes."""
    first = plan(want, observed, **cfg)  # type: ignore[arg-type]
    after = apply_in_memory(observed, first.actions)
    second = plan(want, after, **cfg)  # type: ignore[arg-type]
    assert writes(second) == [], kinds(second)


# --- registration --------------------------------------------------------------------------------------

def test_register_running_vm_with_no_node() -> None:
    spec = make_spec("web1", fqdn="web1.example.com")
    p = plan(desired(spec), [])
    action = only(p, K.REGISTER)
    assert action.node == "web1" and action.spec == spec and action.vm_id == spec.vm_id
    assert action.reason == "RegisteredNode" and not action.warning
    assert action.provider_id == f"ovirt://{spec.vm_id}"
    assert dict(action.labels or ())[LABEL_MANAGED_BY] == MANAGED_BY_VALUE
    assert {k: v for k, v in action.labels or () if k != LABEL_MANAGED_BY} == spec.label_map
    assert action.annotations == ((ANNOTATION_VM_ID, spec.vm_id), *OWNER.annotations)
    # no uninitialized taint on nodes we register; not-ready:NoSchedule as kube-apiserver's TaintNodesByCondition
    # admission adds it (sent anyway, for clusters with that admission off), until the kubelet reports Ready
    assert action.taints == (Taint(TAINT_NOT_READY, "NoSchedule"),)
    assert action.addresses == spec.addresses
    assert "web1" in action.message and spec.vm_id in action.message
    assert p.managed_nodes == 1
    assert_converged(desired(spec), [])


def test_registrations_copy_no_label_pair_of_their_specs() -> None:
    """A registration of thousands of nodes holds their NodeSpecs' own label pairs, and equal label sets are one
    tuple (the first sweep's plan, at scale, was the largest structure of the controller's peak memory)."""
    one = make_spec("web1")
    two = replace(make_spec("web2"), labels=one.labels)
    p = plan(desired(one, two), [])
    a, b = (a for a in p.actions if a.kind is K.REGISTER)
    assert a.labels is b.labels and a.labels == tuple(sorted({**one.label_map, LABEL_MANAGED_BY: MANAGED_BY_VALUE}
                                                            .items()))
    assert all(pair is own for pair, own in zip((pl for pl in a.labels or () if pl[0] != LABEL_MANAGED_BY),
                                                 one.labels, strict=True))
    assert a.annotations is not None and b.annotations is not None and a.annotations[1] is b.annotations[1]


@pytest.mark.parametrize("status", ["down", "suspended", "unknown", "not_responding", "image_locked"])
def test_no_registration_for_a_vm_that_does_not_run(status: str) -> None:
    assert plan(desired(make_spec("web1", status=status)), []).actions == ()


def test_registration_switched_off() -> None:
    p = plan(desired(make_spec("web1")), [], nodes=NodesConfig(register=False))
    assert p.actions == () and p.managed_nodes == 0


def test_name_taken_by_a_foreign_node_is_not_registered() -> None:
    spec = make_spec("web1")
    aws = replace(foreign_node("web1"), system_uuid=spec.vm_id)
    p = plan(desired(spec), [aws])
    action = only(p, K.SKIP)
    assert action.reason == "NodeNameConflict" and action.warning and action.uid is None
    assert "aws://" in action.message and spec.vm_id in action.message
    assert writes(p) == []


def test_recreated_vm_waits_for_the_old_node_to_go() -> None:
    """Same name, new VM id: the old node is counted away, then the new VM is registered."""
    old = synced_node(make_spec("web1", vm_id="11111111-1111-4111-8111-111111111111"))
    new = make_spec("web1", vm_id="22222222-2222-4222-8222-222222222222")
    observed: tuple[ObservedNode, ...] = (old,)
    history = []
    for _ in range(5):
        p = plan(desired(new, make_spec("other")), observed)
        history.append(sorted((a.node, a.kind.value, a.reason) for a in p.actions if a.node == "web1"))
        observed = apply_in_memory(observed, p.actions)
    assert history[0] == [("web1", "mark-absent", "VMAbsent"), ("web1", "skip", "NodeNameConflict")]
    assert history[1] == [("web1", "mark-absent", "VMAbsent"), ("web1", "skip", "NodeNameConflict")]
    assert history[2] == [("web1", "delete", "DeletedNode"), ("web1", "skip", "NodeNameConflict")]
    assert history[3] == [("web1", "register", "RegisteredNode")]
    assert history[4] == []
    assert vm_id_of(next(n for n in observed if n.name == "web1").provider_id) == new.vm_id


# --- untouchable nodes -----------------------------------------------------------------------------------

def test_foreign_node_is_never_touched_even_when_it_looks_like_a_vm() -> None:
    spec = make_spec("web1", fqdn="web1.example.com", status="down")
    aws = replace(foreign_node("web1.example.com"), system_uuid=spec.vm_id.upper())
    vsphere = foreign_node("db", provider_id="vsphere://4231-aa")
    p = plan(desired(spec), [aws, vsphere])
    assert all(a.uid not in (aws.uid, vsphere.uid) for a in p.actions)
    assert p.managed_nodes == 0


def test_unprovisioned_node_that_matches_no_vm_is_never_touched() -> None:
    stray = kubelet_node("bare-metal-1", system_uuid="4c4c4544-0000-1010-8000-b2c04f333532")
    p = plan(desired(make_spec("web1")), [stray])
    assert kinds(p) == [("web1", K.REGISTER)]


def test_empty_ovirt_provider_id_is_left_alone() -> None:
    odd = foreign_node("odd", provider_id="ovirt://")
    p = plan(desired(make_spec("web1")), [odd])
    assert all(a.node != "odd" for a in p.actions)
    assert any("odd" in note for note in p.notes)


# --- matching and initialization ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "rule", ["name", "systemUUID-upper", "systemUUID-swapped", "fqdn-name", "fqdn-hostname"])
def test_initialize_kubelet_node_found_by_each_rule(rule: str) -> None:
    spec = make_spec("web1", vm_id="4a5b6c7d-1122-3344-5566-778899aabbcc", fqdn="web1.Example.com",
                     addresses=ips("10.0.0.5", hostname="web1.example.com"))
    node = {
        "name": kubelet_node("web1"),
        "systemUUID-upper": kubelet_node("k8s-worker-7", system_uuid=spec.vm_id.upper()),
        "systemUUID-swapped": kubelet_node("k8s-worker-7",
                                           system_uuid="7D6C5B4A-2211-4433-5566-778899AABBCC"),
        "fqdn-name": kubelet_node("WEB1.example.com".lower()),
        "fqdn-hostname": kubelet_node("worker-a", hostname="WEB1.EXAMPLE.COM"),
    }[rule]
    node = replace(node, taints=(NOT_READY, UNINITIALIZED, Taint("dedicated", "NoSchedule", "gpu")))
    p = plan(desired(spec), [node])
    assert kinds(p) == [(node.name, K.INITIALIZE)]
    action = p.actions[0]
    assert action.reason == "InitializedNode" and action.uid == node.uid and action.resource_version == "7"
    assert action.provider_id == spec.provider_id
    assert action.taints == (NOT_READY, Taint("dedicated", "NoSchedule", "gpu"))  # order kept
    assert action.addresses == spec.addresses
    assert action.annotations == (*OWNER.annotations, (ANNOTATION_VM_ID, spec.vm_id))  # the initialization adopts
    labels = dict(action.labels or ())
    assert labels[LABEL_ZONE] == "cluster1" and labels[LABEL_OVIRT_HOST] == "host1"
    assert LABEL_ARCH not in labels  # the kubelet already set it
    assert LABEL_MANAGED_BY not in labels
    assert spec.vm_id in action.message and "web1" in action.message
    assert p.managed_nodes == 1
    assert_converged(desired(spec), [node])


def test_initialize_keeps_a_provider_id_the_kubelet_set() -> None:
    spec = make_spec("web1")
    node = kubelet_node("web1", provider_id=spec.provider_id.upper().replace("OVIRT", "ovirt"))
    action = only(plan(desired(spec), [node]), K.INITIALIZE)
    assert action.provider_id is None
    assert action.taints == ()
    assert_converged(desired(spec), [node])


def test_initialize_a_node_without_the_taint_leaves_the_taint_list_alone() -> None:
    spec = make_spec("web1")
    node = kubelet_node("web1", uninitialized=False, taints=[NOT_READY])
    action = only(plan(desired(spec), [node]), K.INITIALIZE)
    assert action.provider_id == spec.provider_id and action.taints is None
    assert "providerID" in action.message


def test_initialize_a_node_of_a_vm_that_is_down_adds_the_shutdown_taint_in_one_action() -> None:
    spec = make_spec("web1", status="down", addresses=())
    node = kubelet_node("web1", addresses=ips("10.0.0.1"))
    p = plan(desired(spec), [node])
    action = only(p, K.INITIALIZE)
    assert len(p.actions) == 1
    assert action.taints == (SHUTDOWN,)
    assert action.addresses is None  # nothing better to offer than what the node has
    assert_converged(desired(spec), [node])


def test_initialize_switched_off() -> None:
    spec = make_spec("web1", status="down")
    unprovisioned = kubelet_node("web1")
    assert plan(desired(spec), [unprovisioned], nodes=NodesConfig(initialize=False)).actions == ()
    # A node that has our providerID but still the uninitialized taint: kept current, taint left in place.
    with_pid = kubelet_node("web1", provider_id=spec.provider_id)
    p = plan(desired(spec), [with_pid], nodes=NodesConfig(initialize=False))
    assert {a.kind for a in p.actions} == {K.TAINT, K.UPDATE}
    assert only(p, K.TAINT).taints == (UNINITIALIZED, SHUTDOWN)


def test_a_node_whose_system_uuid_names_another_machine_is_not_matched_by_name() -> None:
    spec = make_spec("web1", fqdn="web1.example.com")
    impostor = kubelet_node("web1", system_uuid="4c4c4544-0000-1010-8000-b2c04f333532")
    p = plan(desired(spec), [impostor])
    assert writes(p) == []
    action = only(p, K.SKIP)
    assert action.reason == "NodeNameConflict" and "systemUUID" in action.message


@pytest.mark.parametrize("by", ["name", "hostname"])
def test_a_kubelet_node_with_the_vms_fqdn_but_another_system_uuid_blocks_registration(by: str) -> None:
    """The VM's FQDN is taken by a kubelet node that says it is another machine: no second node, a warning."""
    spec = make_spec("web1", fqdn="web1.example.com")
    other = (kubelet_node("web1.example.com", system_uuid="4c4c4544-0000-1010-8000-b2c04f333532") if by == "name"
             else kubelet_node("worker-a", hostname="web1.example.com",
                               system_uuid="4c4c4544-0000-1010-8000-b2c04f333532"))
    p = plan(desired(spec), [other])
    assert writes(p) == []
    action = only(p, K.SKIP)
    assert action.node == "web1" and action.reason == "NodeNameConflict" and action.warning
    assert action.vm_id == spec.vm_id and action.uid is None
    assert other.name in action.message and "4c4c4544-0000-1010-8000-b2c04f333532" in action.message
    assert "web1.example.com" in action.message


def test_a_node_with_the_vms_fqdn_that_is_another_vms_does_not_block_registration() -> None:
    a = make_spec("web1", fqdn="web1.example.com")
    b = make_spec("web2")
    b_node = kubelet_node("web1.example.com", system_uuid=b.vm_id)  # B's kubelet, named like A's FQDN
    p = plan(desired(a, b), [b_node])
    assert kinds(p) == [("web1", K.REGISTER), ("web1.example.com", K.INITIALIZE)]
    assert_converged(desired(a, b), [b_node])


def test_a_system_uuid_that_is_not_a_uuid_does_not_veto_a_name_match() -> None:
    spec = make_spec("web1")
    node = kubelet_node("web1", system_uuid="Not Settable")
    assert kinds(plan(desired(spec), [node])) == [("web1", K.INITIALIZE)]


def test_legacy_provider_id_is_ours() -> None:
    spec = make_spec("web1")
    legacy = synced_node(spec, provider_id=f"ovirt:///{spec.vm_id.upper()}")
    p = plan(desired(spec), [legacy])
    assert p.actions == () and p.managed_nodes == 1
    gone = plan(desired(make_spec("other")), [legacy])
    assert only(gone, K.MARK_ABSENT).vm_id == spec.vm_id


@pytest.mark.parametrize("spelling", ["no-dashes", "braces", "upper-legacy"])
def test_a_provider_id_in_another_spelling_of_the_vm_id_is_the_same_vm(spelling: str) -> None:
    spec = make_spec("web1")
    written = {"no-dashes": f"ovirt://{spec.vm_id.replace('-', '')}", "braces": f"ovirt://{{{spec.vm_id}}}",
               "upper-legacy": f"ovirt:///{spec.vm_id.upper()}"}[spelling]
    node = synced_node(spec, provider_id=written)
    p = plan(desired(spec, make_spec("web2")), [node])
    assert all(a.node != "web1" for a in p.actions) and p.managed_nodes == 2  # web2 registered
    gone = plan(desired(make_spec("other")), [node], controller=ControllerConfig(delete_after_sweeps=1))
    assert only(gone, K.DELETE).vm_id == spec.vm_id


@pytest.mark.parametrize("written", ["ovirt://not-a-uuid", "ovirt://{vm}/extra", "ovirt:////{vm}"])
def test_a_provider_id_under_ovirt_that_is_no_vm_id_is_foreign(written: str) -> None:
    spec = make_spec("web1")
    node = synced_node(spec, name="odd", provider_id=written.format(vm=spec.vm_id))
    p = plan(desired(make_spec("other")), [node], controller=ControllerConfig(delete_after_sweeps=1))
    assert all(a.node != "odd" for a in p.actions) and p.managed_nodes == 1  # only "other", registered
    assert any("odd" in note for note in p.notes)


# --- ambiguity --------------------------------------------------------------------------------------------

def test_node_matching_two_vms_is_ambiguous() -> None:
    a, b = make_spec("web1", fqdn="web1.example.com"), make_spec("web2")
    node = kubelet_node("web2", hostname="web1.example.com")  # A by FQDN, B by name
    p = plan(desired(a, b), [node])
    assert kinds(p) == [("web2", K.AMBIGUOUS)]
    action = p.actions[0]
    assert action.warning and action.reason == "AmbiguousMatch" and action.uid == node.uid
    assert a.vm_id in action.message and b.vm_id in action.message and "2 VMs" in action.message
    assert writes(p) == []  # and neither VM gets a node of its own while it is unresolved


def test_system_uuid_outweighs_a_name_that_belongs_to_another_vm() -> None:
    """The node reports VM A's SMBIOS UUID, so it is A's, whatever its name; B cannot take the name."""
    a, b = make_spec("web1"), make_spec("web2")
    node = kubelet_node("web2", system_uuid=a.vm_id)
    p = plan(desired(a, b), [node])
    assert kinds(p) == [("web2", K.INITIALIZE), ("web2", K.SKIP)]
    assert p.actions[0].provider_id == a.provider_id and p.actions[0].vm_id == a.vm_id
    assert p.actions[1].reason == "NodeNameConflict" and p.actions[1].vm_id == b.vm_id


def test_vm_matching_two_nodes_is_ambiguous() -> None:
    spec = make_spec("web1", fqdn="web1.example.com")
    by_uuid = kubelet_node("worker-1", system_uuid=spec.vm_id)
    by_fqdn = kubelet_node("web1.example.com")
    p = plan(desired(spec), [by_uuid, by_fqdn])
    assert kinds(p) == [("web1.example.com", K.AMBIGUOUS), ("worker-1", K.AMBIGUOUS)]
    assert all(a.warning and spec.vm_id in a.message and "2 nodes" in a.message for a in p.actions)


def test_two_kubelet_nodes_with_the_same_provider_id_are_ambiguous() -> None:
    spec = make_spec("web1", status="down")
    n1 = synced_node(spec, name="web1", taints=())
    n2 = absent_counter(synced_node(spec, name="web1-old", taints=()), 2)
    p = plan(desired(spec), [n1, n2])
    assert kinds(p) == [("web1", K.AMBIGUOUS), ("web1-old", K.CLEAR_ABSENT), ("web1-old", K.AMBIGUOUS)]
    # The only write: resetting our own counter, since the VM is provably present.
    assert [a.annotations for a in writes(p)] == [((ANNOTATION_ABSENT_SWEEPS, None),)]


def test_extra_unprovisioned_node_of_a_vm_that_has_its_node_is_reported() -> None:
    spec = make_spec("web1", fqdn="web1.example.com")
    owner = synced_node(spec)
    extra = kubelet_node("web1.example.com")
    p = plan(desired(spec), [owner, extra])
    assert kinds(p) == [("web1.example.com", K.AMBIGUOUS)]
    assert "already has node web1" in p.actions[0].message


# --- placeholder vs kubelet -------------------------------------------------------------------------------

def test_kubelet_node_replaces_our_placeholder_once_initialized() -> None:
    """The placeholder is deleted only in the sweep after the one that initializes the kubelet's node: the writer
    applies different nodes' actions in parallel, so planning both at once could land the deletion without the
    initialization (lease lost mid-apply, initialization failed) and leave the VM with only an uninitialized node."""
    spec = make_spec("web1", fqdn="web1.example.com")
    placeholder = synced_node(spec, placeholder=True)
    kubelet = kubelet_node("web1.example.com", system_uuid=spec.vm_id)
    first = plan(desired(spec), [placeholder, kubelet])
    assert kinds(first) == [("web1.example.com", K.INITIALIZE)]
    assert "Placeholder node web1 is kept until node web1.example.com is initialized" in first.actions[0].message
    # the initialization did not land (lease lost, conflict): the next sweep plans it again, still no deletion
    assert kinds(plan(desired(spec), [placeholder, kubelet])) == [("web1.example.com", K.INITIALIZE)]
    second = plan(desired(spec), list(apply_in_memory([placeholder, kubelet], first.actions)))
    assert kinds(second) == [("web1", K.DELETE)]
    delete = second.actions[0]
    assert delete.reason == "ReplacedByKubelet" and delete.uid == placeholder.uid
    assert delete.resource_version == placeholder.resource_version
    assert "web1.example.com" in delete.message
    assert (first.managed_nodes, second.managed_nodes) == (2, 1)  # the kept placeholder, then the kubelet's node


def test_placeholder_is_kept_while_its_kubelet_node_carries_the_uninitialized_taint() -> None:
    spec = make_spec("web1")
    placeholder = synced_node(spec, placeholder=True)
    kubelet = synced_node(spec, name="web1-k", taints=(UNINITIALIZED,))
    p = plan(desired(spec), [placeholder, kubelet])
    assert kinds(p) == [("web1-k", K.INITIALIZE)]
    # initialization off: the placeholder stays as long as the kubelet's node is not initialized
    assert [a for a in plan(desired(spec), [placeholder, kubelet], nodes=replace(NODES, initialize=False)).actions
            if a.kind == K.DELETE] == []


def test_kubelet_node_with_provider_id_replaces_our_placeholder() -> None:
    spec = make_spec("web1")
    placeholder = synced_node(spec, placeholder=True)
    kubelet = synced_node(spec, name="web1-k")
    p = plan(desired(spec), [placeholder, kubelet])
    assert kinds(p) == [("web1", K.DELETE)]
    assert p.actions[0].reason == "ReplacedByKubelet"


def test_placeholder_replacement_needs_the_delete_switch_and_is_not_breaker_counted() -> None:
    specs = [make_spec(f"web{i}") for i in range(4)]
    observed = [synced_node(s, placeholder=True) for s in specs]
    observed += [kubelet_node(f"k{i}", system_uuid=s.vm_id) for i, s in enumerate(specs)]
    first = plan(desired(*specs), observed, controller=ControllerConfig(max_delete_count=1))
    assert {a.kind for a in first.actions} == {K.INITIALIZE}
    initialized = list(apply_in_memory(observed, first.actions))
    p = plan(desired(*specs), initialized, controller=ControllerConfig(max_delete_count=1))
    assert sum(a.reason == "ReplacedByKubelet" for a in p.actions) == 4
    off = plan(desired(*specs), observed, nodes=NodesConfig(delete=False))
    assert {a.kind for a in off.actions} == {K.INITIALIZE}
    assert_converged(desired(*specs), observed, nodes=NodesConfig(delete=False))


def test_placeholder_alone_is_kept_current() -> None:
    spec = make_spec("web1", host="host2")
    placeholder = synced_node(make_spec("web1", host="host1"), placeholder=True)
    p = plan(desired(spec), [placeholder])
    assert kinds(p) == [("web1", K.UPDATE)]
    assert p.actions[0].labels == ((LABEL_OVIRT_HOST, "host2"),)


# --- updates --------------------------------------------------------------------------------------------

def test_live_migration_changes_only_the_host_label() -> None:
    node = synced_node(make_spec("web1", host="host1"))
    moved = make_spec("web1", host="host2")
    p = plan(desired(moved), [node])
    action = only(p, K.UPDATE)
    assert len(p.actions) == 1
    assert action.labels == ((LABEL_OVIRT_HOST, "host2"),)
    assert action.addresses is None and action.annotations is None and action.taints is None
    assert action.uid == node.uid and action.resource_version == node.resource_version
    assert "host2" in action.message and moved.vm_id in action.message


def test_labels_we_do_not_own_are_never_changed() -> None:
    spec = make_spec("web1", extra_labels=[("env", "prod")])
    node = synced_node(spec)
    labels = dict(node.labels)
    labels.update({"team": "payments", LABEL_ARCH: "arm64", "ovirt.org/custom": "x"})
    labels.pop(LABEL_OS)
    labels.pop(LABEL_ZONE)
    labels["env"] = "dev"
    p = plan(desired(spec), [replace(node, labels=tuple(sorted(labels.items())))])
    action = only(p, K.UPDATE)
    # zone restored, extra label corrected; arch is the kubelet's; team and ovirt.org/custom are the user's.
    assert action.labels == (("env", "prod"), (LABEL_ZONE, "cluster1"))


def test_managed_by_label_is_never_put_on_a_kubelet_node() -> None:
    """Only REGISTER marks a node as ours, even if a NodeSpec carried the label."""
    spec = make_spec("web1", extra_labels=[(LABEL_MANAGED_BY, MANAGED_BY_VALUE)])
    action = only(plan(desired(spec), [kubelet_node("web1")]), K.INITIALIZE)
    assert LABEL_MANAGED_BY not in dict(action.labels or ())
    kubelet = synced_node(spec)
    kubelet = replace(kubelet, labels=tuple((k, v) for k, v in kubelet.labels if k != LABEL_MANAGED_BY))
    assert plan(desired(spec), [kubelet]).actions == ()


def test_kubelet_labels_are_added_when_missing() -> None:
    spec = make_spec("web1")
    node = synced_node(spec)
    node = replace(node, labels=tuple((k, v) for k, v in node.labels if k != LABEL_ARCH))
    assert only(plan(desired(spec), [node]), K.UPDATE).labels == ((LABEL_ARCH, "amd64"),)


def test_host_label_is_removed_when_the_vm_stops_and_shutdown_taint_added() -> None:
    node = synced_node(make_spec("web1", status="up"), taints=(NOT_READY,))
    down = make_spec("web1", status="down", addresses=())
    p = plan(desired(down), [node])
    assert kinds(p) == [("web1", K.TAINT), ("web1", K.UPDATE)]
    assert p.actions[0].taints == (NOT_READY, SHUTDOWN) and p.actions[0].reason == "ShutdownTaintAdded"
    assert p.actions[1].labels == ((LABEL_OVIRT_HOST, None),)
    assert p.actions[1].addresses is None  # the down VM's agent is silent: addresses kept
    assert_converged(desired(down), [node])


def test_zone_keeps_its_last_value_when_no_longer_produced() -> None:
    node = synced_node(make_spec("web1"))
    spec = make_spec("web1")
    spec = replace(spec, labels=tuple((k, v) for k, v in spec.labels if k != LABEL_ZONE))
    assert plan(desired(spec), [node]).actions == ()


def test_addresses_are_replaced_as_a_complete_list_when_they_differ() -> None:
    spec = make_spec("web1", addresses=ips("10.0.0.1", "10.0.0.2", hostname="web1.example.com"))
    reordered = synced_node(spec, addresses=tuple(reversed(spec.addresses)))
    assert only(plan(desired(spec), [reordered]), K.UPDATE).addresses == spec.addresses
    changed = synced_node(spec, addresses=ips("10.0.0.9"))
    assert only(plan(desired(spec), [changed]), K.UPDATE).addresses == spec.addresses


@pytest.mark.parametrize("silent", [(), ips(hostname="web1.example.com")])
def test_silent_guest_agent_keeps_the_last_known_addresses(silent: tuple[NodeAddress, ...]) -> None:
    node = synced_node(make_spec("web1", addresses=ips("10.0.0.1", hostname="web1.example.com")))
    assert plan(desired(make_spec("web1", addresses=silent)), [node]).actions == ()


def test_hostname_only_is_written_when_the_node_has_no_ip_and_nothing_blanks_addresses() -> None:
    spec = make_spec("web1", addresses=ips(hostname="web1.example.com"))
    bare = synced_node(spec, addresses=())
    assert only(plan(desired(spec), [bare]), K.UPDATE).addresses == spec.addresses
    empty = make_spec("web1", addresses=())
    assert plan(desired(empty), [synced_node(spec)]).actions == ()


def test_the_kubelets_hostname_is_kept_when_the_engine_has_no_fqdn() -> None:
    """Like the upstream node controller: without a Hostname from the cloud, the node's own stays."""
    spec = make_spec("web1", addresses=ips("10.0.0.1"))  # the guest agent reports no FQDN
    kubelet_hostname = NodeAddress("Hostname", "web1.lab")
    fresh = kubelet_node("web1", addresses=(NodeAddress("InternalIP", "192.168.1.9"), kubelet_hostname))
    action = only(plan(desired(spec), [fresh]), K.INITIALIZE)
    assert action.addresses == (NodeAddress("InternalIP", "10.0.0.1"), kubelet_hostname)
    assert_converged(desired(spec), [fresh])
    initialized = synced_node(spec, addresses=(NodeAddress("InternalIP", "10.0.0.1"), kubelet_hostname))
    assert plan(desired(spec), [initialized]).actions == ()
    moved = make_spec("web1", addresses=ips("10.0.0.2"))
    assert only(plan(desired(moved), [initialized]), K.UPDATE).addresses == (
        NodeAddress("InternalIP", "10.0.0.2"), kubelet_hostname)
    # An FQDN from the engine replaces the kubelet's Hostname.
    named = make_spec("web1", addresses=ips("10.0.0.1", hostname="web1.example.com"))
    assert only(plan(desired(named), [initialized]), K.UPDATE).addresses == named.addresses


PROVIDED_IP = "alpha.kubernetes.io/provided-node-ip"


def _two_nics(*extra: NodeAddress) -> tuple[NodeAddress, ...]:
    return (NodeAddress("InternalIP", "10.10.0.2"), NodeAddress("InternalIP", "192.168.7.2"), *extra,
            NodeAddress("ExternalIP", "203.0.113.7"), NodeAddress("Hostname", "web1.example.com"))


def test_the_kubelets_node_ip_decides_the_nodes_internal_ip_on_initialize() -> None:
    """kubelet --node-ip=192.168.7.2: that address, and no other of its type, as upstream does."""
    spec = make_spec("web1", fqdn="web1.example.com", addresses=_two_nics())
    node = kubelet_node("web1", annotations=[(PROVIDED_IP, "192.168.7.2")])
    action = only(plan(desired(spec), [node]), K.INITIALIZE)
    assert action.addresses == (NodeAddress("InternalIP", "192.168.7.2"), NodeAddress("ExternalIP", "203.0.113.7"),
                                NodeAddress("Hostname", "web1.example.com"))
    assert_converged(desired(spec), [node])


def test_the_kubelets_dual_stack_node_ips_decide_both_families() -> None:
    spec = make_spec("web1", fqdn="web1.example.com", addresses=_two_nics(
        NodeAddress("InternalIP", "fd00::2"), NodeAddress("InternalIP", "fd00::7")))
    node = kubelet_node("web1", annotations=[(PROVIDED_IP, "192.168.7.2,FD00:0::7")])
    action = only(plan(desired(spec), [node]), K.INITIALIZE)
    assert action.addresses == (
        NodeAddress("InternalIP", "192.168.7.2"), NodeAddress("InternalIP", "fd00::7"),
        NodeAddress("ExternalIP", "203.0.113.7"), NodeAddress("Hostname", "web1.example.com"))
    assert_converged(desired(spec), [node])


@pytest.mark.parametrize(("provided", "reason", "words"), [
    ("192.168.7.9", "ProvidedNodeIPNotFound", "192.168.7.9"),
    ("192.168.7.2,fd00::9", "ProvidedNodeIPNotFound", "fd00::9"),
    ("not-an-ip", "ProvidedNodeIPInvalid", "not-an-ip"),
    ("192.168.7.2,10.10.0.2", "ProvidedNodeIPInvalid", "dual-stack"),
])
def test_a_node_ip_the_engine_does_not_report_stops_initialization(provided: str, reason: str,
                                                                   words: str) -> None:
    spec = make_spec("web1", fqdn="web1.example.com", addresses=_two_nics())
    node = kubelet_node("web1", annotations=[(PROVIDED_IP, provided)],
                        addresses=ips("192.168.7.9", hostname="web1"))
    p = plan(desired(spec), [node])
    assert writes(p) == [] and p.managed_nodes == 0
    action = only(p, K.SKIP)
    assert action.node == "web1" and action.reason == reason and action.warning
    assert action.uid == node.uid and action.vm_id == spec.vm_id
    assert words in action.message and spec.vm_id in action.message
    # Without any IP from the engine (guest agent silent) the node is not initialized either.
    silent = plan(desired(make_spec("web1", addresses=())), [node])
    assert writes(silent) == [] and only(silent, K.SKIP).reason == reason


def test_address_updates_respect_the_kubelets_node_ip() -> None:
    spec = make_spec("web1", fqdn="web1.example.com", addresses=_two_nics())
    kept = (NodeAddress("InternalIP", "192.168.7.2"), NodeAddress("ExternalIP", "203.0.113.7"),
            NodeAddress("Hostname", "web1.example.com"))
    node = with_annotation(synced_node(spec, addresses=kept), PROVIDED_IP, "192.168.7.2")
    assert plan(desired(spec), [node]).actions == ()
    stale = replace(node, addresses=ips("10.10.0.2", "192.168.7.2"))
    assert only(plan(desired(spec), [stale]), K.UPDATE).addresses == kept
    # The engine no longer reports the node IP: addresses stay, other changes go through, a warning says why.
    moved = make_spec("web1", fqdn="web1.example.com", host="host2", addresses=ips("10.10.0.2"))
    p = plan(desired(moved), [node])
    update = only(p, K.UPDATE)
    assert update.addresses is None and dict(update.labels or ()) == {LABEL_OVIRT_HOST: "host2"}
    warning = only(p, K.SKIP)
    assert warning.reason == "ProvidedNodeIPNotFound" and warning.warning and "192.168.7.2" in warning.message
    # A silent guest agent keeps the addresses quietly, as without a node IP.
    assert plan(desired(make_spec("web1", addresses=())), [node]).actions == ()


def test_a_reversed_guest_agent_report_writes_nothing() -> None:
    from ovirt_cloudprovider.core.desired import desired_nodes
    from ovirt_cloudprovider.core.records import GuestNic, Snapshot, VirtualMachine

    nics = (GuestNic("eth0", ips=("10.0.0.7", "10.0.0.3")), GuestNic("eth1", ips=("192.168.7.2",)))
    machine = VirtualMachine(id=make_spec("web1").vm_id, name="web1", status="up", nics=nics,
                             fqdn="web1.example.com")
    first = desired_nodes(Snapshot(vms=(machine,), query=""), NODES)
    node = synced_node(first.nodes[0])
    flipped = replace(machine, nics=tuple(GuestNic(n.name, n.mac, tuple(reversed(n.ips))) for n in reversed(nics)))
    again = desired_nodes(Snapshot(vms=(flipped,), query=""), NODES)
    assert plan(again, [node]).actions == ()


def test_missing_vm_id_annotation_is_restored() -> None:
    spec = make_spec("web1")
    node = synced_node(spec, annotations=OWNER.annotations)
    assert only(plan(desired(spec), [node]), K.UPDATE).annotations == ((ANNOTATION_VM_ID, spec.vm_id),)


def test_update_switched_off() -> None:
    node = synced_node(make_spec("web1", host="host1"))
    moved = make_spec("web1", host="host2")
    assert plan(desired(moved), [node], nodes=NodesConfig(update=False)).actions == ()


# --- shutdown taint -------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["down", "suspended"])
def test_shutdown_taint_added(status: str) -> None:
    spec = make_spec("web1", status=status)
    node = synced_node(spec, taints=(NOT_READY,))
    action = only(plan(desired(spec), [node]), K.TAINT)
    assert action.taints == (NOT_READY, SHUTDOWN) and action.uid == node.uid
    assert status in action.message and spec.vm_id in action.message


@pytest.mark.parametrize("status", ["up", "migrating", "paused", "powering_up", "reboot_in_progress"])
def test_shutdown_taint_removed_when_the_vm_runs(status: str) -> None:
    spec = make_spec("web1", status=status)
    node = synced_node(spec, taints=(NOT_READY, SHUTDOWN, Taint("dedicated", "NoSchedule", "gpu")))
    action = only(plan(desired(spec), [node]), K.UNTAINT)
    assert action.taints == (NOT_READY, Taint("dedicated", "NoSchedule", "gpu"))
    assert action.reason == "ShutdownTaintRemoved"


@pytest.mark.parametrize("status", ["unknown", "not_responding", "image_locked"])
@pytest.mark.parametrize("tainted", [True, False])
def test_vm_that_exists_in_an_unclear_state_changes_nothing(status: str, tainted: bool) -> None:
    spec = make_spec("web1", status=status, addresses=())
    node = absent_counter(synced_node(make_spec("web1"), taints=(SHUTDOWN,) if tainted else ()), 2)
    node = replace(node, labels=tuple((k, v) for k, v in node.labels if k != LABEL_OVIRT_HOST))
    p = plan(desired(spec), [node], controller=ControllerConfig(delete_after_sweeps=1))
    assert kinds(p) == [("web1", K.CLEAR_ABSENT)]


def test_taint_switched_off() -> None:
    spec = make_spec("web1", status="down")
    node = synced_node(spec, taints=())
    assert plan(desired(spec), [node], nodes=NodesConfig(taint_shutdown=False)).actions == ()


# --- deletion -------------------------------------------------------------------------------------------

def sweeps(want: Desired, observed: tuple[ObservedNode, ...], count: int, **cfg: object) -> tuple[
        list[Plan], tuple[ObservedNode, ...]]:
    plans = []
    for _ in range(count):
        p = plan(want, observed, **cfg)  # type: ignore[arg-type]
        plans.append(p)
        observed = apply_in_memory(observed, p.actions)
    return plans, observed


def test_node_is_deleted_on_the_nth_absent_sweep_not_earlier() -> None:
    gone = synced_node(make_spec("gone"))
    want = desired(make_spec("web1"))
    plans, final = sweeps(want, (gone, synced_node(make_spec("web1"))), 4)
    for sweep, count in ((0, "1"), (1, "2")):
        assert [(a.kind, a.annotations) for a in plans[sweep].actions] == [
            (K.MARK_ABSENT, ((ANNOTATION_ABSENT_SWEEPS, count),))]
    delete = only(plans[2], K.DELETE)
    assert delete.reason == "DeletedNode" and delete.uid == gone.uid and delete.resource_version == "9"
    assert "3 consecutive" in delete.message and str(vm_id_of(gone.provider_id)) in delete.message
    assert plans[0].actions[0].reason == "VMAbsent" and "1 consecutive" in plans[0].actions[0].message
    assert plans[3].actions == ()
    assert [n.name for n in final] == ["web1"]
    assert (plans[0].managed_nodes, plans[2].managed_nodes) == (2, 1)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_deletion_threshold_is_configurable(n: int) -> None:
    controller = ControllerConfig(delete_after_sweeps=n)
    plans, _ = sweeps(desired(make_spec("web1")), (synced_node(make_spec("gone")),), n, controller=controller)
    assert [p.actions[0].kind for p in plans] == [K.MARK_ABSENT] * (n - 1) + [K.DELETE]


def test_counter_resets_when_the_vm_is_seen_again() -> None:
    spec = make_spec("web1")
    node = synced_node(spec)
    others = make_spec("other")
    _, observed = sweeps(desired(others), (node,), 2)
    assert dict(next(n for n in observed if n.name == "web1").annotations)[ANNOTATION_ABSENT_SWEEPS] == "2"
    back = plan(desired(spec, others), observed)
    action = only(back, K.CLEAR_ABSENT)
    assert action.reason == "VMReappeared" and action.annotations == ((ANNOTATION_ABSENT_SWEEPS, None),)
    assert spec.vm_id in action.message and "2 absent" in action.message
    observed = apply_in_memory(observed, back.actions)
    again = plan(desired(others), observed)
    assert only(again, K.MARK_ABSENT).annotations == ((ANNOTATION_ABSENT_SWEEPS, "1"),)


@pytest.mark.parametrize(("value", "expected"), [
    ("junk", K.MARK_ABSENT), ("-4", K.MARK_ABSENT), ("", K.MARK_ABSENT), ("2", K.DELETE), ("17", K.DELETE)])
def test_counter_values(value: str, expected: ActionKind) -> None:
    node = absent_counter(synced_node(make_spec("gone")), value)
    p = plan(desired(make_spec("elsewhere", status="down")), [node])  # a VM without a node, not running
    assert [a.kind for a in p.actions] == [expected]
    if expected == K.MARK_ABSENT:
        assert p.actions[0].annotations == ((ANNOTATION_ABSENT_SWEEPS, "1"),)


def test_a_vm_filter_naming_an_unknown_tag_counts_no_vm_absent() -> None:
    """A tag of [filters] vms renamed or removed: absent VMs' nodes are blocked, neither marked nor deleted, even
    those due; present ones are written as usual; the other kind's absence is still counted."""
    present = make_spec("web0")
    due, fresh = absent_counter(synced_node(make_spec("web1")), 2), synced_node(make_spec("web2"))
    want = replace(desired(present), vm_filter_unknown_tags=("gpu-workers",))
    p = plan(want, [synced_node(present), due, fresh])
    assert kinds(p) == [("web1", K.BLOCK_DELETE), ("web2", K.BLOCK_DELETE)]
    assert all(a.reason == "UnknownFilterTag" and a.warning and "'gpu-workers'" in a.message for a in p.actions)
    assert any(note.startswith("UnknownFilterTag: [filters] vms") for note in p.notes)
    assert plan(replace(want, vm_filter_unknown_tags=(), host_filter_unknown_tags=("metal",)),
                [synced_node(present), fresh]).actions[0].kind is K.MARK_ABSENT
    assert plan(want, [synced_node(present), due], nodes=replace(NODES, delete=False)).actions == ()


def test_placeholder_of_a_gone_vm_follows_the_same_rule() -> None:
    placeholder = synced_node(make_spec("gone"), placeholder=True)
    plans, _ = sweeps(desired(make_spec("web1")), (placeholder,), 3)
    assert [p.actions[0].kind for p in plans] == [K.MARK_ABSENT, K.MARK_ABSENT, K.DELETE]


def test_skipped_vm_keeps_its_node() -> None:
    spec = make_spec("web1")
    node = absent_counter(synced_node(spec), 2)
    skip = SkippedVM(vm_id=spec.vm_id.upper(), vm_name="Web_1", reason="invalid node name 'Web_1'")
    p = plan(desired(skipped=[skip]), [node])
    assert kinds(p) == [("web1", K.CLEAR_ABSENT), ("", K.SKIP)]
    skip_action = p.actions[1]
    assert skip_action.reason == "SkippedVM" and "Web_1" in skip_action.message and not skip_action.writes


def test_empty_discovery_blocks_every_mark_and_deletion() -> None:
    nodes = [absent_counter(synced_node(make_spec(f"web{i}")), i) for i in range(4)]
    p = plan(desired(), nodes)
    assert [a.kind for a in p.actions] == [K.BLOCK_DELETE] * 4
    assert all(a.reason == "EmptyDiscovery" and a.warning and "4 managed" in a.message for a in p.actions)
    assert writes(p) == [] and p.managed_nodes == 4
    assert any(note.startswith("EmptyDiscovery") for note in p.notes)
    # Repeated empty answers never advance the counters.
    _, after = sweeps(desired(), tuple(nodes), 5)
    assert after == tuple(nodes)


def test_empty_discovery_without_managed_nodes_is_quiet() -> None:
    stray = kubelet_node("k1")
    assert plan(desired(), [stray, foreign_node("aws1")]).actions == ()


def test_only_skipped_vms_is_not_an_empty_discovery() -> None:
    skip = SkippedVM(vm_id="3f0c1f4e-0000-4000-8000-000000000001", vm_name="Bad_Name", reason="invalid")
    p = plan(desired(skipped=[skip]), [synced_node(make_spec("gone"))])
    assert [a.kind for a in p.actions] == [K.MARK_ABSENT, K.SKIP]


@pytest.mark.parametrize(("managed", "fraction", "cap", "due", "blocked"), [
    (10, 0.5, 10, 5, False), (10, 0.5, 10, 6, True),   # fraction edge: 5 of 10
    (10, 0.5, 3, 3, False), (10, 0.5, 3, 4, True),     # absolute cap edge
    (10, 0.5, 0, 5, False), (10, 0.5, 0, 6, True),     # cap 0 = no cap
    (10, 0.0, 0, 1, False), (10, 0.0, 0, 2, True),     # at least one may always go
    (1, 0.5, 10, 1, False),                            # the last managed node may go
    (3, 0.34, 10, 1, False), (3, 0.34, 10, 2, True),   # floor(1.02) = 1
    (100, 0.29, 0, 29, False), (100, 0.29, 0, 30, True),  # no float trap: 0.29 * 100 = 29
    (4, 1.0, 0, 4, False),
])
def test_circuit_breaker_thresholds(managed: int, fraction: float, cap: int, due: int, blocked: bool) -> None:
    controller = ControllerConfig(delete_after_sweeps=3, max_delete_fraction=fraction, max_delete_count=cap)
    gone = [absent_counter(synced_node(make_spec(f"gone{i}")), 2) for i in range(due)]
    # One more absent node, on its first absent sweep: marks are not gated by the breaker.
    fresh = [synced_node(make_spec("fresh-gone"))] if managed > due else []
    present = [make_spec(f"up{i}") for i in range(managed - due - len(fresh))]
    observed = [*map(synced_node, present), *gone, *fresh]
    p = plan(desired(*present, make_spec("unrelated")), observed, controller=controller)
    deletes = [a for a in p.actions if a.kind == K.DELETE]
    blocks = [a for a in p.actions if a.kind == K.BLOCK_DELETE]
    if blocked:
        assert deletes == [] and len(blocks) == due
        limit = deletion_limit(managed, controller)
        assert all(a.reason == "CircuitBreaker" and a.warning for a in blocks)
        assert all(f"{due} of {managed} managed" in a.message for a in blocks)
        assert all(f"limit of {limit}" in a.message for a in blocks)
        assert any(note.startswith("CircuitBreaker") for note in p.notes)
        assert p.managed_nodes == managed + 1  # + the registration of "unrelated"
    else:
        assert blocks == [] and len(deletes) == due
        assert p.managed_nodes == managed - due + 1
    assert [a.node for a in p.actions if a.kind == K.MARK_ABSENT] == [n.name for n in fresh]


def test_blocked_deletions_keep_their_counters_and_resume_when_the_breaker_allows() -> None:
    present = [make_spec(f"up{i}") for i in range(2)]
    gone = [synced_node(make_spec(f"gone{i}")) for i in range(3)]
    observed = tuple([synced_node(s) for s in present] + gone)
    tight = ControllerConfig(max_delete_fraction=0.5, max_delete_count=0)  # 5 managed → limit 2
    plans, observed = sweeps(desired(*present), observed, 5, controller=tight)
    assert [sorted({a.kind.value for a in p.actions}) for p in plans] == [
        ["mark-absent"], ["mark-absent"], ["block-delete"], ["block-delete"], ["block-delete"]]
    assert all(dict(n.annotations).get(ANNOTATION_ABSENT_SWEEPS) in (None, "2") for n in observed)
    loose = ControllerConfig(max_delete_fraction=1.0, max_delete_count=0)
    released = plan(desired(*present), observed, controller=loose)
    assert [a.kind for a in released.actions] == [K.DELETE] * 3


def test_deletion_switched_off() -> None:
    gone = absent_counter(synced_node(make_spec("gone")), 5)
    off = NodesConfig(delete=False, register=False)
    assert plan(desired(make_spec("web1")), [gone], nodes=off).actions == ()
    assert plan(desired(), [gone], nodes=NodesConfig(delete=False)).actions == ()


def test_unprovisioned_nodes_are_never_counted_or_deleted() -> None:
    p = plan(desired(make_spec("web1")), [kubelet_node("orphan", uninitialized=False)],
             controller=ControllerConfig(delete_after_sweeps=1))
    assert kinds(p) == [("web1", K.REGISTER)]


# --- switches all off, determinism, managed count ---------------------------------------------------------

def test_everything_switched_off_writes_nothing() -> None:
    off = NodesConfig(register=False, initialize=False, update=False, taint_shutdown=False, delete=False)
    spec = make_spec("web1", status="down", host="host9")
    observed = [synced_node(make_spec("web1")), kubelet_node("k2", system_uuid=make_spec("web2").vm_id),
                synced_node(make_spec("gone"))]
    p = plan(desired(spec, make_spec("web2"), make_spec("web3")), observed, nodes=off)
    assert p.actions == ()


def test_plan_is_deterministic_and_sorted() -> None:
    rng = random.Random(7)
    world = random_world_with_everything()
    first = plan(world.desired, world.observed, nodes=world.nodes, controller=world.controller)
    for _ in range(10):
        shuffled = list(world.observed)
        rng.shuffle(shuffled)
        specs = list(world.desired.nodes)
        rng.shuffle(specs)
        again = plan(Desired(tuple(specs), world.desired.skipped), shuffled, nodes=world.nodes,
                     controller=world.controller)
        assert again == first
    named = [a for a in first.actions if a.node]
    assert [a.node for a in named] == sorted(a.node for a in named)
    assert all(not a.node for a in first.actions[len(named):])


def random_world_with_everything() -> World:
    """The first random world that produces every kind of action at least once."""
    for seed in range(10_000):
        world = random_world(random.Random(seed))
        p = plan(world.desired, world.observed, nodes=world.nodes, controller=world.controller)
        if {a.kind for a in p.actions} >= {K.REGISTER, K.INITIALIZE, K.UPDATE, K.MARK_ABSENT, K.SKIP,
                                           K.AMBIGUOUS}:
            return world
    raise AssertionError("no random world with every kind of action")


def test_managed_nodes_counts_the_state_after_the_plan() -> None:
    a, b, c = make_spec("a"), make_spec("b"), make_spec("c")
    observed = [synced_node(a), kubelet_node("b"), absent_counter(synced_node(make_spec("gone")), 2),
                foreign_node("x")]
    p = plan(desired(a, b, c), observed)
    assert sorted((a.node, a.kind) for a in writes(p)) == [
        ("b", K.INITIALIZE), ("c", K.REGISTER), ("gone", K.DELETE)]
    assert p.managed_nodes == 3  # a, b (initialized), c (registered); gone deleted, x foreign


def test_with_the_real_desired_nodes() -> None:
    """Engine records → desired.py → plan → apply → plan: converged, upper-case ids included."""
    from ovirt_cloudprovider.core.desired import desired_nodes
    from ovirt_cloudprovider.core.records import GuestNic, Snapshot, VirtualMachine

    def vm(n: int, status: str = "up", **kw: object) -> VirtualMachine:
        return VirtualMachine(id=f"6B2F0C1E-4C1A-4D8E-9A77-0E5C1F7E0A0{n}", name=f"web{n}", status=status,
                              cluster="c1", datacenter="dc1", **kw)  # type: ignore[arg-type]

    vms = (vm(1, fqdn="web1.example.com", host="h1", nics=(GuestNic("eth0", ips=("10.0.0.5",)),),
              architecture="x86_64", guest_agent=True),
           vm(2, status="down"), vm(3, host="h2"), vm(4, status="not_responding"))
    want = desired_nodes(Snapshot(vms=vms, query="tag=kubernetes"), NODES)
    observed = [kubelet_node("web2", system_uuid=vms[1].id),  # the kubelet reports the UUID upper case
                kubelet_node("web1.example.com", system_uuid=vms[0].id.lower())]
    p = plan(want, observed)
    assert sorted((a.node, a.kind) for a in p.actions) == [
        ("web1.example.com", K.INITIALIZE), ("web2", K.INITIALIZE), ("web3", K.REGISTER)]
    assert only(p, K.REGISTER).provider_id == f"ovirt://{vms[2].id.lower()}"
    assert SHUTDOWN in (next(a for a in p.actions if a.node == "web2").taints or ())
    assert_converged(want, observed)


# --- properties on random fleets ------------------------------------------------------------------------

def _check_unadopted(world: World, p: Plan, by_name: dict[str, ObservedNode]) -> None:
    for action in p.actions:
        if action.reason == REASON_UNADOPTED:  # only our own placeholders no kubelet joined, with register off
            node = by_name[action.node]
            assert action.kind == K.DELETE and not world.nodes.register and world.nodes.delete
            assert node.registered_by_us and not node.kubelet_joined and vm_id_of(node.provider_id) is not None


def _check_second_plan(world: World, p: Plan, after: tuple[ObservedNode, ...], vm_ids: set[str]) -> None:
    """The next plan only continues counting absent VMs (and registers names that a deletion freed), and deletes
    the placeholders of the VMs whose kubelet node the first one initialized (ReplacedByKubelet, a sweep later)."""
    cfg = {"nodes": world.nodes, "controller": world.controller}
    second = plan(world.desired, after, **cfg)  # type: ignore[arg-type]
    freed = {a.node for a in p.actions if a.kind == K.DELETE}
    initialized = {a.vm_id for a in p.actions if a.kind == K.INITIALIZE}
    marks = {a.node: int(dict(a.annotations or ())[ANNOTATION_ABSENT_SWEEPS] or 0) for a in p.actions
             if a.kind == K.MARK_ABSENT}
    for action in writes(second):
        if action.kind == K.REGISTER:
            assert action.node in freed, kinds(second)
        elif action.reason == "ReplacedByKubelet":
            assert action.kind == K.DELETE and action.vm_id in initialized, kinds(second)
        else:
            assert action.kind in (K.MARK_ABSENT, K.DELETE), kinds(second)
            node = next(n for n in after if n.name == action.node)
            assert vm_id_of(node.provider_id) not in vm_ids
            if action.kind == K.MARK_ABSENT and action.node in marks:
                assert dict(action.annotations or ())[ANNOTATION_ABSENT_SWEEPS] == str(marks[action.node] + 1)


def _check_world(world: World) -> None:
    cfg = {"nodes": world.nodes, "controller": world.controller}
    p = plan(world.desired, world.observed, **cfg)  # type: ignore[arg-type]
    by_name = {n.name: n for n in world.observed}
    vm_ids = {s.vm_id.lower() for s in world.desired.nodes} | {k.vm_id.lower() for k in world.desired.skipped}

    for action in p.actions:
        assert action.reason and action.reason[0].isupper() and " " not in action.reason
        assert action.message.endswith(".") and "\n" not in action.message
        assert action.warning == (action.kind in (K.BLOCK_DELETE, K.AMBIGUOUS, K.SKIP))
        assert action.uid not in world.foreign_uids and action.uid not in world.stray_uids
        node = by_name.get(action.node)
        if action.kind in (K.REGISTER, K.SKIP):
            continue
        assert node is not None and (action.uid, action.resource_version) == (node.uid, node.resource_version)
    # Switches.
    present_kinds = {a.kind for a in p.actions}
    assert world.nodes.register or K.REGISTER not in present_kinds
    assert world.nodes.initialize or K.INITIALIZE not in present_kinds
    # with update off an UPDATE only records the owner of a node without one (core/ownership.py)
    assert world.nodes.update or all(dict(a.annotations or ()).keys() <= {ANNOTATION_OWNER, ANNOTATION_ENGINE}
                                     and not a.labels and a.addresses is None for a in p.actions if a.kind == K.UPDATE)
    assert world.nodes.taint_shutdown or not present_kinds & {K.TAINT, K.UNTAINT}
    assert world.nodes.delete or not present_kinds & {K.DELETE, K.MARK_ABSENT, K.BLOCK_DELETE}
    # Safety of deletions.
    deleted = [a for a in p.actions if a.kind == K.DELETE and a.reason == "DeletedNode"]
    managed = sum(vm_id_of(n.provider_id) is not None for n in world.observed if n.uid not in world.foreign_uids)
    assert len(deleted) <= deletion_limit(managed, world.controller)
    for action in deleted:
        assert vm_id_of(by_name[action.node].provider_id) not in vm_ids
    if not vm_ids:
        assert not {a.kind for a in p.actions if a.reason != REASON_UNADOPTED} & {K.DELETE, K.MARK_ABSENT}
    _check_unadopted(world, p, by_name)
    for action in p.actions:
        if action.kind == K.REGISTER:
            assert action.spec is not None and action.spec.running
            assert action.taints == (Taint(TAINT_NOT_READY, "NoSchedule"),)
            assert action.node not in by_name
        if action.kind == K.INITIALIZE:
            assert all(t.key != UNINITIALIZED.key for t in action.taints or ())

    # Applying the plan: the API server accepts it, and the count of managed nodes is as predicted.
    after = apply_in_memory(world.observed, p.actions)
    assert sum(vm_id_of(n.provider_id) is not None for n in after if n.uid not in world.foreign_uids) == p.managed_nodes
    for node in after:
        if node.uid in world.foreign_uids | world.stray_uids:
            assert node == next(n for n in world.observed if n.uid == node.uid)

    _check_second_plan(world, p, after, vm_ids)

    # And within N + 2 sweeps the fleet is steady: zero writes.
    observed = after
    for _ in range(world.controller.delete_after_sweeps + 2):
        step = plan(world.desired, observed, **cfg)  # type: ignore[arg-type]
        if not writes(step):
            break
        observed = apply_in_memory(observed, step.actions)
    else:
        raise AssertionError(f"no convergence: {kinds(step)}")
    assert plan(world.desired, observed, **cfg) == step  # type: ignore[arg-type]


@pytest.mark.parametrize("block", range(4))
def test_random_fleets_converge_safely(block: int) -> None:
    for seed in range(block * 150, (block + 1) * 150):
        world = random_world(random.Random(seed))
        try:
            _check_world(world)
        except AssertionError as err:
            raise AssertionError(f"seed {seed}: {err}") from err


def test_large_steady_fleet_plans_zero_writes_quickly() -> None:
    specs = [make_spec(f"node-{i:04d}", fqdn=f"node-{i:04d}.example.com",
                       addresses=ips(f"10.{i // 250}.{i % 250}.1", hostname=f"node-{i:04d}.example.com"))
             for i in range(3000)]
    observed = [synced_node(s) for s in specs]
    p = plan(desired(*specs), observed)
    assert p.actions == () and p.managed_nodes == 3000
    fresh = plan(desired(*specs), [kubelet_node(s.name) for s in specs])
    assert len(fresh.actions) == 3000 and {a.kind for a in fresh.actions} == {K.INITIALIZE}


def test_our_writes_keep_the_not_ready_taint() -> None:
    """The node lifecycle controller removes not-ready when the kubelet is Ready; we never do."""
    spec = make_spec("web1", status="down")
    not_ready = Taint(TAINT_NOT_READY, "NoSchedule")
    node = synced_node(make_spec("web1"), placeholder=True, taints=(not_ready,))
    p = plan(desired(spec), [node])
    taint = only(p, K.TAINT)
    assert not_ready in (taint.taints or ())
    up = make_spec("web1")
    node = synced_node(up, placeholder=True, taints=(not_ready, Taint(TAINT_SHUTDOWN, "NoSchedule")))
    untaint = only(plan(desired(up), [node]), K.UNTAINT)
    assert untaint.taints == (not_ready,)


def test_an_inconsistent_vm_id_is_present_but_untouched() -> None:
    """The engine answered with two different VMs of one id: that node is neither written nor counted absent,
    and a fleet that only holds such a VM is no empty discovery (no EmptyDiscovery block, no deletion)."""
    from ovirt_cloudprovider.core.desired import desired_nodes
    from ovirt_cloudprovider.core.records import Snapshot

    spec = make_spec("web1")
    node = synced_node(spec)
    desired_now = desired_nodes(Snapshot(vms=(), query="tag=k", inconsistent_ids=(spec.vm_id.upper(),)),
                                NodesConfig())
    assert [s.vm_id for s in desired_now.skipped] == [spec.vm_id]  # canonical (issue 17, rule 5)
    p = plan_sync(desired_now, [node], nodes=NODES, controller=ControllerConfig(delete_after_sweeps=1))
    assert [a.kind for a in p.actions] == [K.SKIP]
    assert not p.actions[0].writes and "two different VMs" in p.actions[0].message
