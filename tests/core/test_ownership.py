"""One owner per node (core/ownership.py) and the planner's use of it: an instance touches only its own nodes, adopts
an unowned one only on positive evidence, and counts an unowned (legacy) node absent only under the default name."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ovirt_cloudprovider.core.ownership import (
    REASON_OWNED_ELSEWHERE,
    Owner,
    partition,
    recorded_owner,
    valid_instance,
)
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ENGINE,
    ANNOTATION_OWNER,
    ANNOTATION_VM_ID,
    ActionKind,
    Desired,
    ObservedNode,
    Plan,
)
from ovirt_cloudprovider.core.settings import DEFAULT_INSTANCE, ControllerConfig, NodesConfig
from tests.core.plan_builders import (
    OWNER,
    SHUTDOWN,
    absent_counter,
    apply_in_memory,
    desired,
    kubelet_node,
    make_spec,
    random_world,
    synced_node,
    with_annotation,
)

K = ActionKind
ENGINE = "engine.example.com"
OTHER = "hypervisors"


def plan(d: Desired, observed: list[ObservedNode], *, instance: str = DEFAULT_INSTANCE, engine: str = ENGINE,
         **controller: object) -> Plan:
    cfg = replace(ControllerConfig(instance=instance, delete_after_sweeps=3, max_delete_fraction=1.0,
                                   max_delete_count=0), **controller)  # type: ignore[arg-type]
    return plan_sync(replace(d, engine=engine), observed, nodes=NodesConfig(register=True), controller=cfg)


def owned(node: ObservedNode, instance: str = DEFAULT_INSTANCE, engine: str = ENGINE) -> ObservedNode:
    return with_annotation(with_annotation(node, ANNOTATION_OWNER, instance), ANNOTATION_ENGINE, engine)


def legacy(node: ObservedNode) -> ObservedNode:
    """A node of a release before owners were recorded."""
    keep = tuple((k, v) for k, v in node.annotations if k not in (ANNOTATION_OWNER, ANNOTATION_ENGINE))
    return replace(node, annotations=keep)


# --- the module -------------------------------------------------------------------------------------------

def test_partition_by_recorded_owner() -> None:
    me = Owner(DEFAULT_INSTANCE, ENGINE)
    spec = make_spec("a")
    mine = owned(synced_node(spec, name="mine"))
    other_name = owned(synced_node(spec, name="other-name"), OTHER)
    other_engine = owned(synced_node(spec, name="other-engine"), DEFAULT_INSTANCE, "engine-b.example.com")
    no_engine = with_annotation(legacy(synced_node(spec, name="no-engine")), ANNOTATION_OWNER, DEFAULT_INSTANCE)
    old = legacy(synced_node(spec, name="old"))
    kubelet = kubelet_node("kubelet")
    parts = partition([mine, other_name, other_engine, no_engine, old, kubelet], me)
    assert parts.ours == (mine,)
    assert parts.others == (other_name, other_engine, no_engine)  # an owner without an engine is not ours
    assert parts.unowned == (old, kubelet)
    assert recorded_owner(old) is None and recorded_owner(no_engine) == (DEFAULT_INSTANCE, None)


def test_adoption_writes_only_what_is_missing() -> None:
    me = Owner(OTHER, ENGINE)
    node = legacy(synced_node(make_spec("a")))
    assert me.adoption(node) == ((ANNOTATION_ENGINE, ENGINE), (ANNOTATION_OWNER, OTHER))
    assert me.adoption(owned(node, OTHER)) is None
    assert Owner(DEFAULT_INSTANCE, ENGINE).claims_legacy and not me.claims_legacy


@pytest.mark.parametrize(("name", "ok"), [
    ("ovirt-cloudprovider", True), ("east-2", True), ("a", True), ("a" * 63, True), ("a" * 64, False),
    ("East", False), ("-a", False), ("a-", False), ("a.b", False), ("", False), ("a_b", False)])
def test_instance_names_are_dns_labels(name: str, ok: bool) -> None:
    assert valid_instance(name) is ok


# --- the planner: other instances' nodes --------------------------------------------------------------------

@pytest.mark.parametrize(("instance", "engine"), [(OTHER, ENGINE), (DEFAULT_INSTANCE, "engine-b.example.com")])
def test_another_instances_node_is_never_touched(instance: str, engine: str) -> None:
    """Its VM absent from our discovery with the counter at the threshold, or present (down: it would be tainted,
    drifted labels: they would be rewritten): no action on it either way."""
    present = make_spec("shared", status="down", host="host9")
    theirs_present = owned(synced_node(make_spec("shared", vm_id=present.vm_id, host="host1"), taints=()),
                           instance, engine)
    theirs_absent = absent_counter(owned(synced_node(make_spec("gone")), instance, engine), 5)
    mine = owned(synced_node(make_spec("web")))
    p = plan(desired(present, make_spec("web")), [theirs_present, theirs_absent, mine])
    touched = {a.node for a in p.actions if a.kind != K.SKIP}
    assert touched == set()
    skip = next(a for a in p.actions if a.kind == K.SKIP)
    assert skip.reason == REASON_OWNED_ELSEWHERE and skip.warning and skip.uid is None
    assert not any(a.kind == K.REGISTER for a in p.actions)
    assert p.managed_nodes == 1


def test_a_name_taken_by_another_instances_node_is_a_name_conflict() -> None:
    spec = make_spec("web")
    theirs = owned(synced_node(make_spec("web", vm_id="0c6b2c37-0000-4000-8000-000000000001")), OTHER)
    p = plan(desired(spec), [theirs])
    (action,) = p.actions
    assert action.kind == K.SKIP and action.reason == "NodeNameConflict" and action.warning
    assert OTHER in action.message and not action.writes


def test_an_unprovisioned_kubelet_node_of_another_instance_is_not_initialized() -> None:
    spec = make_spec("web")
    node = owned(kubelet_node("web", system_uuid=spec.vm_id), OTHER)
    p = plan(desired(spec), [node])
    assert [a.kind for a in p.actions] == [K.SKIP]


# --- the planner: registering and initializing record the owner ---------------------------------------------

def test_register_and_initialize_record_the_owner() -> None:
    new, kubelet = make_spec("new"), make_spec("kubelet")
    p = plan(desired(new, kubelet), [kubelet_node("kubelet", system_uuid=kubelet.vm_id)], instance=OTHER)
    by_kind = {a.kind: a for a in p.actions}
    expected = {ANNOTATION_OWNER: OTHER, ANNOTATION_ENGINE: ENGINE}
    assert dict(by_kind[K.REGISTER].annotations or ()).items() >= expected.items()
    assert dict(by_kind[K.INITIALIZE].annotations or ()).items() >= expected.items()
    after = apply_in_memory([kubelet_node("kubelet", system_uuid=kubelet.vm_id)], p.actions)
    assert plan(desired(new, kubelet), list(after), instance=OTHER).actions == ()  # converged, and ours


# --- the planner: the upgrade (nodes without an owner) ------------------------------------------------------

@pytest.mark.parametrize("count", [0, 2, 3, 99])
def test_a_new_instance_never_counts_a_legacy_node_absent(count: int) -> None:
    old = absent_counter(legacy(synced_node(make_spec("old"))), count)
    p = plan(desired(make_spec("mine")), [old], instance=OTHER)
    assert [a.node for a in p.actions if a.node == "old"] == []
    assert p.managed_nodes == 1  # the one it registers; the legacy node is not its own


def test_the_default_instance_counts_legacy_nodes_absent_as_before() -> None:
    old = absent_counter(legacy(synced_node(make_spec("old"))), 2)
    p = plan(desired(make_spec("mine")), [old])
    assert [(a.node, a.kind) for a in p.actions if a.node == "old"] == [("old", K.DELETE)]


@pytest.mark.parametrize("instance", [DEFAULT_INSTANCE, OTHER])
def test_a_present_legacy_node_is_adopted_in_its_first_write_with_a_precondition(instance: str) -> None:
    spec = make_spec("web", status="down")  # the shutdown taint is the node's first write
    node = absent_counter(legacy(synced_node(make_spec("web", vm_id=spec.vm_id), taints=())), 2)
    p = plan(desired(spec), [node], instance=instance)
    assert p.actions[0].kind == K.TAINT and K.CLEAR_ABSENT in [a.kind for a in p.actions]
    first = p.actions[0]
    assert not any(ANNOTATION_OWNER in dict(a.annotations or ()) for a in p.actions[1:])
    assert first.taints == (SHUTDOWN,) and first.resource_version == node.resource_version
    assert dict(first.annotations or ()) == {ANNOTATION_OWNER: instance, ANNOTATION_ENGINE: ENGINE}
    assert p.managed_nodes == 1


def test_a_steady_legacy_node_gets_an_update_that_only_records_the_owner() -> None:
    spec = make_spec("web")
    node = legacy(synced_node(spec))
    (action,) = plan_sync(replace(desired(spec), engine=ENGINE), [node], nodes=NodesConfig(register=True, update=False),
                          controller=ControllerConfig(instance=OTHER)).actions
    assert action.kind == K.UPDATE and action.labels is None and action.addresses is None
    assert dict(action.annotations or ()) == {ANNOTATION_OWNER: OTHER, ANNOTATION_ENGINE: ENGINE}
    assert ANNOTATION_VM_ID in node.annotation_map


@pytest.mark.parametrize("block", range(3))
def test_upgrade_window_no_legacy_node_is_marked_or_deleted_by_a_new_instance(block: int) -> None:
    """Random fleets whose every node records no owner (the release before): a new instance plans no MARK_ABSENT
    and no DELETE but the replacement of a placeholder by its present VM's kubelet node, sweep after sweep,
    whatever the counters say; and no write at all on a node whose VM or host it does not discover."""
    for seed in range(block * 100, (block + 1) * 100):
        world = random_world(random.Random(seed))
        observed = [legacy(n) for n in world.observed]
        for _ in range(world.controller.delete_after_sweeps + 1):
            p = plan_sync(replace(world.desired, engine=ENGINE), observed, nodes=world.nodes,
                          controller=replace(world.controller, instance=OTHER))
            for action in p.actions:
                assert action.kind != K.MARK_ABSENT, f"seed {seed}"
                if action.kind == K.DELETE and action.reason == "UnadoptedPlaceholder":
                    # an adopted legacy placeholder (its VM is this instance's) that no kubelet joined, register off
                    assert not world.nodes.register and action.spec is not None, f"seed {seed}"
                elif action.kind == K.DELETE:
                    assert action.reason == "ReplacedByKubelet" and action.spec is not None, f"seed {seed}"
                if action.writes and action.spec is None:
                    raise AssertionError(f"seed {seed}: {action.kind} on {action.node} without evidence")
            observed = list(apply_in_memory(observed, p.actions))


def test_other_owned_nodes_keep_a_steady_instance_steady() -> None:
    spec = make_spec("web")
    mine = synced_node(spec)
    assert recorded_owner(mine) == (OWNER.instance, OWNER.engine)
    assert plan_sync(desired(spec), [mine], nodes=NodesConfig(register=True),
                     controller=ControllerConfig()).actions == ()
    assert ANNOTATION_ABSENT_SWEEPS not in mine.annotation_map
