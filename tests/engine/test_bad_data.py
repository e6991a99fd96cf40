"""Bad engine data is one clear EngineDataError, never a traceback, and libxml2 writes nothing to stderr."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineDataError
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.helpers import run_cli, write_config

ConnFor = Callable[..., ConnectionConfig]


@pytest.mark.parametrize(("body", "expected"), [
    (b"<vms><vm><name>x</name></vm></vms>",
     "engine answer for /vms page 1 at 127.0.0.1:{port}: a <vm> without an id (name 'x')"),
    (b"<hosts><host id='h1'><name>h</name></host></hosts>",
     "engine answer for /vms page 1 at 127.0.0.1:{port}: the root element is <hosts>, not <vms>"),
    (b"<vms>\n<vm id='1'><name>a</name></vm",
     "VM search at 127.0.0.1:{port} failed: the engine answer is not well-formed XML at line 2"),
    (b"garbage\n<<<",
     "VM search at 127.0.0.1:{port} failed: the engine answer is not well-formed XML at line 1"),
])
def test_bad_vm_list_is_one_clear_error(engine_sim: EngineSimulator, engine_client: EngineClient, body: bytes,
                                        expected: str) -> None:
    engine_sim.serve_static("/vms", body)
    with pytest.raises(EngineDataError) as err:
        engine_client.discover("tag=kubernetes")
    assert expected.format(port=engine_sim.port) in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and "Can't" not in str(err.value)


def test_get_vm_answering_another_vm_is_an_error(engine_sim: EngineSimulator, engine_client: EngineClient) -> None:
    vm = next(iter(engine_sim.fleet.vms.values()))
    engine_sim.serve_static(f"/vms/{vm.id}", b"<vm id='someone-else'><name>y</name></vm>")
    where = f"127.0.0.1:{engine_sim.port}"
    with pytest.raises(EngineDataError, match=f"engine answer for /vms/{vm.id} at {where}: a <vm> with the id"):
        engine_client.fetch_vms([vm.id])


def test_malformed_xml_writes_no_libxml2_lines_to_stderr(tmp_path: Path, engine_sim: EngineSimulator) -> None:
    engine_sim.serve_static("/vms", b"<vms>\n<vm id='1'><name>a</name></vm")
    cfg = write_config(tmp_path / "c.conf", uri=engine_sim.url, password=engine_sim.password,
                       ca_file=engine_sim.ca_file)
    proc = run_cli(["discover", "--config", str(cfg)])
    assert proc.returncode == 1, proc.stderr
    assert "parser error" not in proc.stderr and "Entity: line" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "the engine answer is not well-formed XML at line 2" in proc.stderr, proc.stderr


@pytest.mark.parametrize(("body", "expected"), [
    (b"<hosts><host><name>x</name></host></hosts>",
     "engine answer for the host search page 1 at 127.0.0.1:{port}: a <host> without an id (name 'x')"),
    (b"<vms><vm id='11111111-1111-1111-1111-111111111111'><name>x</name></vm></vms>",
     "engine answer for the host search page 1 at 127.0.0.1:{port}: a <vm> instead of a <host>"),
])
def test_bad_host_list_is_one_clear_error(engine_sim: EngineSimulator, engine_conn: ConnectionConfig, body: bytes,
                                          expected: str) -> None:
    engine_sim.serve_static("/hosts", body)
    client = EngineClient(engine_conn, hosts="cluster=east-a")
    try:
        with pytest.raises(EngineDataError) as err:
            client.discover_hosts("cluster=east-a")
    finally:
        client.close()
    assert expected.format(port=engine_sim.port) in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
