"""Server-side tables: the columns and cells ``kubectl get`` prints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .constants import Obj
from .formats import parse_time
from .resources import EVENTS, LEASES, NAMESPACES, NODES, ResourceType


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
