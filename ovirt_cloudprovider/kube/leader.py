"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's ``leaderelection`` semantics.

- A candidate takes the Lease when it has no holder, or when the holder's lease has expired: the
  expiry is measured on *our* monotonic clock from the moment we last saw the lease record change
  (client-go's ``observedTime``), never from the timestamps other replicas wrote (their clocks may be
  off). Writes are optimistic: a PUT carries the resourceVersion we read; 409 means another replica
  won the race. Taking over from another holder increments ``leaseTransitions``.
- The leader renews every ``retry_period`` (first optimistically with the last Lease it wrote, then
  by reading it again), and stops leading as soon as no renewal has succeeded for ``renew_deadline``
  seconds, counted from when the last successful renewal was *sent*. ``lease_duration >
  renew_deadline`` leaves the old leader that much time to stop before anyone may take over.
  Seeing another holder in the Lease ends leadership at once. That renew deadline is also the
  *fence* of every write: ``is_leader`` turns False at ``last renewal sent + renew_deadline``
  (:attr:`LeaderElector.fence_deadline`) whatever the renewal in flight, and the writer asks it right
  before every request it sends.
- :meth:`release` on shutdown writes ``holderIdentity: ""`` and ``leaseDurationSeconds: 1`` (client-go's
  ``ReleaseOnCancel``), so a standby takes over at its next retry instead of after a lease duration.
- An unexpected exception (not a request error: a bug, or a datum or library failure no rule foresaw) ends
  :meth:`run`: leadership ends at once (the fence), one error line says why (:attr:`LeaderElector.failure`; the
  traceback only with ``-v``), and the process exits 1 (``app.run_controller``), so that the pod restarts. That is
  what client-go does: ``LeaderElector.Run`` does not recover a panic (``runtime.HandleCrash`` re-panics) and
  kube-controller-manager exits when it stops leading (``klog.Fatalf("leaderelection lost")``). A replica whose
  elector died would otherwise stay a silent standby forever: no Lease taken, ``/healthz`` 200.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ..logs import kv
from ..metrics import Metrics, observe_kube
from .client import CONTENT_JSON, read_json, utc_now
from .errors import REQUEST_ERRORS, describe_error, one_line
from .raw import LeaseRequests

log = logging.getLogger(__name__)

__all__ = ["LeaderElector"]

def _micro_time(t: datetime) -> str:
    """A ``metav1.MicroTime`` (RFC 3339 with exactly six fraction digits, UTC).

    The client library turns our string into a datetime and back with ``isoformat()``, which drops the
    fraction when it is zero, and a real API server rejects a MicroTime without it: never send .000000.
    """
    if t.microsecond == 0:
        t = t.replace(microsecond=1)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _keep_micro_time(value: Any, default: datetime) -> str:
    """A MicroTime read from the Lease, re-formatted so that it survives the client (see above)."""
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return _micro_time(parsed.astimezone(timezone.utc))
    return _micro_time(default)


