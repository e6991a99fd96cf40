"""Loopback oVirt Engine API v4 simulator: a real HTTPS server that the real ``ovirtsdk4`` talks to.

What it serves (shapes mirror recorded engine answers in ``ovirt-samples/manageiq``):

- SSO: ``POST /ovirt-engine/sso/oauth/token`` (``grant_type=password``) answers
  ``{access_token, scope, exp, token_type}``; bad credentials get HTTP 400 with
  ``{"error_code": "access_denied", "error": "Cannot authenticate user ..."}`` as a real engine does.
  ``POST /ovirt-engine/services/sso-logout`` revokes a token (the SDK calls it on ``close()``).
- API (``Authorization: Bearer <token>``; a missing, unknown or expired token gets the engine's 401 HTML page
  with ``WWW-Authenticate: Basic realm="RESTAPI"``): the root ``/ovirt-engine/api``; ``/vms`` with ``search``,
  ``max`` and ``follow``; ``/vms/{id}`` and its ``reporteddevices``, ``nics`` and ``tags``; ``/tags``,
  ``/clusters``, ``/hosts``, ``/datacenters``, ``/instancetypes`` (each with ``/{id}``); ``/events`` with
  ``from`` and ``max`` (newest first; ``max`` keeps the newest). A missing entity is a 404 with an empty body.
- Search subset: ``field op value`` with fields ``name``, ``status``, ``tag`` (a tag matches VMs that carry it
  or any of its child tags), ``cluster``, ``datacenter``, ``host``, ``id``, ``fqdn``, ``os``, ``description``;
  ops ``=`` and ``!=``; ``*`` wildcards; ``and`` / ``or`` (``and`` binds tighter; juxtaposition is ``and``);
  ``sortby name [asc|desc]``; ``page N`` (page size = ``max``, default 100). An unknown field, a syntax error
  or an unknown sort field yields an empty ``<vms/>`` with 200, as a real engine does.
- Hosts: ``/hosts`` with ``search`` (fields ``name``, ``status``, ``cluster``, ``datacenter``, ``tag``,
  ``address``, ``id``; an optional ``Hosts:`` prefix), ``max``, paging and ``follow`` (``nics``, ``cluster``
  (``.data_center``)); ``/hosts/{id}`` and ``/hosts/{id}/nics``. Host NICs have the recorded shape (a bridged
  management NIC with IPv4 and IPv6, a bond of two slaves, a VLAN on the bond); host status changes
  (``set_host_status``) and removals (``remove_host``) log the engine's VDS events.
- ``follow``: ``reported_devices``, ``tags``, ``cluster`` (``.data_center``), ``host`` (``.cluster``...),
  ``instance_type``, ``nics``, ``template``, ``original_template``; inlined where the link element would
  be, the sub-collection ``<link rel=...>`` elements are kept (the SDK reads both).

Fault injection (each fault has an optional path prefix and an optional count): latency, HTTP errors with an
Apache HTML body, 502 from a "proxy" (HTML, also for SSO), engine ``<fault>`` errors, dropped connections,
a hung SSO token endpoint, expiring all tokens. Every request is counted (method, path, query, status).

Use it as a context manager in tests::

    with EngineSimulator(fleet=generate_fleet(20, seed=1)) as sim:
        ...  # sim.url, sim.ca_file, sim.username, sim.password

or standalone: ``python -m ovirt_cloudprovider.simulators.engine --port 8443 --vms 50 --write-config x.conf``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import importlib.resources
import json
import logging
import os
import random
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from ._server import LoopbackServer

log = logging.getLogger(__name__)

API_PREFIX = "/ovirt-engine/api"
SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
ROOT_TAG_ID = "00000000-0000-0000-0000-000000000000"
BLANK_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_USERNAME = "admin@internal"
DEFAULT_PASSWORD = "sim-Engine-p4ss"  # deliberately distinctive: tests grep outputs for it
DEFAULT_PAGE_SIZE = 100  # the engine's SearchResultsLimit default when a search has "page" but no max
PRODUCT_VERSION = (4, 5, 5, 1)  # major, minor, revision, build
PRODUCT_FULL_VERSION = "4.5.5-1.el8"

# oVirt AuditLogType codes (ovirt-engine backend/.../common/AuditLogType.java) used for /events.
VDC_START = 1
USER_VDC_LOGIN = 30
USER_VDC_LOGOUT = 31
USER_RUN_VM = 32  # "VM ${VmName} started on Host ${VdsName}"
USER_STOP_VM = 33
USER_ADD_VM = 34
USER_UPDATE_VM = 35
VM_DOWN = 61
VM_MIGRATION_START = 62
VM_MIGRATION_DONE = 63
USER_INITIATED_SHUTDOWN_VM = 73
USER_REMOVE_VM_FINISHED = 113  # 36 (USER_REMOVE_VM) was dropped; 36 is now USER_ADD_VM_TEMPLATE_FAILURE
USER_VDC_LOGIN_FAILED = 114
VM_NOT_RESPONDING = 126
VM_SET_TO_UNKNOWN_STATUS = 142
USER_INITIATED_RUN_VM = 150
USER_STARTED_VM = 153
USER_REBOOT_VM = 157
USER_ATTACH_TAG_TO_VM = 440
USER_DETACH_VM_FROM_TAG = 446
USER_SUSPEND_VM_OK = 503
VM_PAUSED = 1025
# Host codes as ovirt-engine's AuditLogType.java numbers them (texts from AuditLogMessages.properties).
VDS_FAILURE = 12  # "Host h is non responsive." (VdsManager)
VDS_DETECTED = 13  # "Status of host h was set to Up." (InitVdsOnUpCommand)
VDS_ACTIVATE = 16  # "Activation of host h initiated by u." (ActivateVdsCommand)
USER_VDS_START = 20  # "Host h was started by u." (power management: StartVdsCommand)
USER_VDS_STOP = 21  # "Host h was stopped by u." (power management: StopVdsCommand, VdsPowerDownCommand)
USER_REMOVE_VDS = 44  # "Host h was removed by u."
USER_VDS_MAINTENANCE_WITHOUT_REASON = 620  # "Host h was switched to Maintenance mode by u." (MaintenanceVdsCommand)
HOST_STATUSES = frozenset({
    "connecting", "down", "error", "initializing", "install_failed", "installing", "installing_os", "kdumping",
    "maintenance", "non_operational", "non_responsive", "pending_approval", "preparing_for_maintenance", "reboot",
    "unassigned", "up",
})
OVIRTMGMT_NETWORK_ID = "b6a660fd-f1ff-4d26-b535-91fae6d42a3f"

VM_STATUSES = frozenset({
    "down", "image_locked", "migrating", "not_responding", "paused", "powering_down", "powering_up",
    "reboot_in_progress", "restoring_state", "saving_state", "suspended", "unknown", "up", "wait_for_launch",
})
# Statuses in which the engine still shows what the guest agent reported (fqdn, OS, reported devices).
GUEST_VISIBLE_STATUSES = frozenset({
    "up", "migrating", "powering_down", "reboot_in_progress", "paused", "not_responding", "unknown",
    "saving_state",
})
# Statuses in which the VM runs on a host.
ON_HOST_STATUSES = GUEST_VISIBLE_STATUSES | {"powering_up", "wait_for_launch", "restoring_state"}
# Statuses from which reaching "up" logs USER_RUN_VM ("VM started on Host").
_STARTING = frozenset({"down", "suspended", "powering_up", "wait_for_launch", "restoring_state"})
GiB = 1024**3

_HTML_401 = b"<html><head><title>Error</title></head><body>Unauthorized</body></html>"
_HTML_404 = b"<html><head><title>Error</title></head><body>Not Found</body></html>"
_XML_CT = "application/xml;charset=UTF-8"
_JSON_CT = "application/json"
_HTML_CT = "text/html;charset=UTF-8"
_SERVER_HEADER = "Apache/2.4.37 (centos) OpenSSL/1.1.1k mod_auth_gssapi/1.6.1"


# --- TLS material --------------------------------------------------------------------------------

def tls_paths() -> tuple[str, str, str]:
    """(ca.pem, server.pem, server-key.pem) of the shared test TLS material, as file paths."""
    base = importlib.resources.files("ovirt_cloudprovider.simulators") / "tls"
    return str(base / "ca.pem"), str(base / "server.pem"), str(base / "server-key.pem")


# --- the fleet -----------------------------------------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


@dataclass
class GuestDevice:
    """One network device as the guest agent reports it (a ``reported_device``)."""

    name: str
    mac: str
    ips: list[str] = field(default_factory=list)


@dataclass
class GuestOS:
    distribution: str
    version: str
    kernel: str
    architecture: str = "x86_64"
    codename: str = ""
    family: str = "Linux"


@dataclass
class SimDataCenter:
    id: str
    name: str
    description: str = ""


@dataclass
class SimCluster:
    id: str
    name: str
    datacenter_id: str
    architecture: str = "x86_64"
    cpu_type: str = "Intel Skylake Server IBRS SSBD Family"


@dataclass
class SimHostNic:
    id: str
    name: str
    mac: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    bridged: bool = False
    network_id: str | None = None
    slaves: tuple[str, ...] = ()  # names of the bond's slave NICs
    vlan: int | None = None
    base_interface: str | None = None


@dataclass
class SimHost:
    id: str
    name: str
    address: str
    cluster_id: str
    status: str = "up"
    system_uuid: str = ""  # the SMBIOS uuid (hardware_information.uuid), upper case as engines report it
    kernel: str = "4.18.0-513.5.1.el8_9.x86_64"
    nics: list[SimHostNic] = field(default_factory=list)
    tag_ids: set[str] = field(default_factory=set)


@dataclass
class SimTag:
    id: str
    name: str
    parent_id: str | None = ROOT_TAG_ID
    description: str = ""


@dataclass
class SimInstanceType:
    id: str
    name: str
    sockets: int
    cores: int
    memory: int


@dataclass
class SimVM:
    id: str
    name: str
    status: str
    cluster_id: str
    host_id: str | None = None
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    vnic_macs: list[str] = field(default_factory=list)  # the VM's vNICs nic1, nic2, ...
    guest_agent: bool = True
    fqdn: str | None = None  # what the agent reports (shown while the VM runs)
    guest_os: GuestOS | None = None
    devices: list[GuestDevice] = field(default_factory=list)
    sockets: int = 1
    cores: int = 1
    threads: int = 1
    memory: int = 2 * GiB
    os_type: str = "other_linux"
    instance_type_id: str | None = None
    template_id: str = BLANK_TEMPLATE_ID
    creation_time: dt.datetime = field(default_factory=_now)
    start_time: dt.datetime | None = None
    stop_time: dt.datetime | None = None


@dataclass
class SimEvent:
    id: int
    code: int
    description: str
    time: dt.datetime
    severity: str = "normal"
    vm_id: str | None = None
    host_id: str | None = None
    cluster_id: str | None = None
    datacenter_id: str | None = None
    user: bool = True
    correlation_id: str | None = None


class Fleet:
    """The engine's inventory: data centers, clusters, hosts, tags, VMs and the event log.

    Every mutation is thread-safe and appends the events a real engine would log (AuditLogType codes).
    Guest-agent reports (addresses, FQDN) change without an event, as on a real engine.
    """

    def __init__(self, *, seed: int = 0, first_event_id: int = 1000) -> None:
        self.lock = threading.RLock()
        self._rng = random.Random(seed ^ 0x5EED)
        self.datacenters: dict[str, SimDataCenter] = {}
        self.clusters: dict[str, SimCluster] = {}
        self.hosts: dict[str, SimHost] = {}
        self.tags: dict[str, SimTag] = {ROOT_TAG_ID: SimTag(ROOT_TAG_ID, "root", None, "root")}
        self.instance_types: dict[str, SimInstanceType] = {}
        self.vms: dict[str, SimVM] = {}
        self.events: list[SimEvent] = []
        self._next_event_id = first_event_id
        self.user_id = self._uuid()
        self.user_name = "admin@internal-authz"
        self.instance_id = self._uuid()

    # --- ids -------------------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _mac(self) -> str:
        return _rand_mac(self._rng, 0x56, 0x6F)

    # --- lookups ---------------------------------------------------------------------------------

    def vm(self, ref: str) -> SimVM:
        """The VM with this id or name (KeyError if none)."""
        with self.lock:
            if ref in self.vms:
                return self.vms[ref]
            for vm in self.vms.values():
                if vm.name == ref:
                    return vm
        raise KeyError(f"no VM {ref!r}")

    def tag(self, ref: str) -> SimTag:
        with self.lock:
            if ref in self.tags:
                return self.tags[ref]
            for tag in self.tags.values():
                if tag.name == ref:
                    return tag
        raise KeyError(f"no tag {ref!r}")

    def cluster(self, ref: str) -> SimCluster:
        with self.lock:
            if ref in self.clusters:
                return self.clusters[ref]
            for c in self.clusters.values():
                if c.name == ref:
                    return c
        raise KeyError(f"no cluster {ref!r}")

    def host(self, ref: str) -> SimHost:
        with self.lock:
            if ref in self.hosts:
                return self.hosts[ref]
            for h in self.hosts.values():
                if h.name == ref:
                    return h
        raise KeyError(f"no host {ref!r}")

    def tag_descendants(self, tag_ids: Iterable[str]) -> set[str]:
        """The given tags and all their children, grandchildren, ..."""
        with self.lock:
            result = set(tag_ids)
            frontier = list(result)
            while frontier:
                parent = frontier.pop()
                for t in self.tags.values():
                    if t.parent_id == parent and t.id not in result:
                        result.add(t.id)
                        frontier.append(t.id)
            return result

    def last_event_id(self) -> int:
        with self.lock:
            return self.events[-1].id if self.events else 0

    # --- inventory building ----------------------------------------------------------------------

    def add_datacenter(self, name: str, *, description: str = "") -> SimDataCenter:
        with self.lock:
            dc = SimDataCenter(self._uuid(), name, description)
            self.datacenters[dc.id] = dc
            return dc

    def add_cluster(self, name: str, datacenter: str, *, architecture: str = "x86_64",
                    cpu_type: str | None = None) -> SimCluster:
        with self.lock:
            dc = next(d for d in self.datacenters.values() if d.id == datacenter or d.name == datacenter)
            default_cpu = "Intel Skylake Server IBRS SSBD Family" if architecture == "x86_64" else "AARCH64"
            c = SimCluster(self._uuid(), name, dc.id, architecture, cpu_type or default_cpu)
            self.clusters[c.id] = c
            return c

    def add_host(self, name: str, cluster: str, *, address: str | None = None, status: str = "up",
                 host_id: str | None = None, tags: Iterable[str] = (), ip: str | None = None) -> SimHost:
        """Add a host with the NICs of a typical oVirt host: ``eth0`` carrying the ovirtmgmt bridge (``ip``, by
        default 192.168.<n>.<m>, and an IPv6 address), ``bond0`` of ``eth1`` + ``eth2`` (storage network)
        and the VLAN ``bond0.100`` on it."""
        if status not in HOST_STATUSES:
            raise ValueError(f"unknown host status {status!r}")
        with self.lock:
            c = self.cluster(cluster)
            n = len(self.hosts) + 1
            hid = host_id or self._uuid()
            # SMBIOS uuid and MACs derived from the host id, not drawn from the fleet's generator: adding hosts
            # leaves the ids and MACs of a seeded fleet's VMs as they were.
            h = SimHost(hid, name, address or f"{name}.example.com", c.id, status,
                        system_uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{hid}/smbios")).upper())
            mgmt = ip or f"192.168.{n // 250}.{n % 250 + 1}"

            def nid(nic: str) -> str:
                return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{h.id}/{nic}"))

            def mac(nic: str) -> str:
                raw = uuid.uuid5(uuid.NAMESPACE_OID, f"{h.id}/{nic}/mac").bytes[:3]
                return "56:6f:" + ":".join(f"{b:02x}" for b in (0x10, *raw))[:14]

            h.nics = [
                SimHostNic(nid("eth0"), "eth0", mac("eth0"), mgmt, f"fd00:ab::{n:x}", bridged=True,
                           network_id=OVIRTMGMT_NETWORK_ID),
                SimHostNic(nid("eth1"), "eth1", mac("eth1")),
                SimHostNic(nid("eth2"), "eth2", mac("eth2")),
                SimHostNic(nid("bond0"), "bond0", mac("bond0"), f"10.10.{n // 250}.{n % 250 + 1}",
                           slaves=("eth1", "eth2")),
                SimHostNic(nid("bond0.100"), "bond0.100", None, f"10.100.{n // 250}.{n % 250 + 1}", vlan=100,
                           base_interface="bond0"),
            ]
            h.tag_ids = {self._ensure_tag(t).id for t in tags}
            self.hosts[h.id] = h
            return h

    def set_host_status(self, ref: str, status: str) -> SimHost:
        """Change a host's status, with the events the engine logs (maintenance, activation, failure)."""
        if status not in HOST_STATUSES:
            raise ValueError(f"unknown host status {status!r}")
        with self.lock:
            h = self.host(ref)
            old, h.status = h.status, status
            if old == status:
                return h
            u = self.user_name
            # MaintenanceVdsCommand logs when the host starts preparing; HostMonitoring then moves it from
            # preparing_for_maintenance to maintenance without an audit log
            if status in ("maintenance", "preparing_for_maintenance") and old != "preparing_for_maintenance":
                self.add_event(USER_VDS_MAINTENANCE_WITHOUT_REASON,
                               f"Host {h.name} was switched to Maintenance mode by {u}.", host_id=h.id)
            elif status == "up":
                if old in ("maintenance", "preparing_for_maintenance"):
                    self.add_event(VDS_ACTIVATE, f"Activation of host {h.name} initiated by {u}.", host_id=h.id)
                elif old == "down":
                    self.add_event(USER_VDS_START, f"Host {h.name} was started by {u}.", host_id=h.id)
                self.add_event(VDS_DETECTED, f"Status of host {h.name} was set to Up.", host_id=h.id, user=False)
            elif status == "down":  # only power management (or an SSH power-down) sets a host down
                self.add_event(USER_VDS_STOP, f"Host {h.name} was stopped by {u}.", host_id=h.id)
            elif status == "non_responsive":
                self.add_event(VDS_FAILURE, f"Host {h.name} is non responsive.", host_id=h.id, severity="error",
                               user=False)
            return h

    def remove_host(self, ref: str) -> None:
        with self.lock:
            h = self.host(ref)
            del self.hosts[h.id]
            self.add_event(USER_REMOVE_VDS, f"Host {h.name} was removed by {self.user_name}.", host_id=h.id)

    def add_tag(self, name: str, *, parent: str | None = None, description: str = "") -> SimTag:
        """Create a tag (a child of ``parent`` when given, else a top-level tag under ``root``)."""
        with self.lock:
            parent_id = self.tag(parent).id if parent else ROOT_TAG_ID
            t = SimTag(self._uuid(), name, parent_id, description or name)
            self.tags[t.id] = t
            return t

    def add_instance_type(self, name: str, *, sockets: int, cores: int, memory: int) -> SimInstanceType:
        with self.lock:
            it = SimInstanceType(self._uuid(), name, sockets, cores, memory)
            self.instance_types[it.id] = it
            return it

    def _ensure_tag(self, name: str) -> SimTag:
        try:
            return self.tag(name)
        except KeyError:
            return self.add_tag(name)

    def _pick_host(self, cluster_id: str) -> str | None:
        hosts = [h.id for h in self.hosts.values() if h.cluster_id == cluster_id]
        return self._rng.choice(hosts) if hosts else None

    # --- events ----------------------------------------------------------------------------------

    def add_event(self, code: int, description: str, *, vm: SimVM | None = None, severity: str = "normal",
                  user: bool = True, host_id: str | None = None) -> SimEvent:
        """Append one audit-log event (what ``/events`` returns)."""
        with self.lock:
            self._next_event_id += 1
            cluster_id = vm.cluster_id if vm else None
            dc_id = self.clusters[cluster_id].datacenter_id if cluster_id in self.clusters else None
            ev = SimEvent(
                id=self._next_event_id, code=code, description=description, time=_now(), severity=severity,
                vm_id=vm.id if vm else None, host_id=host_id if host_id else (vm.host_id if vm else None),
                cluster_id=cluster_id, datacenter_id=dc_id, user=user,
                correlation_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            )
            self.events.append(ev)
            return ev

    def _host_name(self, host_id: str | None) -> str:
        return self.hosts[host_id].name if host_id in self.hosts else "N/A"

    # --- VM mutations ----------------------------------------------------------------------------

    def add_vm(
        self, name: str, *, status: str = "up", cluster: str | None = None,
        tags: Iterable[str] = ("kubernetes",),
        guest_agent: bool = True, fqdn: str | None = None, devices: Sequence[GuestDevice] | None = None,
        guest_os: GuestOS | None = None, sockets: int = 1, cores: int = 2, threads: int = 1,
        memory: int = 4 * GiB, os_type: str = "rhel_9x64", instance_type: str | None = None,
        description: str = "", vm_id: str | None = None, host: str | None = None, event: bool = True,
    ) -> SimVM:
        """Create a VM (appends USER_ADD_VM unless ``event=False``).

        With a guest agent and no ``devices`` it reports one ``eth0`` with an IPv4 address; ``fqdn=None`` means
        ``<name>.example.com``, ``fqdn=""`` no FQDN; ``guest_os=None`` a RHEL 9 guest. Tags that do not
        exist are created (top-level).
        """
        if status not in VM_STATUSES:
            raise ValueError(f"unknown VM status {status!r}")
        with self.lock:
            if any(v.name == name for v in self.vms.values()):
                raise ValueError(f"a VM named {name!r} exists already")
            c = self.cluster(cluster) if cluster else next(iter(self.clusters.values()))
            mac = self._mac()
            if devices is None:
                r = self._rng
                ip = f"10.{r.randrange(1, 250)}.{r.randrange(256)}.{r.randrange(1, 255)}"
                devices = [GuestDevice("eth0", mac, [ip])]
            if guest_os is None and guest_agent:
                kernel = "5.14.0-362.13.1.el9_3." + c.architecture
                guest_os = GuestOS("Red Hat Enterprise Linux", "9.3", kernel, c.architecture, "Plow")
            vm = SimVM(
                id=vm_id or self._uuid(), name=name, status=status, cluster_id=c.id, description=description,
                tag_ids=[self._ensure_tag(t).id for t in tags], vnic_macs=[mac], guest_agent=guest_agent,
                fqdn=(fqdn or None) if fqdn is not None else (f"{name}.example.com" if guest_agent else None),
                guest_os=guest_os,
                devices=list(devices) if guest_agent else [], sockets=sockets, cores=cores, threads=threads,
                memory=memory, os_type=os_type,
                instance_type_id=(next(i.id for i in self.instance_types.values() if i.name == instance_type)
                                  if instance_type else None),
            )
            now = _now()
            vm.stop_time = now - dt.timedelta(days=1)  # the engine keeps the last stop time of running VMs
            if status in ON_HOST_STATUSES:
                vm.host_id = self.host(host).id if host else self._pick_host(c.id)
                vm.start_time = now
            self.vms[vm.id] = vm
            if event:
                self.add_event(USER_ADD_VM, f"VM {name} was created by {self.user_name}.", vm=vm)
            return vm

    def remove_vm(self, ref: str) -> None:
        with self.lock:
            vm = self.vm(ref)
            del self.vms[vm.id]
            self.add_event(USER_REMOVE_VM_FINISHED, f"VM {vm.name} was successfully removed.", vm=vm)

    # complexity: one branch per engine status transition and the event it logs
    def set_status(self, ref: str, status: str) -> SimVM:  # noqa: C901
        """Change a VM's status, with the host/start/stop bookkeeping and the events the engine logs."""
        if status not in VM_STATUSES:
            raise ValueError(f"unknown VM status {status!r}")
        with self.lock:
            vm = self.vm(ref)
            old = vm.status
            if old == status:
                return vm
            vm.status = status
            if status in ON_HOST_STATUSES and vm.host_id is None:
                vm.host_id = self._pick_host(vm.cluster_id)
                vm.start_time = _now()
            host = self._host_name(vm.host_id)
            u = self.user_name
            if status == "up" and old in _STARTING:
                if old == "down":
                    self.add_event(USER_STARTED_VM, f"VM {vm.name} was started by {u} (Host: {host}).", vm=vm)
                self.add_event(USER_RUN_VM, f"VM {vm.name} started on Host {host}", vm=vm)
            elif status == "down":
                self.add_event(USER_STOP_VM, f"VM {vm.name} powered off by {u} (Host: {host}).", vm=vm)
                self.add_event(VM_DOWN, f"VM {vm.name} is down. Exit message: Admin shut down from the "
                               "engine", vm=vm, user=False)
            elif status == "suspended":
                self.add_event(USER_SUSPEND_VM_OK, f"VM {vm.name} on Host {host} was suspended.", vm=vm)
            elif status == "not_responding":
                self.add_event(VM_NOT_RESPONDING, f"VM {vm.name} is not responding.", vm=vm,
                               severity="warning", user=False)
            elif status == "unknown":
                self.add_event(VM_SET_TO_UNKNOWN_STATUS, f"VM {vm.name} was set to the Unknown status.",
                               vm=vm, severity="warning", user=False)
            elif status == "paused":
                self.add_event(VM_PAUSED, f"VM {vm.name} has been paused.", vm=vm, user=False)
            elif status in ("powering_up", "wait_for_launch"):
                self.add_event(USER_INITIATED_RUN_VM, f"Starting VM {vm.name} was initiated by {u}.", vm=vm)
            elif status == "powering_down":
                self.add_event(USER_INITIATED_SHUTDOWN_VM,
                               f"VM shutdown initiated by {u} on VM {vm.name} (Host: {host}).", vm=vm)
            elif status == "reboot_in_progress":
                self.add_event(USER_REBOOT_VM, f"VM {vm.name} was restarted by {u}.", vm=vm)
            elif status == "migrating":
                self.add_event(VM_MIGRATION_START, f"Migration started (VM: {vm.name}, Source: {host}, "
                               f"User: {u}).", vm=vm)
            if status not in ON_HOST_STATUSES:
                vm.host_id = None
                vm.stop_time = _now()
            return vm

    def set_tags(self, ref: str, tags: Iterable[str]) -> SimVM:
        """Set a VM's tags (created when new); one attach/detach event per change."""
        with self.lock:
            vm = self.vm(ref)
            wanted = [self._ensure_tag(t).id for t in tags]
            for tid in [t for t in vm.tag_ids if t not in wanted]:
                vm.tag_ids.remove(tid)
                self.add_event(USER_DETACH_VM_FROM_TAG, f"Tag {self.tags[tid].name} was detached from VM(s) "
                               f"{vm.name} by {self.user_name}.", vm=vm)
            for tid in [t for t in wanted if t not in vm.tag_ids]:
                vm.tag_ids.append(tid)
                self.add_event(USER_ATTACH_TAG_TO_VM, f"Tag {self.tags[tid].name} was attached to VM(s) "
                               f"{vm.name} by {self.user_name}.", vm=vm)
            return vm

    def tag_vm(self, ref: str, tag: str) -> SimVM:
        with self.lock:
            vm = self.vm(ref)
            return self.set_tags(vm.id, [self.tags[t].name for t in vm.tag_ids] + [tag])

    def untag_vm(self, ref: str, tag: str) -> SimVM:
        with self.lock:
            vm = self.vm(ref)
            return self.set_tags(vm.id, [self.tags[t].name for t in vm.tag_ids if self.tags[t].name != tag])

    def set_devices(self, ref: str, devices: Sequence[GuestDevice]) -> SimVM:
        """Replace what the guest agent reports (no event: the engine logs none for agent updates)."""
        with self.lock:
            vm = self.vm(ref)
            vm.devices = list(devices)
            vm.guest_agent = vm.guest_agent or bool(devices)
            return vm

    def set_ips(self, ref: str, ips: Sequence[str], *, device: str = "eth0") -> SimVM:
        """Set the addresses the agent reports on one device (created with the first vNIC's MAC if new)."""
        with self.lock:
            vm = self.vm(ref)
            for d in vm.devices:
                if d.name == device:
                    d.ips = list(ips)
                    break
            else:
                mac = vm.vnic_macs[0] if vm.vnic_macs else self._mac()
                vm.devices.append(GuestDevice(device, mac, list(ips)))
            vm.guest_agent = True
            return vm

    def set_guest(self, ref: str, *, guest_agent: bool | None = None, fqdn: str | None = None,
                  guest_os: GuestOS | None = None) -> SimVM:
        """Change the guest agent's presence, FQDN or OS report (no event)."""
        with self.lock:
            vm = self.vm(ref)
            if guest_agent is not None:
                vm.guest_agent = guest_agent
            if fqdn is not None:
                vm.fqdn = fqdn or None
            if guest_os is not None:
                vm.guest_os = guest_os
            return vm

    def migrate(self, ref: str, host: str | None = None) -> SimVM:
        """Live-migrate a running VM to ``host`` (another host of its cluster when omitted)."""
        with self.lock:
            vm = self.vm(ref)
            if vm.host_id is None:
                raise ValueError(f"VM {vm.name} does not run")
            if host:
                target = self.host(host)
            else:
                others = [h for h in self.hosts.values()
                          if h.cluster_id == vm.cluster_id and h.id != vm.host_id]
                if not others:
                    raise ValueError(f"no other host in the cluster of VM {vm.name}")
                target = others[0]
            src = self._host_name(vm.host_id)
            self.add_event(VM_MIGRATION_START, f"Migration started (VM: {vm.name}, Source: {src}, "
                           f"Destination: {target.name}, User: {self.user_name}).", vm=vm)
            vm.host_id = target.id
            self.add_event(VM_MIGRATION_DONE, f"Migration completed (VM: {vm.name}, Source: {src}, "
                           f"Destination: {target.name}, Duration: 4 seconds, Total: 4 seconds, "
                           "Actual downtime: 52ms)", vm=vm, user=False)
            return vm

    def rename(self, ref: str, new_name: str) -> SimVM:
        with self.lock:
            vm = self.vm(ref)
            vm.name = new_name
            self.add_event(USER_UPDATE_VM, f"VM {new_name} configuration was updated by {self.user_name}.",
                           vm=vm)
            return vm


