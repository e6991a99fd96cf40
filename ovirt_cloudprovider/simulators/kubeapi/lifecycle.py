"""The node lifecycle mode: what kube-controller-manager's node lifecycle controller does to Node taints and
conditions (``pkg/controller/nodelifecycle/node_lifecycle_controller.go``), so that tests and the demo see what
a real cluster does to the Nodes we write. Optional: :meth:`KubeApiSimulator.start_node_lifecycle`.

What it does, every ``period`` seconds (the real controller: ``doNoScheduleTaintingPass`` on every Node event,
``monitorNodeHealth`` every 5 s), with our reading of the real rules:

- **NoSchedule taints from conditions** (``doNoScheduleTaintingPass``): Ready ``False`` →
  ``node.kubernetes.io/not-ready:NoSchedule``, Ready ``Unknown`` → ``node.kubernetes.io/unreachable:NoSchedule``,
  MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable ``True`` → their taints, ``spec.unschedulable`` →
  ``node.kubernetes.io/unschedulable``. The node's NoSchedule taints with those keys are swapped to exactly that
  set, other taints kept: a Node without conditions loses the not-ready taint kube-apiserver's admission gave it.
- **Node health** (``tryUpdateNodeHealth``): a Node without a Ready condition gets the startup grace period
  (``startup_grace``, real default 60 s) from its creationTimestamp; a Node with one gets ``monitor_grace`` (real
  default 50 s, 40 s before 1.32) from when this controller first saw it or saw its Ready heartbeat change or its
  Lease in ``kube-node-lease`` renewed. Past the grace period Ready, MemoryPressure, DiskPressure and PIDPressure
  become ``Unknown``: missing ones with reason ``NodeStatusNeverUpdated`` ("Kubelet never posted node status."),
  present ones with ``NodeStatusUnknown`` ("Kubelet stopped posting node status."), written only when the Ready
  condition changes, as the real controller does.
- **NoExecute taints** (``processTaintBaseEviction``, ``doNoExecuteTaintingPass``): Ready ``False`` →
  ``not-ready:NoExecute``, ``Unknown`` → ``unreachable:NoExecute`` (the other one swapped out), Ready ``True`` →
  both removed. Per zone (``topology.kubernetes.io/region`` + ``zone``; nodes labelled
  ``node.kubernetes.io/exclude-disruption`` not counted) as ``ComputeZoneState``: no Ready node → full disruption,
  more than 2 not-ready and at least 55 % → partial. When every zone is fully disrupted (no node is Ready) no
  NoExecute taint is added and the existing ones are removed; a zone in partial disruption of at most 50 nodes
  gets no new ones (its eviction rate is 0); a fully disrupted zone while another has Ready nodes evicts at the
  normal rate. A node seen for the first time loses both NoExecute taints (``markNodeAsReachable``) and gets them
  back on the next pass. Not modelled, which makes it harsher, never kinder: the eviction
  rate limit of 0.1 node/s per zone (taints come at once here).
- **Live kubelets**: a real kubelet renews its Lease every 10 s. The simulator's kubelets
  (:meth:`KubeApiSimulator.register_kubelet_node` with a Lease) do too while this mode runs (``renew_interval``),
  until :meth:`NodeLifecycle.stop_kubelet` names them (:meth:`NodeLifecycle.resume_kubelet`: back); a Node
  without a Lease (our placeholder) has nobody renewing anything.

Lifecycle: ``start()`` spawns a daemon thread that calls :meth:`tick` every ``period`` seconds until ``stop()``;
tests may call :meth:`tick` themselves. Its writes go through the simulator's direct helpers (not counted as
requests), the taint swaps with a resourceVersion precondition like ``PatchNodeTaints``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .constants import Obj
from .errors import ApiError
from .formats import format_micro_time, format_time, parse_time, utcnow

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NODE_LEASE_NAMESPACE = "kube-node-lease"
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"

# nodeConditionToTaintKeyStatusMap
_CONDITION_TAINTS: Mapping[str, Mapping[str, str]] = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
_CONDITION_TAINT_KEYS = frozenset(k for m in _CONDITION_TAINTS.values() for k in m.values()) | {UNSCHEDULABLE}
_HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")  # NetworkUnavailable is left
_LARGE_CLUSTER_THRESHOLD = 50
_UNHEALTHY_ZONE_THRESHOLD = 0.55


class _Cluster(Protocol):
    """What the mode needs of the simulator (its direct helpers)."""

    def list_nodes(self, label_selector: str = "") -> list[Obj]: ...
    def list_leases(self, namespace: str | None = None) -> list[Obj]: ...
    def patch_node(self, name: str, patch: Any, *, status: bool = False, patch_type: str = "strategic") -> Obj: ...
    def patch_lease(self, namespace: str, name: str, patch: Any) -> Obj: ...


@dataclass
class _Health:
    probe: float  # wall-clock seconds of the last health signal (the controller's probeTimestamp)
    heartbeat: str | None  # the Ready condition's lastHeartbeatTime when last seen (None: no Ready condition)
    lease_renew: str | None  # the Lease's renewTime when last seen


def _conditions(node: Obj) -> dict[str, Obj]:
    return {str(c.get("type")): c for c in (node.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}


def _ready(node: Obj) -> str | None:
    cond = _conditions(node).get("Ready")
    return str(cond.get("status")) if cond else None


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_time(value).timestamp()
    except ValueError:
        return None


def _zone(node: Obj) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = labels.get("topology.kubernetes.io/region") or labels.get("failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get("topology.kubernetes.io/zone") or labels.get("failure-domain.beta.kubernetes.io/zone", "")
    return f"{region}:\x00:{zone}" if region or zone else ""


class NodeLifecycle:
    """kube-controller-manager's node lifecycle controller as far as Node taints and conditions go (see the module
    docstring). ``startup_grace`` and ``monitor_grace`` in seconds (short in tests); ``period`` between passes."""

    def __init__(self, cluster: _Cluster, *, startup_grace: float = 60.0, monitor_grace: float = 50.0,
                 period: float = 0.2, renew_interval: float = 10.0, clock: Any = time.time) -> None:
        self.cluster = cluster
        self.startup_grace = startup_grace
        self.monitor_grace = monitor_grace
        self.period = period
        self.renew_interval = renew_interval
        self.clock = clock
        self.stopped_kubelets: set[str] = set()
        self.passes = 0
        self._health: dict[str, _Health] = {}
        self._known: set[str] = set()
        self._renewed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> NodeLifecycle:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-lifecycle", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def stop_kubelet(self, name: str) -> None:
        """The simulator's kubelet on ``name`` stops renewing its Lease (a dead kubelet or a powered-off VM)."""
        with self._lock:
            self.stopped_kubelets.add(name)

    def resume_kubelet(self, name: str) -> None:
        """The simulator's kubelet on ``name`` renews its Lease again (it came back)."""
        with self._lock:
            self.stopped_kubelets.discard(name)
            self._renewed.pop(name, None)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except (ApiError, KeyError, TypeError, ValueError):
                continue  # a node deleted under us, an odd object: the next pass sees the new state

    # one pass -----------------------------------------------------------------------------------------
    def tick(self) -> None:
        with self._lock:
            self._renew_leases()
            leases = {str(le["metadata"]["name"]): le for le in self.cluster.list_leases(NODE_LEASE_NAMESPACE)}
            nodes = self.cluster.list_nodes()
            names = {str(n["metadata"]["name"]) for n in nodes}
            for gone in set(self._health) - names:
                del self._health[gone]
            self._known &= names
            for i, node in enumerate(nodes):
                nodes[i] = self._update_health(node, leases.get(str(node["metadata"]["name"])))
            for i, node in enumerate(nodes):
                nodes[i] = self._no_schedule_pass(node)
            self._no_execute_pass(nodes)
            self.passes += 1

    def _renew_leases(self) -> None:
        now = self.clock()
        for lease in self.cluster.list_leases(NODE_LEASE_NAMESPACE):
            name = str(lease["metadata"]["name"])
            if name in self.stopped_kubelets or now - self._renewed.get(name, 0.0) < self.renew_interval:
                continue
            self._renewed[name] = now
            self.cluster.patch_lease(NODE_LEASE_NAMESPACE, name, {"spec": {"renewTime": format_micro_time(utcnow())}})

    def _update_health(self, node: Obj, lease: Obj | None) -> Obj:
        """tryUpdateNodeHealth: the Unknown conditions past the grace period. Returns the node as it is now."""
        now = self.clock()
        name = str(node["metadata"]["name"])
        ready = _conditions(node).get("Ready")
        heartbeat = str(ready.get("lastHeartbeatTime") or "") if ready else None
        health = self._health.get(name)
        if ready is None:
            grace = self.startup_grace
            created = _seconds(node["metadata"].get("creationTimestamp")) or now
            if health is None:
                health = _Health(probe=created, heartbeat=None, lease_renew=None)
        else:
            grace = self.monitor_grace
            if health is None or health.heartbeat is None or health.heartbeat != heartbeat:
                health = _Health(probe=now, heartbeat=heartbeat, lease_renew=health.lease_renew if health else None)
        renew = str((lease or {}).get("spec", {}).get("renewTime") or "") or None
        if renew and renew != health.lease_renew and (
                health.lease_renew is None or (_seconds(renew) or 0) > (_seconds(health.lease_renew) or 0)):
            health.lease_renew = renew
            health.probe = now
        self._health[name] = health
        if now <= health.probe + grace:
            return node
        conditions = list((node.get("status") or {}).get("conditions") or [])
        by_type = {str(c.get("type")): c for c in conditions}
        stamp = format_time(utcnow())
        before = dict(by_type.get("Ready") or {})
        for kind in _HEALTH_CONDITIONS:
            cond = by_type.get(kind)
            if cond is None:
                conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                                   "message": "Kubelet never posted node status.",
                                   "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                                   "lastTransitionTime": stamp})
            elif cond.get("status") != "Unknown":
                cond.update(status="Unknown", reason="NodeStatusUnknown",
                            message="Kubelet stopped posting node status.", lastTransitionTime=stamp)
        after = next(c for c in conditions if c.get("type") == "Ready")
        if after == before:
            return node  # only a changed Ready condition is written (apiequality.Semantic.DeepEqual)
        return self.cluster.patch_node(name, {"status": {"conditions": conditions}}, status=True, patch_type="merge")

    def _swap(self, node: Obj, add: list[Obj], remove: list[tuple[str, str]]) -> Obj:
        """SwapNodeControllerTaint: add/remove taints by key and effect, with a resourceVersion precondition."""
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if (t.get("key"), t.get("effect")) not in remove]
        have = {(t.get("key"), t.get("effect")) for t in taints}
        stamp = format_time(utcnow())
        taints += [{**t, "timeAdded": stamp} for t in add if (t["key"], t["effect"]) not in have]
        if taints == ((node.get("spec") or {}).get("taints") or []):
            return node
        patch = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": taints}}
        try:
            return self.cluster.patch_node(str(node["metadata"]["name"]), patch)
        except ApiError as exc:
            if exc.code in (404, 409):
                return node  # deleted or changed meanwhile: the next pass sees it again
            raise

    def _no_schedule_pass(self, node: Obj) -> Obj:
        """doNoScheduleTaintingPass."""
        wanted: set[str] = set()
        for kind, cond in _conditions(node).items():
            key = _CONDITION_TAINTS.get(kind, {}).get(str(cond.get("status")))
            if key:
                wanted.add(key)
        if (node.get("spec") or {}).get("unschedulable"):
            wanted.add(UNSCHEDULABLE)
        current = {str(t.get("key")) for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("effect") == "NoSchedule" and t.get("key") in _CONDITION_TAINT_KEYS}
        if wanted == current:
            return node
        return self._swap(node, [{"key": k, "effect": "NoSchedule"} for k in sorted(wanted - current)],
                          [(k, "NoSchedule") for k in current - wanted])

    def _no_execute_pass(self, nodes: list[Obj]) -> None:
        """processTaintBaseEviction and doNoExecuteTaintingPass, gated by the zone states (handleDisruption)."""
        zones: dict[str, list[str | None]] = {}
        for node in nodes:
            if EXCLUDE_DISRUPTION not in ((node["metadata"].get("labels")) or {}):
                zones.setdefault(_zone(node), []).append(_ready(node))
        stopped: set[str] = set()  # zones whose eviction rate is 0
        for zone, states in zones.items():
            ready = sum(1 for s in states if s == "True")
            not_ready = len(states) - ready
            if ready and (not_ready > 2 and not_ready / len(states) >= _UNHEALTHY_ZONE_THRESHOLD
                  and len(states) <= _LARGE_CLUSTER_THRESHOLD):
                stopped.add(zone)  # partial disruption in a small zone: eviction rate 0
        all_disrupted = bool(zones) and all(
            not any(s == "True" for s in states) for states in zones.values())
        for node in nodes:
            name = str(node["metadata"]["name"])
            status = _ready(node)
            first = name not in self._known
            self._known.add(name)
            if first or status == "True" or all_disrupted:  # markNodeAsReachable
                self._swap(node, [], [(NOT_READY, "NoExecute"), (UNREACHABLE, "NoExecute")])
                continue
            if status is None or _zone(node) in stopped:  # no Ready condition: not in the taint queue
                continue
            add, remove = (NOT_READY, UNREACHABLE) if status == "False" else (UNREACHABLE, NOT_READY)
            self._swap(node, [{"key": add, "effect": "NoExecute"}], [(remove, "NoExecute")])
