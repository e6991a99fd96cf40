"""``ovirt-cloudprovider``: the one console script.

Subcommands: ``run`` (the controller), ``sync --once [--dry-run]``, ``discover [-o table|json]``,
``check-config`` and ``demo``. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
A user mistake is one line on stderr (``ovirt-cloudprovider: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from . import __version__
from .config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config, parse_bind_address
from .logs import kv, setup_logging
from .model import Action, NodeSpec, VirtualMachine

log = logging.getLogger("ovirt_cloudprovider.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "ovirt-cloudprovider"


class UsageError(Exception):
    """A bad command line or environment: exit 2."""


def _bool_flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", default=os.environ.get("OVIRT_CLOUD_CONFIG", DEFAULT_CONFIG_PATH),
                        metavar="PATH", help=f"INI configuration file (default: {DEFAULT_CONFIG_PATH})")
    common.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log line format on stderr (default: text, key=value)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v debug)")
    kube = _Parser(add_help=False)
    kube.add_argument("--kubeconfig", metavar="PATH", default=None,
                      help="kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")

    p = _Parser(prog=PROG, description="Kubernetes cloud-provider sidecar for oVirt: oVirt VMs become Nodes.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", parents=[common, kube], help="run the controller (what the pod runs)")
    run.add_argument("--metrics-bind-address", metavar="HOST:PORT",
                     help="serve /metrics, /healthz and /readyz here (default from [controller], 0.0.0.0:10270)")
    run.add_argument("--leader-elect", type=_bool_flag, nargs="?", const=True, default=None, metavar="BOOL",
                     help="use a Lease so that only one replica writes (default: true)")
    run.add_argument("--leader-elect-namespace", metavar="NS", help="namespace of the Lease")
    run.add_argument("--leader-elect-lease-name", metavar="NAME", help="name of the Lease")

    sync = sub.add_parser("sync", parents=[common, kube], help="one sweep, then exit")
    sync.add_argument("--once", action="store_true", required=True, help="run one sweep (required)")
    sync.add_argument("--dry-run", action="store_true", help="print the planned actions, change nothing")

    disc = sub.add_parser("discover", parents=[common], help="list matching VMs and the Node each would become")
    disc.add_argument("-o", "--output", choices=("table", "json"), default="table")

    sub.add_parser("check-config", parents=[common],
                   help="validate the configuration, log in to the engine and run the search")

    demo = sub.add_parser("demo", parents=[common], help="run the controller against embedded simulators")
    demo.set_defaults(config=None)
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the simulators up and print a kubeconfig for kubectl")
    demo.add_argument("--vms", type=int, default=12, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(fmt=args.log_format, verbosity=args.verbose)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "sync": cmd_sync, "discover": cmd_discover, "check-config": cmd_check_config,
        "demo": cmd_demo,
    }
    from .engine.errors import EngineError
    from .kube import KubeConfigError
    try:
        return handlers[args.command](args)
    except (ConfigError, UsageError, KubeConfigError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except EngineError as exc:
        _fail(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config, os.environ)


# --- discover / check-config -----------------------------------------------------------------------

def _node_json(spec: NodeSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    from .model import TAINT_SHUTDOWN
    taints = [{"key": TAINT_SHUTDOWN, "value": None, "effect": "NoSchedule"}] if spec.shutdown else []
    return {"name": spec.name, "providerID": spec.provider_id,
            "addresses": [{"type": a.type, "address": a.address} for a in spec.addresses],
            "labels": dict(spec.labels), "taints": taints}


def _vm_json(vm: VirtualMachine) -> dict[str, Any]:
    return {"id": vm.id, "name": vm.name, "status": vm.status, "fqdn": vm.fqdn, "cluster": vm.cluster,
            "datacenter": vm.datacenter, "host": vm.host}


def _discover(config: Config) -> list[tuple[VirtualMachine, NodeSpec | None, str | None]]:
    from .desired import desired_nodes
    from .engine.client import EngineClient
    client = EngineClient(config.connection, page_size=config.controller.page_size)
    try:
        snapshot = client.discover(config.filters.vms)
    finally:
        client.close()
    desired = desired_nodes(snapshot, config.nodes)
    by_vm = {n.vm_id: n for n in desired.nodes}
    skipped = {s.vm_id: s.reason for s in desired.skipped}
    return [(vm, by_vm.get(vm.id), skipped.get(vm.id)) for vm in snapshot.vms]


def cmd_discover(args: argparse.Namespace) -> int:
    config = _load(args)
    rows = _discover(config)
    if args.output == "json":
        doc = [{"vm": _vm_json(vm), "node": _node_json(spec)} for vm, spec, _ in rows]
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    table = [("VM", "STATUS", "CLUSTER", "HOST", "NODE", "ADDRESSES", "NOTE")]
    for vm, spec, reason in rows:
        addrs = ",".join(a.address for a in spec.addresses if a.type != "Hostname") if spec else ""
        note = reason or ("" if spec is None or spec.running else
                          "shutdown taint" if spec.shutdown else "not running: no new Node")
        table.append((vm.name, vm.status, vm.cluster or "", vm.host or "", spec.name if spec else "<none>",
                      addrs or "<none>", note))
    _print_table(table)
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from .engine.client import EngineClient
    config = _load(args)
    conn = config.connection
    print(f"config:  {config.path}: ok")
    tls = "NOT verified (insecure)" if conn.insecure else f"verified with {conn.ca_file or 'the system CA bundle'}"
    print(f"engine:  {conn.uri} as {conn.username} (TLS {tls})")
    print(f"filter:  {config.filters.vms or '<none: every VM>'}")
    client = EngineClient(conn, page_size=config.controller.page_size)
    try:
        product = client.check()
        print(f"login:   ok ({product})")
        snapshot = client.discover(config.filters.vms)
    finally:
        client.close()
    from collections import Counter

    from .desired import desired_nodes
    desired = desired_nodes(snapshot, config.nodes)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(vm.status for vm in snapshot.vms).items()))
    print(f"search:  {len(snapshot.vms)} VM(s) matched in {snapshot.requests} request(s)"
          + (f" ({statuses})" if statuses else ""))
    print(f"nodes:   {len(desired.nodes)} VM(s) map to Nodes, {len(desired.skipped)} skipped")
    for s in desired.skipped:
        print(f"  skipped {s.vm_name} ({s.vm_id}): {s.reason}")
    if not snapshot.vms:
        print("warning: the filter matched no VM; check [filters] vms (a typo in a search field name "
              "returns an empty list, not an error)")
    return EXIT_OK


def _print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


# --- sync --once -----------------------------------------------------------------------------------

def print_plan(actions: Sequence[Action], out: TextIO | None = None) -> None:
    rows = [("ACTION", "NODE", "VM", "REASON", "DETAIL")]
    for a in actions:
        rows.append((a.kind.value, a.node, a.vm_id or "", a.reason, a.message))
    if len(rows) == 1:
        (out or sys.stdout).write("no actions: the nodes match the VMs\n")
        return
    _print_table(rows, out)


def cmd_sync(args: argparse.Namespace) -> int:
    from .controller import run_sweep
    from .engine.client import EngineClient
    from .kube import NodeCache, NodeWriter, load_api_client
    from .metrics import Metrics
    config = _load(args)
    api = load_api_client(args.kubeconfig)
    metrics = Metrics()
    cache = NodeCache(api, metrics=metrics)
    cache.start()
    engine = EngineClient(config.connection, page_size=config.controller.page_size, metrics=metrics)
    try:
        if not cache.wait_synced(config.connection.timeout):
            _fail("could not list the cluster's nodes; nothing was changed")
            return EXIT_FAILURE
        writer = None if args.dry_run else NodeWriter(api, metrics=metrics)
        report = run_sweep(config=config, engine=engine, nodes=cache.nodes(), writer=writer, metrics=metrics)
    finally:
        cache.stop()
        engine.close()
    if report.plan is not None and args.dry_run:
        print_plan(report.plan.actions)
    if not report.ok:
        _fail(f"sweep failed: {report.error}" + ("; no node was changed" if report.plan is None else ""))
        return EXIT_FAILURE
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------------

def _identity() -> str:
    pod = os.environ.get("POD_NAME")
    return pod if pod else f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _run_settings(args: argparse.Namespace, config: Config) -> Config:
    ctl = config.controller
    if args.metrics_bind_address is not None:
        try:
            parse_bind_address(args.metrics_bind_address)
        except ConfigError as exc:
            raise UsageError(f"--metrics-bind-address: {exc}") from None
        ctl = replace(ctl, metrics_bind_address=args.metrics_bind_address)
    if args.leader_elect is not None:
        ctl = replace(ctl, leader_elect=args.leader_elect)
    if args.leader_elect_namespace:
        ctl = replace(ctl, leader_elect_namespace=args.leader_elect_namespace)
    if args.leader_elect_lease_name:
        ctl = replace(ctl, leader_elect_lease_name=args.leader_elect_lease_name)
    return replace(config, controller=ctl)


def cmd_run(args: argparse.Namespace) -> int:
    config = _run_settings(args, _load(args))
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", extra=kv(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return run_controller(config, kubeconfig=args.kubeconfig, stop=stop)


def run_controller(config: Config, *, kubeconfig: str | None, stop: threading.Event,
                   identity: str | None = None, event_repeat_interval: float = 300.0) -> int:
    """Start every component, run until ``stop``, then shut down in order within a few seconds.

    ``event_repeat_interval``: an Event repeated within this many seconds is not written again.
    """
    from .controller import Controller
    from .engine.client import EngineClient
    from .health import HealthServer, HealthState
    from .kube import NodeCache, NodeWriter, load_api_client
    from .leader import LeaderElector
    from .metrics import Metrics
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
        raise UsageError(f"metrics bind address {ctl.metrics_bind_address}: {exc.strerror or exc}") from None
    identity = identity or _identity()
    engine = EngineClient(config.connection, page_size=ctl.page_size, metrics=metrics)
    writer = NodeWriter(api, metrics=metrics, host_identity=identity, event_repeat_interval=event_repeat_interval,
                        stop=stop)
    elector: LeaderElector | None = None
    controller: Controller
    if ctl.leader_elect:
        elector = LeaderElector(api, namespace=ctl.leader_elect_namespace, name=ctl.leader_elect_lease_name,
                                identity=identity, lease_duration=ctl.lease_duration,
                                renew_deadline=ctl.renew_deadline, retry_period=ctl.retry_period,
                                metrics=metrics, on_started_leading=lambda: controller.on_started_leading())
    else:
        metrics.leader.set(1)
    cache = NodeCache(api, metrics=metrics, on_event=lambda t, n: controller.on_node_event(t, n))
    controller = Controller(config=config, engine=engine, cache=cache, writer=writer, metrics=metrics,
                            health=health, leader=elector)
    health.set_cache_synced(lambda: cache.synced)
    log.info("starting", extra=kv(version=__version__, identity=identity, config=config.path,
                                  engine=config.connection.uri, filter=config.filters.vms,
                                  leader_elect=ctl.leader_elect, sync_interval=ctl.sync_interval))
    server.start()
    cache.start()
    elector_thread = None
    if elector is not None:
        elector_thread = threading.Thread(target=elector.run, args=(stop,), name="leader-election", daemon=True)
        elector_thread.start()
    loop = threading.Thread(target=controller.run, args=(stop,), name="controller", daemon=True)
    loop.start()
    try:
        while not stop.wait(0.5):
            if not loop.is_alive():
                log.error("controller loop ended unexpectedly")
                stop.set()
                return EXIT_FAILURE
    finally:
        stop.set()
        loop.join(timeout=2.0)  # no action in flight once the lease is released (as client-go requires)
        if elector is not None:
            elector.release()
        cache.stop()
        engine.close()
        server.stop()
        log.info("stopped", extra=kv(identity=identity))
    return EXIT_OK


# --- demo ------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return int(run_demo(keep_running=args.keep_running, vms=args.vms))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
