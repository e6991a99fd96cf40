"""The typed round trip: decode JSON into the API types (unknown fields pruned with a warning, Go zero
values filled in, timestamps and quantities normalised) as kube-apiserver does before storing."""

from __future__ import annotations

import copy
from typing import Any

from .constants import Obj
from .formats import QUANTITY_REGEX_MSG, canonical_quantity, format_micro_time, format_time, parse_time

# kube-apiserver decodes every request body into a Go struct and encodes the struct back: unknown fields
# vanish (with a warning), timestamps are re-printed, quantities canonicalised, and Go zero values appear
# for fields without `omitempty` (a bare Node comes back with status.nodeInfo full of empty strings and
# status.daemonEndpoints.kubeletEndpoint.Port 0). The schemas below describe those structs, in Go field
# order. Spec letters: s string, i integer, b bool, f float, t metav1.Time, mt metav1.MicroTime,
# m map[string]string, q map[string]Quantity, any (kept as is), [X] a list of X, Name a struct.
# Suffix "!" = no omitempty (zero value is printed), "*" = pointer (kept when zero, dropped when null),
# none = omitempty. Non-pointer structs are always printed; non-pointer times print null when zero.

SCHEMAS: dict[str, dict[str, str]] = {
    "ObjectMeta": {
        "name": "s", "generateName": "s", "namespace": "s", "selfLink": "s", "uid": "s",
        "resourceVersion": "s", "generation": "i", "creationTimestamp": "t", "deletionTimestamp": "t*",
        "deletionGracePeriodSeconds": "i*", "labels": "m", "annotations": "m",
        "ownerReferences": "[OwnerReference]", "finalizers": "[s]", "managedFields": "[any]",
    },
    "OwnerReference": {
        "apiVersion": "s!", "kind": "s!", "name": "s!", "uid": "s!", "controller": "b*",
        "blockOwnerDeletion": "b*",
    },
    "Node": {"kind": "s", "apiVersion": "s", "metadata": "ObjectMeta", "spec": "NodeSpec", "status": "NodeStatus"},
    "NodeSpec": {
        "podCIDR": "s", "podCIDRs": "[s]", "providerID": "s", "unschedulable": "b", "taints": "[Taint]",
        "configSource": "any*", "externalID": "s",
    },
    "Taint": {"key": "s!", "value": "s", "effect": "s!", "timeAdded": "t*"},
    "NodeStatus": {
        "capacity": "q", "allocatable": "q", "phase": "s", "conditions": "[NodeCondition]",
        "addresses": "[NodeAddress]", "daemonEndpoints": "NodeDaemonEndpoints", "nodeInfo": "NodeSystemInfo",
        "images": "[ContainerImage]", "volumesInUse": "[s]", "volumesAttached": "[AttachedVolume]",
        "config": "any*", "runtimeHandlers": "[any]", "features": "any*", "declaredFeatures": "[s]",
    },
    "NodeCondition": {
        "type": "s!", "status": "s!", "lastHeartbeatTime": "t", "lastTransitionTime": "t", "reason": "s",
        "message": "s",
    },
    "NodeAddress": {"type": "s!", "address": "s!"},
    "NodeDaemonEndpoints": {"kubeletEndpoint": "DaemonEndpoint"},
    "DaemonEndpoint": {"Port": "i!"},
    "NodeSystemInfo": {
        "machineID": "s!", "systemUUID": "s!", "bootID": "s!", "kernelVersion": "s!", "osImage": "s!",
        "containerRuntimeVersion": "s!", "kubeletVersion": "s!", "kubeProxyVersion": "s!",
        "operatingSystem": "s!", "architecture": "s!", "swap": "any*",
    },
    "ContainerImage": {"names": "[s]", "sizeBytes": "i"},
    "AttachedVolume": {"name": "s!", "devicePath": "s!"},
    "Event": {
        "kind": "s", "apiVersion": "s", "metadata": "ObjectMeta", "involvedObject": "ObjectReference",
        "reason": "s", "message": "s", "source": "EventSource", "firstTimestamp": "t", "lastTimestamp": "t",
        "count": "i", "type": "s", "eventTime": "mt", "series": "EventSeries*", "action": "s",
        "related": "ObjectReference*", "reportingComponent": "s!", "reportingInstance": "s!",
    },
    "ObjectReference": {
        "kind": "s", "namespace": "s", "name": "s", "uid": "s", "apiVersion": "s", "resourceVersion": "s",
        "fieldPath": "s",
    },
    "EventSource": {"component": "s", "host": "s"},
    "EventSeries": {"count": "i", "lastObservedTime": "mt"},
    "Lease": {"kind": "s", "apiVersion": "s", "metadata": "ObjectMeta", "spec": "LeaseSpec"},
    "LeaseSpec": {
        "holderIdentity": "s*", "leaseDurationSeconds": "i*", "acquireTime": "mt*", "renewTime": "mt*",
        "leaseTransitions": "i*", "strategy": "s*", "preferredHolder": "s*",
    },
    "Namespace": {"kind": "s", "apiVersion": "s", "metadata": "ObjectMeta", "spec": "NamespaceSpec",
                  "status": "NamespaceStatus"},
    "NamespaceSpec": {"finalizers": "[s]"},
    "NamespaceStatus": {"phase": "s", "conditions": "[any]"},
    "Pod": {"kind": "s", "apiVersion": "s", "metadata": "ObjectMeta", "spec": "any", "status": "any"},
}

