"""EngineClient through the real ovirtsdk4 against the engine simulator: discovery, paging, sessions, faults,
events, and the mapping of recorded engine answers."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ovirtsdk4.reader import Reader
from prometheus_client import CollectorRegistry

from ovirt_cloudprovider.core.records import GuestNic, VirtualMachine
from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.endpoint import system_ca_bundle
from ovirt_cloudprovider.engine.errors import (
    EVENTS_MISSED,
    NODE_EVENT_CODES,
    EngineAuthError,
    EngineError,
    EngineFaultError,
    EngineTransientError,
)
from ovirt_cloudprovider.engine.paging import LEAN_FOLLOW
from ovirt_cloudprovider.engine.records import DISCOVERY_FOLLOW, vm_record
from ovirt_cloudprovider.metrics import Metrics
from ovirt_cloudprovider.simulators.engine import (
    API_PREFIX,
    GUEST_VISIBLE_STATUSES,
    SSO_TOKEN_PATH,
    EngineSimulator,
    Fleet,
    SimVM,
    generate_fleet,
    search_vms,
)
from tests.helpers import SAMPLES, mutate_every_way

ConnFor = Callable[..., ConnectionConfig]
Sims = Callable[..., EngineSimulator]


def expected_record(fleet: Fleet, vm: SimVM) -> VirtualMachine:
    """What discovery must report for a simulated VM (the simulator's data, as the engine shows it)."""
    cluster = fleet.clusters[vm.cluster_id]
    dc = fleet.datacenters[cluster.datacenter_id]
    host = fleet.hosts[vm.host_id] if vm.host_id else None
    visible = vm.guest_agent and vm.status in GUEST_VISIBLE_STATUSES
    g = vm.guest_os if visible else None
    nics = tuple(GuestNic(d.name, d.mac.lower(), tuple(d.ips)) for d in vm.devices) if visible else ()
    fqdn = vm.fqdn if visible else None
    it = fleet.instance_types[vm.instance_type_id].name if vm.instance_type_id else None
    return VirtualMachine(
        id=vm.id, name=vm.name, status=vm.status, fqdn=fqdn, cluster=cluster.name, cluster_id=cluster.id,
        datacenter=dc.name, datacenter_id=dc.id, host=host.name if host else None, host_id=host.id if host else None,
        tags=tuple(sorted(fleet.tags[t].name for t in vm.tag_ids)), nics=nics,
        cpus=vm.sockets * vm.cores * vm.threads, memory_bytes=vm.memory, os_type=vm.os_type,
        guest_os=f"{g.distribution} {g.version}" if g else None, kernel=g.kernel if g else None,
        architecture=g.architecture if g else cluster.architecture, instance_type=it,
        guest_agent=bool(nics or fqdn or g), placement=vm.placement,
        affinity_labels=tuple(sorted(fleet.affinity_labels[a].name for a in vm.affinity_label_ids)),
    )


def metric(metrics: Metrics, operation: str, code: str) -> float:
    value = metrics.registry.get_sample_value("ovirt_cloudprovider_engine_requests_total",
                                              {"operation": operation, "code": code})
    return value or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


# --- discovery -----------------------------------------------------------------------------------

def test_discovery_returns_correct_records_for_a_generated_fleet(engine_sims: Sims, engine_conn_for: ConnFor,
                                                                 clients: Callable[..., EngineClient]) -> None:
    sim = engine_sims(generate_fleet(120, seed=4, untagged=15))
    client = clients(engine_conn_for(sim), page_size=50)
    snap = client.discover("tag=kubernetes")
    assert snap.query == "tag=kubernetes" and snap.requests == sim.request_count(API_PREFIX + "/", method="GET")
    want = {vm.id: expected_record(sim.fleet, vm) for vm in search_vms(sim.fleet, "tag=kubernetes")}
    assert len(want) == 120
    assert {vm.id: vm for vm in snap.vms} == want
    assert [vm.name for vm in snap.vms] == sorted(vm.name for vm in snap.vms)
    # the fleet's variety made it through the mapping
    assert {vm.status for vm in snap.vms} >= {"up", "down", "suspended"}
    assert any(not vm.guest_agent and vm.status == "up" for vm in snap.vms)
    assert any(n.name.startswith("cali") for vm in snap.vms for n in vm.nics)
    assert {vm.architecture for vm in snap.vms} == {"x86_64", "aarch64"}
    assert any(vm.instance_type for vm in snap.vms)
    all_vms = client.discover("")
    assert len(all_vms.vms) == 135 and all_vms.query == ""


def test_tag_filter_matches_child_tags(engine_sim: EngineSimulator, engine_client: EngineClient) -> None:
    everything = engine_client.discover("tag=kubernetes")
    workers = engine_client.discover("tag=k8s-worker")
    cps = engine_client.discover("tag=k8s-control-plane")
    assert len(everything.vms) == 12
    assert {v.name for v in cps.vms} == {"k8s-cp-0", "k8s-cp-1", "k8s-cp-2"}
    assert {v.id for v in workers.vms} < {v.id for v in everything.vms}
    assert all("k8s-worker" in v.tags for v in workers.vms)
    assert engine_client.discover("tags=kubernetes").vms == ()  # the engine's field is "tag"


@pytest.mark.parametrize(("vms", "requests"), [(0, 1), (1, 1), (5, 2), (6, 2), (11, 3)])
def test_paging_request_count_of_the_follow_search(engine_sims: Sims, engine_conn_for: ConnFor,
                                                   clients: Callable[..., EngineClient], vms: int,
                                                   requests: int) -> None:
    page_size = 5
    sim = engine_sims(generate_fleet(vms, seed=2, untagged=3, control_plane=min(vms, 3)))
    client = clients(engine_conn_for(sim), page_size=page_size, lean=False)
    snap = client.discover("tag=kubernetes")
    assert len(snap.vms) == vms
    assert requests == math.ceil((vms + 1) / page_size)
    assert requests == sim.request_count("/vms", method="GET", exact=True)
    # the tag tree, listed once because the filter names a tag (core/vmfilter.unknown_tags)
    assert snap.requests == requests + 1 and sim.request_count("/tags", method="GET", exact=True) == 1
    assert sim.request_count("/vms/") == 0  # never one request per VM
    searches = [r.query for r in sim.requests if r.path == API_PREFIX + "/vms"]
    assert [q["search"] for q in searches] == [f"tag=kubernetes sortby name asc page {p}"
                                               for p in range(1, requests + 1)]
    assert all(q["max"] == str(page_size) and q["follow"] == DISCOVERY_FOLLOW for q in searches)


@pytest.mark.parametrize("concurrency", [1, 2, 3])
@pytest.mark.parametrize(("vms", "pages"), [(0, 1), (1, 1), (5, 2), (6, 2), (11, 3)])
def test_paging_request_count_of_the_lean_search(engine_sims: Sims, engine_conn_for: ConnFor,
                                                 clients: Callable[..., EngineClient], vms: int, pages: int,
                                                 concurrency: int) -> None:
    """ceil((N + 1) / page size) pages, at most ``engine_concurrency`` more sent before the short page was read
    (dropped unread), and each list once: never one request per VM."""
    page_size = 5
    sim = engine_sims(generate_fleet(vms, seed=2, untagged=3, control_plane=min(vms, 3)))
    client = clients(engine_conn_for(sim), page_size=page_size, engine_concurrency=concurrency)
    client.check()
    sim.reset_requests()
    snap = client.discover("tag=kubernetes")
    assert len(snap.vms) == vms
    assert pages == math.ceil((vms + 1) / page_size)
    assert snap.requests == len(sim.requests)
    assert sim.request_count("/vms/") == 0  # never one request per VM
    searches = [r.query for r in sim.requests if r.path == API_PREFIX + "/vms"]
    numbers = sorted(int(q["search"].rsplit(" ", 1)[1]) for q in searches)
    assert numbers == list(range(1, len(numbers) + 1)) and pages <= len(numbers) <= pages + concurrency
    assert all(q["search"].startswith("tag=kubernetes sortby name asc page ") for q in searches)
    assert all(q["max"] == str(page_size) and q["follow"] == LEAN_FOLLOW for q in searches)
    lists = sorted(r.path.rsplit("/", 1)[1] for r in sim.requests if r.path != API_PREFIX + "/vms")
    assert lists == ["clusters", "datacenters", "hosts", "instancetypes", "tags"]  # tags: the filter names one
    assert all(not r.query for r in sim.requests if r.path != API_PREFIX + "/vms")


def test_discovery_of_1000_vms(engine_sims: Sims, engine_conn_for: ConnFor, clients: Callable[..., EngineClient],
                               metrics: Metrics) -> None:
    sim = engine_sims(generate_fleet(1000, seed=9))
    client = clients(engine_conn_for(sim, timeout=20.0), metrics=metrics)
    client.check()  # log in first: count the search alone (its speed is measured in benchmarks/discovery.py)
    sim.reset_requests()
    snap = client.discover("tag=kubernetes")
    pages = sim.request_count("/vms", exact=True)
    assert len(snap.vms) == 1000 and 11 <= pages <= 11 + 2 and snap.requests == pages + 5 == len(sim.requests)
    assert metric(metrics, "search_vms", "200") == pages and metric(metrics, "sso_login", "200") == 1
    assert all(metric(metrics, f"list_{path}", "200") == 1
               for path in ("clusters", "datacenters", "hosts", "instancetypes", "tags"))


def test_filter_with_sortby_or_page_is_refused(engine_client: EngineClient) -> None:
    with pytest.raises(EngineFaultError, match="must not contain 'sortby' or 'page'"):
        engine_client.discover("tag=kubernetes sortby name desc")


def test_engine_that_ignores_page_is_detected(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                              clients: Callable[..., EngineClient]) -> None:
    engine_sim.serve_static("/vms", (SAMPLES / "manageiq/vms_list_down_and_up.xml").read_bytes())
    client = clients(engine_conn_for(engine_sim), page_size=2)
    with pytest.raises(EngineFaultError, match="page 2 repeated the VMs of earlier pages"):
        client.discover("")


# --- recorded engine answers ---------------------------------------------------------------------

def test_recorded_vm_list_maps_to_our_records(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                              clients: Callable[..., EngineClient]) -> None:
    """The follow= search read by the SDK (the lean search against the same answers: tests/engine/test_lean.py)."""
    engine_sim.serve_static("/vms", (SAMPLES / "manageiq/vms_list_down_and_up.xml").read_bytes())
    snap = clients(engine_conn_for(engine_sim), lean=False).discover("")
    assert snap.requests == 1
    vms = {vm.name: vm for vm in snap.vms}
    on, off = vms["vm_on"], vms["vm_off"]
    assert on == VirtualMachine(
        id="a1293e54-dae8-496f-baa4-27719592113e", name="vm_on", status="up",
        fqdn="dhcp-8-199.lab.eng.tlv2.redhat.com", cluster=None, cluster_id="1c273044-e6ca-492f-9ac2-47381b626808",
        host=None, host_id="ce40bb38-f10a-43f3-8e15-d0ffad692a19", cpus=2, memory_bytes=2 * 1024**3, os_type="other",
        guest_os="CentOS Linux 7", kernel="3.10.0-957.27.2.el7.x86_64", architecture="x86_64", guest_agent=True,
        placement="migratable",
    )
    assert (off.status, off.fqdn, off.host_id, off.cpus, off.memory_bytes, off.guest_agent, off.guest_os) == (
        "down", None, None, 1, 1024**3, False, None)


def test_recorded_vm_without_fqdn(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                  clients: Callable[..., EngineClient]) -> None:
    engine_sim.serve_static("/vms", (SAMPLES / "manageiq/vms_list_private_ip_vm.xml").read_bytes())
    vms = {vm.name: vm for vm in clients(engine_conn_for(engine_sim), lean=False).discover("").vms}
    rhel = vms["rhel_seven"]
    assert rhel.status == "up" and rhel.fqdn is None and rhel.guest_agent and rhel.guest_os
    assert all(vm.status in ("up", "down") for vm in vms.values())


def test_recorded_reported_devices_map_to_guest_nics() -> None:
    vm = next(v for v in Reader.read((SAMPLES / "manageiq/vms_list_down_and_up.xml").read_bytes())
              if v.name == "vm_on")
    vm.reported_devices = Reader.read((SAMPLES / "manageiq/vm_up_reported_devices_ipv4_ipv6.xml").read_bytes())
    assert vm_record(vm).nics == (GuestNic("eth0", "00:1a:4a:16:01:05", (
        "10.46.8.199", "2620:52:0:2e08:21a:4aff:fe16:105", "fe80::21a:4aff:fe16:105")),)
    vm.reported_devices = Reader.read((SAMPLES / "manageiq/vm_private_ip_reported_devices.xml").read_bytes())
    nics = vm_record(vm).nics
    assert [n.name for n in nics] == ["eth3", "eth2", "eth1", "eth0"]
    assert nics[0].ips == () and nics[3].ips == ("192.168.178.62", "fe80::37ee:4ca9:9bba:d731")
    vm.reported_devices = Reader.read((SAMPLES / "manageiq/vm_down_reported_devices_empty.xml").read_bytes())
    assert vm_record(vm).nics == ()


# --- sessions ------------------------------------------------------------------------------------

def test_one_session_across_sweeps_and_relogin_on_expiry(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                                         clients: Callable[..., EngineClient],
                                                         metrics: Metrics) -> None:
    client = clients(engine_conn_for(engine_sim), metrics=metrics)
    for _ in range(3):
        assert len(client.discover("tag=kubernetes").vms) == 12
    assert engine_sim.logins == 1 and metric(metrics, "sso_login", "200") == 1
    engine_sim.expire_tokens()
    assert len(client.discover("tag=kubernetes").vms) == 12
    assert engine_sim.logins == 2 and metric(metrics, "sso_login", "200") == 2
    statuses = [r.status for r in engine_sim.requests if r.path == API_PREFIX + "/vms"]
    assert statuses == [200, 200, 200, 401, 200]
    assert metric(metrics, "search_vms", "200") == 4


def test_rotated_password_file_is_read_at_relogin(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                                   clients: Callable[..., EngineClient], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(engine_sim.password + "\n")
    client = clients(engine_conn_for(engine_sim, password="", password_file=str(secret)))
    assert client.discover("tag=kubernetes").vms
    engine_sim.password = "r0tated-Secret-2"
    secret.write_text("r0tated-Secret-2\n")
    engine_sim.expire_tokens()
    assert client.discover("tag=kubernetes").vms
    engine_sim.password = "r0tated-Secret-3"  # the Secret was not updated this time
    engine_sim.expire_tokens()
    with pytest.raises(EngineAuthError, match="wrong username or password") as err:
        client.discover("tag=kubernetes")
    assert "r0tated" not in str(err.value)


def test_close_logs_out_and_is_bounded_when_the_engine_is_gone(engine_sims: Sims, engine_conn_for: ConnFor,
                                                               metrics: Metrics) -> None:
    sim = engine_sims()
    client = EngineClient(engine_conn_for(sim), metrics=metrics)
    client.check()
    client.close()
    assert sim.logouts == 1 and sim.active_tokens == 0 and metric(metrics, "logout", "200") == 1
    client.close()  # twice is fine
    assert client.check().startswith("oVirt Engine")  # and the client logs in again when used
    sim.stop()
    t0 = time.monotonic()
    client.close()  # the engine is gone: no exception, quick
    assert time.monotonic() - t0 < 4
    assert metric(metrics, "logout", "error") == 1


def test_close_is_bounded_when_the_logout_hangs(engine_sim: EngineSimulator, engine_conn_for: ConnFor) -> None:
    client = EngineClient(engine_conn_for(engine_sim, timeout=1.0))
    client.check()
    engine_sim.set_latency(30, path_prefix="/ovirt-engine/services/sso-logout")
    t0 = time.monotonic()
    client.close()
    assert time.monotonic() - t0 < 2.5


def test_check_reports_the_engine_version(engine_client: EngineClient) -> None:
    assert engine_client.check() == "oVirt Engine 4.5.5-1.el8"


def test_two_threads_share_the_client(engine_sim: EngineSimulator, engine_client: EngineClient) -> None:
    errors: list[BaseException] = []
    index = engine_client.last_event_index()

    def poll() -> None:
        try:
            for _ in range(10):
                engine_client.events_since(index)
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=poll)
    t.start()
    for _ in range(5):
        assert len(engine_client.discover("tag=kubernetes").vms) == 12
    t.join()
    assert errors == [] and engine_sim.logins == 1


# --- faults --------------------------------------------------------------------------------------

def assert_one_line_without_secrets(err: EngineError, where: str, caplog: pytest.LogCaptureFixture,
                                    *secrets: str) -> None:
    text = str(err)
    assert "\n" not in text and text.strip() == text and len(text) < 500
    assert where in text, text
    for secret in secrets:
        assert secret not in text
        assert secret not in caplog.text


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_wrong_password(engine_sim: EngineSimulator, engine_conn_for: ConnFor, clients: Callable[..., EngineClient],
                        metrics: Metrics, debug_logs: pytest.LogCaptureFixture) -> None:
    wrong = "Wr0ng-Pa55word-xyz"
    client = clients(engine_conn_for(engine_sim, password=wrong), metrics=metrics)
    with pytest.raises(EngineAuthError) as err:
        client.discover("tag=kubernetes")
    assert str(err.value) == (f"login as admin@internal at 127.0.0.1:{engine_sim.port} failed: wrong username or "
                              "password (access_denied: Cannot authenticate user 'admin@internal': The username or "
                              "password is incorrect)")
    assert err.value.code == 400 and metric(metrics, "sso_login", "400") == 1
    assert_one_line_without_secrets(err.value, f"127.0.0.1:{engine_sim.port}", debug_logs, wrong,
                                    engine_sim.password)
    assert engine_sim.request_count(API_PREFIX) == 0


def test_unreachable_engine(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                            clients: Callable[..., EngineClient], metrics: Metrics,
                            debug_logs: pytest.LogCaptureFixture) -> None:
    port = free_port()
    conn = engine_conn_for(engine_sim, uri=f"https://127.0.0.1:{port}/ovirt-engine/api")
    with pytest.raises(EngineTransientError, match="cannot connect") as err:
        clients(conn, metrics=metrics).discover("tag=kubernetes")
    assert err.value.code is None and metric(metrics, "sso_login", "error") == 1
    assert_one_line_without_secrets(err.value, f"127.0.0.1:{port}", debug_logs, engine_sim.password)


def test_unreachable_after_login(engine_sims: Sims, engine_conn_for: ConnFor, clients: Callable[..., EngineClient],
                                 debug_logs: pytest.LogCaptureFixture) -> None:
    sim = engine_sims()
    client = clients(engine_conn_for(sim))
    client.discover("tag=kubernetes")
    sim.stop()
    with pytest.raises(EngineTransientError, match=r"VM search at .* failed: cannot connect") as err:
        client.discover("tag=kubernetes")
    assert_one_line_without_secrets(err.value, "127.0.0.1", debug_logs, sim.password)


@pytest.mark.parametrize("stage", ["login", "search"])
def test_proxy_502_html(engine_sim: EngineSimulator, engine_conn_for: ConnFor, clients: Callable[..., EngineClient],
                        metrics: Metrics, debug_logs: pytest.LogCaptureFixture, stage: str) -> None:
    client = clients(engine_conn_for(engine_sim), metrics=metrics)
    if stage == "search":
        client.check()
    engine_sim.proxy_errors()
    with pytest.raises(EngineTransientError) as err:
        client.discover("tag=kubernetes")
    text = str(err.value)
    assert "HTTP 502" in text and "Proxy Error" in text and "proxy" in text.split("Proxy Error")[1]
    assert err.value.code == 502
    assert metric(metrics, "sso_login" if stage == "login" else "search_vms", "502") == 1
    assert_one_line_without_secrets(err.value, f"127.0.0.1:{engine_sim.port}", debug_logs, engine_sim.password)


def test_5xx_from_the_engine(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                             clients: Callable[..., EngineClient], metrics: Metrics,
                             debug_logs: pytest.LogCaptureFixture) -> None:
    client = clients(engine_conn_for(engine_sim), metrics=metrics)
    # the VM search page, not whichever of the requests in flight (page 1 and the first list) lands first
    engine_sim.fail_requests(503, count=1, path_prefix=API_PREFIX + "/vms")
    with pytest.raises(EngineTransientError, match=r"VM search at 127.0.0.1:[0-9]+ failed: HTTP 503") as err:
        client.discover("tag=kubernetes")
    assert err.value.code == 503 and metric(metrics, "search_vms", "503") == 1
    assert_one_line_without_secrets(err.value, f"127.0.0.1:{engine_sim.port}", debug_logs, engine_sim.password)
    assert len(client.discover("tag=kubernetes").vms) == 12  # the next sweep works, same session
    assert engine_sim.logins == 1


def test_engine_fault(engine_sim: EngineSimulator, engine_client: EngineClient,
                      debug_logs: pytest.LogCaptureFixture) -> None:
    engine_sim.engine_faults(400, reason="Operation Failed", detail="[Cannot search VMs. Internal error]", count=1)
    with pytest.raises(EngineFaultError) as err:
        engine_client.discover("tag=kubernetes")
    assert str(err.value) == (f"VM search at 127.0.0.1:{engine_sim.port} failed: HTTP 400 Operation Failed: "
                              "[Cannot search VMs. Internal error]")
    assert err.value.code == 400
    assert_one_line_without_secrets(err.value, "127.0.0.1", debug_logs, engine_sim.password)


def test_hung_sso_is_bounded_by_the_timeout(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                            clients: Callable[..., EngineClient], metrics: Metrics,
                                            debug_logs: pytest.LogCaptureFixture) -> None:
    engine_sim.hang_sso()
    client = clients(engine_conn_for(engine_sim, timeout=1.0), metrics=metrics)
    t0 = time.monotonic()
    with pytest.raises(EngineTransientError, match="timed out after 1 s") as err:
        client.discover("tag=kubernetes")
    assert time.monotonic() - t0 < 3
    assert metric(metrics, "sso_login", "error") == 1
    assert_one_line_without_secrets(err.value, "127.0.0.1", debug_logs, engine_sim.password)


def test_hung_relogin_is_bounded_too(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                     clients: Callable[..., EngineClient]) -> None:
    client = clients(engine_conn_for(engine_sim, timeout=1.0))
    client.discover("tag=kubernetes")
    engine_sim.expire_tokens()
    engine_sim.hang_sso()  # the SDK asks for a new token inside its request: ours answers, bounded
    t0 = time.monotonic()
    with pytest.raises(EngineTransientError, match=r"login as admin@internal .* timed out"):
        client.discover("tag=kubernetes")
    assert time.monotonic() - t0 < 3
    engine_sim.clear_faults()
    assert len(client.discover("tag=kubernetes").vms) == 12


def test_slow_api_is_bounded_by_the_timeout(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                            clients: Callable[..., EngineClient]) -> None:
    client = clients(engine_conn_for(engine_sim, timeout=1.0))
    client.check()
    engine_sim.set_latency(5, path_prefix=API_PREFIX + "/vms")
    t0 = time.monotonic()
    with pytest.raises(EngineTransientError, match=r"VM search at .* timed out after 1 s"):
        client.discover("tag=kubernetes")
    assert time.monotonic() - t0 < 3


def test_dropped_connections(engine_sim: EngineSimulator, engine_client: EngineClient,
                             debug_logs: pytest.LogCaptureFixture) -> None:
    engine_client.check()
    engine_sim.drop_connections(path_prefix=API_PREFIX + "/vms")
    with pytest.raises(EngineTransientError, match=r"connection was dropped|Empty reply") as err:
        engine_client.discover("tag=kubernetes")
    assert_one_line_without_secrets(err.value, "127.0.0.1", debug_logs, engine_sim.password)
    engine_sim.clear_faults()
    engine_sim.drop_connections(path_prefix=SSO_TOKEN_PATH)
    engine_sim.expire_tokens()
    with pytest.raises(EngineTransientError, match=r"login as admin@internal .* dropped"):
        engine_client.discover("tag=kubernetes")


@pytest.mark.parametrize("ca", ["system", "other"])
def test_tls_with_the_wrong_ca_fails(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                     clients: Callable[..., EngineClient], debug_logs: pytest.LogCaptureFixture,
                                     ca: str) -> None:
    other_ca = system_ca_bundle()  # a real bundle that does not hold the test CA
    if other_ca is None:
        pytest.skip("no system CA bundle on this machine")
    conn = engine_conn_for(engine_sim, ca_file=None if ca == "system" else other_ca)
    with pytest.raises(EngineTransientError, match="TLS verification failed") as err:
        clients(conn).discover("tag=kubernetes")
    text = str(err.value)
    assert "certificate verify failed" in text or "unable to get local issuer" in text
    assert ("set ca_file to the engine CA" in text) if ca == "system" else (f"ca_file {other_ca}" in text)
    assert_one_line_without_secrets(err.value, "127.0.0.1", debug_logs, engine_sim.password)
    assert engine_sim.logins == 0


def test_insecure_works_without_a_ca(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                     clients: Callable[..., EngineClient]) -> None:
    client = clients(engine_conn_for(engine_sim, ca_file=None, insecure=True))
    assert len(client.discover("tag=kubernetes").vms) == 12


def test_missing_ca_file(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                         clients: Callable[..., EngineClient]) -> None:
    with pytest.raises(EngineTransientError, match=r"cannot load ca_file /nonexistent/ca.pem"):
        clients(engine_conn_for(engine_sim, ca_file="/nonexistent/ca.pem")).discover("")


def test_wrong_url_path(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                        clients: Callable[..., EngineClient]) -> None:
    client = clients(engine_conn_for(engine_sim, uri=f"https://127.0.0.1:{engine_sim.port}/api"))
    with pytest.raises(EngineFaultError, match=r"HTTP 404.*ends in /ovirt-engine/api"):
        client.discover("")


def test_unreadable_password_file(engine_sim: EngineSimulator, engine_conn_for: ConnFor,
                                  clients: Callable[..., EngineClient], tmp_path: Path) -> None:
    conn = engine_conn_for(engine_sim, password="", password_file=str(tmp_path / "missing"))
    with pytest.raises(EngineAuthError, match=rf"login at 127.0.0.1:[0-9]+ impossible: .*{tmp_path / 'missing'}"):
        clients(conn).discover("")


# --- events --------------------------------------------------------------------------------------

def test_events_since_returns_relevant_events_and_the_highest_index(engine_sim: EngineSimulator,
                                                                    engine_client: EngineClient,
                                                                    metrics: Metrics) -> None:
    start = engine_client.last_event_index()
    assert start == engine_sim.fleet.last_event_id()
    assert engine_client.events_since(start) == (start, ())
    worker = next(v for v in engine_sim.fleet.vms.values() if v.name.startswith("k8s-worker") and v.status == "up")
    engine_sim.set_status(worker.id, "down")  # 33 USER_STOP_VM, 61 VM_DOWN
    engine_sim.migrate("k8s-cp-1")  # 62 (not relevant), 63 VM_MIGRATION_DONE
    engine_sim.tag_vm("k8s-cp-0", "backup")  # 440
    engine_sim.add_event(30, "User someone@internal-authz logged in.")  # irrelevant, newest
    index, events = engine_client.events_since(start)
    assert index == engine_sim.fleet.last_event_id() == start + 6
    assert [(e.code, e.kind) for e in events] == [(33, "stopped"), (61, "stopped"), (63, "migrated"),
                                                  (440, "tagged")]
    assert [e.index for e in events] == sorted(e.index for e in events)
    assert events[0].vm_id == worker.id and worker.name in events[0].description
    assert engine_client.events_since(index) == (index, ())


def test_events_full_page_reports_possible_misses(engine_sims: Sims, engine_conn_for: ConnFor,
                                                  clients: Callable[..., EngineClient]) -> None:
    sim = engine_sims()
    client = clients(engine_conn_for(sim), event_page_size=3)
    start = client.last_event_index()
    for i in range(5):
        sim.rename("k8s-cp-0" if i == 0 else f"cp-{i - 1}", f"cp-{i}")  # 5 x USER_UPDATE_VM
    index, events = client.events_since(start)
    assert index == start + 5  # the maximum of the page, although the engine sends it first
    assert [e.code for e in events] == [EVENTS_MISSED, 35, 35, 35]
    assert events[0].kind == "missed" and [e.index for e in events[1:]] == [start + 3, start + 4, start + 5]


def test_every_simulated_mutation_is_a_relevant_event(engine_sim: EngineSimulator,
                                                      engine_client: EngineClient) -> None:
    start = engine_client.last_event_index()
    mutate_every_way(engine_sim)
    _, events = engine_client.events_since(start)
    kinds = [e.kind for e in events]
    assert kinds == ["stopped", "stopped", "started", "started", "suspended", "migrated", "updated", "tagged",
                     "untagged", "removed"]
    assert set(NODE_EVENT_CODES.values()) >= set(kinds)


def test_event_poll_errors_are_classified(engine_sim: EngineSimulator, engine_client: EngineClient) -> None:
    engine_client.last_event_index()
    engine_sim.fail_requests(500, count=1, path_prefix=API_PREFIX + "/events")
    with pytest.raises(EngineTransientError, match=r"event poll at 127.0.0.1:[0-9]+ failed: HTTP 500"):
        engine_client.events_since(0)


def test_a_session_that_is_always_rejected_fails_after_one_relogin(engine_sims: Sims, engine_conn_for: ConnFor,
                                                                   clients: Callable[..., EngineClient],
                                                                   metrics: Metrics) -> None:
    sim = engine_sims(token_lifetime=1e-6)  # every token has expired by the time it is used
    client = clients(engine_conn_for(sim), metrics=metrics)
    with pytest.raises(EngineAuthError, match=r"VM search at .* failed: HTTP 401 .*rejected the session") as err:
        client.discover("tag=kubernetes")
    assert err.value.code == 401
    assert sim.logins == 2 and metric(metrics, "search_vms", "401") == 1  # one re-login, one retry, no loop
    assert [r.status for r in sim.requests if r.path == API_PREFIX + "/vms"] == [401, 401]
