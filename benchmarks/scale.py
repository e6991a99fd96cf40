"""The scale benchmark: N VMs, both simulators in their own processes, the real controller process.

Prints ``key=value`` lines (progress goes to stderr):

- engine side (this process, against the engine simulator process): ``engine_requests`` of one discovery,
  ``discovery_s`` (EngineClient.discover), ``transfer_s`` (the same requests, search pages and the lists it
  joins, fetched one after the other by a plain HTTP client, no parsing), ``discovery_over_transfer``,
  ``bytes_per_vm`` (XML as parsed, lists included) and ``wire_bytes_per_vm`` (gzip as sent),
  ``parse_ms_per_vm`` (engine/fastxml.py over those bytes; with ``--follow`` the SDK Reader) and
  ``map_ms_per_vm`` (joining the listed names in; with ``--follow`` SDK objects → VirtualMachine records):
  the median CPU time (time.process_time) of ``--parse-repeat`` reads of the same pages, with ``*_range``
  (min-max); ``--save-pages DIR`` writes those pages there, to profile the reader on them;
- Kubernetes side (``python -m ovirt_cloudprovider run`` against an empty Kubernetes API simulator
  process): ``register_s`` (the first sweep, which registers every running VM, discovery included;
  ``register_apply_s`` is its part after discovery, ``register_rate`` nodes per second of it),
  ``steady_writes`` (writes of the next periodic sweep), ``event_to_taint_s`` (max over ``--events``
  VM shutdowns, median as ``event_to_taint_median_s``) and ``peak_rss_mb`` (VmHWM of the controller).

    python benchmarks/scale.py --vms 1000
    python benchmarks/scale.py --vms 10000 --kube-api-qps 1000 --kube-api-burst 1000
    python benchmarks/scale.py --vms 10000 --engine-only [--follow] [--engine-concurrency 2]
    python benchmarks/scale.py --vms 10000 --hosts 1024 --kube-api-qps 1000 --kube-api-burst 1000

``--hosts N``: the engine has N hosts (OLVM documents 1,024 hosts and 10,000 VMs per engine as its largest tier)
and the controller discovers them too (``[filters] hosts = name=*``: one paged host search per discovery, their
nodes registered); the transfer floor then includes the host search pages.

``--write-results`` also writes the figures to ``benchmarks/results/scale-VMS.json``, from which
``python benchmarks/report.py --write`` regenerates the tables of README.md and docs/sizing.md.

``--follow`` measures the follow= search (every link inlined in each VM, read by the SDK: the discovery before
the lean one); ``--engine-only`` skips the Kubernetes side.

``--kube-api-qps`` / ``--kube-api-burst`` go to ``[controller]``: the defaults (20 / 30, like
kube-controller-manager) make a registration of N nodes take at least 2·N/20 seconds by design.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovirtsdk4.reader import Reader
from record import record  # benchmarks/record.py: --write-results
from simproc import REPO, SimProcess  # benchmarks/simproc.py (the script directory is on sys.path)

from ovirt_cloudprovider.core.records import TAINT_SHUTDOWN
from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.fastxml import Names, joined, read_names, read_vms
from ovirt_cloudprovider.engine.paging import LISTS
from ovirt_cloudprovider.engine.records import vm_record

API_PATH = "/ovirt-engine/api"
VMS_PATH = API_PATH + "/vms"
HOSTS_FILTER = "name=*"
SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"


def progress(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def out(key: str, value: Any) -> None:
    if isinstance(value, float):
        value = f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    print(f"{key}={value}", flush=True)


# --- engine side ---------------------------------------------------------------------------------

def _plain_fetch(info: dict[str, Any], queries: list[tuple[str, dict[str, str]]]) -> tuple[float, list[bytes], int]:
    """Fetch the pages of one discovery with http.client (keep-alive, gzip, like the SDK): seconds, bodies."""
    url = urllib.parse.urlsplit(info["base_url"])
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, context=ctx, timeout=120)
    form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api",
                                   "username": info["username"], "password": info["password"]})
    conn.request("POST", SSO_TOKEN_PATH, body=form, headers={
        "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(conn.getresponse().read())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/xml", "Version": "4",
               "Accept-Encoding": "gzip"}
    bodies: list[bytes] = []
    wire = 0
    start = time.perf_counter()
    for path, query in queries:
        conn.request("GET", f"{path}?{urllib.parse.urlencode(query)}" if query else path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        assert resp.status == 200, resp.status
        wire += len(raw)
        bodies.append(gzip.decompress(raw) if resp.getheader("Content-Encoding") == "gzip" else raw)
    seconds = time.perf_counter() - start
    conn.close()
    return seconds, bodies, wire


def engine_side(engine: SimProcess, n: int, page_size: int, repeat: int, *, follow: bool = False,
                concurrency: int = 2, parse_repeat: int = 5, save_pages: Path | None = None,
                hosts: int | None = None) -> dict[str, Any]:
    info = engine.info
    conn = ConnectionConfig(uri=info["url"], username=info["username"], password=info["password"],
                            ca_file=info["ca_file"], timeout=300)
    client = EngineClient(conn, page_size=page_size, lean=not follow, engine_concurrency=concurrency,
                          hosts=HOSTS_FILTER if hosts else None)
    res: dict[str, Any] = {}
    try:
        client.discover("tag=kubernetes")  # warm up: SSO login, TLS session
        times = []
        for i in range(repeat):
            engine.call("reset_requests")
            start = time.perf_counter()
            snap = client.discover("tag=kubernetes")
            times.append(time.perf_counter() - start)
            progress(f"discovery {i + 1}/{repeat}: {len(snap.vms)} VMs in {times[-1]:.2f} s")
        # the filter names a tag: the tag tree is listed too (is it one the engine has?)
        paths = [VMS_PATH, f"{API_PATH}/tags"] + ([] if follow else [f"{API_PATH}/{p}" for p in LISTS])
        if hosts and follow:
            paths.append(f"{API_PATH}/hosts")  # the host search (the lean discovery's list is there too)
        # the requests of the last discovery: its pages (each once) and lists
        sent = [(p, r["query"]) for p in paths for r in engine.call("requests", path=p)]
        res["engine_requests"] = len(sent)
        queries = list({json.dumps(q, sort_keys=True): q for q in sent}.values())
    finally:
        client.close()
    # the last page is short (maybe empty); the lean search also lists 4 collections and may send up to
    # engine_concurrency pages past the end
    res["engine_requests_expected"] = (math.ceil((n + 1) / page_size) + 1
                                       + (0 if follow else len(LISTS) + concurrency)
                                       + (math.ceil((hosts + 1) / page_size) if hosts else 0))
    res["discovery_s"] = statistics.median(times)
    transfers = []
    for _ in range(repeat):
        seconds, bodies, wire = _plain_fetch(info, queries)
        transfers.append(seconds)
    res["transfer_s"] = statistics.median(transfers)
    res["discovery_over_transfer"] = res["discovery_s"] / res["transfer_s"]
    res["bytes_per_vm"] = sum(map(len, bodies)) / n
    res["wire_bytes_per_vm"] = wire / n
    if save_pages is not None:
        save_pages.mkdir(parents=True, exist_ok=True)
        for i, ((full, _), body) in enumerate(zip(queries, bodies, strict=True)):
            (save_pages / f"{i:04d}-{full.rsplit('/', 1)[1]}.xml").write_bytes(body)
    parses: list[float] = []
    mappings: list[float] = []
    for _ in range(parse_repeat):
        parse_s, map_s, mapped = (_sdk_read if follow else _lean_read)(queries, bodies)
        assert mapped == n, (mapped, n)
        parses.append(parse_s)
        mappings.append(map_s)
    for key, spent in (("parse", parses), ("map", mappings)):
        res[f"{key}_ms_per_vm"] = 1000 * statistics.median(spent) / n
        res[f"{key}_ms_per_vm_range"] = f"{1000 * min(spent) / n:.4g}-{1000 * max(spent) / n:.4g}"
    return res


def _sdk_read(queries: list[tuple[str, dict[str, str]]], bodies: list[bytes]) -> tuple[float, float, int]:
    """CPU seconds of the SDK Reader over the pages, of SDK objects → records, and the records made."""
    start = time.process_time()
    pages = [Reader.read(body) for (full, _), body in zip(queries, bodies, strict=True) if full == VMS_PATH]
    parse = time.process_time() - start
    start = time.process_time()
    mapped = sum(1 for page in pages for vm in page if vm_record(vm) is not None)
    return parse, time.process_time() - start, mapped


def _lean_read(queries: list[tuple[str, dict[str, str]]], bodies: list[bytes]) -> tuple[float, float, int]:
    """CPU seconds of engine/fastxml.py over the pages and lists, of the join, and the VMs joined."""
    where = "benchmark"
    start = time.process_time()
    lists = {path: read_names(body, *LISTS[path], path, where)
             for (full, query), body in zip(queries, bodies, strict=True)
             if (path := full.rsplit("/", 1)[1]) in LISTS and "search" not in query}
    leans = [lean for (full, _), body in zip(queries, bodies, strict=True) if full == VMS_PATH
             for lean in read_vms(body, "page", where)]
    parse = time.process_time() - start
    names = Names(clusters=lists["clusters"], datacenters=lists["datacenters"], hosts=lists["hosts"],
                  instance_types=lists["instancetypes"])
    start = time.process_time()
    mapped = len({lean.vm.id: joined(lean, names, where) for lean in leans})
    return parse, time.process_time() - start, mapped


# --- the controller process --------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """Process ``pid``'s CPU time so far (user + system, all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


