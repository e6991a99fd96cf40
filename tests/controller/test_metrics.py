"""The metrics registry itself (a fresh CollectorRegistry per test): the series of known label values exist from
the start at 0, per-sweep gauges keep them and drop stale ones, and the label values are the ones the planner
and the writer produce. What a sweep records is tested with the sweeps (test_sync.py, test_sync_hosts.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ovirt_cloudprovider.core.records import ActionKind
from ovirt_cloudprovider.kube import writer
from ovirt_cloudprovider.metrics import (
    ACTION_RESULTS,
    DELETION_BLOCK_REASONS,
    KINDS,
    SKIP_REASONS,
    Metrics,
    reason_label,
)

P = "ovirt_cloudprovider_"


def fresh() -> Metrics:
    return Metrics(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(P + name, labels)


def series(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in m.registry.collect() for s in f.samples
            if s.name == P + name}


def test_known_label_values_are_zero_from_the_start() -> None:
    m = fresh()
    for result in ("success", "failure"):
        assert value(m, "syncs_total", result=result) == 0.0
        assert value(m, "targeted_syncs_total", result=result) == 0.0
    assert KINDS == ("vm", "host")
    assert value(m, "managed_nodes") == 0.0
    assert {k: v for k, v in series(m, "managed_nodes_by_kind").items()} == {
        (("kind", "vm"),): 0.0, (("kind", "host"),): 0.0}
    assert series(m, "ambiguous_matches_total") == {(("kind", "vm"),): 0.0, (("kind", "host"),): 0.0}
    blocked = series(m, "deletions_blocked_total")
    assert len(blocked) == 5 * 2 and set(blocked.values()) == {0.0}
    assert value(m, "deletions_blocked_total", reason="circuit-breaker", kind="host") == 0.0
    assert value(m, "deletions_blocked_total", reason="empty-discovery", kind="vm") == 0.0
    actions = series(m, "actions_total")
    assert len(actions) == len(ActionKind) * 4 and set(actions.values()) == {0.0}
    assert value(m, "actions_total", kind="delete", result="error") == 0.0
    skipped = series(m, "skipped_vms")
    assert len(skipped) == len(SKIP_REASONS) * 2 and set(skipped.values()) == {0.0}
    assert value(m, "skipped_vms", reason="duplicate-name", kind="host") == 0.0
    assert value(m, "vms", status="down") == 0.0 and value(m, "vms", status="up") == 0.0


def test_each_registry_starts_from_zero() -> None:
    a, b = fresh(), fresh()
    a.syncs_total.labels("success").inc(2)
    a.deletions_blocked_total.labels("circuit-breaker", "host").inc()
    assert value(a, "syncs_total", result="success") == 2.0
    assert value(b, "syncs_total", result="success") == 0.0
    assert value(b, "deletions_blocked_total", reason="circuit-breaker", kind="host") == 0.0


def test_set_gauge_keeps_the_known_series_at_zero_and_drops_stale_ones() -> None:
    m = fresh()
    known = list(m.known_skipped())
    m.set_gauge(m.skipped_vms, {("invalid-name", "vm"): 2, ("duplicate-name", "host"): 1}, known=known)
    assert value(m, "skipped_vms", reason="invalid-name", kind="vm") == 2.0
    assert value(m, "skipped_vms", reason="duplicate-name", kind="host") == 1.0
    assert sum(series(m, "skipped_vms").values()) == 3.0
    m.set_gauge(m.skipped_vms, {}, known=known)  # the next sweep skips nothing
    assert value(m, "skipped_vms", reason="invalid-name", kind="vm") == 0.0
    assert len(series(m, "skipped_vms")) == len(known)
    # an unknown label value (a VM status we have no constant for) exists while it applies, then goes
    m.set_gauge(m.vms, {("unassigned",): 3, ("up",): 5}, known=[("up",), ("down",)])
    assert value(m, "vms", status="unassigned") == 3.0 and value(m, "vms", status="up") == 5.0
    m.set_gauge(m.vms, {("up",): 4}, known=[("up",), ("down",)])
    assert value(m, "vms", status="unassigned") is None
    assert (value(m, "vms", status="up"), value(m, "vms", status="down")) == (4.0, 0.0)


def test_label_values_are_the_ones_the_planner_and_the_writer_use() -> None:
    assert reason_label("CircuitBreaker") == "circuit-breaker"
    assert reason_label("NodeNameConflict") == "node-name-conflict"
    assert DELETION_BLOCK_REASONS == ("empty-discovery", "circuit-breaker", "cluster-vanished",
                                      "deletion-unconfirmed", "unknown-filter-tag")
    assert {"invalid-name", "duplicate-name", "no-fqdn", "node-name-conflict", "unreadable", "unplannable",
            "other"} <= set(SKIP_REASONS)
    assert {writer.SUCCESS, writer.CONFLICT, writer.ERROR, writer.REFUSED} == set(ACTION_RESULTS)


def test_created_series_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # prometheus_client adds a *_created series to every counter, histogram and child: a fifth of the page
    monkeypatch.delenv("PROMETHEUS_DISABLE_CREATED_SERIES", raising=False)
    page = generate_latest(fresh().registry).decode()
    assert "ovirt_cloudprovider_syncs_total" in page and "_created" not in page
    monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", "false")  # prometheus_client's own switch, asked
    assert "ovirt_cloudprovider_syncs_created" in generate_latest(fresh().registry).decode()
    monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", "true")
    assert "_created" not in generate_latest(fresh().registry).decode()
    monkeypatch.delenv("PROMETHEUS_DISABLE_CREATED_SERIES")
    assert "_created" not in generate_latest(fresh().registry).decode()
