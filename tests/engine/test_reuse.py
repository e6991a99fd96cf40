"""Bounded memory on the engine side: a discovery keeps the previous discovery's record of every unchanged VM.

The records are frozen, so an equal record is the same VM: reusing it changes no value, and a fleet that did not
change costs one set of records while the controller still holds the last Snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet

ConnFor = Callable[..., ConnectionConfig]
Sims = Callable[..., EngineSimulator]


def assert_only_the_changed_is_new(first: Sequence[Any], second: Sequence[Any], changed_id: str,
                                   status: str) -> None:
    """``second`` (records of a later discovery) lists the records of ``first`` in their order, each the same
    object as before but ``changed_id``'s, which is a new record with ``status``."""
    by_id = {r.id: r for r in first}
    assert [r.id for r in second] == [r.id for r in first]
    for record in second:
        if record.id == changed_id:
            assert record.status == status and record is not by_id[record.id]
        else:
            assert record is by_id[record.id]


@pytest.mark.parametrize("lean", [True, False])
def test_unchanged_vms_keep_their_records_changed_ones_are_new(engine_sims: Sims, engine_conn_for: ConnFor,
                                                                clients: Callable[..., EngineClient],
                                                                lean: bool) -> None:
    sim = engine_sims(generate_fleet(40, seed=7))
    conn = engine_conn_for(sim)
    client = clients(conn, page_size=10, lean=lean)
    first = client.discover("")
    assert len(first.vms) == 40
    changed = next(vm for vm in first.vms if vm.status == "up")
    sim.set_status(changed.id, "down")
    second = client.discover("")
    assert_only_the_changed_is_new(first.vms, second.vms, changed.id, "down")
    # what the client remembers holds no second copy of the ids either: its keys are the records' own strings
    assert all(key is vm.id for key, vm in client._previous.items())
    # the records are exactly those of a client that remembers nothing
    assert second == clients(conn, page_size=10, lean=lean).discover("")


def test_a_narrowed_search_does_not_replace_what_the_sweep_search_remembers(
        engine_sims: Sims, engine_conn_for: ConnFor, clients: Callable[..., EngineClient]) -> None:
    sim = engine_sims(generate_fleet(20, seed=3))
    client = clients(engine_conn_for(sim), page_size=10)
    first = client.discover("")
    one = first.vms[0]
    narrowed = client.discover(f"name={one.name}")
    assert [vm.id for vm in narrowed.vms] == [one.id] and narrowed.vms[0] is one
    again = client.discover("")
    assert all(a is b for a, b in zip(again.vms, first.vms, strict=True))


def test_a_changed_vm_holds_its_previous_devices_while_the_discovery_runs(
        engine_sims: Sims, engine_conn_for: ConnFor, clients: Callable[..., EngineClient]) -> None:
    """The lean discovery shares each VM's unchanged guest devices with its last record as each page is read, so
    the devices (most of a record's memory) never exist twice, not even for a VM whose record changed."""
    sim = engine_sims(generate_fleet(20, seed=5))
    conn = engine_conn_for(sim)
    client = clients(conn, page_size=10)
    first = client.discover("")
    moved = next(vm for vm in first.vms if vm.status == "up" and vm.nics and vm.host)
    sim.migrate(moved.id)
    second = client.discover("")
    (now,) = (vm for vm in second.vms if vm.id == moved.id)
    assert now is not moved and now.host != moved.host
    assert now.nics == moved.nics and now.nics is moved.nics
    assert second == clients(conn, page_size=10).discover("")  # values exactly those of a fresh client


@pytest.mark.parametrize("lean", [True, False])
def test_unchanged_hosts_keep_their_records_changed_ones_are_new(engine_sims: Sims, engine_conn_for: ConnFor,
                                                                  clients: Callable[..., EngineClient],
                                                                  lean: bool) -> None:
    """``[filters] hosts``: the host search keeps the last record of every unchanged host too (at OLVM's 1,024
    hosts, their records existed twice while the controller held the last Snapshot)."""
    sim = engine_sims(generate_fleet(12, seed=7, hosts=6))
    conn = engine_conn_for(sim)
    client = clients(conn, page_size=10, lean=lean, hosts="name=*")
    first = client.discover("")
    assert len(first.hosts) == 6
    changed = next(h for h in first.hosts if h.status == "up")
    sim.set_host_status(changed.id, "maintenance")
    second = client.discover("")
    assert_only_the_changed_is_new(first.hosts, second.hosts, changed.id, "maintenance")
    assert second == clients(conn, page_size=10, lean=lean, hosts="name=*").discover("")
