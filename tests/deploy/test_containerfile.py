"""The Containerfile, without a container engine (CI has none).

What can be checked without building the image: its structure (two stages on the same pinned base image, the
SDK's build dependencies only in the build stage, a numeric non-root user that matches the Deployment, the
console script as entrypoint with a command line the CLI accepts), that every file it copies exists and is in
the build context that .containerignore lets through, and the build stage's own step on exactly that context:
``pip wheel`` of the project, then an install of the wheel into a clean virtualenv whose console script must
resolve, and which holds neither the simulators nor a private key (test doubles stay out of the production
image). The runtime dependencies come from requirements.lock, installed with hashes required: the lock pins every
dependency with hashes and agrees with pyproject.toml. The cuts of the build stage keep what the runtime imports.
The full dependency install (which compiles the oVirt SDK) is opt-in: OVCP_TEST_IMAGE_DEPS=1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ovirt_cloudprovider.cli import build_parser
from ovirt_cloudprovider.core.settings import DEFAULT_CONFIG_PATH
from tests.helpers import REPO

CONTAINERFILE = REPO / "Containerfile"
LOCK = REPO / "requirements.lock"
METRICS_PORT = 10270
SIMULATORS = "ovirt_cloudprovider/simulators"  # test doubles with a TLS private key: never in the image


def in_the_image(rel: str) -> bool:
    """A file of the package that the image must contain (everything but the simulators)."""
    return not (rel == SIMULATORS or rel.startswith(SIMULATORS + "/"))


def pyproject_value(table: str, key: str) -> str:
    """A string value from pyproject.toml (tomllib is 3.11+, the project supports 3.10)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    body = re.search(rf"^\[{re.escape(table)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert body, f"pyproject.toml has no [{table}]"
    value = re.search(rf'^"?{re.escape(key)}"?\s*=\s*(?:\{{\s*text\s*=\s*)?"([^"]*)"', body.group(1), re.M)
    assert value, f"pyproject.toml [{table}] has no {key}"
    return value.group(1)


SCRIPT = "ovirt-cloudprovider"
# The autoscaler's protocol compiled as the service does at start (grpc_tools and its bundled protos).
AUTOSCALER_SMOKE = "from ovirt_cloudprovider.autoscaler.protocol import load; load()"
ENTRY_POINT = pyproject_value("project.scripts", SCRIPT)


# --- a small Containerfile parser --------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # the rest of the logical line, continuations joined

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """``--from=build /a /b`` → ({"from": "build"}, ["/a", "/b"])."""
        flags: dict[str, str] = {}
        words = shlex.split(self.args)
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> list[str]:
    """Comment lines dropped (also inside continuations, as BuildKit does), backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    assert not current.strip(), "the Containerfile ends inside a continuation"
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, value = args.partition("=")
            global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return global_args, stages


def labels(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in stage.all("LABEL"):
        for word in shlex.split(instruction.args):
            key, _, value = word.partition("=")
            found[key] = value
    return found


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line, split at ``&&``, ``||``, ``;`` and ``|`` outside quotes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def apt_packages(stage: Stage) -> set[str]:
    packages: set[str] = set()
    for instruction in stage.all("RUN"):
        for words in shell_commands(instruction.args):
            if words[:2] == ["apt-get", "install"]:
                packages.update(w for w in words[2:] if not w.startswith("-"))
    return packages


def test_shell_commands_respect_quotes() -> None:
    assert shell_commands('a -y x && python -c "import a; a.b()" ; b "c && d"|e') == [
        ["a", "-y", "x"], ["python", "-c", "import a; a.b()"], ["b", "c && d"], ["e"]]


# --- .containerignore semantics (moby/patternmatcher) ------------------------------------------------------

def ignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = os.path.normpath(pattern).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def is_ignored(relpath: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent directories wins."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in patterns:
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def context_files(source: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> list[str]:
    """The files under a COPY source that reach the builder (untracked junk included, as in a real build)."""
    path = REPO / source
    candidates = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    rels = (p.relative_to(REPO).as_posix() for p in candidates)
    return sorted(rel for rel in rels if not is_ignored(rel, patterns))


# --- fixtures ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    return parse(CONTAINERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stages(parsed: tuple[dict[str, str], list[Stage]]) -> list[Stage]:
    return parsed[1]


@pytest.fixture(scope="module")
def patterns() -> list[tuple[bool, re.Pattern[str]]]:
    return ignore_patterns((REPO / ".containerignore").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "deployment.yaml").read_text(encoding="utf-8"))
    assert doc["kind"] == "Deployment"
    return doc


def copied_sources(stages: list[Stage]) -> list[str]:
    """Sources of every COPY/ADD from the build context (not --from another stage)."""
    sources: list[str] = []
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            flags, words = instruction.flags_and_words()
            if "from" not in flags:
                sources.extend(w.rstrip("/") for w in words[:-1])
    return sources


# --- structure ---------------------------------------------------------------------------------------------

def test_parser_handles_continuations_and_comments() -> None:
    text = 'FROM a:1 AS x\nRUN one \\\n  # a comment inside\n  && two\n\nENTRYPOINT ["p"]\n'
    _, (stage,) = parse(text)
    assert stage.name == "x"
    assert [i.keyword for i in stage.instructions] == ["RUN", "ENTRYPOINT"]
    assert stage.instructions[0].args == "one && two"


def test_two_stages_on_the_same_pinned_base(stages: list[Stage]) -> None:
    assert len(stages) == 2
    build, runtime = stages
    assert build.name == "build"
    for stage in stages:
        assert "$" not in stage.image, f"FROM {stage.image}: resolve build arguments, pin the image"
        registry, _, rest = stage.image.partition("/")
        assert "." in registry, f"FROM {stage.image}: fully qualified (podman has no default registry)"
        repository, _, tag = rest.rpartition(":")
        assert repository and tag and tag != "latest", f"FROM {stage.image}: pin a tag"
    # The virtualenv is copied from one to the other: its interpreter symlink must hold in both.
    assert build.image == runtime.image
    assert re.search(r"python:3\.\d+-slim-\w+$", runtime.image)


def test_build_dependencies_stay_in_the_build_stage(stages: list[Stage]) -> None:
    build, runtime = stages
    assert {"gcc", "libxml2-dev"} <= apt_packages(build)
    runtime_packages = apt_packages(runtime)
    assert "libxml2" in runtime_packages
    assert not {p for p in runtime_packages if p.endswith("-dev") or p in ("gcc", "g++", "make")}
    for stage in stages:
        for run in stage.all("RUN"):
            if "apt-get install" in run.args:
                assert "--no-install-recommends" in run.args
                assert "rm -rf /var/lib/apt/lists" in run.args, "apt lists must not stay in a layer"


def test_runtime_stage_gets_the_virtualenv_only(stages: list[Stage]) -> None:
    build, runtime = stages
    assert any("python -m venv --without-pip /opt/venv" in r.args for r in build.all("RUN"))
    assert any(re.search(r"pip --python /opt/venv/bin/python install\b", r.args) for r in build.all("RUN"))
    copies = [i.flags_and_words() for i in runtime.all("COPY") + runtime.all("ADD")]
    assert copies == [({"from": "build"}, ["/opt/venv", "/opt/venv"])]
    env = " ".join(i.args for i in runtime.all("ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only in the pod


# --- the lock of the runtime dependencies --------------------------------------------------------------------

@dataclass
class Locked:
    version: str
    hashes: list[str]
    via: list[str]  # what requires it: lock entries, or "ovirt-cloudprovider (pyproject.toml)"


def parse_lock(text: str) -> dict[str, Locked]:
    """pip-compile's output: ``name==version \\`` lines, ``--hash=sha256:...`` continuations, ``# via`` comments."""
    entries: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and current is None):
            continue
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;[^\\]*)?\\?$", raw):
            current = Locked(m.group(2), [], [])
            entries[canonicalize_name(m.group(1))] = current
            in_via = False
        elif current is not None and (m := re.match(r"^--hash=sha256:([0-9a-f]{64})\s*\\?$", line)):
            current.hashes.append(m.group(1))
        elif current is not None and (m := re.match(r"^#\s*via(?:\s+(.+))?$", line)):
            in_via = True
            if m.group(1):
                current.via.append(m.group(1).strip())
        elif current is not None and in_via and line.startswith("#"):
            current.via.append(line.lstrip("#").strip())
        else:
            raise AssertionError(f"requirements.lock: unexpected line {raw!r}")
    return entries


