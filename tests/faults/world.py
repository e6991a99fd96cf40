"""The fault suite's world: both simulators with a realistic cluster (kubelet nodes, our placeholders, a foreign
node), the real clients, one sweep at a time, and the evidence checks every scenario ends with.

The circuit breaker is opened wide here (``max_delete_fraction = 1``, no cap) and a node is deleted on its second
absent sweep: the only thing that stands between a fault and a wrong deletion is then the evidence rules
(confirmation by id, vanished cluster, empty discovery), which is what the suite is about.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client as k8s
from prometheus_client import generate_latest

from ovirt_cloudprovider.controller import SweepReport, run_sweep
from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, RUNNING_STATUSES
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator, RbacPolicy
from tests.deploy.test_rbac import ADMIN, NAMESPACE, SERVICE_ACCOUNT, TOKEN, rbac_docs
from tests.faults.conftest import FIGURES, SECRET, LogTap, sightings

FOREIGN = "aws-node-1"


def rbac_kube() -> KubeApiSimulator:
    """The API simulator with the deploy/ RBAC enforced for our service account (the seeding uses admin)."""
    return KubeApiSimulator(token=TOKEN, admin_token=ADMIN, namespaces=[NAMESPACE],
                            rbac=RbacPolicy(rbac_docs(), service_account=SERVICE_ACCOUNT))


def make_engine(password: str = SECRET, *, vms: int = 9) -> EngineSimulator:
    return EngineSimulator(generate_fleet(vms, seed=3, untagged=2, quirks=False, control_plane=min(3, vms - 2)),
                           password=password)


def seed_cluster(engine: EngineSimulator, kube: KubeApiSimulator) -> None:
    """Two running VMs get kubelet-registered nodes (the rest become our placeholders), plus a foreign node."""
    up = [vm for vm in engine.fleet.vms.values() if vm.status in RUNNING_STATUSES and vm.name.startswith("k8s-")]
    for vm in up[:2]:
        if kube.get_node(vm.name) is None:
            kube.register_kubelet_node(vm.name, system_uuid=vm.id)
    if kube.get_node(FOREIGN) is None:
        kube.register_kubelet_node(FOREIGN, provider_id="aws:///us-east-1a/i-0abc", external_cloud_provider=False)


def node_state(kube: KubeApiSimulator, *, strict: bool) -> dict[str, str]:
    """name → what of the node we may never change wrongly (uid, spec, labels, annotations, addresses);
    without ``strict`` the absence counter (our bookkeeping during an outage) is left out."""
    out = {}
    for n in kube.list_nodes():
        meta = n["metadata"]
        ann = dict(meta.get("annotations") or {})
        if not strict:
            ann.pop(ANNOTATION_ABSENT_SWEEPS, None)
        status = n.get("status") or {}
        out[meta["name"]] = json.dumps({
            "uid": meta["uid"], "labels": meta.get("labels") or {}, "annotations": ann,
            "spec": n.get("spec") or {}, "addresses": status.get("addresses") or [],
        }, sort_keys=True)
    return out


@dataclass
class Outcome:
    nodes_lost: int
    wrong_writes: int
    tracebacks: int
    secret_sightings: int
    detail: str


class FaultWorld:
    """Both simulators, our clients, sweep() as ``sync --once`` runs it, and the checks."""

    def __init__(self, engine: EngineSimulator, kube: KubeApiSimulator, tap: LogTap, *,
                 password: str = SECRET, timeout: float = 3.0, **controller: Any) -> None:
        self.engine, self.kube, self.tap = engine, kube, tap
        settings = {"page_size": 4, "delete_after_sweeps": 2, "max_delete_fraction": 1.0, "max_delete_count": 0,
                    **controller}
        self.config = Config(
            path="<faults>",
            connection=ConnectionConfig(uri=engine.url, username=engine.username, password=password,
                                        ca_file=engine.ca_file, timeout=timeout),
            filters=FiltersConfig(vms="tag=kubernetes"), nodes=NodesConfig(register=True),
            controller=replace(ControllerConfig(), **settings))
        cfg = k8s.Configuration()
        cfg.host = kube.url
        self.api = k8s.ApiClient(cfg)
        self.client = EngineClient(self.config.connection, page_size=self.config.controller.page_size)
        self.metrics = Metrics()
        self.writer = NodeWriter(self.api, metrics=self.metrics, backoff_initial=0.02, event_repeat_interval=0)
        self.errors: list[str] = []
        self.before: dict[str, str] = {}

    def sweep(self) -> SweepReport:
        cache = NodeCache(self.api)
        cache.start()
        try:
            assert cache.wait_synced(10)
            report = run_sweep(config=self.config, engine=self.client, nodes=cache.nodes(), writer=self.writer,
                               metrics=self.metrics)
        finally:
            cache.stop()
        if report.error:
            self.errors.append(report.error)
        return report

    def converge(self, max_sweeps: int = 5) -> None:
        for _ in range(max_sweeps):
            self.kube.reset_counts()
            report = self.sweep()
            if report.ok and self.kube.writes("nodes") + self.kube.writes("nodes/status") == 0:
                return
        raise AssertionError(f"no steady state: {self.errors[-3:]}")

    def baseline(self) -> None:
        seed_cluster(self.engine, self.kube)
        self.converge()
        self.before = node_state(self.kube, strict=True)

    def check_during(self) -> tuple[int, int]:
        """Nodes lost and nodes changed (other than the absence counter) since the baseline."""
        now = node_state(self.kube, strict=False)
        loose = {k: _loosen(v) for k, v in self.before.items()}
        lost = sum(1 for name in loose if name not in now)
        wrong = sum(1 for name, v in now.items() if name in loose and v != loose[name]) + \
            sum(1 for name in now if name not in loose)
        return lost, wrong

    def texts(self) -> list[str]:
        events = [f"{e.get('reason')} {e.get('message')}" for e in self.kube.list_events()]
        metrics = generate_latest(self.metrics.registry).decode().splitlines()
        return [*self.tap.take(), *events, *metrics, *self.errors]

    def finish(self, family: str, *, lost: int = 0, wrong: int = 0, converge: bool = True,
               password: str = SECRET) -> Outcome:
        """Converge, compare with the baseline exactly, look for the secret everywhere, record the figures."""
        detail = []
        if converge:
            self.converge()
            after = node_state(self.kube, strict=True)
            lost += sum(1 for name in self.before if name not in after)
            changed = [name for name, v in after.items() if self.before.get(name) != v]
            wrong += len(changed)
            if changed:
                detail.append(f"changed after convergence: {changed}")
        texts = self.texts()
        seen = sightings(texts, password)
        tracebacks = self.tap.tracebacks + sum(1 for t in texts if "Traceback (most recent call last)" in t)
        if seen:
            detail.append(f"secret seen: {seen[:3]}")
        if tracebacks:
            detail.append(f"tracebacks: {self.tap.traceback_lines[:2]}")
        out = Outcome(lost, wrong, tracebacks, len(seen), "; ".join(detail))
        FIGURES.record(family, nodes_lost=lost, wrong_writes=wrong, tracebacks=tracebacks,
                       secret_sightings=len(seen))
        return out

    def close(self) -> None:
        self.client.close()
        self.api.close()  # type: ignore[no-untyped-call]


def _loosen(state: str) -> str:
    d = json.loads(state)
    d["annotations"].pop(ANNOTATION_ABSENT_SWEEPS, None)
    return json.dumps(d, sort_keys=True)


def assert_clean(out: Outcome) -> None:
    assert (out.nodes_lost, out.wrong_writes, out.tracebacks, out.secret_sightings) == (0, 0, 0, 0), out.detail


def during(world: FaultWorld, sweeps: int, *, each: Callable[[SweepReport], None] | None = None) -> tuple[int, int]:
    """Run ``sweeps`` sweeps under the fault; the worst nodes lost / wrong writes seen after any of them."""
    lost = wrong = 0
    for _ in range(sweeps):
        report = world.sweep()
        if each:
            each(report)
        a, b = world.check_during()
        lost, wrong = max(lost, a), max(wrong, b)
    return lost, wrong
