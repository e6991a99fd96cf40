"""The Grafana dashboard (deploy/components/grafana-dashboard/ovirt-cloudprovider.json) and its ConfigMap
component: well-formed, every panel queries the Prometheus data source variable with metrics the controller
exports, the layout has no overlaps, and the ConfigMap carries the JSON unchanged with the sidecar label.
That every expression returns data from a live controller is tested in test_prometheus_live.py.
"""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.prom import DASHBOARD_FILE, exported_metric_names, label_problems, metric_names_in
from tests.deploy.test_deploy import DEPLOY, KUBECTL, SERVICEMONITOR_OVERLAY, Workspace, needs_kubectl, one

COMPONENT_OVERLAY = SERVICEMONITOR_OVERLAY.replace("servicemonitor", "grafana-dashboard")


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_dashboard_is_well_formed() -> None:
    d = dashboard()
    assert d["uid"] == "ovirt-cloudprovider" and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in d["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["description"], f"{panel['title']}: say what the panel shows"


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_covers_what_operators_look_at() -> None:
    used = set().union(*(metric_names_in(t["expr"]) for p in dashboard()["panels"] for t in p["targets"]))
    for name in ("syncs_total", "sync_duration_seconds_bucket", "managed_nodes", "managed_nodes_by_kind", "vms",
                 "deletions_blocked_total",
                 "actions_total", "engine_requests_total", "engine_request_duration_seconds_bucket",
                 "kube_requests_total", "kube_request_duration_seconds_bucket", "leader",
                 "last_successful_sync_timestamp_seconds"):
        assert f"ovirt_cloudprovider_{name}" in used, f"no panel shows ovirt_cloudprovider_{name}"


def test_dashboard_uses_only_exported_metrics() -> None:
    exported = exported_metric_names()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            unknown = metric_names_in(target["expr"]) - exported
            assert not unknown, f"{panel['title']}: {sorted(unknown)} are not exported by the controller"


def test_dashboard_uses_only_labels_and_label_values_the_controller_exports() -> None:
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            assert label_problems(target["expr"]) == [], panel["title"]


@needs_kubectl
def test_configmap_component_carries_the_dashboard(tmp_path_factory: Any) -> None:
    assert KUBECTL is not None and (DEPLOY / "components" / "grafana-dashboard").is_dir()
    objs = Workspace(tmp_path_factory.mktemp("dashboard")).overlay("with-dashboard", COMPONENT_OVERLAY)
    cm = one(objs, "ConfigMap")
    assert cm["metadata"]["name"] == "ovirt-cloudprovider-dashboard"  # no hash suffix: a stable name
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == one(objs, "Deployment")["metadata"]["namespace"]
    assert json.loads(cm["data"]["ovirt-cloudprovider.json"]) == dashboard()
