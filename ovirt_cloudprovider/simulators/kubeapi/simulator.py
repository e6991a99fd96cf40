""":class:`KubeApiSimulator`: lifecycle, counters, faults, direct helpers and the API operations."""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import http.server
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .._server import LoopbackServer
from .admission import admit_node_create
from .backend import Backend
from .constants import DEFAULT_NAMESPACES, MAX_JSON_PATCH_OPERATIONS, WATCH_TOO_LARGE_WAIT, Obj, _tls_file
from .errors import (
    CONFLICT_MODIFIED,
    ApiError,
    FieldError,
    GoRaw,
    _details,
    err_already_exists,
    err_bad_request,
    err_conflict,
    err_expired,
    err_invalid,
    err_not_found,
    err_unprocessable,
    status_failure,
)
from .faults import (
    _NAME_CHARS,
    WRITE_VERBS,
    RequestRecord,
    _decode_continue,
    _encode_continue,
    _Fault,
    _Latency,
    _partial,
    _Request,
    _strip_type,
    _Watch,
)
from .formats import format_micro_time, format_time, new_uuid, utcnow
from .handler import _Handler
from .kubelet import kubelet_node
from .lifecycle import NodeLifecycle
from .patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from .rbac import Denial, RbacPolicy
from .resources import LEASES, NAMESPACES, NODES, ResourceType, Selector
from .roundtrip import DecodeError, _json_type, typed
from .store import Store, _key_string
from .tables import _TABLE_COLUMNS, _col, table_cells
from .validation import validate


