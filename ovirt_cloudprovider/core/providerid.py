"""The one owner of the providerID format and of VM-id spelling.

A Node we manage carries ``spec.providerID = ovirt://<vm-id>``, the VM id written as a lowercase UUID (which is
also the SMBIOS system UUID the kubelet reports as ``status.nodeInfo.systemUUID``). The removed in-tree provider
wrote ``ovirt:///<vm-id>`` (an empty host part); such IDs are read as the same VM and adopted as they are.

oVirt VM ids are UUIDs, so a providerID names a VM only when what follows ``ovirt://`` (or ``ovirt:///``) is
one UUID, in any spelling: upper or lower case, with or without its dashes (all four or none), with or without
surrounding braces. Anything else under ``ovirt://`` (no id, ``ovirt://not-a-uuid``, ``ovirt://<uuid>/extra``,
more slashes) names no VM: :func:`vm_id_of` returns ``None`` and the node is foreign.

An oVirt host's Node carries ``ovirt://host/<host-id>`` (:func:`build_host`, :func:`host_id_of`). The two never
overlap: :func:`vm_id_of` returns ``None`` for a host providerID (``host/<uuid>`` is no UUID) and
:func:`host_id_of` returns ``None`` for a VM's. :func:`owner_key` is how the planner keys a node's owner:
the VM id for a VM, ``host/<host-id>`` for a host, so a VM id never names a host node and vice versa.

- :func:`build` writes the providerID of a VM id.
- :func:`vm_id_of` reads the VM id back out of a providerID (``None`` when it is not ours).
- :func:`is_ovirt` says whether a providerID is under the ``ovirt://`` scheme at all (ours or malformed).
- :func:`normalize_vm_id` is how every module compares VM ids: stripped and lower-cased.
- :func:`vm_uuid`, :func:`uuid_forms` and :func:`same_uuid` relate a VM id to a node's systemUUID, including the
  mixed-endian spelling some firmware reports.

Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
import uuid

PREFIX = "ovirt://"

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A VM id in a providerID: a UUID with all its dashes or none, optionally in braces (any case).
_ID_IN_PROVIDER_ID = re.compile(
    r"^(\{?)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})(\}?)$", re.IGNORECASE)


def normalize_vm_id(vm_id: str) -> str:
    """``vm_id`` as every comparison sees it: a UUID in its canonical lowercase spelling; anything else
    without surrounding white space, lower-cased."""
    return vm_uuid(vm_id) or vm_id.strip().lower()


def vm_uuid(vm_id: str) -> str | None:
    """The VM id as a lowercase UUID string (the SMBIOS system UUID), or ``None`` if it is not one."""
    try:
        text = str(uuid.UUID(vm_id.strip()))
    except ValueError:
        return None
    return vm_id if text == vm_id else text  # the same string when it already is one: one copy per VM, not two


def build(vm_id: str) -> str:
    """The providerID of the VM ``vm_id``: ``ovirt://<lowercase uuid>`` (the id as given when not a UUID)."""
    return PREFIX + (vm_uuid(vm_id) or normalize_vm_id(vm_id))


def is_ovirt(provider_id: str | None) -> bool:
    """True when ``provider_id`` is under the ``ovirt://`` scheme (whether or not it names a VM)."""
    return bool(provider_id) and str(provider_id).startswith(PREFIX)


def vm_id_of(provider_id: str | None) -> str | None:
    """The VM id (canonical lowercase UUID) of an ``ovirt://<uuid>`` (or legacy ``ovirt:///<uuid>``) providerID
    in any spelling of the UUID, else ``None`` (not ours, or under ``ovirt://`` but naming no VM)."""
    if not provider_id or not provider_id.startswith(PREFIX):
        return None
    rest = provider_id[len(PREFIX):]
    rest = rest[1:] if rest.startswith("/") else rest
    match = _ID_IN_PROVIDER_ID.match(rest.strip())
    if match is None or bool(match.group(1)) != bool(match.group(3)):
        return None
    return str(uuid.UUID(match.group(2)))


def is_uuid(value: str) -> bool:
    """True when ``value`` (normalised) is a canonical UUID spelling."""
    return bool(_UUID_RE.match(normalize_vm_id(value)))


def uuid_forms(value: str) -> tuple[str, ...]:
    """``value`` normalised, plus its mixed-endian twin when it is a well-formed UUID."""
    u = normalize_vm_id(value)
    if not _UUID_RE.match(u):
        return (u,)
    a, b, c, d, e = u.split("-")

    def swap(h: str) -> str:
        return "".join(reversed([h[i:i + 2] for i in range(0, len(h), 2)]))

    return (u, f"{swap(a)}-{swap(b)}-{swap(c)}-{d}-{e}")


def same_uuid(system_uuid: str | None, vm_id: str) -> bool:
    """True when a node's systemUUID names the VM: equal ignoring case, or its mixed-endian form."""
    return bool(system_uuid) and normalize_vm_id(vm_id) in uuid_forms(system_uuid or "")


HOST_PREFIX = PREFIX + "host/"
HOST_KEY_PREFIX = "host/"


def build_host(host_id: str) -> str:
    """The providerID of the oVirt host ``host_id``: ``ovirt://host/<lowercase uuid>``."""
    return HOST_PREFIX + (vm_uuid(host_id) or normalize_vm_id(host_id))


def host_id_of(provider_id: str | None) -> str | None:
    """The host id (canonical lowercase UUID) of an ``ovirt://host/<uuid>`` providerID (any spelling of the
    UUID, as for VMs), else ``None`` (a VM's, a foreign one, or ``ovirt://host/`` with no UUID)."""
    if not provider_id or not provider_id.startswith(HOST_PREFIX):
        return None
    match = _ID_IN_PROVIDER_ID.match(provider_id[len(HOST_PREFIX):].strip())
    if match is None or bool(match.group(1)) != bool(match.group(3)):
        return None
    return str(uuid.UUID(match.group(2)))


def owner_key(kind: str, owner_id: str) -> str:
    """The planner's key of a VM (``kind="vm"``: the normalised VM id) or a host (``host/<normalised id>``)."""
    return HOST_KEY_PREFIX + normalize_vm_id(owner_id) if kind == "host" else normalize_vm_id(owner_id)


def owner_key_of(provider_id: str | None) -> str | None:
    """:func:`owner_key` of the VM or host a providerID names, ``None`` when it names neither."""
    vm_id = vm_id_of(provider_id)
    if vm_id is not None:
        return vm_id
    host_id = host_id_of(provider_id)
    return HOST_KEY_PREFIX + host_id if host_id is not None else None


def is_host_key(key: str) -> bool:
    """True when an :func:`owner_key` names a host."""
    return key.startswith(HOST_KEY_PREFIX)
