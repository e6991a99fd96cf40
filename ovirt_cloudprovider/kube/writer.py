"""The Node writer: applies planned Actions to Nodes with the smallest writes, guarded by preconditions.

:class:`NodeWriter` turns each :class:`~ovirt_cloudprovider.model.Action` into its requests: create
(one ``POST nodes`` carrying the status), strategic-merge patches of the node (carrying the
planned resourceVersion when the taints or the providerID change) and JSON merge patches of
``nodes/status``, and delete with uid + resourceVersion preconditions. 429, 5xx and no answer are
retried with a jittered backoff (each attempt only while ``may_write`` still says yes: the fence is checked
right before every request); 409 is a conflict (the node changed since planning: re-planned next sweep); 400
and 422 are a refusal of that one node's write (``refused``: that node is skipped this sweep, with a
``WriteRefused`` Warning Event, and the sweep goes on and succeeds for the others). Applied actions get their
Event through :class:`~.events.EventRecorder`. What comes back is an :class:`ApplyResult` (counts, tallies,
one-line errors), never a client object.

At scale (the first sweep of a cluster with thousands of VMs) the actions are applied by a bounded pool of
worker threads, the actions of one node in their planned order by one worker, and every request (node
writes and Events) takes a token from one client-side :class:`~.ratelimit.TokenBucket` (``[controller]
kube_api_qps`` / ``kube_api_burst``, like kube-controller-manager's ``--kube-api-qps`` / ``--kube-api-burst``).
A long apply logs its progress (``applying actions done=N total=M rate=...``).

The ``*_body`` / ``_registration_status`` helpers at the end build the JSON bodies from our records.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ..core.records import (
    ANNOTATION_HOST_ID,
    ANNOTATION_OWNER,
    ANNOTATION_VM_ID,
    KIND_HOST,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    PLACEHOLDER_READY_MESSAGE,
    PLACEHOLDER_READY_REASON,
    Action,
    ActionKind,
    ApplyResult,
    NodeAddress,
    NodeSpec,
    Taint,
)
from ..logs import kv
from ..metrics import Metrics, observe_kube
from .client import CONTENT_JSON, CONTENT_MERGE, CONTENT_SMP, discard, read_json, rfc3339
from .errors import NO_ANSWER, api_status, describe_error, one_line, retry_after_seconds
from .events import EventRecorder
from .ratelimit import TokenBucket
from .raw import CoreRequests
from .workqueue import EVENT, FOLLOW_UP, StepQueue, Task

log = logging.getLogger(__name__)

__all__ = ["ApplyResult", "NodeWriter"]

# Per-action results (also the ``result`` label of ``actions_total``).
SUCCESS = "success"
CONFLICT = "conflict"
ERROR = "error"
REFUSED = "refused"  # the API refused this node's write as invalid (400, 422): that node only, not the sweep
REFUSED_STATUSES = frozenset({400, 422})
REASON_WRITE_REFUSED = "WriteRefused"
_INTERRUPTED = "interrupted"  # not a result label: counted in ApplyResult.interrupted

DEFAULT_WORKERS = 8
PROGRESS_EVERY = 1000  # actions between "applying actions" progress lines...
PROGRESS_INTERVAL = 5.0  # ...or seconds, whichever comes first

DEFAULT_PODS_CAPACITY = "110"  # the kubelet's default --max-pods


class _Interrupted(Exception):
    """The writer was stopped (``stop`` set), or ``may_write`` said no right before a request, before this
    action completed."""


class _Failed(Exception):
    """An action's request failed for good: ``result`` is CONFLICT or ERROR; str() is one line."""

    def __init__(self, result: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.result = result
        self.status = status


_EVENT_KINDS = frozenset({ActionKind.REGISTER, ActionKind.INITIALIZE, ActionKind.TAINT, ActionKind.UNTAINT,
                          ActionKind.DELETE, ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS})
_PATCH_KINDS = frozenset({ActionKind.INITIALIZE, ActionKind.UPDATE, ActionKind.TAINT, ActionKind.UNTAINT,
                          ActionKind.MARK_ABSENT, ActionKind.CLEAR_ABSENT})


class NodeWriter:
    """Applies planned Actions to Nodes, one independent request sequence per action.

    Writes (the smallest that does the job):
    - REGISTER: one ``POST nodes`` (name, labels incl. ``app.kubernetes.io/managed-by``, the
      ``ovirt.org/vm-id`` annotation, ``spec.providerID``, and the status: addresses, capacity/allocatable,
      nodeInfo and a ``Ready=False`` condition with reason ``KubeletNotJoined``; kube-apiserver keeps a Node's
      status on create, as the kubelet's registration relies on). 409 AlreadyExists is a conflict: the existing
      node (e.g. a kubelet's) is left as it is.
    - INITIALIZE / UPDATE / TAINT / UNTAINT / MARK_ABSENT / CLEAR_ABSENT: one strategic-merge patch of
      ``metadata.labels`` / ``metadata.annotations`` (None removes a key), ``spec.taints`` (the complete
      list: the field is atomic) and ``spec.providerID``; when the taints or the providerID change, or the owner
      annotations are recorded (an adoption, core/ownership.py), the patch carries ``metadata.resourceVersion`` as a
      precondition, so a concurrent change (a kubelet's
      or the node lifecycle controller's taint) is never overwritten: 409 is a conflict. Then, when
      ``action.addresses`` is set, a ``nodes/status`` patch that replaces ``status.addresses`` with
      exactly that list. 404 (the node was deleted since planning) is a conflict of that node too, never a
      failed sweep: the next sweep plans without it.
    - DELETE: ``DELETE`` with uid and resourceVersion preconditions; 404 is success (already gone),
      409 a conflict (the node changed since planning: not deleted).
    - A write the API refuses for that node (400 BadRequest, 422 Invalid: its validation or an admission
      plugin said no to this object) is ``refused``: logged once, a ``WriteRefused`` Warning Event on the node
      when it exists, counted in ``actions_total{result="refused"}``; the sweep is not failed by it (one bad
      node never backs off the fleet), and the write is planned again on the next sweep. A taint list
      never carries two taints of one key and effect (the API's rule): the first is kept.
    - BLOCK_DELETE / AMBIGUOUS: no node write; a log line and an Event (``deletions_blocked_total`` and
      ``ambiguous_matches_total`` are the controller's: it counts the plan). SKIP: a log line (info the
      first time for a VM and reason, debug afterwards), and a Warning Event when it is a warning about an
      existing node (it carries the node's uid: ``ProvidedNodeIPNotFound``, ``ProvidedNodeIPInvalid``).

    Status patches are JSON merge patches (RFC 7386: a list is replaced as a whole). A strategic merge
    patch would merge ``status.addresses`` by its merge key ``type`` and fold dual-stack InternalIPs
    together; k8s.io/component-helpers ``PatchNodeStatus`` (kubelet, cloud node controller) works around
    that with a ``{"$patch": "replace"}`` list item, but only when the node already has addresses,
    because API servers before kubernetes/kubernetes#117568 (2023) store the directive as an empty
    address when the field is missing. A merge patch gives exactly the desired list on every version.

    429 and 5xx answers and transport failures are retried ``attempts - 1`` times with jittered
    backoff, honouring ``Retry-After`` up to ``max_retry_delay`` seconds; then the action fails. Each
    failed or conflicting action is logged once, one line. ``stop`` (an Event), when set, interrupts
    retries and waits for a token and leaves the remaining actions unattempted.

    The fence: ``apply``'s ``may_write`` (the elector's ``is_leader``, which turns False at the Lease's
    renew deadline) is asked right before every request is sent: after the wait for a rate-limit token and
    before every retry, for Events too. A write queued or retried across the loss of the Lease is never
    sent; its action is ``interrupted``.

    Concurrency: ``apply`` groups the actions by node (the planner sorts them by node, and orders the
    actions of one node so that the one carrying the resourceVersion precondition comes first); up to
    ``workers`` requests are in flight at once, one node's requests strictly in order (daemon threads,
    started by each ``apply`` and joined before it returns: a request hung at shutdown does not keep the
    process alive past its shutdown deadline). Which request goes next is :class:`~.workqueue.StepQueue`'s:
    every node's first write before the follow-ups (a ``nodes/status`` patch, the node's next action), those
    before the Events. The rule that keeps this safe for an initialization (the node patch removes the
    uninitialized taint, the status patch then writes the addresses, as k8s.io/cloud-provider's node controller
    does, Update then address patch then the ``Synced`` Event): a node's address patch waits for at most
    ``MAX_FOLLOW_UPS`` other nodes' first writes (about 0.1 s at a few hundred writes a second), never for a
    whole batch; an untainted node never has wrong addresses meanwhile, only the kubelet's own (its Hostname,
    or its ``--node-ip``, which the planner checked against the VM). The taint removal cannot go after the
    addresses: the node patch carries the planned resourceVersion, which the status patch would change. ``limiter``
    (a :class:`~.ratelimit.TokenBucket`, None = unlimited) is taken before every request, retries and
    Events included.

    Events (core/v1, namespace ``default``, like client-go's recorder; written by
    :class:`~.events.EventRecorder`): for register, initialize,
    taint, untaint, delete, block-delete and ambiguous; update, mark-absent and clear-absent are only
    logged (label drift and the deletion countdown would otherwise add an Event per node per sweep).
    Identical repeated events are aggregated like client-go's correlator (``count`` and
    ``lastTimestamp`` patched on the existing Event), and an identical event is not re-sent within
    ``event_repeat_interval`` seconds, so a deletion blocked sweep after sweep does not write every
    sweep. Event failures are logged at debug and never fail an action.
    """

    def __init__(self, api_client: k8s.ApiClient, *, metrics: Metrics | None = None,
                 component: str = MANAGED_BY_VALUE, host_identity: str | None = None,
                 attempts: int = 4, max_retry_delay: float = 5.0, backoff_initial: float = 0.2,
                 request_timeout: float = 30.0, event_repeat_interval: float = 300.0,
                 stop: threading.Event | None = None, workers: int = DEFAULT_WORKERS,
                 limiter: TokenBucket | None = None, progress_every: int = PROGRESS_EVERY,
                 progress_interval: float = PROGRESS_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = CoreRequests(api_client)
        self._metrics = metrics
        self._attempts = max(1, attempts)
        self._max_retry_delay = max_retry_delay
        self._backoff_initial = backoff_initial
        self._timeout = (10.0, request_timeout)
        self._stop = stop or threading.Event()
        self._workers = max(1, workers)
        self._limiter = limiter
        self._progress_every = max(1, progress_every)
        self._progress_interval = progress_interval
        self._clock = clock
        self._fence = threading.local()  # .may_write: the fence of the apply() this thread works for
        self._recorder = EventRecorder(self._api, metrics=metrics, component=component,
                                       host=host_identity or socket.gethostname(), request_timeout=self._timeout,
                                       repeat_interval=event_repeat_interval, throttle=self._may_send)
        self._skips_seen: set[tuple[str, str]] = set()

    # -- public --

    def apply(self, actions: Sequence[Action], *, may_write: Callable[[], bool] | None = None,
              more: Callable[[], Sequence[Action]] | None = None) -> ApplyResult:
        """Apply every action; a failure of one does not stop the others.

        The actions of one node are applied in their order, different nodes concurrently (up to ``workers``),
        every node's first request before the follow-ups (``nodes/status`` patches, a node's next action) and
        those before the Events (kube/workqueue.py). ``may_write`` (e.g. "this replica still holds the Lease") is
        the fence: it is asked before every action that writes and again right before every request is sent
        (after the wait for a rate-limit token, before every retry, Events included); once it says no, or once
        ``stop`` is set, nothing more is sent and the actions not completed are ``interrupted``. ``more``, when
        given, is asked for further actions whenever the queued nodes' first requests have run out (from a worker
        thread, one call at a time): they are applied and counted with these, as one apply; when it raises it is
        not asked again, the queued actions are still applied and the failure is counted in ``failed`` (an error);
        once the fence says no, or ``stop`` is set, it is not asked.
        """
        run = _Run(len(actions), self._clock(), may_write)
        taken = [0]  # action indices handed out (run.finish counts each index once)

        def tasks(batch: Sequence[Action]) -> tuple[int, Iterator[tuple[str, Callable[[], Task]]]]:
            """How many nodes ``batch`` writes, and their tasks (each made when a worker takes it)."""
            start, taken[0] = taken[0], taken[0] + len(batch)
            nodes, groups = _by_node(batch, start)
            return nodes, ((_node_key(group[0][1]), functools.partial(self._node_task, group, run))
                           for group in groups)

        def extend() -> list[tuple[str, Callable[[], Task]]]:
            assert more is not None
            if run.halted or self._stop.is_set() or not run.may_write():  # no planning for a lost lease
                return []
            try:
                extra = more()
            except Exception as exc:  # a bug in the extension: its nodes are the next sweep's, these go on
                error = f"extension: {type(exc).__name__}: {one_line(exc)}"
                log.error("asking for more actions failed; the queued ones are applied", extra=kv(error=error))
                run.failed_outside(error)
                raise
            run.add(len(extra))
            return list(tasks(extra)[1])

        nodes, initial = tasks(actions)
        queue = StepQueue(initial, more=extend if more is not None else None)
        crashed: list[BaseException] = []
        if more is None and (self._workers == 1 or nodes <= 1):
            self._work(queue, run, crashed)  # in this thread
        else:
            # daemon threads (a ThreadPoolExecutor's are joined at interpreter exit): a request hung at shutdown
            # (read timeout 30 s) never holds the process beyond the shutdown deadline; apply still waits for them
            count = self._workers if more is not None else min(self._workers, nodes)
            workers = [threading.Thread(target=self._work, args=(queue, run, crashed), name=f"node-writer_{i}",
                                        daemon=True) for i in range(count)]
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join()
        if queue.failure is not None and not isinstance(queue.failure, Exception):
            crashed.append(queue.failure)  # not a bug of the extension (e.g. KeyboardInterrupt): the caller's
        if crashed:  # re-raised in apply's thread, as a Future's result() would
            raise crashed[0]
        tally = run.tally
        return ApplyResult(
            applied=sum(n for (_, r), n in tally.items() if r == SUCCESS),
            failed=sum(n for (_, r), n in tally.items() if r == ERROR) + run.outside,
            conflicts=sum(n for (_, r), n in tally.items() if r == CONFLICT),
            refused=sum(n for (_, r), n in tally.items() if r == REFUSED),
            interrupted=run.interrupted,
            tallies=tuple(sorted((k, r, n) for (k, r), n in tally.items())),
            errors=tuple(e for _, e in sorted(run.errors)),
        )

    def _work(self, queue: StepQueue, run: _Run, crashed: list[BaseException]) -> None:
        """One worker: run the queue's steps until it is done (the fence: this apply's ``may_write``)."""
        self._fence.may_write = run.may_write
        try:
            while (step := queue.take()) is not None:
                key, task = step
                try:
                    priority: int | None = next(task)
                except StopIteration:
                    priority = None
                except BaseException as exc:
                    crashed.append(exc)
                    priority = None
                queue.done(key, task, priority)
        finally:
            self._fence.may_write = None

    def _node_task(self, group: Sequence[tuple[int, Action]], run: _Run) -> Task:
        """The actions of one node, in order: a generator that yields the priority of its next request."""
        for position, (index, action) in enumerate(group):
            if position:
                yield FOLLOW_UP
            if run.halted or self._stop.is_set() or (action.writes and not run.may_write()):
                run.halt()
                run.finish(index, action, _INTERRUPTED, None, self)
                continue
            try:
                result, error = yield from self._apply_one(action)
            except _Interrupted:
                run.halt()
                result, error = _INTERRUPTED, None
            except Exception as exc:  # a bug in one action must not stop the others
                result = ERROR
                error = f"{action.node}: {action.kind.value}: {type(exc).__name__}: {one_line(exc)}"
                log.error("action failed unexpectedly",
                          extra=kv(node=action.node, action=action.kind.value, error=error))
            run.finish(index, action, result, error, self)

    def _progress(self, done: int, total: int, started: float) -> None:
        seconds = self._clock() - started
        log.info("applying actions", extra=kv(done=done, total=total, seconds=round(seconds, 1),
                                              rate=round(done / seconds, 1) if seconds > 0 else None))

    def _may_send(self) -> bool:
        """Right before every request (retries and Events included): False when the writer was stopped, or when
        the fence (the ``may_write`` of this thread's apply) says no, before or after the wait for a rate-limit
        token: a write never starts after leadership was lost, however long it queued or retried."""
        may_write: Callable[[], bool] | None = getattr(self._fence, "may_write", None)
        if self._stop.is_set() or (may_write is not None and not may_write()):
            return False
        if self._limiter is not None and not self._limiter.acquire(self._stop):
            return False
        return may_write is None or may_write()

    # -- one action --

    def _apply_one(self, action: Action) -> Generator[int, None, tuple[str, str | None]]:
        """One action's requests (a generator: it yields the priority of each request after its first)."""
        kind = action.kind
        try:
            if kind is ActionKind.REGISTER:
                uid = self._register(action)
            elif kind in _PATCH_KINDS:
                uid = yield from self._patch(action)
            elif kind is ActionKind.DELETE:
                uid = self._delete(action)
            elif kind is ActionKind.BLOCK_DELETE:
                log.warning("node deletion blocked",
                            extra=kv(node=action.node, reason=action.reason, message=action.message))
                uid = action.uid
            elif kind is ActionKind.AMBIGUOUS:
                log.warning("ambiguous match", extra=kv(node=action.node, vm_id=action.vm_id,
                                                        reason=action.reason, message=action.message))
                uid = action.uid
            elif kind is ActionKind.SKIP:
                key = (action.vm_id or action.node, action.reason)
                level = logging.DEBUG if key in self._skips_seen else logging.INFO
                self._skips_seen.add(key)
                log.log(level, "VM skipped", extra=kv(vm_id=action.vm_id, node=action.node,
                                                      reason=action.reason, message=action.message))
                if action.warning and action.node and action.uid:
                    # about an existing node (e.g. its kubelet's --node-ip): a Warning Event on it
                    yield EVENT
                    self._recorder.record(action, action.uid)
                return SUCCESS, None
            else:  # pragma: no cover - exhaustive
                raise ValueError(f"unknown action kind {kind!r}")
        except _Failed as failure:
            error = f"{action.node}: {kind.value}: {failure}"
            if failure.result == ERROR and failure.status in REFUSED_STATUSES:
                yield from self._refused(action, failure)
                return REFUSED, error
            log.warning("node action conflict" if failure.result == CONFLICT else "node action failed",
                        extra=kv(node=action.node, action=kind.value, status=failure.status or None,
                                 error=str(failure)))
            return failure.result, error
        if kind in _PATCH_KINDS or kind in (ActionKind.REGISTER, ActionKind.DELETE):
            log.info("node action applied",
                     extra=kv(node=action.node, action=kind.value, reason=action.reason))
        if kind in _EVENT_KINDS and uid is not _NOT_OURS:
            yield EVENT
            self._recorder.record(action, uid)
        return SUCCESS, None

    def _refused(self, action: Action, failure: _Failed) -> Generator[int, None, None]:
        """One node's write refused by the API: a log line, and a Warning Event on the node when it exists."""
        log.warning("node write refused; this node is skipped until the next sweep",
                    extra=kv(node=action.node, action=action.kind.value, status=failure.status,
                             error=str(failure)))
        if action.uid and action.kind is not ActionKind.REGISTER:
            message = (f"The API refused to {action.kind.value} node {action.node} (HTTP {failure.status}): "
                       f"{failure}. The node is skipped this sweep; the other nodes are not affected.")
            yield EVENT
            self._recorder.record(dataclasses.replace(action, reason=REASON_WRITE_REFUSED, message=message,
                                                      warning=True), action.uid)

    def _register(self, action: Action) -> str | None:
        spec = action.spec
        if spec is None:
            raise _Failed(ERROR, "register action without a node spec")
        labels: dict[str, str] = dict(spec.labels)
        labels.update({k: v for k, v in (action.labels or ()) if v is not None})
        labels[LABEL_MANAGED_BY] = MANAGED_BY_VALUE
        # the owner's id annotation: ovirt.org/host-id on a host's node (never a vm-id there), else ovirt.org/vm-id
        annotations: dict[str, str] = {(ANNOTATION_HOST_ID if spec.kind == KIND_HOST else ANNOTATION_VM_ID): spec.vm_id}
        annotations.update({k: v for k, v in (action.annotations or ()) if v is not None})
        node_spec: dict[str, Any] = {"providerID": action.provider_id or spec.provider_id}
        if action.taints:
            node_spec["taints"] = [_taint_body(t) for t in _unique_taints(action.taints)]
        addresses = action.addresses if action.addresses is not None else spec.addresses
        # kube-apiserver keeps .status on a Node create (its node strategy's PrepareForCreate drops only
        # spec.configSource and status.config), as the kubelet relies on when it registers: one write
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": action.node, "labels": labels, "annotations": annotations},
                "spec": node_spec, "status": _registration_status(spec, addresses)}
        created = self._request(
            "create_node", action,
            lambda: self._api.create_node(body, content_type=CONTENT_JSON, timeout=self._timeout),
            conflict=(409,), answer=True)
        uid = (created.get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    def _patch(self, action: Action) -> Generator[int, None, str | None]:
        metadata: dict[str, Any] = {}
        spec: dict[str, Any] = {}
        if action.labels:
            metadata["labels"] = dict(action.labels)
        if action.annotations:
            metadata["annotations"] = dict(action.annotations)
        if action.taints is not None:
            spec["taints"] = [_taint_body(t) for t in _unique_taints(action.taints)]
        if action.provider_id:
            spec["providerID"] = action.provider_id
        if (spec or _records_owner(action)) and action.resource_version:
            # Optimistic concurrency: the taint list is replaced as a whole, providerID may only be set once and
            # an owner only recorded on the node as planned; a node that changed since planning answers 409 and is
            # re-planned.
            metadata["resourceVersion"] = action.resource_version
        patch: dict[str, Any] = {}
        if metadata:
            patch["metadata"] = metadata
        if spec:
            patch["spec"] = spec
        # 404: the node was deleted since planning: that node's conflict (re-planned next sweep), never the sweep's
        if patch:
            self._request(
                "patch_node", action,
                lambda: self._api.patch_node(action.node, patch, content_type=CONTENT_SMP, timeout=self._timeout),
                conflict=(409, 404))
        if action.addresses is not None:
            if patch:
                yield FOLLOW_UP  # the addresses after every queued node's first write (kube/workqueue.py)
            status = {"status": {"addresses": [_address_body(a) for a in action.addresses]}}
            self._request(
                "patch_node_status", action,
                lambda: self._api.patch_node_status(action.node, status, content_type=CONTENT_MERGE,
                                                    timeout=self._timeout),
                conflict=(409, 404))
        return action.uid

    def _delete(self, action: Action) -> str | None:
        if not action.uid or not action.resource_version:
            raise _Failed(ERROR, "refusing to delete without uid and resourceVersion preconditions")
        options = {"preconditions": {"uid": action.uid, "resourceVersion": action.resource_version}}
        try:
            self._request(
                "delete_node", action,
                lambda: self._api.delete_node(action.node, options, content_type=CONTENT_JSON, timeout=self._timeout),
                conflict=(409,), gone_ok=True)
        except _AlreadyGone:
            log.info("node already gone", extra=kv(node=action.node))
            return _NOT_OURS  # someone else deleted it: no "deleted" Event from us
        return action.uid

    # -- requests --

    def _request(self, operation: str, action: Action, call: Callable[[], Any], *,
                 conflict: tuple[int, ...] = (409,), gone_ok: bool = False, answer: bool = False) -> dict[str, Any]:
        """Run one request with retries on 429/5xx/no answer; the JSON answer (with ``answer``; else the answer is
        read undecoded, and {}), or raise _Failed (_Interrupted when, right before an attempt, the writer was
        stopped or the fence said no)."""
        attempt = 0
        while True:
            attempt += 1
            if not self._may_send():
                raise _Interrupted()
            try:
                with observe_kube(self._metrics, operation) as outcome:
                    resp = call()
                    outcome.code = str(resp.status)
                    if answer:
                        return read_json(resp)
                    discard(resp)  # a patched node's echo: the informer's watch brings the node
                    return {}
            except ApiException as exc:
                status, _, _ = api_status(exc)
                if status == 404 and gone_ok:
                    raise _AlreadyGone() from None
                if status in conflict:
                    gone = "the node no longer exists (deleted since planning): " if status == 404 else ""
                    raise _Failed(CONFLICT, gone + describe_error(exc), status) from None
                retryable = status == 429 or status >= 500 or status == 0
                if not retryable or attempt >= self._attempts:
                    raise _Failed(ERROR, describe_error(exc), status) from None
                delay = self._retry_delay(attempt, retry_after_seconds(exc))
                log.debug("retrying API request", extra=kv(node=action.node, operation=operation,
                                                           status=status, attempt=attempt,
                                                           retry_in=round(delay, 2)))
            except NO_ANSWER as exc:
                if attempt >= self._attempts:
                    raise _Failed(ERROR, describe_error(exc)) from None
                delay = self._retry_delay(attempt, None)
                log.debug("retrying API request", extra=kv(node=action.node, operation=operation,
                                                           error=describe_error(exc), attempt=attempt))
            if self._stop.wait(delay):
                raise _Failed(ERROR, "interrupted: the writer is stopping")

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self._backoff_initial * (2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        delay = max(backoff, retry_after) if retry_after is not None else backoff
        return min(delay, self._max_retry_delay)


class _AlreadyGone(Exception):
    pass


class _Run:
    """The shared state of one :meth:`NodeWriter.apply`: tallies, errors, progress, the halt flag."""

    def __init__(self, total: int, started: float, may_write: Callable[[], bool] | None) -> None:
        self.total = total
        self.started = started
        self._may_write = may_write
        self._lock = threading.Lock()
        self.tally: collections.Counter[tuple[str, str]] = collections.Counter()
        self.errors: list[tuple[int, str]] = []
        self.interrupted = 0
        self.outside = 0  # failures of no action (failed_outside)
        self.done = 0
        self._last_done = 0
        self._last_time = started
        self.halted = False

    def may_write(self) -> bool:
        return self._may_write is None or self._may_write()

    def halt(self) -> None:
        self.halted = True

    def failed_outside(self, error: str) -> None:
        """A failure of no action (the extension's): counted as failed, its error after the actions'."""
        with self._lock:
            self.outside += 1
            self.errors.append((1 << 62, error))

    def add(self, count: int) -> None:
        """``count`` more actions (an extension of the apply)."""
        with self._lock:
            self.total += count

    def finish(self, index: int, action: Action, result: str, error: str | None, writer: NodeWriter) -> None:
        with self._lock:
            self.done += 1
            if result == _INTERRUPTED:
                self.interrupted += 1
            else:
                self.tally[(action.kind.value, result)] += 1
            if error:
                self.errors.append((index, error))  # reported in the order of the actions
            now = writer._clock()
            report = self.done < self.total and (
                self.done - self._last_done >= writer._progress_every
                or now - self._last_time >= writer._progress_interval)
            if report:
                self._last_done, self._last_time = self.done, now
            done = self.done
        if result != _INTERRUPTED and writer._metrics is not None:
            writer._metrics.actions_total.labels(action.kind.value, result).inc()
        if report:
            writer._progress(done, self.total, self.started)


_NOT_OURS = "\x00not-ours"  # _delete's answer when the node was already gone


def _node_key(action: Action) -> str:
    return action.node or f"\x00vm:{action.vm_id or ''}"


def _by_node(actions: Sequence[Action], start: int = 0) -> tuple[int, Iterator[list[tuple[int, Action]]]]:
    """The actions grouped by node (in the order of each node's first action; a group's actions in their order,
    each with its index, counted from ``start``), and how many groups. The planner's actions come sorted by node:
    then each group is made only when a worker takes it (a registration of thousands of nodes holds no index of
    them all); else they are grouped first."""
    seen: set[str] = set()
    last: str | None = None
    for action in actions:
        key = _node_key(action)
        if key != last:
            if key in seen:
                break
            seen.add(key)
            last = key
    else:
        return len(seen), _runs(actions, start)
    groups: dict[str, list[tuple[int, Action]]] = {}
    for index, action in enumerate(actions, start):
        groups.setdefault(_node_key(action), []).append((index, action))
    return len(groups), iter(groups.values())


def _runs(actions: Sequence[Action], start: int) -> Iterator[list[tuple[int, Action]]]:
    """The runs of consecutive actions of one node, one list each, as they are taken."""
    group: list[tuple[int, Action]] = []
    for index, action in enumerate(actions, start):
        if group and _node_key(group[-1][1]) != _node_key(action):
            yield group
            group = []
        group.append((index, action))
    if group:
        yield group


def _records_owner(action: Action) -> bool:
    """The action writes the owner annotations (an adoption, core/ownership.py): only on the node as planned."""
    return any(key == ANNOTATION_OWNER for key, _ in action.annotations or ())


def _unique_taints(taints: Sequence[Taint]) -> list[Taint]:
    """``taints`` with at most one taint per key and effect (the first), as the API requires of a node."""
    seen: set[tuple[str, str]] = set()
    out: list[Taint] = []
    for t in taints:
        if (t.key, t.effect) not in seen:
            seen.add((t.key, t.effect))
            out.append(t)
    return out


def _taint_body(t: Taint) -> dict[str, Any]:
    d: dict[str, Any] = {"key": t.key, "effect": t.effect}
    if t.value:
        d["value"] = t.value
    if t.time_added:
        d["timeAdded"] = t.time_added
    return d


def _address_body(a: NodeAddress) -> dict[str, str]:
    return {"type": a.type, "address": a.address}


def _memory_quantity(memory_bytes: int) -> str:
    return f"{memory_bytes // 1024}Ki" if memory_bytes % 1024 == 0 else str(memory_bytes)


def _registration_status(spec: NodeSpec, addresses: Sequence[NodeAddress]) -> dict[str, Any]:
    status: dict[str, Any] = {"addresses": [_address_body(a) for a in addresses]}
    capacity: dict[str, str] = {}
    # only positive numbers: kube-apiserver refuses a negative quantity (422), which would fail the registration
    # on every sweep; a garbled engine number is left out like a missing one
    if spec.cpus and spec.cpus > 0:
        capacity["cpu"] = str(spec.cpus)
    if spec.memory_bytes and spec.memory_bytes > 0:
        capacity["memory"] = _memory_quantity(spec.memory_bytes)
    if capacity:
        capacity["pods"] = DEFAULT_PODS_CAPACITY
        status["capacity"] = capacity
        status["allocatable"] = dict(capacity)
    info = spec.node_info
    # Every string of NodeSystemInfo, "" where we know nothing: the API server stores "" for a missing one
    # anyway (no omitempty), and the client checks a create body's nodeInfo for all of them.
    node_info = dict(_EMPTY_NODE_INFO)
    node_info["systemUUID"] = info.system_uuid if info else spec.vm_id
    if info is not None:
        node_info["osImage"] = info.os_image or ""
        node_info["kernelVersion"] = info.kernel_version or ""
        node_info["architecture"] = info.architecture or ""
        node_info["operatingSystem"] = info.operating_system or ""
    status["nodeInfo"] = node_info
    # Ready=False until a kubelet reports: kube-controller-manager's node lifecycle controller then keeps the
    # not-ready:NoSchedule taint (without a Ready condition it removes it for its startup grace period)
    now = rfc3339(datetime.now(timezone.utc))
    status["conditions"] = [{"type": "Ready", "status": "False", "reason": PLACEHOLDER_READY_REASON,
                             "message": PLACEHOLDER_READY_MESSAGE, "lastHeartbeatTime": now,
                             "lastTransitionTime": now}]
    return status


_EMPTY_NODE_INFO: dict[str, str] = dict.fromkeys(
    ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion", "kubeletVersion",
     "kubeProxyVersion", "operatingSystem", "architecture"), "")
