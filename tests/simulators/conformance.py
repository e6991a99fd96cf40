"""How a Kubernetes API endpoint behaves for Node objects: conformance cases as data, and a runner.

Every expectation here is a fact recorded from a real kube-apiserver v1.36 backed by etcd (a real server
passes every case). The cases were first written as a stand-alone script outside this repository
(``shared/tools/kubeapi_conformance.py``, 30 checks); they are ported here as our own pytest code, one case per
check, each independent of the others, plus:

- ``created-node-gets-not-ready-taint``: kube-apiserver's TaintNodesByCondition admission plugin
  (plugin/pkg/admission/nodetaint, on by default) adds ``node.kubernetes.io/not-ready:NoSchedule`` to every
  Node it creates; a real v1.36 server returns a Node created without taints with that one taint.

- ``create-keeps-status``: a Node's ``status`` is kept on create (the kubelet registers its Node with its
  status in the create body), except ``status.config`` and ``spec.configSource``. This one is read from
  kube-apiserver's source rather than recorded: pkg/registry/core/node/strategy.go, whose ``PrepareForCreate``
  has said "Nodes allow *all* fields, including status, to be set on create" since 2015 and now calls
  ``dropDisabledFields(node, nil)``, which on create clears only ``spec.configSource`` and ``status.config``
  (and ``status.runtimeHandlers`` when the RecursiveReadOnlyMounts gate is off; it is on by default).

- ``duplicate-taint``: read from kube-apiserver's source like the case above: pkg/apis/core/validation
  ``validateNodeTaints`` refuses a second taint of one key and effect, whatever its value, with
  ``field.Duplicate(spec.taints[i])`` and the detail "taints must be unique by key and effect pair" (422
  Invalid); one key with two effects is two taints. (An operator's ``kubectl taint ... key=value:NoSchedule``
  next to ours of the same key and effect is refused exactly so.)

The runner talks to the endpoint through the official ``kubernetes`` client only, creates two nodes named
``PREFIX-node-a`` (labels ``probe=PREFIX, role=a``, providerID ``ovirt://vm-1``) and ``PREFIX-node-b``
(``probe=PREFIX, role=b``) before a case and deletes them after it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube_types import list_meta, meta, name_of, watch_stream, wire

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


@dataclass
class Probe:
    """What a case works with: the API and the names of its two nodes."""

    api: client.CoreV1Api
    prefix: str = "probe"

    @property
    def n1(self) -> str:
        return f"{self.prefix}-node-a"

    @property
    def n2(self) -> str:
        return f"{self.prefix}-node-b"

    def node_a(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.n1, "labels": {"probe": self.prefix, "role": "a"}},
                "spec": {"providerID": "ovirt://vm-1"}}

    def node_b(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.n2, "labels": {"probe": self.prefix, "role": "b"}}}

    def raw(self, method: str, path: str, body: Any = None, ctype: str | None = None) -> tuple[int, Any]:
        """A plain request through the client's REST layer (its TLS and token): (status, parsed JSON or text)."""
        cfg = self.api.api_client.configuration
        headers = {"Accept": "application/json"}
        if ctype:
            headers["Content-Type"] = ctype
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token
        try:
            r = self.api.api_client.rest_client.request(method, cfg.host + path, headers=headers, body=body,
                                                        _request_timeout=10)
            data = r.read()
            status, text = r.status, data.decode() if isinstance(data, bytes) else data
        except ApiException as e:
            status, text = e.status, e.body
        try:
            return status, json.loads(text)
        except (TypeError, ValueError):
            return status, text

    def cleanup(self) -> None:
        for name in (self.n1, self.n2):
            try:
                self.api.delete_node(name)
            except ApiException as e:
                if e.status != 404:
                    raise


def api_error(call: Callable[[], object]) -> tuple[int, str | None]:
    """(status, Status.reason) of the ApiException that ``call`` must raise."""
    try:
        call()
    except ApiException as e:
        reason = json.loads(e.body).get("reason") if e.body else None
        return e.status, reason
    raise AssertionError("the request was accepted")


