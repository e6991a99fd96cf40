"""Deletion needs positive evidence: the vanished-cluster rule (planner) and the confirmation of DELETEs
(``confirm_deletions``, applied by the controller after a GET of each VM by id), and the filter evaluator."""

from __future__ import annotations

import pytest

from ovirt_cloudprovider.core.confirm import (
    confirm_deletions,
    confirm_host_deletions,
    pending_deletions,
    pending_host_deletions,
)
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    ANNOTATION_ALLOW_CLUSTER_REMOVAL,
    KIND_HOST,
    Action,
    ActionKind,
    Host,
    Plan,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from ovirt_cloudprovider.core.vmfilter import filter_match, narrowed
from tests.core.plan_builders import absent_counter, desired, make_spec, synced_node, with_annotation

K = ActionKind


def _plan(want: object, observed: object, **controller: object) -> Plan:
    return plan_sync(want, observed, nodes=NodesConfig(),  # type: ignore[arg-type]
                     controller=ControllerConfig(max_delete_fraction=1.0, max_delete_count=0,
                                                 **controller))  # type: ignore[arg-type]


def _east_gone_west_present() -> tuple[object, list[object]]:
    west = [make_spec(f"w{i}", cluster="west") for i in range(3)]
    east = [absent_counter(synced_node(make_spec(f"e{i}", cluster="east")), 2) for i in range(2)]
    return desired(*west), [*(synced_node(s) for s in west), *east]


def test_every_node_of_one_cluster_absent_while_others_present_is_blocked() -> None:
    want, observed = _east_gone_west_present()
    p = _plan(want, observed)
    blocked = [a for a in p.actions if a.kind is K.BLOCK_DELETE]
    assert [a.node for a in blocked] == ["e0", "e1"]
    assert {a.reason for a in blocked} == {"ClusterVanished"} and all(a.warning for a in blocked)
    assert "zone east" in blocked[0].message and ANNOTATION_ALLOW_CLUSTER_REMOVAL in blocked[0].message
    assert not [a for a in p.actions if a.kind is K.DELETE]
    assert any(n.startswith("ClusterVanished") for n in p.notes)
    assert p.managed_nodes == 5


def test_vanished_cluster_marks_still_count_up() -> None:
    want, observed = _east_gone_west_present()
    fresh = [synced_node(make_spec(f"e{i}", cluster="east")) for i in range(2)]
    p = _plan(want, [*observed[:3], *fresh])
    assert [a.kind for a in p.actions] == [K.MARK_ABSENT, K.MARK_ABSENT]


@pytest.mark.parametrize("how", ["config", "annotation"])
def test_an_operator_confirms_a_cluster_removal(how: str) -> None:
    want, observed = _east_gone_west_present()
    if how == "annotation":
        observed[3] = with_annotation(observed[3], ANNOTATION_ALLOW_CLUSTER_REMOVAL, "true")  # type: ignore[arg-type]
    p = _plan(want, observed, allow_cluster_removal=how == "config")
    assert [(a.node, a.kind) for a in p.actions] == [("e0", K.DELETE), ("e1", K.DELETE)]


def test_part_of_a_cluster_absent_is_an_ordinary_deletion() -> None:
    want, observed = _east_gone_west_present()
    east_left = make_spec("e9", cluster="east")
    p = _plan(desired(*want.nodes, east_left), [*observed, synced_node(east_left)])  # type: ignore[attr-defined]
    assert [(a.node, a.kind) for a in p.actions] == [("e0", K.DELETE), ("e1", K.DELETE)]


def test_a_single_cluster_fleet_is_not_a_vanished_cluster() -> None:
    keep = make_spec("a0")
    gone = absent_counter(synced_node(make_spec("a1")), 2)
    p = _plan(desired(keep), [synced_node(keep), gone])
    assert [a.kind for a in p.actions] == [K.DELETE]


# --- confirmation -----------------------------------------------------------------------------------

def _one_delete() -> tuple[Plan, str]:
    keep = make_spec("a0")
    gone_spec = make_spec("a1")
    p = _plan(desired(keep), [synced_node(keep), absent_counter(synced_node(gone_spec), 2)])
    assert pending_deletions(p) == (gone_spec.vm_id,)
    return p, gone_spec.vm_id


