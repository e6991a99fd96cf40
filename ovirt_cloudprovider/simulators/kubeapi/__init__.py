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
- admission as kube-apiserver's default plugins do it for Nodes (TaintNodesByCondition: a created Node
  gets the ``node.kubernetes.io/not-ready:NoSchedule`` taint);
- optionally (``start_node_lifecycle``, ``--node-lifecycle``), what kube-controller-manager's node lifecycle
  controller does to Node taints and conditions (``lifecycle``: taints from conditions, the startup grace period,
  ``Ready=Unknown``, the unreachable and NoExecute taints), with the simulator's kubelets renewing their Leases;
- bearer-token authentication, RBAC from ClusterRole/Role YAML (:class:`RbacPolicy`), fault injection,
  request counters and direct helpers for tests.

Public surface (re-exported here): :class:`KubeApiSimulator` (server, direct helpers, faults, counters),
:class:`RbacPolicy`, :func:`kubelet_node`, :class:`ApiError` (what the direct helpers raise; ``.status`` is the
Status body), :class:`RequestRecord` and :class:`Denial`; the pure pieces (:func:`strategic_merge_patch`,
:func:`json_merge_patch`, :func:`json_patch`, :func:`parse_label_selector`, :func:`canonical_quantity`,
:func:`typed`) are usable on their own. Test fixtures live in ``tests/kube_fixtures.py``.

Modules: ``constants``, ``errors``, ``formats`` (names, labels, times, quantities), ``roundtrip`` (typed
decoding), ``patch`` (strategic merge, JSON merge and JSON patch), ``selectors``, ``resources``,
``validation``, ``tables``, ``store``, ``rbac``, ``faults`` (request records, faults, watches),
``simulator``, ``backend`` (what the HTTP side needs of the simulator), ``handler`` (HTTP), ``kubelet``,
``lifecycle`` (the node lifecycle mode) and ``cli``.

Run standalone with ``python -m ovirt_cloudprovider.simulators.kubeapi --port PORT [--write-kubeconfig PATH]
[--tls] [--nodes N] [--node-lifecycle [--startup-grace SECONDS]]``; it serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

from .cli import main
from .constants import KUBELET_VERSION, SERVER_VERSION, Obj
from .errors import ApiError, FieldError, status_failure
from .faults import RequestRecord
from .formats import canonical_quantity, format_micro_time, format_time, parse_time
from .kubelet import kubelet_node
from .patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from .rbac import Denial, PolicyRule, RbacPolicy
from .resources import EVENTS, LEASES, NAMESPACES, NODES, PODS, RESOURCES, ResourceType, Selector
from .roundtrip import DecodeError, typed
from .selectors import Requirement, parse_field_selector, parse_label_selector
from .simulator import KubeApiSimulator
from .store import Store, StoredEvent
from .tables import table_cells
from .validation import validate

__all__ = [
    "EVENTS", "KUBELET_VERSION", "LEASES", "NAMESPACES", "NODES", "PODS", "RESOURCES", "SERVER_VERSION",
    "ApiError", "DecodeError", "Denial", "FieldError", "KubeApiSimulator", "Obj", "PatchError", "PolicyRule",
    "RbacPolicy", "RequestRecord", "Requirement", "ResourceType", "Selector", "Store", "StoredEvent",
    "canonical_quantity", "format_micro_time", "format_time", "json_merge_patch", "json_patch", "kubelet_node",
    "main", "parse_field_selector", "parse_label_selector", "parse_time", "status_failure",
    "strategic_merge_patch", "table_cells", "typed", "validate",
]
