"""The engine's inventory (:class:`Fleet`): data centers, clusters, hosts, tags, instance types, VMs and the event
log, and every mutation with the events a real engine logs."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .constants import (
    _STARTING,
    BLANK_TEMPLATE_ID,
    HOST_STATUSES,
    ON_HOST_STATUSES,
    OVIRTMGMT_NETWORK_ID,
    ROOT_TAG_ID,
    USER_ADD_VM,
    USER_ADD_VM_FINISHED_SUCCESS,
    USER_ATTACH_TAG_TO_VM,
    USER_DETACH_VM_FROM_TAG,
    USER_INITIATED_RUN_VM,
    USER_INITIATED_SHUTDOWN_VM,
    USER_REBOOT_VM,
    USER_REMOVE_VDS,
    USER_REMOVE_VM_FINISHED,
    USER_RUN_VM,
    USER_STARTED_VM,
    USER_STOP_VM,
    USER_SUSPEND_VM_OK,
    USER_UPDATE_VM,
    USER_VDS_MAINTENANCE_WITHOUT_REASON,
    USER_VDS_START,
    USER_VDS_STOP,
    VDS_ACTIVATE,
    VDS_DETECTED,
    VDS_FAILURE,
    VM_DOWN,
    VM_MIGRATION_DONE,
    VM_MIGRATION_START,
    VM_NOT_RESPONDING,
    VM_PAUSED,
    VM_SET_TO_UNKNOWN_STATUS,
    VM_STATUSES,
    GiB,
    _now,
)


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
    affinity_label_ids: list[str] = field(default_factory=list)


@dataclass
class SimTag:
    id: str
    name: str
    parent_id: str | None = ROOT_TAG_ID
    description: str = ""


@dataclass
class SimAffinityLabel:
    id: str
    name: str


@dataclass
class SimInstanceType:
    id: str
    name: str
    sockets: int
    cores: int
    memory: int


@dataclass
class SimTemplate:
    """A VM template (``/templates``): the hardware a VM created from it gets, and its disks."""

    id: str
    name: str
    cluster_id: str
    description: str = ""
    version_number: int = 1
    version_name: str = "base version"
    base_id: str | None = None  # the base template of a sub-version; None: this is a base template
    sockets: int = 1
    cores: int = 2
    threads: int = 1
    memory: int = 4 * GiB
    os_type: str = "rhel_9x64"
    disks: int = 1
    creation_time: dt.datetime = field(default_factory=_now)


class EngineConflict(Exception):
    """An operation the engine refuses (HTTP 409 with a ``<fault>`` whose detail is this message)."""


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
    comment: str = ""
    custom_script: str | None = None  # cloud-init user data of the initialization (create from template)
    host_name: str | None = None  # the initialization's host name
    disk_ids: list[str] = field(default_factory=list)  # disks copied from the template
    affinity_label_ids: list[str] = field(default_factory=list)
    placement: str = "migratable"  # placement_policy/affinity: migratable, user_migratable, pinned
    pending: list[tuple[float, str]] = field(default_factory=list)  # (monotonic due time, next status)


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
        self.affinity_labels: dict[str, SimAffinityLabel] = {}
        self.vms: dict[str, SimVM] = {}
        self.templates: dict[str, SimTemplate] = {}
        self.disks: dict[str, str | None] = {}  # disk id -> the VM it is attached to (None: floating)
        # How long a VM created from a template stays image_locked, and a started VM powering_up (seconds).
        self.image_lock_seconds = 0.0
        self.boot_seconds = 0.0
        # How long a stopped (powered off) VM stays powering_down before it is down (0: at once).
        self.stop_seconds = 0.0
        self._pending: set[str] = set()  # ids of the VMs with a status change to come
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

    def rename_tag(self, ref: str, new_name: str) -> SimTag:
        """Rename a tag (by id or name); its VMs and hosts keep it, under the new name, and a search naming the old
        name matches nothing from now on. Tag names are unique on a real engine (ValueError if taken)."""
        with self.lock:
            tag = self.tag(ref)
            if any(t.name == new_name and t.id != tag.id for t in self.tags.values()):
                raise ValueError(f"a tag named {new_name!r} exists")
            tag.name = new_name
            return tag

    def remove_tag(self, ref: str) -> None:
        """Remove a tag (by id or name) and the tags under it, as the engine does, detaching them from every VM
        and host."""
        with self.lock:
            gone = self.tag_descendants([self.tag(ref).id])
            for tid in gone:
                del self.tags[tid]
            for vm in self.vms.values():
                vm.tag_ids = [t for t in vm.tag_ids if t not in gone]
            for host in self.hosts.values():
                host.tag_ids -= gone

    def set_affinity_labels(self, ref: str, names: Iterable[str], *, host: bool = False) -> None:
        """Give a VM (or, with ``host``, a host) exactly these affinity labels (created when new). A real
        engine logs no event for it."""
        with self.lock:
            target: SimVM | SimHost = self.host(ref) if host else self.vm(ref)
            ids: list[str] = []
            for name in names:
                label = next((a for a in self.affinity_labels.values() if a.name == name), None)
                if label is None:
                    label = SimAffinityLabel(self._uuid(), name)
                    self.affinity_labels[label.id] = label
                ids.append(label.id)
            target.affinity_label_ids = ids

    def set_placement(self, ref: str, affinity: str) -> SimVM:
        """A VM's placement policy (``migratable``, ``user_migratable``, ``pinned``)."""
        if affinity not in ("migratable", "user_migratable", "pinned"):
            raise ValueError(f"no placement affinity {affinity!r}")
        with self.lock:
            vm = self.vm(ref)
            vm.placement = affinity
            return vm

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


    # --- templates and provisioning --------------------------------------------------------------

    def add_template(self, name: str, cluster: str, *, version: int = 1, description: str = "",
                     sockets: int = 1, cores: int = 2, threads: int = 1, memory: int = 4 * GiB,
                     os_type: str = "rhel_9x64", disks: int = 1) -> SimTemplate:
        """A template in ``cluster`` (its id derived from name and version: a seeded fleet's other ids stay as they
        were); ``version`` > 1 makes a sub-version of the base template of that name."""
        with self.lock:
            c = self.cluster(cluster)
            base = next((t for t in self.templates.values() if t.name == name and t.version_number == 1), None)
            if version > 1 and base is None:
                raise ValueError(f"no base template {name!r} for version {version}")
            tid = str(uuid.uuid5(uuid.NAMESPACE_OID, f"template/{name}/{version}"))
            t = SimTemplate(tid, name, c.id, description or name, version,
                            "base version" if version == 1 else f"v{version}", base.id if base else None,
                            sockets, cores, threads, memory, os_type, disks)
            self.templates[tid] = t
            return t

    def template(self, ref: str) -> SimTemplate:
        with self.lock:
            if ref in self.templates:
                return self.templates[ref]
            for t in self.templates.values():
                if t.name == ref and t.version_number == 1:
                    return t
        raise KeyError(f"no template {ref!r}")

    def create_vm(self, name: str, *, cluster: str, template: str, description: str = "", comment: str = "",
                  custom_script: str | None = None, host_name: str | None = None, sockets: int | None = None,
                  cores: int | None = None, memory: int | None = None) -> SimVM:
        """Create a VM from a template as the engine does: ``image_locked`` while its disks are copied
        (``image_lock_seconds``), then ``down``; raises KeyError for an unknown cluster or template and
        EngineConflict for a name in use."""
        with self.lock:
            c = self.cluster(cluster)
            t = self.template(template)
            if any(v.name == name for v in self.vms.values()):
                raise EngineConflict("Cannot add VM. The VM name is already in use, please choose a unique name and "
                                     "try again.")
            mac = self._mac()
            r = self._rng
            ip = f"10.{r.randrange(1, 250)}.{r.randrange(256)}.{r.randrange(1, 255)}"
            kernel = "5.14.0-362.13.1.el9_3." + c.architecture
            vm = SimVM(
                id=self._uuid(), name=name, status="image_locked", cluster_id=c.id, description=description,
                vnic_macs=[mac], fqdn=host_name or f"{name}.example.com",
                guest_os=GuestOS("Red Hat Enterprise Linux", "9.3", kernel, c.architecture, "Plow"),
                devices=[GuestDevice("eth0", mac, [ip])], sockets=sockets or t.sockets, cores=cores or t.cores,
                threads=t.threads, memory=memory or t.memory, os_type=t.os_type, template_id=t.id, comment=comment,
                custom_script=custom_script, host_name=host_name,
            )
            vm.disk_ids = [str(uuid.UUID(int=self._rng.getrandbits(128), version=4)) for _ in range(t.disks)]
            for disk in vm.disk_ids:
                self.disks[disk] = vm.id
            self.vms[vm.id] = vm
            self.add_event(USER_ADD_VM, f"VM {name} was created by {self.user_name}.", vm=vm)
            self._after(vm, self.image_lock_seconds, "down")
            return vm

    def _after(self, vm: SimVM, seconds: float, status: str) -> None:
        vm.pending.append((time.monotonic() + seconds, status))
        self._pending.add(vm.id)
        if seconds <= 0:
            self.advance()

    def advance(self, now: float | None = None) -> None:
        """Apply the status changes that are due (disks copied, boot finished)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if not self._pending:
                return
            for vm_id in list(self._pending):
                vm = self.vms.get(vm_id)
                if vm is None or not vm.pending:
                    self._pending.discard(vm_id)
                    continue
                while vm.pending and vm.pending[0][0] <= now:
                    _, status = vm.pending.pop(0)
                    if vm.status == "image_locked" and status == "down":
                        vm.status = "down"
                        self.add_event(USER_ADD_VM_FINISHED_SUCCESS, f"VM {vm.name} creation has been completed.",
                                       vm=vm, user=False)
                    elif vm.status == "powering_up" and status == "up":
                        self.set_status(vm.id, "up")
                    elif vm.status == "powering_down" and status == "down":
                        self.set_status(vm.id, "down")

    def start_vm(self, ref: str) -> SimVM:
        """The ``start`` action: ``powering_up``, then ``up`` after ``boot_seconds``."""
        with self.lock:
            self.advance()
            vm = self.vm(ref)
            if vm.status == "image_locked":
                raise EngineConflict("Cannot run VM. VM is being created.")
            if vm.status in ON_HOST_STATUSES:
                raise EngineConflict("Cannot run VM. VM is running.")
            self.set_status(vm.id, "powering_up")
            self._after(vm, self.boot_seconds, "up")
            return vm

    def stop_vm(self, ref: str) -> SimVM:
        """The ``stop`` action (power off): ``down`` at once, or ``powering_down`` for ``stop_seconds`` first."""
        with self.lock:
            self.advance()
            vm = self.vm(ref)
            if vm.status == "image_locked":
                raise EngineConflict("Cannot stop VM. VM is being created.")
            if vm.status == "down":
                raise EngineConflict("Cannot stop VM. VM is not running.")
            vm.pending.clear()
            if self.stop_seconds <= 0:
                return self.set_status(vm.id, "down")
            if vm.status != "powering_down":
                self.set_status(vm.id, "powering_down")
            self._after(vm, self.stop_seconds, "down")
            return vm

    def delete_vm(self, ref: str, *, detach_only: bool = False) -> None:
        """``DELETE /vms/{id}``: refused while the VM runs or is locked; its disks go with it unless
        ``detach_only`` (then they stay, floating)."""
        with self.lock:
            self.advance()
            vm = self.vm(ref)
            if vm.status == "image_locked":
                raise EngineConflict("Cannot remove VM. VM is locked. Please try again in a few minutes.")
            if vm.status != "down":
                raise EngineConflict("Cannot remove VM. VM is running.")
            for disk in vm.disk_ids:
                if detach_only:
                    self.disks[disk] = None
                else:
                    self.disks.pop(disk, None)
            self.remove_vm(vm.id)

    def attach_tag(self, ref: str, tag: str) -> SimTag:
        """``POST /vms/{id}/tags``: the tag (by id or name) must exist."""
        with self.lock:
            vm = self.vm(ref)
            t = self.tag(tag)
            if t.id not in vm.tag_ids:
                self.tag_vm(vm.id, t.name)
            return t


def _rand_mac(rng: random.Random, *prefix: int) -> str:
    octets = list(prefix) + [rng.randrange(256) for _ in range(6 - len(prefix))]
    return ":".join(f"{o:02x}" for o in octets)
