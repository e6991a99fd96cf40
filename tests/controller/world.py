"""The controller's sync world, a fixture plugin (registered in ``tests/conftest.py``): both loopback simulators,
our real clients, and one complete sweep at a time, exactly what ``sync --once`` and the controller loop run.

- :class:`World`: the config, clients, writer and metrics of one controller against both simulators; with
  ``hosts=`` the oVirt host search whose hosts become nodes too, ``vms=`` another VM search than ``tag=kubernetes``,
  and any ``[controller]`` key as a keyword (``instance=``: several Worlds on one cluster are several instances).
- :func:`poisoned_sweep`: a sweep in which one VM's record raises when its NICs are read (a datum no rule foresaw).
- fixtures ``engine`` (12 VMs, 3 of them untagged, seed 21) and ``kube`` (an empty cluster); a test module
  that needs another fleet defines its own ``engine``, which takes precedence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any

import pytest
from kubernetes import client as k8s

from ovirt_cloudprovider.controller import SweepReport, run_sweep
from ovirt_cloudprovider.core.records import RUNNING_STATUSES, GuestNic, ObservedNode, Snapshot
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.kube_types import close

VMS = "tag=kubernetes"
PLACEHOLDERS = NodesConfig(register=True)  # placeholders are opt-in; most sync tests exercise them


class _Unset:
    """``World(hosts=...)`` not given: neither the config nor the client is handed a hosts argument at all."""


UNSET = _Unset()


class World:
    """Both simulators, our clients, and a sweep() that runs one complete sweep like ``sync --once``."""

    def __init__(self, engine: EngineSimulator, kube: KubeApiSimulator, *, hosts: str | _Unset | None = UNSET,
                 vms: str = VMS, nodes: NodesConfig = PLACEHOLDERS, **controller: Any) -> None:
        self.engine, self.kube = engine, kube
        filters = FiltersConfig(vms=vms) if isinstance(hosts, _Unset) else FiltersConfig(vms=vms, hosts=hosts)
        self.config = Config(
            path="<test>",
            connection=ConnectionConfig(uri=engine.url, username=engine.username, password=engine.password,
                                        ca_file=engine.ca_file, timeout=10),
            filters=filters,
            nodes=nodes,
            controller=replace(ControllerConfig(), page_size=5, **controller))
        cfg = k8s.Configuration()
        cfg.host = kube.url
        self.api = k8s.ApiClient(cfg)
        self.client = (EngineClient(self.config.connection, page_size=5) if isinstance(hosts, _Unset)
                       else EngineClient(self.config.connection, page_size=5, hosts=hosts))
        self.metrics = Metrics()
        self.writer = NodeWriter(self.api, metrics=self.metrics, backoff_initial=0.05, event_repeat_interval=0)

    @contextmanager
    def synced_nodes(self) -> Iterator[tuple[ObservedNode, ...]]:
        """The nodes of a freshly synced informer cache, which runs until the block ends."""
        cache = NodeCache(self.api)
        cache.start()
        try:
            assert cache.wait_synced(10)
            yield cache.nodes()
        finally:
            cache.stop()

    def sweep(self) -> SweepReport:
        with self.synced_nodes() as nodes:
            return run_sweep(config=self.config, engine=self.client, nodes=nodes, writer=self.writer,
                             metrics=self.metrics)

    def converge(self, max_sweeps: int = 4) -> None:
        for _ in range(max_sweeps):
            self.kube.reset_counts()
            report = self.sweep()
            assert report.ok, report.error
            if self.kube.writes("nodes") + self.kube.writes("nodes/status") == 0:
                return
        raise AssertionError("no steady state")

    def node_of(self, vm_id: str) -> dict[str, Any] | None:
        return next((n for n in self.kube.list_nodes() if n["spec"].get("providerID") == f"ovirt://{vm_id}"), None)

    def node_versions(self) -> dict[str, str]:
        """Each node's resourceVersion, by name: equal before and after when nothing was written to any node."""
        return {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in self.kube.list_nodes()}

    def failed_sweeps(self, sweeps: int) -> None:
        """Run ``sweeps`` sweeps, each of which must fail before planning (no plan at all)."""
        for _ in range(sweeps):
            report = self.sweep()
            assert not report.ok and report.plan is None

    def host_nodes(self) -> dict[str, dict[str, Any]]:
        return {n["metadata"]["name"]: n for n in self.kube.list_nodes()
                if (n["spec"].get("providerID") or "").startswith("ovirt://host/")}

    def close(self) -> None:
        self.client.close()
        close(self.api)

    def __enter__(self) -> World:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Exploding(tuple[GuestNic, ...]):
    """A NIC list that raises when read: a record no rule foresaw."""

    def __iter__(self) -> Iterator[GuestNic]:
        raise RuntimeError("an unforeseen datum")


class PoisonedEngine:
    """The real engine client, except that one VM's record raises when its NICs are read."""

    def __init__(self, client: Any, vm_id: str) -> None:
        self.client, self.vm_id = client, vm_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def discover(self, query: str) -> Snapshot:
        snapshot: Snapshot = self.client.discover(query)
        return replace(snapshot, vms=tuple(replace(vm, nics=_Exploding()) if vm.id == self.vm_id else vm
                                           for vm in snapshot.vms))


def poisoned_sweep(world: World, vm_id: str) -> SweepReport:
    with world.synced_nodes() as nodes:
        return run_sweep(config=world.config, engine=PoisonedEngine(world.client, vm_id), nodes=nodes,
                         writer=world.writer, metrics=world.metrics)


def running(engine: EngineSimulator, *, tagged: bool = True) -> list[Any]:
    return [vm for vm in engine.fleet.vms.values()
            if vm.status in RUNNING_STATUSES and vm.name.startswith("k8s-") == tagged]


def taint_keys(node: dict[str, Any] | None) -> set[str]:
    return {t["key"] for t in ((node or {}).get("spec") or {}).get("taints") or []}


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with EngineSimulator(generate_fleet(12, seed=21, untagged=3)) as sim:
        yield sim


@pytest.fixture
def kube() -> Iterator[KubeApiSimulator]:
    with KubeApiSimulator() as sim:
        yield sim
