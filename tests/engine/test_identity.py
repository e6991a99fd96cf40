"""The engine an instance records on its nodes (``ovirt.org/engine``, core/ownership.py): ``host[:port]`` of the API
URL, one spelling per engine, never user info or a path; and every discovery says which engine answered."""

from __future__ import annotations

import pytest

from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.endpoint import engine_identity
from ovirt_cloudprovider.simulators.engine import EngineSimulator


@pytest.mark.parametrize(("uri", "identity"), [
    ("https://engine.example.com/ovirt-engine/api", "engine.example.com"),
    ("https://Engine.Example.COM:443/ovirt-engine/api", "engine.example.com"),  # the default port is no other engine
    ("http://engine.example.com:80/ovirt-engine/api", "engine.example.com"),
    ("https://engine.example.com:8443/ovirt-engine/api", "engine.example.com:8443"),
    ("https://[fd00::1]:8443/ovirt-engine/api", "[fd00::1]:8443"),
    ("https://192.0.2.7/ovirt-engine/api", "192.0.2.7"),
])
def test_engine_identity(uri: str, identity: str) -> None:
    assert engine_identity(uri) == identity


def test_a_discovery_names_its_engine(engine_client: EngineClient, engine_sim: EngineSimulator) -> None:
    snapshot = engine_client.discover("tag=kubernetes")
    assert snapshot.engine == f"127.0.0.1:{engine_sim.port}" and snapshot.vms
