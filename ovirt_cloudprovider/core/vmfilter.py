"""Does a VM still match the ``[filters] vms`` search? A conservative, three-valued answer; a VM or host
search narrowed to one object; and the tags a search names that the engine does not have (pure).

:func:`unknown_tags`: a ``tag=`` condition naming a tag that is not in the engine's tag tree matches no VM, and
the engine answers it with 200 and no VM, not an error; ``check-config`` and the controller report it from the
tag list (:attr:`~.records.Snapshot.tags`).

Used only to confirm a deletion (:mod:`.confirm`): the engine still has
the VM (a GET by id answered), so either the VM left the filter (tag removed, moved to another cluster) or the
search lost it by accident (a paging shift, an engine glitch). The engine answers that with a search narrowed
to the VM (:func:`narrowed`); :func:`filter_match` is a veto on top: it evaluates the filter on the VM record
the GET returned, and a record that clearly still matches is never deleted, whatever the searches say
(hosts have no such veto: for a host that still exists, the ``[filters] hosts`` search narrowed to it is the
evidence, see :mod:`.confirm`):

- ``True``: the record clearly matches the filter: the search lost it, its node must not be deleted;
- ``False``: the record clearly does not match: it left the filter;
- ``None``: cannot tell (a field or operator we do not evaluate, a tag that may be a child of the named one,
  a query we cannot parse). The caller then needs other evidence.

Supported: ``field = value`` and ``field != value`` with ``*`` wildcards, ``and`` binding tighter than ``or``
(as the engine's search), the ``Vms:`` prefix, fields name, tag, cluster, datacenter, host, status, id, fqdn.
Case-sensitive, as the engine is by default. A ``tag=`` condition is ``True`` when one of the VM's tags
matches, ``False`` only when the VM has no tags at all (a child tag of the named one matches on the engine, and
the record does not say which tag is whose child); Kleene logic combines the three values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .records import VirtualMachine

_TOKEN_RE = re.compile(r'\s*(?:(?P<op>!=|<=|>=|=|<|>)|(?P<str>"[^"]*")|(?P<word>[^\s=!<>"]+))')
_PREFIXES = frozenset({"vms:", "vm:", "hosts:", "host:"})  # the search prefixes narrowed() keeps
_FIELDS = frozenset({"name", "tag", "cluster", "datacenter", "host", "status", "id", "fqdn"})


def _wild(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, value) is not None


def _condition(vm: VirtualMachine, field: str, op: str, value: str) -> bool | None:
    if field not in _FIELDS or op not in ("=", "!="):
        return None
    result: bool | None
    if field == "tag":
        result = True if any(_wild(value, t) for t in vm.tags) else (False if not vm.tags else None)
    elif field == "status":
        result = vm.status == value.lower().replace(" ", "_")
    elif field == "id":
        result = vm.id.lower() == value.lower()
    else:
        actual = {"name": vm.name, "cluster": vm.cluster, "datacenter": vm.datacenter, "host": vm.host,
                  "fqdn": vm.fqdn}[field]
        if actual is None and field in ("host", "fqdn", "datacenter", "cluster"):
            return None  # the record may just not report it
        result = _wild(value, actual)
    if result is None:
        return None
    return result if op == "=" else not result


def _and(values: list[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: list[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def narrowed(query: str, object_id: str) -> str:
    """The search ``query`` (of VMs or of hosts: ``id`` is a search field of both) restricted to one object:
    ``id=<object_id>`` added to every ``or`` branch (``and`` binds tighter than ``or`` in the engine's search
    language), so the engine itself answers whether the VM or host matches, with its own tag hierarchy. A
    ``Vms:`` / ``Hosts:`` prefix stays in front; ``""`` becomes ``id=<object_id>``."""
    text = query.strip()
    head = ""
    first = text.split(None, 1)
    if first and first[0].lower() in _PREFIXES:
        head, text = first[0] + " ", (first[1] if len(first) > 1 else "")
    if not text:
        return f"{head}id={object_id}"
    parts = re.split(r'\s+or\s+(?=(?:[^"]*"[^"]*")*[^"]*$)', text, flags=re.IGNORECASE)
    return head + " or ".join(f"{p} and id={object_id}" for p in parts)


def _tokens(query: str) -> list[tuple[str, str]] | None:
    """The search's tokens (``("op", "=")``, ``("word", "tag")``; quotes removed), None when it cannot be read."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, query.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        if m.group("op"):
            tokens.append(("op", m.group("op")))
        elif m.group("str") is not None:
            tokens.append(("word", m.group("str")[1:-1]))
        elif m.group("word"):
            tokens.append(("word", m.group("word")))
    return tokens


def named_tags(query: str) -> tuple[str, ...]:
    """The tag names of the search's ``tag=`` conditions (each once, in order; a ``*`` wildcard kept)."""
    tokens = _tokens(query) or []
    found = [tokens[i + 2][1] for i in range(len(tokens) - 2)
             if tokens[i][0] == "word" and tokens[i][1].lower() == "tag"
             and tokens[i + 1] == ("op", "=") and tokens[i + 2][0] == "word"]
    return tuple(dict.fromkeys(found))


def unknown_tags(query: str, tag_names: Iterable[str]) -> tuple[str, ...]:
    """The tags that ``query``'s ``tag=`` conditions name and no tag of ``tag_names`` is (or, for a pattern
    with ``*``, matches): on the engine such a condition matches no VM, without an error."""
    names = tuple(tag_names)
    return tuple(t for t in named_tags(query) if not any(_wild(t, n) for n in names))


def filter_match(query: str, vm: VirtualMachine) -> bool | None:
    """Whether ``vm`` matches the search ``query``: True, False, or None (cannot tell). ``""`` matches all."""
    tokens = _tokens(query)
    if tokens is None:
        return None
    if tokens and tokens[0][0] == "word" and tokens[0][1].lower() in ("vms:", "vm:"):
        tokens = tokens[1:]
    if not tokens:
        return True
    clauses: list[list[bool | None]] = [[]]
    i = 0
    while i < len(tokens):
        if i + 2 >= len(tokens):
            return None
        f, op, v = tokens[i], tokens[i + 1], tokens[i + 2]
        if f[0] != "word" or op[0] != "op" or v[0] != "word":
            return None
        clauses[-1].append(_condition(vm, f[1].lower(), op[1], v[1]))
        i += 3
        if i == len(tokens):
            break
        joiner = tokens[i]
        if joiner[0] != "word" or joiner[1].lower() not in ("and", "or") or i + 1 == len(tokens):
            return None
        if joiner[1].lower() == "or":
            clauses.append([])
        i += 1
    return _or([_and(c) for c in clauses])
