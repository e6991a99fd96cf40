"""Masking never reveals the password: messages are built without it, and only a whole echoed value is cut out.

The password ``admin`` used to turn "login as admin@internal" into "login as ***@internal" (and ``internal``
into "admin@***"): the mask told what the password was.
"""

from __future__ import annotations

import base64
import logging
import socket
import urllib.parse
from collections.abc import Callable

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineError, scrub
from ovirt_cloudprovider.logs import JsonFormatter, TextFormatter, kv, one_line
from ovirt_cloudprovider.simulators.engine import SSO_TOKEN_PATH, EngineSimulator

ConnFor = Callable[..., ConnectionConfig]
PASSWORDS = ["admin", "internal", '%&=+/#;"']
NEUTRAL = "Neutral-Pw-9"


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(raw).decode()}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failure(conn: ConnectionConfig) -> str:
    client = EngineClient(conn)
    try:
        client.discover("tag=kubernetes")
    except EngineError as exc:
        return str(exc)
    finally:
        client.close()
    raise AssertionError("the call did not fail")


PATHS: dict[str, Callable[[EngineSimulator, ConnFor, str, int], ConnectionConfig]] = {
    "wrong-password": lambda sim, conn_for, pw, port: conn_for(sim, password=pw),
    "sso-401": lambda sim, conn_for, pw, port: conn_for(sim, password=pw),
    "unreachable": lambda sim, conn_for, pw, port: conn_for(
        sim, password=pw, uri=f"https://127.0.0.1:{port}/ovirt-engine/api"),
    "tls-error": lambda sim, conn_for, pw, port: conn_for(sim, password=pw, ca_file=None),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_messages_do_not_depend_on_the_password(engine_sim: EngineSimulator, engine_conn_for: ConnFor, path: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()

    def message(pw: str) -> str:
        if path == "sso-401":
            engine_sim.fail_requests(401, path_prefix=SSO_TOKEN_PATH, count=1)
        return failure(PATHS[path](engine_sim, engine_conn_for, pw, port))

    expected = message(NEUTRAL)
    assert "admin@internal" in expected, expected
    for pw in PASSWORDS:
        caplog.clear()
        got = message(pw)
        assert got == expected  # "as admin@internal" is unchanged, whatever the password
        assert "***" not in got and "redacted" not in got
        assert "***" not in caplog.text and "redacted" not in caplog.text
        if pw == PASSWORDS[2]:
            for form in forms(pw):
                assert form not in got and form not in caplog.text


def test_scrub_masks_only_whole_echoed_values() -> None:
    pw = '%&=+/#;"'
    assert scrub("login as admin@internal failed", "admin") == "login as admin@internal failed"
    assert scrub("login as admin@internal failed", "internal") == "login as admin@internal failed"
    for form in forms(pw):
        echoed = scrub(f"bad request: username=admin%40internal&password={form}&scope=x", pw)
        assert form not in echoed, echoed
        assert echoed.startswith("bad request: username=admin%40internal&password=")
    assert "s3cr3t-Value" not in scrub("answer: {'password': 's3cr3t-Value'}", "s3cr3t-Value")


@pytest.mark.parametrize("text", [
    "Invalid header value b'Bearer tok3n-V4lue\\ntail'",
    "request headers {'authorization': 'bearer tok3n-V4lue'}",
    "Authorization: Basic dG9rM24tVjRsdWU6eA==",
    "got Authorization=tok3n-V4lue from the proxy",
    '{"Authorization": "tok3n-V4lue"}',
])
def test_scrub_and_logs_mask_every_http_credential(text: str, caplog: pytest.LogCaptureFixture) -> None:
    """One owner (logs.redact) for HTTP credentials, used by the engine's scrub, one_line and every log line."""
    for got in (scrub(text), one_line(text)):
        assert "tok3n-V4lue" not in got and "dG9rM24tVjRsdWU6eA" not in got and "<redacted>" in got, got
    caplog.set_level(logging.INFO)
    logging.getLogger("ovirt_cloudprovider.test").info(text, extra=kv(error=text))
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(caplog.records[-1])
        assert "tok3n-V4lue" not in line and "dG9rM24tVjRsdWU6eA" not in line, line
