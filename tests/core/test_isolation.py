"""One bad datum affects one VM, host or node, never the others (issue 17, rule 4): the pure stages.

Every parse of a per-item datum refuses what it cannot read as "not a number" instead of raising (``²`` is a digit
to str.isdigit(), not to int()); and each stage has a per-item guard, so that an exception no rule foresaw, raised
while one VM or host is derived or one VM's nodes are planned, skips that one with a reason and leaves the rest of
the plan exactly as it would be.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ovirt_cloudprovider.core.addresses import node_addresses
from ovirt_cloudprovider.core.changes import REASON_UNPLANNABLE, maintenance_change, shutdown_change
from ovirt_cloudprovider.core.desired import desired_nodes
from ovirt_cloudprovider.core.hosts import desired_hosts
from ovirt_cloudprovider.core.naming import skip_code
from ovirt_cloudprovider.core.ownership import unowned_names
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_OWNER,
    KIND_HOST,
    TAINT_MAINTENANCE,
    TAINT_SHUTDOWN,
    ActionKind,
    GuestNic,
    Host,
    HostNic,
    NodeAddress,
    Snapshot,
    Taint,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import (
    absent_counter,
    desired,
    make_spec,
    random_world,
    synced_node,
    vm_id_for,
    with_annotation,
)

NODES = NodesConfig(register=True)  # the placeholder rules; register is opt-in
CONTROLLER = ControllerConfig()
VALUED_SHUTDOWN = Taint(TAINT_SHUTDOWN, "NoSchedule", "true")


class Exploding(tuple[GuestNic, ...]):
    """A list that raises when read: a datum no rule foresaw."""

    def __iter__(self) -> Iterator[GuestNic]:
        raise RuntimeError("an unforeseen datum")


def vm(name: str, *nics: GuestNic, status: str = "up") -> VirtualMachine:
    return VirtualMachine(id=vm_id_for(name), name=name, status=status, cluster="c1", datacenter="d1",
                          nics=nics)


def test_nic_names_with_digits_int_refuses_sort_as_text() -> None:
    odd = vm("a", GuestNic("eth0²", None, ("10.0.0.3",)), GuestNic("eth10", None, ("10.0.0.2",)),
             GuestNic("eth2", None, ("10.0.0.1",)), GuestNic("eth٣", None, ("10.0.0.4",)))
    assert [a.address for a in node_addresses(odd, NODES)] == ["10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.4"]
    huge = vm("b", GuestNic("eth" + "9" * 5000, None, ("10.0.0.6",)), GuestNic("eth01", None, ("10.0.0.5",)))
    assert [a.address for a in node_addresses(huge, NODES)] == ["10.0.0.5", "10.0.0.6"]  # int() refuses 4,301 digits


def test_a_garbled_absence_counter_counts_as_zero() -> None:
    spec = make_spec("gone")
    for raw in ("²", "٣", "-1", "1.5", "x", "1" * 5000):
        plan = plan_sync(desired(make_spec("other")), [absent_counter(synced_node(spec), raw)], nodes=NODES,
                         controller=replace(CONTROLLER, delete_after_sweeps=3))
        marks = [a for a in plan.actions if a.kind == ActionKind.MARK_ABSENT]
        assert [dict(a.annotations or ()) for a in marks] == [{"ovirt.org/absent-sweeps": "1"}], raw


def test_taints_match_by_key_and_effect_not_value() -> None:
    down, up = make_spec("a", status="down"), make_spec("a", status="up")
    assert shutdown_change([VALUED_SHUTDOWN], down) == [VALUED_SHUTDOWN]  # present: nothing added
    assert shutdown_change([VALUED_SHUTDOWN], up) == []  # removed by key and effect, as upstream does
    other_effect = Taint(TAINT_SHUTDOWN, "NoExecute", "true")
    assert shutdown_change([other_effect], up) == [other_effect]  # another effect is another taint
    host = replace(make_spec("h"), kind=KIND_HOST, maintenance=True, running=False)
    planned = Taint(TAINT_MAINTENANCE, "NoSchedule", "planned")
    assert maintenance_change([planned], host) == [planned]
    assert maintenance_change([planned], replace(host, maintenance=False, running=True)) == []


def test_an_operators_valued_shutdown_taint_is_neither_duplicated_nor_reported_as_added() -> None:
    spec = make_spec("a", status="down")
    node = synced_node(spec, taints=(VALUED_SHUTDOWN,))
    plan = plan_sync(desired(spec), [node], nodes=NODES, controller=CONTROLLER)
    assert not [a for a in plan.actions if a.kind in (ActionKind.TAINT, ActionKind.UNTAINT)]
    running = plan_sync(desired(make_spec("a")), [node], nodes=NODES, controller=CONTROLLER)
    untaint = [a for a in running.actions if a.kind == ActionKind.UNTAINT]
    assert len(untaint) == 1 and untaint[0].taints == () and "removed taint" in untaint[0].message


def test_a_vm_record_that_raises_is_skipped_as_unreadable() -> None:
    snapshot = Snapshot(vms=(vm("a"), replace(vm("b"), nics=Exploding()), vm("c")), query="")
    result = desired_nodes(snapshot, NODES)
    assert [s.name for s in result.nodes] == ["a", "c"]
    assert [(s.vm_name, skip_code(s)) for s in result.skipped] == [("b", "unreadable")]
    assert "RuntimeError: an unforeseen datum" in result.skipped[0].reason


def test_a_host_record_that_raises_is_skipped_as_unreadable() -> None:
    def host(name: str, nics: tuple[HostNic, ...] = ()) -> Host:
        return Host(id=vm_id_for(name), name=name, status="up", cluster="c1", nics=nics)

    specs, skipped = desired_hosts((host("h1"), host("h2", Exploding()), host("h3")), NODES)  # type: ignore[arg-type]
    assert [s.name for s in specs] == ["h1", "h3"]
    assert [(s.vm_name, s.kind, skip_code(s)) for s in skipped] == [("h2", KIND_HOST, "unreadable")]


class ExplodingAddresses(tuple[NodeAddress, ...]):
    def __iter__(self) -> Iterator[NodeAddress]:
        raise RuntimeError("an unforeseen datum")


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), position=st.integers(0, 100))
def test_a_spec_that_cannot_be_planned_changes_nothing_for_the_other_nodes(seed: int, position: int) -> None:
    """Any random fleet, any VM: when planning its nodes raises, its partial actions are dropped, one Unplannable
    SKIP says so, its node is not counted absent, and every other action is the one the good plan has."""
    world = random_world(random.Random(seed))
    specs = list(world.desired.nodes)
    if not specs:
        return
    good = specs[position % len(specs)]
    bad = replace(good, addresses=ExplodingAddresses())
    bad_desired = replace(world.desired, nodes=tuple(bad if s is good else s for s in specs))
    kwargs = {"nodes": world.nodes, "controller": world.controller}
    before = plan_sync(world.desired, world.observed, **kwargs)  # type: ignore[arg-type]
    after = plan_sync(bad_desired, world.observed, **kwargs)  # type: ignore[arg-type]
    assert [a for a in before.actions if a.vm_id != good.vm_id] == [a for a in after.actions if a.vm_id != good.vm_id]
    mine = [a for a in after.actions if a.vm_id == good.vm_id]
    if not any(a.reason == REASON_UNPLANNABLE for a in mine):  # its plan never read the addresses
        assert [replace(a, spec=None) for a in mine] == [
            replace(a, spec=None) for a in before.actions if a.vm_id == good.vm_id]
        return
    event("raised")
    assert [a.reason for a in mine if a.kind == ActionKind.SKIP] == [REASON_UNPLANNABLE]
    assert not [a for a in mine if a.kind in (ActionKind.MARK_ABSENT, ActionKind.DELETE, ActionKind.REGISTER,
                                               ActionKind.INITIALIZE, ActionKind.TAINT, ActionKind.UNTAINT,
                                               ActionKind.UPDATE)]


class ExplodingPairs(tuple[tuple[str, str], ...]):
    def __iter__(self) -> Iterator[tuple[str, str]]:
        raise RuntimeError("an unforeseen datum")


def test_an_absent_node_whose_absence_cannot_be_planned_is_left_alone_and_the_others_are_counted() -> None:
    gone, bad, present = make_spec("gone"), make_spec("bad"), make_spec("present")
    broken = replace(synced_node(bad), annotations=ExplodingPairs())
    plan = plan_sync(desired(present), [synced_node(gone), broken, synced_node(present)], nodes=NODES,
                     controller=replace(CONTROLLER, delete_after_sweeps=3))
    assert [(a.node, a.kind, a.reason) for a in plan.actions if a.node in ("bad", "gone")] == [
        ("bad", ActionKind.SKIP, REASON_UNPLANNABLE), ("gone", ActionKind.MARK_ABSENT, "VMAbsent")]
    skip = next(a for a in plan.actions if a.node == "bad")
    assert skip.warning and skip.uid == "uid-bad" and "RuntimeError" in skip.message


def test_a_node_whose_owner_cannot_be_read_counts_as_unowned_for_confirmation() -> None:
    """core.ownership.unowned_names (the nodes confirm.py deletes only when their VM is gone) reads each node's
    owner guarded: an unreadable one is the stricter answer, unowned, and the others are read."""
    broken = replace(synced_node(make_spec("bad")), annotations=ExplodingPairs())
    owned = with_annotation(synced_node(make_spec("owned")), ANNOTATION_OWNER, "ovirt-cloudprovider")
    legacy = replace(owned, name="legacy", annotations=tuple(
        (k, v) for k, v in owned.annotations if k != ANNOTATION_OWNER))
    assert unowned_names([broken, owned, legacy]) == {"bad", "legacy"}


def test_a_vm_renamed_onto_another_vms_node_name_leaves_that_vm_its_node() -> None:
    """VM B renamed so that its node name is VM A's: the node carries A's providerID, so A is planned as usual
    (here: shut down, its node tainted) and only B is skipped, its reason naming the conflict. With no node of
    that name yet, or one that carries neither VM's providerID, both stay skipped: the name is never guessed."""
    a, b = vm("k8s-cp-0"), vm("k8s-cp-1")
    before = desired_nodes(Snapshot(vms=(a, b), query=""), NODES)
    observed = tuple(synced_node(spec) for spec in before.nodes)
    renamed = desired_nodes(Snapshot(vms=(replace(a, status="down"), replace(b, name="k8s_cp_0")), query=""), NODES)
    plan = plan_sync(renamed, observed, nodes=NODES, controller=CONTROLLER)
    assert [(x.kind, x.node, x.vm_id) for x in plan.actions if x.kind is not ActionKind.SKIP] == [
        (ActionKind.TAINT, "k8s-cp-0", a.id)]
    skips = [x for x in plan.actions if x.kind is ActionKind.SKIP]
    assert [(x.node, x.vm_id) for x in skips] == [("", b.id)]
    assert "duplicate-name" in skips[0].message and "node k8s-cp-0 carries the providerID of VM k8s-cp-0" in \
        skips[0].message
    for nodes in ((), tuple(n for n in observed if n.name != "k8s-cp-0"),
                  (replace(observed[0], provider_id="aws:///i-0abc"),)):
        plan = plan_sync(renamed, nodes, nodes=NODES, controller=CONTROLLER)
        assert {x.vm_id for x in plan.actions if x.kind is ActionKind.SKIP and not x.node} == {a.id, b.id}
        assert not [x for x in plan.actions if x.vm_id in (a.id, b.id) and x.writes and x.kind is not
                    ActionKind.MARK_ABSENT]
