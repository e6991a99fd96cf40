"""A tag renamed or removed under a filter or under ``[nodes] tag_labels``: data the controller does not understand,
so no node is counted absent, deleted or stripped of its tag labels for it (real sweeps against both simulators)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, ActionKind
from ovirt_cloudprovider.core.settings import FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running
from tests.helpers import run_cli, write_config

GPU_VMS = "tag=kubernetes or tag=gpu-workers"
SUMMARY = "deletions blocked: the filter names a tag the engine does not have"


def _blocked(world: World, kind: str) -> float:
    value = world.metrics.registry.get_sample_value("ovirt_cloudprovider_deletions_blocked_total",
                                                    {"reason": "unknown-filter-tag", "kind": kind})
    return value or 0.0


def _summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == SUMMARY and r.levelno == logging.WARNING]


@pytest.fixture
def gpu(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    """Two running VMs tagged only gpu-workers, found by ``tag=kubernetes or tag=gpu-workers``; nodes go on the
    second absent sweep and the breaker lets two go at once."""
    for vm in running(engine)[:2]:
        engine.set_tags(vm.id, ["gpu-workers"])
    with World(engine, kube, vms=GPU_VMS, delete_after_sweeps=2, max_delete_fraction=0.5) as w:
        yield w


def test_a_renamed_filter_tag_neither_marks_nor_deletes_the_nodes_of_its_vms(
        gpu: World, caplog: pytest.LogCaptureFixture) -> None:
    engine = gpu.engine
    gpu_vms = running(engine)[:2]
    gpu.converge()
    nodes = {vm.id: gpu.node_of(vm.id) for vm in gpu_vms}
    assert all(nodes.values())
    engine.rename_tag("gpu-workers", "gpu-nodes")  # nothing about the VMs changed
    caplog.set_level(logging.WARNING, logger="ovirt_cloudprovider")
    for sweep in range(1, 4):
        report = gpu.sweep()
        assert report.ok and report.plan is not None
        kinds = {(a.kind, a.reason) for a in report.plan.actions}
        assert not {k for k, _ in kinds} & {ActionKind.MARK_ABSENT, ActionKind.DELETE}, kinds
        blocked = [a for a in report.plan.actions if a.kind is ActionKind.BLOCK_DELETE]
        assert sorted(a.vm_id or "" for a in blocked) == sorted(vm.id for vm in gpu_vms)
        assert all(a.reason == "UnknownFilterTag" and a.warning and "gpu-workers" in a.message for a in blocked)
        assert _blocked(gpu, "vm") == 2 * sweep and _blocked(gpu, "host") == 0
        assert len(_summaries(caplog)) == sweep  # one Warning line per sweep, not one per node
        for vm in gpu_vms:
            node = gpu.node_of(vm.id)
            assert node is not None and node["metadata"]["uid"] == nodes[vm.id]["metadata"]["uid"]  # type: ignore[index]
            assert ANNOTATION_ABSENT_SWEEPS not in (node["metadata"].get("annotations") or {})
    events = [e for e in gpu.kube.list_events() if e["reason"] == "UnknownFilterTag"]
    assert events and all(e["type"] == "Warning" for e in events)

    # a VM really removed meanwhile: its node waits too (absence is not counted while the filter names an
    # unknown tag); once the filter names the tag again, it is counted and deleted as usual, the others stay
    gone = gpu_vms[0]
    engine.remove_vm(gone.id)
    assert gpu.sweep().ok and gpu.node_of(gone.id) is not None
    gpu.config = replace(gpu.config, filters=FiltersConfig(vms="tag=kubernetes or tag=gpu-nodes"))
    caplog.clear()
    for _ in range(2):
        report = gpu.sweep()
        assert report.ok and report.plan is not None
        assert not any(a.reason == "UnknownFilterTag" for a in report.plan.actions)
    assert gpu.node_of(gone.id) is None and gpu.node_of(gpu_vms[1].id) is not None
    assert not _summaries(caplog)


def test_a_renamed_hosts_filter_tag_neither_marks_nor_deletes_the_node_of_its_host(
        engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    east_a = sorted((h for h in engine.fleet.hosts.values()
                     if engine.fleet.clusters[h.cluster_id].name == "east-a"), key=lambda h: h.name)
    metal, special = engine.fleet.add_tag("metal"), engine.fleet.add_tag("special-metal")
    with engine.fleet.lock:
        for h in east_a[:-1]:
            h.tag_ids.add(metal.id)
        east_a[-1].tag_ids.add(special.id)
    with World(engine, kube, hosts="Hosts: tag=metal or tag=special-metal", delete_after_sweeps=2,
               max_delete_fraction=0.5) as w:
        w.converge()
        assert sorted(w.host_nodes()) == [h.name for h in east_a]
        engine.rename_tag("special-metal", "metal-special")
        for sweep in (1, 2, 3):
            report = w.sweep()
            assert report.ok and report.plan is not None
            assert not any(a.kind in (ActionKind.MARK_ABSENT, ActionKind.DELETE) for a in report.plan.actions)
            node = w.host_nodes().get(east_a[-1].name)
            assert node is not None and ANNOTATION_ABSENT_SWEEPS not in (node["metadata"].get("annotations") or {})
            assert _blocked(w, "host") == sweep and _blocked(w, "vm") == 0
        assert w.metrics.registry.get_sample_value("ovirt_cloudprovider_filter_unknown_tags") == 1


@pytest.fixture
def labelled(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube, nodes=NodesConfig(register=True, tag_labels="k8s-labels")) as w:
        w.client.close()
        w.client = EngineClient(w.config.connection, page_size=5, tag_tree=True)
        yield w


def test_a_renamed_tag_labels_parent_leaves_the_tag_labels_on_the_nodes(labelled: World) -> None:
    engine = labelled.engine
    engine.add_tag("k8s-labels")
    engine.add_tag("gpu", parent="k8s-labels")
    engine.add_tag("a100", parent="gpu")
    engine.add_tag("ssd", parent="k8s-labels")
    vms = running(engine)[:3]
    for vm in vms:
        engine.set_tags(vm.id, ["kubernetes", "a100", "ssd"])
    labelled.converge()
    want = {"tags.ovirt.org/gpu": "a100", "tags.ovirt.org/ssd": "true"}

    def tag_labels(vm_id: str) -> dict[str, str]:
        node = labelled.node_of(vm_id)
        assert node is not None
        return {k: v for k, v in (node["metadata"].get("labels") or {}).items() if k.startswith("tags.ovirt.org/")}

    assert all(tag_labels(vm.id) == want for vm in vms)
    for rename in (True, False):  # the parent renamed, then removed with every tag under it
        if rename:
            engine.rename_tag("k8s-labels", "k8s-node-labels")
        else:
            engine.remove_tag("k8s-node-labels")
        labelled.kube.reset_counts()
        report = labelled.sweep()
        assert report.ok
        assert all(tag_labels(vm.id) == want for vm in vms)  # not understood: left as they are
        assert labelled.kube.writes("nodes") == 0
        assert labelled.metrics.registry.get_sample_value("ovirt_cloudprovider_filter_unknown_tags") == 1


def test_check_config_fails_on_a_hosts_filter_naming_a_tag_the_engine_does_not_have(
        tmp_path: Path, engine: EngineSimulator) -> None:
    path = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file,
                        vms="name=k8s-*\nhosts = cluster=east-a or tag=metall")  # no tag= in the VM filter
    r = run_cli(["check-config", "--config", str(path)])
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert errors == [f"ovirt-cloudprovider: error: {path}: [filters] hosts: the engine has no tag 'metall' (the "
                      "condition tag=metall matched no host)"]
