"""Engine XML → host records, reading only the fields we use (lxml), as :mod:`.host_records` reads the SDK's objects.

:func:`read_hosts` reads a ``<hosts>`` page of a host search with ``follow=nics`` (and ``affinity_labels`` when
asked for) into :class:`LeanHost` records: a :class:`~ovirt_cloudprovider.core.records.Host` exactly as
``host_record(Reader.read(body))`` gives it for the same hosts searched with their cluster and data center
inlined, except the names of the cluster and data center and the cluster's architecture, which
:func:`joined_host` takes from the lists a lean discovery reads anyway (:func:`.fastxml.read_names` of
``/clusters`` and ``/datacenters``). The NICs are inlined: every host node's addresses come from them.

The rules are :mod:`.fastxml`'s (the SDK reader's): only ``id`` is read from attributes (and a VLAN's ``id``),
an empty element is absent, an enum value the SDK does not know is absent, a boolean is ``true``/``false``/
``1``/``0``; anything else is an :class:`~.errors.EngineDataError`, never a guess.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import NamedTuple

from ..core.hosts import kernel_of_cmdline
from ..core.records import Host, HostNic
from .connection import HOST_STATUSES
from .errors import EngineDataError
from .fastxml import (
    Named,
    _child_text,
    _children,
    _cpus,
    _Element,
    _fields,
    _int,
    _text,
    _Unreadable,
    _unreadable_record,
    _values,
    named_in,
    parse,
)


class LeanHost(NamedTuple):
    """One host as read from the XML: the names of its cluster and data center, and the architecture, are
    joined in later (:func:`joined_host`)."""

    host: Host


def _stripped(el: _Element | None) -> str | None:
    """``str(value).strip() or None`` of host_records, of a value element."""
    if el is None:
        return None
    return ((_text(el) or "").strip()) or None


def _boolean(el: _Element | None) -> bool:
    text = None if el is None else _text(el)
    if text is None:
        return False
    low = text.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise _Unreadable(f"The text '{low}' isn't a valid boolean value")


_HOST_NIC = frozenset({"name", "ip", "ipv6", "bonding", "mac", "vlan", "bridged", "base_interface"})


def _nic(el: _Element, names: dict[str, str]) -> HostNic:
    v = _fields(el, _HOST_NIC)
    ips = tuple(a for a in ((_stripped(_fields(v[k], _ADDRESS).get("address")) if k in v else None)
                            for k in ("ip", "ipv6")) if a)
    slaves: list[str] = []
    bonding = v.get("bonding")
    if bonding is not None:
        held = _fields(bonding, _SLAVES).get("slaves")
        for s in _children(held) if held is not None else ():
            if s.tag == "host_nic":
                slave = _child_text(s, "name") or names.get(s.get("id") or "", "")
                if slave:
                    slaves.append(slave)
    mac = _child_text(v.get("mac"), "address")
    vlan = v.get("vlan")
    vlan_id = vlan.get("id") if vlan is not None else None
    try:
        vlan_number = int(vlan_id) if vlan_id is not None else None
    except ValueError:
        raise _Unreadable(f"The text '{vlan_id}' isn't a valid integer value") from None
    name = _text(v["name"]) if "name" in v else None
    return HostNic(name=sys.intern(name or ""), mac=mac.lower() if mac else None, ips=ips,
                   bridged=_boolean(v.get("bridged")), bond_slaves=tuple(slaves), vlan=vlan_number,
                   base_interface=_stripped(v.get("base_interface")))


_ADDRESS = frozenset({"address"})
_SLAVES = frozenset({"slaves"})
_HW = frozenset({"manufacturer", "product_name", "uuid"})
_HOST_CPU = frozenset({"name"})
_OS = frozenset({"type", "version", "reported_kernel_cmdline"})
_HOST = ("name", "status", "address", "cluster", "hardware_information", "cpu", "memory", "os", "nics",
         "affinity_labels")


def _os(el: _Element | None) -> tuple[str | None, str | None]:
    if el is None:
        return None, None
    v = _fields(el, _OS)
    os_type = _text(v["type"]) if "type" in v else None
    version = _child_text(v.get("version"), "full_version")
    text = " ".join(p.strip() for p in (os_type, version) if p and p.strip()) or None
    cmdline = _text(v["reported_kernel_cmdline"]) if "reported_kernel_cmdline" in v else None
    return text, kernel_of_cmdline(cmdline)


def _host(el: _Element) -> Host:
    v = _values(el, _HOST)
    cluster = v.get("cluster")
    cluster_id = cluster.get("id") if cluster is not None else None
    hw = _fields(v["hardware_information"], _HW) if "hardware_information" in v else {}
    cpu = v.get("cpu")
    cpus, _ = _cpus(cpu)
    cpu_name = _stripped(_fields(cpu, _HOST_CPU).get("name")) if cpu is not None else None
    os_text, kernel = _os(v.get("os"))
    raw = [n for n in _children(v["nics"]) if n.tag == "host_nic"] if "nics" in v else []
    names = {ref: name for n in raw if (ref := n.get("id")) and (name := _child_text(n, "name"))}
    nics = tuple(nic for n in raw if (nic := _nic(n, names)).name)
    affinity: set[str] = set()
    if "affinity_labels" in v:
        affinity = {name for t in _children(v["affinity_labels"])
                    if t.tag == "affinity_label" and (name := _child_text(t, "name"))}
    status = _text(v["status"]) if "status" in v else None
    return Host(
        id=el.get("id") or "",
        name=(_text(v["name"]) if "name" in v else None) or "",
        status=sys.intern(status) if status in HOST_STATUSES else "unknown",
        address=_stripped(v.get("address")),
        cluster_id=sys.intern(cluster_id) if cluster_id else cluster_id,
        manufacturer=_stripped(hw.get("manufacturer")),
        product=_stripped(hw.get("product_name")),
        system_uuid=_stripped(hw.get("uuid")),
        cpu_model=cpu_name,
        cpus=cpus,
        memory_bytes=_int(v["memory"]) if "memory" in v else None,
        os=os_text,
        kernel=kernel,
        nics=nics,
        affinity_labels=tuple(sorted(affinity)),
    )


def read_hosts(body: bytes, answer: str, where: str) -> list[LeanHost]:
    """The hosts of a ``<hosts>`` answer (``answer`` names it in errors, e.g. ``the host search page 3``).

    Raises MalformedXml or EngineDataError (an answer that holds no hosts but other entities, a host without an
    id, a value that cannot be read)."""
    root = parse(body)
    if root.tag != "hosts":
        first = next(iter(_children(root)), None)
        kind = first.tag if first is not None else root.tag
        name = _child_text(first, "name") if first is not None else None
        raise EngineDataError(f"engine answer for {answer} at {where}: a <{kind}> instead of a <host> (name {name!r})")
    out: list[LeanHost] = []
    for el in root.iterchildren("host"):
        got = el.get("id")
        unreadable: _Unreadable | None = None
        if got:
            try:
                out.append(LeanHost(_host(el)))
                continue
            except _Unreadable as exc:
                unreadable = exc
        raise _unreadable_record(el, answer, where, tag="host", noun="host", got=got, unreadable=unreadable) from None
    return out


def joined_host(lean: LeanHost, clusters: Mapping[str, Named], datacenters: Mapping[str, Named],
                where: str) -> Host:
    """``lean.host`` with its cluster's name, architecture and data center from the lists; an id they do not hold
    is an EngineDataError (the host's link and the lists disagree), never a record without the name."""
    host = lean.host
    if host.cluster_id is None:
        return host

    def find(kind: str, table: Mapping[str, Named], ref: str) -> Named:
        return named_in(table, ref, kind=kind, where=where, owner=f"host {host.name} ({host.id})")

    cluster = find("cluster", clusters, host.cluster_id)
    dc = find("data center", datacenters, cluster.datacenter_id) if cluster.datacenter_id is not None else None
    return dataclasses.replace(host, cluster=cluster.name, architecture=cluster.architecture,
                               datacenter_id=cluster.datacenter_id, datacenter=dc.name if dc is not None else None)


__all__ = ["LeanHost", "joined_host", "read_hosts"]
