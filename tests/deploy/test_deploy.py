"""The kustomize manifests in deploy/: they render, validate against the official Kubernetes schemas, and
follow the policy the controller relies on (RBAC exactly as used, hardened pods, leader election wiring,
selectors).

Rendering uses ``kubectl kustomize`` when kubectl is on PATH; otherwise a small stand-in applies the few
kustomize features the base uses (namespace, labels, images, component resources), and a test checks that the
stand-in and kubectl agree wherever both are available. Schema validation uses kubernetes-validate (the
OpenAPI-derived JSON schemas of each Kubernetes release, strict: unknown fields are errors). Custom resources
have no schema there: the ServiceMonitor gets a structural check, the PrometheusRule a minimal JSON schema written
from the Prometheus Operator's API reference (tests/deploy/schemas/).

Every policy check is a function returning a list of problems, so each is also shown to fail on a broken copy.
"""

from __future__ import annotations

import configparser
import copy
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from ovirt_cloudprovider.cli import build_parser
from ovirt_cloudprovider.config import load_config
from ovirt_cloudprovider.core.settings import DEFAULT_CONFIG_PATH, ControllerConfig
from tests.deploy.prom import prometheusrule_problems
from tests.helpers import REPO

Obj = dict[str, Any]

DEPLOY = REPO / "deploy"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH (overlays with patches)")

