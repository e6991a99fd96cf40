"""Several controller instances in one cluster (core/ownership.py), end to end: each instance is a World (its own
config, real ovirtsdk4 and kubernetes clients) against one Kubernetes API simulator, with other filters on one
engine simulator or against two engine simulators. The circuit breaker is off in every instance
(``max_delete_fraction = 1``, no count cap), so that nothing but ownership keeps a node alive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_ENGINE,
    ANNOTATION_OWNER,
    RUNNING_STATUSES,
)
from ovirt_cloudprovider.core.settings import DEFAULT_INSTANCE
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World

INFRA = "tag=infra"  # the second instance's VMs: the fleet's untagged VMs, tagged infra and started
HOSTS = "cluster=east-a"  # and the hypervisors of one cluster
HYPERVISORS = "hypervisors"
NO_BREAKER: dict[str, Any] = {"delete_after_sweeps": 3, "max_delete_fraction": 1.0, "max_delete_count": 0}


@pytest.fixture
def infra(engine: EngineSimulator) -> list[str]:
    """The ids of the infra VMs (the untagged VMs of the fleet, now tagged infra and running)."""
    ids = []
    for vm in list(engine.fleet.vms.values()):
        if not vm.name.startswith("k8s-"):
            engine.tag_vm(vm.id, "infra")
            if vm.status not in RUNNING_STATUSES:
                engine.set_status(vm.id, "up")
            ids.append(vm.id)
    assert ids
    return ids


@pytest.fixture
def vms_world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    """The default instance: the Kubernetes VMs (tag=kubernetes)."""
    with World(engine, kube, **NO_BREAKER) as w:
        yield w


@pytest.fixture
def hv_world(engine: EngineSimulator, kube: KubeApiSimulator, infra: list[str]) -> Iterator[World]:
    """A second instance on the same engine: the infra VMs and the hypervisors of east-a."""
    with World(engine, kube, vms=INFRA, hosts=HOSTS, instance=HYPERVISORS, **NO_BREAKER) as w:
        yield w


def nodes(kube: KubeApiSimulator) -> dict[str, dict[str, Any]]:
    """Every node with an ovirt:// providerID, by providerID."""
    return {n["spec"]["providerID"]: n for n in kube.list_nodes()
            if (n["spec"].get("providerID") or "").startswith("ovirt://")}


