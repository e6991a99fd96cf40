"""The autoscaler's deployment: deploy/components/autoscaler (kustomize) and the chart's ``autoscaler.enabled``.

Rendered with ``kubectl kustomize`` through overlays laid out as deploy/README.md says (its documented
``autoscaler`` overlay among them) and with the chart; every rendering validates against the Kubernetes schemas,
the controller's objects pass the controller's own checks unchanged, and the autoscaler's objects pass
``autoscaler_problems``: hardened like the controller, mTLS wired to a Secret of its own, engine credentials in a
Secret of its own (never the controller's), no Kubernetes API access at all (no token, no role bound), exactly one
replica with strategy Recreate (the min_size guard of deletions is one process's), Services selecting exactly its
pods, the critical-pods quota counting it. The default renders
hold no autoscaler object. The documents' pieces (the node-group configuration, the user data, the cert-manager
certificates, the cluster-autoscaler's cloud-config) are checked against the rendered objects.

Every check is a function returning problems, and each is shown to fail on a broken copy.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovirt_cloudprovider.cli import build_parser
from ovirt_cloudprovider.config import load_config
from ovirt_cloudprovider.core.settings import DEFAULT_CONFIG_PATH
from tests.deploy.test_deploy import (
    CLONE,
    CLUSTER_SCOPED,
    COMMON_LABELS,
    CONFIG_FILES,
    CONFIG_SECRET,
    DEPLOY,
    HOSTNETWORK_OVERLAY,
    METRICS_PORT,
    MONITORING_OVERLAY,
    NAME,
    SCHEMA_VERSIONS,
    SERVICEMONITOR_OVERLAY,
    Obj,
    Workspace,
    by_kind,
    consistency_problems,
    container_security_problems,
    controller_container,
    deployment_problems,
    flag,
    needs_kubectl,
    one,
    pod_security_restricted_problems,
    rbac_problems,
    readme_overlay,
    render,
    schema_problems,
    selects,
)
from tests.helpers import REPO

COMPONENT = DEPLOY / "components" / "autoscaler"
AUTOSCALER = "ovirt-cloudprovider-autoscaler"
AUTOSCALER_SECRET = "ovirt-cloud-autoscaler-config"
TLS_SECRET = "ovirt-cloudprovider-autoscaler-tls"
GRPC_PORT = 8086
POD_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "autoscaler"}
AUTOSCALER_KINDS = ["Deployment", "Service", "Service", "ServiceAccount"]
# What the cluster-autoscaler's externalgrpc provider reads from its --cloud-config (cloudConfig in
# cluster-autoscaler/cloudprovider/externalgrpc/externalgrpc_cloud_provider.go, kubernetes/autoscaler).
CLOUD_CONFIG_KEYS = {"address", "key", "cert", "cacert", "grpc_timeout"}

AUTOSCALER_OVERLAY = SERVICEMONITOR_OVERLAY.replace("servicemonitor", "autoscaler")
AUTOSCALER_FILES = {
    **CONFIG_FILES,
    "autoscaler.conf": "[connection]\nuri = https://engine.example.com/ovirt-engine/api\n"
    "username = k8s-autoscaler@internal\npassword_file = /etc/ovirt/password\nca_file = /etc/ovirt/ca.pem\n\n"
    "[autoscaler]\nmark_key_file = /etc/ovirt/mark-key\n\n"
    "[nodegroup workers]\ntemplate = k8s-node\ncluster = east-a\nmax_size = 3\n"
    "user_data_file = /etc/ovirt/workers-user-data.yaml\n",
    "autoscaler-password": "not-a-real-password-either\n",
    "mark-key": "bm90LWEtcmVhbC1tYXJrLWtleS1qdXN0LWZvci10ZXN0cw==\n",
    "workers-user-data.yaml": "#cloud-config\nruncmd:\n  - kubeadm join --config /etc/kubernetes/join.yaml\n",
}


def is_autoscaler(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") == "autoscaler")


def controller_part(objs: list[Obj]) -> list[Obj]:
    """The objects of a rendering that are not the autoscaler's (what the controller's checks look at)."""
    return [obj for obj in objs if not is_autoscaler(obj)]


def autoscaler_part(objs: list[Obj]) -> list[Obj]:
    return [obj for obj in objs if is_autoscaler(obj)]


def autoscaler_deployment(objs: list[Obj]) -> Obj:
    return one(autoscaler_part(objs), "Deployment")


def autoscaler_container(objs: list[Obj]) -> Obj:
    pod = autoscaler_deployment(objs)["spec"]["template"]["spec"]
    found: list[Obj] = [c for c in pod["containers"] if c["name"] == AUTOSCALER]
    assert len(found) == 1, f"the autoscaler Deployment has no container named {AUTOSCALER}"
    return found[0]


# --- the checks ---------------------------------------------------------------------------------------------

# complexity: a checklist: one independent check per hardening rule
def autoscaler_pod_problems(objs: list[Obj]) -> list[str]:  # noqa: C901
    """The autoscaler's Deployment: replicas, selector and labels, hardening, no token, placement, probes,
    resources, the controller's image."""
    deployment = autoscaler_deployment(objs)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    problems: list[str] = []
    if spec.get("replicas") != 1:
        problems.append(f"replicas must be 1 (two replicas' deletions could together go below min_size), not "
                        f"{spec.get('replicas')!r}")
    if spec.get("strategy", {}).get("type") != "Recreate":
        problems.append("strategy must be Recreate: a rolling update would run two replicas at once")
    if not selects(spec["selector"], labels):
        problems.append("the autoscaler's selector does not select its own pods")
    for key, value in {**POD_LABELS, **COMMON_LABELS}.items():
        if labels.get(key) != value:
            problems.append(f"pod label {key} must be {value}")
    controller = one(controller_part(objs), "Deployment")
    if selects(spec["selector"], controller["spec"]["template"]["metadata"]["labels"]) or selects(
            controller["spec"]["selector"], labels):
        problems.append("the autoscaler's and the controller's selectors overlap")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        problems.extend(container_security_problems(container, pod))
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("the autoscaler never calls the Kubernetes API: automountServiceAccountToken must be false")
    if pod.get("hostNetwork"):
        problems.append("the autoscaler has no reason for host networking")
    if pod.get("priorityClassName") != "system-cluster-critical":
        problems.append("priorityClassName must be system-cluster-critical (a full cluster must not preempt it)")
    tolerated = {(t.get("key"), t.get("effect")) for t in pod.get("tolerations", [])}
    if not tolerated & {("node-role.kubernetes.io/control-plane", "NoSchedule"),
                        ("node-role.kubernetes.io/control-plane", None)}:
        problems.append("no toleration for the control-plane taint (a group scaled to zero leaves only those)")
    if spec.get("replicas", 1) > 1 and not any(
            c.get("topologyKey") == "kubernetes.io/hostname" and selects(c.get("labelSelector", {}), labels)
            for c in pod.get("topologySpreadConstraints", [])):
        problems.append("no topologySpreadConstraint across kubernetes.io/hostname selecting the pods")
    container = next((c for c in pod["containers"] if c["name"] == AUTOSCALER), None)
    if container is None:
        return [*problems, f"no container named {AUTOSCALER}"]
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                             ("startupProbe", "/healthz")):
        get = container.get(probe_name, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", METRICS_PORT):
            problems.append(f"{probe_name} must GET {path} on the metrics port")
    resources = container.get("resources", {})
    for key in ("cpu", "memory"):
        if key not in resources.get("requests", {}):
            problems.append(f"no {key} request")
    if "memory" not in resources.get("limits", {}):
        problems.append("no memory limit")
    if container["image"] != controller_container(controller_part(objs))["image"]:
        problems.append(f"image {container['image']} is not the controller's (one image runs both)")
    return problems


def _mount_of(container: Obj, path: str) -> Obj | None:
    return next((m for m in container.get("volumeMounts", [])
                 if path.startswith(m["mountPath"].rstrip("/") + "/")), None)


def _secret_behind(pod: Obj, container: Obj, path: str, what: str, problems: list[str]) -> str:
    """The Secret mounted (read-only, whole) where ``path`` lives; "" with a problem when there is none."""
    mount = _mount_of(container, path)
    if mount is None:
        problems.append(f"{what} {path!r}: no volume is mounted there")
        return ""
    if "subPath" in mount:
        problems.append(f"{what}: the Secret must be mounted without subPath (else rotations never arrive)")
    if not mount.get("readOnly"):
        problems.append(f"{what}: the mount must be read-only")
    volume: Obj = next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), {})
    name = str(volume.get("secret", {}).get("secretName", ""))
    if not name:
        problems.append(f"{what} {path!r}: not from a Secret")
    return name