# --- the cases ---------------------------------------------------------------------------------------------

def get_version(p: Probe) -> None:
    st, d = p.raw("GET", "/version")
    assert st == 200 and isinstance(d, dict) and "gitVersion" in d, (st, d)


def get_api(p: Probe) -> None:
    st, d = p.raw("GET", "/api")
    assert st == 200 and isinstance(d, dict) and d.get("kind") == "APIVersions", (st, d)


def get_apis(p: Probe) -> None:
    st, d = p.raw("GET", "/apis")
    assert st == 200 and isinstance(d, dict) and d.get("groups"), (st, d)


def get_api_v1(p: Probe) -> None:
    st, d = p.raw("GET", "/api/v1")
    names = {r["name"] for r in d.get("resources", [])} if isinstance(d, dict) else set()
    assert st == 200 and {"nodes", "nodes/status"} <= names, (st, sorted(names))


def create_node(p: Probe) -> None:
    c = p.api.create_node(wire(p.node_a()))
    m = meta(c)
    assert m.uid and m.resource_version and m.creation_timestamp, m


def created_node_gets_not_ready_taint(p: Probe) -> None:
    # TaintNodesByCondition: appended on CREATE (not on update or patch), once.
    st, d = p.raw("GET", f"/api/v1/nodes/{p.n2}")
    assert st == 200 and d["spec"].get("taints") == [NOT_READY_TAINT], (st, d)


def create_keeps_status(p: Probe) -> None:
    addresses = [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "InternalIP", "address": "fd00::5"},
                 {"type": "Hostname", "address": "node-a.example.test"}]
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    body = {**p.node_a(), "status": {
        "addresses": addresses, "capacity": capacity, "allocatable": capacity, "config": {"error": "dropped"},
        "nodeInfo": {"systemUUID": "6f1c8f0e-1111-4b4b-9c9c-000000000001", "osImage": "Fedora Linux 39"}}}
    body["spec"] = {**body["spec"], "configSource": {"configMap": {
        "name": "kubelet", "namespace": "kube-system", "kubeletConfigKey": "kubelet"}}}
    st, d = p.raw("POST", "/api/v1/nodes", body, "application/json")
    assert st == 201, (st, d)
    st, got = p.raw("GET", f"/api/v1/nodes/{p.n1}")
    assert st == 200, (st, got)
    status, spec = got["status"], got["spec"]
    assert status["addresses"] == addresses  # as sent: both InternalIPs, in order
    assert status["capacity"] == capacity and status["allocatable"] == capacity
    info = status["nodeInfo"]
    assert (info["systemUUID"], info["osImage"]) == ("6f1c8f0e-1111-4b4b-9c9c-000000000001", "Fedora Linux 39")
    assert info["kubeletVersion"] == "" and info["machineID"] == ""  # Go zero values, no omitempty
    assert "config" not in status and "configSource" not in spec, got
    assert spec["providerID"] == "ovirt://vm-1"


def create_duplicate_is_409(p: Probe) -> None:
    assert api_error(lambda: p.api.create_node(wire(p.node_a()))) == (409, "AlreadyExists")


def invalid_name_is_422(p: Probe) -> None:
    assert api_error(lambda: p.api.create_node(
        wire({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "Bad_Name!"}}))) == (422, "Invalid")


def read_missing_is_404(p: Probe) -> None:
    assert api_error(lambda: p.api.read_node(f"{p.prefix}-missing")) == (404, "NotFound")


def list_by_label(p: Probe) -> None:
    lst = p.api.list_node(label_selector=f"probe={p.prefix}")
    rv = list_meta(lst).resource_version
    assert sorted(name_of(i) for i in lst.items) == [p.n1, p.n2]
    assert rv and rv.isdigit(), rv


