"""Run one loopback simulator in its own process, driven over stdin/stdout (for benchmarks/scale.py).

    python benchmarks/simproc.py engine --vms 1000 --seed 4 --workdir DIR
    python benchmarks/simproc.py kube --workdir DIR

The process starts the simulator (the public classes ``EngineSimulator`` / ``generate_fleet`` and
``KubeApiSimulator``), prints one JSON line describing it (URL, config or kubeconfig path), then answers
one JSON command per stdin line with one JSON line (``{"ok": ..., "value": ...}``); it exits when stdin
closes. :class:`SimProcess` is the parent side. Keeping the simulators out of the measured process means
the controller's CPU and memory figures are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _engine_ops(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet

    fleet = generate_fleet(args.vms, seed=args.seed, hosts=args.hosts)
    if args.template:  # a template to create VMs from (benchmarks/autoscaler.py)
        fleet.add_template(args.template, "east-a", cores=4, memory=8 * 1024**3)
    sim = EngineSimulator(fleet, image_lock_seconds=args.image_lock_seconds, boot_seconds=args.boot_seconds).start()
    config = sim.write_config(str(Path(args.workdir) / "ovirt-cloud.conf"))

    def statuses(description: str) -> dict[str, int]:
        """VM statuses of the VMs whose description starts with ``description``."""
        fleet.advance()
        counts: dict[str, int] = {}
        for vm in list(fleet.vms.values()):
            if vm.description.startswith(description):
                counts[vm.status] = counts.get(vm.status, 0) + 1
        return counts

    def create_group_vms(group: str, key_hex: str, n: int) -> int:
        """``n`` running VMs of node group ``group`` as the autoscaler makes them (slot names, signed marks)."""
        from ovirt_cloudprovider.core.nodegroups import signed_mark

        for i in range(n):
            name = f"{group}-{i}"
            vm = fleet.create_vm(name, cluster="east-a", template=args.template,
                                 description=signed_mark(bytes.fromhex(key_hex), group, name))
            sim.set_status(vm.id, "up")  # running group VMs: a Refresh finds nothing to repair
        return n

    def requests(path: str) -> list[dict[str, Any]]:
        return [{"method": r.method, "path": r.path, "query": r.query, "status": r.status}
                for r in sim.requests if r.path == path]

    ops = {
        "request_count": lambda path, exact=True: sim.request_count(path, exact=exact),
        "reset_requests": sim.reset_requests,
        "requests": requests,
        "set_status": lambda vm, status: sim.set_status(vm, status).status,
        "vms": lambda: [[vm.id, vm.name, vm.status] for vm in sim.fleet.vms.values()],
        "statuses": statuses,
        "create_group_vms": create_group_vms,
        "api_requests": lambda: sim.request_count("/ovirt-engine/api"),
        "stop": sim.stop,
    }
    info = {"url": sim.url, "base_url": sim.base_url, "ca_file": sim.ca_file, "username": sim.username,
            "password": sim.password, "config": config}
    return info, ops


class Joins:
    """Kubelets joining (for benchmarks/join.py): each Node is created as a kubelet with
    ``--cloud-provider=external`` registers it (the uninitialized taint, no providerID), one after another in a
    thread, and the time (time.monotonic, the same clock in every process) of its create, of the first change
    that initialized it (providerID set, the taint gone) and of the first that gave it an address other than its
    Hostname (the cloud provider's addresses: the kubelet, without ``--node-ip``, reports only its Hostname) is
    kept; a thread follows the store's changes."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.created: dict[str, float] = {}
        self.initialized: dict[str, float] = {}
        self.addressed: dict[str, float] = {}
        self.waiting: set[str] = set()
        self.lock = threading.Lock()
        self.stopped = False
        with sim.store.lock:
            self.rv = sim.store.rv
        threading.Thread(target=self._follow, name="joins", daemon=True).start()

    def join(self, kubelets: list[list[str]], lease: bool = True) -> int:
        """Start creating the nodes of ``kubelets`` ([name, systemUUID] each) in a thread; returns at once."""
        with self.lock:
            self.waiting |= {name for name, _ in kubelets}

        def create() -> None:
            for name, system_uuid in kubelets:
                self.created[name] = time.monotonic()
                self.sim.register_kubelet_node(name, system_uuid=system_uuid, lease=lease)

        threading.Thread(target=create, name="kubelets", daemon=True).start()
        return len(kubelets)

    def times(self) -> dict[str, list[float | None]]:
        """name → [created, initialized, addressed (None: not yet)] of every node joined so far."""
        with self.lock:
            return {name: [self.created.get(name), self.initialized.get(name), self.addressed.get(name)]
                    for name in self.waiting}

    def _follow(self) -> None:
        store = self.sim.store
        while not self.stopped:
            with store.lock:
                events = store.events_after(self.rv)
                if not events:
                    store.changed.wait(0.05)
                    events = store.events_after(self.rv)
                if events:
                    self.rv = events[-1].rv
            for ev in events:
                if ev.key[0] != "nodes" or ev.obj is None:
                    continue
                spec = ev.obj.get("spec") or {}
                done = spec.get("providerID") and not any(
                    t.get("key") == "node.cloudprovider.kubernetes.io/uninitialized" for t in spec.get("taints") or [])
                addresses = (ev.obj.get("status") or {}).get("addresses") or []
                addressed = any(a.get("type") != "Hostname" for a in addresses)
                name = ev.key[2]
                with self.lock:
                    if done and name in self.waiting and name not in self.initialized:
                        self.initialized[name] = time.monotonic()
                    if addressed and name in self.waiting and name not in self.addressed:
                        self.addressed[name] = time.monotonic()


def _kube_ops(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator

    sim = KubeApiSimulator(history=args.history).start()
    kubeconfig = sim.write_kubeconfig(Path(args.workdir) / "kubeconfig")
    joins = Joins(sim)

    def taints(name: str) -> list[str]:
        node = sim.get_node(name) or {}
        return [t["key"] for t in (node.get("spec") or {}).get("taints") or []]

    ops = {
        "reset_counts": sim.reset_counts,
        "writes": lambda resource=None: sim.writes(resource),
        "count": lambda verb=None, resource=None: sim.count(verb, resource),
        "node_count": lambda: len(sim.list_nodes()),
        "provider_ids": lambda: {n["metadata"]["name"]: (n.get("spec") or {}).get("providerID", "")
                                 for n in sim.list_nodes()},
        "taints": taints,
        "join": joins.join,
        "join_times": joins.times,
        "stop": sim.stop,
    }
    return {"url": sim.url, "kubeconfig": kubeconfig}, ops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("kind", choices=("engine", "kube"))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--vms", type=int, default=100)
    ap.add_argument("--hosts", type=int, default=9)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--history", type=int, default=100_000)
    ap.add_argument("--template", default="", help="engine: a template of that name in east-a")
    ap.add_argument("--image-lock-seconds", type=float, default=None, help="engine: disk copy time of a new VM")
    ap.add_argument("--boot-seconds", type=float, default=None, help="engine: powering_up time of a started VM")
    args = ap.parse_args()
    info, ops = (_engine_ops if args.kind == "engine" else _kube_ops)(args)
    out = sys.stdout
    out.write(json.dumps(info) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            value = ops[cmd.pop("op")](**cmd)
            reply = {"ok": True, "value": value}
        except Exception as exc:  # reported to the parent, which raises
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    ops["stop"]()
    return 0


class SimProcess:
    """The parent side: start ``simproc.py KIND`` and call its operations (``proc.call("op", **kw)``)."""

    def __init__(self, kind: str, workdir: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, str(HERE / "simproc.py"), kind, "--workdir", str(workdir),
                                      *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{kind} simulator did not start")
        self.info: dict[str, Any] = json.loads(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["value"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    raise SystemExit(main())
