"""Prometheus metrics: one :class:`Metrics` object per process (tests build their own registry).

Every name is prefixed ``ovirt_cloudprovider_`` and follows the Prometheus conventions (base units,
``_total`` for counters, ``_seconds`` for durations).

Metrics that count nodes (or the VMs and hosts behind them) have a ``kind`` label, ``vm`` or ``host``
(:data:`KINDS`), and sum to what they counted before hosts existed; ``managed_nodes`` stays the unlabelled
total and ``managed_nodes_by_kind`` splits it. Every series of a label value known in advance (results, kinds,
the reasons the planner can give) exists from the start with the value 0, so ``rate()``, ``increase()`` and the
alerts see the first event; gauges set per sweep (:meth:`Metrics.set_gauge`) keep the known series at 0 and drop
only the other ones that no longer apply.

prometheus_client's ``*_created`` series (one per counter, histogram and labelled child: a fifth of the page) are
off unless asked for with its own switch, ``PROMETHEUS_DISABLE_CREATED_SERIES=false``; the switch is global to
the process, so every :class:`Metrics` sets it from the environment (:func:`created_series`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
)

from . import __version__
from .core.absence import (
    REASON_CIRCUIT_BREAKER,
    REASON_CLUSTER_VANISHED,
    REASON_EMPTY_DISCOVERY,
    REASON_UNKNOWN_FILTER_TAG,
)
from .core.changes import REASON_NODE_IP_INVALID, REASON_NODE_IP_NOT_FOUND, REASON_UNPLANNABLE
from .core.confirm import REASON_UNCONFIRMED
from .core.metadata import NOTE_REASONS
from .core.naming import SKIP_CODES
from .core.ownership import REASON_OWNED_ELSEWHERE
from .core.plan import REASON_NAME_CONFLICT
from .core.records import EXISTS_STATUSES, KIND_HOST, KIND_VM, RUNNING_STATUSES, SHUTDOWN_STATUSES, ActionKind

PREFIX = "ovirt_cloudprovider"


def reason_label(camel: str) -> str:
    """A CamelCase action reason as a metric label: "CircuitBreaker" → "circuit-breaker"."""
    out = []
    for i, ch in enumerate(camel):
        if ch.isupper() and i and not camel[i - 1].isupper():
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


# The label values known in advance: their series exist from the start (value 0).
KINDS = (KIND_VM, KIND_HOST)
SYNC_RESULTS = ("success", "failure")
ACTION_RESULTS = ("success", "error", "conflict", "refused")  # kube/writer.py's per-action results
DELETION_BLOCK_REASONS = tuple(reason_label(r) for r in (
    REASON_EMPTY_DISCOVERY, REASON_CIRCUIT_BREAKER, REASON_CLUSTER_VANISHED, REASON_UNCONFIRMED,
    REASON_UNKNOWN_FILTER_TAG))
# desired.py's skip codes (an unknown one is "other") and the planner's reasons for a SKIP of a named node
SKIP_REASONS = tuple(sorted(SKIP_CODES | {"other"} | {reason_label(r) for r in (
    REASON_NAME_CONFLICT, REASON_NODE_IP_NOT_FOUND, REASON_NODE_IP_INVALID, REASON_OWNED_ELSEWHERE,
    REASON_UNPLANNABLE, *NOTE_REASONS)}))
VM_STATUSES = tuple(sorted(RUNNING_STATUSES | SHUTDOWN_STATUSES | EXISTS_STATUSES))

# Request latencies: engine and API server calls take from milliseconds to tens of seconds.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


# prometheus_client's process-wide switch of the *_created series (its functions are not annotated)
_ENABLE_CREATED: Callable[[], None] = enable_created_metrics
_DISABLE_CREATED: Callable[[], None] = disable_created_metrics


def created_series(environ: Mapping[str, str]) -> bool:
    """Whether to expose the ``*_created`` series: only when ``PROMETHEUS_DISABLE_CREATED_SERIES`` is set and not
    true (prometheus_client's own reading of it); unset, they are off."""
    value = environ.get("PROMETHEUS_DISABLE_CREATED_SERIES")
    return value is not None and value.strip().lower() not in ("true", "1", "t")


class Metrics:
    """All metrics of the controller, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        (_ENABLE_CREATED if created_series(os.environ) else _DISABLE_CREATED)()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._gauge_lock = threading.Lock()
        self._gauge_series: dict[int, set[tuple[str, ...]]] = {}  # id(gauge) → the series set_gauge last set
        self.build_info = Gauge(
            f"{PREFIX}_build_info", "Build information; the value is always 1.",
            ["version", "python_version"], registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.sync_duration_seconds = Histogram(
            f"{PREFIX}_sync_duration_seconds", "Duration of a full sweep (discovery, planning, applying).",
            buckets=_SYNC_BUCKETS, registry=r,
        )
        self.syncs_total = Counter(
            f"{PREFIX}_syncs_total", "Sweeps by result (success, failure).", ["result"], registry=r,
        )
        self.targeted_syncs_total = Counter(
            f"{PREFIX}_targeted_syncs_total",
            "Targeted sweeps (only the VMs an engine event named, fetched by id) by result.", ["result"], registry=r,
        )
        for result in SYNC_RESULTS:
            self.syncs_total.labels(result)
            self.targeted_syncs_total.labels(result)
        self.last_successful_sync_timestamp_seconds = Gauge(
            f"{PREFIX}_last_successful_sync_timestamp_seconds",
            "Unix time of the end of the last successful sweep.", registry=r,
        )
        self.vms = Gauge(
            f"{PREFIX}_vms", "VMs matched by the filter in the last successful discovery, by oVirt status.",
            ["status"], registry=r,
        )
        self.set_gauge(self.vms, {}, known=((s,) for s in VM_STATUSES))
        self.managed_nodes = Gauge(
            f"{PREFIX}_managed_nodes",
            "Nodes with an ovirt:// providerID (of VMs and hosts) after the last sweep.", registry=r,
        )
        self.managed_nodes_by_kind = Gauge(
            f"{PREFIX}_managed_nodes_by_kind",
            "Nodes with an ovirt:// providerID after the last sweep, by kind (vm, host); they sum to managed_nodes.",
            ["kind"], registry=r,
        )
        self.set_gauge(self.managed_nodes_by_kind, {}, known=((k,) for k in KINDS))
        self.skipped_vms = Gauge(
            f"{PREFIX}_skipped_vms",
            "VMs (kind vm) and hosts (kind host) that match the filter but cannot become a Node, by reason.",
            ["reason", "kind"], registry=r,
        )
        self.set_gauge(self.skipped_vms, {}, known=self.known_skipped())
        self.actions_total = Counter(
            f"{PREFIX}_actions_total",
            "Actions applied to Nodes, by kind and result (success, error, conflict, refused).",
            ["kind", "result"], registry=r,
        )
        for action in ActionKind:
            for result in ACTION_RESULTS:
                self.actions_total.labels(action.value, result)
        self.deletions_blocked_total = Counter(
            f"{PREFIX}_deletions_blocked_total",
            "Node deletions the safety rules stopped, by reason and kind of node (vm, host).",
            ["reason", "kind"], registry=r,
        )
        for reason in DELETION_BLOCK_REASONS:
            for kind in KINDS:
                self.deletions_blocked_total.labels(reason, kind)
        self.ambiguous_matches_total = Counter(
            f"{PREFIX}_ambiguous_matches_total",
            "VMs or nodes that matched more than one candidate, by kind (vm, host) of the candidate.",
            ["kind"], registry=r,
        )
        for kind in KINDS:
            self.ambiguous_matches_total.labels(kind)
        self.out_of_service_taints_total = Counter(
            f"{PREFIX}_out_of_service_taints_total",
            "node.kubernetes.io/out-of-service taints planned ([nodes] out_of_service_taint), by change (added, "
            "removed) and kind of node (vm, host).", ["change", "kind"], registry=r,
        )
        for change in ("added", "removed"):
            for kind in KINDS:
                self.out_of_service_taints_total.labels(change, kind)
        self.engine_requests_total = Counter(
            f"{PREFIX}_engine_requests_total",
            "Requests to the oVirt engine by operation and HTTP status code "
            "(code is 'error' when no HTTP answer came).", ["operation", "code"], registry=r,
        )
        self.engine_request_duration_seconds = Histogram(
            f"{PREFIX}_engine_request_duration_seconds", "Latency of requests to the oVirt engine.",
            ["operation"], buckets=_REQUEST_BUCKETS, registry=r,
        )
        self.engine_events_total = Counter(
            f"{PREFIX}_engine_events_total", "Engine events seen that trigger an early sweep.", registry=r,
        )
        self.engine_inconsistent_vms_total = Counter(
            f"{PREFIX}_engine_inconsistent_vms_total",
            "VM ids for which one discovery answer held two different VMs (left out of that sweep).", registry=r,
        )
        self.invalid_guest_ips = Gauge(
            f"{PREFIX}_invalid_guest_ips",
            "Guest-reported IP addresses that are not valid addresses, in the last discovery.", registry=r,
        )
        self.filter_unknown_tags = Gauge(
            f"{PREFIX}_filter_unknown_tags",
            "Tags that [filters] vms or [filters] hosts (tag=) or [nodes] tag_labels name and the engine does not "
            "have, in the last full sweep (such a filter matches no VM, without an error; no node of that kind is "
            "counted absent meanwhile).", registry=r,
        )
        self.kube_requests_total = Counter(
            f"{PREFIX}_kube_requests_total",
            "Requests to the Kubernetes API by operation and HTTP status code "
            "(code is 'error' when no HTTP answer came).", ["operation", "code"], registry=r,
        )
        self.kube_request_duration_seconds = Histogram(
            f"{PREFIX}_kube_request_duration_seconds", "Latency of requests to the Kubernetes API.",
            ["operation"], buckets=_REQUEST_BUCKETS, registry=r,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 when this replica holds the leader Lease (or runs without election).",
            registry=r,
        )

    @staticmethod
    def known_skipped() -> Iterator[tuple[str, str]]:
        """The (reason, kind) series of ``skipped_vms`` that always exist."""
        return ((reason, kind) for reason in SKIP_REASONS for kind in KINDS)

    def set_gauge(self, gauge: Gauge, values: Mapping[tuple[str, ...], float], *,
                  known: Iterable[tuple[str, ...]] = ()) -> None:
        """Set a labelled gauge to ``values``: the ``known`` series not in it to 0, every other series removed.
        No series is cleared and set again, so a scrape in between never misses one."""
        wanted = dict.fromkeys(known, 0.0) | dict(values)
        with self._gauge_lock:
            stale = self._gauge_series.get(id(gauge), set()) - wanted.keys()
            for labels in stale:
                gauge.remove(*labels)
            for labels, value in wanted.items():
                gauge.labels(*labels).set(value)
            self._gauge_series[id(gauge)] = set(wanted)

    @contextlib.contextmanager
    def engine_request(self, operation: str) -> Iterator[Outcome]:
        """Time one engine request; the caller sets ``outcome.code`` (default ``200``; ``error`` on raise)."""
        with _observe(self.engine_requests_total, self.engine_request_duration_seconds, operation) as o:
            yield o

    @contextlib.contextmanager
    def kube_request(self, operation: str) -> Iterator[Outcome]:
        """Time one Kubernetes API request; like :meth:`engine_request`."""
        with _observe(self.kube_requests_total, self.kube_request_duration_seconds, operation) as o:
            yield o


class Outcome:
    """The HTTP status code of one observed request, as a label value (set by the caller)."""

    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code: str = "200"


@contextlib.contextmanager
def _observe(counter: Counter, histogram: Histogram, operation: str) -> Iterator[Outcome]:
    outcome = Outcome()
    start = time.monotonic()
    try:
        yield outcome
    except BaseException as exc:
        code = getattr(exc, "code", None) or getattr(exc, "status", None)
        outcome.code = str(code) if isinstance(code, int) and code > 0 else "error"
        raise
    finally:
        histogram.labels(operation).observe(time.monotonic() - start)
        counter.labels(operation, outcome.code).inc()


@contextlib.contextmanager
def observe_engine(metrics: Metrics | None, operation: str) -> Iterator[Outcome]:
    """``metrics.engine_request(operation)``, or a no-op outcome when there are no metrics."""
    if metrics is None:
        yield Outcome()
        return
    with metrics.engine_request(operation) as outcome:
        yield outcome


@contextlib.contextmanager
def observe_kube(metrics: Metrics | None, operation: str) -> Iterator[Outcome]:
    """``metrics.kube_request(operation)``, or a no-op outcome when there are no metrics."""
    if metrics is None:
        yield Outcome()
        return
    with metrics.kube_request(operation) as outcome:
        yield outcome
