"""The ``ovirtsdk4`` connection and what its failures mean: the only module that imports ovirtsdk4 and pycurl.

- **Session reuse**: the SDK connection (and its keep-alive HTTP connections) lives across sweeps. When the
  engine rejects the token (HTTP 401: expired, engine restarted), the SDK asks for a new token and repeats the
  request once; our :class:`SdkConnection` answers that request with the bounded SSO login
  (:mod:`.sso`) and remembers the status, reason and HTML title of every answer.
- **Errors**: :func:`classify` turns any SDK failure into one :class:`~.errors.EngineError`: curl transport
  errors (timeout, DNS, refused, TLS with a CA hint, dropped) and SDK connection errors are transient; 401/403
  is auth; 5xx (incl. a proxy's HTML page) is transient; 404 and other 4xx or unexpected answers are faults.
- **The engine's own "not found"** (:func:`engine_not_found`) is the only 404 that says an object does not
  exist: :class:`~.errors.EngineNotFoundError`. ovirt-engine's REST layer answers a GET of a VM or host it does
  not have with ``Response.status(NOT_FOUND).build()`` (``BaseBackendResource.handleError``): a 404 with an
  empty body and no content type (recorded: ``tests/samples/manageiq/error_404_empty_body.txt``); its other
  not-found form (``AbstractBackendResource.notFound(String)``) is a 404 ``<fault>`` in XML. Every other 404
  (a web server's or proxy's HTML "Not Found" page while the engine restarts, a wrong API URL, any other
  body) is a plain :class:`~.errors.EngineFaultError`.
"""

from __future__ import annotations

import contextlib
import math
import re
import urllib.parse
import xml.parsers.expat
from collections.abc import Callable
from typing import Any

import ovirtsdk4 as sdk
import pycurl
from ovirtsdk4 import http as sdk_http

from .endpoint import Endpoint
from .errors import (
    EngineAuthError,
    EngineDataError,
    EngineError,
    EngineFaultError,
    EngineNotFoundError,
    EngineTransientError,
    html_title,
)

# The enum values the SDK's reader knows (any other value reads as absent): for engine/fastxml.py.
VM_STATUSES = frozenset(str(e.value) for e in sdk.types.VmStatus)
ARCHITECTURES = frozenset(str(e.value) for e in sdk.types.Architecture)
REPORTED_DEVICE_TYPES = frozenset(str(e.value) for e in sdk.types.ReportedDeviceType)
VM_AFFINITIES = frozenset(str(e.value) for e in sdk.types.VmAffinity)
HOST_STATUSES = frozenset(str(e.value) for e in sdk.types.HostStatus)

_CURL_TEXT_RE = re.compile(r"\((?:<[^>]*>,\s*)?(\d+),\s*['\"](.*?)['\"]\)")
_TLS_CURL_CODES = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91})


