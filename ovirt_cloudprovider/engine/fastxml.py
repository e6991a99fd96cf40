"""Engine XML → our records, reading only the fields we use (lxml), as :mod:`.records` reads the SDK's objects.

:func:`read_vms` reads a ``<vms>`` page (or one ``<vm>``) into :class:`LeanVm` records: a
:class:`~ovirt_cloudprovider.core.records.VirtualMachine` exactly as ``vm_record(Reader.read(body))`` gives it,
plus the instance type's id, so that names of links that were not followed can be joined in from
:func:`read_names` (``/clusters``, ``/datacenters``, ``/hosts``, ``/instancetypes``) by :func:`joined`.

It follows the SDK reader's rules: only ``id`` is read from attributes, an empty element is absent, an enum
value the SDK does not know is absent, an integer is ``int(text)``. Anything it cannot read with the same
meaning (an element inside a value, an entity, a repeated field, v3's ``<status><state>``) is an
:class:`~.errors.EngineDataError`, never a guess. Malformed XML is :class:`~.connection.MalformedXml` with
expat's line and reason (the same as the SDK path says); libxml2 never writes to stderr here.

Values that repeat from VM to VM (status, OS, kernel, architecture, tags, NIC names, the ids of links) are
interned: thousands of records share one string each.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import sys
from collections.abc import Callable, Mapping
from typing import NamedTuple, cast

from lxml import etree

from ..core.records import GuestNic, Tag, VirtualMachine
from .connection import ARCHITECTURES, REPORTED_DEVICE_TYPES, VM_AFFINITIES, VM_STATUSES, MalformedXml, xml_root
from .errors import EngineDataError

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True,
                          remove_pis=True, collect_ids=False, remove_blank_text=True)

_Element = etree._Element

# the same rules for a streamed read (iterparse)
_STREAM: dict[str, bool] = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                            "remove_comments": True, "remove_pis": True, "collect_ids": False,
                            "remove_blank_text": True}

# el[:], the list of an element's children made by lxml at once (lxml-stubs do not type the slice); it costs less
# than iterating over el or a tag filter when the element has only a few children
_children = cast(Callable[[_Element], list[_Element]], operator.itemgetter(slice(None)))


class LeanVm(NamedTuple):
    """One VM as read from the XML, and the id of its instance type (its name is joined in later)."""

    vm: VirtualMachine
    instance_type_id: str | None


class Named(NamedTuple):
    """An entity of a listed collection: its name and (for a cluster) its data center's id and CPU architecture
    (an enum value the SDK knows, else None)."""

    name: str | None
    datacenter_id: str | None = None
    architecture: str | None = None


class _Unreadable(ValueError):
    """A value that the SDK would read differently or not at all."""


def parse(body: bytes) -> _Element:
    """The root element of ``body``; MalformedXml (expat's line and reason) when it is not well-formed."""
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as e:
        xml_root(body)  # raises MalformedXml with expat's line and reason, as the SDK path reports it
        raise MalformedXml(e.lineno or 1, str(e.msg)) from None


def _text(el: _Element) -> str | None:
    """The text of a value element as the SDK reads it (None when empty)."""
    if len(el):
        raise _Unreadable(f"<{el.tag}> holds elements where a value was expected")
    return el.text or None


def _int(el: _Element) -> int | None:
    text = _text(el)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise _Unreadable(f"The text '{text}' isn't a valid integer value") from None


def _repeats(el: _Element, tag: str) -> _Unreadable:
    return _Unreadable(f"<{el.tag}> repeats <{tag}>")


def _values(el: _Element, wanted: tuple[str, ...]) -> dict[str, _Element]:
    """The child element of each wanted tag of an element with many children (a ``<vm>``); a repeated one is
    unreadable (the SDK would read each in turn and keep the last, or fail on an earlier one: no engine repeats
    them)."""
    out: dict[str, _Element] = {}
    for ch in el.iterchildren(*wanted):  # filtered by lxml: no Python object for the links and the rest
        tag = ch.tag
        if tag in out:
            raise _repeats(el, tag)  # type: ignore[arg-type]
        out[tag] = ch  # type: ignore[index]
    return out


def _fields(el: _Element, wanted: frozenset[str]) -> dict[str, _Element]:
    """:func:`_values` of an element with a few children (a device, a ``<cpu>``)."""
    out: dict[str, _Element] = {}
    for ch in _children(el):
        tag = ch.tag
        if tag in wanted:  # an entity reference's tag is not a string: never wanted
            if tag in out:
                raise _repeats(el, tag)  # type: ignore[arg-type]
            out[tag] = ch  # type: ignore[index]
    return out


def _child_text(el: _Element | None, tag: str) -> str | None:
    """The text of the one ``tag`` child of an element with a few children (None when there is none)."""
    if el is None:
        return None
    found = None
    for ch in _children(el):
        if ch.tag == tag:
            if found is not None:
                raise _repeats(el, tag)
            found = ch
    if found is None:
        return None
    if len(found):  # _text, inlined: this is called for every address, tag and link
        raise _Unreadable(f"<{tag}> holds elements where a value was expected")
    return found.text or None


_NIC = frozenset({"name", "type", "mac", "ips"})


def _guest_nic(device: _Element) -> GuestNic | None:
    """A ``<reported_device>`` (there are several per VM)."""
    v = _fields(device, _NIC)
    name, kind, mac, ips = v.get("name"), v.get("type"), v.get("mac"), v.get("ips")
    name_text = None if name is None else _text(name)
    kind_text = None if kind is None else _text(kind)
    if not name_text or (kind_text in REPORTED_DEVICE_TYPES and kind_text != "network"):
        return None
    address = _child_text(mac, "address")
    found: list[str] = []
    if ips is not None:
        for ip in _children(ips):
            if ip.tag == "ip" and (text := _child_text(ip, "address")):
                found.append(text)
    return GuestNic(name=sys.intern(name_text), mac=address.lower() if address else None, ips=tuple(found))


_CPU = frozenset({"topology", "architecture"})
_TOPOLOGY = frozenset({"sockets", "cores", "threads"})


def _cpus(cpu: _Element | None) -> tuple[int | None, str | None]:
    """(sockets * cores * threads or None, the architecture enum value or None) of a ``<cpu>``."""
    if cpu is None:
        return None, None
    v = _fields(cpu, _CPU)
    arch = _text(v["architecture"]) if "architecture" in v else None
    cpus = None
    if "topology" in v:
        t = _fields(v["topology"], _TOPOLOGY)
        got = [_int(t[k]) if k in t else None for k in ("sockets", "cores", "threads")]
        if any(x is not None for x in got):
            cpus = (got[0] or 1) * (got[1] or 1) * (got[2] or 1)
    return cpus, arch if arch in ARCHITECTURES else None


_GUEST_OS = frozenset({"distribution", "version", "kernel", "architecture"})


def _guest_os(gos: _Element) -> tuple[str | None, str | None, str | None]:
    """(guest OS, kernel, architecture) of a ``<guest_operating_system>``."""
    v = _fields(gos, _GUEST_OS)
    distribution = _text(v["distribution"]) if "distribution" in v else None
    version = _child_text(v.get("version"), "full_version")
    guest_os = " ".join(p.strip() for p in (distribution, version) if p and p.strip()) or None
    kernel = None
    if "kernel" in v:
        kv = _fields(v["kernel"], _KERNEL)
        kernel = _child_text(kv.get("version"), "full_version") if "version" in kv else None
    arch = (_text(v["architecture"]) if "architecture" in v else None) or ""
    return guest_os, kernel or None, arch.strip() or None


_KERNEL = frozenset({"version"})


def _link(el: _Element | None) -> tuple[str | None, str | None]:
    """(id, name) of a link element (a followed link carries its name)."""
    if el is None:
        return None, None
    ref = el.get("id")
    return sys.intern(ref) if ref else ref, _child_text(el, "name")


_VM = ("name", "status", "fqdn", "cluster", "host", "cpu", "memory", "os", "guest_operating_system",
       "reported_devices", "tags", "instance_type", "affinity_labels", "placement_policy")
_CLUSTER = frozenset({"data_center"})
_LISTED = frozenset({"data_center", "cpu"})


def _vm(el: _Element) -> LeanVm:
    v = _values(el, _VM)
    vm_id = el.get("id") or ""
    cluster = v.get("cluster")
    cluster_id, cluster_name = _link(cluster)
    dc_id, dc_name = _link(_fields(cluster, _CLUSTER).get("data_center")) if cluster is not None else (None, None)
    host_id, host_name = _link(v.get("host"))
    it_id, it_name = _link(v.get("instance_type"))
    cpus, cpu_arch = _cpus(v.get("cpu"))
    guest_os = kernel = architecture = None
    gos = v.get("guest_operating_system")
    if gos is not None:
        guest_os, kernel, architecture = _guest_os(gos)
    nics: tuple[GuestNic, ...] = ()
    if "reported_devices" in v:
        nics = tuple(n for d in _children(v["reported_devices"])
                     if d.tag == "reported_device" and (n := _guest_nic(d)) is not None)
    tags: set[str] = set()
    if "tags" in v:
        tags = {name for t in _children(v["tags"]) if t.tag == "tag" and (name := _child_text(t, "name"))}
    affinity: set[str] = set()
    if "affinity_labels" in v:
        affinity = {name for t in _children(v["affinity_labels"])
                    if t.tag == "affinity_label" and (name := _child_text(t, "name"))}
    placement = _child_text(v.get("placement_policy"), "affinity")
    fqdn = ((_text(v["fqdn"]) if "fqdn" in v else None) or "").strip() or None
    status = _text(v["status"]) if "status" in v else None
    os_type = _child_text(v.get("os"), "type")
    record = VirtualMachine(
        id=vm_id,
        name=(_text(v["name"]) if "name" in v else None) or "",
        status=sys.intern(status) if status in VM_STATUSES else "unknown",
        fqdn=fqdn,
        cluster=cluster_name, cluster_id=cluster_id,
        datacenter=dc_name, datacenter_id=dc_id,
        host=host_name, host_id=host_id,
        tags=tuple(sorted(sys.intern(t) for t in tags)),
        nics=nics,
        cpus=cpus,
        memory_bytes=_int(v["memory"]) if "memory" in v else None,
        os_type=sys.intern(os_type) if os_type else os_type,
        guest_os=sys.intern(guest_os) if guest_os else guest_os,
        kernel=sys.intern(kernel) if kernel else kernel,
        architecture=sys.intern(arch) if (arch := architecture or cpu_arch) else arch,
        instance_type=it_name,
        guest_agent=bool(nics or fqdn or gos is not None),
        affinity_labels=tuple(sorted(sys.intern(a) for a in affinity)),
        placement=sys.intern(placement) if placement in VM_AFFINITIES else None,
    )
    return LeanVm(record, it_id)


def read_vms(body: bytes | _Element, answer: str, where: str) -> list[LeanVm]:
    """The VMs of a ``<vms>`` answer (``answer`` names it in errors, e.g. ``/vms page 3``).

    Raises MalformedXml or EngineDataError (the root is not ``<vms>``, a VM without an id, a value that
    cannot be read)."""
    root = parse(body) if isinstance(body, bytes) else body
    if root.tag != "vms":
        raise EngineDataError(f"engine answer for {answer} at {where}: the root element is <{root.tag}>, not <vms>")
    return [read_vm(el, answer, where) for el in root.iterchildren("vm")]


def read_vm(el: _Element, answer: str, where: str) -> LeanVm:
    """One ``<vm>`` element; EngineDataError naming ``answer`` when it has no id or cannot be read."""
    got = el.get("id")
    if got:
        try:
            return _vm(el)
        except _Unreadable as exc:
            unreadable: _Unreadable | None = exc
    else:
        unreadable = None
    raise _unreadable_record(el, answer, where, tag="vm", noun="VM", got=got, unreadable=unreadable) from None


def _unreadable_record(el: _Element, answer: str, where: str, *, tag: str, noun: str, got: str | None,
                       unreadable: _Unreadable | None) -> EngineDataError:
    """The error for a ``<vm>`` or ``<host>`` element (``tag``) without an id (``unreadable`` None) or with a value
    that cannot be read, named by its name when that can be read (the name is read twice only on this path)."""
    try:
        name = _child_text(el, "name")
    except _Unreadable as exc:
        return EngineDataError(f"engine answer for {answer} at {where}: a <{tag}> cannot be read ({exc})")
    if unreadable is None:
        return EngineDataError(f"engine answer for {answer} at {where}: a <{tag}> without an id (name {name!r})")
    return EngineDataError(f"engine answer for {answer} at {where}: {noun} {got} (name {name!r}) cannot be read "
                           f"(ValueError: {unreadable})")


def read_names(body: bytes, root_tag: str, item_tag: str, answer: str, where: str) -> dict[str, Named]:
    """id → name (and data center id, CPU architecture) of every entity of a collection answer (``<clusters>``,
    ...). Read as a stream: each entity is dropped once read, so a list of a thousand hosts (each with its links,
    CPU, hardware, ...) never stands as a whole tree next to the VM pages."""
    out: dict[str, Named] = {}
    stream = etree.iterparse(io.BytesIO(body), events=("end",), tag=item_tag, **_STREAM)
    try:
        for _, el in stream:  # only the item's tag reaches Python (filtered by lxml)
            parent = el.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # the root itself, or an element of that tag deeper down
            if parent.tag != root_tag:
                break  # said below
            item_id = el.get("id")
            if not item_id:
                raise EngineDataError(f"engine answer for {answer} at {where}: a <{item_tag}> without an id")
            v = _fields(el, _LISTED)
            dc = v.get("data_center")
            arch = _child_text(v.get("cpu"), "architecture")
            out[item_id] = Named(_child_text(el, "name"), dc.get("id") if dc is not None else None,
                                 sys.intern(arch) if arch in ARCHITECTURES else None)
            el.clear()
            while el.getprevious() is not None:
                del parent[0]
        else:
            parent = stream.root
    except _Unreadable as exc:
        raise EngineDataError(f"engine answer for {answer} at {where}: {exc}") from None
    except etree.XMLSyntaxError as e:
        xml_root(body)  # raises MalformedXml with expat's line and reason, as the SDK path reports it
        raise MalformedXml(e.lineno or 1, str(e.msg)) from None
    if parent.tag != root_tag:
        raise EngineDataError(f"engine answer for {answer} at {where}: the root element is <{parent.tag}>, "
                              f"not <{root_tag}>")
    return out


_TAG = frozenset({"name", "parent"})


def read_tags(body: bytes, answer: str, where: str) -> tuple[Tag, ...]:
    """The tag tree of a ``<tags>`` answer: each tag's id, name and parent's id (in the answer's order)."""
    root = parse(body)
    if root.tag != "tags":
        raise EngineDataError(f"engine answer for {answer} at {where}: the root element is <{root.tag}>, "
                              "not <tags>")
    out: list[Tag] = []
    try:
        for el in root:
            if el.tag != "tag":
                continue
            tag_id = el.get("id")
            if not tag_id:
                raise EngineDataError(f"engine answer for {answer} at {where}: a <tag> without an id")
            v = _fields(el, _TAG)
            parent = v.get("parent")
            out.append(Tag(id=tag_id, name=(_text(v["name"]) if "name" in v else None) or "",
                           parent_id=parent.get("id") if parent is not None else None))
    except _Unreadable as exc:
        raise EngineDataError(f"engine answer for {answer} at {where}: {exc}") from None
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Names:
    """The entities a lean discovery joins by id: clusters, data centers, hosts, instance types."""

    clusters: Mapping[str, Named]
    datacenters: Mapping[str, Named]
    hosts: Mapping[str, Named]
    instance_types: Mapping[str, Named]


def joined(lean: LeanVm, names: Names, where: str) -> VirtualMachine:
    """``lean.vm`` with the names of its cluster, data center, host and instance type from ``names``.

    An id that ``names`` does not list is an EngineDataError (the VM's links and the lists disagree), never a
    record without the name."""
    vm = lean.vm

    def find(kind: str, table: Mapping[str, Named], ref: str) -> Named:
        return named_in(table, ref, kind=kind, where=where, owner=f"VM {vm.name} ({vm.id})")

    changes: dict[str, str | None] = {}
    if vm.cluster_id is not None and vm.cluster is None:
        cluster = find("cluster", names.clusters, vm.cluster_id)
        changes["cluster"] = cluster.name
        if cluster.datacenter_id is not None:
            changes["datacenter_id"] = cluster.datacenter_id
            changes["datacenter"] = find("data center", names.datacenters, cluster.datacenter_id).name
    if vm.host_id is not None and vm.host is None:
        changes["host"] = find("host", names.hosts, vm.host_id).name
    if lean.instance_type_id is not None and vm.instance_type is None:
        changes["instance_type"] = find("instance type", names.instance_types, lean.instance_type_id).name
    return dataclasses.replace(vm, **changes) if changes else vm  # type: ignore[arg-type]


__all__ = ["LeanVm", "Named", "Names", "joined", "named_in", "parse", "read_names", "read_tags", "read_vm", "read_vms"]


def named_in(table: Mapping[str, Named], ref: str, *, kind: str, where: str, owner: str) -> Named:
    """``table``'s entry for ``ref`` (a ``kind``: cluster, data center, ...), joined into ``owner``'s record (e.g.
    ``VM web-1 (id)``); an id the list does not hold is an EngineDataError (the links and the lists disagree)."""
    named = table.get(ref)
    if named is None:
        raise EngineDataError(f"engine answer at {where}: {owner} names the {kind} {ref}, which the list of {kind}s "
                              f"does not hold")
    return named
