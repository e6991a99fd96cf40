"""Secrets: the password never shows, in any spelling, and no message gives it away by masking it. Every
scenario of the suite checks its logs (debug), Events, metrics and errors with :func:`sightings`; here the
detector itself is checked, and the short passwords that are part of the username (``admin``, ``internal``)
go through a good sweep, a wrong password and an outage."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.faults.conftest import FIGURES, SECRET, USERNAME, LogTap, secret_forms, sightings
from tests.faults.world import FaultWorld, assert_clean, during, make_engine
from tests.helpers import run_cli


@pytest.mark.parametrize("text", [
    f"password={SECRET}", urllib.parse.quote(SECRET, safe=""), urllib.parse.quote_plus(SECRET),
    base64.b64encode(SECRET.encode()).decode(), "Authorization: Basic " + base64.b64encode(
        f"{USERNAME}:{SECRET}".encode()).decode(), f"password {SECRET[:2]}*** rejected",
])
def test_the_detector_sees_every_form(text: str) -> None:
    assert sightings([text]) == [text]
    FIGURES.record("secrets")


def test_the_detector_sees_a_short_password_masked_out_of_the_username() -> None:
    assert sightings(["login as ***@internal failed"], "admin") != []
    assert sightings(["login as admin@*****"], "internal") != []
    assert sightings(["login as admin@internal failed"], "admin") == []  # the username itself is no secret
    assert sightings(["with password 'admin'"], "admin") != []
    assert len(secret_forms(SECRET)) >= 5
    FIGURES.record("secrets", cases=3)


@pytest.fixture(params=["admin", "internal"])
def short(request: pytest.FixtureRequest) -> Iterator[tuple[str, EngineSimulator]]:
    with make_engine(password=request.param) as sim:
        yield request.param, sim


def test_short_passwords_are_never_revealed(short: tuple[str, EngineSimulator], logtap: LogTap) -> None:
    password, engine = short
    with KubeApiSimulator() as kube:
        good = FaultWorld(engine, kube, logtap, password=password)
        bad = FaultWorld(engine, kube, logtap, password=password + "x")
        try:
            good.baseline()
            bad.before = good.before
            lost, wrong = during(bad, 2)
            engine.proxy_errors(count=3)
            good.client.reset()
            a, b = during(good, 2)
            engine.clear_faults()
            assert_clean(bad.finish("secrets", lost=lost, wrong=wrong, converge=False, password=password + "x"))
            assert_clean(good.finish("secrets", lost=a, wrong=b, password=password))
        finally:
            good.close()
            bad.close()


@pytest.mark.parametrize("source", ["password", "password_file", "OVIRT_PASSWORD_FILE", "OVIRT_PASSWORD"])
def test_an_sso_error_echoing_the_credentials_never_shows_the_password(tmp_path: Path, source: str) -> None:
    # A debug proxy or WAF in front of the SSO refuses the login with an error that echoes the submitted form:
    # whatever the password's source, the one-line error and the debug logs show it in no form.
    secret_file = tmp_path / "engine-password"
    secret_file.write_text(SECRET + "\n")
    env: dict[str, str] = {}
    with make_engine() as engine:
        text = (f"[connection]\nuri = {engine.url}\nusername = {USERNAME}\nca_file = {engine.ca_file}\n"
                "timeout = 5\n")
        if source == "password":
            text += f"password = {SECRET}\n"
        elif source == "password_file":
            text += f"password_file = {secret_file}\n"
        else:
            env[source] = str(secret_file) if source.endswith("_FILE") else SECRET
        config = tmp_path / "ovirt-cloud.conf"
        config.write_text(text + "\n[filters]\nvms = tag=kubernetes\n")
        engine.echo_credentials()
        r = run_cli(["check-config", "--config", str(config), "-vv"], env=env)
        assert engine.request_count("/ovirt-engine/sso/oauth/token", method="POST") >= 1  # a real SSO request
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "HTTP 400" in errors[0] and "Request rejected by filter" in errors[0], r.stderr
    assert "username=admin%40internal" in errors[0]  # the echo is shown: only the password is cut out
    seen = sightings(r.stdout.splitlines() + r.stderr.splitlines())
    FIGURES.record("secrets", secret_sightings=len(seen))
    assert seen == []
