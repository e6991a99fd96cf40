"""``ovirt-cloudprovider demo``: the embedded default.

Starts the loopback oVirt engine simulator with a dozen VMs in two clusters and the Kubernetes API
simulator (with its node lifecycle mode: what kube-controller-manager does to Node taints and conditions), runs the
real controller (same code as ``run``) against them while the kubelets of the running VMs and of the two hosts join
(one VM has no kubelet: it gets no node, ``[nodes] register`` being off), prints the Nodes as
``kubectl get nodes -o wide`` would, then plays a short scenario: a VM is shut down (its node gets the
shutdown taint) and a VM is removed (its node is deleted after the configured confirmations). The two hosts
of cluster prod-b are nodes too (``[filters] hosts = cluster=prod-b``); one goes to maintenance and back.
Needs no network, no root and no configuration; finishes in well under a minute.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from .app import run_controller  # the same start-up code as ``ovirt-cloudprovider run``
from .config import load_config
from .core.records import ANNOTATION_ABSENT_SWEEPS, TAINT_MAINTENANCE, TAINT_SHUTDOWN, TAINT_UNINITIALIZED
from .simulators.engine import EngineSimulator, Fleet, GuestDevice
from .simulators.kubeapi import NODES, KubeApiSimulator, table_cells

GiB = 1024**3
DELETE_AFTER = 3
DEMO_HOSTS = "cluster=prod-b"  # its two hosts become nodes beside the VMs
NO_KUBELET = "worker-5"  # runs, but its kubelet never joins
# the kubelets that join: node name, VM or host name, --node-ip (the VM's eth0 address; None: no --node-ip)
KUBELETS = (*((f"cp-{i}", f"cp-{i}", f"10.20.0.{10 + i}") for i in range(1, 4)),
            *((f"worker-{i}", f"worker-{i}", f"10.20.1.{10 + i}") for i in range(1, 7) if f"worker-{i}" != NO_KUBELET),
            ("worker-7", "worker-7", None), ("gpu-worker-9", "GPU_Worker 9", "10.20.1.29"),
            ("prod-b-host1", "prod-b-host1", None), ("prod-b-host2", "prod-b-host2", None))


def demo_fleet() -> Fleet:
    """Twelve Kubernetes VMs in two clusters of one data center, plus two VMs the filter ignores."""
    f = Fleet(seed=42)
    dc = f.add_datacenter("dc-prague", description="Prague data center")
    for cluster in ("prod-a", "prod-b"):
        f.add_cluster(cluster, dc.id)
        for h in (1, 2):
            f.add_host(f"{cluster}-host{h}", cluster)
    k8s = f.add_tag("kubernetes", description="Kubernetes nodes")
    f.add_tag("k8s-control-plane", parent=k8s.name)
    f.add_tag("k8s-worker", parent=k8s.name)
    f.add_instance_type("Large", sockets=2, cores=2, memory=8 * GiB)

    macs = iter(range(1, 256))

    def dev(name: str, *ips: str) -> GuestDevice:
        return GuestDevice(name, f"56:6f:1a:2b:00:{next(macs):02x}", list(ips))

    for i in range(1, 4):  # control plane: dual-stack
        f.add_vm(f"cp-{i}", cluster="prod-a", tags=["k8s-control-plane"], cores=4, memory=8 * GiB,
                 devices=[dev("eth0", f"10.20.0.{10 + i}", f"2001:db8:20::{10 + i:x}", f"fe80::1:{i}"),
                          dev("lo", "127.0.0.1", "::1")], event=False)
    for i in range(1, 7):  # workers, some with container interfaces the controller ignores
        cluster = "prod-a" if i % 2 else "prod-b"
        devices = [dev("eth0", f"10.20.1.{10 + i}"), dev("docker0", "172.17.0.1"),
                   dev(f"cali{i:02d}ab", f"192.168.{i}.1")]
        if i <= 2:
            devices.append(dev("eth1", f"203.0.113.{10 + i}"))  # a public address: ExternalIP
        f.add_vm(f"worker-{i}", cluster=cluster, tags=["k8s-worker"], instance_type="Large" if i == 1 else None,
                 devices=devices, event=False)
    f.add_vm("worker-7", cluster="prod-b", tags=["k8s-worker"], guest_agent=False, event=False)  # no agent
    f.add_vm("worker-8", cluster="prod-b", tags=["k8s-worker"], status="down", event=False)
    f.add_vm("GPU_Worker 9", cluster="prod-b", tags=["k8s-worker"], devices=[dev("eth0", "10.20.1.29")],
             event=False)  # not a valid node name as it is: becomes gpu-worker-9
    f.add_vm("db-1", cluster="prod-a", tags=[], event=False)  # not tagged: not a node
    f.add_vm("legacy-app", cluster="prod-b", tags=[], status="down", event=False)
    return f


class _Out:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:5.1f}s] {text}\n")
        self.out.flush()

    def block(self, text: str) -> None:
        self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()


def nodes_table(kube: KubeApiSimulator) -> str:
    """The nodes as ``kubectl get nodes -o wide`` prints them (same columns and cells as the server's Table)."""
    now = dt.datetime.now(dt.timezone.utc)
    header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
              "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    rows = [header] + [[str(c) for c in table_cells(NODES, n, now)]
                       for n in sorted(kube.list_nodes(), key=lambda n: n["metadata"]["name"])]
    return _columns(rows)


