"""The embedded default: ``ovirt-cloudprovider demo`` as a newcomer runs it, and with --keep-running for kubectl."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ovirt_cloudprovider.demo import run_demo
from tests.helpers import run_cli


def test_demo_runs_the_scenario_in_under_a_minute(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = run_cli(["demo"], timeout=90, env={"TMPDIR": str(tmp_path)})
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert elapsed < 60
    out = r.stdout
    assert "$ kubectl get nodes -o wide" in out
    header = next(line for line in out.splitlines() if line.startswith("NAME ") and "INTERNAL-IP" in line)
    assert header.split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    table = out.split("$ kubectl get nodes -o wide", 1)[1]
    # the fleet: 12 tagged VMs, worker-8 is down (no node), 'GPU_Worker 9' becomes gpu-worker-9
    for name in ("cp-1", "cp-2", "cp-3", "worker-1", "worker-7", "gpu-worker-9"):
        assert re.search(rf"^{name}\s", table, re.M), name
    assert not re.search(r"^worker-8\s", table, re.M)
    assert re.search(r"^worker-1\s.*\b10\.20\.1\.11\b.*\b203\.0\.113\.11\b", table, re.M)  # internal + external
    assert "node worker-3 got node.cloudprovider.kubernetes.io/shutdown:NoSchedule" in out
    assert "node prod-b-host1 got ovirt.org/maintenance:NoSchedule" in out
    assert "host prod-b-host1 activated again: taint removed" in out
    for host in ("prod-b-host1", "prod-b-host2"):  # the hosts beside the VMs, with their management IPs
        assert re.search(rf"^{host}\s.*\b192\.168\.\d+\.\d+\b", table, re.M), host
        assert re.search(rf"^{host}\s+ovirt://host/[0-9a-f-]{{36}}\s", out, re.M), host
    assert "node worker-6: VM absent in sweep 1/3, node kept" in out
    assert "node worker-6 deleted" in out
    final = out.rsplit("$ kubectl get nodes -o wide", 1)[1]
    assert not re.search(r"^worker-6\s", final, re.M)
    assert "demo finished" in out
    assert "Traceback" not in r.stderr
    # its working directory (a config with the simulator's password, a kubeconfig) does not outlive it
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_demo_keep_running_serves_real_kubectl() -> None:
    out = io.StringIO()
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run_demo(keep_running=True, out=out, stop=stop)), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while "kubeconfig: " not in out.getvalue():
            assert time.monotonic() < deadline and t.is_alive(), out.getvalue()
            time.sleep(0.1)
        kubeconfig = re.search(r"^kubeconfig: (\S+)$", out.getvalue(), re.M)
        assert kubeconfig
        r = subprocess.run(["kubectl", "--kubeconfig", kubeconfig.group(1), "get", "nodes", "-o", "wide"],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAME", "STATUS", "ROLES"] and "INTERNAL-IP" in lines[0]
        assert any(line.startswith("gpu-worker-9 ") for line in lines)
        r = subprocess.run(["kubectl", "--kubeconfig", kubeconfig.group(1), "get", "lease", "-n", "kube-system"],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.returncode == 0 and "demo-0" in r.stdout, r.stdout + r.stderr
    finally:
        stop.set()
        t.join(20)
    assert result == [0]
