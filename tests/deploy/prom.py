"""Helpers for the tests that run the real Prometheus tools (Debian's ``prometheus`` package: ``promtool`` and
``prometheus``): finding the binaries, loading the rules, and a Prometheus server on 127.0.0.1.

Without the binaries the tests are skipped with the reason, except in CI (``CI=true``), where a missing binary
is a failure: ``.ci/run`` installs the package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import jsonschema
import pytest
import yaml

from ovirt_cloudprovider.metrics import Metrics
from tests.helpers import REPO

RULES_FILE = REPO / "deploy" / "prometheus" / "ovirt-cloudprovider.rules.yaml"
PROMETHEUSRULE_FILE = REPO / "deploy" / "components" / "prometheusrule" / "prometheusrule.yaml"
ALERT_TESTS_FILE = REPO / "tests" / "deploy" / "prometheus" / "alerts.test.yaml"
PROMETHEUSRULE_SCHEMA = REPO / "tests" / "deploy" / "schemas" / "prometheusrule.schema.json"
DASHBOARD_FILE = REPO / "deploy" / "components" / "grafana-dashboard" / "ovirt-cloudprovider.json"


def binary(name: str) -> str:
    """The path of ``name``; skip the test when it is missing, fail instead when running in CI."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not on PATH (Debian package 'prometheus'; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return path


def rules_doc() -> dict[str, Any]:
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def alert_rules(doc: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Alert name -> rule, over every group."""
    doc = doc if doc is not None else rules_doc()
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def prometheusrule_problems(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(PROMETHEUSRULE_SCHEMA.read_text(encoding="utf-8")))
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


def exported_metric_names() -> set[str]:
    """Every sample name the controller can export (counters with _total, histograms with their series)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def exported_label_values() -> dict[str, dict[str, set[str]]]:
    """Sample name -> label name -> the values known from the start (the series a fresh registry exports at 0;
    an empty set for a label whose values come from outside, such as ``code`` or ``operation``)."""
    fresh = Metrics()
    out: dict[str, dict[str, set[str]]] = {}
    for family in fresh.registry.collect():
        for sample in family.samples:
            for label, v in sample.labels.items():
                out.setdefault(sample.name, {}).setdefault(label, set()).add(v)
    exercised = Metrics()  # the request metrics have series only once a request was observed
    with exercised.engine_request("op"), exercised.kube_request("op"):
        pass
    for family in exercised.registry.collect():
        for sample in family.samples:
            labels = out.setdefault(sample.name, {})
            for label in sample.labels:
                labels.setdefault(label, set())
    return out


_SCRAPE_LABELS = {"le", "instance", "job"}  # added by Prometheus (le: a histogram's buckets)
_SELECTOR = re.compile(r"\b(ovirt_cloudprovider_\w+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def label_problems(expr: str) -> list[str]:
    """Label matchers in ``expr`` on a label the metric does not have, or on a value of a known label set that
    never occurs (e.g. ``reason="circuit_breaker"`` for ``circuit-breaker``); ``by (...)`` labels as well."""
    known = exported_label_values()
    problems = []
    for name, body in _SELECTOR.findall(expr):
        labels = known.get(name, {})
        for label, op, value in _MATCHER.findall(body):
            if label not in labels:
                problems.append(f"{name} has no label {label!r}")
            elif labels[label] and op in ("=", "=~"):
                wanted = value.split("|") if op == "=~" else [value]
                missing = [w for w in wanted if re.fullmatch(r"[\w.-]+", w) and w not in labels[label]]
                if missing:
                    problems.append(f"{name}{{{label}}} never has the value(s) {missing}")
    for grouping, inner in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)\s*\(([^()]*(?:\([^()]*\))?[^()]*)\)",
                                      expr):
        for name in re.findall(r"\b(ovirt_cloudprovider_\w+)", inner):
            for label in (g.strip() for g in grouping.split(",")):
                if label and label not in _SCRAPE_LABELS and label not in known.get(name, {}):
                    problems.append(f"{name} is grouped by {label!r}, a label it does not have")
    return problems


def metric_names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b(ovirt_cloudprovider_\w+|kube_\w+)\b", without_strings))


def _scaled(duration: str, factor: int) -> str:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, f"unsupported duration {duration!r}"
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    return f"{max(1, seconds // factor)}s"


def accelerated(doc: dict[str, Any], factor: int) -> dict[str, Any]:
    """The same rules with every range window and ``for:`` divided by ``factor`` (thresholds unchanged), so a
    live test sees in seconds what production sees in minutes."""
    out: dict[str, Any] = json.loads(json.dumps(doc))
    for group in out["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[(\d+[smh])\]", lambda m: f"[{_scaled(m.group(1), factor)}]", rule["expr"])
            if "for" in rule:
                rule["for"] = _scaled(rule["for"], factor)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 scraping ``targets`` every second and evaluating ``rules`` every second.
    Stopped (and waited for) on exit."""

    def __init__(self, workdir: Path, targets: list[str], rules: dict[str, Any]) -> None:
        self.binary = binary("prometheus")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(workdir / "rules.yaml")],
            "scrape_configs": [{"job_name": "ovirt-cloudprovider", "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), cwd=self.workdir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}: {self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"prometheus not ready within 20 s: {self.logs()}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read().decode())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the result vector (a scalar comes back as one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: the result matrix (one entry per series, ``values`` = [[time, "value"], ...])."""
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def alert_state(self, name: str) -> str:
        """``inactive``, ``pending`` or ``firing`` for the alerting rule ``name``."""
        for group in self.api("rules", type="alert")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    return str(rule["state"])
        raise AssertionError(f"Prometheus has no alerting rule {name}")
