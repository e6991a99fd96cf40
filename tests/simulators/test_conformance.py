"""The Kubernetes API simulator passes the kube-apiserver conformance cases (tests/simulators/conformance.py),
over plain HTTP without authentication and over HTTPS with a bearer token.

The cases' expectations were recorded from a real kube-apiserver v1.36 (originally the stand-alone script
shared/tools/kubeapi_conformance.py, now ported into the repository).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client

from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.simulators.conformance import CASES, Case, run


def test_the_cases_are_the_recorded_thirty_plus_taint_nodes_by_condition_create_status_and_duplicate_taint() -> None:
    assert len(CASES) == 33
    assert len({c.id for c in CASES}) == len(CASES)
    assert {"created-node-gets-not-ready-taint", "create-keeps-status", "duplicate-taint"} <= {c.id for c in CASES}


@pytest.mark.parametrize("server", ["kubeapi", "kubeapi_tls"], ids=["http", "https-token"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case: Case, server: str, request: pytest.FixtureRequest,
                     api_client_for: Callable[..., client.ApiClient]) -> None:
    sim: KubeApiSimulator = request.getfixturevalue(server)
    run(case, client.CoreV1Api(api_client_for(sim)))
