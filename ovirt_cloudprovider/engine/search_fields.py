"""The oVirt VM and host search fields, as data, and :func:`unknown_fields` (pure, stdlib only).

The engine answers a search with an unknown field (``tga=kubernetes``) with an empty list, not an error, so a
typo in ``[filters] vms`` silently matches nothing. ``check-config``, ``discover`` and ``run`` warn with a
"did you mean" instead.

Source: oVirt/ovirt-engine at commit 0111fc63036bca662aa6275a8ad16282cccf86bf,
backend/manager/modules/searchbackend/src/main/java/org/ovirt/engine/core/searchbackend/
- VmConditionFieldAutoCompleter.java: the VM's own fields (``verbs.add(...)``; HOST is spelled ``ON_HOST``
  there);
- VmCrossRefAutoCompleter.java (with SearchObjects.java): the objects a VM search may refer to, plural and
  singular (``Hosts.name = h1``, ``Host = h1``, ``Templates.name = t``, ``Events.severity = error``,
  ``Users.name = u``, ``Storage.name = s``, ``Vnic.mac_address = ...``). Clusters, data centers and tags are
  VM fields (``cluster``, ``datacenter``, ``tag``), not cross-references.
- VdsConditionFieldAutoCompleter.java and VdsCrossRefAutoCompleter.java (read at commits 0135f303 and
  0f4e1388): a host's fields (``address`` is its FQDN or IP; there is no ``fqdn`` or ``ip``) and the objects a
  host search may refer to (``Vms``, ``Templates``, ``Events``, ``Users``, ``Storage``, ``Nic``).
"""

from __future__ import annotations

import difflib
import re

VM_FIELDS = frozenset({
    "name", "comment", "status", "ip", "on_host", "fqdn", "uptime", "os", "creationdate", "address", "cpu_usage",
    "mem_usage", "network_usage", "memory", "guaranteed_memory", "migration_progress_percent", "apps", "cluster",
    "pool", "loggedinuser", "tag", "datacenter", "type", "quota", "id", "description", "architecture",
    "custom_emulated_machine", "custom_cpu_type", "compatibility_level", "custom_compatibility_level",
    "created_by_user_id", "next_run_config_exists", "has_illegal_images", "bios_type", "k8s_namespace", "vcpus",
})
VM_CROSS_REFERENCES = frozenset({
    "hosts", "templates", "events", "users", "storage", "vnic",  # plural forms (VmCrossRefAutoCompleter)
    "host", "template", "event", "user",  # singular forms
})
HOST_FIELDS = frozenset({
    "name", "comment", "status", "external_status", "cluster", "address", "cpu_usage", "mem_usage",
    "network_usage", "load", "version", "cpus", "memory", "cpu_speed", "cpu_model", "active_vms", "migrating_vms",
    "committed_mem", "tag", "type", "datacenter", "architecture", "update_available", "ha_score", "spm_id", "hw_id",
    "id",
})
HOST_CROSS_REFERENCES = frozenset({
    "vms", "templates", "events", "users", "storage", "nic",  # plural forms (VdsCrossRefAutoCompleter)
    "vm", "template", "event", "user",  # singular forms
})
# per ``[filters]`` key: the fields, the cross-references, the search prefix and how messages name the object
_KINDS = {
    "vms": (VM_FIELDS, VM_CROSS_REFERENCES, re.compile(r"^\s*(?:vms?)\s*:", re.IGNORECASE), "VM"),
    "hosts": (HOST_FIELDS, HOST_CROSS_REFERENCES, re.compile(r"^\s*(?:hosts?)\s*:", re.IGNORECASE), "host"),
}

_KEYWORDS = frozenset({"and", "or", "sortby", "page", "asc", "desc"})
_TOKEN = re.compile(r'"[^"]*"?|\'[^\']*\'?|!=|>=|<=|=|<|>|[^\s=!<>"\']+|!')
_OPERATORS = frozenset({"=", "!=", "<", ">", "<=", ">="})


def _suggest(word: str, fields: frozenset[str], refs: frozenset[str]) -> str | None:
    candidates = sorted(fields | refs)
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_fields(query: str, *, kind: str = "vms") -> list[tuple[str, str | None]]:
    """The fields of the search ``query`` (``kind``: ``vms`` or ``hosts``, the ``[filters]`` key) that the engine
    does not know, each with a suggestion (or None).

    Understands ``field op value`` with ``=``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, quoted values, ``and``/``or``,
    ``sortby``/``page``, an optional ``Vms:`` (``Hosts:``) prefix and ``Object.field`` cross-references.
    """
    fields, refs, prefix, _ = _KINDS[kind]
    tokens = _TOKEN.findall(prefix.sub("", query, count=1))
    out: list[tuple[str, str | None]] = []
    for i, token in enumerate(tokens[:-1]):
        if tokens[i + 1] not in _OPERATORS or token in _OPERATORS or token[:1] in "\"'":
            continue
        if i > 0 and tokens[i - 1] in _OPERATORS:
            continue  # a value, as in "a = b = c" (not a field)
        field = token.lower()
        if field in _KEYWORDS:
            continue
        head, dot, _ = field.partition(".")
        known = head in refs if dot else (field in fields or field in refs)
        suggestion = _suggest(head if dot else field, fields, refs)
        if not known and (token, suggestion) not in out:
            out.append((token, suggestion))
    return out


def warnings(query: str, *, kind: str = "vms") -> list[str]:
    """One line per unknown field of ``query``, e.g. ``[filters] vms: unknown VM search field 'tga' (did you mean
    'tag'?): the engine answers such a search with an empty list``."""
    lines = []
    what = _KINDS[kind][3]
    for field, suggestion in unknown_fields(query, kind=kind):
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        lines.append(f"[filters] {kind}: unknown {what} search field {field!r}{hint}: the engine answers such a "
                     "search with an empty list, not an error")
    return lines


__all__ = ["HOST_CROSS_REFERENCES", "HOST_FIELDS", "VM_CROSS_REFERENCES", "VM_FIELDS", "unknown_fields", "warnings"]
