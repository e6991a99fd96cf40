"""The controller's HTTP port: ``/metrics``, ``/healthz`` and ``/readyz``.

``HealthState`` is written by the controller (thread-safe) and read by the server:
- ``/healthz`` answers 200 while the main loop is alive: it beats at least every few seconds and no
  sweep has been running for longer than ``stuck_after`` seconds;
- ``/readyz`` answers 200 when the node cache has synced and the last contact with the engine
  succeeded recently (within ``engine_stale_after`` seconds).
Each answer is a short plain-text report, one ``[+]``/``[-]`` line per check, as kube components do.

The port stays usable under idle, slow or vanishing clients: connections wait for their request without a
thread, at most ``MAX_CONNECTIONS`` requests are handled at once (more get 503), each must complete within
``REQUEST_TIMEOUT`` seconds, and a client that disconnects is a debug log line, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
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
        self._standby = False
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
            self._standby = False

    def engine_failed(self, reason: str) -> None:
        with self._lock:
            self._engine_error = reason
            self._standby = False

    def standby(self) -> None:
        """This replica does not lead: it does not contact the engine, so the engine is no readiness check."""
        with self._lock:
            self._standby = True

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
            ok_at, error, standby = self._engine_ok_at, self._engine_error, self._standby
        if standby:
            engine = (True, "engine: standby (not leading; the engine is not contacted)")
        elif error is not None:
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


# Limits of the HTTP port, so that slow or idle clients (a scanner, a stuck probe, a slowloris) cannot take
# the process's threads or starve the kubelet's probes.
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request and take the answer, in all
MAX_CONNECTIONS = 64  # requests handled at once (one thread each); more are answered 503 at once
MAX_WAITING = 1024  # accepted connections that have not sent anything yet (no thread); the oldest go first

_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n")


class _Server(HTTPServer):
    """An HTTP server whose one thread accepts connections and waits (with ``selectors``, no thread per
    connection) until a request starts to arrive; only then is the connection handed to a handler thread, at
    most ``max_connections`` at once. A connection that sends nothing within ``request_timeout`` is closed;
    a client that goes away mid-request or mid-answer is a debug log line, never a traceback."""

    request_queue_size = 128  # the listen backlog: a burst of probes and scrapes is not refused

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 request_timeout: float, max_connections: int, max_waiting: int) -> None:
        super().__init__(address, handler)
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_waiting = max_waiting
        self._waiting: dict[socket.socket, float] = {}  # connection → deadline (insertion order = age)
        self._active: dict[socket.socket, float] = {}  # connections being handled → deadline of the whole exchange
        self._active_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    def serve(self) -> None:
        self.socket.setblocking(False)
        self._selector.register(self.socket, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=0.2):
                    if key.data is None:
                        self._accept()
                    else:
                        conn = key.fileobj
                        assert isinstance(conn, socket.socket)
                        self._forget(conn)
                        self._dispatch(conn, key.data)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._waiting):
                self._forget(conn)
                _close(conn)
            self._selector.close()
            self._stopped.set()

    def stop(self) -> None:
        self._stopping.set()
        self._stopped.wait(5)

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, then back to the others
            try:
                conn, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. too many open files: drop the oldest waiting ones
                log.debug("metrics port: accept failed", extra=kv(error=str(err)))
                self._drop_oldest(16)
                return
            if len(self._waiting) >= self._max_waiting:
                self._drop_oldest(1)
            conn.setblocking(False)
            self._waiting[conn] = time.monotonic() + self.request_timeout
            self._selector.register(conn, selectors.EVENT_READ, address)

    def _forget(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)

    def _drop_oldest(self, count: int) -> None:
        for conn in list(self._waiting)[:count]:
            self._forget(conn)
            _close(conn)

    def _expire(self, now: float) -> None:
        for conn, deadline in list(self._waiting.items()):
            if deadline > now:
                break  # the rest are younger
            self._forget(conn)
            _close(conn)
        # the socket timeout bounds each read; this bounds the whole request, so a client that trickles a
        # byte now and then cannot keep a handler thread: shutting its socket down ends the handler's read
        with self._active_lock:
            late = [conn for conn, deadline in self._active.items() if deadline <= now]
            for conn in late:
                del self._active[conn]
        for conn in late:
            log.debug("metrics port: request took too long; connection closed")
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _dispatch(self, conn: socket.socket, address: Any) -> None:
        conn.setblocking(True)
        conn.settimeout(self.request_timeout)
        if not self._slots.acquire(blocking=False):
            log.debug("metrics port: too many requests at once; answered 503", extra=kv(client=str(address)))
            with contextlib.suppress(OSError):
                conn.settimeout(1.0)
                conn.sendall(_BUSY)
            _close(conn)
            return
        with self._active_lock:
            self._active[conn] = time.monotonic() + self.request_timeout
        threading.Thread(target=self._handle, args=(conn, address), name="health-http-request",
                         daemon=True).start()

    def _handle(self, conn: socket.socket, address: Any) -> None:
        try:
            self.finish_request(conn, address)
        except (OSError, ValueError) as err:  # the client went away or timed out: nothing to report
            log.debug("metrics port: client connection failed", extra=kv(client=str(address), error=repr(err)))
        except Exception:
            log.exception("metrics port: request failed", extra=kv(client=str(address)))
        finally:
            with self._active_lock:
                self._active.pop(conn, None)
            _close(conn)
            self._slots.release()


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """Serves the registry and the health state on ``host:port`` in a daemon thread; see :class:`_Server`
    for the limits."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, state: HealthState,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 max_waiting: int = MAX_WAITING) -> None:
        self.registry = registry
        self.state = state
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout  # each read and write of the connection (StreamRequestHandler)

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

        server_class: type[_Server] = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), Handler, request_timeout=request_timeout,
                                   max_connections=max_connections, max_waiting=max_waiting)
        self._thread = threading.Thread(target=self._httpd.serve, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        host = self._httpd.server_address[0]
        log.info("serving metrics and health", extra=kv(address=f"{host!s}:{self.port}"))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.stop()
            self._thread.join(5)
        self._httpd.server_close()
