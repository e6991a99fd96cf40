"""Helpers shared by the tests: the repository and sample paths, running the console script, writing configs,
and the one polling helper (``wait_for``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Recorded real engine answers, copied from ../shared/ovirt-samples with their provenance (samples/PROVENANCE.md).
SAMPLES = REPO / "tests" / "samples"


def run_cli(args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ovirt_cloudprovider ARGS`` as a real process; returns the completed process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ovirt_cloudprovider", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, input=input, cwd=REPO, check=False)


def write_config(path: Path, *, uri: str, password: str, ca_file: str | None, vms: str = "tag=kubernetes",
                 extra: str = "", username: str = "admin@internal", register: bool = True) -> Path:
    """An ovirt-cloud.conf; with ``register`` (placeholders are opt-in; most tests exercise them)
    ``[nodes] register = true``."""
    text = f"[connection]\nuri = {uri}\nusername = {username}\npassword = {password}\n"
    if ca_file:
        text += f"ca_file = {ca_file}\n"
    if register:
        extra = extra.replace("[nodes]\n", "[nodes]\nregister = true\n", 1) if "[nodes]\n" in extra \
            else f"{extra}\n[nodes]\nregister = true\n"
    text += f"timeout = 5\n\n[filters]\nvms = {vms}\n\n{extra}"
    path.write_text(text)
    return path


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, what: str = "the condition",
             logs: Callable[[], str] | None = None, interval: float = 0.02) -> Any:
    """The one polling helper: poll ``cond`` every ``interval`` seconds until it returns something true and
    return that; fail the test naming ``what`` (and showing ``logs()``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(interval)
    if value := cond():
        return value
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"; log:\n{logs()}" if logs else ""))


def mutate_every_way(sim: Any) -> str:
    """On a default generated fleet (``k8s-cp-0..2`` and workers): every mutation that logs an engine event,
    in a fixed order (stop, start, suspend a worker; migrate, rename, tag, untag, remove control planes).
    Returns the worker's name."""
    worker = next(v.name for v in sim.fleet.vms.values() if v.name.startswith("k8s-worker") and v.status == "up")
    sim.set_status(worker, "down")
    sim.set_status(worker, "up")
    sim.set_status(worker, "suspended")
    sim.migrate("k8s-cp-1")
    sim.rename("k8s-cp-2", "k8s-cp-2b")
    sim.tag_vm("k8s-cp-0", "backup")
    sim.untag_vm("k8s-cp-0", "backup")
    sim.remove_vm("k8s-cp-2b")
    return str(worker)


def http_get(url: str) -> tuple[int, str]:
    """GET ``url``: (status, body), or (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""
