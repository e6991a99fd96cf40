"""The composition root: builds the engine client, the Kubernetes client, the node cache, the writer, the leader
elector, the controller, health and metrics from a :class:`~ovirt_cloudprovider.core.settings.Config`, and runs
them.

This is the one module that knows every component; the components know only the records and ports they are
handed. ``cli.py`` parses the command line and calls the functions here; ``demo.py`` calls :func:`run_controller`
exactly as ``ovirt-cloudprovider run`` does.

- :func:`log_notices` logs what the configuration reader noticed (it never logs itself).
- :func:`discover` runs one paged search and maps the VMs to the Nodes they would become (``discover``,
  ``check-config``).
- :func:`sync_once` lists the nodes, runs one sweep and stops (``sync --once [--dry-run]``).
- :func:`run_controller` starts every component, runs until ``stop`` is set, then shuts down in order within one
  deadline (``SHUTDOWN_SECONDS`` from the stop, so SIGTERM exits within 5 s whatever the engine does): the loop
  first (no write in flight; it gets what the deadline leaves after ``RELEASE_RESERVE``), then the Lease is
  released (what lets the other replica take over at once; never skipped), then the watch, the engine session
  (the logout is best effort, with what is left) and the metrics server. Each step gets what remains of the one
  budget, not a timeout of its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from . import __version__
from .config.schema import parse_bind_address
from .controller import Controller, SweepReport, run_sweep
from .core.desired import desired_nodes
from .core.records import KIND_HOST, Host, NodeSpec, Snapshot, VirtualMachine
from .core.settings import Config, FiltersConfig
from .engine.client import EngineClient
from .engine.search_fields import warnings as _search_field_warnings
from .health import HealthServer, HealthState
from .kube.client import load_api_client
from .kube.informer import NodeCache
from .kube.leader import LeaderElector
from .kube.ratelimit import TokenBucket
from .kube.writer import NodeWriter
from .logs import kv
from .metrics import Metrics

log = logging.getLogger("ovirt_cloudprovider.app")

EXIT_OK, EXIT_FAILURE = 0, 1

SHUTDOWN_SECONDS = 3.5  # from stop to run_controller's return, every step included (SIGTERM → exit within 5 s)
RELEASE_RESERVE = 1.5  # of it, kept for the Lease release and the steps after it while the loop is joined


class StartupError(Exception):
    """A component could not start because of how it was configured (a busy metrics port...): exit 2."""


def log_notices(config: Config) -> None:
    """Log what the configuration reader noticed while parsing ``config`` (one line each)."""
    for notice in config.notices:
        level = logging.WARNING if notice.level == "warning" else logging.INFO
        log.log(level, notice.message, extra=kv(**dict(notice.fields)))


def search_warnings(filters: FiltersConfig) -> list[str]:
    """One line per unknown search field in ``[filters] vms`` and ``hosts`` (the engine would silently match
    nothing)."""
    lines = _search_field_warnings(filters.vms)
    if filters.hosts:
        lines += _search_field_warnings(filters.hosts, kind="hosts")
    return lines


def engine_client(config: Config, *, metrics: Metrics | None = None) -> EngineClient:
    """An engine client for ``config`` (one SSO session, logged in on first use; close it)."""
    return EngineClient(config.connection, page_size=config.controller.page_size, metrics=metrics,
                        engine_concurrency=config.controller.engine_concurrency,
                        auth_backoff_max=config.controller.backoff_max,
                        hosts=config.filters.hosts, tag_tree=config.nodes.tag_labels is not None,
                        affinity_labels=config.nodes.affinity_labels)


@dataclass(frozen=True)
class Discovery:
    """One search and what each VM would become: ``rows`` are (VM, its NodeSpec or None, why it is skipped)."""

    snapshot: Snapshot
    rows: tuple[tuple[VirtualMachine, NodeSpec | None, str | None], ...]
    skipped: int
    product: str | None = None
    # With [filters] hosts: (host, its NodeSpec or None, why it is skipped), after the VMs.
    host_rows: tuple[tuple[Host, NodeSpec | None, str | None], ...] = ()


def discover(config: Config, *, check_login: bool = False) -> Discovery:
    """Log in (reporting the engine's product name when ``check_login``), run the search, map the VMs."""
    client = engine_client(config)
    try:
        product = client.check() if check_login else None
        snapshot = client.discover(config.filters.vms)
    finally:
        client.close()
    desired = desired_nodes(snapshot, config.nodes)
    by_vm = {n.vm_id: n for n in desired.nodes if n.kind != KIND_HOST}
    skipped = {s.vm_id: s.reason for s in desired.skipped if s.kind != KIND_HOST}
    rows = tuple((vm, by_vm.get(vm.id), skipped.get(vm.id)) for vm in snapshot.vms)
    by_host = {n.vm_id: n for n in desired.nodes if n.kind == KIND_HOST}
    host_skipped = {s.vm_id: s.reason for s in desired.skipped if s.kind == KIND_HOST}
    host_rows = tuple((h, by_host.get(h.id.strip().lower()), host_skipped.get(h.id)) for h in snapshot.hosts)
    return Discovery(snapshot=snapshot, rows=rows, skipped=len(desired.skipped), product=product,
                     host_rows=host_rows)


def sync_once(config: Config, *, kubeconfig: str | None, dry_run: bool) -> SweepReport | None:
    """One sweep against the cluster; ``None`` when the nodes could not be listed (nothing was changed)."""
    api = load_api_client(kubeconfig)
    metrics = Metrics()
    cache = NodeCache(api, metrics=metrics)
    cache.start()
    engine = engine_client(config, metrics=metrics)
    try:
        if not cache.wait_synced(config.connection.timeout):
            return None
        writer = None if dry_run else NodeWriter(api, metrics=metrics, limiter=kube_rate_limiter(config))
        return run_sweep(config=config, engine=engine, nodes=cache.nodes(), writer=writer, metrics=metrics)
    finally:
        cache.stop()
        engine.close()


def kube_rate_limiter(config: Config) -> TokenBucket:
    """The client-side rate limit of the writer's Kubernetes API requests (``kube_api_qps`` / ``kube_api_burst``)."""
    return TokenBucket(config.controller.kube_api_qps, config.controller.kube_api_burst)


def default_identity() -> str:
    """This replica's identity in the Lease: the pod name, else host name and a random suffix."""
    pod = os.environ.get("POD_NAME")
    return pod if pod else f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def run_controller(config: Config, *, kubeconfig: str | None, stop: threading.Event,
                   identity: str | None = None, event_repeat_interval: float = 300.0,
                   on_serving: Callable[[str, int], None] | None = None) -> int:
    """Start every component, run until ``stop``, then shut down in order within a few seconds.

    Returns the exit status (0 after ``stop``, 1 when the loop or the leader elector ended by itself). Raises
    :class:`StartupError` when the metrics address cannot be bound. ``event_repeat_interval``: an Event repeated
    within this many seconds is not written again. ``on_serving(host, port)`` is called once the metrics and
    health port is bound (the port an address with port 0 got: the demo prints it).
    """
    ctl = config.controller
    host, port = parse_bind_address(ctl.metrics_bind_address)
    api = load_api_client(kubeconfig)
    metrics = Metrics()
    # the engine is contacted every event_poll_interval (or every sync_interval with events off)
    contact_period = ctl.event_poll_interval if ctl.event_poll_interval > 0 else ctl.sync_interval
    health = HealthState(engine_stale_after=max(3 * contact_period, 30.0))
    try:
        server = HealthServer(host=host, port=port, registry=metrics.registry, state=health)
    except OSError as exc:
        raise StartupError(f"metrics bind address {ctl.metrics_bind_address}: {exc.strerror or exc}") from None
    name = identity or default_identity()
    engine = engine_client(config, metrics=metrics)
    writer = NodeWriter(api, metrics=metrics, host_identity=name, event_repeat_interval=event_repeat_interval,
                        stop=stop, limiter=kube_rate_limiter(config))
    elector: LeaderElector | None = None
    controller: Controller
    if ctl.leader_elect:
        elector = LeaderElector(api, namespace=ctl.leader_elect_namespace, name=ctl.leader_elect_lease_name,
                                identity=name, lease_duration=ctl.lease_duration,
                                renew_deadline=ctl.renew_deadline, retry_period=ctl.retry_period,
                                metrics=metrics, on_started_leading=lambda: controller.on_started_leading())
    else:
        metrics.leader.set(1)
    cache = NodeCache(api, metrics=metrics, on_event=lambda t, n: controller.on_node_event(t, n))
    controller = Controller(config=config, engine=engine, cache=cache, writer=writer, metrics=metrics,
                            health=health, leader=elector)
    health.set_cache_synced(lambda: cache.synced)
    log.info("starting", extra=kv(version=__version__, identity=name, config=config.path, instance=ctl.instance,
                                  lease=ctl.leader_elect_lease_name, engine=config.connection.uri,
                                  filter=config.filters.vms,
                                  leader_elect=ctl.leader_elect, sync_interval=ctl.sync_interval))
    for line in search_warnings(config.filters):
        log.warning(line)
    server.start()
    if on_serving is not None:
        on_serving(host, server.port)
    cache.start()
    election: threading.Thread | None = None
    if elector is not None:
        election = threading.Thread(target=elector.run, args=(stop,), name="leader-election", daemon=True)
        election.start()
    loop = threading.Thread(target=controller.run, args=(stop,), name="controller", daemon=True)
    loop.start()
    try:
        while not stop.wait(0.5):
            if not loop.is_alive():
                log.error("controller loop ended unexpectedly")
                stop.set()
                return EXIT_FAILURE
            if election is not None and elector is not None and not election.is_alive() and not stop.is_set():
                # as kube-controller-manager: the process ends so that the pod restarts (kube/leader.py)
                log.error("leader election ended unexpectedly, exiting",
                          extra=kv(error=elector.failure or "the elector stopped"))
                stop.set()
                return EXIT_FAILURE
    finally:
        stop.set()
        _shut_down(loop, elector, cache, engine, server)
        log.info("stopped", extra=kv(identity=name))
    return EXIT_OK


def _shut_down(loop: threading.Thread, elector: LeaderElector | None, cache: NodeCache, engine: EngineClient,
               server: HealthServer) -> None:
    """The shutdown after ``stop`` was set, within one deadline (``SHUTDOWN_SECONDS``): each step gets what
    remains of it. The Lease release always runs (with at least what ``RELEASE_RESERVE`` kept)."""
    deadline = time.monotonic() + SHUTDOWN_SECONDS

    def left(keep: float = 0.0) -> float:
        return max(0.0, deadline - keep - time.monotonic())

    # no action in flight once the lease is released (as client-go requires); the writer saw ``stop`` and
    # sends nothing more, and the elector ends leadership (the write fence) before it writes the Lease
    loop.join(timeout=left(RELEASE_RESERVE))
    if elector is not None:
        elector.release(timeout=max(0.5, min(2.0, left(0.5))))
    cache.stop(timeout=min(0.5, left(0.3)))
    engine.close(timeout=left(0.2))  # waits for a call in flight, then logs out: best effort, what is left
    server.stop(timeout=max(0.1, left()))
