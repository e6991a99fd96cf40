"""The console script as a user runs it: real processes against the loopback engine simulator.

Every failure must be one line on stderr with a non-zero exit, and the password must appear nowhere,
at any verbosity.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovirt_cloudprovider.cli import write_json_list
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from tests.helpers import run_cli, write_config

PASSWORD = "Sekr3t-pa55-%-word"


@pytest.fixture
def engine() -> Iterator[EngineSimulator]:
    with EngineSimulator(generate_fleet(12, seed=3, untagged=4), password=PASSWORD) as sim:
        yield sim


@pytest.fixture
def config(tmp_path: Path, engine: EngineSimulator) -> Path:
    return write_config(tmp_path / "ovirt-cloud.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def _assert_no_secret(*outputs: str) -> None:
    for out in outputs:
        assert PASSWORD not in out


def test_check_config_reports_login_and_search(config: Path, engine: EngineSimulator) -> None:
    r = run_cli(["check-config", "--config", str(config)])
    assert r.returncode == 0, r.stderr
    assert "login:   ok" in r.stdout
    # one page, then (one request each) the clusters, data centers, hosts and instance types it joins, and the tag
    # tree (the filter names a tag: is it one the engine has?)
    assert "12 VM(s) matched in 6 request(s)" in r.stdout
    assert "4.5.5" in r.stdout  # the engine's product version
    _assert_no_secret(r.stdout, r.stderr)


def test_discover_json_has_one_object_per_vm(config: Path, engine: EngineSimulator) -> None:
    r = run_cli(["discover", "--config", str(config), "-o", "json"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc) == 12
    tagged = {vm.id for vm in engine.fleet.vms.values() if vm.name.startswith("k8s-")}
    assert {item["vm"]["id"] for item in doc} == tagged
    for item in doc:
        assert set(item["vm"]) == {"id", "name", "status", "fqdn", "cluster", "datacenter", "host"}
        node = item["node"]
        if node is None:
            continue
        assert set(node) == {"name", "providerID", "addresses", "labels", "taints"}
        assert node["providerID"] == f"ovirt://{item['vm']['id']}"
        assert node["labels"]["topology.kubernetes.io/zone"] == item["vm"]["cluster"]
        assert node["labels"]["topology.kubernetes.io/region"] == item["vm"]["datacenter"]
        for addr in node["addresses"]:
            assert addr["type"] in ("InternalIP", "ExternalIP", "Hostname")
            assert not addr["address"].startswith(("fe80:", "127.", "169.254."))
        if item["vm"]["status"] in ("down", "suspended"):
            assert node["taints"] == [{"key": "node.cloudprovider.kubernetes.io/shutdown", "value": None,
                                       "effect": "NoSchedule"}]
        else:
            assert node["taints"] == []


def test_discover_table_lists_vms(config: Path) -> None:
    r = run_cli(["discover", "--config", str(config)])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["VM", "STATUS", "CLUSTER"]
    assert len(lines) == 13
    assert any(line.startswith("k8s-cp-0 ") for line in lines)


def test_legacy_announcement_file_loads_and_rewrites_tags(tmp_path: Path, engine: EngineSimulator) -> None:
    # The example of the original in-tree provider, plus the CA of our simulator.
    cfg = tmp_path / "legacy.conf"
    cfg.write_text(f"[connection]\nuri = {engine.url}\nusername = admin@internal\npassword = {PASSWORD}\n"
                   f"ca_file = {engine.ca_file}\n[filters]\nvms = tags=kubernetes\n")
    r = run_cli(["discover", "--config", str(cfg), "-o", "json"])
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 12
    assert "tag=" in r.stderr and "tags=" in r.stderr  # the rewrite is logged once
    searches = [rec for rec in engine.requests if rec.path.endswith("/vms")]
    assert searches
    assert all(rec.query.get("search", "").startswith("tag=kubernetes ") for rec in searches)


def test_wrong_password_is_one_line_and_exit_1(tmp_path: Path, engine: EngineSimulator) -> None:
    wrong = "Wr0ng-" + PASSWORD
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=wrong, ca_file=engine.ca_file)
    for verbosity in ([], ["-v"], ["-vv"]):
        r = run_cli(["check-config", "--config", str(cfg), *verbosity])
        assert r.returncode == 1
        errors = _error_lines(r.stderr)
        assert len(errors) == 1, r.stderr
        assert "authentication" in errors[0].lower() or "credentials" in errors[0].lower() \
            or "login" in errors[0].lower()
        assert "Traceback" not in r.stderr
        assert wrong not in r.stdout + r.stderr
        _assert_no_secret(r.stdout, r.stderr)


def test_unreachable_engine_is_one_line_and_exit_1(tmp_path: Path, engine: EngineSimulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    cfg = write_config(tmp_path / "c.conf", uri=f"https://127.0.0.1:{port}/ovirt-engine/api",
                       password=PASSWORD, ca_file=engine.ca_file)
    r = run_cli(["discover", "--config", str(cfg), "-v"])
    assert r.returncode == 1
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert f"127.0.0.1:{port}" in errors[0] or "127.0.0.1" in errors[0]
    assert "Traceback" not in r.stderr
    _assert_no_secret(r.stdout, r.stderr)


def test_proxy_502_is_one_line_and_exit_1(config: Path, engine: EngineSimulator) -> None:
    engine.proxy_errors()
    r = run_cli(["check-config", "--config", str(config), "-vv"])
    assert r.returncode == 1
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert "502" in errors[0]
    assert "<html" not in errors[0].lower()
    assert "Traceback" not in r.stderr
    _assert_no_secret(r.stdout, r.stderr)


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    r = run_cli(["discover", "--config", str(missing)])
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and str(missing) in errors[0]


def test_config_error_names_section_and_key(tmp_path: Path, engine: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       extra="[controller]\nsync_intervall = 30\n")
    r = run_cli(["check-config", "--config", str(cfg)])
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1
    assert "[controller]" in errors[0] and "sync_intervall" in errors[0] and "sync_interval" in errors[0]
    _assert_no_secret(r.stdout, r.stderr)


def test_bad_flag_is_usage_error() -> None:
    r = run_cli(["run", "--leader-elect=maybe"])
    assert r.returncode == 2
    assert "--leader-elect" in r.stderr and "Traceback" not in r.stderr


def test_help_mentions_no_secret(config: Path) -> None:
    r = run_cli(["run", "--help"], env={"OVIRT_PASSWORD": PASSWORD})
    assert r.returncode == 0
    assert "--leader-elect" in r.stdout and "--metrics-bind-address" in r.stdout
    _assert_no_secret(r.stdout, r.stderr)


def test_env_password_overrides_file(tmp_path: Path, engine: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password="not-the-password", ca_file=engine.ca_file)
    r = run_cli(["check-config", "--config", str(cfg)], env={"OVIRT_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    _assert_no_secret(r.stdout, r.stderr)


def test_run_with_missing_kubeconfig_is_one_line_and_exit_2(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-kubeconfig"
    r = run_cli(["run", "--config", str(config), "--kubeconfig", str(missing)])
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and str(missing) in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_run_with_busy_metrics_port_is_one_line_and_exit_2(config: Path, tmp_path: Path) -> None:
    from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
    with socket.socket() as busy, KubeApiSimulator() as kube:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(["run", "--config", str(config), "--kubeconfig", kube.write_kubeconfig(tmp_path / "kc"),
                     f"--metrics-bind-address=127.0.0.1:{port}", "--leader-elect=false"])
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("address", ["garbage", "127.0.0.1:99999", "::1:80"])
def test_run_with_bad_metrics_bind_address_flag_is_one_line_and_exit_2(config: Path, address: str) -> None:
    r = run_cli(["run", "--config", str(config), f"--metrics-bind-address={address}", "--leader-elect=false"])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.strip()] == _error_lines(r.stderr)
    assert len(_error_lines(r.stderr)) == 1 and "--metrics-bind-address" in r.stderr


@pytest.mark.parametrize("args", [[], ["-v"], ["--log-format", "json", "-v"]])
def test_cr_only_config_with_a_bogus_section_never_prints_the_password(tmp_path: Path, args: list[str]) -> None:
    cfg = tmp_path / "mac.conf"
    lines = ["[connection]", "uri = https://127.0.0.1:1/ovirt-engine/api", f"password = {PASSWORD}",
             "[controler]", "sync_interval = 30"]
    cfg.write_bytes("\r".join(lines).encode() + b"\r")
    r = run_cli(["check-config", "--config", str(cfg), *args])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"ovirt-cloudprovider: error: {cfg}: [controler]: unknown section on line 4 (did you mean [controller]?)")
    _assert_no_secret(r.stdout, r.stderr)


def test_dry_run_describes_every_kind_as_planned_not_done() -> None:
    from ovirt_cloudprovider.cli import dry_run_message
    done = ["Registered node web1 for VM web1 (id) with 2 address(es) and 5 label(s).",
            "Initialized node web1 for VM web1 (id): set providerID.",
            "Updated node web1 for VM web1 (id): labels.",
            "VM web1 (id) is down: added taint node.cloudprovider.kubernetes.io/shutdown:NoSchedule to node web1 "
            "(1 taint(s) now).",
            "VM web1 (id) is up: removed taint node.cloudprovider.kubernetes.io/shutdown:NoSchedule from node web1 "
            "(0 taint(s) now).",
            "VM id of node web1 was absent from 1 consecutive successful sweep(s); the node is deleted at 3.",
            "VM id of node web1 is present again after 2 absent sweep(s); the absence count is reset.",
            "Deleting node web1: VM id was absent from 3 consecutive successful sweeps (threshold 3).",
            "Deleting placeholder node web1 of VM web1 (id): the kubelet registered node web1b for the same VM."]
    planned = [dry_run_message(m) for m in done]
    assert planned[0].startswith("Would register node web1") and planned[7].startswith("Would delete node web1")
    assert "would add taint" in planned[3] and "would remove taint" in planned[4]
    assert "the node would be deleted at 3" in planned[5] and "the absence count would be reset" in planned[6]
    for text in planned:
        for past in ("Registered", "Initialized", "Updated", "Deleting", "added taint", "removed taint",
                     "is reset", "is deleted at"):
            assert past not in text, text


@pytest.mark.parametrize(("flag", "value"), [("--leader-elect-namespace", "Not_A_Namespace"),
                                             ("--leader-elect-lease-name", "bad name!")])
def test_run_with_a_bad_lease_flag_is_one_line_and_exit_2(config: Path, flag: str, value: str) -> None:
    r = run_cli(["run", "--config", str(config), f"{flag}={value}"])
    assert r.returncode == 2, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and flag in errors[0] and "Traceback" not in r.stderr


def test_run_with_a_bad_instance_flag_is_one_line_and_exit_2(config: Path) -> None:
    r = run_cli(["run", "--config", str(config), "--instance=East_2"])
    assert r.returncode == 2, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "--instance" in errors[0] and "instance name" in errors[0]


@pytest.mark.parametrize(("flags", "instance", "lease"), [
    ([], "ovirt-cloudprovider", "ovirt-cloudprovider"),
    (["--instance", "east-2"], "east-2", "east-2"),  # the Lease follows the instance
    (["--instance", "east-2", "--leader-elect-lease-name", "lease-2"], "east-2", "lease-2"),
])
def test_run_instance_flag_names_the_instance_and_its_lease(config: Path, flags: list[str], instance: str,
                                                            lease: str) -> None:
    from ovirt_cloudprovider import cli
    from ovirt_cloudprovider.config import load_config

    args = cli.build_parser().parse_args(["run", "--config", str(config), *flags])
    ctl = cli._run_settings(args, load_config(str(config), {})).controller
    assert (ctl.instance, ctl.leader_elect_lease_name) == (instance, lease)


def test_an_internal_error_is_one_line_and_exit_1(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from ovirt_cloudprovider import app, cli

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(app, "discover", broken)  # our own composition root, standing in for any bug
    assert cli.main(["discover", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error:" in line] == [
        "ovirt-cloudprovider: error: internal error: RuntimeError: a bug over two lines (please report it; -v "
        "logs the traceback)"]
    assert "Traceback" not in err


def test_discover_with_hosts_shows_a_kind_column_and_host_objects(tmp_path: Path, engine: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "hosts.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       vms="tag=kubernetes\nhosts = cluster=east-a")
    r = run_cli(["discover", "--config", str(cfg)])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["KIND", "NAME", "STATUS"]
    assert len(lines) == 1 + 12 + 3
    assert sum(line.startswith("host ") for line in lines) == 3 and lines[-1].startswith("host ")
    r = run_cli(["discover", "--config", str(cfg), "-o", "json"])
    doc = json.loads(r.stdout)
    hosts = [item for item in doc if "host" in item]
    assert len(doc) == 15 and len(hosts) == 3
    for item in hosts:
        assert item["node"]["providerID"] == f"ovirt://host/{item['host']['id']}"
        assert item["node"]["labels"]["ovirt.org/kind"] == "host"
    r = run_cli(["check-config", "--config", str(cfg)])
    assert "hosts:   3 host(s) matched 'cluster=east-a'" in r.stdout


# --- everyday use never says "internal error" (issue 17 rule 10) and the rough edges of the CLI (issue 18) ---

DEFAULT_CONFIG = "/etc/ovirt/ovirt-cloud.conf"


@pytest.mark.skipif(Path(DEFAULT_CONFIG).exists(), reason=f"{DEFAULT_CONFIG} exists on this machine")
@pytest.mark.parametrize("command", [["run"], ["sync"], ["discover"], ["check-config"]])
def test_without_config_every_command_reads_the_default_path(command: list[str]) -> None:
    r = run_cli(command)
    assert r.returncode == 2, r.stderr
    assert [line for line in r.stderr.splitlines() if line.strip()] == _error_lines(r.stderr)
    assert len(_error_lines(r.stderr)) == 1 and DEFAULT_CONFIG in r.stderr, r.stderr
    assert "internal error" not in r.stderr


def test_without_config_the_environment_names_the_file(config: Path) -> None:
    r = run_cli(["check-config"], env={"OVIRT_CLOUD_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    assert f"config:  {config}: ok" in r.stdout


def _closed_pipe(args: list[str]) -> tuple[int, str]:
    """Run the CLI with its stdout a pipe whose reader has gone (``| head`` once head has had its lines)."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}
    proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("output", ["table", "json"])
