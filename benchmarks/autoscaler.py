"""The autoscaler's figures: a scale-up of 10 VMs, and a Refresh over many groups, against the engine simulator in its
own process, the service (ovirt-cloudprovider autoscaler) in this one, driven by a gRPC client from our .proto.

Prints ``key=value`` lines:

- ``scaleup_seconds``: from ``NodeGroupIncreaseSize(delta=N)`` to N VMs ``up`` in the simulator (with the
  simulator's ``--image-lock-seconds`` disk copy and ``--boot-seconds`` boot, and the service's poll interval);
- ``increase_call_seconds``: how long the IncreaseSize call itself took (the creates; the starts come later);
- ``scaleup_engine_requests``: engine API requests from the call until the N VMs are up (creates, tags, starts,
  the starter's searches);
- ``refresh_engine_requests``, ``refresh_seconds`` and ``refresh_service_cpu_seconds`` (this process: reading the
  answers): one Refresh at ``--groups`` groups holding ``--group-vms``
  VMs in all (one paged search for every group, never one per group).

``--write-results`` also writes them to ``benchmarks/results/autoscaler.json`` (with the command, date, machine and
load: benchmarks/record.py), from which ``python benchmarks/report.py --write`` makes the README's table.

    python benchmarks/autoscaler.py [--scale-up 10] [--groups 50] [--group-vms 1000] [--write-results]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from record import record  # benchmarks/record.py: --write-results
from simproc import SimProcess  # benchmarks/simproc.py (the script directory is on sys.path)

from ovirt_cloudprovider.autoscaler.protocol import load
from ovirt_cloudprovider.autoscaler.server import AutoscalerServer, GrpcSettings
from ovirt_cloudprovider.config import load_config
from ovirt_cloudprovider.core.nodegroups import mark
from ovirt_cloudprovider.core.settings import AutoscalerConfig, Config, NodeGroupConfig

TEMPLATE = "k8s-node"


def _config(path: str, groups: int, key_file: Path) -> Config:
    base = load_config(path)
    nodegroups = [NodeGroupConfig(name="up", template=TEMPLATE, cluster="east-a", max_size=100, tags=("kubernetes",))]
    nodegroups += [NodeGroupConfig(name=f"g{i}", template=TEMPLATE, cluster="east-a", max_size=1000)
                   for i in range(groups)]
    return replace(base, nodegroups=tuple(nodegroups), autoscaler=AutoscalerConfig(mark_key_file=str(key_file)),
                   controller=replace(base.controller, metrics_bind_address="127.0.0.1:0"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, SimProcess(
            "engine", Path(tmp), "--vms", "20", "--template", TEMPLATE, "--image-lock-seconds",
            str(args.image_lock_seconds), "--boot-seconds", str(args.boot_seconds)) as engine:
        key = secrets.token_bytes(32)
        (Path(tmp) / "mark-key").write_bytes(key)
        server = AutoscalerServer(_config(engine.info["config"], args.groups, Path(tmp) / "mark-key"),
                                  GrpcSettings(address="127.0.0.1:0", insecure=True),
                                  poll_interval=args.poll_interval)
        server.start()
        pb, services = load()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = services.CloudProviderStub(channel)
        try:
            stub.Refresh(pb.RefreshRequest(), timeout=60)
            before = engine.call("api_requests")
            started = time.monotonic()
            stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="up", delta=args.scale_up), timeout=120)
            out["increase_call_seconds"] = round(time.monotonic() - started, 3)
            deadline = started + 300
            while engine.call("statuses", description=mark("up") + ":").get("up", 0) < args.scale_up:
                if time.monotonic() > deadline:
                    raise RuntimeError("the VMs never came up")
                time.sleep(0.05)
            out["scaleup_seconds"] = round(time.monotonic() - started, 3)
            out["scaleup_engine_requests"] = engine.call("api_requests") - before
            per_group = args.group_vms // args.groups
            for i in range(args.groups):
                engine.call("create_group_vms", group=f"g{i}", key_hex=key.hex(), n=per_group)
            before = engine.call("api_requests")
            started, cpu = time.monotonic(), time.process_time()
            stub.Refresh(pb.RefreshRequest(), timeout=120)
            out["refresh_seconds"] = round(time.monotonic() - started, 3)
            out["refresh_service_cpu_seconds"] = round(time.process_time() - cpu, 3)
            out["refresh_engine_requests"] = engine.call("api_requests") - before
            sizes = [stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id=f"g{i}"), timeout=10).targetSize
                     for i in range(args.groups)]
            out["refresh_group_vms"] = sum(sizes)
        finally:
            channel.close()
            server.stop()
    out.update(groups=args.groups, group_vms=args.group_vms, image_lock_seconds=args.image_lock_seconds,
               boot_seconds=args.boot_seconds,
               poll_interval=args.poll_interval, scale_up=args.scale_up)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--scale-up", type=int, default=10)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--group-vms", type=int, default=1000)
    ap.add_argument("--image-lock-seconds", type=float, default=1.0)
    ap.add_argument("--boot-seconds", type=float, default=1.0)
    ap.add_argument("--poll-interval", type=float, default=2.0, help="the service's starter poll (its default: 2)")
    ap.add_argument("--write-results", action="store_true", help="also write benchmarks/results/autoscaler.json")
    args = ap.parse_args()
    figures = run(args)
    for key, value in figures.items():
        print(f"{key}={value}")
    sys.stdout.flush()
    if args.write_results:
        record("autoscaler", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
