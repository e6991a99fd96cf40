"""The autoscaler's write client: create, start, stop and remove the VMs of node groups.

:class:`Provisioner` is an :class:`~.client.EngineClient` (the same SSO session, login backoff, error
classification and request metrics) with the requests the autoscaler needs. It returns the records of
:mod:`~ovirt_cloudprovider.core.nodegroups` and raises only :class:`~.errors.EngineError` kinds.

- ``group_vms()``: the VMs of every node group in ONE paged search (``description=ovirt-cloudprovider-nodegroup:*
  sortby name asc page N``, ``max=GROUP_PAGE_SIZE``, ``follow=tags``), never one request per group or per VM.
- ``get_vm(id)`` / ``find_vm(name)``: one VM by id (re-reading its mark before a removal) or by name (a create
  that timed out: did it happen?).
- ``template(group)``: the template (its version), the cluster and the cluster's data center: what a new VM gets.
- ``create(group, name, user_data, description)``: ``POST /vms`` from the template in the group's cluster, with
  the signed ownership mark (made by the caller, who holds the key) as description and the cloud-init user data
  and host name as its initialization; ``tag``, ``start``
  (with cloud-init), ``stop`` and ``remove`` (with its disks).

Operations counted in ``engine_requests_total``: ``search_group_vms``, ``get_vm``, ``find_vm``,
``get_template``, ``list_clusters``, ``get_datacenter``, ``create_vm``, ``tag_vm``, ``start_vm``, ``stop_vm``,
``remove_vm`` (and the client's ``sso_login``, ``logout``).
"""

from __future__ import annotations

from typing import Any

import ovirtsdk4.types as types

from ..core.nodegroups import MARK_SEARCH, GroupVm, TemplateInfo, parse_mark
from ..core.settings import NodeGroupConfig
from .client import EngineClient
from .errors import EngineDataError, EngineFaultError

GROUP_PAGE_SIZE = 500
_MIB = 1024**2


def _ref_id(item: Any, attr: str) -> str:
    ref = getattr(item, attr, None)
    return str(ref.id) if ref is not None and getattr(ref, "id", None) else ""


def _group_vm(item: Any) -> GroupVm:
    status = getattr(item, "status", None)
    tags = getattr(item, "tags", None) or ()
    group, mac = parse_mark(getattr(item, "description", None)) or ("", "")
    templates = tuple(dict.fromkeys(t for t in (_ref_id(item, "template"), _ref_id(item, "original_template")) if t))
    return GroupVm(id=str(item.id), name=str(item.name or ""), status=str(status.value) if status else "unknown",
                   group=group, mac=mac, cluster_id=_ref_id(item, "cluster"), template_ids=templates,
                   tags=tuple(sorted(str(t.name) for t in tags if getattr(t, "name", None))))