def _rand_mac(rng: random.Random, *prefix: int) -> str:
    octets = list(prefix) + [rng.randrange(256) for _ in range(6 - len(prefix))]
    return ":".join(f"{o:02x}" for o in octets)


def _container_devices(rng: random.Random, pod_octet: int) -> list[GuestDevice]:
    """Interfaces a Kubernetes node's guest agent reports besides its real NICs (to be ignored later)."""
    devs = [GuestDevice("docker0", _rand_mac(rng, 0x02, 0x42), ["172.17.0.1"])]
    kind = rng.randrange(3)
    if kind == 0:  # calico
        devs.append(GuestDevice("tunl0", "00:00:00:00:00:00", [f"10.244.{pod_octet}.0"]))
        for _ in range(rng.randrange(1, 3)):
            devs.append(GuestDevice(f"cali{rng.randrange(16**11):011x}", "ee:ee:ee:ee:ee:ee",
                                    ["fe80::ecee:eeff:feee:eeee"]))
    elif kind == 1:  # flannel
        devs.append(GuestDevice("flannel.1", _rand_mac(rng, 0x0A), [f"10.244.{pod_octet}.0"]))
        devs.append(GuestDevice("cni0", _rand_mac(rng, 0x0E), [f"10.244.{pod_octet}.1"]))
    devs.append(GuestDevice(f"veth{rng.randrange(16**7):07x}", _rand_mac(rng, 0x1A),
                            [f"fe80::18{rng.randrange(256):02x}:ff:fe00:{rng.randrange(16**4):x}"]))
    return devs


