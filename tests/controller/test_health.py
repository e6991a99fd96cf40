"""Liveness and readiness rules (with a fake clock), and the HTTP port that serves them with /metrics."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

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


def test_probes_are_answered_whatever_64_slow_clients_do(server: tuple[HealthServer, Metrics],
                                                          state: HealthState) -> None:
    """64+ clients on the default limits: idle, a request line then nothing, a header trickled, a whole
    request whose answer is never read. Every probe in a row is still answered 200."""
    srv, _ = server
    state.engine_ok()
    base_threads = threading.active_count()
    clients = [_connect(srv.port) for _ in range(96)]
    try:
        for i, s in enumerate(clients):
            if i % 3 == 0:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
            elif i % 3 == 1:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa")
        time.sleep(0.5)
        for _ in range(5):
            for path in ("/healthz", "/readyz"):
                code, took = _timed_get(f"http://127.0.0.1:{srv.port}{path}")
                assert (path, code) == (path, 200)
                assert took < 5
        assert threading.active_count() - base_threads <= 2, "slow clients took handler threads"
    finally:
        for s in clients:
            s.close()


class _SlowCollector:
    """A collector that blocks until released: every /metrics scrape holds its handler meanwhile."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def collect(self) -> Iterator[Any]:
        self.release.wait(10)
        return iter(())


def test_busy_scrapes_are_bounded_the_excess_gets_503_and_probes_still_answer(state: HealthState) -> None:
    state.engine_ok()
    registry = CollectorRegistry()
    slow = _SlowCollector()
    registry.register(slow)  # type: ignore[arg-type]
    srv = HealthServer(host="127.0.0.1", port=0, registry=registry, state=state, max_connections=8,
                       request_timeout=5)
    srv.start()
    base_threads = threading.active_count()
    scrapes = [_connect(srv.port) for _ in range(8)]
    try:
        for s in scrapes:  # each holds a handler until the collector is released
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: threading.active_count() - base_threads >= 8, timeout=5)
        code, _ = http_get(f"http://127.0.0.1:{srv.port}/metrics")
        assert code == 503  # a ninth scrape: no slot
        assert threading.active_count() - base_threads <= 8, "more handlers than max_connections"
        for path in ("/healthz", "/readyz", "/livez"):
            assert http_get(f"http://127.0.0.1:{srv.port}{path}")[0] == 200
    finally:
        slow.release.set()
        for s in scrapes:
            s.close()
    assert wait_for(lambda: http_get(f"http://127.0.0.1:{srv.port}/metrics")[0] == 200, what="slots freed")
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


def _raw(port: int, request: bytes) -> bytes:
    with _connect(port) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_methods_and_malformed_heads(server: tuple[HealthServer, Metrics]) -> None:
    srv, _ = server
    head = _raw(srv.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n") and head.endswith(b"\r\n\r\n")  # headers only
    assert _raw(srv.port, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.0 405 ")
    assert _raw(srv.port, b"\x16\x03\x01 garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    try:  # the head is not read beyond its limit: closing with the rest unread may reset the connection
        too_long = _raw(srv.port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
    except ConnectionResetError:
        too_long = b"HTTP/1.0 431 (reset)"
    assert too_long.startswith(b"HTTP/1.0 431 ")
    assert _raw(srv.port, b"GET /livez?verbose HTTP/1.0\n\n").startswith(b"HTTP/1.0 200 ")
