"""Patches: ports of strategic merge patch (apimachinery strategicpatch, with the real merge keys), JSON
merge patch (RFC 7386) and JSON patch (RFC 6902, evanphx/json-patch semantics)."""

from __future__ import annotations

import copy
from typing import Any

from .constants import Obj
from .roundtrip import SCHEMAS

# Strategic merge patch: a port of k8s.io/apimachinery/pkg/util/strategicpatch (mergeMap/mergeSlice and
# the $patch, $retainKeys, $deleteFromPrimitiveList and $setElementOrder directives), including its quirks:
# items of a merge list are matched by the merge key's *first* occurrence, so status.addresses (merge key
# "type", although addresses of one type are not unique) collapses several addresses of one type into one;
# new items are placed before the server-only ones; a list without a patch strategy (spec.taints) is
# replaced as a whole.

PATCH_META: dict[tuple[str, str], tuple[str, str]] = {
    ("ObjectMeta", "finalizers"): ("merge", ""),
    ("ObjectMeta", "ownerReferences"): ("merge", "uid"),
    ("NodeSpec", "podCIDRs"): ("merge", ""),
    ("NodeStatus", "conditions"): ("merge", "type"),
    ("NodeStatus", "addresses"): ("merge", "type"),
    ("NamespaceStatus", "conditions"): ("merge", "type"),
}


class PatchError(Exception):
    """A patch that cannot be applied. ``kind``: bad_request (400), unprocessable (422), internal (500)."""

    def __init__(self, message: str, kind: str = "internal") -> None:
        super().__init__(message)
        self.kind = kind


