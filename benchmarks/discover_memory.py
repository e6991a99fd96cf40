"""Peak memory of ``python -m ovirt_cloudprovider discover``, the engine simulator in its own process.

Starts the engine simulator (benchmarks/simproc.py) with N VMs, runs ``discover -o json`` and ``discover`` (the
table) ``--repeat`` times each as child processes, their output to /dev/null, and prints ``key=value`` lines:
``json_peak_rss_mb`` / ``table_peak_rss_mb`` (the largest ru_maxrss of the child processes: resource.getrusage
of each run, in its own wrapper process), ``json_s`` / ``table_s`` (wall clock, median) and ``json_bytes``.

    python benchmarks/discover_memory.py --vms 10000 [--hosts 1024] [--before DIR] [--write-results]

``--write-results`` writes the figures to ``benchmarks/results/discover-VMS[-hostsN].json``. Target: peak RSS
≤ 150 MB (``discover -o json`` peaked at 188 MB with 10,000 VMs when it built the whole document first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import record  # benchmarks/record.py: --write-results
from scale import out, progress  # benchmarks/scale.py
from simproc import REPO, SimProcess  # benchmarks/simproc.py (the script directory is on sys.path)

TARGET_MB = 150

# run one command with stdout to a file, then print its peak RSS (ru_maxrss of the child, KiB on Linux)
WRAPPER = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as fh:
    code = subprocess.call(sys.argv[2:], stdout=fh)
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def one_run(config: str, output: str, sink: Path, checkout: Path = REPO) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one ``discover`` with ``-o output``, of the code in ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(sink), sys.executable, "-m", "ovirt_cloudprovider",
                           "discover", "--config", config, "-o", output], capture_output=True, text=True,
                          env=env, cwd=checkout, timeout=1800, check=True)
    seconds = time.monotonic() - start
    code, kib = proc.stdout.split()
    if code != "0":
        raise RuntimeError(f"discover -o {output} exited {code}: {proc.stderr.strip()[-500:]}")
    return int(kib) / 1024, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--vms", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=None, help="the engine's hosts, all discovered")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each output (the largest peak is kept)")
    ap.add_argument("--before", type=Path, default=None, metavar="DIR",
                    help="measure the discover of the checkout DIR (an older commit: git worktree add DIR REV) "
                         "instead; its results go to discover-VMS-before.json, with its commit")
    ap.add_argument("--write-results", action="store_true",
                    help="also write the figures to benchmarks/results/discover-VMS.json")
    args = ap.parse_args()
    res: dict[str, Any] = {"vms": args.vms}
    checkout = REPO if args.before is None else args.before.resolve()
    if args.before is not None:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        res["code"] = f"before ({commit})"
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        progress(f"starting the engine simulator with {args.vms} VMs")
        hosts = () if args.hosts is None else ("--hosts", str(args.hosts))
        if args.hosts is not None:
            res["hosts"] = args.hosts
        with SimProcess("engine", workdir, "--vms", str(args.vms), *hosts) as engine:
            config = engine.info["config"]
            for output in ("json", "table"):
                sink = workdir / f"discover.{output}"
                peaks, times = [], []
                for _ in range(args.repeat):
                    peak, seconds = one_run(config, output, sink, checkout)
                    peaks.append(peak)
                    times.append(seconds)
                    progress(f"discover -o {output}: {peak:.1f} MB peak, {seconds:.1f} s")
                res[f"{output}_peak_rss_mb"] = max(peaks)
                res[f"{output}_s"] = statistics.median(times)
                if output == "json":
                    res["json_bytes"] = sink.stat().st_size
                    res["json_items"] = len(json.loads(sink.read_text()))
    for key, value in res.items():
        out(key, value)
    res["target_json_peak_rss_mb"] = "met" if res["json_peak_rss_mb"] <= TARGET_MB else "missed"
    out("target_json_peak_rss_mb", res["target_json_peak_rss_mb"])
    if args.write_results:
        record(f"discover-{args.vms}" + ("" if args.hosts is None else f"-hosts{args.hosts}")
               + ("" if args.before is None else "-before"), res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
