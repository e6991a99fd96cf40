"""A loopback Kubernetes API server simulator for tests, benchmarks and the demo.

:class:`KubeApiSimulator` is a real HTTP(S) server on 127.0.0.1 that the official ``kubernetes`` Python
client and ``kubectl`` talk to. It serves what ovirt-cloudprovider uses, and behaves like kube-apiserver
for it, down to the quirks a controller trips over on a real cluster:

- discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/coordination.k8s.io/v1``);
- core/v1 ``nodes`` (+ ``nodes/status``), ``events``, ``namespaces``, read-only empty ``pods`` (for
  ``kubectl describe node``), and coordination.k8s.io/v1 ``leases``;
- LIST with label/field selectors, ``limit``/``continue`` (consistent snapshots, 410 once compacted),
  server-side Tables for ``kubectl get``; WATCH from a resourceVersion with bookmarks, ``timeoutSeconds``
  and ``410 Gone`` (an ``ERROR`` event) for a compacted version;
- create/get/update/patch (strategic merge with the real merge keys, JSON merge patch, JSON patch)/delete
  with preconditions, the spec/status split, validation, typed round-trips (unknown fields pruned with a
  warning, timestamps and quantities normalised, Go zero values filled in) and kube-apiserver's
  ``Status`` error bodies;
- bearer-token authentication, RBAC from ClusterRole/Role YAML (:class:`RbacPolicy`), fault injection,
  request counters and direct helpers for tests.

Public surface: :class:`KubeApiSimulator` (server, direct helpers, faults, counters), :class:`RbacPolicy`,
:func:`kubelet_node`, :class:`ApiError` (what the direct helpers raise; ``.status`` is the Status body),
:class:`RequestRecord` and :class:`Denial`; the pure pieces (:func:`strategic_merge_patch`,
:func:`json_merge_patch`, :func:`json_patch`, :func:`parse_label_selector`, :func:`canonical_quantity`,
:func:`typed`) are usable on their own. Test fixtures live in ``tests/kube_fixtures.py``.

Run standalone with ``python -m ovirt_cloudprovider.simulators.kubeapi --port PORT [--write-kubeconfig PATH]
[--tls] [--nodes N]``; it serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import http.server
import importlib.resources
import json
import logging
import random
import re
import select
import signal
import socket
import ssl
import string
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-04-22T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
KUBELET_VERSION = "v1.36.0"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")
MAX_JSON_PATCH_OPERATIONS = 10000
WATCH_TOO_LARGE_WAIT = 3.0


def _tls_file(name: str) -> str:
    return str(importlib.resources.files("ovirt_cloudprovider.simulators") / "tls" / name)


# --- errors -----------------------------------------------------------------------------------------

class ApiError(Exception):
    """A request failed; carries the ``Status`` object kube-apiserver would send."""

    def __init__(self, status: Obj, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.code = int(status.get("code", 500))
        self.reason = str(status.get("reason", ""))
        self.headers = dict(headers or {})


def status_failure(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    st: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    if reason:
        st["reason"] = reason
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


def _details(name: str, group: str, kind: str, **extra: Any) -> Obj:
    d: Obj = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update(extra)
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def err_not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(status_failure(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                                   _details(name, group, resource)))


def err_already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(status_failure(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                                   _details(name, group, resource)))


def err_conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(status_failure(
        409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource)))


CONFLICT_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def err_bad_request(message: str) -> ApiError:
    return ApiError(status_failure(400, "BadRequest", message))


def err_expired(message: str) -> ApiError:
    return ApiError(status_failure(410, "Expired", message))


def err_method_not_allowed() -> ApiError:
    return ApiError(status_failure(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource", {}))


def err_resource_not_found() -> ApiError:
    return ApiError(status_failure(404, "NotFound", "the server could not find the requested resource", {}))


def err_internal(message: str) -> ApiError:
    return ApiError(status_failure(500, "InternalError", f"Internal error occurred: {message}",
                                   {"causes": [{"message": message}]}))


def err_unprocessable(message: str) -> ApiError:
    """What kube-apiserver answers when a JSON patch cannot be applied (NewGenericServerResponse 422)."""
    return ApiError(status_failure(422, "Invalid", "the server rejected our request due to an error in our request",
                                   {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]}))


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One ``field.Error`` of k8s.io/apimachinery: renders exactly like the Go type."""

    type: str  # "Invalid value", "Required value", "Unsupported value", "Forbidden", "Duplicate value", "Too long"
    field: str
    value: Any = None
    detail: str = ""

    _CAUSE = {"Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired",
              "Unsupported value": "FieldValueNotSupported", "Forbidden": "FieldValueForbidden",
              "Duplicate value": "FieldValueDuplicate", "Too long": "FieldValueTooLong",
              "Not found": "FieldValueNotFound", "Too many": "FieldValueTooMany"}

    def body(self) -> str:
        if self.type in ("Required value", "Forbidden", "Too long", "Internal error"):
            s = self.type
        else:
            s = f"{self.type}: {_go_value(self.value)}"
        if self.detail:
            s += ": " + self.detail
        return s

    def error(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> Obj:
        return {"reason": self._CAUSE.get(self.type, self.type), "message": self.body(), "field": self.field}


class GoRaw(str):
    """A field error value printed as is (Go's %#v of a non-string, e.g. ``0x0``)."""


def _go_value(value: Any) -> str:
    if isinstance(value, GoRaw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def err_invalid(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    agg = errors[0].error() if len(errors) == 1 else "[" + ", ".join(e.error() for e in errors) + "]"
    return ApiError(status_failure(422, "Invalid", f'{qualified} "{name}" is invalid: {agg}',
                                   _details(name, group, kind, causes=[e.cause() for e in errors])))


# --- names, labels, times, quantities ---------------------------------------------------------------

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MSG_DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_QUALIFIED_NAME = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
MSG_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(MSG_DNS1123_SUBDOMAIN)
    return errs


def dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(MSG_DNS1123_LABEL)
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name`` as used by label and annotation keys."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return ["a qualified name " + MSG_QUALIFIED_NAME.removeprefix("name part ")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME_RE.match(name):
        errs.append(MSG_QUALIFIED_NAME)
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errs.append(MSG_LABEL_VALUE)
    return errs


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(t: dt.datetime) -> str:
    """``metav1.Time``: RFC 3339 in UTC, whole seconds."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(t: dt.datetime) -> str:
    """``metav1.MicroTime``: RFC 3339 in UTC with exactly six fractional digits."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_RFC3339_MICRO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{6})(Z|[+-]\d{2}:\d{2})$")


def parse_time(value: str, micro: bool = False) -> dt.datetime:
    """Parse like Go's ``time.Parse(time.RFC3339, v)`` (``RFC3339Micro`` for MicroTime) or raise ValueError.

    MicroTime is strict: exactly six fractional digits and an offset, as kube-apiserver requires (a Python
    ``datetime.isoformat()`` without microseconds, or a naive one, is rejected by a real server too).
    """
    layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
    m = (_RFC3339_MICRO_RE if micro else _RFC3339_RE).match(value)
    if not m:
        raise ValueError(f'parsing time "{value}" as "{layout}": cannot parse "{value}" as "{layout}"')
    year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micros = int((frac[1:] + "000000")[:6]) if frac else 0
    off = m.group(8)
    if off == "Z":
        tz = dt.timezone.utc
    else:
        sign = 1 if off[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    try:
        return dt.datetime(year, month, day, hour, minute, sec, micros, tzinfo=tz)
    except ValueError as e:
        raise ValueError(f'parsing time "{value}": {e}') from None


_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_REGEX_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}


def canonical_quantity(value: str | int | float) -> str:
    """``resource.Quantity`` round trip: parse, then print the canonical form (``8192Mi`` -> ``8Gi``,
    ``1000`` -> ``1k``, ``0.5`` -> ``500m``). Raises ValueError with kube-apiserver's message."""
    text = str(value) if not isinstance(value, float) else repr(value)
    m = _QUANTITY_RE.match(text.strip())
    if not m or text != text.strip():
        raise ValueError(QUANTITY_REGEX_MSG)
    num_s, suffix = m.group(1), m.group(2)
    if num_s.count(".") > 1 or num_s in (".", "+.", "-."):
        raise ValueError(QUANTITY_REGEX_MSG)
    try:
        num = Fraction(num_s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(QUANTITY_REGEX_MSG) from None
    if suffix in _BINARY_SUFFIXES:
        fmt, val = "binary", num * (2 ** _BINARY_SUFFIXES[suffix])
    elif suffix in _DECIMAL_SUFFIXES:
        fmt, val = "decimal", num * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
    elif re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        fmt, val = "exponent", num * Fraction(10) ** int(suffix[1:])
    else:
        raise ValueError("unable to parse quantity's suffix")
    if val == 0:
        return "0"
    # precision is nano: round up (away from zero) to 1e-9
    scaled = val * 10**9
    if scaled.denominator != 1:
        q = -(-abs(scaled.numerator) // scaled.denominator)
        val = Fraction(q if val > 0 else -q, 10**9)
    neg = val < 0
    mag = -val if neg else val
    sign = "-" if neg else ""
    if fmt == "binary" and mag >= 1024 and mag.denominator == 1:
        n, exp = mag.numerator, 0
        while n % 1024 == 0 and exp < 60:
            n //= 1024
            exp += 10
        suffix = next(k for k, v in _BINARY_SUFFIXES.items() if v == exp) if exp else ""
        return f"{sign}{n}{suffix}"
    # decimal forms: mantissa * 10^exp with exp a multiple of 3, mantissa integral, exp as large as possible
    exp = -9
    mant = mag * 10**9
    while mant.denominator == 1 and mant.numerator % 1000 == 0 and exp < 18:
        mant /= 1000
        exp += 3
    mant_s = str(mant.numerator)
    if fmt == "exponent":
        return f"{sign}{mant_s}" + (f"e{exp}" if exp else "")
    return f"{sign}{mant_s}{_DECIMAL_BY_EXP[exp]}"


# --- typed round trip -------------------------------------------------------------------------------
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


def _typed_value(raw: Any, present: bool, spec: str, struct: str, path: str, warnings: list[str],
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


# --- patches ----------------------------------------------------------------------------------------
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


# --- selectors --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        v = labels.get(self.key, "")
        if self.op == "=":
            return has and v == self.values[0]
        if self.op == "!=":
            return not has or v != self.values[0]
        if self.op == "in":
            return has and v in self.values
        if self.op == "notin":
            return not has or v not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has:
            return False
        try:
            n, limit = int(v), int(self.values[0])
        except ValueError:
            return False
        return n > limit if self.op == "gt" else n < limit


_SEL_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=,()<>]+)")


def parse_label_selector(text: str) -> list[Requirement]:
    """``labels.Parse``: ``a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1``; raise ApiError 400 on bad syntax."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _SEL_TOKEN.match(text, pos)
        if not m:
            raise err_bad_request(f"unable to parse requirement: found '{text[pos:]}', expected: identifier")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    ops = {"!=", "==", "=", "!", "(", ")", ",", ">", "<"}
    reqs: list[Requirement] = []
    i = 0

    def fail(msg: str) -> ApiError:
        return err_bad_request(f"unable to parse requirement: {msg}")

    def ident(j: int) -> str:
        if j >= len(tokens) or tokens[j] in ops:
            found = tokens[j] if j < len(tokens) else "EOS"
            raise fail(f"found '{found}', expected: identifier")
        return tokens[j]

    while i < len(tokens):
        if tokens[i] == "!":
            key = ident(i + 1)
            req = Requirement(key, "!")
            i += 2
        else:
            key = ident(i)
            i += 1
            nxt = tokens[i] if i < len(tokens) else ","
            if nxt == ",":
                req = Requirement(key, "exists")
            elif nxt in ("=", "==", "!="):
                i += 1
                value = "" if i >= len(tokens) or tokens[i] == "," else ident(i)
                if value:
                    i += 1
                req = Requirement(key, "!=" if nxt == "!=" else "=", (value,))
            elif nxt in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: '('")
                i += 1
                values: list[str] = []
                while True:
                    if i < len(tokens) and tokens[i] == ")":
                        i += 1
                        break
                    if i < len(tokens) and tokens[i] == ",":
                        values.append("")
                        i += 1
                        continue
                    values.append(ident(i))
                    i += 1
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                    elif i < len(tokens) and tokens[i] == ")":
                        continue
                    else:
                        raise fail(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: ',' or ')'")
                if not values:
                    raise fail(f"for 'in', 'notin' operators, values set can't be empty (key {key!r})")
                req = Requirement(key, nxt, tuple(values))
            elif nxt in (">", "<"):
                i += 1
                value = ident(i)
                i += 1
                if not re.fullmatch(r"-?\d+", value):
                    raise fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                req = Requirement(key, "gt" if nxt == ">" else "lt", (value,))
            else:
                raise fail(f"found '{nxt}', expected: in, notin, =, ==, !=, gt, lt")
        for msg in qualified_name_errors(req.key):
            raise fail(f'key: Invalid value: "{req.key}": {msg}')
        for v in req.values if req.op not in ("gt", "lt") else ():
            for msg in label_value_errors(v):
                raise fail(f'values[0][{req.key}]: Invalid value: "{v}": {msg}')
        reqs.append(req)
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise fail("found 'EOS', expected: identifier")
    return reqs


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """``fields.ParseSelector``: ``a=b,c!=d`` with backslash escapes; returns (field, op, value)."""
    terms: list[str] = []
    cur = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    out: list[tuple[str, str, str]] = []
    for term in terms:
        if not term:
            continue
        m = re.match(r"^((?:[^=!\\]|\\.)*?)(!=|==|=)(.*)$", term)
        if not m:
            raise err_bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        value = re.sub(r"\\(.)", r"\1", m.group(3))
        out.append((m.group(1).strip(), "!=" if m.group(2) == "!=" else "=", value))
    return out


# --- resources --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ResourceType:
    name: str
    kind: str
    struct: str
    namespaced: bool
    singular: str
    group: str = ""
    version: str = "v1"
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    subresources: tuple[str, ...] = ()
    field_labels: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    allow_create_on_update: bool = False
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def readonly(self) -> bool:
        return "create" not in self.verbs


NODES = ResourceType("nodes", "Node", "Node", False, "node", short_names=("no",), subresources=("status",),
                     field_labels=("metadata.name", "spec.unschedulable"))
EVENTS = ResourceType("events", "Event", "Event", True, "event", short_names=("ev",), allow_create_on_update=True,
                      field_labels=(
                          "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                          "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                          "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
                          "metadata.namespace", "metadata.name"))
NAMESPACES = ResourceType("namespaces", "Namespace", "Namespace", False, "namespace", short_names=("ns",),
                          verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                          subresources=("status",), field_labels=("metadata.name", "status.phase"))
PODS = ResourceType("pods", "Pod", "Pod", True, "pod", short_names=("po",), verbs=("get", "list", "watch"),
                    categories=("all",), field_labels=())
LEASES = ResourceType("leases", "Lease", "Lease", True, "lease", group="coordination.k8s.io",
                      allow_create_on_update=True)
RESOURCES: tuple[ResourceType, ...] = (NAMESPACES, NODES, EVENTS, PODS, LEASES)
_BY_GROUP: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.name): r for r in RESOURCES}
STORAGE_HASHES = {"nodes": "XwShjMxG9Fs=", "events": "r2yiGXH7wu8=", "namespaces": "Q3oi5N2YM8M=",
                  "pods": "xPOwRZ+Yhw8=", "leases": "gqkMMb/YqFM="}


def _field_set(rt: ResourceType, obj: Obj) -> dict[str, str]:
    meta = obj.get("metadata", {})
    f = {"metadata.name": meta.get("name", "")}
    if rt.namespaced:
        f["metadata.namespace"] = meta.get("namespace", "")
    if rt is NODES:
        f["spec.unschedulable"] = "true" if obj.get("spec", {}).get("unschedulable") else "false"
    elif rt is NAMESPACES:
        f["status.phase"] = obj.get("status", {}).get("phase", "")
    elif rt is EVENTS:
        io = obj.get("involvedObject", {})
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
            f[f"involvedObject.{k}"] = io.get(k, "")
        f["reason"] = obj.get("reason", "")
        f["reportingComponent"] = obj.get("reportingComponent", "")
        f["source"] = obj.get("source", {}).get("component", "")
        f["type"] = obj.get("type", "")
    return f


@dataclasses.dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.labels and not self.fields

    def matches(self, rt: ResourceType, obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        if self.fields:
            fs = _field_set(rt, obj)
            for f, op, v in self.fields:
                have = fs.get(f, "")
                if (op == "=") != (have == v):
                    return False
        return True

    @staticmethod
    def parse(rt: ResourceType, label_selector: str, field_selector: str) -> Selector:
        labels = tuple(parse_label_selector(label_selector)) if label_selector.strip() else ()
        fields = tuple(parse_field_selector(field_selector)) if field_selector.strip() else ()
        if rt is not PODS:
            for f, _, _ in fields:
                if f not in rt.field_labels and not (rt.namespaced and f == "metadata.namespace"):
                    raise err_bad_request(f"field label not supported: {f}")
        if rt is PODS:
            fields = tuple(x for x in fields if x[0] in ("metadata.name", "metadata.namespace"))
        return Selector(labels, fields)


# --- validation -------------------------------------------------------------------------------------

def _validate_meta(rt: ResourceType, obj: Obj, errs: list[FieldError]) -> None:
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    if not name and not meta.get("generateName"):
        errs.append(FieldError("Required value", "metadata.name", detail="name or generateName is required"))
    elif name:
        checker = dns1123_label_errors if rt is NAMESPACES else dns1123_subdomain_errors
        for msg in checker(name):
            errs.append(FieldError("Invalid value", "metadata.name", name, msg))
    if rt.namespaced:
        for msg in dns1123_label_errors(meta.get("namespace", "")):
            errs.append(FieldError("Invalid value", "metadata.namespace", meta.get("namespace", ""), msg))
    for key, value in (meta.get("labels") or {}).items():
        for msg in qualified_name_errors(key):
            errs.append(FieldError("Invalid value", "metadata.labels", key, msg))
        for msg in label_value_errors(value):
            errs.append(FieldError("Invalid value", "metadata.labels", value, msg))
    total = 0
    for key, value in (meta.get("annotations") or {}).items():
        for msg in qualified_name_errors(key.lower()):
            errs.append(FieldError("Invalid value", "metadata.annotations", key, msg))
        total += len(key) + len(value)
    if total > 256 * 1024:
        errs.append(FieldError("Too long", "metadata.annotations", detail=f"must have at most {256 * 1024} bytes"))
    for i, fin in enumerate(meta.get("finalizers") or []):
        for msg in qualified_name_errors(fin):
            errs.append(FieldError("Invalid value", f"metadata.finalizers[{i}]", fin, msg))


def _validate_node(obj: Obj, errs: list[FieldError]) -> None:
    spec = obj.get("spec", {})
    seen: dict[str, set[str]] = {}
    for i, taint in enumerate(spec.get("taints") or []):
        path = f"spec.taints[{i}]"
        key, effect, value = taint.get("key", ""), taint.get("effect", ""), taint.get("value", "")
        for msg in qualified_name_errors(key):
            errs.append(FieldError("Invalid value", f"{path}.key", key, msg))
        for msg in label_value_errors(value):
            errs.append(FieldError("Invalid value", f"{path}.value", value, msg))
        if not effect:
            errs.append(FieldError("Required value", f"{path}.effect"))
        elif effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(FieldError("Unsupported value", f"{path}.effect", effect,
                                   'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'))
        if key in seen.get(effect, set()):
            errs.append(FieldError("Duplicate value", path, taint, "taints must be unique by key and effect pair"))
            continue
        seen.setdefault(effect, set()).add(key)
    cidrs = spec.get("podCIDRs") or []
    for i, cidr in enumerate(cidrs):
        if not re.fullmatch(r"[0-9a-fA-F.:]+/\d{1,3}", cidr):
            errs.append(FieldError("Invalid value", f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value"))
    if spec.get("podCIDR") and cidrs and cidrs[0] != spec["podCIDR"]:
        errs.append(FieldError("Invalid value", "spec.podCIDRs", cidrs, "must match spec.podCIDR"))
    status = obj.get("status", {})
    for fld in ("capacity", "allocatable"):
        for k, v in (status.get(fld) or {}).items():
            if v.startswith("-"):
                errs.append(FieldError("Invalid value", f"status.{fld}.{k}", v, "must be greater than or equal to 0"))


def _validate_node_update(new: Obj, old: Obj, errs: list[FieldError]) -> None:
    old_pid = old.get("spec", {}).get("providerID", "")
    if old_pid and old_pid != new.get("spec", {}).get("providerID", ""):
        errs.append(FieldError("Forbidden", "spec.providerID",
                               detail='node updates may not change providerID except from "" to valid'))
    old_cidr = old.get("spec", {}).get("podCIDR", "")
    if old_cidr and old_cidr != new.get("spec", {}).get("podCIDR", ""):
        errs.append(FieldError("Forbidden", "spec.podCIDR",
                               detail='node updates may not change podCIDR except from "" to valid'))


MSG_NS_MISMATCH = "does not match event.namespace"


def _validate_event(obj: Obj, errs: list[FieldError]) -> None:
    """core/v1 Events get kube-apiserver's legacy validation only (ValidateEventCreate for v1)."""
    ns = obj.get("metadata", {}).get("namespace", "")
    io = obj.get("involvedObject", {})
    io_ns = io.get("namespace", "")
    if obj.get("eventTime") is None:
        if not io_ns:
            if ns not in ("", "default"):
                errs.append(FieldError("Invalid value", "involvedObject.namespace", io_ns, MSG_NS_MISMATCH))
        elif ns != io_ns:
            errs.append(FieldError("Invalid value", "involvedObject.namespace", io_ns, MSG_NS_MISMATCH))
    else:
        if not io_ns and ns not in ("default", "kube-system"):
            errs.append(FieldError("Invalid value", "involvedObject.namespace", io_ns, MSG_NS_MISMATCH))
        rc = obj.get("reportingComponent", "")
        if not rc:
            errs.append(FieldError("Required value", "reportingComponent"))
        for msg in qualified_name_errors(rc) if rc else []:
            errs.append(FieldError("Invalid value", "reportingComponent", rc, msg))
        ri = obj.get("reportingInstance", "")
        if not ri:
            errs.append(FieldError("Required value", "reportingInstance"))
        if len(ri) > 128:
            errs.append(FieldError("Invalid value", "reportingInstance", "", "can have at most 128 characters"))
        action = obj.get("action", "")
        if not action:
            errs.append(FieldError("Required value", "action"))
        if len(action) > 128:
            errs.append(FieldError("Invalid value", "action", "", "can have at most 128 characters"))
    if len(obj.get("reason", "")) > 128:
        errs.append(FieldError("Invalid value", "reason", "", "can have at most 128 characters"))
    if len(obj.get("message", "")) > 1024:
        errs.append(FieldError("Invalid value", "message", "", "can have at most 1024 characters"))


def _validate_lease(obj: Obj, errs: list[FieldError]) -> None:
    spec = obj.get("spec", {})
    if spec.get("leaseDurationSeconds") is not None and spec["leaseDurationSeconds"] <= 0:
        errs.append(FieldError("Invalid value", "spec.leaseDurationSeconds", spec["leaseDurationSeconds"],
                               "must be greater than 0"))
    if spec.get("leaseTransitions") is not None and spec["leaseTransitions"] < 0:
        errs.append(FieldError("Invalid value", "spec.leaseTransitions", spec["leaseTransitions"],
                               "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(FieldError("Forbidden", "spec.preferredHolder",
                               detail="preferredHolder can only be set when strategy is set"))


def validate(rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    errs: list[FieldError] = []
    _validate_meta(rt, obj, errs)
    if old is not None:
        om, nm = old.get("metadata", {}), obj.get("metadata", {})
        if nm.get("uid") != om.get("uid"):
            errs.append(FieldError("Invalid value", "metadata.uid", nm.get("uid", ""), "field is immutable"))
        if old.get("metadata", {}).get("deletionTimestamp"):
            added = set(nm.get("finalizers") or []) - set(om.get("finalizers") or [])
            if added:
                errs.append(FieldError("Forbidden", "metadata.finalizers",
                                       detail=f"no new finalizers can be added if the object is being deleted, "
                                              f"found new finalizers {sorted(added)!r}".replace("'", '"')))
    if rt is NODES:
        _validate_node(obj, errs)
        if old is not None:
            _validate_node_update(obj, old, errs)
    elif rt is EVENTS:
        _validate_event(obj, errs)
    elif rt is LEASES:
        _validate_lease(obj, errs)
    if errs:
        raise err_invalid(rt.kind, rt.group, obj.get("metadata", {}).get("name", ""), errs)


# --- server-side tables (what `kubectl get` prints) -------------------------------------------------

def human_duration(seconds: float) -> str:
    """``duration.HumanDuration`` (k8s.io/apimachinery), as kubectl's AGE column shows it."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _since(ts: str | None, now: dt.datetime, micro: bool = False) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = parse_time(ts, micro=micro)
    except ValueError:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _col(name: str, description: str, priority: int = 0, fmt: str = "", typ: str = "string") -> Obj:
    return {"name": name, "type": typ, "format": fmt, "description": description, "priority": priority}


_TABLE_COLUMNS: dict[str, list[Obj]] = {
    "nodes": [
        _col("Name", "Name must be unique within a namespace.", fmt="name"),
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created."),
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of addresses reachable to the node.", 1),
        _col("External-IP", "List of addresses reachable to the node.", 1),
        _col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
        _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
        _col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API "
                                  "(e.g. containerd://1.4.2).", 1),
    ],
    "events": [
        _col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        _col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        _col("Reason", "This should be a short, machine understandable string that gives the reason for the "
                       "transition into the object's current status."),
        _col("Object", "The object that this event is about."),
        _col("Subobject", "If referring to a piece of an object instead of an entire object, this string should "
                          "contain a valid JSON/Go field access statement.", 1),
        _col("Source", "The component reporting this event. Should be a short machine understandable string.", 1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded.", 1),
        _col("Count", "The number of times this event has occurred.", 1),
        _col("Name", "Name must be unique within a namespace.", 1, fmt="name"),
    ],
    "leases": [
        _col("Name", "Name must be unique within a namespace.", fmt="name"),
        _col("Holder", "holderIdentity contains the identity of the holder of a current lease."),
        _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created."),
    ],
    "namespaces": [
        _col("Name", "Name must be unique within a namespace.", fmt="name"),
        _col("Status", "The status of the namespace"),
        _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created."),
    ],
    "pods": [
        _col("Name", "Name must be unique within a namespace.", fmt="name"),
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been restarted and when the last "
                         "container in this pod has restarted."),
        _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created."),
        _col("IP", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet "
                   "allocated.", 1),
        _col("Node", "Name of the Node the Pod is assigned to", 1),
        _col("Nominated Node", "nominatedNodeName is set when this pod preempts other pods on the node.", 1),
        _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
    ],
}


def _node_cells(obj: Obj, now: dt.datetime) -> list[Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    state = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            state = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not state:
        state = ["Unknown"]
    if spec.get("unschedulable"):
        state.append("SchedulingDisabled")
    roles = set()
    for k, v in (meta.get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = status.get("nodeInfo", {})

    def first(kind: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address", ""))
        return "<none>"

    return [meta.get("name", ""), ",".join(state), ",".join(sorted(roles)) or "<none>",
            _since(meta.get("creationTimestamp"), now), info.get("kubeletVersion", ""),
            first("InternalIP"), first("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _event_cells(obj: Obj, now: dt.datetime) -> list[Any]:
    first_seen = _since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first_seen = _since(obj.get("eventTime"), now, micro=True)
    last_seen = _since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first_seen
    count = obj.get("count", 0)
    series = obj.get("series")
    if series:
        last_seen = _since(series.get("lastObservedTime"), now, micro=True)
        count = series.get("count", 0)
    elif not count:
        count = 1
    io = obj.get("involvedObject", {})
    target = f"{io.get('kind', '').lower()}/{io['name']}" if io.get("name") else io.get("kind", "").lower()
    src = obj.get("source", {})
    component = src.get("component") or obj.get("reportingComponent", "")
    host = src.get("host") or obj.get("reportingInstance", "")
    source = f"{component}, {host}" if host else component
    return [last_seen, obj.get("type", ""), obj.get("reason", ""), target, io.get("fieldPath", ""), source,
            obj.get("message", "").strip(), first_seen, count, obj.get("metadata", {}).get("name", "")]


def table_cells(rt: ResourceType, obj: Obj, now: dt.datetime) -> list[Any]:
    meta = obj.get("metadata", {})
    if rt is NODES:
        return _node_cells(obj, now)
    if rt is EVENTS:
        return _event_cells(obj, now)
    if rt is LEASES:
        return [meta.get("name", ""), obj.get("spec", {}).get("holderIdentity") or "",
                _since(meta.get("creationTimestamp"), now)]
    if rt is NAMESPACES:
        return [meta.get("name", ""), obj.get("status", {}).get("phase", ""),
                _since(meta.get("creationTimestamp"), now)]
    return [meta.get("name", ""), "0/0", "", "0", _since(meta.get("creationTimestamp"), now), "<none>", "<none>",
            "<none>", "<none>"]


# --- storage: a versioned key space with a bounded change history -----------------------------------

Key = tuple[str, str, str]  # (resource, namespace, name)


@dataclasses.dataclass
class StoredEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    obj: Obj
    prev: Obj | None


class Store:
    """The etcd of the simulator: one global revision, per-key versions (reads at an older revision for
    paginated lists) and the last ``history`` changes (watches). Older changes are compacted away."""

    def __init__(self, history: int = 1000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.history_limit = max(1, history)
        self.rv = 1
        self.compacted = 0
        self.current: dict[Key, Obj] = {}
        self.versions: dict[Key, list[tuple[int, Obj | None]]] = {}
        self.events: collections.deque[StoredEvent] = collections.deque()

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, type_: str, key: Key, obj: Obj | None, prev: Obj | None, rv: int) -> None:
        """Record a change at revision ``rv`` (caller holds the lock and stamped ``obj``)."""
        if obj is None:
            self.current.pop(key, None)
            assert prev is not None
            shown = copy.deepcopy(prev)
            shown["metadata"]["resourceVersion"] = str(rv)
        else:
            self.current[key] = obj
            shown = obj
        self.versions.setdefault(key, []).append((rv, obj))
        self.events.append(StoredEvent(rv, type_, key, shown, prev))
        while len(self.events) > self.history_limit:
            self._compact_one()
        self.changed.notify_all()

    def _compact_one(self) -> None:
        ev = self.events.popleft()
        self.compacted = max(self.compacted, ev.rv)
        self._prune(ev.key)

    def _prune(self, key: Key) -> None:
        vers = self.versions.get(key)
        if not vers:
            return
        older = [v for v in vers if v[0] <= self.compacted]
        newer = [v for v in vers if v[0] > self.compacted]
        keep = ([older[-1]] if older and older[-1][1] is not None else []) + newer
        if keep:
            self.versions[key] = keep
        else:
            del self.versions[key]

    def compact(self, rv: int | None = None) -> int:
        with self.lock:
            target = self.rv if rv is None else min(rv, self.rv)
            self.compacted = max(self.compacted, target)
            while self.events and self.events[0].rv <= self.compacted:
                self.events.popleft()
            for key in list(self.versions):
                self._prune(key)
            return self.compacted

    def snapshot(self, resource: str, namespace: str | None, at: int | None) -> list[tuple[Key, Obj]]:
        """Objects of ``resource`` (in ``namespace`` when given), sorted by key, as of revision ``at``."""
        out: list[tuple[Key, Obj]] = []
        if at is None or at >= self.rv:
            for key, obj in self.current.items():
                if key[0] == resource and (namespace is None or key[1] == namespace):
                    out.append((key, obj))
        else:
            for key, vers in self.versions.items():
                if key[0] != resource or (namespace is not None and key[1] != namespace):
                    continue
                found: Obj | None = None
                for rv, version in vers:
                    if rv <= at:
                        found = version
                    else:
                        break
                if found is not None:
                    out.append((key, found))
        out.sort(key=lambda kv: _key_string(kv[0]))
        return out

    def events_after(self, rv: int) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for ev in reversed(self.events):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out


# --- RBAC -------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PolicyRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> PolicyRule:
        def strs(k: str) -> tuple[str, ...]:
            return tuple(str(x) for x in (d.get(k) or ()))

        return PolicyRule(strs("verbs"), strs("apiGroups"), strs("resources"), strs("resourceNames"),
                          strs("nonResourceURLs"))

    def allows(self, verb: str, group: str, resource: str, subresource: str, name: str) -> bool:
        if not ("*" in self.verbs or verb in self.verbs):
            return False
        if not ("*" in self.api_groups or group in self.api_groups):
            return False
        combined = f"{resource}/{subresource}" if subresource else resource
        ok = False
        for r in self.resources:
            if r in ("*", combined) or (subresource and r == f"*/{subresource}"):
                ok = True
                break
        if not ok:
            return False
        return not self.resource_names or name in self.resource_names


@dataclasses.dataclass(frozen=True)
class Denial:
    """A request that RBAC refused (see :attr:`KubeApiSimulator.forbidden`)."""

    user: str
    verb: str
    api_group: str
    resource: str
    subresource: str
    name: str
    namespace: str
    message: str

    def __str__(self) -> str:
        return self.message


class RbacPolicy:
    """RBAC as kube-apiserver's authorizer applies it, loaded from ClusterRole/Role/(Cluster)RoleBinding YAML.

    ``service_account`` ("namespace:name") is the identity the simulator's bearer token stands for; its
    user name is ``system:serviceaccount:NAMESPACE:NAME`` with the groups ``system:serviceaccounts``,
    ``system:serviceaccounts:NAMESPACE`` and ``system:authenticated``. Discovery (/version, /api, /apis,
    ...) is always allowed to authenticated users, as the default ``system:discovery`` role does.
    """

    def __init__(self, objects: Iterable[Mapping[str, Any]], *, service_account: str = "",
                 user: str = "", groups: Sequence[str] = (), default_namespace: str = "default") -> None:
        if service_account:
            ns, _, name = service_account.partition(":")
            if not ns or not name:
                raise ValueError(f"service_account must be NAMESPACE:NAME, got {service_account!r}")
            self.user = f"system:serviceaccount:{ns}:{name}"
            self.groups: tuple[str, ...] = ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                            "system:authenticated")
        else:
            if not user:
                raise ValueError("RbacPolicy needs service_account or user")
            self.user, self.groups = user, (*groups, "system:authenticated")
        self.cluster_roles: dict[str, list[PolicyRule]] = {}
        self.roles: dict[tuple[str, str], list[PolicyRule]] = {}
        self.cluster_bindings: list[tuple[str, str, list[Mapping[str, Any]]]] = []
        self.bindings: list[tuple[str, str, str, list[Mapping[str, Any]]]] = []  # ns, roleKind, roleName, subjects
        aggregations: list[tuple[str, list[Mapping[str, Any]]]] = []
        labels_of: dict[str, Mapping[str, str]] = {}
        for obj in objects:
            if not isinstance(obj, Mapping):
                continue
            kind = obj.get("kind")
            meta = obj.get("metadata") or {}
            name = str(meta.get("name", ""))
            ns = str(meta.get("namespace") or default_namespace)
            rules = [PolicyRule.from_dict(r) for r in obj.get("rules") or []]
            if kind == "ClusterRole":
                self.cluster_roles[name] = rules
                labels_of[name] = meta.get("labels") or {}
                agg = (obj.get("aggregationRule") or {}).get("clusterRoleSelectors")
                if agg:
                    aggregations.append((name, list(agg)))
            elif kind == "Role":
                self.roles[(ns, name)] = rules
            elif kind == "ClusterRoleBinding":
                ref = obj.get("roleRef") or {}
                self.cluster_bindings.append((str(ref.get("kind", "")), str(ref.get("name", "")),
                                              list(obj.get("subjects") or [])))
            elif kind == "RoleBinding":
                ref = obj.get("roleRef") or {}
                self.bindings.append((ns, str(ref.get("kind", "")), str(ref.get("name", "")),
                                      list(obj.get("subjects") or [])))
        for name, selectors in aggregations:
            for other, labels in labels_of.items():
                if other == name:
                    continue
                for sel in selectors:
                    match = sel.get("matchLabels") or {}
                    if match and all(labels.get(k) == v for k, v in match.items()):
                        self.cluster_roles[name] = self.cluster_roles[name] + self.cluster_roles[other]
                        break

    @classmethod
    def from_yaml_text(cls, text: str, **kw: Any) -> RbacPolicy:
        return cls([d for d in yaml.safe_load_all(text) if d], **kw)

    @classmethod
    def from_yaml_files(cls, paths: Iterable[str | Path], **kw: Any) -> RbacPolicy:
        """Load every ClusterRole, Role, ClusterRoleBinding and RoleBinding in the (multi-document) files;
        other kinds are ignored. ``default_namespace`` stands in for a namespace kustomize would set."""
        docs: list[Mapping[str, Any]] = []
        for p in paths:
            for d in yaml.safe_load_all(Path(p).read_text(encoding="utf-8")):
                if isinstance(d, Mapping):
                    docs.extend(d.get("items") or [] if d.get("kind") == "List" else [d])
        return cls(docs, **kw)

    @classmethod
    def from_kustomize(cls, directory: str | Path, *, kubectl: str = "kubectl", **kw: Any) -> RbacPolicy:
        """Render ``directory`` with ``kubectl kustomize`` (namespaces as kustomize sets them) and load it."""
        import subprocess

        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                             check=False)
        if out.returncode != 0:
            raise ValueError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
        return cls.from_yaml_text(out.stdout, **kw)

    def _subject_matches(self, subjects: Sequence[Mapping[str, Any]], binding_ns: str) -> bool:
        for s in subjects:
            kind = s.get("kind")
            name = s.get("name", "")
            if kind == "ServiceAccount":
                if f"system:serviceaccount:{s.get('namespace') or binding_ns}:{name}" == self.user:
                    return True
            elif (kind == "User" and name == self.user) or (kind == "Group" and name in self.groups):
                return True
        return False

    def rules_for(self, namespace: str) -> list[PolicyRule]:
        """The rules that apply to the policy's user for a request in ``namespace`` ("" = cluster scope)."""
        out: list[PolicyRule] = []
        for kind, name, subjects in self.cluster_bindings:
            if kind == "ClusterRole" and self._subject_matches(subjects, ""):
                out.extend(self.cluster_roles.get(name, []))
        if namespace:
            for ns, kind, name, subjects in self.bindings:
                if ns != namespace or not self._subject_matches(subjects, ns):
                    continue
                if kind == "Role":
                    out.extend(self.roles.get((ns, name), []))
                elif kind == "ClusterRole":
                    out.extend(self.cluster_roles.get(name, []))
        return out

    def allows(self, verb: str, api_group: str, resource: str, subresource: str = "", name: str = "",
               namespace: str = "") -> bool:
        return any(r.allows(verb, api_group, resource, subresource, name) for r in self.rules_for(namespace))


# --- requests, faults, watches ----------------------------------------------------------------------

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered (``resource`` is e.g. "nodes" or "nodes/status"; None for
    discovery and other non-resource paths)."""

    method: str
    path: str
    verb: str
    resource: str | None
    namespace: str
    name: str
    code: int
    user: str


@dataclasses.dataclass
class _Fault:
    kind: str  # "error" | "throttle" | "conflict"
    remaining: int
    code: int
    verb: str | None
    resource: str | None
    retry_after: int | None = None
    message: str | None = None

    def matches(self, verb: str, resource: str) -> bool:
        if self.kind == "conflict" and verb not in ("update", "patch", "delete"):
            return False
        return (self.verb is None or self.verb == verb) and (self.resource is None or self.resource == resource)


@dataclasses.dataclass
class _Latency:
    seconds: float
    verb: str | None
    resource: str | None


class _Watch:
    def __init__(self, resource: str, conn: socket.socket) -> None:
        self.resource = resource
        self.conn = conn
        self.dropped = False
        self.abrupt = False


@dataclasses.dataclass
class _Request:
    """What kube-apiserver's RequestInfo resolver makes of a resource request."""

    rt: ResourceType
    verb: str
    namespace: str
    name: str
    subresource: str
    query: dict[str, str]
    user: str = ADMIN_USER
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def resource(self) -> str:
        return f"{self.rt.name}/{self.subresource}" if self.subresource else self.rt.name

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def key_ns(self) -> str:
        return self.namespace if self.rt.namespaced else ""


_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int) or not isinstance(d.get("start"), str):
            raise ValueError("bad token")
        return int(d["rv"]), str(d["start"])
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise err_bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                              "(version meta.k8s.io/v1)") from None


def _key_string(key: Key) -> str:
    return f"{key[1]}/{key[2]}" if key[1] else key[2]


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _partial(rt: ResourceType, obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


# --- the simulator ----------------------------------------------------------------------------------

class KubeApiSimulator:
    """A Kubernetes API server on 127.0.0.1 for tests (context manager; ``start()``/``stop()``).

    - ``tls``: serve HTTPS with the shared test certificate (``.ca_file`` is its CA).
    - ``token``: require ``Authorization: Bearer <token>`` (401 otherwise); with ``rbac`` the token is the
      policy's service account, without it an administrator. ``admin_token`` adds a token that bypasses
      RBAC (for test set-up through kubectl). Without any token every request is that identity.
    - ``rbac``: an :class:`RbacPolicy`; requests it does not allow get kube-apiserver's 403 and are
      recorded in :attr:`forbidden`.
    - ``history``: how many changes are kept for watches and paginated lists; older ones are compacted
      (watches from there get 410 Gone). ``namespaces``: created in addition to default, kube-system,
      kube-public and kube-node-lease (a create in a missing namespace is a 404, as on a real cluster).
    - ``bookmark_interval``: seconds between watch bookmarks (kube-apiserver: about a minute, plus one
      two seconds before ``timeoutSeconds`` runs out).
    """

    def __init__(self, *, tls: bool = False, token: str | None = None, rbac: RbacPolicy | None = None,
                 admin_token: str | None = None, host: str = "127.0.0.1", port: int = 0, history: int = 1000,
                 namespaces: Iterable[str] = (), bookmark_interval: float = 60.0,
                 watch_timeout: float = 1800.0) -> None:
        self.tls = tls
        self.token = token
        self.admin_token = admin_token
        self.rbac = rbac
        self.host = host
        self._port = port
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.store = Store(history)
        self.forbidden: list[Denial] = []
        self._records: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._latency: list[_Latency] = []
        self._watches: set[_Watch] = set()
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        for ns in (*DEFAULT_NAMESPACES, *namespaces):
            if ("namespaces", "", ns) not in self.store.current:
                self.create_namespace(ns)

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> KubeApiSimulator:
        if self._server is not None:
            return self
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(_tls_file("server.pem"), _tls_file("server-key.pem"))
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._stopping = False
        self._server = _Server((self.host, self._port), handler, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"kubeapi-sim:{self.port}", daemon=True)
        self._thread.start()
        log.debug("kube-apiserver simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        with self.store.changed:
            for w in list(self._watches):
                w.dropped = True
            self.store.changed.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> KubeApiSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        return _tls_file("ca.pem") if self.tls else None

    def write_kubeconfig(self, path: str | Path, *, token: str | None = None, context: str = "kubeapi-sim") -> str:
        """Write a kubeconfig for this server that kubectl and the Python client accept; return the path.
        ``token`` defaults to the simulator's token."""
        cluster: Obj = {"server": self.url}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(
                Path(_tls_file("ca.pem")).read_bytes()).decode()
        user: Obj = {}
        tok = token if token is not None else self.token
        if tok:
            user["token"] = tok
        cfg = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        p = Path(path)
        p.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        with contextlib.suppress(OSError):
            p.chmod(0o600)
        return str(p)

    # counters -------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, verb: str | None = None, resource: str | None = None, *, namespace: str | None = None,
              name: str | None = None, code: int | None = None) -> int:
        """How many resource requests matched (verb: get/list/watch/create/update/patch/delete/
        deletecollection; resource: "nodes", "nodes/status", "events", "leases", ...)."""
        with self._lock:
            return sum(1 for r in self._records if r.resource is not None
                       and (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
                       and (namespace is None or r.namespace == namespace) and (name is None or r.name == name)
                       and (code is None or r.code == code))

    def writes(self, resource: str | None = None) -> int:
        """Requests that tried to change something (create/update/patch/delete/deletecollection)."""
        with self._lock:
            return sum(1 for r in self._records if r.resource is not None and r.verb in WRITE_VERBS
                       and (resource is None or r.resource == resource))

    def reset_counts(self) -> None:
        with self._lock:
            self._records.clear()
            self.forbidden.clear()

    # faults ---------------------------------------------------------------------------------------
    def set_latency(self, seconds: float, *, verb: str | None = None, resource: str | None = None) -> None:
        """Delay every matching resource request by ``seconds`` (0 removes the delay for that match)."""
        with self._lock:
            self._latency = [x for x in self._latency if (x.verb, x.resource) != (verb, resource)]
            if seconds > 0:
                self._latency.append(_Latency(seconds, verb, resource))

    def fail_next(self, count: int = 1, *, code: int = 500, verb: str | None = None, resource: str | None = None,
                  retry_after: int | None = None, message: str | None = None) -> None:
        """Answer the next ``count`` matching resource requests with an error ``code`` (500 InternalError,
        503 ServiceUnavailable, 429 TooManyRequests, 504 Timeout...)."""
        with self._lock:
            self._faults.append(_Fault("throttle" if code == 429 else "error", count, code, verb, resource,
                                       retry_after, message))

    def throttle_next(self, count: int = 1, *, retry_after: int = 1, verb: str | None = None,
                      resource: str | None = None) -> None:
        """429 TooManyRequests with ``Retry-After`` for the next ``count`` matching requests (as priority
        and fairness does: before authorization)."""
        self.fail_next(count, code=429, verb=verb, resource=resource, retry_after=retry_after)

    def conflict_next(self, count: int = 1, *, verb: str | None = None, resource: str | None = None) -> None:
        """409 Conflict ("the object has been modified") for the next ``count`` matching update, patch or
        delete requests."""
        with self._lock:
            self._faults.append(_Fault("conflict", count, 409, verb, resource))

    def drop_watches(self, resource: str | None = None, *, abrupt: bool = False) -> int:
        """End the active watch streams (of ``resource``); ``abrupt`` resets the connection instead of
        ending the chunked stream cleanly. Returns how many were dropped."""
        n = 0
        with self.store.changed:
            for w in list(self._watches):
                if resource is None or w.resource == resource:
                    w.dropped, w.abrupt = True, abrupt
                    n += 1
            self.store.changed.notify_all()
        return n

    @property
    def active_watches(self) -> int:
        with self.store.lock:
            return sum(1 for w in self._watches if not w.dropped)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def compact(self, resource_version: str | int | None = None) -> str:
        """Compact the history up to ``resource_version`` (default: now): watches and continue tokens from
        older versions get 410 Gone, as after an etcd compaction."""
        return str(self.store.compact(None if resource_version is None else int(resource_version)))

    @property
    def resource_version(self) -> str:
        with self.store.lock:
            return str(self.store.rv)

    # direct helpers (no HTTP, no counting) --------------------------------------------------------
    def _admin(self, rt: ResourceType, verb: str, namespace: str = "", name: str = "", subresource: str = "",
               query: dict[str, str] | None = None) -> _Request:
        return _Request(rt, verb, namespace, name, subresource, dict(query or {}))

    def create_node(self, node: Mapping[str, Any]) -> Obj:
        """Create a Node as a kubelet (or anyone) would: validated like an API request; raises ApiError."""
        obj, _ = self.op_create(self._admin(NODES, "create"), dict(node))
        return obj

    def register_kubelet_node(self, name: str, *, lease: bool = True, **kw: Any) -> Obj:
        """Create the Node a kubelet started with ``--cloud-provider=external`` registers (see
        :func:`kubelet_node` for the keywords) and, with ``lease``, its heartbeat Lease in kube-node-lease."""
        node = self.create_node(kubelet_node(name, **kw))
        if lease:
            self.op_create(self._admin(LEASES, "create", namespace="kube-node-lease"), {
                "metadata": {"name": name, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": format_micro_time(utcnow())}})
        return node

    def get_node(self, name: str) -> Obj | None:
        with self.store.lock:
            obj = self.store.current.get(("nodes", "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_nodes(self, label_selector: str = "") -> list[Obj]:
        sel = Selector.parse(NODES, label_selector, "")
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in self.store.snapshot("nodes", None, None) if sel.matches(NODES, o)]

    def delete_node(self, name: str) -> bool:
        try:
            self.op_delete(self._admin(NODES, "delete", name=name), None)
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return True

    def patch_node(self, name: str, patch: Any, *, status: bool = False, patch_type: str = "strategic") -> Obj:
        """Patch a Node (``patch_type``: strategic, merge or json), through ``nodes/status`` when ``status``."""
        ctype = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
                 "json": "application/json-patch+json"}[patch_type]
        req = self._admin(NODES, "patch", name=name, subresource="status" if status else "")
        return self.op_patch(req, json.dumps(patch).encode(), ctype)

    def update_node_status(self, name: str, *, ready: bool = True, reason: str | None = None,
                           message: str | None = None, addresses: Sequence[Mapping[str, str]] | None = None,
                           node_info: Mapping[str, str] | None = None) -> Obj:
        """A kubelet heartbeat: patch ``nodes/status`` with a fresh Ready condition (and addresses or
        nodeInfo when given), the way the kubelet does it."""
        now = format_time(utcnow())
        cur = self.get_node(name)
        if cur is None:
            raise err_not_found("nodes", "", name)
        status = "True" if ready else "False"
        old = {c.get("type"): c for c in cur.get("status", {}).get("conditions") or []}.get("Ready")
        cond = {"type": "Ready", "status": status,
                "reason": reason or ("KubeletReady" if ready else "KubeletNotReady"),
                "message": message or ("kubelet is posting ready status" if ready else "container runtime is down"),
                "lastHeartbeatTime": now,
                "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status
                and old.get("lastTransitionTime") else now}
        patch: Obj = {"status": {"conditions": [cond]}}
        if addresses is not None:
            patch["status"]["addresses"] = [{"$patch": "replace"}, *[dict(a) for a in addresses]]
        if node_info is not None:
            patch["status"]["nodeInfo"] = dict(node_info)
        return self.patch_node(name, patch, status=True)

    def list_events(self, namespace: str | None = None, *, involved_name: str | None = None,
                    reason: str | None = None) -> list[Obj]:
        with self.store.lock:
            out = [copy.deepcopy(o) for _, o in self.store.snapshot("events", namespace, None)]
        return [e for e in out if (involved_name is None or e.get("involvedObject", {}).get("name") == involved_name)
                and (reason is None or e.get("reason") == reason)]

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        with self.store.lock:
            obj = self.store.current.get(("leases", namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_leases(self, namespace: str | None = None) -> list[Obj]:
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in self.store.snapshot("leases", namespace, None)]

    def create_namespace(self, name: str) -> Obj:
        obj, _ = self.op_create(self._admin(NAMESPACES, "create"), {"metadata": {"name": name}})
        return obj

    # operations -----------------------------------------------------------------------------------
    def _decode(self, req: _Request, body: Any, *, patch: bool = False) -> Obj:
        rt = req.rt
        if not isinstance(body, dict):
            if patch:
                raise err_invalid("", "", "", [FieldError("Invalid value", "patch", json.dumps(body),
                                                          f"json: cannot unmarshal {_json_type(body)} into Go "
                                                          f"value of type {rt.struct}")])
            raise err_bad_request(f"json: cannot unmarshal {_json_type(body)} into Go value of type "
                                  f"struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
                                  f"Kind string \"json:\\\"kind,omitempty\\\"\" }}")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if not patch:
            if api_version and api_version != rt.api_version:
                raise err_bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                      f"API version ({rt.api_version})")
            if kind and kind != rt.kind:
                raise err_bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                      f'no kind "{kind}" is registered for version "{rt.api_version}"')
        warnings: list[str] = []
        try:
            obj = typed(body, rt.struct, warnings)
        except DecodeError as e:
            if patch:
                raise err_invalid("", "", "", [FieldError("Invalid value", "patch", json.dumps(body), str(e))]) \
                    from None
            raise err_bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {e}') \
                from None
        if warnings:
            if req.query.get("fieldValidation") == "Strict":
                raise err_bad_request("strict decoding error: " + ", ".join(warnings))
            if req.query.get("fieldValidation") != "Ignore":
                req.warnings.extend(warnings)
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(obj)}
        return obj

    def _check_namespace_exists(self, req: _Request) -> None:
        if req.rt.namespaced and ("namespaces", "", req.namespace) not in self.store.current:
            raise err_not_found("namespaces", "", req.namespace)

    def op_get(self, req: _Request) -> Obj:
        with self.store.lock:
            obj = self.store.current.get((req.rt.name, req.key_ns, req.name))
            if obj is None:
                raise err_not_found(req.rt.name, req.rt.group, req.name)
            return copy.deepcopy(obj)

    def op_create(self, req: _Request, body: Any) -> tuple[Obj, int]:
        rt = req.rt
        obj = self._decode(req, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(status_failure(500, "", "resourceVersion should not be set on objects to be created"))
        if not meta.get("name") and meta.get("generateName"):
            base = meta["generateName"][:58]
            meta["name"] = base + "".join(random.choice(_NAME_CHARS) for _ in range(5))
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_time(utcnow())
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(k, None)
        if rt is NODES:
            obj["spec"].pop("configSource", None)
            obj["status"].pop("config", None)
        elif rt is NAMESPACES:
            obj["spec"]["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
        with self.store.lock:
            self._check_namespace_exists(req)
            validate(rt, obj, None)
            key = (rt.name, req.key_ns, meta["name"])
            if key in self.store.current:
                raise err_already_exists(rt.name, rt.group, meta["name"])
            obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed(obj, rt.struct))}
            if req.dry_run:
                return copy.deepcopy(obj), 201
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self.store.put("ADDED", key, obj, None, rv)
            return copy.deepcopy(obj), 201

    def op_update(self, req: _Request, body: Any) -> tuple[Obj, int]:
        rt = req.rt
        obj = self._decode(req, body)
        meta = obj["metadata"]
        if meta.get("name", "") != req.name:
            raise err_bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on "
                                  f"the URL ({req.name})")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        with self.store.lock:
            cur = self.store.current.get((rt.name, req.key_ns, req.name))
            if cur is None:
                if rt.allow_create_on_update and not req.subresource:
                    if meta.get("resourceVersion"):
                        raise err_not_found(rt.name, rt.group, req.name)
                    return self.op_create(dataclasses.replace(req, verb="create"), obj)
                raise err_not_found(rt.name, rt.group, req.name)
            if not meta.get("resourceVersion") and rt is LEASES:
                raise err_invalid(rt.name, rt.group, req.name, [FieldError(
                    "Invalid value", "metadata.resourceVersion", GoRaw("0x0"), "must be specified for an update")])
            return self._apply_update(req, cur, obj), 200

    def op_patch(self, req: _Request, raw: bytes, content_type: str) -> Obj:
        rt = req.rt
        ctype = content_type.split(";")[0].strip().lower()
        if ctype not in ("application/strategic-merge-patch+json", "application/merge-patch+json",
                         "application/json-patch+json"):
            raise ApiError(status_failure(
                415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json"))
        try:
            patch = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise err_bad_request(f"error decoding patch: {e}") from None
        with self.store.lock:
            cur = self.store.current.get((rt.name, req.key_ns, req.name))
            if cur is None:
                raise err_not_found(rt.name, rt.group, req.name)
            try:
                if ctype == "application/strategic-merge-patch+json":
                    if not isinstance(patch, dict):
                        raise err_bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type "
                                              "map[string]interface {}")
                    new = strategic_merge_patch(cur, patch, rt.struct)
                elif ctype == "application/merge-patch+json":
                    new = json_merge_patch(cur, patch)
                else:
                    if not isinstance(patch, list):
                        raise err_bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type "
                                              "jsonpatch.Patch")
                    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
                        raise ApiError(status_failure(
                            413, "RequestEntityTooLarge",
                            f"Request entity too large: The allowed maximum operations in a JSON patch is "
                            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}"))
                    new = json_patch(cur, patch)
            except PatchError as e:
                if e.kind == "bad_request":
                    raise err_bad_request(str(e)) from None
                if e.kind == "unprocessable":
                    raise err_unprocessable(str(e)) from None
                raise ApiError(status_failure(500, "", str(e))) from None
            obj = self._decode(req, new, patch=True)
            meta = obj["metadata"]
            if meta.get("name", "") != req.name:
                raise err_bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name "
                                      f"on the URL ({req.name})")
            if rt.namespaced and meta.get("namespace", "") != req.namespace:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
            return self._apply_update(req, cur, obj)

    def _apply_update(self, req: _Request, cur: Obj, obj: Obj) -> Obj:
        """The common tail of update and patch: preconditions, strategy, validation, no-op detection."""
        rt = req.rt
        meta, cmeta = obj["metadata"], cur["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != cmeta["resourceVersion"]:
            raise err_conflict(rt.name, rt.group, req.name, CONFLICT_MODIFIED)
        if not meta.get("uid"):
            meta["uid"] = cmeta.get("uid")
        meta["creationTimestamp"] = cmeta.get("creationTimestamp")
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in cmeta:
                meta[k] = cmeta[k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        if rt in (NODES, NAMESPACES):
            if req.subresource == "status":
                obj["spec"] = copy.deepcopy(cur["spec"])
            else:
                obj["status"] = copy.deepcopy(cur["status"])
            if rt is NODES and req.subresource == "status" and "config" not in cur.get("status", {}):
                obj["status"].pop("config", None)
        # key order as the Go struct prints it
        obj = typed(obj, rt.struct)
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(obj)}
        meta = obj["metadata"]
        validate(rt, obj, cur)
        meta["resourceVersion"] = cmeta["resourceVersion"]
        if obj == cur:
            return copy.deepcopy(cur)  # no-op: kube-apiserver skips the write, resourceVersion unchanged
        if req.dry_run:
            return copy.deepcopy(obj)
        key = (rt.name, req.key_ns, req.name)
        rv = self.store.next_rv()
        meta["resourceVersion"] = str(rv)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.put("DELETED", key, None, obj, rv)
        else:
            self.store.put("MODIFIED", key, obj, cur, rv)
        return copy.deepcopy(obj)

    def op_delete(self, req: _Request, body: Any) -> Obj:
        rt = req.rt
        opts = body if isinstance(body, dict) else {}
        pre = opts.get("preconditions") or {}
        with self.store.lock:
            key = (rt.name, req.key_ns, req.name)
            cur = self.store.current.get(key)
            if cur is None:
                raise err_not_found(rt.name, rt.group, req.name)
            cmeta = cur["metadata"]
            if pre.get("uid") is not None and pre["uid"] != cmeta.get("uid"):
                raise err_conflict(rt.name, rt.group, req.name,
                                   f"Precondition failed: UID in precondition: {pre['uid']}, "
                                   f"UID in object meta: {cmeta.get('uid')}")
            if pre.get("resourceVersion") is not None and pre["resourceVersion"] != cmeta.get("resourceVersion"):
                raise err_conflict(rt.name, rt.group, req.name,
                                   f"Precondition failed: ResourceVersion in precondition: "
                                   f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                   f"{cmeta.get('resourceVersion')}")
            if rt is NAMESPACES and req.name in DEFAULT_NAMESPACES:
                raise ApiError(status_failure(
                    403, "Forbidden", f'namespaces "{req.name}" is forbidden: this namespace may not be deleted',
                    _details(req.name, "", "namespaces")))
            if req.dry_run:
                return self._delete_status(rt, cur)
            if cmeta.get("finalizers"):
                if cmeta.get("deletionTimestamp"):
                    return copy.deepcopy(cur)
                obj = copy.deepcopy(cur)
                obj["metadata"]["deletionTimestamp"] = format_time(utcnow())
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                obj = {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed(obj, rt.struct))}
                rv = self.store.next_rv()
                obj["metadata"]["resourceVersion"] = str(rv)
                self.store.put("MODIFIED", key, obj, cur, rv)
                return copy.deepcopy(obj)
            self.store.put("DELETED", key, None, cur, self.store.next_rv())
            if rt is NAMESPACES:
                for other in [k for k in self.store.current if k[1] == req.name and k[0] != "namespaces"]:
                    self.store.put("DELETED", other, None, self.store.current[other], self.store.next_rv())
            return self._delete_status(rt, cur)

    @staticmethod
    def _delete_status(rt: ResourceType, obj: Obj) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(obj["metadata"]["name"], rt.group, rt.name, uid=obj["metadata"].get("uid"))}

    def op_delete_collection(self, req: _Request, body: Any) -> Obj:
        sel = Selector.parse(req.rt, req.query.get("labelSelector", ""), req.query.get("fieldSelector", ""))
        with self.store.lock:
            items = [(k, o) for k, o in self.store.snapshot(req.rt.name, req.namespace or None, None)
                     if sel.matches(req.rt, o)]
            deleted = []
            for key, obj in items:
                sub = dataclasses.replace(req, verb="delete", namespace=key[1], name=key[2])
                self.op_delete(sub, body)
                deleted.append(_strip_type(obj))
            return {"kind": req.rt.list_kind, "apiVersion": req.rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted}

    def _wait_for_rv(self, rv: int) -> None:
        """Wait (up to 3 s, as the watch cache does) for a resourceVersion from the future; 504 if it never
        comes."""
        deadline = time.monotonic() + WATCH_TOO_LARGE_WAIT
        while self.store.rv < rv:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(status_failure(
                    504, "Timeout", f"Too large resource version: {rv}, current: {self.store.rv}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1}))
            self.store.changed.wait(left)

    @staticmethod
    def _parse_rv(value: str) -> int:
        if not value.isdigit():
            raise err_bad_request(f'invalid resource version "{value}"') if value else err_bad_request(
                "invalid resource version")
        return int(value)

    def op_list(self, req: _Request) -> tuple[list[Obj], Obj]:
        """Items (each with kind/apiVersion; shared with the store, do not modify) and the list metadata."""
        rt, q = req.rt, req.query
        sel = Selector.parse(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        limit_s = q.get("limit", "") or "0"
        if not re.fullmatch(r"-?\d+", limit_s):
            raise err_bad_request(f'invalid limit "{limit_s}"')
        limit = max(0, int(limit_s))
        token, rv_param, match = q.get("continue", ""), q.get("resourceVersion", ""), q.get("resourceVersionMatch", "")
        if match and not rv_param:
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersionMatch", detail="resourceVersionMatch is forbidden unless "
                                                           "resourceVersion is provided")])
        if token and rv_param:
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersion", detail="specifying resource version is not allowed when using "
                                                      "continue")])
        with self.store.lock:
            at: int | None = None
            start = ""
            if token:
                trv, start = _decode_continue(token)
                if trv >= 0:
                    if trv < self.store.compacted:
                        err = err_expired(
                            "The provided continue parameter is too old to display a consistent list result. You "
                            "can start a new list without the continue parameter, or use the continue token in "
                            "this response to retrieve the remainder of the results. Continuing with the provided "
                            "token results in an inconsistent list - objects that were created, modified, or "
                            "deleted between the time the first chunk was returned and now may show up in the list.")
                        err.status["metadata"] = {"continue": _encode_continue(-1, start)}
                        raise err
                    at = trv
            elif rv_param and rv_param != "0":
                n = self._parse_rv(rv_param)
                if n > self.store.rv:
                    self._wait_for_rv(n)
                if match == "Exact":
                    if n < self.store.compacted:
                        raise err_expired(f"too old resource version: {n} ({self.store.compacted})")
                    at = n
            list_rv = at if at is not None else self.store.rv
            snap = self.store.snapshot(rt.name, req.namespace or None, at)
            items: list[Obj] = []
            cont = ""
            remaining = 0
            last_key = ""
            after = start[:-1] if start.endswith("\x00") else start
            pending = [(k, o) for k, o in snap if not start or _key_string(k) > after]
            for idx, (k, o) in enumerate(pending):
                if limit and len(items) >= limit:
                    cont = _encode_continue(list_rv, last_key + "\x00")
                    remaining = len(pending) - idx
                    break
                last_key = _key_string(k)
                if sel.matches(rt, o):
                    items.append(o)  # stored objects are never modified in place: no copy needed to serialise
            meta: Obj = {"resourceVersion": str(list_rv)}
            if cont:
                meta["continue"] = cont
                if sel.empty:
                    meta["remainingItemCount"] = remaining
            return items, meta

    def list_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj:
        return {"kind": req.rt.list_kind, "apiVersion": req.rt.api_version, "metadata": meta,
                "items": [_strip_type(o) for o in items]}

    def table_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj:
        now = utcnow()
        include = req.query.get("includeObject", "Metadata")
        rows = []
        for o in items:
            row: Obj = {"cells": table_cells(req.rt, o, now)}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = _partial(req.rt, o)
            rows.append(row)
        cols = _TABLE_COLUMNS.get(req.rt.name) or [
            _col("Name", "Name must be unique within a namespace.", fmt="name"),
            _col("Created At", "CreationTimestamp is a timestamp representing the server time when this object "
                               "was created.", typ="date")]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols,
                "rows": rows}


