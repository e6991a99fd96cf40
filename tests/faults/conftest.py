"""The fault-injection and fuzz suite (``tests/faults/``): shared world, evidence checks and the per-family figures.

Every scenario runs the real clients against both loopback simulators, at debug verbosity, with an engine
password full of characters that need quoting (:data:`SECRET`). Each one records into :data:`FIGURES` (cases run,
nodes lost, wrong writes, tracebacks, secret sightings, per family) and asserts its own zeros; at the end of the
session :func:`pytest_terminal_summary` prints one line per family, e.g.
``faults: family=engine cases=14 nodes_lost=0 wrong_writes=0 tracebacks=0 secret_sightings=0``.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

SECRET = 'Pw%&=+/#;"q9Zx'
USERNAME = "admin@internal"
FAMILIES = ("engine", "kube", "process", "fuzz-ini", "fuzz-engine", "secrets", "isolation")


@dataclass
class Figures:
    cases: int = 0
    nodes_lost: int = 0
    wrong_writes: int = 0
    tracebacks: int = 0
    secret_sightings: int = 0


@dataclass
class Collector:
    families: dict[str, Figures] = field(default_factory=lambda: {f: Figures() for f in FAMILIES})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, family: str, *, cases: int = 1, nodes_lost: int = 0, wrong_writes: int = 0,
               tracebacks: int = 0, secret_sightings: int = 0) -> None:
        with self.lock:
            f = self.families.setdefault(family, Figures())
            f.cases += cases
            f.nodes_lost += nodes_lost
            f.wrong_writes += wrong_writes
            f.tracebacks += tracebacks
            f.secret_sightings += secret_sightings


FIGURES = Collector()


@dataclass
class ModelFigures:
    """The model-based test's figures (``tests/faults/test_model.py``): examples run, steps taken, controller
    instances in the cluster, what its invariants counted (each must stay 0), and the examples whose heal phase
    converged."""

    examples: int = 0
    steps: int = 0
    instances: int = 0  # controller instances in one cluster (the most an example ran)
    nodes_lost: int = 0
    foreign_touched: int = 0
    cross_writes: int = 0
    writes_while_standby: int = 0
    outside_filter: int = 0
    wrong_taints: int = 0
    converged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def saw_instances(self, n: int) -> None:
        with self.lock:
            self.instances = max(self.instances, n)

    def line(self) -> str:
        return (f"faults: family=model examples={self.examples} steps={self.steps} instances={self.instances} "
                f"nodes_lost={self.nodes_lost} foreign_touched={self.foreign_touched} "
                f"cross_writes={self.cross_writes} writes_while_standby={self.writes_while_standby} "
                f"outside_filter={self.outside_filter} wrong_taints={self.wrong_taints} converged={self.converged}")


MODEL = ModelFigures()


def secret_forms(secret: str) -> list[str]:
    """Every spelling of ``secret`` that must never be seen: raw, URL-encoded (both ways), base64 (alone and in a
    Basic authorization header), JSON-escaped."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             urllib.parse.quote(secret), base64.b64encode(secret.encode()).decode(),
             base64.b64encode(f"{USERNAME}:{secret}".encode()).decode(), secret.replace('"', '\\"')}
    return sorted(f for f in forms if f)


_MASKS = ("***", "****", "*****", "********", "<redacted>", "[redacted]", "REDACTED", "xxx", "<hidden>")


def sightings(texts: list[str], secret: str = SECRET, *, username: str = USERNAME) -> list[str]:
    """The texts that reveal ``secret``: one of its forms, or a masking that gives it away (the username with the
    password masked out of it, as a naive scrubber does to a short password such as ``admin``)."""
    bad: list[str] = []
    forms = [] if secret in username else secret_forms(secret)
    masked = [username.replace(secret, m) for m in _MASKS] if secret in username else []
    if len(secret) >= 4:
        masked += [secret[:2] + m for m in _MASKS] + [m + secret[-2:] for m in _MASKS]
    near = re.compile(r"(?i)(passw\w*|secret|credential)\W{1,4}" + re.escape(secret) + r"\b") if secret in username \
        else None
    for text in texts:
        low = text.lower()
        if any(f in text for f in forms) or any(m.lower() in low for m in masked) or (near and near.search(text)):
            bad.append(text)
    return bad


class LogTap(logging.Handler):
    """Every log record of the product at DEBUG, formatted with its fields and exception text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.tracebacks = 0
        self.traceback_lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("ovirt_cloudprovider.simulators"):
            return  # the fake servers' own logs are not the product's
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is itself a finding
            text = str(record.msg)
        extra = {k: v for k, v in record.__dict__.items() if k not in _STD}
        line = f"{record.levelname} {record.name} {text} {extra!r}"
        if record.exc_info:
            self.tracebacks += 1
            line += " " + logging.Formatter().formatException(record.exc_info)
            self.traceback_lines.append(line)
        with self._lock2:
            self.lines.append(line)

    def take(self) -> list[str]:
        with self._lock2:
            out, self.lines = self.lines, []
            return out


_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@pytest.fixture
def logtap() -> Iterator[LogTap]:
    tap = LogTap()
    root = logging.getLogger()
    old = root.level
    root.addHandler(tap)
    root.setLevel(logging.DEBUG)
    try:
        yield tap
    finally:
        root.removeHandler(tap)
        root.setLevel(old)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not any(f.cases for f in FIGURES.families.values()) and not MODEL.examples:
        return
    terminalreporter.section("fault-injection and fuzz figures")
    for name, f in FIGURES.families.items():
        if not f.cases and MODEL.examples:
            continue  # only the model ran
        terminalreporter.write_line(
            f"faults: family={name} cases={f.cases} nodes_lost={f.nodes_lost} wrong_writes={f.wrong_writes} "
            f"tracebacks={f.tracebacks} secret_sightings={f.secret_sightings}")
    if MODEL.examples:
        terminalreporter.write_line(MODEL.line())
