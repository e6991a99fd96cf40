"""The SSO login and logout, bounded in time (``urllib``, stdlib only).

- **Login** (``POST /ovirt-engine/sso/oauth/token``) is done here with ``urllib``, bounded by the configured
  ``timeout`` (socket timeout plus a watchdog thread, :func:`_run_bounded`, so even a hung SSO service or a
  slow DNS lookup cannot block a sweep): the SDK's own SSO request has no timeout at all. The token is handed
  to ``ovirtsdk4.Connection(token=...)`` by the client. The password is read with
  :func:`~ovirt_cloudprovider.config.resolve_password` at every login, so a rotated ``password_file`` is
  picked up.
- **Logout** (``POST /ovirt-engine/services/sso-logout``) is bounded by :data:`LOGOUT_TIMEOUT` too, so that
  closing the client stays quick even when the engine is gone.
- Every error raised by a login is an :class:`~.errors.EngineError` marked as coming from a login (so the
  client does not retry it as a rejected session); SSO answers are classified into auth (wrong credentials),
  transient (5xx, a proxy's HTML page, transport failures) and fault (anything unexpected).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .. import __version__
from ..config import resolve_password
from ..core.settings import ConfigError
from ..logs import kv
from ..metrics import Metrics, observe_engine
from .endpoint import Endpoint
from .errors import EngineAuthError, EngineError, EngineFaultError, EngineTransientError, html_title

log = logging.getLogger(__name__)

T = TypeVar("T")

SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
LOGOUT_TIMEOUT = 3.0  # close() must be quick even when the engine is gone


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


class Sso:
    """Bounded SSO login and logout at one engine. ``scrub`` makes a message one line without secrets; it must
    cut out :attr:`password` too, the password of the last login from whatever source it was read (``password``,
    ``password_file``, ``OVIRT_PASSWORD``, ``OVIRT_PASSWORD_FILE``)."""

    def __init__(self, endpoint: Endpoint, *, metrics: Metrics | None, scrub: Callable[[str], str]) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.conn
        self._where = endpoint.where
        self._timeout = endpoint.timeout
        self._metrics = metrics
        self._scrub = scrub
        self.password: str | None = None  # as read for the last login (a rotated file: the new one)

    def login(self) -> str:
        """Get a new SSO token (bounded by the timeout). Raises EngineAuthError / EngineTransientError / ..."""
        what = f"login as {self._conn.username}"
        password = self.password = self._password()
        form = {"grant_type": "password", "scope": "ovirt-app-api", "username": self._conn.username,
                "password": password}
        try:
            with observe_engine(self._metrics, "sso_login") as outcome:
                try:
                    status, ctype, body = self._post_form(SSO_TOKEN_PATH, form, self._timeout)
                except EngineError:
                    raise
                except (_Deadline, OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as e:
                    raise self._transport_error(what, e) from None
                outcome.code = str(status)
                token = self._answer(what, status, ctype, body)
        except EngineError as err:
            err._from_login = True
            raise
        log.info("logged in to the engine", extra=kv(engine=self._where, user=self._conn.username))
        return token

    def logout(self, token: str, *, timeout: float | None = None) -> None:
        """End the SSO session of ``token`` (bounded by LOGOUT_TIMEOUT, and by ``timeout`` when given: what is
        left of a shutdown's deadline). Raises EngineTransientError."""
        timeout = max(0.1, min(self._timeout, LOGOUT_TIMEOUT, LOGOUT_TIMEOUT if timeout is None else timeout))
        with observe_engine(self._metrics, "logout") as outcome:
            try:
                status, _, _ = self._post_form(SSO_LOGOUT_PATH, {"scope": "ovirt-app-api", "token": token}, timeout)
            except (_Deadline, OSError, urllib.error.URLError, http.client.HTTPException, ValueError, EngineError) \
                    as e:
                raise self._transport_error("logout", e) from None
            outcome.code = str(status)
        log.debug("logged out of the engine", extra=kv(engine=self._where, status=status))

    # --- helpers ---------------------------------------------------------------------------------

    def _password(self) -> str:
        try:
            return resolve_password(self._conn)
        except ConfigError as e:
            err = EngineAuthError(f"login at {self._where} impossible: {e}")
            err._from_login = True
            raise err from None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._endpoint.scheme != "https":
            return None
        if self._conn.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ca_file = self._endpoint.ca_file()
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
            self._endpoint.base + path, data=urllib.parse.urlencode(form).encode(), method="POST",
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

    def _transport_error(self, what: str, exc: BaseException) -> EngineTransientError:
        reason_exc: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(exc, _Deadline) or isinstance(reason_exc, (TimeoutError, socket.timeout)):
            reason = f"timed out after {self._timeout:g} s (the SSO service did not answer)"
        elif isinstance(reason_exc, ssl.SSLCertVerificationError):
            msg = reason_exc.verify_message or str(reason_exc)
            reason = f"TLS verification failed: {msg}" + self._endpoint.ca_hint("certificate")
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

    def _answer(self, what: str, status: int, ctype: str, body: bytes) -> str:
        """The token of an SSO answer, or the EngineError that the answer means."""
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
        title = html_title(body)
        if status >= 500:
            html = (f" {title} (an HTML page: a proxy or load balancer in front of the engine?)" if title
                    else "")
            return self._raise(EngineTransientError, f"{what} at {where} failed: HTTP {status}{html}", status)
        if status in (401, 403):
            return self._raise(EngineAuthError, f"{what} at {where} failed: HTTP {status} {title or ''}".rstrip(),
                               status)
        if status == 404:
            return self._raise(EngineFaultError, f"{what} at {where} failed: HTTP 404: no oVirt SSO service at "
                               f"{self._endpoint.base}{SSO_TOKEN_PATH} (is the URL right?)", status)
        return self._raise(EngineFaultError, f"{what} at {where} failed: HTTP {status}, unexpected answer "
                           f"({ctype or 'no content type'})", status)

    def _raise(self, cls: type[EngineError], message: str, status: int | None) -> str:
        raise cls(self._scrub(message), code=status)


__all__ = ["LOGOUT_TIMEOUT", "SSO_LOGOUT_PATH", "SSO_TOKEN_PATH", "Sso"]
