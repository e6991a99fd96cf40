"""Fault injection (latency, HTTP errors, proxy errors, engine faults, dropped connections, a hung SSO, an SSO
error that echoes the credentials, a glitching search) and the request records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .constants import API_PREFIX, SSO_TOKEN_PATH

_SPELLINGS: dict[str, Callable[[str], str]] = {
    "same": lambda i: i, "upper": str.upper, "nodash": lambda i: i.replace("-", ""),
    "braces": lambda i: "{" + i + "}",
}


@dataclass
class _Fault:
    kind: str  # "latency" | "status" | "proxy" | "fault" | "drop" | "hang" | "echo" | "lose_answer"
    path_prefix: str
    remaining: int | None  # None: until cleared
    status: int = 500
    seconds: float = 0.0
    reason: str = ""
    detail: str = ""
    skip: int = 0  # let this many matching requests through first (e.g. fail page 2 of a search)
    method: str | None = None  # only requests of this method (None: any)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int  # 0 when the connection was dropped or the request hung
    time: float
    headers: dict[str, str] = field(default_factory=dict)  # the request's headers (names lower case)


@dataclass
class _Static:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


class FaultInjection:
    """The simulator's fault injection (a mixin of :class:`EngineSimulator`, which owns the state)."""

    _lock: threading.Lock
    _faults: list[_Fault]
    _lost: set[str]  # lose_in_search
    _twins: dict[str, tuple[str, bool]]  # twin_in_search: VM id -> the spelling of its twin's id, twin first
    _release: threading.Event

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def set_latency(self, seconds: float, *, path_prefix: str = "/", count: int | None = None,
                    method: str | None = None) -> None:
        """Delay every matching request (of ``method`` only, when given) by ``seconds`` before anything else
        happens: a client that gives up sooner sees a timeout, and the request is still done afterwards."""
        self._add_fault(_Fault("latency", path_prefix, count, seconds=seconds, method=method))

    def fail_requests(self, status: int = 503, *, count: int | None = None,
                      path_prefix: str = API_PREFIX, skip: int = 0, method: str | None = None) -> None:
        """Answer matching requests (of ``method`` only, when given) with ``status`` and an Apache-style HTML
        error page (after ``skip`` of them were answered normally)."""
        self._add_fault(_Fault("status", path_prefix, count, status=status, skip=skip, method=method))

    def proxy_errors(self, *, count: int | None = None, path_prefix: str = "/") -> None:
        """A broken reverse proxy in front of the engine: 502 + Apache "Proxy Error" HTML, SSO included."""
        self._add_fault(_Fault("proxy", path_prefix, count, status=502))

    def engine_faults(self, status: int = 400, *, reason: str = "Operation Failed",
                      detail: str = "[Internal error]", count: int | None = None,
                      path_prefix: str = API_PREFIX) -> None:
        """Answer matching API requests with an engine ``<fault>`` (XML) and ``status``."""
        self._add_fault(_Fault("fault", path_prefix, count, status=status, reason=reason, detail=detail))

    def drop_connections(self, *, count: int | None = None, path_prefix: str = "/") -> None:
        """Close the connection without answering (the client sees an empty reply)."""
        self._add_fault(_Fault("drop", path_prefix, count))

    def lose_answers(self, *, count: int | None = None, path_prefix: str = API_PREFIX, skip: int = 0,
                     method: str | None = None) -> None:
        """Do what matching requests ask, then close the connection without answering: a create that "times out
        but happens" (the engine made the VM, the client never heard)."""
        self._add_fault(_Fault("lose_answer", path_prefix, count, skip=skip, method=method))

    def hang_sso(self, *, count: int | None = None) -> None:
        """The SSO token endpoint never answers (until :meth:`clear_faults` or :meth:`stop`)."""
        self._add_fault(_Fault("hang", SSO_TOKEN_PATH, count))

    def echo_credentials(self, *, count: int | None = None) -> None:
        """A debug proxy or web application firewall in front of the SSO: the token request is refused with a 400
        JSON error that echoes the submitted form, credentials included (URL-encoded, as sent)."""
        self._add_fault(_Fault("echo", SSO_TOKEN_PATH, count, status=400))

    def html_not_found(self, kind: str = "vms", *, ids: Iterable[str] | None = None,
                       count: int | None = None) -> None:
        """A web server or proxy in front of an engine that restarts: GETs of VMs (``kind="vms"``) or hosts
        (``"hosts"``) by id, of ``ids`` or of every one, get an Apache-style ``text/html`` "404 Not Found" page,
        not the engine's own answer (which is a 404 with an empty body and no content type)."""
        if kind not in ("vms", "hosts"):
            raise ValueError(f"html_not_found: kind must be 'vms' or 'hosts', not {kind!r}")
        prefixes = [f"{API_PREFIX}/{kind}/{i}" for i in ids] if ids is not None else [f"{API_PREFIX}/{kind}/"]
        for prefix in prefixes:
            self._add_fault(_Fault("status", prefix, count, status=404))

    def lose_in_search(self, ids: Iterable[str]) -> None:
        """A glitching search (a paging shift, a half-synced engine): VM and host searches leave out the VMs
        and hosts of ``ids`` (still there for a GET by id, and for a search that names an ``id=``), until
        :meth:`clear_faults`."""
        with self._lock:
            self._lost = set(ids)

    def twin_in_search(self, ids: Iterable[str], *, spelling: str = "upper", before: bool = False) -> None:
        """A garbled search (a caching proxy or a half-synced engine mixing two answers): VM searches list, right
        after (``before``: right before) each VM of ``ids``, a second ``<vm>`` with the same UUID spelled
        ``spelling`` (``"same"``, ``"upper"``, ``"nodash"``, ``"braces"``), another name (``<name>-twin``) and
        status ``down``; a search that names an ``id=`` and a GET by id are not garbled. Until
        :meth:`clear_faults`."""
        if spelling not in _SPELLINGS:
            raise ValueError(f"twin_in_search: spelling must be one of {sorted(_SPELLINGS)}, not {spelling!r}")
        with self._lock:
            self._twins = dict.fromkeys(ids, (spelling, before))

    def _twin_id(self, vm_id: str) -> tuple[str, bool] | None:
        """The id of ``vm_id``'s twin in a garbled search (:meth:`twin_in_search`) and whether it comes first, or
        None."""
        with self._lock:
            twin = self._twins.get(vm_id)
        return None if twin is None else (_SPELLINGS[twin[0]](vm_id), twin[1])

    def clear_faults(self) -> None:
        with self._lock:
            self._lost = set()
            self._twins = {}
            self._faults.clear()
        self._release.set()
        self._release = threading.Event()


    def _take_faults(self, path: str, method: str | None = None) -> list[_Fault]:
        with self._lock:
            hits = []
            for f in self._faults:
                if f.method is not None and f.method != method:
                    continue
                if path.startswith(f.path_prefix) and (f.remaining is None or f.remaining > 0):
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    if f.remaining is not None:
                        f.remaining -= 1
                    hits.append(f)
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
            return hits