class Provisioner(EngineClient):
    """An engine client that also creates, starts, stops and removes node-group VMs. Thread-safe (one lock)."""

    def group_vms(self) -> tuple[GroupVm, ...]:
        """Every VM whose description starts with the node-group mark, in one paged search (EngineError on any
        failure, so a returned answer is complete)."""
        found: dict[str, GroupVm] = {}
        page = 1
        with self._lock:
            while True:
                search = f"{MARK_SEARCH} sortby name asc page {page}"

                def list_page(c: Any, search: str = search) -> list[Any]:
                    return list(c.system_service().vms_service().list(search=search, max=GROUP_PAGE_SIZE,
                                                                      follow="tags"))

                items = self._call("search_group_vms", "node-group VM search", list_page)
                new = 0
                for item in items:
                    if not getattr(item, "id", None):
                        raise EngineDataError(f"engine answer for the node-group VM search at {self.where}: a <vm> "
                                              "without an id")
                    vm = _group_vm(item)
                    new += vm.id not in found
                    found[vm.id] = vm
                if len(items) < GROUP_PAGE_SIZE:
                    break
                if new == 0:
                    raise EngineFaultError(f"node-group VM search at {self.where}: page {page} repeated the VMs of "
                                           "earlier pages (the engine ignores 'page' in searches)")
                page += 1
        return tuple(found.values())

    def get_vm(self, vm_id: str) -> GroupVm | None:
        """The VM ``vm_id`` with its mark and tags; None when the engine has no such VM (404)."""
        def get(c: Any) -> Any:
            return c.system_service().vms_service().vm_service(vm_id).get(follow="tags")
        try:
            item = self._call("get_vm", f"VM {vm_id}", get)
        except EngineFaultError as err:
            if err.code == 404:
                return None
            raise
        if str(getattr(item, "id", "")).lower() != vm_id.lower():
            raise EngineDataError(f"engine answer for /vms/{vm_id} at {self.where}: VM {getattr(item, 'id', None)!r} "
                                  f"instead of {vm_id}")
        return _group_vm(item)

    def find_vm(self, name: str) -> GroupVm | None:
        """The VM named ``name`` (exactly), or None."""
        items = self._call("find_vm", f"VM search for {name}", lambda c: list(
            c.system_service().vms_service().list(search=f'name="{name}"', follow="tags")))
        return next((_group_vm(i) for i in items if i.name == name), None)

    def template(self, group: NodeGroupConfig) -> TemplateInfo:
        """The template of ``group`` (its base version unless ``template_version``), its cluster and data center."""
        def templates(c: Any) -> list[Any]:
            return list(c.system_service().templates_service().list(search=f'name="{group.template}"'))

        found = [t for t in self._call("get_template", f"template {group.template}", templates)
                 if t.name == group.template]
        versions = tuple(str(t.id) for t in found if t.id)
        if group.template_version is not None:
            found = [t for t in found if t.version is not None and t.version.version_number == group.template_version]
        if not found:
            version = f" version {group.template_version}" if group.template_version is not None else ""
            raise EngineFaultError(f"node group {group.name}: the engine at {self.where} has no template "
                                   f"{group.template!r}{version}", code=404)
        tpl = min(found, key=lambda t: t.version.version_number if t.version is not None else 0)
        clusters = [c for c in self._call("list_clusters", f"cluster {group.cluster}", lambda c: list(
            c.system_service().clusters_service().list(search=f'name="{group.cluster}"'))) if c.name == group.cluster]
        if not clusters:
            raise EngineFaultError(f"node group {group.name}: the engine at {self.where} has no cluster "
                                   f"{group.cluster!r}", code=404)
        cluster = clusters[0]
        datacenter = None
        if cluster.data_center is not None and cluster.data_center.id:
            dc_id = cluster.data_center.id
            dc = self._call("get_datacenter", f"data center {dc_id}", lambda c: c.system_service()
                            .data_centers_service().data_center_service(dc_id).get())
            datacenter = dc.name
        cpu = tpl.cpu
        topo = cpu.topology if cpu is not None else None
        cpus = None
        if topo is not None:
            cpus = (topo.sockets or 1) * (topo.cores or 1) * (topo.threads or 1)
        arch = cluster.cpu.architecture if cluster.cpu is not None and cluster.cpu.architecture else None
        return TemplateInfo(id=str(tpl.id), name=str(tpl.name), cpus=cpus, memory_bytes=tpl.memory,
                            architecture=str(arch.value) if arch is not None else None,
                            os_type=tpl.os.type if tpl.os is not None else None, cluster=group.cluster,
                            datacenter=datacenter, cluster_id=str(cluster.id or ""), template_ids=versions)

    def create(self, group: NodeGroupConfig, name: str, user_data: str | None, description: str) -> GroupVm:
        """``POST /vms``: a VM ``name`` of ``group`` from its template, marked (``description``), with its cloud-init
        initialization (status ``image_locked`` while its disks are copied)."""
        version = types.TemplateVersion(version_number=group.template_version) if group.template_version else None
        vm = types.Vm(
            name=name, description=description, comment="created by the ovirt-cloudprovider autoscaler",
            cluster=types.Cluster(name=group.cluster), template=types.Template(name=group.template, version=version),
            initialization=types.Initialization(custom_script=user_data, host_name=name),
        )
        if group.cpus:
            vm.cpu = types.Cpu(topology=types.CpuTopology(sockets=group.cpus, cores=1, threads=1))
        if group.memory:
            vm.memory = group.memory * _MIB
            vm.memory_policy = types.MemoryPolicy(guaranteed=group.memory * _MIB, max=group.memory * _MIB)
        item = self._call("create_vm", f"creating VM {name}", lambda c: c.system_service().vms_service().add(vm))
        return _group_vm(item)

    def tag(self, vm_id: str, tag: str) -> None:
        self._call("tag_vm", f"tagging VM {vm_id} with {tag}", lambda c: c.system_service().vms_service()
                   .vm_service(vm_id).tags_service().add(types.Tag(name=tag)))

    def start(self, vm_id: str) -> None:
        self._call("start_vm", f"starting VM {vm_id}", lambda c: c.system_service().vms_service()
                   .vm_service(vm_id).start(use_cloud_init=True))

    def stop(self, vm_id: str) -> None:
        self._call("stop_vm", f"stopping VM {vm_id}", lambda c: c.system_service().vms_service()
                   .vm_service(vm_id).stop())

    def remove(self, vm_id: str) -> None:
        """Remove the VM ``vm_id`` with its disks (``detach_only=false``)."""
        self._call("remove_vm", f"removing VM {vm_id}", lambda c: c.system_service().vms_service()
                   .vm_service(vm_id).remove(detach_only=False))


__all__ = ["GROUP_PAGE_SIZE", "Provisioner"]
