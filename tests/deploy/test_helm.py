"""The Helm chart (charts/ovirt-cloudprovider/), through helm-python-sdk (Helm v4's Go SDK as a library; no helm
binary): ``helm lint`` finds nothing with any of the value sets below, every render validates like deploy/ does
(Kubernetes schemas, RBAC exactly as used, hardened pods, consistency), the default values render exactly the
objects of the kustomize base and the toggles exactly its components, and values.schema.json rejects typos.

Compared object by object after removing only the labels Helm adds (``HELM_LABELS``) from ``metadata.labels``;
selectors and pod templates are identical, so moving from ``kubectl apply -k`` to the chart keeps the pods.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovirt_cloudprovider.cli import build_parser
from ovirt_cloudprovider.config import DEFAULT_CONFIG_PATH, load_config
from tests.deploy.prom import DASHBOARD_FILE, RULES_FILE
from tests.deploy.test_autoscaler_deploy import (
    AUTOSCALER_OVERLAY,
    autoscaler_part,
    autoscaler_problems,
    controller_part,
)
from tests.deploy.test_deploy import (
    DEPLOY,
    HOSTNETWORK_OVERLAY,
    MONITORING_OVERLAY,
    SCHEMA_VERSIONS,
    Obj,
    Workspace,
    by_kind,
    consistency_problems,
    controller_container,
    deployment_problems,
    needs_kubectl,
    one,
    rbac_problems,
    readme_overlay,
    render,
    schema_problems,
)
from tests.helpers import REPO

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - exercised only without the test dependency
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("helm-python-sdk is not installed (pip install -e '.[test]')", allow_module_level=True)

CHART = REPO / "charts" / "ovirt-cloudprovider"
RELEASE, NAMESPACE = "ovirt-cloudprovider", "ovirt-cloudprovider"
HELM_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart")
CONF = ("[connection]\nuri = https://engine.example.com/ovirt-engine/api\nusername = k8s@internal\n"
        "password_file = /etc/ovirt/password\nca_file = /etc/ovirt/ca.pem\n\n[filters]\nvms = tag=kubernetes\n")
GENERATED = {"config": {"existingSecret": "", "file": CONF, "password": "not-a-real-password\n",
                        "caPem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}

# name -> (values, namespace, whether the base's Deployment and RBAC policy applies unchanged)
VALUE_SETS: dict[str, tuple[dict[str, Any], str, bool]] = {
    "defaults": ({}, NAMESPACE, True),
    "own-namespace": ({"namespace": {"create": True}}, NAMESPACE, True),
    "generated-secret": (GENERATED, NAMESPACE, True),
    "monitoring": ({"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                    "dashboard": {"enabled": True}}, NAMESPACE, True),
    "hostnetwork": ({"hostNetwork": True}, NAMESPACE, True),
    "kube-system": ({"namespace": {"create": False}, "criticalPodsQuota": {"enabled": False}}, "kube-system", True),
    "control-plane": ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                       "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                       "image": {"repository": "registry.example.com/ovirt-cloudprovider", "tag": "0.1.0-rc1"}},
                      "infra", True),
    "renamed-lease": ({"leaderElection": {"leaseName": "ovirt-ccm"}}, NAMESPACE, True),
    "second-instance": ({"instance": "hypervisors"}, "ovirt-cloudprovider-hypervisors", True),
    "single-replica": ({"replicaCount": 1, "leaderElection": {"enabled": False}}, NAMESPACE, False),
    "autoscaler": ({"autoscaler": {"enabled": True}}, NAMESPACE, True),
    "autoscaler-placed": ({"autoscaler": {"enabled": True,
                                          "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                                          "config": {"existingSecret": "my-autoscaler"},
                                          "tls": {"secretName": "my-autoscaler-tls"}},
                           "namespace": {"create": True}}, "infra", True),
}


def render_chart(values: dict[str, Any] | None = None, namespace: str = NAMESPACE,
                 release: str = RELEASE) -> list[Obj]:
    manifests = helm.Chart.load(CHART).render(values or {}, name=release, namespace=namespace, is_install=True)
    objs: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objs.extend(obj for obj in yaml.safe_load_all(text) if obj)
    return objs


def without_helm_labels(objs: list[Obj]) -> dict[tuple[str, str], Obj]:
    out = {}
    for obj in copy.deepcopy(objs):
        labels = obj["metadata"].get("labels", {})
        for key in HELM_LABELS:
            labels.pop(key, None)
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def assert_same_objects(chart: list[Obj], kustomize: list[Obj]) -> None:
    got, want = without_helm_labels(chart), without_helm_labels(kustomize)
    assert sorted(got) == sorted(want), "the chart and kustomize render different objects"
    for key, obj in want.items():
        assert got[key] == obj, f"{key[0]}/{key[1]} differs between the chart and kustomize"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("helm-vs-kustomize"))


# --- lint and schema ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_finds_nothing(name: str) -> None:
    values, namespace, _ = VALUE_SETS[name]
    report = helm.lint(CHART, values, strict=True, namespace=namespace)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # no warning, no error


@pytest.mark.parametrize("values", [
    {"replicaCont": 3},
    {"image": {"repo": "x"}},
    {"serviceMonitor": {"enabeld": True}},
    {"leaderElection": {"enable": False}},
    {"config": {"existing_secret": "x"}},
    {"resources": {"request": {"cpu": "1"}}},
    {"autoscaler": {"enabeld": True}},
    {"autoscaler": {"tls": {"secret": "x"}}},
    {"autoscaler": {"grpc": {"prot": 8086}}},
], ids=lambda v: json.dumps(v))
def test_values_schema_rejects_a_typo(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError, match="additional properties"):
        render_chart(values)
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert any("additional properties" in e for e in report["errors"])


def test_values_schema_rejects_wrong_types_and_a_missing_config() -> None:
    for values in ({"replicaCount": "2"}, {"hostNetwork": "yes"}, {"serviceMonitor": {"interval": "30 s"}},
                   {"config": {"existingSecret": ""}}, {"autoscaler": {"enabled": "true"}},
                   {"autoscaler": {"tls": {"secretName": ""}}}, {"autoscaler": {"grpc": {"port": 0}}}):
        with pytest.raises(helm.HelmValuesError):
            render_chart(values)


def test_default_values_pass_the_schema() -> None:
    chart = helm.Chart.load(CHART)
    assert chart.schema is not None
    chart.validate_schema({})


# --- every render validates like deploy/ --------------------------------------------------------------------

@pytest.fixture(scope="module")
def renders() -> dict[str, list[Obj]]:
    return {name: render_chart(values, namespace) for name, (values, namespace, _) in VALUE_SETS.items()}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_render_validates_against_the_kubernetes_schemas(renders: dict[str, list[Obj]],
                                                               version: str) -> None:
    for name, objs in renders.items():
        assert schema_problems(objs, version) == [], name


def test_every_render_follows_the_deploy_policy(renders: dict[str, list[Obj]]) -> None:
    """The controller's objects pass the base's checks; the autoscaler's, when enabled, the component's."""
    for name, all_objs in renders.items():
        if autoscaler_part(all_objs):
            assert autoscaler_problems(all_objs) == [], name
        objs = controller_part(all_objs)
        assert consistency_problems(objs) == [], name
        if VALUE_SETS[name][2]:
            assert rbac_problems(objs) == [], name
            assert deployment_problems(objs) == [], name
        namespace = one(objs, "Deployment")["metadata"]["namespace"]
        argv = [a.replace("$(POD_NAMESPACE)", namespace) for a in controller_container(objs)["args"]]
        build_parser().parse_args(argv)  # the CLI accepts the rendered command line


# --- the same objects as kustomize --------------------------------------------------------------------------

def without_namespace(objs: list[Obj]) -> list[Obj]:
    return [obj for obj in objs if obj["kind"] != "Namespace"]


def test_defaults_render_the_kustomize_base_but_its_namespace(renders: dict[str, list[Obj]]) -> None:
    """``helm install ... -n ovirt-cloudprovider --create-namespace`` creates the namespace itself: a templated
    Namespace of the release namespace would fail it ("exists and cannot be imported into the current release")."""
    assert by_kind(renders["defaults"], "Namespace") == []
    assert_same_objects(renders["defaults"], without_namespace(render(DEPLOY)))


def test_namespace_create_renders_exactly_the_kustomize_base(renders: dict[str, list[Obj]]) -> None:
    """Opt-in: the Namespace object with the Pod Security labels, as deploy/ has it."""
    assert_same_objects(renders["own-namespace"], render(DEPLOY))
    labels = one(renders["own-namespace"], "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def documented_helm_installs() -> list[tuple[str, str]]:
    """Every ``helm install`` command of the READMEs: lines of code blocks (continuations joined) and inline code
    spans (which may wrap)."""
    found = []
    for doc in (REPO / "README.md", CHART / "README.md"):
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
        lines = [line for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()]
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        spans = [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)]
        found += [(doc.relative_to(REPO).as_posix(), cmd.strip()) for cmd in lines + spans
                  if cmd.strip().startswith("helm install ")]
    return found


def test_documented_helm_install_commands_work_as_written() -> None:
    """Each documented ``helm install``, rendered with its own ``--set`` flags: with ``--create-namespace`` no
    Namespace object of the release namespace; the conventional command is documented and needs no other flag."""
    commands = documented_helm_installs()
    conventional = f"helm install {RELEASE} charts/ovirt-cloudprovider -n {NAMESPACE} --create-namespace"
    assert conventional in [cmd.strip() for _, cmd in commands], commands
    for doc, cmd in commands:
        words = cmd.split()
        namespace = words[words.index("-n") + 1] if "-n" in words else "default"
        sets = [words[i + 1] for i, flag in enumerate(words[:-1]) if flag == "--set"]
        values: dict[str, Any] = helm.parse_set_string(",".join(sets)) if sets else {}
        namespaces = [o["metadata"]["name"] for o in by_kind(render_chart(values, namespace), "Namespace")]
        if "--create-namespace" in words:
            assert namespace not in namespaces, f"{doc}: {cmd} would fail: the chart templates its namespace"


def test_comparison_notices_a_difference(renders: dict[str, list[Obj]]) -> None:
    with pytest.raises(AssertionError, match="Deployment/ovirt-cloudprovider differs"):
        assert_same_objects(render_chart({"replicaCount": 3}), renders["defaults"])
    with pytest.raises(AssertionError, match="different objects"):
        assert_same_objects(render_chart({"podDisruptionBudget": {"enabled": False}}), renders["defaults"])


def test_helm_labels_are_the_only_additions(renders: dict[str, list[Obj]]) -> None:
    for obj in renders["defaults"]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == RELEASE
    pod_labels = one(renders["defaults"], "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not set(pod_labels) & set(HELM_LABELS), "pod template labels must equal the base's"


@needs_kubectl
def test_monitoring_toggles_render_the_kustomize_components(workspace: Workspace) -> None:
    values = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
              "dashboard": {"enabled": True}, "namespace": {"create": True}}
    assert_same_objects(render_chart(values), workspace.overlay("monitoring", MONITORING_OVERLAY))


@needs_kubectl
def test_autoscaler_renders_the_kustomize_component(workspace: Workspace) -> None:
    """``autoscaler.enabled=true``: exactly deploy/components/autoscaler (its objects and the raised quota)."""
    assert_same_objects(render_chart({"autoscaler": {"enabled": True}, "namespace": {"create": True}}),
                        workspace.overlay("autoscaler", AUTOSCALER_OVERLAY))


def test_autoscaler_is_off_by_default(renders: dict[str, list[Obj]]) -> None:
    for name, (values, _, _) in VALUE_SETS.items():
        if "autoscaler" not in values:
            assert autoscaler_part(renders[name]) == [], name
            assert not [o for o in renders[name] if "autoscaler" in o["metadata"]["name"]], name


def test_autoscaler_values(renders: dict[str, list[Obj]]) -> None:
    objs = renders["autoscaler-placed"]
    ours = autoscaler_part(objs)
    deployment = one(ours, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert by_kind(ours, "PodDisruptionBudget") == []
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"my-autoscaler",
                                                                                   "my-autoscaler-tls"}
    assert one(objs, "ResourceQuota")["spec"]["hard"]["pods"] == "5"  # 4 + its one pod (Recreate: never two)
    assert {o["metadata"]["namespace"] for o in ours} == {"infra"}
    assert by_kind(objs, "Namespace")[0]["metadata"]["name"] == "infra"


@needs_kubectl
def test_hostnetwork_renders_the_kustomize_component(workspace: Workspace) -> None:
    assert_same_objects(render_chart({"hostNetwork": True, "namespace": {"create": True}}),
                        workspace.overlay("hostnetwork", HOSTNETWORK_OVERLAY))


@needs_kubectl
def test_kube_system_values_render_the_readme_overlay(workspace: Workspace) -> None:
    values, namespace, _ = VALUE_SETS["kube-system"]
    kustomize = workspace.overlay("kube-system", readme_overlay("kube-system"))
    assert_same_objects(render_chart(values, namespace), kustomize)


def test_chart_files_are_copies_of_deploy() -> None:
    assert (CHART / "files" / RULES_FILE.name).read_bytes() == RULES_FILE.read_bytes()
    assert (CHART / "files" / DASHBOARD_FILE.name).read_bytes() == DASHBOARD_FILE.read_bytes()


def test_chart_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version and chart["appVersion"] == version.group(1)


# --- values -------------------------------------------------------------------------------------------------

def test_generated_secret_is_mounted_and_rolls_the_deployment(tmp_path: Path) -> None:
    objs = render_chart(GENERATED)
    secret = one(objs, "Secret")
    assert set(secret["stringData"]) == {"ovirt-cloud.conf", "password", "ca.pem"}
    pod = one(objs, "Deployment")["spec"]["template"]
    assert [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v] == \
        [secret["metadata"]["name"]]
    checksum = pod["metadata"]["annotations"]["checksum/config"]
    changed = copy.deepcopy(GENERATED)
    changed["config"]["file"] += "\n[controller]\nsync_interval = 30\n"
    assert one(render_chart(changed), "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "checksum/config"] != checksum
    # the Secret, mounted as the kubelet would (mount path mapped to a temporary directory), loads
    mount = str(Path(DEFAULT_CONFIG_PATH).parent)
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value.replace(f"{mount}/", f"{tmp_path}/"), encoding="utf-8")
    config = load_config(str(tmp_path / Path(DEFAULT_CONFIG_PATH).name), environ={})
    assert config.connection.password_file == str(tmp_path / "password")


def test_existing_secret_is_referenced_not_created(renders: dict[str, list[Obj]]) -> None:
    objs = render_chart({"config": {"existingSecret": "my-ovirt"}})
    assert not by_kind(objs, "Secret")
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "secret": {"secretName": "my-ovirt", "defaultMode": 0o440}} in volumes
    assert "annotations" not in one(renders["defaults"], "Deployment")["spec"]["template"]["metadata"]


def test_leader_election_values(renders: dict[str, list[Obj]]) -> None:
    renamed = renders["renamed-lease"]
    assert "--leader-elect-lease-name=ovirt-ccm" in controller_container(renamed)["args"]
    assert "--instance" not in " ".join(controller_container(renamed)["args"])
    second = controller_container(renders["second-instance"])["args"]
    assert "--instance=hypervisors" in second  # the Lease follows the instance: no lease flag
    assert not any(a.startswith("--leader-elect-lease-name") for a in second)
    role = one(renders["second-instance"], "Role")
    assert role["rules"][1]["resourceNames"] == ["hypervisors"]
    single = renders["single-replica"]
    assert one(single, "Deployment")["spec"]["replicas"] == 1
    assert "--leader-elect=false" in controller_container(single)["args"]
    assert not by_kind(single, "Role") and not by_kind(single, "RoleBinding")
    with pytest.raises(helm.HelmError, match="every replica would write"):
        render_chart({"leaderElection": {"enabled": False}})


def test_placement_and_resources(renders: dict[str, list[Obj]]) -> None:
    objs = renders["control-plane"]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} \
        in pod["tolerations"]
    container = controller_container(objs)
    assert container["image"] == "registry.example.com/ovirt-cloudprovider:0.1.0-rc1"
    assert container["resources"]["limits"] == {"memory": "512Mi"}
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "ClusterRole"} <= {"infra", None}


def test_monitoring_values(renders: dict[str, list[Obj]]) -> None:
    objs = renders["monitoring"]
    assert one(objs, "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rule = one(objs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    dashboard = one(objs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ovirt-cloudprovider.json"]) == \
        json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    elsewhere = render_chart({"dashboard": {"enabled": True, "namespace": "monitoring"}})
    assert one(elsewhere, "ConfigMap")["metadata"]["namespace"] == "monitoring"
