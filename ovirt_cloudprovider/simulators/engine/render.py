"""Engine v4 XML trees of fleet objects (:class:`_Renderer`) and the ``follow=`` parameter."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from .constants import (
    API_PREFIX,
    BLANK_TEMPLATE_ID,
    GUEST_VISIBLE_STATUSES,
    ON_HOST_STATUSES,
    PRODUCT_FULL_VERSION,
    PRODUCT_VERSION,
    ROOT_TAG_ID,
    _now,
    _ts,
)
from .model import (
    Fleet,
    GuestOS,
    SimCluster,
    SimDataCenter,
    SimEvent,
    SimHost,
    SimInstanceType,
    SimTag,
    SimTemplate,
    SimVM,
)
from .xmltree import E, FollowTree, Node, R, T, _actions, _links, _version

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
_TEMPLATE_LINKS = ("cdroms", "diskattachments", "watchdogs", "graphicsconsoles", "nics", "permissions",
                   "tags")
_MAC_POOL_ID = "58ca604b-017d-0374-0220-00000000014e"
_VM_FOLLOWABLE: dict[str, Any] = {
    "reported_devices": {}, "tags": {}, "nics": {}, "instance_type": {}, "template": {}, "affinity_labels": {},
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
        self._on_host: dict[str | None, int] | None = None

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
            n_vms = self._vms_on(h.id)
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
                self.affinity_labels(h.affinity_label_ids) if "affinity_labels" in follow else None,
                href=base, id=h.id,
            )
        return self._memo(("host", h.id, _follow_key(follow)), build)

    def _vms_on(self, host_id: str) -> int:
        """How many VMs run on the host (counted once per answer for all hosts: a host list of a large fleet)."""
        if self._on_host is None:
            counts: dict[str | None, int] = {}
            for v in self.f.vms.values():
                counts[v.host_id] = counts.get(v.host_id, 0) + 1
            self._on_host = counts
        return self._on_host.get(host_id, 0)

    def affinity_labels(self, ids: list[str]) -> Node:
        """``<affinity_labels>`` as a follow inlines them (the AffinityLabel type of the API model: name,
        read_only, has_implicit_affinity_group, links to its hosts and VMs)."""
        items = []
        for label_id in ids:
            label = self.f.affinity_labels.get(label_id)
            if label is None:
                continue
            base = f"{API_PREFIX}/affinitylabels/{label.id}"
            items.append(E("affinity_label", T("name", label.name), *_links(base, ("hosts", "vms")),
                           T("has_implicit_affinity_group", False), T("read_only", False), href=base,
                           id=label.id))
        return E("affinity_labels", *items)

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
        known = self.f.templates.get(tid)
        if known is not None:
            return self.template_entity(known, tag)
        return E(tag, T("name", "Blank" if tid == BLANK_TEMPLATE_ID else "template"),
                 T("description", "Blank template"), T("status", "ok"),
                 E("version", T("version_name", "base version"), T("version_number", 1)),
                 href=f"{API_PREFIX}/templates/{tid}", id=tid)

    def template_entity(self, t: SimTemplate, tag: str = "template") -> Node:
        """A template in the recorded shape (``manageiq/templates.xml``)."""
        base = f"{API_PREFIX}/templates/{t.id}"
        c = self.f.clusters.get(t.cluster_id)
        return E(
            tag, _actions(base, ("export",)), T("name", t.name), T("description", t.description), T("comment", ""),
            *_links(base, _TEMPLATE_LINKS),
            E("bios", E("boot_menu", T("enabled", False)), T("type", "q35_ovmf")),
            E("cpu", T("architecture", c.architecture if c else "x86_64"),
              E("topology", T("cores", t.cores), T("sockets", t.sockets), T("threads", t.threads))),
            T("cpu_shares", 0), T("creation_time", _ts(t.creation_time)), T("delete_protected", False),
            E("high_availability", T("enabled", False), T("priority", 0)), E("io", T("threads", 1)),
            T("memory", t.memory), E("memory_policy", T("guaranteed", t.memory), T("max", t.memory * 4)),
            T("migration_downtime", -1), T("multi_queues_enabled", True), T("origin", "ovirt"),
            E("os", E("boot", E("devices", T("device", "hd"))), T("type", t.os_type)),
            T("start_paused", False), T("stateless", False), T("type", "server"), T("status", "ok"),
            E("version", T("version_name", t.version_name), T("version_number", t.version_number),
              R("base_template", "templates", t.base_id or t.id)),
            R("cluster", "clusters", t.cluster_id),
            href=base, id=t.id,
        )

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
            T("comment", vm.comment),
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
            E("placement_policy", T("affinity", vm.placement),
              E("hosts", R("host", "hosts", vm.host_id)) if vm.placement == "pinned" and vm.host_id else None),
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
            self.affinity_labels(vm.affinity_label_ids) if "affinity_labels" in follow else None,
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
