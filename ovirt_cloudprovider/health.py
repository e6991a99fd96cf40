"""The controller's HTTP port: ``/metrics``, ``/healthz`` and ``/readyz``.

``HealthState`` is written by the controller (thread-safe) and read by the server:
- ``/healthz`` answers 200 while the main loop is alive: it beats at least every few seconds and no
  sweep has been running for longer than ``stuck_after`` seconds;
- ``/readyz`` answers 200 when the node cache has synced and the last contact with the engine
  succeeded recently (within ``engine_stale_after`` seconds).
Each answer is a short plain-text report, one ``[+]``/``[-]`` line per check, as kube components do.

Probes are never starved: one thread reads every request head itself (no thread per connection) and answers
the probes at once, without waiting for a slot; only ``/metrics`` answers take a handler thread, at most
``MAX_CONNECTIONS`` at once (more get 503). A head must arrive within ``REQUEST_TIMEOUT`` seconds of the
connect, and a client that disconnects is a debug log line, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
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
        self._filter_problem: str | None = None

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

    def filter_problem(self, problem: str | None) -> None:
        """What is wrong with the filters as the engine sees them (a tag it does not have), None: nothing."""
        with self._lock:
            self._filter_problem = problem

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
            problem = self._filter_problem
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
        if problem is not None:
            checks.append((False, f"filters: {problem}"))
        return _report(checks)


def _report(checks: list[tuple[bool, str]]) -> tuple[bool, list[str]]:
    return all(ok for ok, _ in checks), [f"[{'+' if ok else '-'}]{text}" for ok, text in checks]


# Limits of the HTTP port, so that slow or idle clients (a scanner, a stuck probe, a slowloris) cannot take
# the process's threads or starve the kubelet's probes.
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request head, and a scrape to take its answer
MAX_CONNECTIONS = 64  # /metrics answers being built or sent at once (one thread each); more are answered 503
MAX_WAITING = 1024  # connections whose request head has not fully arrived (no thread); the oldest go first
MAX_HEAD = 8192  # bytes of request line and headers; a longer head is answered 431

PROBES = frozenset({"/healthz", "/livez", "/readyz"})
_TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _answer(code: int, body: bytes, ctype: str, *, head_only: bool = False, extra: str = "") -> bytes:
    head = (f"HTTP/1.0 {code} {_REASONS.get(code, 'Unknown')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode("ascii") + (b"" if head_only else body)


_BUSY = _answer(503, b"busy\n", _TEXT)


class _Server:
    """One thread accepts connections and reads every request head itself (``selectors``, non-blocking, no
    thread per connection, at most ``MAX_HEAD`` bytes, within ``request_timeout`` of the accept). Then:

    - probes (``/healthz``, ``/livez``, ``/readyz``), 404s and malformed requests are answered by that thread
      at once (a few hundred bytes into an empty socket buffer, never waiting for the client): whatever
      other clients do, a probe waits for no slot and no thread;
    - ``/metrics`` is built and sent by a handler thread, at most ``max_connections`` at once (more get 503),
      each exchange cut off ``request_timeout`` seconds after it started.

    So an idle, slow or trickling client holds a socket and a few bytes, never a slot. A client that goes
    away mid-request or mid-answer is a debug log line, never a traceback."""

    def __init__(self, address: tuple[str, int], *, metrics: Callable[[], bytes],
                 probe: Callable[[str], tuple[bool, bytes]], request_timeout: float, max_connections: int,
                 max_waiting: int) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.create_server(address, family=family, backlog=128)  # a burst is not refused
        self.server_address = self.socket.getsockname()
        self.request_timeout = request_timeout
        self._metrics = metrics
        self._probe = probe
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_waiting = max_waiting
        # connections whose head is arriving → (deadline, bytes so far); insertion order = age
        self._waiting: dict[socket.socket, tuple[float, bytes]] = {}
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
                        self._read(conn, key.data)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._waiting):
                self._forget(conn)
                _close(conn)
            self._selector.close()
            self._stopped.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._stopped.wait(timeout)

    def close(self) -> None:
        _close(self.socket)

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
            self._waiting[conn] = (time.monotonic() + self.request_timeout, b"")
            self._selector.register(conn, selectors.EVENT_READ, address)

    def _read(self, conn: socket.socket, address: Any) -> None:
        """What arrived of a request head; once it is whole, the connection is answered or dispatched."""
        deadline, head = self._waiting.get(conn, (0.0, b""))
        try:
            data = conn.recv(MAX_HEAD + 1 - len(head))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away (or reset) before its request was whole
            self._forget(conn)
            _close(conn)
            return
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            end = head.find(b"\n\n")  # bare line feeds, as http.server accepts them
        if end < 0 and len(head) <= MAX_HEAD:
            self._waiting[conn] = (deadline, head)
            return
        self._forget(conn)
        if end < 0:
            self._reply(conn, _answer(431, b"request head too large\n", _TEXT))
            return
        self._respond(conn, address, head[:end])

    def _respond(self, conn: socket.socket, address: Any, head: bytes) -> None:
        line = head.split(b"\n", 1)[0].strip().split()
        if len(line) not in (2, 3) or not line[1].startswith(b"/"):
            self._reply(conn, _answer(400, b"bad request\n", _TEXT))
            return
        method, path = line[0], line[1].split(b"?", 1)[0].decode("latin-1")
        if method not in (b"GET", b"HEAD"):
            self._reply(conn, _answer(405, b"method not allowed\n", _TEXT, extra="Allow: GET, HEAD\r\n"))
            return
        head_only = method == b"HEAD"
        if path in PROBES:
            ok, body = self._probe(path)
            self._reply(conn, _answer(200 if ok else 503, body, _TEXT, head_only=head_only))
        elif path != "/metrics":
            self._reply(conn, _answer(404, b"not found\n", _TEXT, head_only=head_only))
        elif not self._slots.acquire(blocking=False):
            log.debug("metrics port: too many scrapes at once; answered 503", extra=kv(client=str(address)))
            self._reply(conn, _BUSY)
        else:
            with self._active_lock:
                self._active[conn] = time.monotonic() + self.request_timeout
            threading.Thread(target=self._scrape, args=(conn, address, head_only), name="health-http-request",
                             daemon=True).start()

    @staticmethod
    def _reply(conn: socket.socket, answer: bytes) -> None:
        """A short answer from the selector thread: one send into the connection's (empty) socket buffer,
        never a wait for the client; then the connection is closed."""
        with contextlib.suppress(OSError):
            conn.send(answer)
        _close(conn)

    def _forget(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)

    def _drop_oldest(self, count: int) -> None:
        for conn in list(self._waiting)[:count]:
            self._forget(conn)
            _close(conn)

    def _expire(self, now: float) -> None:
        for conn, (deadline, _) in list(self._waiting.items()):
            if deadline > now:
                break  # the rest are younger
            self._forget(conn)
            _close(conn)
        # the socket timeout bounds each write; this bounds the whole answer, so a client that reads a byte now
        # and then cannot keep a handler thread: shutting its socket down ends the handler's write
        with self._active_lock:
            late = [conn for conn, deadline in self._active.items() if deadline <= now]
            for conn in late:
                del self._active[conn]
        for conn in late:
            log.debug("metrics port: answer took too long; connection closed")
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _scrape(self, conn: socket.socket, address: Any, head_only: bool) -> None:
        try:
            answer = _answer(200, self._metrics(), CONTENT_TYPE_LATEST, head_only=head_only)
            conn.setblocking(True)
            conn.settimeout(self.request_timeout)
            conn.sendall(answer)
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


class HealthServer:
    """Serves the registry and the health state on ``host:port`` in a daemon thread; see :class:`_Server`
    for the limits.

    Lifecycle: :meth:`start` serves from a daemon thread until :meth:`stop`, which ends it and closes the
    port."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, state: HealthState,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 max_waiting: int = MAX_WAITING) -> None:
        self.registry = registry
        self.state = state
        self._httpd = _Server((host, port), metrics=lambda: generate_latest(self.registry), probe=self._probe,
                              request_timeout=request_timeout, max_connections=max_connections,
                              max_waiting=max_waiting)
        self._thread = threading.Thread(target=self._httpd.serve, name="health-http", daemon=True)

    def _probe(self, path: str) -> tuple[bool, bytes]:
        ok, lines = self.state.readiness() if path == "/readyz" else self.state.liveness()
        return ok, ("\n".join([*lines, "ok" if ok else f"{path[1:]} check failed"]) + "\n").encode()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        host = self._httpd.server_address[0]
        log.info("serving metrics and health", extra=kv(address=f"{host!s}:{self.port}"))

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._httpd.stop(timeout)
            self._thread.join(timeout)
        self._httpd.close()
