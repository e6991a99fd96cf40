"""A wrong password does not hammer the engine: the controller loop and its event poller share one auth-backoff
gate, so a replica makes at most 10 failed logins in 10 minutes; a standby replica makes no engine call at all.
A standby with a pending trigger does not spin. An engine outage does not flood the log either: the event
poller backs off as the sweeps do, with one line per backoff step and one when the engine is back.

The 10-minute figure is measured here on a scaled clock: every duration (backoff base 5 s, backoff_max 300 s,
event poll 3 s, sync interval 60 s, window 600 s) divided by 60, with the real controller, engine client, SDK
and the loopback engine simulator counting the SSO requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from ovirt_cloudprovider.controller import Controller
from ovirt_cloudprovider.core.records import ObservedNode
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.health import HealthState
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import SSO_TOKEN_PATH, EngineSimulator
from tests.controller.ports import Cache, Writer
from tests.helpers import wait_for

SCALE = 60.0


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


class CountingCache:
    """An always-synced, empty node cache that counts how often the loop looks at it (once per loop turn)."""

    def __init__(self) -> None:
        self.looks = 0

    @property
    def synced(self) -> bool:
        self.looks += 1
        return True

    def nodes(self) -> tuple[ObservedNode, ...]:
        return ()


def test_a_standby_with_a_pending_trigger_does_not_spin(engine_sim: EngineSimulator,
                                                        running: list[Running]) -> None:
    r = Running(engine_sim, password=engine_sim.password, leader=Leader(False))
    running.append(r)
    cache = r.controller.cache = CountingCache()
    r.controller.trigger("node n waits for initialization")  # the node watch triggers on a standby too
    time.sleep(1.0)
    # a standby looks at the schedule every 2 s at most (or its sync interval, here 1 s); it used to spin at 50 ms
    assert cache.looks <= 3, cache.looks
    assert engine_sim.request_count() == 0


def _lines(caplog: pytest.LogCaptureFixture, message: str) -> int:
    return sum(1 for rec in caplog.records if rec.getMessage() == message)


def test_engine_outage_logs_one_event_poll_failure_per_backoff_step(engine_sim: EngineSimulator,
                                                                   running: list[Running],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ovirt_cloudprovider.controller")
    r = Running(engine_sim, password=engine_sim.password)
    running.append(r)
    wait_for(lambda: engine_sim.request_count("/events") >= 2, 5, "event polls")
    engine_sim.fail_requests(503)  # the engine is down behind its proxy: every API request gets a 503 page
    time.sleep(120 / SCALE)
    failed = _lines(caplog, "engine event poll failed")
    print(f"event poll failure lines in a 120/{SCALE:g} s outage: {failed}")
    # polled every 3 s that was 40 lines; the backoff (5, 10, 20, 40, 80 s, each jittered down to half) allows 6
    assert 1 <= failed <= 7, failed
    engine_sim.clear_faults()
    wait_for(lambda: _lines(caplog, "engine event poll recovered") == 1, 10, "the poller's recovery line")
    polls = engine_sim.request_count("/events")
    wait_for(lambda: engine_sim.request_count("/events") >= polls + 3, 5, "event polls at the normal interval")
    assert _lines(caplog, "engine event poll failed") == failed
    assert _lines(caplog, "engine event poll recovered") == 1
