"""Benchmark figures into committed result files, the one source of the figures in README.md and docs/sizing.md.

``record(name, figures)`` writes ``benchmarks/results/NAME.json``: the benchmark's figures with the command that
produced them, the date and the machine. ``python benchmarks/report.py --write`` then regenerates the documents'
tables from those files, and a test fails when a document differs from what the committed results give.
Each benchmark calls it when run with ``--write-results``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, architecture, Python, the load while the benchmark ran."""
    return {
        "cpus": os.cpu_count(),
        "arch": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def command(argv: list[str] | None = None) -> str:
    """The command line as it was typed from the repository root (``python benchmarks/x.py ...``)."""
    args = list(sys.argv if argv is None else argv)
    script = Path(args[0]).resolve()
    try:
        shown = script.relative_to(RESULTS.parent.parent).as_posix()
    except ValueError:
        shown = args[0]
    return shlex.join(["python", shown, *args[1:]])


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def record(name: str, figures: dict[str, Any], argv: list[str] | None = None) -> Path:
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "command": command(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "figures": _rounded(figures),
    }
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"[results] {path.relative_to(RESULTS.parent.parent)}: python benchmarks/report.py --write "
          "regenerates the documents", file=sys.stderr, flush=True)
    return path
