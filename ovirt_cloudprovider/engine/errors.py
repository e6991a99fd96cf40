"""What the engine package raises and reports, importable without the SDK (stdlib and :mod:`..logs` only).

- :class:`EngineError` and its subclasses: ``str()`` is one line (what failed, where, why) and never
  contains the password or the session token (:func:`scrub` is the last line of defence);
  :class:`EngineAuthError` (credentials or session refused; :class:`EngineLoginBackoff`: refused without
  contacting the engine after a failed login), :class:`EngineTransientError` (no usable
  answer: retry later), :class:`EngineFaultError` (the engine answered with an error),
  :class:`EngineNotFoundError` (the engine itself answered that an object does not exist: the only 404 that is
  evidence, see :mod:`.connection`).
- :class:`EngineEvent`, the engine events that can change a Node (:data:`NODE_EVENT_CODES`), and the
  :data:`EVENTS_MISSED` marker.

The controller imports only this module, so it can handle engine failures without loading ``ovirtsdk4``.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from ..logs import redact

# oVirt AuditLogType codes (ovirt-engine .../core/common/AuditLogType.java, each checked there with the command
# that logs it) of events that can change a Node:
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
# AuditLogType codes of host events that can change a host's Node (only read when ``[filters] hosts`` is set);
# they have no VM. Checked against ovirt-engine's AuditLogType.java and the commands that log them: a user's
# maintenance is logged once, when the host starts preparing (MaintenanceVdsCommand; HostMonitoring moves it on
# to maintenance without a log), an internal one as VDS_MAINTENANCE; the host is up again with VDS_DETECTED
# (InitVdsOnUpCommand); down only through power management, USER_VDS_STOP.
HOST_EVENT_CODES: Mapping[int, str] = {
    12: "host-failed",  # VDS_FAILURE: "Host x is non responsive." (VdsManager)
    13: "host-detected",  # VDS_DETECTED: "Status of host x was set to Up." (or another status)
    15: "host-maintenance",  # VDS_MAINTENANCE: internal maintenance, "Host x was switched to Maintenance Mode."
    16: "host-activated",  # VDS_ACTIVATE: "Activation of host x initiated by u."
    21: "host-stopped",  # USER_VDS_STOP: "Host x was stopped by u." (power management stop or power-down: down)
    600: "host-maintenance",  # USER_VDS_MAINTENANCE: "... switched to Maintenance mode by u (Reason: r)."
    620: "host-maintenance",  # USER_VDS_MAINTENANCE_WITHOUT_REASON: "... switched to Maintenance mode by u."
    10452: "host-maintenance",  # VDS_MAINTENANCE_MANUAL_HA: internal, hosted-engine HA maintenance not enabled
    10453: "host-maintenance",  # USER_VDS_MAINTENANCE_MANUAL_HA: a user's, hosted-engine HA maintenance not enabled
    44: "host-removed",  # USER_REMOVE_VDS: "Host x was removed by u."
}
# Code of the marker event returned when a poll found a full page: older events may have been dropped by
# ``max``, so the caller should sweep as if something relevant happened.
EVENTS_MISSED = -1


class EngineError(Exception):
    """Anything that went wrong talking to the engine. ``str()`` is one line; ``code`` the HTTP status if any."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self._from_login = False


class EngineAuthError(EngineError):
    """The engine refused the credentials (SSO 400/401) or the session (401/403 after a new login)."""


class EngineLoginBackoff(EngineAuthError):
    """A call refused without contacting the engine: an earlier login failed and its backoff has not passed."""


class EngineTransientError(EngineError):
    """No usable answer: refused or dropped connection, timeout, TLS failure, 5xx (incl. a proxy's 502 page)."""


class EngineFaultError(EngineError):
    """The engine answered a request with an error (a ``<fault>``, a 4xx) or with something unexpected."""


class EngineNotFoundError(EngineFaultError):
    """The engine itself answered that the object asked for does not exist: its own 404 (an empty body without
    a content type, or an XML ``<fault>``; see :func:`.connection.classify`). Any other 404 (a proxy's or web
    server's HTML page, another body) is a plain :class:`EngineFaultError`: not evidence of anything."""


class EngineDataError(EngineFaultError):
    """The engine answered with data we cannot use: not well-formed XML, another root element, a VM without an
    id or with the wrong id. ``str()`` names the answer and the object."""


@dataclass(frozen=True)
class EngineEvent:
    """One engine event that should trigger an early sweep."""

    index: int
    code: int  # AuditLogType code (see NODE_EVENT_CODES), or EVENTS_MISSED
    vm_id: str | None
    vm_name: str | None
    description: str
    host_id: str | None = None  # the host of a host event (HOST_EVENT_CODES)
    host_name: str | None = None

    @property
    def kind(self) -> str:
        """``started``, ``stopped``, ``suspended``, ``removed``, ``migrated``, ``updated``, ``tagged``,
        ``untagged``, or ``missed`` for the EVENTS_MISSED marker."""
        if self.code == EVENTS_MISSED:
            return "missed"
        return NODE_EVENT_CODES.get(self.code) or HOST_EVENT_CODES.get(self.code, "other")


# --- building the one-line messages --------------------------------------------------------------

# What may surround a secret that an answer echoes as a whole value: start/end, blanks, quotes, brackets and the
# separators of forms, query strings, headers and JSON. "@" and "." are deliberately absent: a password
# "admin" must not turn "as admin@internal" into "as ***@internal" (that would show the password).
_EDGE = r"""\s"'`=:,;&?()\[\]{}<>"""


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a message: raw, URL-encoded (both styles), base64."""
    raw = secret.encode("utf-8")
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}


def scrub(message: str, *secrets: str | None) -> str:
    """One line of at most 500 characters; a secret that an engine answer echoed is cut out as a whole value.

    Messages are built without secrets; this only guards text that comes from the engine or from libraries.
    Only a whole value is masked (the secret, URL-encoded or base64, between separators such as blanks, quotes,
    ``=``, ``&``, ``:``): a secret that happens to be part of a word ("admin" in "admin@internal") is left alone,
    so that no mask ever tells what the password is. Any HTTP credential (``Bearer``/``Basic``/``Authorization``
    value) is masked too (:func:`..logs.redact`, their one owner).
    """
    message = redact(" ".join(message.split()))
    for secret in secrets:
        if not secret:
            continue
        for form in sorted(_forms(secret), key=len, reverse=True):
            pattern = rf"(?:(?<=[{_EDGE}])|^){re.escape(form)}(?=[{_EDGE}]|$)"
            message = re.sub(pattern, "<redacted>", message)
    return message[:500]


def html_title(body: bytes) -> str | None:
    """The title of an HTML error page, without a leading status code ("502 Proxy Error" -> "Proxy Error")."""
    m = re.search(rb"<title>\s*(.*?)\s*</title>", body[:4096], re.IGNORECASE | re.DOTALL)
    if not m:
        return None
    title = " ".join(m.group(1).decode("utf-8", "replace").split())
    return re.sub(r"^\d{3}\s+", "", title) or None


__all__ = [
    "EVENTS_MISSED",
    "HOST_EVENT_CODES",
    "NODE_EVENT_CODES",
    "EngineAuthError",
    "EngineDataError",
    "EngineError",
    "EngineEvent",
    "EngineFaultError",
    "EngineLoginBackoff",
    "EngineNotFoundError",
    "EngineTransientError",
    "html_title",
    "scrub",
]
