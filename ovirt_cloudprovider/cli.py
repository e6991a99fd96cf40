"""``ovirt-cloudprovider``: the one console script.

Subcommands: ``run`` (the controller), ``sync [--dry-run] [-o table|wide]`` (one sweep; ``--once`` is
accepted), ``discover [-o table|json]``, ``check-config`` and ``demo``. Exit codes: 0 ok, 1 runtime failure,
2 usage or configuration error; 141 when the reader of stdout went away (``| head``: quietly, as a tool killed by
SIGPIPE), 130 / 143 when Ctrl-C / SIGTERM stopped the demo. A user mistake is one line on stderr
(``ovirt-cloudprovider: error: ... (try 'ovirt-cloudprovider COMMAND --help')``), never a traceback.

This module parses the command line and prints; what runs is built by :mod:`ovirt_cloudprovider.app`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import select
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from . import __version__, app
from .autoscaler import DEFAULT_GRPC_ADDRESS
from .config import load_config
from .config.schema import Invalid, instance_name, namespace, object_name, parse_bind_address
from .controller import SweepReport
from .core.records import (
    TAINT_MAINTENANCE,
    TAINT_SHUTDOWN,
    Action,
    ActionKind,
    Host,
    NodeSpec,
    Snapshot,
    VirtualMachine,
)
from .core.settings import DEFAULT_CONFIG_PATH, Config, ConfigError
from .core.vmfilter import unknown_tags
from .engine.errors import EngineError
from .kube.errors import KubeConfigError
from .logs import kv, one_line, setup_logging

log = logging.getLogger("ovirt_cloudprovider.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# Stopped from outside, as a shell reports a process killed by the signal: 128 + SIGINT, SIGPIPE, SIGTERM.
EXIT_INTERRUPTED, EXIT_PIPE, EXIT_TERMINATED = 130, 141, 143
PROG = "ovirt-cloudprovider"


class UsageError(Exception):
    """A bad command line or environment: exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a command that cleans up after itself runs (the demo): unwinds as Ctrl-C does."""


def _bool_flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


class _Parser(argparse.ArgumentParser):
    """One line per usage error (``ovirt-cloudprovider: error: ... (try '... --help')``), exit 2; ``commands``:
    the parser of each subcommand, so that an unknown flag is reported with that command's help."""

    commands: dict[str, _Parser]

    def error(self, message: str) -> Any:  # one line, exit 2
        sys.stderr.write(f"{PROG}: error: {one_line(message)} (try '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> _Parser:
    config = _Parser(add_help=False)
    config.add_argument("--config", default=os.environ.get("OVIRT_CLOUD_CONFIG") or DEFAULT_CONFIG_PATH,
                        metavar="PATH",
                        help=f"INI configuration file (default: $OVIRT_CLOUD_CONFIG, else {DEFAULT_CONFIG_PATH})")
    logging_ = _Parser(add_help=False)
    logging_.add_argument("--log-format", choices=("text", "json"), default="text",
                          help="log line format on stderr (default: text, key=value)")
    logging_.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v debug)")
    kube = _Parser(add_help=False)
    kube.add_argument("--kubeconfig", metavar="PATH", default=None,
                      help="kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")

    p = _Parser(prog=PROG, description="Kubernetes cloud-provider sidecar for oVirt: oVirt VMs become Nodes.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", parents=[config, logging_, kube], help="run the controller (what the pod runs)")
    run.add_argument("--metrics-bind-address", metavar="HOST:PORT",
                     help="serve /metrics, /healthz and /readyz here (default from [controller], 0.0.0.0:10270)")
    run.add_argument("--leader-elect", type=_bool_flag, nargs="?", const=True, default=None, metavar="BOOL",
                     help="use a Lease so that only one replica writes (default: true)")
    run.add_argument("--leader-elect-namespace", metavar="NS", help="namespace of the Lease")
    run.add_argument("--leader-elect-lease-name", metavar="NAME",
                     help="name of the Lease (default from [controller], else the instance name)")
    run.add_argument("--instance", metavar="NAME",
                     help="this instance's name, recorded on the nodes it owns (default from [controller] instance, "
                          "ovirt-cloudprovider); the Lease follows it unless named otherwise")

    sync = sub.add_parser("sync", parents=[config, logging_, kube],
                          help="one sweep, then exit; prints what it did (counts per action)")
    sync.add_argument("--once", action="store_true",
                      help="one sweep (what sync always does; accepted for the scripts that say it)")
    sync.add_argument("--dry-run", action="store_true", help="print the planned actions, change nothing")
    sync.add_argument("-o", "--output", choices=("table", "wide"), default="table",
                      help="the --dry-run table: table (default) fits 80 columns (action, node, reason); wide adds "
                           "the VM or host id and what each action does")

    disc = sub.add_parser("discover", parents=[config, logging_],
                          help="list matching VMs and the Node each would become")
    disc.add_argument("-o", "--output", choices=("table", "json"), default="table",
                      help="table (default): one line per VM (and host); json: each VM or host with the Node it "
                           "would become (name, providerID, addresses, labels, taints)")

    check = sub.add_parser("check-config", parents=[config, logging_],
                   help="validate the configuration, log in to the engine and run the search; exit 1 when a filter "
                        "matches nothing")

    scaler = sub.add_parser("autoscaler", parents=[config, logging_],
                            help="serve the cluster-autoscaler's externalgrpc cloud provider ([nodegroup NAME])")
    scaler.add_argument("--grpc-bind-address", metavar="HOST:PORT", default=DEFAULT_GRPC_ADDRESS,
                        help=f"serve the externalgrpc service here (default: {DEFAULT_GRPC_ADDRESS})")
    scaler.add_argument("--tls-cert-file", metavar="PATH", help="the gRPC server's certificate (PEM)")
    scaler.add_argument("--tls-private-key-file", metavar="PATH", help="its private key (PEM)")
    scaler.add_argument("--client-ca-file", metavar="PATH",
                        help="CA of the client certificates (the cluster-autoscaler's); a client certificate is "
                             "required")
    scaler.add_argument("--insecure-grpc", action="store_true", help="plain gRPC without TLS (tests only)")
    scaler.add_argument("--metrics-bind-address", metavar="HOST:PORT",
                        help="serve /metrics, /healthz and /readyz here (default from [controller], 0.0.0.0:10270)")

    demo = sub.add_parser("demo", parents=[logging_], help="run the controller against embedded simulators (no "
                          "configuration: it writes its own)")
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the simulators up and print a kubeconfig for kubectl and the metrics, health "
                           "and readiness URLs")
    p.commands = {"run": run, "sync": sync, "discover": disc, "check-config": check, "demo": demo,
                  "autoscaler": scaler}
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser: its --help is the one that helps
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(fmt=args.log_format, verbosity=args.verbose)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "sync": cmd_sync, "discover": cmd_discover, "check-config": cmd_check_config,
        "demo": cmd_demo, "autoscaler": cmd_autoscaler,
    }
    try:
        return handlers[args.command](args)
    except (ConfigError, UsageError, KubeConfigError, app.StartupError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except EngineError as exc:
        _fail(str(exc))
        return EXIT_FAILURE
    except Terminated:
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # The reader of our output went away (``| head``): stop quietly, as a tool killed by SIGPIPE does.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no complaint at exit's flush
        return EXIT_PIPE
    except Exception as exc:  # a bug: still one line (and the traceback with -v), never a bare traceback
        _fail(f"internal error: {type(exc).__name__}: {one_line(str(exc))} (please report it; -v logs the "
              "traceback)")
        log.debug("internal error", exc_info=True)
        return EXIT_FAILURE


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (a BrokenPipeError from elsewhere is a bug)."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() here, or no real stdout: believe the error
        return True


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config, os.environ)
    app.log_notices(config)
    return config


