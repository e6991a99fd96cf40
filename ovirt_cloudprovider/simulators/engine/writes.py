"""The engine's write requests that provisioning needs: create a VM from a template (with its cloud-init
initialization), the ``start``/``stop``/``shutdown`` actions, tagging a VM and removing it with its disks.

Answers as the engine gives them: ``201`` and the new VM (``image_locked``) for a create, ``200`` and an
``<action>`` with ``<status>complete</status>`` for an action, ``200`` with an empty body for a removal; a
refused operation is ``409`` with the engine's ``<fault>`` (``Operation Failed``, the reason in brackets), a missing
parameter ``400`` ``Incomplete parameters`` (the recorded ``api-model/fault_incomplete_parameters.xml``), an
unknown VM ``404`` with an empty body.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .constants import _XML_CT, API_PREFIX
from .handler import _Handler
from .model import EngineConflict, Fleet, SimTemplate
from .render import _Renderer
from .xmltree import E, T, _fault_xml, to_xml


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] | None = None


class _Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    value = el.findtext(path)
    return value.strip() if value is not None and value.strip() else None


def _int(el: ET.Element | None, path: str) -> int | None:
    text = _text(el, path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise _Refused(400, "Invalid value", f"Value '{text}' of '{path}' isn't a valid integer") from None


def _ref(el: ET.Element | None) -> str | None:
    """A referenced entity's id (``<cluster id=".."/>``) or name (``<cluster><name>..</name></cluster>``)."""
    if el is None:
        return None
    return el.get("id") or _text(el, "name")


class WriteApi:
    """The simulator's write requests (a mixin of :class:`EngineSimulator`, which owns the fleet)."""

    fleet: Fleet

    def _api_write(self, h: _Handler, method: str, rel: str, query: dict[str, str], body: bytes) -> int | None:
        """Answer a POST or DELETE under the API, or None for one the simulator does not serve (405)."""
        parts = [p for p in rel.split("/") if p]
        try:
            with self.fleet.lock:
                answer = self._write(method, parts, query, body)
        except _Refused as err:
            return h.send(err.status, _fault_xml(err.reason, err.detail), _XML_CT)
        except EngineConflict as err:
            return h.send(409, _fault_xml("Operation Failed", f"[{err}]"), _XML_CT)
        if answer is None:
            return None
        return h.send(answer.status, answer.body, _XML_CT if answer.body else None, answer.headers)

    def _write(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> _Answer | None:
        if not parts or parts[0] != "vms":
            return None
        if method == "POST" and len(parts) == 1:
            return self._create(body)
        vm = self.fleet.vms.get(parts[1]) if len(parts) > 1 else None
        if len(parts) > 3:
            return None
        if vm is None:
            return _Answer(404, b"")
        if method == "DELETE" and len(parts) == 2:
            self.fleet.delete_vm(vm.id, detach_only=query.get("detach_only", "false").lower() == "true")
            return _Answer(200, b"")
        if method != "POST" or len(parts) != 3:
            return None
        action = parts[2]
        if action == "start":
            self.fleet.start_vm(vm.id)
        elif action in ("stop", "shutdown"):
            self.fleet.stop_vm(vm.id)
        elif action == "tags":
            root = self._xml(body, "tag")
            ref = _ref(root)
            if ref is None:
                raise _Refused(400, "Incomplete parameters", "Tag [id|name] required for add")
            try:
                tag = self.fleet.attach_tag(vm.id, ref)
            except KeyError:
                raise _Refused(404, "Operation Failed", f"Entity not found: Tag: {ref}") from None
            return _Answer(201, to_xml(_Renderer(self.fleet).tag(tag, vm_id=vm.id)))
        else:
            return None
        return _Answer(200, to_xml(E("action", T("status", "complete"))))

    @staticmethod
    def _xml(body: bytes, tag: str) -> ET.Element:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise _Refused(400, "Request syntactically incorrect.", "the body is not well-formed XML") from None
        if root.tag != tag:
            raise _Refused(400, "Request syntactically incorrect.", f"expected <{tag}>, got <{root.tag}>")
        return root

    def _template(self, el: ET.Element | None) -> SimTemplate:
        ref = _ref(el)
        if ref is None:
            raise _Refused(400, "Incomplete parameters", "Vm [template.id|name] required for add")
        version = _int(el, "version/version_number")
        f = self.fleet
        found = [t for t in f.templates.values() if ref in (t.id, t.name)
                 and (version is None or t.version_number == version or t.id == ref)]
        if not found:
            raise _Refused(404, "Operation Failed", f"Entity not found: Template: {ref}")
        return min(found, key=lambda t: t.version_number)

    def _create(self, body: bytes) -> _Answer:
        root = self._xml(body, "vm")
        name = _text(root, "name")
        if name is None:
            raise _Refused(400, "Incomplete parameters", "Vm [name] required for add")
        cluster = _ref(root.find("cluster"))
        if cluster is None:
            raise _Refused(400, "Incomplete parameters", "Vm [cluster.id|name] required for add")
        template = self._template(root.find("template"))
        init = root.find("initialization")
        try:
            self.fleet.cluster(cluster)
        except KeyError:
            raise _Refused(404, "Operation Failed", f"Entity not found: Cluster: {cluster}") from None
        memory = _int(root, "memory")
        vm = self.fleet.create_vm(
            name, cluster=cluster, template=template.id, description=_text(root, "description") or "",
            comment=_text(root, "comment") or "", custom_script=init.findtext("custom_script") if init is not None
            else None, host_name=_text(init, "host_name"), sockets=_int(root, "cpu/topology/sockets"),
            cores=_int(root, "cpu/topology/cores"), memory=memory,
        )
        node = _Renderer(self.fleet).vm(vm, {})
        return _Answer(201, to_xml(node), {"Location": f"{API_PREFIX}/vms/{vm.id}"})
