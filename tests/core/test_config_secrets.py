"""Configuration errors never echo file content that could hold a secret (line endings, bogus names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovirt_cloudprovider.config import load_config
from ovirt_cloudprovider.core.settings import ConfigError

PASSWORD = "hunter2secret"  # lowercase and identifier-like: a name the parser would happily echo


def _write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "ovirt-cloud.conf"
    path.write_bytes(data)
    return str(path)


def _error(tmp_path: Path, data: bytes, env: dict[str, str] | None = None) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert PASSWORD not in message.lower()
    assert path in message
    return message


GOOD = ["[connection]", "uri = https://engine.example.com/ovirt-engine/api", f"password = {PASSWORD}",
        "[filters]", "vms = tag=k8s", "[controller]", "sync_interval = 30"]


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_line_endings_parse_alike(tmp_path: Path, newline: str) -> None:
    config = load_config(_write(tmp_path, (newline.join(GOOD) + newline).encode()), {})
    assert config.connection.password == PASSWORD
    assert config.filters.vms == "tag=k8s"
    assert config.controller.sync_interval == 30


def test_mixed_line_endings_parse(tmp_path: Path) -> None:
    data = "\r".join(GOOD[:3]) + "\r\n" + "\n".join(GOOD[3:5]) + "\r\n" + "\r".join(GOOD[5:]) + "\r"
    config = load_config(_write(tmp_path, data.encode()), {})
    assert (config.connection.password, config.filters.vms, config.controller.sync_interval) == (
        PASSWORD, "tag=k8s", 30)


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_cr_only_error_names_the_line_not_the_file(tmp_path: Path, newline: str) -> None:
    lines = [*GOOD, "[nodes]", "regster = no"]
    message = _error(tmp_path, newline.join(lines).encode())
    assert message == f"{tmp_path}/ovirt-cloud.conf: [nodes] regster: unknown key on line 9 (did you mean register?)"


@pytest.mark.parametrize(("extra", "expected"), [
    # the password pasted as a section header, a key, or a key=value line
    (f"[{PASSWORD}]\n", "line 4: unknown section (name not shown) (known sections: "),
    (f"[{PASSWORD.upper()} extra words]\n", "line 4: unknown section (name not shown)"),
    (f"{PASSWORD} = x\n", "[connection]: line 4: unknown key (name not shown) (known keys: "),
    (f"{PASSWORD}\n", 'line 4: not an INI line: expected "key = value"'),
    (f"[{PASSWORD}]\nx = 1\n[{PASSWORD}]\n", "line 6: section given twice (name not shown)"),
    (f"[{PASSWORD}x]\n", "line 4: unknown section (name not shown)"),
    ("[nodes]\nregister = no\n[nodes]\n", "[nodes]: section given twice on line 6"),
    ("[c" + "o" * 60 + "]\n", "line 4: unknown section (name not shown)"),
    ("[con nection]\n", "line 4: unknown section (name not shown)"),
    ("[nodes]\nab\x1bc = 1\n", "[nodes]: line 5: unknown key (name not shown)"),
])
def test_bogus_names_are_not_echoed(tmp_path: Path, extra: str, expected: str) -> None:
    text = "\n".join(GOOD[:3]) + "\n" + extra
    message = _error(tmp_path, text.encode())
    assert message.startswith(f"{tmp_path}/ovirt-cloud.conf: {expected}"), message


def test_a_key_that_is_the_environment_password_is_not_echoed(tmp_path: Path) -> None:
    text = "[connection]\nuri = https://e.example.com/ovirt-engine/api\nhunter2secret = 1\n"
    message = _error(tmp_path, text.encode(), env={"OVIRT_PASSWORD": PASSWORD})
    assert "unknown key (name not shown)" in message


def test_duplicate_unknown_key_name_is_not_echoed(tmp_path: Path) -> None:
    text = "\n".join(GOOD[:3]) + f"\n{PASSWORD} = 1\n{PASSWORD} = 2\n"
    message = _error(tmp_path, text.encode())
    assert message == f"{tmp_path}/ovirt-cloud.conf: [connection]: line 5: key given twice (name not shown)"


@pytest.mark.parametrize("source", ["password_file", "OVIRT_PASSWORD_FILE"])
def test_a_key_that_is_the_password_files_password_is_not_echoed(tmp_path: Path, source: str) -> None:
    (tmp_path / "engine-password").write_text(PASSWORD + "\n")
    text = "[connection]\nuri = https://e.example.com/ovirt-engine/api\n"
    env = {}
    if source == "password_file":
        text += "password_file = engine-password\n"  # relative to the configuration file
    else:
        env["OVIRT_PASSWORD_FILE"] = str(tmp_path / "engine-password")
    message = _error(tmp_path, (text + f"{PASSWORD} = 1\n").encode(), env=env)
    assert "unknown key (name not shown)" in message
