"""The supported subset of the oVirt search language, for VMs and hosts, as a real engine answers it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .constants import DEFAULT_PAGE_SIZE, GUEST_VISIBLE_STATUSES
from .model import Fleet, SimHost, SimTemplate, SimVM


class SearchError(ValueError):
    """A query the engine cannot parse (it answers an empty list)."""


class UnknownField(SearchError):
    """A field the engine does not know for VMs (it answers an empty list)."""


@dataclass(frozen=True)
class _Cond:
    field: str
    op: str
    value: str


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search (of VMs or hosts): OR of ANDs of conditions, plus sort and page."""

    clauses: tuple[tuple[_Cond, ...], ...]
    sort_field: str | None = None
    descending: bool = False
    page: int | None = None


_TOKEN_RE = re.compile(r'\s*(?:(?P<op>!=|<=|>=|=|<|>)|(?P<str>"[^"]*")|(?P<word>[^\s=!<>"]+))')
_VM_FIELDS = frozenset({
    "name", "status", "tag", "cluster", "datacenter", "host", "id", "fqdn", "os", "description",
})


_HOST_FIELDS = frozenset({"name", "status", "cluster", "datacenter", "tag", "address", "id"})
_TEMPLATE_FIELDS = frozenset({"name", "id", "cluster", "description"})


