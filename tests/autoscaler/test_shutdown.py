"""SIGTERM while the cluster-autoscaler's calls are in flight (a rollout of the autoscaler's Deployment during a
scale-up): the process stops within its shutdown deadline and starts no new engine change after the signal. A
scale-up cut short leaves the VMs already created, which count toward the target size and are tagged and
started by the next process (tests/autoscaler/test_service.py, the restart between create and start)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc

from ovirt_cloudprovider.autoscaler.protocol import load
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.autoscaler.conftest import is_marked, start_autoscaler
from tests.helpers import wait_for


def _group_vms(sim: EngineSimulator, group: str) -> int:
    return sum(1 for v in list(sim.fleet.vms.values()) if is_marked(v.description, group))


def test_sigterm_during_a_scale_up_stops_creating(tmp_path: Path, sim: EngineSimulator) -> None:
    proc, port = start_autoscaler(sim, str(tmp_path / "ovirt.conf"), max_size=5)
    outcome: list[grpc.StatusCode] = []
    try:
        # every create and tag takes the engine 1.5 s: five VMs would take 15 s
        sim.set_latency(1.5, path_prefix="/ovirt-engine/api/vms", method="POST")
        pb, services = load()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")

        def scale_up() -> None:
            try:
                services.CloudProviderStub(channel).NodeGroupIncreaseSize(
                    pb.NodeGroupIncreaseSizeRequest(id="pool", delta=5), timeout=60)
                outcome.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                outcome.append(err.code())

        caller = threading.Thread(target=scale_up, daemon=True)
        caller.start()
        wait_for(lambda: _group_vms(sim, "pool") >= 1, 20, "the first VM created")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        caller.join(timeout=20)
        channel.close()
        sim.clear_faults()
        assert outcome and outcome[0] != grpc.StatusCode.OK, "the scale-up was cut short"
        assert _group_vms(sim, "pool") <= 2, "no create started after SIGTERM (one may have been in flight)"
    finally:
        proc.kill()
        proc.wait(timeout=10)
