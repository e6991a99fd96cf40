"""The embedded default: ``ovirt-cloudprovider demo`` as a newcomer runs it, and with --keep-running for kubectl."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovirt_cloudprovider.demo import run_demo
from tests.helpers import REPO, http_get, run_cli, wait_for


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
    assert "kubelets joined (--cloud-provider=external)" in out
    assert not re.search(r"^worker-5\s", table, re.M)  # it runs, but no kubelet joined and register is off
    assert "worker-5 runs but no kubelet joined: no node" in out
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


class _Demo:
    """``ovirt-cloudprovider demo`` as a real process (its temporary directory under ``tmp``), its stdout read as
    it comes."""

    def __init__(self, tmp: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG", "PROMETHEUS_"))}
        env["TMPDIR"] = str(tmp)
        self.proc = subprocess.Popen([sys.executable, "-m", "ovirt_cloudprovider", "demo", *args], cwd=REPO,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 60) -> str:
        """The first line with ``text``, once printed; fails the test when the demo exits without it."""
        def seen() -> str | None:
            line = next((ln for ln in self.lines if text in ln), None)
            assert line is not None or self.proc.poll() is None, f"the demo exited:\n{self.out}"
            return line
        return str(wait_for(seen, timeout, f"a line with {text!r}", lambda: self.out))

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._reader.join(5)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def demo_dir(tmp_path: Path) -> Iterator[Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield tmp


def test_demo_keep_running_prints_its_urls_and_sigterm_cleans_up(demo_dir: Path) -> None:
    demo = _Demo(demo_dir, "--keep-running")
    try:
        demo.wait_for_line("Press Ctrl-C")
        urls = dict(re.findall(r"^(metrics|health|readiness): +(http://127\.0\.0\.1:\d+/\w+)$", demo.out, re.M))
        assert set(urls) == {"metrics", "health", "readiness"}, demo.out
        assert urls["health"].endswith("/healthz") and urls["readiness"].endswith("/readyz")
        for what in ("health", "readiness"):
            assert http_get(urls[what])[0] == 200, what
        status, body = http_get(urls["metrics"])
        assert status == 200 and "ovirt_cloudprovider_syncs_total{result=\"success\"}" in body
        # prometheus_client's *_created series only when asked for (PROMETHEUS_DISABLE_CREATED_SERIES=false)
        assert not [ln for ln in body.splitlines() if "_created" in ln]
        workdirs = [p.name for p in demo_dir.iterdir()]
        assert len(workdirs) == 1 and workdirs[0].startswith("ovirt-cloudprovider-demo-")
        code, err = demo.stop(signal.SIGTERM)
    finally:
        demo.kill()
    assert code == 0, err
    assert "demo finished" in demo.out and "Traceback" not in err
    assert list(demo_dir.iterdir()) == []  # the kubeconfig and the config with the password are gone


def test_demo_stopped_by_sigterm_mid_scenario_cleans_up(demo_dir: Path) -> None:
    demo = _Demo(demo_dir)
    try:
        demo.wait_for_line("starting the controller")
        code, err = demo.stop(signal.SIGTERM)
    finally:
        demo.kill()
    assert code == 143, err  # 128 + SIGTERM, as a shell reports it
    assert "Traceback" not in err and "error" not in err.lower(), err
    assert list(demo_dir.iterdir()) == []
