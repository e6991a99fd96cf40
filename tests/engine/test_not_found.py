"""Only the engine's own "not found" is evidence that a VM or host is gone (issue 17, rule 1).

What the engine answers for ``GET /vms/{id}`` or ``/hosts/{id}`` of an object it does not have (read in
ovirt-engine's REST layer: ``BackendResource.getEntity`` → ``BaseBackendResource.handleError`` throws
``WebApplicationException(Response.status(NOT_FOUND).build())``, a response without an entity) is a 404 with an
empty body and no content type; recorded: ``tests/samples/manageiq/error_404_empty_body.txt`` (Content-Length 0).
Its other not-found form (``notFound(String)``, a ``WebFaultException``) is a 404 ``<fault>`` in XML
(``Entity not found: ...``). Anything else with a 404, above all a web server's or proxy's HTML "Not Found" page
in front of an engine that restarts (recorded: WildFly's ``error_404_html_wrong_prefix.html``), is an error: the
client raises instead of answering None.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineFaultError
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet

API = "/ovirt-engine/api"
ConnFor = Callable[..., ConnectionConfig]


@pytest.fixture
def sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    fleet = generate_fleet(4, seed=5, untagged=0)
    fleet.add_host("metal1", next(iter(fleet.clusters.values())).name)
    return engine_sims(fleet)


@pytest.fixture
def client(sim: EngineSimulator, engine_conn_for: ConnFor, clients: Callable[..., EngineClient]) -> EngineClient:
    return clients(engine_conn_for(sim), hosts="")


def _vm_id(sim: EngineSimulator) -> str:
    return next(iter(sim.fleet.vms))


def _host_id(sim: EngineSimulator) -> str:
    return next(iter(sim.fleet.hosts))


def _recorded(samples: Path, name: str) -> tuple[bytes, int, str | None]:
    meta = json.loads((samples / "manageiq" / f"{name}.meta.json").read_text())
    content_type = (meta["response_headers"].get("Content-Type") or [None])[0]
    return (samples / "manageiq" / name).read_bytes(), int(meta["status"]), content_type


def test_the_engines_own_404_is_none(sim: EngineSimulator, client: EngineClient) -> None:
    missing = "5f0c6f4e-0000-4000-8000-00000000dead"
    assert client.fetch_vms([missing]) == {missing: None}
    assert client.fetch_hosts([missing]) == {missing: None}


def test_the_recorded_engine_404_is_none(sim: EngineSimulator, client: EngineClient, engine_samples: Path) -> None:
    body, status, content_type = _recorded(engine_samples, "error_404_empty_body.txt")
    assert (body, status, content_type) == (b"", 404, None)
    vm_id = _vm_id(sim)
    sim.serve_static(f"/vms/{vm_id}", body, status=status, content_type=content_type)
    assert client.fetch_vms([vm_id]) == {vm_id: None}


def test_the_engines_fault_404_is_none(sim: EngineSimulator, client: EngineClient) -> None:
    vm_id = _vm_id(sim)
    sim.engine_faults(404, detail=f"Entity not found: {vm_id}", path_prefix=f"{API}/vms/{vm_id}")
    assert client.fetch_vms([vm_id]) == {vm_id: None}


@pytest.mark.parametrize("kind", ["vms", "hosts"])
def test_an_apache_html_404_is_an_error(kind: str, sim: EngineSimulator, client: EngineClient) -> None:
    object_id = _vm_id(sim) if kind == "vms" else _host_id(sim)
    sim.html_not_found(kind, ids=[object_id])
    fetch = client.fetch_vms if kind == "vms" else client.fetch_hosts
    with pytest.raises(EngineFaultError, match=r"HTTP 404 .*not the engine's own answer"):
        fetch([object_id])


def test_the_recorded_wildfly_html_404_is_an_error(sim: EngineSimulator, client: EngineClient,
                                                   engine_samples: Path) -> None:
    body, status, content_type = _recorded(engine_samples, "error_404_html_wrong_prefix.html")
    vm_id = _vm_id(sim)
    sim.serve_static(f"/vms/{vm_id}", body, status=status, content_type=content_type)
    with pytest.raises(EngineFaultError, match=r"HTTP 404 .*not the engine's own answer"):
        client.fetch_vms([vm_id])


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", "text/html"),  # empty, but a web page's content type: not what the engine sends
    (b"<vm id='x'><name>x</name></vm>", "application/xml"),  # XML, but no <fault>
    (b"Not Found", "text/plain"),
    (b"{\"detail\": \"not found\"}", "application/json"),
])
def test_any_other_404_is_an_error(body: bytes, content_type: str, sim: EngineSimulator,
                                   client: EngineClient) -> None:
    host_id = _host_id(sim)
    sim.serve_static(f"/hosts/{host_id}", body, status=404, content_type=content_type)
    with pytest.raises(EngineFaultError, match=r"HTTP 404"):
        client.fetch_hosts([host_id])
