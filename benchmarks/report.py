"""The figures of README.md and docs/sizing.md, generated from the committed benchmark results.

Every table of measured figures in the documents sits between ``<!-- figures: NAME ... -->`` and
``<!-- /figures: NAME -->`` and is made here from ``benchmarks/results/*.json`` (written by the benchmarks with
``--write-results``, see benchmarks/record.py); a few figures in the prose are checked the same way. A test
(tests/test_figures.py) fails when a document differs from what this script makes of the committed results.

    python benchmarks/report.py            # check: exit 1 and one line per difference
    python benchmarks/report.py --write    # rewrite the documents' tables and checked figures
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovirt_cloudprovider.core.settings import ControllerConfig
from ovirt_cloudprovider.engine.paging import LISTS as ENGINE_LISTS
from ovirt_cloudprovider.engine.provisioner import GROUP_PAGE_SIZE

REPO = Path(__file__).resolve().parent.parent
LISTS = len(ENGINE_LISTS)  # the lists a lean discovery joins
DEFAULT_QPS = ControllerConfig().kube_api_qps  # registering N nodes takes about 2 x N / qps seconds
Results = dict[str, dict[str, Any]]


# --- numbers ------------------------------------------------------------------------------------------------

def _span(value: Any, fmt: Callable[[float], str]) -> str:
    """A number, a {"min", "max"} range of several runs ("a to b"), or a text kept as recorded."""
    if isinstance(value, dict):
        low, high = fmt(value["min"]), fmt(value["max"])
        return low if low == high else f"{low} to {high}"
    if isinstance(value, str):
        return value
    return fmt(value)


def _high(value: Any) -> float:
    return float(value["max"] if isinstance(value, dict) else value)


def sec(v: float) -> str:
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


def ms(v: float) -> str:
    return f"{v:.3g}"


def mb(v: float) -> str:
    return f"{v:.4g}"


def whole(v: float) -> str:
    return f"{v:,.0f}"


# --- the scale table ----------------------------------------------------------------------------------------

def expected_requests(f: dict[str, Any]) -> int:
    if "engine_requests_expected" in f:  # as the benchmark computed it (the tag tree and host search included)
        return int(f["engine_requests_expected"])
    page_size, concurrency = int(f.get("page_size", 100)), int(f.get("engine_concurrency", 2))
    hosts = f.get("hosts")  # the host search's pages, when it discovered hosts
    return math.ceil((int(f["vms"]) + 1) / page_size) + LISTS + concurrency + \
        (math.ceil((int(hosts) + 1) / page_size) if hosts else 0)


# figure -> whether it meets the scale target (the same targets as benchmarks/scale.py)
TARGETS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "engine_requests": lambda f: _high(f["engine_requests"]) <= expected_requests(f),
    "bytes_per_vm": lambda f: _high(f["bytes_per_vm"]) <= 14 * 1024,
    "discovery_s": lambda f: _high(f["discovery_over_transfer"]) <= 1.5,
    "parse_ms_per_vm": lambda f: _high(f["parse_ms_per_vm"]) <= 0.2,
    "steady_writes": lambda f: _high(f["steady_writes"]) == 0,
    "register_s": lambda f: _high(f["register_s"]) <= 60 * (f["vms"] + f.get("hosts", 0)) / 10_000,
    "peak_rss_mb": lambda f: _high(f["peak_rss_mb"]) <= 150,
    "event_to_taint_s": lambda f: _high(f["event_to_taint_s"]) <= 1.5,
}


def _requests(f: dict[str, Any]) -> str:
    text = _span(f["engine_requests"], whole)
    if "host_requests" in f:
        text += f" ({f['host_requests']} of the host search)"
    if "engine_pages" in f:
        text += (f" ({f['engine_pages']} pages, {f['engine_lists']} lists, {f['engine_past_end']} sent past "
                 "the end)")
    return text


def _hosts_in_bytes(f: dict[str, Any]) -> int:
    """The hosts whose search pages a run counted in bytes_per_vm (benchmarks/scale.py --hosts)."""
    return int(f.get("hosts") or 0) if "bytes_per_host" not in f else 0


def _bytes(f: dict[str, Any]) -> str:
    if isinstance(f["bytes_per_vm"], str):
        return f["bytes_per_vm"]
    hosts = _hosts_in_bytes(f)
    return f"{_span(f['bytes_per_vm'], whole)} / {_span(f['wire_bytes_per_vm'], whole)}" + \
        (f" (the search of {hosts:,} hosts included)" if hosts else "")


def _discovery(f: dict[str, Any]) -> str:
    if "discovery_s" not in f:
        return _span(f["discovery_over_transfer"], lambda v: f"{v:.2f}")
    return (f"{_span(f['discovery_s'], sec)} / {_span(f['transfer_s'], sec)} = "
            f"{_span(f['discovery_over_transfer'], lambda v: f'{v:.2f}')}")


def _parse(f: dict[str, Any]) -> str:
    text = _span(f["parse_ms_per_vm"], ms)
    if "parse_ms_per_vm_range" in f:
        low, high = (float(x) for x in f["parse_ms_per_vm_range"].split("-"))
        text += f" ({ms(low)} to {ms(high)})"
    if "parse_reader" in f:
        text += f" ({f['parse_reader']})"
    return text


def _register(f: dict[str, Any]) -> str:
    text = _span(f["register_s"], sec)
    if "register_apply_s" in f:
        text += (f" (discovery {sec(f['register_discovery_s'])}, apply {sec(f['register_apply_s'])}; "
                 f"{f['register_rate']:.0f} nodes/s)")
    return text


def _event(f: dict[str, Any]) -> str:
    text = _span(f["event_to_taint_s"], sec)
    if "targeted_sweep_s" in f:
        text += f" (a targeted sweep takes {sec(f['targeted_sweep_s'])} s)"
    return text


@dataclass(frozen=True)
class Row:
    figure: str
    label: str
    target: str
    cell: Callable[[dict[str, Any]], str]


SCALE_ROWS = [
    Row("engine_requests", "engine_requests per discovery", "ceil(N/page) + constant", _requests),
    Row("bytes_per_vm", "bytes_per_vm (XML, lists included) / wire (gzip)", "≤ 14 KB", _bytes),
    Row("discovery_s", "discovery_s / transfer_s", "ratio ≤ 1.5", _discovery),
    Row("parse_ms_per_vm", "parse_ms_per_vm (CPU time, median of the reads)", "≤ 0.2", _parse),
    Row("map_ms_per_vm", "map_ms_per_vm (joining the listed names by id)", "", lambda f: _span(f["map_ms_per_vm"], ms)),
    Row("steady_writes", "steady_writes", "0", lambda f: _span(f["steady_writes"], whole)),
    Row("register_s", "register_s (first sweep, discovery included)", "≤ 60 s", _register),
    Row("peak_rss_mb", "peak_rss_mb (controller VmHWM)", "≤ 150", lambda f: _span(f["peak_rss_mb"], mb)),
    Row("event_to_taint_s", "event_to_taint_s (max of 5 shutdowns, poll 1 s)", "≤ 1.5 s", _event),
]


def _cell(row: Row, f: dict[str, Any], judge: bool) -> str:
    if row.figure not in f:
        return ""
    text = row.cell(f)
    if row.figure == "bytes_per_vm" and _hosts_in_bytes(f):
        judge = False  # the host search's pages counted per VM too: no per-VM figure to judge
    if judge and row.figure in TARGETS:
        text += " (met)" if TARGETS[row.figure](f) else " (missed)"
    return text


def sources(results: Results, *names: str) -> list[str]:
    lines = []
    for name in names:
        r = results[name]
        machine = r["machine"].get("description") or (
            f"{r['machine']['cpus']} cores, {r['machine']['arch']}, Python {r['machine']['python']}, "
            f"load average {' / '.join(str(x) for x in r['machine']['load_average'])}")
        note = r.get("provenance") or ("seeded from the README's last measured figures" if "note" in r else "")
        lines.append(f"`benchmarks/results/{name}.json`: {r['date']}, {machine}, `{r['command']}`"
                     + (f" ({note})" if note else ""))
    return ["Source: " + "; ".join(lines) + "."]


def scale_table(results: Results) -> list[str]:
    start, small, large = results["scale-start"]["figures"], results["scale-1000"]["figures"], \
        results["scale-10000"]["figures"]
    tier = results[LARGEST_TIER]["figures"] if LARGEST_TIER in results else None
    lines = ["| figure | target | start, 10,000 VMs | 1,000 VMs | 10,000 VMs |"
             + (f" {fleet_label(tier, ' VMs')} (OLVM's largest tier) |" if tier else ""),
             "|---|---|---|---|---|" + ("---|" if tier else "")]
    for row in SCALE_ROWS:
        lines.append(f"| {row.label} | {row.target} | {_cell(row, start, False)} | {_cell(row, small, False)} | "
                     f"{_cell(row, large, True)} |" + (f" {_cell(row, tier, True)} |" if tier else ""))
    names = ["scale-start", "scale-1000", "scale-10000"] + ([LARGEST_TIER] if tier else [])
    return [*lines, "", *sources(results, *names)]


# --- join latency ------------------------------------------------------------------------------------------

JOIN_RUNS = (("join-10000-before", "before: a full sweep per waiting node"),
             ("join-10000-batched", "then: targeted sweeps, batch after batch"), ("join-10000", "now"))
JOIN_TARGET_P99 = 2.0


def _join_rows(f: dict[str, Any], judge: bool) -> list[str]:
    met = (" (met)" if f["burst_p99_s"] <= JOIN_TARGET_P99 else " (missed)") if judge else ""
    addresses = (f"{sec(f['burst_addressed_p50_s'])} / {sec(f['burst_addressed_p99_s'])} s "
                 f"({sec(f['burst_address_lag_max_s'])} s)" if "burst_addressed_p50_s" in f else "")
    meanwhile = f" ({f['burst_joined_meanwhile']:,} joined while one applied)" \
        if f.get("burst_joined_meanwhile") else ""
    return [f"{sec(f['single_median_s'])} s ({sec(f['single_s'])} s)",
            f"{sec(f['burst_p50_s'])} / {sec(f['burst_p99_s'])}{met} / {sec(f['burst_max_s'])} s",
            addresses,
            f"{sec(f['burst_all_s'])} s (the creates took {sec(f['burst_create_s'])} s)",
            f"{f['burst_full_sweeps']} full, {f['burst_targeted_sweeps']} targeted{meanwhile}",
            (f"{f['burst_controller_cpu_ms_per_join']:.2f} ms ({sec(f['burst_controller_cpu_s'])} s; the API "
             f"simulator's {sec(f['burst_kube_api_cpu_s'])} s)" if "burst_controller_cpu_s" in f else ""),
            f"{mb(f['peak_rss_mb'])} MB"]


def join_table(results: Results) -> list[str]:
    runs = [(name, label) for name, label in JOIN_RUNS if name in results]
    figures = [results[name]["figures"] for name, _ in runs]
    f = figures[-1]
    labels = ["one kubelet joins: median (max)",
              f"a burst of {f['burst']:,}: p50 / p99 (target ≤ {JOIN_TARGET_P99:g} s) / max",
              "the burst's addresses (status patch): p50 / p99 from the create (longest after the initialization)",
              "the burst, first create to last initialization", "sweeps during the burst",
              "the controller's CPU per join during the burst (in all; the API simulator's meanwhile)",
              "peak resident memory of the controller"]
    cells = [_join_rows(g, judge=i == len(figures) - 1) for i, g in enumerate(figures)]
    lines = [f"| from a kubelet's Node create to its initialization, {f['vms']:,} VMs | "
             + " | ".join(label for _, label in runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {label} | " + " | ".join(c[i] for c in cells) + " |" for i, label in enumerate(labels)]
    return [*lines, "", *sources(results, *(name for name, _ in runs))]


# --- discover's memory --------------------------------------------------------------------------------------

DISCOVER_RUNS = ("discover-10000-before", "discover-10000")


def discover_table(results: Results) -> list[str]:
    lines = ["| `discover` at | VMs | peak resident memory, `-o json` (target ≤ 150 MB) | `-o table` |",
             "|---|---|---|---|"]
    names = [name for name in DISCOVER_RUNS if name in results]
    for name in names:
        f = results[name]["figures"]
        judge = " (met)" if f["json_peak_rss_mb"] <= 150 else " (missed)"
        table = f"{mb(f['table_peak_rss_mb'])} MB" if "table_peak_rss_mb" in f else ""
        lines.append(f"| {f.get('code', 'now')} | {f['vms']:,} | {mb(f['json_peak_rss_mb'])} MB{judge} | {table} |")
    return [*lines, "", *sources(results, *names)]


# --- the image ----------------------------------------------------------------------------------------------

def image_table(results: Results) -> list[str]:
    f = results["image"]["figures"]
    lines = ["| the image's virtualenv (Python " + f["python"] + ") | MB |", "|---|---|",
             f"| as the Containerfile builds it, after the cuts | {mb(f['venv_mb'])} |",
             f"| before the cuts | {mb(f['venv_mb_before_cuts'])} |"]
    lines += [f"| largest part: `{name}` | {mb(size)} |" for name, size in f["largest_parts_mb"].items()]
    lines += ["", f"The controller's imports at start: {f['import_cpu_s']:.2g} s of CPU and "
              f"{f['import_peak_rss_mib']:.0f} MiB peak with the byte code kept, "
              f"{f['import_cpu_s_without_bytecode']:.2g} s and {f['import_peak_rss_mib_without_bytecode']:.0f} MiB "
              "without it."]
    return [*lines, "", *sources(results, "image")]


# --- the autoscaler -----------------------------------------------------------------------------------------

def autoscaler_table(results: Results) -> list[str]:
    f = results["autoscaler"]["figures"]
    n, groups, vms = f["scale_up"], f["groups"], f["group_vms"]
    lines = ["| figure (engine simulator, its own process) | measured |", "|---|---|",
             f"| `NodeGroupIncreaseSize(delta={n})`: the call (the creates and tags) | "
             f"{_span(f['increase_call_seconds'], sec)} s |",
             f"| from that call to {n} VMs `up` (simulated disk copy {sec(f['image_lock_seconds'])} s and boot "
             f"{sec(f['boot_seconds'])} s, the starter's poll {sec(f['poll_interval'])} s) | "
             f"{_span(f['scaleup_seconds'], sec)} s |",
             f"| engine requests of that scale-up (creates, tags, starts, the starter's searches) | "
             f"{_span(f['scaleup_engine_requests'], whole)} |",
             f"| engine requests of one `Refresh` at {groups} groups holding {vms:,} VMs (one paged search, "
             f"{GROUP_PAGE_SIZE} VMs a page, never one per group) | {_span(f['refresh_engine_requests'], whole)} |",
             f"| that `Refresh`: its duration / the service's CPU | {_span(f['refresh_seconds'], sec)} s / "
             f"{_span(f['refresh_service_cpu_seconds'], sec)} s |"]
    return [*lines, "", *sources(results, "autoscaler")]


# --- docs/sizing.md -----------------------------------------------------------------------------------------

LARGEST_TIER = "scale-10000-hosts-1024"  # OLVM's largest documented tier: 1,024 hosts and 10,000 VMs per engine
SCALE_RUNS = ("scale-1000", "scale-10000", LARGEST_TIER)


def fleet_label(f: dict[str, Any], unit: str = "") -> str:
    """The fleet of a scale run: its VMs (``unit`` after the number), and its hosts when it discovered some."""
    return f"{f['vms']:,}{unit}" + (f" + {f['hosts']:,} hosts" if f.get("hosts") else "")


def _scales(results: Results) -> list[dict[str, Any]]:
    return [results[name]["figures"] for name in SCALE_RUNS if name in results]


def _scale_names(results: Results) -> list[str]:
    return [name for name in SCALE_RUNS if name in results]


def engine_load_table(results: Results) -> list[str]:
    lines = ["| VMs | engine requests per full sweep | one per VM would be | bytes per VM, XML / gzip on the wire | "
             "per sweep, XML / wire | per second at `sync_interval = 60` |", "|---|---|---|---|---|---|"]
    for f in _scales(results):
        n, xml, wire = f["vms"], f["bytes_per_vm"], f["wire_bytes_per_vm"]
        hosts = int(f.get("hosts") or 0)
        host_xml = f.get("bytes_per_host", 0) * hosts
        with_hosts = f" (hosts: {whole(f['bytes_per_host'])} XML each)" if "bytes_per_host" in f else ""
        lines.append(f"| {fleet_label(f)} | {_requests(f)} | {n + hosts + 1:,} | {whole(xml)} / {whole(wire)}"
                     f"{with_hosts} | {(xml * n + host_xml) / 1e6:.1f} / {wire * n / 1e6:.1f} MB"
                     f"{' (VMs)' if host_xml else ''} | "
                     f"{_high(f['engine_requests']) / 60:.2g} requests, {(xml * n + host_xml) / 60e6:.2g} MB |")
    return [*lines, "", *sources(results, *_scale_names(results))]


def time_table(results: Results) -> list[str]:
    lines = ["| VMs | nodes | discovery | first sweep, rate limit raised (registers every node) | "
             f"first sweep at the default {DEFAULT_QPS} qps (computed: 2·nodes / {DEFAULT_QPS}) | "
             "engine event to taint |", "|---|---|---|---|---|---|"]
    for f in _scales(results):
        at_default = 2 * f["nodes"] / DEFAULT_QPS
        minutes = f" ({at_default / 60:.0f} min)" if at_default >= 120 else ""
        lines.append(f"| {fleet_label(f)} | {f['nodes']:,} | {_span(f['discovery_s'], sec)} s | "
                     f"{_span(f['register_s'], sec)} s | about {at_default:.0f} s{minutes} | "
                     f"{_span(f['event_to_taint_s'], sec)} s |")
    return [*lines, "", *sources(results, *_scale_names(results))]


def memory_table(results: Results) -> list[str]:
    lines = ["| VMs | nodes | peak resident memory of the controller (VmHWM) |", "|---|---|---|"]
    for f in _scales(results):
        lines.append(f"| {fleet_label(f)} | {f['nodes']:,} | {_span(f['peak_rss_mb'], mb)} MB |")
    return [*lines, "", *sources(results, *_scale_names(results))]


BLOCKS: dict[str, dict[str, Callable[[Results], list[str]]]] = {
    "README.md": {"scale": scale_table, "image": image_table, "autoscaler": autoscaler_table, "join": join_table},
    "docs/sizing.md": {"engine-load": engine_load_table, "time": time_table, "memory": memory_table,
                       "join": join_table, "discover": discover_table},
}


# --- figures in the prose -----------------------------------------------------------------------------------

def _intro(results: Results) -> str:
    f = results["scale-1000"]["figures"]
    return f"({_high(f['engine_requests']):.0f} requests for {f['vms']:,} VMs instead of {f['vms'] + 1:,})"


def _registration(results: Results) -> str:
    small, large = (results[name]["figures"] for name in ("scale-1000", "scale-10000"))
    return (f"{2 * small['nodes'] / DEFAULT_QPS:.0f} s for {small['nodes']:,} nodes, about "
            f"{2 * large['nodes'] / DEFAULT_QPS / 60:.0f} minutes for {large['nodes']:,})")


def _fleet(results: Results) -> str:
    f = results["scale-10000"]["figures"]
    return f"({f['vms']:,} VMs give {f['nodes']:,} running VMs, so {f['nodes']:,} nodes"


def _writes(results: Results) -> str:
    f = results["writes-informer"]["figures"]
    return (f"measures about {f['server_cpu_ms_per_node']:.2g} ms of simulator CPU and "
            f"{f['client_cpu_ms_per_node']:.2g} ms of controller CPU")


PROSE: dict[str, list[tuple[str, Callable[[Results], str]]]] = {
    "README.md": [
        (r"\(\d+ requests for [\d,]+ VMs instead of [\d,]+\)", _intro),
        (r"[\d,]+ s for [\d,]+ nodes, about \d+ minutes for [\d,]+\)", _registration),
        (r"\([\d,]+ VMs give [\d,]+ running VMs, so [\d,]+ nodes", _fleet),
        (r"measures about [\d.]+ ms of simulator CPU and [\d.]+ ms of controller CPU", _writes),
    ],
}


# --- documents ----------------------------------------------------------------------------------------------

def load_results(directory: Path) -> Results:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def _block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^([ \t]*)(<!-- figures: {re.escape(name)}\b[^\n]*-->\n)(.*?)^[ \t]*(<!-- /figures: "
                      rf"{re.escape(name)} -->)$", re.M | re.S)


def render(text: str, doc: str, results: Results) -> tuple[str, list[str]]:
    """The document with its blocks and checked figures as the results make them, and what differed."""
    problems: list[str] = []
    for name, make in BLOCKS.get(doc, {}).items():
        match = _block_pattern(name).search(text)
        if match is None:
            problems.append(f"{doc}: no block <!-- figures: {name} --> ... <!-- /figures: {name} -->")
            continue
        indent = match.group(1)
        body = "".join(f"{indent}{line}".rstrip() + "\n" for line in make(results))
        if match.group(3) != body:
            problems.append(f"{doc}: the table '{name}' differs from benchmarks/results/ "
                            "(python benchmarks/report.py --write)")
        text = text[: match.start(3)] + body + text[match.end(3):]
    for pattern, make_text in PROSE.get(doc, []):
        wrapped = pattern.replace(" ", r"\s+")  # the prose may wrap anywhere
        found = re.findall(wrapped, text)
        want = make_text(results)
        if len(found) != 1:
            problems.append(f"{doc}: expected one {want!r}, found {len(found)} of /{pattern}/")
        elif " ".join(found[0].split()) != want:
            problems.append(f"{doc}: {' '.join(found[0].split())!r} differs from benchmarks/results/: {want!r}")
            text = re.sub(wrapped, want.replace("\\", "\\\\"), text)
    return text, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--write", action="store_true", help="rewrite the documents")
    ap.add_argument("--root", type=Path, default=REPO, help="the repository (documents and benchmarks/results)")
    args = ap.parse_args(argv)
    results = load_results(args.root / "benchmarks" / "results")
    problems: list[str] = []
    for doc in sorted(set(BLOCKS) | set(PROSE)):
        path = args.root / doc
        text = path.read_text(encoding="utf-8")
        new, found = render(text, doc, results)
        problems += found
        if args.write and new != text:
            path.write_text(new, encoding="utf-8")
            print(f"report: wrote {doc}", file=sys.stderr)
    if problems and not args.write:
        for problem in problems:
            print(f"report: {problem}", file=sys.stderr)
        return 1
    unfixable = [p for p in problems if "no block" in p or "expected one" in p]
    for problem in unfixable:
        print(f"report: {problem}", file=sys.stderr)
    return 1 if unfixable else 0


if __name__ == "__main__":
    raise SystemExit(main())
