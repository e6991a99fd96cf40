"""Engine faults: whatever the engine (or a proxy in front of it) answers, no node is deleted, tainted or
rewritten wrongly, and the controller converges once the engine is healthy again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ovirt_cloudprovider.core.records import RUNNING_STATUSES
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.faults.conftest import SECRET, LogTap
from tests.faults.world import FaultWorld, assert_clean, during, make_engine

API_VMS = "/ovirt-engine/api/vms"


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with make_engine() as sim:
        yield sim


@pytest.fixture
def kube() -> Iterator[KubeApiSimulator]:
    with KubeApiSimulator() as sim:
        yield sim


def _cluster(engine: EngineSimulator, vm: Any) -> str:
    return engine.fleet.clusters[vm.cluster_id].name


def _some(engine: EngineSimulator, pick: Callable[[Any], bool]) -> list[str]:
    return [vm.id for vm in engine.fleet.vms.values() if pick(vm)]


def _hung_sso(engine: EngineSimulator) -> None:
    engine.expire_tokens()
    engine.hang_sso()


def _lose_east_b_and_fail_gets(engine: EngineSimulator) -> None:
    engine.lose_in_search(_some(engine, lambda vm: _cluster(engine, vm) == "east-b"))
    engine.fail_requests(503, path_prefix=API_VMS + "/")


def _lose_some_and_html_404(engine: EngineSimulator) -> None:
    # a proxy in front of an engine that restarts: the search loses VMs, every GET by id gets an HTML 404 page
    engine.lose_in_search(_some(engine, lambda vm: int(vm.id[:8], 16) % 3 == 0))
    engine.html_not_found("vms")
    engine.html_not_found("hosts")


def _expire_soon(engine: EngineSimulator) -> None:
    engine.set_latency(0.3, path_prefix=API_VMS)
    threading.Timer(0.15, engine.expire_tokens).start()


SCENARIOS: dict[str, tuple[Callable[[EngineSimulator], None], int, dict[str, object]]] = {
    # name: (the fault, sweeps under it, world settings)
    "down-for-many-sweeps": (lambda e: e.drop_connections(), 5, {}),
    "proxy-502-html": (lambda e: e.proxy_errors(), 3, {}),
    "503-html": (lambda e: e.fail_requests(503), 3, {}),
    "engine-fault-500": (lambda e: e.engine_faults(500), 3, {}),
    "timeouts": (lambda e: e.set_latency(2.0, path_prefix=API_VMS), 2, {"timeout": 1.0}),
    "slow-just-under-timeout": (lambda e: e.set_latency(0.6, path_prefix=API_VMS), 2, {"timeout": 1.5}),
    "hung-sso": (_hung_sso, 2, {"timeout": 1.0}),
    "expired-token-mid-sweep": (_expire_soon, 2, {}),
    "empty-search": (lambda e: e.serve_static("/vms", b"<?xml version='1.0'?>\n<vms/>\n"), 4, {"page_size": 100}),
    "empty-200": (lambda e: e.serve_static("/vms", b""), 3, {"page_size": 100}),
    "html-200": (lambda e: e.serve_static("/vms", b"<html><body>Login</body></html>",
                                          content_type="text/html"), 3, {"page_size": 100}),
    "loses-random-subset": (lambda e: e.lose_in_search(_some(e, lambda vm: int(vm.id[:8], 16) % 3 == 0)), 4, {}),
    "loses-whole-cluster": (lambda e: e.lose_in_search(_some(e, lambda vm: _cluster(e, vm) == "east-a")), 4, {}),
    "loses-a-cluster-and-gets-by-id-fail": (_lose_east_b_and_fail_gets, 4, {}),
    "loses-random-subset-and-html-404-by-id": (_lose_some_and_html_404, 4, {}),
    "failure-on-page-2-of-3": (lambda e: e.fail_requests(500, path_prefix=API_VMS, skip=1), 3, {}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_engine_fault(name: str, engine: EngineSimulator, kube: KubeApiSimulator, logtap: LogTap) -> None:
    fault, sweeps, settings = SCENARIOS[name]
    world = FaultWorld(engine, kube, logtap, **settings)  # type: ignore[arg-type]
    try:
        world.baseline()
        fault(engine)
        lost, wrong = during(world, sweeps)
        engine.clear_faults()
        engine.clear_static()
        assert_clean(world.finish("engine", lost=lost, wrong=wrong))
    finally:
        engine.clear_faults()
        world.close()


@pytest.mark.parametrize("status", ["unknown", "not_responding"])
def test_vms_unknown_or_not_responding_change_nothing(status: str, engine: EngineSimulator,
                                                      kube: KubeApiSimulator, logtap: LogTap) -> None:
    world = FaultWorld(engine, kube, logtap)
    try:
        world.baseline()
        up = [vm.id for vm in engine.fleet.vms.values() if vm.status in RUNNING_STATUSES]
        for vm_id in up:
            engine.set_status(vm_id, status)
        lost, wrong = during(world, 3)
        for vm_id in up:
            engine.set_status(vm_id, "up")
        assert_clean(world.finish("engine", lost=lost, wrong=wrong))
    finally:
        world.close()


def test_wrong_password_fails_every_sweep_and_logs_in_rarely(engine: EngineSimulator, kube: KubeApiSimulator,
                                                             logtap: LogTap) -> None:
    good = FaultWorld(engine, kube, logtap)
    wrong_pw = SECRET[::-1] + "!"
    bad = FaultWorld(engine, kube, logtap, password=wrong_pw)
    try:
        good.baseline()
        bad.before = good.before
        logins = engine.logins
        lost, wrong = during(bad, 6, each=lambda r: None if not r.ok else pytest.fail("a sweep with a wrong password"))
        attempts = engine.logins - logins
        out = good.finish("engine", lost=lost, wrong=wrong)
        out_bad = bad.finish("secrets", converge=False, password=wrong_pw)
        assert_clean(out)
        assert_clean(out_bad)
        assert attempts <= 3, f"{attempts} login attempts for 6 sweeps with a wrong password"
    finally:
        good.close()
        bad.close()


@pytest.mark.parametrize(("lose", "reason"), [("east-a", "ClusterVanished"), ("subset", "DeletionUnconfirmed")])
def test_what_blocked_the_deletions_is_evented_and_counted(lose: str, reason: str, engine: EngineSimulator,
                                                           kube: KubeApiSimulator, logtap: LogTap) -> None:
    world = FaultWorld(engine, kube, logtap)
    try:
        world.baseline()
        if lose == "east-a":
            lost_ids = _some(engine, lambda vm: _cluster(engine, vm) == "east-a")
        else:
            lost_ids = _some(engine, lambda vm: int(vm.id[:8], 16) % 3 == 0)
        engine.lose_in_search(lost_ids)
        lost, wrong = during(world, 3)
        events = [e for e in kube.list_events() if e["reason"] == reason]
        assert events and all(e["type"] == "Warning" for e in events)
        kebab = "cluster-vanished" if lose == "east-a" else "deletion-unconfirmed"
        assert world.metrics.deletions_blocked_total.labels(kebab, "vm")._value.get() > 0
        engine.clear_faults()
        assert_clean(world.finish("engine", lost=lost, wrong=wrong))
    finally:
        world.close()
