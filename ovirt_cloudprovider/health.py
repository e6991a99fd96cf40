"""The controller's HTTP port: ``/metrics``, ``/healthz`` and ``/readyz``.

``HealthState`` is written by the controller (thread-safe) and read by the server:
- ``/healthz`` answers 200 while the main loop is alive: it beats at least every few seconds and no
  sweep has been running for longer than ``stuck_after`` seconds;
- ``/readyz`` answers 200 when the node cache has synced and the last contact with the engine
  succeeded recently (within ``engine_stale_after`` seconds).
Each answer is a short plain-text report, one ``[+]``/``[-]`` line per check, as kube components do.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .logs import kv

log = logging.getLogger(__name__)


class HealthState:
    """Liveness and readiness facts, fed by the controller; the clock is injectable for tests."""

    def __init__(self, *, stuck_after: float = 600.0, engine_stale_after: float = 180.0,
                 heartbeat_timeout: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.stuck_after = stuck_after
        self.engine_stale_after = engine_stale_after
        self.heartbeat_timeout = heartbeat_timeout
        self._heartbeat = clock()
        self._sweep_started: float | None = None
        self._engine_ok_at: float | None = None
        self._engine_error: str | None = "no contact with the engine yet"
        self._cache_synced: Callable[[], bool] = lambda: False

    def beat(self) -> None:
        with self._lock:
            self._heartbeat = self._clock()

    def sweep_started(self) -> None:
        with self._lock:
            self._sweep_started = self._clock()

    def sweep_finished(self) -> None:
        with self._lock:
            self._sweep_started = None

    def engine_ok(self) -> None:
        with self._lock:
            self._engine_ok_at = self._clock()
            self._engine_error = None

    def engine_failed(self, reason: str) -> None:
        with self._lock:
            self._engine_error = reason

    def set_cache_synced(self, probe: Callable[[], bool]) -> None:
        self._cache_synced = probe

    def liveness(self) -> tuple[bool, list[str]]:
        now = self._clock()
        with self._lock:
            beat_age = now - self._heartbeat
            sweep_age = None if self._sweep_started is None else now - self._sweep_started
        # the loop beats between sweeps; during a sweep (a large fleet, a slow engine) only stuck_after counts
        checks = [
            (sweep_age is not None or beat_age <= self.heartbeat_timeout, f"loop: last heartbeat {beat_age:.1f}s ago"),
            (sweep_age is None or sweep_age <= self.stuck_after,
             "sweep: idle" if sweep_age is None else f"sweep: running for {sweep_age:.1f}s"),
        ]
        return _report(checks)

    def readiness(self) -> tuple[bool, list[str]]:
        now = self._clock()
        with self._lock:
            ok_at, error = self._engine_ok_at, self._engine_error
        if error is not None:
            engine = (False, f"engine: {error}")
        elif ok_at is None or now - ok_at > self.engine_stale_after:
            engine = (False, "engine: no successful contact recently")
        else:
            engine = (True, f"engine: last successful contact {now - ok_at:.1f}s ago")
        synced = self._cache_synced()
        checks = [engine, (synced, "node-cache: synced" if synced else "node-cache: not synced")]
        return _report(checks)


def _report(checks: list[tuple[bool, str]]) -> tuple[bool, list[str]]:
    return all(ok for ok, _ in checks), [f"[{'+' if ok else '-'}]{text}" for ok, text in checks]


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class HealthServer:
    """Serves the registry and the health state on ``host:port`` in a daemon thread."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, state: HealthState) -> None:
        self.registry = registry
        self.state = state
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/livez", "/readyz"):
                    ok, lines = (server.state.readiness() if path == "/readyz" else server.state.liveness())
                    body = "\n".join([*lines, "ok" if ok else f"{path[1:]} check failed"]) + "\n"
                    self._send(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server_class: type[ThreadingHTTPServer] = _Server6 if ":" in host else ThreadingHTTPServer
        self._httpd = server_class((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        host = self._httpd.server_address[0]
        log.info("serving metrics and health", extra=kv(address=f"{host!s}:{self.port}"))

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
