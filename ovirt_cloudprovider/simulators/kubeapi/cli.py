"""The command line: ``python -m ovirt_cloudprovider.simulators.kubeapi``."""

from __future__ import annotations

import argparse
import logging
import random
import signal
import string
import sys
import threading
from collections.abc import Sequence

from .simulator import KubeApiSimulator


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ovirt_cloudprovider.simulators.kubeapi",
                                 description="Serve a simulated Kubernetes API on 127.0.0.1 until SIGINT/SIGTERM.")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS with the shared test certificate")
    ap.add_argument("--token", help="require this bearer token")
    ap.add_argument("--write-kubeconfig", metavar="PATH", help="write a kubeconfig for kubectl and clients")
    ap.add_argument("--nodes", type=int, default=0, metavar="N", help="register N kubelet-like nodes")
    ap.add_argument("--history", type=int, default=1000, help="changes kept for watches (default 1000)")
    ap.add_argument("--node-lifecycle", action="store_true",
                    help="act on Node taints and conditions as kube-controller-manager's node lifecycle controller")
    ap.add_argument("--startup-grace", type=float, default=60.0, metavar="SECONDS",
                    help="the node lifecycle mode's startup grace period (default 60, as kube-controller-manager)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="%(message)s")
    if a.tls and not a.token:
        a.token = "".join(random.SystemRandom().choice(string.ascii_lowercase + string.digits) for _ in range(32))
    try:
        sim = KubeApiSimulator(tls=a.tls, token=a.token, host=a.host, port=a.port, history=a.history)
        sim.start()
    except (OSError, ValueError) as e:
        print(f"kubeapi simulator: cannot listen on {a.host}:{a.port}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr)
        return 1
    if a.node_lifecycle:
        sim.start_node_lifecycle(startup_grace=a.startup_grace)
    for i in range(a.nodes):
        sim.register_kubelet_node(f"node-{i + 1}", internal_ip=f"192.0.2.{(i % 250) + 1}")
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"kube-apiserver simulator listening on {sim.url}", flush=True)
    if a.write_kubeconfig:
        print(f"kubeconfig: {sim.write_kubeconfig(a.write_kubeconfig)}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0

