"""core/v1 Events on Nodes, recorded the way client-go's event recorder does.

Events about Nodes (cluster-scoped) go to namespace ``default``, with ``involvedObject`` naming the Node
(and its uid when known), ``source`` / ``reportingComponent`` our component and host. Block-delete and
ambiguous-match notices (or an action marked ``warning``) are ``Warning`` Events, the rest ``Normal``.
Identical repeated events are aggregated like client-go's correlator: ``count`` and ``lastTimestamp``
are patched on the existing Event (a new one is created when it has expired), and an identical event is
not re-sent within the repeat interval. An Event is a side note: its failure is logged at debug and
never fails the action it belongs to.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..core.records import Action, ActionKind
from ..logs import kv
from ..metrics import Metrics, observe_kube
from .client import CONTENT_JSON, CONTENT_SMP, discard, read_json, rfc3339, utc_now
from .errors import REQUEST_ERRORS, describe_error, one_line
from .raw import CoreRequests

log = logging.getLogger(__name__)

__all__ = ["EVENT_NAMESPACE", "EventRecorder"]

EVENT_NAMESPACE = "default"  # where Events about cluster-scoped objects (Nodes) go, as client-go does

_WARNING_KINDS = frozenset({ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS})


class EventRecorder:
    """Records one Event per applied action on its Node, aggregating identical repeats.

    Identical events (same node, uid, type, reason and message) are correlated in memory (the last 4096):
    a repeat patches ``count`` + 1 and ``lastTimestamp`` on the Event already written, unless the last
    write was less than ``repeat_interval`` seconds ago (then nothing is sent). Messages are truncated to
    1024 characters. ``request_timeout`` is the client's ``(connect, read)`` timeout of every request.
    ``throttle`` is called right before every request (the writer's rate limiter and fence); when it answers
    False (the writer is stopping, or this replica no longer leads) the Event is not sent. Thread-safe: the
    writer's workers record concurrently.
    """

    def __init__(self, api: CoreRequests, *, metrics: Metrics | None, component: str, host: str,
                 request_timeout: tuple[float, float], repeat_interval: float,
                 throttle: Callable[[], bool] | None = None) -> None:
        self._api = api
        self._metrics = metrics
        self._component = component
        self._host = host
        self._timeout = request_timeout
        self._event_repeat_interval = repeat_interval
        self._throttle = throttle or (lambda: True)
        self._lock = threading.Lock()
        # event correlation: key -> (event name, count, monotonic time of the last write)
        self._events: collections.OrderedDict[tuple[str, ...], tuple[str, int, float]] = \
            collections.OrderedDict()

    def record(self, action: Action, uid: str | None) -> None:
        """Record the Event for an applied action on Node ``action.node`` (``uid``: the Node's, if
        known). Never raises: a failure is logged at debug."""
        etype = "Warning" if action.warning or action.kind in _WARNING_KINDS else "Normal"
        message = action.message if len(action.message) <= 1024 else action.message[:1021] + "..."
        key = (action.node, uid or "", etype, action.reason, message)
        now = time.monotonic()
        ts = rfc3339(utc_now())
        with self._lock:
            prev = self._events.get(key)
        try:
            if prev is not None:
                name, count, last = prev
                if now - last < self._event_repeat_interval:
                    log.debug("event repeated within the interval, not sent",
                              extra=kv(node=action.node, reason=action.reason))
                    return
                patch = {"count": count + 1, "lastTimestamp": ts}
                if not self._throttle():
                    return
                try:
                    with observe_kube(self._metrics, "patch_event") as outcome:
                        resp: Any = self._api.patch_namespaced_event(
                            name, EVENT_NAMESPACE, patch, content_type=CONTENT_SMP, timeout=self._timeout)
                        outcome.code = str(resp.status)
                        discard(resp)
                    self._remember_event(key, (name, count + 1, now))
                    return
                except ApiException as exc:
                    if exc.status != 404:  # 404: the Event expired (TTL): create a new one
                        raise
            involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "name": action.node}
            if uid:
                involved["uid"] = uid
            body = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{action.node}.", "namespace": EVENT_NAMESPACE},
                "involvedObject": involved,
                "reason": action.reason, "message": message, "type": etype,
                "source": {"component": self._component, "host": self._host},
                "reportingComponent": self._component, "reportingInstance": self._host,
                "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            }
            if not self._throttle():
                return
            with observe_kube(self._metrics, "create_event") as outcome:
                created_resp: Any = self._api.create_namespaced_event(
                    EVENT_NAMESPACE, body, content_type=CONTENT_JSON, timeout=self._timeout)
                outcome.code = str(created_resp.status)
                created = read_json(created_resp)
            name = str((created.get("metadata") or {}).get("name") or "")
            if name:
                self._remember_event(key, (name, 1, now))
        except REQUEST_ERRORS as exc:
            log.debug("event not recorded", extra=kv(node=action.node, reason=action.reason,
                                                     error=describe_error(exc)))
        except Exception as exc:  # events never fail an action
            log.debug("event not recorded", extra=kv(node=action.node, reason=action.reason,
                                                     error=f"{type(exc).__name__}: {one_line(exc)}"))

    def _remember_event(self, key: tuple[str, ...], value: tuple[str, int, float]) -> None:
        with self._lock:
            self._events[key] = value
            self._events.move_to_end(key)
            while len(self._events) > 4096:
                self._events.popitem(last=False)