def autoscaler_command_problems(objs: list[Obj]) -> list[str]:
    """``ovirt-cloudprovider autoscaler`` with mTLS (never --insecure-grpc), its own configuration Secret, the TLS
    Secret, the gRPC and metrics ports as the container declares them."""
    pod = autoscaler_deployment(objs)["spec"]["template"]["spec"]
    container = autoscaler_container(objs)
    args = container.get("args", [])
    problems: list[str] = []
    if [*container.get("command", []), *args][:2] != ["ovirt-cloudprovider", "autoscaler"]:
        problems.append("the container must run `ovirt-cloudprovider autoscaler`")
    if any(a == "--insecure-grpc" or a.startswith("--insecure-grpc=") for a in args):
        problems.append("--insecure-grpc: whoever reaches the port could create and remove VMs")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    if not (flag(args, "--grpc-bind-address") or "").endswith(f":{ports.get('grpc')}"):
        problems.append("--grpc-bind-address does not listen on the container port 'grpc'")
    if not (flag(args, "--metrics-bind-address") or "").endswith(f":{ports.get('metrics')}"):
        problems.append("--metrics-bind-address does not listen on the container port 'metrics'")
    config = flag(args, "--config") or ""
    if config != DEFAULT_CONFIG_PATH:
        problems.append(f"--config {config!r} is not the documented path {DEFAULT_CONFIG_PATH}")
    secret = _secret_behind(pod, container, config, "--config", problems)
    controller_pod = one(controller_part(objs), "Deployment")["spec"]["template"]["spec"]
    controller_secrets = {v["secret"]["secretName"] for v in controller_pod.get("volumes", []) if "secret" in v}
    if secret in controller_secrets:
        problems.append(f"--config comes from the controller's Secret {secret}: the autoscaler has its own "
                        "engine user (the controller's stays read-only)")
    tls = {}
    for name, key in (("--tls-cert-file", "tls.crt"), ("--tls-private-key-file", "tls.key"),
                      ("--client-ca-file", "ca.crt")):
        value = flag(args, name)
        if value is None:
            problems.append(f"{name} missing: the gRPC service must require mutual TLS")
            continue
        if Path(value).name != key:
            problems.append(f"{name} {value}: not the Secret key {key}")
        tls[name] = _secret_behind(pod, container, value, name, problems)
    if len(set(tls.values())) > 1 or secret in tls.values():
        problems.append(f"the TLS files must come from one Secret of their own, not {sorted(set(tls.values()))}")
    if not any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])):
        problems.append("a read-only root filesystem needs an emptyDir on /tmp")
    return problems


