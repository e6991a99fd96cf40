"""Validation of created and updated objects, with kube-apiserver's field paths and messages."""

from __future__ import annotations

import re

from .constants import Obj
from .errors import FieldError, err_invalid
from .formats import dns1123_label_errors, dns1123_subdomain_errors, label_value_errors, qualified_name_errors
from .resources import EVENTS, LEASES, NAMESPACES, NODES, ResourceType


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
