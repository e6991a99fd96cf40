"""The lean discovery against the follow= search and the SDK's reader: the same records, VM for VM.

- engine/fastxml.py reads every recorded sample (and generated pages, and hypothesis-made VMs) as
  ``vm_record(Reader.read(body))`` does, or says EngineDataError where the SDK cannot read it either;
- the lean search (pages with reported_devices,tags; clusters, data centers, hosts, instance types listed once and
  joined by id) gives the follow= search's records on generated fleets, before and after every mutation, at
  every ``engine_concurrency``;
- paging stays consistent when requests overlap: a failing page or list fails the sweep, the next sweep is right;
  an expired token costs one login, not one per request in flight.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from ovirtsdk4 import http as sdk_http
from ovirtsdk4.reader import Reader

from ovirt_cloudprovider.core.records import VirtualMachine
from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.errors import EngineDataError, EngineTransientError
from ovirt_cloudprovider.engine.fastxml import read_names, read_vm, read_vms
from ovirt_cloudprovider.engine.records import DISCOVERY_FOLLOW, vm_record
from ovirt_cloudprovider.simulators.engine import API_PREFIX, EngineSimulator, generate_fleet
from tests.helpers import SAMPLES, mutate_every_way

ConnFor = Callable[..., ConnectionConfig]
Sims = Callable[..., EngineSimulator]
WHERE = "engine.example"


def sdk_records(body: bytes) -> list[tuple[VirtualMachine, str | None]]:
    """What the SDK path makes of a ``<vms>`` / ``<vm>`` answer: (record, instance type id) per VM."""
    got = Reader.read(body)
    vms = got if isinstance(got, list) else [got]
    return [(vm_record(v), v.instance_type.id if v.instance_type is not None else None) for v in vms]


def lean_records(body: bytes) -> list[tuple[VirtualMachine, str | None]]:
    root = etree.fromstring(body)
    leans = read_vms(root, "test", WHERE) if root.tag == "vms" else [read_vm(root, "test", WHERE)]
    return [(lean.vm, lean.instance_type_id) for lean in leans]


def vm_samples() -> list[Path]:
    out = []
    for path in sorted(SAMPLES.rglob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:  # a recorded answer that is not well-formed (for the bad-data tests)
            continue
        if root.tag in ("vms", "vm"):
            out.append(path)
    return out


# --- the reader, record for record against the SDK -----------------------------------------------

# API v3 answers (no engine of API v4 sends them): VMs without ids (the client refuses those), v3's
# <status><state>: unreadable, never read as something else
V3_SAMPLES = {"api-model/vm_guest_info_v3.xml", "kubernetes/ovirt_test_v3_vms.xml", "manageiq/v3_vms_search_page1.xml"}


def same_or_refused(body: bytes) -> bool:
    """The reader's records equal the SDK path's (True), or the reader refuses with EngineDataError where the SDK
    path would refuse too or the answer is one the reader does not read (False). Never other records."""
    try:
        want = sdk_records(body)
    except (AttributeError, TypeError, ValueError):
        with pytest.raises(EngineDataError):
            lean_records(body)
        return False
    try:
        got = lean_records(body)
    except EngineDataError as err:
        assert any(not vm.id for vm, _ in want) or "repeats" in str(err) or "holds elements" in str(err), err
        return False
    assert got == want
    return True


@pytest.mark.parametrize("path", vm_samples(), ids=lambda p: str(p.relative_to(SAMPLES)))
def test_reader_reads_every_recorded_vm_sample_as_the_sdk_does(path: Path) -> None:
    read = same_or_refused(path.read_bytes())
    assert read == (str(path.relative_to(SAMPLES)) not in V3_SAMPLES)


def test_every_recorded_vm_sample_is_checked() -> None:
    assert len(vm_samples()) >= 8


@pytest.mark.parametrize(("rel", "root", "item"), [
    ("manageiq/clusters.xml", "clusters", "cluster"),
    ("manageiq/datacenters.xml", "data_centers", "data_center"),
    ("manageiq/datacenters_search_status_up.xml", "data_centers", "data_center"),
    ("manageiq/hosts.xml", "hosts", "host"),
    ("fog-ovirt/clusters.xml", "clusters", "cluster"),
    ("fog-ovirt/data_centers.xml", "data_centers", "data_center"),
    ("fog-ovirt/instance_types.xml", "instance_types", "instance_type"),
])
def test_reader_reads_recorded_lists_as_the_sdk_does(rel: str, root: str, item: str) -> None:
    body = (SAMPLES / rel).read_bytes()
    names = read_names(body, root, item, "test", WHERE)
    def arch(x: object) -> str | None:  # a cluster's CPU architecture (the hosts' is joined from it)
        cpu = getattr(x, "cpu", None) if root == "clusters" else None
        value = getattr(cpu, "architecture", None)
        return None if value is None else str(value.value)

    want = {x.id: (x.name, x.data_center.id if getattr(x, "data_center", None) is not None else None, arch(x))
            for x in Reader.read(body)}
    assert {k: (v.name, v.datacenter_id, v.architecture) for k, v in names.items()} == want
    assert names


def raw_get(sim: EngineSimulator, path: str, query: dict[str, str]) -> bytes:
    import ovirtsdk4 as sdk
    conn = sdk.Connection(url=sim.url, username=sim.username, password=sim.password, ca_file=sim.ca_file)
    try:
        response = conn.wait(conn.send(sdk_http.Request(method="GET", path=path, query=query)))
        assert response.code == 200
        return bytes(response.body)
    finally:
        conn.close()


@pytest.mark.parametrize("seed", [1, 5, 11])
def test_reader_reads_generated_pages_as_the_sdk_does(engine_sims: Sims, seed: int) -> None:
    sim = engine_sims(generate_fleet(150, seed=seed, untagged=20))
    for follow in (DISCOVERY_FOLLOW, "reported_devices,tags", ""):
        body = raw_get(sim, "/vms", {"follow": follow} if follow else {})
        want = sdk_records(body)
        assert len(want) == 170 and lean_records(body) == want


# hypothesis: VMs of every shape the SDK reads (odd values, empty and repeated elements, unknown enums)
_texts = st.one_of(st.none(), st.text(alphabet=" ab-.9&<\t", max_size=6),
                   st.sampled_from(["up", "down", "x86_64", "ppc64", "network", "loopback", "12", " 3 ", "0",
                                    "-1", "1e3", "fe80::1", "00:1A:4A:16:01:05"]))


def _leaf(parent: ET.Element, tag: str, text: str | None) -> None:
    if text is not None:
        ET.SubElement(parent, tag).text = text or None


@st.composite
def vm_xml(draw: st.DrawFn) -> bytes:  # noqa: C901 - one branch per field of the record
    vm = ET.Element("vm", id=draw(st.sampled_from(["a1", "B2"])))
    for tag in draw(st.lists(st.sampled_from(["name", "status", "fqdn", "memory", "comment"]), max_size=6)):
        _leaf(vm, tag, draw(_texts))
    if draw(st.booleans()):
        cpu = ET.SubElement(vm, "cpu")
        _leaf(cpu, "architecture", draw(_texts))
        if draw(st.booleans()):
            topology = ET.SubElement(cpu, "topology")
            for tag in ("sockets", "cores", "threads"):
                _leaf(topology, tag, draw(st.one_of(st.none(), st.sampled_from(["0", "1", "2", " 4", "x"]))))
    if draw(st.booleans()):
        _leaf(ET.SubElement(vm, "os"), "type", draw(_texts))
    if draw(st.booleans()):
        gos = ET.SubElement(vm, "guest_operating_system")
        _leaf(gos, "architecture", draw(_texts))
        _leaf(gos, "distribution", draw(_texts))
        if draw(st.booleans()):
            _leaf(ET.SubElement(gos, "version"), "full_version", draw(_texts))
        if draw(st.booleans()):
            _leaf(ET.SubElement(ET.SubElement(gos, "kernel"), "version"), "full_version", draw(_texts))
    for link in ("cluster", "host", "instance_type"):
        if draw(st.booleans()):
            el = ET.SubElement(vm, link, id=draw(st.sampled_from(["c1", "c2"])))
            _leaf(el, "name", draw(_texts))
            if link == "cluster" and draw(st.booleans()):
                dc = ET.SubElement(el, "data_center", id="d1")
                _leaf(dc, "name", draw(_texts))
    if draw(st.booleans()):
        devices = ET.SubElement(vm, "reported_devices")
        for _ in range(draw(st.integers(0, 3))):
            d = ET.SubElement(devices, "reported_device", id="r")
            _leaf(d, "name", draw(_texts))
            _leaf(d, "type", draw(_texts))
            if draw(st.booleans()):
                _leaf(ET.SubElement(d, "mac"), "address", draw(_texts))
            if draw(st.booleans()):
                ips = ET.SubElement(d, "ips")
                for _ in range(draw(st.integers(0, 3))):
                    _leaf(ET.SubElement(ips, "ip"), "address", draw(_texts))
    if draw(st.booleans()):
        tags = ET.SubElement(vm, "tags")
        for _ in range(draw(st.integers(0, 3))):
            _leaf(ET.SubElement(tags, "tag", id="t"), "name", draw(_texts))
    return b"<vms>" + ET.tostring(vm) + b"</vms>"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm_xml())
def test_reader_reads_any_vm_as_the_sdk_does(body: bytes) -> None:
    same_or_refused(body)


@pytest.mark.parametrize("body", [
    b"<vms><vm id='1'><name>a<b/>c</name></vm></vms>",  # an element inside a value
    b"<vms><vm id='1'><memory>lots</memory></vm></vms>",
    b"<vms><vm><name>no id</name></vm></vms>",
    b"<!DOCTYPE vms [<!ENTITY e 'x'>]><vms><vm id='1'><name>&e;</name></vm></vms>",  # never expanded
])
def test_unexpected_xml_is_an_engine_data_error_never_a_guess(body: bytes) -> None:
    with pytest.raises(EngineDataError, match=r"engine answer for test at engine\.example"):
        read_vms(body, "test", WHERE)


_DEVICE = "<reported_devices><reported_device id='r'>{}</reported_device></reported_devices>"


@pytest.mark.parametrize(("inner", "reason"), [
    (_DEVICE.format("<name>eth0</name><mac><address>a</address></mac><mac><address>b</address></mac>"),
     "<reported_device> repeats <mac>"),
    (_DEVICE.format("<name>eth0</name><name>eth1</name>"), "<reported_device> repeats <name>"),
    (_DEVICE.format("<name>eth0</name><type>network</type><type>loopback</type>"), "<reported_device> repeats <type>"),
    (_DEVICE.format("<name>eth0</name><ips><ip><address>1</address><address>2</address></ip></ips>"),
     "<ip> repeats <address>"),
    (_DEVICE.format("<name>eth0</name><mac><address>a<b/></address></mac>"), "<address> holds elements"),
    (_DEVICE.format("<name>e<x/></name>"), "<name> holds elements"),
    ("<tags><tag id='t'><name>a</name><name>b</name></tag></tags>", "<tag> repeats <name>"),
    ("<cpu><topology><cores>2</cores><cores>4</cores></topology></cpu>", "<topology> repeats <cores>"),
    ("<cpu><topology><sockets>2<x/></sockets></topology></cpu>", "<sockets> holds elements"),
    ("<guest_operating_system><kernel><version><full_version>1</full_version><full_version>2</full_version>"
     "</version></kernel></guest_operating_system>", "<version> repeats <full_version>"),
    ("<cluster id='c'><data_center id='d'/><data_center id='e'/></cluster>", "<cluster> repeats <data_center>"),
    ("<host id='h'><name>a</name><name>b</name></host>", "<host> repeats <name>"),
    ("<os><type>a</type><type>b</type></os>", "<os> repeats <type>"),
    ("<name>a</name><name>b</name>", "<vm> repeats <name>"),
])
def test_a_repeated_or_nested_field_anywhere_is_refused_naming_the_vm(inner: str, reason: str) -> None:
    """Each element the reader reads, at every depth: a repeat or an element inside a value is refused, never
    read as one of the values (the SDK keeps the last, or fails)."""
    body = f"<vms><vm id='v1'>{inner}<status>up</status></vm></vms>".encode()
    with pytest.raises(EngineDataError, match=r"VM v1 \(name .*\) cannot be read|a <vm> cannot be read") as err:
        read_vms(body, "test", WHERE)
    assert reason in str(err.value)
    assert same_or_refused(body) is False


def test_a_skipped_device_is_not_read_further() -> None:
    """As the SDK path: a device without a name is dropped before its MAC and addresses are looked at."""
    body = (b"<vms><vm id='v1'>" + _DEVICE.format(
        "<type>network</type><mac><address>a</address><address>b</address></mac>").encode()
        + b"</vm></vms>")
    assert same_or_refused(body) is True
    assert read_vms(body, "test", WHERE)[0].vm.nics == ()


# --- the lean search against the follow= search --------------------------------------------------

RECORDED_LISTS = {"/clusters": "manageiq/clusters.xml", "/datacenters": "manageiq/datacenters.xml",
                  "/hosts": "manageiq/hosts.xml"}


def joined_by_sdk(body: bytes) -> dict[str, VirtualMachine]:
    """The SDK records of a recorded VM list with the names of the recorded lists joined in (by the SDK)."""
    clusters = {c.id: c for c in Reader.read((SAMPLES / RECORDED_LISTS["/clusters"]).read_bytes())}
    dcs = {d.id: d for d in Reader.read((SAMPLES / RECORDED_LISTS["/datacenters"]).read_bytes())}
    hosts = {h.id: h for h in Reader.read((SAMPLES / RECORDED_LISTS["/hosts"]).read_bytes())}
    out = {}
    for vm, _ in sdk_records(body):
        c = clusters[vm.cluster_id] if vm.cluster_id else None
        dc = dcs[c.data_center.id] if c is not None and c.data_center is not None else None
        out[vm.id] = dataclasses.replace(
            vm, cluster=c.name if c else None, datacenter_id=dc.id if dc else None,
            datacenter=dc.name if dc else None, host=hosts[vm.host_id].name if vm.host_id else None)
    return out


def test_lean_search_of_recorded_answers(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                         clients: Callable[..., EngineClient]) -> None:
    """The recorded VM list and the recorded lists of the same engine (manageiq's samples)."""
    body = (SAMPLES / "manageiq/vms_list_down_and_up.xml").read_bytes()
    engine_sim.serve_static("/vms", body)
    for path, sample in RECORDED_LISTS.items():
        engine_sim.serve_static(path, (SAMPLES / sample).read_bytes())
    snap = clients(engine_conn_for(engine_sim)).discover("")
    want = joined_by_sdk(body)
    assert {vm.id: vm for vm in snap.vms} == want
    assert all(vm.cluster for vm in want.values())  # the names were joined in, not left out


def test_a_vm_naming_an_unlisted_cluster_fails_the_sweep(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                                         clients: Callable[..., EngineClient]) -> None:
    engine_sim.serve_static("/vms", (SAMPLES / "manageiq/vms_list_down_and_up.xml").read_bytes())
    engine_sim.serve_static("/hosts", (SAMPLES / "manageiq/hosts.xml").read_bytes())
    with pytest.raises(EngineDataError, match=r"names the cluster 1c273044-.* which the list of clusters does not"):
        clients(engine_conn_for(engine_sim)).discover("")


def both(sim: EngineSimulator, conn: ConnectionConfig, clients: Callable[..., EngineClient], query: str, *,
         page_size: int, concurrency: int) -> tuple[dict[str, VirtualMachine], dict[str, VirtualMachine]]:
    old = clients(conn, page_size=page_size, lean=False).discover(query)
    new = clients(conn, page_size=page_size, engine_concurrency=concurrency).discover(query)
    assert new.inconsistent_ids == old.inconsistent_ids == ()
    assert [vm.id for vm in new.vms] == [vm.id for vm in old.vms]  # the same order too
    return {vm.id: vm for vm in old.vms}, {vm.id: vm for vm in new.vms}


@pytest.mark.parametrize(("vms", "seed", "page_size", "concurrency"), [
    (0, 1, 100, 2), (1, 2, 1, 1), (57, 3, 10, 2), (120, 4, 50, 3), (333, 5, 100, 8), (1000, 6, 100, 2),
])
def test_lean_search_gives_the_follow_searchs_records(engine_sims: Sims, engine_conn_for: ConnFor,
                                                      clients: Callable[..., EngineClient], vms: int, seed: int,
                                                      page_size: int, concurrency: int) -> None:
    sim = engine_sims(generate_fleet(vms, seed=seed, untagged=vms // 10, control_plane=min(vms, 3)))
    conn = engine_conn_for(sim, timeout=30.0)
    for query in ("tag=kubernetes", ""):
        old, new = both(sim, conn, clients, query, page_size=page_size, concurrency=concurrency)
        assert new == old and len(new) == vms + (vms // 10 if not query else 0)


def test_lean_search_follows_every_mutation(engine_sims: Sims, engine_conn_for: ConnFor,
                                            clients: Callable[..., EngineClient]) -> None:
    sim = engine_sims(generate_fleet(40, seed=8))
    conn = engine_conn_for(sim)
    mutate_every_way(sim)
    sim.set_host_status(next(iter(sim.fleet.hosts)), "maintenance")
    old, new = both(sim, conn, clients, "", page_size=7, concurrency=2)
    assert new == old


# --- overlapped paging: failures, sessions ---------------------------------------------------------

@pytest.mark.parametrize(("prefix", "skip"), [("/vms", 0), ("/vms", 2), ("/clusters", 0), ("/hosts", 0),
                                              ("/instancetypes", 0)])
def test_a_failing_page_or_list_fails_the_sweep_and_the_next_is_right(
        engine_sims: Sims, engine_conn_for: ConnFor, clients: Callable[..., EngineClient], prefix: str,
        skip: int) -> None:
    sim = engine_sims(generate_fleet(60, seed=3))
    conn = engine_conn_for(sim)
    want = {vm.id: vm for vm in clients(conn, page_size=10, lean=False).discover("").vms}
    client = clients(conn, page_size=10, engine_concurrency=3)
    sim.fail_requests(503, count=1, skip=skip, path_prefix=API_PREFIX + prefix)
    with pytest.raises(EngineTransientError, match=r"VM search at 127.0.0.1:[0-9]+ failed: HTTP 503"):
        client.discover("")
    assert {vm.id: vm for vm in client.discover("").vms} == want  # nothing of the failed sweep is left over
    assert {vm.id: vm for vm in client.discover("").vms} == want


def test_malformed_page_is_one_clear_error(engine_sim: EngineSimulator, engine_client: EngineClient) -> None:
    engine_sim.serve_static("/clusters", b"<clusters>\n<cluster id='1'><name>a</name></cluster")
    with pytest.raises(EngineDataError, match=r"VM search at .* not well-formed XML at line 2"):
        engine_client.discover("")


def test_an_expired_token_costs_one_login_with_requests_in_flight(engine_sims: Sims, engine_conn_for: ConnFor,
                                                                  clients: Callable[..., EngineClient]) -> None:
    sim = engine_sims(generate_fleet(50, seed=4))
    client = clients(engine_conn_for(sim), page_size=10, engine_concurrency=4)
    first = client.discover("")
    assert sim.logins == 1
    sim.expire_tokens()
    assert client.discover("") == first
    assert sim.logins == 2
