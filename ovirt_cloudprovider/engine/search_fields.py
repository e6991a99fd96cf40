"""The oVirt VM search fields, as data, and :func:`unknown_fields` (pure, stdlib only).

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
_KEYWORDS = frozenset({"and", "or", "sortby", "page", "asc", "desc"})
_TOKEN = re.compile(r'"[^"]*"?|\'[^\']*\'?|!=|>=|<=|=|<|>|[^\s=!<>"\']+|!')
_OPERATORS = frozenset({"=", "!=", "<", ">", "<=", ">="})
_PREFIX = re.compile(r"^\s*(?:vms?)\s*:", re.IGNORECASE)


def _suggest(word: str) -> str | None:
    candidates = sorted(VM_FIELDS | VM_CROSS_REFERENCES)
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_fields(query: str) -> list[tuple[str, str | None]]:
    """The fields of the VM search ``query`` that the engine does not know, each with a suggestion (or None).

    Understands ``field op value`` with ``=``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, quoted values, ``and``/``or``,
    ``sortby``/``page``, an optional ``Vms:`` prefix and ``Object.field`` cross-references.
    """
    tokens = _TOKEN.findall(_PREFIX.sub("", query, count=1))
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
        known = head in VM_CROSS_REFERENCES if dot else (field in VM_FIELDS or field in VM_CROSS_REFERENCES)
        if not known and (token, _suggest(head if dot else field)) not in out:
            out.append((token, _suggest(head if dot else field)))
    return out


def warnings(query: str) -> list[str]:
    """One line per unknown field of ``query``, e.g. ``[filters] vms: unknown VM search field 'tga' (did you mean
    'tag'?): the engine answers such a search with an empty list``."""
    lines = []
    for field, suggestion in unknown_fields(query):
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        lines.append(f"[filters] vms: unknown VM search field {field!r}{hint}: the engine answers such a search "
                     "with an empty list, not an error")
    return lines


__all__ = ["VM_CROSS_REFERENCES", "VM_FIELDS", "unknown_fields", "warnings"]