def test_discover_into_a_closed_pipe_exits_quietly(config: Path, output: str) -> None:
    code, err = _closed_pipe(["discover", "--config", str(config), "-o", output])
    assert code == 141, err  # as a tool killed by SIGPIPE: 128 + 13
    assert "error" not in err.lower() and "Traceback" not in err, err


def test_check_config_fails_when_the_filter_matches_no_vm(tmp_path: Path, engine: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       vms="tag=no-such-tag")
    r = run_cli(["check-config", "--config", str(cfg)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "search:  0 VM(s) matched" in r.stdout
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "matched no VM" in errors[0] and "[filters] vms" in errors[0], r.stderr


def test_check_config_fails_when_the_hosts_filter_matches_no_host(tmp_path: Path, engine: EngineSimulator) -> None:
    cfg = write_config(tmp_path / "c.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                       vms="tag=kubernetes\nhosts = cluster=no-such-cluster")
    r = run_cli(["check-config", "--config", str(cfg)])
    assert r.returncode == 1, r.stdout + r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "matched no host" in errors[0] and "[filters] hosts" in errors[0], r.stderr


@pytest.mark.parametrize(("args", "command"), [
    (["discover", "--bogus"], "discover"), (["sync", "--bogus"], "sync"), (["run", "--leader-elect=maybe"], "run"),
    (["check-config", "extra"], "check-config"), (["bogus-command"], None), ([], None),
])
def test_a_usage_error_is_one_line_naming_the_command_help(args: list[str], command: str | None) -> None:
    r = run_cli(args)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ovirt-cloudprovider: error: "), r.stderr
    assert f"ovirt-cloudprovider {command} --help" in lines[0] if command else "ovirt-cloudprovider --help" \
        in lines[0]
    assert "usage:" not in r.stderr


def test_every_option_has_help_and_demo_offers_no_config() -> None:
    r = run_cli(["discover", "--help"])
    assert r.returncode == 0
    assert "-o {table,json}, --output {table,json}" in r.stdout
    assert "table (default)" in r.stdout
    r = run_cli(["sync", "--help"])
    assert "-o {table,wide}" in r.stdout and "--once" in r.stdout
    r = run_cli(["demo", "--help"])
    assert r.returncode == 0 and "--keep-running" in r.stdout
    assert "--config" not in r.stdout
    r = run_cli(["demo", "--config", "/nonexistent"])
    assert r.returncode == 2 and "--config" in r.stderr


@pytest.mark.parametrize("command", [["sync", "--dry-run"], ["run", "--metrics-bind-address=127.0.0.1:0"]])
def test_a_kubeconfig_token_with_a_line_break_is_one_line_never_printed(config: Path, tmp_path: Path,
                                                                        command: list[str]) -> None:
    """A token pasted with its line break (``token: |`` in YAML, ``echo`` into a file): every request would fail
    in http.client with ``Invalid header value b'Bearer <token>\\n'``, which the informer logged (the token in
    clear) sweep after sweep, and which killed the leader elector's thread with a traceback. It is a
    configuration error of one line naming the kubeconfig, without the token."""
    from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
    token = "kube-T0ken-s3cret"
    with KubeApiSimulator() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kc", token=token + "\n")
        r = run_cli([command[0], "--config", str(config), "--kubeconfig", kubeconfig, *command[1:]], timeout=30)
    assert r.returncode == 2, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and kubeconfig in errors[0] and "token" in errors[0], r.stderr
    assert token not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
@pytest.mark.parametrize("doc", [[], [{"vm": {"name": "a\nb", "ips": []}, "node": None}], [{"a": {}}, {"b": [1, "x"]}]])
def test_discover_json_is_written_item_by_item_as_one_document(doc: list[object]) -> None:
    """``discover -o json`` streams its list (a 10,000-VM document is never built at once): the same text."""
    out = io.StringIO()
    write_json_list(iter(doc), out)
    assert out.getvalue() == json.dumps(doc, indent=2) + "\n"
