"""The kube package (client, informer, writer, events) against the Kubernetes API simulator, over real HTTP
through the official client.

Grouped by subsystem: client loading, Node → ObservedNode, the informer cache, the writer (writes,
preconditions, faults, Events).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.core.records import (
    ANNOTATION_ABSENT_SWEEPS,
    ANNOTATION_VM_ID,
    LABEL_MANAGED_BY,
    LABEL_OVIRT_HOST,
    LABEL_ZONE,
    MANAGED_BY_VALUE,
    TAINT_SHUTDOWN,
    TAINT_UNINITIALIZED,
    Action,
    ActionKind,
    ApplyResult,
    NodeAddress,
    NodeInfo,
    NodeSpec,
    ObservedNode,
    Taint,
)
from ovirt_cloudprovider.kube.client import load_api_client
from ovirt_cloudprovider.kube.errors import KubeConfigError
from ovirt_cloudprovider.kube.informer import NodeCache, Shared, observed_node
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.logs import TextFormatter
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.helpers import REPO, wait_for
from tests.kube_fixtures import write_rotating_kubeconfig
from tests.kube_types import close, meta

DUAL_STACK = (NodeAddress("InternalIP", "10.0.0.5"), NodeAddress("InternalIP", "fd00::5"),
              NodeAddress("ExternalIP", "192.0.2.5"), NodeAddress("Hostname", "vm1.example.test"))
SHUTDOWN = Taint(TAINT_SHUTDOWN, "NoSchedule")
# what kube-apiserver's TaintNodesByCondition admission adds to every Node it creates
NOT_READY_BODY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


def counted(sim: KubeApiSimulator, *args: Any, **kw: Any) -> int:
    """``sim.count`` once the requests just answered are recorded (the simulator records a request
    after it has sent the answer)."""
    time.sleep(0.03)
    return sim.count(*args, **kw)


def writes(sim: KubeApiSimulator, *args: Any) -> int:
    time.sleep(0.03)
    return sim.writes(*args)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"ovirt_cloudprovider_{name}", labels) or 0.0


def spec_for(name: str = "vm1", vm_id: str = "6f1c8f0e-1111-4b4b-9c9c-000000000001",
             addresses: tuple[NodeAddress, ...] = DUAL_STACK) -> NodeSpec:
    return NodeSpec(
        name=name, provider_id=f"ovirt://{vm_id}", vm_id=vm_id, vm_name=name, status="up",
        addresses=addresses, labels=((LABEL_OVIRT_HOST, "host-1"), (LABEL_ZONE, "cluster-a")),
        shutdown=False, running=True, fqdn=f"{name}.example.test", cpus=4, memory_bytes=8 * 2**30,
        node_info=NodeInfo(system_uuid=vm_id, os_image="Fedora Linux 39", kernel_version="6.5.6-300.fc39.x86_64",
                           architecture="amd64"))


def register(spec: NodeSpec) -> Action:
    return Action(kind=ActionKind.REGISTER, node=spec.name, reason="RegisteredNode",
                  message=f"Registered node for VM {spec.vm_name}", vm_id=spec.vm_id, spec=spec)


def observe(sim: KubeApiSimulator, name: str) -> ObservedNode:
    node = sim.get_node(name)
    assert node is not None, name
    return observed_node(node)


def addresses_of(sim: KubeApiSimulator, name: str) -> list[tuple[str, str]]:
    node = sim.get_node(name) or {}
    return [(a["type"], a["address"]) for a in node.get("status", {}).get("addresses") or []]


def taints_of(sim: KubeApiSimulator, name: str) -> list[dict[str, Any]]:
    node = sim.get_node(name) or {}
    return list(node.get("spec", {}).get("taints") or [])


@pytest.fixture
def api(kube_api_client: k8s.ApiClient) -> k8s.ApiClient:
    return kube_api_client


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def writer(api: k8s.ApiClient, metrics: Metrics) -> NodeWriter:
    return NodeWriter(api, metrics=metrics, host_identity="replica-0", backoff_initial=0.01)


@pytest.fixture
def make_cache(api: k8s.ApiClient, metrics: Metrics) -> Any:
    caches: list[NodeCache] = []

    def make(**kw: Any) -> NodeCache:
        kw.setdefault("metrics", metrics)
        kw.setdefault("backoff_initial", 0.05)
        cache = NodeCache(api, **kw)
        caches.append(cache)
        cache.start()
        return cache

    yield make
    for c in caches:
        c.stop()


# --- load_api_client -----------------------------------------------------------------------------------

class TestLoadApiClient:
    def test_explicit_kubeconfig_over_tls_with_token(self, kubeapi_tls: KubeApiSimulator,
                                                     kubeconfig_for: Callable[..., str]) -> None:
        default_host = k8s.Configuration.get_default_copy().host
        api = load_api_client(kubeconfig_for(kubeapi_tls))
        try:
            kubeapi_tls.create_node({"metadata": {"name": "n1"}})
            names = [meta(n).name for n in k8s.CoreV1Api(api).list_node().items]
            assert names == ["n1"]
            assert api.configuration.host == kubeapi_tls.url
        finally:
            close(api)
        assert k8s.Configuration.get_default_copy().host == default_host  # the global default is untouched

    def test_clients_for_two_servers_stay_separate(self, kubeapi_sims: Callable[..., KubeApiSimulator],
                                                   kubeconfig_for: Callable[..., str]) -> None:
        a, b = kubeapi_sims(), kubeapi_sims(tls=True, token="t0k3n")
        a.create_node({"metadata": {"name": "on-a"}})
        b.create_node({"metadata": {"name": "on-b"}})
        ca, cb = load_api_client(kubeconfig_for(a)), load_api_client(kubeconfig_for(b))
        try:
            assert [meta(n).name for n in k8s.CoreV1Api(ca).list_node().items] == ["on-a"]
            assert [meta(n).name for n in k8s.CoreV1Api(cb).list_node().items] == ["on-b"]
        finally:
            close(ca)
            close(cb)

    def test_kubeconfig_env_then_home(self, tmp_path: Path, kubeapi: KubeApiSimulator, kubeconfig: str) -> None:
        api = load_api_client(None, environ={"KUBECONFIG": kubeconfig, "HOME": str(tmp_path / "nohome")})
        assert api.configuration.host == kubeapi.url
        close(api)
        home = tmp_path / "home"
        (home / ".kube").mkdir(parents=True)
        (home / ".kube" / "config").write_text(Path(kubeconfig).read_text())
        api = load_api_client(None, environ={"HOME": str(home)})
        assert api.configuration.host == kubeapi.url
        close(api)

    def test_missing_file_is_one_line_naming_it(self, tmp_path: Path) -> None:
        path = str(tmp_path / "nope.yaml")
        with pytest.raises(KubeConfigError) as e:
            load_api_client(path)
        assert path in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(KubeConfigError, match=r"nope\.yaml"):
            load_api_client(None, environ={"KUBECONFIG": path})

    @pytest.mark.parametrize("text", ["{not yaml: [", "apiVersion: v1\nkind: Config\nclusters: []\n",
                                      "just a string"])
    def test_invalid_file_is_one_line_naming_it(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(KubeConfigError) as e:
            load_api_client(str(path))
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)

    def test_nothing_configured(self, tmp_path: Path) -> None:
        with pytest.raises(KubeConfigError, match=r"KUBERNETES_SERVICE_HOST unset.*KUBECONFIG unset") as e:
            load_api_client(None, environ={"HOME": str(tmp_path)})
        assert "\n" not in str(e.value)

    def test_in_cluster_without_service_account(self) -> None:
        if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
            pytest.skip("this machine has a service account token")
        env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        with pytest.raises(KubeConfigError, match=r"in-cluster configuration .*serviceaccount/token") as e:
            load_api_client(None, environ=env)
        assert "\n" not in str(e.value)


def test_a_token_rotated_to_a_bad_value_is_never_logged(kubeapi_tls: KubeApiSimulator, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The credential is fetched again while the process runs (an exec plugin whose token expires, as the in-cluster
    token file is re-read every minute); rotated to a value with a line break, every request fails in http.client
    with ``Invalid header value b'Bearer <token>\\n...'``, which the informer logs. The token is never in the line."""
    path, token_file = write_rotating_kubeconfig(kubeapi_tls, tmp_path)
    api = load_api_client(path)
    cache = NodeCache(api, backoff_initial=0.05)
    caplog.set_level(logging.INFO)
    try:
        cache.start()
        assert cache.wait_synced(10)
        secret = "s3cr3t-r0tated"
        token_file.write_text(f"{secret}\ntail-0f-it")
        kubeapi_tls.drop_watches()
        formatter = TextFormatter()
        lines = wait_for(lambda: [formatter.format(r) for r in caplog.records if "informer" in r.getMessage()],
                         timeout=10, what="the informer's failure")
    finally:
        cache.stop()
        close(api)
    assert any("Invalid header value" in line and "<redacted>" in line for line in lines), lines
    assert not any(secret in line or "tail-0f-it" in line for line in lines), lines