def _vm(vm_id: str, *, tags: tuple[str, ...] = ("kubernetes",), cluster: str = "cluster1") -> VirtualMachine:
    return VirtualMachine(id=vm_id, name="a1", status="up", cluster=cluster, tags=tags)


def test_a_404_and_an_empty_narrowed_search_confirm_the_deletion() -> None:
    p, vm_id = _one_delete()
    out = confirm_deletions(p, query="tag=kubernetes", found={vm_id: None}, researched=frozenset())
    assert [(a.kind, a.reason) for a in out.actions] == [(K.DELETE, "DeletedNode")]
    assert "(404)" in out.actions[0].message and out.managed_nodes == p.managed_nodes
    assert f"'tag=kubernetes and id={vm_id}'" in out.actions[0].message


@pytest.mark.parametrize(("researched", "why"), [
    (None, "not asked whether its filter, narrowed to it, still returns it"),
    (frozenset({"returned"}), "still returns it"),
])
def test_a_404_alone_is_not_enough(researched: frozenset[str] | None, why: str) -> None:
    # issue 17, rule 1: two independent answers of the engine, its 404 and the narrowed search returning nothing
    p, vm_id = _one_delete()
    returned = None if researched is None else frozenset({vm_id.upper()})
    out = confirm_deletions(p, query="tag=kubernetes", found={vm_id: None}, researched=returned)
    action = out.actions[0]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert why in action.message and out.managed_nodes == p.managed_nodes + 1


@pytest.mark.parametrize(("query", "vm"), [
    ("tag=kubernetes", {"tags": ()}),
    ("cluster=prod", {"cluster": "staging"}),
    ("tag=kubernetes and cluster=prod", {"cluster": "staging"}),
])
def test_a_vm_that_left_the_filter_is_deleted_with_its_reason(query: str, vm: dict[str, object]) -> None:
    p, vm_id = _one_delete()
    found = {vm_id: _vm(vm_id, **vm)}  # type: ignore[arg-type]
    out = confirm_deletions(p, query=query, found=found, researched=frozenset())
    assert [(a.kind, a.reason) for a in out.actions] == [(K.DELETE, "VMLeftFilter")]
    asked = confirm_deletions(p, query=query, found=found)  # the narrowed search was not asked
    assert asked.actions[0].kind is K.BLOCK_DELETE


def test_a_vm_that_still_matches_is_a_lost_search_result_and_keeps_its_node() -> None:
    p, vm_id = _one_delete()
    # the record clearly matches: a veto, even if the narrowed search lost it too
    out = confirm_deletions(p, query="tag=kubernetes", found={vm_id: _vm(vm_id)}, researched=frozenset())
    assert [(a.kind, a.reason, a.warning) for a in out.actions] == [(K.BLOCK_DELETE, "DeletionUnconfirmed", True)]
    assert out.managed_nodes == p.managed_nodes + 1


def test_an_undecidable_record_needs_the_narrowed_search() -> None:
    p, vm_id = _one_delete()
    vm = _vm(vm_id, tags=("kubernetes-child",))  # maybe a child tag: the record cannot tell
    assert confirm_deletions(p, query="tag=kubernetes", found={vm_id: vm}).actions[0].kind is K.BLOCK_DELETE
    again = confirm_deletions(p, query="tag=kubernetes", found={vm_id: vm}, researched=frozenset({vm_id.upper()}))
    assert again.actions[0].kind is K.BLOCK_DELETE
    gone = confirm_deletions(p, query="tag=kubernetes", found={vm_id: vm}, researched=frozenset())
    assert (gone.actions[0].kind, gone.actions[0].reason) == (K.DELETE, "VMLeftFilter")


def test_any_error_blocks_the_deletion_this_sweep() -> None:
    p, _ = _one_delete()
    out = confirm_deletions(p, query="", found={}, error="VM 1: engine unreachable")
    assert [(a.kind, a.reason) for a in out.actions] == [(K.BLOCK_DELETE, "DeletionUnconfirmed")]
    assert "engine unreachable" in out.actions[0].message


def test_placeholder_replacement_needs_no_confirmation() -> None:
    p, _ = _one_delete()
    assert pending_deletions(Plan(actions=tuple(a for a in p.actions if a.reason != "DeletedNode"))) == ()


