"""A wrong password does not hammer the engine: the controller loop and its event poller share one auth-backoff
gate, so a replica makes at most 10 failed logins in 10 minutes; a standby replica makes no engine call at all.

The 10-minute figure is measured here on a scaled clock: every duration (backoff base 5 s, backoff_max 300 s,
event poll 3 s, sync interval 60 s, window 600 s) divided by 60, with the real controller, engine client, SDK
and the loopback engine simulator counting the SSO requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ovirt_cloudprovider.controller import Controller
from ovirt_cloudprovider.core.records import Action, ObservedNode
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import SSO_TOKEN_PATH, EngineSimulator
from tests.helpers import wait_for

SCALE = 60.0


class Cache:
    synced = True

    def nodes(self) -> tuple[ObservedNode, ...]:
        return ()


class Writer:
    def __init__(self) -> None:
        self.actions: list[Action] = []

    def apply(self, actions: Sequence[Action]) -> Any:
        self.actions.extend(actions)
        return type("Result", (), {"applied": len(actions), "failed": 0, "conflicts": 0})()


class Leader:
    def __init__(self, leading: bool) -> None:
        self.is_leader = leading


class Running:
    def __init__(self, sim: EngineSimulator, *, password: str, leader: Leader | None = None) -> None:
        ctl = replace(ControllerConfig(), sync_interval=60 / SCALE, event_poll_interval=3 / SCALE,
                      backoff_max=300 / SCALE)
        conn = ConnectionConfig(uri=sim.url, username=sim.username, password=password, ca_file=sim.ca_file,
                                timeout=5)
        self.config = Config(path="<test>", connection=conn, filters=FiltersConfig(vms="tag=kubernetes"),
                             controller=ctl)
        self.writer = Writer()
        self.engine = EngineClient(conn, auth_backoff_base=5 / SCALE, auth_backoff_max=ctl.backoff_max)
        self.controller = Controller(config=self.config, engine=self.engine, cache=Cache(), writer=self.writer,
                                     metrics=Metrics(), health=HealthState(), leader=leader,
                                     backoff_base=5 / SCALE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.engine.close()


@pytest.fixture
def running() -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for r in made:
        r.close()


def test_wrong_password_makes_at_most_10_failed_logins_in_10_scaled_minutes(engine_sim: EngineSimulator,
                                                                            running: list[Running]) -> None:
    r = Running(engine_sim, password="Wr0ng-pass")
    running.append(r)
    time.sleep(600 / SCALE)
    logins = engine_sim.request_count(SSO_TOKEN_PATH)
    assert r.thread.is_alive()
    # the schedule gives 7 (0, 5, 15, 35, 75, 155, 315 s); scheduling slack may add one
    print(f"failed logins in 600/{SCALE:g} s: {logins}")
    assert 6 <= logins <= 8, logins
    assert engine_sim.request_count() == logins  # nothing but logins was attempted
    assert r.writer.actions == []


def test_standby_makes_no_engine_call_and_starts_polling_on_leadership(engine_sim: EngineSimulator,
                                                                       running: list[Running]) -> None:
    leader = Leader(False)
    r = Running(engine_sim, password=engine_sim.password, leader=leader)
    running.append(r)
    time.sleep(1.5)
    assert engine_sim.request_count() == 0
    leader.is_leader = True
    r.controller.on_started_leading()
    wait_for(lambda: engine_sim.request_count("/events") >= 2, 5, "event polls by the new leader")
    assert engine_sim.request_count("/vms") >= 1
