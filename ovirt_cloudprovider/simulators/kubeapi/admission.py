"""Mutating admission as kube-apiserver's default plugins do it for the served resources.

TaintNodesByCondition (plugin/pkg/admission/nodetaint, enabled by default): on CREATE of a Node (not on
update or patch, not on a subresource) the taint ``node.kubernetes.io/not-ready:NoSchedule`` is appended to
``spec.taints`` unless a taint with that key and effect is already there. The node lifecycle controller
removes it once the node is Ready; the simulator has no such controller, so it stays until a client
changes the taints.
"""

from __future__ import annotations

from typing import Any

from .constants import Obj

TAINT_NODE_NOT_READY = "node.kubernetes.io/not-ready"
NOT_READY_TAINT: Obj = {"key": TAINT_NODE_NOT_READY, "effect": "NoSchedule"}


def _matches(taint: Any, other: Obj) -> bool:
    """Go's Taint.MatchTaint: same key and effect (value and timeAdded do not count)."""
    return isinstance(taint, dict) and taint.get("key") == other["key"] and taint.get("effect") == other["effect"]


def admit_node_create(node: Obj) -> None:
    """TaintNodesByCondition on a decoded Node that is about to be created (changes ``node`` in place)."""
    spec = node.setdefault("spec", {})
    taints = spec.get("taints")
    if not isinstance(taints, list):
        taints = []
    if not any(_matches(t, NOT_READY_TAINT) for t in taints):
        spec["taints"] = [*taints, dict(NOT_READY_TAINT)]