def cloud_table(kube: KubeApiSimulator) -> str:
    """What the cloud provider set: providerID, zone, region, instance type, taints."""
    rows = [["NAME", "PROVIDER-ID", "ZONE", "REGION", "INSTANCE-TYPE", "TAINTS"]]
    for n in sorted(kube.list_nodes(), key=lambda n: n["metadata"]["name"]):
        labels = n["metadata"].get("labels") or {}
        taints = ",".join(f"{t['key'].rsplit('/', 1)[-1]}:{t['effect']}" for t in n["spec"].get("taints") or [])
        rows.append([n["metadata"]["name"], n["spec"].get("providerID", "<none>"),
                     labels.get("topology.kubernetes.io/zone", "<none>"),
                     labels.get("topology.kubernetes.io/region", "<none>"),
                     labels.get("node.kubernetes.io/instance-type", "<none>"), taints or "<none>"])
    return _columns(rows)


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"demo: timed out after {timeout:.0f}s waiting for {what}")


def _node(kube: KubeApiSimulator, name: str) -> dict[str, Any] | None:
    return kube.get_node(name)


def _has_taint(node: dict[str, Any] | None, key: str) -> bool:
    return bool(node) and any(t.get("key") == key for t in (node or {}).get("spec", {}).get("taints") or [])


def _join_kubelets(engine: EngineSimulator, kube: KubeApiSimulator, o: _Out) -> None:
    """The kubelets of the running VMs (but one) and of the two hosts register, and wait to be initialized."""
    hosts = {h.name: h for h in engine.fleet.hosts.values()}
    for kubelet, machine, ip in KUBELETS:
        uuid = hosts[machine].system_uuid if machine in hosts else engine.fleet.vm(machine).id.upper()
        kube.register_kubelet_node(kubelet, internal_ip=ip, system_uuid=uuid)
    o.step(f"{len(KUBELETS)} kubelets joined (--cloud-provider=external): their nodes wait with the "
           f"{TAINT_UNINITIALIZED} taint until the controller initializes them; VM {NO_KUBELET} runs but its "
           "kubelet never joins")
    for kubelet, _, _ in KUBELETS:
        _wait(lambda n=kubelet: not _has_taint(_node(kube, n), TAINT_UNINITIALIZED), 15,  # type: ignore[misc]
              f"{kubelet} to be initialized")


