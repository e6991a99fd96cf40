"""The RBAC in deploy/ is exactly what the controller needs.

The controller runs a full lifecycle (register, initialize, taint, untaint, repeated event, delete,
lease) against the Kubernetes API simulator with RBAC enforced from deploy/clusterrole.yaml,
deploy/role.yaml and their bindings, authenticated as the Deployment's ServiceAccount:
- it gets no 403 at all;
- every permission the roles grant was used (no unneeded verb), and nothing it used was ungranted;
- with one rule removed, the same run is refused (and the node is not written).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovirt_cloudprovider.app import run_controller
from ovirt_cloudprovider.core.records import TAINT_SHUTDOWN, TAINT_UNINITIALIZED
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator, RbacPolicy
from tests.helpers import REPO, wait_for

NAMESPACE = "ovirt-cloudprovider"
SERVICE_ACCOUNT = f"{NAMESPACE}:ovirt-cloudprovider"
SA_USER = f"system:serviceaccount:{NAMESPACE}:ovirt-cloudprovider"
TOKEN, ADMIN = "sa-token-ovirt-cloudprovider", "admin-token"
RBAC_FILES = [REPO / "deploy" / f for f in ("clusterrole.yaml", "role.yaml", "clusterrolebinding.yaml",
                                            "rolebinding.yaml")]
GROUP_OF = {"leases": "coordination.k8s.io"}


def rbac_docs() -> list[dict[str, Any]]:
    return [d for f in RBAC_FILES for d in yaml.safe_load_all(f.read_text()) if d]


def granted(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples the roles grant."""
    out = set()
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d.get("rules") or []:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        for v in rule["verbs"]:
                            out.add((g, r, v))
    return out


def taints(kube: KubeApiSimulator, name: str) -> set[str]:
    return {t["key"] for t in ((kube.get_node(name) or {}).get("spec") or {}).get("taints") or []}


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with EngineSimulator(generate_fleet(6, seed=5, control_plane=1, quirks=False)) as sim:
        for vm in list(sim.fleet.vms.values()):  # all up: a predictable lifecycle
            if vm.status != "up":
                sim.fleet.set_status(vm.id, "up")
        yield sim


class Run:
    """The controller in a thread, as the Deployment runs it (leader election in its own namespace)."""

    def __init__(self, engine: EngineSimulator, kube: KubeApiSimulator, tmp: Path) -> None:
        self.kube = kube
        self.stop = threading.Event()
        config = Config(
            path="<test>",
            connection=ConnectionConfig(uri=engine.url, username=engine.username, password=engine.password,
                                        ca_file=engine.ca_file, timeout=10),
            filters=FiltersConfig(vms="tag=kubernetes"), nodes=NodesConfig(register=True),
            controller=replace(ControllerConfig(), sync_interval=1.0, event_poll_interval=0.3,
                               delete_after_sweeps=1, leader_elect=True, leader_elect_namespace=NAMESPACE,
                               metrics_bind_address="127.0.0.1:0", lease_duration=3, renew_deadline=2,
                               retry_period=0.3))
        kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig", token=TOKEN)
        self.thread = threading.Thread(target=run_controller, kwargs={
            "config": config, "kubeconfig": kubeconfig, "stop": self.stop, "identity": "rbac-test",
            "event_repeat_interval": 0.0}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def start(engine: EngineSimulator, docs: list[dict[str, Any]], tmp: Path) -> tuple[KubeApiSimulator, Run]:
    """The simulator with ``docs`` enforced, one VM's kubelet node registered (to initialize: a nodes/status
    patch; a registration is one create), and the controller running against it."""
    kube = KubeApiSimulator(token=TOKEN, admin_token=ADMIN, namespaces=[NAMESPACE],
                            rbac=RbacPolicy(docs, service_account=SERVICE_ACCOUNT)).start()
    kubelet_vm = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-cp"))
    kube.register_kubelet_node(kubelet_vm.name, internal_ip="10.10.0.2", system_uuid=kubelet_vm.id.upper())
    return kube, Run(engine, kube, tmp)


def test_full_lifecycle_uses_exactly_the_granted_permissions(engine: EngineSimulator, tmp_path: Path) -> None:
    docs = rbac_docs()
    worker = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-worker"))
    kubelet_vm = next(vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-cp"))
    gone = [vm for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-worker")][-1]
    kube = KubeApiSimulator(token=TOKEN, admin_token=ADMIN, namespaces=[NAMESPACE],
                            rbac=RbacPolicy(docs, service_account=SERVICE_ACCOUNT)).start()
    try:
        kube.register_kubelet_node(kubelet_vm.name, internal_ip="10.10.0.2", system_uuid=kubelet_vm.id.upper())
        run = Run(engine, kube, tmp_path)
        try:
            # register + initialize
            wait_for(lambda: len(kube.list_nodes()) == 6, 20, "six nodes")
            wait_for(lambda: TAINT_UNINITIALIZED not in taints(kube, kubelet_vm.name), 10, "initialization")
            # taint, untaint, taint again: the repeated Event is patched (count 2)
            for status, present in (("down", True), ("up", False), ("down", True)):
                engine.set_status(worker.id, status)
                def tainted_as_wanted(p: bool = present) -> bool:
                    return (TAINT_SHUTDOWN in taints(kube, worker.name)) == p

                wait_for(tainted_as_wanted, 10, f"taint {status}")
            wait_for(lambda: any(e.get("count", 1) > 1 for e in kube.list_events()), 10, "a repeated event")
            # delete
            engine.remove_vm(gone.id)
            wait_for(lambda: kube.get_node(gone.name) is None, 15, "the deletion")
            lease = kube.get_lease(NAMESPACE, "ovirt-cloudprovider")
            assert lease and lease["spec"]["holderIdentity"] == "rbac-test"
        finally:
            run.close()
        # released on shutdown
        lease = kube.get_lease(NAMESPACE, "ovirt-cloudprovider")
        assert lease is not None and not lease["spec"].get("holderIdentity")
        assert kube.forbidden == [], [d.message for d in kube.forbidden]
        used = {(GROUP_OF.get(r.resource or "", ""), r.resource or "", r.verb) for r in kube.requests
                if r.user == SA_USER and r.resource}
        reasons = {e.get("reason") for e in kube.list_events()}
        assert {"RegisteredNode", "InitializedNode", "ShutdownTaintAdded", "ShutdownTaintRemoved",
                "DeletedNode"} <= reasons
        assert used == granted(docs), (
            f"granted but unused: {sorted(granted(docs) - used)}; used but not granted: {sorted(used - granted(docs))}")
    finally:
        kube.stop()


@pytest.mark.parametrize(("resource", "verb"), [("nodes/status", "patch"), ("nodes", "create")])
def test_removing_a_rule_breaks_the_lifecycle(engine: EngineSimulator, tmp_path: Path, resource: str,
                                              verb: str) -> None:
    docs = rbac_docs()
    for d in docs:
        for rule in d.get("rules") or []:
            if resource in rule["resources"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    kube, run = start(engine, docs, tmp_path)
    try:
        denial = wait_for(lambda: next((d for d in kube.forbidden if d.verb == verb), None), 20,
                          f"a 403 for {verb} {resource}")
        assert denial.user == SA_USER
        assert f'cannot {verb} resource "{resource}"' in denial.message
    finally:
        run.close()
        kube.stop()