# complexity: a checklist: one independent check per cross-object rule
def autoscaler_wiring_problems(objs: list[Obj]) -> list[str]:  # noqa: C901
    """The autoscaler's objects next to the controller's: one namespace, the common labels, a ServiceAccount no
    role is bound to, the gRPC ClusterIP Service and the metrics Service selecting exactly its pods, the
    critical-pods quota counting both Deployments."""
    problems: list[str] = []
    ours = autoscaler_part(objs)
    deployment = autoscaler_deployment(objs)
    kinds = sorted(AUTOSCALER_KINDS)
    if sorted(obj["kind"] for obj in ours) != kinds:
        problems.append(f"the autoscaler's objects are {sorted(o['kind'] for o in ours)}, not {kinds}")
    namespace = one(controller_part(objs), "Deployment")["metadata"]["namespace"]
    for obj in ours:
        meta = obj["metadata"]
        if obj["kind"] not in CLUSTER_SCOPED and meta.get("namespace") != namespace:
            problems.append(f"{obj['kind']}/{meta['name']} is not in the controller's namespace {namespace}")
        for key, value in {**COMMON_LABELS, **POD_LABELS}.items():
            if meta.get("labels", {}).get(key) != value:
                problems.append(f"{obj['kind']}/{meta['name']}: label {key} must be {value}")
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    account = pod.get("serviceAccountName")
    accounts = [sa for sa in by_kind(ours, "ServiceAccount") if sa["metadata"]["name"] == account]
    if not accounts:
        problems.append(f"the autoscaler's ServiceAccount {account} is not in the manifests")
    elif accounts[0].get("automountServiceAccountToken") is not False:
        problems.append(f"ServiceAccount/{account}: automountServiceAccountToken must be false")
    if account == one(controller_part(objs), "Deployment")["spec"]["template"]["spec"].get("serviceAccountName"):
        problems.append("the autoscaler must not run as the controller's ServiceAccount")
    for binding in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding"):
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in binding.get("subjects", [])):
            problems.append(f"{binding['kind']}/{binding['metadata']['name']} grants the autoscaler Kubernetes "
                            "permissions it never uses")
    services = {s["metadata"]["name"]: s for s in by_kind(ours, "Service")}
    for svc in services.values():
        if not selects({"matchLabels": svc["spec"].get("selector", {})}, labels) or \
                svc["spec"].get("selector", {}).get("app.kubernetes.io/component") != "autoscaler":
            problems.append(f"Service/{svc['metadata']['name']} does not select exactly the autoscaler's pods")
    grpc = [s for s in services.values() if [p.get("name") for p in s["spec"]["ports"]] == ["grpc"]]
    if len(grpc) != 1 or grpc[0]["spec"].get("clusterIP") == "None" or grpc[0]["spec"].get("type") != "ClusterIP":
        problems.append("one ClusterIP (not headless) Service with the one port 'grpc' is the address to call")
    elif grpc[0]["spec"]["ports"][0].get("targetPort") != "grpc":
        problems.append("the gRPC Service must target the container port 'grpc'")
    metrics = [s for s in services.values() if [p.get("name") for p in s["spec"]["ports"]] == ["metrics"]]
    if len(metrics) != 1 or metrics[0]["spec"].get("clusterIP") != "None":
        problems.append("one headless Service with the port 'metrics' must publish every replica's metrics")
    for quota in by_kind(objs, "ResourceQuota"):
        needed = sum(d["spec"]["replicas"] + int(d["spec"]["strategy"].get("rollingUpdate", {}).get("maxSurge", 0))
                     for d in by_kind(objs, "Deployment")
                     if d["spec"]["template"]["spec"].get("priorityClassName") == "system-cluster-critical")
        if int(quota["spec"]["hard"]["pods"]) < needed:
            problems.append(f"the critical-pods quota ({quota['spec']['hard']['pods']}) is smaller than both "
                            f"Deployments' replicas + maxSurge ({needed})")
    for ns in by_kind(objs, "Namespace"):
        if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted":
            problems.extend(f"Pod Security restricted: {p}" for p in pod_security_restricted_problems(pod))
    return problems


