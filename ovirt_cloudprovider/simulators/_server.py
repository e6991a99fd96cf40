"""The loopback HTTP(S) server both simulators run on.

:class:`LoopbackHTTPServer` is a threading HTTP server that binds a loopback address only, sets TCP_NODELAY
on every connection (like Go's net/http: no Nagle, or a response written in two parts waits for a delayed
ACK), does the TLS handshake in the connection's own thread (a slow client never blocks ``accept()``) and
keeps track of its open connections, so that stopping it ends them.

:class:`LoopbackServer` is the lifecycle a simulator inherits: ``start()`` / ``stop()`` (idempotent),
``with``, ``port``, ``base_url`` and ``url``. ``stop()`` ends what ``start()`` started: the serving thread,
the listening socket and every open connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0

S = TypeVar("S", bound="LoopbackServer")


def check_loopback(host: str) -> str:
    """``host`` when it is an IPv4 loopback address (127.0.0.0/8); ValueError otherwise."""
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the simulators bind a loopback address only (127.0.0.1), not {host!r}")
    return host


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 ssl_context: ssl.SSLContext | None = None, *, name: str = "simulator") -> None:
        check_loopback(addr[0])
        self.ssl_context = ssl_context
        self.name = name
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            if isinstance(request, ssl.SSLSocket):
                try:
                    request.settimeout(HANDSHAKE_TIMEOUT)
                    request.do_handshake()
                    request.settimeout(None)
                except (OSError, ssl.SSLError):
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: connection from %s failed", self.name, client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection (their threads then end)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class LoopbackServer:
    """Start/stop lifecycle of a simulator served by a :class:`LoopbackHTTPServer` on 127.0.0.1.

    Subclasses provide :meth:`_handler_class` and :attr:`scheme`, optionally :meth:`_ssl_context`, and
    :meth:`_before_stop` (release whatever holds a request, before the server waits for its threads).
    """

    name = "simulator"  # in log lines, thread names and errors

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = check_loopback(host)
        self._requested_port = port
        self._server: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # hooks ----------------------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "http"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    def _before_start(self) -> None:
        pass

    def _before_stop(self) -> None:
        pass

    # lifecycle ------------------------------------------------------------------------------------
    def start(self: S) -> S:
        if self._server is not None:
            return self
        ctx = self._ssl_context()
        self._before_start()
        self._server = LoopbackHTTPServer((self.host, self._requested_port), self._handler_class(), ctx,
                                          name=self.name)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        log.debug("%s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._before_stop()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``SCHEME://127.0.0.1:PORT`` (no path)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url
