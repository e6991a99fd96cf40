"""The HTTP request handler: reads a request, hands it to its simulator, counts it and writes the answer."""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .constants import _SERVER_HEADER

log = logging.getLogger(__package__)


class _Served(Protocol):
    """What the handler needs of its simulator."""

    def _handle(self, h: _Handler, method: str, path: str, query: dict[str, str], body: bytes) -> int: ...

    def _record(self, method: str, path: str, query: dict[str, str], status: int,
                headers: dict[str, str]) -> None: ...


class _Drop(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall per answer
    server_version = _SERVER_HEADER
    sys_version = ""
    timeout = 30
    sim: _Served  # set on the class that start() binds to one simulator
    lose_answer = False  # faults: do the request, then drop the connection instead of answering

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("engine simulator: " + format, *args)

    def version_string(self) -> str:
        return _SERVER_HEADER

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sim = self.sim
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._request_info = (method, path, query)
        self._recorded = False
        self.lose_answer = False
        try:
            sim._handle(self, method, path, query, body)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self.record(0)  # dropped: no status

    def record(self, status: int) -> None:
        """Count this request (status 0: no answer). Done before the client can see an answer."""
        if not self._recorded:
            method, path, query = self._request_info
            self.sim._record(method, path, query, status, {k.lower(): v for k, v in self.headers.items()})
            self._recorded = True

    def send(self, status: int, body: bytes, content_type: str | None,
             headers: dict[str, str] | None = None) -> int:
        if self.lose_answer:  # done, but the answer is lost (faults: lose_answers)
            self.record(0)
            raise _Drop
        self.record(status)
        if body and "gzip" in (self.headers.get("Accept-Encoding") or "") and len(body) > 2048:
            body = gzip.compress(body, compresslevel=1)
            headers = dict(headers or {}, **{"Content-Encoding": "gzip"})
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        return status
