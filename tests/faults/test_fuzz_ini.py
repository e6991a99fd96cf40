"""INI fuzz: ``OVCP_FUZZ_INI`` (default 1,000) mutated configuration files and environments, seeded by
``OVCP_FUZZ_SEED``. Every case goes through ``config.load_config`` in-process (what every command runs first):
a Config or one ConfigError line, nothing else, and never the password. A sample of the cases
(``OVCP_FUZZ_INI_CLI``, default 30) also runs as real ``check-config`` / ``discover`` processes against the
engine simulator at debug verbosity: exit code 0, 1 or 2, no traceback, no password on stdout or stderr.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ovirt_cloudprovider.config import ConfigError, load_config
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.faults.conftest import FIGURES, SECRET, sightings
from tests.faults.world import make_engine
from tests.helpers import REPO

CASES = int(os.environ.get("OVCP_FUZZ_INI", "1000"))
CLI_CASES = int(os.environ.get("OVCP_FUZZ_INI_CLI", "30"))
SEED = int(os.environ.get("OVCP_FUZZ_SEED", "20261201"))

JUNK = ["", " ", "%", "%(x)s", "%%", "\u00e9\u00e8", "\u2028", "\ufeff", "\x00", "\x1b[31m", "x" * 100000, "[", "]",
        "=", ":", "#", ";", "\\", '"', "'", "\t", "\r", "${HOME}", "-1", "1e309", "nan", "inf", "0x10", "10.5",
        "true", "no", "\U0001f600", "a/b/../c", "/dev/zero", "/dev/null", "/", "/proc/self/environ"]
KEYS = {
    "connection": ["uri", "username", "password", "password_file", "ca_file", "insecure", "timeout", "bogus"],
    "filters": ["vms", "tags"],
    "nodes": ["name_source", "internal_cidrs", "ignore_interfaces", "zone_source", "extra_labels", "register",
              "delete"],
    "controller": ["sync_interval", "page_size", "delete_after_sweeps", "max_delete_fraction", "max_delete_count",
                   "allow_cluster_removal", "leader_elect_namespace", "metrics_bind_address", "lease_duration"],
    "bogus": ["x"],
}
ENV_KEYS = ["OVIRT_URL", "OVIRT_USERNAME", "OVIRT_PASSWORD", "OVIRT_PASSWORD_FILE"]


def base_text(uri: str, ca_file: str) -> str:
    return (f"[connection]\nuri = {uri}\nusername = admin@internal\npassword = {SECRET}\nca_file = {ca_file}\n"
            "timeout = 5\n\n[filters]\nvms = tag=kubernetes\n\n[controller]\npage_size = 50\n")


def special_files(tmp: Path) -> list[str]:
    d = tmp / "dir"
    d.mkdir(exist_ok=True)
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    sock_path = tmp / "sock"
    if not sock_path.exists():
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(sock_path))
        s.close()
    big = tmp / "big"
    if not big.exists():
        big.write_bytes(b"p" * (3 << 20))
    empty = tmp / "empty"
    empty.write_text("")
    secret = tmp / "secret"
    secret.write_text(SECRET + "\n")
    return [str(d), str(fifo), str(sock_path), str(big), str(empty), str(secret), "/dev/zero", "/dev/null",
            str(tmp / "missing"), "relative/path"]


# complexity: a generator, one branch per kind of mutation
def mutate(rng: random.Random, text: str, files: list[str]) -> tuple[bytes, dict[str, str]]:  # noqa: C901
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        if kind == 0:  # a key set to junk
            section = rng.choice(list(KEYS))
            lines += [f"[{section}]", f"{rng.choice(KEYS[section])} = {rng.choice(JUNK)}"]
        elif kind == 1:  # duplicate key or section
            i = rng.randrange(len(lines))
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:  # a special file where a file is named
            lines += ["[connection]" if rng.random() < 0.5 else "",
                      f"{rng.choice(['password_file', 'ca_file'])} = {rng.choice(files)}"]
        elif kind == 3:  # drop a line
            if lines:
                lines.pop(rng.randrange(len(lines)))
        elif kind == 4:  # junk inserted in a line
            if lines:
                i = rng.randrange(len(lines))
                pos = rng.randrange(len(lines[i]) + 1)
                lines[i] = lines[i][:pos] + rng.choice(JUNK) + lines[i][pos:]
        elif kind == 5:  # a continuation / indented line
            lines.insert(rng.randrange(len(lines) + 1), "  " + rng.choice(JUNK))
        elif kind == 6:
            lines.insert(0, rng.choice(["[DEFAULT]", "key = value", "[connection", "[]", "garbage"]))
        elif kind == 7:  # the password with other characters around it
            lines.append(f"password = {rng.choice(JUNK)}{SECRET}{rng.choice(JUNK)}")
        else:  # a huge value
            lines.append(f"{rng.choice(KEYS['controller'])} = {'9' * rng.choice([20, 400, 5000])}")
    sep = rng.choice(["\n", "\r\n", "\r", "\n"])
    raw = sep.join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        raw = b"\xef\xbb\xbf" + raw
    if rng.random() < 0.05:
        raw = raw.decode("utf-8", "replace").encode("latin-1", "replace")
    env: dict[str, str] = {}
    if rng.random() < 0.3:
        for key in rng.sample(ENV_KEYS, k=rng.randint(1, 2)):
            env[key] = rng.choice([*[j for j in JUNK if "\x00" not in j], SECRET, "https://x", rng.choice(files)])
    return raw, env


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineSimulator]:
    with make_engine(vms=4) as sim:
        yield sim


def test_mutated_configuration_files(engine: EngineSimulator, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    files = special_files(tmp_path)
    text = base_text(engine.url, engine.ca_file)
    crashes: list[str] = []
    seen: list[str] = []
    outcomes = {"ok": 0, "error": 0}
    cli: list[tuple[Path, dict[str, str]]] = []
    for case in range(CASES):
        raw, env = mutate(rng, text, files)
        path = tmp_path / f"case-{case}.conf"
        path.write_bytes(raw)
        try:
            cfg = load_config(str(path), env)
            outcomes["ok"] += 1
            seen += sightings([repr(cfg), *(n.message + repr(n.fields) for n in cfg.notices)])
        except ConfigError as exc:
            outcomes["error"] += 1
            message = str(exc)
            seen += sightings([message])
            if "\n" in message:
                crashes.append(f"case {case}: a ConfigError of several lines: {message[:200]!r}")
        except Exception as exc:  # anything else is a crash of check-config
            crashes.append(f"case {case}: {exc.__class__.__name__}: {exc}"[:300])
        if case < CLI_CASES:
            cli.append((path, env))
        else:
            path.unlink()
    cli_results = run_cli_cases(cli)
    bad_exit = [r for r in cli_results if r[0] not in (0, 1, 2)]
    tracebacks = [r for r in cli_results if "Traceback" in r[1]]
    cli_seen = [s for r in cli_results for s in sightings([r[1]])]
    FIGURES.record("fuzz-ini", cases=CASES, tracebacks=len(crashes) + len(tracebacks) + len(bad_exit),
                   secret_sightings=len(seen) + len(cli_seen))
    assert not crashes, crashes[:5]
    assert not bad_exit and not tracebacks, (bad_exit + tracebacks)[:3]
    assert not seen and not cli_seen, (seen + cli_seen)[:3]
    assert outcomes["ok"] > CASES // 50 and outcomes["error"] > CASES // 50, outcomes  # both kinds are exercised
    assert {r[0] for r in cli_results} >= {0, 2} or CLI_CASES < 10, {r[0] for r in cli_results}


def run_cli_cases(cases: list[tuple[Path, dict[str, str]]]) -> list[tuple[int, str]]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "KUBECONFIG"))}

    def one(i: int, path: Path, env: dict[str, str]) -> tuple[int, str]:
        command = "check-config" if i % 2 == 0 else "discover"
        try:
            proc = subprocess.run([sys.executable, "-m", "ovirt_cloudprovider", command, "-v", "--config", str(path)],
                                  capture_output=True, text=True, env={**base_env, **env}, timeout=30, cwd=REPO,
                                  check=False, errors="replace")
        except subprocess.TimeoutExpired:
            return -1, f"{command} {path}: did not finish in 30 s"
        return proc.returncode, proc.stdout + proc.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: one(c[0], *c[1]), enumerate(cases)))


def test_the_base_configuration_is_valid(engine: EngineSimulator, tmp_path: Path) -> None:
    path = tmp_path / "base.conf"
    path.write_text(base_text(engine.url, engine.ca_file))
    assert load_config(str(path), {}).connection.password == SECRET
