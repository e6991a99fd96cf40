"""The oVirt engine client: one SSO session, one paged search per discovery, engine events.

This is the only module that talks to ``ovirtsdk4``; SDK objects never leave it. It returns
:class:`~ovirt_cloudprovider.model.Snapshot` / :class:`~ovirt_cloudprovider.model.VirtualMachine` records and
raises only :class:`EngineError` subclasses, whose ``str()`` is one line (what failed, where, why) and never
contains the password or the session token.

How it talks to the engine:

- **Login** (``POST /ovirt-engine/sso/oauth/token``) is done by this module with ``urllib``, bounded by the
  configured ``timeout`` (socket timeout plus a watchdog thread, so even a hung SSO service or a slow DNS
  lookup cannot block a sweep): the SDK's own SSO request has no timeout at all. The token is handed to
  ``ovirtsdk4.Connection(token=...)``. The password is read through ``config.resolve_password`` at every
  login, so a rotated ``password_file`` is picked up.
- **Session reuse**: the SDK connection (and its keep-alive HTTP connections) lives across sweeps. When the
  engine rejects the token (HTTP 401: expired, engine restarted), the SDK asks for a new token and repeats the
  request once; our :class:`_SdkConnection` answers that request with the same bounded login. If a 401 still
  comes back without any new login having happened, the client reconnects once itself and retries.
- **TLS**: ``ca_file`` when set; otherwise the system CA bundle is passed explicitly (the SDK's pycurl wheel
  looks for a Red Hat path that does not exist on Debian/Ubuntu). ``insecure`` only when asked.
- **Discovery** is one paged search: ``<filter> sortby name asc page N`` with ``max=page_size`` and
  ``follow=reported_devices,tags,cluster.data_center,host,instance_type``, until a page comes back shorter than
  the page size: ``ceil((N + 1) / page_size)`` requests for N VMs, never one per VM.
- **Events**: ``/events?from=<index>&max=<n>`` (newest first; ``max`` drops the *older* ones, so the highest
  index is tracked, not the last item). Only the AuditLogType codes in :data:`NODE_EVENT_CODES` are returned.
- **Metrics**: every HTTP request is counted with ``Metrics.engine_request(operation)``, operations
  ``sso_login``, ``search_vms``, ``get_vm``, ``events``, ``api_root``, ``logout``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ovirtsdk4 as sdk
import pycurl

from . import __version__
from . import config as _config
from .core.records import GuestNic, Snapshot, VirtualMachine
from .core.settings import ConfigError, ConnectionConfig
from .logs import kv
from .metrics import Metrics, observe_engine

log = logging.getLogger(__name__)

T = TypeVar("T")

SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
# What one discovery search inlines per VM: guest-reported NICs, tags, cluster + data center, host and
# instance type (their names), so that a whole fleet costs ceil((N + 1) / page_size) requests.
DISCOVERY_FOLLOW = "reported_devices,tags,cluster.data_center,host,instance_type"
DEFAULT_TIMEOUT = 30.0
LOGOUT_TIMEOUT = 3.0  # close() must be quick even when the engine is gone
EVENT_PAGE_SIZE = 500
# Where Debian/Ubuntu/Alpine/RHEL keep the system CA bundle (the first one that exists is used).
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
)

# oVirt AuditLogType codes (ovirt-engine .../core/common/AuditLogType.java) of events that can change a Node:
# the VM started, stopped or was suspended, was removed, migrated to another host, was updated (renamed, ...)
# or got a tag attached or detached. Anything else is ignored. (36, the old USER_REMOVE_VM, is deliberately
# absent: current engines reuse 36 for USER_ADD_VM_TEMPLATE_FAILURE and log 113 when a VM is removed.)
NODE_EVENT_CODES: Mapping[int, str] = {
    32: "started",  # USER_RUN_VM: "VM x started on Host h"
    153: "started",  # USER_STARTED_VM: "VM x was started by u (Host: h)."
    506: "started",  # VDS_INITIATED_RUN_VM: highly available VM restarted by the engine
    538: "started",  # USER_RUN_VM_AS_STATELESS
    33: "stopped",  # USER_STOP_VM: "VM x powered off by u"
    61: "stopped",  # VM_DOWN: "VM x is down. ..."
    76: "stopped",  # USER_STOPPED_VM_INSTEAD_OF_SHUTDOWN
    119: "stopped",  # VM_DOWN_ERROR
    143: "stopped",  # VM_WAS_SET_DOWN_DUE_TO_HOST_REBOOT_OR_MANUAL_FENCE
    503: "suspended",  # USER_SUSPEND_VM_OK
    113: "removed",  # USER_REMOVE_VM_FINISHED
    1130: "removed",  # USER_REMOVE_VM_FINISHED_INTERNAL
    172: "removed",  # USER_REMOVE_VM_FINISHED_WITH_ILLEGAL_DISKS
    1720: "removed",  # USER_REMOVE_VM_FINISHED_WITH_ILLEGAL_DISKS_INTERNAL
    63: "migrated",  # VM_MIGRATION_DONE
    35: "updated",  # USER_UPDATE_VM (rename and other edits)
    253: "updated",  # SYSTEM_UPDATE_VM
    440: "tagged",  # USER_ATTACH_TAG_TO_VM
    446: "untagged",  # USER_DETACH_VM_FROM_TAG
}
# Code of the marker event returned when a poll found a full page: older events may have been dropped by
# ``max``, so the caller should sweep as if something relevant happened.
EVENTS_MISSED = -1


# --- errors --------------------------------------------------------------------------------------

class EngineError(Exception):
    """Anything that went wrong talking to the engine. ``str()`` is one line; ``code`` the HTTP status if any."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self._from_login = False