_GUEST_OSES = (
    # os_type, distribution, version, kernel (arch appended), codename
    ("rhel_9x64", "Red Hat Enterprise Linux", "9.3", "5.14.0-362.13.1.el9_3.", "Plow"),
    ("rhel_8x64", "Red Hat Enterprise Linux", "8.9", "4.18.0-513.9.1.el8_9.", "Ootpa"),
    ("rhel_9x64", "CentOS Stream", "9", "5.14.0-391.el9.", ""),
    ("other_linux", "Ubuntu", "22.04", "5.15.0-91-generic", "jammy"),
    ("debian_9", "Debian GNU/Linux", "12", "6.1.0-17-", "bookworm"),
    ("other_linux", "Fedora Linux", "39", "6.6.8-200.fc39.", ""),
)


def _guest_os(rng: random.Random, arch: str) -> tuple[str, GuestOS]:
    os_type, dist, ver, kernel, codename = rng.choice(_GUEST_OSES)
    if kernel.endswith("."):
        kernel += arch
    elif kernel.endswith("-"):
        kernel += "amd64" if arch == "x86_64" else "arm64"
    if arch == "aarch64" and os_type.startswith("rhel"):
        os_type = os_type.replace("x64", "")  # oVirt names the aarch64 variants without "x64"
    return os_type, GuestOS(dist, ver, kernel, arch, codename)


