"""The Kubernetes API simulator, through the official client, kubectl and raw HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ovirt_cloudprovider.simulators.kubeapi import (
    KubeApiSimulator,
    RbacPolicy,
    canonical_quantity,
    parse_label_selector,
    strategic_merge_patch,
)
from tests.kube_types import list_meta, meta, watch_stream, wire

NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}

Sims = Callable[..., KubeApiSimulator]
Clients = Callable[..., client.ApiClient]


def body(e: ApiException) -> dict[str, Any]:
    assert e.body is not None, e
    data = json.loads(e.body)
    assert isinstance(data, dict)
    return data


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def after(fault: Callable[[], None], call: Callable[[], object]) -> Callable[[], object]:
    """``call`` once ``fault`` is armed: one callable per row of a table of failing requests."""
    def run() -> object:
        fault()
        return call()
    return run


def raw(sim: KubeApiSimulator, method: str, path: str, data: Any = None, ctype: str = "application/json",
        token: str | None = None, accept: str = "application/json") -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(sim.url + path, method=method, headers={"Accept": accept})
    if data is not None:
        req.data = (data if isinstance(data, bytes) else json.dumps(data).encode())
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = None
    if sim.ca_file:
        import ssl

        ctx = ssl.create_default_context(cafile=sim.ca_file)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            text = r.read().decode()
            return r.status, dict(r.headers), json.loads(text) if text.startswith("{") else text
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, dict(e.headers), json.loads(text) if text.startswith("{") else text


# --- kubectl, auth (the conformance cases are in test_conformance.py) -----------------------------

def test_kubectl_prints_nodes_like_a_real_cluster(kubeapi_tls: KubeApiSimulator, kubectl: Any) -> None:
    sim = kubeapi_tls
    sim.register_kubelet_node("worker-1", internal_ip="192.0.2.11")
    sim.register_kubelet_node("cp-1", internal_ip="192.0.2.10", labels={"node-role.kubernetes.io/control-plane": ""})
    sim.patch_node("worker-1", {"status": {"addresses": [
        {"$patch": "replace"}, {"type": "InternalIP", "address": "192.0.2.11"},
        {"type": "ExternalIP", "address": "203.0.113.7"}, {"type": "Hostname", "address": "worker-1"}]}}, status=True)
    r = kubectl(sim, "get", "nodes", "-o", "wide")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                                "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["worker-1"][1:3] == ["Ready", "<none>"] and rows["worker-1"][5:7] == ["192.0.2.11", "203.0.113.7"]
    assert rows["cp-1"][2] == "control-plane" and rows["cp-1"][5] == "192.0.2.10"
    r = kubectl(sim, "describe", "node", "worker-1")
    assert r.returncode == 0, r.stderr
    assert "node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule" in r.stdout
    api = client.CoreV1Api(_client(sim))
    api.create_namespaced_event("default", wire({"metadata": {"generateName": "worker-1."}, "reason": "Synced",
                                                 "message": "node synced", "type": "Normal",
                                                 "involvedObject": {"kind": "Node", "name": "worker-1"},
                                                 "source": {"component": "ovirt-cloudprovider"}}))
    r = kubectl(sim, "get", "events", "-A")
    assert r.returncode == 0, r.stderr
    assert "node/worker-1" in r.stdout and "Synced" in r.stdout and "node synced" in r.stdout
    r = kubectl(sim, "get", "leases", "-n", "kube-node-lease")
    assert r.returncode == 0 and "worker-1" in r.stdout, r.stderr


def _client(sim: KubeApiSimulator) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = sim.url
    if sim.ca_file:
        cfg.ssl_ca_cert = sim.ca_file
    if sim.token:
        cfg.api_key = {"authorization": f"Bearer {sim.token}"}
    return client.ApiClient(cfg)


def test_missing_or_wrong_token_is_401_unauthorized(kubeapi_tls: KubeApiSimulator) -> None:
    for token in (None, "wrong"):
        code, _, st = raw(kubeapi_tls, "GET", "/api/v1/nodes", token=token)
        assert code == 401
        assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert raw(kubeapi_tls, "GET", "/api/v1/nodes", token=kubeapi_tls.token)[0] == 200
    assert raw(kubeapi_tls, "GET", "/version", token="wrong")[0] == 401


def test_static_tokens_authenticate_as_their_users_in_the_request_log(kubeapi_sims: Sims) -> None:
    """``users`` (kube-apiserver's --token-auth-file): each token is its user, recorded with every request; a
    token that is none of them, or none at all, is 401."""
    sim = kubeapi_sims(users={"tok-a": "system:serviceaccount:kube-system:a", "tok-b": "b"})
    assert raw(sim, "POST", "/api/v1/nodes", node("n1"), token="tok-a")[0] == 201
    assert raw(sim, "PATCH", "/api/v1/nodes/n1", {"metadata": {"labels": {"x": "y"}}},
               ctype="application/merge-patch+json", token="tok-b")[0] == 200
    assert raw(sim, "GET", "/api/v1/nodes", token="tok-c")[0] == 401
    assert raw(sim, "GET", "/api/v1/nodes")[0] == 401
    assert [(r.verb, r.user, r.code) for r in sim.requests] == [
        ("create", "system:serviceaccount:kube-system:a", 201), ("patch", "b", 200), ("list", "", 401),
        ("list", "", 401)]


# --- watch ------------------------------------------------------------------------------------------

def test_watch_from_compacted_version_gets_410_then_a_relist_resumes(
        kubeapi_sims: Sims, api_client_for: Clients) -> None:
    sim = kubeapi_sims(history=5)
    api = client.CoreV1Api(api_client_for(sim))
    api.create_node(wire(node("n0")))
    old_rv = list_meta(api.list_node()).resource_version
    for i in range(1, 8):  # more changes than the history keeps
        api.create_node(wire(node(f"n{i}")))
    with pytest.raises(ApiException) as ei:
        for _ in watch_stream(api.list_node, resource_version=old_rv, timeout_seconds=2):
            pass
    assert ei.value.status == 410 and "too old resource version" in str(ei.value.reason)
    # the ERROR event on the wire is kube-apiserver's
    code, _, text = raw(sim, "GET", f"/api/v1/nodes?watch=true&resourceVersion={old_rv}&timeoutSeconds=1")
    ev = text if isinstance(text, dict) else json.loads(text.splitlines()[0])
    assert code == 200 and ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    # relist + watch from the list's version works
    lst = api.list_node()
    assert len(lst.items) == 8
    seen: list[tuple[str, str]] = []

    def watcher() -> None:
        for e in watch_stream(api.list_node, resource_version=list_meta(lst).resource_version, timeout_seconds=2):
            seen.append((e["type"], e["object"].metadata.name))

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.3)
    api.delete_node("n3")
    t.join(5)
    assert seen == [("DELETED", "n3")]


def test_list_with_compacted_continue_token_is_410_with_a_fresh_token(kubeapi: KubeApiSimulator,
                                                                       kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    for i in range(3):
        api.create_node(wire(node(f"n{i}")))
    first = api.list_node(limit=1)
    api.create_node(wire(node("n3")))
    kubeapi.compact()  # like an etcd compaction at the current revision
    with pytest.raises(ApiException) as ei:
        api.list_node(limit=1, _continue=list_meta(first)._continue)
    st = body(ei.value)
    assert ei.value.status == 410 and st["reason"] == "Expired"
    assert st["message"].startswith("The provided continue parameter is too old")
    rest = api.list_node(limit=10, _continue=st["metadata"]["continue"])  # the inconsistent continuation
    assert [meta(n).name for n in rest.items] == ["n1", "n2", "n3"]


def test_watch_rv0_bookmarks_selector_transitions_and_timeout(kubeapi: KubeApiSimulator,
                                                             kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    api.create_node(wire(node("a", pool="x")))
    kubeapi.bookmark_interval = 0.3
    events: list[tuple[str, str | None]] = []

    def watcher() -> None:
        for e in watch_stream(api.list_node, label_selector="pool=x", resource_version="0",
                              allow_watch_bookmarks=True, timeout_seconds=3):
            obj = e["object"]
            events.append((e["type"], obj.metadata.name if hasattr(obj, "metadata") else None))

    t0 = time.monotonic()
    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.5)
    api.patch_node("a", {"metadata": {"labels": {"pool": "y"}}})  # leaves the selector: DELETED
    api.patch_node("a", {"metadata": {"labels": {"pool": "x"}}})  # comes back: ADDED
    api.create_node(wire(node("b", pool="z")))  # never matches
    t.join(6)
    assert 2.5 < time.monotonic() - t0 < 5  # timeoutSeconds ends the stream
    non_bookmarks = [e for e in events if e[0] != "BOOKMARK"]
    assert non_bookmarks == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]
    assert ("BOOKMARK", None) in events


# --- faults -----------------------------------------------------------------------------------------

def test_fault_latency_429_500_and_conflict(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    api.create_node(wire(node("n1")))
    kubeapi.set_latency(0.3, verb="get", resource="nodes")
    t0 = time.monotonic()
    api.read_node("n1")
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    api.list_node()  # a list is not delayed
    assert time.monotonic() - t0 < 0.3
    kubeapi.set_latency(0, verb="get", resource="nodes")

    kubeapi.throttle_next(2, retry_after=3, verb="patch")
    for _ in range(2):
        with pytest.raises(ApiException) as ei:
            api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
        assert ei.value.status == 429 and ei.value.headers is not None and ei.value.headers["Retry-After"] == "3"
        assert body(ei.value)["reason"] == "TooManyRequests"
        assert body(ei.value)["details"] == {"retryAfterSeconds": 3}
    api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})

    kubeapi.fail_next(1, resource="nodes")
    with pytest.raises(ApiException) as ei:
        api.list_node()
    assert ei.value.status == 500 and body(ei.value)["reason"] == "InternalError"
    api.list_node()

    kubeapi.conflict_next(1, resource="nodes")
    api.read_node("n1")  # reads are not affected
    with pytest.raises(ApiException) as ei:
        api.patch_node("n1", {"metadata": {"labels": {"a": "c"}}})
    assert ei.value.status == 409 and body(ei.value)["message"] == (
        'Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your '
        "changes to the latest version and try again")
    assert (meta(api.patch_node("n1", {"metadata": {"labels": {"a": "c"}}})).labels or {})["a"] == "c"


@pytest.mark.parametrize("abrupt", [False, True])
def test_drop_watches_ends_the_stream(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient,
                                      abrupt: bool) -> None:
    api = client.CoreV1Api(kube_api_client)
    outcome: list[str] = []

    def watcher() -> None:
        try:
            for _ in watch_stream(api.list_node, timeout_seconds=30, _request_timeout=30):
                pass
            outcome.append("ended")
        except Exception as e:  # the abrupt drop surfaces as a connection error in urllib3
            outcome.append(type(e).__name__)

    t = threading.Thread(target=watcher)
    t.start()
    deadline = time.monotonic() + 5
    while kubeapi.active_watches == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kubeapi.drop_watches("nodes", abrupt=abrupt) == 1
    t.join(5)
    assert not t.is_alive()
    assert (outcome == ["ended"]) is not abrupt


def test_request_counters(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    api.create_node(wire(node("n1")))
    api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    api.patch_node_status("n1", {"status": {"phase": "Running"}})
    api.read_node("n1")
    api.list_node()
    with pytest.raises(ApiException):
        api.read_node("missing")
    assert kubeapi.count(verb="patch", resource="nodes") == 1
    assert kubeapi.count(verb="patch", resource="nodes/status") == 1
    assert kubeapi.count(verb="get", resource="nodes") == 2
    assert kubeapi.count(verb="get", resource="nodes", code=404) == 1
    assert kubeapi.writes() == 3 and kubeapi.writes("nodes") == 2
    kubeapi.reset_counts()
    assert kubeapi.count() == 0 and kubeapi.writes() == 0


def test_a_request_is_counted_before_its_answer_is_sent(kubeapi: KubeApiSimulator) -> None:
    big = "x" * (200 * 1024)
    for i in range(40):  # an 8 MiB list: more than the socket buffers hold, so the server blocks writing it
        kubeapi.create_node({"metadata": {"name": f"n{i}", "annotations": {"big": big}}})
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((kubeapi.host, kubeapi.port))
        s.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        assert s.recv(12) == b"HTTP/1.1 200"
        # the server is still writing the body: the request is counted already, with its code
        assert kubeapi.count(verb="list", resource="nodes", code=200) == 1
    # the client hung up halfway through the answer: still counted, and only once
    time.sleep(0.2)
    assert kubeapi.count() == 1 and kubeapi.requests[0].path == "/api/v1/nodes"


def test_errors_are_counted_once_with_their_code(kubeapi_sims: Sims, api_client_for: Clients) -> None:
    policy = RbacPolicy.from_yaml_text(RBAC_YAML, service_account="kube-system:ovirt-cloudprovider")
    sim = kubeapi_sims(token="sa-token", admin_token="admin", rbac=policy)
    sim.create_node(node("n1"))
    api = client.CoreV1Api(api_client_for(sim))
    calls: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: api.read_node("missing"), 404, "get"),
        (lambda: api.delete_node("n1"), 403, "delete"),
        (lambda: client.CoreV1Api(api_client_for(sim, token="wrong")).list_node(), 401, "list"),
        (after(lambda: sim.throttle_next(1, verb="patch"), lambda: api.patch_node("n1", {"metadata": {}})),
         429, "patch"),
        (after(lambda: sim.fail_next(1, verb="list"), lambda: api.list_node()), 500, "list"),
        (after(lambda: sim.fail_next(1, code=503, verb="get"), lambda: api.read_node("n1")), 503, "get"),
        (after(lambda: sim.conflict_next(1, verb="patch"), lambda: api.patch_node("n1", {"metadata": {}})),
         409, "patch"),
    ]
    for n, (call, code, verb) in enumerate(calls, start=1):
        with pytest.raises(ApiException) as ei:
            call()
        assert ei.value.status == code
        assert sim.count(code=code) == 1 and sim.count() == n
        last = sim.requests[-1]
        assert (last.verb, last.code) == (verb, code)
    api.read_node("n1")
    assert sim.count() == len(calls) + 1 and sim.count(code=200) == 1


# --- RBAC -------------------------------------------------------------------------------------------

RBAC_YAML = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ovirt-cloudprovider}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ovirt-cloudprovider}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ovirt-cloudprovider}
subjects: [{kind: ServiceAccount, name: ovirt-cloudprovider, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader, namespace: kube-system}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, update]
  resourceNames: [ovirt-cloudprovider]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader}
subjects: [{kind: ServiceAccount, name: ovirt-cloudprovider, namespace: kube-system}]
"""


def test_rbac_from_yaml_allows_the_rules_and_forbids_the_rest(tmp_path: Path, kubeapi_sims: Sims,
                                                              api_client_for: Clients) -> None:
    f = tmp_path / "rbac.yaml"
    f.write_text(RBAC_YAML)
    policy = RbacPolicy.from_yaml_files([f], service_account="kube-system:ovirt-cloudprovider")
    sim = kubeapi_sims(tls=True, token="sa-token", admin_token="admin", rbac=policy)
    sim.create_node(node("n1"))
    api = client.CoreV1Api(api_client_for(sim))
    leases = client.CoordinationV1Api(api_client_for(sim))
    api.list_node()
    api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    api.patch_node_status("n1", {"status": {"phase": "Running"}})
    api.create_namespaced_event("default", wire({"metadata": {"generateName": "n1."}, "reason": "X",
                                                 "involvedObject": {"kind": "Node", "name": "n1"}}))
    lease = leases.create_namespaced_lease("kube-system", wire({"metadata": {"name": "ovirt-cloudprovider"},
                                                                "spec": {"holderIdentity": "me"}}))
    leases.replace_namespaced_lease("ovirt-cloudprovider", "kube-system", lease)
    assert raw(sim, "GET", "/apis", token="sa-token")[0] == 200  # discovery is for everyone
    assert sim.forbidden == []

    with pytest.raises(ApiException) as ei:
        api.delete_node("n1")
    assert ei.value.status == 403
    assert body(ei.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'nodes "n1" is forbidden: User "system:serviceaccount:kube-system:ovirt-cloudprovider" '
                   'cannot delete resource "nodes" in API group "" at the cluster scope',
        "reason": "Forbidden", "details": {"name": "n1", "kind": "nodes"}, "code": 403}
    with pytest.raises(ApiException) as ei:
        api.replace_node_status("n1", api.read_node("n1"))  # patch is granted on nodes/status, update is not
    assert 'cannot update resource "nodes/status"' in body(ei.value)["message"]
    with pytest.raises(ApiException) as ei:  # resourceNames: another lease
        leases.read_namespaced_lease("other", "kube-system")
    assert ei.value.status == 403
    with pytest.raises(ApiException) as ei:  # a Role only counts in its namespace
        leases.create_namespaced_lease("default", wire({"metadata": {"name": "ovirt-cloudprovider"}}))
    assert body(ei.value)["message"].endswith('cannot create resource "leases" in API group '
                                              '"coordination.k8s.io" in the namespace "default"')
    with pytest.raises(ApiException):
        api.list_namespaced_event("default")
    assert [(d.verb, d.resource + ("/" + d.subresource if d.subresource else "")) for d in sim.forbidden] == [
        ("delete", "nodes"), ("update", "nodes/status"), ("get", "leases"), ("create", "leases"),
        ("list", "events")]
    client.CoreV1Api(api_client_for(sim, token="admin")).delete_node("n1")  # the admin token bypasses RBAC


# --- semantics --------------------------------------------------------------------------------------

def test_delete_preconditions(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    n = api.create_node(wire(node("n1")))
    uid, rv = meta(n).uid, meta(n).resource_version
    with pytest.raises(ApiException) as ei:
        api.delete_node("n1", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other")))
    assert ei.value.status == 409 and body(ei.value)["message"] == (
        f'Operation cannot be fulfilled on nodes "n1": Precondition failed: UID in precondition: other, '
        f"UID in object meta: {uid}")
    api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as ei:
        api.delete_node("n1", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version=rv)))
    assert ei.value.status == 409 and "Precondition failed: ResourceVersion in precondition" in (ei.value.body or "")
    cur = api.read_node("n1")
    st = api.delete_node("n1", body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=uid, resource_version=meta(cur).resource_version)))
    # kube-apiserver answers a Node delete with a Status (the v37 client hands it back as a dict)
    assert isinstance(st, dict), st
    assert st["status"] == "Success" and st["details"] == {"name": "n1", "kind": "nodes", "uid": uid}
    with pytest.raises(ApiException) as ei:
        api.delete_node("n1")
    assert ei.value.status == 404 and body(ei.value)["message"] == 'nodes "n1" not found'


