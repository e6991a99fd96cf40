"""kube/raw.py: the core/v1 requests sent through the ApiClient without the generated CoreV1Api.

Against the Kubernetes API simulator, through the real client's ApiClient (its auth, transport and
exceptions): answers are raw JSON, non-2xx answers raise the client's ApiException subclass for the
status, and building the informer and the writer does not load the generated core/v1 API module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ConflictException, NotFoundException, UnauthorizedException

from ovirt_cloudprovider.kube.client import CONTENT_JSON, CONTENT_MERGE, CONTENT_SMP, discard, read_json
from ovirt_cloudprovider.kube.raw import CoreRequests
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.helpers import REPO

T = (5.0, 10.0)


def test_node_requests_round_trip_as_raw_json(kubeapi: KubeApiSimulator,
                                              kube_api_client: k8s.ApiClient) -> None:
    api = CoreRequests(kube_api_client)
    created = read_json(api.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                                        content_type=CONTENT_JSON, timeout=T))
    assert created["metadata"]["name"] == "n1" and created["metadata"]["uid"]
    patched = read_json(api.patch_node("n1", {"metadata": {"labels": {"a": "b"}}}, content_type=CONTENT_SMP,
                                       timeout=T))
    assert patched["metadata"]["labels"]["a"] == "b"
    status = read_json(api.patch_node_status(
        "n1", {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
        content_type=CONTENT_MERGE, timeout=T))
    assert status["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.1"}]
    page = read_json(api.list_node(limit=1, timeout=T))
    assert [n["metadata"]["name"] for n in page["items"]] == ["n1"]
    assert page["metadata"]["resourceVersion"]
    with pytest.raises(ConflictException) as exc_info:  # a precondition that does not hold: 409
        api.delete_node("n1", {"preconditions": {"uid": "other"}}, content_type=CONTENT_JSON, timeout=T)
    assert exc_info.value.status == 409
    read_json(api.delete_node("n1", {"preconditions": {"uid": created["metadata"]["uid"]}},
                              content_type=CONTENT_JSON, timeout=T))
    assert kubeapi.count("delete", "nodes") == 2
    assert read_json(api.list_node(timeout=T))["items"] == []


def test_errors_are_the_clients_exceptions_with_the_status_body(kubeapi_tls: KubeApiSimulator,
                                                                api_client_for: Callable[..., k8s.ApiClient]) -> None:
    """Over TLS with a bearer token (the ApiClient's CA and auth settings apply to our requests)."""
    api = CoreRequests(api_client_for(kubeapi_tls))
    with pytest.raises(NotFoundException) as exc_info:
        api.patch_node("missing", {"metadata": {"labels": {"a": "b"}}}, content_type=CONTENT_SMP, timeout=T)
    assert exc_info.value.status == 404
    assert json.loads(str(exc_info.value.body))["reason"] == "NotFound"
    with pytest.raises(UnauthorizedException) as unauth:  # the bearer token is what the ApiClient sends
        CoreRequests(api_client_for(kubeapi_tls, token="wrong")).list_node(timeout=T)
    assert unauth.value.status == 401


def test_bodies_arrive_as_sent_and_discarded_answers_keep_one_connection(
        kubeapi_tls: KubeApiSimulator, api_client_for: Callable[..., k8s.ApiClient]) -> None:
    """Over TLS with a bearer token: a body (nested dicts, lists, numbers, booleans, None) arrives as it was given,
    with the auth the ApiClient adds; answers read with ``discard`` (undecoded) give their keep-alive connection
    back, so a hundred writes use one connection."""
    client = api_client_for(kubeapi_tls)
    api = CoreRequests(client)
    read_json(api.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                              content_type=CONTENT_JSON, timeout=T))
    taints = [{"key": "k", "effect": "NoSchedule", "value": "v"}]
    for i in range(100):
        discard(api.patch_node("n1", {"metadata": {"labels": {"i": str(i)}, "annotations": {"gone": None}},
                                      "spec": {"taints": taints, "unschedulable": i % 2 == 1, "podCIDRs": []}},
                               content_type=CONTENT_SMP, timeout=T))
    node = kubeapi_tls.get_node("n1") or {}
    assert node["metadata"]["labels"] == {"i": "99"}
    assert node["spec"]["taints"] == taints and node["spec"]["unschedulable"] is True
    pool = client.rest_client.pool_manager.connection_from_url(client.configuration.host)
    assert pool.num_connections == 1 and pool.num_requests == 101


def test_event_requests(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = CoreRequests(kube_api_client)
    body = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "n1.", "namespace": "default"},
            "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": "n1"}, "reason": "R", "message": "m",
            "type": "Normal", "count": 1}
    created = read_json(api.create_namespaced_event("default", body, content_type=CONTENT_JSON, timeout=T))
    name = created["metadata"]["name"]
    assert name.startswith("n1.")
    patched = read_json(api.patch_namespaced_event(name, "default", {"count": 2}, content_type=CONTENT_SMP,
                                                   timeout=T))
    assert patched["count"] == 2
    assert kubeapi.count("patch", "events", namespace="default") == 1


def test_watch_streams_events(kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    api = CoreRequests(kube_api_client)
    rv = read_json(api.list_node(timeout=T))["metadata"]["resourceVersion"]
    kubeapi.create_node({"metadata": {"name": "w1"}})
    resp = api.list_node(watch=True, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=1,
                         timeout=(5.0, 31.0))
    try:
        first = resp.readline()
    finally:
        resp.release_conn()
    event = json.loads(first)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "w1"


def test_the_informer_writer_and_elector_do_not_load_the_generated_api_modules() -> None:
    code = ("import sys\n"
            "from kubernetes import client\n"
            "from ovirt_cloudprovider.kube.informer import NodeCache\n"
            "from ovirt_cloudprovider.kube.leader import LeaderElector\n"
            "from ovirt_cloudprovider.kube.writer import NodeWriter\n"
            "c = client.ApiClient(client.Configuration())\n"
            "NodeCache(c); NodeWriter(c); LeaderElector(c, namespace='kube-system', name='l', identity='i')\n"
            "print(sorted(m for m in sys.modules if m.startswith('kubernetes.client.api.')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