def generate_fleet(
    n: int, seed: int = 0, *, untagged: int = 0, control_plane: int = 3, quirks: bool = True,
) -> Fleet:
    """A realistic, deterministic fleet: ``n`` VMs tagged for Kubernetes plus ``untagged`` other VMs.

    Layout: data centers ``dc-east`` (clusters ``east-a``, ``east-b``, x86_64) and ``dc-west`` (cluster
    ``west-arm``, aarch64), three hosts per cluster; tags ``kubernetes`` with the children
    ``k8s-control-plane`` and ``k8s-worker``, plus an unrelated ``backup``. Of the ``n`` Kubernetes VMs the
    first ``control_plane`` are ``k8s-cp-N`` (tag ``k8s-control-plane``, always up); the others are
    ``k8s-worker-NNNN`` tagged ``kubernetes`` or ``k8s-worker`` (so ``tag=kubernetes`` matches all ``n``).
    Workers are mostly up, some down/suspended/migrating/paused/not_responding/unknown/powering_up; a few
    running ones have no guest agent; guests report eth0 (about half dual-stack, global IPv6 + link-local),
    sometimes an eth1, ``lo``, and container interfaces (docker0, cali*, tunl0, flannel.1, cni0, veth*).
    With ``quirks`` a few agents report no FQDN or ``localhost.localdomain``, as real guests do.
    """
    fleet = Fleet(seed=seed, first_event_id=1000 + seed % 1000)
    rng = random.Random(seed)
    with fleet.lock:
        fleet.add_event(VDC_START, "Starting oVirt Engine.", user=False)
        east = fleet.add_datacenter("dc-east", description="East data center")
        west = fleet.add_datacenter("dc-west", description="West data center")
        clusters = [fleet.add_cluster("east-a", east.id), fleet.add_cluster("east-b", east.id),
                    fleet.add_cluster("west-arm", west.id, architecture="aarch64")]
        for c in clusters:
            for h in range(1, 4):
                fleet.add_host(f"{c.name}-host{h:02d}", c.id)
        k8s = fleet.add_tag("kubernetes", description="Kubernetes nodes")
        fleet.add_tag("k8s-control-plane", parent=k8s.name)
        fleet.add_tag("k8s-worker", parent=k8s.name)
        fleet.add_tag("backup", description="nightly backup")
        fleet.add_instance_type("Small", sockets=1, cores=1, memory=2 * 1024**3)
        fleet.add_instance_type("Medium", sockets=1, cores=2, memory=4 * 1024**3)
        fleet.add_instance_type("Large", sockets=2, cores=2, memory=8 * 1024**3)
        instance_types = list(fleet.instance_types.values())
        statuses = (["up"] * 80 + ["down"] * 7 + ["suspended"] * 3 + ["powering_up"] * 2
                    + ["not_responding"] * 2 + ["unknown"] * 2 + ["migrating"] * 2 + ["paused"] * 2)

        for i in range(n + untagged):
            k8s_vm = i < n
            cluster = clusters[0] if i < control_plane else rng.choice(clusters)
            dc = fleet.datacenters[cluster.datacenter_id]
            if not k8s_vm:
                name = f"{rng.choice(['db', 'web', 'legacy-app', 'ci-runner'])}-{i - n:03d}"
                tags = ["backup"] if rng.random() < 0.5 else []
                status = rng.choice(statuses)
            elif i < control_plane:
                name, tags, status = f"k8s-cp-{i}", ["k8s-control-plane"], "up"
            else:
                name = f"k8s-worker-{i:04d}"
                tags = ["kubernetes" if i % 2 else "k8s-worker"] + (["backup"] if rng.random() < 0.1 else [])
                status = rng.choice(statuses)
            agent = status not in ("down", "suspended") and not (k8s_vm and i >= control_plane
                                                                 and rng.random() < 0.05)
            os_type, gos = _guest_os(rng, cluster.architecture)
            it = rng.choice(instance_types) if rng.random() < 0.3 else None
            if it:
                sockets, cores, memory = it.sockets, it.cores, it.memory
            else:
                sockets, cores = rng.choice([1, 2, 4]), rng.choice([1, 2])
                memory = rng.choice([2, 4, 8, 16]) * GiB
            mac0 = fleet._mac()
            octet3 = i // 250 % 250
            ipv4 = f"10.{clusters.index(cluster) + 10}.{octet3}.{i % 250 + 2}"
            ips = [ipv4]
            if rng.random() < 0.5:
                ips.append(f"2001:db8:{clusters.index(cluster) + 10:x}:{octet3:x}::{i % 250 + 2:x}")
            ips.append(f"fe80::546f:{rng.randrange(256):02x}ff:fe{rng.randrange(256):02x}:"
                       f"{rng.randrange(16**4):x}")
            devices = [GuestDevice("eth0", mac0, ips)]
            macs = [mac0]
            if rng.random() < 0.25:
                mac1 = fleet._mac()
                macs.append(mac1)
                ip1 = f"192.168.{100 + clusters.index(cluster)}.{i % 250 + 2}"
                devices.append(GuestDevice("eth1", mac1, [ip1]))
            if rng.random() < 0.3:
                devices.insert(0, GuestDevice("lo", "00:00:00:00:00:00", ["127.0.0.1", "::1"]))
            if k8s_vm:
                devices += _container_devices(rng, i % 250)
            fqdn: str | None = f"{name}.{dc.name}.example.com"
            if quirks and agent:
                roll = rng.random()
                if roll < 0.03:
                    fqdn = None
                elif roll < 0.05:
                    fqdn = "localhost.localdomain"
            vm = fleet.add_vm(
                name, status=status, cluster=cluster.id, tags=tags, guest_agent=agent, fqdn=fqdn or "",
                devices=devices, guest_os=gos, sockets=sockets, cores=cores, threads=1, memory=memory,
                os_type=os_type, instance_type=it.name if it else None, event=False,
                description="Kubernetes node" if k8s_vm else "",
            )
            vm.vnic_macs = macs
            vm.creation_time = _now() - dt.timedelta(days=rng.randrange(1, 400), seconds=rng.randrange(86400))
    return fleet


# --- XML rendering -------------------------------------------------------------------------------
#
# Documents are built as small trees of ``Node`` tuples and serialized with the engine's layout
# (4-space indentation, ``<tag></tag>`` for an empty string, ``<tag/>`` for no content).

Node = tuple[str, tuple[tuple[str, str], ...], "list[Node] | str | None"]
FollowTree = dict[str, "FollowTree"]


def E(tag: str, *children: Node | None, **attrs: str) -> Node:
    """An element with child elements (``None`` children are skipped)."""
    return (tag, tuple(attrs.items()), [c for c in children if c is not None])


def T(tag: str, value: object) -> Node:
    """A text element; booleans are written as the engine does (``true``/``false``)."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return (tag, (), text)


def R(tag: str, collection: str, obj_id: str) -> Node:
    """A link to another entity: ``<tag href=".../collection/id" id="id"/>``."""
    return (tag, (("href", f"{API_PREFIX}/{collection}/{obj_id}"), ("id", obj_id)), None)


def _links(base: str, rels: Iterable[str]) -> list[Node]:
    return [(("link", (("href", f"{base}/{rel}"), ("rel", rel)), None)) for rel in rels]


def _actions(base: str, rels: Iterable[str]) -> Node:
    return E("actions", *_links(base, rels))


def _version(major: int, minor: int) -> list[Node]:
    return [T("major", major), T("minor", minor)]


class _Serializer:
    """Writes Node trees; full cluster/host/data_center elements are serialized once per indentation."""

    _SHARED = frozenset({"cluster", "host", "data_center"})

    def __init__(self) -> None:
        self._memo: dict[tuple[int, str], str] = {}

    def write(self, node: Node, ind: str, out: list[str]) -> None:
        tag, _attrs, body = node
        if tag in self._SHARED and isinstance(body, list) and body:
            key = (id(node), ind)
            text = self._memo.get(key)
            if text is None:
                buf: list[str] = []
                self._write(node, ind, buf)
                text = self._memo[key] = "".join(buf)
            out.append(text)
        else:
            self._write(node, ind, out)

    def _write(self, node: Node, ind: str, out: list[str]) -> None:
        tag, attrs, body = node
        a = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in attrs)
        if body is None or (isinstance(body, list) and not body):
            out.append(f"{ind}<{tag}{a}/>\n")
        elif isinstance(body, str):
            out.append(f"{ind}<{tag}{a}>{escape(body)}</{tag}>\n")
        else:
            out.append(f"{ind}<{tag}{a}>\n")
            inner = ind + "    "
            for child in body:
                self.write(child, inner, out)
            out.append(f"{ind}</{tag}>\n")


def to_xml(node: Node, serializer: _Serializer | None = None) -> bytes:
    """One document (with the XML declaration the engine sends)."""
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n']
    (serializer or _Serializer()).write(node, "", out)
    return "".join(out).encode()


_VM_ACTIONS = ("detach", "export", "commitsnapshot", "clone", "reordermacaddresses", "logon", "maintenance",
               "previewsnapshot", "ticket", "thawfilesystems", "undosnapshot", "freezefilesystems",
               "cancelmigration", "reboot", "migrate", "shutdown", "start", "stop", "suspend")
_VM_LINKS = ("applications", "cdroms", "diskattachments", "watchdogs", "graphicsconsoles", "hostdevices",
             "nics", "numanodes", "sessions", "reporteddevices", "snapshots", "backups", "affinitylabels",
             "katelloerrata", "permissions", "tags", "statistics")
_CLUSTER_LINKS = ("affinitygroups", "glusterhooks", "glustervolumes", "enabledfeatures",
                  "externalnetworkproviders", "cpuprofiles", "networkfilters", "networks", "permissions")
_HOST_LINKS = ("fenceagents", "devices", "hooks", "nics", "numanodes", "storage", "networkattachments",
               "storageconnectionextensions", "unmanagednetworks", "externalnetworkproviderconfigurations",
               "affinitylabels", "katelloerrata", "permissions", "tags", "statistics")
_DC_LINKS = ("quotas", "iscsibonds", "qoss", "clusters", "networks", "storagedomains", "permissions")
_MAC_POOL_ID = "58ca604b-017d-0374-0220-00000000014e"
_VM_FOLLOWABLE: dict[str, Any] = {
    "reported_devices": {}, "tags": {}, "nics": {}, "instance_type": {}, "template": {},
    "original_template": {}, "cluster": {"data_center": {}}, "host": {"cluster": {"data_center": {}}},
}


class FollowError(ValueError):
    pass


def parse_follow(value: str | None, allowed: dict[str, Any] = _VM_FOLLOWABLE) -> FollowTree:
    """``"a,b.c"`` -> ``{"a": {}, "b": {"c": {}}}``; raises FollowError for a path the engine can't follow."""
    tree: FollowTree = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        node, spec = tree, allowed
        for part in item.split("."):
            if part not in spec:
                raise FollowError(f"Can't follow '{item}': '{part}' is not a link of this type")
            node = node.setdefault(part, {})
            spec = spec[part]
    return tree