# --- discover / check-config -----------------------------------------------------------------------

def _node_json(spec: NodeSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    taints = [{"key": TAINT_SHUTDOWN, "value": None, "effect": "NoSchedule"}] if spec.shutdown else []
    if spec.maintenance:
        taints.append({"key": TAINT_MAINTENANCE, "value": None, "effect": "NoSchedule"})
    return {"name": spec.name, "providerID": spec.provider_id,
            "addresses": [{"type": a.type, "address": a.address} for a in spec.addresses],
            "labels": dict(spec.labels), "taints": taints}


def _vm_json(vm: VirtualMachine) -> dict[str, Any]:
    return {"id": vm.id, "name": vm.name, "status": vm.status, "fqdn": vm.fqdn, "cluster": vm.cluster,
            "datacenter": vm.datacenter, "host": vm.host}


def _host_json(host: Host) -> dict[str, Any]:
    return {"id": host.id, "name": host.name, "status": host.status, "address": host.address,
            "cluster": host.cluster, "datacenter": host.datacenter}


def cmd_discover(args: argparse.Namespace) -> int:
    config = _load(args)
    for line in app.search_warnings(config.filters):  # on stderr: the table or JSON on stdout stays clean
        print(f"warning: {line}", file=sys.stderr)
    found = app.discover(config)
    hosts = found.snapshot.hosts_query is not None  # [filters] hosts: a KIND column, the hosts after the VMs
    if args.output == "json":
        items = itertools.chain(({"vm": _vm_json(vm), "node": _node_json(spec)} for vm, spec, _ in found.rows),
                                ({"host": _host_json(h), "node": _node_json(spec)} for h, spec, _ in found.host_rows))
        write_json_list(items, sys.stdout)
        return EXIT_OK
    table: list[tuple[str, ...]] = [("VM", "STATUS", "CLUSTER", "HOST", "NODE", "ADDRESSES", "NOTE")]
    for vm, spec, reason in found.rows:
        table.append((vm.name, vm.status, vm.cluster or "", vm.host or "", *_node_cells(spec, reason)))
    if hosts:
        table = [("KIND", "NAME", *table[0][1:])] + [("vm", *row) for row in table[1:]]
        for h, spec, reason in found.host_rows:
            table.append(("host", h.name, h.status, h.cluster or "", "", *_node_cells(spec, reason)))
    _print_table(table)
    return EXIT_OK


def write_json_list(items: Iterable[Any], out: TextIO) -> None:
    """``json.dumps(list(items), indent=2)`` and a newline, written one item at a time: the document of a large
    fleet is never built in memory at once."""
    first = True
    for item in items:
        out.write("[\n  " if first else ",\n  ")
        out.write(json.dumps(item, indent=2).replace("\n", "\n  "))
        first = False
    out.write("[]\n" if first else "\n]\n")


def _node_cells(spec: NodeSpec | None, reason: str | None) -> tuple[str, str, str]:
    addrs = ",".join(a.address for a in spec.addresses if a.type != "Hostname") if spec else ""
    note = reason or ("" if spec is None or spec.running else
                      "shutdown taint" if spec.shutdown else
                      "maintenance taint" if spec.maintenance else "not running: no new Node")
    return spec.name if spec else "<none>", addrs or "<none>", note


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    conn = config.connection
    print(f"config:  {config.path}: ok")
    tls = "NOT verified (insecure)" if conn.insecure else f"verified with {conn.ca_file or 'the system CA bundle'}"
    print(f"engine:  {conn.uri} as {conn.username} (TLS {tls})")
    print(f"filter:  {config.filters.vms or '<none: every VM>'}")
    for line in app.search_warnings(config.filters):
        print(f"warning: {line}")
    found = app.discover(config, check_login=True)
    snapshot = found.snapshot
    print(f"login:   ok ({found.product})")
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(vm.status for vm in snapshot.vms).items()))
    print(f"search:  {len(snapshot.vms)} VM(s) matched in {snapshot.requests} request(s)"
          + (f" ({statuses})" if statuses else ""))
    if snapshot.hosts_query is not None:
        print(f"hosts:   {len(snapshot.hosts)} host(s) matched {snapshot.hosts_query!r}")
    mapped = sum(1 for _, spec, _ in found.rows if spec is not None)
    print(f"nodes:   {mapped} VM(s) map to Nodes, {found.skipped} skipped")
    for vm, _, reason in found.rows:
        if reason:
            print(f"  skipped {vm.name} ({vm.id}): {reason}")
    if _unknown_tags(config, snapshot):
        return EXIT_FAILURE
    # A filter that matches nothing is almost always a mistake (a misspelt search field name returns an empty
    # list, not an error): a failure, so that a pre-deploy script stops here.
    empty = [] if snapshot.vms else ["the filter matched no VM; check [filters] vms"]
    if snapshot.hosts_query is not None and not snapshot.hosts:
        empty.append("the hosts filter matched no host; check [filters] hosts")
    if empty:
        _fail("; ".join(empty) + " (a typo in a search field name returns an empty list, not an error)")
        return EXIT_FAILURE
    return EXIT_OK