def owner(node: dict[str, Any]) -> tuple[str | None, str | None]:
    annotations = node["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_OWNER), annotations.get(ANNOTATION_ENGINE)


def rounds(worlds: list[World], n: int) -> None:
    for _ in range(n):
        for w in worlds:
            report = w.sweep()
            assert report.ok, report.error


def vm_node_ids(engine: EngineSimulator, kube: KubeApiSimulator, *, tagged: bool) -> set[str]:
    """The providerIDs of the nodes of ``engine``'s VMs, the k8s- ones or the others."""
    return {pid for pid in nodes(kube) for vm in engine.fleet.vms.values()
            if pid == f"ovirt://{vm.id}" and vm.name.startswith("k8s-") == tagged}


def test_two_instances_with_other_filters_keep_and_delete_only_their_own_nodes(
        engine: EngineSimulator, kube: KubeApiSimulator, vms_world: World, hv_world: World, infra: list[str]) -> None:
    rounds([vms_world, hv_world], 2)
    vms_world.converge()
    hv_world.converge()
    engine_id = vms_world.client._endpoint.identity
    ours = vm_node_ids(engine, kube, tagged=True)
    theirs = vm_node_ids(engine, kube, tagged=False) | {pid for pid in nodes(kube) if pid.startswith("ovirt://host/")}
    assert len(ours) >= 5 and len(theirs) == len(infra) + 3
    assert {owner(nodes(kube)[pid]) for pid in ours} == {(DEFAULT_INSTANCE, engine_id)}
    assert {owner(nodes(kube)[pid]) for pid in theirs} == {(HYPERVISORS, engine_id)}

    # sweep after sweep, more than delete_after_sweeps: nobody writes a node, nobody deletes one
    before = vms_world.node_versions()
    rounds([vms_world, hv_world], 5)
    assert vms_world.node_versions() == before

    # each instance deletes the node of its own gone VM, and only that one
    gone_vm = next(vm for vm in engine.fleet.vms.values() if f"ovirt://{vm.id}" in ours)
    gone_infra = infra[0]
    engine.remove_vm(gone_vm.id)
    engine.remove_vm(gone_infra)
    rounds([vms_world, hv_world], 4)
    assert set(nodes(kube)) == (ours | theirs) - {f"ovirt://{gone_vm.id}", f"ovirt://{gone_infra}"}
    deleted = {a: w.metrics.actions_total.labels("delete", "success")._value.get()
               for a, w in (("vms", vms_world), ("hv", hv_world))}
    assert deleted == {"vms": 1, "hv": 1}


def second_engine(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    """Another engine with its own Kubernetes VMs (b-k8s-...: no node name shared with the first engine)."""
    other = engine_sims(generate_fleet(6, seed=5))
    for vm in list(other.fleet.vms.values()):
        other.rename(vm.id, f"b-{vm.name}")
    return other


@pytest.mark.parametrize("instance", ["engine-b", DEFAULT_INSTANCE])
def test_two_engines_in_one_cluster_keep_and_delete_only_their_own_nodes(
        engine: EngineSimulator, kube: KubeApiSimulator, vms_world: World,
        engine_sims: Callable[..., EngineSimulator], instance: str) -> None:
    """One instance per engine; also with the same (default) name: the engine is part of the owner."""
    other = second_engine(engine_sims)
    with World(other, kube, instance=instance, **NO_BREAKER) as b_world:
        rounds([vms_world, b_world], 2)
        vms_world.converge()
        b_world.converge()
        first = vm_node_ids(engine, kube, tagged=True)
        second = vm_node_ids(other, kube, tagged=False)  # b-k8s-...: not "k8s-" names
        assert len(first) >= 5 and len(second) >= 3 and not first & second
        assert {owner(nodes(kube)[pid])[1] for pid in second} == {b_world.client._endpoint.identity}
        before = vms_world.node_versions()
        rounds([vms_world, b_world], 5)
        assert vms_world.node_versions() == before

        gone_a = next(vm.id for vm in engine.fleet.vms.values() if f"ovirt://{vm.id}" in first)
        gone_b = next(vm.id for vm in other.fleet.vms.values() if f"ovirt://{vm.id}" in second)
        engine.remove_vm(gone_a)
        other.remove_vm(gone_b)
        rounds([vms_world, b_world], 4)
        assert set(nodes(kube)) == (first | second) - {f"ovirt://{gone_a}", f"ovirt://{gone_b}"}


def strip_owners(kube: KubeApiSimulator, *, absent: int | None = None) -> None:
    """Make every node a node of the release before owners were recorded (optionally one sweep from deletion)."""
    for node in kube.list_nodes():
        annotations: dict[str, Any] = {ANNOTATION_OWNER: None, ANNOTATION_ENGINE: None}
        if absent is not None:
            annotations[ANNOTATION_ABSENT_SWEEPS] = str(absent)
        kube.patch_node(node["metadata"]["name"], {"metadata": {"annotations": annotations}})


def test_upgrade_a_new_instance_never_deletes_or_touches_the_old_nodes(
        engine: EngineSimulator, kube: KubeApiSimulator, infra: list[str], vms_world: World, hv_world: World) -> None:
    """Before the upgrade one instance managed the Kubernetes and the infra VMs; after it, the VMs stay with the
    default instance and a new instance takes the infra VMs and the hosts. Every old node is one sweep from
    deletion, and the new instance runs many sweeps before the upgraded default one runs at all."""
    with World(engine, kube, vms="tag=kubernetes or tag=infra", **NO_BREAKER) as old:
        old.converge()
    gone = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-")
                and f"ovirt://{vm.id}" in nodes(kube))
    engine.remove_vm(gone.id)  # its node stays behind, to be deleted after the upgrade
    strip_owners(kube, absent=2)
    legacy = nodes(kube)
    tagged = {pid for pid in legacy if pid in vm_node_ids(engine, kube, tagged=True)}
    before = vms_world.node_versions()

    rounds([hv_world], 5)  # only the new instance: it adopts the infra VMs' nodes, touches nothing else
    assert set(nodes(kube)) >= set(legacy)
    after = vms_world.node_versions()
    for pid, node in nodes(kube).items():
        name = node["metadata"]["name"]
        if pid in legacy and pid.removeprefix("ovirt://") in infra:
            assert owner(node)[0] == HYPERVISORS
            assert ANNOTATION_ABSENT_SWEEPS not in node["metadata"]["annotations"]
        elif pid in legacy:
            assert after[name] == before[name], f"{name} was written by the new instance"

    rounds([vms_world, hv_world], 4)  # the upgraded default instance adopts its nodes, deletes the gone VM's
    final = nodes(kube)
    assert set(final) == set(legacy) - {f"ovirt://{gone.id}"} | {p for p in final if p.startswith("ovirt://host/")}
    assert {owner(final[pid])[0] for pid in tagged - {f"ovirt://{gone.id}"}} == {DEFAULT_INSTANCE}
    assert {owner(final[f"ovirt://{vm_id}"])[0] for vm_id in infra} == {HYPERVISORS}


def test_upgrade_the_default_instance_never_deletes_a_split_off_vms_legacy_node(
        engine: EngineSimulator, kube: KubeApiSimulator, infra: list[str], vms_world: World, hv_world: World) -> None:
    """The filter split the other way round: the upgraded default instance runs first, and the infra VMs it no
    longer searches for still run (the new instance will take them over). Their unowned nodes count absent for
    it, but such a node is deleted only when its VM is gone (the engine's 404 and the narrowed search empty),
    never because the VM left this instance's filter: only an owned node can leave a filter."""
    with World(engine, kube, vms="tag=kubernetes or tag=infra", **NO_BREAKER) as old:
        old.converge()
    gone = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-")
                and f"ovirt://{vm.id}" in nodes(kube))
    engine.remove_vm(gone.id)
    strip_owners(kube, absent=2)
    rounds([vms_world], 4)  # only the upgraded default instance, every legacy node one sweep from deletion
    final = nodes(kube)
    assert {f"ovirt://{vm_id}" for vm_id in infra} <= set(final), "a running VM's legacy node was deleted"
    assert f"ovirt://{gone.id}" not in final  # a VM that is really gone still loses its legacy node
    assert not [e for e in kube.list_events() if e["reason"] == "VMLeftFilter"]
    blocked = [e for e in kube.list_events() if e["reason"] == "DeletionUnconfirmed"]
    assert blocked and all("records no owner" in e["message"] for e in blocked)
    rounds([hv_world], 1)  # the new instance takes them over
    assert {owner(nodes(kube)[f"ovirt://{vm_id}"])[0] for vm_id in infra} == {HYPERVISORS}