class EngineAuthError(EngineError):
    """The engine refused the credentials (SSO 400/401) or the session (401/403 after a new login)."""


class EngineTransientError(EngineError):
    """No usable answer: refused or dropped connection, timeout, TLS failure, 5xx (incl. a proxy's 502 page)."""


class EngineFaultError(EngineError):
    """The engine answered a request with an error (a ``<fault>``, a 4xx) or with something unexpected."""


@dataclass(frozen=True)
class EngineEvent:
    """One engine event that should trigger an early sweep."""

    index: int
    code: int  # AuditLogType code (see NODE_EVENT_CODES), or EVENTS_MISSED
    vm_id: str | None
    vm_name: str | None
    description: str

    @property
    def kind(self) -> str:
        """``started``, ``stopped``, ``suspended``, ``removed``, ``migrated``, ``updated``, ``tagged``,
        ``untagged``, or ``missed`` for the EVENTS_MISSED marker."""
        return "missed" if self.code == EVENTS_MISSED else NODE_EVENT_CODES.get(self.code, "other")


# --- helpers -------------------------------------------------------------------------------------

class _Deadline(Exception):
    pass


def _run_bounded(fn: Callable[[], T], timeout: float, name: str) -> T:
    """Run ``fn`` in a daemon thread; raise _Deadline if it has not finished after ``timeout`` seconds."""
    box: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        raise _Deadline
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def system_ca_bundle() -> str | None:
    """The system's CA bundle file, or None when none of the usual places exists."""
    default = ssl.get_default_verify_paths().cafile
    for path in (default, *SYSTEM_CA_BUNDLES):
        if path and os.path.isfile(path):
            return path
    return None


def _read_password(conn: ConnectionConfig) -> str:
    """Fallback for ``config.resolve_password``: the password file's first line, else the password."""
    if conn.password_file:
        try:
            with open(conn.password_file, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{conn.password_file}: cannot read password_file: {e.strerror or e}") from None
    return conn.password


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _html_title(body: bytes) -> str | None:
    """The title of an HTML error page, without a leading status code ("502 Proxy Error" -> "Proxy Error")."""
    m = re.search(rb"<title>\s*(.*?)\s*</title>", body[:4096], re.IGNORECASE | re.DOTALL)
    if not m:
        return None
    title = " ".join(m.group(1).decode("utf-8", "replace").split())
    return re.sub(r"^\d{3}\s+", "", title) or None


_CURL_TEXT_RE = re.compile(r"\((?:<[^>]*>,\s*)?(\d+),\s*['\"](.*?)['\"]\)")
_TLS_CURL_CODES = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91})


