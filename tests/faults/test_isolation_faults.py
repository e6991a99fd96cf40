"""The isolation family: one bad item in a fleet of N affects that one node, never the sweep (issue 17, rule 4).

A property over fleets (N from 3 to 6, any seed), positions and each kind of bad item: a guest NIC named ``eth0²``
(str.isdigit() is true for ``²``, int() refuses it), a node annotated ``ovirt.org/absent-sweeps: "²"`` whose VM
left the filter, an operator's ``shutdown=x:NoSchedule`` taint on a stopped VM's node (the API keys taints by key
and effect: a second one is a 422), a node whose every write the API refuses (422), a VM record that raises when
read. Every VM migrates, so every node needs a write; every sweep must succeed (no backoff for the fleet), the other
N - 1 nodes converge, no node is lost, no traceback is logged and the password appears nowhere. The real clients
against both loopback simulators; ``OVCP_ISOLATION_EXAMPLES`` fleets per kind (default 3).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ovirt_cloudprovider.core.records import ANNOTATION_ABSENT_SWEEPS, TAINT_SHUTDOWN
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.controller.world import World, poisoned_sweep
from tests.faults.conftest import FIGURES, SECRET, LogTap, sightings

BAD_ITEMS = ("superscript-nic", "superscript-annotation", "valued-taint", "refused-write", "raising-record")
EXAMPLES = int(os.environ.get("OVCP_ISOLATION_EXAMPLES", "3"))


def inject(world: World, bad: str, vm: Any) -> str | None:
    """Make ``vm`` (or its node) the bad item, with what makes the item matter (a counter is only read for an
    absent VM, a shutdown taint only added for a stopped one); the id of a VM whose record must raise, else None."""
    name = world.node_of(vm.id)["metadata"]["name"]  # type: ignore[index]
    if bad == "superscript-nic":
        world.engine.set_ips(vm.id, ["10.77.0.9"], device="eth0²")
    elif bad == "superscript-annotation":
        world.kube.patch_node(name, {"metadata": {"annotations": {ANNOTATION_ABSENT_SWEEPS: "²"}}})
        world.engine.set_tags(vm.id, [])
    elif bad == "valued-taint":
        node = world.kube.get_node(name) or {}
        taints = [*(node["spec"].get("taints") or []), {"key": TAINT_SHUTDOWN, "value": "x", "effect": "NoSchedule"}]
        world.kube.patch_node(name, {"spec": {"taints": taints}})
        world.engine.set_status(vm.id, "down")
    elif bad == "refused-write":
        world.kube.fail_next(1000, code=422, verb="patch", resource="nodes", name=name)
    else:
        return str(vm.id)
    return None


def one_bad_item(bad: str, n: int, position: int, seed: int, tap: LogTap) -> tuple[int, int, list[str]]:
    """Nodes lost, other nodes not converged, and the sweep errors of one fleet with one bad item."""
    fleet = generate_fleet(n, seed=seed, control_plane=min(3, n), quirks=False)
    errors: list[str] = []
    with (EngineSimulator(fleet, password=SECRET) as engine, KubeApiSimulator() as kube,
          World(engine, kube) as world):
        vms = sorted(engine.fleet.vms.values(), key=lambda vm: vm.name)
        for vm in vms:
            if vm.status != "up":
                engine.set_status(vm.id, "up")
        world.converge()
        tap.take()
        for vm in vms:
            engine.migrate(vm.id)
        victim = vms[position % n]
        raising = inject(world, bad, victim)
        for _ in range(2):  # every sweep succeeds for the others: no backoff for the fleet
            report = poisoned_sweep(world, raising) if raising else world.sweep()
            if not report.ok:
                errors.append(str(report.error))
        lost = n - len(kube.list_nodes())
        stale = []
        for vm in vms:
            node = world.node_of(vm.id)
            host = engine.fleet.hosts[str(vm.host_id)].name if vm.host_id else None
            if vm.id != victim.id and (node is None or node["metadata"]["labels"].get("ovirt.org/host") != host):
                stale.append(vm.name)
        return lost, len(stale), errors


@pytest.mark.parametrize("bad", BAD_ITEMS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(3, 6), position=st.integers(0, 5), seed=st.integers(0, 99))
def test_one_bad_item_in_a_fleet_of_n_lets_the_other_n_minus_1_converge(bad: str, n: int, position: int,
                                                                        seed: int) -> None:
    event(f"n={n}")
    tap = LogTap()
    root = logging.getLogger()
    level = root.level
    root.addHandler(tap)
    root.setLevel(logging.DEBUG)
    try:
        lost, wrong, errors = one_bad_item(bad, n, position, seed, tap)
    finally:
        root.removeHandler(tap)
        root.setLevel(level)
    texts = tap.take()
    seen = sightings(texts, SECRET)
    tracebacks = tap.tracebacks + sum(1 for t in texts if "Traceback (most recent call last)" in t)
    FIGURES.record("isolation", nodes_lost=lost, wrong_writes=wrong, tracebacks=tracebacks,
                   secret_sightings=len(seen))
    assert not errors, (bad, errors)
    assert (lost, wrong, tracebacks, len(seen)) == (0, 0, 0, 0), (bad, tap.traceback_lines[:2], seen[:2])
