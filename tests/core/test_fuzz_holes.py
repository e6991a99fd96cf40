"""Holes the engine-answer fuzz (tests/faults/test_fuzz_engine.py) found, pinned in the pure core."""

from __future__ import annotations

from dataclasses import replace

from ovirt_cloudprovider.core.desired import desired_nodes
from ovirt_cloudprovider.core.plan import plan_sync
from ovirt_cloudprovider.core.records import (
    LABEL_OVIRT_CLUSTER,
    LABEL_OVIRT_DATACENTER,
    LABEL_OVIRT_HOST,
    ActionKind,
    GuestNic,
    Snapshot,
    VirtualMachine,
)
from ovirt_cloudprovider.core.settings import ControllerConfig, NodesConfig
from tests.core.plan_builders import make_spec, synced_node

VM_ID = "6f1c2a3b-0000-4000-8000-00000000abcd"


def _vm(**changes: object) -> VirtualMachine:
    vm = VirtualMachine(id=VM_ID, name="web1", status="up", fqdn="web1.example.com", cluster="c1", cluster_id="1",
                        datacenter="dc1", datacenter_id="2", host="h1", host_id="3", tags=("kubernetes",),
                        nics=(GuestNic("eth0", ips=("10.0.0.5", "2001:db8::5")),), cpus=2, memory_bytes=4 << 30,
                        guest_agent=True)
    return replace(vm, **changes)  # type: ignore[arg-type]


def _plan_for(vm: VirtualMachine) -> list[tuple[ActionKind, object, object]]:
    good = desired_nodes(Snapshot(vms=(_vm(),), query=""), NodesConfig()).nodes[0]
    node = synced_node(good)
    spec = desired_nodes(Snapshot(vms=(vm,), query=""), NodesConfig()).nodes[0]
    p = plan_sync(desired_nodes(Snapshot(vms=(vm,), query=""), NodesConfig()), [node], nodes=NodesConfig(),
                  controller=ControllerConfig())
    assert spec.vm_id == VM_ID
    return [(a.kind, a.labels, a.addresses) for a in p.actions if a.writes]


def test_a_garbled_ip_in_the_answer_leaves_the_addresses_alone() -> None:
    # fuzz case: one of the VM's IPs came back as "::g"; the node lost its IPv6 address
    assert _plan_for(_vm(nics=(GuestNic("eth0", ips=("10.0.0.5", "::g")),))) == []


def test_a_running_vm_whose_answer_lacks_its_host_keeps_the_host_label() -> None:
    # fuzz case: a <host> element without a name (or no <host>) removed ovirt.org/host from a running VM's node
    assert _plan_for(_vm(host=None, host_id=None)) == []


def test_an_answer_without_cluster_or_datacenter_removes_no_label() -> None:
    assert _plan_for(_vm(cluster=None, cluster_id=None, datacenter=None, datacenter_id=None)) == []


def test_a_vm_in_an_odd_status_keeps_its_host_label() -> None:
    for status in ("unknown", "not_responding", "image_locked"):
        assert _plan_for(_vm(status=status)) == [], status


def test_the_host_label_still_goes_when_the_vm_is_down() -> None:
    spec = make_spec("web1")
    down = replace(make_spec("web1", status="down"))
    node = synced_node(spec)
    p = plan_sync(desired_nodes(Snapshot(vms=(), query=""), NodesConfig()), [node], nodes=NodesConfig(),
                  controller=ControllerConfig())
    assert p is not None
    from ovirt_cloudprovider.core.changes import label_changes
    assert (LABEL_OVIRT_HOST, None) in label_changes(node, down)
    assert not {k for k, v in label_changes(node, down) if v is None} & {LABEL_OVIRT_CLUSTER, LABEL_OVIRT_DATACENTER}
