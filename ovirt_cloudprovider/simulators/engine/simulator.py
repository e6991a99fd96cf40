"""The loopback engine server: lifecycle, fleet mutations, static answers, counters and the API routing."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from .._server import LoopbackServer
from .constants import (
    _HTML_401,
    _HTML_404,
    _HTML_CT,
    _JSON_CT,
    _XML_CT,
    API_PREFIX,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SSO_LOGOUT_PATH,
    SSO_TOKEN_PATH,
    tls_paths,
)
from .faults import FaultInjection, RequestRecord, _Fault, _Static
from .generate import generate_fleet
from .handler import _Drop, _Handler
from .model import Fleet, GuestDevice, SimEvent, SimHost, SimTag, SimTemplate, SimVM
from .render import FollowError, _Renderer, parse_follow
from .search import _HOSTS, _TEMPLATES, _VMS, _Item, _Searchable
from .sso import SsoEndpoints, _Token
from .writes import WriteApi
from .xmltree import E, FollowTree, Node, _apache_error_html, _fault_xml, _Serializer, to_xml


class EngineSimulator(WriteApi, FaultInjection, SsoEndpoints, LoopbackServer):
    """A loopback oVirt engine (HTTPS on 127.0.0.1, port 0 = any free port) serving a :class:`Fleet`.

    Lifecycle: ``start()`` / ``stop()`` or ``with``. Attributes: ``url`` (the API URL a client is configured
    with), ``base_url``, ``port``, ``ca_file``, ``username``, ``password`` (mutable: change it to simulate a
    rotated password), ``fleet``, ``logins`` / ``logouts`` / ``active_tokens``.
    Fleet mutations (events included): ``add_vm``, ``remove_vm``, ``set_status``, ``set_tags``, ``tag_vm``,
    ``untag_vm``, ``set_devices``, ``set_ips`` (no event, as on a real engine), ``migrate``, ``rename``,
    ``add_event``; tags: ``add_tag``, ``rename_tag``, ``remove_tag`` (no VM event). Faults: ``set_latency``,
    ``fail_requests`` (5xx HTML), ``proxy_errors`` (502 HTML, SSO too), ``html_not_found`` (an HTML 404 page for
    GETs by id), ``engine_faults`` (``<fault>``), ``drop_connections``, ``hang_sso``, ``expire_tokens``,
    ``lose_in_search``, ``twin_in_search`` (a garbled search: a VM's twin, its id in another spelling),
    ``token_lifetime``; ``clear_faults``. Counters: ``requests``, ``request_count(path, method=, exact=)``,
    ``reset_requests``. Fixed answers: ``serve_static(path, body)``. ``write_config(path)`` writes an INI.
    """

    def __init__(
        self, fleet: Fleet | None = None, *, vms: int = 0, seed: int = 0, username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD, host: str = "127.0.0.1", port: int = 0,
        token_lifetime: float | None = None, image_lock_seconds: float | None = None,
        boot_seconds: float | None = None, stop_seconds: float | None = None,
    ) -> None:
        self.fleet = fleet if fleet is not None else generate_fleet(vms, seed=seed)
        if image_lock_seconds is not None:
            self.fleet.image_lock_seconds = image_lock_seconds
        if boot_seconds is not None:
            self.fleet.boot_seconds = boot_seconds
        if stop_seconds is not None:
            self.fleet.stop_seconds = stop_seconds
        self.username = username
        self.password = password
        self.token_lifetime = token_lifetime
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._lost: set[str] = set()  # lose_in_search
        self._twins: dict[str, tuple[str, bool]] = {}  # twin_in_search
        self._static: dict[str, _Static] = {}
        self._tokens: dict[str, _Token] = {}
        self._records: list[RequestRecord] = []
        self._release = threading.Event()
        self.logins = 0
        self.logouts = 0
        self.ca_file, self._cert_file, self._key_file = tls_paths()

    # --- lifecycle (start, stop, with, port: LoopbackServer) -------------------------------------

    name = "engine simulator"

    @property
    def scheme(self) -> str:
        return "https"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("_BoundHandler", (_Handler,), {"sim": self})

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self._cert_file, self._key_file)
        return ctx

    def _before_start(self) -> None:
        self._release.clear()

    def _before_stop(self) -> None:
        self._release.set()  # hung and slowed requests end now

    @property
    def url(self) -> str:
        """The API URL a client is configured with: ``https://127.0.0.1:PORT/ovirt-engine/api``."""
        return self.base_url + API_PREFIX

    def write_config(self, path: str, *, vms_filter: str = "tag=kubernetes") -> str:
        """Write an ``ovirt-cloud.conf`` pointing at this simulator (mode 0600: it holds the password)."""
        text = (
            "# Written by the oVirt engine simulator (python -m ovirt_cloudprovider.simulators.engine).\n"
            f"[connection]\nuri = {self.url}\nusername = {self.username}\npassword = {self.password}\n"
            f"ca_file = {self.ca_file}\n\n[filters]\nvms = {vms_filter}\n"
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path

    # --- fleet mutations (each appends the events a real engine logs) ---------------------------

    def add_vm(self, name: str, **kwargs: Any) -> SimVM:
        return self.fleet.add_vm(name, **kwargs)

    def remove_vm(self, ref: str) -> None:
        self.fleet.remove_vm(ref)

    def set_status(self, ref: str, status: str) -> SimVM:
        return self.fleet.set_status(ref, status)

    def add_host(self, name: str, cluster: str, **kwargs: Any) -> SimHost:
        return self.fleet.add_host(name, cluster, **kwargs)

    def set_host_status(self, ref: str, status: str) -> SimHost:
        return self.fleet.set_host_status(ref, status)

    def remove_host(self, ref: str) -> None:
        self.fleet.remove_host(ref)

    def set_tags(self, ref: str, tags: Iterable[str]) -> SimVM:
        return self.fleet.set_tags(ref, tags)

    def add_tag(self, name: str, *, parent: str | None = None) -> SimTag:
        return self.fleet.add_tag(name, parent=parent)

    def rename_tag(self, ref: str, new_name: str) -> SimTag:
        return self.fleet.rename_tag(ref, new_name)

    def remove_tag(self, ref: str) -> None:
        self.fleet.remove_tag(ref)

    def set_affinity_labels(self, ref: str, names: Iterable[str], *, host: bool = False) -> None:
        self.fleet.set_affinity_labels(ref, names, host=host)

    def set_placement(self, ref: str, affinity: str) -> SimVM:
        return self.fleet.set_placement(ref, affinity)

    def tag_vm(self, ref: str, tag: str) -> SimVM:
        return self.fleet.tag_vm(ref, tag)

    def untag_vm(self, ref: str, tag: str) -> SimVM:
        return self.fleet.untag_vm(ref, tag)

    def set_devices(self, ref: str, devices: Sequence[GuestDevice]) -> SimVM:
        return self.fleet.set_devices(ref, devices)

    def set_ips(self, ref: str, ips: Sequence[str], *, device: str = "eth0") -> SimVM:
        return self.fleet.set_ips(ref, ips, device=device)

    def migrate(self, ref: str, host: str | None = None) -> SimVM:
        return self.fleet.migrate(ref, host)

    def rename(self, ref: str, new_name: str) -> SimVM:
        return self.fleet.rename(ref, new_name)

    def add_template(self, name: str, cluster: str, **kwargs: Any) -> SimTemplate:
        return self.fleet.add_template(name, cluster, **kwargs)

    def add_event(self, code: int, description: str, *, vm: str | None = None) -> SimEvent:
        return self.fleet.add_event(code, description, vm=self.fleet.vm(vm) if vm else None)

    # --- static bodies ---------------------------------------------------------------------------

    def serve_static(self, path: str, body: bytes, *, status: int = 200, content_type: str | None = _XML_CT,
                     headers: dict[str, str] | None = None) -> None:
        """Answer authenticated GETs of ``path`` (API-relative like ``/vms``, or absolute) with ``body``."""
        full = path if path.startswith("/ovirt-engine") else API_PREFIX + path
        with self._lock:
            self._static[full.rstrip("/")] = _Static(status, body, content_type or "", dict(headers or {}))

    def clear_static(self) -> None:
        with self._lock:
            self._static.clear()

    # --- counters --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def request_count(self, path: str | None = None, *, method: str | None = None,
                      exact: bool = False) -> int:
        """Requests seen whose path starts with ``path`` (API-relative or absolute; is it, if ``exact``)."""
        full = None if path is None else (path if path.startswith("/ovirt-engine") else API_PREFIX + path)
        with self._lock:
            return sum(
                1 for r in self._records
                if (method is None or r.method == method)
                and (full is None or (r.path == full if exact else r.path.startswith(full)))
            )

    def reset_requests(self) -> None:
        with self._lock:
            self._records.clear()


    def _record(self, method: str, path: str, query: dict[str, str], status: int,
                headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._records.append(RequestRecord(method, path, query, status, time.time(), dict(headers or {})))

    # --- request handling ------------------------------------------------------------------------

    @staticmethod
    def _fault_answer(h: _Handler, fault: _Fault, method: str, path: str, body: bytes) -> int | None:
        """The answer of a fault that answers in place of the engine (None: this one does not, here)."""
        if fault.kind in ("status", "proxy"):
            return h.send(fault.status, _apache_error_html(fault.status, path, method),
                          "text/html; charset=iso-8859-1")
        if fault.kind == "fault" and path.startswith(API_PREFIX):
            return h.send(fault.status, _fault_xml(fault.reason, fault.detail), _XML_CT)
        if fault.kind == "echo":
            echoed = body.decode("utf-8", "replace")
            return h.send(fault.status, json.dumps({"error_code": "invalid_request",
                                                    "error": f"Request rejected by filter: {echoed}"}).encode(),
                          _JSON_CT)
        return None

    def _handle(self, h: _Handler, method: str, path: str, query: dict[str, str], body: bytes) -> int:
        release = self._release
        for fault in self._take_faults(path, method):
            if fault.kind == "lose_answer":
                h.lose_answer = True
            elif fault.kind == "latency":
                release.wait(fault.seconds)
            elif fault.kind == "hang":
                h.record(0)
                release.wait(3600)
                raise _Drop
            elif fault.kind == "drop":
                h.record(0)
                raise _Drop
            elif (answered := self._fault_answer(h, fault, method, path, body)) is not None:
                return answered
        if path == SSO_TOKEN_PATH and method == "POST":
            return self._sso_token(h, body)
        if path == SSO_LOGOUT_PATH and method == "POST":
            return self._sso_logout(h, body)
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            if not self._authorized(h):
                return h.send(401, _HTML_401, _HTML_CT, {"WWW-Authenticate": 'Basic realm="RESTAPI"'})
            with self._lock:
                static = self._static.get(path)
            if static is not None and method == "GET":
                return h.send(static.status, static.body, static.content_type or None, static.headers)
            self.fleet.advance()
            if method in ("POST", "DELETE"):
                status = self._api_write(h, method, path[len(API_PREFIX):], query, body)
                if status is not None:
                    return status
            if method != "GET":
                return h.send(405, b"", None)
            return self._api_get(h, path[len(API_PREFIX):], query)
        return h.send(404, _HTML_404, _HTML_CT)

    # SSO ----------------------------------------------------------------------------------------
    # API ----------------------------------------------------------------------------------------

    def _api_get(self, h: _Handler, rel: str, query: dict[str, str]) -> int:
        parts = [p for p in rel.split("/") if p]
        f = self.fleet
        try:
            with f.lock:
                body = self._api_body(parts, query)
        except FollowError as e:
            return h.send(400, _fault_xml("Operation Failed", str(e)), _XML_CT)
        except ValueError as e:
            return h.send(400, _fault_xml("Invalid value", str(e)), _XML_CT)
        if body is None:
            return h.send(404, b"", None)
        return h.send(200, body, _XML_CT, {"Correlation-Id": str(uuid.uuid4())})

    def _listing(self, kind: _Searchable[_Item], query: dict[str, str], max_results: int | None) -> list[_Item]:
        """A list request's items: the whole collection (up to ``max``), or with ``search=`` what the search finds,
        less what :meth:`lose_in_search` hides from a search that names no id."""
        if "search" not in query:
            items = list(kind.items(self.fleet).values())
            return items[:max_results] if max_results is not None else items
        found = kind.search(self.fleet, query["search"], max_results=max_results,
                            case_sensitive=query.get("case_sensitive", "true").lower() != "false")
        with self._lock:
            lost = set(self._lost) if not re.search(r"\bid\s*=", query["search"]) else set()
        return [x for x in found if x.id not in lost]

    def _vm_and_twin(self, r: _Renderer, vm: SimVM, query: dict[str, str], follow: FollowTree) -> list[Node]:
        """A VM of a list, and its twin when :meth:`twin_in_search` garbles this search (one that names no id)."""
        garbled = self._twin_id(vm.id) if "search" in query and not re.search(r"\bid\s*=", query["search"]) \
            else None
        if garbled is None:
            return [r.vm(vm, follow)]
        twin = dataclasses.replace(vm, id=garbled[0], name=f"{vm.name}-twin", status="down", host_id=None,
                                   devices=[], pending=[])
        pair = [r.vm(vm, follow), r.vm(twin, follow)]
        return pair[::-1] if garbled[1] else pair

    # complexity: one branch per engine collection and follow= link
    def _api_body(self, parts: list[str], query: dict[str, str]) -> bytes | None:  # noqa: C901
        f = self.fleet
        r = _Renderer(f)
        ser = _Serializer()
        max_results = self._int_param(query, "max")
        if not parts:
            return to_xml(r.api_root())
        coll, rest = parts[0], parts[1:]
        node: Node | None = None
        if coll == "vms":
            follow = parse_follow(query.get("follow"))
            if not rest:
                listed = self._listing(_VMS, query, max_results)
                return to_xml(E("vms", *(x for vm in listed for x in self._vm_and_twin(r, vm, query, follow))), ser)
            vm = f.vms.get(rest[0])
            if vm is None or len(rest) > 2:
                return None
            sub = rest[1] if len(rest) == 2 else ""
            if not sub:
                node = r.vm(vm, follow)
            elif sub == "reporteddevices":
                node = r.reported_devices(vm)
            elif sub == "nics":
                node = r.nics(vm)
            elif sub == "tags":
                node = r.vm_tags(vm)
        elif coll == "tags":
            tag = f.tags.get(rest[0]) if len(rest) == 1 else None
            node = (E("tags", *(r.tag(t) for t in f.tags.values())) if not rest
                    else (r.tag(tag) if tag else None))
        elif coll == "clusters":
            follow = parse_follow(query.get("follow"), {"data_center": {}})
            c = f.clusters.get(rest[0]) if len(rest) == 1 else None
            node = (E("clusters", *(r.cluster(x, follow) for x in f.clusters.values())) if not rest
                    else (r.cluster(c, follow) if c else None))
        elif coll == "hosts":
            follow = parse_follow(query.get("follow"), {"cluster": {"data_center": {}}, "nics": {},
                                                         "affinity_labels": {}})
            if not rest:
                return to_xml(E("hosts", *(r.host(x, follow) for x in self._listing(_HOSTS, query, max_results))), ser)
            h = f.hosts.get(rest[0])
            if h is None or len(rest) > 2:
                return None
            if len(rest) == 1:
                node = r.host(h, follow)
            elif rest[1] == "nics":
                node = r.host_nics(h)
        elif coll == "templates":  # the recorded shape: manageiq/templates.xml
            if not rest:
                found = self._listing(_TEMPLATES, query, max_results)
                return to_xml(E("templates", *(r.template_entity(x) for x in found)), ser)
            tpl = f.templates.get(rest[0]) if len(rest) == 1 else None
            node = r.template_entity(tpl) if tpl else None
        elif coll == "instancetypes":  # the recorded shape: fog-ovirt/instance_types.xml
            it = f.instance_types.get(rest[0]) if len(rest) == 1 else None
            node = (E("instance_types", *(r.instance_type(x) for x in f.instance_types.values())) if not rest
                    else (r.instance_type(it) if it else None))
        elif coll == "datacenters":
            d = f.datacenters.get(rest[0]) if len(rest) == 1 else None
            node = (E("data_centers", *(r.datacenter(x) for x in f.datacenters.values())) if not rest
                    else (r.datacenter(d) if d else None))
        elif coll == "events":
            if not rest:
                since = self._int_param(query, "from")
                events = sorted((e for e in f.events if since is None or e.id > since), key=lambda e: -e.id)
                if max_results is not None:  # newest first, so max keeps the newest and drops the older ones
                    events = events[:max_results]
                node = E("events", *(r.event(e) for e in events))
            else:
                ev = next((e for e in f.events if str(e.id) == rest[0]), None) if len(rest) == 1 else None
                node = r.event(ev) if ev else None
        return to_xml(node, ser) if node is not None else None

    @staticmethod
    def _int_param(query: dict[str, str], name: str) -> int | None:
        if name not in query:
            return None
        try:
            value = int(query[name])
        except ValueError:
            raise ValueError(f"Value '{query[name]}' of parameter '{name}' isn't a valid integer") from None
        return value