# --- HTTP -------------------------------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler],
                 ssl_ctx: ssl.SSLContext | None) -> None:
        self.ssl_ctx = ssl_ctx
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # like Go's net/http: no Nagle, or every response that is written in two parts waits for a delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_ctx is not None:
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            if isinstance(request, ssl.SSLSocket):
                try:
                    request.settimeout(10)
                    request.do_handshake()
                    request.settimeout(None)
                except (OSError, ssl.SSLError):
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("kubeapi simulator: connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def _warning_header(text: str) -> str:
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _api_resource(rt: ResourceType) -> list[Obj]:
    out: list[Obj] = [{"name": rt.name, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                       "verbs": sorted(rt.verbs)}]
    if rt.short_names:
        out[0]["shortNames"] = list(rt.short_names)
    if rt.categories:
        out[0]["categories"] = list(rt.categories)
    out[0]["storageVersionHash"] = STORAGE_HASHES[rt.name]
    for sub in rt.subresources:
        out.append({"name": f"{rt.name}/{sub}", "singularName": "", "namespaced": rt.namespaced, "kind": rt.kind,
                    "verbs": ["get", "patch", "update"]})
    return out


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver"
    sys_version = ""
    sim: KubeApiSimulator

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubeapi simulator: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # plumbing ------------------------------------------------------------------------------------
    def _send(self, code: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None,
              warnings: Sequence[str] = ()) -> None:
        self._record(code)  # before the first byte: a client that has its answer finds its request counted
        self.send_response(code)
        self.send_header("Audit-Id", self._audit)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", content_type)
        for w in warnings:
            self.send_header("Warning", _warning_header(w))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, code: int, obj: Any, content_type: str = "application/json",
                   headers: Mapping[str, str] | None = None, warnings: Sequence[str] = ()) -> None:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        self._send(code, data, content_type, headers, warnings)

    def _not_found_page(self) -> int:
        self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
        return 404

    def _negotiate(self) -> str:
        for part in self.headers.get("Accept", "").split(","):
            fields = [x.strip() for x in part.split(";")]
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            as_ = params.get("as")
            if as_ == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return "table"
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io":
                return "partial"
            if as_ is None and fields[0].lower() in ("application/json", "*/*", "application/*", ""):
                return "json"
        return "json"

    def _handle(self, method: str) -> None:
        self._audit = str(uuid.uuid4())
        url = urllib.parse.urlsplit(self.path)
        self._method, self._url_path = method, url.path
        self._req: _Request | None = None
        self._user = ""
        self._recorded = False
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        code = 500
        try:
            # like kube-apiserver's filter chain: the request info is resolved first (so that a 401 is counted
            # against its resource), authentication answers before a bad path does
            bad_path: ApiError | None = None
            try:
                self._req = self._parse(method, url.path, query)
            except ApiError as e:
                bad_path = e
            self._user = self._authenticate()
            if bad_path is not None:
                raise bad_path
            req = self._req
            if req is None:
                code = self._serve_nonresource(method, url.path)
                return
            req.user = self._user
            self._inject(req, "latency")
            self._inject(req, "throttle")
            self._authorize(req)
            self._inject(req, "error")
            code = self._dispatch(req, method, raw)
        except ApiError as e:
            code = e.code
            self._send_json(e.code, e.status, headers=e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a simulator bug: answer like kube-apiserver would, keep serving
            log.exception("kubeapi simulator: %s %s failed", method, self.path)
            code = 500
            with contextlib.suppress(OSError):
                self._send_json(500, err_internal(str(e)).status)
        finally:
            self._record(code)  # nothing was sent (the client went away first): count it all the same

    def _record(self, code: int) -> None:
        """Count this request once, with the status ``code`` about to be sent: called right before the
        first byte of the answer (a watch's headers included), so the counters never lag the client."""
        if self._recorded:
            return
        self._recorded = True
        req = self._req
        rec = RequestRecord(self._method, self._url_path, req.verb if req else self._method.lower(),
                            req.resource if req else None, req.namespace if req else "", req.name if req else "",
                            code, self._user)
        with self.sim._lock:
            self.sim._records.append(rec)

    def _authenticate(self) -> str:
        sim = self.sim
        default_user = sim.rbac.user if sim.rbac else ADMIN_USER
        tokens: dict[str, str] = {}
        if sim.token:
            tokens[sim.token] = default_user
        if sim.admin_token:
            tokens[sim.admin_token] = ADMIN_USER
        if not tokens:
            return default_user
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
            for tok, user in tokens.items():
                if hmac_compare(presented, tok):
                    return user
        raise ApiError(status_failure(401, "Unauthorized", "Unauthorized"))

    def _parse(self, method: str, path: str, query: dict[str, str]) -> _Request | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis" and parts[2] in _group_versions().get(parts[1], []):
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
            if not rest:
                raise err_resource_not_found()
        ns = name = sub = ""
        if rest[0] == "namespaces" and len(rest) >= 2:
            if len(rest) == 2 or (len(rest) == 3 and rest[2] in ("status", "finalize")):
                resource, name, sub = "namespaces", rest[1], rest[2] if len(rest) == 3 else ""
            else:
                if len(rest) > 5:
                    raise err_resource_not_found()
                ns, resource = rest[1], rest[2]
                name = rest[3] if len(rest) > 3 else ""
                sub = rest[4] if len(rest) > 4 else ""
        else:
            if len(rest) > 3:
                raise err_resource_not_found()
            resource = rest[0]
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
        rt = _BY_GROUP.get((group, version, resource))
        if rt is None or (ns and not rt.namespaced) or (rt.namespaced and name and not ns):
            raise err_resource_not_found()
        if sub and sub not in rt.subresources:
            raise err_resource_not_found()
        if method == "GET":
            if name and not watch_prefix:
                verb = "get"
            elif watch_prefix or query.get("watch") in ("true", "1"):
                verb = "watch"
                if name:
                    query["fieldSelector"] = ",".join(
                        x for x in (query.get("fieldSelector", ""), f"metadata.name={name}") if x)
                    name = ""
            else:
                verb = "list"
        elif method == "POST" and not name:
            verb = "create"
        elif method == "PUT" and name:
            verb = "update"
        elif method == "PATCH" and name:
            verb = "patch"
        elif method == "DELETE" and not sub:
            verb = "delete" if name else "deletecollection"
        else:
            raise err_method_not_allowed()
        if sub and verb not in ("get", "update", "patch"):
            raise err_method_not_allowed()
        if not sub and verb not in rt.verbs:
            raise err_method_not_allowed()
        return _Request(rt, verb, ns, name, sub, query)

    def _inject(self, req: _Request, stage: str) -> None:
        sim = self.sim
        if stage == "latency":
            with sim._lock:
                delay = max((x.seconds for x in sim._latency if (x.verb in (None, req.verb))
                             and (x.resource in (None, req.resource))), default=0.0)
            if delay:
                time.sleep(delay)
            return
        with sim._lock:
            fault = None
            for f in sim._faults:
                if f.remaining > 0 and (f.kind == "throttle") == (stage == "throttle") and f.matches(
                        req.verb, req.resource):
                    fault = f
                    f.remaining -= 1
                    break
            sim._faults = [f for f in sim._faults if f.remaining > 0]
        if fault is None:
            return
        rt = req.rt
        if fault.kind == "throttle":
            after = fault.retry_after if fault.retry_after is not None else 1
            raise ApiError(status_failure(429, "TooManyRequests", fault.message or
                                          "Too many requests, please try again later.",
                                          {"retryAfterSeconds": after}), {"Retry-After": str(after)})
        if fault.kind == "conflict":
            raise err_conflict(rt.name, rt.group, req.name, CONFLICT_MODIFIED)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.code == 500:
            raise ApiError(err_internal(fault.message or "injected fault").status, headers)
        reasons = {503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
                   504: ("Timeout", "the server was unable to return a response in the time allotted, but may "
                                    "still be processing the request"),
                   409: ("Conflict", f'Operation cannot be fulfilled on {_qualified(rt.name, rt.group)} '
                                     f'"{req.name}": {CONFLICT_MODIFIED}'),
                   404: ("NotFound", f'{_qualified(rt.name, rt.group)} "{req.name}" not found'),
                   403: ("Forbidden", "forbidden"), 401: ("Unauthorized", "Unauthorized")}
        reason, msg = reasons.get(fault.code, ("", "injected fault"))
        raise ApiError(status_failure(fault.code, reason, fault.message or msg,
                                      _details(req.name, rt.group, rt.name)), headers)

    def _authorize(self, req: _Request) -> None:
        sim = self.sim
        policy = sim.rbac
        if policy is None or req.user != policy.user:
            return
        rt = req.rt
        name = req.name
        if not name and req.verb in ("list", "watch"):
            for f, op, v in parse_field_selector(req.query.get("fieldSelector", "")):
                if f == "metadata.name" and op == "=":
                    name = v
        ns = req.namespace
        if policy.allows(req.verb, rt.group, rt.name, req.subresource, name, ns):
            return
        resource = req.resource
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        inner = (f'User "{req.user}" cannot {req.verb} resource "{resource}" in API group "{rt.group}" {scope}')
        qual = _qualified(rt.name, rt.group)
        msg = f'{qual} "{name}" is forbidden: {inner}' if name else f"{qual} is forbidden: {inner}"
        with sim._lock:
            sim.forbidden.append(Denial(req.user, req.verb, rt.group, rt.name, req.subresource, name, ns, msg))
        raise ApiError(status_failure(403, "Forbidden", msg, _details(name, rt.group, rt.name)))

    def _body(self, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise err_bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _dispatch(self, req: _Request, method: str, raw: bytes) -> int:
        sim = self.sim
        mode = self._negotiate()
        if req.verb == "get":
            obj = sim.op_get(req)
            if mode == "table":
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                self._send_json(200, sim.table_body(req, [obj], meta), "application/json;as=Table;v=v1;g=meta.k8s.io")
            elif mode == "partial":
                self._send_json(200, _partial(req.rt, obj),
                                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
            else:
                self._send_json(200, obj)
            return 200
        if req.verb == "list":
            items, meta = sim.op_list(req)
            if mode == "table":
                self._send_json(200, sim.table_body(req, items, meta), "application/json;as=Table;v=v1;g=meta.k8s.io")
            elif mode == "partial":
                self._send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                      "metadata": meta, "items": [_partial(req.rt, o) for o in items]},
                                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
            else:
                self._send_json(200, sim.list_body(req, items, meta))
            return 200
        if req.verb == "watch":
            return self._serve_watch(req)
        if req.verb == "create":
            obj, code = sim.op_create(req, self._body(raw))
        elif req.verb == "update":
            obj, code = sim.op_update(req, self._body(raw))
        elif req.verb == "patch":
            obj, code = sim.op_patch(req, raw, self.headers.get("Content-Type", "")), 200
        elif req.verb == "delete":
            obj, code = sim.op_delete(req, self._body(raw)), 200
        else:
            obj, code = sim.op_delete_collection(req, self._body(raw)), 200
        self._send_json(code, obj, warnings=req.warnings)
        return code

    def _serve_nonresource(self, method: str, path: str) -> int:
        if method != "GET":
            return self._not_found_page()
        p = path.rstrip("/") or "/"
        groups = _group_versions()
        if p == "/version":
            self._send_json(200, SERVER_VERSION)
        elif p in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif p == "/api":
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.sim.host}:{self.sim.port}"}]})
        elif p == "/api/v1":
            self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                  "resources": [r for rt in RESOURCES if not rt.group for r in _api_resource(rt)]})
        elif p == "/apis":
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                self._group_doc(g, vs) for g, vs in groups.items()]})
        elif p.startswith("/apis/") and p.count("/") == 2 and p.split("/")[2] in groups:
            g = p.split("/")[2]
            self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(g, groups[g])})
        elif p.startswith("/apis/") and p.count("/") == 3 and p.split("/")[3] in groups.get(p.split("/")[2], []):
            g, v = p.split("/")[2], p.split("/")[3]
            self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/{v}",
                                  "resources": [r for rt in RESOURCES if rt.group == g and rt.version == v
                                                for r in _api_resource(rt)]})
        else:
            return self._not_found_page()
        return 200

    @staticmethod
    def _group_doc(group: str, versions: list[str]) -> Obj:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    # watch ---------------------------------------------------------------------------------------
    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _write_event(self, type_: str, obj: Obj) -> None:
        self._write_chunk(json.dumps({"type": type_, "object": obj}, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8") + b"\n")

    def _client_gone(self) -> bool:
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                sock.setblocking(False)
                try:
                    return bool(sock.recv(1) == b"")
                except (ssl.SSLWantReadError, BlockingIOError):
                    return False
                finally:
                    sock.setblocking(True)
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    def _serve_watch(self, req: _Request) -> int:
        sim, rt, q = self.sim, req.rt, req.query
        store = sim.store
        sel = Selector.parse(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        ts = q.get("timeoutSeconds", "")
        if ts and not ts.isdigit():
            raise err_bad_request(f'invalid timeoutSeconds "{ts}"')
        timeout = float(ts) if ts else sim.watch_timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        rv_param = q.get("resourceVersion", "")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise err_invalid("ListOptions", "meta.k8s.io", "", [FieldError(
                "Forbidden", "resourceVersionMatch",
                detail="sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        expired: Obj | None = None
        with store.lock:
            initial: list[Obj] = []
            if rv_param in ("", "0") or send_initial:
                if rv_param not in ("", "0"):
                    n = sim._parse_rv(rv_param)
                    if n > store.rv:
                        sim._wait_for_rv(n)
                pos = store.rv
                initial = [o for _, o in store.snapshot(rt.name, req.namespace or None, None)
                           if sel.matches(rt, o)]
            else:
                pos = sim._parse_rv(rv_param)
                if pos > store.rv:
                    sim._wait_for_rv(pos)
                if pos < store.compacted:
                    expired = status_failure(410, "Expired", f"too old resource version: {pos} ({store.compacted})")
            watch = _Watch(rt.name, self.connection)
            sim._watches.add(watch)
        self.close_connection = True
        try:
            self._record(200)
            self.send_response(200)
            self.send_header("Audit-Id", self._audit)
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if expired is not None:
                self._write_event("ERROR", expired)
                self._write_chunk(b"")
                self.close_connection = sim._stopping  # a cleanly ended stream leaves the connection usable
                return 200
            for obj in initial:
                self._write_event("ADDED", obj)
            if send_initial:
                self._write_event("BOOKMARK", self._bookmark(rt, pos, initial_end=True))
            start = time.monotonic()
            deadline = start + timeout

            def next_bookmark(now: float) -> float | None:
                if not bookmarks:
                    return None
                t = min(now + sim.bookmark_interval, deadline - 2.0)
                return t if t >= now else None

            next_bm = next_bookmark(start)
            while True:
                with store.changed:
                    events = store.events_after(pos)
                    if not events and not watch.dropped and not sim._stopping:
                        wake = min(deadline, next_bm if next_bm is not None else deadline)
                        store.changed.wait(max(0.0, min(0.5, wake - time.monotonic())))
                        events = store.events_after(pos)
                    # every revision is one change: a compaction past our position lost changes we owe
                    lost = store.compacted > pos
                    compacted = store.compacted
                if watch.dropped or sim._stopping:
                    break
                if lost:
                    self._write_event("ERROR", status_failure(
                        410, "Expired", f"too old resource version: {pos} ({compacted})"))
                    break
                for ev in events:
                    pos = ev.rv
                    out = self._convert(rt, req.namespace, sel, ev)
                    if out is not None:
                        self._write_event(*out)
                now = time.monotonic()
                if now >= deadline:
                    break
                if next_bm is not None and now >= next_bm:
                    self._write_event("BOOKMARK", self._bookmark(rt, pos))
                    next_bm = next_bookmark(now)
                if self._client_gone():
                    return 200
            if watch.abrupt:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._write_chunk(b"")
                self.close_connection = sim._stopping  # like Go's net/http: keep-alive after a clean end
        except (BrokenPipeError, ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            with store.lock:
                sim._watches.discard(watch)
        return 200

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> Obj:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, **_strip_type(typed({"metadata": meta}, rt.struct))}

    @staticmethod
    def _convert(rt: ResourceType, namespace: str, sel: Selector, ev: StoredEvent) -> tuple[str, Obj] | None:
        """The watch cache's event filter: an object that starts or stops matching the selector is
        ADDED or DELETED for this watcher."""
        if ev.key[0] != rt.name or (namespace and ev.key[1] != namespace):
            return None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if sel.matches(rt, ev.obj) else None
        cur_pass = sel.matches(rt, ev.obj)
        old_pass = ev.prev is not None and sel.matches(rt, ev.prev)
        if cur_pass and not old_pass:
            return ("ADDED", ev.obj)
        if cur_pass and old_pass:
            return ("MODIFIED", ev.obj)
        if old_pass and ev.prev is not None:
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return ("DELETED", gone)
        return None


def hmac_compare(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# --- kubelet-like nodes and the command line --------------------------------------------------------

def kubelet_node(name: str, *, internal_ip: str | None = None, provider_id: str = "",
                 system_uuid: str | None = None, external_cloud_provider: bool = True, ready: bool = True,
                 labels: Mapping[str, str] | None = None, os_image: str = "Ubuntu 24.04.2 LTS",
                 kernel_version: str = "6.8.0-60-generic", container_runtime: str = "containerd://2.0.5",
                 kubelet_version: str = KUBELET_VERSION, architecture: str = "amd64", cpu: str = "4",
                 memory: str = "8148352Ki") -> Obj:
    """The Node object a kubelet registers. With ``external_cloud_provider`` (``--cloud-provider=external``)
    it carries the ``node.cloudprovider.kubernetes.io/uninitialized`` taint and no providerID, and its only
    addresses are the Hostname and the ``--node-ip`` (``internal_ip``) when given."""
    now = format_time(utcnow())
    rnd = random.Random(name)
    node_labels = {
        "beta.kubernetes.io/arch": architecture, "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": architecture, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        **(labels or {}),
    }
    annotations = {"node.alpha.kubernetes.io/ttl": "0",
                   "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    if internal_ip and external_cloud_provider:
        annotations["alpha.kubernetes.io/provided-node-ip"] = internal_ip
    taints = [{"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}] \
        if external_cloud_provider else []
    addresses = ([{"type": "InternalIP", "address": internal_ip}] if internal_ip else []) + [
        {"type": "Hostname", "address": name}]
    conds = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
         "kubelet is posting ready status" if ready else "container runtime network not ready"),
    ]
    capacity = {"cpu": cpu, "ephemeral-storage": "101430960Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": memory, "pods": "110"}
    spec: Obj = {"taints": taints} if taints else {}
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
                            "lastTransitionTime": now} for t, s, r, m in conds],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{rnd.getrandbits(128):032x}",
                "systemUUID": system_uuid or str(uuid.UUID(int=rnd.getrandbits(128))).upper(),
                "bootID": str(uuid.UUID(int=rnd.getrandbits(128))),
                "kernelVersion": kernel_version, "osImage": os_image, "containerRuntimeVersion": container_runtime,
                "kubeletVersion": kubelet_version, "kubeProxyVersion": "", "operatingSystem": "linux",
                "architecture": architecture,
            },
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ovirt_cloudprovider.simulators.kubeapi",
                                 description="Serve a simulated Kubernetes API on 127.0.0.1 until SIGINT/SIGTERM.")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS with the shared test certificate")
    ap.add_argument("--token", help="require this bearer token")
    ap.add_argument("--write-kubeconfig", metavar="PATH", help="write a kubeconfig for kubectl and clients")
    ap.add_argument("--nodes", type=int, default=0, metavar="N", help="register N kubelet-like nodes")
    ap.add_argument("--history", type=int, default=1000, help="changes kept for watches (default 1000)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="%(message)s")
    if a.tls and not a.token:
        a.token = "".join(random.SystemRandom().choice(string.ascii_lowercase + string.digits) for _ in range(32))
    sim = KubeApiSimulator(tls=a.tls, token=a.token, host=a.host, port=a.port, history=a.history)
    try:
        sim.start()
    except OSError as e:
        print(f"kubeapi simulator: cannot listen on {a.host}:{a.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    for i in range(a.nodes):
        sim.register_kubelet_node(f"node-{i + 1}", internal_ip=f"192.0.2.{(i % 250) + 1}")
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"kube-apiserver simulator listening on {sim.url}", flush=True)
    if a.write_kubeconfig:
        print(f"kubeconfig: {sim.write_kubeconfig(a.write_kubeconfig)}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
