"""The autoscaler process (``ovirt-cloudprovider autoscaler``): the externalgrpc service over mTLS, a health and
metrics port, the node groups' background thread.

- :class:`GrpcSettings`: where to listen and with which certificates; :func:`grpc_settings` checks the flags:
  the three TLS files (``--tls-cert-file``, ``--tls-private-key-file``, ``--client-ca-file``: the server
  requires a client certificate signed by that CA) or ``--insecure-grpc`` (plain gRPC, for tests), else a one-line
  :class:`~ovirt_cloudprovider.app.StartupError` (exit 2).
- :class:`AutoscalerServer`: lifecycle ``start()`` (the metrics port, the first refresh attempt, the node groups'
  thread, the gRPC server), run until ``stop()``; ``stop()`` ends the node groups' thread (from then on no new
  create or removal starts: a scale-up or scale-down in flight ends with what it did), the gRPC server (requests in
  flight get a second), the engine session (logout, best effort) and the metrics port, within
  :data:`SHUTDOWN_SECONDS`.
- ``/healthz`` answers 200 while the process loop beats; ``/readyz`` once a group search succeeded and the last
  one did (within ``engine_stale_after``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from .. import __version__
from ..app import StartupError
from ..config import read_mark_key
from ..config.schema import parse_bind_address
from ..core.settings import Config, ConfigError
from ..engine.errors import EngineError
from ..engine.provisioner import Provisioner
from ..health import HealthServer, HealthState
from ..logs import kv
from ..metrics import Metrics
from . import DEFAULT_GRPC_ADDRESS
from .groups import NodeGroups
from .protocol import load
from .service import AutoscalerMetrics, CloudProvider

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 3.5
# Requests served at once. The cluster-autoscaler deletes up to --max-scale-down-parallelism nodes (default 10) at
# once, one NodeGroupDeleteNodes each, every call waiting for its VM to power off; meanwhile its loop asks Refresh,
# NodeGroupTargetSize and NodeGroupForNode for every node. Those answers (from memory) must never queue behind
# the deletes: the threads are started only when needed.
_MAX_WORKERS = 64


@dataclass(frozen=True)
class GrpcSettings:
    address: str = DEFAULT_GRPC_ADDRESS
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None
    insecure: bool = False


def grpc_settings(address: str, *, cert_file: str | None, key_file: str | None, client_ca_file: str | None,
                  insecure: bool) -> GrpcSettings:
    """The gRPC flags checked: a valid address, and all three TLS files or ``--insecure-grpc``."""
    try:
        parse_bind_address(address)
    except ValueError as exc:
        raise StartupError(f"--grpc-bind-address: {exc}") from None
    given = [f for f, v in (("--tls-cert-file", cert_file), ("--tls-private-key-file", key_file),
                            ("--client-ca-file", client_ca_file)) if v]
    if insecure and given:
        raise StartupError(f"--insecure-grpc and {given[0]} exclude each other")
    if not insecure and len(given) < 3:
        missing = [f for f in ("--tls-cert-file", "--tls-private-key-file", "--client-ca-file") if f not in given]
        raise StartupError(f"the gRPC service needs mTLS: {', '.join(missing)} missing (or --insecure-grpc, for "
                           "tests only)")
    return GrpcSettings(address=address, cert_file=cert_file, key_file=key_file, client_ca_file=client_ca_file,
                        insecure=insecure)


def _read(flag: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StartupError(f"{flag} {path}: {exc.strerror or type(exc).__name__}") from None


def _credentials(s: GrpcSettings) -> grpc.ServerCredentials:
    assert s.cert_file and s.key_file and s.client_ca_file
    cert, key = _read("--tls-cert-file", s.cert_file), _read("--tls-private-key-file", s.key_file)
    ca = _read("--client-ca-file", s.client_ca_file)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


class AutoscalerServer:
    """One autoscaler process's components, built from a Config; ``start()``, then ``stop()``."""

    def __init__(self, config: Config, grpc_config: GrpcSettings, *, engine: Provisioner | None = None,
                 poll_interval: float = 2.0, idle_refresh: float = 60.0) -> None:
        if not config.nodegroups:
            raise StartupError(f"{config.path}: no [nodegroup NAME] section: the autoscaler has no node group to "
                               "serve")
        try:
            mark_key = read_mark_key(config)
        except ConfigError as err:
            raise StartupError(str(err)) from None
        self.config = config
        self.metrics = Metrics()
        self.health = HealthState(engine_stale_after=max(3 * idle_refresh, 180.0))
        self.engine = engine or Provisioner(config.connection, metrics=self.metrics,
                                            auth_backoff_max=config.controller.backoff_max)
        self.groups = NodeGroups(config.nodegroups, config.nodes, self.engine, mark_key=mark_key,
                                 poll_interval=poll_interval,
                                 idle_refresh=idle_refresh, on_engine=self._engine_state,
                                 on_created=lambda g, n: self.am.vms_created_total.labels(g).inc(n),
                                 on_removed=lambda g, n: self.am.vms_removed_total.labels(g).inc(n))
        self.am = AutoscalerMetrics(self.metrics.registry, self.groups)
        self.health.set_cache_synced(lambda: self.groups.refreshed)
        host, port = parse_bind_address(config.controller.metrics_bind_address)
        try:
            self.health_server = HealthServer(host=host, port=port, registry=self.metrics.registry,
                                              state=self.health)
        except OSError as exc:
            raise StartupError(f"metrics bind address {config.controller.metrics_bind_address}: "
                               f"{exc.strerror or exc}") from None
        _, services = load()
        pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="grpc")
        self.grpc = grpc.server(pool, options=[("grpc.so_reuseport", 0)])
        services.add_CloudProviderServicer_to_server(CloudProvider(self.groups, self.am), self.grpc)
        self.grpc_config = grpc_config
        try:
            if grpc_config.insecure:
                self.grpc_port = self.grpc.add_insecure_port(grpc_config.address)
            else:
                self.grpc_port = self.grpc.add_secure_port(grpc_config.address, _credentials(grpc_config))
        except RuntimeError as exc:
            self.health_server.stop(0.1)
            raise StartupError(f"--grpc-bind-address {grpc_config.address}: cannot listen ({exc})") from None
        if not self.grpc_port:
            self.health_server.stop(0.1)
            raise StartupError(f"--grpc-bind-address {grpc_config.address}: cannot listen")

    def _engine_state(self, error: str | None) -> None:
        if error is None:
            self.health.engine_ok()
        else:
            self.health.engine_failed(error)

    @property
    def metrics_port(self) -> int:
        return self.health_server.port

    def start(self) -> None:
        self.health_server.start()
        try:
            self.groups.refresh()
        except EngineError as err:
            log.warning(f"first node-group search failed; retried in the background: {err}")
        self.groups.start()
        self.grpc.start()
        log.info("autoscaler serving", extra=kv(
            version=__version__, grpc=self.grpc_config.address, port=self.grpc_port,
            tls="off" if self.grpc_config.insecure else "mutual", groups=",".join(
                g.name for g in self.config.nodegroups), engine=self.config.connection.uri))

    def stop(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_SECONDS

        def left(keep: float = 0.0) -> float:
            return max(0.0, deadline - keep - time.monotonic())

        # First no new engine change (an increase or delete in flight ends with what it did), then the requests
        # in flight get their answers within the grace.
        self.groups.stop(timeout=min(1.0, left(2.5)))
        self.grpc.stop(grace=min(1.0, left(1.0))).wait(left(1.0))
        self.engine.close(timeout=left(0.3))
        self.health_server.stop(timeout=max(0.1, left()))

    def run(self, stop: threading.Event) -> int:
        """Start, beat until ``stop`` is set, shut down; the exit status (0)."""
        self.start()
        try:
            while not stop.wait(0.5):
                self.health.beat()
        finally:
            self.stop()
            log.info("stopped")
        return 0


__all__ = ["DEFAULT_GRPC_ADDRESS", "AutoscalerServer", "GrpcSettings", "grpc_settings"]