def test_strategic_merge_patch_of_addresses_conditions_taints(kubeapi: KubeApiSimulator,
                                                              kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    api.create_node(wire({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
                          "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                                   {"type": "Hostname", "address": "n1"}]}}))
    # addresses merge by "type" although a type is not unique: two InternalIPs collapse into the last one
    r = api.patch_node_status("n1", {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"},
                                                              {"type": "InternalIP", "address": "fd00::2"}]}})
    assert r.status is not None
    assert [(a.type, a.address) for a in r.status.addresses or []] == [("InternalIP", "fd00::2"), ("Hostname", "n1")]
    # the kubelet's way: $patch: replace inside the list
    want = [("InternalIP", "10.0.0.2"), ("InternalIP", "fd00::2"), ("Hostname", "n1")]
    r = api.patch_node_status("n1", {"status": {"addresses": [{"$patch": "replace"}] + [
        {"type": t, "address": a} for t, a in want]}})
    assert r.status is not None
    assert [(a.type, a.address) for a in r.status.addresses or []] == want
    # conditions merge by type, new ones first (SMP's element order)
    api.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    r = api.patch_node_status("n1", {"status": {"conditions": [{"type": "NetworkUnavailable", "status": "False"}]}})
    assert r.status is not None
    assert [c.type for c in r.status.conditions or []] == ["NetworkUnavailable", "Ready"]
    # spec.taints has no merge strategy: replaced as a whole
    r = api.patch_node("n1", {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}})
    assert r.spec is not None
    assert [(t.key, t.effect) for t in r.spec.taints or []] == [("b", "NoExecute")]
    # a JSON merge patch replaces lists too
    code, _, d = raw(kubeapi, "PATCH", "/api/v1/nodes/n1/status",
                     {"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}},
                     ctype="application/merge-patch+json")
    assert code == 200 and d["status"]["addresses"] == [{"type": "Hostname", "address": "n1"}]


def test_strategic_merge_patch_directives() -> None:
    orig = {"metadata": {"name": "x", "finalizers": ["a", "b"], "labels": {"k": "v", "drop": "1"}},
            "status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}}
    out = strategic_merge_patch(orig, {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"], "labels": {"drop": None}},
        "status": {"$setElementOrder/conditions": [{"type": "B"}, {"type": "A"}],
                   "conditions": [{"type": "A", "status": "False"}]}}, "Node")
    assert sorted(out["metadata"]["finalizers"]) == ["b", "c"]
    assert out["metadata"]["labels"] == {"k": "v"}
    assert out["status"]["conditions"] == [{"type": "B", "status": "True"}, {"type": "A", "status": "False"}]
    out = strategic_merge_patch(orig, {"status": {"conditions": [{"$patch": "delete", "type": "A"}]}}, "Node")
    assert out["status"]["conditions"] == [{"type": "B", "status": "True"}]
    assert strategic_merge_patch(orig, {"metadata": {"labels": {"$patch": "replace", "n": "1"}}},
                                 "Node")["metadata"]["labels"] == {"n": "1"}


def test_strategic_merge_patch_drops_directives_for_a_missing_field(kubeapi: KubeApiSimulator) -> None:
    # since kubernetes#117568 (1.28) a patch value with nothing to merge with is taken without its directives
    kubeapi.create_node({"metadata": {"name": "n"}})
    code, headers, d = raw(kubeapi, "PATCH", "/api/v1/nodes/n/status", {"status": {"addresses": [
        {"type": "InternalIP", "address": "1.1.1.1"}, {"$patch": "replace"}]}},
        ctype="application/strategic-merge-patch+json")
    assert code == 200 and "Warning" not in headers
    assert d["status"]["addresses"] == [{"type": "InternalIP", "address": "1.1.1.1"}]
    stored = kubeapi.get_node("n")
    assert stored is not None and stored["status"]["addresses"] == [{"type": "InternalIP", "address": "1.1.1.1"}]
    # the kubelet heartbeat helper ($patch: replace first) on a node without addresses
    kubeapi.create_node({"metadata": {"name": "m"}})
    after = kubeapi.update_node_status("m", addresses=[{"type": "InternalIP", "address": "2.2.2.2"}])
    assert after["status"]["addresses"] == [{"type": "InternalIP", "address": "2.2.2.2"}]
    # what kubectl 1.32's strategicpatch (apimachinery) makes of the other cases
    orig = {"metadata": {"name": "x", "labels": {"a": "b"}}, "status": {"phase": "Running"}}
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"spec": {"$patch": "replace", "podCIDR": "10.0.0.0/24"}}, {}),  # a map with $patch is dropped whole
        ({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"$patch": "delete", "key": "x"}]}},
         {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
        ({"spec": {"podCIDR": None, "unschedulable": True, "taints": [{"key": "a", "value": None}]}},
         {"spec": {"unschedulable": True, "taints": [{"key": "a"}]}}),  # and without its nulls
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f"]}}, {}),  # nothing to delete from
        ({"status": {"$setElementOrder/addresses": [{"type": "InternalIP"}], "addresses": [
            {"type": "InternalIP", "address": "1.1.1.1"}, {"$patch": "delete", "type": "X"}]}},
         {"status": {"phase": "Running", "addresses": [{"type": "InternalIP", "address": "1.1.1.1"}]}}),
        ({"metadata": {"labels": [{"$patch": "replace"}, {"a": 1}]}},  # a value of another kind is no merge
         {"metadata": {"name": "x", "labels": [{"a": 1}]}}),
    ]
    for patch, changed in cases:
        assert strategic_merge_patch(orig, patch, "Node") == {**orig, **changed}, patch
    # a delete list deletes whatever the field's patch strategy (status.volumesInUse has none)
    assert strategic_merge_patch({"status": {"volumesInUse": ["a", "b"]}},
                                 {"status": {"$deleteFromPrimitiveList/volumesInUse": ["a"]}},
                                 "Node") == {"status": {"volumesInUse": ["b"]}}