NAME = "ovirt-cloudprovider"
NAMESPACE = "ovirt-cloudprovider"
CONFIG_SECRET = "ovirt-cloud-config"
METRICS_PORT = 10270
CRD_GROUPS = frozenset({"monitoring.coreos.com"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"})
POD_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "controller"}
COMMON_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": NAME}
BASE_KINDS = {
    "Namespace", "ResourceQuota", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
    "RoleBinding", "Deployment", "PodDisruptionBudget", "Service",
}


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# The newest Kubernetes release kubernetes-validate ships schemas for, and the two before it (the releases the
# Kubernetes project maintains at any time): the manifests must be valid on all of them.
LATEST = kubernetes_validate.latest_version()
SCHEMA_VERSIONS = [f"{_minor(LATEST)[0]}.{_minor(LATEST)[1] - back}" for back in (2, 1, 0)]


# --- rendering ----------------------------------------------------------------------------------------------

def kubectl_kustomize(path: Path) -> list[Obj]:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed: {proc.stderr.strip()}"
    return [obj for obj in yaml.safe_load_all(proc.stdout) if obj]


def load_yaml_file(path: Path) -> list[Obj]:
    with path.open(encoding="utf-8") as f:
        return [obj for obj in yaml.safe_load_all(f) if obj]


def load_kustomization(directory: Path) -> Obj:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# complexity: the few kustomize features the base uses, one branch each
def render_without_kubectl(directory: Path, components: Iterable[Path] = ()) -> list[Obj]:  # noqa: C901
    """A stand-in for ``kubectl kustomize`` that covers what deploy/ uses: plain resource files,
    ``namespace``, ``labels`` (includeTemplates) and ``images``, then the resources of components added the
    way an overlay without transformers adds them. Anything else is refused, so the stand-in cannot silently
    render something that kubectl would render differently."""
    kust = load_kustomization(directory)
    known = {"apiVersion", "kind", "namespace", "resources", "labels", "images"}
    assert set(kust) <= known, f"the stand-in renderer does not support {sorted(set(kust) - known)}"
    objs: list[Obj] = []
    for rel in kust.get("resources", []):
        objs.extend(load_yaml_file(directory / rel))
    namespace = kust.get("namespace")
    for obj in objs:
        meta = obj.setdefault("metadata", {})
        if namespace:
            if obj["kind"] == "Namespace":
                meta["name"] = namespace
            elif obj["kind"] not in CLUSTER_SCOPED:
                meta["namespace"] = namespace
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = namespace
        for entry in kust.get("labels", []):
            assert not entry.get("includeSelectors"), "the stand-in does not support includeSelectors"
            meta.setdefault("labels", {}).update(entry["pairs"])
            if entry.get("includeTemplates") and obj["kind"] == "Deployment":
                obj["spec"]["template"]["metadata"].setdefault("labels", {}).update(entry["pairs"])
    for image in kust.get("images", []):
        for pod in pod_specs(objs):
            for container in containers(pod):
                repo = container["image"].rsplit(":", 1)[0]
                if repo == image["name"]:
                    container["image"] = f"{image.get('newName', repo)}:{image['newTag']}"
    for component in components:
        comp = load_kustomization(component)
        assert set(comp) <= {"apiVersion", "kind", "resources"}, f"{component}: unsupported by the stand-in"
        for rel in comp.get("resources", []):
            objs.extend(load_yaml_file(component / rel))
    return objs


def render(directory: Path) -> list[Obj]:
    """A kustomization directory as kubectl would apply it."""
    return kubectl_kustomize(directory) if KUBECTL is not None else render_without_kubectl(directory)


CLONE = "ovirt-cloudprovider"  # the clone's directory name, as deploy/README.md lays overlays out next to it


class Workspace:
    """A temporary directory laid out as deploy/README.md says: the clone (its deploy/) in ``ovirt-cloudprovider/``
    and overlays next to it, e.g. ``my-cluster/`` with ``resources: [../ovirt-cloudprovider/deploy]`` (kustomize
    refuses an overlay inside its base's directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deploy = root / CLONE / "deploy"
        shutil.copytree(DEPLOY, self.deploy)

    def overlay(self, name: str, kustomization: str, files: dict[str, str] | None = None) -> list[Obj]:
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        (directory / "kustomization.yaml").write_text(kustomization, encoding="utf-8")
        for filename, content in (files or {}).items():
            (directory / filename).write_text(content, encoding="utf-8")
        return kubectl_kustomize(directory)


def readme_overlay(name: str) -> str:
    """The kustomization snippet of deploy/README.md marked ``<!-- overlay: NAME -->``."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- overlay: {re.escape(name)} -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, f"deploy/README.md has no overlay snippet {name!r}"
    return match.group(1)


SERVICEMONITOR_OVERLAY = f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../{CLONE}/deploy
components:
  - ../{CLONE}/deploy/components/servicemonitor
"""
HOSTNETWORK_OVERLAY = SERVICEMONITOR_OVERLAY.replace("servicemonitor", "hostnetwork")
MONITORING_OVERLAY = (SERVICEMONITOR_OVERLAY + f"  - ../{CLONE}/deploy/components/prometheusrule\n"
                      f"  - ../{CLONE}/deploy/components/grafana-dashboard\n")
NAMESPACE_OVERLAY = "namespace: team-infra\n" + SERVICEMONITOR_OVERLAY
CONFIG_FILES = {
    "ovirt-cloud.conf": "[connection]\nuri = https://engine.example.com/ovirt-engine/api\n"
    "username = k8s@internal\npassword_file = /etc/ovirt/password\nca_file = /etc/ovirt/ca.pem\n",
    "password": "not-a-real-password\n",
    "ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("deploy-workspace"))


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return render(DEPLOY)


@pytest.fixture(scope="module")
def with_servicemonitor(workspace: Workspace) -> list[Obj]:
    if KUBECTL is None:
        return render_without_kubectl(DEPLOY, [DEPLOY / "components" / "servicemonitor"])
    return workspace.overlay("with-servicemonitor", SERVICEMONITOR_OVERLAY)


def renderings(workspace: Workspace) -> Iterator[tuple[str, list[Obj]]]:
    """Every way deploy/ is meant to be used, as rendered objects."""
    yield "base", render(DEPLOY)
    if KUBECTL is None:
        yield "servicemonitor", render_without_kubectl(DEPLOY, [DEPLOY / "components" / "servicemonitor"])
        return
    yield "servicemonitor", workspace.overlay("servicemonitor", SERVICEMONITOR_OVERLAY)
    yield "hostnetwork", workspace.overlay("hostnetwork", HOSTNETWORK_OVERLAY)
    yield "monitoring", workspace.overlay("monitoring", MONITORING_OVERLAY)
    yield "monitoring-ns", workspace.overlay("monitoring-ns", "namespace: team-infra\n" + MONITORING_OVERLAY)
    yield "other-namespace", workspace.overlay("other-namespace", NAMESPACE_OVERLAY)
    yield "readme:config-secret", workspace.overlay(
        "config-secret", readme_overlay("config-secret"), CONFIG_FILES
    )
    yield "readme:kube-system", workspace.overlay("kube-system", readme_overlay("kube-system"))
    yield "readme:monitoring", workspace.overlay("readme-monitoring", readme_overlay("monitoring"))
    yield "readme:own-image", workspace.overlay("own-image", readme_overlay("own-image"))
    yield "readme:second-instance", workspace.overlay("second-instance", readme_overlay("second-instance"))


@pytest.fixture(scope="module")
def all_renderings(workspace: Workspace) -> list[tuple[str, list[Obj]]]:
    return list(renderings(workspace))


# --- object helpers -----------------------------------------------------------------------------------------

def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objs if obj.get("kind") == kind]


def one(objs: list[Obj], kind: str) -> Obj:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def pod_specs(objs: list[Obj]) -> list[Obj]:
    return [obj["spec"]["template"]["spec"] for obj in objs if obj.get("kind") in ("Deployment", "DaemonSet")]


def containers(pod: Obj) -> list[Obj]:
    return list(pod.get("initContainers", [])) + list(pod.get("containers", []))


def selects(selector: Obj, labels: Obj) -> bool:
    """matchLabels and matchExpressions of a LabelSelector (an empty selector selects everything)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def flag(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def controller_container(objs: list[Obj]) -> Obj:
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    found: list[Obj] = [c for c in pod["containers"] if c["name"] == NAME]
    assert len(found) == 1, "the Deployment has no container named ovirt-cloudprovider"
    return found[0]


# --- schema validation --------------------------------------------------------------------------------------

def schema_problems(objs: list[Obj], version: str) -> list[str]:
    problems: list[str] = []
    for obj in objs:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") == "PrometheusRule":
            problems.extend(f"{what}: {p}" for p in prometheusrule_problems(obj))
            continue
        if obj.get("apiVersion", "").split("/")[0] in CRD_GROUPS:
            problems.extend(f"{what}: {p}" for p in servicemonitor_problems(obj))
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path)
            problems.append(f"{what}: {path}: {err.message}")
        except SchemaNotFoundError as err:
            problems.append(f"{what}: {err.message}")
    return problems


def servicemonitor_problems(obj: Obj) -> list[str]:
    """Structure of a monitoring.coreos.com/v1 ServiceMonitor (a CRD: kubernetes-validate has no schema)."""
    problems = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1" or obj.get("kind") != "ServiceMonitor":
        problems.append(f"unexpected custom resource {obj.get('apiVersion')} {obj.get('kind')}")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec missing"]
    unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                           "podTargetLabels", "sampleLimit", "scrapeProtocols"}
    if unknown:
        problems.append(f"unknown spec fields {sorted(unknown)}")
    if not isinstance(spec.get("selector"), dict) or not spec["selector"]:
        problems.append("spec.selector must be a non-empty LabelSelector")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.endpoints must be a non-empty list")
        return problems
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, dict) or not isinstance(ep.get("port"), str):
            problems.append(f"spec.endpoints[{i}].port must be a Service port name")
            continue
        for key in ("interval", "scrapeTimeout"):
            if key in ep and not re.fullmatch(r"(\d+(ms|s|m|h))+", str(ep[key])):
                problems.append(f"spec.endpoints[{i}].{key}: {ep[key]!r} is not a Prometheus duration")
        if ep.get("scheme", "http") not in ("http", "https"):
            problems.append(f"spec.endpoints[{i}].scheme: {ep['scheme']!r}")
    return problems


