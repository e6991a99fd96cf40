"""The image's virtualenv, built as the Containerfile's build stage builds it, without a container engine:
a virtualenv without pip, requirements.lock installed with hashes required, the project without dependencies
(the build context .containerignore lets through: no simulators), then the Containerfile's own cuts (its RUN
that removes kubernetes/aio, run on this virtualenv). Prints ``key=value`` lines: ``venv_mb`` before and after
the cuts (apparent size of the files, MB = 10^6 bytes), the largest parts of site-packages after them, and
what the kept byte code saves at every start: CPU time and peak memory of the controller's imports with the byte
code and without it (the root filesystem is read-only, so Python cannot cache what it compiles).

It measures the virtualenv only: the image adds the base image (python:3.11-slim-bookworm) and libxml2, which
need a container engine to measure. The interpreter is this machine's, of the image's Python minor version.

    python benchmarks/image_size.py [--write-results]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from record import record  # benchmarks/record.py: --write-results

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000
IMPORTS = ("import ovirtsdk4.xml, pycurl, lxml.etree, kubernetes, prometheus_client, ovirt_cloudprovider.cli, "
           "ovirt_cloudprovider.app, ovirt_cloudprovider.kube.raw")
PROBE = ("import resource, time\n" + IMPORTS + "\n"
         "print(time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def trim_step() -> str:
    """The Containerfile's RUN that cuts what the runtime never loads (continuations joined, comments dropped)."""
    text = (REPO / "Containerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    (step,) = [line[4:] for line in joined.splitlines() if line.startswith("RUN ") and "kubernetes/aio" in line]
    return step


def build_context(root: Path) -> Path:
    """pyproject.toml, README.md and the package without the simulators, as .containerignore lets them through."""
    ctx = root / "src"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, ctx / name)
    shutil.copytree(REPO / "ovirt_cloudprovider", ctx / "ovirt_cloudprovider",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "simulators"))
    return ctx


def parts(site: Path) -> dict[str, int]:
    """Bytes per distribution-ish part of site-packages: a package directory with its *.libs, metadata summed."""
    found: dict[str, int] = {}
    for entry in site.iterdir():
        name = entry.name
        if name.endswith((".dist-info", ".pth")) or name == "__pycache__":
            key = "metadata (*.dist-info, *.pth)"
        else:
            key = re.sub(r"\.libs$", "", name.split(".")[0])
        found[key] = found.get(key, 0) + size(entry)
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def startup(python: str, cwd: Path, runs: int = 3) -> tuple[float, float]:
    """Median CPU seconds and peak MB (VmHWM, MiB) of the imports, no byte code written."""
    cpu, rss = [], []
    for _ in range(runs):
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120,
                             cwd=cwd, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.split()
        cpu.append(float(out[0]))
        rss.append(float(out[1]))
    return sorted(cpu)[runs // 2], sorted(rss)[runs // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--write-results", action="store_true", help="also write benchmarks/results/image.json")
    ap.add_argument("--top", type=int, default=8, help="largest parts listed")
    args = ap.parse_args()
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_ONLY_BINARY": "pycurl", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        target = root / "venv"
        venv.EnvBuilder(with_pip=False).create(target)
        python = str(target / "bin" / "python")
        pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
        subprocess.run([*pip, "--require-hashes", "-r", str(REPO / "requirements.lock")], env=env, check=True,
                       timeout=900)
        subprocess.run([*pip, "--no-deps", str(build_context(root))], env=env, check=True, timeout=300)
        (site,) = (target / "lib").glob("python3.*/site-packages")
        before = size(target)
        subprocess.run(["sh", "-ec", trim_step().replace("/opt/venv", str(target))], check=True, timeout=300)
        after = size(target)
        largest = list(parts(site).items())[: args.top]
        with_bytecode = startup(python, root)
        for cache in list(target.rglob("__pycache__")):
            shutil.rmtree(cache)
        without_bytecode = startup(python, root)
    figures: dict[str, object] = {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "venv_mb_before_cuts": round(before / MB, 1),
        "venv_mb": round(after / MB, 1),
        "cut_mb": round((before - after) / MB, 1),
        "largest_parts_mb": {name: round(n / MB, 1) for name, n in largest},
        "import_cpu_s": round(with_bytecode[0], 2),
        "import_peak_rss_mib": round(with_bytecode[1], 1),
        "import_cpu_s_without_bytecode": round(without_bytecode[0], 2),
        "import_peak_rss_mib_without_bytecode": round(without_bytecode[1], 1),
    }
    for key, value in figures.items():
        print(f"{key}={value}", flush=True)
    if args.write_results:
        record("image", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
