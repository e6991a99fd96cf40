"""The lean host search against the SDK's reader: the same Host records, host for host.

- engine/fasthosts.py reads the recorded host samples (with their recorded NICs inlined as ``follow=nics``
  inlines them), generated host pages and hypothesis-made hosts as ``host_record(Reader.read(body))`` does, or
  says EngineDataError where the SDK cannot read them either;
- joined with the recorded (generated) cluster and data center lists, the records equal the SDK's reading of the
  same hosts searched with ``follow=nics,cluster.data_center``;
- a lean client's discovery gives the follow= client's hosts, before and after host changes, with and without
  affinity labels, and asks no more pages than before.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ovirtsdk4.reader import Reader

from ovirt_cloudprovider.core.records import Host
from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineDataError
from ovirt_cloudprovider.engine.fasthosts import joined_host, read_hosts
from ovirt_cloudprovider.engine.fastxml import read_names
from ovirt_cloudprovider.engine.host_records import host_record
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet
from tests.engine.test_lean import raw_get
from tests.helpers import SAMPLES

ConnFor = Callable[..., ConnectionConfig]
Sims = Callable[..., EngineSimulator]
WHERE = "engine.example"


def sdk_hosts(body: bytes) -> list[Host]:
    got = Reader.read(body)
    return [host_record(h) for h in (got if isinstance(got, list) else [got])]


def lean_hosts(body: bytes) -> list[Host]:
    return [lean.host for lean in read_hosts(body, "test", WHERE)]


def same_or_refused(body: bytes) -> bool:
    """The reader's records equal the SDK's (True), or both refuse (False). Never other records."""
    try:
        want = sdk_hosts(body)
    except (AttributeError, TypeError, ValueError):
        with pytest.raises(EngineDataError):
            lean_hosts(body)
        return False
    try:
        got = lean_hosts(body)
    except EngineDataError as err:
        assert any(not h.id for h in want) or "repeats" in str(err) or "holds elements" in str(err), err
        return False
    assert got == want
    return True


def recorded_hosts_with_nics() -> bytes:
    """manageiq's recorded host list with each host's recorded NIC list inlined as ``follow=nics`` inlines it."""
    root = ET.fromstring((SAMPLES / "manageiq/hosts.xml").read_bytes())
    for host in root.findall("host"):
        path = SAMPLES / f"manageiq/host_{host.get('id', '')[:8]}_nics.xml"
        if path.exists():
            nics = ET.fromstring(path.read_bytes())
            nics.tag = "nics"
            host.append(nics)
    return ET.tostring(root)


def test_reader_reads_the_recorded_hosts_as_the_sdk_does() -> None:
    body = recorded_hosts_with_nics()
    assert same_or_refused(body) is True
    hosts = lean_hosts(body)
    assert len(hosts) >= 2 and all(h.nics for h in hosts)  # the recorded NICs were read
    assert same_or_refused((SAMPLES / "manageiq/hosts.xml").read_bytes()) is True  # without NICs too


def test_a_host_naming_a_cluster_the_list_lacks_is_refused_by_name() -> None:
    lean = next(h for h in read_hosts(recorded_hosts_with_nics(), "t", WHERE) if h.host.cluster_id)
    with pytest.raises(EngineDataError, match=rf"host {lean.host.name} \({lean.host.id}\) names the cluster "
                                              rf"{lean.host.cluster_id}, which the list of clusters does not hold"):
        joined_host(lean, {}, {}, WHERE)


def test_recorded_hosts_joined_with_the_recorded_lists() -> None:
    body = recorded_hosts_with_nics()
    clusters = read_names((SAMPLES / "manageiq/clusters.xml").read_bytes(), "clusters", "cluster", "t", WHERE)
    dcs = read_names((SAMPLES / "manageiq/datacenters.xml").read_bytes(), "data_centers", "data_center", "t", WHERE)
    sdk_clusters = {c.id: c for c in Reader.read((SAMPLES / "manageiq/clusters.xml").read_bytes())}
    sdk_dcs = {d.id: d for d in Reader.read((SAMPLES / "manageiq/datacenters.xml").read_bytes())}
    for lean, want in zip(read_hosts(body, "t", WHERE), sdk_hosts(body), strict=True):
        got = joined_host(lean, clusters, dcs, WHERE)
        c = sdk_clusters[want.cluster_id or ""]
        dc = sdk_dcs[c.data_center.id]
        arch = c.cpu.architecture.value if c.cpu is not None and c.cpu.architecture is not None else None
        assert got.cluster and got.datacenter
        assert (got.cluster, got.datacenter, got.datacenter_id, got.architecture) == (c.name, dc.name, dc.id, arch)
        assert got.nics == want.nics and got.kernel == want.kernel and got.cpus == want.cpus


@pytest.mark.parametrize("seed", [2, 9])
def test_generated_hosts_lean_and_joined_equal_the_follow_search(engine_sims: Sims, seed: int) -> None:
    fleet = generate_fleet(20, seed=seed, hosts=30)
    sim = engine_sims(fleet)
    labelled = sorted(fleet.hosts)[:4]
    sim.fleet.set_affinity_labels(labelled[0], ["gpu", "fast"], host=True)
    for follow in ("nics", "nics,affinity_labels"):
        lean_body = raw_get(sim, "/hosts", {"follow": follow})
        assert same_or_refused(lean_body) is True
        want = sdk_hosts(raw_get(sim, "/hosts", {"follow": follow.replace("nics", "nics,cluster.data_center")}))
        clusters = read_names(raw_get(sim, "/clusters", {}), "clusters", "cluster", "t", WHERE)
        dcs = read_names(raw_get(sim, "/datacenters", {}), "data_centers", "data_center", "t", WHERE)
        got = [joined_host(lean, clusters, dcs, WHERE) for lean in read_hosts(lean_body, "t", WHERE)]
        assert len(got) == 30 and got == want
        assert {h.architecture for h in got} == {"x86_64", "aarch64"}
        assert any(h.affinity_labels for h in got) == (follow != "nics")


def _discovered(client: EngineClient) -> tuple[Host, ...]:
    return client.discover("").hosts


@pytest.mark.parametrize("affinity", [False, True])
def test_lean_client_finds_the_follow_clients_hosts(engine_sims: Sims, engine_conn_for: ConnFor,
                                                    clients: Callable[..., EngineClient], affinity: bool) -> None:
    sim = engine_sims(generate_fleet(20, seed=3, hosts=12))
    conn = engine_conn_for(sim)
    kw: dict[str, Any] = {"hosts": "name=*", "page_size": 5, "affinity_labels": affinity}
    lean, follow = clients(conn, **kw), clients(conn, lean=False, **kw)
    host_ids = sorted(sim.fleet.hosts)
    sim.fleet.set_affinity_labels(host_ids[0], ["gpu"], host=True)
    for change in (lambda: None, lambda: sim.set_host_status(host_ids[1], "maintenance"),
                   lambda: sim.remove_host(host_ids[2])):
        change()
        got, want = _discovered(lean), _discovered(follow)
        assert got == want and got
    sim.reset_requests()
    hosts, requests = lean.discover_hosts("name=*")  # on its own: it lists the clusters and data centers
    assert hosts == want and requests == 2 + 3  # 11 hosts in pages of 5, and the two lists
    assert sim.request_count("/hosts", method="GET") == 3


# hypothesis: hosts of every shape the SDK reads (odd values, empty and repeated elements, unknown enums)
_texts = st.one_of(st.none(), st.text(alphabet=" ab-.9&<\t", max_size=6),
                   st.sampled_from(["up", "maintenance", "true", "FALSE", "1", "12", " 3 ", "0", "-1", "x",
                                    "BOOT_IMAGE=/vmlinuz-5.14.0 ro", "fe80::1", "00:1A:4A:16:01:05"]))


def _leaf(parent: ET.Element, tag: str, text: str | None) -> None:
    if text is not None:
        ET.SubElement(parent, tag).text = text or None


@st.composite
def host_xml(draw: st.DrawFn) -> bytes:  # noqa: C901 - one branch per field of the record
    host = ET.Element("host", id=draw(st.sampled_from(["h1", "H2"])))
    for tag in draw(st.lists(st.sampled_from(["name", "status", "address", "memory", "comment"]), max_size=6)):
        _leaf(host, tag, draw(_texts))
    if draw(st.booleans()):
        hw = ET.SubElement(host, "hardware_information")
        for tag in ("manufacturer", "product_name", "uuid"):
            _leaf(hw, tag, draw(_texts))
    if draw(st.booleans()):
        cpu = ET.SubElement(host, "cpu")
        _leaf(cpu, "name", draw(_texts))
        if draw(st.booleans()):
            topology = ET.SubElement(cpu, "topology")
            for tag in ("sockets", "cores", "threads"):
                _leaf(topology, tag, draw(st.one_of(st.none(), st.sampled_from(["0", "1", "2", " 4", "x"]))))
    if draw(st.booleans()):
        os_ = ET.SubElement(host, "os")
        _leaf(os_, "type", draw(_texts))
        _leaf(os_, "reported_kernel_cmdline", draw(_texts))
        if draw(st.booleans()):
            _leaf(ET.SubElement(os_, "version"), "full_version", draw(_texts))
    if draw(st.booleans()):
        ET.SubElement(host, "cluster", id=draw(st.sampled_from(["c1", "c2"])))
    if draw(st.booleans()):
        nics = ET.SubElement(host, "nics")
        for i in range(draw(st.integers(0, 3))):
            n = ET.SubElement(nics, "host_nic", id=f"n{i}")
            _leaf(n, "name", draw(st.one_of(_texts, st.sampled_from(["eth0", "eth1", "bond0"]))))
            _leaf(n, "bridged", draw(_texts))
            _leaf(n, "base_interface", draw(_texts))
            for tag in ("ip", "ipv6", "mac"):
                if draw(st.booleans()):
                    _leaf(ET.SubElement(n, tag), "address", draw(_texts))
            if draw(st.booleans()):
                ET.SubElement(n, "vlan", id=draw(st.sampled_from(["100", " 7", "x", ""])))
            if draw(st.booleans()):
                slaves = ET.SubElement(ET.SubElement(n, "bonding"), "slaves")
                for j in range(draw(st.integers(0, 2))):
                    s = ET.SubElement(slaves, "host_nic", id=draw(st.sampled_from([f"n{j}", "zz"])))
                    _leaf(s, "name", draw(st.one_of(st.none(), st.just("eth9"))))
    if draw(st.booleans()):
        labels = ET.SubElement(host, "affinity_labels")
        for _ in range(draw(st.integers(0, 3))):
            _leaf(ET.SubElement(labels, "affinity_label", id="a"), "name", draw(_texts))
    return b"<hosts>" + ET.tostring(host) + b"</hosts>"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host_xml())
def test_reader_reads_any_host_as_the_sdk_does(body: bytes) -> None:
    same_or_refused(body)


@pytest.mark.parametrize(("body", "expected"), [
    (b"<hosts><host id='h'><name>a</name><name>b</name></host></hosts>", "<host> repeats <name>"),
    (b"<hosts><host id='h'><memory><x/></memory></host></hosts>", "holds elements"),
    (b"<hosts><host id='h'><nics><host_nic><name>e</name><bridged>maybe</bridged></host_nic></nics></host></hosts>",
     "isn't a valid boolean value"),
])
def test_reader_refuses_what_it_cannot_read_with_the_sdks_meaning(body: bytes, expected: str) -> None:
    with pytest.raises(EngineDataError, match=expected):
        read_hosts(body, "test", WHERE)
