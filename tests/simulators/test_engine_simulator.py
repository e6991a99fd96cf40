"""The engine simulator against recorded engine answers and the real ovirtsdk4: shapes, faults, search, events."""

from __future__ import annotations

import configparser
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirtsdk4.reader import Reader

from ovirt_cloudprovider.simulators import engine as sim_engine
from ovirt_cloudprovider.simulators.engine import (
    API_PREFIX,
    SSO_TOKEN_PATH,
    EngineSimulator,
    Fleet,
    GuestDevice,
    GuestOS,
    generate_fleet,
    parse_search,
    search_vms,
)
from tests.helpers import SAMPLES, mutate_every_way

MIQ = SAMPLES / "manageiq"
VM_ON_ID = "a1293e54-dae8-496f-baa4-27719592113e"
VM_OFF_ID = "8070fa6d-5b82-412c-9d41-a00017205c73"


# --- helpers -------------------------------------------------------------------------------------

def shape(obj: Any, prefix: str = "") -> dict[str, str]:
    """The populated attributes of an SDK object, recursively: {"cpu.topology.cores": "int", ...}.

    Lists merge the shapes of their items (``tags[].name``); hrefs are left out.
    """
    out: dict[str, str] = {}
    for key, value in vars(obj).items():
        name = key.lstrip("_")
        if value is None or name == "href":
            continue
        path = prefix + name
        if isinstance(value, sdk.Struct):
            out[path] = type(value).__name__
            out.update(shape(value, path + "."))
        elif isinstance(value, list):
            out[path] = "list"
            for item in value:
                if isinstance(item, sdk.Struct):
                    out.update(shape(item, path + "[]."))
                else:
                    out[path + "[]"] = type(item).__name__
        else:
            out[path] = type(value).__name__
    return out


def read_sample(rel: str) -> Any:
    return Reader.read((SAMPLES / rel).read_bytes())


def sdk_connection(sim: EngineSimulator, **kwargs: Any) -> sdk.Connection:
    return sdk.Connection(url=sim.url, username=sim.username, password=sim.password, ca_file=sim.ca_file,
                          timeout=5, **kwargs)


@pytest.fixture
def sdk_conn(engine_sim: EngineSimulator) -> Iterator[sdk.Connection]:
    conn = sdk_connection(engine_sim)
    yield conn
    conn.close()


