"""The Kubernetes side of the shell: API client, Node informer cache, and the Node writer.

This module and ``leader.py`` are the only ones that import ``kubernetes``. What crosses the boundary
is our own records (:class:`~ovirt_cloudprovider.model.ObservedNode` out,
:class:`~ovirt_cloudprovider.model.Action` in); client models never leave this module.

- :func:`load_api_client` builds an ``ApiClient`` from its own ``Configuration`` (the client's global
  default is never touched, so several clients can live in one process).
- :class:`NodeCache` is a LIST+WATCH informer in a daemon thread, like client-go's reflector: a paged
  LIST, then a WATCH from the list's resourceVersion with bookmarks; a watch that ends normally is
  resumed from the last resourceVersion seen; ``410 Gone`` (HTTP or an ``ERROR`` event), a dropped
  connection or any other watch failure lead to a relist after a bounded, jittered backoff.
- :class:`NodeWriter` applies Actions with the smallest writes (create, strategic-merge patches of the
  node and of ``nodes/status``, delete with uid + resourceVersion preconditions) and records core/v1
  Events on the Node the way client-go's event recorder does (namespace ``default``, repeated events
  aggregated by ``count``).

Requests and responses are plain JSON (``_preload_content=False``): the cache never builds client
model objects, which keeps a relist of thousands of nodes cheap.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import http.client
import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from kubernetes.config.kube_config import load_kube_config

from .core.records import (
    ANNOTATION_VM_ID,
    LABEL_HOSTNAME,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    Action,
    ActionKind,
    NodeAddress,
    NodeSpec,
    ObservedNode,
    Taint,
)
from .logs import kv
from .metrics import Metrics, observe_kube

log = logging.getLogger(__name__)

__all__ = [
    "ApplyResult",
    "KubeConfigError",
    "NodeCache",
    "NodeWriter",
    "load_api_client",
    "observed_node",
]

# Event types passed to NodeCache's on_event callback (the watch event types).
ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

# Per-action results (also the ``result`` label of ``actions_total``).
SUCCESS = "success"
CONFLICT = "conflict"
ERROR = "error"

EVENT_NAMESPACE = "default"  # where Events about cluster-scoped objects (Nodes) go, as client-go does
DEFAULT_PODS_CAPACITY = "110"  # the kubelet's default --max-pods

_SMP = "application/strategic-merge-patch+json"
_MERGE = "application/merge-patch+json"
_JSON = "application/json"

# Transport-level failures: no (complete) HTTP answer.
_NO_ANSWER = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
# Everything a request can raise for a reason outside our code: an API error or no answer.
REQUEST_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)

T = TypeVar("T")


# --- small shared helpers (leader.py uses them too) ---------------------------------------------------

def one_line(text: object, limit: int = 200) -> str:
    """Collapse whitespace and truncate: log and error text is always one line."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


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


def read_json(resp: Any) -> dict[str, Any]:
    """Read a raw (``_preload_content=False``) response body as a JSON object and release it."""
    try:
        data = resp.data
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()
    if not data:
        return {}
    doc = json.loads(data)
    return doc if isinstance(doc, dict) else {}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --- client configuration -----------------------------------------------------------------------------

class KubeConfigError(Exception):
    """No usable Kubernetes client configuration. ``str()`` is one line naming the file."""


