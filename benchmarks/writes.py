"""The cost of registering nodes: N REGISTER actions by the real NodeWriter against the Kubernetes API simulator
in its own process (optionally with the node informer watching, as in the controller).

Prints ``key=value`` lines: ``writes_per_node`` (node writes the simulator counted, per node),
``requests_per_node`` (all requests, Events included), ``client_cpu_ms_per_node`` (CPU of this process, the
writer and the informer, per node), ``server_cpu_ms_per_node`` (CPU of the simulator process, per node) and
``register_rate`` (nodes per second, wall clock; it depends on the machine's load, the CPU figures less so).

    python benchmarks/writes.py --nodes 2000 [--workers 8] [--informer] [--repeat 3] [--write-results]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import record  # benchmarks/record.py: --write-results
from simproc import SimProcess  # benchmarks/simproc.py (the script directory is on sys.path)

from ovirt_cloudprovider.core.records import Action, ActionKind, NodeAddress, NodeInfo, NodeSpec
from ovirt_cloudprovider.kube.client import load_api_client
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.kube.writer import NodeWriter

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def action(i: int, run: int) -> Action:
    vm_id = f"6f1c8f0e-{run:04d}-4b4b-9c9c-{i:012d}"
    name = f"r{run}-vm{i:05d}"
    spec = NodeSpec(
        name=name, provider_id=f"ovirt://{vm_id}", vm_id=vm_id, vm_name=name, status="up",
        addresses=(NodeAddress("InternalIP", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"),
                   NodeAddress("Hostname", f"{name}.example.test")),
        labels=(("ovirt.org/host", f"host-{i % 40}"), ("topology.kubernetes.io/zone", f"cluster-{i % 4}")),
        shutdown=False, running=True, fqdn=f"{name}.example.test", cpus=4, memory_bytes=8 * 2**30,
        node_info=NodeInfo(system_uuid=vm_id, os_image="Fedora Linux 39", kernel_version="6.5.6-300.fc39.x86_64",
                           architecture="amd64", operating_system="linux"))
    return Action(kind=ActionKind.REGISTER, node=name, reason="RegisteredNode",
                  message=f"Registered node {name} for VM {name}.", vm_id=vm_id, spec=spec)


def one_run(kube: SimProcess, n: int, run: int, args: argparse.Namespace) -> dict[str, float]:
    api = load_api_client(kube.info["kubeconfig"])
    cache = NodeCache(api) if args.informer else None
    if cache is not None:
        cache.start()
        cache.wait_synced(30)
    writer = NodeWriter(api, workers=args.workers)
    actions = [action(i, run) for i in range(n)]
    kube.call("reset_counts")
    server0, client0, wall0 = cpu_seconds(kube.pid), time.process_time(), time.perf_counter()
    result = writer.apply(actions)
    if cache is not None:  # until the informer has seen every node
        deadline = time.monotonic() + 60
        while sum(1 for node in cache.nodes() if node.name.startswith(f"r{run}-")) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("the informer did not see every node")
            time.sleep(0.01)
    wall = time.perf_counter() - wall0
    client, server = time.process_time() - client0, cpu_seconds(kube.pid) - server0
    if cache is not None:
        cache.stop()
    assert result.applied == n, result.errors[:3]
    node_writes = kube.call("writes", resource="nodes") + kube.call("writes", resource="nodes/status")
    return {"writes_per_node": node_writes / n,
            "requests_per_node": kube.call("count") / n,
            "client_cpu_ms_per_node": 1000 * client / n, "server_cpu_ms_per_node": 1000 * server / n,
            "register_rate": n / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="runs (each registers --nodes new nodes); medians")
    ap.add_argument("--informer", action="store_true", help="the node informer watches, as in the controller")
    ap.add_argument("--write-results", action="store_true",
                    help="also write the figures to benchmarks/results/writes[-informer].json")
    args = ap.parse_args()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as d, SimProcess("kube", Path(d)) as kube:
        for run in range(args.repeat):
            runs.append(one_run(kube, args.nodes, run, args))
            print(f"[writes] run {run + 1}: " + " ".join(f"{k}={v:.3g}" for k, v in runs[-1].items()),
                  file=sys.stderr, flush=True)
    res: dict[str, Any] = {"nodes": args.nodes, "workers": args.workers, "informer": args.informer}
    for key in runs[0]:
        values = [r[key] for r in runs]
        res[key] = statistics.median(values)
        res[f"{key}_range"] = f"{min(values):.3g}-{max(values):.3g}"
    for key, value in res.items():
        print(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}", flush=True)
    if args.write_results:
        record("writes-informer" if args.informer else "writes", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