class Controller:
    """``python -m ovirt_cloudprovider run`` with JSON logs; its log lines are kept as dicts."""

    def __init__(self, config: str, kubeconfig: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ovirt_cloudprovider", "run", "--config", config, "--kubeconfig", kubeconfig,
             "--log-format", "json"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
            cwd=REPO)
        self.started = time.monotonic()
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                doc = json.loads(line)
            except ValueError:
                progress(f"controller: {line.rstrip()}")
                continue
            shown = doc.get("msg") in ("sweep finished", "applying actions", "targeted sweep finished")
            if shown or doc.get("level") in ("warning", "error"):
                progress("controller: " + " ".join(f"{k}={v}" for k, v in doc.items()
                                                   if k not in ("time", "logger")))
            with self._cond:
                self.lines.append((time.monotonic(), doc))
                self._cond.notify_all()

    def wait_for(self, msg: str, *, after: int = 0, timeout: float = 900) -> tuple[int, float, dict[str, Any]]:
        """The first line with ``msg`` at index ``after`` or later: (index, arrival time, fields)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.lines)):
                    if self.lines[i][1].get("msg") == msg:
                        return i, self.lines[i][0], self.lines[i][1]
                after = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"controller: no {msg!r} line (exit {self.proc.poll()})")
                self._cond.wait(min(left, 1.0))

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def cpu_seconds(self) -> float:
        """The controller process's CPU time so far (user + system, all its threads)."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def kube_side(engine: SimProcess, kube: SimProcess, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {}
    config = workdir / "controller.conf"
    text = Path(engine.info["config"]).read_text()
    extra = {"sync_interval": args.sync_interval, "event_poll_interval": args.poll, "page_size": args.page_size,
             "leader_elect": "false", "metrics_bind_address": "127.0.0.1:0",
             "engine_concurrency": args.engine_concurrency}
    if args.kube_api_qps is not None:
        extra["kube_api_qps"] = args.kube_api_qps
    if args.kube_api_burst is not None:
        extra["kube_api_burst"] = args.kube_api_burst
    if args.hosts:  # [filters] hosts: the hosts become nodes too
        text = text.replace("[filters]\n", f"[filters]\nhosts = {HOSTS_FILTER}\n", 1)
    # register_s measures placeholders for every running VM: [nodes] register is opt-in
    config.write_text(text + "\n[nodes]\nregister = true\n\n[controller]\n"
                      + "".join(f"{k} = {v}\n" for k, v in extra.items()))
    ctl = Controller(str(config), kube.info["kubeconfig"])
    try:
        i, _, _ = ctl.wait_for("sweep started")
        j, discovered_at, discovered = ctl.wait_for("discovery finished", after=i)
        i, finished_at, first = ctl.wait_for("sweep finished", after=j)
        res["register_s"] = float(first["seconds"])
        res["register_discovery_s"] = float(discovered["seconds"])
        res["register_apply_s"] = finished_at - discovered_at  # planning and the writes
        res["register_rate"] = int(first.get("n_register", 0)) / res["register_apply_s"]
        res["registered"] = int(first.get("n_register", 0))
        res["register_failed"] = int(first["failed"]) + int(first["conflicts"])
        nodes = kube.call("node_count")
        res["nodes"] = nodes
        progress(f"first sweep: {first.get('n_register', 0)} registered in {res['register_s']:.1f} s, "
                 f"{nodes} nodes")
        kube.call("reset_counts")
        i, _, steady = ctl.wait_for("sweep finished", after=i + 1)
        res["steady_writes"] = kube.call("writes")
        res["steady_actions"] = int(steady["actions"])
        res["steady_sweep_s"] = float(steady["seconds"])
        # event to taint: shut a running VM down, wait for its node's shutdown taint
        by_vm = {pid.rsplit("/", 1)[-1]: name for name, pid in kube.call("provider_ids").items()}
        running = [vm_id for vm_id, _, status in engine.call("vms") if status == "up" and vm_id in by_vm]
        latencies = []
        after = len(ctl.lines)
        for vm_id in running[:args.events]:
            name = by_vm[vm_id]
            t0 = time.monotonic()
            engine.call("set_status", vm=vm_id, status="down")
            while TAINT_SHUTDOWN not in kube.call("taints", name=name):
                if time.monotonic() - t0 > 60:
                    raise RuntimeError(f"{name}: no shutdown taint after 60 s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - t0)
            progress(f"event to taint {name}: {latencies[-1]:.2f} s")
            time.sleep(0.3)
        targeted = [d for _, d in ctl.lines[after:] if d.get("msg") == "targeted sweep finished"]
        res["event_to_taint_s"] = max(latencies)
        res["event_to_taint_median_s"] = statistics.median(latencies)
        res["targeted_sweep_s"] = max((float(d["seconds"]) for d in targeted), default=float("nan"))
        res["peak_rss_mb"] = ctl.peak_rss_mb()
    finally:
        ctl.stop()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="discoveries and plain transfers (median)")
    ap.add_argument("--events", type=int, default=5)
    ap.add_argument("--poll", type=float, default=1.0, help="[controller] event_poll_interval")
    ap.add_argument("--sync-interval", type=float, default=30.0)
    ap.add_argument("--kube-api-qps", type=float, default=None)
    ap.add_argument("--kube-api-burst", type=int, default=None)
    ap.add_argument("--skip-engine", action="store_true", help="only the Kubernetes side")
    ap.add_argument("--engine-only", action="store_true", help="only the engine side")
    ap.add_argument("--follow", action="store_true", help="the follow= search read by the SDK (the old discovery)")
    ap.add_argument("--engine-concurrency", type=int, default=2, help="[controller] engine_concurrency")
    ap.add_argument("--hosts", type=int, default=None,
                    help="oVirt hosts in the engine, discovered too ([filters] hosts = name=*); default: 9, not "
                         "discovered")
    ap.add_argument("--parse-repeat", type=int, default=5,
                    help="reads of the fetched pages (parse/map figures: median CPU time, and range)")
    ap.add_argument("--write-results", action="store_true",
                    help="also write the figures to benchmarks/results/scale-VMS.json (README, docs/sizing.md)")
    ap.add_argument("--save-pages", type=Path, default=None, metavar="DIR",
                    help="write the fetched pages and lists there (to profile the reader on them)")
    args = ap.parse_args()
    n = args.vms
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        progress(f"starting the engine simulator with {n} VMs")
        hosts = ("--hosts", str(args.hosts)) if args.hosts else ()
        with SimProcess("engine", workdir, "--vms", str(n), *hosts) as engine, SimProcess("kube", workdir) as kube:
            res: dict[str, Any] = {"vms": n, "hosts": args.hosts or 0, "page_size": args.page_size}
            if not args.skip_engine:
                res.update(engine_side(engine, n, args.page_size, args.repeat, follow=args.follow,
                                       concurrency=args.engine_concurrency, parse_repeat=args.parse_repeat,
                                       save_pages=args.save_pages, hosts=args.hosts))
            if not args.engine_only:
                progress("starting the controller")
                res.update(kube_side(engine, kube, workdir, args))
    res["benchmark_s"] = time.monotonic() - t0
    for key, value in res.items():
        out(key, value)
    targets: dict[str, Callable[[], bool]] = {
        "engine_requests": lambda: res["engine_requests"] <= res["engine_requests_expected"],
        "discovery_over_transfer": lambda: res["discovery_over_transfer"] <= 1.5,
        "bytes_per_vm": lambda: res["bytes_per_vm"] <= 14 * 1024,
        "parse_ms_per_vm": lambda: res["parse_ms_per_vm"] <= 0.2,
        "steady_writes": lambda: res["steady_writes"] == 0,
        "peak_rss_mb": lambda: res["peak_rss_mb"] <= 150,
        "event_to_taint_s": lambda: res["event_to_taint_s"] <= args.poll + 0.5,
        "register_s": lambda: res["register_s"] <= 60 * (n + (args.hosts or 0)) / 10_000,  # 60 s per 10,000 nodes
    }
    for key, check in targets.items():
        if key in res:
            res[f"target_{key}"] = "met" if check() else "missed"
            out(f"target_{key}", res[f"target_{key}"])
    if args.write_results:
        record(f"scale-{n}" + (f"-hosts-{args.hosts}" if args.hosts else "") + ("-follow" if args.follow else ""),
               res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