# --- RBAC policy --------------------------------------------------------------------------------------------

Grant = tuple[str, str, str, str, str]  # (role kind, api group, resource, verb, resource name or "")


def expected_grants(lease_name: str) -> set[Grant]:
    grants: set[Grant] = set()
    for verb in ("list", "watch", "create", "patch", "delete"):
        grants.add(("ClusterRole", "", "nodes", verb, ""))
    grants.add(("ClusterRole", "", "nodes/status", "patch", ""))
    for verb in ("create", "patch"):
        grants.add(("ClusterRole", "", "events", verb, ""))
    grants.add(("Role", "coordination.k8s.io", "leases", "create", ""))
    for verb in ("get", "update"):
        grants.add(("Role", "coordination.k8s.io", "leases", verb, lease_name))
    return grants


def lease_name(objs: list[Obj]) -> str:
    args = controller_container(objs).get("args", [])
    # the Lease is named after the instance unless named itself
    named = flag(args, "--leader-elect-lease-name") or flag(args, "--instance")
    return named or ControllerConfig().leader_elect_lease_name


def rbac_problems(objs: list[Obj]) -> list[str]:
    """Wildcards, unexpected or missing permissions, and bindings that do not reach the controller."""
    problems: list[str] = []
    grants: set[Grant] = set()
    roles = by_kind(objs, "ClusterRole") + by_kind(objs, "Role")
    for role in roles:
        what = f"{role['kind']}/{role['metadata']['name']}"
        if "aggregationRule" in role:
            problems.append(f"{what}: aggregationRule grants whatever other roles hold")
        for rule in role.get("rules", []):
            fields = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", []),
                      *rule.get("resourceNames", []), *rule.get("nonResourceURLs", [])]
            if any("*" in value for value in fields):
                problems.append(f"{what}: wildcard in rule {rule}")
            if rule.get("nonResourceURLs"):
                problems.append(f"{what}: nonResourceURLs are not needed: {rule}")
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        for resource_name in rule.get("resourceNames") or [""]:
                            grants.add((role["kind"], group, resource, verb, resource_name))
    expected = expected_grants(lease_name(objs))
    problems.extend(f"unexpected permission {g}" for g in sorted(grants - expected))
    problems.extend(f"missing permission {g}" for g in sorted(expected - grants))

    deployment = one(objs, "Deployment")
    namespace = deployment["metadata"]["namespace"]
    account = deployment["spec"]["template"]["spec"].get("serviceAccountName")
    if not any(sa["metadata"]["name"] == account and sa["metadata"].get("namespace") == namespace
               for sa in by_kind(objs, "ServiceAccount")):
        problems.append(f"the Deployment's ServiceAccount {namespace}/{account} is not in the manifests")
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    for role in roles:
        binding_kind = "ClusterRoleBinding" if role["kind"] == "ClusterRole" else "RoleBinding"
        bound = [
            b for b in by_kind(objs, binding_kind)
            if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
                                "name": role["metadata"]["name"]}
            and b["metadata"].get("namespace") == role["metadata"].get("namespace")
            and subject in b.get("subjects", [])
        ]
        if not bound:
            problems.append(f"no {binding_kind} binds {role['kind']}/{role['metadata']['name']} to {subject}")
        if role["kind"] == "Role" and role["metadata"].get("namespace") != namespace:
            problems.append(f"Role/{role['metadata']['name']} is not in the controller's namespace "
                            f"{namespace} (the Lease lives there: --leader-elect-namespace=$(POD_NAMESPACE))")
    return problems


# --- Deployment policy --------------------------------------------------------------------------------------

def container_security_problems(container: Obj, pod: Obj) -> list[str]:
    name = container["name"]
    sc = container.get("securityContext", {})
    psc = pod.get("securityContext", {})
    problems = []
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: readOnlyRootFilesystem must be true")
    if sc.get("privileged"):
        problems.append(f"{name}: privileged")
    if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        problems.append(f"{name}: capabilities must drop ALL and add none")
    if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
        problems.append(f"{name}: runAsNonRoot must be true")
    if sc.get("runAsUser", psc.get("runAsUser")) != 65532:
        problems.append(f"{name}: runAsUser must be 65532 (the image's user)")
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccompProfile must be RuntimeDefault")
    return problems