def raw(sim: EngineSimulator, method: str, path: str, *, data: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTPS request (no SDK): (status, headers, body)."""
    ctx = ssl.create_default_context(cafile=sim.ca_file)
    req = urllib.request.Request(sim.base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers.items()), e.read()


def token_for(sim: EngineSimulator) -> str:
    form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api", "username": sim.username,
                                   "password": sim.password}).encode()
    status, _, body = raw(sim, "POST", SSO_TOKEN_PATH, data=form, headers={"Accept": "application/json"})
    assert status == 200
    return str(json.loads(body)["access_token"])


def recorded_vm_fleet() -> Fleet:
    """A fleet with VMs equivalent to the recorded vm_on / vm_off (same ids, sizes, guest data)."""
    fleet = Fleet(seed=1)
    dc = fleet.add_datacenter("newd1")
    cluster = fleet.add_cluster("newd1_cluster", dc.id)
    fleet.add_host("bodh1", cluster.id, address="bodh1.usersys.redhat.com")
    fleet.add_vm("vm_off", vm_id=VM_OFF_ID, status="down", tags=(), sockets=1, cores=1, memory=1024**3,
                 os_type="other", guest_agent=False)
    fleet.add_vm(
        "vm_on", vm_id=VM_ON_ID, status="up", tags=(), sockets=2, cores=1, threads=1, memory=2 * 1024**3,
        os_type="other", fqdn="dhcp-8-199.lab.eng.tlv2.redhat.com",
        guest_os=GuestOS("CentOS Linux", "7", "3.10.0-957.27.2.el7.x86_64", "x86_64", ""),
        devices=[GuestDevice("eth0", "00:1a:4a:16:01:05", ["10.46.8.199", "2620:52:0:2e08:21a:4aff:fe16:105",
                                                            "fe80::21a:4aff:fe16:105"])],
    )
    return fleet


# --- recorded samples ----------------------------------------------------------------------------

def test_every_recorded_xml_body_parses_with_the_sdk_reader() -> None:
    files = sorted(p for p in SAMPLES.rglob("*.xml") if p.name != "vm_follow_nics_disk_attachments.xml")
    assert len(files) > 20
    for path in files:
        assert Reader.read(path.read_bytes()) is not None, path


def test_simulator_serves_recorded_bodies_that_the_sdk_reads_like_the_file(
    engine_sim: EngineSimulator, sdk_conn: sdk.Connection,
) -> None:
    bodies = {
        "/vms": "manageiq/vms_list_down_and_up.xml",
        f"/vms/{VM_ON_ID}/reporteddevices": "manageiq/vm_up_reported_devices_ipv4_ipv6.xml",
        "/clusters": "manageiq/clusters.xml",
        "/hosts": "manageiq/hosts.xml",
        "/datacenters": "manageiq/datacenters.xml",
    }
    for path, rel in bodies.items():
        engine_sim.serve_static(path, (SAMPLES / rel).read_bytes())
    system = sdk_conn.system_service()
    served = {
        "/vms": system.vms_service().list(search="sortby name asc page 1", max=100),
        f"/vms/{VM_ON_ID}/reporteddevices": system.vms_service().vm_service(VM_ON_ID)
        .reported_devices_service().list(),
        "/clusters": system.clusters_service().list(),
        "/hosts": system.hosts_service().list(),
        "/datacenters": system.data_centers_service().list(),
    }
    for path, rel in bodies.items():
        recorded = read_sample(rel)
        assert [shape(x) for x in served[path]] == [shape(x) for x in recorded], path


def test_simulated_vms_have_the_shape_of_recorded_vms(engine_sims: Callable[..., EngineSimulator]) -> None:
    sim = engine_sims(recorded_vm_fleet())
    recorded = {v.name: v for v in read_sample("manageiq/vms_list_down_and_up.xml")}
    conn = sdk_connection(sim)
    try:
        simulated = {v.name: v for v in conn.system_service().vms_service().list()}
        devices = conn.system_service().vms_service().vm_service(VM_ON_ID).reported_devices_service().list()
    finally:
        conn.close()
    # What the recorded engine sent that the simulator leaves out (console certificates are per host).
    allowed_missing = {"display.certificate", "display.certificate.content", "display.certificate.organization",
                       "display.certificate.subject"}
    for name in ("vm_on", "vm_off"):
        want, got = shape(recorded[name]), shape(simulated[name])
        assert set(want) - set(got) <= allowed_missing, name
        assert set(got) - set(want) == set(), name  # nothing the engine would not send
        assert {k: got[k] for k in want if k in got} == {k: want[k] for k in want if k in got}, name  # same types
    on, rec = simulated["vm_on"], recorded["vm_on"]
    for attr in ("id", "name", "status", "fqdn", "memory"):
        assert getattr(on, attr) == getattr(rec, attr), attr
    assert isinstance(on.status, types.VmStatus) and on.status == types.VmStatus.UP
    assert simulated["vm_off"].status == types.VmStatus.DOWN and simulated["vm_off"].host is None
    assert (on.cpu.topology.sockets, on.cpu.topology.cores, on.cpu.topology.threads) == (2, 1, 1)
    assert on.cpu.architecture == rec.cpu.architecture == types.Architecture.X86_64
    g, rg = on.guest_operating_system, rec.guest_operating_system
    assert (g.distribution, g.version.full_version, g.version.major, g.kernel.version.full_version,
            g.kernel.version.revision) == (rg.distribution, rg.version.full_version, rg.version.major,
                                           rg.kernel.version.full_version, rg.kernel.version.revision)
    recorded_devices = read_sample("manageiq/vm_up_reported_devices_ipv4_ipv6.xml")
    assert [shape(d) for d in devices] == [shape(d) for d in recorded_devices]
    assert [(d.id, d.name, d.mac.address, [(i.address, i.version) for i in d.ips]) for d in devices] == \
        [(d.id, d.name, d.mac.address, [(i.address, i.version) for i in d.ips]) for d in recorded_devices]


def test_simulated_clusters_hosts_datacenters_events_tags_only_use_recorded_fields(
    engine_sim: EngineSimulator, sdk_conn: sdk.Connection,
) -> None:
    system = sdk_conn.system_service()
    engine_sim.set_status("k8s-cp-0", "down")

    def union(objs: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for o in objs:
            out.update(shape(o))
        return out

    cases = [
        (system.clusters_service().list(), read_sample("manageiq/clusters.xml"), set()),
        (system.hosts_service().list(), read_sample("manageiq/hosts.xml"), set()),
        # Data centers have a description (the API documentation shows one; the recorded ones had none).
        (system.data_centers_service().list(), read_sample("manageiq/datacenters.xml"), {"description"}),
        # the list a lean discovery joins by id (GET /instancetypes)
        (system.instance_types_service().list(), read_sample("fog-ovirt/instance_types.xml"), set()),
        (system.tags_service().list(),
         list(read_sample("api-model/tags_list_hierarchy.xml")) + list(read_sample("api-model/vm_assigned_tags.xml")),
         set()),
        # VM events carry the host the VM ran on (the recorded samples happen to have none).
        (system.events_service().list(max=20),
         [*read_sample("api-model/events_list.xml"), read_sample("manageiq/event_vm_updated.xml")],
         {"host", "host.id"}),
    ]
    for simulated, recorded, extra in cases:
        got, want = union(simulated), union(recorded)
        assert set(got) - set(want) <= extra, sorted(set(got) - set(want))
        assert {k: got[k] for k in got if k in want} == {k: want[k] for k in got if k in want}
    host = system.hosts_service().list()[0]
    assert host.name and host.address and host.status == types.HostStatus.UP and host.cluster.id


def test_follow_inlines_linked_entities_like_the_engine(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    vms = sdk_conn.system_service().vms_service()
    plain = vms.list(search="name=k8s-cp-0")[0]
    assert plain.cluster.name is None and plain.cluster.id and plain.reported_devices == []
    assert plain.reported_devices.href.endswith("/reporteddevices") and plain.tags.href.endswith("/tags")
    full = vms.list(search="name=k8s-cp-0", follow="reported_devices,tags,cluster.data_center,host")[0]
    vm = engine_sim.fleet.vm("k8s-cp-0")
    assert full.cluster.name == "east-a" and full.cluster.data_center.name == "dc-east"
    assert vm.host_id is not None and full.host.name == engine_sim.fleet.hosts[vm.host_id].name
    assert full.host.cluster.id == full.cluster.id
    assert [t.name for t in full.tags] == ["k8s-control-plane"]
    assert [d.name for d in full.reported_devices] == [d.name for d in vm.devices]
    assert full.reported_devices.href.endswith("/reporteddevices")  # the link stays, as on the engine
    with pytest.raises(sdk.Error) as err:
        vms.list(follow="no_such_link")
    assert err.value.code == 400 and err.value.fault is not None and "no_such_link" in err.value.fault.detail


# --- fault shapes --------------------------------------------------------------------------------

def test_401_without_token_is_the_engines_html_page(engine_sim: EngineSimulator) -> None:
    meta = json.loads((MIQ / "error_401_html.html.meta.json").read_text())["response_headers"]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        status, got, body = raw(engine_sim, "GET", API_PREFIX, headers=headers)
        assert status == 401
        assert body == (MIQ / "error_401_html.html").read_bytes()
        assert got["WWW-Authenticate"] == meta["Www-Authenticate"][0]
        assert got["Content-Type"] == meta["Content-Type"][0]


def test_missing_entity_is_404_with_an_empty_body(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    meta = json.loads((MIQ / "error_404_empty_body.txt.meta.json").read_text())
    token = token_for(engine_sim)
    status, headers, body = raw(engine_sim, "GET", f"{API_PREFIX}/vms/00000000-0000-0000-0000-00000000dead",
                                headers={"Authorization": f"Bearer {token}"})
    assert (status, body, headers["Content-Length"]) == (meta["status"], b"", meta["response_headers"]
                                                         ["Content-Length"][0])
    # no content type either, as recorded (and as ovirt-engine's handleError builds it: a 404 without an entity);
    # the engine client takes only this (or an XML <fault>) as "the object does not exist"
    assert "Content-Type" not in meta["response_headers"] and "Content-Type" not in headers
    host_status, host_headers, host_body = raw(engine_sim, "GET", f"{API_PREFIX}/hosts/00000000-0000-0000-0000-0000000"
                                               "0dead", headers={"Authorization": f"Bearer {token}"})
    assert (host_status, host_body, "Content-Type" in host_headers) == (404, b"", False)
    with pytest.raises(sdk.NotFoundError) as err:
        sdk_conn.system_service().vms_service().vm_service("00000000-0000-0000-0000-00000000dead").get()
    assert err.value.code == 404
    status, _, body = raw(engine_sim, "GET", "/api", headers={"Authorization": f"Bearer {token}"})
    assert (status, body) == (404, (MIQ / "error_404_html_wrong_prefix.html").read_bytes())


def test_html_not_found_answers_a_web_servers_404_page_for_gets_by_id(engine_sim: EngineSimulator) -> None:
    token = token_for(engine_sim)
    auth = {"Authorization": f"Bearer {token}"}
    vm_id, host_id = next(iter(engine_sim.fleet.vms)), next(iter(engine_sim.fleet.hosts))
    engine_sim.html_not_found("vms")
    engine_sim.html_not_found("hosts", ids=[host_id])
    for path in (f"/vms/{vm_id}", f"/hosts/{host_id}"):
        status, headers, body = raw(engine_sim, "GET", API_PREFIX + path, headers=auth)
        assert status == 404 and headers["Content-Type"].startswith("text/html")
        assert b"<title>404 Not Found</title>" in body
    assert raw(engine_sim, "GET", f"{API_PREFIX}/vms?search=", headers=auth)[0] == 200  # searches answer
    other = next(h for h in engine_sim.fleet.hosts if h != host_id)
    assert raw(engine_sim, "GET", f"{API_PREFIX}/hosts/{other}", headers=auth)[0] == 200  # only the ids named
    with pytest.raises(ValueError, match="kind must be"):
        engine_sim.html_not_found("clusters")
    engine_sim.clear_faults()
    assert raw(engine_sim, "GET", f"{API_PREFIX}/vms/{vm_id}", headers=auth)[0] == 200


def test_sso_answers_have_the_engine_shapes(engine_sim: EngineSimulator) -> None:
    def login(user: str, password: str) -> tuple[int, dict[str, Any]]:
        form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api", "username": user,
                                       "password": password}).encode()
        status, headers, body = raw(engine_sim, "POST", SSO_TOKEN_PATH, data=form)
        assert headers["Content-Type"].startswith("application/json")
        return status, json.loads(body)

    status, ok = login(engine_sim.username, engine_sim.password)
    mock = json.loads((SAMPLES / "ovirt-web-ui/sso_token_response_mock.json").read_text())
    assert status == 200 and set(ok) == set(mock) and ok["token_type"] == "bearer" and ok["exp"].isdigit()
    status, bad = login("admin@internal", "wrong")
    assert status == 400 and bad == json.loads((SAMPLES / "python-sdk/sso_error_ovirt_style.json").read_text())
    status, no_profile = login("admin", "wrong")
    assert status == 400 and no_profile["error_code"] == "access_denied" and "profile" in no_profile["error"]
    # The SDK's own login turns the engine's answer into the AuthError it raises against a real engine.
    conn = sdk.Connection(url=engine_sim.url, username="admin@internal", password="wrong", ca_file=engine_sim.ca_file)
    with pytest.raises(sdk.AuthError, match="access_denied : Cannot authenticate user 'admin@internal'"):
        conn.test(raise_exception=True)
    conn.close(logout=False)


def test_injected_error_bodies(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    vms = sdk_conn.system_service().vms_service()
    engine_sim.proxy_errors(count=1)
    status, headers, body = raw(engine_sim, "GET", API_PREFIX + "/vms")
    assert status == 502 and headers["Content-Type"].startswith("text/html") and b"Proxy Error" in body
    engine_sim.fail_requests(503, count=1)
    with pytest.raises(sdk.Error, match="isn't the expected XML"):  # what the SDK makes of an HTML error page
        vms.list()
    engine_sim.engine_faults(400, reason="Operation Failed", detail="[Cannot list VMs]", count=1)
    with pytest.raises(sdk.Error) as err:
        vms.list()
    assert err.value.code == 400 and err.value.fault.reason == "Operation Failed"
    recorded_fault = read_sample("api-model/fault_incomplete_parameters.xml")
    assert set(shape(err.value.fault)) == set(shape(recorded_fault))
    assert len(vms.list()) == 16  # count-limited faults are gone


# --- search --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(40, seed=11, untagged=10)


def names(vms: list[Any]) -> list[str]:
    return [v.name for v in vms]


def test_tag_search_matches_child_tags(fleet: Fleet) -> None:
    k8s = search_vms(fleet, "tag=kubernetes")
    assert len(k8s) == 40
    by_tag = {t: {v.name for v in search_vms(fleet, f"tag={t}")} for t in ("k8s-worker", "k8s-control-plane")}
    assert by_tag["k8s-control-plane"] == {"k8s-cp-0", "k8s-cp-1", "k8s-cp-2"}
    assert by_tag["k8s-worker"] and by_tag["k8s-worker"] < {v.name for v in k8s}
    assert {v.name for v in search_vms(fleet, "tag=k8s-*")} == by_tag["k8s-worker"] | by_tag["k8s-control-plane"]
    assert len(search_vms(fleet, "tag!=kubernetes")) == 10
    assert len(search_vms(fleet, "")) == 50


def test_a_renamed_or_removed_tag_matches_nothing_under_its_old_name() -> None:
    own = generate_fleet(6, seed=11, untagged=2)
    workers = {v.name for v in search_vms(own, "tag=k8s-worker")}
    assert workers
    own.rename_tag("k8s-worker", "workers")  # the VMs keep the tag, under its new name
    assert search_vms(own, "tag=k8s-worker") == [] and {v.name for v in search_vms(own, "tag=workers")} == workers
    assert {v.name for v in search_vms(own, "tag=kubernetes")} >= workers  # still a child of kubernetes
    with pytest.raises(ValueError, match="exists"):
        own.rename_tag("workers", "kubernetes")
    own.remove_tag("kubernetes")  # with the tags under it, detached from every VM
    assert search_vms(own, "tag=kubernetes") == search_vms(own, "tag=workers") == []
    assert not any(t.name in ("kubernetes", "workers") for t in own.tags.values())
    assert all(set(v.tag_ids) <= set(own.tags) for v in own.vms.values())


def test_name_status_and_or_and_sorting(fleet: Fleet) -> None:
    assert names(search_vms(fleet, "name=k8s-cp-* sortby name desc")) == ["k8s-cp-2", "k8s-cp-1", "k8s-cp-0"]
    up = {v.name for v in fleet.vms.values() if v.status == "up"}
    down = {v.name for v in fleet.vms.values() if v.status == "down"}
    assert {v.name for v in search_vms(fleet, "status=up")} == up and down
    assert {v.name for v in search_vms(fleet, "status=Up or status=down")} == up | down
    assert {v.name for v in search_vms(fleet, "tag=kubernetes and status=down")} == {
        v.name for v in fleet.vms.values() if v.status == "down" and v.name.startswith("k8s")}
    assert {v.name for v in search_vms(fleet, "Vms: tag=kubernetes status=down")} == {
        v.name for v in fleet.vms.values() if v.status == "down" and v.name.startswith("k8s")}
    assert names(search_vms(fleet, "name=K8S-CP-0", case_sensitive=False)) == ["k8s-cp-0"]
    assert names(search_vms(fleet, "name=K8S-CP-0")) == []
    everything = names(search_vms(fleet, "sortby name asc"))
    assert everything == sorted(everything) and len(everything) == 50


@pytest.mark.parametrize("query", [
    "tags=kubernetes",  # unknown field (the legacy config's spelling): an empty list, not an error
    "tag=kubernetes and", "and status=up", "name=", "status=up sortby", "tag=kubernetes page x",
    "(tag=kubernetes)", "tag=kubernetes sortby memory", "status>up",
])
def test_unknown_fields_and_syntax_errors_give_an_empty_list(fleet: Fleet, query: str) -> None:
    assert search_vms(fleet, query) == []


def test_pages_partition_the_sorted_result(fleet: Fleet) -> None:
    everything = names(search_vms(fleet, "tag=kubernetes sortby name asc"))
    pages = [names(search_vms(fleet, f"tag=kubernetes sortby name asc page {p}", max_results=15)) for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [15, 15, 10, 0]
    assert [name for page in pages for name in page] == everything
    assert len(search_vms(fleet, "tag=kubernetes page 1")) == 40  # no max: the engine's default page of 100
    assert len(search_vms(fleet, "tag=kubernetes", max_results=7)) == 7
    assert parse_search("tag=a or name=b* and status=up sortby name desc page 3").page == 3


def test_search_over_http_with_max_and_unknown_field(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    vms = sdk_conn.system_service().vms_service()
    assert len(vms.list(search="tag=kubernetes sortby name asc page 1", max=5)) == 5
    assert len(vms.list(search="tag=kubernetes sortby name asc page 3", max=5)) == 2
    assert vms.list(search="tags=kubernetes") == []
    assert len(vms.list(max=3)) == 3
    assert engine_sim.request_count("/vms", method="GET", exact=True) == 4


def test_twin_in_search_garbles_searches_only(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    vms = sdk_conn.system_service().vms_service()
    first = vms.list(search="tag=kubernetes sortby name asc page 1", max=5)[0]
    engine_sim.twin_in_search([first.id], spelling="upper")
    page = vms.list(search="tag=kubernetes sortby name asc page 1", max=5)
    assert [(v.id, v.name, v.status) for v in page[:2]] == [
        (first.id, first.name, first.status), (first.id.upper(), f"{first.name}-twin", types.VmStatus.DOWN)]
    assert len(page) == 6  # the twin comes on top of the page
    assert [v.id for v in vms.list(search=f"tag=kubernetes and id={first.id}")] == [first.id]
    assert vms.vm_service(first.id).get().name == first.name
    engine_sim.twin_in_search([first.id], spelling="nodash", before=True)
    assert [v.id for v in vms.list(search="tag=kubernetes sortby name asc page 1", max=5)[:2]] == [
        first.id.replace("-", ""), first.id]
    with pytest.raises(ValueError, match="spelling"):
        engine_sim.twin_in_search([first.id], spelling="lower")
    engine_sim.clear_faults()
    assert len(vms.list(search="tag=kubernetes sortby name asc page 1", max=5)) == 5


# --- events --------------------------------------------------------------------------------------

def test_mutations_append_realistic_events(engine_sim: EngineSimulator) -> None:
    start = engine_sim.fleet.last_event_id()
    worker = mutate_every_way(engine_sim)
    engine_sim.add_vm("k8s-new")
    codes = [e.code for e in engine_sim.fleet.events if e.id > start]
    assert codes == [33, 61, 153, 32, 503, 62, 63, 35, 440, 446, 113, 34]
    down = next(e for e in engine_sim.fleet.events if e.code == 61 and e.id > start)
    assert down.description.startswith(f"VM {worker} is down.") and down.vm_id == engine_sim.fleet.vm(worker).id


def test_events_from_and_max_like_the_engine(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    events = sdk_conn.system_service().events_service()
    events.list(max=1)  # log in first: the login is an event too
    start = engine_sim.fleet.last_event_id()
    for i in range(5):
        engine_sim.rename("k8s-cp-0" if i == 0 else f"cp-{i - 1}", f"cp-{i}")
    newest_first = events.list(from_=start)
    assert [int(e.id) for e in newest_first] == list(range(start + 5, start, -1))
    assert [int(e.id) for e in events.list(from_=start, max=2)] == [start + 5, start + 4]  # max drops older ones
    assert events.list(from_=start + 5) == []
    latest = events.list(max=1)
    assert [int(e.id) for e in latest] == [start + 5] and latest[0].code == 35
    e = newest_first[0]
    assert e.vm.id == engine_sim.fleet.vm("cp-4").id and e.cluster.id and e.data_center.id and e.user.id
    assert e.description == "VM cp-4 configuration was updated by admin@internal-authz."
    assert e.severity == types.LogSeverity.NORMAL


# --- faults, tokens, counters --------------------------------------------------------------------

def test_expired_token_gets_401_and_the_sdk_logs_in_again(engine_sim: EngineSimulator,
                                                         sdk_conn: sdk.Connection) -> None:
    vms = sdk_conn.system_service().vms_service()
    assert len(vms.list()) == 16
    engine_sim.expire_tokens()
    assert len(vms.list()) == 16
    assert engine_sim.logins == 2
    statuses = [r.status for r in engine_sim.requests if r.path == API_PREFIX + "/vms"]
    assert statuses == [200, 401, 200]


def test_token_lifetime(engine_sims: Callable[..., EngineSimulator]) -> None:
    sim = engine_sims(token_lifetime=0.2)
    token = token_for(sim)
    assert raw(sim, "GET", API_PREFIX, headers={"Authorization": f"Bearer {token}"})[0] == 200
    time.sleep(0.3)
    assert raw(sim, "GET", API_PREFIX, headers={"Authorization": f"Bearer {token}"})[0] == 401


def test_latency_drop_and_hung_sso(engine_sim: EngineSimulator) -> None:
    engine_sim.set_latency(0.3, count=1)
    t0 = time.monotonic()
    assert raw(engine_sim, "GET", API_PREFIX)[0] == 401
    assert time.monotonic() - t0 >= 0.3
    engine_sim.drop_connections(count=1)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        raw(engine_sim, "GET", API_PREFIX)
    engine_sim.hang_sso()
    t0 = time.monotonic()
    conn = sdk.Connection(url=engine_sim.url, username=engine_sim.username, password=engine_sim.password,
                          ca_file=engine_sim.ca_file, timeout=1)
    # The SDK's own SSO request has no timeout: it only returns because the fault is cleared.
    releaser = threading.Timer(1.5, engine_sim.clear_faults)
    releaser.start()
    try:
        with pytest.raises(sdk.Error):
            conn.test(raise_exception=True)
    finally:
        releaser.cancel()
        conn.close(logout=False)
    assert time.monotonic() - t0 >= 1.4


def test_request_counters(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    system = sdk_conn.system_service()
    system.vms_service().list()
    system.vms_service().vm_service(engine_sim.fleet.vm("k8s-cp-0").id).get()
    system.events_service().list(max=1)
    assert engine_sim.request_count(SSO_TOKEN_PATH, method="POST") == 1
    assert engine_sim.request_count("/vms") == 2
    assert engine_sim.request_count("/vms", exact=True) == 1
    assert engine_sim.request_count("/events", method="GET") == 1
    assert engine_sim.request_count(method="DELETE") == 0
    engine_sim.reset_requests()
    assert engine_sim.requests == []


def test_concurrent_mutations_while_listing(engine_sim: EngineSimulator, sdk_conn: sdk.Connection) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        try:
            while not stop.is_set():
                engine_sim.add_vm(f"churn-{i}")
                engine_sim.set_status(f"churn-{i}", "down")
                engine_sim.remove_vm(f"churn-{i}")
                i += 1
        except BaseException as e:  # reported below
            errors.append(e)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(3):
            sdk_conn.system_service().vms_service().list(follow="reported_devices,tags,cluster.data_center,host")
    finally:
        stop.set()
        worker.join()
    assert errors == []


# --- the generated fleet -------------------------------------------------------------------------

def test_generated_fleet_is_realistic_and_deterministic() -> None:
    fleet = generate_fleet(300, seed=5, untagged=20)
    again = generate_fleet(300, seed=5, untagged=20)
    assert [v.id for v in fleet.vms.values()] == [v.id for v in again.vms.values()]
    assert [v.id for v in generate_fleet(300, seed=6).vms.values()][:3] != [v.id for v in fleet.vms.values()][:3]
    vms = list(fleet.vms.values())
    statuses = {v.status for v in vms}
    assert {"up", "down", "suspended", "not_responding", "unknown"} <= statuses
    running = [v for v in vms if v.status == "up"]
    assert any(not v.guest_agent for v in running)
    agents = [v for v in running if v.guest_agent]
    all_ips = [ip for v in agents for d in v.devices if d.name == "eth0" for ip in d.ips]
    assert any(":" in ip and not ip.startswith("fe80") for ip in all_ips) and any("." in ip for ip in all_ips)
    device_names = {d.name.rstrip("0123456789abcdef") for v in agents for d in v.devices}
    assert {"eth", "docker", "cali", "veth", "lo"} <= device_names
    assert any(len([d for d in v.devices if d.name.startswith("eth")]) > 1 for v in agents)
    assert {c.architecture for c in fleet.clusters.values()} == {"x86_64", "aarch64"}
    assert all(v.host_id for v in running) and not any(v.host_id for v in vms if v.status == "down")
    assert any(v.fqdn is None for v in agents) and all(v.fqdn for v in agents if v.fqdn != "localhost.localdomain"
                                                         and v.fqdn is not None)
    assert sum(1 for v in vms if v.instance_type_id) > 30
    assert len(search_vms(fleet, "tag=kubernetes")) == 300


# --- standalone ----------------------------------------------------------------------------------

def test_standalone_serves_until_sigterm_and_writes_a_config(tmp_path: Path) -> None:
    conf = tmp_path / "ovirt-cloud.conf"
    proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider.simulators.engine", "--port", "0",
                             "--vms", "3", "--write-config", str(conf)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "oVirt engine simulator: https://127.0.0.1:" in line and "3 VMs" in line
        ini = configparser.ConfigParser()
        ini.read(conf)
        assert ini["filters"]["vms"] == "tag=kubernetes"
        assert conf.stat().st_mode & 0o077 == 0
        c = ini["connection"]
        conn = sdk.Connection(url=c["uri"], username=c["username"], password=c["password"], ca_file=c["ca_file"],
                              timeout=5)
        assert len(conn.system_service().vms_service().list(search=ini["filters"]["vms"])) == 3
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_exports() -> None:
    assert set(sim_engine.__all__) <= set(dir(sim_engine))
