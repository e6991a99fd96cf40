"""The engine client: one SSO session, one paged search per discovery, engine events.

:class:`EngineClient` returns :class:`~ovirt_cloudprovider.model.Snapshot` /
:class:`~ovirt_cloudprovider.model.VirtualMachine` records (mapped by :mod:`.records`) and raises only
:class:`~.errors.EngineError` subclasses. It logs in with :mod:`.sso` on first use, keeps the SDK connection
of :mod:`.connection` across sweeps, and serializes every engine call with one lock.

- **Session reuse**: when the engine rejects the token and the SDK's own re-login (answered by our bounded
  login) did not happen, the client reconnects once itself and retries; ``reset()``/``close()`` log out.
- **Discovery** is one lean paged search (:mod:`.paging`, read by :mod:`.fastxml`): ``<filter> sortby name asc
  page N`` with ``max=page_size`` and only what is per VM, ``follow=reported_devices,tags``, until a page comes
  back shorter than the page size; ``/clusters``, ``/datacenters``, ``/hosts`` and ``/instancetypes`` are listed
  once per sweep and their names joined in by id. Up to ``engine_concurrency`` requests are in flight (the next
  page is on its way while one is read): ``ceil((N + 1) / page_size)`` pages, at most ``engine_concurrency``
  more sent before the short page was read, and 4 lists per discovery; never one request per VM. With
  ``lean=False`` it is the follow= search (``follow=reported_devices,tags,cluster.data_center,host,
  instance_type``, one page at a time, read by the SDK), exactly ``ceil((N + 1) / page_size)`` requests.
  ``fetch_vms`` GETs a few VMs by id with that ``follow``; ``vm_ids_matching`` (and ``host_ids_matching``) asks
  one search (no ``follow``, no lists, no host search) which VM (host) ids it returns: a targeted sweep's check
  that a VM still matches the filter, and the narrowed search that confirms a deletion. It changes nothing the
  client keeps about the fleet (the invalid guest IPs gauge and what was logged, the records reused).
- **Events**: ``/events?from=<index>&max=<n>`` (newest first; ``max`` drops the *older* ones, so the highest
  index is tracked, not the last item). Only the AuditLogType codes in
  :data:`~.errors.NODE_EVENT_CODES` are returned.
- **Hosts** (only when built with ``hosts=<search>``, from ``[filters] hosts``): ``discover`` also runs one paged
  host search, ``<hosts> sortby name asc page N`` with ``follow=nics`` (one request per page, never one per host,
  one page at a time, read by :mod:`.fasthosts`; the names of clusters and data centers joined from the lists the
  VM discovery read), and the Snapshot carries the hosts; ``events_since`` also returns the host events of
  :data:`~.errors.HOST_EVENT_CODES` (with the host's id). ``fetch_hosts`` GETs hosts by id with
  ``follow=nics,cluster.data_center`` (read by the SDK; host events, and confirming a host node's deletion;
  404: None). Without it no host search is ever made (operations ``search_hosts``, ``get_host``; without a VM
  discovery before it, ``discover_hosts`` also lists ``/clusters`` and ``/datacenters``).
- **Metadata**: with ``tag_tree`` (``[nodes] tag_labels``), and whenever the VM or host search names a tag (``tag=``),
  the tag tree is listed once per discovery (``/tags``, operation ``list_tags``) and the Snapshot carries it;
  with ``affinity_labels`` the VM pages (and the host search, and the GETs by id) follow ``affinity_labels``.
- **Correlation-Id**: inside ``with client.correlated(id):`` every API request of the calling thread carries the
  header ``Correlation-Id: <id>`` (the engine writes it into engine.log); the controller opens one per sweep.
  The SSO login is no API request and carries none.
- **Metrics**: every HTTP request is counted with ``Metrics.engine_request(operation)``, operations
  ``sso_login``, ``search_vms``, ``list_clusters``, ``list_datacenters``, ``list_hosts``, ``list_instancetypes``,
  ``list_tags``, ``get_vm``, ``get_host``, ``events``, ``api_root``, ``logout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ..core.addresses import invalid_ips
from ..core.providerid import normalize_vm_id
from ..core.records import Host, Snapshot, Tag, VirtualMachine
from ..core.settings import ConnectionConfig
from ..core.vmfilter import named_tags
from ..logs import kv
from ..metrics import Metrics, observe_engine
from .backoff import DEFAULT_BASE, AuthGate
from .connection import SdkConnection, classify, open_connection
from .endpoint import Endpoint
from .errors import (
    EVENTS_MISSED,
    HOST_EVENT_CODES,
    NODE_EVENT_CODES,
    EngineAuthError,
    EngineDataError,
    EngineError,
    EngineEvent,
    EngineFaultError,
    EngineNotFoundError,
    scrub,
)
from .fasthosts import LeanHost, joined_host, read_hosts
from .fastxml import LeanVm, Named, Names, joined, read_names, read_tags, read_vms
from .host_records import host_follow, host_record
from .paging import LISTS, Get, list_gets, page_get
from .paging import run as run_pages
from .records import discovery_follow, event_index, vm_record
from .sso import Sso

log = logging.getLogger(__name__)

T = TypeVar("T")

EVENT_PAGE_SIZE = 500


def _with_previous_nics(lean: LeanVm, old: VirtualMachine | None) -> LeanVm:
    """``lean`` holding ``old``'s guest NICs when they are equal (most of a VM record's memory: its devices, their
    IPs and MACs), as each page is read: the last discovery's records are still held (the controller keeps its
    Snapshot for targeted sweeps) while this one runs, and the whole record is replaced by the equal old one only
    once the discovery is complete (:meth:`EngineClient._reuse`); without this, an unchanged fleet's devices
    existed twice until then."""
    if old is None or old.nics is lean.vm.nics or old.nics != lean.vm.nics:
        return lean
    return lean._replace(vm=dataclasses.replace(lean.vm, nics=old.nics))


class EngineClient:
    """A long-lived client of one oVirt engine. Thread-safe: engine calls are serialized by a lock.

    ``discover()``, ``events_since()``, ``last_event_index()`` and ``check()`` log in on first use and reuse
    the session; ``close()`` logs out (bounded, never raises). Usable as a context manager.
    """

    def __init__(self, conn: ConnectionConfig, *, page_size: int = 100, metrics: Metrics | None = None,
                 event_page_size: int = EVENT_PAGE_SIZE, auth_backoff_base: float = DEFAULT_BASE,
                 auth_backoff_max: float = 300.0, hosts: str | None = None, engine_concurrency: int = 2,
                 lean: bool = True, tag_tree: bool = False, affinity_labels: bool = False) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if engine_concurrency < 1:
            raise ValueError("engine_concurrency must be at least 1")
        self._concurrency = engine_concurrency
        self._lean = lean  # False: the follow= search (every link inlined in each VM), read by the SDK
        self._tag_tree = tag_tree  # list /tags in every discovery ([nodes] tag_labels)
        self._affinity = affinity_labels  # follow the VMs' and hosts' affinity labels
        self._follow = discovery_follow(affinity_labels)
        self._host_follow = host_follow(affinity_labels)
        self._correlation = threading.local()  # .id: the Correlation-Id of the calling thread's requests
        self._conn = conn
        self._page_size = page_size
        self._event_page_size = max(1, event_page_size)
        self._metrics = metrics
        self._endpoint = Endpoint.of(conn)
        self._timeout = self._endpoint.timeout
        self._where = self._endpoint.where  # for messages: host[:port], never user info
        self._sso = Sso(self._endpoint, metrics=metrics, scrub=self._scrub)
        self._lock = threading.RLock()
        self._sdk: SdkConnection | None = None
        self._token: str | None = None
        self._logins = 0
        self._invalid_ips: dict[str, tuple[str, ...]] = {}  # VM id -> invalid IPs last logged (log once per VM)
        # one gate for every call of this client: after a failed login, nothing contacts the engine until
        # the backoff has passed (see .backoff)
        self.auth_gate = AuthGate(base=auth_backoff_base, maximum=auth_backoff_max)
        self._hosts = hosts  # the [filters] hosts search; None: no host is ever asked for
        # the VMs of the last discovery of the first query asked, by id (see _reuse)
        self._previous_query: str | None = None
        self._previous: dict[str, VirtualMachine] = {}
        self._previous_hosts: dict[str, Host] = {}
        self._listed: tuple[dict[str, Named], dict[str, Named]] | None = None  # clusters, data centers listed last

    # --- public API ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """``host[:port]`` of the engine, as used in messages."""
        return self._where

    def discover(self, query: str) -> Snapshot:
        """Every VM the oVirt search ``query`` matches (``""`` = all VMs), in one paged search.

        Raises EngineError on any failure, so a returned Snapshot is always complete.
        """
        base = query.strip()
        words = {w.lower() for w in base.split()}
        if words & {"sortby", "page"}:
            raise EngineFaultError(f"VM search at {self._where}: the filter {base!r} must not contain 'sortby' "
                                   "or 'page' (discovery adds its own)")
        started = time.monotonic()
        vms: dict[str, VirtualMachine] = {}
        inconsistent: set[str] = set()
        requests = 0
        page = 1
        want_tags = self._tag_tree or bool(named_tags(base)) or bool(named_tags(self._hosts or ""))
        tags: tuple[Tag, ...] | None = None
        with self._lock:
            if self._lean:
                vms, inconsistent, requests, tags = self._lean_search(base, tags=want_tags)
            elif want_tags:
                tags = self._call("list_tags", "VM search", self._list_tags)
                requests += 1
            while not self._lean:
                search = f"{base} sortby name asc page {page}".strip()
                items = self._call("search_vms", "VM search", self._search_page(search, page))
                requests += 1
                new = 0
                for item in items:
                    record = self._record(item, f"/vms page {page}")
                    key = normalize_vm_id(record.id)  # ids compared canonically: a twin in upper case is caught
                    seen = vms.get(key)
                    new += seen is None
                    if seen is not None and seen != record:  # not a page shift's repeat: two different VMs
                        if key not in inconsistent:
                            log.warning(f"engine answer holds two different VMs with the id {key}; its node "
                                        "is left alone in this sweep", extra=kv(
                                            engine=self._where, page=page, names=f"{seen.name},{record.name}"))
                        inconsistent.add(key)
                    vms[key] = record
                log.debug("search page", extra=kv(page=page, vms=len(items), search=search))
                if len(items) < self._page_size:
                    break
                if new == 0:
                    raise EngineFaultError(f"VM search at {self._where}: page {page} repeated the VMs of earlier "
                                           "pages (the engine ignores 'page' in searches)")
                page += 1
        hosts: tuple[Host, ...] = ()
        if self._hosts is not None:
            hosts, host_requests = self.discover_hosts(self._hosts, listed=self._listed if self._lean else None)
            hosts = self._reuse_hosts(hosts)
            requests += host_requests
        seconds = time.monotonic() - started
        log.info("discovery finished", extra=kv(query=base, vms=len(vms), requests=requests,
                                                seconds=round(seconds, 3)))
        self._note_invalid_ips(vms.values())
        vms = self._reuse(base, vms)
        if self._metrics is not None and inconsistent:
            self._metrics.engine_inconsistent_vms_total.inc(len(inconsistent))
        kept = tuple(vm for key, vm in vms.items() if key not in inconsistent)
        engine = self._endpoint.identity  # whose nodes these VMs and hosts may own (core/ownership.py)
        if self._hosts is None:
            return Snapshot(vms=kept, query=base, requests=requests, inconsistent_ids=tuple(sorted(inconsistent)),
                            engine=engine, tags=tags)
        return Snapshot(vms=kept, query=base, requests=requests, inconsistent_ids=tuple(sorted(inconsistent)),
                        hosts=hosts, hosts_query=self._hosts.strip(), engine=engine, tags=tags)

    @contextlib.contextmanager
    def correlated(self, correlation_id: str) -> Iterator[None]:
        """Every API request of the calling thread inside this block carries ``Correlation-Id: <id>``."""
        previous = getattr(self._correlation, "id", None)
        self._correlation.id = correlation_id
        try:
            yield
        finally:
            self._correlation.id = previous

    def _list_tags(self, c: Any) -> tuple[Tag, ...]:
        """The tag tree through the SDK (the follow= search's way)."""
        return tuple(Tag(id=str(t.id), name=t.name or "", parent_id=t.parent.id if t.parent is not None else None)
                     for t in c.system_service().tags_service().list() if t.id)

    def _reuse(self, query: str, vms: dict[str, VirtualMachine]) -> dict[str, VirtualMachine]:
        """``vms`` with each VM equal to its record of the last discovery of ``query`` replaced by that record.

        Records are frozen, so an equal one is the same VM; while the last Snapshot is still held (the
        controller keeps it for targeted sweeps), an unchanged fleet then costs one set of records, not two.
        Only the search of the first query asked (the controller's ``[filters] vms``) is remembered: another
        query's discovery reuses it without replacing it."""
        if self._previous_query is None:
            self._previous_query = query
        previous = self._previous
        for vm_id, vm in vms.items():
            old = previous.get(vm_id)
            if old is not None and old is not vm and old == vm:
                vms[vm_id] = old
        if query != self._previous_query:
            return vms
        # keyed by the kept records' own id strings: the new ones, equal, would otherwise be held a second time
        self._previous = {(vm.id if vm.id == vm_id else vm_id): vm for vm_id, vm in vms.items()}
        return self._previous

    def _reuse_hosts(self, hosts: tuple[Host, ...]) -> tuple[Host, ...]:
        """``hosts`` with each host equal to its record of the last discovery replaced by that record, as
        :meth:`_reuse` does for VMs (the host search is always ``[filters] hosts``)."""
        previous = self._previous_hosts
        hosts = tuple(old if (old := previous.get(h.id)) is not None and old == h else h for h in hosts)
        self._previous_hosts = {h.id: h for h in hosts}
        return hosts

    def _note_invalid_ips(self, vms: Iterable[VirtualMachine]) -> None:
        """Count guest-reported IPs that are no address (in the metric) and log them once per VM (again only
        when they change), instead of dropping them silently."""
        current = {vm.id: (vm, bad) for vm in vms if (bad := invalid_ips(vm))}
        for vm_id, (vm, bad) in current.items():
            if self._invalid_ips.get(vm_id) != bad:
                log.warning(f"VM {vm.name} ({vm_id}) reports invalid IP addresses, ignored: {', '.join(bad)}",
                            extra=kv(engine=self._where))
        self._invalid_ips = {vm_id: bad for vm_id, (_, bad) in current.items()}
        if self._metrics is not None:
            self._metrics.invalid_guest_ips.set(sum(len(bad) for _, bad in current.values()))

    def _lean_search(self, base: str, *, tags: bool
                     ) -> tuple[dict[str, VirtualMachine], set[str], int, tuple[Tag, ...] | None]:
        """The lean discovery (:mod:`.paging`): VM pages with only their own devices and tags, the clusters,
        data centers, hosts and instance types listed once and joined in by id, read by :mod:`.fastxml`;
        the same paging rules as the follow= search. (VMs by id, ids of two different VMs, requests sent, the tag
        tree when ``tags``)."""
        found: dict[str, LeanVm] = {}
        inconsistent: set[str] = set()
        lists: dict[str, dict[str, Named]] = {}
        tree: list[tuple[Tag, ...]] = []
        previous = self._previous  # the last discovery's records (see _reuse), read only

        def read(get: Get, body: bytes) -> bool:
            if get.path == "tags":
                tree.append(read_tags(body, "/tags", self._where))
                return True
            if not get.page:
                root, item = LISTS[get.path]
                lists[get.path] = read_names(body, root, item, f"/{get.path}", self._where)
                return True
            items = read_vms(body, f"/vms page {get.page}", self._where)
            new = 0
            for lean in items:
                key = normalize_vm_id(lean.vm.id)  # ids compared canonically: a twin in upper case is caught
                lean = _with_previous_nics(lean, previous.get(key))
                seen = found.get(key)
                new += seen is None
                if seen is not None and seen != lean:  # not a page shift's repeat: two different VMs
                    if key not in inconsistent:
                        log.warning(f"engine answer holds two different VMs with the id {key}; its node "
                                    "is left alone in this sweep", extra=kv(
                                        engine=self._where, page=get.page, names=f"{seen.vm.name},{lean.vm.name}"))
                    inconsistent.add(key)
                found[key] = lean
            log.debug("search page", extra=kv(page=get.page, vms=len(items), search=get.query["search"]))
            if len(items) < self._page_size:
                return False
            if new == 0:
                raise EngineFaultError(f"VM search at {self._where}: page {get.page} repeated the VMs of earlier "
                                       "pages (the engine ignores 'page' in searches)")
            return True

        def sweep(c: SdkConnection) -> int:
            found.clear()
            inconsistent.clear()
            lists.clear()
            tree.clear()
            return run_pages(
                c, page=lambda n: page_get(base, n, self._page_size, affinity_labels=self._affinity),
                others=list_gets(tags=tags), slots=self._concurrency,
                read=read, observe=lambda op: observe_engine(self._metrics, op),
                fail=lambda exc, get: classify(exc, get.what, c, self._endpoint, self._scrub))

        requests = self._call("search_vms", "VM search", sweep, observe=False)
        self._listed = (lists["clusters"], lists["datacenters"])  # joined into the hosts of this discovery
        names = Names(clusters=lists["clusters"], datacenters=lists["datacenters"], hosts=lists["hosts"],
                      instance_types=lists["instancetypes"])
        return ({vm_id: joined(lean, names, self._where) for vm_id, lean in found.items()}, inconsistent, requests,
                tree[0] if tree else None)

    def _search_page(self, search: str, page: int) -> Callable[[Any], list[Any]]:
        def list_page(c: Any) -> list[Any]:
            items = list(c.system_service().vms_service().list(search=search, max=self._page_size,
                                                               follow=self._follow))
            root = getattr(c, "last_root", "vms")
            if root != "vms":
                raise EngineDataError(f"engine answer for /vms page {page} at {self._where}: the root element is "
                                      f"<{root}>, not <vms>")
            return items
        return list_page

    def _record(self, item: Any, answer: str, *, vm_id: str | None = None) -> VirtualMachine:
        """``vm_record(item)``, or an EngineDataError naming ``answer`` and the object when it is unusable."""
        name = getattr(item, "name", None)
        got = getattr(item, "id", None)
        if not got:
            raise EngineDataError(f"engine answer for {answer} at {self._where}: a <vm> without an id "
                                  f"(name {name!r})")
        if vm_id is not None and got.lower() != vm_id.lower():
            raise EngineDataError(f"engine answer for {answer} at {self._where}: a <vm> with the id {got} "
                                  f"(name {name!r}) instead of {vm_id}")
        try:
            return vm_record(item)
        except (AttributeError, TypeError, ValueError) as exc:
            raise EngineDataError(f"engine answer for {answer} at {self._where}: VM {got} (name {name!r}) "
                                  f"cannot be read ({exc.__class__.__name__}: {exc})") from None

    def discover_hosts(self, query: str, *, listed: tuple[dict[str, Named], dict[str, Named]] | None = None
                       ) -> tuple[tuple[Host, ...], int]:
        """Every host the oVirt host search ``query`` matches, in one paged search: (the hosts, the requests it
        took). Raises EngineError on any failure.

        Lean (the default): the pages inline only the hosts' NICs (and affinity labels), are read by
        :mod:`.fasthosts` one at a time, and the names of clusters and data centers are joined in from
        ``listed`` (the lists of the VM discovery just made) or, without it, from ``/clusters`` and
        ``/datacenters`` listed here. With ``lean=False``, the cluster and data center are inlined and the SDK
        reads the pages."""
        base = query.strip()
        if self._lean:
            return self._lean_hosts(base, listed)
        hosts: dict[str, Host] = {}
        requests = 0
        page = 1
        with self._lock:
            while True:
                search = f"{base} sortby name asc page {page}".strip()

                def list_page(c: Any, search: str = search) -> list[Any]:
                    return list(c.system_service().hosts_service().list(search=search, max=self._page_size,
                                                                        follow=self._host_follow))

                items = self._call("search_hosts", "host search", list_page)
                requests += 1
                new = 0
                for item in items:
                    record = self._host(item, f"the host search page {page}")
                    new += record.id not in hosts
                    hosts[record.id] = record
                if len(items) < self._page_size:
                    break
                if new == 0:
                    raise EngineFaultError(f"host search at {self._where}: page {page} repeated the hosts of "
                                           "earlier pages (the engine ignores 'page' in searches)")
                page += 1
        log.debug("host search finished", extra=kv(query=base, hosts=len(hosts), requests=requests))
        return tuple(hosts.values()), requests

    def _lean_hosts(self, base: str, listed: tuple[dict[str, Named], dict[str, Named]] | None
                    ) -> tuple[tuple[Host, ...], int]:
        """The lean host search of :meth:`discover_hosts`: one request at a time (exactly ``ceil((N + 1) /
        page_size)`` pages, never one past the end), each page read and dropped before the next is asked for."""
        found: dict[str, LeanHost] = {}
        lists: dict[str, dict[str, Named]] = {}
        follow = "nics,affinity_labels" if self._affinity else "nics"

        def page(n: int) -> Get:
            query = {"search": f"{base} sortby name asc page {n}".strip(), "max": str(self._page_size),
                     "follow": follow}
            return Get("search_hosts", "host search", "hosts", query, n)

        def read(get: Get, body: bytes) -> bool:
            if not get.page:
                root, item = LISTS[get.path]
                lists[get.path] = read_names(body, root, item, f"/{get.path}", self._where)
                return True
            items = read_hosts(body, f"the host search page {get.page}", self._where)
            new = 0
            for lean in items:
                new += lean.host.id not in found
                found[lean.host.id] = lean
            if len(items) < self._page_size:
                return False
            if new == 0:
                raise EngineFaultError(f"host search at {self._where}: page {get.page} repeated the hosts of "
                                       "earlier pages (the engine ignores 'page' in searches)")
            return True

        others = [] if listed is not None else [Get(f"list_{path}", "host search", path)
                                                for path in ("clusters", "datacenters")]

        def sweep(c: SdkConnection) -> int:
            found.clear()
            lists.clear()
            sent = 0
            for get in itertools.chain(others, (page(n) for n in itertools.count(1))):
                with observe_engine(self._metrics, get.operation) as outcome:
                    try:
                        body = c.finish_get(c.start_get(get.path, get.query))
                    except EngineError:
                        raise
                    except Exception as exc:
                        raise classify(exc, get.what, c, self._endpoint, self._scrub) from exc
                    outcome.code = str(c.last_status or 200)
                sent += 1
                if not read(get, body):
                    break
                del body  # one page's XML at a time
            return sent

        with self._lock:
            requests = self._call("search_hosts", "host search", sweep, observe=False)
        clusters, datacenters = listed if listed is not None else (lists["clusters"], lists["datacenters"])
        hosts = tuple(joined_host(lean, clusters, datacenters, self._where) for lean in found.values())
        log.debug("host search finished", extra=kv(query=base, hosts=len(hosts), requests=requests))
        return hosts, requests

    def fetch_vms(self, vm_ids: Sequence[str]) -> dict[str, VirtualMachine | None]:
        """The current record of each VM in ``vm_ids`` (one GET per VM, with the discovery's ``follow``);
        ``None`` for a VM the engine no longer has (its own 404: :class:`.errors.EngineNotFoundError`; any other
        404, such as a proxy's HTML page, raises). For the few VMs an engine event names, so that a
        shutdown is reflected without a full search; raises EngineError on any other failure."""
        out: dict[str, VirtualMachine | None] = {}
        with self._lock:
            for vm_id in dict.fromkeys(vm_ids):

                def get(c: Any, vm_id: str = vm_id) -> Any:
                    return c.system_service().vms_service().vm_service(vm_id).get(follow=self._follow)

                try:
                    item = self._call("get_vm", f"VM {vm_id}", get)
                except EngineNotFoundError:  # the engine's own 404, nothing else (see .connection)
                    out[vm_id] = None
                    continue
                out[vm_id] = self._record(item, f"/vms/{vm_id}", vm_id=vm_id)
        return out

    def vm_ids_matching(self, query: str) -> frozenset[str]:
        """The ids (canonical) of the VMs the search ``query`` returns, in one request without ``follow`` and
        without the lists a discovery joins: for a search narrowed to one VM (``.. and id=<vm-id>``), the
        engine's own answer whether that VM matches the filter, with its tag hierarchy. Raises EngineError."""
        base = query.strip()

        def search(c: Any) -> list[Any]:
            return list(c.system_service().vms_service().list(search=base, max=self._page_size))

        items = self._call("search_vms", "VM search", search)
        return frozenset(normalize_vm_id(str(item.id)) for item in items if getattr(item, "id", None))

    def host_ids_matching(self, query: str) -> frozenset[str]:
        """The ids (canonical) of the hosts the host search ``query`` returns, in one request without ``follow``:
        as :meth:`vm_ids_matching`, for a host search narrowed to one host (confirming a host node's deletion).
        Raises EngineError."""
        base = query.strip()

        def search(c: Any) -> list[Any]:
            return list(c.system_service().hosts_service().list(search=base, max=self._page_size))

        items = self._call("search_hosts", "host search", search)
        return frozenset(normalize_vm_id(str(item.id)) for item in items if getattr(item, "id", None))

    def fetch_hosts(self, host_ids: Sequence[str]) -> dict[str, Host | None]:
        """The current record of each host in ``host_ids`` (one GET per host, with the host search's ``follow``);
        ``None`` for a host the engine no longer has (its own 404, as for VMs). For host events and to confirm a
        host node's deletion; raises EngineError on any other failure."""
        out: dict[str, Host | None] = {}
        with self._lock:
            for host_id in dict.fromkeys(host_ids):

                def get(c: Any, host_id: str = host_id) -> Any:
                    return c.system_service().hosts_service().host_service(host_id).get(follow=self._host_follow)

                try:
                    item = self._call("get_host", f"host {host_id}", get)
                except EngineNotFoundError:  # the engine's own 404, nothing else (see .connection)
                    out[host_id] = None
                    continue
                got = getattr(item, "id", None)
                if not got or str(got).lower() != host_id.lower():
                    raise EngineDataError(f"engine answer for /hosts/{host_id} at {self._where}: host {got!r} "
                                          f"instead of {host_id}")
                out[host_id] = self._host(item, f"/hosts/{host_id}")
        return out

    def _host(self, item: Any, answer: str) -> Host:
        """``host_record(item)``, or an EngineDataError naming ``answer`` and the object when it is no host (the
        SDK reads whatever the root element says: a ``<vms>`` answer gives Vm objects), has no id, or is unusable."""
        name = getattr(item, "name", None)
        kind = type(item).__name__.lower()
        if kind != "host":
            raise EngineDataError(f"engine answer for {answer} at {self._where}: a <{kind}> instead of a <host> "
                                  f"(name {name!r})")
        got = getattr(item, "id", None)
        if not got:
            raise EngineDataError(f"engine answer for {answer} at {self._where}: a <host> without an id "
                                  f"(name {name!r})")
        try:
            return host_record(item)
        except (AttributeError, TypeError, ValueError) as exc:
            raise EngineDataError(f"engine answer for {answer} at {self._where}: host {got} (name {name!r}) "
                                  f"cannot be read ({exc.__class__.__name__}: {exc})") from None

    def last_event_index(self) -> int:
        """The index of the newest engine event (0 if there is none): a starting point for events_since()."""
        events = self._call("events", "event poll", lambda c: c.system_service().events_service().list(max=1))
        return max((event_index(e) for e in events), default=0)

    def events_since(self, index: int) -> tuple[int, tuple[EngineEvent, ...]]:
        """Events after ``index``: (the new highest index, the node-relevant events oldest first).

        When the page is full, older events may have been dropped by ``max``: a marker event with code
        EVENTS_MISSED is returned first so that the caller sweeps anyway.
        """
        page = self._call("events", "event poll", lambda c: c.system_service().events_service().list(
            from_=int(index), max=self._event_page_size))
        new_index = index
        seen: list[int] = []
        relevant: list[EngineEvent] = []
        for e in page:
            i = event_index(e)
            if i <= index:
                continue
            seen.append(i)
            new_index = max(new_index, i)
            code = int(e.code) if e.code is not None else 0
            if code in NODE_EVENT_CODES or (self._hosts is not None and code in HOST_EVENT_CODES):
                vm = e.vm
                host = e.host if code in HOST_EVENT_CODES else None
                relevant.append(EngineEvent(index=i, code=code, vm_id=vm.id if vm is not None else None,
                                            vm_name=vm.name if vm is not None else None,
                                            description=" ".join((e.description or "").split()),
                                            host_id=host.id if host is not None else None,
                                            host_name=host.name if host is not None else None))
        relevant.sort(key=lambda ev: ev.index)
        if len(page) >= self._event_page_size and seen:
            relevant.insert(0, EngineEvent(index=min(seen), code=EVENTS_MISSED, vm_id=None, vm_name=None,
                                           description=f"more than {self._event_page_size} events after index "
                                           f"{index}: older ones were not read"))
        if relevant:
            log.debug("engine events", extra=kv(since=index, index=new_index,
                                                events=",".join(f"{e.kind}:{e.vm_name or e.vm_id}" for e in relevant)))
        if self._metrics is not None and relevant:
            self._metrics.engine_events_total.inc(len(relevant))
        return new_index, tuple(relevant)

    def check(self) -> str:
        """Log in and read the API root: the engine's product name and version, e.g. ``oVirt Engine 4.5.5``."""
        api = self._call("api_root", "API root", lambda c: c.system_service().get())
        info = api.product_info
        if info is None:
            return "oVirt Engine (version unknown)"
        version = info.version
        text = version.full_version if version is not None and version.full_version else None
        if text is None and version is not None:
            text = ".".join(str(x) for x in (version.major, version.minor, version.revision) if x is not None)
        return f"{info.name or 'oVirt Engine'} {text or '(version unknown)'}"

    def close(self, timeout: float | None = None) -> None:
        """Log out and release the connection; never raises. Bounded in time: by ``timeout`` in all when given
        (what is left of a shutdown's deadline: the wait for a call in flight to finish and the logout share
        it; the logout is best effort and skipped when nothing is left), else by a few seconds."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        # a call in flight holds the lock: wait for it at most half of what is left, the logout gets the rest
        got = self._lock.acquire(timeout=min(2.0, self._timeout, 2.0 if timeout is None else max(0.0, timeout) / 2))
        try:
            conn, token = self._sdk, self._token
            self._token = None
            if got:
                self._sdk = None
        finally:
            if got:
                self._lock.release()
        left = None if deadline is None else deadline - time.monotonic()
        if token and left is not None and left < 0.1:
            log.debug("engine logout skipped: the shutdown deadline has passed", extra=kv(engine=self._where))
        elif token:
            try:
                self._sso.logout(token, timeout=left)
            except Exception as exc:  # close() never raises
                log.debug("engine logout failed", extra=kv(engine=self._where, error=str(exc)))
        if conn is not None and got:
            with contextlib.suppress(Exception):
                conn.close(logout=False)

    def reset(self) -> None:
        """Drop the session (logging out); the next call logs in again with the current password and CA file.

        The controller calls this when ``password_file`` or ``ca_file`` changes on disk (a rotated Secret): it
        also opens the auth-backoff gate, so the new password is tried at once.
        """
        self.close()
        self.auth_gate.open()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EngineClient({self._where!r}, user={self._conn.username!r})"

    # --- requests through the SDK ----------------------------------------------------------------

    def _connection(self) -> SdkConnection:
        if self._sdk is None:
            token = self._token or self._login()
            self._sdk = open_connection(self._endpoint, token=token, login=self._login, scrub=self._scrub)
        return self._sdk

    def _drop_connection(self) -> None:
        conn, self._sdk, self._token = self._sdk, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close(logout=False)

    def _call(self, operation: str, what: str, fn: Callable[[Any], T], *, observe: bool = True) -> T:
        with self._lock:
            for attempt in range(2):
                self._check_gate()
                conn = self._connection()
                conn.correlation_id = getattr(self._correlation, "id", None)
                logins_before = self._logins
                try:
                    with observe_engine(self._metrics if observe else None, operation) as outcome:
                        try:
                            result = fn(conn)
                        except EngineError:
                            raise
                        except Exception as exc:  # every SDK failure becomes an EngineError
                            raise classify(exc, what, conn, self._endpoint, self._scrub) from exc
                        outcome.code = str(conn.last_status or 200)
                    return result
                except EngineAuthError as err:
                    # A 401 that no new login answered (the SDK did not re-login): reconnect once, retry.
                    if attempt == 0 and not err._from_login and self._logins == logins_before:
                        log.info("engine session rejected, logging in again", extra=kv(engine=self._where))
                        self._drop_connection()
                        continue
                    raise
        raise AssertionError("unreachable")

    def _scrub(self, message: str) -> str:
        """One line, without the password (from any source: the one the last login read) or the token (belt and
        braces: they are never put in, but an answer may echo them)."""
        return scrub(message, self._conn.password, self._sso.password, self._token)

    def _check_gate(self) -> None:
        try:
            self.auth_gate.check(f"login as {self._conn.username} at {self._where}")
        except EngineAuthError as err:
            err._from_login = True
            raise

    def _login(self) -> str:
        """A new SSO token (bounded by the timeout), remembered for the session and for scrubbing.

        Refused without contacting the engine while the auth-backoff gate is closed; a refused login closes it.
        """
        self._check_gate()
        try:
            token = self._sso.login()
        except EngineAuthError:
            delay = self.auth_gate.failed()
            log.warning("engine login refused; backing off", extra=kv(
                engine=self._where, failures=self.auth_gate.failures, seconds=round(delay, 1)))
            raise
        self.auth_gate.succeeded()
        self._token = token
        self._logins += 1
        return token


__all__ = ["EVENT_PAGE_SIZE", "EngineClient"]
