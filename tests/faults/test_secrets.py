"""Secrets: the password never shows, in any spelling, and no message gives it away by masking it. Every
scenario of the suite checks its logs (debug), Events, metrics and errors with :func:`sightings`; here the
detector itself is checked, and the short passwords that are part of the username (``admin``, ``internal``)
go through a good sweep, a wrong password and an outage."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator

import pytest

from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.faults.conftest import FIGURES, SECRET, USERNAME, LogTap, secret_forms, sightings
from tests.faults.world import FaultWorld, assert_clean, during, make_engine


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