def run_demo(*, keep_running: bool = False, out: TextIO | None = None,
             stop: threading.Event | None = None) -> int:
    """Run the demo; returns the exit status. ``stop`` ends a ``keep_running`` demo (tests)."""
    o = _Out(out or sys.stdout)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger().setLevel(logging.WARNING)  # progress lines below; -v shows the controller's logs
    stop = stop or threading.Event()
    controller: threading.Thread | None = None
    engine: EngineSimulator | None = None
    kube: KubeApiSimulator | None = None
    workdir: Path | None = None
    serving: list[tuple[str, int]] = []  # the metrics and health port, once bound (port 0: a free one)
    try:  # everything below is undone in `finally`, also when a signal (Ctrl-C, SIGTERM) interrupts it anywhere
        workdir = Path(tempfile.mkdtemp(prefix="ovirt-cloudprovider-demo-"))
        o.step("starting the oVirt engine simulator (HTTPS, 127.0.0.1) with 14 VMs in clusters prod-a and prod-b")
        engine = EngineSimulator(demo_fleet()).start()
        o.step("starting the Kubernetes API simulator (127.0.0.1)")
        kube = KubeApiSimulator().start()
        kube.start_node_lifecycle()  # kube-controller-manager's node lifecycle controller, real grace periods
        config_path = engine.write_config(str(workdir / "ovirt-cloud.conf"))
        text = Path(config_path).read_text()
        Path(config_path).write_text(text.replace("[filters]\n", f"[filters]\nhosts = {DEMO_HOSTS}\n", 1))
        with open(config_path, "a") as fh:
            fh.write("\n[nodes]\n# public addresses are ExternalIP; everything else is InternalIP\n"
                     "external_cidrs = 203.0.113.0/24\n")
        kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
        cfg = load_config(config_path)
        # Demo pace: the file format asks for sync_interval >= 5 s; the demo sweeps every 2 s.
        cfg = replace(cfg, controller=replace(cfg.controller, sync_interval=2.0, event_poll_interval=0.5,
                                              delete_after_sweeps=DELETE_AFTER, leader_elect=True,
                                              leader_elect_namespace="kube-system",
                                              metrics_bind_address="127.0.0.1:0", lease_duration=4.0,
                                              renew_deadline=3.0, retry_period=0.5))
        o.step(f"config: {config_path}  (filter: tag=kubernetes; hosts: {DEMO_HOSTS}; deletion after "
               f"{DELETE_AFTER} sweeps)")
        o.step("starting the controller (leader election on, sweep every 2 s, engine events every 0.5 s)")
        controller = threading.Thread(target=run_controller, kwargs={
            "config": cfg, "kubeconfig": kubeconfig, "stop": stop, "identity": "demo-0",
            "on_serving": lambda host, port: serving.append((host, port))}, name="demo-controller", daemon=True)
        controller.start()
        _join_kubelets(engine, kube, o)
        _wait(lambda: _has_taint(_node(kube, "worker-8"), TAINT_SHUTDOWN) or _node(kube, "worker-8") is None, 10,
              "the first sweep")
        time.sleep(0.5)
        o.step(f"first sweep done: {len(kube.list_nodes())} nodes\n")
        o.block("$ kubectl get nodes -o wide")
        o.block(nodes_table(kube) + "\n")
        o.block(cloud_table(kube) + "\n")
        o.block("  - every node was registered by its kubelet and initialized by the controller (providerID, "
                "addresses, labels; uninitialized taint removed)\n"
                "  - 'GPU_Worker 9' is not a valid node name: its node is gpu-worker-9\n"
                "  - worker-7 has no guest agent: its node keeps only the kubelet's Hostname address\n"
                "  - worker-8 is down and has no kubelet: no node\n"
                f"  - {NO_KUBELET} runs but no kubelet joined: no node. [nodes] register is off by default; with "
                "register = true it would get a placeholder node (Ready=False, so kube-controller-manager keeps "
                "it not-ready:NoSchedule, then unreachable after its grace period), and DaemonSet pods that "
                "tolerate every taint would be bound to it and never run\n"
                "  - docker0/cali*/lo/link-local addresses are ignored; 203.0.113.x is ExternalIP\n"
                "  - prod-b-host1 and prod-b-host2 are the oVirt hosts of cluster prod-b (providerID "
                "ovirt://host/<id>, their management IP)\n")

        o.step("scenario 1: putting host prod-b-host1 into maintenance in oVirt")
        t0 = time.monotonic()
        engine.set_host_status("prod-b-host1", "maintenance")
        _wait(lambda: _has_taint(_node(kube, "prod-b-host1"), TAINT_MAINTENANCE), 15, "the maintenance taint")
        o.step(f"node prod-b-host1 got {TAINT_MAINTENANCE}:NoSchedule {time.monotonic() - t0:.1f}s after the "
               "engine event")
        t0 = time.monotonic()
        engine.set_host_status("prod-b-host1", "up")
        _wait(lambda: not _has_taint(_node(kube, "prod-b-host1"), TAINT_MAINTENANCE), 15, "the taint removal")
        o.step(f"host prod-b-host1 activated again: taint removed after {time.monotonic() - t0:.1f}s\n")

        o.step("scenario 2: shutting down VM worker-3 in oVirt")
        t0 = time.monotonic()
        engine.set_status("worker-3", "down")
        _wait(lambda: _has_taint(_node(kube, "worker-3"), TAINT_SHUTDOWN), 15, "the shutdown taint")
        o.step(f"node worker-3 got {TAINT_SHUTDOWN}:NoSchedule {time.monotonic() - t0:.1f}s after the engine "
               "event")
        t0 = time.monotonic()
        engine.set_status("worker-3", "up")
        _wait(lambda: not _has_taint(_node(kube, "worker-3"), TAINT_SHUTDOWN), 15, "the taint removal")
        o.step(f"VM worker-3 started again: taint removed after {time.monotonic() - t0:.1f}s\n")

        o.step("scenario 3: removing VM worker-6 from oVirt")
        t0 = time.monotonic()
        engine.remove_vm("worker-6")
        seen: set[str] = set()
        while True:
            node = _node(kube, "worker-6")
            if node is None:
                o.step(f"node worker-6 deleted {time.monotonic() - t0:.1f}s after the VM was removed "
                       f"(absent from {DELETE_AFTER} consecutive successful sweeps)")
                break
            count = (node["metadata"].get("annotations") or {}).get(ANNOTATION_ABSENT_SWEEPS)
            if count and count not in seen:
                seen.add(count)
                o.step(f"node worker-6: VM absent in sweep {count}/{DELETE_AFTER}, node kept")
            if time.monotonic() - t0 > 30:
                raise TimeoutError("demo: node worker-6 was not deleted within 30 s")
            time.sleep(0.05)
        reasons = sorted({e.get("reason", "") for e in kube.list_events()})
        o.step(f"events recorded on nodes: {', '.join(r for r in reasons if r)}\n")
        o.block("$ kubectl get nodes -o wide")
        o.block(nodes_table(kube) + "\n")
        if keep_running:
            host, port = serving[0]  # bound before the controller started its first sweep
            base = f"http://{host}:{port}"
            o.block("The simulators and the controller keep running. Try, in another terminal:\n"
                    f"  kubectl --kubeconfig {kubeconfig} get nodes -o wide\n"
                    f"  kubectl --kubeconfig {kubeconfig} describe node worker-3\n"
                    f"  kubectl --kubeconfig {kubeconfig} get events -A\n"
                    f"  kubectl --kubeconfig {kubeconfig} get lease -n kube-system\n"
                    f"  curl -s {base}/metrics | grep ^ovirt_cloudprovider_\n"
                    f"kubeconfig: {kubeconfig}\nengine:     {engine.url} (CA {engine.ca_file})\n"
                    f"metrics:    {base}/metrics\nhealth:     {base}/healthz\nreadiness:  {base}/readyz\n"
                    "Press Ctrl-C to stop (or send SIGTERM).")
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
        o.step("demo finished")
        return 0
    except TimeoutError as exc:
        sys.stderr.write(f"ovirt-cloudprovider: error: {exc}\n")
        return 1
    finally:
        stop.set()
        if controller is not None:
            controller.join(timeout=10)
        if kube is not None:
            kube.stop()
        if engine is not None:
            engine.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)  # a config with the simulator's password, a kubeconfig
