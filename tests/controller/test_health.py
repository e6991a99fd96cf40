"""Liveness and readiness rules (with a fake clock), and the HTTP port that serves them with /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.health import HealthServer, HealthState
from ovirt_cloudprovider.metrics import Metrics
from tests.helpers import http_get


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> HealthState:
    s = HealthState(stuck_after=600, engine_stale_after=30, heartbeat_timeout=60, clock=clock)
    s.set_cache_synced(lambda: True)
    return s


def test_alive_while_the_loop_beats(state: HealthState, clock: Clock) -> None:
    clock.now += 59
    assert state.liveness()[0]
    clock.now += 2
    ok, lines = state.liveness()
    assert not ok and "[-]loop: last heartbeat 61.0s ago" in lines
    state.beat()
    assert state.liveness()[0]


def test_a_long_sweep_is_alive_until_stuck_after(state: HealthState, clock: Clock) -> None:
    state.sweep_started()
    clock.now += 300  # no heartbeat during a long sweep: still alive
    assert state.liveness()[0]
    clock.now += 301
    ok, lines = state.liveness()
    assert not ok and "[-]sweep: running for 601.0s" in lines
    state.sweep_finished()
    state.beat()
    assert state.liveness()[0]


def test_ready_needs_recent_engine_contact_and_a_synced_cache(state: HealthState, clock: Clock) -> None:
    ok, lines = state.readiness()
    assert not ok and "[-]engine: no contact with the engine yet" in lines
    state.engine_ok()
    assert state.readiness()[0]
    state.engine_failed("event poll at engine:443 failed: HTTP 502")
    ok, lines = state.readiness()
    assert not ok and "[-]engine: event poll at engine:443 failed: HTTP 502" in lines
    state.engine_ok()
    clock.now += 31
    ok, lines = state.readiness()
    assert not ok and "[-]engine: no successful contact recently" in lines
    state.engine_ok()
    state.set_cache_synced(lambda: False)
    ok, lines = state.readiness()
    assert not ok and "[-]node-cache: not synced" in lines


@pytest.fixture
def server(state: HealthState) -> Iterator[tuple[HealthServer, Metrics]]:
    metrics = Metrics()
    srv = HealthServer(host="127.0.0.1", port=0, registry=metrics.registry, state=state)
    srv.start()
    yield srv, metrics
    srv.stop()


def test_endpoints(server: tuple[HealthServer, Metrics], state: HealthState) -> None:
    srv, metrics = server
    base = f"http://127.0.0.1:{srv.port}"
    assert http_get(base + "/healthz") == (200, "[+]loop: last heartbeat 0.0s ago\n[+]sweep: idle\nok\n")
    code, body = http_get(base + "/readyz")
    assert code == 503 and body.endswith("readyz check failed\n")
    state.engine_ok()
    assert http_get(base + "/readyz")[0] == 200
    metrics.syncs_total.labels("success").inc(3)
    code, body = http_get(base + "/metrics")
    assert code == 200
    assert 'ovirt_cloudprovider_syncs_total{result="success"} 3.0' in body
    assert "ovirt_cloudprovider_build_info{" in body
    assert http_get(base + "/nope")[0] == 404