IMAGE_EXTRAS = ("autoscaler",)  # the extras the image installs (the autoscaler component runs from it too)


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's [project] dependencies (a regex: tomllib is 3.11+, the project supports 3.10)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    body = re.search(r"^\[project\]\n.*?^dependencies = \[(.*?)^\]", text, re.M | re.S)
    assert body, "pyproject.toml has no [project] dependencies"
    return [Requirement(r) for r in re.findall(r'"([^"]+)"', body.group(1))]


def extra_requirements(extra: str) -> list[Requirement]:
    """pyproject.toml's [project.optional-dependencies] ``extra`` (comments stripped)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert table, "pyproject.toml has no [project.optional-dependencies]"
    body = re.search(rf"^{re.escape(extra)} = \[(.*?)^\]", table.group(1), re.M | re.S)
    assert body, f"pyproject.toml has no extra {extra!r}"
    lines = (line.split("#", 1)[0] for line in body.group(1).splitlines())
    return [Requirement(r) for line in lines for r in re.findall(r'"([^"]+)"', line)]


def image_requirements() -> list[Requirement]:
    """What the image installs from the lock: the dependencies and the extras of :data:`IMAGE_EXTRAS`."""
    return runtime_requirements() + [r for extra in IMAGE_EXTRAS for r in extra_requirements(extra)]


@pytest.fixture(scope="module")
def lock() -> dict[str, Locked]:
    return parse_lock(LOCK.read_text(encoding="utf-8"))


def test_lock_parser_reads_pip_compile_output() -> None:
    text = ("#\n# header\n#\nfoo-bar==1.2 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64
            + "\n    # via\n    #   baz\n    #   ovirt-cloudprovider (pyproject.toml)\nbaz==2.0 \\\n"
            "    --hash=sha256:" + "c" * 64 + "\n    # via ovirt-cloudprovider (pyproject.toml)\n")
    parsed = parse_lock(text)
    assert parsed["foo-bar"] == Locked("1.2", ["a" * 64, "b" * 64], ["baz", "ovirt-cloudprovider (pyproject.toml)"])
    assert parsed["baz"] == Locked("2.0", ["c" * 64], ["ovirt-cloudprovider (pyproject.toml)"])
    with pytest.raises(AssertionError, match="unexpected line"):
        parse_lock("foo>=1.2\n")


def test_lock_pins_every_dependency_with_hashes(lock: dict[str, Locked]) -> None:
    assert lock, "requirements.lock is empty"
    for name, entry in lock.items():
        assert entry.hashes, f"requirements.lock: {name}=={entry.version} has no --hash"
        assert entry.via, f"requirements.lock: {name} says nothing requires it"
    text = LOCK.read_text(encoding="utf-8")
    assert "--generate-hashes" in text.split("\n\n")[0] or "--generate-hashes" in text[:600], \
        "requirements.lock: not generated with --generate-hashes (README: the refresh command)"
    assert not re.search(r"^-[-a-z]", text, re.M), "requirements.lock: no options (index URLs, find-links)"


def test_extra_requirements_reads_the_autoscaler_extra() -> None:
    names = {canonicalize_name(r.name) for r in extra_requirements("autoscaler")}
    assert names == {"grpcio", "grpcio-tools", "protobuf"}
    with pytest.raises(AssertionError, match="no extra"):
        extra_requirements("nope")


def test_lock_agrees_with_pyproject(lock: dict[str, Locked]) -> None:
    """Every runtime dependency, and every one of the image's extras (``autoscaler``), is locked at a version its
    specifier allows; nothing else is at top level; every other entry is required by a locked one."""
    header = LOCK.read_text(encoding="utf-8")[:600]
    for extra in IMAGE_EXTRAS:
        assert f"--extra={extra}" in header, f"requirements.lock: not compiled with --extra={extra} (README)"
    wanted: dict[str, Requirement] = {}
    for r in image_requirements():
        key = str(canonicalize_name(r.name))
        if key in wanted:  # the same package in two places: both specifiers apply
            r = Requirement(f"{r.name}{wanted[key].specifier & r.specifier}")
        wanted[key] = r
    for name, requirement in wanted.items():
        assert name in lock, f"requirements.lock lacks {requirement} (refresh it: README)"
        assert requirement.specifier.contains(lock[name].version, prereleases=True), \
            f"requirements.lock: {name}=={lock[name].version} does not satisfy {requirement}"
    top = {name for name, entry in lock.items() if any("(pyproject.toml)" in v for v in entry.via)}
    assert top == set(wanted), f"requirements.lock's top level differs from pyproject.toml: {sorted(top ^ set(wanted))}"
    for other, entry in lock.items():
        if other not in wanted:
            parents = {canonicalize_name(v.split()[0]) for v in entry.via}
            assert parents & set(lock), f"requirements.lock: {other} is required by nothing locked ({entry.via})"


def test_lock_is_resolved_for_the_images_python(lock: dict[str, Locked], stages: list[Stage]) -> None:
    header = LOCK.read_text(encoding="utf-8")[:400]
    said = re.search(r"with Python (3\.\d+)", header)
    image = re.search(r"python:(3\.\d+)-", stages[-1].image)
    assert said and image and said.group(1) == image.group(1), "requirements.lock: resolve it with the image's Python"


def test_image_installs_the_lock_with_hashes_required(stages: list[Stage]) -> None:
    build = stages[0]
    steps = [i for i in build.instructions if i.keyword in ("COPY", "RUN")]
    installs = [(n, i) for n, i in enumerate(steps) if i.keyword == "RUN" and " install " in f" {i.args} "]
    lock_copy = next(n for n, i in enumerate(steps) if i.keyword == "COPY" and LOCK.name in i.args.split())
    (locked,) = [(n, i) for n, i in installs if f"-r {LOCK.name}" in i.args]
    assert "--require-hashes" in locked[1].args and locked[0] > lock_copy
    for n, install in installs:
        if install is not locked[1] and "pip" in install.args:
            assert "--no-deps" in install.args and n > locked[0], \
                f"RUN {install.args}: after the lock, and --no-deps (nothing unpinned)"
    assert any("pip --python /opt/venv/bin/python check" in i.args for _, i in installs)


def test_runs_as_the_deployments_non_root_user(stages: list[Stage], deployment: dict[str, Any]) -> None:
    user = stages[-1].last("USER")
    assert user is not None, "the image must not run as root"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (runAsNonRoot cannot check a name)"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    if gid:
        assert pod["securityContext"]["runAsGroup"] == int(gid)
    # USER comes after every RUN: nothing in the final image is set up by a later root step
    keywords = [i.keyword for i in stages[-1].instructions]
    assert "RUN" not in keywords[keywords.index("USER"):]


def test_entrypoint_is_the_console_script_and_cmd_parses(stages: list[Stage]) -> None:
    runtime = stages[-1]
    entrypoint, cmd = runtime.last("ENTRYPOINT"), runtime.last("CMD")
    assert entrypoint is not None and cmd is not None
    assert entrypoint.exec_form() == [SCRIPT] == ["ovirt-cloudprovider"]
    args = build_parser().parse_args(cmd.exec_form())
    assert args.command == "run"
    assert args.config == DEFAULT_CONFIG_PATH


def test_metrics_port_and_labels(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    runtime = stages[-1]
    exposed = {word for e in runtime.all("EXPOSE") for word in e.args.split()}
    assert exposed == {str(METRICS_PORT)}
    found = labels(runtime)
    for key in ("title", "description", "version", "licenses", "source"):
        assert found.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
    assert found["org.opencontainers.image.title"] == pyproject_value("project", "name")
    assert found["org.opencontainers.image.licenses"] == pyproject_value("project", "license")
    version_arg = next(a for a in runtime.all("ARG") if a.args.startswith("VERSION="))
    assert version_arg.args == f"VERSION={pyproject_value('project', 'version')}"
    assert found["org.opencontainers.image.version"] == "${VERSION}"


# --- build context -----------------------------------------------------------------------------------------

def test_containerignore_and_dockerignore_are_identical() -> None:
    # podman/buildah read .containerignore, docker reads .dockerignore
    assert (REPO / ".containerignore").read_text() == (REPO / ".dockerignore").read_text()


def test_every_copied_file_exists_and_is_in_the_context(
    stages: list[Stage], patterns: list[tuple[bool, re.Pattern[str]]]
) -> None:
    sources = copied_sources(stages)
    assert sources, "nothing is copied from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not is_ignored(source, patterns), f"COPY {source}: excluded by .containerignore"
    for path in (REPO / "ovirt_cloudprovider").rglob("*"):
        rel = path.relative_to(REPO).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith((".pyc", ".so")):
            if in_the_image(rel):
                assert not is_ignored(rel, patterns), f"{rel} would be missing from the image"
            else:
                assert is_ignored(rel, patterns), f"{rel} (a simulator) would be in the image"


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/config", "tests/test_deploy.py", "ovirt_cloudprovider/__pycache__/cli.pyc",
     "ovirt_cloudprovider/simulators/__pycache__/x.cpython-311.pyc", ".mypy_cache/3.11/x.json",
     ".pytest_cache/v/cache", ".ruff_cache/x", "ovirt_cloudprovider.egg-info/PKG-INFO", "build/lib/x.py",
     "ovirt-cloud.conf", "deploy/secret.example.yaml", "benchmarks/x.py", "kubeconfig", ".env",
     "ovirt_cloudprovider/simulators", "ovirt_cloudprovider/simulators/__init__.py",
     "ovirt_cloudprovider/simulators/kubeapi/simulator.py", "ovirt_cloudprovider/simulators/tls/server-key.pem"],
)
def test_context_excludes(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> None:
    assert is_ignored(path, patterns)


def test_ignore_matcher_semantics() -> None:
    patterns = ignore_patterns("# comment\n*\n!pkg/\n**/__pycache__\n!keep/**/x\n/top.txt\n")
    assert is_ignored("a.txt", patterns) and is_ignored("dir/a.txt", patterns)  # "*" excludes dirs whole
    assert not is_ignored("pkg/mod.py", patterns) and not is_ignored("pkg/sub/mod.py", patterns)
    assert is_ignored("pkg/sub/__pycache__/m.pyc", patterns)
    assert not is_ignored("keep/a/b/x", patterns)
    assert is_ignored("top.txt", patterns)
    only_top = ignore_patterns("*.txt\n")
    assert is_ignored("a.txt", only_top) and not is_ignored("dir/a.txt", only_top)  # "*" does not cross "/"


# --- the cuts of the build stage -----------------------------------------------------------------------------

def trim_step(stages: list[Stage]) -> str:
    """The build stage's RUN that cuts what the runtime never loads (after the installs)."""
    (step,) = [r.args for r in stages[0].all("RUN") if "kubernetes/aio" in r.args]
    return step