def _reported_device_id(name: str, mac: str) -> str:
    """The engine derives a reported device's id from the bytes of its name and MAC (see the samples)."""
    return str(uuid.UUID(bytes=(name + mac).encode()[:16].ljust(16, b"\0")))


def _follow_key(follow: FollowTree) -> str:
    return json.dumps(follow, sort_keys=True)


class _Renderer:
    """Builds engine v4 XML trees from fleet objects. Use with the fleet lock held."""

    def __init__(self, fleet: Fleet) -> None:
        self.f = fleet
        self._shared: dict[tuple[str, str, str], Node] = {}

    def _memo(self, key: tuple[str, str, str], build: Callable[[], Node]) -> Node:
        node = self._shared.get(key)
        if node is None:
            node = self._shared[key] = build()
        return node

    # data center, cluster, host -----------------------------------------------------------------

    def datacenter(self, dc: SimDataCenter) -> Node:
        def build() -> Node:
            base = f"{API_PREFIX}/datacenters/{dc.id}"
            return E("data_center", T("name", dc.name), T("description", dc.description),
                     *_links(base, _DC_LINKS), T("local", False), T("quota_mode", "disabled"),
                     T("status", "up"), T("storage_format", "v5"),
                     E("supported_versions", E("version", *_version(4, 7))), E("version", *_version(4, 7)),
                     R("mac_pool", "macpools", _MAC_POOL_ID), href=base, id=dc.id)
        return self._memo(("dc", dc.id, ""), build)

    def cluster(self, c: SimCluster, follow: FollowTree) -> Node:
        def build() -> Node:
            base = f"{API_PREFIX}/clusters/{c.id}"
            dc = self.f.datacenters.get(c.datacenter_id)
            return E(
                "cluster", _actions(base, ("resetemulatedmachine", "upgrade", "syncallnetworks")),
                T("name", c.name), T("description", ""), T("comment", ""), *_links(base, _CLUSTER_LINKS),
                T("ballooning_enabled", False),
                E("cpu", T("architecture", c.architecture), T("type", c.cpu_type)),
                E("error_handling", T("on_error", "migrate")), T("firewall_type", "firewalld"),
                T("gluster_service", False), T("ha_reservation", False),
                E("ksm", T("enabled", True), T("merge_across_nodes", True)),
                E("memory_policy", E("over_commit", T("percent", 100))), T("switch_type", "legacy"),
                T("threads_as_cores", False), T("trusted_service", False), T("tunnel_migration", False),
                E("version", *_version(4, 7)), T("virt_service", True),
                self.datacenter(dc) if dc and "data_center" in follow
                else R("data_center", "datacenters", c.datacenter_id),
                R("mac_pool", "macpools", _MAC_POOL_ID),
                R("scheduling_policy", "schedulingpolicies", "b4ed2332-a7ac-4d5f-9596-99a439cb2812"),
                href=base, id=c.id,
            )
        return self._memo(("cluster", c.id, _follow_key(follow)), build)

    def host(self, h: SimHost, follow: FollowTree) -> Node:
        def build() -> Node:
            base = f"{API_PREFIX}/hosts/{h.id}"
            c = self.f.clusters.get(h.cluster_id)
            x86 = c is None or c.architecture == "x86_64"
            n_vms = sum(1 for v in self.f.vms.values() if v.host_id == h.id)
            return E(
                "host", _actions(base, ("refresh", "install", "activate", "deactivate", "upgrade", "fence")),
                T("name", h.name), T("comment", ""), *_links(base, _HOST_LINKS), T("address", h.address),
                T("auto_numa_status", "disable"),
                E("certificate", T("organization", "example.com"),
                  T("subject", f"O=example.com,CN={h.address}")),
                E("cpu", T("name", "Intel Xeon Processor (Skylake)" if x86 else "Neoverse-N1"),
                  T("speed", 2100),
                  E("topology", T("cores", 16), T("sockets", 2), T("threads", 2)),
                  T("type", c.cpu_type if c else "")),
                T("external_status", "ok"),
                E("hardware_information", T("family", "Red Hat Enterprise Linux"),
                  T("manufacturer", "Supermicro"),
                  T("product_name", "SYS-1029P"), T("uuid", h.system_uuid or h.id)),
                T("kdump_status", "disabled"), T("max_scheduling_memory", 256 * 1024**3),
                T("memory", 270 * 1024**3), T("numa_supported", True),
                E("os", T("reported_kernel_cmdline", f"BOOT_IMAGE=(hd0,msdos1)/vmlinuz-{h.kernel} "
                          "root=/dev/mapper/rhel-root ro crashkernel=auto"),
                  T("type", "RHEL"), E("version", T("full_version", "8.9 - 1.el8"), *_version(8, 9))),
                T("port", 54321), T("protocol", "stomp"), T("status", h.status),
                E("summary", T("active", n_vms), T("migrating", 0), T("total", n_vms)),
                T("type", "rhel"), T("update_available", False),
                E("version", T("build", 1), T("full_version", "vdsm-4.50.5.1-1.el8"), *_version(4, 50),
                  T("revision", 5)),
                self.cluster(c, follow["cluster"]) if c and "cluster" in follow
                else R("cluster", "clusters", h.cluster_id),
                self.host_nics(h, "nics") if "nics" in follow else None,
                href=base, id=h.id,
            )
        return self._memo(("host", h.id, _follow_key(follow)), build)

    def host_nics(self, h: SimHost, tag: str = "host_nics") -> Node:
        """``/hosts/{id}/nics`` in the recorded shape (``host_*_nics.xml``); ``<nics>`` when inlined by follow."""
        by_name = {n.name: n for n in h.nics}
        items = []
        for n in h.nics:
            base = f"{API_PREFIX}/hosts/{h.id}/nics/{n.id}"
            ip4 = (E("ip", T("address", n.ipv4), T("gateway", n.ipv4.rsplit(".", 1)[0] + ".254"),
                     T("netmask", "255.255.255.0"), T("version", "v4")) if n.ipv4 else None)
            ip6 = (E("ipv6", T("address", n.ipv6), T("gateway", "fe80::1"), T("netmask", "64"), T("version", "v6"))
                   if n.ipv6 else None)
            bonding = (E("bonding", E("options", E("option", T("name", "mode"), T("type", "Dynamic link aggregation "
                                                                                   "(802.3ad)"), T("value", "4"))),
                         E("slaves", *(R("host_nic", f"hosts/{h.id}/nics", by_name[s].id) for s in n.slaves
                                       if s in by_name)))
                       if n.slaves else None)
            items.append(E(
                "host_nic", E("actions"), T("name", n.name),
                *_links(base, ("linklayerdiscoveryprotocolelements", "networklabels", "networkattachments",
                               "statistics")),
                T("base_interface", n.base_interface) if n.base_interface else None,
                bonding,
                T("boot_protocol", "static" if n.ipv4 else "none"), T("bridged", n.bridged),
                T("custom_configuration", False), ip4, ip6,
                T("ipv6_boot_protocol", "autoconf" if n.ipv6 else "none"),
                E("mac", T("address", n.mac)) if n.mac else None, T("mtu", 1500), E("properties"),
                T("status", "up"),
                E("vlan", id=str(n.vlan)) if n.vlan is not None else None,
                R("host", "hosts", h.id),
                R("network", "networks", n.network_id) if n.network_id else None,
                href=base, id=n.id,
            ))
        return E(tag, *items)

    # tags, devices, nics, instance types, templates ---------------------------------------------

    def tag(self, t: SimTag, *, vm_id: str | None = None) -> Node:
        return E("tag", T("name", t.name), T("description", t.description),
                 R("parent", "tags", t.parent_id) if t.parent_id else None,
                 R("vm", "vms", vm_id) if vm_id else None, href=f"{API_PREFIX}/tags/{t.id}", id=t.id)

    def vm_tags(self, vm: SimVM) -> Node:
        return E("tags", *(self.tag(self.f.tags[t], vm_id=vm.id) for t in vm.tag_ids if t in self.f.tags))

    def reported_devices(self, vm: SimVM) -> Node:
        devices = vm.devices if vm.guest_agent and vm.status in GUEST_VISIBLE_STATUSES else []
        items = []
        for d in devices:
            rid = _reported_device_id(d.name, d.mac)
            ips = E("ips", *(E("ip", T("address", ip), T("version", "v6" if ":" in ip else "v4"))
                             for ip in d.ips)) if d.ips else None
            items.append(E("reported_device", T("name", d.name), T("description", "guest reported data"), ips,
                           E("mac", T("address", d.mac)), T("type", "network"), R("vm", "vms", vm.id),
                           href=f"{API_PREFIX}/vms/{vm.id}/reporteddevices/{rid}", id=rid))
        return E("reported_devices", *items)

    def nics(self, vm: SimVM) -> Node:
        items = []
        for n, mac in enumerate(vm.vnic_macs, start=1):
            nid = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{vm.id}/nic{n}"))
            base = f"{API_PREFIX}/vms/{vm.id}/nics/{nid}"
            items.append(E("nic", _actions(base, ("activate", "deactivate")), T("name", f"nic{n}"),
                           *_links(base, ("reporteddevices", "networkfilterparameters", "statistics")),
                           R("vm", "vms", vm.id), T("interface", "virtio"), T("linked", True),
                           E("mac", T("address", mac)), T("plugged", True),
                           R("vnic_profile", "vnicprofiles", "4ec7ba24-c6bf-42fc-9975-d6a9bf3f01cf"),
                           href=base, id=nid))
        return E("nics", *items)

    def instance_type(self, it: SimInstanceType) -> Node:
        return E("instance_type", T("name", it.name), T("description", ""),
                 E("cpu", E("topology", T("cores", it.cores), T("sockets", it.sockets), T("threads", 1))),
                 T("memory", it.memory),  # no <status>: the recorded instance types have none
                 href=f"{API_PREFIX}/instancetypes/{it.id}", id=it.id)

    def template(self, tag: str, tid: str) -> Node:
        return E(tag, T("name", "Blank" if tid == BLANK_TEMPLATE_ID else "template"),
                 T("description", "Blank template"), T("status", "ok"),
                 E("version", T("version_name", "base version"), T("version_number", 1)),
                 href=f"{API_PREFIX}/templates/{tid}", id=tid)

    # the VM -------------------------------------------------------------------------------------

    @staticmethod
    def guest_os(g: GuestOS) -> list[Node]:
        k = re.match(r"(\d+)\.(\d+)\.(\d+)-(\d+)", g.kernel)
        kernel = (E("version", T("build", 0), T("full_version", g.kernel), T("major", int(k[1])),
                    T("minor", int(k[2])), T("revision", int(k[4]))) if k
                  else E("version", T("full_version", g.kernel)))
        major, _, minor = g.version.partition(".")
        version = E("version", T("full_version", g.version),
                    T("major", int(major)) if major.isdigit() else None,
                    T("minor", int(minor)) if minor.isdigit() else None)
        return [E("guest_operating_system", T("architecture", g.architecture), T("codename", g.codename),
                  T("distribution", g.distribution), T("family", g.family), E("kernel", kernel), version),
                E("guest_time_zone", T("name", "UTC"), T("utc_offset", "+00:00"))]

    def vm(self, vm: SimVM, follow: FollowTree) -> Node:
        base = f"{API_PREFIX}/vms/{vm.id}"
        running = vm.status in ON_HOST_STATUSES
        guest = vm.guest_agent and vm.status in GUEST_VISIBLE_STATUSES
        cluster = self.f.clusters.get(vm.cluster_id)
        arch = cluster.architecture if cluster else "x86_64"
        host = self.f.hosts.get(vm.host_id) if vm.host_id and running else None
        it = self.f.instance_types.get(vm.instance_type_id) if vm.instance_type_id else None
        display = E("display", T("address", "192.0.2.10") if running else None, T("allow_override", False),
                    T("copy_paste_enabled", True), T("disconnect_action", "LOCK_SCREEN"),
                    T("file_transfer_enabled", True), T("monitors", 1), T("port", 5900) if running else None,
                    T("secure_port", 5901) if running else None, T("single_qxl_pci", False),
                    T("smartcard_enabled", False), T("type", "vnc"))
        host_node = None
        if host:
            host_node = self.host(host, follow["host"]) if "host" in follow else R("host", "hosts", host.id)
        it_node = None
        if it:
            it_node = (self.instance_type(it) if "instance_type" in follow
                       else R("instance_type", "instancetypes", it.id))
        children: list[Node | None] = [
            _actions(base, _VM_ACTIONS), T("name", vm.name), T("description", vm.description),
            T("comment", ""),
            *_links(base, _VM_LINKS),
            E("bios", E("boot_menu", T("enabled", False)),
              T("type", "q35_ovmf" if arch == "x86_64" else "none")),
            E("cpu", T("architecture", arch),
              E("topology", T("cores", vm.cores), T("sockets", vm.sockets), T("threads", vm.threads))),
            T("cpu_shares", 0), T("creation_time", _ts(vm.creation_time)), T("delete_protected", False),
            display,
            E("high_availability", T("enabled", False), T("priority", 1)), E("io", T("threads", 1)),
            R("large_icon", "icons", "14ca85cd-8c70-9adf-2c69-884beb8ac3fb"), T("memory", vm.memory),
            E("memory_policy", T("guaranteed", vm.memory), T("max", vm.memory * 4)),
            E("migration", T("auto_converge", "inherit"), T("compressed", "inherit")),
            T("migration_downtime", -1), T("multi_queues_enabled", True), T("origin", "ovirt"),
            E("os", E("boot", E("devices", T("device", "hd"))), T("type", vm.os_type)),
            E("placement_policy", T("affinity", "migratable")),
            R("small_icon", "icons", "8ebc8e0c-38a3-ff89-b043-1e5ec6e4c9a3"),
            E("sso", E("methods", ("method", (("id", "guest_agent"),), None))),
            T("start_paused", False), T("stateless", False),
            T("storage_error_resume_behaviour", "auto_resume"),
            E("time_zone", T("name", "Etc/GMT")), T("type", "server"), E("usb", T("enabled", False)),
            self.cluster(cluster, follow["cluster"]) if cluster and "cluster" in follow
            else R("cluster", "clusters", vm.cluster_id),
            R("cpu_profile", "cpuprofiles", "cf59215e-7e84-44e9-982e-e162d62b5d4b"),
            ("quota", (("id", "0a9b9562-e08b-4a71-b3bf-cd8eaffb55bc"),), None),
            T("fqdn", vm.fqdn) if guest and vm.fqdn else None,
            *(self.guest_os(vm.guest_os) if guest and vm.guest_os else []),
            T("next_run_configuration_exists", False), T("numa_tune_mode", "interleave"),
            T("run_once", False) if vm.start_time else None,
            T("start_time", _ts(vm.start_time)) if vm.start_time else None,
            T("status", vm.status), T("stop_time", _ts(vm.stop_time)) if vm.stop_time else None,
            host_node, it_node,
            self.nics(vm) if "nics" in follow else None,
            self.template("original_template", vm.template_id) if "original_template" in follow
            else R("original_template", "templates", vm.template_id),
            self.reported_devices(vm) if "reported_devices" in follow else None,
            self.vm_tags(vm) if "tags" in follow else None,
            self.template("template", vm.template_id) if "template" in follow
            else R("template", "templates", vm.template_id),
        ]
        return E("vm", *children, href=base, id=vm.id)

    # events, root -------------------------------------------------------------------------------

    def event(self, e: SimEvent) -> Node:
        return E(
            "event", T("description", e.description), T("code", e.code),
            T("correlation_id", e.correlation_id) if e.correlation_id else None, T("custom_id", -1),
            T("flood_rate", 30), T("origin", "oVirt"), T("severity", e.severity), T("time", _ts(e.time)),
            R("cluster", "clusters", e.cluster_id) if e.cluster_id else None,
            R("data_center", "datacenters", e.datacenter_id) if e.datacenter_id else None,
            R("host", "hosts", e.host_id) if e.host_id else None,
            R("template", "templates", BLANK_TEMPLATE_ID) if e.vm_id else None,
            R("user", "users", self.f.user_id) if e.user else None,
            R("vm", "vms", e.vm_id) if e.vm_id else None,
            href=f"{API_PREFIX}/events/{e.id}", id=str(e.id),
        )

    def api_root(self) -> Node:
        f = self.f
        links: list[Node] = []
        for r in ("clusters", "datacenters", "events", "hosts", "tags", "templates", "vms", "instancetypes"):
            links += _links(API_PREFIX, (r,))
            if r != "tags":
                href = f"{API_PREFIX}/{r}?search={{query}}"
                links.append(("link", (("href", href), ("rel", f"{r}/search")), None))
        active = sum(1 for v in f.vms.values() if v.status in ON_HOST_STATUSES)
        major, minor, revision, build = PRODUCT_VERSION

        def counts(tag: str, act: int, total: int) -> Node:
            return E(tag, T("active", act), T("total", total))

        return E(
            "api", *links, E("engine_backup", T("last_db_backup", _ts(_now() - dt.timedelta(hours=7)))),
            E("product_info", T("instance_id", f.instance_id), T("name", "oVirt Engine"),
              T("vendor", "ovirt.org"),
              E("version", T("build", build), T("full_version", PRODUCT_FULL_VERSION),
                *_version(major, minor), T("revision", revision))),
            E("special_objects", R("blank_template", "templates", BLANK_TEMPLATE_ID),
              R("root_tag", "tags", ROOT_TAG_ID)),
            E("summary", counts("hosts", len(f.hosts), len(f.hosts)), counts("storage_domains", 2, 2),
              counts("users", 1, 1), counts("vms", active, len(f.vms))),
            T("time", _ts(_now())), R("authenticated_user", "users", f.user_id),
            R("effective_user", "users", f.user_id),
        )


