"""The HTTP side: routing, authentication, authorization, discovery, and the verbs over HTTP(S)."""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import select
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from .backend import Backend
from .constants import ADMIN_USER, SERVER_VERSION, Obj, log
from .errors import (
    CONFLICT_MODIFIED,
    ApiError,
    FieldError,
    _details,
    _qualified,
    err_bad_request,
    err_conflict,
    err_internal,
    err_invalid,
    err_method_not_allowed,
    err_resource_not_found,
    status_failure,
)
from .faults import RequestRecord, _partial, _Request, _strip_type, _Watch
from .formats import new_uuid
from .rbac import Denial
from .resources import _BY_GROUP, RESOURCES, STORAGE_HASHES, ResourceType, Selector
from .roundtrip import typed
from .selectors import parse_field_selector
from .store import StoredEvent


def _warning_header(text: str) -> str:
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _api_resource(rt: ResourceType) -> list[Obj]:
    out: list[Obj] = [{"name": rt.name, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                       "verbs": sorted(rt.verbs)}]
    if rt.short_names:
        out[0]["shortNames"] = list(rt.short_names)
    if rt.categories:
        out[0]["categories"] = list(rt.categories)
    out[0]["storageVersionHash"] = STORAGE_HASHES[rt.name]
    for sub in rt.subresources:
        out.append({"name": f"{rt.name}/{sub}", "singularName": "", "namespaced": rt.namespaced, "kind": rt.kind,
                    "verbs": ["get", "patch", "update"]})
    return out


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver"
    sys_version = ""
    sim: Backend  # the KubeApiSimulator, bound by its _handler_class

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubeapi simulator: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # plumbing ------------------------------------------------------------------------------------
    def _send(self, code: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None,
              warnings: Sequence[str] = ()) -> None:
        self._record(code)  # before the first byte: a client that has its answer finds its request counted
        self.send_response(code)
        self.send_header("Audit-Id", self._audit)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", content_type)
        for w in warnings:
            self.send_header("Warning", _warning_header(w))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if self.request_version == "HTTP/0.9":  # no headers to send
            self.wfile.write(data)
            return
        # what end_headers() does, with the body in the same buffer: one send (and one wait for the GIL) per
        # answer; the buffer is http.server's (CPython's since 3.3, not in its type stubs)
        buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
        buffer.append(b"\r\n")
        buffer.append(data)
        self.flush_headers()

    def _send_json(self, code: int, obj: Any, content_type: str = "application/json",
                   headers: Mapping[str, str] | None = None, warnings: Sequence[str] = ()) -> None:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        self._send(code, data, content_type, headers, warnings)

    def _not_found_page(self) -> int:
        self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
        return 404

    def _negotiate(self) -> str:
        for part in self.headers.get("Accept", "").split(","):
            fields = [x.strip() for x in part.split(";")]
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            as_ = params.get("as")
            if as_ == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return "table"
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io":
                return "partial"
            if as_ is None and fields[0].lower() in ("application/json", "*/*", "application/*", ""):
                return "json"
        return "json"

    def _handle(self, method: str) -> None:
        self._received = time.monotonic()
        self._audit = new_uuid()
        url = urllib.parse.urlsplit(self.path)
        self._method, self._url_path = method, url.path
        self._req: _Request | None = None
        self._user = ""
        self._recorded = False
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        code = 500
        try:
            # like kube-apiserver's filter chain: the request info is resolved first (so that a 401 is counted
            # against its resource), authentication answers before a bad path does
            bad_path: ApiError | None = None
            try:
                self._req = self._parse(method, url.path, query)
            except ApiError as e:
                bad_path = e
            self._user = self._authenticate()
            if bad_path is not None:
                raise bad_path
            req = self._req
            if req is None:
                code = self._serve_nonresource(method, url.path)
                return
            req.user = self._user
            self._inject(req, "latency")
            self._inject(req, "throttle")
            self._authorize(req)
            self._inject(req, "error")
            code = self._dispatch(req, method, raw)
        except ApiError as e:
            code = e.code
            self._send_json(e.code, e.status, headers=e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a simulator bug: answer like kube-apiserver would, keep serving
            log.exception("kubeapi simulator: %s %s failed", method, self.path)
            code = 500
            with contextlib.suppress(OSError):
                self._send_json(500, err_internal(str(e)).status)
        finally:
            self._record(code)  # nothing was sent (the client went away first): count it all the same

    def _record(self, code: int) -> None:
        """Count this request once, with the status ``code`` about to be sent: called right before the
        first byte of the answer (a watch's headers included), so the counters never lag the client."""
        if self._recorded:
            return
        self._recorded = True
        req = self._req
        rec = RequestRecord(self._method, self._url_path, req.verb if req else self._method.lower(),
                            req.resource if req else None, req.namespace if req else "", req.name if req else "",
                            code, self._user, self._received)
        with self.sim._lock:
            self.sim._records.append(rec)

    def _authenticate(self) -> str:
        sim = self.sim
        default_user = sim.rbac.user if sim.rbac else ADMIN_USER
        tokens: dict[str, str] = {}
        if sim.token:
            tokens[sim.token] = default_user
        if sim.admin_token:
            tokens[sim.admin_token] = ADMIN_USER
        tokens.update(sim.users)
        if not tokens:
            return default_user
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
            for tok, user in tokens.items():
                if hmac_compare(presented, tok):
                    return user
        raise ApiError(status_failure(401, "Unauthorized", "Unauthorized"))

    # complexity: the apiserver's request path grammar, one branch per path shape
    def _parse(self, method: str, path: str, query: dict[str, str]) -> _Request | None:  # noqa: C901
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis" and parts[2] in _group_versions().get(parts[1], []):
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
            if not rest:
                raise err_resource_not_found()
        ns = name = sub = ""
        if rest[0] == "namespaces" and len(rest) >= 2:
            if len(rest) == 2 or (len(rest) == 3 and rest[2] in ("status", "finalize")):
                resource, name, sub = "namespaces", rest[1], rest[2] if len(rest) == 3 else ""
            else:
                if len(rest) > 5:
                    raise err_resource_not_found()
                ns, resource = rest[1], rest[2]
                name = rest[3] if len(rest) > 3 else ""
                sub = rest[4] if len(rest) > 4 else ""
        else:
            if len(rest) > 3:
                raise err_resource_not_found()
            resource = rest[0]
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
        rt = _BY_GROUP.get((group, version, resource))
        if rt is None or (ns and not rt.namespaced) or (rt.namespaced and name and not ns):
            raise err_resource_not_found()
        if sub and sub not in rt.subresources:
            raise err_resource_not_found()
        if method == "GET":
            if name and not watch_prefix:
                verb = "get"
            elif watch_prefix or query.get("watch") in ("true", "1"):
                verb = "watch"
                if name:
                    query["fieldSelector"] = ",".join(
                        x for x in (query.get("fieldSelector", ""), f"metadata.name={name}") if x)
                    name = ""
            else:
                verb = "list"
        elif method == "POST" and not name:
            verb = "create"
        elif method == "PUT" and name:
            verb = "update"
        elif method == "PATCH" and name:
            verb = "patch"
        elif method == "DELETE" and not sub:
            verb = "delete" if name else "deletecollection"
        else:
            raise err_method_not_allowed()
        if sub and verb not in ("get", "update", "patch"):
            raise err_method_not_allowed()
        if not sub and verb not in rt.verbs:
            raise err_method_not_allowed()
        return _Request(rt, verb, ns, name, sub, query)

    def _inject(self, req: _Request, stage: str) -> None:
        sim = self.sim
        if stage == "latency":
            with sim._lock:
                delay = max((x.seconds for x in sim._latency if (x.verb in (None, req.verb))
                             and (x.resource in (None, req.resource))), default=0.0)
            if delay:
                time.sleep(delay)
            return
        with sim._lock:
            fault = None
            for f in sim._faults:
                if f.remaining > 0 and (f.kind == "throttle") == (stage == "throttle") and f.matches(
                        req.verb, req.resource, req.name):
                    fault = f
                    f.remaining -= 1
                    break
            sim._faults = [f for f in sim._faults if f.remaining > 0]
        if fault is None:
            return
        rt = req.rt
        if fault.kind == "throttle":
            after = fault.retry_after if fault.retry_after is not None else 1
            raise ApiError(status_failure(429, "TooManyRequests", fault.message or
                                          "Too many requests, please try again later.",
                                          {"retryAfterSeconds": after}), {"Retry-After": str(after)})
        if fault.kind == "conflict":
            raise err_conflict(rt.name, rt.group, req.name, CONFLICT_MODIFIED)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.code == 500:
            raise ApiError(err_internal(fault.message or "injected fault").status, headers)
        reasons = {503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
                   504: ("Timeout", "the server was unable to return a response in the time allotted, but may "
                                    "still be processing the request"),
                   409: ("Conflict", f'Operation cannot be fulfilled on {_qualified(rt.name, rt.group)} '
                                     f'"{req.name}": {CONFLICT_MODIFIED}'),
                   404: ("NotFound", f'{_qualified(rt.name, rt.group)} "{req.name}" not found'),
                   422: ("Invalid", f'{rt.kind} "{req.name}" is invalid: injected fault'),
                   400: ("BadRequest", "injected fault"),
                   403: ("Forbidden", "forbidden"), 401: ("Unauthorized", "Unauthorized")}
        reason, msg = reasons.get(fault.code, ("", "injected fault"))
        raise ApiError(status_failure(fault.code, reason, fault.message or msg,
                                      _details(req.name, rt.group, rt.name)), headers)

    def _authorize(self, req: _Request) -> None:
        sim = self.sim
        policy = sim.rbac
        if policy is None or req.user != policy.user:
            return
        rt = req.rt
        name = req.name
        if not name and req.verb in ("list", "watch"):
            for f, op, v in parse_field_selector(req.query.get("fieldSelector", "")):
                if f == "metadata.name" and op == "=":
                    name = v
        ns = req.namespace
        if policy.allows(req.verb, rt.group, rt.name, req.subresource, name, ns):
            return
        resource = req.resource
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        inner = (f'User "{req.user}" cannot {req.verb} resource "{resource}" in API group "{rt.group}" {scope}')
        qual = _qualified(rt.name, rt.group)
        msg = f'{qual} "{name}" is forbidden: {inner}' if name else f"{qual} is forbidden: {inner}"
        with sim._lock:
            sim.forbidden.append(Denial(req.user, req.verb, rt.group, rt.name, req.subresource, name, ns, msg))
        raise ApiError(status_failure(403, "Forbidden", msg, _details(name, rt.group, rt.name)))

    def _body(self, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise err_bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _dispatch(self, req: _Request, method: str, raw: bytes) -> int:
        sim = self.sim
        mode = self._negotiate()
        if req.verb == "get":
            obj = sim.op_get(req)
            if mode == "table":
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                self._send_json(200, sim.table_body(req, [obj], meta), "application/json;as=Table;v=v1;g=meta.k8s.io")
            elif mode == "partial":
                self._send_json(200, _partial(req.rt, obj),
                                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
            else:
                self._send_json(200, obj)
            return 200
        if req.verb == "list":
            items, meta = sim.op_list(req)
            if mode == "table":
                self._send_json(200, sim.table_body(req, items, meta), "application/json;as=Table;v=v1;g=meta.k8s.io")
            elif mode == "partial":
                self._send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                      "metadata": meta, "items": [_partial(req.rt, o) for o in items]},
                                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
            else:
                self._send_json(200, sim.list_body(req, items, meta))
            return 200
        if req.verb == "watch":
            return self._serve_watch(req)
        if req.verb == "create":
            obj, code = sim.op_create(req, self._body(raw))
        elif req.verb == "update":
            obj, code = sim.op_update(req, self._body(raw))
        elif req.verb == "patch":
            obj, code = sim.op_patch(req, raw, self.headers.get("Content-Type", "")), 200
        elif req.verb == "delete":
            obj, code = sim.op_delete(req, self._body(raw)), 200
        else:
            obj, code = sim.op_delete_collection(req, self._body(raw)), 200
        self._send_json(code, obj, warnings=req.warnings)
        return code

    def _serve_nonresource(self, method: str, path: str) -> int:
        if method != "GET":
            return self._not_found_page()
        p = path.rstrip("/") or "/"
        groups = _group_versions()
        if p == "/version":
            self._send_json(200, SERVER_VERSION)
        elif p in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif p == "/api":
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.sim.host}:{self.sim.port}"}]})
        elif p == "/api/v1":
            self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                  "resources": [r for rt in RESOURCES if not rt.group for r in _api_resource(rt)]})
        elif p == "/apis":
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                self._group_doc(g, vs) for g, vs in groups.items()]})
        elif p.startswith("/apis/") and p.count("/") == 2 and p.split("/")[2] in groups:
            g = p.split("/")[2]
            self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(g, groups[g])})
        elif p.startswith("/apis/") and p.count("/") == 3 and p.split("/")[3] in groups.get(p.split("/")[2], []):
            g, v = p.split("/")[2], p.split("/")[3]
            self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/{v}",
                                  "resources": [r for rt in RESOURCES if rt.group == g and rt.version == v
                                                for r in _api_resource(rt)]})
        else:
            return self._not_found_page()
        return 200

    @staticmethod
    def _group_doc(group: str, versions: list[str]) -> Obj:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    # watch ---------------------------------------------------------------------------------------
    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _write_event(self, type_: str, obj: Obj) -> None:
        self._write_chunk(json.dumps({"type": type_, "object": obj}, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8") + b"\n")

    def _client_gone(self) -> bool:
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                sock.setblocking(False)
                try:
                    return bool(sock.recv(1) == b"")
                except (ssl.SSLWantReadError, BlockingIOError):
                    return False
                finally:
                    sock.setblocking(True)
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    # complexity: mirrors the apiserver's watch loop (bookmarks, timeouts, 410, drops)
    def _serve_watch(self, req: _Request) -> int:  # noqa: C901
        sim, rt, q = self.sim, req.rt, req.query
        store = sim.store
        sel = Selector.parse(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        ts = q.get("timeoutSeconds", "")
        if ts and not ts.isdigit():
            raise err_bad_request(f'invalid timeoutSeconds "{ts}"')
        timeout = float(ts) if ts else sim.watch_timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        rv_param = q.get("resourceVersion", "")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersionMatch",
                detail="sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        expired: Obj | None = None
        with store.lock:
            initial: list[Obj] = []
            if rv_param in ("", "0") or send_initial:
                if rv_param not in ("", "0"):
                    n = sim._parse_rv(rv_param)
                    if n > store.rv:
                        sim._wait_for_rv(n)
                pos = store.rv
                initial = [o for _, o in store.snapshot(rt.name, req.namespace or None, None)
                           if sel.matches(rt, o)]
            else:
                pos = sim._parse_rv(rv_param)
                if pos > store.rv:
                    sim._wait_for_rv(pos)
                if pos < store.compacted:
                    expired = status_failure(410, "Expired", f"too old resource version: {pos} ({store.compacted})")
            watch = _Watch(rt.name, self.connection)
            sim._watches.add(watch)
        self.close_connection = True
        try:
            self._record(200)
            self.send_response(200)
            self.send_header("Audit-Id", self._audit)
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if expired is not None:
                self._write_event("ERROR", expired)
                self._write_chunk(b"")
                self.close_connection = sim._stopping  # a cleanly ended stream leaves the connection usable
                return 200
            for obj in initial:
                self._write_event("ADDED", obj)
            if send_initial:
                self._write_event("BOOKMARK", self._bookmark(rt, pos, initial_end=True))
            start = time.monotonic()
            deadline = start + timeout

            def next_bookmark(now: float) -> float | None:
                if not bookmarks:
                    return None
                t = min(now + sim.bookmark_interval, deadline - 2.0)
                return t if t >= now else None

            next_bm = next_bookmark(start)
            while True:
                with store.changed:
                    events = store.events_after(pos)
                    if not events and not watch.dropped and not sim._stopping:
                        wake = min(deadline, next_bm if next_bm is not None else deadline)
                        store.changed.wait(max(0.0, min(0.5, wake - time.monotonic())))
                        events = store.events_after(pos)
                    # every revision is one change: a compaction past our position lost changes we owe
                    lost = store.compacted > pos
                    compacted = store.compacted
                if watch.dropped or sim._stopping:
                    break
                if lost:
                    self._write_event("ERROR", status_failure(
                        410, "Expired", f"too old resource version: {pos} ({compacted})"))
                    break
                for ev in events:
                    pos = ev.rv
                    out = self._convert(rt, req.namespace, sel, ev)
                    if out is not None:
                        self._write_event(*out)
                now = time.monotonic()
                if now >= deadline:
                    break
                if next_bm is not None and now >= next_bm:
                    self._write_event("BOOKMARK", self._bookmark(rt, pos))
                    next_bm = next_bookmark(now)
                if self._client_gone():
                    return 200
            if watch.abrupt:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._write_chunk(b"")
                self.close_connection = sim._stopping  # like Go's net/http: keep-alive after a clean end
        except (BrokenPipeError, ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            with store.lock:
                sim._watches.discard(watch)
        return 200

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> Obj:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed({"metadata": meta}, rt.struct))}

    @staticmethod
    def _convert(rt: ResourceType, namespace: str, sel: Selector, ev: StoredEvent) -> tuple[str, Obj] | None:
        """The watch cache's event filter: an object that starts or stops matching the selector is
        ADDED or DELETED for this watcher."""
        if ev.key[0] != rt.name or (namespace and ev.key[1] != namespace):
            return None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if sel.matches(rt, ev.obj) else None
        cur_pass = sel.matches(rt, ev.obj)
        old_pass = ev.prev is not None and sel.matches(rt, ev.prev)
        if cur_pass and not old_pass:
            return ("ADDED", ev.obj)
        if cur_pass and old_pass:
            return ("MODIFIED", ev.obj)
        if old_pass and ev.prev is not None:
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return ("DELETED", gone)
        return None


def hmac_compare(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