def _unknown_tags(config: Config, snapshot: Snapshot) -> bool:
    """One error line per tag that ``[filters] vms`` or ``[filters] hosts`` (``tag=``) or ``[nodes] tag_labels``
    names and the engine's tag tree does not have (the engine answers such a search with nothing, not an error)."""
    if snapshot.tags is None:
        return False
    names = [t.name for t in snapshot.tags]
    problems = [f"{config.path}: [filters] vms: the engine has no tag {tag!r} (the condition tag={tag} matched no "
                "VM)" for tag in unknown_tags(config.filters.vms, names)]
    problems += [f"{config.path}: [filters] hosts: the engine has no tag {tag!r} (the condition tag={tag} matched "
                 "no host)" for tag in unknown_tags(config.filters.hosts or "", names)]
    parent = config.nodes.tag_labels
    if parent is not None and parent not in names:
        problems.append(f"{config.path}: [nodes] tag_labels: the engine has no tag {parent!r}")
    for problem in problems:
        _fail(problem)
    return bool(problems)


def _print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


# --- sync --once -----------------------------------------------------------------------------------

# The planner's messages are the Events' (what was done); a dry run says what would be done.
_PLANNED = (
    ("Registered node", "Would register node"), ("Initialized node", "Would initialize node"),
    ("Updated node", "Would update node"), ("Deleting placeholder node", "Would delete placeholder node"),
    ("Deleting node", "Would delete node"), (": added taint", ": would add taint"),
    (": removed taint", ": would remove taint"), ("the absence count is reset", "the absence count would be reset"),
    ("the node is deleted at", "the node would be deleted at"),
)