def load_api_client(kubeconfig: str | None = None, *,
                    environ: Mapping[str, str] | None = None) -> k8s.ApiClient:
    """Build an ``ApiClient`` from, in order: ``kubeconfig`` (a path), the in-cluster service account
    (when ``KUBERNETES_SERVICE_HOST`` is set), ``$KUBECONFIG``, ``~/.kube/config``.

    Every client gets its own ``Configuration``; the client library's global default is never changed.
    The in-cluster token is re-read when it rotates (the client's refresh hook). Raises
    :class:`KubeConfigError` with one line naming the file when nothing usable is found.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    cfg = k8s.Configuration()
    if kubeconfig:
        _load_kubeconfig(kubeconfig, cfg)
    elif env.get("KUBERNETES_SERVICE_HOST"):
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=SERVICE_TOKEN_FILENAME, cert_filename=SERVICE_CERT_FILENAME,
            try_refresh_token=True, environ=env)
        try:
            loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
        except Exception as exc:  # ConfigException, OSError: report, never a traceback
            raise KubeConfigError(
                f"in-cluster configuration ({SERVICE_TOKEN_FILENAME}): {one_line(exc)}") from None
    elif env.get("KUBECONFIG"):
        _load_kubeconfig(env["KUBECONFIG"], cfg)
    else:
        home = env.get("HOME") or os.path.expanduser("~")
        default = os.path.join(home, ".kube", "config")
        if not os.path.exists(default):
            raise KubeConfigError(
                f"no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST unset), "
                f"$KUBECONFIG unset and {default} does not exist; use --kubeconfig PATH")
        _load_kubeconfig(default, cfg)
    if hasattr(cfg, "keep_alive"):
        cfg.keep_alive = True  # TCP keepalive: long watches through idle proxies are not cut silently
    return k8s.ApiClient(configuration=cfg)


def _load_kubeconfig(path: str, cfg: k8s.Configuration) -> None:
    paths = [p for p in path.split(os.pathsep) if p]
    existing = [p for p in paths if os.path.exists(os.path.expanduser(p))]
    if not existing:
        raise KubeConfigError(f"{path}: kubeconfig file not found")
    try:
        # persist_config=False: never write back to the user's kubeconfig.
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=cfg, persist_config=False)
    except Exception as exc:  # ConfigException, YAMLError, OSError, KeyError...: one line, no traceback
        raise KubeConfigError(f"{path}: invalid kubeconfig: {one_line(exc)}") from None


# --- Node → ObservedNode ----------------------------------------------------------------------------

def _time_str(value: Any) -> str | None:
    if isinstance(value, datetime):
        return _rfc3339(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, str) and value:
        return value
    return None


def _as_dict(node: Any) -> Mapping[str, Any]:
    if isinstance(node, Mapping):
        return node
    to_dict = getattr(node, "to_dict", None)
    if callable(to_dict):
        d = to_dict(serialize=True)  # camelCase keys, like the wire format
        if isinstance(d, Mapping):
            return d
    raise TypeError(f"not a Node: {type(node).__name__}")


def observed_node(node: Any) -> ObservedNode:
    """Reduce a Node (a ``V1Node`` or its JSON dict) to what planning needs."""
    d = _as_dict(node)
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    labels: Mapping[str, Any] = meta.get("labels") or {}
    annotations: Mapping[str, Any] = meta.get("annotations") or {}
    taints = tuple(
        Taint(key=str(t.get("key") or ""), effect=str(t.get("effect") or ""),
              value=str(t["value"]) if t.get("value") else None,
              time_added=_time_str(t.get("timeAdded")))
        for t in (spec.get("taints") or ()) if isinstance(t, Mapping)
    )
    addresses = tuple(
        NodeAddress(type=str(a.get("type") or ""), address=str(a.get("address") or ""))
        for a in (status.get("addresses") or ()) if isinstance(a, Mapping)
    )
    hostname = next((a.address for a in addresses if a.type == "Hostname" and a.address), None)
    if hostname is None and labels.get(LABEL_HOSTNAME):
        hostname = str(labels[LABEL_HOSTNAME])
    node_info = status.get("nodeInfo") or {}
    return ObservedNode(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        provider_id=str(spec["providerID"]) if spec.get("providerID") else None,
        system_uuid=str(node_info["systemUUID"]) if node_info.get("systemUUID") else None,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        taints=taints,
        addresses=addresses,
        hostname=hostname,
    )


def _same_view(a: ObservedNode, b: ObservedNode) -> bool:
    """Equal apart from the resourceVersion (kubelet heartbeats change only that for us)."""
    return (a.uid, a.provider_id, a.system_uuid, a.labels, a.annotations, a.taints, a.addresses,
            a.hostname) == (b.uid, b.provider_id, b.system_uuid, b.labels, b.annotations, b.taints,
                            b.addresses, b.hostname)


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
        self._api = k8s.CoreV1Api(api_client)
        self._metrics = metrics
        self._on_event = on_event
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._backoff = _Backoff(backoff_initial, backoff_max)
        self._lock = threading.Lock()
        self._nodes: dict[str, ObservedNode] = {}
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
        """How many complete LISTs were made (1 after the initial sync; more after relists)."""
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
            except _Gone:
                log.info("node watch expired (410), relisting", extra=kv(resource_version=self._rv))
                need_list = True
                self._stop.wait(self._backoff.next())
                continue
            except ApiException as exc:
                if self._stop.is_set():
                    break
                status = int(exc.status or 0)
                delay = self._backoff.next()
                if status == 429:
                    delay = max(delay, min(retry_after_seconds(exc) or 0.0, 30.0))
                else:
                    need_list = True
                log.warning("node informer request failed, retrying",
                            extra=kv(error=describe_error(exc), retry_in=round(delay, 2), relist=need_list))
                self._stop.wait(delay)
                continue
            except _NO_ANSWER as exc:
                if self._stop.is_set():
                    break
                delay = self._backoff.next()
                need_list = True
                log.warning("node informer lost the API server, relisting",
                            extra=kv(error=describe_error(exc), retry_in=round(delay, 2)))
                self._stop.wait(delay)
                continue
            except Exception as exc:  # a bug must not kill the informer silently
                if self._stop.is_set():
                    break
                delay = self._backoff.next()
                need_list = True
                log.error("node informer failed, relisting",
                          extra=kv(error=f"{type(exc).__name__}: {one_line(exc)}", retry_in=round(delay, 2)))
                self._stop.wait(delay)
                continue
            if end is _WatchEnd.STOPPED:
                break
            lasted = time.monotonic() - started
            if events > 0 or lasted >= 10.0:
                self._backoff.reset()
            if end is _WatchEnd.CLOSED:
                log.debug("node watch ended, resuming", extra=kv(resource_version=self._rv, events=events))
                if events == 0 and lasted < 1.0:
                    self._stop.wait(self._backoff.next())  # a watch that ends at once: do not spin
                continue
            if end is _WatchEnd.GONE:
                log.info("node watch expired (410), relisting", extra=kv(resource_version=self._rv))
                need_list = True
                self._stop.wait(self._backoff.next())
                continue
            delay = self._backoff.next()
            log.warning("node watch dropped, relisting", extra=kv(retry_in=round(delay, 2)))
            need_list = True
            self._stop.wait(delay)

    def _list(self) -> None:
        items: dict[str, ObservedNode] = {}
        cont: str | None = None
        limit: int | None = self._page_size
        rv: str | None = None
        pages = 0
        while True:
            if self._stop.is_set():
                return
            kwargs: dict[str, Any] = {"_preload_content": False,
                                      "_request_timeout": (10.0, self._request_timeout)}
            if limit:
                kwargs["limit"] = limit
            if cont:
                kwargs["_continue"] = cont
            try:
                with observe_kube(self._metrics, "list_nodes") as outcome:
                    resp: Any = self._api.list_node(**kwargs)
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
                n = observed_node(item)
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
        self._lists += 1
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
        log.info("node list complete" if self._lists == 1 else "node relist complete",
                 extra=kv(nodes=len(items), pages=pages, resource_version=rv, changes=len(changes)))
        self._synced.set()
        for typ, node in changes:
            self._emit(typ, node)

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
                    timeout_seconds=timeout_seconds, _preload_content=False,
                    _request_timeout=(10.0, timeout_seconds + 30.0))
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
        except _NO_ANSWER as exc:
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
        node = observed_node(obj)
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


# --- the writer -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`NodeWriter.apply` did.

    ``applied``: actions that succeeded (writes made, or notices recorded for block-delete, ambiguous
    and skip); ``conflicts``: actions refused because the node changed under us (409: re-planned next
    sweep); ``failed``: actions that failed otherwise (after retries). ``tallies`` are
    ``(kind, result, count)`` sorted; ``errors`` one line per failed or conflicting action.
    ``interrupted`` counts actions not attempted because the writer was stopped.
    """

    applied: int = 0
    failed: int = 0
    conflicts: int = 0
    interrupted: int = 0
    tallies: tuple[tuple[str, str, int], ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.conflicts == 0 and self.interrupted == 0

    def count(self, kind: ActionKind | str, result: str | None = None) -> int:
        k = kind.value if isinstance(kind, ActionKind) else kind
        return sum(n for kk, r, n in self.tallies if kk == k and (result is None or r == result))


class _Failed(Exception):
    """An action's request failed for good: ``result`` is CONFLICT or ERROR; str() is one line."""

    def __init__(self, result: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.result = result
        self.status = status


_EVENT_KINDS = frozenset({ActionKind.REGISTER, ActionKind.INITIALIZE, ActionKind.TAINT, ActionKind.UNTAINT,
                          ActionKind.DELETE, ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS})
_WARNING_KINDS = frozenset({ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS})
_PATCH_KINDS = frozenset({ActionKind.INITIALIZE, ActionKind.UPDATE, ActionKind.TAINT, ActionKind.UNTAINT,
                          ActionKind.MARK_ABSENT, ActionKind.CLEAR_ABSENT})


class NodeWriter:
    """Applies planned Actions to Nodes, one independent request sequence per action.

    Writes (the smallest that does the job):
    - REGISTER: ``POST nodes`` (name, labels incl. ``app.kubernetes.io/managed-by``, the
      ``ovirt.org/vm-id`` annotation, ``spec.providerID``), then a ``nodes/status`` patch with addresses,
      capacity/allocatable and nodeInfo (a real API server ignores status on create). 409 AlreadyExists
      is a conflict.
    - INITIALIZE / UPDATE / TAINT / UNTAINT / MARK_ABSENT / CLEAR_ABSENT: one strategic-merge patch of
      ``metadata.labels`` / ``metadata.annotations`` (None removes a key), ``spec.taints`` (the complete
      list: the field is atomic) and ``spec.providerID``; when the taints or the providerID change, the
      patch carries ``metadata.resourceVersion`` as a precondition, so a concurrent change (a kubelet's
      or the node lifecycle controller's taint) is never overwritten: 409 is a conflict. Then, when
      ``action.addresses`` is set, a ``nodes/status`` patch that replaces ``status.addresses`` with
      exactly that list.
    - DELETE: ``DELETE`` with uid and resourceVersion preconditions; 404 is success (already gone),
      409 a conflict (the node changed since planning: not deleted).
    - BLOCK_DELETE / AMBIGUOUS: no node write; a log line and an Event (``deletions_blocked_total`` and
      ``ambiguous_matches_total`` are the controller's: it counts the plan). SKIP: a log line (info the
      first time for a VM and reason, debug afterwards) and nothing else.

    Status patches are JSON merge patches (RFC 7386: a list is replaced as a whole). A strategic merge
    patch would merge ``status.addresses`` by its merge key ``type`` and fold dual-stack InternalIPs
    together; k8s.io/component-helpers ``PatchNodeStatus`` (kubelet, cloud node controller) works around
    that with a ``{"$patch": "replace"}`` list item, but only when the node already has addresses,
    because API servers before kubernetes/kubernetes#117568 (2023) store the directive as an empty
    address when the field is missing. A merge patch gives exactly the desired list on every version.

    429 and 5xx answers and transport failures are retried ``attempts - 1`` times with jittered
    backoff, honouring ``Retry-After`` up to ``max_retry_delay`` seconds; then the action fails. Each
    failed or conflicting action is logged once, one line. ``stop`` (an Event), when set, interrupts
    retries and leaves the remaining actions unattempted.

    Events (core/v1, namespace ``default``, like client-go's recorder): for register, initialize,
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
                 stop: threading.Event | None = None) -> None:
        self._api = k8s.CoreV1Api(api_client)
        self._metrics = metrics
        self._component = component
        self._host = host_identity or socket.gethostname()
        self._attempts = max(1, attempts)
        self._max_retry_delay = max_retry_delay
        self._backoff_initial = backoff_initial
        self._timeout = (10.0, request_timeout)
        self._event_repeat_interval = event_repeat_interval
        self._stop = stop or threading.Event()
        # event correlation: key -> (event name, count, monotonic time of the last write)
        self._events: collections.OrderedDict[tuple[str, ...], tuple[str, int, float]] = \
            collections.OrderedDict()
        self._skips_seen: set[tuple[str, str]] = set()

    # -- public --

    def apply(self, actions: Sequence[Action]) -> ApplyResult:
        """Apply every action in order; a failure of one does not stop the others."""
        tally: collections.Counter[tuple[str, str]] = collections.Counter()
        errors: list[str] = []
        interrupted = 0
        for action in actions:
            if self._stop.is_set():
                interrupted += 1
                continue
            try:
                result, error = self._apply_one(action)
            except Exception as exc:  # a bug in one action must not stop the others
                result = ERROR
                error = f"{action.node}: {action.kind.value}: {type(exc).__name__}: {one_line(exc)}"
                log.error("action failed unexpectedly",
                          extra=kv(node=action.node, action=action.kind.value, error=error))
            tally[(action.kind.value, result)] += 1
            if self._metrics is not None:
                self._metrics.actions_total.labels(action.kind.value, result).inc()
            if error:
                errors.append(error)
        return ApplyResult(
            applied=sum(n for (_, r), n in tally.items() if r == SUCCESS),
            failed=sum(n for (_, r), n in tally.items() if r == ERROR),
            conflicts=sum(n for (_, r), n in tally.items() if r == CONFLICT),
            interrupted=interrupted,
            tallies=tuple(sorted((k, r, n) for (k, r), n in tally.items())),
            errors=tuple(errors),
        )

    # -- one action --

    def _apply_one(self, action: Action) -> tuple[str, str | None]:
        kind = action.kind
        try:
            if kind is ActionKind.REGISTER:
                uid = self._register(action)
            elif kind in _PATCH_KINDS:
                uid = self._patch(action)
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
                return SUCCESS, None
            else:  # pragma: no cover - exhaustive
                raise ValueError(f"unknown action kind {kind!r}")
        except _Failed as failure:
            error = f"{action.node}: {kind.value}: {failure}"
            log.warning("node action conflict" if failure.result == CONFLICT else "node action failed",
                        extra=kv(node=action.node, action=kind.value, status=failure.status or None,
                                 error=str(failure)))
            return failure.result, error
        if kind in _PATCH_KINDS or kind in (ActionKind.REGISTER, ActionKind.DELETE):
            log.info("node action applied",
                     extra=kv(node=action.node, action=kind.value, reason=action.reason))
        if kind in _EVENT_KINDS and uid is not _NOT_OURS:
            self._record_event(action, uid)
        return SUCCESS, None

    def _register(self, action: Action) -> str | None:
        spec = action.spec
        if spec is None:
            raise _Failed(ERROR, "register action without a node spec")
        labels: dict[str, str] = dict(spec.labels)
        labels.update({k: v for k, v in (action.labels or ()) if v is not None})
        labels[LABEL_MANAGED_BY] = MANAGED_BY_VALUE
        annotations: dict[str, str] = {ANNOTATION_VM_ID: spec.vm_id}
        annotations.update({k: v for k, v in (action.annotations or ()) if v is not None})
        node_spec: dict[str, Any] = {"providerID": action.provider_id or spec.provider_id}
        if action.taints:
            node_spec["taints"] = [_taint_body(t) for t in action.taints]
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": action.node, "labels": labels, "annotations": annotations},
                "spec": node_spec}
        created = self._request(
            "create_node", action,
            lambda: self._api.create_node(cast(Any, body), _preload_content=False, _content_type=_JSON,
                                          _request_timeout=self._timeout),
            conflict=(409,))
        uid = (created.get("metadata") or {}).get("uid")
        addresses = action.addresses if action.addresses is not None else spec.addresses
        status = _registration_status(spec, addresses)
        self._request(
            "patch_node_status", action,
            lambda: self._api.patch_node_status(action.node, {"status": status}, _preload_content=False,
                                                _content_type=_MERGE, _request_timeout=self._timeout))
        return str(uid) if uid else None

    def _patch(self, action: Action) -> str | None:
        metadata: dict[str, Any] = {}
        spec: dict[str, Any] = {}
        if action.labels:
            metadata["labels"] = dict(action.labels)
        if action.annotations:
            metadata["annotations"] = dict(action.annotations)
        if action.taints is not None:
            spec["taints"] = [_taint_body(t) for t in action.taints]
        if action.provider_id:
            spec["providerID"] = action.provider_id
        if spec and action.resource_version:
            # Optimistic concurrency: the taint list is replaced as a whole, and providerID may only
            # be set once; a node that changed since planning answers 409 and is re-planned.
            metadata["resourceVersion"] = action.resource_version
        patch: dict[str, Any] = {}
        if metadata:
            patch["metadata"] = metadata
        if spec:
            patch["spec"] = spec
        if patch:
            self._request(
                "patch_node", action,
                lambda: self._api.patch_node(action.node, patch, _preload_content=False, _content_type=_SMP,
                                             _request_timeout=self._timeout))
        if action.addresses is not None:
            status = {"status": {"addresses": [_address_body(a) for a in action.addresses]}}
            self._request(
                "patch_node_status", action,
                lambda: self._api.patch_node_status(action.node, status, _preload_content=False,
                                                    _content_type=_MERGE, _request_timeout=self._timeout))
        return action.uid

    def _delete(self, action: Action) -> str | None:
        if not action.uid or not action.resource_version:
            raise _Failed(ERROR, "refusing to delete without uid and resourceVersion preconditions")
        options = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(uid=action.uid, resource_version=action.resource_version))
        try:
            self._request(
                "delete_node", action,
                lambda: self._api.delete_node(action.node, body=options, _preload_content=False,
                                              _request_timeout=self._timeout),
                conflict=(409,), gone_ok=True)
        except _AlreadyGone:
            log.info("node already gone", extra=kv(node=action.node))
            return _NOT_OURS  # someone else deleted it: no "deleted" Event from us
        return action.uid

    # -- requests --

    def _request(self, operation: str, action: Action, call: Callable[[], Any], *,
                 conflict: tuple[int, ...] = (409,), gone_ok: bool = False) -> dict[str, Any]:
        """Run one request with retries on 429/5xx/no answer; the JSON answer, or raise _Failed."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with observe_kube(self._metrics, operation) as outcome:
                    resp = call()
                    outcome.code = str(resp.status)
                    return read_json(resp)
            except ApiException as exc:
                status, _, _ = api_status(exc)
                if status == 404 and gone_ok:
                    raise _AlreadyGone() from None
                if status in conflict:
                    raise _Failed(CONFLICT, describe_error(exc), status) from None
                retryable = status == 429 or status >= 500 or status == 0
                if not retryable or attempt >= self._attempts:
                    raise _Failed(ERROR, describe_error(exc), status) from None
                delay = self._retry_delay(attempt, retry_after_seconds(exc))
                log.debug("retrying API request", extra=kv(node=action.node, operation=operation,
                                                           status=status, attempt=attempt,
                                                           retry_in=round(delay, 2)))
            except _NO_ANSWER as exc:
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

    # -- events --

    def _record_event(self, action: Action, uid: str | None) -> None:
        etype = "Warning" if action.warning or action.kind in _WARNING_KINDS else "Normal"
        message = action.message if len(action.message) <= 1024 else action.message[:1021] + "..."
        key = (action.node, uid or "", etype, action.reason, message)
        now = time.monotonic()
        ts = _rfc3339(utc_now())
        prev = self._events.get(key)
        try:
            if prev is not None:
                name, count, last = prev
                if now - last < self._event_repeat_interval:
                    log.debug("event repeated within the interval, not sent",
                              extra=kv(node=action.node, reason=action.reason))
                    return
                patch = {"count": count + 1, "lastTimestamp": ts}
                try:
                    with observe_kube(self._metrics, "patch_event") as outcome:
                        resp: Any = self._api.patch_namespaced_event(
                            name, EVENT_NAMESPACE, patch, _preload_content=False, _content_type=_SMP,
                            _request_timeout=self._timeout)
                        outcome.code = str(resp.status)
                        read_json(resp)
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
            with observe_kube(self._metrics, "create_event") as outcome:
                created_resp: Any = self._api.create_namespaced_event(
                    EVENT_NAMESPACE, cast(Any, body), _preload_content=False, _content_type=_JSON,
                    _request_timeout=self._timeout)
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
        self._events[key] = value
        self._events.move_to_end(key)
        while len(self._events) > 4096:
            self._events.popitem(last=False)


class _AlreadyGone(Exception):
    pass


_NOT_OURS = "\x00not-ours"  # _delete's answer when the node was already gone


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
    if spec.cpus:
        capacity["cpu"] = str(spec.cpus)
    if spec.memory_bytes:
        capacity["memory"] = _memory_quantity(spec.memory_bytes)
    if capacity:
        capacity["pods"] = DEFAULT_PODS_CAPACITY
        status["capacity"] = capacity
        status["allocatable"] = dict(capacity)
    info = spec.node_info
    node_info: dict[str, str] = {"systemUUID": info.system_uuid if info else spec.vm_id}
    if info is not None:
        if info.os_image:
            node_info["osImage"] = info.os_image
        if info.kernel_version:
            node_info["kernelVersion"] = info.kernel_version
        if info.architecture:
            node_info["architecture"] = info.architecture
        if info.operating_system:
            node_info["operatingSystem"] = info.operating_system
    status["nodeInfo"] = node_info
    return status