def autoscaler_problems(objs: list[Obj]) -> list[str]:
    return autoscaler_pod_problems(objs) + autoscaler_command_problems(objs) + autoscaler_wiring_problems(objs)


def controller_problems(objs: list[Obj]) -> list[str]:
    """The controller's own checks, on the rendering without the autoscaler's objects: unchanged by it."""
    rest = controller_part(objs)
    return consistency_problems(rest) + rbac_problems(rest) + deployment_problems(rest)


# --- renderings ---------------------------------------------------------------------------------------------

def _with_component(snippet: str) -> str:
    """A README overlay snippet with the autoscaler component added."""
    data = yaml.safe_load(snippet)
    data.setdefault("components", []).append(f"../{CLONE}/deploy/components/autoscaler")
    return str(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("autoscaler-workspace"))


@pytest.fixture(scope="module")
def renderings(workspace: Workspace) -> dict[str, list[Obj]]:
    return {
        "component": workspace.overlay("autoscaler", AUTOSCALER_OVERLAY),
        "readme:autoscaler": workspace.overlay("readme-autoscaler", readme_overlay("autoscaler"), AUTOSCALER_FILES),
        "kube-system": workspace.overlay("as-kube-system", _with_component(readme_overlay("kube-system"))),
        "monitoring-ns": workspace.overlay(
            "as-monitoring-ns", "namespace: team-infra\n" + MONITORING_OVERLAY
            + f"  - ../{CLONE}/deploy/components/autoscaler\n"),
        "hostnetwork": workspace.overlay(
            "as-hostnetwork", HOSTNETWORK_OVERLAY + f"  - ../{CLONE}/deploy/components/autoscaler\n"),
    }


