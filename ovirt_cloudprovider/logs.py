"""Structured logging: one line per event, ``key=value`` (text) or JSON.

Use ``log = logging.getLogger(__name__)`` and pass fields with ``extra={"fields": {...}}`` or the
helper :func:`kv`: ``log.info("sync finished", extra=kv(nodes=3, seconds=0.12))``.

Credentials never reach a line: a field whose key names a secret is ``<redacted>``, and :func:`redact` (the one
owner of the HTTP credential patterns: ``Bearer <x>``, ``Basic <x>``, ``Authorization: <x>``, any case) masks the
value in every message, every field value, every :func:`one_line` text (the error texts of the kube package) and
every engine message (``engine.errors.scrub``). A library's error can quote a header, e.g. http.client's
``Invalid header value b'Bearer <token>\\n'`` for a token rotated to a bad value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_REDACT_KEYS = ("password", "token", "secret", "authorization")
REDACTED = "<redacted>"
# An HTTP credential as a header, a repr or a message quotes it: the scheme, then its value up to a blank or a
# quote (an escaped line break inside, "tok\\nen", is part of the value); and an Authorization header of any scheme.
_CREDENTIAL = re.compile(r"""(?i)\b(bearer|basic)(\s+)(?!<redacted>)[^\s'"]+""")
_AUTHORIZATION = re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)(?!(?:bearer|basic)\s|<redacted>)[^\s'"]+""")


def redact(text: str) -> str:
    """``text`` with the value of every ``Bearer <x>``, ``Basic <x>`` and ``Authorization: <x>`` replaced by
    ``<redacted>`` (case-insensitive; the scheme and the header name stay, so the line still says what failed)."""
    if not any(word in text.lower() for word in ("bearer", "basic", "authorization")):
        return text
    text = _CREDENTIAL.sub(rf"\1\2{REDACTED}", text)
    return _AUTHORIZATION.sub(rf"\1{REDACTED}", text)


def one_line(text: object, limit: int = 200) -> str:
    """Collapse whitespace, redact credentials (:func:`redact`) and truncate: log and error text is always one
    line, without a credential."""
    s = redact(re.sub(r"\s+", " ", str(text)).strip())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def kv(**fields: Any) -> dict[str, Any]:
    """``extra=`` argument carrying structured fields for one log record."""
    return {"fields": fields}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None) or {}
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if any(s in k.lower() for s in _REDACT_KEYS):
            out[k] = REDACTED
        else:
            out[k] = redact(v) if isinstance(v, str) else v
    return out


def _quote(value: Any) -> str:
    s = str(value)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return json.dumps(s)
    return s


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"time={ts}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_quote(redact(record.getMessage()))}"]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        if record.exc_info and record.levelno >= logging.DEBUG and logging.getLogger().isEnabledFor(logging.DEBUG):
            parts.append(f"exc={_quote(redact(self.formatException(record.exc_info)))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        doc: dict[str, Any] = {"time": ts, "level": record.levelname.lower(), "logger": record.name,
                               "msg": redact(record.getMessage())}
        doc.update({k: v for k, v in _fields(record).items() if k not in doc})
        return json.dumps(doc, default=str)


def setup_logging(*, fmt: str = "text", verbosity: int = 0) -> None:
    """Configure the root logger: INFO by default, DEBUG with ``-v``; our own format on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    # Third-party libraries stay quiet unless -vv: their debug logs can contain headers.
    for noisy in ("urllib3", "kubernetes", "ovirtsdk4"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