def dry_run_message(message: str) -> str:
    """An action's message as a plan: "Would register node ..." instead of "Registered node ..."."""
    for done, planned in _PLANNED:
        message = message.replace(done, planned)
    return message


def print_plan(actions: Sequence[Action], out: TextIO | None = None, *, kinds: bool = False,
               wide: bool = False) -> None:
    """The plan as a table: action, node and reason, which fit an 80-column terminal; ``wide`` adds the VM (or
    host) id and what each action does. With ``kinds`` (``[filters] hosts`` set) a KIND column (vm / host)."""
    rows: list[tuple[str, ...]] = []
    for a in actions:
        row = (a.kind.value, a.node, a.vm_id or "", a.reason, dry_run_message(a.message)) if wide \
            else (a.kind.value, a.node, a.reason)
        rows.append((a.owner_kind, *row) if kinds else row)
    if not rows:
        (out or sys.stdout).write("no actions: the nodes match the VMs\n")
        return
    header = ("ACTION", "NODE", "ID" if kinds else "VM", "REASON", "DETAIL") if wide else ("ACTION", "NODE", "REASON")
    _print_table([(("KIND", *header) if kinds else header), *rows], out)


def sync_summary(report: SweepReport, *, dry_run: bool) -> str:
    """One line: what the sweep found and did (or, in a dry run, would do), with the count of each action."""
    snapshot, plan = report.snapshot, report.plan
    found = ""
    if snapshot is not None:
        found = f"{len(snapshot.vms)} VM(s)" + (f", {len(snapshot.hosts)} host(s)"
                                               if snapshot.hosts_query is not None else "") + " matched; "
    counts = Counter(a.kind for a in plan.actions) if plan is not None else Counter()
    per_kind = ", ".join(f"{counts[k]} {k.value}" for k in ActionKind if counts[k])
    writes = sum(n for k, n in counts.items() if k not in _NOTICES)
    if not counts:
        return f"{found}no actions: the nodes match the VMs"
    if dry_run:
        return f"{found}planned: {per_kind}; dry run, nothing was changed"
    failed = f", {report.failed} failed" if report.failed else ""
    failed += f", {report.refused} refused by the API (those nodes skipped)" if report.refused else ""
    return f"{found}done: {per_kind} ({report.applied} of {writes} write(s) applied{failed})"


# Actions that only tell (an Event, a metric), never write to a node.
_NOTICES = frozenset({ActionKind.BLOCK_DELETE, ActionKind.AMBIGUOUS, ActionKind.SKIP})