# --- tests: the component -----------------------------------------------------------------------------------

def test_component_files() -> None:
    comp = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text(encoding="utf-8"))
    assert comp["kind"] == "Component"
    listed = set(comp["resources"])
    assert listed == {p.name for p in COMPONENT.glob("*.yaml")} - {"kustomization.yaml"}


def test_default_renders_hold_no_autoscaler_object() -> None:
    base = render(DEPLOY)
    assert autoscaler_part(base) == []
    assert not [o for o in base if "autoscaler" in yaml.safe_dump(o)], "the base mentions the autoscaler"


@needs_kubectl
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_autoscaler_rendering_validates(renderings: dict[str, list[Obj]], version: str) -> None:
    problems = [f"{name}: {p}" for name, objs in renderings.items() for p in schema_problems(objs, version)]
    assert problems == []


@needs_kubectl
def test_every_autoscaler_rendering_follows_the_policy(renderings: dict[str, list[Obj]]) -> None:
    problems = [f"{name}: {p}" for name, objs in renderings.items()
                for p in autoscaler_problems(objs) + controller_problems(objs)]
    assert problems == []


def _kind_name(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@needs_kubectl
def test_the_component_adds_exactly_its_objects_and_the_quota(renderings: dict[str, list[Obj]]) -> None:
    base = render(DEPLOY)
    objs = copy.deepcopy(renderings["component"])
    assert controller_part(objs) != base  # the quota
    quota = one(objs, "ResourceQuota")
    assert quota["spec"]["hard"]["pods"] == "5"
    quota["spec"]["hard"]["pods"] = one(base, "ResourceQuota")["spec"]["hard"]["pods"]
    assert sorted(controller_part(objs), key=_kind_name) == sorted(base, key=_kind_name)
    assert {o["metadata"]["name"] for o in autoscaler_part(objs)} == {AUTOSCALER, f"{AUTOSCALER}-metrics"}
    volumes = autoscaler_deployment(objs)["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes if "secret" in v} == {AUTOSCALER_SECRET, TLS_SECRET}
    # into kube-system, the quota is gone (the README's overlay deletes it after the component raised it)
    assert by_kind(renderings["kube-system"], "ResourceQuota") == []
    assert {o["metadata"]["namespace"] for o in autoscaler_part(renderings["kube-system"])} == {"kube-system"}
    # host networking is the controller's matter: the autoscaler stays on the pod network
    assert not autoscaler_deployment(renderings["hostnetwork"])["spec"]["template"]["spec"].get("hostNetwork")


@needs_kubectl
def test_the_readme_overlay_generates_both_secrets(renderings: dict[str, list[Obj]], tmp_path: Path) -> None:
    """The controller keeps its Secret; the autoscaler mounts its own, generated from its own files; both load as
    the pods would read them."""
    objs = renderings["readme:autoscaler"]
    secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in by_kind(objs, "Secret")}
    assert set(secrets) == {CONFIG_SECRET, AUTOSCALER_SECRET}
    volumes = autoscaler_deployment(objs)["spec"]["template"]["spec"]["volumes"]
    mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
    assert mounted == {secrets[AUTOSCALER_SECRET]["metadata"]["name"], TLS_SECRET}
    data = {k: base64.b64decode(v).decode() for k, v in secrets[AUTOSCALER_SECRET]["data"].items()}
    assert data["ovirt-cloud.conf"] == AUTOSCALER_FILES["autoscaler.conf"]
    mount = str(Path(DEFAULT_CONFIG_PATH).parent)
    for key, value in data.items():
        (tmp_path / key).write_text(value.replace(f"{mount}/", f"{tmp_path}/"), encoding="utf-8")
    config = load_config(str(tmp_path / Path(DEFAULT_CONFIG_PATH).name), environ={})
    (group,) = config.nodegroups
    assert group.user_data_file and Path(group.user_data_file).is_file()
    assert config.autoscaler.mark_key_file and Path(config.autoscaler.mark_key_file).is_file()
    assert config.connection.username != "k8s@internal"  # not the controller's user


def test_the_cli_accepts_the_autoscaler_command_line() -> None:
    container = yaml.safe_load((COMPONENT / "deployment.yaml").read_text(encoding="utf-8"))[
        "spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.command == "autoscaler"
    assert args.config == DEFAULT_CONFIG_PATH
    assert args.grpc_bind_address == f"0.0.0.0:{GRPC_PORT}"
    assert args.metrics_bind_address == f"0.0.0.0:{METRICS_PORT}"
    assert (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file) == tuple(
        f"/etc/ovirt-autoscaler-tls/{key}" for key in ("tls.crt", "tls.key", "ca.crt"))
    assert not args.insecure_grpc


# --- tests: the checks fail when they should ----------------------------------------------------------------

def _autoscaler_obj(objs: list[Obj], kind: str, name: str = AUTOSCALER) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1
    return found[0]


def _args(objs: list[Obj]) -> list[str]:
    args: list[str] = autoscaler_container(objs)["args"]
    return args


def _pod(objs: list[Obj]) -> Obj:
    pod: Obj = autoscaler_deployment(objs)["spec"]["template"]["spec"]
    return pod


def _replace_arg(objs: list[Obj], prefix: str, value: str) -> None:
    args = _args(objs)
    (index,) = [i for i, arg in enumerate(args) if arg.startswith(prefix)]
    args[index] = prefix + value


def _bind_autoscaler(objs: list[Obj]) -> None:
    binding = copy.deepcopy(one(objs, "ClusterRoleBinding"))
    binding["metadata"]["name"] = "too-much"
    binding["subjects"] = [{"kind": "ServiceAccount", "name": AUTOSCALER, "namespace": "ovirt-cloudprovider"}]
    objs.append(binding)


BREAKAGES: list[tuple[str, Callable[[list[Obj]], Any], str]] = [
    ("token", lambda o: _pod(o).update(automountServiceAccountToken=True), "automountServiceAccountToken"),
    ("rbac", _bind_autoscaler, "grants the autoscaler"),
    ("insecure", lambda o: _args(o).append("--insecure-grpc"), "--insecure-grpc"),
    ("no-client-ca", lambda o: _args(o).remove("--client-ca-file=/etc/ovirt-autoscaler-tls/ca.crt"),
     "--client-ca-file missing"),
    ("controller-secret", lambda o: next(v for v in _pod(o)["volumes"] if v["name"] == "config")["secret"].update(
        secretName=CONFIG_SECRET), "the controller's Secret"),
    ("tls-elsewhere", lambda o: next(v for v in _pod(o)["volumes"] if v["name"] == "tls")["secret"].update(
        secretName=AUTOSCALER_SECRET), "TLS files must come from"),
    ("writable-root", lambda o: _pod(o)["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
     "readOnlyRootFilesystem"),
    ("root", lambda o: _pod(o)["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser"),
    ("grpc-port", lambda o: _replace_arg(o, "--grpc-bind-address=", "0.0.0.0:9999"), "--grpc-bind-address"),
    ("headless-grpc", lambda o: _autoscaler_obj(o, "Service")["spec"].update(clusterIP="None"), "ClusterIP"),
    ("service-selects-controller", lambda o: _autoscaler_obj(o, "Service")["spec"]["selector"].update(
        {"app.kubernetes.io/component": "controller"}), "does not select exactly"),
    ("two-replicas", lambda o: autoscaler_deployment(o)["spec"].update(replicas=2), "replicas must be 1"),
    ("rolling", lambda o: autoscaler_deployment(o)["spec"].update(strategy={"type": "RollingUpdate"}),
     "strategy must be Recreate"),
    ("quota", lambda o: one(o, "ResourceQuota")["spec"]["hard"].update(pods="3"), "quota"),
    ("probe", lambda o: _pod(o)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"),
     "readinessProbe"),
    ("image", lambda o: _pod(o)["containers"][0].update(image="example.com/other:1"), "not the controller's"),
    ("no-limit", lambda o: _pod(o)["containers"][0]["resources"].pop("limits"), "memory limit"),
    ("labels", lambda o: _autoscaler_obj(o, "ServiceAccount")["metadata"]["labels"].pop(
        "app.kubernetes.io/part-of"), "label app.kubernetes.io/part-of"),
]


@needs_kubectl
@pytest.mark.parametrize(("change", "expect"), [(c, e) for _, c, e in BREAKAGES], ids=[n for n, _, _ in BREAKAGES])
def test_autoscaler_checks_fail_when_they_should(renderings: dict[str, list[Obj]],
                                                 change: Callable[[list[Obj]], Any], expect: str) -> None:
    objs = copy.deepcopy(renderings["component"])
    assert autoscaler_problems(objs) == []
    change(objs)
    problems = autoscaler_problems(objs)
    assert any(expect in p for p in problems), problems


# --- tests: the documents -----------------------------------------------------------------------------------

README = REPO / "README.md"


def readme_block(name: str) -> str:
    """The code block of README.md marked ``<!-- autoscaler: NAME -->``."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- autoscaler: {re.escape(name)} -->\s*```\w+\n(.*?)```", text, re.S)
    assert match, f"README.md has no block marked autoscaler: {name}"
    return match.group(1)


@needs_kubectl
def test_readme_cloud_config_reaches_the_service(renderings: dict[str, list[Obj]]) -> None:
    """The cluster-autoscaler's cloud-config of the README: only keys its externalgrpc provider reads, mTLS (cert,
    key and cacert: without cert it dials in plain text), and the address of the gRPC Service."""
    cloud = yaml.safe_load(readme_block("cloud-config"))
    assert set(cloud) <= CLOUD_CONFIG_KEYS
    assert {"address", "cert", "key", "cacert"} <= set(cloud)
    objs = renderings["component"]
    service = _autoscaler_obj(objs, "Service")
    host, port = cloud["address"].rsplit(":", 1)
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert int(port) == service["spec"]["ports"][0]["port"] == GRPC_PORT
    assert re.fullmatch(r"(\d+(ms|s|m|h))+", str(cloud.get("grpc_timeout", "5s")))
    text = README.read_text(encoding="utf-8")
    assert "--cloud-provider=externalgrpc" in text and "--cloud-config=/config/cloud-config" in text


@needs_kubectl
def test_readme_cert_manager_certificates_fit(renderings: dict[str, list[Obj]]) -> None:
    """The server certificate lands in the Secret the pods mount, names the DNS name the cluster-autoscaler
    dials, and comes from the same CA issuer as the client certificate (whose CA the server trusts)."""
    docs = [d for d in yaml.safe_load_all(readme_block("cert-manager")) if d]
    certificates = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Certificate"}
    servers = [c for c in certificates.values() if "server auth" in c.get("usages", [])]
    clients = [c for c in certificates.values() if "client auth" in c.get("usages", [])]
    assert len(servers) == 1 and len(clients) == 1
    (server,), (client,) = servers, clients
    assert server["secretName"] == TLS_SECRET
    cloud = yaml.safe_load(readme_block("cloud-config"))
    assert cloud["address"].rsplit(":", 1)[0] in server["dnsNames"]
    assert server["issuerRef"] == client["issuerRef"]
    issuers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "ClusterIssuer"}
    ca = issuers[server["issuerRef"]["name"]]["ca"]["secretName"]
    assert any(c.get("isCA") and c["secretName"] == ca for c in certificates.values())
    assert Path(cloud["cert"]).parent == Path(cloud["key"]).parent == Path(cloud["cacert"]).parent
    assert {Path(cloud[k]).name for k in ("cert", "key", "cacert")} == {"tls.crt", "tls.key", "ca.crt"}


def test_readme_node_group_configuration_loads(tmp_path: Path) -> None:
    """The README's autoscaler configuration, mounted as the overlay generates it (its user data beside it),
    loads: one group with the values the text describes."""
    conf = readme_block("config")
    user_data = readme_block("user-data")
    assert user_data.startswith("#cloud-config\n")
    parsed = yaml.safe_load(user_data)
    assert any("kubeadm join" in str(cmd) for cmd in parsed["runcmd"])
    join = yaml.safe_load(parsed["write_files"][0]["content"])
    assert join["kind"] == "JoinConfiguration"
    assert {"name": "cloud-provider", "value": "external"} in join["nodeRegistration"]["kubeletExtraArgs"]
    mount = str(Path(DEFAULT_CONFIG_PATH).parent)
    files = {"ovirt-cloud.conf": conf, "password": "x\n", "ca.pem": CONFIG_FILES["ca.pem"],
             "mark-key": AUTOSCALER_FILES["mark-key"], "workers-user-data.yaml": user_data}
    generated = yaml.safe_load(readme_overlay("autoscaler"))["secretGenerator"]
    keys = {entry.split("=", 1)[0] for g in generated if g["name"] == AUTOSCALER_SECRET for entry in g["files"]}
    assert keys == set(files), "the README's overlay does not generate the files the configuration names"
    for key, value in files.items():
        (tmp_path / key).write_text(value.replace(f"{mount}/", f"{tmp_path}/"), encoding="utf-8")
    config = load_config(str(tmp_path / "ovirt-cloud.conf"), environ={})
    (group,) = config.nodegroups
    assert (group.name, group.template, group.min_size, group.max_size) == ("workers", "k8s-node", 1, 10)
    assert group.tags == ("kubernetes",)
    assert group.user_data_file == str(tmp_path / "workers-user-data.yaml")
    assert config.autoscaler.mark_key_file == str(tmp_path / "mark-key")


def test_readme_says_what_it_may_delete() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Autoscaling node groups (cluster-autoscaler)\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("min_size", "ovirt-cloudprovider-nodegroup:", "never more", "error", "hand-made VM", "mark_key_file",
                   "forged", "strategy: Recreate"):
        assert needed in section, needed
    assert "components/autoscaler" in text.split("\n## Install in a cluster\n", 1)[1].split("\n## ", 1)[0]