def _fault_xml(reason: str, detail: str) -> bytes:
    return to_xml(E("fault", T("detail", detail), T("reason", reason)))


_APACHE_502 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>502 Proxy Error</title>
</head><body>
<h1>Proxy Error</h1>
<p>The proxy server received an invalid
response from an upstream server.<br />
The proxy server could not handle the request <em><a href="{path}">{method}&nbsp;{path}</a></em>.<p>
Reason: <strong>Error reading from remote server</strong></p></p>
</body></html>
"""
_APACHE_ERROR = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>{status} {phrase}</title>
</head><body>
<h1>{phrase}</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""


def _apache_error_html(status: int, path: str, method: str) -> bytes:
    if status == 502:
        return _APACHE_502.format(path=escape(path), method=escape(method)).encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _APACHE_ERROR.format(status=status, phrase=phrase).encode()


# --- search --------------------------------------------------------------------------------------

class SearchError(ValueError):
    """A query the engine cannot parse (it answers an empty list)."""


class UnknownField(SearchError):
    """A field the engine does not know for VMs (it answers an empty list)."""


@dataclass(frozen=True)
class _Cond:
    field: str
    op: str
    value: str


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search (of VMs or hosts): OR of ANDs of conditions, plus sort and page."""

    clauses: tuple[tuple[_Cond, ...], ...]
    sort_field: str | None = None
    descending: bool = False
    page: int | None = None


