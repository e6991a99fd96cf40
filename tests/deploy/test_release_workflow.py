"""The release workflow (.github/workflows/release.yml) cannot run here: it is linted by zizmor (schema errors,
template injection, unpinned actions, credentials, permissions; offline, ``--pedantic``) and checked for what it
must do: on a version tag, the image for linux/amd64 and linux/arm64 with buildx, under the name deploy/ and the
chart run, from the Containerfile (so from requirements.lock), and the chart packaged and pushed; job references
that zizmor does not check (``needs``, job outputs) resolve.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
_BESIDE_PYTHON = Path(sys.executable).parent / "zizmor"  # the test extras' zizmor, also when the venv is not on PATH
ZIZMOR = shutil.which("zizmor") or (str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else None)


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return doc


def run_steps(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    if ZIZMOR is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("zizmor is not installed (pip install -e '.[test]')")
        pytest.skip("zizmor is not installed (pip install -e '.[test]')")
    return subprocess.run([ZIZMOR, "--offline", "--strict-collection", "--pedantic", "--no-progress", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_zizmor_finds_nothing() -> None:
    proc = zizmor(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("mutation", [
    ("runs-on: ubuntu-24.04", "runs-onn: ubuntu-24.04"),  # a schema error
    ('echo "$TOKEN" | docker login', 'echo "${{ github.event.head_commit.message }}" | docker login'),  # injection
    ("actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd", "actions/checkout@v6"),  # not pinned
])
def test_zizmor_notices_a_broken_workflow(mutation: tuple[str, str], tmp_path: Path) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert mutation[0] in text
    broken = tmp_path / "release.yml"
    broken.write_text(text.replace(mutation[0], mutation[1], 1), encoding="utf-8")
    assert zizmor(broken).returncode != 0


def test_runs_on_a_version_tag_only(workflow: dict[Any, Any]) -> None:
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads "on" as true
    assert set(triggers) == {"push"}
    assert set(triggers["push"]) == {"tags"}
    assert all(tag.startswith("v") for tag in triggers["push"]["tags"])
    assert workflow["permissions"] == {}, "no permission unless a job asks for it"


def test_job_references_resolve(workflow: dict[Any, Any]) -> None:
    jobs = workflow["jobs"]
    text = WORKFLOW.read_text(encoding="utf-8")
    for name, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert set(needs) <= set(jobs), f"job {name}: needs {needs}"
        for used, output in re.findall(r"needs\.([\w-]+)\.outputs\.([\w-]+)", yaml.safe_dump(job)):
            assert used in needs, f"job {name} reads needs.{used} without needing it"
            assert output in jobs[used].get("outputs", {}), f"job {used} has no output {output}"
    for step_id, output in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
        assert f"id: {step_id}" in text and f'echo "{output}=' in text, f"steps.{step_id}.outputs.{output}"


def test_the_image_for_amd64_and_arm64_under_the_name_deploy_runs(workflow: dict[Any, Any]) -> None:
    image_job = next(job for job in workflow["jobs"].values() if "docker buildx build" in run_steps(job))
    script = run_steps(image_job)
    build = re.search(r"docker buildx build (.*?)--push \.", script.replace("\\\n", " "), re.S)
    assert build, "docker buildx build ... --push . of the repository root"
    args = build.group(1)
    assert re.search(r"--platform linux/amd64,linux/arm64\b", args)
    assert "--file Containerfile" in args and (REPO / "Containerfile").is_file()
    assert "qemu-user-static" in script, "arm64 on an amd64 runner needs QEMU"
    assert image_job["permissions"] == {"contents": "read", "packages": "write"}
    kustomization = yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = kustomization["images"]
    pushed = re.search(r'image="ghcr\.io/\$\{GITHUB_REPOSITORY_OWNER,,\}/([\w-]+):\$\{VERSION\}"', script)
    assert pushed, "the image is named ghcr.io/<owner>/<name>:<version>"
    owner = re.search(r"^home: https://github\.com/([\w-]+)/", (REPO / "charts" / "ovirt-cloudprovider" /
                                                               "Chart.yaml").read_text(encoding="utf-8"), re.M)
    assert owner
    assert f"ghcr.io/{owner.group(1).lower()}/{pushed.group(1)}" == image["newName"]


def test_the_tag_must_be_the_version_and_the_chart_is_pushed(workflow: dict[Any, Any]) -> None:
    scripts = {name: run_steps(job) for name, job in workflow["jobs"].items()}
    version_script = next(s for s in scripts.values() if "GITHUB_REF_NAME#v" in s)
    for path in re.findall(r"(pyproject\.toml|charts/[\w/.-]+\.yaml)", version_script):
        assert (REPO / path).is_file(), path
    chart = next(s for s in scripts.values() if "helm package" in s)
    assert "helm package charts/ovirt-cloudprovider --destination dist" in chart
    assert re.search(r'helm push "dist/ovirt-cloudprovider-\$\{VERSION\}\.tgz" "oci://ghcr\.io/', chart)
    assert (REPO / "charts" / "ovirt-cloudprovider" / "Chart.yaml").is_file()