# complexity: a checklist: one independent check per hardening rule
def deployment_problems(objs: list[Obj]) -> list[str]:  # noqa: C901
    deployment = one(objs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    problems: list[str] = []
    if spec.get("replicas") != 2:
        problems.append(f"replicas must be 2, not {spec.get('replicas')!r}")
    if not selects(spec["selector"], labels):
        problems.append("the Deployment's selector does not select its own pods")
    for key, value in POD_LABELS.items():
        if labels.get(key) != value:
            problems.append(f"pod label {key} must be {value}")
    for container in containers(pod):
        problems.extend(container_security_problems(container, pod))
    if pod.get("automountServiceAccountToken") is False:
        problems.append("the controller needs its service account token")
    if pod.get("priorityClassName") != "system-cluster-critical":
        problems.append("priorityClassName must be system-cluster-critical")

    tolerated = {(t.get("key"), t.get("effect")) for t in pod.get("tolerations", [])}
    for key, effect in (("node.cloudprovider.kubernetes.io/uninitialized", "NoSchedule"),
                        ("node-role.kubernetes.io/control-plane", "NoSchedule"),
                        ("node.kubernetes.io/not-ready", "NoSchedule"),
                        ("node.kubernetes.io/not-ready", "NoExecute")):
        if (key, effect) not in tolerated and (key, None) not in tolerated:
            problems.append(f"no toleration for {key}:{effect}")

    spread = [c for c in pod.get("topologySpreadConstraints", [])
              if c.get("topologyKey") == "kubernetes.io/hostname"
              and selects(c.get("labelSelector", {}), labels)]
    if not spread:
        problems.append("no topologySpreadConstraint across kubernetes.io/hostname selecting the pods")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution", [])
    if not any(selects(t["podAffinityTerm"].get("labelSelector", {}), labels) for t in anti):
        problems.append("no preferred podAntiAffinity selecting the pods")

    found = next((c for c in pod["containers"] if c["name"] == NAME), None)
    if found is None:
        return [*problems, "no container named ovirt-cloudprovider"]
    container = found
    command = [*container.get("command", []), *container.get("args", [])]
    if command[:2] != ["ovirt-cloudprovider", "run"]:
        problems.append(f"the container must run `ovirt-cloudprovider run`, not {command[:2]}")
    args = container.get("args", [])
    if flag(args, "--leader-elect") != "true":
        problems.append("--leader-elect=true missing")
    if flag(args, "--leader-elect-namespace") != "$(POD_NAMESPACE)":
        problems.append("--leader-elect-namespace must be $(POD_NAMESPACE)")
    env = {e["name"]: e for e in container.get("env", [])}
    for var, field_path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != field_path:
            problems.append(f"env {var} must come from the downward API ({field_path})")

    ports = {p.get("name"): p for p in container.get("ports", [])}
    if ports.get("metrics", {}).get("containerPort") != METRICS_PORT:
        problems.append(f"container port 'metrics' must be {METRICS_PORT}")
    bind = flag(args, "--metrics-bind-address") or ""
    if not bind.endswith(f":{METRICS_PORT}"):
        problems.append(f"--metrics-bind-address {bind!r} does not listen on the metrics port")
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                             ("startupProbe", "/healthz")):
        get = container.get(probe_name, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", METRICS_PORT):
            problems.append(f"{probe_name} must GET {path} on the metrics port")
        if get.get("scheme", "HTTP") != "HTTP":
            problems.append(f"{probe_name} must use plain HTTP")

    resources = container.get("resources", {})
    for key in ("cpu", "memory"):
        if key not in resources.get("requests", {}):
            problems.append(f"no {key} request")
    if "memory" not in resources.get("limits", {}):
        problems.append("no memory limit")

    config = flag(args, "--config") or ""
    if config != DEFAULT_CONFIG_PATH:
        problems.append(f"--config {config!r} is not the documented path {DEFAULT_CONFIG_PATH}")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = container.get("volumeMounts", [])
    config_mount = [m for m in mounts if config.startswith(m["mountPath"].rstrip("/") + "/")]
    if not config_mount:
        problems.append(f"no volume is mounted where --config {config} lives")
    else:
        mount = config_mount[0]
        secret = volumes.get(mount["name"], {}).get("secret", {})
        if not secret.get("secretName", "").startswith(CONFIG_SECRET):
            problems.append(f"the config must come from the Secret {CONFIG_SECRET}")
        if "subPath" in mount:
            problems.append("the config Secret must be mounted without subPath (else rotations never arrive)")
        if not mount.get("readOnly"):
            problems.append("the config mount must be read-only")
    tmp = [m for m in mounts if m["mountPath"] == "/tmp" and "emptyDir" in volumes.get(m["name"], {})]
    if not tmp:
        problems.append("a read-only root filesystem needs an emptyDir on /tmp")
    if ":" not in container["image"] or container["image"].endswith(":latest"):
        problems.append(f"image {container['image']} must be pinned to a version tag")
    return problems


def pod_security_restricted_problems(pod: Obj) -> list[str]:
    """The Pod Security Standard "restricted" rules that apply to this pod (what a namespace enforcing it
    checks at admission)."""
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is not allowed")
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
               "projected", "secret"}
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= allowed:
            problems.append(f"volume {volume['name']}: {sorted(kinds - allowed)} not allowed")
    for container in containers(pod):
        problems.extend(container_security_problems(container, pod))
        if any("hostPort" in port for port in container.get("ports", [])):
            problems.append(f"{container['name']}: hostPort not allowed")
    return problems