_TOKEN_RE = re.compile(r'\s*(?:(?P<op>!=|<=|>=|=|<|>)|(?P<str>"[^"]*")|(?P<word>[^\s=!<>"]+))')
_VM_FIELDS = frozenset({
    "name", "status", "tag", "cluster", "datacenter", "host", "id", "fqdn", "os", "description",
})


_HOST_FIELDS = frozenset({"name", "status", "cluster", "datacenter", "tag", "address", "id"})


# complexity: the engine's search grammar, one branch per token kind
def parse_search(query: str, *, fields: frozenset[str] = _VM_FIELDS,  # noqa: C901
                 prefixes: tuple[str, ...] = ("vms:", "vm:")) -> SearchQuery:
    """Parse the supported subset of the oVirt search language (raises SearchError / UnknownField)."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, query.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise SearchError(f"cannot parse {text[pos:]!r}")
        pos = m.end()
        if m.group("op"):
            tokens.append(("op", m.group("op")))
        elif m.group("str") is not None:
            tokens.append(("word", m.group("str")[1:-1]))
        elif m.group("word"):
            tokens.append(("word", m.group("word")))
    # "Vms:" prefix, as the engine's own UI writes it
    if tokens and tokens[0][0] == "word" and tokens[0][1].lower() in prefixes:
        tokens = tokens[1:]
    i = 0

    def peek_word() -> str | None:
        return tokens[i][1].lower() if i < len(tokens) and tokens[i][0] == "word" else None

    clauses: list[tuple[_Cond, ...]] = []
    current: list[_Cond] = []
    expect_cond = True
    while i < len(tokens):
        w = peek_word()
        if w in ("sortby", "page"):
            break
        if w in ("and", "or"):
            if expect_cond:
                raise SearchError(f"unexpected {w!r}")
            if w == "or":
                clauses.append(tuple(current))
                current = []
            i += 1
            expect_cond = True
            continue
        if i + 2 >= len(tokens):
            raise SearchError("incomplete condition")
        f, op, v = tokens[i], tokens[i + 1], tokens[i + 2]
        if f[0] != "word" or op[0] != "op" or v[0] != "word":
            raise SearchError("expected 'field op value'")
        fname = f[1].lower()
        if fname not in fields:
            raise UnknownField(fname)
        if op[1] not in ("=", "!="):
            raise SearchError(f"operator {op[1]!r} not supported for {fname}")
        current.append(_Cond(fname, op[1], v[1]))
        i += 3
        expect_cond = False
    if expect_cond and (current or clauses):
        raise SearchError("dangling and/or")
    if current:
        clauses.append(tuple(current))
    sort_field, desc, page = None, False, None
    while i < len(tokens):
        w = peek_word()
        if w == "sortby":
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
                raise SearchError("sortby needs a field")
            sort_field = tokens[i + 1][1].lower()
            i += 2
            if peek_word() in ("asc", "desc"):
                desc = peek_word() == "desc"
                i += 1
        elif w == "page":
            if i + 1 >= len(tokens) or not tokens[i + 1][1].isdigit():
                raise SearchError("page needs a number")
            page = int(tokens[i + 1][1])
            i += 2
        else:
            raise SearchError(f"unexpected {tokens[i][1]!r}")
    return SearchQuery(tuple(clauses), sort_field, desc, page)


def _wild(pattern: str, value: str | None, case_sensitive: bool) -> bool:
    if value is None:
        return False
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _tagged(fleet: Fleet, tag_ids: Iterable[str], cond: _Cond, case_sensitive: bool,
            tag_sets: dict[_Cond, set[str]]) -> bool:
    """``tag=pattern``: one of the item's tags is a tag the pattern names or one of its descendants (the tag set
    of a condition is worked out once per search, in ``tag_sets``)."""
    if cond not in tag_sets:
        named = {t.id for t in fleet.tags.values() if _wild(cond.value, t.name, case_sensitive)}
        tag_sets[cond] = fleet.tag_descendants(named)
    return not tag_sets[cond].isdisjoint(tag_ids)


def _matches(fleet: Fleet, vm: SimVM, cond: _Cond, case_sensitive: bool, tag_sets: dict[_Cond, set[str]]) -> bool:
    v = cond.value
    if cond.field == "tag":
        result = _tagged(fleet, vm.tag_ids, cond, case_sensitive, tag_sets)
    elif cond.field == "status":
        result = vm.status == v.lower().replace(" ", "_")
    elif cond.field == "name":
        result = _wild(v, vm.name, case_sensitive)
    elif cond.field == "id":
        result = vm.id == v
    elif cond.field == "cluster":
        c = fleet.clusters.get(vm.cluster_id)
        result = _wild(v, c.name if c else None, case_sensitive)
    elif cond.field == "datacenter":
        c = fleet.clusters.get(vm.cluster_id)
        dc = fleet.datacenters.get(c.datacenter_id) if c else None
        result = _wild(v, dc.name if dc else None, case_sensitive)
    elif cond.field == "host":
        h = fleet.hosts.get(vm.host_id) if vm.host_id else None
        result = _wild(v, h.name if h else None, case_sensitive)
    elif cond.field == "fqdn":
        result = _wild(v, vm.fqdn if vm.status in GUEST_VISIBLE_STATUSES else None, case_sensitive)
    elif cond.field == "os":
        result = _wild(v, vm.os_type, case_sensitive)
    else:  # description
        result = _wild(v, vm.description, case_sensitive)
    return result if cond.op == "=" else not result


def _host_matches(fleet: Fleet, h: SimHost, cond: _Cond, case_sensitive: bool,
                  tag_sets: dict[_Cond, set[str]]) -> bool:
    v = cond.value
    c = fleet.clusters.get(h.cluster_id)
    if cond.field == "tag":
        result = _tagged(fleet, h.tag_ids, cond, case_sensitive, tag_sets)
    elif cond.field == "status":
        result = h.status == v.lower().replace(" ", "_")
    elif cond.field == "name":
        result = _wild(v, h.name, case_sensitive)
    elif cond.field == "id":
        result = h.id == v
    elif cond.field == "address":
        result = _wild(v, h.address, case_sensitive)
    elif cond.field == "cluster":
        result = _wild(v, c.name if c else None, case_sensitive)
    else:  # datacenter
        dc = fleet.datacenters.get(c.datacenter_id) if c else None
        result = _wild(v, dc.name if dc else None, case_sensitive)
    return result if cond.op == "=" else not result


_Item = TypeVar("_Item", SimVM, SimHost)


@dataclass(frozen=True)
class _Searchable(Generic[_Item]):
    """One engine collection's search: its fields, the prefixes a query may start with (``Vms:``), the collection
    in a fleet and how one of its items meets one condition."""

    fields: frozenset[str]
    prefixes: tuple[str, ...]
    items: Callable[[Fleet], Mapping[str, _Item]]
    matches: Callable[[Fleet, _Item, _Cond, bool, dict[_Cond, set[str]]], bool]

    def search(self, fleet: Fleet, query: str, *, max_results: int | None, case_sensitive: bool) -> list[_Item]:
        try:
            q = parse_search(query, fields=self.fields, prefixes=self.prefixes)
        except SearchError:
            return []
        if q.sort_field not in (None, "name"):
            return []
        tag_sets: dict[_Cond, set[str]] = {}
        with fleet.lock:
            found = [x for x in self.items(fleet).values()
                     if not q.clauses or any(all(self.matches(fleet, x, c, case_sensitive, tag_sets) for c in clause)
                                             for clause in q.clauses)]
        if q.sort_field == "name":
            found.sort(key=lambda x: x.name, reverse=q.descending)
        if q.page is not None:
            size = max_results if max_results is not None else DEFAULT_PAGE_SIZE
            start = (max(q.page, 1) - 1) * size
            return found[start:start + size]
        return found[:max_results] if max_results is not None else found


_VMS: _Searchable[SimVM] = _Searchable(_VM_FIELDS, ("vms:", "vm:"), lambda f: f.vms, _matches)
_HOSTS: _Searchable[SimHost] = _Searchable(_HOST_FIELDS, ("hosts:", "host:"), lambda f: f.hosts, _host_matches)


def search_vms(fleet: Fleet, query: str, *, max_results: int | None = None,
               case_sensitive: bool = True) -> list[SimVM]:
    """The VMs a real engine would return for ``search=query&max=max_results`` (empty on any query error)."""
    return _VMS.search(fleet, query, max_results=max_results, case_sensitive=case_sensitive)


def search_hosts(fleet: Fleet, query: str, *, max_results: int | None = None,
                 case_sensitive: bool = True) -> list[SimHost]:
    """The hosts a real engine would return for ``/hosts?search=query&max=max_results`` (empty on a query error)."""
    return _HOSTS.search(fleet, query, max_results=max_results, case_sensitive=case_sensitive)


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _authz(user: str) -> str:
    """How the engine names a user in events: ``admin@internal`` logs in as ``admin@internal-authz``."""
    return user.replace("@internal", "@internal-authz") if user.endswith("@internal") else user


# --- faults and request records ------------------------------------------------------------------

@dataclass
class _Fault:
    kind: str  # "latency" | "status" | "proxy" | "fault" | "drop" | "hang"
    path_prefix: str
    remaining: int | None  # None: until cleared
    status: int = 500
    seconds: float = 0.0
    reason: str = ""
    detail: str = ""
    skip: int = 0  # let this many matching requests through first (e.g. fail page 2 of a search)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int  # 0 when the connection was dropped or the request hung
    time: float


@dataclass
class _Static:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass
class _Token:
    value: str
    username: str
    expires: float | None
    valid: bool = True


# --- HTTP server ---------------------------------------------------------------------------------

class _Drop(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall per answer
    server_version = _SERVER_HEADER
    sys_version = ""
    timeout = 30
    sim: EngineSimulator  # set on the class that start() binds to one simulator

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("engine simulator: " + format, *args)

    def version_string(self) -> str:
        return _SERVER_HEADER

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sim = self.sim
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._request_info = (method, path, query)
        self._recorded = False
        try:
            sim._handle(self, method, path, query, body)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self.record(0)  # dropped: no status

    def record(self, status: int) -> None:
        """Count this request (status 0: no answer). Done before the client can see an answer."""
        if not self._recorded:
            method, path, query = self._request_info
            self.sim._record(method, path, query, status)
            self._recorded = True

    def send(self, status: int, body: bytes, content_type: str | None,
             headers: dict[str, str] | None = None) -> int:
        self.record(status)
        if body and "gzip" in (self.headers.get("Accept-Encoding") or "") and len(body) > 2048:
            body = gzip.compress(body, compresslevel=1)
            headers = dict(headers or {}, **{"Content-Encoding": "gzip"})
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        return status


class EngineSimulator(LoopbackServer):
    """A loopback oVirt engine (HTTPS on 127.0.0.1, port 0 = any free port) serving a :class:`Fleet`.

    Lifecycle: ``start()`` / ``stop()`` or ``with``. Attributes: ``url`` (the API URL a client is configured
    with), ``base_url``, ``port``, ``ca_file``, ``username``, ``password`` (mutable: change it to simulate a
    rotated password), ``fleet``, ``logins`` / ``logouts`` / ``active_tokens``.
    Fleet mutations (events included): ``add_vm``, ``remove_vm``, ``set_status``, ``set_tags``, ``tag_vm``,
    ``untag_vm``, ``set_devices``, ``set_ips`` (no event, as on a real engine), ``migrate``, ``rename``,
    ``add_event``. Faults: ``set_latency``, ``fail_requests`` (5xx HTML), ``proxy_errors`` (502 HTML, SSO
    too), ``engine_faults`` (``<fault>``), ``drop_connections``, ``hang_sso``, ``expire_tokens``,
    ``token_lifetime``; ``clear_faults``. Counters: ``requests``, ``request_count(path, method=, exact=)``,
    ``reset_requests``. Fixed answers: ``serve_static(path, body)``. ``write_config(path)`` writes an INI.
    """

    def __init__(
        self, fleet: Fleet | None = None, *, vms: int = 0, seed: int = 0, username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD, host: str = "127.0.0.1", port: int = 0,
        token_lifetime: float | None = None,
    ) -> None:
        self.fleet = fleet if fleet is not None else generate_fleet(vms, seed=seed)
        self.username = username
        self.password = password
        self.token_lifetime = token_lifetime
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._lost: set[str] = set()  # lose_in_search
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

    def add_event(self, code: int, description: str, *, vm: str | None = None) -> SimEvent:
        return self.fleet.add_event(code, description, vm=self.fleet.vm(vm) if vm else None)

    # --- faults ----------------------------------------------------------------------------------

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def set_latency(self, seconds: float, *, path_prefix: str = "/", count: int | None = None) -> None:
        """Delay every matching request by ``seconds`` (before anything else happens)."""
        self._add_fault(_Fault("latency", path_prefix, count, seconds=seconds))

    def fail_requests(self, status: int = 503, *, count: int | None = None,
                      path_prefix: str = API_PREFIX, skip: int = 0) -> None:
        """Answer matching requests with ``status`` and an Apache-style HTML error page (after ``skip`` of them
        were answered normally)."""
        self._add_fault(_Fault("status", path_prefix, count, status=status, skip=skip))

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

    def hang_sso(self, *, count: int | None = None) -> None:
        """The SSO token endpoint never answers (until :meth:`clear_faults` or :meth:`stop`)."""
        self._add_fault(_Fault("hang", SSO_TOKEN_PATH, count))

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call gets 401 and the client has to log in again."""
        with self._lock:
            for t in self._tokens.values():
                t.valid = False

    def lose_in_search(self, ids: Iterable[str]) -> None:
        """A glitching search (a paging shift, a half-synced engine): VM and host searches leave out the VMs
        and hosts of ``ids`` (still there for a GET by id, and for a search that names an ``id=``), until
        :meth:`clear_faults`."""
        with self._lock:
            self._lost = set(ids)

    def clear_faults(self) -> None:
        with self._lock:
            self._lost = set()
            self._faults.clear()
        self._release.set()
        self._release = threading.Event()

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

    @property
    def active_tokens(self) -> int:
        with self._lock:
            return sum(1 for t in self._tokens.values() if t.valid)

    def _record(self, method: str, path: str, query: dict[str, str], status: int) -> None:
        with self._lock:
            self._records.append(RequestRecord(method, path, query, status, time.time()))

    # --- request handling ------------------------------------------------------------------------

    def _take_faults(self, path: str) -> list[_Fault]:
        with self._lock:
            hits = []
            for f in self._faults:
                if path.startswith(f.path_prefix) and (f.remaining is None or f.remaining > 0):
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    if f.remaining is not None:
                        f.remaining -= 1
                    hits.append(f)
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
            return hits

    def _handle(self, h: _Handler, method: str, path: str, query: dict[str, str], body: bytes) -> int:
        release = self._release
        for fault in self._take_faults(path):
            if fault.kind == "latency":
                release.wait(fault.seconds)
            elif fault.kind == "hang":
                h.record(0)
                release.wait(3600)
                raise _Drop
            elif fault.kind == "drop":
                h.record(0)
                raise _Drop
            elif fault.kind in ("status", "proxy"):
                return h.send(fault.status, _apache_error_html(fault.status, path, method),
                              "text/html; charset=iso-8859-1")
            elif fault.kind == "fault" and path.startswith(API_PREFIX):
                return h.send(fault.status, _fault_xml(fault.reason, fault.detail), _XML_CT)
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
            if method != "GET":
                return h.send(405, b"", None)
            return self._api_get(h, path[len(API_PREFIX):], query)
        return h.send(404, _HTML_404, _HTML_CT)

    # SSO ----------------------------------------------------------------------------------------

    def _sso_token(self, h: _Handler, body: bytes) -> int:
        form = _form(body)
        user = form.get("username", "")
        if form.get("grant_type") != "password":
            return self._sso_error(h, "unsupported_grant_type",
                                   f"The grant type '{form.get('grant_type', '')}' is not supported.")
        if not user or "password" not in form:
            return self._sso_error(h, "invalid_request", "The request is missing a required parameter: "
                                   + ("username" if not user else "password"))
        if "@" not in user:
            self._login_failed(user)
            return self._sso_error(h, "access_denied", f"Cannot authenticate user '{user}': "
                                   "No valid profile found in credentials..")
        if user != self.username or form.get("password") != self.password:
            self._login_failed(user)
            return self._sso_error(h, "access_denied", f"Cannot authenticate user '{user}': "
                                   "The username or password is incorrect..")
        token = secrets.token_urlsafe(64)
        now = time.time()
        expires = now + self.token_lifetime if self.token_lifetime else None
        with self._lock:
            self._tokens[token] = _Token(token, user, expires)
            self.logins += 1
        session = secrets.token_urlsafe(48)[:64]
        self.fleet.add_event(USER_VDC_LOGIN, f"User {_authz(user)} connecting from '{h.client_address[0]}' "
                             f"using session '{session}' logged in.")
        exp_ms = int((expires if expires else now + 10 * 365 * 86400) * 1000)
        payload = {
            "access_token": token,
            "scope": "ovirt-app-api ovirt-ext=token-info:authz-search "
                     "ovirt-ext=token-info:public-authz-search ovirt-ext=token-info:validate "
                     "ovirt-ext=token:password-access",
            "exp": str(exp_ms),
            "token_type": "bearer",
        }
        return h.send(200, json.dumps(payload).encode(), _JSON_CT)

    def _login_failed(self, user: str) -> None:
        self.fleet.add_event(USER_VDC_LOGIN_FAILED, f"User {user} failed to log in.", severity="error",
                             user=False)

    @staticmethod
    def _sso_error(h: _Handler, code: str, message: str) -> int:
        return h.send(400, json.dumps({"error_code": code, "error": message}).encode(), _JSON_CT)

    def _sso_logout(self, h: _Handler, body: bytes) -> int:
        form = _form(body)
        with self._lock:
            tok = self._tokens.pop(form.get("token", ""), None)
            if tok is not None:
                self.logouts += 1
        if tok is not None:
            self.fleet.add_event(USER_VDC_LOGOUT, f"User {_authz(tok.username)} logged out.")
        return h.send(200, b"{}", _JSON_CT)

    def _authorized(self, h: _Handler) -> bool:
        auth = h.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            with self._lock:
                tok = self._tokens.get(auth[7:].strip())
                if tok is None or not tok.valid:
                    return False
                if tok.expires is not None and time.time() > tok.expires:
                    tok.valid = False
                    return False
                return True
        if auth.startswith("Basic "):
            import base64
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and pw == self.password
        return False

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
                return to_xml(E("vms", *(r.vm(vm, follow) for vm in self._listing(_VMS, query, max_results))), ser)
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
            follow = parse_follow(query.get("follow"), {"cluster": {"data_center": {}}, "nics": {}})
            if not rest:
                return to_xml(E("hosts", *(r.host(x, follow) for x in self._listing(_HOSTS, query, max_results))), ser)
            h = f.hosts.get(rest[0])
            if h is None or len(rest) > 2:
                return None
            if len(rest) == 1:
                node = r.host(h, follow)
            elif rest[1] == "nics":
                node = r.host_nics(h)
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