def trim(stages: list[Stage], target: Path) -> None:
    """That RUN, on a virtualenv at ``target`` instead of /opt/venv."""
    subprocess.run(["sh", "-ec", trim_step(stages).replace("/opt/venv", str(target))], check=True, timeout=120)


def test_the_cuts_come_after_every_install_and_spare_the_package(stages: list[Stage], tmp_path: Path) -> None:
    runs = [r.args for r in stages[0].all("RUN")]
    assert runs.index(trim_step(stages)) == len(runs) - 1, "cut after the last install"
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    keep = [site / "kubernetes" / "client" / "api_client.py", site / "kubernetes" / "__pycache__" / "x.pyc",
            site / "lxml" / "etree.so", site / "ovirt_cloudprovider" / "core" / "testing.py",
            site / "grpc_tools" / "_proto" / "google" / "protobuf" / "duration.proto",
            site / "grpc_tools" / "protoc.py",
            site / "ovirt_cloudprovider" / "autoscaler" / "protos" / "k8s_node.proto",
            site / "pkg" / "tests.py", site / "lxml-6.dist-info" / "licenses" / "LICENSE.txt"]
    cut = [site / "kubernetes" / "aio" / "client" / "api_client.py", site / "websocket" / "tests" / "t.py",
           site / "pkg" / "sub" / "test" / "data.txt", site / "lxml" / "includes" / "libxml" / "tree.h",
           site / "aiohttp" / "_http.c", site / "aiohttp" / "_http.pyx", site / "lxml" / "etree.pxd",
           site / "pkg" / "stubs.pyi"]
    for path in keep + cut:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    trim(stages, tmp_path / "venv")
    assert [p for p in keep if not p.exists()] == []
    assert [p for p in cut if p.exists()] == []