# complexity: a checklist: one independent check per cross-object rule
def consistency_problems(objs: list[Obj]) -> list[str]:  # noqa: C901
    """One namespace for everything namespaced, common labels everywhere, Service / PDB / ServiceMonitor
    selecting the controller's pods on the metrics port, and pods admissible in their namespace."""
    problems: list[str] = []
    deployment = one(objs, "Deployment")
    namespace = deployment["metadata"]["namespace"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for obj in objs:
        meta = obj["metadata"]
        what = f"{obj['kind']}/{meta['name']}"
        if obj["kind"] not in CLUSTER_SCOPED and meta.get("namespace") != namespace:
            problems.append(f"{what} is in namespace {meta.get('namespace')!r}, not {namespace!r}")
        for key, value in COMMON_LABELS.items():
            # (a Secret is the user's own, generated or not)
            if obj["kind"] != "Secret" and meta.get("labels", {}).get(key) != value:
                problems.append(f"{what}: label {key} must be {value}")
        for subject in obj.get("subjects", []):
            if subject.get("namespace") != namespace:
                problems.append(f"{what}: subject {subject} not in {namespace!r}")
    namespaces = by_kind(objs, "Namespace")
    if namespaces and [ns["metadata"]["name"] for ns in namespaces] != [namespace]:
        problems.append(f"the Namespace object is not {namespace!r}")
    if namespace == "kube-system" and (namespaces or by_kind(objs, "ResourceQuota")):
        problems.append("into kube-system, the Namespace object and the critical-pods quota must be dropped")
    for ns in namespaces:
        if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted":
            problems.extend(f"Pod Security restricted: {p}"
                            for p in pod_security_restricted_problems(deployment["spec"]["template"]["spec"]))

    service = one(objs, "Service")
    if not service["spec"].get("selector") or not selects({"matchLabels": service["spec"]["selector"]},
                                                          pod_labels):
        problems.append("the metrics Service does not select the controller's pods")
    ports = {p.get("name"): p for p in service["spec"].get("ports", [])}
    if ports.get("metrics", {}).get("targetPort") not in ("metrics", METRICS_PORT):
        problems.append("the Service has no port 'metrics' targeting the metrics port")
    pdb = one(objs, "PodDisruptionBudget")
    if not pdb["spec"].get("selector") or not selects(pdb["spec"]["selector"], pod_labels):
        problems.append("the PodDisruptionBudget does not select the controller's pods")
    if pdb["spec"].get("maxUnavailable") != 1 and pdb["spec"].get("minAvailable") != 1:
        problems.append("the PodDisruptionBudget must keep one replica (maxUnavailable or minAvailable 1)")
    quota = by_kind(objs, "ResourceQuota")
    critical = deployment["spec"]["template"]["spec"].get("priorityClassName")
    for q in quota:
        exprs = q["spec"].get("scopeSelector", {}).get("matchExpressions", [])
        if not any(e["scopeName"] == "PriorityClass" and e["operator"] == "In" and critical in e["values"]
                   for e in exprs):
            problems.append(f"ResourceQuota/{q['metadata']['name']} does not permit {critical} pods")
        surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        if int(q["spec"]["hard"]["pods"]) < deployment["spec"]["replicas"] + int(surge):
            problems.append("the critical-pods quota is smaller than replicas + maxSurge")
    for monitor in by_kind(objs, "ServiceMonitor"):
        if not selects(monitor["spec"]["selector"], service["metadata"].get("labels", {})):
            problems.append("the ServiceMonitor does not select the metrics Service")
        if [ep.get("port") for ep in monitor["spec"]["endpoints"]] != ["metrics"]:
            problems.append("the ServiceMonitor must scrape the Service port 'metrics'")
        if monitor["spec"]["endpoints"][0].get("path", "/metrics") != "/metrics":
            problems.append("the ServiceMonitor must scrape /metrics")
    return problems


# --- tests: files and rendering -----------------------------------------------------------------------------

def test_kustomization_lists_every_manifest_and_nothing_missing() -> None:
    kust = load_kustomization(DEPLOY)
    listed = set(kust["resources"])
    present = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == present, "deploy/*.yaml and kustomization.yaml resources differ"
    assert "secret.example.yaml" not in listed  # users create their own Secret
    for component in (DEPLOY / "components").iterdir():
        comp = load_kustomization(component)
        assert comp["kind"] == "Component"
        for rel in comp.get("resources", []):
            assert (component / rel).is_file(), f"{component.name}: {rel} is missing"


def test_rbac_files_hold_one_role_each() -> None:
    # The RBAC-enforced lifecycle test loads these files directly.
    assert [o["kind"] for o in load_yaml_file(DEPLOY / "clusterrole.yaml")] == ["ClusterRole"]
    assert [o["kind"] for o in load_yaml_file(DEPLOY / "role.yaml")] == ["Role"]


def test_base_renders_the_expected_objects(base: list[Obj]) -> None:
    assert {obj["kind"] for obj in base} == BASE_KINDS
    assert len(base) == len(BASE_KINDS)
    assert not by_kind(base, "Secret"), "the base must not carry a Secret (it would overwrite the user's)"
    assert not by_kind(base, "ServiceMonitor"), "the ServiceMonitor needs the Prometheus CRDs: component only"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH: nothing to compare the stand-in with")
def test_stand_in_renderer_agrees_with_kubectl(base: list[Obj], with_servicemonitor: list[Obj]) -> None:
    def key(obj: Obj) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(render_without_kubectl(DEPLOY), key=key) == sorted(base, key=key)
    stand_in = render_without_kubectl(DEPLOY, [DEPLOY / "components" / "servicemonitor"])
    assert sorted(stand_in, key=key) == sorted(with_servicemonitor, key=key)


# --- tests: schemas -----------------------------------------------------------------------------------------

def test_schemas_are_of_a_recent_kubernetes() -> None:
    assert _minor(LATEST) >= (1, 33), f"kubernetes-validate {LATEST} is too old: upgrade it"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_rendering_validates_against_the_kubernetes_schemas(
    all_renderings: list[tuple[str, list[Obj]]], version: str
) -> None:
    problems = [f"{name}: {p}" for name, objs in all_renderings for p in schema_problems(objs, version)]
    assert problems == []


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_secret_example_validates(version: str) -> None:
    assert schema_problems(load_yaml_file(DEPLOY / "secret.example.yaml"), version) == []


def test_validator_rejects_broken_manifests(base: list[Obj]) -> None:
    deployment = one(base, "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "two"
    assert any("spec.replicas" in p for p in schema_problems([broken], LATEST))

    typo = copy.deepcopy(deployment)  # strict: an unknown field is an error, not silently dropped
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    assert any("readOnlyRootFileSystem" in p for p in schema_problems([typo], LATEST))

    rbac = copy.deepcopy(one(base, "ClusterRole"))
    rbac["rules"][0]["verbs"] = "get"  # a string where a list belongs
    assert schema_problems([rbac], LATEST)

    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"},
               "spec": {"selector": {}, "endpoints": [{"port": 10270, "interval": "soon"}]}}
    with pytest.raises(SchemaNotFoundError):  # why custom resources get the structural check instead
        kubernetes_validate.validate(monitor, LATEST, strict=True)
    assert len(servicemonitor_problems(monitor)) == 2


# --- tests: policy ------------------------------------------------------------------------------------------

def test_rbac_is_exactly_what_the_controller_uses(all_renderings: list[tuple[str, list[Obj]]]) -> None:
    problems = [f"{name}: {p}" for name, objs in all_renderings for p in rbac_problems(objs)]
    assert problems == []


def _mutate(objs: list[Obj], kind: str, change: Callable[[Obj], None]) -> list[Obj]:
    objs = copy.deepcopy(objs)
    change(one(objs, kind))
    return objs


@pytest.mark.parametrize(
    ("kind", "change", "expect"),
    [
        ("ClusterRole", lambda r: r["rules"][0]["verbs"].append("*"), "wildcard"),
        ("ClusterRole", lambda r: r["rules"][0]["resources"].append("*"), "wildcard"),
        ("ClusterRole", lambda r: r["rules"][0].update(apiGroups=["*"]), "wildcard"),
        ("ClusterRole", lambda r: r["rules"][0]["verbs"].append("update"), "unexpected permission"),
        ("ClusterRole", lambda r: r["rules"][0]["verbs"].remove("delete"), "missing permission"),
        ("ClusterRole", lambda r: r["rules"].pop(1), "missing permission"),  # nodes/status
        ("ClusterRole", lambda r: r["rules"].append({"apiGroups": [""], "resources": ["secrets"],
                                                     "verbs": ["get"]}), "unexpected permission"),
        ("Role", lambda r: r["rules"][1].pop("resourceNames"), "unexpected permission"),
        ("Role", lambda r: r["rules"][1]["verbs"].append("list"), "unexpected permission"),
        ("Role", lambda r: r["rules"].pop(0), "missing permission"),  # create
        ("Role", lambda r: r["metadata"].update(namespace="default"), "not in the controller's namespace"),
        ("ClusterRoleBinding", lambda b: b["subjects"][0].update(name="default"), "no ClusterRoleBinding"),
        ("RoleBinding", lambda b: b["roleRef"].update(name="other"), "no RoleBinding"),
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0]["args"].append(
            "--leader-elect-lease-name=renamed"), "missing permission"),
    ],
)
def test_rbac_check_fails_when_it_should(
    base: list[Obj], kind: str, change: Callable[[Obj], None], expect: str
) -> None:
    problems = rbac_problems(_mutate(base, kind, change))
    assert any(expect in p for p in problems), problems


