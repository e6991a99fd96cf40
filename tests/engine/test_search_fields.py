"""Unknown VM search fields in [filters] vms are found (with a "did you mean") instead of matching nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovirt_cloudprovider.engine.search_fields import unknown_fields, warnings
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.helpers import run_cli, write_config


@pytest.mark.parametrize(("query", "expected"), [
    ("tag=kubernetes", []),
    ("tga=kubernetes", [("tga", "tag")]),
    ("Vms: tag=kubernetes and status!=down", []),
    ("vms : naem=k8s-* or stauts=up", [("naem", "name"), ("stauts", "status")]),
    ('name="a = b" and description="x!=y"', []),
    ("cluster=prod and datacenter=dc1 and host=h1 and fqdn=*.example.com sortby name asc page 2", []),
    ("Hosts.name=h1 and Templates.name=t", []),
    ("Clusters.name=prod", [("Clusters.name", "cluster")]),
    ("memory>4096 and vcpus>=2 and cpu_usage<50", []),
    ("tag=kubernetes and xyzzy=1", [("xyzzy", None)]),
    ("", []),
])
def test_unknown_fields(query: str, expected: list[tuple[str, str | None]]) -> None:
    assert unknown_fields(query) == expected


def test_warning_line() -> None:
    assert warnings("tga=kubernetes") == [
        "[filters] vms: unknown VM search field 'tga' (did you mean 'tag'?): the engine answers such a search with "
        "an empty list, not an error"]


@pytest.mark.parametrize("command", ["check-config", "discover"])
def test_check_config_and_discover_warn(tmp_path: Path, engine_sim: EngineSimulator, command: str) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine_sim.url, password=engine_sim.password,
                       ca_file=engine_sim.ca_file, vms="tga=kubernetes")
    proc = run_cli([command, "--config", str(cfg)])
    # check-config fails on a filter that matches nothing (a pre-deploy script must not pass); discover lists none
    assert proc.returncode == (1 if command == "check-config" else 0), proc.stderr
    out = proc.stdout + proc.stderr
    assert "warning: [filters] vms: unknown VM search field 'tga' (did you mean 'tag'?)" in out, out


@pytest.mark.parametrize(("query", "expected"), [
    ("cluster=k8s-metal", []),
    ("Hosts: cluster = k8s-metal and status = up", []),
    ("tag=kubernetes and cpu_model=Skylake and hw_id=1", []),
    ("Vms.name = web1 and nic.name = eth0", []),
    ("clustr=k8s-metal", [("clustr", "cluster")]),
    ("fqdn=h1.example.com", [("fqdn", None)]),  # a VM field; a host's FQDN is its address
    ("ip=10.0.0.1", [("ip", None)]),
])
def test_unknown_host_fields(query: str, expected: list[tuple[str, str | None]]) -> None:
    assert unknown_fields(query, kind="hosts") == expected


def test_host_warning_line_names_the_hosts_key() -> None:
    assert warnings("clustr=k8s-metal", kind="hosts") == [
        "[filters] hosts: unknown host search field 'clustr' (did you mean 'cluster'?): the engine answers such a "
        "search with an empty list, not an error"]


def test_check_config_warns_about_a_host_field(tmp_path: Path, engine_sim: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine_sim.url, password=engine_sim.password,
                       ca_file=engine_sim.ca_file, vms="tag=kubernetes\nhosts = clustr=east-a")
    proc = run_cli(["check-config", "--config", str(cfg)])
    assert proc.returncode == 1, proc.stderr  # the hosts filter matches no host: check-config fails
    assert "warning: [filters] hosts: unknown host search field 'clustr' (did you mean 'cluster'?)" in proc.stdout
    assert "the hosts filter matched no host" in proc.stderr