@pytest.mark.parametrize(("query", "expected"), [
    ("", True), ("Vms: tag=kubernetes", True), ("tag=k*", True), ("tag=other", None), ("tag!=kubernetes", False),
    ("name=a1", True), ("name=b*", False), ("cluster=cluster1 and status=up", True),
    ("cluster=x or name=a1", True), ("cluster=x or name=b", False), ("cluster=x or tag=zz", None),
    ("os=rhel*", None), ("name=", None), ("tag=kubernetes and", None), ('name="a1"', True),
    ("name > a", None), ("id=ABC", False),
])
def test_filter_match(query: str, expected: bool | None) -> None:
    vm = VirtualMachine(id="1d6ab0ac-0000-4000-8000-000000000001", name="a1", status="up", cluster="cluster1",
                        tags=("kubernetes",))
    assert filter_match(query, vm) is expected


@pytest.mark.parametrize(("query", "expected"), [
    ("", "id=X"), ("tag=kubernetes", "tag=kubernetes and id=X"), ("Vms: tag=a", "Vms: tag=a and id=X"),
    ("tag=a OR cluster=b and status=up", "tag=a and id=X or cluster=b and status=up and id=X"),
    ('name="x or y"', 'name="x or y" and id=X'),
    ("Hosts: cluster=east-a", "Hosts: cluster=east-a and id=X"), ("hosts:", "hosts: id=X"),
    ("Host: tag=a or tag=b", "Host: tag=a and id=X or tag=b and id=X"), ("Vms:", "Vms: id=X"),
])
def test_narrowed(query: str, expected: str) -> None:
    assert narrowed(query, "X") == expected


def test_the_breaker_still_counts_the_deletions_of_a_vanished_cluster() -> None:
    # full-suite finding: blocking a vanished cluster's deletions first let the rest of a burst through the breaker
    west = [make_spec(f"w{i}", cluster="west") for i in range(2)]
    east_gone = [absent_counter(synced_node(make_spec(f"e{i}", cluster="east")), 2) for i in range(3)]
    west_gone = [absent_counter(synced_node(make_spec(f"w{i}", cluster="west")), 2) for i in range(2, 4)]
    p = plan_sync(desired(*west), [*(synced_node(s) for s in west), *east_gone, *west_gone], nodes=NodesConfig(),
                  controller=ControllerConfig(max_delete_fraction=0.5, max_delete_count=10))
    reasons = {a.node: a.reason for a in p.actions if a.kind is K.BLOCK_DELETE}
    assert reasons == {"e0": "ClusterVanished", "e1": "ClusterVanished", "e2": "ClusterVanished",
                       "w2": "CircuitBreaker", "w3": "CircuitBreaker"}
    assert not [a for a in p.actions if a.kind is K.DELETE]


# --- hosts: the narrowed host search is the only evidence ---------------------------------------------

HOST_ID = "5a7d1a4e-0000-4000-8000-0000000000aa"
HOST_QUERY = "Hosts: cluster=east-a"


def _host_delete() -> Plan:
    keep = Action(ActionKind.REGISTER, "kept", "RegisteredNode", "Registering node kept.", vm_id="h-1",
                  owner_kind=KIND_HOST)
    gone = Action(ActionKind.DELETE, "metal3", "DeletedNode", "Deleting node metal3: absent for 3 sweeps.",
                  vm_id=HOST_ID, owner_kind=KIND_HOST)
    p = Plan(actions=(keep, gone), managed_nodes=4, managed_hosts=2)
    assert pending_host_deletions(p) == (HOST_ID,) and pending_deletions(p) == ()
    return p


def _host(cluster: str = "east-b") -> Host:
    return Host(id=HOST_ID, name="metal3", status="up", cluster=cluster)


def test_a_host_404_and_an_empty_narrowed_search_confirm_the_deletion() -> None:
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: None}, researched=frozenset())
    assert [(a.kind, a.reason) for a in out.actions][1] == (K.DELETE, "DeletedNode")
    assert "(404)" in out.actions[1].message and out.managed_nodes == p.managed_nodes


@pytest.mark.parametrize(("researched", "why"), [
    (None, "not asked whether its filter"), (frozenset({HOST_ID.upper()}), "still returns it")])