def _names(p: Probe, **kwargs: Any) -> list[str]:
    return sorted(name_of(i) for i in p.api.list_node(**kwargs).items)


def label_selector_equals(p: Probe) -> None:
    assert _names(p, label_selector=f"probe={p.prefix},role=a") == [p.n1]


def label_selector_not_equals(p: Probe) -> None:
    assert _names(p, label_selector=f"probe={p.prefix},role!=a") == [p.n2]


def label_selector_in(p: Probe) -> None:
    assert _names(p, label_selector=f"probe={p.prefix},role in (a,b)") == [p.n1, p.n2]


def field_selector_name(p: Probe) -> None:
    assert _names(p, field_selector=f"metadata.name={p.n2}") == [p.n2]


def list_limit_continue(p: Probe) -> None:
    lst = p.api.list_node(label_selector=f"probe={p.prefix}", limit=1)
    assert len(lst.items) == 1 and list_meta(lst)._continue, lst.metadata


def watch_from_list_rv(p: Probe) -> None:
    rv = list_meta(p.api.list_node(label_selector=f"probe={p.prefix}")).resource_version
    events: list[tuple[str, str]] = []

    def watcher() -> None:
        try:
            for ev in watch_stream(p.api.list_node, label_selector=f"probe={p.prefix}",
                                   resource_version=rv, timeout_seconds=3, allow_watch_bookmarks=True,
                                   _request_timeout=10):
                obj = ev["object"]  # a V1Node, or a dict for a BOOKMARK
                meta = obj.metadata.name if hasattr(obj, "metadata") else obj.get("metadata", {}).get("name")
                events.append((ev["type"], meta))
        except Exception as e:  # reported in the assertion below
            events.append(("EXC", repr(e)))

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    time.sleep(0.5)
    p.api.patch_node(p.n1, {"metadata": {"labels": {"watched": "yes"}}})
    t.join(12)
    types = [e[0] for e in events]
    assert types and types[0] == "MODIFIED" and "ADDED" not in types, events


def watch_rv_0(p: Probe) -> None:
    events = [(ev["type"], ev["object"].metadata.name) for ev in watch_stream(
        p.api.list_node, label_selector=f"probe={p.prefix}", resource_version="0", timeout_seconds=2,
        _request_timeout=5)]
    assert sorted(events) == [("ADDED", p.n1), ("ADDED", p.n2)], events


def duplicate_taint_is_422(p: Probe) -> None:
    twice = [{"key": "k", "value": "1", "effect": "NoSchedule"}, {"key": "k", "value": "2", "effect": "NoSchedule"}]
    try:
        p.api.patch_node(p.n1, {"spec": {"taints": twice}})
        raise AssertionError("a second taint of one key and effect was accepted")
    except ApiException as e:
        body = json.loads(e.body or "{}")
        assert (e.status, body["reason"]) == (422, "Invalid"), (e.status, e.body)
        causes = body["details"]["causes"]
        assert [(c["reason"], c["field"]) for c in causes] == [("FieldValueDuplicate", "spec.taints[1]")], causes
        assert "taints must be unique by key and effect pair" in causes[0]["message"], causes
    two_effects = [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"}]
    r = p.api.patch_node(p.n1, {"spec": {"taints": two_effects}})
    assert r.spec is not None and [(t.key, t.effect) for t in r.spec.taints or []] == [
        ("k", "NoSchedule"), ("k", "NoExecute")], r


def smp_taints_atomic(p: Probe) -> None:
    # Node.spec.taints has no patchMergeKey: a strategic merge patch replaces the list.
    p.api.patch_node(p.n1, {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}})
    r = p.api.patch_node(p.n1, {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]},
                                "metadata": {"labels": {"smp": "1"}}})
    assert r.spec is not None, r
    assert [t.key for t in r.spec.taints or []] == ["b"] and (meta(r).labels or {}).get("smp") == "1", r


