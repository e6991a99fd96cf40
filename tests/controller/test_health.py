"""Liveness and readiness rules (with a fake clock), and the HTTP port that serves them with /metrics."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.health import HealthServer, HealthState
from ovirt_cloudprovider.metrics import Metrics
from tests.helpers import http_get, wait_for


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


def test_a_standby_is_ready_without_engine_contact_and_says_so(state: HealthState, clock: Clock) -> None:
    state.set_cache_synced(lambda: True)
    state.standby()
    ok, lines = state.readiness()
    assert ok and "[+]engine: standby (not leading; the engine is not contacted)" in lines
    clock.now += 3600  # no contact for an hour: still ready, it does not contact the engine
    assert state.readiness()[0]
    state.engine_failed("login failed")  # leading again: the engine counts
    ok, lines = state.readiness()
    assert not ok and "[-]engine: login failed" in lines


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


# --- slow, idle and vanishing clients -------------------------------------------------------------------

def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    code, _ = http_get(url)
    return code, time.monotonic() - started


def test_idle_connections_take_no_threads_and_healthz_still_answers(
        server: tuple[HealthServer, Metrics]) -> None:
    srv, _ = server
    base_threads = threading.active_count()
    idle = [_connect(srv.port) for _ in range(150)]
    try:
        time.sleep(0.3)  # let the server accept them all
        threads = threading.active_count()
        code, took = _timed_get(f"http://127.0.0.1:{srv.port}/healthz")
        assert code == 200 and took < 2
        assert threads - base_threads <= 2, f"{threads - base_threads} threads for 150 idle connections"
    finally:
        for s in idle:
            s.close()


def test_busy_connections_are_bounded_and_the_excess_gets_503(state: HealthState) -> None:
    srv = HealthServer(host="127.0.0.1", port=0, registry=Metrics().registry, state=state, max_connections=8,
                       request_timeout=5)
    srv.start()
    base_threads = threading.active_count()
    slow = [_connect(srv.port) for _ in range(30)]
    try:
        for s in slow:  # a request line, then nothing: each holds a handler until request_timeout
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        busy_threads = threading.active_count() - base_threads
        code, took = _timed_get(f"http://127.0.0.1:{srv.port}/healthz")
        assert code == 503 and took < 2
        assert busy_threads <= 8, f"{busy_threads} handler threads, max_connections=8"
    finally:
        for s in slow:
            s.close()
    wait_for(lambda: http_get(f"http://127.0.0.1:{srv.port}/healthz")[0] == 200, what="slots freed")
    srv.stop()


def test_idle_and_slow_connections_are_closed_after_the_request_timeout(state: HealthState) -> None:
    srv = HealthServer(host="127.0.0.1", port=0, registry=Metrics().registry, state=state, request_timeout=0.5)
    srv.start()
    try:
        idle, slow = _connect(srv.port), _connect(srv.port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server
        slow.recv(1000)  # closed (possibly after a 408 answer)
        assert time.monotonic() - started < 3
        idle.close()
        slow.close()
    finally:
        srv.stop()


def test_a_client_that_trickles_its_request_is_cut_off_after_the_request_timeout(state: HealthState) -> None:
    srv = HealthServer(host="127.0.0.1", port=0, registry=Metrics().registry, state=state, request_timeout=0.5)
    srv.start()
    try:
        with _connect(srv.port) as trickle:
            started = time.monotonic()
            cut_off = None
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"x" * 100:  # one byte every 0.1 s: 12 s in all
                try:
                    trickle.sendall(bytes([byte]))
                except OSError:
                    cut_off = time.monotonic() - started
                    break
                time.sleep(0.1)
            assert cut_off is not None and cut_off < 3, cut_off
    finally:
        srv.stop()


def test_clients_that_vanish_leave_no_traceback(server: tuple[HealthServer, Metrics],
                                                capfd: pytest.CaptureFixture[str]) -> None:
    srv, metrics = server
    for i in range(300):  # a big /metrics answer, so that the write fails after the client is gone
        metrics.syncs_total.labels(f"result-{i}").inc()
    for _ in range(20):
        s = _connect(srv.port)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        s.close()
    assert http_get(f"http://127.0.0.1:{srv.port}/healthz")[0] == 200
    time.sleep(0.3)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def test_beyond_max_waiting_the_oldest_idle_connections_are_closed(state: HealthState) -> None:
    srv = HealthServer(host="127.0.0.1", port=0, registry=Metrics().registry, state=state, max_waiting=10)
    srv.start()
    idle = [_connect(srv.port) for _ in range(30)]
    try:
        for s in idle[:20]:
            assert s.recv(10) == b""  # closed by the server at once (the socket timeout is 5 s)
        assert http_get(f"http://127.0.0.1:{srv.port}/healthz")[0] == 200
    finally:
        for s in idle:
            s.close()
        srv.stop()
