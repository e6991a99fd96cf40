"""Kubernetes API simulator fixtures (a pytest plugin, registered once in the root conftest).

- ``kubeapi``: a started plain-HTTP :class:`KubeApiSimulator` (no auth); stopped after the test.
- ``kubeapi_tls``: a started HTTPS simulator requiring the bearer token ``KUBEAPI_TOKEN``; stopped after.
- ``kubeapi_sims``: a factory ``kubeapi_sims(**kwargs) -> KubeApiSimulator`` (same keywords as the class:
  ``tls``, ``token``, ``rbac``, ``admin_token``, ``history``, ``namespaces``...); all stopped after the test.
- ``kubeconfig``: the path of a kubeconfig for ``kubeapi`` (in ``tmp_path``).
- ``kubeconfig_for``: ``kubeconfig_for(sim, token=None) -> str`` writes one for any simulator.
- ``kube_api_client``: a ``kubernetes.client.ApiClient`` for ``kubeapi`` (closed after the test).
- ``api_client_for``: ``api_client_for(sim, token=None) -> ApiClient`` for any simulator (closed after).
- ``kubectl``: ``kubectl(sim, *args, token=None) -> CompletedProcess`` running the real kubectl against
  ``sim`` with a private cache directory; the test is skipped when kubectl is not on PATH.

Helpers for code that builds its own clients: :func:`api_client`, :func:`write_kubeconfig` and
:func:`write_rotating_kubeconfig` (a token fetched again before every request, from a file a test rewrites).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator

KUBEAPI_TOKEN = "kubeapi-test-token"


def write_kubeconfig(sim: KubeApiSimulator, directory: Path, token: str | None = None) -> str:
    """A kubeconfig for ``sim`` in ``directory`` (one file per simulator and token)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = f"-{abs(hash(token)) % 10**8}" if token else ""
    return sim.write_kubeconfig(directory / f"kubeconfig-{sim.port}{suffix}.yaml", token=token)


EXEC_PLUGIN = """import datetime, json, pathlib, sys
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)  # "expired": re-run each time
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": pathlib.Path(sys.argv[1]).read_text(),
                             "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}))
"""


def write_rotating_kubeconfig(sim: KubeApiSimulator, directory: Path) -> tuple[str, Path]:
    """A kubeconfig for ``sim`` whose token comes from an exec credential plugin that reads a file and says the
    token expires within the client's skew (5 min), so the client runs it again before every request: what a
    token rotated while the process runs looks like (the in-cluster token file is re-read every minute). Returns
    the kubeconfig's path and the token file (holding ``sim``'s token), which the test rewrites."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "token"
    token_file.write_text(sim.token or "")
    plugin = directory / "token-plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    path = Path(sim.write_kubeconfig(directory / "kubeconfig-rotating.yaml"))
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                        "command": sys.executable, "args": [str(plugin), str(token_file)]}}
    path.write_text(yaml.safe_dump(doc))
    return str(path), token_file


def api_client(sim: KubeApiSimulator, token: str | None = None) -> client.ApiClient:
    """An ApiClient for ``sim`` the way the official client builds it from a kubeconfig (CA, bearer token),
    without touching the process-wide default configuration."""
    cfg = client.Configuration()
    cfg.host = sim.url
    if sim.ca_file:
        cfg.ssl_ca_cert = sim.ca_file
    tok = token if token is not None else sim.token
    if tok:
        cfg.api_key = {"authorization": f"Bearer {tok}"}
    return client.ApiClient(cfg)


@pytest.fixture
def kubeapi_sims() -> Iterator[Callable[..., KubeApiSimulator]]:
    started: list[KubeApiSimulator] = []

    def start(**kwargs: Any) -> KubeApiSimulator:
        sim = KubeApiSimulator(**kwargs)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def kubeapi(kubeapi_sims: Callable[..., KubeApiSimulator]) -> KubeApiSimulator:
    return kubeapi_sims()


@pytest.fixture
def kubeapi_tls(kubeapi_sims: Callable[..., KubeApiSimulator]) -> KubeApiSimulator:
    return kubeapi_sims(tls=True, token=KUBEAPI_TOKEN)


@pytest.fixture
def kubeconfig_for(tmp_path: Path) -> Callable[..., str]:
    def make(sim: KubeApiSimulator, token: str | None = None) -> str:
        return write_kubeconfig(sim, tmp_path / "kube", token)

    return make


@pytest.fixture
def kubeconfig(kubeapi: KubeApiSimulator, kubeconfig_for: Callable[..., str]) -> str:
    return kubeconfig_for(kubeapi)


@pytest.fixture
def api_client_for() -> Iterator[Callable[..., client.ApiClient]]:
    made: list[client.ApiClient] = []

    def make(sim: KubeApiSimulator, token: str | None = None) -> client.ApiClient:
        c = api_client(sim, token)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def kube_api_client(kubeapi: KubeApiSimulator, api_client_for: Callable[..., client.ApiClient]) -> client.ApiClient:
    return api_client_for(kubeapi)


@pytest.fixture
def kubectl(tmp_path: Path, kubeconfig_for: Callable[..., str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")
    env = dict(os.environ, KUBECACHEDIR=str(tmp_path / "kubectl-cache"), HOME=str(tmp_path / "home"))
    env.pop("KUBECONFIG", None)

    def run(sim: KubeApiSimulator, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        kc = kubeconfig_for(sim, token)
        return subprocess.run([exe, "--kubeconfig", kc, *args], capture_output=True, text=True, env=env,
                              timeout=60, check=False)

    return run


def load_kubeconfig_client(path: str) -> client.ApiClient:
    """An ApiClient loaded from a kubeconfig file by the official loader (what kube/client.py does)."""
    loaded: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    return loaded