def smp_null_deletes_label(p: Probe) -> None:
    p.api.patch_node(p.n1, {"metadata": {"labels": {"smp": "1"}}})
    r = p.api.patch_node(p.n1, {"metadata": {"labels": {"smp": None}}})
    assert "smp" not in (meta(r).labels or {}), r.metadata


def merge_patch_json(p: Probe) -> None:
    st, d = p.raw("PATCH", f"/api/v1/nodes/{p.n1}", body={"metadata": {"annotations": {"mp": "x"}}},
                  ctype="application/merge-patch+json")
    assert st == 200 and d["metadata"]["annotations"]["mp"] == "x", (st, d)


def json_patch_add(p: Probe) -> None:
    r = p.api.patch_node(p.n1, [{"op": "add", "path": "/metadata/labels/jp", "value": "1"}])
    assert (meta(r).labels or {}).get("jp") == "1", r.metadata


def json_patch_failing_test_is_422(p: Probe) -> None:
    p.api.patch_node(p.n1, [{"op": "add", "path": "/metadata/labels/jp", "value": "1"}])
    status, _ = api_error(lambda: p.api.patch_node(
        p.n1, [{"op": "test", "path": "/metadata/labels/jp", "value": "WRONG"}]))
    assert status == 422


def unsupported_patch_type_is_415(p: Probe) -> None:
    st, _ = p.raw("PATCH", f"/api/v1/nodes/{p.n1}", body='{"metadata": {"labels": {"x": "y"}}}', ctype="text/plain")
    assert st == 415


