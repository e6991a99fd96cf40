"""``python -m ovirt_cloudprovider.simulators.engine``: serve a generated fleet until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .constants import DEFAULT_PASSWORD, DEFAULT_USERNAME
from .generate import generate_fleet
from .simulator import EngineSimulator

TEMPLATE_NAME = "k8s-node"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ovirt_cloudprovider.simulators.engine",
        description="Serve a simulated oVirt engine (API v4 + SSO) with a generated fleet until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--vms", type=int, default=10, help="Kubernetes-tagged VMs to generate (default 10)")
    parser.add_argument("--untagged", type=int, default=0, help="other VMs that the filter does not match")
    parser.add_argument("--hosts", type=int, default=9,
                        help="oVirt hosts, shared out over the three clusters (default 9; OLVM's largest tier: 1024)")
    parser.add_argument("--seed", type=int, default=0, help="fleet generator seed")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--image-lock-seconds", type=float, default=2.0,
                        help="how long a VM created from a template stays image_locked (default 2)")
    parser.add_argument("--boot-seconds", type=float, default=3.0,
                        help="how long a started VM stays powering_up (default 3)")
    parser.add_argument("--write-config", metavar="PATH",
                        help="write an ovirt-cloud.conf pointing at this engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    fleet = generate_fleet(args.vms, seed=args.seed, untagged=args.untagged, hosts=args.hosts)
    # a template to try a node group with (see the README's autoscaler section)
    fleet.add_template(TEMPLATE_NAME, next(iter(fleet.clusters.values())).name,
                       description="Kubernetes node (cloud-init joins the cluster)")
    fleet.image_lock_seconds, fleet.boot_seconds = args.image_lock_seconds, args.boot_seconds
    try:
        sim = EngineSimulator(fleet, username=args.username, password=args.password, host=args.host,
                              port=args.port).start()
    except (OSError, ValueError) as e:
        print(f"engine simulator: cannot listen on {args.host}:{args.port}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr)
        return 1
    try:
        if args.write_config:
            sim.write_config(args.write_config)
        written = f"; config written to {args.write_config}" if args.write_config else ""
        print(f"oVirt engine simulator: {sim.url} ({len(fleet.vms)} VMs, {len(fleet.hosts)} hosts, "
              f"template {TEMPLATE_NAME}, "
              f"user {sim.username}, "
              f"CA {sim.ca_file}){written}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0
