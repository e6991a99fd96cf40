"""Kubernetes API faults: 409 storms, 429 with Retry-After, 500s, dropped and expired (410) watches, a node edited
or deleted by someone else between plan and apply, and the RBAC of deploy/ enforced throughout. Each scenario
needs writes (a VM stops, so its node is tainted) and must end with exactly the right nodes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.controller import run_sweep
from ovirt_cloudprovider.core.records import RUNNING_STATUSES, TAINT_SHUTDOWN, ObservedNode
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.deploy.test_rbac import TOKEN
from tests.faults.conftest import LogTap
from tests.faults.world import FaultWorld, assert_clean, make_engine, node_state, rbac_kube
from tests.helpers import wait_for


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with make_engine() as sim:
        yield sim


@pytest.fixture
def kube() -> Iterator[KubeApiSimulator]:
    with rbac_kube() as sim:
        yield sim


def _world(engine: EngineSimulator, kube: KubeApiSimulator, tap: LogTap) -> FaultWorld:
    world = FaultWorld(engine, kube, tap)
    world.api.configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
    world.api.configuration.api_key_prefix = {}
    cfg = k8s.Configuration()
    cfg.host = kube.url
    cfg.api_key = {"BearerToken": f"Bearer {TOKEN}"}
    world.api = k8s.ApiClient(cfg, header_name="Authorization", header_value=f"Bearer {TOKEN}")
    from ovirt_cloudprovider.kube.writer import NodeWriter
    world.writer = NodeWriter(world.api, metrics=world.metrics, backoff_initial=0.02, event_repeat_interval=0)
    return world


def _stop_one(engine: EngineSimulator) -> str:
    vm = next(v for v in engine.fleet.vms.values() if v.status in RUNNING_STATUSES and v.name.startswith("k8s-w"))
    engine.set_status(vm.id, "down")
    return vm.name


FAULTS: dict[str, Callable[[KubeApiSimulator], None]] = {
    "409-storm": lambda k: k.conflict_next(25, resource="nodes"),
    "429-retry-after": lambda k: k.throttle_next(6, retry_after=1),
    "500s": lambda k: k.fail_next(8, code=500, verb="patch"),
    "500s-on-list": lambda k: k.fail_next(3, code=500, verb="list"),
    "503s-on-events": lambda k: k.fail_next(10, code=503, resource="events"),
}


def _expected(before: dict[str, str], name: str) -> dict[str, str]:
    """The baseline with the shutdown taint on ``name`` and without its host label (its VM is down)."""
    out = dict(before)
    d = json.loads(out[name])
    d["labels"].pop("ovirt.org/host", None)
    d["spec"]["taints"] = [*(d["spec"].get("taints") or []), {"key": TAINT_SHUTDOWN, "effect": "NoSchedule"}]
    out[name] = json.dumps(d, sort_keys=True)
    return out


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_kube_fault(name: str, engine: EngineSimulator, kube: KubeApiSimulator, logtap: LogTap) -> None:
    world = _world(engine, kube, logtap)
    try:
        world.baseline()
        stopped = _stop_one(engine)
        FAULTS[name](kube)
        for _ in range(4):
            if world.sweep().ok:
                break
        kube.clear_faults()
        world.before = _expected(world.before, stopped)
        out = world.finish("kube")
        assert_clean(out)
        assert kube.forbidden == []
    finally:
        world.close()


@pytest.mark.parametrize("how", ["edited", "deleted"])
def test_node_changed_by_someone_else_between_plan_and_apply(how: str, engine: EngineSimulator,
                                                             kube: KubeApiSimulator, logtap: LogTap) -> None:
    world = _world(engine, kube, logtap)
    try:
        world.baseline()
        stopped = _stop_one(engine)
        stale = _nodes(world)  # planned against these
        if how == "edited":
            kube.patch_node(stopped, {"metadata": {"labels": {"team": "someone-else"}}})
        else:
            kube.delete_node(stopped)
        run_sweep(config=world.config, engine=world.client, nodes=stale, writer=world.writer, metrics=world.metrics)
        node = kube.get_node(stopped)
        if how == "edited":
            assert node is not None and node["metadata"]["labels"]["team"] == "someone-else"
            kube.patch_node(stopped, {"metadata": {"labels": {"team": None}}})
            world.before = _expected(world.before, stopped)
        else:
            assert node is None, "a node deleted by someone else was written again from a stale plan"
            world.before.pop(stopped)
            world.before = {k: v for k, v in world.before.items()}
        out = world.finish("kube", converge=how == "edited")
        assert_clean(out)
        if how == "deleted":  # the next sweeps converge: a stopped VM gets no new node
            world.converge()
            assert kube.get_node(stopped) is None
            assert set(node_state(kube, strict=True)) == set(world.before)
        assert kube.forbidden == []
    finally:
        world.close()


def _nodes(world: FaultWorld) -> tuple[ObservedNode, ...]:
    cache = NodeCache(world.api)
    cache.start()
    try:
        assert cache.wait_synced(10)
        return cache.nodes()
    finally:
        cache.stop()


@pytest.mark.parametrize("how", ["dropped", "abrupt", "expired-410"])
def test_watch_faults_keep_the_cache_true(how: str, engine: EngineSimulator, kube: KubeApiSimulator,
                                          logtap: LogTap) -> None:
    world = _world(engine, kube, logtap)
    cache = NodeCache(world.api)
    try:
        world.baseline()
        cache.start()
        assert cache.wait_synced(10)
        wait_for(lambda: kube.active_watches >= 1, 10, "the node watch")
        stopped = _stop_one(engine)
        if how == "expired-410":
            kube.patch_node(stopped, {"metadata": {"labels": {"poke": "1"}}})
            kube.compact()
            kube.drop_watches("nodes")
        else:
            kube.drop_watches("nodes", abrupt=how == "abrupt")
            kube.patch_node(stopped, {"metadata": {"labels": {"poke": "1"}}})
        wait_for(lambda: any(n.label_map.get("poke") == "1" for n in cache.nodes()) and cache.synced, 15,
                 "the cache to see the change made while its watch was down")
        report = run_sweep(config=world.config, engine=world.client, nodes=cache.nodes(), writer=world.writer,
                           metrics=world.metrics)
        assert report.ok, report.error
        kube.patch_node(stopped, {"metadata": {"labels": {"poke": None}}})
        world.before = _expected(world.before, stopped)
        assert_clean(world.finish("kube"))
        assert kube.forbidden == []
    finally:
        cache.stop()
        world.close()
