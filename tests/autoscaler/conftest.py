"""The autoscaler's test world: an engine simulator with the ``k8s-node`` template, the service started in-process
(plain gRPC on 127.0.0.1, metrics on a free port) and a gRPC client generated at runtime from our own .proto,
calling the service the way the cluster-autoscaler does."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest

from ovirt_cloudprovider.autoscaler.protocol import load
from ovirt_cloudprovider.autoscaler.server import AutoscalerServer, GrpcSettings
from ovirt_cloudprovider.core.nodegroups import mark
from ovirt_cloudprovider.core.settings import (
    AutoscalerConfig,
    Config,
    ConnectionConfig,
    ControllerConfig,
    NodeGroupConfig,
)
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from tests.helpers import REPO

GIB = 1024**3
POOL = NodeGroupConfig(name="pool", template="k8s-node", cluster="east-a", min_size=1, max_size=5,
                       tags=("kubernetes",))
# The tests' mark key (a random 32 bytes, hex): what [autoscaler] mark_key_file names in the tests' configurations.
MARK_KEY_FILE = REPO / "tests" / "autoscaler" / "mark-key"
MARK_KEY = MARK_KEY_FILE.read_bytes().rstrip(b"\n")
OTHER = NodeGroupConfig(name="other", template="k8s-node", cluster="east-a", max_size=3, tags=("kubernetes",))


class Scaler:
    """One running service and a client stub of it (``pb``: the messages)."""

    def __init__(self, server: AutoscalerServer, target: str,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.server = server
        self.pb, services = load()
        self.channel = (grpc.secure_channel(target, credentials) if credentials is not None
                        else grpc.insecure_channel(target))
        self.stub = services.CloudProviderStub(self.channel)

    def call(self, method: str, **fields: Any) -> Any:
        request = getattr(self.pb, _REQUESTS.get(method, method + "Request"))(**fields)
        return getattr(self.stub, method)(request, timeout=30)

    def node(self, provider_id: str, name: str = "") -> Any:
        return self.pb.ExternalGrpcNode(providerID=provider_id, name=name)

    def close(self) -> None:
        self.channel.close()
        self.server.stop()


_REQUESTS = {"NodeGroupGetOptions": "NodeGroupAutoscalingOptionsRequest"}


def engine_fleet() -> Any:
    fleet = generate_fleet(4, seed=3)
    fleet.add_template("k8s-node", "east-a", cores=4, memory=8 * GIB)
    return fleet


def config_for(engine: EngineSimulator, *groups: NodeGroupConfig, timeout: float = 5.0) -> Config:
    return Config(path="<test>", connection=ConnectionConfig(uri=engine.url, username=engine.username,
                                                             password=engine.password, ca_file=engine.ca_file,
                                                             timeout=timeout),
                  controller=replace(ControllerConfig(), metrics_bind_address="127.0.0.1:0"),
                  autoscaler=AutoscalerConfig(mark_key_file=str(MARK_KEY_FILE)), nodegroups=groups or (POOL, OTHER))


def start_autoscaler(engine: EngineSimulator, conf: str, *, max_size: int) -> tuple[subprocess.Popen[str], int]:
    """A real ``ovirt-cloudprovider autoscaler`` process (insecure gRPC, loopback) for one group ``pool`` with
    ``max_size``, and the gRPC port it logged once serving. The caller stops it (kill and wait in a finally)."""
    engine.write_config(conf)
    with open(conf, "a") as f:
        f.write(f"\n[autoscaler]\nmark_key_file = {MARK_KEY_FILE}\n"
                f"[nodegroup pool]\ntemplate = k8s-node\ncluster = east-a\nmax_size = {max_size}\n")
    proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider", "autoscaler", "--config", conf,
                             "--insecure-grpc", "--grpc-bind-address", "127.0.0.1:0", "--metrics-bind-address",
                             "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = ""
    for _ in range(50):
        line = proc.stderr.readline()
        if "autoscaler serving" in line:
            break
    port = re.search(r"port=(\d+)", line)
    if port is None:
        proc.kill()
        proc.wait(timeout=10)
    assert port, line
    return proc, int(port.group(1))


def is_marked(description: str, group: str) -> bool:
    """Whether ``description`` is a mark of ``group`` signed with the tests' key (whatever the VM's name)."""
    return description.startswith(mark(group) + ":")


@pytest.fixture
def sim(engine_sims: Callable[..., EngineSimulator]) -> EngineSimulator:
    return engine_sims(engine_fleet(), image_lock_seconds=0.2, boot_seconds=0.2)


@pytest.fixture
def scalers() -> Iterator[Callable[..., Scaler]]:
    started: list[Scaler] = []

    def start(config: Config, *, grpc_settings: GrpcSettings | None = None,
              credentials: grpc.ChannelCredentials | None = None, poll_interval: float = 0.1,
              host: str = "127.0.0.1") -> Scaler:
        settings = grpc_settings or GrpcSettings(address=f"{host}:0", insecure=True)
        server = AutoscalerServer(config, settings, poll_interval=poll_interval)
        server.start()
        target = f"localhost:{server.grpc_port}" if credentials is not None else f"{host}:{server.grpc_port}"
        s = Scaler(server, target, credentials)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


@pytest.fixture
def scaler(sim: EngineSimulator, scalers: Callable[..., Scaler]) -> Scaler:
    return scalers(config_for(sim))