def test_deployment_policy(all_renderings: list[tuple[str, list[Obj]]]) -> None:
    problems = [f"{name}: {p}" for name, objs in all_renderings for p in deployment_problems(objs)]
    assert problems == []


def _container(d: Obj) -> Obj:
    container: Obj = d["spec"]["template"]["spec"]["containers"][0]
    return container


def _drop_seccomp(d: Obj) -> None:
    d["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile")
    _container(d)["securityContext"].pop("seccompProfile")


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda d: d["spec"].update(replicas=1), "replicas must be 2"),
        (lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
         "readOnlyRootFilesystem"),
        (lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True),
         "allowPrivilegeEscalation"),
        (lambda d: _container(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
         "capabilities"),
        (_drop_seccomp, "seccompProfile"),
        (lambda d: _container(d)["env"].pop(0), "POD_NAME"),
        (lambda d: _container(d)["args"].remove("--leader-elect=true"), "--leader-elect=true"),
        (lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/healthz"), "readinessProbe"),
        (lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=8080), "livenessProbe"),
        (lambda d: _container(d)["volumeMounts"][0].update(subPath="ovirt-cloud.conf"), "subPath"),
        (lambda d: _container(d)["resources"].pop("limits"), "memory limit"),
        (lambda d: d["spec"]["template"]["spec"]["tolerations"].pop(0), "uninitialized"),
        (lambda d: d["spec"]["template"]["spec"].pop("topologySpreadConstraints"),
         "topologySpreadConstraint"),
        (lambda d: _container(d).update(image="ghcr.io/ovirt-cloudprovider/ovirt-cloudprovider:latest"),
         "pinned"),
    ],
)
def test_deployment_policy_fails_when_it_should(
    base: list[Obj], change: Callable[[Obj], None], expect: str
) -> None:
    problems = deployment_problems(_mutate(base, "Deployment", change))
    assert any(expect in p for p in problems), problems


