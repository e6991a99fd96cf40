"""The alerting rules (deploy/prometheus/ovirt-cloudprovider.rules.yaml and the PrometheusRule component):
``promtool check rules`` accepts them, ``promtool test rules`` runs a firing and a quiet unit test of every alert
(tests/deploy/prometheus/alerts.test.yaml) and catches a broken rule, the PrometheusRule holds exactly the same
groups and passes a PrometheusRule schema, and every alert is documented (summary, description, runbook).
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.prom import (
    ALERT_TESTS_FILE,
    PROMETHEUSRULE_FILE,
    RULES_FILE,
    alert_rules,
    binary,
    exported_label_values,
    exported_metric_names,
    label_problems,
    metric_names_in,
    prometheusrule_problems,
    rules_doc,
)
from tests.helpers import REPO

RUNBOOK = REPO / "docs" / "runbook.md"
# Metrics the alerts may use that the controller does not export itself.
EXTERNAL_METRICS = {"kube_node_spec_taint"}  # kube-state-metrics


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=False)


def prometheusrule() -> dict[str, Any]:
    (obj,) = [o for o in yaml.safe_load_all(PROMETHEUSRULE_FILE.read_text(encoding="utf-8")) if o]
    assert isinstance(obj, dict)
    return obj


# --- promtool -----------------------------------------------------------------------------------------------

def test_promtool_check_rules_accepts_both_forms(tmp_path: Path) -> None:
    proc = promtool("check", "rules", str(RULES_FILE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump(prometheusrule()["spec"]), encoding="utf-8")
    proc = promtool("check", "rules", str(extracted))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    proc = promtool("test", "rules", ALERT_TESTS_FILE.name, cwd=ALERT_TESTS_FILE.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    doc = yaml.safe_load(ALERT_TESTS_FILE.read_text(encoding="utf-8"))
    assert (ALERT_TESTS_FILE.parent / doc["rule_files"][0]).resolve() == RULES_FILE.resolve()
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(alert_rules())
    assert alerts - fires == set(), "alerts without a unit test in which they fire"
    assert alerts - quiet == set(), "alerts without a unit test in which they stay quiet"
    assert (fires | quiet) <= alerts, "unit tests of alerts that do not exist"


def test_unit_test_series_have_the_labels_the_controller_exports() -> None:
    """The promtool inputs look like real scrapes: the same label names (besides instance and job), and values
    from the known sets, so a changed label set cannot leave the unit tests testing another metric."""
    known = exported_label_values()
    doc = yaml.safe_load(ALERT_TESTS_FILE.read_text(encoding="utf-8"))
    for case in doc["tests"]:
        for item in case.get("input_series", []):
            match = re.fullmatch(r"(\w+)\{(.*)\}", item["series"])
            assert match, item["series"]
            name = match.group(1)
            if not name.startswith("ovirt_cloudprovider_"):  # up, kube-state-metrics
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            labels.pop("instance", None)
            labels.pop("job", None)
            assert set(labels) == set(known[name]), f"{case['name']}: {item['series']}"
            if name == "ovirt_cloudprovider_build_info":  # its values are this machine's versions
                continue
            for label, v in labels.items():
                assert not known[name][label] or v in known[name][label], f"{case['name']}: {item['series']}"


def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a rule with a changed threshold fails them."""
    doc = rules_doc()
    broken = copy.deepcopy(doc)
    rule = alert_rules(broken)["OvirtCloudProviderSweepsFailing"]
    rule["expr"] = rule["expr"].replace("> 0.5", "> 2")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    tests = yaml.safe_load(ALERT_TESTS_FILE.read_text(encoding="utf-8"))
    tests["rule_files"] = ["rules.yaml"]
    (tmp_path / "alerts.test.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    proc = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert proc.returncode != 0
    assert "OvirtCloudProviderSweepsFailing" in proc.stdout + proc.stderr


# --- the PrometheusRule -------------------------------------------------------------------------------------

def test_prometheusrule_holds_exactly_the_rules_file() -> None:
    assert prometheusrule()["spec"] == rules_doc()


def test_prometheusrule_passes_the_schema() -> None:
    assert prometheusrule_problems(prometheusrule()) == []


@pytest.mark.parametrize("breakage", ["typo-in-rule", "duration", "missing-expr", "unknown-spec-field"])
def test_prometheusrule_schema_rejects_mistakes(breakage: str) -> None:
    obj = prometheusrule()
    rule = obj["spec"]["groups"][0]["rules"][0]
    if breakage == "typo-in-rule":
        rule["annotation"] = rule.pop("annotations")
    elif breakage == "duration":
        rule["for"] = "10 minutes"
    elif breakage == "missing-expr":
        del rule["expr"]
    else:
        obj["spec"]["group"] = obj["spec"].pop("groups")
    assert prometheusrule_problems(obj) != []


# --- content ------------------------------------------------------------------------------------------------

def test_alerts_use_only_metrics_the_controller_exports() -> None:
    exported = exported_metric_names()
    for name, rule in alert_rules().items():
        unknown = metric_names_in(rule["expr"]) - exported - EXTERNAL_METRICS
        assert not unknown, f"{name} uses metrics the controller does not export: {sorted(unknown)}"


def test_alerts_use_only_labels_and_label_values_the_controller_exports() -> None:
    for name, rule in alert_rules().items():
        assert label_problems(rule["expr"]) == [], name
    # the check is not vacuous
    assert label_problems('sum(increase(ovirt_cloudprovider_deletions_blocked_total{reason="circuit_breaker"}[5m]))')
    assert label_problems('sum(ovirt_cloudprovider_managed_nodes_by_kind{state="vm"})')
    assert label_problems('sum by (state) (ovirt_cloudprovider_managed_nodes_by_kind)')


def test_every_alert_is_documented() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", runbook, re.M))
    for name, rule in alert_rules().items():
        ann = rule.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), f"{name}: summary and description are required"
        assert len(ann["description"]) > 100, f"{name}: the description must say what to check"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), name
        assert name in headings, f"docs/runbook.md has no section '## {name}'"
        assert ann.get("runbook_url", "").endswith(f"docs/runbook.md#{name.lower()}"), name
    assert headings >= set(alert_rules())