# --- the build stage's step, on the build context ----------------------------------------------------------

@pytest.fixture(scope="module")
def build_context(
    tmp_path_factory: pytest.TempPathFactory,
    stages: list[Stage],
    patterns: list[tuple[bool, re.Pattern[str]]],
) -> Path:
    """Exactly what the build stage's COPY instructions put in /src."""
    root = tmp_path_factory.mktemp("build-context")
    for source in copied_sources(stages):
        for rel in context_files(source, patterns):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
    return root


@pytest.fixture(scope="module")
def wheel(build_context: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out),
         str(build_context)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"pip wheel of the build context failed:\n{proc.stderr[-3000:]}"
    (built,) = out.glob("ovirt_cloudprovider-*.whl")
    return built


def test_wheel_from_the_build_context(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert re.search(rf"^\[console_scripts\]\n(?:.*\n)*?{re.escape(SCRIPT)} = {re.escape(ENTRY_POINT)}$",
                     entry_points, re.M), entry_points
    assert ENTRY_POINT == "ovirt_cloudprovider.cli:main"
    expected = {
        rel for p in (REPO / "ovirt_cloudprovider").rglob("*.py")
        if in_the_image(rel := p.relative_to(REPO).as_posix())
    }
    assert expected - names == set(), "files of the package missing from the wheel"
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    assert not [n for n in names if not in_the_image(n)], "the simulators must not be in the wheel"
    assert not [n for n in names if n.endswith((".pem", ".key"))], "no TLS material in the wheel"
    with zipfile.ZipFile(wheel) as zf:
        keys = [n for n in names if b"PRIVATE KEY-----" in zf.read(n)]
    assert keys == [], f"private key material in the wheel: {keys}"


def test_the_image_smoke_test_runs_the_autoscaler(stages: list[Stage]) -> None:
    """The image runs both components: the smoke test loads the externalgrpc protocol (gRPC, protobuf and the
    google/protobuf/*.proto of grpc_tools, which the cuts must spare) and the autoscaler's --help."""
    runs = " && ".join(r.args for r in stages[-1].all("RUN"))
    assert f'python -c "{AUTOSCALER_SMOKE}"' in runs
    assert f"{SCRIPT} autoscaler --help" in runs


def test_the_image_build_fails_if_simulators_or_a_private_key_got_in(stages: list[Stage]) -> None:
    runs = " && ".join(r.args for r in stages[-1].all("RUN"))
    assert '! python -c "import ovirt_cloudprovider.simulators"' in runs
    assert "find /opt/venv" in runs and "PRIVATE KEY" in runs and "'*.key'" in runs


def test_wheel_installs_into_a_clean_virtualenv_with_a_working_console_script(
    wheel: Path, tmp_path: Path, stages: list[Stage]
) -> None:
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    script = target / "bin" / SCRIPT
    assert script.is_file() and os.access(script, os.X_OK)
    assert script.read_text().splitlines()[0] == f"#!{python}"
    # The dependencies are not installed in the clean venv (that would compile the SDK: see the opt-in test
    # below); borrow them from the project's environment, after the venv's own site-packages, so that the
    # package itself comes from the wheel.
    site = next((target / "lib").glob("python3.*/site-packages"))
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "zz-borrowed-deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    # Away from the checkout (cwd, PYTHONPATH), so that nothing but the wheel can provide the package.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    check = subprocess.run(
        [str(python), "-c", "import ovirt_cloudprovider; print(ovirt_cloudprovider.__file__)"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path, env=env,
    )
    assert check.stdout.strip().startswith(str(site)), f"the package came from {check.stdout.strip()}"
    missing = subprocess.run([str(python), "-c", "import ovirt_cloudprovider.simulators"], capture_output=True,
                             text=True, timeout=60, check=False, cwd=tmp_path, env=env)
    assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, "the simulators were installed"
    trim(stages, target)  # the build stage's cuts spare the package
    run = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True, timeout=60,
                         check=False, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    for flag in ("--config", "--leader-elect", "--leader-elect-namespace", "--metrics-bind-address"):
        assert flag in run.stdout


@pytest.mark.skipif(os.environ.get("OVCP_TEST_IMAGE_DEPS") != "1",
                    reason="set OVCP_TEST_IMAGE_DEPS=1 to install all dependencies like the image (~25 s, "
                           "compiles the oVirt SDK, needs gcc, libxml2-dev and the package index)")
def test_build_stage_install_with_all_dependencies(build_context: Path, tmp_path: Path, stages: list[Stage]) -> None:
    """The build stage's steps: the lock with hashes required, the project without dependencies, pip check, the
    cuts; then the runtime stage's smoke test."""
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = str(target / "bin" / "python")
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_ONLY_BINARY": "pycurl"}
    pip = [sys.executable, "-m", "pip", "--python", python]
    shutil.copy2(LOCK, build_context / LOCK.name)
    subprocess.run([*pip, "install", "--quiet", "--require-hashes", "-r", str(build_context / LOCK.name)],
                   env=env, check=True, timeout=600)
    subprocess.run([*pip, "install", "--quiet", "--no-deps", str(build_context)], env=env, check=True, timeout=300)
    subprocess.run([*pip, "check"], env=env, check=True, timeout=120)
    trim(stages, target)
    subprocess.run([python, "-c", "import ovirtsdk4.xml, pycurl, lxml.etree, kubernetes, prometheus_client, "
                    "ovirt_cloudprovider.cli, ovirt_cloudprovider.app, ovirt_cloudprovider.kube.raw"],
                   check=True, timeout=60, cwd=tmp_path)
    subprocess.run([str(target / "bin" / SCRIPT), "--help"], check=True, timeout=60, cwd=tmp_path,
                   stdout=subprocess.DEVNULL)
    # The autoscaler component, from the same virtualenv: the "autoscaler" extra came from the lock, and the cuts
    # kept what grpc_tools needs to compile the protocol (its bundled google/protobuf/*.proto in _proto/).
    grpc_tools = subprocess.run([python, "-c", "import grpc_tools, os; print(os.path.dirname(grpc_tools.__file__))"],
                                capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path).stdout.strip()
    assert (Path(grpc_tools) / "_proto" / "google" / "protobuf" / "duration.proto").is_file(), "grpc_tools/_proto cut"
    subprocess.run([python, "-c", AUTOSCALER_SMOKE], check=True, timeout=120, cwd=tmp_path)
    helped = subprocess.run([str(target / "bin" / SCRIPT), "autoscaler", "--help"], capture_output=True, text=True,
                            check=False, timeout=60, cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for flag in ("--grpc-bind-address", "--tls-cert-file", "--client-ca-file", "--insecure-grpc"):
        assert flag in helped.stdout
    run = subprocess.run([str(target / "bin" / SCRIPT), "autoscaler", "--config", str(tmp_path / "missing.conf"),
                          "--insecure-grpc"], capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path)
    assert "'autoscaler' extra" not in run.stderr, f"the autoscaler lacks its extra: {run.stderr}"
    assert run.returncode != 0 and "missing.conf" in run.stderr, run.stderr  # it got as far as the config file
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False,
                          timeout=60).returncode != 0, "pip in the virtualenv"