# --- standalone ----------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ovirt_cloudprovider.simulators.engine",
        description="Serve a simulated oVirt engine (API v4 + SSO) with a generated fleet until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--vms", type=int, default=10, help="Kubernetes-tagged VMs to generate (default 10)")
    parser.add_argument("--untagged", type=int, default=0, help="other VMs that the filter does not match")
    parser.add_argument("--seed", type=int, default=0, help="fleet generator seed")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--write-config", metavar="PATH",
                        help="write an ovirt-cloud.conf pointing at this engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    fleet = generate_fleet(args.vms, seed=args.seed, untagged=args.untagged)
    try:
        sim = EngineSimulator(fleet, username=args.username, password=args.password, host=args.host,
                              port=args.port).start()
    except (OSError, ValueError) as e:
        print(f"engine simulator: cannot listen on {args.host}:{args.port}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr)
        return 1
    try:
        if args.write_config:
            sim.write_config(args.write_config)
        written = f"; config written to {args.write_config}" if args.write_config else ""
        print(f"oVirt engine simulator: {sim.url} ({len(fleet.vms)} VMs, user {sim.username}, "
              f"CA {sim.ca_file}){written}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "API_PREFIX", "GUEST_VISIBLE_STATUSES", "HOST_STATUSES", "ON_HOST_STATUSES", "SSO_LOGOUT_PATH", "SSO_TOKEN_PATH",
    "EngineSimulator", "Fleet", "GuestDevice", "GuestOS", "RequestRecord", "SearchQuery", "SimCluster",
    "SimDataCenter", "SimEvent", "SimHost", "SimHostNic", "SimTag", "SimVM", "generate_fleet", "parse_follow",
    "parse_search", "search_hosts", "search_vms", "tls_paths",
]