# --- observed_node -------------------------------------------------------------------------------------

def test_observed_node_from_dict_and_model_agree() -> None:
    d: dict[str, Any] = {
        "metadata": {"name": "n1", "uid": "u-1", "resourceVersion": "42",
                     "labels": {"b": "2", "a": "1", "kubernetes.io/hostname": "n1-label"},
                     "annotations": {ANNOTATION_VM_ID: "vm-1"}},
        "spec": {"providerID": "ovirt://vm-1", "taints": [
            {"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-02T03:04:05Z"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                 {"type": "InternalIP", "address": "fd00::1"}],
                   "nodeInfo": {"systemUUID": "VM-1"}},
    }
    from_dict = observed_node(d)
    assert from_dict.name == "n1" and from_dict.uid == "u-1" and from_dict.resource_version == "42"
    assert from_dict.labels == (("a", "1"), ("b", "2"), ("kubernetes.io/hostname", "n1-label"))
    assert from_dict.provider_id == "ovirt://vm-1" and from_dict.system_uuid == "VM-1"
    assert from_dict.taints[0] == Taint(TAINT_UNINITIALIZED, "NoSchedule", "true")
    assert from_dict.taints[1].time_added == "2026-01-02T03:04:05Z"
    assert from_dict.addresses == (NodeAddress("InternalIP", "10.0.0.1"), NodeAddress("InternalIP", "fd00::1"))
    assert from_dict.hostname == "n1-label"  # no Hostname address: the label
    v1 = k8s.V1Node(metadata=k8s.V1ObjectMeta(name="n1", uid="u-1", resource_version="42",
                                              labels=d["metadata"]["labels"],
                                              annotations=d["metadata"]["annotations"]),
                    spec=k8s.V1NodeSpec(provider_id="ovirt://vm-1", taints=[
                        k8s.V1Taint(key=TAINT_UNINITIALIZED, value="true", effect="NoSchedule"),
                        k8s.V1Taint(key="node.kubernetes.io/unreachable", effect="NoExecute",
                                    time_added=cast(Any, "2026-01-02T03:04:05Z"))]),  # the model parses it
                    status=k8s.V1NodeStatus(addresses=[k8s.V1NodeAddress(type="InternalIP", address="10.0.0.1"),
                                                       k8s.V1NodeAddress(type="InternalIP", address="fd00::1")],
                                            node_info=None))
    from_model = observed_node(v1)
    assert from_model.taints == from_dict.taints and from_model.labels == from_dict.labels
    assert from_model.taints[1].time_added == "2026-01-02T03:04:05Z"


# --- NodeCache -----------------------------------------------------------------------------------------

class TestNodeCache:
    def test_paged_list_then_sync(self, kubeapi: KubeApiSimulator, make_cache: Any, metrics: Metrics) -> None:
        for i in range(5):
            kubeapi.register_kubelet_node(f"node-{i}", internal_ip=f"10.0.0.{i + 1}", lease=False)
        cache = make_cache(page_size=2)
        assert cache.wait_synced(5)
        assert [n.name for n in cache.nodes()] == [f"node-{i}" for i in range(5)]
        assert cache.get("node-3") is not None and cache.get("node-3").addresses[0].address == "10.0.0.4"
        assert counted(kubeapi, verb="list", resource="nodes") == 3  # 2 + 2 + 1
        assert sample(metrics, "kube_requests_total", operation="list_nodes", code="200") == 3
        assert wait_for(lambda: sample(metrics, "kube_requests_total", operation="watch_nodes", code="200") == 1)

    def test_watch_events_update_the_cache(self, kubeapi: KubeApiSimulator, make_cache: Any) -> None:
        kubeapi.register_kubelet_node("a", internal_ip="10.0.0.1", lease=False)
        seen: list[tuple[str, str]] = []
        cache = make_cache(on_event=lambda t, n: seen.append((t, n.name)))
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        kubeapi.register_kubelet_node("b", lease=False)
        assert wait_for(lambda: cache.get("b") is not None)
        kubeapi.patch_node("a", {"metadata": {"labels": {"x": "y"}}})
        assert wait_for(lambda: (cache.get("a") or observe(kubeapi, "b")).label_map.get("x") == "y")
        # a kubelet heartbeat changes only the resourceVersion of what we keep: no callback
        before = len(seen)
        kubeapi.update_node_status("a")
        rv = kubeapi.get_node("a")["metadata"]["resourceVersion"]  # type: ignore[index]
        assert wait_for(lambda: cache.get("a") is not None and cache.get("a").resource_version == rv)
        assert len(seen) == before
        kubeapi.delete_node("b")
        assert wait_for(lambda: cache.get("b") is None)
        assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert cache.lists == 1

    def test_clean_watch_end_resumes_without_relist(self, kubeapi: KubeApiSimulator, make_cache: Any) -> None:
        cache = make_cache()
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        assert kubeapi.drop_watches("nodes") == 1
        kubeapi.create_node({"metadata": {"name": "while-away"}})
        assert wait_for(lambda: cache.get("while-away") is not None)
        assert cache.lists == 1 and cache.watches == 2

    def test_dropped_connection_relists(self, kubeapi: KubeApiSimulator, make_cache: Any) -> None:
        kubeapi.create_node({"metadata": {"name": "old"}})
        seen: list[tuple[str, str]] = []
        cache = make_cache(on_event=lambda t, n: seen.append((t, n.name)))
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        kubeapi.set_latency(0.5, verb="list", resource="nodes")  # the relist waits: changes happen meanwhile
        assert kubeapi.drop_watches("nodes", abrupt=True) == 1
        kubeapi.create_node({"metadata": {"name": "new"}})
        kubeapi.delete_node("old")
        assert wait_for(lambda: cache.lists == 2 and cache.get("new") is not None and cache.get("old") is None)
        assert ("DELETED", "old") in seen and ("ADDED", "new") in seen

    def test_relist_counted_after_its_changes_are_delivered(self, kubeapi: KubeApiSimulator,
                                                            make_cache: Any) -> None:
        # CI saw lists == 2 before the relist's DELETED/ADDED had reached on_event (the count came first).
        kubeapi.create_node({"metadata": {"name": "old"}})
        seen: list[tuple[str, str]] = []

        def slow(t: str, n: Any) -> None:
            time.sleep(0.2)
            seen.append((t, n.name))

        cache = make_cache(on_event=slow)
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        kubeapi.set_latency(0.5, verb="list", resource="nodes")
        assert kubeapi.drop_watches("nodes", abrupt=True) == 1
        kubeapi.create_node({"metadata": {"name": "new"}})
        kubeapi.delete_node("old")
        assert wait_for(lambda: cache.lists == 2, timeout=10)
        assert ("DELETED", "old") in seen and ("ADDED", "new") in seen

    def test_410_after_compaction_relists(self, kubeapi: KubeApiSimulator, make_cache: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="ovirt_cloudprovider.kube.informer")
        kubeapi.create_node({"metadata": {"name": "keep"}})
        kubeapi.create_node({"metadata": {"name": "gone"}})
        seen: list[tuple[str, str]] = []
        cache = make_cache(on_event=lambda t, n: seen.append((t, n.name)))
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        old_rv = cache.resource_version
        # The next watch is slow to start; meanwhile the history moves on and is compacted, so the
        # resumed watch asks for a resourceVersion the server no longer has: 410 Gone, then a relist.
        kubeapi.set_latency(0.5, verb="watch", resource="nodes")
        kubeapi.drop_watches("nodes")
        kubeapi.create_node({"metadata": {"name": "added-during-gap"}})
        kubeapi.delete_node("gone")
        kubeapi.compact()
        assert wait_for(lambda: cache.lists == 2, timeout=5)
        kubeapi.clear_faults()
        assert [n.name for n in cache.nodes()] == ["added-during-gap", "keep"]
        assert int(cache.resource_version or 0) > int(old_rv or 0)
        assert ("DELETED", "gone") in seen and ("ADDED", "added-during-gap") in seen
        assert any("410" in r.getMessage() for r in caplog.records)

    def test_list_failure_is_retried(self, kubeapi: KubeApiSimulator, make_cache: Any, metrics: Metrics) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        kubeapi.fail_next(2, code=500, verb="list", resource="nodes")
        cache = make_cache()
        assert cache.wait_synced(5)
        assert [n.name for n in cache.nodes()] == ["n"]
        assert sample(metrics, "kube_requests_total", operation="list_nodes", code="500") == 2

    def test_stop_is_prompt(self, kubeapi: KubeApiSimulator, make_cache: Any) -> None:
        cache = make_cache()  # default watch timeout: minutes
        assert cache.wait_synced(5)
        assert wait_for(lambda: kubeapi.active_watches == 1)
        threads = {t.name for t in threading.enumerate()}
        assert "node-informer" in threads
        start = time.monotonic()
        cache.stop()
        assert time.monotonic() - start < 1.0
        assert "node-informer" not in {t.name for t in threading.enumerate()}


# --- NodeWriter: writes ----------------------------------------------------------------------------------

class TestNodeWriter:
    def test_register_creates_node_with_status_in_one_write(self, kubeapi: KubeApiSimulator, writer: NodeWriter,
                                                            metrics: Metrics) -> None:
        spec = spec_for()
        result = writer.apply([register(spec)])
        assert result == ApplyResult(applied=1, tallies=(("register", "success", 1),))
        node = kubeapi.get_node("vm1")
        assert node is not None
        assert node["metadata"]["labels"] == {LABEL_OVIRT_HOST: "host-1", LABEL_ZONE: "cluster-a",
                                              LABEL_MANAGED_BY: MANAGED_BY_VALUE}
        assert node["metadata"]["annotations"] == {ANNOTATION_VM_ID: spec.vm_id}
        assert node["spec"].get("providerID") == spec.provider_id
        # kube-apiserver's TaintNodesByCondition admission adds not-ready on create; the node lifecycle
        # controller removes it when the kubelet reports Ready
        assert node["spec"].get("taints") == [NOT_READY_BODY]
        # the exact list, in order, both InternalIPs kept
        assert addresses_of(kubeapi, "vm1") == [(a.type, a.address) for a in DUAL_STACK]
        status = node["status"]
        assert status["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
        assert status["allocatable"] == status["capacity"]
        info = status["nodeInfo"]
        assert (info["systemUUID"], info["osImage"], info["kernelVersion"], info["architecture"],
                info["operatingSystem"]) == (spec.vm_id, "Fedora Linux 39", "6.5.6-300.fc39.x86_64", "amd64", "linux")
        # one write: the create carries the status (kube-apiserver keeps a Node's status on create)
        assert counted(kubeapi, verb="create", resource="nodes") == 1
        assert counted(kubeapi, verb="patch") == 0
        assert writes(kubeapi, "nodes") + writes(kubeapi, "nodes/status") == 1
        (event,) = kubeapi.list_events("default", involved_name="vm1")
        assert event["reason"] == "RegisteredNode" and event["type"] == "Normal"
        assert event["message"] == "Registered node for VM vm1"
        assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "vm1",
                                           "uid": node["metadata"]["uid"]}
        assert event["source"] == {"component": "ovirt-cloudprovider", "host": "replica-0"}
        assert (event["reportingComponent"], event["reportingInstance"]) == ("ovirt-cloudprovider", "replica-0")
        assert event["count"] == 1 and event["firstTimestamp"] == event["lastTimestamp"]
        assert event["metadata"]["name"].startswith("vm1.")
        assert sample(metrics, "actions_total", kind="register", result="success") == 1
        assert sample(metrics, "kube_requests_total", operation="create_node", code="201") == 1
        assert sample(metrics, "kube_requests_total", operation="create_event", code="201") == 1

    def test_register_existing_node_is_a_conflict(self, kubeapi: KubeApiSimulator, writer: NodeWriter,
                                                  metrics: Metrics) -> None:
        kubeapi.register_kubelet_node("vm1", lease=False)
        result = writer.apply([register(spec_for())])
        assert (result.applied, result.conflicts, result.failed) == (0, 1, 0)
        assert result.errors == ("vm1: register: HTTP 409 AlreadyExists: nodes \"vm1\" already exists",)
        assert counted(kubeapi, verb="patch") == 0 and not kubeapi.list_events()
        assert sample(metrics, "actions_total", kind="register", result="conflict") == 1

    def test_initialize_a_kubelet_node(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.register_kubelet_node("k1", internal_ip="10.1.0.9", lease=False)
        not_ready = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-03-04T05:06:07Z"}
        kubeapi.patch_node("k1", {"spec": {"taints": [*taints_of(kubeapi, "k1"), not_ready]}})
        obs = observe(kubeapi, "k1")
        spec = spec_for("k1")
        action = Action(kind=ActionKind.INITIALIZE, node="k1", reason="InitializedNode",
                        message="Initialized node from VM k1", vm_id=spec.vm_id, uid=obs.uid,
                        resource_version=obs.resource_version, spec=spec,
                        labels=spec.labels, annotations=((ANNOTATION_VM_ID, spec.vm_id),),
                        taints=tuple(t for t in obs.taints if t.key != TAINT_UNINITIALIZED),
                        provider_id=spec.provider_id, addresses=DUAL_STACK)
        result = writer.apply([action])
        assert result.applied == 1, result.errors
        node = kubeapi.get_node("k1")
        assert node is not None
        assert node["spec"]["providerID"] == spec.provider_id
        # the admission's taint from create and the other writer's taint (its timeAdded kept) both stay
        assert taints_of(kubeapi, "k1") == [NOT_READY_BODY, not_ready]
        labels = node["metadata"]["labels"]
        assert labels[LABEL_ZONE] == "cluster-a" and labels["kubernetes.io/hostname"] == "k1"  # kubelet's kept
        assert LABEL_MANAGED_BY not in labels  # the kubelet registered it, not us
        assert addresses_of(kubeapi, "k1") == [(a.type, a.address) for a in DUAL_STACK]
        assert [e["reason"] for e in kubeapi.list_events(involved_name="k1")] == ["InitializedNode"]
        assert counted(kubeapi, verb="patch", resource="nodes") == 1
        assert counted(kubeapi, verb="patch", resource="nodes/status") == 1

    def test_taint_and_untaint_keep_other_taints(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "example.com/dedicated", "value": "db", "effect": "NoSchedule"}]}})
        obs = observe(kubeapi, "n")
        taint = Action(kind=ActionKind.TAINT, node="n", reason="VMShutdown", message="VM is down",
                       uid=obs.uid, resource_version=obs.resource_version, taints=(*obs.taints, SHUTDOWN))
        assert writer.apply([taint]).applied == 1
        assert taints_of(kubeapi, "n") == [{"key": "example.com/dedicated", "value": "db", "effect": "NoSchedule"},
                                           NOT_READY_BODY, {"key": TAINT_SHUTDOWN, "effect": "NoSchedule"}]
        obs = observe(kubeapi, "n")
        untaint = Action(kind=ActionKind.UNTAINT, node="n", reason="VMRunning", message="VM runs again",
                         uid=obs.uid, resource_version=obs.resource_version,
                         taints=tuple(t for t in obs.taints if t.key != TAINT_SHUTDOWN))
        assert writer.apply([untaint]).applied == 1
        assert taints_of(kubeapi, "n") == [{"key": "example.com/dedicated", "value": "db", "effect": "NoSchedule"},
                                           NOT_READY_BODY]
        assert [e["reason"] for e in sorted(kubeapi.list_events(involved_name="n"),
                                            key=lambda e: int(e["metadata"]["resourceVersion"]))] \
            == ["VMShutdown", "VMRunning"]

    def test_taint_on_a_node_changed_since_planning_is_a_conflict(self, kubeapi: KubeApiSimulator,
                                                                  writer: NodeWriter) -> None:
        kubeapi.register_kubelet_node("n", lease=False)
        obs = observe(kubeapi, "n")
        # meanwhile the node lifecycle controller adds a taint: ours must not overwrite it
        kubeapi.patch_node("n", {"spec": {"taints": [*taints_of(kubeapi, "n"),
                                                     {"key": "node.kubernetes.io/unreachable",
                                                      "effect": "NoSchedule"}]}})
        before = taints_of(kubeapi, "n")
        result = writer.apply([Action(kind=ActionKind.TAINT, node="n", reason="VMShutdown", message="down",
                                      uid=obs.uid, resource_version=obs.resource_version,
                                      taints=(*obs.taints, SHUTDOWN))])
        assert (result.conflicts, result.applied) == (1, 0)
        assert "HTTP 409 Conflict" in result.errors[0]
        assert taints_of(kubeapi, "n") == before
        assert not kubeapi.list_events(involved_name="n")

    def test_absent_counter_annotation_and_label_removal(self, kubeapi: KubeApiSimulator, writer: NodeWriter,
                                                         metrics: Metrics) -> None:
        kubeapi.create_node({"metadata": {"name": "n", "labels": {LABEL_OVIRT_HOST: "h1", "keep": "me"},
                                          "annotations": {"other": "x"}}})

        def mark(n: str | None, kind: ActionKind = ActionKind.MARK_ABSENT) -> ApplyResult:
            obs = observe(kubeapi, "n")
            return writer.apply([Action(kind=kind, node="n", reason="VMAbsent", message=f"absent {n}",
                                        uid=obs.uid, resource_version=obs.resource_version,
                                        annotations=((ANNOTATION_ABSENT_SWEEPS, n),))])

        assert mark("1").applied == 1
        assert observe(kubeapi, "n").annotation_map == {"other": "x", ANNOTATION_ABSENT_SWEEPS: "1"}
        assert mark("2").applied == 1
        assert observe(kubeapi, "n").annotation_map[ANNOTATION_ABSENT_SWEEPS] == "2"
        assert mark(None, ActionKind.CLEAR_ABSENT).applied == 1
        assert observe(kubeapi, "n").annotation_map == {"other": "x"}
        update = Action(kind=ActionKind.UPDATE, node="n", reason="LabelsChanged", message="migrated",
                        labels=((LABEL_OVIRT_HOST, None), (LABEL_ZONE, "z2")))
        assert writer.apply([update]).applied == 1
        assert observe(kubeapi, "n").label_map == {"keep": "me", LABEL_ZONE: "z2"}
        assert not kubeapi.list_events()  # counters and label drift are logged, not evented
        assert counted(kubeapi, verb="patch", resource="nodes/status") == 0
        assert sample(metrics, "actions_total", kind="mark-absent", result="success") == 2

    def test_address_updates_are_exact(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.register_kubelet_node("n", internal_ip="10.0.0.1", lease=False)
        for addrs in (DUAL_STACK, (NodeAddress("InternalIP", "10.0.0.7"),), DUAL_STACK[:2]):
            result = writer.apply([Action(kind=ActionKind.UPDATE, node="n", reason="AddressesChanged",
                                          message="addresses", addresses=addrs)])
            assert result.applied == 1
            assert addresses_of(kubeapi, "n") == [(a.type, a.address) for a in addrs]
        assert counted(kubeapi, verb="patch", resource="nodes") == 0  # nothing but status to write

    def test_addresses_on_a_node_without_any(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.create_node({"metadata": {"name": "bare"}})
        assert writer.apply([Action(kind=ActionKind.UPDATE, node="bare", reason="AddressesChanged",
                                    message="addresses", addresses=DUAL_STACK[:2])]).applied == 1
        assert addresses_of(kubeapi, "bare") == [("InternalIP", "10.0.0.5"), ("InternalIP", "fd00::5")]

    def test_delete_with_preconditions(self, kubeapi: KubeApiSimulator, writer: NodeWriter,
                                       metrics: Metrics) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        planned = observe(kubeapi, "n")

        def delete(obs: ObservedNode) -> ApplyResult:
            return writer.apply([Action(kind=ActionKind.DELETE, node="n", reason="VMRemoved",
                                        message="VM gone for 3 sweeps", uid=obs.uid,
                                        resource_version=obs.resource_version)])

        kubeapi.patch_node("n", {"metadata": {"labels": {"changed": "after-planning"}}})
        result = delete(planned)
        assert result.conflicts == 1 and "Precondition failed" in result.errors[0]
        assert kubeapi.get_node("n") is not None
        # the same name, another object (recreated): the uid precondition refuses
        kubeapi.delete_node("n")
        kubeapi.create_node({"metadata": {"name": "n"}})
        assert delete(planned).conflicts == 1 and kubeapi.get_node("n") is not None
        current = observe(kubeapi, "n")
        assert delete(current).applied == 1
        assert kubeapi.get_node("n") is None
        assert delete(current).applied == 1  # 404: already gone is success
        events = kubeapi.list_events(involved_name="n")
        assert [(e["reason"], e["involvedObject"]["uid"]) for e in events] == [("VMRemoved", current.uid)]
        assert sample(metrics, "actions_total", kind="delete", result="success") == 2
        assert sample(metrics, "actions_total", kind="delete", result="conflict") == 2
        assert sample(metrics, "kube_requests_total", operation="delete_node", code="404") == 1

    def test_delete_without_preconditions_is_refused(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        result = writer.apply([Action(kind=ActionKind.DELETE, node="n", reason="VMRemoved", message="gone")])
        assert result.failed == 1 and "preconditions" in result.errors[0]
        assert kubeapi.get_node("n") is not None and counted(kubeapi, verb="delete") == 0

    def test_notices_write_no_node(self, kubeapi: KubeApiSimulator, writer: NodeWriter, metrics: Metrics) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        obs = observe(kubeapi, "n")
        actions = [
            Action(kind=ActionKind.BLOCK_DELETE, node="n", reason="DeletionBlockedCircuitBreaker",
                   message="5 of 6 managed nodes would go at once", uid=obs.uid),
            Action(kind=ActionKind.AMBIGUOUS, node="n", reason="AmbiguousMatch",
                   message="VMs a and b both match node n", uid=obs.uid, vm_id="a"),
            Action(kind=ActionKind.SKIP, node="Bad_Name", reason="InvalidNodeName",
                   message="VM name Bad_Name is not a valid node name", vm_id="c"),
        ]
        result = writer.apply(actions)
        assert result.applied == 3 and result.ok
        assert writes(kubeapi, "nodes") == 0
        events = {e["reason"]: e for e in kubeapi.list_events("default")}
        assert set(events) == {"DeletionBlockedCircuitBreaker", "AmbiguousMatch"}
        assert all(e["type"] == "Warning" and e["involvedObject"]["uid"] == obs.uid for e in events.values())
        assert sample(metrics, "actions_total", kind="block-delete", result="success") == 1
        # the controller counts blocked deletions, not the writer (the series exists from the start, at 0)
        assert metrics.registry.get_sample_value("ovirt_cloudprovider_deletions_blocked_total",
                                                 {"reason": "circuit-breaker", "kind": "vm"}) == 0.0
        # the same notice next sweep: no new Event write within the repeat interval
        kubeapi.reset_counts()
        assert writer.apply(actions[:1]).applied == 1
        assert writes(kubeapi) == 0

    def test_a_warning_skip_on_an_existing_node_is_a_warning_event(self, kubeapi: KubeApiSimulator,
                                                                   writer: NodeWriter) -> None:
        kubeapi.register_kubelet_node("k1", internal_ip="192.0.2.10", lease=False)
        obs = observe(kubeapi, "k1")
        skip = Action(kind=ActionKind.SKIP, node="k1", reason="ProvidedNodeIPNotFound", warning=True,
                      message="the kubelet's --node-ip 192.0.2.10 is not an address of VM k1", vm_id="a",
                      uid=obs.uid, resource_version=obs.resource_version)
        assert writer.apply([skip]).applied == 1
        assert writes(kubeapi, "nodes") == 0
        (event,) = kubeapi.list_events("default", involved_name="k1")
        assert (event["type"], event["reason"]) == ("Warning", "ProvidedNodeIPNotFound")
        assert event["involvedObject"]["uid"] == obs.uid and "192.0.2.10" in event["message"]

    def test_repeated_events_are_aggregated(self, kubeapi: KubeApiSimulator, api: k8s.ApiClient) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        obs = observe(kubeapi, "n")
        w = NodeWriter(api, event_repeat_interval=0.0)
        block = Action(kind=ActionKind.BLOCK_DELETE, node="n", reason="DeletionBlocked", message="blocked",
                       uid=obs.uid)
        w.apply([block])
        w.apply([block])
        (event,) = kubeapi.list_events(involved_name="n")
        assert event["count"] == 2
        assert counted(kubeapi, verb="create", resource="events") == 1
        assert counted(kubeapi, verb="patch", resource="events") == 1


# --- NodeWriter: faults ------------------------------------------------------------------------------------

class TestNodeWriterFaults:
    def test_injected_409_is_a_conflict_without_retry(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        obs = observe(kubeapi, "n")
        kubeapi.conflict_next(1, verb="patch", resource="nodes")
        result = writer.apply([Action(kind=ActionKind.TAINT, node="n", reason="VMShutdown", message="down",
                                      uid=obs.uid, resource_version=obs.resource_version, taints=(SHUTDOWN,))])
        assert result.conflicts == 1
        assert counted(kubeapi, verb="patch", resource="nodes") == 1
        assert taints_of(kubeapi, "n") == [NOT_READY_BODY]  # as created: the rejected patch changed nothing

    def test_429_waits_for_retry_after(self, kubeapi: KubeApiSimulator, writer: NodeWriter,
                                       metrics: Metrics) -> None:
        kubeapi.throttle_next(1, retry_after=1, verb="create", resource="nodes")
        start = time.monotonic()
        result = writer.apply([register(spec_for())])
        elapsed = time.monotonic() - start
        assert result.applied == 1 and kubeapi.get_node("vm1") is not None
        assert 0.95 <= elapsed < 3.0
        assert sample(metrics, "kube_requests_total", operation="create_node", code="429") == 1
        assert sample(metrics, "kube_requests_total", operation="create_node", code="201") == 1

    def test_transient_500_is_retried(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.create_node({"metadata": {"name": "n"}})
        kubeapi.fail_next(2, code=500, verb="patch", resource="nodes/status")
        result = writer.apply([Action(kind=ActionKind.UPDATE, node="n", reason="AddressesChanged", message="a",
                                      addresses=DUAL_STACK[:1])])
        assert result.applied == 1
        assert counted(kubeapi, verb="patch", resource="nodes/status") == 3

    def test_persistent_500_fails_the_action_once_and_others_go_on(
            self, kubeapi: KubeApiSimulator, writer: NodeWriter, metrics: Metrics,
            caplog: pytest.LogCaptureFixture) -> None:
        kubeapi.create_node({"metadata": {"name": "a"}})
        kubeapi.create_node({"metadata": {"name": "b"}})
        kubeapi.fail_next(100, code=503, verb="patch", resource="nodes", message="etcd is sad")
        label = ((LABEL_ZONE, "z"),)
        actions = [Action(kind=ActionKind.UPDATE, node="a", reason="LabelsChanged", message="l", labels=label),
                   Action(kind=ActionKind.UPDATE, node="b", reason="AddressesChanged", message="a",
                          addresses=DUAL_STACK[:1])]
        with caplog.at_level(logging.DEBUG, logger="ovirt_cloudprovider.kube.writer"):
            result = writer.apply(actions)
        kubeapi.clear_faults()
        assert (result.applied, result.failed) == (1, 1)
        assert result.errors == ("a: update: HTTP 503 ServiceUnavailable: etcd is sad",)
        assert counted(kubeapi, verb="patch", resource="nodes") == 4  # 1 + 3 retries
        assert addresses_of(kubeapi, "b") == [("InternalIP", "10.0.0.5")]
        failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(failures) == 1 and failures[0].exc_info is None
        assert failures[0].fields["node"] == "a" and failures[0].fields["status"] == 503  # type: ignore[attr-defined]
        assert sample(metrics, "actions_total", kind="update", result="error") == 1
        assert sample(metrics, "kube_requests_total", operation="patch_node", code="503") == 4

    def test_update_of_a_missing_node_is_that_nodes_conflict_without_retry(self, kubeapi: KubeApiSimulator,
                                                                           writer: NodeWriter) -> None:
        # deleted since planning: that node's conflict (re-planned next sweep), never a failed action of the sweep
        result = writer.apply([Action(kind=ActionKind.UPDATE, node="ghost", reason="LabelsChanged", message="l",
                                      labels=((LABEL_ZONE, "z"),))])
        assert (result.failed, result.conflicts) == (0, 1)
        assert result.errors[0].startswith("ghost: update: the node no longer exists (deleted since planning): "
                                           "HTTP 404 NotFound")
        assert counted(kubeapi, verb="patch") == 1

    def test_event_failure_does_not_fail_the_action(self, kubeapi: KubeApiSimulator, writer: NodeWriter) -> None:
        kubeapi.fail_next(1, code=500, verb="create", resource="events")
        assert writer.apply([register(spec_for())]).applied == 1
        assert kubeapi.get_node("vm1") is not None and not kubeapi.list_events()

    def test_stop_interrupts_retries(self, kubeapi: KubeApiSimulator, api: k8s.ApiClient) -> None:
        stop = threading.Event()
        # one worker: "a" is in flight (retrying) when stop comes, "b" not started yet
        w = NodeWriter(api, stop=stop, backoff_initial=5.0, max_retry_delay=5.0, workers=1)
        kubeapi.fail_next(100, code=500, verb="create", resource="nodes")
        threading.Timer(0.3, stop.set).start()
        start = time.monotonic()
        result = w.apply([register(spec_for("a")), register(spec_for("b"))])
        kubeapi.clear_faults()
        assert time.monotonic() - start < 1.5
        assert (result.failed, result.interrupted) == (1, 1) and "interrupted" in result.errors[0]


# --- least privilege ------------------------------------------------------------------------------------

def test_everything_works_with_the_shipped_cluster_role(kubeapi_sims: Callable[..., KubeApiSimulator],
                                                        api_client_for: Callable[..., k8s.ApiClient]) -> None:
    """The cache and every kind of write need no more than deploy/clusterrole.yaml grants."""
    from ovirt_cloudprovider.simulators.kubeapi import RbacPolicy

    deploy = REPO / "deploy"
    policy = RbacPolicy.from_yaml_files(sorted(deploy.glob("*role*.yaml")),
                                        service_account="ovirt-cloudprovider:ovirt-cloudprovider")
    sim = kubeapi_sims(token="sa-token", rbac=policy, namespaces=("ovirt-cloudprovider",))
    api = api_client_for(sim)
    sim.register_kubelet_node("k1", internal_ip="10.0.0.9", lease=False)
    cache = NodeCache(api, page_size=1)
    cache.start()
    try:
        assert cache.wait_synced(5)
        writer = NodeWriter(api, event_repeat_interval=0.0)
        assert writer.apply([register(spec_for())]).ok
        assert wait_for(lambda: cache.get("vm1") is not None)
        k1 = cache.get("k1")
        assert k1 is not None
        init = Action(kind=ActionKind.INITIALIZE, node="k1", reason="InitializedNode", message="init",
                      uid=k1.uid, resource_version=k1.resource_version, taints=(), provider_id="ovirt://k1",
                      labels=((LABEL_ZONE, "z"),), addresses=DUAL_STACK[:2])
        block = Action(kind=ActionKind.BLOCK_DELETE, node="k1", reason="DeletionBlocked", message="b", uid=k1.uid)
        assert writer.apply([init, block, block]).ok
        vm1 = observe(sim, "vm1")
        assert writer.apply([Action(kind=ActionKind.DELETE, node="vm1", reason="VMRemoved", message="gone",
                                    uid=vm1.uid, resource_version=vm1.resource_version)]).ok
        assert counted(sim, verb="patch", resource="events") == 1
    finally:
        cache.stop()
    assert sim.forbidden == []


def _node_json(name: str, *, zone: str = "z1", time_added: str = "2026-01-02T03:04:05Z") -> dict[str, Any]:
    vm_id = f"6206c743-15b7-4df5-a667-{name[-1]:0>12}"
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "7",
                     "labels": {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": zone,
                                "kubernetes.io/hostname": name},
                     "annotations": {ANNOTATION_VM_ID: vm_id, "note": "x"}},
        "spec": {"providerID": f"ovirt://{vm_id}", "taints": [
            {"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": time_added}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                 {"type": "Hostname", "address": name}],
                   "nodeInfo": {"systemUUID": vm_id}},
    }


def _every_field(n: ObservedNode) -> tuple[Any, ...]:
    """Every field the planner can read, time_added included (a Taint's equality leaves it out)."""
    return (n.name, n.uid, n.resource_version, n.provider_id, n.system_uuid, n.labels, n.annotations,
            tuple((t.key, t.effect, t.value, t.time_added) for t in n.taints), n.addresses, n.hostname,
            n.label_map, n.annotation_map, n.provided_node_ip, n.registered_by_us, n.waits_for_cloud_provider)


def test_shared_parts_change_no_value_of_the_compact_record() -> None:
    shared = Shared()
    a = observed_node(_node_json("n1"), shared)
    b = observed_node(_node_json("n2", time_added="2026-01-02T03:04:06Z"), shared)
    c = observed_node(_node_json("n3", zone="z2"), shared)
    for node, name in ((a, "n1"), (b, "n2"), (c, "n3")):
        assert _every_field(node) == _every_field(observed_node(_node_json(name, zone=node.label_map[
            "topology.kubernetes.io/zone"], time_added=node.taints[1].time_added or "")))
    assert a.labels == (("kubernetes.io/hostname", "n1"), ("kubernetes.io/os", "linux"),
                        ("topology.kubernetes.io/zone", "z1"))
    assert a.taints[1].time_added == "2026-01-02T03:04:05Z" and b.taints[1].time_added == "2026-01-02T03:04:06Z"
    assert a.hostname == "n1" and a.waits_for_cloud_provider and a.system_uuid == a.annotation_map[ANNOTATION_VM_ID]
    # equal pairs and taints are one object across nodes; unequal ones are not merged
    assert a.labels[1] is b.labels[1] is c.labels[1]
    assert a.labels[2] is b.labels[2] and c.labels[2] == ("topology.kubernetes.io/zone", "z2")
    assert a.taints[0] is b.taints[0] and a.taints[1] is not b.taints[1]
    # annotation pairs too (the owner annotations repeat on every node), but not the node's own VM id
    assert a.annotations[0] == ("note", "x") and a.annotations[0] is b.annotations[0]
    assert a.annotation_map[ANNOTATION_VM_ID] != b.annotation_map[ANNOTATION_VM_ID]
    # within a node, equal strings are one string (name, hostname label and Hostname address)
    assert a.labels[0][1] is a.name and a.hostname is a.name
    assert a.system_uuid is a.annotation_map[ANNOTATION_VM_ID]


def test_shared_table_is_bounded() -> None:
    shared = Shared(limit=4)
    nodes = [observed_node(_node_json(f"n{i}", zone=f"z{i}"), shared) for i in range(10)]
    assert len(shared) <= 4
    assert [n.label_map["topology.kubernetes.io/zone"] for n in nodes] == [f"z{i}" for i in range(10)]
