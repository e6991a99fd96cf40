"""One source for every figure: the tables of measured figures in README.md and docs/sizing.md (and a few figures
in their prose) are what ``python benchmarks/report.py`` makes of the committed results in benchmarks/results/;
every result file says which command, date and machine produced it; every benchmark can write one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

RESULTS = REPO / "benchmarks" / "results"
DOCS = ("README.md", "docs/sizing.md")
BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.stem not in ("simproc", "record", "report"))


def report(*args: str, root: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "report.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO, env=env)


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """The documents and the results, in a scratch repository root."""
    for doc in DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / doc, tmp_path / doc)
    shutil.copytree(RESULTS, tmp_path / "benchmarks" / "results")
    return tmp_path


def test_the_documents_are_what_the_committed_results_give() -> None:
    proc = report()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_new_result_fails_the_check_until_the_documents_are_regenerated(copy: Path) -> None:
    path = copy / "benchmarks" / "results" / "scale-10000.json"
    result = json.loads(path.read_text(encoding="utf-8"))
    result["figures"]["peak_rss_mb"] = 163.4
    path.write_text(json.dumps(result), encoding="utf-8")
    proc = report(root=copy)
    assert proc.returncode == 1
    assert "README.md: the table 'scale' differs" in proc.stderr
    assert "docs/sizing.md: the table 'memory' differs" in proc.stderr
    assert report("--write", root=copy).returncode == 0
    assert report(root=copy).returncode == 0
    readme = (copy / "README.md").read_text(encoding="utf-8")
    assert "| 163.4 (missed) |" in readme  # the target of 150 MB, judged from the result
    assert "| 10,000 | 8,560 | 163.4 MB |" in (copy / "docs" / "sizing.md").read_text(encoding="utf-8")


def test_the_autoscaler_figures_come_from_its_result(copy: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Autoscaling node groups"):readme.index("## Operations")]
    assert "<!-- figures: autoscaler" in section and "`benchmarks/results/autoscaler.json`" in section
    path = copy / "benchmarks" / "results" / "autoscaler.json"
    result = json.loads(path.read_text(encoding="utf-8"))
    result["figures"]["refresh_engine_requests"] = 51  # one search per group: what it must never be
    path.write_text(json.dumps(result), encoding="utf-8")
    proc = report(root=copy)
    assert proc.returncode == 1 and "README.md: the table 'autoscaler' differs" in proc.stderr
    assert report("--write", root=copy).returncode == 0
    assert "never one per group) | 51 |" in (copy / "README.md").read_text(encoding="utf-8")


def test_an_edited_table_or_figure_fails_the_check(copy: Path) -> None:
    sizing = copy / "docs" / "sizing.md"
    sizing.write_text(sizing.read_text(encoding="utf-8").replace("| 94 MB |", "| 128 MB |"), encoding="utf-8")
    readme = copy / "README.md"
    text = readme.read_text(encoding="utf-8")
    readme.write_text(re.sub(r"\(\d+ requests for 1,000 VMs", "(11 requests for 1,000 VMs", text), encoding="utf-8")
    proc = report(root=copy)
    assert proc.returncode == 1
    assert "docs/sizing.md: the table 'memory' differs" in proc.stderr
    assert "README.md: '(11 requests for 1,000 VMs instead of 1,001)' differs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2


def test_a_missing_block_is_reported(copy: Path) -> None:
    sizing = copy / "docs" / "sizing.md"
    sizing.write_text(re.sub(r"<!-- /?figures: time[^>]*-->\n", "", sizing.read_text(encoding="utf-8")),
                      encoding="utf-8")
    for args in ((), ("--write",)):
        proc = report(*args, root=copy)
        assert proc.returncode == 1
        assert "docs/sizing.md: no block <!-- figures: time -->" in proc.stderr


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_result_says_command_date_and_machine(path: Path) -> None:
    result = json.loads(path.read_text(encoding="utf-8"))
    assert result["benchmark"] == path.stem
    assert re.match(r"\d{4}-\d{2}-\d{2}", result["date"])
    assert result["machine"]["cpus"] >= 1
    script = re.search(r"\bpython (benchmarks/\w+\.py)\b", result["command"])
    assert script and (REPO / script.group(1)).is_file(), result["command"]
    assert result["figures"]


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_can_write_its_results(script: Path) -> None:
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
                          check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "--write-results" in proc.stdout