def test_consistency(all_renderings: list[tuple[str, list[Obj]]]) -> None:
    problems = [f"{name}: {p}" for name, objs in all_renderings for p in consistency_problems(objs)]
    assert problems == []


@pytest.mark.parametrize(
    ("kind", "change", "expect"),
    [
        ("Service", lambda s: s["spec"]["selector"].update({"app.kubernetes.io/component": "x"}),
         "Service does not select"),
        ("Service", lambda s: s["spec"]["ports"][0].update(name="http"), "no port 'metrics'"),
        ("PodDisruptionBudget", lambda p: p["spec"]["selector"]["matchLabels"].update(app="x"),
         "PodDisruptionBudget does not select"),
        ("ServiceAccount", lambda s: s["metadata"].update(namespace="default"), "not 'ovirt-cloudprovider'"),
        ("Role", lambda r: r["metadata"]["labels"].pop("app.kubernetes.io/part-of"), "label"),
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True),
         "Pod Security restricted: hostNetwork"),
        ("ResourceQuota", lambda q: q["spec"]["hard"].update(pods="2"), "quota is smaller"),
    ],
)
def test_consistency_check_fails_when_it_should(
    base: list[Obj], kind: str, change: Callable[[Obj], None], expect: str
) -> None:
    problems = consistency_problems(_mutate(base, kind, change))
    assert any(expect in p for p in problems), problems


def test_the_cli_accepts_the_deployments_command_line(base: list[Obj]) -> None:
    container = controller_container(base)
    namespace = one(base, "Deployment")["metadata"]["namespace"]
    assert container["command"] == ["ovirt-cloudprovider"]
    argv = [arg.replace("$(POD_NAMESPACE)", namespace) for arg in container["args"]]  # as the kubelet expands
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    assert args.config == DEFAULT_CONFIG_PATH
    assert args.leader_elect is True
    assert args.leader_elect_namespace == namespace
    assert args.metrics_bind_address == f"0.0.0.0:{METRICS_PORT}"
    with pytest.raises(SystemExit):  # and a misspelt flag would not slip through
        build_parser().parse_args([*argv, "--leader-elect-namesapce=x"])


def test_image_tag_is_the_project_version(base: list[Obj]) -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version
    assert controller_container(base)["image"].endswith(f":{version.group(1)}")


# --- tests: overlays and the config Secret ------------------------------------------------------------------

@needs_kubectl
def test_generated_config_secret_rolls_the_deployment(workspace: Workspace) -> None:
    def secret_and_reference(conf: str) -> tuple[str, str]:
        objs = workspace.overlay("config-rollout", readme_overlay("config-secret"),
                                 {**CONFIG_FILES, "ovirt-cloud.conf": conf})
        secret = one(objs, "Secret")
        assert set(secret["data"]) == set(CONFIG_FILES)
        assert secret["metadata"]["namespace"] == NAMESPACE
        volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        referenced = [v["secret"]["secretName"] for v in volumes if "secret" in v]
        return secret["metadata"]["name"], referenced[0]

    first, first_ref = secret_and_reference(CONFIG_FILES["ovirt-cloud.conf"])
    second, second_ref = secret_and_reference(CONFIG_FILES["ovirt-cloud.conf"] + "[filters]\nvms = tag=k8s\n")
    assert first.startswith(f"{CONFIG_SECRET}-") and first == first_ref  # hash suffix, reference rewritten
    assert second == second_ref
    assert first != second  # new content, new name: the pod template changes, the Deployment rolls


