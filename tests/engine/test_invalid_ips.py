"""Invalid guest-reported IPs are counted (ovirt_cloudprovider_invalid_guest_ips) and logged once per VM."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import EngineSimulator


def test_invalid_guest_ips_are_counted_and_logged_once(engine_sim: EngineSimulator,
                                                       engine_conn_for: Callable[..., ConnectionConfig],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    vm = next(v for v in engine_sim.fleet.vms.values() if v.status == "up" and v.name.startswith("k8s"))
    engine_sim.set_ips(vm.id, ["abc", "999.1.1.1", "01.02.03.004", "10.0.0.5", "fe80::1%eth0", "10.0.0.6/24"])
    metrics = Metrics(CollectorRegistry())
    client = EngineClient(engine_conn_for(engine_sim), metrics=metrics)
    caplog.set_level(logging.WARNING)
    try:
        for _ in range(3):
            client.discover("tag=kubernetes")
    finally:
        client.close()
    assert metrics.registry.get_sample_value("ovirt_cloudprovider_invalid_guest_ips") == 3
    lines = [r.getMessage() for r in caplog.records if "invalid" in r.getMessage()]
    assert lines == [f"VM {vm.name} ({vm.id}) reports invalid IP addresses, ignored: abc, 999.1.1.1, 01.02.03.004"]