def test_spec_status_split_and_immutable_provider_id(kubeapi: KubeApiSimulator,
                                                     kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    n = api.create_node(wire({"metadata": {"name": "n1"}, "spec": {"providerID": "ovirt://1"},
                              "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}))
    assert n.status is not None and n.spec is not None
    assert n.status.addresses and n.status.addresses[0].address == "10.0.0.1"  # nodes keep status on create
    n.status.addresses = [client.V1NodeAddress(type="InternalIP", address="10.9.9.9")]
    n.spec.unschedulable = True
    r = api.replace_node("n1", n)
    assert r.spec is not None and r.status is not None
    assert r.spec.unschedulable and r.status.addresses and r.status.addresses[0].address == "10.0.0.1"
    with pytest.raises(ApiException) as ei:
        api.patch_node("n1", {"spec": {"providerID": "ovirt://2"}})
    assert ei.value.status == 422 and body(ei.value)["message"] == (
        'Node "n1" is invalid: spec.providerID: Forbidden: node updates may not change providerID except '
        'from "" to valid')
    # a write that changes nothing is not a write: the resourceVersion stays
    rv = meta(api.read_node("n1")).resource_version
    assert meta(api.patch_node("n1", {"spec": {"unschedulable": True}})).resource_version == rv


def test_label_and_field_selectors(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    api.create_node(wire(node("a", tier="web", zone="z1")))
    api.create_node(wire(node("b", tier="db")))
    api.create_node(wire(node("c")))
    api.patch_node("c", {"spec": {"unschedulable": True}})

    def names(**kw: Any) -> list[str | None]:
        return [meta(n).name for n in api.list_node(**kw).items]

    assert names(label_selector="tier==web") == ["a"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web, db)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="zone") == ["a"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier,!zone") == ["b"]
    assert names(field_selector="metadata.name!=a") == ["b", "c"]
    assert names(field_selector="spec.unschedulable=true") == ["c"]
    with pytest.raises(ApiException) as ei:
        api.list_node(field_selector="metadata.namespace=x")
    assert ei.value.status == 400 and body(ei.value)["message"] == "field label not supported: metadata.namespace"
    with pytest.raises(ApiException) as ei:
        api.list_node(label_selector="tier in web")
    assert ei.value.status == 400
    assert [r.op for r in parse_label_selector("a=1,b!=2,c in (x),d notin (y),e,!f")] == [
        "=", "!=", "in", "notin", "exists", "!"]


def test_limit_and_continue_give_a_consistent_snapshot(kubeapi: KubeApiSimulator,
                                                       kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    for i in range(25):
        api.create_node(wire(node(f"n{i:02d}")))
    page = api.list_node(limit=10)
    got = [meta(n).name for n in page.items]
    assert list_meta(page).remaining_item_count == 15
    rv = list_meta(page).resource_version
    api.create_node(wire(node("n99")))  # created between pages: not in this list
    api.delete_node("n24")  # deleted between pages: still in this list
    while list_meta(page)._continue:
        page = api.list_node(limit=10, _continue=list_meta(page)._continue)
        assert list_meta(page).resource_version == rv
        got += [meta(n).name for n in page.items]
    assert got == [f"n{i:02d}" for i in range(25)]


def test_typed_round_trip_like_kube_apiserver(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    code, headers, d = raw(kubeapi, "POST", "/api/v1/nodes", {
        "metadata": {"name": "n1"}, "spec": {"providerId": "typo"},
        "status": {"capacity": {"memory": "8192Mi", "cpu": "4000m", "pods": 110}}})
    assert code == 201 and headers["Warning"] == '299 - "unknown field \\"spec.providerId\\""'
    # spec.providerId pruned; the only taint is the one TaintNodesByCondition admission adds on create
    assert d["spec"] == {"taints": [NOT_READY]}
    assert d["status"]["capacity"] == {"memory": "8Gi", "cpu": "4", "pods": "110"}
    assert d["status"]["nodeInfo"]["systemUUID"] == "" and d["status"]["daemonEndpoints"] == {
        "kubeletEndpoint": {"Port": 0}}
    assert "items" in raw(kubeapi, "GET", "/api/v1/nodes")[2] and "kind" not in raw(
        kubeapi, "GET", "/api/v1/nodes")[2]["items"][0]  # list items carry no kind/apiVersion
    assert canonical_quantity("1000") == "1k" and canonical_quantity("0.5") == "500m"
    assert canonical_quantity("1536Mi") == "1536Mi" and canonical_quantity("1Gi") == "1Gi"
    code, _, d = raw(kubeapi, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", {
        "metadata": {"name": "l1"}, "spec": {"renewTime": "2026-01-01T00:00:00Z"}})
    assert code == 400 and d["message"].startswith('Lease in version "v1" cannot be handled as a Lease: parsing time')
    code, _, d = raw(kubeapi, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", {
        "metadata": {"name": "l1"}, "spec": {"renewTime": "2026-01-01T01:00:00.000001+01:00"}})
    assert code == 201 and d["spec"]["renewTime"] == "2026-01-01T00:00:00.000001Z"


def test_events_and_leases_validation(kubeapi: KubeApiSimulator, kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    coord = client.CoordinationV1Api(kube_api_client)
    ev = wire({"metadata": {"generateName": "n1."}, "reason": "Registered", "type": "Normal",
          "involvedObject": {"kind": "Node", "name": "n1", "apiVersion": "v1"}})
    created = api.create_namespaced_event("default", ev)
    name = meta(created).name
    assert name is not None and name.startswith("n1.") and len(name) == 8
    with pytest.raises(ApiException) as ei:  # a Node's events belong in "default"
        api.create_namespaced_event("kube-system", ev)
    assert ei.value.status == 422 and "involvedObject.namespace" in body(ei.value)["message"]
    with pytest.raises(ApiException) as ei:
        api.create_namespaced_event("nowhere", ev)
    assert ei.value.status == 404 and body(ei.value)["message"] == 'namespaces "nowhere" not found'
    assert [e["reason"] for e in kubeapi.list_events(involved_name="n1")] == ["Registered"]
    lease = coord.create_namespaced_lease("kube-system", wire({"metadata": {"name": "l"},
                                                               "spec": {"holderIdentity": ""}}))
    assert lease.spec is not None and lease.spec.holder_identity == ""  # pointer fields keep their zero value
    meta(lease).resource_version = None
    with pytest.raises(ApiException) as ei:  # leases do not allow unconditional updates
        coord.replace_namespaced_lease("l", "kube-system", lease)
    assert ei.value.status == 422 and "must be specified for an update" in body(ei.value)["message"]
    created_on_put = coord.replace_namespaced_lease("new", "kube-system", wire({"metadata": {"name": "new"}}))
    assert meta(created_on_put).uid and kubeapi.get_lease("kube-system", "new") is not None


def test_standalone_command_serves_until_sigterm(tmp_path: Path) -> None:
    kc = tmp_path / "kc.yaml"
    p = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider.simulators.kubeapi", "--port", "0",
                          "--write-kubeconfig", str(kc), "--nodes", "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        url = p.stdout.readline().split()[-1]
        assert p.stdout.readline().startswith("kubeconfig:")
        with urllib.request.urlopen(url + "/api/v1/nodes", timeout=5) as r:
            assert [n["metadata"]["name"] for n in json.load(r)["items"]] == ["node-1", "node-2"]
        assert f"server: {url}" in kc.read_text()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0


def test_finalizers_kubelet_heartbeat_and_patch_errors(kubeapi: KubeApiSimulator,
                                                       kube_api_client: client.ApiClient) -> None:
    api = client.CoreV1Api(kube_api_client)
    kubeapi.register_kubelet_node("w1", internal_ip="192.0.2.1")
    before = kubeapi.get_node("w1")
    assert before is not None and kubeapi.get_lease("kube-node-lease", "w1") is not None
    after = kubeapi.update_node_status("w1", ready=False, addresses=[{"type": "InternalIP", "address": "192.0.2.9"}])
    ready = next(c for c in after["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
    assert after["status"]["addresses"] == [{"type": "InternalIP", "address": "192.0.2.9"}]
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    # an SMP list item without its merge key: kube-apiserver's 500 without a reason
    with pytest.raises(ApiException) as ei:
        api.patch_node_status("w1", {"status": {"addresses": [{"address": "10.0.0.1"}]}})
    assert ei.value.status == 500 and "does not contain declared merge key: type" in body(ei.value)["message"]
    # a JSON patch "add" below a missing parent is a 422
    with pytest.raises(ApiException) as ei:
        api.patch_node("w1", [{"op": "add", "path": "/metadata/annotations/x~1y/z", "value": "1"}])
    assert ei.value.status == 422
    # finalizers hold a delete until they are removed
    api.patch_node("w1", {"metadata": {"finalizers": ["example.com/hold"]}})
    api.delete_node("w1")
    held = api.read_node("w1")
    assert meta(held).deletion_timestamp is not None
    api.patch_node("w1", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/hold"]}})
    assert kubeapi.get_node("w1") is None


def test_node_create_admission_appends_the_not_ready_taint_once(kubeapi: KubeApiSimulator) -> None:
    # TaintNodesByCondition (plugin/pkg/admission/nodetaint): appended to the taints a Node is created with,
    # unless one with the same key and effect is there (value and timeAdded do not count)
    uninitialized = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
    code, _, d = raw(kubeapi, "POST", "/api/v1/nodes", {"metadata": {"name": "a"}, "spec": {"taints": [uninitialized]}})
    assert code == 201 and d["spec"]["taints"] == [uninitialized, NOT_READY]
    own = {**NOT_READY, "value": "x"}
    noexecute = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
    code, _, d = raw(kubeapi, "POST", "/api/v1/nodes", {"metadata": {"name": "b"}, "spec": {"taints": [own]}})
    assert code == 201 and d["spec"]["taints"] == [own]
    code, _, d = raw(kubeapi, "POST", "/api/v1/nodes", {"metadata": {"name": "c"}, "spec": {"taints": [noexecute]}})
    assert code == 201 and d["spec"]["taints"] == [noexecute, NOT_READY]
    code, _, d = raw(kubeapi, "POST", "/api/v1/nodes?dryRun=All", {"metadata": {"name": "d"}})
    assert code == 201 and d["spec"]["taints"] == [NOT_READY]
    assert kubeapi.register_kubelet_node("e")["spec"]["taints"] == [
        {**uninitialized}, NOT_READY]  # the direct helpers create like an API request


def test_node_update_and_patch_do_not_add_the_not_ready_taint(kubeapi: KubeApiSimulator) -> None:
    kubeapi.create_node(wire(node("n1")))
    code, _, d = raw(kubeapi, "PATCH", "/api/v1/nodes/n1", {"spec": {"taints": None}},
                     ctype="application/strategic-merge-patch+json")
    assert code == 200 and "taints" not in d["spec"]
    code, _, d = raw(kubeapi, "PUT", "/api/v1/nodes/n1", d)
    assert code == 200 and "taints" not in d["spec"]
    code, _, d = raw(kubeapi, "PATCH", "/api/v1/nodes/n1/status", {"status": {"phase": "Running"}},
                     ctype="application/merge-patch+json")
    assert code == 200 and "taints" not in d["spec"]
