"""One shared auth-backoff gate per engine client: after a failed login, no engine call contacts the engine until
the backoff has passed (exponential, capped by ``[controller] backoff_max``); a success or a rotated secret
(``reset()``) opens it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.backoff import AuthGate
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineAuthError
from ovirt_cloudprovider.simulators.engine import SSO_TOKEN_PATH, EngineSimulator
from tests.helpers import wait_for

ConnFor = Callable[..., ConnectionConfig]


def failed_logins_in(gate: AuthGate, clock: list[float], start: float, end: float, step: float = 0.5) -> int:
    """A caller that tries every ``step`` seconds and whose every login fails: how many logins reach the engine."""
    n = 0
    clock[0] = start
    while clock[0] < end:
        try:
            gate.check("login as admin@internal at engine")
        except EngineAuthError:
            pass
        else:
            n += 1
            gate.failed()
        clock[0] += step
    return n


def test_schedule_gives_at_most_10_failed_logins_in_10_minutes() -> None:
    clock = [0.0]
    gate = AuthGate(base=5.0, maximum=300.0, clock=lambda: clock[0])
    # 0, 5, 15, 35, 75, 155, 315: 7 logins in the first 10 minutes, then one every backoff_max (300 s)
    assert failed_logins_in(gate, clock, 0.0, 600.0) == 7
    assert failed_logins_in(gate, clock, 600.0, 1200.0) == 2
    gate.succeeded()
    assert failed_logins_in(gate, clock, 1200.0, 1800.0) == 7  # a success starts the schedule again


def test_refusal_message_and_open() -> None:
    clock = [100.0]
    gate = AuthGate(base=5.0, maximum=300.0, clock=lambda: clock[0])
    gate.failed()
    gate.failed()
    with pytest.raises(EngineAuthError) as err:
        gate.check("login as admin@internal at engine:443")
    assert str(err.value) == ("login as admin@internal at engine:443 failed 2 times; next attempt in 10 s "
                              "(the engine is not contacted until then)")
    gate.open()
    gate.check("x")  # open at once (a rotated password file)


def test_every_call_waits_for_the_gate_after_a_wrong_password(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                                             clients: Callable[..., EngineClient]) -> None:
    client = clients(engine_conn_for(engine_sim, password="Wr0ng-pass"), auth_backoff_base=0.5,
                     auth_backoff_max=2.0)
    with pytest.raises(EngineAuthError, match="wrong username or password"):
        client.discover("tag=kubernetes")
    assert engine_sim.request_count(SSO_TOKEN_PATH) == 1
    calls: list[Callable[[], object]] = [
        lambda: client.discover("tag=kubernetes"), lambda: client.events_since(0), client.last_event_index,
        lambda: client.fetch_vms(["x"]), client.check,
    ]
    for call in calls:
        with pytest.raises(EngineAuthError, match=r"failed 1 times; next attempt in 0\.\d s"):
            call()
    assert engine_sim.request_count() == 1  # nothing reached the engine while the gate was closed
    wait_for(lambda: client.auth_gate.remaining() == 0, 2, "the gate to open")
    engine_sim.password = "Wr0ng-pass"
    assert client.last_event_index() > 0  # the next attempt logs in; a success resets the gate
    assert engine_sim.request_count(SSO_TOKEN_PATH) == 2
    assert client.auth_gate.failures == 0


def test_reset_opens_the_gate_at_once(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                      clients: Callable[..., EngineClient], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("old-wrong\n")
    client = clients(engine_conn_for(engine_sim, password="", password_file=str(secret)),
                     auth_backoff_base=60.0, auth_backoff_max=300.0)
    with pytest.raises(EngineAuthError):
        client.last_event_index()
    with pytest.raises(EngineAuthError, match="next attempt in 60 s"):
        client.last_event_index()
    secret.write_text(engine_sim.password + "\n")
    client.reset()  # what the controller does when password_file changes
    assert client.last_event_index() > 0
    assert engine_sim.request_count(SSO_TOKEN_PATH) == 2
