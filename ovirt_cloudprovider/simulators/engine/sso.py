"""The engine's SSO: the token endpoint, logout and the API's bearer (or basic) authentication."""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from .constants import _JSON_CT, USER_VDC_LOGIN, USER_VDC_LOGIN_FAILED, USER_VDC_LOGOUT
from .handler import _Handler
from .model import Fleet


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _authz(user: str) -> str:
    """How the engine names a user in events: ``admin@internal`` logs in as ``admin@internal-authz``."""
    return user.replace("@internal", "@internal-authz") if user.endswith("@internal") else user


@dataclass
class _Token:
    value: str
    username: str
    expires: float | None
    valid: bool = True


class SsoEndpoints:
    """The simulator's SSO (a mixin of :class:`EngineSimulator`, which owns the state)."""

    fleet: Fleet
    username: str
    password: str
    token_lifetime: float | None
    logins: int
    logouts: int
    _lock: threading.Lock
    _tokens: dict[str, _Token]

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call gets 401 and the client has to log in again."""
        with self._lock:
            for t in self._tokens.values():
                t.valid = False

    @property
    def active_tokens(self) -> int:
        with self._lock:
            return sum(1 for t in self._tokens.values() if t.valid)

    def _sso_token(self, h: _Handler, body: bytes) -> int:
        form = _form(body)
        user = form.get("username", "")
        if form.get("grant_type") != "password":
            return self._sso_error(h, "unsupported_grant_type",
                                   f"The grant type '{form.get('grant_type', '')}' is not supported.")
        if not user or "password" not in form:
            return self._sso_error(h, "invalid_request", "The request is missing a required parameter: "
                                   + ("username" if not user else "password"))
        if "@" not in user:
            self._login_failed(user)
            return self._sso_error(h, "access_denied", f"Cannot authenticate user '{user}': "
                                   "No valid profile found in credentials..")
        if user != self.username or form.get("password") != self.password:
            self._login_failed(user)
            return self._sso_error(h, "access_denied", f"Cannot authenticate user '{user}': "
                                   "The username or password is incorrect..")
        token = secrets.token_urlsafe(64)
        now = time.time()
        expires = now + self.token_lifetime if self.token_lifetime else None
        with self._lock:
            self._tokens[token] = _Token(token, user, expires)
            self.logins += 1
        session = secrets.token_urlsafe(48)[:64]
        self.fleet.add_event(USER_VDC_LOGIN, f"User {_authz(user)} connecting from '{h.client_address[0]}' "
                             f"using session '{session}' logged in.")
        exp_ms = int((expires if expires else now + 10 * 365 * 86400) * 1000)
        payload = {
            "access_token": token,
            "scope": "ovirt-app-api ovirt-ext=token-info:authz-search "
                     "ovirt-ext=token-info:public-authz-search ovirt-ext=token-info:validate "
                     "ovirt-ext=token:password-access",
            "exp": str(exp_ms),
            "token_type": "bearer",
        }
        return h.send(200, json.dumps(payload).encode(), _JSON_CT)

    def _login_failed(self, user: str) -> None:
        self.fleet.add_event(USER_VDC_LOGIN_FAILED, f"User {user} failed to log in.", severity="error",
                             user=False)

    @staticmethod
    def _sso_error(h: _Handler, code: str, message: str) -> int:
        return h.send(400, json.dumps({"error_code": code, "error": message}).encode(), _JSON_CT)

    def _sso_logout(self, h: _Handler, body: bytes) -> int:
        form = _form(body)
        with self._lock:
            tok = self._tokens.pop(form.get("token", ""), None)
            if tok is not None:
                self.logouts += 1
        if tok is not None:
            self.fleet.add_event(USER_VDC_LOGOUT, f"User {_authz(tok.username)} logged out.")
        return h.send(200, b"{}", _JSON_CT)

    def _authorized(self, h: _Handler) -> bool:
        auth = h.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            with self._lock:
                tok = self._tokens.get(auth[7:].strip())
                if tok is None or not tok.valid:
                    return False
                if tok.expires is not None and time.time() > tok.expires:
                    tok.valid = False
                    return False
                return True
        if auth.startswith("Basic "):
            import base64
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and pw == self.password
        return False