# complexity: the engine's search grammar, one branch per token kind
def parse_search(query: str, *, fields: frozenset[str] = _VM_FIELDS,  # noqa: C901
                 prefixes: tuple[str, ...] = ("vms:", "vm:")) -> SearchQuery:
    """Parse the supported subset of the oVirt search language (raises SearchError / UnknownField)."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, query.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise SearchError(f"cannot parse {text[pos:]!r}")
        pos = m.end()
        if m.group("op"):
            tokens.append(("op", m.group("op")))
        elif m.group("str") is not None:
            tokens.append(("word", m.group("str")[1:-1]))
        elif m.group("word"):
            tokens.append(("word", m.group("word")))
    # "Vms:" prefix, as the engine's own UI writes it
    if tokens and tokens[0][0] == "word" and tokens[0][1].lower() in prefixes:
        tokens = tokens[1:]
    i = 0

    def peek_word() -> str | None:
        return tokens[i][1].lower() if i < len(tokens) and tokens[i][0] == "word" else None

    clauses: list[tuple[_Cond, ...]] = []
    current: list[_Cond] = []
    expect_cond = True
    while i < len(tokens):
        w = peek_word()
        if w in ("sortby", "page"):
            break
        if w in ("and", "or"):
            if expect_cond:
                raise SearchError(f"unexpected {w!r}")
            if w == "or":
                clauses.append(tuple(current))
                current = []
            i += 1
            expect_cond = True
            continue
        if i + 2 >= len(tokens):
            raise SearchError("incomplete condition")
        f, op, v = tokens[i], tokens[i + 1], tokens[i + 2]
        if f[0] != "word" or op[0] != "op" or v[0] != "word":
            raise SearchError("expected 'field op value'")
        fname = f[1].lower()
        if fname not in fields:
            raise UnknownField(fname)
        if op[1] not in ("=", "!="):
            raise SearchError(f"operator {op[1]!r} not supported for {fname}")
        current.append(_Cond(fname, op[1], v[1]))
        i += 3
        expect_cond = False
    if expect_cond and (current or clauses):
        raise SearchError("dangling and/or")
    if current:
        clauses.append(tuple(current))
    sort_field, desc, page = None, False, None
    while i < len(tokens):
        w = peek_word()
        if w == "sortby":
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
                raise SearchError("sortby needs a field")
            sort_field = tokens[i + 1][1].lower()
            i += 2
            if peek_word() in ("asc", "desc"):
                desc = peek_word() == "desc"
                i += 1
        elif w == "page":
            if i + 1 >= len(tokens) or not tokens[i + 1][1].isdigit():
                raise SearchError("page needs a number")
            page = int(tokens[i + 1][1])
            i += 2
        else:
            raise SearchError(f"unexpected {tokens[i][1]!r}")
    return SearchQuery(tuple(clauses), sort_field, desc, page)


def _wild(pattern: str, value: str | None, case_sensitive: bool) -> bool:
    if value is None:
        return False
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _tagged(fleet: Fleet, tag_ids: Iterable[str], cond: _Cond, case_sensitive: bool,
            tag_sets: dict[_Cond, set[str]]) -> bool:
    """``tag=pattern``: one of the item's tags is a tag the pattern names or one of its descendants (the tag set
    of a condition is worked out once per search, in ``tag_sets``)."""
    if cond not in tag_sets:
        named = {t.id for t in fleet.tags.values() if _wild(cond.value, t.name, case_sensitive)}
        tag_sets[cond] = fleet.tag_descendants(named)
    return not tag_sets[cond].isdisjoint(tag_ids)


def _matches(fleet: Fleet, vm: SimVM, cond: _Cond, case_sensitive: bool, tag_sets: dict[_Cond, set[str]]) -> bool:
    v = cond.value
    if cond.field == "tag":
        result = _tagged(fleet, vm.tag_ids, cond, case_sensitive, tag_sets)
    elif cond.field == "status":
        result = vm.status == v.lower().replace(" ", "_")
    elif cond.field == "name":
        result = _wild(v, vm.name, case_sensitive)
    elif cond.field == "id":
        result = vm.id == v
    elif cond.field == "cluster":
        c = fleet.clusters.get(vm.cluster_id)
        result = _wild(v, c.name if c else None, case_sensitive)
    elif cond.field == "datacenter":
        c = fleet.clusters.get(vm.cluster_id)
        dc = fleet.datacenters.get(c.datacenter_id) if c else None
        result = _wild(v, dc.name if dc else None, case_sensitive)
    elif cond.field == "host":
        h = fleet.hosts.get(vm.host_id) if vm.host_id else None
        result = _wild(v, h.name if h else None, case_sensitive)
    elif cond.field == "fqdn":
        result = _wild(v, vm.fqdn if vm.status in GUEST_VISIBLE_STATUSES else None, case_sensitive)
    elif cond.field == "os":
        result = _wild(v, vm.os_type, case_sensitive)
    else:  # description
        result = _wild(v, vm.description, case_sensitive)
    return result if cond.op == "=" else not result


def _host_matches(fleet: Fleet, h: SimHost, cond: _Cond, case_sensitive: bool,
                  tag_sets: dict[_Cond, set[str]]) -> bool:
    v = cond.value
    c = fleet.clusters.get(h.cluster_id)
    if cond.field == "tag":
        result = _tagged(fleet, h.tag_ids, cond, case_sensitive, tag_sets)
    elif cond.field == "status":
        result = h.status == v.lower().replace(" ", "_")
    elif cond.field == "name":
        result = _wild(v, h.name, case_sensitive)
    elif cond.field == "id":
        result = h.id == v
    elif cond.field == "address":
        result = _wild(v, h.address, case_sensitive)
    elif cond.field == "cluster":
        result = _wild(v, c.name if c else None, case_sensitive)
    else:  # datacenter
        dc = fleet.datacenters.get(c.datacenter_id) if c else None
        result = _wild(v, dc.name if dc else None, case_sensitive)
    return result if cond.op == "=" else not result


_Item = TypeVar("_Item", SimVM, SimHost, SimTemplate)


@dataclass(frozen=True)
class _Searchable(Generic[_Item]):
    """One engine collection's search: its fields, the prefixes a query may start with (``Vms:``), the collection
    in a fleet and how one of its items meets one condition."""

    fields: frozenset[str]
    prefixes: tuple[str, ...]
    items: Callable[[Fleet], Mapping[str, _Item]]
    matches: Callable[[Fleet, _Item, _Cond, bool, dict[_Cond, set[str]]], bool]

    def search(self, fleet: Fleet, query: str, *, max_results: int | None, case_sensitive: bool) -> list[_Item]:
        try:
            q = parse_search(query, fields=self.fields, prefixes=self.prefixes)
        except SearchError:
            return []
        if q.sort_field not in (None, "name"):
            return []
        tag_sets: dict[_Cond, set[str]] = {}
        with fleet.lock:
            found = [x for x in self.items(fleet).values()
                     if not q.clauses or any(all(self.matches(fleet, x, c, case_sensitive, tag_sets) for c in clause)
                                             for clause in q.clauses)]
        if q.sort_field == "name":
            found.sort(key=lambda x: x.name, reverse=q.descending)
        if q.page is not None:
            size = max_results if max_results is not None else DEFAULT_PAGE_SIZE
            start = (max(q.page, 1) - 1) * size
            return found[start:start + size]
        return found[:max_results] if max_results is not None else found


def _template_matches(fleet: Fleet, t: SimTemplate, cond: _Cond, case_sensitive: bool,
                      tag_sets: dict[_Cond, set[str]]) -> bool:
    v = cond.value
    if cond.field == "name":
        result = _wild(v, t.name, case_sensitive)
    elif cond.field == "id":
        result = t.id == v
    elif cond.field == "cluster":
        c = fleet.clusters.get(t.cluster_id)
        result = _wild(v, c.name if c else None, case_sensitive)
    else:  # description
        result = _wild(v, t.description, case_sensitive)
    return result if cond.op == "=" else not result


_VMS: _Searchable[SimVM] = _Searchable(_VM_FIELDS, ("vms:", "vm:"), lambda f: f.vms, _matches)
_HOSTS: _Searchable[SimHost] = _Searchable(_HOST_FIELDS, ("hosts:", "host:"), lambda f: f.hosts, _host_matches)
_TEMPLATES: _Searchable[SimTemplate] = _Searchable(_TEMPLATE_FIELDS, ("templates:", "template:"),
                                                   lambda f: f.templates, _template_matches)


def search_vms(fleet: Fleet, query: str, *, max_results: int | None = None,
               case_sensitive: bool = True) -> list[SimVM]:
    """The VMs a real engine would return for ``search=query&max=max_results`` (empty on any query error)."""
    return _VMS.search(fleet, query, max_results=max_results, case_sensitive=case_sensitive)


def search_hosts(fleet: Fleet, query: str, *, max_results: int | None = None,
                 case_sensitive: bool = True) -> list[SimHost]:
    """The hosts a real engine would return for ``/hosts?search=query&max=max_results`` (empty on a query error)."""
    return _HOSTS.search(fleet, query, max_results=max_results, case_sensitive=case_sensitive)