def cmd_sync(args: argparse.Namespace) -> int:
    report = app.sync_once(_load(args), kubeconfig=args.kubeconfig, dry_run=args.dry_run)
    if report is None:
        _fail("could not list the cluster's nodes; nothing was changed")
        return EXIT_FAILURE
    if report.plan is not None:
        if args.dry_run and report.plan.actions:
            print_plan(report.plan.actions, wide=args.output == "wide",
                       kinds=report.snapshot is not None and report.snapshot.hosts_query is not None)
        print(sync_summary(report, dry_run=args.dry_run))
    if not report.ok:
        _fail(f"sweep failed: {report.error}" + ("; no node was changed" if report.plan is None else ""))
        return EXIT_FAILURE
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------------

def _run_settings(args: argparse.Namespace, config: Config) -> Config:
    ctl = config.controller
    if args.metrics_bind_address is not None:
        try:
            parse_bind_address(args.metrics_bind_address)
        except ValueError as exc:
            raise UsageError(f"--metrics-bind-address: {exc}") from None
        ctl = replace(ctl, metrics_bind_address=args.metrics_bind_address)
    if args.leader_elect is not None:
        ctl = replace(ctl, leader_elect=args.leader_elect)
    if args.instance:
        try:
            instance_name(args.instance)
        except Invalid as exc:
            raise UsageError(f"--instance: {exc.problem}") from None
        following = ctl.leader_elect_lease_name == ctl.instance  # the Lease is named after the instance
        ctl = replace(ctl, instance=args.instance,
                      leader_elect_lease_name=args.instance if following else ctl.leader_elect_lease_name)
    for flag, value, check, key in (
            ("--leader-elect-namespace", args.leader_elect_namespace, namespace, "leader_elect_namespace"),
            ("--leader-elect-lease-name", args.leader_elect_lease_name, object_name, "leader_elect_lease_name")):
        if value:
            try:
                check(value)
            except Invalid as exc:
                raise UsageError(f"{flag}: {exc.problem}") from None
            ctl = replace(ctl, **{key: value})
    return replace(config, controller=ctl)


def _stop_on_signals() -> threading.Event:
    """An Event that SIGTERM and SIGINT set (each logged once as ``shutting down``): a long-running command's stop."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", extra=kv(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    config = _run_settings(args, _load(args))
    stop = _stop_on_signals()
    return app.run_controller(config, kubeconfig=args.kubeconfig, stop=stop)


# --- autoscaler ------------------------------------------------------------------------------------

def cmd_autoscaler(args: argparse.Namespace) -> int:
    # gRPC is the optional "autoscaler" extra: the controller's installation may not have it.
    try:
        from .autoscaler.server import AutoscalerServer, grpc_settings
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("grpc", "grpc_tools", "google"):
            raise
        _fail(f"autoscaler needs the 'autoscaler' extra (pip install 'ovirt-cloudprovider[autoscaler]'): "
              f"{exc.name} is not installed")
        return EXIT_USAGE
    settings = grpc_settings(args.grpc_bind_address, cert_file=args.tls_cert_file, key_file=args.tls_private_key_file,
                             client_ca_file=args.client_ca_file, insecure=args.insecure_grpc)
    config = _load(args)
    if args.metrics_bind_address is not None:
        try:
            parse_bind_address(args.metrics_bind_address)
        except ValueError as exc:
            raise UsageError(f"--metrics-bind-address: {exc}") from None
        config = replace(config, controller=replace(config.controller, metrics_bind_address=args.metrics_bind_address))
    stop = _stop_on_signals()
    return AutoscalerServer(config, settings).run(stop)


# --- demo ------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    # The demo needs the simulators, which the container image does not ship: an optional import.
    try:
        from .demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("ovirt_cloudprovider.simulators"):
            raise
        _fail("demo is not included in this installation (it needs the simulators, which the container image "
              "does not ship); run it from a clone or a pip install")
        return EXIT_USAGE

    def _on_signal(signum: int, _frame: object) -> None:
        # unwind as Ctrl-C does, so that the demo stops its servers and removes its directory (a kubeconfig and
        # a config with the simulator's password); a second signal does not interrupt that clean-up
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    return int(run_demo(keep_running=args.keep_running))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