def _condition(type_: str, status: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": "ok",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}


def status_conditions_merge_by_type(p: Probe) -> None:
    # NodeStatus.conditions has patchMergeKey=type: a strategic merge patch merges by type.
    p.api.patch_node_status(p.n1, {"status": {"conditions": [_condition("Ready", "True", "KubeletReady")],
                                              "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}})
    r = p.api.patch_node_status(
        p.n1, {"status": {"conditions": [_condition("NetworkUnavailable", "False", "RouteCreated")]}})
    assert r.status is not None, r
    assert sorted(c.type for c in r.status.conditions or []) == ["NetworkUnavailable", "Ready"]


def status_via_main_resource_ignored(p: Probe) -> None:
    r = p.api.patch_node(p.n1, {"status": {"addresses": [{"type": "Hostname", "address": "ignored"}]}})
    assert r.status is not None, r
    assert ("Hostname", "ignored") not in [(x.type, x.address) for x in r.status.addresses or []]


def spec_via_status_ignored(p: Probe) -> None:
    r = p.api.patch_node_status(p.n1, {"spec": {"unschedulable": True}, "metadata": {"labels": {"viastatus": "1"}}})
    assert r.spec is not None and not r.spec.unschedulable, r.spec


def _stale(p: Probe) -> tuple[client.V1Node, str]:
    cur = p.api.read_node(p.n1)
    old_rv = meta(cur).resource_version
    assert old_rv is not None, cur
    p.api.patch_node(p.n1, {"metadata": {"labels": {"bump": "1"}}})
    return cur, old_rv


def put_stale_is_409(p: Probe) -> None:
    cur, old_rv = _stale(p)
    m = meta(cur)
    assert m.labels is not None, m
    m.labels["stale"] = "1"
    m.resource_version = old_rv
    assert api_error(lambda: p.api.replace_node(p.n1, cur)) == (409, "Conflict")


def patch_stale_is_409(p: Probe) -> None:
    _, old_rv = _stale(p)
    status, _ = api_error(lambda: p.api.patch_node(
        p.n1, {"metadata": {"resourceVersion": old_rv, "labels": {"stale2": "1"}}}))
    assert status == 409


def resource_version_changes(p: Probe) -> None:
    _, old_rv = _stale(p)
    assert meta(p.api.read_node(p.n1)).resource_version != old_rv


def delete_then_read_is_404(p: Probe) -> None:
    p.api.delete_node(p.n1)
    p.api.delete_node(p.n2)
    assert api_error(lambda: p.api.read_node(p.n1))[0] == 404


def delete_missing_is_404(p: Probe) -> None:
    p.api.delete_node(p.n1)
    assert api_error(lambda: p.api.delete_node(p.n1))[0] == 404


@dataclass(frozen=True)
class Case:
    id: str
    name: str  # the check's title in the original script
    check: Callable[[Probe], None]
    with_nodes: bool = True  # create the two nodes first


CASES: tuple[Case, ...] = (
    Case("version", "GET /version", get_version, with_nodes=False),
    Case("api", "GET /api", get_api, with_nodes=False),
    Case("apis", "GET /apis", get_apis, with_nodes=False),
    Case("api-v1", "GET /api/v1 lists nodes, nodes/status", get_api_v1, with_nodes=False),
    Case("create", "create node", create_node, with_nodes=False),
    Case("created-node-gets-not-ready-taint", "TaintNodesByCondition on create", created_node_gets_not_ready_taint),
    Case("create-keeps-status", "create keeps status (not config)", create_keeps_status, with_nodes=False),
    Case("create-duplicate", "create duplicate -> 409 AlreadyExists", create_duplicate_is_409),
    Case("invalid-name", "invalid name -> 422 Invalid", invalid_name_is_422),
    Case("read-missing", "read missing -> 404 NotFound", read_missing_is_404),
    Case("list-label", "LIST nodes (label probe=..)", list_by_label),
    Case("label-equals", "label selector role=a", label_selector_equals),
    Case("label-not-equals", "label selector role!=a", label_selector_not_equals),
    Case("label-in", "label selector role in (a,b)", label_selector_in),
    Case("field-name", "field selector metadata.name", field_selector_name),
    Case("list-limit", "LIST limit=1 -> continue token", list_limit_continue),
    Case("watch-from-list-rv", "WATCH from list rv sees only new MODIFIED", watch_from_list_rv),
    Case("watch-rv-0", "WATCH rv=0 -> synthetic ADDED for existing", watch_rv_0),
    Case("smp-taints-atomic", "SMP node spec.taints (atomic list)", smp_taints_atomic),
    Case("duplicate-taint", "a second taint of one key and effect -> 422 Invalid", duplicate_taint_is_422),
    Case("smp-null", "SMP null deletes a label", smp_null_deletes_label),
    Case("merge-patch", "merge-patch+json", merge_patch_json),
    Case("json-patch", "json-patch (list body)", json_patch_add),
    Case("json-patch-test-fails", "json-patch failing test op -> 422", json_patch_failing_test_is_422),
    Case("patch-415", "unsupported patch content-type -> 415", unsupported_patch_type_is_415),
    Case("status-conditions-merge", "SMP nodes/status conditions merge by type", status_conditions_merge_by_type),
    Case("status-via-main-ignored", "status change via main resource ignored", status_via_main_resource_ignored),
    Case("spec-via-status-ignored", "spec change via nodes/status ignored", spec_via_status_ignored),
    Case("put-stale", "PUT with stale resourceVersion -> 409 Conflict", put_stale_is_409),
    Case("patch-stale", "PATCH with stale metadata.resourceVersion -> 409", patch_stale_is_409),
    Case("rv-changes", "resourceVersion changes on write", resource_version_changes),
    Case("delete-then-read", "delete then read -> 404", delete_then_read_is_404),
    Case("delete-missing", "delete missing -> 404", delete_missing_is_404),
)


def run(case: Case, api: client.CoreV1Api, prefix: str = "probe") -> None:
    """Run one case against ``api``: AssertionError when the endpoint does not behave as kube-apiserver."""
    probe = Probe(api, prefix)
    probe.cleanup()
    try:
        if case.with_nodes:
            probe.api.create_node(wire(probe.node_a()))
            probe.api.create_node(wire(probe.node_b()))
        case.check(probe)
    finally:
        probe.cleanup()