@needs_kubectl
def test_hostnetwork_component(workspace: Workspace) -> None:
    objs = workspace.overlay("hostnetwork-only", HOSTNETWORK_OVERLAY)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "Default"
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
            "effect": "NoSchedule"} in pod["tolerations"]
    strategy = one(objs, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    labels = one(objs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    # and the base stays on the pod network, admissible under "restricted":
    base_pod = one(render(DEPLOY), "Deployment")["spec"]["template"]["spec"]
    assert not base_pod.get("hostNetwork")
    assert pod_security_restricted_problems(base_pod) == []


@needs_kubectl
def test_a_second_instance_overlay_installs_beside_the_base(workspace: Workspace) -> None:
    """The README's second-instance overlay: its own instance and Lease (granted), nothing that replaces an object of
    the base (cluster-scoped names prefixed, namespaced ones in its own namespace)."""
    second = workspace.overlay("second-instance", readme_overlay("second-instance"))
    base = render(DEPLOY)
    assert flag(controller_container(second)["args"], "--instance") == "hypervisors"
    assert lease_name(second) == "hypervisors"
    assert rbac_problems(second) == [] and consistency_problems(second) == []

    def key(obj: Obj) -> tuple[str, str, str]:
        return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    assert not {key(o) for o in second} & {key(o) for o in base}


@needs_kubectl
def test_namespace_override_moves_everything(workspace: Workspace) -> None:
    objs = workspace.overlay("team-infra", NAMESPACE_OVERLAY)
    assert one(objs, "Namespace")["metadata"]["name"] == "team-infra"
    assert consistency_problems(objs) == [] and rbac_problems(objs) == []


@needs_kubectl
@pytest.mark.parametrize("name", ["config-secret", "kube-system", "monitoring", "own-image"])
def test_readme_overlay_renders_where_the_readme_puts_it(name: str, tmp_path: Path) -> None:
    """Pasted as deploy/README.md says (``my-cluster/`` next to the clone ``ovirt-cloudprovider/``), each snippet
    renders with ``kubectl kustomize``; the text names the same path as the snippets."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    said = re.search(r"`resources: \[([^\]]+)\]`", text)
    assert said, "deploy/README.md does not say where overlays live"
    snippet = readme_overlay(name)
    objs = Workspace(tmp_path).overlay("my-cluster", snippet, CONFIG_FILES)
    assert one(objs, "Deployment")["metadata"]["name"] == NAME
    assert yaml.safe_load(snippet)["resources"] == [said.group(1)], f"overlay {name!r}: not {said.group(1)}"
    for image in yaml.safe_load(snippet).get("images", []):  # your own build replaces the base's image
        assert controller_container(objs)["image"] == f"{image['newName']}:{image['newTag']}"


def test_kustomization_header_names_what_exists() -> None:
    """The comment at the top of deploy/kustomization.yaml names only paths that exist and every component."""
    header = "".join(
        line for line in (DEPLOY / "kustomization.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
        if line.startswith("#")
    )
    for path in re.findall(r"\b((?:deploy/|components/|examples/|prometheus/)[\w./-]*\w)", header):
        rel = path.removeprefix("deploy/")
        assert (DEPLOY / rel).exists(), f"deploy/kustomization.yaml names {path}, which does not exist"
    components = sorted(p.name for p in (DEPLOY / "components").iterdir() if (p / "kustomization.yaml").is_file())
    missing = [c for c in components if f"components/{c}" not in header]
    assert missing == [], f"deploy/kustomization.yaml's header does not list the components {missing}"


def _ini_paths(conf_text: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string(conf_text)
    connection = parser["connection"]
    return {key: connection[key] for key in ("password_file", "ca_file") if key in connection}


def test_secret_example_matches_the_deployment(base: list[Obj]) -> None:
    (secret,) = load_yaml_file(DEPLOY / "secret.example.yaml")
    pod = one(base, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "secret" in v)
    assert secret["metadata"]["name"] == volume["secret"]["secretName"] == CONFIG_SECRET
    assert secret["metadata"]["namespace"] == one(base, "Deployment")["metadata"]["namespace"]
    data = secret["stringData"]
    assert Path(DEFAULT_CONFIG_PATH).name in data
    mount = next(m for m in controller_container(base)["volumeMounts"] if m["name"] == volume["name"])
    for key, path in _ini_paths(data[Path(DEFAULT_CONFIG_PATH).name]).items():
        # password_file and ca_file point at keys of the same Secret, in the mounted directory
        assert str(Path(path).parent) == mount["mountPath"], f"{key} = {path} is outside {mount['mountPath']}"
        assert Path(path).name in data, f"{key} = {path}: the Secret has no key {Path(path).name}"


def test_readme_config_example_matches_the_generator() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    ini = re.search(r"```ini\n(.*?)```", text, re.S)
    assert ini
    files = set(yaml.safe_load(readme_overlay("config-secret"))["secretGenerator"][0]["files"])
    for key, path in _ini_paths(ini.group(1)).items():
        assert Path(path).name in files, f"README: {key} = {path} is not generated into the Secret"


def example_secret_data(source: str) -> dict[str, str]:
    if source == "secret.example.yaml":
        (secret,) = load_yaml_file(DEPLOY / source)
        return dict(secret["stringData"])
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    ini = re.search(r"```ini\n(.*?)```", text, re.S)
    assert ini
    return {**CONFIG_FILES, "ovirt-cloud.conf": ini.group(1)}


@pytest.mark.parametrize("source", ["secret.example.yaml", "README.md"])
def test_example_configuration_loads_as_mounted(source: str, tmp_path: Path) -> None:
    """The example Secret, written out as the kubelet mounts it (one file per key; the mount path mapped to a
    temporary directory), is a configuration the controller accepts."""
    mount_path = str(Path(DEFAULT_CONFIG_PATH).parent)
    for key, value in example_secret_data(source).items():
        (tmp_path / key).write_text(value.replace(f"{mount_path}/", f"{tmp_path}/"), encoding="utf-8")
    config = load_config(str(tmp_path / Path(DEFAULT_CONFIG_PATH).name), environ={})
    assert config.connection.password_file == str(tmp_path / "password")
    assert config.connection.ca_file == str(tmp_path / "ca.pem")
    assert config.filters.vms