class KubeApiSimulator(LoopbackServer):
    """A Kubernetes API server on 127.0.0.1 for tests (context manager; ``start()``/``stop()``).

    - ``tls``: serve HTTPS with the shared test certificate (``.ca_file`` is its CA).
    - ``token``: require ``Authorization: Bearer <token>`` (401 otherwise); with ``rbac`` the token is the
      policy's service account, without it an administrator. ``admin_token`` adds a token that bypasses
      RBAC (for test set-up through kubectl). ``users``: more tokens, each authenticating as the user it names
      (kube-apiserver's ``--token-auth-file``; not subject to ``rbac`` unless it is the policy's user), so
      that the request log tells several clients apart. Without any token every request is that identity.
    - ``rbac``: an :class:`RbacPolicy`; requests it does not allow get kube-apiserver's 403 and are
      recorded in :attr:`forbidden`.
    - ``history``: how many changes are kept for watches and paginated lists; older ones are compacted
      (watches from there get 410 Gone). ``namespaces``: created in addition to default, kube-system,
      kube-public and kube-node-lease (a create in a missing namespace is a 404, as on a real cluster).
    - ``bookmark_interval``: seconds between watch bookmarks (kube-apiserver: about a minute, plus one
      two seconds before ``timeoutSeconds`` runs out).
    """

    def __init__(self, *, tls: bool = False, token: str | None = None, rbac: RbacPolicy | None = None,
                 admin_token: str | None = None, users: Mapping[str, str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, history: int = 1000,
                 namespaces: Iterable[str] = (), bookmark_interval: float = 60.0,
                 watch_timeout: float = 1800.0) -> None:
        super().__init__(host, port)
        self.tls = tls
        self.token = token
        self.admin_token = admin_token
        self.users: dict[str, str] = dict(users or {})
        self.rbac = rbac
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.store = Store(history)
        self.forbidden: list[Denial] = []
        self._records: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._latency: list[_Latency] = []
        self._watches: set[_Watch] = set()
        self._lock = threading.RLock()
        self._stopping = False
        self.node_lifecycle: NodeLifecycle | None = None
        for ns in (*DEFAULT_NAMESPACES, *namespaces):
            if ("namespaces", "", ns) not in self.store.current:
                self.create_namespace(ns)

    # lifecycle (start, stop, with, port, url: LoopbackServer) ------------------------------------
    name = "kubeapi simulator"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        backend: Backend = self  # mypy checks here that the simulator is what the handler needs
        return type("_BoundHandler", (_Handler,), {"sim": backend})

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(_tls_file("server.pem"), _tls_file("server-key.pem"))
        return ctx

    def _before_start(self) -> None:
        self._stopping = False

    def _before_stop(self) -> None:
        self._stopping = True
        self.stop_node_lifecycle()
        with self.store.changed:
            for w in list(self._watches):
                w.dropped = True
            self.store.changed.notify_all()

    @property
    def ca_file(self) -> str | None:
        return _tls_file("ca.pem") if self.tls else None

    def write_kubeconfig(self, path: str | Path, *, token: str | None = None, context: str = "kubeapi-sim") -> str:
        """Write a kubeconfig for this server that kubectl and the Python client accept; return the path.
        ``token`` defaults to the simulator's token."""
        cluster: Obj = {"server": self.url}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(
                Path(_tls_file("ca.pem")).read_bytes()).decode()
        user: Obj = {}
        tok = token if token is not None else self.token
        if tok:
            user["token"] = tok
        cfg = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        p = Path(path)
        p.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        with contextlib.suppress(OSError):
            p.chmod(0o600)
        return str(p)

    # counters -------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, verb: str | None = None, resource: str | None = None, *, namespace: str | None = None,
              name: str | None = None, code: int | None = None) -> int:
        """How many resource requests matched (verb: get/list/watch/create/update/patch/delete/
        deletecollection; resource: "nodes", "nodes/status", "events", "leases", ...)."""
        with self._lock:
            return sum(1 for r in self._records if r.resource is not None
                       and (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
                       and (namespace is None or r.namespace == namespace) and (name is None or r.name == name)
                       and (code is None or r.code == code))

    def writes(self, resource: str | None = None) -> int:
        """Requests that tried to change something (create/update/patch/delete/deletecollection)."""
        with self._lock:
            return sum(1 for r in self._records if r.resource is not None and r.verb in WRITE_VERBS
                       and (resource is None or r.resource == resource))

    def reset_counts(self) -> None:
        with self._lock:
            self._records.clear()
            self.forbidden.clear()

    # faults ---------------------------------------------------------------------------------------
    def set_latency(self, seconds: float, *, verb: str | None = None, resource: str | None = None) -> None:
        """Delay every matching resource request by ``seconds`` (0 removes the delay for that match)."""
        with self._lock:
            self._latency = [x for x in self._latency if (x.verb, x.resource) != (verb, resource)]
            if seconds > 0:
                self._latency.append(_Latency(seconds, verb, resource))

    def fail_next(self, count: int = 1, *, code: int = 500, verb: str | None = None, resource: str | None = None,
                  retry_after: int | None = None, message: str | None = None, name: str | None = None) -> None:
        """Answer the next ``count`` matching resource requests (of the object ``name`` when given) with an error
        ``code`` (500 InternalError, 503 ServiceUnavailable, 429 TooManyRequests, 504 Timeout, 422 Invalid, 400
        BadRequest...)."""
        with self._lock:
            self._faults.append(_Fault("throttle" if code == 429 else "error", count, code, verb, resource,
                                       retry_after, message, name))

    def throttle_next(self, count: int = 1, *, retry_after: int = 1, verb: str | None = None,
                      resource: str | None = None) -> None:
        """429 TooManyRequests with ``Retry-After`` for the next ``count`` matching requests (as priority
        and fairness does: before authorization)."""
        self.fail_next(count, code=429, verb=verb, resource=resource, retry_after=retry_after)

    def conflict_next(self, count: int = 1, *, verb: str | None = None, resource: str | None = None) -> None:
        """409 Conflict ("the object has been modified") for the next ``count`` matching update, patch or
        delete requests."""
        with self._lock:
            self._faults.append(_Fault("conflict", count, 409, verb, resource))

    def drop_watches(self, resource: str | None = None, *, abrupt: bool = False) -> int:
        """End the active watch streams (of ``resource``); ``abrupt`` resets the connection instead of
        ending the chunked stream cleanly. Returns how many were dropped."""
        n = 0
        with self.store.changed:
            for w in list(self._watches):
                if resource is None or w.resource == resource:
                    w.dropped, w.abrupt = True, abrupt
                    n += 1
            self.store.changed.notify_all()
        return n

    @property
    def active_watches(self) -> int:
        with self.store.lock:
            return sum(1 for w in self._watches if not w.dropped)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def compact(self, resource_version: str | int | None = None) -> str:
        """Compact the history up to ``resource_version`` (default: now): watches and continue tokens from
        older versions get 410 Gone, as after an etcd compaction."""
        return str(self.store.compact(None if resource_version is None else int(resource_version)))

    @property
    def resource_version(self) -> str:
        with self.store.lock:
            return str(self.store.rv)

    # direct helpers (no HTTP, no counting) --------------------------------------------------------
    def _admin(self, rt: ResourceType, verb: str, namespace: str = "", name: str = "", subresource: str = "",
               query: dict[str, str] | None = None) -> _Request:
        return _Request(rt, verb, namespace, name, subresource, dict(query or {}))

    def create_node(self, node: Mapping[str, Any]) -> Obj:
        """Create a Node as a kubelet (or anyone) would: validated like an API request; raises ApiError."""
        obj, _ = self.op_create(self._admin(NODES, "create"), dict(node))
        return obj

    def register_kubelet_node(self, name: str, *, lease: bool = True, **kw: Any) -> Obj:
        """Create the Node a kubelet started with ``--cloud-provider=external`` registers (see
        :func:`kubelet_node` for the keywords) and, with ``lease``, its heartbeat Lease in kube-node-lease."""
        node = self.create_node(kubelet_node(name, **kw))
        if lease:
            self.op_create(self._admin(LEASES, "create", namespace="kube-node-lease"), {
                "metadata": {"name": name, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": format_micro_time(utcnow())}})
        return node

    def get_node(self, name: str) -> Obj | None:
        with self.store.lock:
            obj = self.store.current.get(("nodes", "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_nodes(self, label_selector: str = "") -> list[Obj]:
        sel = Selector.parse(NODES, label_selector, "")
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in self.store.snapshot("nodes", None, None) if sel.matches(NODES, o)]

    def delete_node(self, name: str) -> bool:
        try:
            self.op_delete(self._admin(NODES, "delete", name=name), None)
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return True

    def patch_node(self, name: str, patch: Any, *, status: bool = False, patch_type: str = "strategic") -> Obj:
        """Patch a Node (``patch_type``: strategic, merge or json), through ``nodes/status`` when ``status``."""
        ctype = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
                 "json": "application/json-patch+json"}[patch_type]
        req = self._admin(NODES, "patch", name=name, subresource="status" if status else "")
        return self.op_patch(req, json.dumps(patch).encode(), ctype)

    def update_node_status(self, name: str, *, ready: bool = True, reason: str | None = None,
                           message: str | None = None, addresses: Sequence[Mapping[str, str]] | None = None,
                           node_info: Mapping[str, str] | None = None) -> Obj:
        """A kubelet heartbeat: patch ``nodes/status`` with a fresh Ready condition (and addresses or
        nodeInfo when given), the way the kubelet does it."""
        now = format_time(utcnow())
        cur = self.get_node(name)
        if cur is None:
            raise err_not_found("nodes", "", name)
        status = "True" if ready else "False"
        old = {c.get("type"): c for c in cur.get("status", {}).get("conditions") or []}.get("Ready")
        cond = {"type": "Ready", "status": status,
                "reason": reason or ("KubeletReady" if ready else "KubeletNotReady"),
                "message": message or ("kubelet is posting ready status" if ready else "container runtime is down"),
                "lastHeartbeatTime": now,
                "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status
                and old.get("lastTransitionTime") else now}
        patch: Obj = {"status": {"conditions": [cond]}}
        if addresses is not None:
            patch["status"]["addresses"] = [{"$patch": "replace"}, *[dict(a) for a in addresses]]
        if node_info is not None:
            patch["status"]["nodeInfo"] = dict(node_info)
        return self.patch_node(name, patch, status=True)

    def list_events(self, namespace: str | None = None, *, involved_name: str | None = None,
                    reason: str | None = None) -> list[Obj]:
        with self.store.lock:
            out = [copy.deepcopy(o) for _, o in self.store.snapshot("events", namespace, None)]
        return [e for e in out if (involved_name is None or e.get("involvedObject", {}).get("name") == involved_name)
                and (reason is None or e.get("reason") == reason)]

    def patch_lease(self, namespace: str, name: str, patch: Any) -> Obj:
        """Strategic-merge-patch a Lease (a kubelet renewing its heartbeat)."""
        req = self._admin(LEASES, "patch", namespace=namespace, name=name)
        return self.op_patch(req, json.dumps(patch).encode(), "application/strategic-merge-patch+json")

    def start_node_lifecycle(self, *, startup_grace: float = 60.0, monitor_grace: float = 50.0,
                             period: float = 0.2, renew_interval: float = 10.0) -> NodeLifecycle:
        """Start the node lifecycle mode: kube-controller-manager's node lifecycle controller acting on Node
        taints and conditions (see :mod:`.lifecycle`); stopped with the server or by :meth:`stop_node_lifecycle`."""
        self.stop_node_lifecycle()
        self.node_lifecycle = NodeLifecycle(self, startup_grace=startup_grace, monitor_grace=monitor_grace,
                                            period=period, renew_interval=renew_interval).start()
        return self.node_lifecycle

    def stop_node_lifecycle(self) -> None:
        if self.node_lifecycle is not None:
            self.node_lifecycle.stop()
            self.node_lifecycle = None

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        with self.store.lock:
            obj = self.store.current.get(("leases", namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_leases(self, namespace: str | None = None) -> list[Obj]:
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in self.store.snapshot("leases", namespace, None)]

    def create_namespace(self, name: str) -> Obj:
        obj, _ = self.op_create(self._admin(NAMESPACES, "create"), {"metadata": {"name": name}})
        return obj

    # operations -----------------------------------------------------------------------------------
    def _decode(self, req: _Request, body: Any, *, patch: bool = False) -> Obj:
        rt = req.rt
        if not isinstance(body, dict):
            if patch:
                raise err_invalid("", "", "", [FieldError("Invalid value", "patch", json.dumps(body),
                                                          f"json: cannot unmarshal {_json_type(body)} into Go "
                                                          f"value of type {rt.struct}")])
            raise err_bad_request(f"json: cannot unmarshal {_json_type(body)} into Go value of type "
                                  f"struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
                                  f"Kind string \"json:\\\"kind,omitempty\\\"\" }}")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if not patch:
            if api_version and api_version != rt.api_version:
                raise err_bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                      f"API version ({rt.api_version})")
            if kind and kind != rt.kind:
                raise err_bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                      f'no kind "{kind}" is registered for version "{rt.api_version}"')
        warnings: list[str] = []
        try:
            obj = typed(body, rt.struct, warnings)
        except DecodeError as e:
            if patch:
                raise err_invalid("", "", "", [FieldError("Invalid value", "patch", json.dumps(body), str(e))]) \
                    from None
            raise err_bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {e}') \
                from None
        if warnings:
            if req.query.get("fieldValidation") == "Strict":
                raise err_bad_request("strict decoding error: " + ", ".join(warnings))
            if req.query.get("fieldValidation") != "Ignore":
                req.warnings.extend(warnings)
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(obj)}
        return obj

    def _check_namespace_exists(self, req: _Request) -> None:
        if req.rt.namespaced and ("namespaces", "", req.namespace) not in self.store.current:
            raise err_not_found("namespaces", "", req.namespace)

    def op_get(self, req: _Request) -> Obj:
        with self.store.lock:
            obj = self.store.current.get((req.rt.name, req.key_ns, req.name))
            if obj is None:
                raise err_not_found(req.rt.name, req.rt.group, req.name)
            return copy.deepcopy(obj)

    def op_create(self, req: _Request, body: Any) -> tuple[Obj, int]:
        rt = req.rt
        obj = self._decode(req, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(status_failure(500, "", "resourceVersion should not be set on objects to be created"))
        if not meta.get("name") and meta.get("generateName"):
            base = meta["generateName"][:58]
            meta["name"] = base + "".join(random.choice(_NAME_CHARS) for _ in range(5))
        meta["uid"] = new_uuid()
        meta["creationTimestamp"] = format_time(utcnow())
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(k, None)
        if rt is NODES:
            admit_node_create(obj)  # mutating admission: TaintNodesByCondition
            obj["spec"].pop("configSource", None)
            obj["status"].pop("config", None)
        elif rt is NAMESPACES:
            obj["spec"]["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
        with self.store.lock:
            self._check_namespace_exists(req)
            validate(rt, obj, None)
            key = (rt.name, req.key_ns, meta["name"])
            if key in self.store.current:
                raise err_already_exists(rt.name, rt.group, meta["name"])
            obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed(obj, rt.struct))}
            if req.dry_run:
                return copy.deepcopy(obj), 201
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self.store.put("ADDED", key, obj, None, rv)
            return copy.deepcopy(obj), 201

    def op_update(self, req: _Request, body: Any) -> tuple[Obj, int]:
        rt = req.rt
        obj = self._decode(req, body)
        meta = obj["metadata"]
        if meta.get("name", "") != req.name:
            raise err_bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on "
                                  f"the URL ({req.name})")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        with self.store.lock:
            cur = self.store.current.get((rt.name, req.key_ns, req.name))
            if cur is None:
                if rt.allow_create_on_update and not req.subresource:
                    if meta.get("resourceVersion"):
                        raise err_not_found(rt.name, rt.group, req.name)
                    return self.op_create(dataclasses.replace(req, verb="create"), obj)
                raise err_not_found(rt.name, rt.group, req.name)
            if not meta.get("resourceVersion") and rt is LEASES:
                raise err_invalid(rt.name, rt.group, req.name, [FieldError(
                    "Invalid value", "metadata.resourceVersion", GoRaw("0x0"), "must be specified for an update")])
            return self._apply_update(req, cur, obj), 200

    def op_patch(self, req: _Request, raw: bytes, content_type: str) -> Obj:
        rt = req.rt
        ctype = content_type.split(";")[0].strip().lower()
        if ctype not in ("application/strategic-merge-patch+json", "application/merge-patch+json",
                         "application/json-patch+json"):
            raise ApiError(status_failure(
                415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json"))
        try:
            patch = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise err_bad_request(f"error decoding patch: {e}") from None
        with self.store.lock:
            cur = self.store.current.get((rt.name, req.key_ns, req.name))
            if cur is None:
                raise err_not_found(rt.name, rt.group, req.name)
            try:
                if ctype == "application/strategic-merge-patch+json":
                    if not isinstance(patch, dict):
                        raise err_bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type "
                                              "map[string]interface {}")
                    new = strategic_merge_patch(cur, patch, rt.struct)
                elif ctype == "application/merge-patch+json":
                    new = json_merge_patch(cur, patch)
                else:
                    if not isinstance(patch, list):
                        raise err_bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type "
                                              "jsonpatch.Patch")
                    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
                        raise ApiError(status_failure(
                            413, "RequestEntityTooLarge",
                            f"Request entity too large: The allowed maximum operations in a JSON patch is "
                            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}"))
                    new = json_patch(cur, patch)
            except PatchError as e:
                if e.kind == "bad_request":
                    raise err_bad_request(str(e)) from None
                if e.kind == "unprocessable":
                    raise err_unprocessable(str(e)) from None
                raise ApiError(status_failure(500, "", str(e))) from None
            obj = self._decode(req, new, patch=True)
            meta = obj["metadata"]
            if meta.get("name", "") != req.name:
                raise err_bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name "
                                      f"on the URL ({req.name})")
            if rt.namespaced and meta.get("namespace", "") != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            return self._apply_update(req, cur, obj)

    def _apply_update(self, req: _Request, cur: Obj, obj: Obj) -> Obj:
        """The common tail of update and patch: preconditions, strategy, validation, no-op detection."""
        rt = req.rt
        meta, cmeta = obj["metadata"], cur["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != cmeta["resourceVersion"]:
            raise err_conflict(rt.name, rt.group, req.name, CONFLICT_MODIFIED)
        if not meta.get("uid"):
            meta["uid"] = cmeta.get("uid")
        meta["creationTimestamp"] = cmeta.get("creationTimestamp")
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in cmeta:
                meta[k] = cmeta[k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        if rt in (NODES, NAMESPACES):
            if req.subresource == "status":
                obj["spec"] = copy.deepcopy(cur["spec"])
            else:
                obj["status"] = copy.deepcopy(cur["status"])
            if rt is NODES and req.subresource == "status" and "config" not in cur.get("status", {}):
                obj["status"].pop("config", None)
        # key order as the Go struct prints it
        obj = typed(obj, rt.struct)
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(obj)}
        meta = obj["metadata"]
        validate(rt, obj, cur)
        meta["resourceVersion"] = cmeta["resourceVersion"]
        if obj == cur:
            return copy.deepcopy(cur)  # no-op: kube-apiserver skips the write, resourceVersion unchanged
        if req.dry_run:
            return copy.deepcopy(obj)
        key = (rt.name, req.key_ns, req.name)
        rv = self.store.next_rv()
        meta["resourceVersion"] = str(rv)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.put("DELETED", key, None, obj, rv)
        else:
            self.store.put("MODIFIED", key, obj, cur, rv)
        return copy.deepcopy(obj)

    def op_delete(self, req: _Request, body: Any) -> Obj:
        rt = req.rt
        opts = body if isinstance(body, dict) else {}
        pre = opts.get("preconditions") or {}
        with self.store.lock:
            key = (rt.name, req.key_ns, req.name)
            cur = self.store.current.get(key)
            if cur is None:
                raise err_not_found(rt.name, rt.group, req.name)
            cmeta = cur["metadata"]
            if pre.get("uid") is not None and pre["uid"] != cmeta.get("uid"):
                raise err_conflict(rt.name, rt.group, req.name,
                                   f"Precondition failed: UID in precondition: {pre['uid']}, "
                                   f"UID in object meta: {cmeta.get('uid')}")
            if pre.get("resourceVersion") is not None and pre["resourceVersion"] != cmeta.get("resourceVersion"):
                raise err_conflict(rt.name, rt.group, req.name,
                                   f"Precondition failed: ResourceVersion in precondition: "
                                   f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                   f"{cmeta.get('resourceVersion')}")
            if rt is NAMESPACES and req.name in DEFAULT_NAMESPACES:
                raise ApiError(status_failure(
                    403, "Forbidden", f'namespaces "{req.name}" is forbidden: this namespace may not be deleted',
                    _details(req.name, "", "namespaces")))
            if req.dry_run:
                return self._delete_status(rt, cur)
            if cmeta.get("finalizers"):
                if cmeta.get("deletionTimestamp"):
                    return copy.deepcopy(cur)
                obj = copy.deepcopy(cur)
                obj["metadata"]["deletionTimestamp"] = format_time(utcnow())
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed(obj, rt.struct))}
                rv = self.store.next_rv()
                obj["metadata"]["resourceVersion"] = str(rv)
                self.store.put("MODIFIED", key, obj, cur, rv)
                return copy.deepcopy(obj)
            self.store.put("DELETED", key, None, cur, self.store.next_rv())
            if rt is NAMESPACES:
                for other in [k for k in self.store.current if k[1] == req.name and k[0] != "namespaces"]:
                    self.store.put("DELETED", other, None, self.store.current[other], self.store.next_rv())
            return self._delete_status(rt, cur)

    @staticmethod
    def _delete_status(rt: ResourceType, obj: Obj) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(obj["metadata"]["name"], rt.group, rt.name, uid=obj["metadata"].get("uid"))}

    def op_delete_collection(self, req: _Request, body: Any) -> Obj:
        sel = Selector.parse(req.rt, req.query.get("labelSelector", ""), req.query.get("fieldSelector", ""))
        with self.store.lock:
            items = [(k, o) for k, o in self.store.snapshot(req.rt.name, req.namespace or None, None)
                     if sel.matches(req.rt, o)]
            deleted = []
            for key, obj in items:
                sub = dataclasses.replace(req, verb="delete", namespace=key[1], name=key[2])
                self.op_delete(sub, body)
                deleted.append(_strip_type(obj))
            return {"kind": req.rt.list_kind, "apiVersion": req.rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted}

    def _wait_for_rv(self, rv: int) -> None:
        """Wait (up to 3 s, as the watch cache does) for a resourceVersion from the future; 504 if it never
        comes."""
        deadline = time.monotonic() + WATCH_TOO_LARGE_WAIT
        while self.store.rv < rv:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(status_failure(
                    504, "Timeout", f"Too large resource version: {rv}, current: {self.store.rv}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1}))
            self.store.changed.wait(left)

    @staticmethod
    def _parse_rv(value: str) -> int:
        if not value.isdigit():
            raise err_bad_request(f'invalid resource version "{value}"') if value else err_bad_request(
                "invalid resource version")
        return int(value)

    # complexity: list options as the apiserver applies them (selectors, limit, continue, RV)
    def op_list(self, req: _Request) -> tuple[list[Obj], Obj]:  # noqa: C901
        """Items (each with kind/apiVersion; shared with the store, do not modify) and the list metadata."""
        rt, q = req.rt, req.query
        sel = Selector.parse(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        limit_s = q.get("limit", "") or "0"
        if not re.fullmatch(r"-?\d+", limit_s):
            raise err_bad_request(f'invalid limit "{limit_s}"')
        limit = max(0, int(limit_s))
        token, rv_param, match = q.get("continue", ""), q.get("resourceVersion", ""), q.get("resourceVersionMatch", "")
        if match and not rv_param:
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersionMatch", detail="resourceVersionMatch is forbidden unless "
                                                           "resourceVersion is provided")])
        if token and rv_param:
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersion", detail="specifying resource version is not allowed when using "
                                                      "continue")])
        with self.store.lock:
            at: int | None = None
            start = ""
            if token:
                trv, start = _decode_continue(token)
                if trv >= 0:
                    if trv < self.store.compacted:
                        err = err_expired(
                            "The provided continue parameter is too old to display a consistent list result. You "
                            "can start a new list without the continue parameter, or use the continue token in "
                            "this response to retrieve the remainder of the results. Continuing with the provided "
                            "token results in an inconsistent list - objects that were created, modified, or "
                            "deleted between the time the first chunk was returned and now may show up in the list.")
                        err.status["metadata"] = {"continue": _encode_continue(-1, start)}
                        raise err
                    at = trv
            elif rv_param and rv_param != "0":
                n = self._parse_rv(rv_param)
                if n > self.store.rv:
                    self._wait_for_rv(n)
                if match == "Exact":
                    if n < self.store.compacted:
                        raise err_expired(f"too old resource version: {n} ({self.store.compacted})")
                    at = n
            list_rv = at if at is not None else self.store.rv
            snap = self.store.snapshot(rt.name, req.namespace or None, at)
            items: list[Obj] = []
            cont = ""
            remaining = 0
            last_key = ""
            after = start[:-1] if start.endswith("\x00") else start
            pending = [(k, o) for k, o in snap if not start or _key_string(k) > after]
            for idx, (k, o) in enumerate(pending):
                if limit and len(items) >= limit:
                    cont = _encode_continue(list_rv, last_key + "\x00")
                    remaining = len(pending) - idx
                    break
                last_key = _key_string(k)
                if sel.matches(rt, o):
                    items.append(o)  # stored objects are never modified in place: no copy needed to serialise
            meta: Obj = {"resourceVersion": str(list_rv)}
            if cont:
                meta["continue"] = cont
                if sel.empty:
                    meta["remainingItemCount"] = remaining
            return items, meta

    def list_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj:
        return {"kind": req.rt.list_kind, "apiVersion": req.rt.api_version, "metadata": meta,
                "items": [_strip_type(o) for o in items]}

    def table_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj:
        now = utcnow()
        include = req.query.get("includeObject", "Metadata")
        rows = []
        for o in items:
            row: Obj = {"cells": table_cells(req.rt, o, now)}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = _partial(req.rt, o)
            rows.append(row)
        cols = _TABLE_COLUMNS.get(req.rt.name) or [
            _col("Name", "Name must be unique within a namespace.", fmt="name"),
            _col("Created At", "CreationTimestamp is a timestamp representing the server time when this object "
                               "was created.", typ="date")]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols,
                "rows": rows}
