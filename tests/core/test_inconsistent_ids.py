"""An inconsistent answer counts no absences (issue 17, rule 5), decided in the core.

VM ids are compared canonically everywhere (:func:`~ovirt_cloudprovider.core.providerid.normalize_vm_id`): two
different records of one VM id, in whatever spelling, make that id inconsistent (its node is neither written nor
counted absent), and a discovery with any inconsistent id counts no absence at all in that sweep.
"""

from __future__ import annotations

import uuid

import pytest

from ovirt_cloudprovider.core.desired import desired_nodes
from ovirt_cloudprovider.core.naming import SKIP_INCONSISTENT, skip_code
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import ActionKind, Snapshot, VirtualMachine
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import absent_counter, desired, make_spec, synced_node

VM_ID = "f622cc58-a2d7-487a-97f3-18f2f23dd419"


def _vm(vm_id: str, name: str, status: str = "up") -> VirtualMachine:
    return VirtualMachine(id=vm_id, name=name, status=status, cluster="c1", tags=("kubernetes",))


@pytest.mark.parametrize("twin", [VM_ID.upper(), VM_ID.replace("-", ""), "{" + VM_ID + "}", f" {VM_ID} "])
@pytest.mark.parametrize("impostor_first", [True, False])
def test_two_records_of_one_id_in_any_spelling_are_inconsistent(twin: str, impostor_first: bool) -> None:
    real, impostor = _vm(VM_ID, "k8s-cp-0"), _vm(twin, "impostor", "down")
    other = _vm(str(uuid.uuid4()), "k8s-worker-1")
    vms = (impostor, real, other) if impostor_first else (real, impostor, other)
    out = desired_nodes(Snapshot(vms=vms, query="tag=kubernetes"), NodesConfig())
    assert [n.vm_name for n in out.nodes] == ["k8s-worker-1"]  # neither record becomes (or rewrites) a node
    inconsistent = [s for s in out.skipped if skip_code(s) == SKIP_INCONSISTENT]
    assert [s.vm_id for s in inconsistent] == [VM_ID]  # once, canonical


def test_an_identical_repeat_is_no_inconsistency() -> None:
    vm = _vm(VM_ID, "k8s-cp-0")
    out = desired_nodes(Snapshot(vms=(vm, vm), query=""), NodesConfig())
    assert [n.vm_id for n in out.nodes] == [VM_ID] and out.skipped == ()


def test_the_clients_inconsistent_ids_are_read_canonically() -> None:
    out = desired_nodes(Snapshot(vms=(), query="", inconsistent_ids=(VM_ID.upper(),)), NodesConfig())
    assert [(s.vm_id, skip_code(s)) for s in out.skipped] == [(VM_ID, SKIP_INCONSISTENT)]


def test_an_inconsistent_discovery_counts_no_absence() -> None:
    kept, twin = make_spec("k8s-cp-0", vm_id=VM_ID), make_spec("k8s-worker-1")
    lost, due = make_spec("k8s-worker-2"), make_spec("k8s-worker-3")
    answer = desired_nodes(Snapshot(vms=(_vm(VM_ID, "k8s-cp-0"), _vm(VM_ID.upper(), "impostor", "down"),
                                         _vm(twin.vm_id, "k8s-worker-1")), query=""), NodesConfig())
    observed = [synced_node(kept), synced_node(twin), synced_node(lost), absent_counter(synced_node(due), 2)]
    plan = plan_sync(answer, observed, nodes=NodesConfig(),
                     controller=ControllerConfig(delete_after_sweeps=3, max_delete_fraction=1.0, max_delete_count=0))
    kinds = {(a.node, a.kind) for a in plan.actions}
    assert not {k for _, k in kinds} & {ActionKind.MARK_ABSENT, ActionKind.DELETE, ActionKind.TAINT}
    assert not any(a.node == "k8s-cp-0" for a in plan.actions if a.kind is not ActionKind.SKIP)
    assert any(n.startswith("InconsistentDiscovery") for n in plan.notes)
    assert plan.managed_nodes == 4
    # the same answer without the impostor: absences count again
    consistent = desired(make_spec("k8s-cp-0", vm_id=VM_ID), make_spec("k8s-worker-1", vm_id=twin.vm_id))
    again = plan_sync(consistent, observed, nodes=NodesConfig(),
                      controller=ControllerConfig(delete_after_sweeps=3, max_delete_fraction=1.0,
                                                  max_delete_count=0))
    assert {(a.node, a.kind) for a in again.actions} == {("k8s-worker-2", ActionKind.MARK_ABSENT),
                                                         ("k8s-worker-3", ActionKind.DELETE)}
