"""A hostile review of the join path: a joining node whose initializing patch meets a conflict (409: the kubelet
changed the node since planning, e.g. its status' image list, which changes nothing the controller watches, so
the node watch says nothing) must not wait for the periodic full sweep. In-process controller, real HTTP to both
simulators through the real clients."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.controller import Controller
from ovirt_cloudprovider.core.records import TAINT_UNINITIALIZED, ObservedNode
from ovirt_cloudprovider.core.settings import NodesConfig
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, running
from tests.helpers import wait_for


@pytest.fixture
def loop(engine: EngineSimulator, kube: KubeApiSimulator) -> Iterator[tuple[World, Controller]]:
    """A controller loop (register = false: nodes come from kubelets; the periodic sweep a minute away) whose
    node cache calls it back, after its first full sweep."""
    with World(engine, kube, nodes=NodesConfig(register=False), sync_interval=60, event_poll_interval=0) as world:
        controllers: list[Controller] = []

        def on_event(typ: str, node: ObservedNode) -> None:
            if controllers:
                controllers[0].on_node_event(typ, node)

        cache = NodeCache(world.api, on_event=on_event)
        ctl = Controller(config=world.config, engine=world.client, cache=cache, writer=world.writer,
                         metrics=world.metrics, health=HealthState(), debounce=0.05)
        controllers.append(ctl)
        cache.start()
        stop = threading.Event()
        thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: world.metrics.syncs_total.labels("success")._value.get() >= 1, 10, "the first sweep")
            yield world, ctl
        finally:
            stop.set()
            thread.join(5)
            cache.stop()


def initialized(world: World, name: str, vm_id: str) -> bool:
    node = world.kube.get_node(name) or {}
    return (node.get("spec", {}).get("providerID") == f"ovirt://{vm_id}"
            and TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints") or []})


def test_a_join_whose_initialization_conflicts_is_planned_again_without_waiting_for_the_periodic_sweep(
        loop: tuple[World, Controller], caplog: pytest.LogCaptureFixture) -> None:
    world, _ = loop
    kube = world.kube
    vm = next(v for v in running(world.engine) if any("." in ip for d in v.devices for ip in d.ips))
    kube.set_latency(3.0, verb="patch", resource="nodes")  # the initializing patch is planned, then takes 3 s
    with caplog.at_level(logging.INFO, logger="ovirt_cloudprovider"):
        kube.register_kubelet_node(vm.name, system_uuid=vm.id.upper())
        wait_for(lambda: "targeted sweep triggered" in caplog.text, 10, "the targeted sweep of the join")
        time.sleep(1.0)  # planned, its patch in flight: the kubelet reports the images it pulled meanwhile
        kube.patch_node(vm.name, {"status": {"images": [{"names": ["registry.test/cni:1"], "sizeBytes": 1}]}},
                        status=True, patch_type="merge")
        kube.set_latency(0.0, verb="patch", resource="nodes")
        wait_for(lambda: world.metrics.targeted_syncs_total.labels("success")._value.get() >= 1, 10,
                 "the targeted sweep's end")
    assert "node action conflict" in caplog.text  # the patch carried the resourceVersion it was planned against
    # the periodic sweep is a minute away and the node watch reported nothing (an image list is nothing we watch):
    # the conflicted node is planned again well before it
    wait_for(lambda: initialized(world, vm.name, vm.id), 10, "the node initialized after its conflict")
    assert world.metrics.syncs_total.labels("success")._value.get() == 1  # by a targeted sweep, not a full one