def _go_fmt(v: Any) -> str:
    """Approximately Go's %v for JSON values (maps print sorted: map[a:1 b:2])."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_fmt(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _no_merge_key(m: Any, key: str) -> PatchError:
    return PatchError(f"map: {_go_fmt(m)} does not contain declared merge key: {key}")


def _kind_of(v: Any) -> str:
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    return "nil"


def _smp_lookup(t: str | None, key: str) -> tuple[str | None, str, str]:
    """forkedjson.LookupPatchMetadata: (child type, patch strategy, merge key)."""
    if t is None:
        return None, "", ""
    spec = SCHEMAS[t].get(key)
    if spec is None:
        raise PatchError(f'unable to find api field in struct {t} for the json field "{key}"')
    spec = spec.rstrip("!*")
    if spec.startswith("["):
        spec = spec[1:-1]
    child = spec if spec[0].isupper() else None
    strategy, merge_key = PATCH_META.get((t, key), ("", ""))
    return child, strategy, merge_key


def strategic_merge_patch(original: Obj, patch: Obj, struct: str) -> Obj:
    """Apply a strategic merge patch to ``original`` (not modified) for the Go type ``struct``."""
    return _smp_map(copy.deepcopy(original), copy.deepcopy(patch), struct)


def _smp_map(original: Obj | None, patch: Obj, t: str | None) -> Obj:
    if "$patch" in patch:
        directive = patch["$patch"]
        if directive == "replace":
            del patch["$patch"]
            return patch
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")
    if original is None:
        original = {}
    _smp_retain_keys(original, patch)
    _smp_set_element_order(original, patch, t)
    for key, pv in list(patch.items()):
        k = key
        is_delete_list = False
        if key.startswith("$deleteFromPrimitiveList"):
            parts = key.split("/", 1)
            if len(parts) != 2 or parts[0] != "$deleteFromPrimitiveList":
                raise PatchError("invalid patch format of primitive list", "bad_request")
            k, is_delete_list = parts[1], True
        if pv is None:
            original.pop(k, None)
            continue
        if k not in original or _kind_of(original[k]) != _kind_of(pv):
            # Nothing to merge with: take the patch value, but (since kubernetes#117568, 1.28) without its
            # directives, and (IgnoreUnmatchedNulls) without its nulls; a delete list for a missing field is a
            # no-op (kubernetes#110472).
            if not is_delete_list:
                _discard_nulls(pv)
                value, keep = _remove_directives(pv)
                if keep:
                    original[k] = value
                else:
                    original.pop(k, None)
            continue
        ov = original[k]
        child, strategy, merge_key = _smp_lookup(t, k)
        if isinstance(ov, dict):
            original[k] = pv if strategy == "replace" else _smp_map(ov, pv, child)
        elif isinstance(ov, list):
            # a delete list deletes whatever the field's patch strategy (kubernetes#110472)
            merge = strategy == "merge" or is_delete_list
            original[k] = _smp_slice(ov, pv, child, merge_key, is_delete_list) if merge else pv
        else:
            original[k] = pv
    return original


def _discard_nulls(v: Any) -> None:
    """strategicpatch.discardNullValuesFromPatch: drop null map values, at any depth (in place)."""
    if isinstance(v, dict):
        for k in list(v):
            if v[k] is None:
                del v[k]
            else:
                _discard_nulls(v[k])
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)


def _remove_directives(v: Any) -> tuple[Any, bool]:
    """strategicpatch.removeDirectives: a patch value taken as is loses every map that holds a ``$patch``
    directive (a list element, or the field itself: the bool says whether to keep it). Other directive keys
    ($setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...) stay, and decode as unknown fields."""
    if isinstance(v, dict):
        if "$patch" in v:
            return None, False
        for k in list(v):
            value, keep = _remove_directives(v[k])
            if keep:
                v[k] = value
            else:
                del v[k]
        return v, True
    if isinstance(v, list):
        out: list[Any] = []
        for x in v:
            value, keep = _remove_directives(x)
            if keep:
                out.append(value)
        return out, True
    return v, True


def _smp_retain_keys(original: Obj, patch: Obj) -> None:
    if "$retainKeys" not in patch:
        return
    keys = patch.pop("$retainKeys")
    if not isinstance(keys, list):
        raise PatchError("invalid patch format of retainKeys", "bad_request")
    keep = set(keys)
    for k, v in patch.items():
        if v is None or k.startswith(("$deleteFromPrimitiveList", "$setElementOrder")):
            continue
        if k not in keep:
            raise PatchError("invalid patch format of retainKeys", "bad_request")
    for k in list(original):
        if k not in keep:
            del original[k]


def _slice_kind(*lists: list[Any]) -> str:
    kind = ""
    for lst in lists:
        for v in lst:
            k = _kind_of(v)
            if not kind:
                kind = k
                if k == "slice":
                    raise PatchError("lists of lists are not supported", "unprocessable")
            elif k != kind:
                raise PatchError(f"list element types are not identical: {_go_fmt(list(lists))}")
    if not kind:
        raise PatchError("no elements in any of the given slices")
    return kind


def _smp_slice(original: list[Any], patch: list[Any], t: str | None, merge_key: str,
               is_delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    kind = _slice_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            drop = list(patch)
            return [v for v in original if v not in drop]
        merged = _dedupe_scalars(original + patch)
    else:
        if not merge_key:
            raise PatchError("cannot merge lists without merge key for type map")
        original, patch = _smp_special_elements(original, patch, merge_key)
        merged = _smp_merge_items(list(original), patch, merge_key, t)
    if not merge_key:
        patch_items, server_only = _partition_primitives(merged, patch)
    else:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


def _dedupe_scalars(s: list[Any]) -> list[Any]:
    s = list(s)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if s[i] == s[j] and type(s[i]) is type(s[j]):
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def _smp_special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    plain: list[Any] = []
    replace = False
    for v in patch:
        if not isinstance(v, dict) or "$patch" not in v:
            plain.append(v)
            continue
        directive = v["$patch"]
        if directive == "delete":
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            original = [o for o in original if not (isinstance(o, dict) and merge_key in o
                                                    and o[merge_key] == v[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(v)}")
    if replace:
        return plain, []
    return original, plain


def _find_by_key(items: list[Any], key: str, value: Any) -> int:
    for i, v in enumerate(items):
        if not isinstance(v, dict):
            raise PatchError(f"value for key {i} is not a map.")
        if key in v and v[key] == value:
            return i
    return -1


def _smp_merge_items(work: list[Any], patch: list[Any], merge_key: str, t: str | None) -> list[Any]:
    for v in patch:
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        i = _find_by_key(work, merge_key, v[merge_key])
        if i >= 0:
            work[i] = _smp_map(work[i], v, t)
        else:
            work.append(v)
    return work


def _partition_primitives(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    inp = [x for x in items if x in by]
    out = [x for x in items if x not in by]
    return inp, out


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inp: list[Any] = []
    out: list[Any] = []
    for v in items:
        if not isinstance(v, dict):
            raise PatchError(f"expected a map, but received a {_kind_of(v)}")
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (inp if _find_by_key(by, merge_key, v[merge_key]) >= 0 else out).append(v)
    return inp, out


def _index(items: list[Any], val: Any, merge_key: str, kind: str) -> int:
    def get(x: Any) -> Any:
        if kind == "map":
            return x.get(merge_key) if isinstance(x, dict) else None
        return x

    target = get(val)
    for i, v in enumerate(items):
        if get(v) == target:
            return i
    return -1


def _normalize_slice_order(to_sort: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    to_delete: list[Any] = []
    if kind == "map":
        for lst in (to_sort, order):
            for item in lst:
                if not isinstance(item, dict):
                    raise PatchError(f"expected a map, but received a {_kind_of(item)}")
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        to_delete = [v for v in to_sort if v.get("$patch") == "delete"]
        to_sort = [v for v in to_sort if v.get("$patch") != "delete"]

    def less(a: Any, b: Any) -> bool:
        ia = _index(order, a, merge_key, kind)
        if ia >= 0:
            ib = _index(order, b, merge_key, kind)
            if ib >= 0:
                return ia < ib
        return True

    data = list(to_sort)  # Go's sort.SliceStable (insertion sort for short slices)
    for i in range(1, len(data)):
        j = i
        while j > 0 and less(data[j], data[j - 1]):
            data[j], data[j - 1] = data[j - 1], data[j]
            j -= 1
    return data + to_delete


def _normalize_element_order(patch: list[Any], server_only: list[Any], patch_order: list[Any],
                             server_order: list[Any], merge_key: str, kind: str) -> list[Any]:
    patch = _normalize_slice_order(patch, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    left, right = server_only, patch
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _smp_set_element_order(original: Obj, patch: Obj, t: str | None) -> None:
    for key in [k for k in patch if k.startswith("$setElementOrder")]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise PatchError(f"expected a slice, but received a {_kind_of(order)}")
        parts = key.split("/", 1)
        if len(parts) != 2 or parts[0] != "$setElementOrder":
            raise PatchError("invalid patch format of setElementOrder list", "bad_request")
        okey = parts[1]
        found_o, found_p = okey in original, okey in patch
        ovals = original.get(okey) if found_o else []
        pvals = patch.get(okey) if found_p else []
        if not isinstance(ovals, list) or not isinstance(pvals, list):
            raise PatchError("expected a slice")
        child, strategy, merge_key = _smp_lookup(t, okey)
        _validate_set_order(pvals, order, merge_key)
        if found_o and not found_p:
            merged = ovals
        elif found_p and not found_o:
            merged = _remove_directives(pvals)[0]
        elif found_o and found_p:
            merged = _smp_slice(ovals, pvals, child, merge_key, False) if strategy == "merge" else pvals
        else:
            return
        if not merge_key:
            patch_items, server_only = _partition_primitives(merged, order)
        else:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        kind = _slice_kind(ovals, pvals)
        original[okey] = _normalize_element_order(patch_items, server_only, order, ovals, merge_key, kind)
        patch.pop(okey, None)


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if not order or not patch_list:
        return
    items = [v for v in patch_list if not (merge_key and isinstance(v, dict) and v.get("$patch") == "delete")]
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if isinstance(items[pi], dict) and "$patch" in items[pi]:
            pi += 1
            continue
        if merge_key:
            a, b = items[pi], order[oi]
            if not isinstance(a, dict) or not isinstance(b, dict):
                raise PatchError("expected a map")
            if merge_key not in a:
                raise _no_merge_key(a, merge_key)
            if merge_key not in b:
                raise _no_merge_key(b, merge_key)
            equal = a[merge_key] == b[merge_key]
        else:
            equal = items[pi] == order[oi]
        if equal:
            pi += 1
        oi += 1
    if pi < len(items) and oi >= len(order):
        raise PatchError(f"The order in patch list:\n{_go_fmt(patch_list)}\n doesn't match $setElementOrder list:\n"
                         f"{_go_fmt(order)}\n")


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (lists are replaced, null deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = json_merge_patch(result.get(k), v)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer must be empty or start with a "/": {path}', "unprocessable")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str], op: str, path: str) -> Any:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value',
                             "unprocessable")
    if not isinstance(cur, (dict, list)):
        raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value',
                         "unprocessable")
    return cur


def _jp_get(doc: Any, path: str, op: str) -> Any:
    cur = doc
    for p in _pointer(path):
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value',
                             "unprocessable")
    return cur


def _jp_add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _container(doc, parts, op, path)
    key = parts[-1]
    if isinstance(parent, dict):
        parent[key] = value
    elif key == "-":
        parent.append(value)
    else:
        if not key.isdigit() or int(key) > len(parent):
            raise PatchError(f"Unable to access invalid index: {key}: invalid index referenced", "unprocessable")
        parent.insert(int(key), value)
    return doc


def _jp_remove(doc: Any, path: str, op: str = "remove") -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\"", "unprocessable")
    parent = _container(doc, parts, op, path)
    key = parts[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {key}: missing value", "unprocessable")
        del parent[key]
    else:
        if not key.isdigit() or int(key) >= len(parent):
            raise PatchError(f"Unable to access invalid index: {key}: invalid index referenced", "unprocessable")
        del parent[int(key)]
    return doc


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch with evanphx/json-patch's error texts."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError("json: cannot unmarshal into Go value of type jsonpatch.Operation", "bad_request")
        kind = op.get("op")
        path = op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"{kind} operation missing path: missing value", "unprocessable")
        if kind == "add":
            doc = _jp_add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _jp_remove(doc, path)
        elif kind == "replace":
            _jp_get(doc, path, "replace")
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                parent = _container(doc, parts, "replace", path)
                key = parts[-1]
                if isinstance(parent, dict):
                    parent[key] = copy.deepcopy(op.get("value"))
                else:
                    parent[int(key)] = copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            src = op.get("from")
            if not isinstance(src, str):
                raise PatchError(f"{kind} operation missing from path: missing value", "unprocessable")
            value = copy.deepcopy(_jp_get(doc, src, kind))
            if kind == "move":
                doc = _jp_remove(doc, src, "move")
            doc = _jp_add(doc, path, value, kind)
        elif kind == "test":
            try:
                cur = _jp_get(doc, path, "test")
            except PatchError:
                cur = None
            if cur != op.get("value") or _kind_of(cur) != _kind_of(op.get("value")):
                raise PatchError(f"testing value {path} failed: test failed", "unprocessable")
        else:
            raise PatchError(f"Unexpected kind: {kind}", "unprocessable")
    return doc