def test_a_host_404_alone_is_not_enough(researched: frozenset[str] | None, why: str) -> None:
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: None}, researched=researched)
    action = out.actions[1]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert why in action.message
    assert (out.managed_nodes, out.managed_hosts) == (p.managed_nodes + 1, p.managed_hosts + 1)


def test_a_host_the_narrowed_search_does_not_return_left_the_filter() -> None:
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: _host()}, researched=frozenset())
    action = out.actions[1]
    assert (action.kind, action.reason, action.warning) == (K.DELETE, "HostLeftFilter", False)
    assert "host metal3" in action.message and HOST_ID in action.message and "cluster east-b" in action.message
    assert f"'Hosts: cluster=east-a and id={HOST_ID}'" in action.message and repr(HOST_QUERY) in action.message
    assert (out.managed_nodes, out.managed_hosts) == (p.managed_nodes, p.managed_hosts)
    assert out.actions[0] == p.actions[0]


def test_a_host_the_narrowed_search_returns_keeps_its_node() -> None:
    p = _host_delete()
    # even a record that looks out of the filter: only the engine's search decides (ids compared case-blind)
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: _host()},
                                 researched=frozenset({HOST_ID.upper()}))
    action = out.actions[1]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert "so the search lost it" in action.message
    assert (out.managed_nodes, out.managed_hosts) == (p.managed_nodes + 1, p.managed_hosts + 1)


def test_a_host_record_that_looks_in_the_filter_is_no_veto() -> None:
    # no record-based evaluation for hosts: the narrowed search not returning it is the evidence
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: _host("east-a")}, researched=frozenset())
    assert out.actions[1].reason == "HostLeftFilter"


@pytest.mark.parametrize(("found", "error", "researched", "why"), [
    ({HOST_ID: _host()}, None, None, "not asked whether it left the filter"),
    ({}, None, frozenset(), "not asked about the host"),
    ({}, "host search: engine unreachable", None, "engine unreachable"),
    ({HOST_ID: _host()}, "host search: engine unreachable", frozenset(), "engine unreachable"),
])
def test_a_host_deletion_without_evidence_is_blocked(found: dict[str, Host | None], error: str | None,
                                                     researched: frozenset[str] | None, why: str) -> None:
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found=found, error=error, researched=researched)
    action = out.actions[1]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert why in action.message
    # the node stays, and it is a host's node: both counts keep it (managed_nodes_by_kind{kind="host"})
    assert (out.managed_nodes, out.managed_hosts) == (p.managed_nodes + 1, p.managed_hosts + 1)


# --- unowned (legacy) nodes: deleted only when the VM or host is gone ------------------------------------

def test_an_unowned_node_whose_vm_left_the_filter_is_not_deleted() -> None:
    p, vm_id = _one_delete()
    node = next(a.node for a in p.actions if a.kind is K.DELETE)
    found = {vm_id: _vm(vm_id, tags=())}
    out = confirm_deletions(p, query="tag=kubernetes", found=found, researched=frozenset(), unowned=frozenset({node}))
    action = out.actions[0]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert "records no owner" in action.message and out.managed_nodes == p.managed_nodes + 1
    gone = confirm_deletions(p, query="tag=kubernetes", found={vm_id: None}, researched=frozenset(),
                             unowned=frozenset({node}))
    assert [(a.kind, a.reason) for a in gone.actions] == [(K.DELETE, "DeletedNode")]  # really gone: it goes


def test_an_unowned_node_whose_host_left_the_filter_is_not_deleted() -> None:
    p = _host_delete()
    out = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: _host()}, researched=frozenset(),
                                 unowned=frozenset({"metal3"}))
    action = out.actions[1]
    assert (action.kind, action.reason, action.warning) == (K.BLOCK_DELETE, "DeletionUnconfirmed", True)
    assert "records no owner" in action.message and "no longer matches the filter" in action.message
    assert (out.managed_nodes, out.managed_hosts) == (p.managed_nodes + 1, p.managed_hosts + 1)
    gone = confirm_host_deletions(p, query=HOST_QUERY, found={HOST_ID: None}, researched=frozenset(),
                                  unowned=frozenset({"metal3"}))
    assert (gone.actions[1].kind, gone.actions[1].reason) == (K.DELETE, "DeletedNode")
