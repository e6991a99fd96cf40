"""The served resource types (nodes, events, namespaces, pods, leases), their field sets and selectors."""

from __future__ import annotations

import dataclasses

from .constants import Obj
from .errors import err_bad_request
from .selectors import Requirement, parse_field_selector, parse_label_selector


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