class LeaderElector:
    """One candidate for the Lease ``namespace/name``, identified by ``identity`` (the pod name).

    Lifecycle: :meth:`run` blocks in the caller's thread (start it in its own thread) until ``stop``
    is set, acquiring and then renewing the Lease; returning from ``run`` ends leadership but does not
    release the Lease (a killed process cannot either); call :meth:`release` on a graceful shutdown,
    after the work that needed leadership has stopped. ``is_leader`` is thread-safe and turns False
    the moment the renew deadline passes, even while a renewal request is still hanging.
    ``on_started_leading`` / ``on_stopped_leading`` are called from the ``run`` thread (and
    ``on_stopped_leading`` from :meth:`release`); they must be quick. After losing the Lease the
    elector stays a candidate and may lead again later.
    """

    def __init__(self, api_client: k8s.ApiClient, *, namespace: str, name: str, identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 metrics: Metrics | None = None,
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[], None] | None = None) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if not (lease_duration > renew_deadline > retry_period > 0):
            raise ValueError(
                f"leader election needs lease_duration > renew_deadline > retry_period > 0, got "
                f"{lease_duration} / {renew_deadline} / {retry_period}")
        self._api = LeaseRequests(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._lease_seconds = max(1, math.ceil(lease_duration))
        self._metrics = metrics
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading

        self._lock = threading.Lock()  # state below
        self._io = threading.Lock()  # one Lease read/write sequence at a time (run vs release)
        self._leading = False
        self._renewed_at = 0.0  # monotonic time the last successful acquire/renew was sent
        self._lease: dict[str, Any] | None = None  # the Lease as last read or written
        self._observed_key: str | None = None  # the observed spec, serialized for comparison
        self._observed_spec: dict[str, Any] = {}
        self._observed_at = 0.0  # monotonic time we saw the spec change
        self._closed = False
        self._failing = False
        self._failure: str | None = None  # why run() ended by itself (an unexpected exception)
        self._last_holder: str | None = None
        if metrics is not None:
            metrics.leader.set(0)

    # -- public --

    @property
    def is_leader(self) -> bool:
        """Leading, and the fencing deadline (:attr:`fence_deadline`) has not passed: the check before every
        write (the writer asks it right before each request it sends, retries included)."""
        with self._lock:
            return self._leading and time.monotonic() < self._renewed_at + self.renew_deadline

    @property
    def fence_deadline(self) -> float:
        """The ``time.monotonic()`` after which no write may start on this replica's behalf: when the last
        successful acquire/renew was *sent*, plus ``renew_deadline`` (0 before the first). It holds even while
        a renewal is still hanging and the elector has not yet noticed that it lost: another replica can
        take over only ``lease_duration - renew_deadline`` seconds after it, at the earliest."""
        with self._lock:
            return self._renewed_at + self.renew_deadline if self._renewed_at else 0.0

    @property
    def holder(self) -> str | None:
        """The holder identity in the Lease as last observed (None: no holder)."""
        with self._lock:
            return self._observed_spec.get("holderIdentity") or None

    @property
    def failure(self) -> str | None:
        """Why :meth:`run` ended by itself (an unexpected exception, one line), None while it runs or after ``stop``."""
        with self._lock:
            return self._failure

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew the Lease until ``stop`` is set (or :meth:`release` was called), or until an
        unexpected exception ends it (:attr:`failure`; see the module docstring): the caller must then exit."""
        log.info("leader election started", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                     identity=self.identity))
        try:
            self._run(stop)
        except Exception as exc:  # no request error: a bug or something no rule foresaw (module docstring)
            failure = f"{type(exc).__name__}: {one_line(exc)}"
            with self._lock:
                self._failure = failure
            log.error("leader election failed", exc_info=True,
                      extra=kv(lease=f"{self.namespace}/{self.name}", error=failure))
        finally:
            self._set_leading(False, "elector stopped")

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                if self._closed:
                    break
            attempt_at = time.monotonic()
            with self._io:
                if self._closed:
                    break
                ok = self._try_acquire_or_renew(attempt_at)
            self._after_attempt(ok, attempt_at)
            stop.wait(self._next_wait())

    def release(self, timeout: float = 2.0) -> bool:
        """Give the Lease up if we hold it; bounded by ``timeout`` seconds. True when nothing is held
        by us any more. ``run`` stops attempting once this was called. Leadership (and so the write fence,
        ``is_leader``) ends *before* the Lease is written: no write of ours can start once another replica
        may take it."""
        deadline = time.monotonic() + max(0.1, timeout)
        with self._lock:
            self._closed = True
        self._set_leading(False, "releasing the lease")
        if not self._io.acquire(timeout=max(0.1, timeout)):
            self._set_leading(False, "lease released")
            return False
        try:
            with self._lock:
                ours = self._observed_spec.get("holderIdentity") == self.identity
            if not ours:
                return True
            try:
                lease = self._get(deadline - time.monotonic())
            except REQUEST_ERRORS as exc:
                log.warning("lease not released", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                           error=describe_error(exc)))
                return False
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return True
            now = utc_now()
            spec = {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": int((lease.get("spec") or {}).get("leaseTransitions") or 0),
            }
            try:
                self._replace(lease, spec, deadline - time.monotonic())
            except REQUEST_ERRORS as exc:
                log.warning("lease not released", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                           error=describe_error(exc)))
                return False
            log.info("lease released", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                identity=self.identity))
            return True
        finally:
            self._io.release()
            self._set_leading(False, "lease released")

    # -- one attempt (client-go's tryAcquireOrRenew) --

    def _try_acquire_or_renew(self, attempt_at: float) -> bool:
        now = utc_now()
        with self._lock:
            fast = (self._leading and self._lease is not None
                    and self._observed_spec.get("holderIdentity") == self.identity and self._valid())
            lease = self._lease
            observed = dict(self._observed_spec)
        if fast and lease is not None:
            # The leader renews optimistically with the Lease it last wrote (no GET); a conflict falls
            # back to the slow path below.
            spec = self._spec(now, acquire=observed.get("acquireTime"),
                              transitions=int(observed.get("leaseTransitions") or 0))
            try:
                self._replace(lease, spec, self._timeout(attempt_at))
                return True
            except REQUEST_ERRORS as exc:
                log.debug("optimistic lease renewal failed, reading the lease",
                          extra=kv(error=describe_error(exc)))

        try:
            lease = self._get(self._timeout(attempt_at))
        except REQUEST_ERRORS as exc:
            self._note_failure("lease not readable", exc)
            return False
        if lease is None:
            spec = self._spec(now, acquire=None, transitions=0)
            try:
                self._create(spec, self._timeout(attempt_at))
            except REQUEST_ERRORS as exc:
                self._note_failure("lease not created", exc)
                return False
            return True

        current = lease.get("spec") or {}
        holder = current.get("holderIdentity") or ""
        if holder and holder != self.identity:
            with self._lock:
                valid = self._valid()
            if valid:
                self._failing = False
                return False
        if holder == self.identity:
            spec = self._spec(now, acquire=current.get("acquireTime"),
                              transitions=int(current.get("leaseTransitions") or 0))
        else:
            spec = self._spec(now, acquire=None, transitions=int(current.get("leaseTransitions") or 0) + 1)
        try:
            self._replace(lease, spec, self._timeout(attempt_at))
        except REQUEST_ERRORS as exc:
            if isinstance(exc, ApiException) and exc.status == 409:
                log.debug("lost the race for the lease", extra=kv(lease=f"{self.namespace}/{self.name}"))
                return False
            self._note_failure("lease not updated", exc)
            return False
        if holder and holder != self.identity:
            log.info("took over an expired lease", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                           previous=holder))
        return True

    def _spec(self, now: datetime, *, acquire: Any, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._lease_seconds,
            "acquireTime": _keep_micro_time(acquire, now),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    def _valid(self) -> bool:
        """The observed holder's lease is still running on our clock (caller holds the lock)."""
        seconds = self._observed_spec.get("leaseDurationSeconds") or 0
        try:
            duration = float(seconds)
        except (TypeError, ValueError):
            duration = 0.0
        return self._observed_at + duration > time.monotonic()

    def _timeout(self, attempt_at: float) -> float:
        """Per-request timeout: a leader never waits past its renew deadline."""
        with self._lock:
            leading = self._leading
            renewed_at = self._renewed_at
        if leading:
            return max(0.1, min(self.renew_deadline, renewed_at + self.renew_deadline - time.monotonic()))
        return self.renew_deadline

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        key = json.dumps(spec, sort_keys=True)
        with self._lock:
            self._lease = lease
            if key != self._observed_key:
                self._observed_key = key
                self._observed_spec = dict(spec)
                self._observed_at = time.monotonic()
            holder = spec.get("holderIdentity") or None
            changed = holder != self._last_holder
            self._last_holder = holder
        if changed and holder != self.identity:
            log.info("lease holder observed", extra=kv(lease=f"{self.namespace}/{self.name}",
                                                       holder=holder or "<none>"))

    # -- requests --

    def _get(self, timeout: float) -> dict[str, Any] | None:
        t = max(0.1, timeout)
        try:
            with observe_kube(self._metrics, "get_lease") as outcome:
                resp: Any = self._api.read_namespaced_lease(self.name, self.namespace, timeout=(min(t, 5.0), t))
                outcome.code = str(resp.status)
                lease = read_json(resp)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        self._observe(lease)
        return lease

    def _create(self, spec: dict[str, Any], timeout: float) -> None:
        t = max(0.1, timeout)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        with observe_kube(self._metrics, "create_lease") as outcome:
            resp: Any = self._api.create_namespaced_lease(self.namespace, body, content_type=CONTENT_JSON,
                                                          timeout=(min(t, 5.0), t))
            outcome.code = str(resp.status)
            created = read_json(resp)
        self._observe(created or body)

    def _replace(self, lease: dict[str, Any], spec: dict[str, Any], timeout: float) -> None:
        """PUT the Lease with ``spec``, conditional on the resourceVersion we read (409 if it moved)."""
        t = max(0.1, timeout)
        meta = lease.get("metadata") or {}
        metadata: dict[str, Any] = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                          "labels", "annotations") if meta.get(k)}
        metadata.setdefault("name", self.name)
        metadata.setdefault("namespace", self.namespace)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}
        with observe_kube(self._metrics, "update_lease") as outcome:
            resp: Any = self._api.replace_namespaced_lease(self.name, self.namespace, body, content_type=CONTENT_JSON,
                                                           timeout=(min(t, 5.0), t))
            outcome.code = str(resp.status)
            updated = read_json(resp)
        self._observe(updated or body)

    # -- state --

    def _after_attempt(self, ok: bool, attempt_at: float) -> None:
        started = stopped = False
        with self._lock:
            if self._closed:
                return
            if ok:
                self._renewed_at = attempt_at
                self._failing = False
                if not self._leading:
                    self._leading = started = True
            elif self._leading:
                other = self._observed_spec.get("holderIdentity") not in (self.identity,)
                expired = time.monotonic() - self._renewed_at >= self.renew_deadline
                if other or expired:
                    self._leading = False
                    stopped = True
                    why = "another replica holds the lease" if other else "renew deadline passed"
        if started:
            log.info("started leading",
                     extra=kv(lease=f"{self.namespace}/{self.name}", identity=self.identity,
                              transitions=self._observed_spec.get("leaseTransitions")))
            if self._metrics is not None:
                self._metrics.leader.set(1)
            self._callback(self._on_started)
        if stopped:
            log.warning("stopped leading", extra=kv(lease=f"{self.namespace}/{self.name}", reason=why))
            if self._metrics is not None:
                self._metrics.leader.set(0)
            self._callback(self._on_stopped)

    def _set_leading(self, leading: bool, reason: str) -> None:
        with self._lock:
            was = self._leading
            self._leading = leading
        if was and not leading:
            log.info("stopped leading", extra=kv(lease=f"{self.namespace}/{self.name}", reason=reason))
            if self._metrics is not None:
                self._metrics.leader.set(0)
            self._callback(self._on_stopped)

    def _next_wait(self) -> float:
        with self._lock:
            leading = self._leading
            renewed_at = self._renewed_at
        if not leading:
            # client-go: JitterUntil(retryPeriod, 1.2) while acquiring
            return self.retry_period * (1.0 + random.random() * 1.2)
        until_deadline = renewed_at + self.renew_deadline - time.monotonic()
        return max(0.0, min(self.retry_period, until_deadline))

    def _note_failure(self, what: str, exc: BaseException) -> None:
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        log.log(level, what, extra=kv(lease=f"{self.namespace}/{self.name}", error=describe_error(exc)))

    def _callback(self, fn: Callable[[], None] | None) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception as exc:
            log.warning("leader election callback failed",
                        extra=kv(error=f"{type(exc).__name__}: {one_line(exc)}"))