class SdkConnection(sdk.Connection):  # type: ignore[misc]
    """``ovirtsdk4.Connection`` that gets SSO tokens from our bounded login and remembers each answer's status.

    The SDK calls ``_get_access_token()`` when a request comes back 401 (then repeats the request once);
    answering it with the client's login keeps that re-login bounded in time and reads the current
    password. ``wait()`` is where every response passes: its status, reason and HTML title are kept so that
    errors can be classified (the SDK reports a proxy's HTML 502 page only as a content-type error).
    """

    def __init__(self, *, login: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._login_callback = login
        self.last_status: int | None = None
        self.last_reason = ""
        self.last_title: str | None = None
        self.last_root: str | None = None
        self.last_content_type: str | None = None  # None: the answer had no Content-Type header
        self.last_body_size = 0
        self._raw = False  # in finish_get(): the caller parses the body (and reports malformed XML) itself
        self._sent_with: dict[int, str | None] = {}  # curl handle -> the token its request was sent with
        self._waiting_token: str | None = None
        # sent as the Correlation-Id header of every request while set (the engine logs it in engine.log)
        self.correlation_id: str | None = None

    def _get_access_token(self) -> str:
        sent, current = self._waiting_token, self._sso_token
        if sent is not None and current is not None and current != sent:
            return str(current)  # a request sent with an older token: another one in flight already logged in
        return self._login_callback()

    def send(self, request: Any) -> Any:
        if self.correlation_id:
            request.headers = {**(request.headers or {}), "Correlation-Id": self.correlation_id}
        context = super().send(request)
        self._sent_with[id(context[0])] = self._sso_token
        return context

    def wait(self, context: Any, failed_auth: bool = False) -> Any:
        self.last_status, self.last_reason, self.last_title = None, "", None
        self._waiting_token = self._sent_with.pop(id(context[0]), None)
        try:
            response = super().wait(context, failed_auth)
        finally:
            self._waiting_token = None
        self.last_status = int(response.code) if response.code else None
        self.last_reason = str(response.reason or "")
        body = response.body or b""
        self.last_body_size = len(body)
        self.last_content_type = _header(response, "content-type")
        self.last_title = html_title(body) if body[:200].lstrip().lower().startswith((b"<!doctype html", b"<html")) \
            else None
        self.last_root = None
        if body and self.last_status is not None and self.last_status < 300 and not self._raw:
            # checked with expat before the SDK's libxml2 reader sees it: libxml2 prints parser errors to stderr
            # and the SDK then only says "Can't move to the next element"
            self.last_root = xml_root(body)
        return response

    # --- raw GETs, several in flight (the SDK's curl multi handle), bodies parsed by the caller --------------

    def start_get(self, path: str, query: dict[str, str]) -> Any:
        """Send a GET of ``path`` (relative to the API URL, e.g. ``vms``); ``finish_get`` waits for its answer.
        Several may be in flight: curl moves them all on while one is waited for."""
        return self.send(sdk_http.Request(method="GET", path=f"/{path}", query=dict(query), headers={}))

    def finish_get(self, context: Any) -> bytes:
        """The XML body of the GET ``context`` (HTTP 200), not parsed; any other answer raises as the SDK's own
        services raise (``sdk.Error`` with the engine's fault), so :func:`classify` reads it the same way."""
        self._raw = True
        try:
            response = self.wait(context)
        finally:
            self._raw = False
        service = self.system_service()
        if response.code != 200:
            service._check_fault(response)
        if not response.body:
            service._raise_error(response)
        self.check_xml_content_type(response)
        return bytes(response.body)

    def cancel(self, context: Any) -> None:
        """Stop the GET ``context`` (sent, not waited for): removed from curl and closed, its answer never read."""
        self._sent_with.pop(id(context[0]), None)
        self._curls.discard(context[0])
        with contextlib.suppress(Exception):
            self._multi.remove_handle(context[0])
        with contextlib.suppress(Exception):
            context[0].close()


def _header(response: Any, name: str) -> str | None:
    """The value of the header ``name`` (lower case) of an SDK response, whose ``headers`` are the raw header
    lines curl received (the last one wins); None when absent."""
    value: str | None = None
    for line in getattr(response, "headers", None) or ():
        key, sep, rest = str(line).partition(":")
        if sep and key.strip().lower() == name:
            value = rest.strip()
    return value


_XML_CONTENT_TYPE_RE = re.compile(r"^\s*(application|text)/xml\s*(;.*)?$", re.IGNORECASE)


def engine_not_found(exc: Exception, conn: SdkConnection) -> bool:
    """True when the 404 that raised ``exc`` is the engine's own "not found" (module docstring): an empty body
    without a content type, or an XML ``<fault>`` (the SDK read it as one: ``NotFoundError`` with a fault)."""
    if conn.last_status != 404 or not isinstance(exc, sdk.NotFoundError):
        return False
    content_type = conn.last_content_type
    if conn.last_body_size == 0:
        return not content_type
    return getattr(exc, "fault", None) is not None and bool(_XML_CONTENT_TYPE_RE.match(content_type or ""))


class MalformedXml(ValueError):
    """An answer that is not well-formed XML (raised before the SDK parses it)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


def xml_root(body: bytes) -> str:
    """The root element's name of ``body``; MalformedXml when ``body`` is not well-formed XML."""
    root: list[str] = []
    parser = xml.parsers.expat.ParserCreate()

    def start(name: str, attrs: object) -> None:
        if not root:
            root.append(name)

    parser.StartElementHandler = start
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as e:
        raise MalformedXml(e.lineno, xml.parsers.expat.ErrorString(e.code)) from None
    return root[0] if root else ""


if not hasattr(sdk.Connection, "_get_access_token") or not hasattr(sdk.Connection, "wait"):  # pragma: no cover
    raise ImportError("ovirtsdk4.Connection no longer has _get_access_token()/wait(): update engine/connection.py")


def open_connection(endpoint: Endpoint, *, token: str, login: Callable[[], str],
                    scrub: Callable[[str], str]) -> SdkConnection:
    """An SDK connection to ``endpoint`` that starts with ``token`` and gets new ones from ``login``."""
    conn = endpoint.conn
    try:
        return SdkConnection(
            login=login, url=conn.uri, token=token, insecure=conn.insecure,
            ca_file=endpoint.ca_file(), timeout=max(1, math.ceil(endpoint.timeout)), compress=True,
        )
    except sdk.Error as e:
        raise EngineTransientError(scrub(f"engine at {endpoint.where}: {e}")) from None


def classify(exc: Exception, what: str, conn: SdkConnection, endpoint: Endpoint,
             scrub: Callable[[str], str]) -> EngineError:
    """The EngineError that the SDK failure ``exc`` of request ``what`` on ``conn`` means."""
    where, status = endpoint.where, conn.last_status
    if isinstance(exc, MalformedXml):
        return EngineDataError(scrub(f"{what} at {where} failed: the engine answer is not well-formed XML at line "
                                     f"{exc.line} ({exc.reason})"), code=status)
    text = " ".join(str(exc).split())
    context = exc.__context__
    curl: tuple[int, str] | None = None
    if isinstance(context, pycurl.error) and context.args:
        curl = (int(context.args[0]), str(context.args[1]) if len(context.args) > 1 else "")
    else:
        m = _CURL_TEXT_RE.search(text) if status is None else None
        curl = (int(m.group(1)), m.group(2)) if m else None
    if curl is not None or isinstance(exc, (sdk.ConnectionError, sdk.TimeoutError)):
        return _transport_error(what, curl, exc, endpoint, scrub)
    fault = getattr(exc, "fault", None)
    fault_text = ""
    if fault is not None:
        fault_text = ": ".join(p for p in (fault.reason, fault.detail) if p)
    reason = conn.last_title or conn.last_reason
    if status in (401, 403) or isinstance(exc, sdk.AuthError):
        return EngineAuthError(scrub(
            f"{what} at {where} failed: HTTP {status or 401} {fault_text or conn.last_reason or 'Unauthorized'} "
            f"(the engine rejected the session of {endpoint.conn.username})"), code=status or 401)
    if status is not None and status >= 500:
        html = " (an HTML page: a proxy or load balancer in front of the engine?)" if conn.last_title else ""
        return EngineTransientError(scrub(
            f"{what} at {where} failed: HTTP {status} {fault_text or reason}{html}".rstrip()), code=status)
    if status == 404:
        if engine_not_found(exc, conn):
            return EngineNotFoundError(scrub(f"{what} at {where}: the engine answers that it does not exist "
                                             f"(HTTP 404{': ' + fault_text if fault_text else ''})"), code=404)
        page = (f"{conn.last_content_type or 'no content type'}, {conn.last_body_size} bytes"
                + (f", an HTML page titled {conn.last_title!r}" if conn.last_title else ""))
        return EngineFaultError(scrub(
            f"{what} at {where} failed: HTTP 404 {fault_text or reason or 'Not Found'} ({page}): not the engine's "
            f"own answer (a proxy or web server in front of the engine? is the URL {_public_url(endpoint)!r} "
            "right? it usually ends in /ovirt-engine/api)"), code=404)
    if status is not None and status >= 400:
        return EngineFaultError(scrub(f"{what} at {where} failed: HTTP {status} "
                                      f"{fault_text or reason or text}"), code=status)
    return EngineFaultError(scrub(f"{what} at {where} failed: unexpected answer: {text}"), code=status)


def _public_url(endpoint: Endpoint) -> str:
    """The configured API URL without user info, query or fragment (never a secret)."""
    parts = urllib.parse.urlsplit(endpoint.conn.uri)
    return urllib.parse.urlunsplit((parts.scheme, endpoint.where, parts.path, "", ""))


def _transport_error(what: str, curl: tuple[int, str] | None, exc: Exception, endpoint: Endpoint,
                     scrub: Callable[[str], str]) -> EngineError:
    code, msg = curl if curl is not None else (None, " ".join(str(exc).split()))
    if code == 28 or isinstance(exc, sdk.TimeoutError):
        reason = f"timed out after {endpoint.timeout:g} s"
    elif code in (6, 5):
        reason = f"cannot resolve the host name ({msg})"
    elif code == 7:
        reason = f"cannot connect ({msg})"
    elif code in _TLS_CURL_CODES:
        reason = f"TLS failure: {msg}" + endpoint.ca_hint(msg)
    elif code in (52, 55, 56):
        reason = f"the connection was dropped ({msg})"
    else:
        reason = f"transport error: {msg}"
    return EngineTransientError(scrub(f"{what} at {endpoint.where} failed: {reason}"))


__all__ = ["ARCHITECTURES", "HOST_STATUSES", "REPORTED_DEVICE_TYPES", "VM_AFFINITIES", "VM_STATUSES", "MalformedXml",
           "SdkConnection", "classify", "engine_not_found", "open_connection", "xml_root"]
