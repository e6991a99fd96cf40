"""The alerts and the dashboard against the real thing: a real Prometheus server (127.0.0.1, scraping and
evaluating every second) scrapes a real controller process running against both simulators.

One scenario, shared by the tests of this module: the controller registers the fleet's nodes; a VM stops (a
taint), one is removed (marked absent), then all are (an empty discovery: deletions blocked); finally the engine
breaks (every API request answers 503) and the sweeps fail. The rules Prometheus evaluates are
deploy/prometheus/ovirt-cloudprovider.rules.yaml with every window and ``for:`` divided by 60 (thresholds and
expressions unchanged), so minutes become seconds.

- OvirtCloudProviderSweepsFailing goes from inactive through pending to firing, seen through the HTTP API;
  OvirtCloudProviderEmptyDiscovery fires too, and the leader and absence alerts stay quiet;
- every expression of every dashboard panel returns data (a finite value) from this Prometheus, queried like
  Grafana does (a range query over the scenario, ``$__rate_interval`` = 4 scrape intervals).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.deploy.prom import DASHBOARD_FILE, PrometheusServer, accelerated, binary, free_port, rules_doc
from tests.helpers import REPO, http_get, wait_for, write_config

PASSWORD = "live-Prom-pa55"
FACTOR = 60  # minutes of the production rules become seconds
CONTROLLER = ("[controller]\nsync_interval = 5\nevent_poll_interval = 1\nlease_duration = 3\nrenew_deadline = 2\n"
              "retry_period = 0.5\ndelete_after_sweeps = 2\nbackoff_max = 1\n")
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval: 4 x the scrape interval (1 s)


@dataclass
class Live:
    prometheus: PrometheusServer
    engine: EngineSimulator
    kube: KubeApiSimulator
    metrics_url: str
    controller_log: Path
    started: float
    states_before_break: dict[str, str]

    def logs(self) -> str:
        return self.controller_log.read_text() + "\n--- prometheus:\n" + self.prometheus.logs()

    def sample(self, expr: str) -> float | None:
        result = self.prometheus.query(expr)
        return float(result[0]["value"][1]) if result else None


def _controller_metric(url: str, name: str, **labels: str) -> float:
    """The sum of the controller's ``name`` series that have ``labels`` (whatever their other labels)."""
    text = http_get(url + "/metrics")[1]
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.split("{", 1)[0].split(" ", 1)[0] == name and all(w in line for w in wanted))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-live")
    fleet = generate_fleet(8, seed=11, control_plane=2, quirks=False)
    with EngineSimulator(fleet, password=PASSWORD) as engine, KubeApiSimulator() as kube:
        engine.add_vm("k8s-twin")  # two VMs, one node name: both skipped (skipped_vms{reason="duplicate-name"})
        engine.add_vm("K8S_Twin")
        config = write_config(tmp / "ovirt-cloud.conf", uri=engine.url, password=PASSWORD, ca_file=engine.ca_file,
                              extra=CONTROLLER)
        kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
        port = free_port()
        log = tmp / "controller.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}
        env["POD_NAME"] = "replica-a"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovirt_cloudprovider", "run", "--config", str(config), "--kubeconfig",
             kubeconfig, f"--metrics-bind-address=127.0.0.1:{port}", "--leader-elect=true",
             "--leader-elect-namespace=kube-system"],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env, cwd=REPO)
        url = f"http://127.0.0.1:{port}"
        try:
            with PrometheusServer(tmp, [f"127.0.0.1:{port}"], accelerated(rules_doc(), FACTOR)) as prom:
                live = Live(prom, engine, kube, url, log, time.time(), {})
                up = 'up{job="ovirt-cloudprovider"}'
                wait_for(lambda: live.sample(up) == 1 and (live.sample("ovirt_cloudprovider_managed_nodes") or 0)
                         >= 7, 25, "Prometheus scraping a controller with the fleet's nodes", live.logs, 0.2)
                workers = sorted(v.name for v in engine.fleet.vms.values()
                                 if v.name.startswith("k8s-worker") and v.status == "up")
                engine.set_status(workers[0], "down")  # a targeted sweep: the shutdown taint
                wait_for(lambda: _controller_metric(url, "ovirt_cloudprovider_targeted_syncs_total"), 10,
                         "a targeted sweep", live.logs, 0.2)
                engine.remove_vm(workers[1])  # absent from the next sweeps
                wait_for(lambda: _controller_metric(url, "ovirt_cloudprovider_actions_total", kind="mark-absent"),
                         15, "a node marked absent", live.logs, 0.2)
                for vm in list(engine.fleet.vms.values()):  # the whole cluster vanishes from the search
                    engine.remove_vm(vm.id)
                wait_for(lambda: _controller_metric(
                    url, "ovirt_cloudprovider_deletions_blocked_total", reason="empty-discovery") >= 3,
                    25, "deletions blocked by empty discoveries", live.logs, 0.2)
                wait_for(lambda: prom.alert_state("OvirtCloudProviderEmptyDiscovery") == "firing", 15,
                         "OvirtCloudProviderEmptyDiscovery firing", live.logs, 0.25)
                live.states_before_break = {name: prom.alert_state(name) for name in (
                    "OvirtCloudProviderEmptyDiscovery", "OvirtCloudProviderSweepsFailing", "OvirtCloudProviderNoLeader",
                    "OvirtCloudProviderMultipleLeaders", "OvirtCloudProviderAbsent")}
                engine.fail_requests(503)  # the engine breaks: every API request gets an HTML 503 page
                yield live
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_sweep_failing_alert_fires_through_the_prometheus_api(live: Live) -> None:
    prom = live.prometheus
    assert live.states_before_break["OvirtCloudProviderSweepsFailing"] == "inactive"
    seen: list[str] = []

    def firing() -> bool:
        state = prom.alert_state("OvirtCloudProviderSweepsFailing")
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "firing"

    wait_for(firing, 40, "OvirtCloudProviderSweepsFailing firing", live.logs, 0.25)
    assert seen[-2:] == ["pending", "firing"], seen
    alerts = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == "OvirtCloudProviderSweepsFailing"]
    assert len(alerts) == 1 and alerts[0]["state"] == "firing"
    assert alerts[0]["labels"]["severity"] == "warning"
    assert alerts[0]["annotations"]["summary"].endswith("of the sweeps fail.")
    assert (live.sample('sum(ovirt_cloudprovider_engine_requests_total{code="503"})') or 0) > 0
    # the empty discoveries had fired their alert; one leader, a scraped replica: those alerts stay quiet
    assert live.states_before_break["OvirtCloudProviderEmptyDiscovery"] == "firing"
    for name in ("OvirtCloudProviderNoLeader", "OvirtCloudProviderMultipleLeaders", "OvirtCloudProviderAbsent"):
        assert live.states_before_break[name] == "inactive", name
        assert prom.alert_state(name) == "inactive", name


def dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return [(f"{panel['title']} [{target['refId']}]", target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_dashboard_expression_returns_data(live: Live) -> None:
    # after the alert test when run in order; on its own, give the failing sweeps a moment to be scraped
    wait_for(lambda: (live.sample('sum(ovirt_cloudprovider_syncs_total{result="failure"})') or 0) >= 2, 20,
             "failed sweeps scraped", live.logs, 0.25)
    empty = []
    for title, expr in dashboard_expressions():
        # as Grafana asks: a range query over the dashboard's time range (here: the whole scenario)
        result = live.prometheus.query_range(expr.replace("$__rate_interval", RATE_INTERVAL), live.started,
                                             time.time(), step=1.0)
        values = [float(v) for series in result for _, v in series["values"]]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{title}: {expr} -> {values}")
    assert empty == [], "dashboard expressions without data from a live controller:\n" + "\n".join(empty)