_GO_TYPES = {"s": "string", "i": "int32", "b": "bool", "f": "float64", "t": "v1.Time", "mt": "v1.MicroTime",
             "m": "map[string]string", "q": "v1.ResourceList", "any": "interface {}"}


class DecodeError(ValueError):
    """A body that kube-apiserver could not decode into its Go type."""


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _is_zero(v: Any) -> bool:
    return v is None or v == "" or v is False or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0) \
        or v == [] or v == {}


def _unmarshal_error(v: Any, struct: str, path: str, base: str) -> DecodeError:
    return DecodeError(f"json: cannot unmarshal {_json_type(v)} into Go struct field {struct}.{path} of type "
                       f"{_GO_TYPES.get(base, base)}")


def typed(obj: Any, struct: str, warnings: list[str] | None = None) -> Obj:
    """Round-trip ``obj`` through the Go struct ``struct``; raise DecodeError like the real decoder."""
    return _typed_struct(obj, struct, "", warnings if warnings is not None else [], struct)


def _typed_struct(value: Any, struct: str, path: str, warnings: list[str], top: str) -> Obj:
    fields = SCHEMAS[struct]
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {_json_type(value)} into Go value of type {struct}")
    for k in value:
        if k not in fields:
            warnings.append(f'unknown field "{path}{k}"')
    out: Obj = {}
    for k, spec in fields.items():
        present = k in value
        raw = value.get(k)
        keep, conv = _typed_value(raw, present, spec, struct, f"{path}{k}", warnings, top)
        if keep:
            out[k] = conv
    return out


# complexity: one branch per OpenAPI value type, as the typed decoder
def _typed_value(raw: Any, present: bool, spec: str, struct: str, path: str, warnings: list[str],  # noqa: C901
                 top: str) -> tuple[bool, Any]:
    mode = ""
    if spec.endswith(("!", "*")):
        spec, mode = spec[:-1], spec[-1]
    if spec.startswith("["):
        elem = spec[1:-1]
        if raw is None:
            return (mode == "!", None)
        if not isinstance(raw, list):
            raise _unmarshal_error(raw, struct, path, f"[]{elem}")
        items = [_typed_elem(x, elem, struct, path, warnings, top) for x in raw]
        return (bool(items) or mode == "*", items)
    if spec[0].isupper():  # struct
        if mode == "*" and raw is None:
            return (False, None)
        if raw is not None and not isinstance(raw, dict):
            raise _unmarshal_error(raw, struct, path, spec)
        return (True, _typed_struct(raw, spec, path + ".", warnings, top))
    if spec in ("t", "mt"):
        if raw is None:
            return (mode != "*", None)
        if not isinstance(raw, str):
            raise _unmarshal_error(raw, struct, path, spec)
        try:
            t = parse_time(raw, micro=(spec == "mt"))
        except ValueError as e:
            raise DecodeError(str(e)) from None
        return (True, format_micro_time(t) if spec == "mt" else format_time(t))
    if spec == "any":
        if raw is None:
            return (False, None)
        return (True, copy.deepcopy(raw))
    if spec in ("m", "q"):
        if raw is None:
            return (False, None)
        if not isinstance(raw, dict):
            raise _unmarshal_error(raw, struct, path, spec)
        out: dict[str, str] = {}
        for k, v in raw.items():
            if spec == "m":
                if v is None:
                    v = ""
                if not isinstance(v, str):
                    raise _unmarshal_error(v, struct, path, "s")
                out[k] = v
            else:
                if v is None or isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    raise DecodeError(QUANTITY_REGEX_MSG)
                try:
                    out[k] = canonical_quantity(v)
                except ValueError as e:
                    raise DecodeError(str(e)) from None
        return (bool(out), out)
    # scalars
    if raw is None:
        zero: Any = {"s": "", "i": 0, "b": False, "f": 0.0}[spec]
        return (mode == "!", zero)
    ok = {
        "s": isinstance(raw, str),
        "i": isinstance(raw, int) and not isinstance(raw, bool),
        "b": isinstance(raw, bool),
        "f": isinstance(raw, (int, float)) and not isinstance(raw, bool),
    }[spec]
    if not ok:
        raise _unmarshal_error(raw, struct, path, spec)
    if mode == "" and _is_zero(raw):
        return (False, raw)
    return (True, raw)


def _typed_elem(raw: Any, elem: str, struct: str, path: str, warnings: list[str], top: str) -> Any:
    if elem[0].isupper():
        if raw is not None and not isinstance(raw, dict):
            raise _unmarshal_error(raw, struct, path, elem)
        return _typed_struct(raw, elem, path + ".", warnings, top)
    return _typed_value(raw, True, elem + "!", struct, path, warnings, top)[1]
