"""Engine simulator fixtures (a pytest plugin, registered once in the root conftest).

- ``engine_sim``: a started :class:`EngineSimulator` with a small generated fleet (12 Kubernetes VMs + 4 others,
  seed 7); stopped after the test.
- ``engine_sims``: a factory ``engine_sims(fleet_or_None, **kwargs) -> EngineSimulator`` for tests that need
  their own fleet or several engines; every simulator it starts is stopped after the test.
- ``engine_conn``: a ``ConnectionConfig`` for ``engine_sim`` (CA file, 5 s timeout).
- ``engine_client``: an ``EngineClient`` on ``engine_conn`` (page size 100), closed after the test.
- ``engine_conn_for``: ``engine_conn_for(sim, **overrides) -> ConnectionConfig`` for any simulator.
- ``clients``: a factory ``clients(conn, **EngineClient_kwargs) -> EngineClient``; every client it makes is
  closed after the test.
- ``engine_samples``: the directory of recorded engine answers (``tests/samples``, see its PROVENANCE.md).

Test modules should not import this module (pytest registers it as a plugin); use the fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.simulators.engine import EngineSimulator, Fleet, generate_fleet
from tests.helpers import SAMPLES


def connection_for(sim: EngineSimulator, **overrides: Any) -> ConnectionConfig:
    """A ConnectionConfig pointing at ``sim`` (verified TLS with the simulator's CA, 5 s timeout)."""
    conn = ConnectionConfig(uri=sim.url, username=sim.username, password=sim.password, ca_file=sim.ca_file,
                            timeout=5.0)
    return replace(conn, **overrides)


@pytest.fixture
def engine_samples() -> Path:
    return SAMPLES


@pytest.fixture
def engine_conn_for() -> Callable[..., ConnectionConfig]:
    return connection_for


@pytest.fixture
def engine_sims() -> Iterator[Callable[..., EngineSimulator]]:
    started: list[EngineSimulator] = []

    def start(fleet: Fleet | None = None, **kwargs: Any) -> EngineSimulator:
        sim = EngineSimulator(fleet if fleet is not None else generate_fleet(12, seed=7, untagged=4), **kwargs)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def engine_sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    return engine_sims()


@pytest.fixture
def engine_conn(engine_sim: EngineSimulator) -> ConnectionConfig:
    return connection_for(engine_sim)


@pytest.fixture
def engine_client(engine_conn: ConnectionConfig) -> Iterator[EngineClient]:
    client = EngineClient(engine_conn)
    yield client
    client.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., EngineClient]]:
    made: list[EngineClient] = []

    def make(conn: ConnectionConfig, **kwargs: Any) -> EngineClient:
        made.append(EngineClient(conn, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()