# --- the SDK connection --------------------------------------------------------------------------

class _SdkConnection(sdk.Connection):  # type: ignore[misc]
    """``ovirtsdk4.Connection`` that gets SSO tokens from our bounded login and remembers each answer's status.

    The SDK calls ``_get_access_token()`` when a request comes back 401 (then repeats the request once);
    answering it with :meth:`EngineClient._login` keeps that re-login bounded in time and reads the current
    password. ``wait()`` is where every response passes: its status, reason and HTML title are kept so that
    errors can be classified (the SDK reports a proxy's HTML 502 page only as a content-type error).
    """

    def __init__(self, *, login: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._login_callback = login
        self.last_status: int | None = None
        self.last_reason = ""
        self.last_title: str | None = None

    def _get_access_token(self) -> str:
        return self._login_callback()

    def wait(self, context: Any, failed_auth: bool = False) -> Any:
        self.last_status, self.last_reason, self.last_title = None, "", None
        response = super().wait(context, failed_auth)
        self.last_status = int(response.code) if response.code else None
        self.last_reason = str(response.reason or "")
        body = response.body or b""
        self.last_title = _html_title(body) if body[:200].lstrip().lower().startswith((b"<!doctype html", b"<html")) \
            else None
        return response


if not hasattr(sdk.Connection, "_get_access_token") or not hasattr(sdk.Connection, "wait"):  # pragma: no cover
    raise ImportError("ovirtsdk4.Connection no longer has _get_access_token()/wait(): update ovirt.py")


# --- the client ----------------------------------------------------------------------------------

class EngineClient:
    """A long-lived client of one oVirt engine. Thread-safe: engine calls are serialized by a lock.

    ``discover()``, ``events_since()``, ``last_event_index()`` and ``check()`` log in on first use and reuse
    the session; ``close()`` logs out (bounded, never raises). Usable as a context manager.
    """

    def __init__(self, conn: ConnectionConfig, *, page_size: int = 100, metrics: Metrics | None = None,
                 event_page_size: int = EVENT_PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._conn = conn
        self._page_size = page_size
        self._event_page_size = max(1, event_page_size)
        self._metrics = metrics
        self._timeout = conn.timeout if conn.timeout and conn.timeout > 0 else DEFAULT_TIMEOUT
        self._lock = threading.RLock()
        self._sdk: _SdkConnection | None = None
        self._token: str | None = None
        self._logins = 0
        parts = urllib.parse.urlsplit(conn.uri)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        hostport = f"[{host}]" if ":" in host else host
        if port:
            hostport += f":{port}"
        self._scheme = parts.scheme or "https"
        self._where = hostport or conn.uri  # for messages: host[:port], never user info
        self._base = f"{self._scheme}://{hostport}"

    # --- public API ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """``host[:port]`` of the engine, as used in messages."""
        return self._where

    def discover(self, query: str) -> Snapshot:
        """Every VM the oVirt search ``query`` matches (``""`` = all VMs), in one paged search.

        Raises EngineError on any failure, so a returned Snapshot is always complete.
        """
        base = query.strip()
        words = {w.lower() for w in base.split()}
        if words & {"sortby", "page"}:
            raise EngineFaultError(f"VM search at {self._where}: the filter {base!r} must not contain 'sortby' "
                                   "or 'page' (discovery adds its own)")
        started = time.monotonic()
        vms: dict[str, VirtualMachine] = {}
        requests = 0
        page = 1
        with self._lock:
            while True:
                search = f"{base} sortby name asc page {page}".strip()
                items = self._call("search_vms", "VM search", self._search_page(search))
                requests += 1
                new = 0
                for item in items:
                    record = vm_record(item)
                    new += record.id not in vms
                    vms[record.id] = record
                log.debug("search page", extra=kv(page=page, vms=len(items), search=search))
                if len(items) < self._page_size:
                    break
                if new == 0:
                    raise EngineFaultError(f"VM search at {self._where}: page {page} repeated the VMs of earlier "
                                           "pages (the engine ignores 'page' in searches)")
                page += 1
        seconds = time.monotonic() - started
        log.info("discovery finished", extra=kv(query=base, vms=len(vms), requests=requests,
                                                seconds=round(seconds, 3)))
        return Snapshot(vms=tuple(vms.values()), query=base, requests=requests)

    def _search_page(self, search: str) -> Callable[[Any], list[Any]]:
        def list_page(c: Any) -> list[Any]:
            return list(c.system_service().vms_service().list(search=search, max=self._page_size,
                                                                  follow=DISCOVERY_FOLLOW))
        return list_page

    def fetch_vms(self, vm_ids: Sequence[str]) -> dict[str, VirtualMachine | None]:
        """The current record of each VM in ``vm_ids`` (one GET per VM, with the discovery's ``follow``);
        ``None`` for a VM the engine no longer has (404). For the few VMs an engine event names, so that a
        shutdown is reflected without a full search; raises EngineError on any other failure."""
        out: dict[str, VirtualMachine | None] = {}
        with self._lock:
            for vm_id in dict.fromkeys(vm_ids):

                def get(c: Any, vm_id: str = vm_id) -> Any:
                    return c.system_service().vms_service().vm_service(vm_id).get(follow=DISCOVERY_FOLLOW)

                try:
                    item = self._call("get_vm", f"VM {vm_id}", get)
                except EngineFaultError as err:
                    if err.code != 404:
                        raise
                    out[vm_id] = None
                    continue
                out[vm_id] = vm_record(item)
        return out

    def last_event_index(self) -> int:
        """The index of the newest engine event (0 if there is none): a starting point for events_since()."""
        events = self._call("events", "event poll", lambda c: c.system_service().events_service().list(max=1))
        return max((_event_index(e) for e in events), default=0)

    def events_since(self, index: int) -> tuple[int, tuple[EngineEvent, ...]]:
        """Events after ``index``: (the new highest index, the node-relevant events oldest first).

        When the page is full, older events may have been dropped by ``max``: a marker event with code
        EVENTS_MISSED is returned first so that the caller sweeps anyway.
        """
        page = self._call("events", "event poll", lambda c: c.system_service().events_service().list(
            from_=int(index), max=self._event_page_size))
        new_index = index
        seen: list[int] = []
        relevant: list[EngineEvent] = []
        for e in page:
            i = _event_index(e)
            if i <= index:
                continue
            seen.append(i)
            new_index = max(new_index, i)
            code = int(e.code) if e.code is not None else 0
            if code in NODE_EVENT_CODES:
                vm = e.vm
                relevant.append(EngineEvent(index=i, code=code, vm_id=vm.id if vm is not None else None,
                                            vm_name=vm.name if vm is not None else None,
                                            description=" ".join((e.description or "").split())))
        relevant.sort(key=lambda ev: ev.index)
        if len(page) >= self._event_page_size and seen:
            relevant.insert(0, EngineEvent(index=min(seen), code=EVENTS_MISSED, vm_id=None, vm_name=None,
                                           description=f"more than {self._event_page_size} events after index "
                                           f"{index}: older ones were not read"))
        if relevant:
            log.debug("engine events", extra=kv(since=index, index=new_index,
                                                events=",".join(f"{e.kind}:{e.vm_name or e.vm_id}" for e in relevant)))
        if self._metrics is not None and relevant:
            self._metrics.engine_events_total.inc(len(relevant))
        return new_index, tuple(relevant)

    def check(self) -> str:
        """Log in and read the API root: the engine's product name and version, e.g. ``oVirt Engine 4.5.5``."""
        api = self._call("api_root", "API root", lambda c: c.system_service().get())
        info = api.product_info
        if info is None:
            return "oVirt Engine (version unknown)"
        version = info.version
        text = version.full_version if version is not None and version.full_version else None
        if text is None and version is not None:
            text = ".".join(str(x) for x in (version.major, version.minor, version.revision) if x is not None)
        return f"{info.name or 'oVirt Engine'} {text or '(version unknown)'}"

    def close(self) -> None:
        """Log out and release the connection. Bounded in time; never raises."""
        got = self._lock.acquire(timeout=min(2.0, self._timeout))
        try:
            conn, token = self._sdk, self._token
            self._token = None
            if got:
                self._sdk = None
        finally:
            if got:
                self._lock.release()
        if token:
            try:
                self._logout(token)
            except Exception as exc:  # close() never raises
                log.debug("engine logout failed", extra=kv(engine=self._where, error=str(exc)))
        if conn is not None and got:
            with contextlib.suppress(Exception):
                conn.close(logout=False)

    def reset(self) -> None:
        """Drop the session (logging out); the next call logs in again with the current password and CA file.

        The controller calls this when ``password_file`` or ``ca_file`` changes on disk (a rotated Secret).
        """
        self.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EngineClient({self._where!r}, user={self._conn.username!r})"

    # --- requests through the SDK ----------------------------------------------------------------

    def _connection(self) -> _SdkConnection:
        if self._sdk is None:
            token = self._token or self._login()
            ca_file = None if self._conn.insecure else (self._conn.ca_file or system_ca_bundle())
            try:
                self._sdk = _SdkConnection(
                    login=self._login, url=self._conn.uri, token=token, insecure=self._conn.insecure,
                    ca_file=ca_file, timeout=max(1, math.ceil(self._timeout)), compress=True,
                )
            except sdk.Error as e:
                raise EngineTransientError(self._scrub(f"engine at {self._where}: {e}")) from None
        return self._sdk

    def _drop_connection(self) -> None:
        conn, self._sdk, self._token = self._sdk, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close(logout=False)

    def _call(self, operation: str, what: str, fn: Callable[[Any], T]) -> T:
        with self._lock:
            for attempt in range(2):
                conn = self._connection()
                logins_before = self._logins
                try:
                    with observe_engine(self._metrics, operation) as outcome:
                        try:
                            result = fn(conn)
                        except EngineError:
                            raise
                        except Exception as exc:  # every SDK failure becomes an EngineError
                            raise self._classify(exc, what, conn) from exc
                        outcome.code = str(conn.last_status or 200)
                    return result
                except EngineAuthError as err:
                    # A 401 that no new login answered (the SDK did not re-login): reconnect once, retry.
                    if attempt == 0 and not err._from_login and self._logins == logins_before:
                        log.info("engine session rejected, logging in again", extra=kv(engine=self._where))
                        self._drop_connection()
                        continue
                    raise
        raise AssertionError("unreachable")

    def _classify(self, exc: Exception, what: str, conn: _SdkConnection) -> EngineError:
        where, status = self._where, conn.last_status
        text = " ".join(str(exc).split())
        context = exc.__context__
        curl: tuple[int, str] | None = None
        if isinstance(context, pycurl.error) and context.args:
            curl = (int(context.args[0]), str(context.args[1]) if len(context.args) > 1 else "")
        else:
            m = _CURL_TEXT_RE.search(text) if status is None else None
            curl = (int(m.group(1)), m.group(2)) if m else None
        if curl is not None or isinstance(exc, (sdk.ConnectionError, sdk.TimeoutError)):
            return self._transport_error(what, curl, exc)
        fault = getattr(exc, "fault", None)
        fault_text = ""
        if fault is not None:
            fault_text = ": ".join(p for p in (fault.reason, fault.detail) if p)
        reason = conn.last_title or conn.last_reason
        if status in (401, 403) or isinstance(exc, sdk.AuthError):
            return EngineAuthError(self._scrub(
                f"{what} at {where} failed: HTTP {status or 401} {fault_text or conn.last_reason or 'Unauthorized'} "
                f"(the engine rejected the session of {self._conn.username})"), code=status or 401)
        if status is not None and status >= 500:
            html = " (an HTML page: a proxy or load balancer in front of the engine?)" if conn.last_title else ""
            return EngineTransientError(self._scrub(
                f"{what} at {where} failed: HTTP {status} {fault_text or reason}{html}".rstrip()), code=status)
        if status == 404:
            return EngineFaultError(self._scrub(
                f"{what} at {where} failed: HTTP 404 {fault_text or 'Not Found'} (is the URL "
                f"{self._conn.uri.split('?')[0]!r} right? it usually ends in /ovirt-engine/api)"), code=404)
        if status is not None and status >= 400:
            return EngineFaultError(self._scrub(f"{what} at {where} failed: HTTP {status} "
                                                f"{fault_text or reason or text}"), code=status)
        return EngineFaultError(self._scrub(f"{what} at {where} failed: unexpected answer: {text}"), code=status)

    def _transport_error(self, what: str, curl: tuple[int, str] | None, exc: Exception) -> EngineError:
        where = self._where
        code, msg = curl if curl is not None else (None, " ".join(str(exc).split()))
        if code == 28 or isinstance(exc, sdk.TimeoutError):
            reason = f"timed out after {self._timeout:g} s"
        elif code in (6, 5):
            reason = f"cannot resolve the host name ({msg})"
        elif code == 7:
            reason = f"cannot connect ({msg})"
        elif code in _TLS_CURL_CODES:
            reason = f"TLS failure: {msg}" + self._ca_hint(msg)
        elif code in (52, 55, 56):
            reason = f"the connection was dropped ({msg})"
        else:
            reason = f"transport error: {msg}"
        return EngineTransientError(self._scrub(f"{what} at {where} failed: {reason}"))

    def _ca_hint(self, msg: str) -> str:
        if "certificate" not in msg.lower() or self._conn.insecure:
            return ""
        ca = self._conn.ca_file
        return (f" (ca_file {ca} does not vouch for this engine)" if ca else
                f" (set ca_file to the engine CA: {self._base}/ovirt-engine/services/pki-resource"
                "?resource=ca-certificate&format=X509-PEM-CA)")

    def _scrub(self, message: str) -> str:
        """One line, without the password or the token (belt and braces: they are never put in)."""
        message = " ".join(message.split())
        for secret in (self._conn.password, self._token):
            if secret and len(secret) >= 4:
                message = message.replace(secret, "***")
        return message[:500]

    # --- SSO (bounded) ---------------------------------------------------------------------------

    def _password(self) -> str:
        resolve = getattr(_config, "resolve_password", None)
        try:
            return str(resolve(self._conn)) if callable(resolve) else _read_password(self._conn)
        except ConfigError as e:
            err = EngineAuthError(f"login at {self._where} impossible: {e}")
            err._from_login = True
            raise err from None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._scheme != "https":
            return None
        if self._conn.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ca_file = self._conn.ca_file or system_ca_bundle()
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise EngineTransientError(f"login at {self._where} failed: cannot load ca_file {ca_file}: "
                                       f"{reason}") from None

    def _post_form(self, path: str, form: Mapping[str, str], timeout: float) -> tuple[int, str, bytes]:
        """POST a form; (status, content type, body) for any HTTP answer, OSError-like exceptions otherwise."""
        ctx = self._ssl_context()
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=ctx)] if ctx else []
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(
            self._base + path, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded",
                     "User-Agent": f"ovirt-cloudprovider/{__version__}"},
        )

        def send() -> tuple[int, str, bytes]:
            try:
                with opener.open(request, timeout=timeout) as resp:
                    return int(resp.status), resp.headers.get("Content-Type", ""), resp.read(1 << 20)
            except urllib.error.HTTPError as e:
                with contextlib.closing(e):
                    return int(e.code), e.headers.get("Content-Type", "") if e.headers else "", e.read(1 << 20)

        return _run_bounded(send, timeout + 0.5, "engine-sso")

    def _sso_transport_error(self, what: str, exc: BaseException) -> EngineTransientError:
        reason_exc: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(exc, _Deadline) or isinstance(reason_exc, (TimeoutError, socket.timeout)):
            reason = f"timed out after {self._timeout:g} s (the SSO service did not answer)"
        elif isinstance(reason_exc, ssl.SSLCertVerificationError):
            msg = reason_exc.verify_message or str(reason_exc)
            reason = f"TLS verification failed: {msg}" + self._ca_hint("certificate")
        elif isinstance(reason_exc, ssl.SSLError):
            reason = f"TLS failure: {reason_exc.reason or reason_exc}"
        elif isinstance(reason_exc, ConnectionRefusedError):
            reason = "cannot connect (connection refused)"
        elif isinstance(reason_exc, socket.gaierror):
            reason = f"cannot resolve the host name ({reason_exc.strerror or reason_exc})"
        elif isinstance(reason_exc, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError,
                                     http.client.IncompleteRead)):
            reason = "the connection was dropped before an answer"
        elif isinstance(reason_exc, OSError):
            reason = f"cannot connect ({reason_exc.strerror or reason_exc})"
        else:
            reason = f"transport error: {reason_exc}"
        return EngineTransientError(self._scrub(f"{what} at {self._where} failed: {reason}"))

    def _login(self) -> str:
        """Get a new SSO token (bounded by the timeout). Raises EngineAuthError / EngineTransientError / ..."""
        what = f"login as {self._conn.username}"
        password = self._password()
        form = {"grant_type": "password", "scope": "ovirt-app-api", "username": self._conn.username,
                "password": password}
        try:
            with observe_engine(self._metrics, "sso_login") as outcome:
                try:
                    status, ctype, body = self._post_form(SSO_TOKEN_PATH, form, self._timeout)
                except EngineError:
                    raise
                except (_Deadline, OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as e:
                    raise self._sso_transport_error(what, e) from None
                outcome.code = str(status)
                token = self._sso_answer(what, status, ctype, body)
        except EngineError as err:
            err._from_login = True
            raise
        self._token = token
        self._logins += 1
        log.info("logged in to the engine", extra=kv(engine=self._where, user=self._conn.username))
        return token

    def _sso_answer(self, what: str, status: int, ctype: str, body: bytes) -> str:
        where = self._where
        data: Any = None
        if "json" in ctype.lower():
            with contextlib.suppress(ValueError):
                data = json.loads(body.decode("utf-8", "replace"))
        if isinstance(data, list) and data:
            data = data[0]
        if isinstance(data, dict) and data.get("access_token") and status == 200:
            return str(data["access_token"])
        if isinstance(data, dict) and ("error" in data or "error_code" in data):
            if "error_description" in data:  # OAuth/OpenID style
                code, desc = str(data.get("error") or ""), str(data.get("error_description") or "")
            else:  # the engine's own style: {"error_code": ..., "error": ...}
                code, desc = str(data.get("error_code") or ""), str(data.get("error") or "")
            desc = desc.rstrip(". ")
            if status in (400, 401, 403) and code not in ("invalid_request", "unsupported_grant_type", "server_error"):
                hint = ": wrong username or password" if "incorrect" in desc.lower() else ""
                return self._raise(EngineAuthError, f"{what} at {where} failed{hint} ({code}: {desc})", status)
            cls = EngineTransientError if status >= 500 else EngineFaultError
            return self._raise(cls, f"{what} at {where} failed: HTTP {status} ({code}: {desc})", status)
        title = _html_title(body)
        if status >= 500:
            html = (f" {title} (an HTML page: a proxy or load balancer in front of the engine?)" if title
                    else "")
            return self._raise(EngineTransientError, f"{what} at {where} failed: HTTP {status}{html}", status)
        if status in (401, 403):
            return self._raise(EngineAuthError, f"{what} at {where} failed: HTTP {status} {title or ''}".rstrip(),
                               status)
        if status == 404:
            return self._raise(EngineFaultError, f"{what} at {where} failed: HTTP 404: no oVirt SSO service at "
                               f"{self._base}{SSO_TOKEN_PATH} (is the URL right?)", status)
        return self._raise(EngineFaultError, f"{what} at {where} failed: HTTP {status}, unexpected answer "
                           f"({ctype or 'no content type'})", status)

    def _raise(self, cls: type[EngineError], message: str, status: int | None) -> str:
        raise cls(self._scrub(message), code=status)

    def _logout(self, token: str) -> None:
        timeout = min(self._timeout, LOGOUT_TIMEOUT)
        with observe_engine(self._metrics, "logout") as outcome:
            try:
                status, _, _ = self._post_form(SSO_LOGOUT_PATH, {"scope": "ovirt-app-api", "token": token}, timeout)
            except (_Deadline, OSError, urllib.error.URLError, http.client.HTTPException, ValueError, EngineError) \
                    as e:
                raise self._sso_transport_error("logout", e) from None
            outcome.code = str(status)
        log.debug("logged out of the engine", extra=kv(engine=self._where, status=status))


# --- SDK objects -> records ----------------------------------------------------------------------

def _event_index(event: Any) -> int:
    if getattr(event, "index", None) is not None:
        return int(event.index)
    try:
        return int(event.id)
    except (TypeError, ValueError):
        return 0


def _guest_nic(device: Any) -> GuestNic | None:
    if not device.name or _enum(device.type) not in (None, "network"):
        return None
    mac = device.mac.address.lower() if device.mac is not None and device.mac.address else None
    ips = tuple(ip.address for ip in (device.ips or ()) if ip is not None and ip.address)
    return GuestNic(name=device.name, mac=mac, ips=ips)


def vm_record(vm: Any) -> VirtualMachine:
    """An ``ovirtsdk4.types.Vm`` (as a search with DISCOVERY_FOLLOW returns it) as our own record.

    Links that were not followed (only an id) give ids without names; absent data gives None.
    """
    cluster = vm.cluster
    dc = cluster.data_center if cluster is not None else None
    host = vm.host
    cpu = vm.cpu
    topology = cpu.topology if cpu is not None else None
    cpus = None
    if topology is not None and any(x is not None for x in (topology.sockets, topology.cores, topology.threads)):
        cpus = (topology.sockets or 1) * (topology.cores or 1) * (topology.threads or 1)
    gos = vm.guest_operating_system
    guest_os = kernel = architecture = None
    if gos is not None:
        version = gos.version.full_version if gos.version is not None else None
        guest_os = " ".join(p.strip() for p in (gos.distribution, version) if p and p.strip()) or None
        if gos.kernel is not None and gos.kernel.version is not None:
            kernel = gos.kernel.version.full_version or None
        architecture = (gos.architecture or "").strip() or None
    if architecture is None and cpu is not None:
        architecture = _enum(cpu.architecture)
    nics = tuple(n for n in (_guest_nic(d) for d in (vm.reported_devices or ())) if n is not None)
    tags = tuple(sorted({t.name for t in (vm.tags or ()) if t is not None and t.name}))
    fqdn = (vm.fqdn or "").strip() or None
    instance_type = vm.instance_type.name if vm.instance_type is not None else None
    return VirtualMachine(
        id=vm.id,
        name=vm.name or "",
        status=_enum(vm.status) or "unknown",
        fqdn=fqdn,
        cluster=cluster.name if cluster is not None else None,
        cluster_id=cluster.id if cluster is not None else None,
        datacenter=dc.name if dc is not None else None,
        datacenter_id=dc.id if dc is not None else None,
        host=host.name if host is not None else None,
        host_id=host.id if host is not None else None,
        tags=tags,
        nics=nics,
        cpus=cpus,
        memory_bytes=int(vm.memory) if vm.memory is not None else None,
        os_type=(vm.os.type or None) if vm.os is not None else None,
        guest_os=guest_os,
        kernel=kernel,
        architecture=architecture,
        instance_type=instance_type,
        guest_agent=bool(nics or fqdn or gos is not None),
    )


__all__ = [
    "DISCOVERY_FOLLOW", "EVENTS_MISSED", "NODE_EVENT_CODES", "EngineAuthError", "EngineClient", "EngineError",
    "EngineEvent", "EngineFaultError", "EngineTransientError", "system_ca_bundle", "vm_record",
]
