"""Every number has a documented range, and the files the configuration names must be regular files (a FIFO
must never block the reader)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from ovirt_cloudprovider.config import load_config, resolve_password
from ovirt_cloudprovider.config.schema import SCHEMA, value_range
from ovirt_cloudprovider.core.settings import ConfigError, ConnectionConfig
from tests.helpers import REPO, run_cli

CONNECTION = "[connection]\nuri = https://engine.example.com/ovirt-engine/api\npassword = pw\n"


def _error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("section", "body", "problem"), [
    ("connection", "timeout = 1e10", "timeout: must be at most 3600 seconds, got 1e+10"),
    ("connection", "timeout = 3601", "timeout: must be at most 3600 seconds, got 3601"),
    ("controller", "event_poll_interval = 1e300", "event_poll_interval: must be at most 86400 seconds, got 1e+300"),
    ("controller", "sync_interval = 86401", "sync_interval: must be at most 86400 seconds, got 86401"),
    ("controller", "backoff_max = 1e20", "backoff_max: must be at most 86400 seconds, got 1e+20"),
    ("controller", "lease_duration = 1e9", "lease_duration: must be at most 3600 seconds, got 1e+09"),
    ("controller", "renew_deadline = 1e9", "renew_deadline: must be at most 3600 seconds, got 1e+09"),
    ("controller", "retry_period = 601", "retry_period: must be at most 600 seconds, got 601"),
    ("controller", "delete_after_sweeps = 1001", "delete_after_sweeps: must be from 1 to 1000, got 1001"),
    ("controller", "max_delete_count = 100001", "max_delete_count: must be from 0 to 100000, got 100001"),
    ("controller", "page_size = " + "9" * 5000, "page_size: must be from 1 to 1000"),
])
def test_absurd_numbers_are_config_errors(tmp_path: Path, section: str, body: str, problem: str) -> None:
    path = tmp_path / "c.conf"
    path.write_text(CONNECTION + ("" if section == "connection" else f"[{section}]\n") + body + "\n")
    assert _error(path).startswith(f"{path}: [{section}] {problem}")


@pytest.mark.parametrize(("section", "body"), [
    ("connection", "timeout = 3600"), ("controller", "sync_interval = 86400"),
    ("controller", "event_poll_interval = 86400"), ("controller", "backoff_max = 86400"),
    ("controller", "lease_duration = 3600\nrenew_deadline = 3000\nretry_period = 600"),
    ("controller", "delete_after_sweeps = 1000\nmax_delete_count = 100000"),
])
def test_the_upper_bounds_themselves_are_accepted(tmp_path: Path, section: str, body: str) -> None:
    path = tmp_path / "c.conf"
    path.write_text(CONNECTION + ("" if section == "connection" else f"[{section}]\n") + body + "\n")
    config = load_config(str(path), {})
    assert config.connection.password == "pw"


def test_every_number_has_a_range_documented_in_the_example() -> None:
    """The comment above each ``# key = default`` line in the example states the schema's range."""
    comments: list[str] = []
    last: list[str] = []
    documented: dict[tuple[str, str], str] = {}
    section = ""
    for line in (REPO / "ovirt-cloud.conf.example").read_text().splitlines():
        if m := re.match(r"^\[([a-z]+)\]$", line):
            section, comments, last = m.group(1), [], []
        elif m := re.match(r"^#?\s?([a-z_]+) = ", line):
            # keys documented together share the comment above the first of them
            last = comments or last
            documented[(section, m.group(1))] = " ".join(last)
            comments = []
        elif line.startswith("#"):
            comments.append(line.lstrip("# "))
    ranged = [(s, k) for s, keys in SCHEMA.items() for k in keys if value_range(s, k)]
    # timeout, [nodes] out_of_service_after and the thirteen numbers of [controller] (engine_concurrency: 1 to 8)
    assert len(ranged) == 15
    for section, key in ranged:
        assert value_range(section, key) in documented[(section, key)], (section, key, value_range(section, key))


# --- special files ----------------------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _load_in_a_thread(path: Path, env: dict[str, str] | None = None) -> str:
    """load_config in a thread that must finish within 5 s (a FIFO used to block forever)."""
    outcome: list[str] = []

    def target() -> None:
        try:
            load_config(str(path), env or {})
            outcome.append("loaded")
        except ConfigError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so that the thread ends
        with open(os.open(path.parent / "fifo", os.O_WRONLY | os.O_NONBLOCK), "w"):
            pass
        worker.join(5)
        raise AssertionError("load_config blocked on a FIFO")
    return outcome[0]


def test_fifo_as_password_file(tmp_path: Path, fifo: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text(f"[connection]\nuri = https://e.example.com/ovirt-engine/api\npassword_file = {fifo}\n")
    assert _load_in_a_thread(path) == (
        f"{path}: [connection] password_file: {fifo}: cannot read the password file: not a regular file (a FIFO)")


def test_fifo_as_password_file_from_the_environment(tmp_path: Path, fifo: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text("[connection]\nuri = https://e.example.com/ovirt-engine/api\n")
    assert _load_in_a_thread(path, {"OVIRT_PASSWORD_FILE": str(fifo)}) == (
        f"environment variable OVIRT_PASSWORD_FILE: {fifo}: cannot read the password file: not a regular file "
        "(a FIFO)")


def test_fifo_as_ca_file(tmp_path: Path, fifo: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text(CONNECTION + f"ca_file = {fifo}\n")
    assert _load_in_a_thread(path) == f"{path}: [connection] ca_file: cannot read {fifo}: not a regular file (a FIFO)"


def test_fifo_as_the_config_file(fifo: Path) -> None:
    assert _load_in_a_thread(fifo) == f"{fifo}: cannot read the configuration file: not a regular file (a FIFO)"


def test_device_as_password_file_at_login_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_password(ConnectionConfig(uri="https://e/ovirt-engine/api", password_file="/dev/zero"))
    assert str(info.value) == "/dev/zero: cannot read the password file: not a regular file (a character device)"


def test_check_config_with_a_fifo_password_file_exits_2_at_once(tmp_path: Path, fifo: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text(f"[connection]\nuri = https://e.example.com/ovirt-engine/api\npassword_file = {fifo}\n")
    r = run_cli(["check-config", "--config", str(path)], timeout=20)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"ovirt-cloudprovider: error: {path}: [connection] password_file: {fifo}: cannot read the password file: "
        "not a regular file (a FIFO)"]


def test_run_with_a_huge_event_poll_interval_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text(CONNECTION + "[controller]\nevent_poll_interval = 1e300\n")
    r = run_cli(["run", "--config", str(path)], timeout=20)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"ovirt-cloudprovider: error: {path}: [controller] event_poll_interval: must be at most 86400 seconds, "
        "got 1e+300"]
