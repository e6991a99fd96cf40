"""Under ``Controller.run``, bad engine data fails the sweep (no write) and the loop survives and recovers."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from ovirt_cloudprovider.controller import Controller
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.controller.ports import Cache, Writer
from tests.helpers import wait_for


def test_vm_without_id_fails_the_sweep_and_the_loop_recovers(engine_sim: EngineSimulator) -> None:
    engine_sim.serve_static("/vms", b"<vms><vm><name>x</name></vm></vms>")
    conn = ConnectionConfig(uri=engine_sim.url, username=engine_sim.username, password=engine_sim.password,
                            ca_file=engine_sim.ca_file, timeout=5)
    # placeholders (opt-in) for the empty cache: the sweep after the fix writes
    config = Config(path="<t>", connection=conn, filters=FiltersConfig(vms="tag=kubernetes"),
                    nodes=NodesConfig(register=True),
                    controller=replace(ControllerConfig(), sync_interval=0.5, event_poll_interval=0.2,
                                       backoff_max=0.4))
    engine, writer, metrics = EngineClient(conn), Writer(), Metrics()
    ctl = Controller(config=config, engine=engine, cache=Cache(), writer=writer, metrics=metrics,
                     health=HealthState(), backoff_base=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: metrics.syncs_total.labels("failure")._value.get() >= 2, 10, "failed sweeps")
        assert thread.is_alive() and writer.actions == []
        engine_sim.clear_static()
        wait_for(lambda: metrics.syncs_total.labels("success")._value.get() >= 1, 10, "a sweep after the fix")
        assert thread.is_alive() and writer.actions
    finally:
        stop.set()
        thread.join(5)
        engine.close()


class ExplodingOnce:
    """The real engine client, except that its first discovery raises what no engine error is (a bug)."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client
        self.exploded = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def discover(self, query: str) -> Any:
        if not self.exploded:
            self.exploded = True
            raise RuntimeError("an unexpected bug")
        return self.client.discover(query)


def test_an_unexpected_error_in_a_sweep_is_a_failed_sweep_not_a_dead_loop(engine_sim: EngineSimulator) -> None:
    conn = ConnectionConfig(uri=engine_sim.url, username=engine_sim.username, password=engine_sim.password,
                            ca_file=engine_sim.ca_file, timeout=5)
    config = Config(path="<t>", connection=conn, filters=FiltersConfig(vms="tag=kubernetes"),
                    controller=replace(ControllerConfig(), sync_interval=0.5, event_poll_interval=0,
                                       backoff_max=0.4))
    client, writer, metrics = EngineClient(conn), Writer(), Metrics()
    ctl = Controller(config=config, engine=ExplodingOnce(client), cache=Cache(), writer=writer, metrics=metrics,
                     health=HealthState(), backoff_base=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: metrics.syncs_total.labels("success")._value.get() >= 1, 10, "a sweep after the error",
                 lambda: f"alive={thread.is_alive()}")
        assert thread.is_alive()
        assert metrics.syncs_total.labels("failure")._value.get() == 1
    finally:
        stop.set()
        thread.join(5)
        client.close()
