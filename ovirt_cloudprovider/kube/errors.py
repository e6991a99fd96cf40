"""What a failed Kubernetes request is to us, and how it is told in one line.

- :data:`REQUEST_ERRORS`: everything a request can raise for a reason outside our code (an API error or
  no answer); :data:`NO_ANSWER` the transport-level part of it (no complete HTTP answer).
- :func:`api_status` reads the Status of an API error; :func:`describe_error` makes one line of any
  request failure (``HTTP 409 Conflict: <message>`` or the transport error); :func:`retry_after_seconds`
  reads the ``Retry-After`` of a 429/503 answer.
- :class:`KubeConfigError`: no usable client configuration.
- :func:`one_line`: log and error text is always one line.
"""

from __future__ import annotations

import http.client
import json

import urllib3
from kubernetes.client.exceptions import ApiException

from ..logs import one_line

__all__ = [
    "NO_ANSWER",
    "REQUEST_ERRORS",
    "KubeConfigError",
    "api_status",
    "describe_error",
    "one_line",
    "retry_after_seconds",
]

# Transport-level failures: no (complete) HTTP answer.
NO_ANSWER = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
# Everything a request can raise for a reason outside our code: an API error or no answer.
REQUEST_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)


class KubeConfigError(Exception):
    """No usable Kubernetes client configuration. ``str()`` is one line naming the file."""


def api_status(exc: ApiException) -> tuple[int, str, str]:
    """(HTTP status, Status reason, Status message) of an API error, message on one line."""
    status = int(exc.status or 0)
    reason = ""
    message = ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip():
        try:
            doc = json.loads(body)
        except ValueError:
            message = body
        else:
            if isinstance(doc, dict):
                reason = str(doc.get("reason") or "")
                message = str(doc.get("message") or "")
    if not reason:
        reason = str(exc.reason or "")
    return status, one_line(reason, 60), one_line(message)


def describe_error(exc: BaseException) -> str:
    """One line for a failed request: ``HTTP 409 Conflict: <message>`` or the transport error."""
    if isinstance(exc, ApiException):
        status, reason, message = api_status(exc)
        if status == 0:  # the client wraps TLS errors as status 0
            return f"no answer from the API server: {one_line(reason)}"
        text = f"HTTP {status} {reason}".rstrip()
        return f"{text}: {message}" if message else text
    return f"no answer from the API server: {type(exc).__name__}: {one_line(exc, 160)}"


def retry_after_seconds(exc: ApiException) -> float | None:
    """The Retry-After header of a 429/503 answer in seconds (delta-seconds form only)."""
    headers = exc.headers
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(str(value).strip()))
    except ValueError:
        return None

