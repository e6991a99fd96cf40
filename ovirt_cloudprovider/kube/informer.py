"""The Node informer: a LIST+WATCH cache of all Nodes, and the reduction of a Node to an ObservedNode.

- :class:`NodeCache` is a LIST+WATCH informer in a daemon thread, like client-go's reflector: a paged
  LIST, then a WATCH from the list's resourceVersion with bookmarks; a watch that ends normally is
  resumed from the last resourceVersion seen; ``410 Gone`` (HTTP or an ``ERROR`` event), a dropped
  connection or any other watch failure lead to a relist after a bounded, jittered backoff. Changes are
  reported as ``ADDED`` / ``MODIFIED`` / ``DELETED``; changes that touch only the resourceVersion
  (kubelet heartbeats) are not.
- :func:`observed_node` reduces a Node (its JSON, or a ``V1Node``) to the
  :class:`~ovirt_cloudprovider.model.ObservedNode` planning needs; only ObservedNodes leave this module.

The cache reads plain JSON (``_preload_content=False``) and never builds client model objects, which
keeps a relist of thousands of nodes cheap.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ..core.records import KUBELET_CONDITION_REASONS, LABEL_HOSTNAME, NodeAddress, ObservedNode, Taint
from ..logs import kv
from ..metrics import Metrics, observe_kube
from .client import read_json, rfc3339
from .errors import NO_ANSWER, describe_error, one_line, retry_after_seconds
from .raw import CoreRequests

log = logging.getLogger(__name__)

__all__ = ["ADDED", "DELETED", "MODIFIED", "NodeCache", "Shared", "observed_node"]

# Event types passed to NodeCache's on_event callback (the watch event types).
ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


class _Backoff:
    """Jittered exponential backoff: initial, doubled per failure, capped at maximum."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._current = initial

    def next(self) -> float:
        delay = self._current
        self._current = min(self._maximum, self._current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._current = self._initial


# --- Node → ObservedNode ----------------------------------------------------------------------------

def _time_str(value: Any) -> str | None:
    if isinstance(value, datetime):
        return rfc3339(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, str) and value:
        return value
    return None


def _epoch(value: Any) -> float | None:
    """An RFC 3339 time (or datetime) as seconds since the epoch; None when missing or unreadable."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _as_dict(node: Any) -> Mapping[str, Any]:
    if isinstance(node, Mapping):
        return node
    to_dict = getattr(node, "to_dict", None)
    if callable(to_dict):
        d = to_dict(serialize=True)  # camelCase keys, like the wire format
        if isinstance(d, Mapping):
            return d
    raise TypeError(f"not a Node: {type(node).__name__}")


class Shared:
    """Equal parts of the cached nodes kept once: label and annotation pairs and taints (most repeat on every node).

    A cache of thousands of nodes would otherwise hold thousands of equal ``("kubernetes.io/os", "linux")``
    tuples and not-ready taints. Sharing changes no value, only how many copies exist; the table is emptied when
    it outgrows ``limit`` entries, so the parts of deleted nodes are not kept forever.
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self.limit = limit
        self._parts: dict[tuple[str | None, ...], Any] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def _one(self, key: tuple[str | None, ...], make: Callable[[], Any]) -> Any:
        parts = self._parts
        got = parts.get(key)
        if got is None:
            if len(parts) >= self.limit:
                parts.clear()
            parts[key] = got = make()
        return got

    def pair(self, key: str, value: str) -> tuple[str, str]:
        pair: tuple[str, str] = self._one((key, value), lambda: (key, value))
        return pair

    def taint(self, key: str, effect: str, value: str | None, time_added: str | None) -> Taint:
        # keyed by every field: a Taint's equality leaves time_added out, its copy must not
        taint: Taint = self._one(("\x00taint", key, effect, value, time_added),
                                 lambda: Taint(key=key, effect=effect, value=value, time_added=time_added))
        return taint


def observed_node(node: Any, shared: Shared | None = None) -> ObservedNode:
    """Reduce a Node (a ``V1Node`` or its JSON dict) to what planning needs.

    With ``shared``, label and annotation pairs and taints equal to those of other nodes are the same objects (see
    :class:`Shared`: the owner annotations, for one, repeat on every node). Equal strings within the
    node (its name, hostname label and Hostname address; its systemUUID and VM-id annotation) are one string, and
    label keys and values and annotation keys are interned."""
    d = _as_dict(node)
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    labels: Mapping[str, Any] = meta.get("labels") or {}
    annotations: Mapping[str, Any] = meta.get("annotations") or {}
    if shared is None:
        shared = Shared()
    strings: dict[str, str] = {}

    def same(value: Any) -> str:
        text = str(value)
        return strings.setdefault(text, text)

    def label(key: Any, value: Any) -> tuple[str, str]:
        k, text = sys.intern(str(key)), str(value)
        if text in strings:  # the node's own name (kubernetes.io/hostname): no other node shares the pair
            return k, strings[text]
        return shared.pair(k, sys.intern(text))

    def annotation(key: Any, value: Any) -> tuple[str, str]:
        k, text = sys.intern(str(key)), str(value)
        if text in strings:  # the node's own VM id (its systemUUID): no other node shares the pair
            return k, strings[text]
        return shared.pair(k, text)  # the owner annotations: equal on every node of one instance

    name = same(meta.get("name") or "")
    node_info = status.get("nodeInfo") or {}
    system_uuid = same(node_info["systemUUID"]) if node_info.get("systemUUID") else None
    taints = tuple(
        shared.taint(sys.intern(str(t.get("key") or "")), sys.intern(str(t.get("effect") or "")),
                     str(t["value"]) if t.get("value") else None, _time_str(t.get("timeAdded")))
        for t in (spec.get("taints") or ()) if isinstance(t, Mapping)
    )
    addresses = tuple(
        NodeAddress(type=sys.intern(str(a.get("type") or "")), address=same(a.get("address") or ""))
        for a in (status.get("addresses") or ()) if isinstance(a, Mapping)
    )
    hostname = next((a.address for a in addresses if a.type == "Hostname" and a.address), None)
    if hostname is None and labels.get(LABEL_HOSTNAME):
        hostname = same(labels[LABEL_HOSTNAME])
    conditions = [c for c in (status.get("conditions") or ()) if isinstance(c, Mapping)]
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ObservedNode(
        name=name,
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        provider_id=str(spec["providerID"]) if spec.get("providerID") else None,
        system_uuid=system_uuid,
        # label keys and most values repeat on every node: one shared string and pair each keeps the cache small
        labels=tuple(sorted(label(k, v) for k, v in labels.items())),
        annotations=tuple(sorted(annotation(k, v) for k, v in annotations.items())),
        taints=taints,
        addresses=addresses,
        hostname=hostname,
        ready_status=sys.intern(str(ready.get("status") or "")) if ready is not None else None,
        ready_reason=sys.intern(str(ready.get("reason") or "")) if ready is not None else None,
        ready_since=_epoch(ready.get("lastTransitionTime")) if ready is not None else None,
        kubelet_version=sys.intern(str(node_info["kubeletVersion"])) if node_info.get("kubeletVersion") else None,
        kubelet_reported=any(c.get("reason") in KUBELET_CONDITION_REASONS for c in conditions),
    )


def _same_view(a: ObservedNode, b: ObservedNode) -> bool:
    """Equal apart from the resourceVersion (kubelet heartbeats change only that for us)."""
    return (a.uid, a.provider_id, a.system_uuid, a.labels, a.annotations, a.taints, a.addresses,
            a.hostname, a.ready_status, a.ready_reason, a.ready_since, a.kubelet_version, a.kubelet_reported) == (
        b.uid, b.provider_id, b.system_uuid, b.labels, b.annotations, b.taints, b.addresses, b.hostname,
        b.ready_status, b.ready_reason, b.ready_since, b.kubelet_version, b.kubelet_reported)


# --- the informer --------------------------------------------------------------------------------------

class _WatchEnd(enum.Enum):
    CLOSED = "closed"  # the server ended the watch normally (timeoutSeconds): resume from the last RV
    GONE = "gone"  # 410: the resourceVersion is too old: relist
    BROKEN = "broken"  # dropped connection, bad data, an ERROR event: relist after a backoff
    STOPPED = "stopped"


class _Gone(Exception):
    pass


class NodeCache:
    """LIST+WATCH informer of all Nodes, in a daemon thread; thread-safe readers.

    Lifecycle: ``start()`` spawns the thread, which lists (paged, ``page_size`` per page) and then
    watches from the list's resourceVersion with ``allowWatchBookmarks`` and a server-side
    ``timeoutSeconds`` (``watch_timeout``; random 120-240 s by default, as client-go spreads its
    watches). A watch the server ends normally is resumed from the last resourceVersion seen (events
    and bookmarks). ``410 Gone`` (an HTTP answer or an ``ERROR`` event) relists at once; a dropped
    connection, unreadable data, another ``ERROR`` event or a failed LIST relists after a jittered
    exponential backoff (``backoff_initial`` doubling up to ``backoff_max``; reset once a watch
    delivered events or stayed open 10 s). A 429 when opening a watch retries the watch after the
    backoff (at least ``Retry-After``, at most 30 s), without a relist. Every request has a timeout; a
    watch's read timeout is its ``timeoutSeconds`` + 30 s, so a silently dead connection is noticed.
    ``stop()`` returns within about a second: it shuts the watch socket down.

    ``synced`` turns true after the first complete LIST and stays true (client-go's ``HasSynced``).
    ``on_event(type, node)`` is called from the informer thread, outside the cache lock, with
    ``ADDED``, ``MODIFIED`` or ``DELETED``; a relist reports the differences to the previous content
    the same way. Changes that touch only the resourceVersion (kubelet heartbeats) update the cache
    silently. The callback must be quick and must not raise (exceptions are logged and ignored).
    """

    def __init__(self, api_client: k8s.ApiClient, *, metrics: Metrics | None = None,
                 on_event: Callable[[str, ObservedNode], None] | None = None,
                 page_size: int = 500, watch_timeout: float | None = None,
                 request_timeout: float = 30.0, backoff_initial: float = 0.2,
                 backoff_max: float = 30.0) -> None:
        self._api = CoreRequests(api_client)
        self._metrics = metrics
        self._on_event = on_event
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._backoff = _Backoff(backoff_initial, backoff_max)
        self._lock = threading.Lock()
        self._nodes: dict[str, ObservedNode] = {}
        self._shared = Shared()  # label pairs and taints kept once (used by the informer thread only)
        self._snapshot: tuple[ObservedNode, ...] | None = ()
        self._rv: str | None = None
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resp_lock = threading.Lock()
        self._resp: Any = None
        self._lists = 0
        self._watches = 0

    # -- lifecycle --

    def start(self) -> None:
        """Start the informer thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="node-informer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the informer: shut the open watch down and wait up to ``timeout`` for the thread."""
        self._stop.set()
        self._abort_response()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> NodeCache:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until the first LIST completed (True) or ``timeout`` passed (False)."""
        return self._synced.wait(timeout)

    # -- readers --

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion seen (list, event or bookmark)."""
        with self._lock:
            return self._rv

    @property
    def lists(self) -> int:
        """How many LISTs were completed and their changes delivered to ``on_event`` (1 after the initial sync)."""
        return self._lists

    @property
    def watches(self) -> int:
        """How many watches were opened."""
        return self._watches

    def nodes(self) -> tuple[ObservedNode, ...]:
        """Every cached node, sorted by name."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = tuple(self._nodes[n] for n in sorted(self._nodes))
            return self._snapshot

    def get(self, name: str) -> ObservedNode | None:
        with self._lock:
            return self._nodes.get(name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    # -- the thread --

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                started = time.monotonic()
                end, events = self._watch()
            except Exception as exc:  # every failure is retried (a bug must not kill the informer silently)
                if self._stop.is_set():
                    break
                delay, need_list = self._after_failure(exc, need_list)
                self._stop.wait(delay)
                continue
            if end is _WatchEnd.STOPPED:
                break
            need_list = self._after_watch(end, events, time.monotonic() - started)

    def _after_failure(self, exc: Exception, need_list: bool) -> tuple[float, bool]:
        """How long to wait after a failed list or watch, and whether to relist then."""
        if isinstance(exc, _Gone):
            log.info("node watch expired (410), relisting", extra=kv(resource_version=self._rv))
            return self._backoff.next(), True
        delay = self._backoff.next()
        if isinstance(exc, ApiException):
            if int(exc.status or 0) == 429:
                delay = max(delay, min(retry_after_seconds(exc) or 0.0, 30.0))
            else:
                need_list = True
            log.warning("node informer request failed, retrying",
                        extra=kv(error=describe_error(exc), retry_in=round(delay, 2), relist=need_list))
        elif isinstance(exc, NO_ANSWER):
            need_list = True
            log.warning("node informer lost the API server, relisting",
                        extra=kv(error=describe_error(exc), retry_in=round(delay, 2)))
        else:
            need_list = True
            log.error("node informer failed, relisting",
                      extra=kv(error=f"{type(exc).__name__}: {one_line(exc)}", retry_in=round(delay, 2)))
        return delay, need_list

    def _after_watch(self, end: _WatchEnd, events: int, lasted: float) -> bool:
        """After a watch that ended (not stopped): wait as needed; True when the next step is a relist."""
        if events > 0 or lasted >= 10.0:
            self._backoff.reset()
        if end is _WatchEnd.CLOSED:
            log.debug("node watch ended, resuming", extra=kv(resource_version=self._rv, events=events))
            if events == 0 and lasted < 1.0:
                self._stop.wait(self._backoff.next())  # a watch that ends at once: do not spin
            return False
        if end is _WatchEnd.GONE:
            log.info("node watch expired (410), relisting", extra=kv(resource_version=self._rv))
            self._stop.wait(self._backoff.next())
            return True
        delay = self._backoff.next()
        log.warning("node watch dropped, relisting", extra=kv(retry_in=round(delay, 2)))
        self._stop.wait(delay)
        return True

    def _list(self) -> None:
        items: dict[str, ObservedNode] = {}
        cont: str | None = None
        limit: int | None = self._page_size
        rv: str | None = None
        pages = 0
        while True:
            if self._stop.is_set():
                return
            try:
                with observe_kube(self._metrics, "list_nodes") as outcome:
                    resp: Any = self._api.list_node(limit=limit or None, cont=cont or None,
                                                    timeout=(10.0, self._request_timeout))
                    outcome.code = str(resp.status)
                    body = read_json(resp)
            except ApiException as exc:
                if exc.status == 410 and cont:
                    # The continue token expired mid-list: start over with one unpaged list,
                    # as client-go's pager does (FullListIfExpired).
                    log.info("node list continue token expired, listing without paging")
                    items, cont, limit, pages = {}, None, None, 0
                    continue
                raise
            pages += 1
            for item in body.get("items") or ():
                n = observed_node(item, self._shared)
                items[n.name] = n
            meta = body.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            cont = meta.get("continue") or None
            if not cont:
                break
        if self._stop.is_set():
            return
        with self._lock:
            old = self._nodes
            self._nodes = items
            self._snapshot = None
            self._rv = rv
        changes: list[tuple[str, ObservedNode]] = []
        for name, node in items.items():
            prev = old.get(name)
            if prev is None:
                changes.append((ADDED, node))
            elif prev.uid != node.uid:
                changes.append((DELETED, prev))
                changes.append((ADDED, node))
            elif not _same_view(prev, node):
                changes.append((MODIFIED, node))
        changes.extend((DELETED, prev) for name, prev in old.items() if name not in items)
        log.info("node list complete" if self._lists == 0 else "node relist complete",
                 extra=kv(nodes=len(items), pages=pages, resource_version=rv, changes=len(changes)))
        self._synced.set()
        for typ, node in changes:
            self._emit(typ, node)
        self._lists += 1  # counted once its changes are delivered: a reader of `lists` sees them all

    def _watch(self) -> tuple[_WatchEnd, int]:
        timeout = self._watch_timeout if self._watch_timeout is not None else random.uniform(120.0, 240.0)
        timeout_seconds = max(1, round(timeout))
        if self._stop.is_set():
            return _WatchEnd.STOPPED, 0
        with self._lock:
            rv = self._rv
        try:
            with observe_kube(self._metrics, "watch_nodes") as outcome:
                resp: Any = self._api.list_node(
                    watch=True, resource_version=rv, allow_watch_bookmarks=True,
                    timeout_seconds=timeout_seconds, timeout=(10.0, timeout_seconds + 30.0))
                outcome.code = str(resp.status)
        except ApiException as exc:
            if exc.status in (410,):
                raise _Gone() from None
            raise
        self._watches += 1
        with self._resp_lock:
            self._resp = resp
        events = 0
        try:
            if self._stop.is_set():
                return _WatchEnd.STOPPED, events
            buf = b""
            for chunk in _iter_body(resp):
                if self._stop.is_set():
                    return _WatchEnd.STOPPED, events
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    end = self._handle(line)
                    if end is not None:
                        return end, events
                    events += 1
            if self._stop.is_set():
                return _WatchEnd.STOPPED, events
            if buf.strip():
                end = self._handle(buf)
                if end is not None:
                    return end, events
            return _WatchEnd.CLOSED, events
        except NO_ANSWER as exc:
            if self._stop.is_set():
                return _WatchEnd.STOPPED, events
            log.debug("node watch connection dropped", extra=kv(error=describe_error(exc)))
            return _WatchEnd.BROKEN, events
        finally:
            with self._resp_lock:
                self._resp = None
            with contextlib.suppress(Exception):
                resp.close()

    def _handle(self, line: bytes) -> _WatchEnd | None:
        """Apply one watch event; a non-None answer ends the watch."""
        try:
            ev = json.loads(line)
        except ValueError:
            log.warning("unreadable node watch event, relisting", extra=kv(data=one_line(line[:120])))
            return _WatchEnd.BROKEN
        if not isinstance(ev, dict):
            return _WatchEnd.BROKEN
        typ = ev.get("type")
        obj = ev.get("object") or {}
        if typ == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                return _WatchEnd.GONE
            log.warning("node watch error event, relisting",
                        extra=kv(code=code, reason=obj.get("reason") if isinstance(obj, dict) else None,
                                 message=one_line(obj.get("message", "") if isinstance(obj, dict) else obj)))
            return _WatchEnd.BROKEN
        meta = obj.get("metadata") or {} if isinstance(obj, dict) else {}
        rv = meta.get("resourceVersion")
        if typ == "BOOKMARK":
            if rv:
                with self._lock:
                    self._rv = rv
            return None
        if typ not in (ADDED, MODIFIED, DELETED):
            log.debug("ignoring node watch event", extra=kv(type=typ))
            return None
        node = observed_node(obj, self._shared)
        emit: str | None = typ
        with self._lock:
            prev = self._nodes.get(node.name)
            if typ == DELETED:
                if self._nodes.pop(node.name, None) is None:
                    emit = None
            else:
                self._nodes[node.name] = node
                if prev is None:
                    emit = ADDED
                elif prev.uid == node.uid and _same_view(prev, node):
                    emit = None
                else:
                    emit = MODIFIED
            self._snapshot = None
            if rv:
                self._rv = rv
        if emit is not None:
            self._emit(emit, node)
        return None

    def _emit(self, typ: str, node: ObservedNode) -> None:
        if self._on_event is None or self._stop.is_set():
            return
        try:
            self._on_event(typ, node)
        except Exception as exc:
            log.warning("node event handler failed",
                        extra=kv(node=node.name, type=typ, error=f"{type(exc).__name__}: {one_line(exc)}"))

    def _abort_response(self) -> None:
        with self._resp_lock:
            resp = self._resp
        if resp is None:
            return
        _shutdown_response(resp)


def _iter_body(resp: Any) -> Iterator[bytes]:
    """The body of a streaming response as it arrives (HTTP chunks, or whatever read1 has)."""
    if getattr(resp, "chunked", False) and resp.supports_chunked_reads():
        yield from resp.stream(None)
        return
    while True:
        data = resp.read1(65536)
        if not data:
            return
        yield data


def _shutdown_response(resp: Any) -> None:
    """Unblock a thread reading ``resp``: shut the socket down (close alone does not wake a reader)."""
    try:
        resp.shutdown()
        return
    except Exception:
        pass
    try:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