def test_a_name_taken_by_another_instances_node_is_not_registered(
        engine: EngineSimulator, kube: KubeApiSimulator, vms_world: World, hv_world: World) -> None:
    """The hypervisors' instance owns a node named like one of the default instance's VMs: that VM gets no node,
    a NodeNameConflict skip, and the other instance's node is never written."""
    vm = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-") and vm.status == "up")
    kube.create_node({"metadata": {"name": vm.name, "annotations": {
        ANNOTATION_OWNER: HYPERVISORS, ANNOTATION_ENGINE: hv_world.client._endpoint.identity}},
        "spec": {"providerID": "ovirt://host/8b8a9e8c-0000-4000-8000-000000000001"}})
    version = kube.get_node(vm.name)["metadata"]["resourceVersion"]  # type: ignore[index]
    rounds([vms_world], 4)
    assert kube.get_node(vm.name)["metadata"]["resourceVersion"] == version  # type: ignore[index]
    assert f"ovirt://{vm.id}" not in nodes(kube)
    assert vms_world.metrics.skipped_vms.labels("node-name-conflict", "vm")._value.get() == 1


def test_an_adoption_is_written_only_on_the_node_as_planned(kube: KubeApiSimulator, vms_world: World) -> None:
    """The owner annotations carry the planned resourceVersion: a node that changed since planning (another instance
    adopted it meanwhile) answers 409 and keeps its owner."""
    from ovirt_cloudprovider.core.records import Action, ActionKind

    provider_id = "ovirt://0c6b2c37-0000-4000-8000-000000000001"
    node = kube.create_node({"metadata": {"name": "legacy-1"}, "spec": {"providerID": provider_id}})
    planned = node["metadata"]["resourceVersion"]
    kube.patch_node("legacy-1", {"metadata": {"annotations": {ANNOTATION_OWNER: HYPERVISORS, ANNOTATION_ENGINE: "e"}}})
    adopt = Action(kind=ActionKind.UPDATE, node="legacy-1", reason="UpdatedNode", message="Adopted.",
                   uid=node["metadata"]["uid"], resource_version=planned,
                   annotations=((ANNOTATION_ENGINE, "engine"), (ANNOTATION_OWNER, DEFAULT_INSTANCE)))
    result = vms_world.writer.apply([adopt])
    assert result.conflicts == 1 and result.applied == 0
    assert owner(kube.get_node("legacy-1")) == (HYPERVISORS, "e")  # type: ignore[arg-type]
