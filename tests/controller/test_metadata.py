"""oVirt's metadata as node labels (tags under a parent tag, affinity labels, placement, host id), the filter that
names a tag the engine does not have, and the sweep's Correlation-Id: real sweeps against both simulators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ovirt_cloudprovider.controller import run_sweep
from ovirt_cloudprovider.core.settings import FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.simulators.engine import API_PREFIX, EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running
from tests.helpers import run_cli, write_config

NODES = NodesConfig(register=True, tag_labels="k8s-labels", affinity_labels=True, host_id_label=True)


@pytest.fixture
def world(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[World]:
    with World(engine, kube) as w:
        w.config = replace(w.config, nodes=NODES)
        w.client.close()
        w.client = EngineClient(w.config.connection, page_size=5, tag_tree=True, affinity_labels=True)
        yield w


def _labels(world: World, vm_id: str) -> dict[str, str]:
    node = world.node_of(vm_id)
    assert node is not None
    return dict(node["metadata"].get("labels") or {})


def test_tags_affinity_labels_and_placement_become_labels_and_stay_current(world: World) -> None:
    engine = world.engine
    engine.add_tag("k8s-labels")
    engine.add_tag("gpu", parent="k8s-labels")
    engine.add_tag("a100", parent="gpu")
    engine.add_tag("h100", parent="gpu")
    engine.add_tag("ssd", parent="k8s-labels")
    engine.add_tag("no good", parent="k8s-labels")
    one, two, three = running(engine)[:3]
    engine.set_tags(one.id, ["kubernetes", "a100", "ssd"])
    engine.set_tags(two.id, ["kubernetes", "a100", "h100"])  # two values for gpu: a conflict, no label
    engine.set_tags(three.id, ["kubernetes", "no good"])  # no valid label name: skipped with a reason
    engine.set_affinity_labels(one.id, ["fast-storage", "bad label!"])
    engine.set_placement(one.id, "pinned")
    world.converge()
    labels = _labels(world, one.id)
    assert labels["tags.ovirt.org/gpu"] == "a100" and labels["tags.ovirt.org/ssd"] == "true"
    assert labels["affinity.ovirt.org/fast-storage"] == "true"
    assert labels["ovirt.org/migratable"] == "false"
    assert labels["topology.scs.community/host-id"] == engine.fleet.vms[one.id].host_id
    assert not any(k.startswith("tags.ovirt.org/") for k in _labels(world, two.id))
    assert _labels(world, two.id)["ovirt.org/migratable"] == "true"
    assert not any(k.startswith("tags.ovirt.org/") for k in _labels(world, three.id))
    two_node = world.node_of(two.id)
    assert two_node is not None
    conflict = world.kube.list_events(involved_name=two_node["metadata"]["name"], reason="TagLabelConflict")
    assert conflict and conflict[0]["type"] == "Warning" and "tags.ovirt.org/gpu" in conflict[0]["message"]
    one_node = world.node_of(one.id)
    assert one_node is not None
    invalid = world.kube.list_events(involved_name=one_node["metadata"]["name"], reason="InvalidMetadataLabel")
    assert invalid and "bad label!" in invalid[0]["message"]
    assert world.metrics.registry.get_sample_value("ovirt_cloudprovider_skipped_vms",
                                                   {"reason": "tag-label-conflict", "kind": "vm"}) == 1

    # a tag removed and the VM moved: the tag's label goes (it is ours), the host id follows the VM
    engine.set_tags(one.id, ["kubernetes", "a100"])
    engine.set_placement(one.id, "migratable")
    engine.migrate(one.id)
    world.converge()
    labels = _labels(world, one.id)
    assert "tags.ovirt.org/ssd" not in labels and labels["tags.ovirt.org/gpu"] == "a100"
    assert labels["ovirt.org/migratable"] == "true"
    assert labels["topology.scs.community/host-id"] == engine.fleet.vms[one.id].host_id


def test_every_request_of_a_sweep_carries_one_correlation_id_and_the_next_sweep_another(world: World) -> None:
    ids: list[set[str | None]] = []
    for _ in range(2):
        before = len(world.engine.requests)
        assert world.sweep().ok
        sent = [r for r in world.engine.requests[before:] if r.path.startswith(API_PREFIX)]
        assert len(sent) >= 5
        ids.append({r.headers.get("correlation-id") for r in sent})
    assert all(len(i) == 1 and None not in i for i in ids)
    assert ids[0] != ids[1]


def test_a_filter_naming_a_tag_the_engine_does_not_have_is_reported(world: World) -> None:
    world.config = replace(world.config, filters=FiltersConfig(vms="tag=kubernetes or tag=kubernetse"),
                           nodes=NodesConfig())
    health = HealthState()
    with world.synced_nodes() as nodes:
        report = run_sweep(config=world.config, engine=world.client, nodes=nodes, writer=world.writer,
                           metrics=world.metrics, health=health)
    assert report.ok
    assert world.metrics.registry.get_sample_value("ovirt_cloudprovider_filter_unknown_tags") == 1
    ready, reasons = health.readiness()
    assert not ready and any("kubernetse" in r and r.startswith("[-]filters") for r in reasons)
    world.config = replace(world.config, filters=FiltersConfig(vms="tag=kubernetes"))
    with world.synced_nodes() as nodes:
        run_sweep(config=world.config, engine=world.client, nodes=nodes, writer=world.writer, metrics=world.metrics,
                  health=health)
    assert world.metrics.registry.get_sample_value("ovirt_cloudprovider_filter_unknown_tags") == 0
    assert not any(r.startswith("[-]filters") for r in health.readiness()[1])


def test_check_config_fails_on_a_filter_naming_a_tag_the_engine_does_not_have(tmp_path: Path,
                                                                             engine: EngineSimulator) -> None:
    path = write_config(tmp_path / "c.conf", uri=engine.url, password=engine.password, ca_file=engine.ca_file,
                        vms="tag=kubernetse")
    r = run_cli(["check-config", "--config", str(path)])
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert errors == [f"ovirt-cloudprovider: error: {path}: [filters] vms: the engine has no tag 'kubernetse' (the "
                      "condition tag=kubernetse matched no VM)"]
