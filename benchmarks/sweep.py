"""Full sweeps against both loopback simulators: writes and wall time for a fleet of N VMs, and the
engine-event-to-taint latency of the running controller.

Targets: a steady sweep makes zero writes; a VM shutdown becomes the shutdown taint within 5 s of the
engine event.

    python benchmarks/sweep.py [--vms 1000] [--events 5] [--write-results]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from record import record  # benchmarks/record.py: --write-results

from ovirt_cloudprovider.app import run_controller
from ovirt_cloudprovider.controller import run_sweep
from ovirt_cloudprovider.core.records import RUNNING_STATUSES, TAINT_SHUTDOWN
from ovirt_cloudprovider.core.settings import Config, ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.kube.client import load_api_client
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator


def _config(engine: EngineSimulator) -> Config:
    return Config(path="<benchmark>",
                  connection=ConnectionConfig(uri=engine.url, username=engine.username, password=engine.password,
                                              ca_file=engine.ca_file, timeout=120),
                  filters=FiltersConfig(vms="tag=kubernetes"), nodes=NodesConfig(register=True))


def sweeps(n: int, workdir: Path, figures: dict[str, float]) -> bool:
    with EngineSimulator(generate_fleet(n, seed=2)) as engine, KubeApiSimulator() as kube:
        config = _config(engine)
        api = load_api_client(kube.write_kubeconfig(workdir / "kubeconfig"))
        client = EngineClient(config.connection, page_size=config.controller.page_size)
        writer = NodeWriter(api)
        print(f"{'sweep':<8} {'seconds':>8} {'engine_req':>10} {'kube_writes':>11} {'actions':>8}")
        ok = True
        for label in ("first", "steady", "steady"):
            cache = NodeCache(api)
            cache.start()
            cache.wait_synced(60)
            kube.reset_counts()
            engine.reset_requests()
            t0 = time.perf_counter()
            report = run_sweep(config=config, engine=client, nodes=cache.nodes(), writer=writer)
            seconds = time.perf_counter() - t0
            cache.stop()
            writes = kube.writes("nodes") + kube.writes("nodes/status")
            print(f"{label:<8} {seconds:>8.2f} {engine.request_count('/ovirt-engine/api/vms'):>10} {writes:>11} "
                  f"{len(report.plan.actions) if report.plan else 0:>8}")
            if label == "steady":
                ok = ok and writes == 0
            figures[f"{label}_sweep_s"] = max(seconds, figures.get(f"{label}_sweep_s", 0.0))
            figures[f"{label}_writes"] = max(writes, figures.get(f"{label}_writes", 0))
        client.close()
        running = sum(vm.status in RUNNING_STATUSES for vm in engine.fleet.vms.values())
        print(f"nodes: {len(kube.list_nodes())} for {running} running VMs of {n}")
        figures["nodes"] = len(kube.list_nodes())
        return ok


def event_latency(n: int, events: int, workdir: Path, figures: dict[str, float]) -> bool:
    with EngineSimulator(generate_fleet(n, seed=3)) as engine, KubeApiSimulator() as kube:
        config = replace(_config(engine), controller=replace(
            ControllerConfig(), sync_interval=300.0, event_poll_interval=1.0, leader_elect=False,
            metrics_bind_address="127.0.0.1:0", kube_api_qps=1000.0, kube_api_burst=1000))
        stop = threading.Event()
        t = threading.Thread(target=run_controller, kwargs={
            "config": config, "kubeconfig": kube.write_kubeconfig(workdir / "kc2"), "stop": stop}, daemon=True)
        t.start()
        try:
            running = [vm for vm in engine.fleet.vms.values() if vm.status == "up"]
            deadline = time.monotonic() + 120
            while len(kube.list_nodes()) < len(running) and time.monotonic() < deadline:
                time.sleep(0.1)
            by_id = {n["spec"].get("providerID", "")[8:]: n["metadata"]["name"] for n in kube.list_nodes()}
            latencies = []
            for vm in running[:events]:
                name = by_id[vm.id]
                t0 = time.monotonic()
                engine.set_status(vm.id, "down")
                while time.monotonic() - t0 < 30:
                    node = kube.get_node(name) or {}
                    if any(x["key"] == TAINT_SHUTDOWN for x in node.get("spec", {}).get("taints") or []):
                        break
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t0)
        finally:
            stop.set()
            t.join(10)
    print(f"event to taint ({n} VMs, events polled every 1 s, targeted sweep: one GET per VM): "
          f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s over {len(latencies)} events "
          f"(target 5 s: {5 / max(latencies):.1f}x headroom)")
    figures["event_to_taint_median_s"] = statistics.median(latencies)
    figures["event_to_taint_s"] = max(latencies)
    return max(latencies) < 5.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--events", type=int, default=5)
    ap.add_argument("--write-results", action="store_true", help="also write benchmarks/results/sweep-VMS.json")
    args = ap.parse_args()
    figures: dict[str, float] = {"vms": args.vms}
    with tempfile.TemporaryDirectory() as d:
        ok = sweeps(args.vms, Path(d), figures)
        ok = event_latency(args.vms, args.events, Path(d), figures) and ok
    print("result:", "OK" if ok else "FAIL")
    if args.write_results:
        record(f"sweep-{args.vms}", {**figures, "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
