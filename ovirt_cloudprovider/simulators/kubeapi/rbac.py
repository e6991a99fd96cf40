"""RBAC: ClusterRole/Role rules from YAML, authorization decisions and recorded denials."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


@dataclasses.dataclass(frozen=True)
class PolicyRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> PolicyRule:
        def strs(k: str) -> tuple[str, ...]:
            return tuple(str(x) for x in (d.get(k) or ()))

        return PolicyRule(strs("verbs"), strs("apiGroups"), strs("resources"), strs("resourceNames"),
                          strs("nonResourceURLs"))

    def allows(self, verb: str, group: str, resource: str, subresource: str, name: str) -> bool:
        if not ("*" in self.verbs or verb in self.verbs):
            return False
        if not ("*" in self.api_groups or group in self.api_groups):
            return False
        combined = f"{resource}/{subresource}" if subresource else resource
        ok = False
        for r in self.resources:
            if r in ("*", combined) or (subresource and r == f"*/{subresource}"):
                ok = True
                break
        if not ok:
            return False
        return not self.resource_names or name in self.resource_names


@dataclasses.dataclass(frozen=True)
class Denial:
    """A request that RBAC refused (see :attr:`KubeApiSimulator.forbidden`)."""

    user: str
    verb: str
    api_group: str
    resource: str
    subresource: str
    name: str
    namespace: str
    message: str

    def __str__(self) -> str:
        return self.message


class RbacPolicy:
    """RBAC as kube-apiserver's authorizer applies it, loaded from ClusterRole/Role/(Cluster)RoleBinding YAML.

    ``service_account`` ("namespace:name") is the identity the simulator's bearer token stands for; its
    user name is ``system:serviceaccount:NAMESPACE:NAME`` with the groups ``system:serviceaccounts``,
    ``system:serviceaccounts:NAMESPACE`` and ``system:authenticated``. Discovery (/version, /api, /apis,
    ...) is always allowed to authenticated users, as the default ``system:discovery`` role does.
    """

    # complexity: one branch per RBAC object kind and subject kind
    def __init__(self, objects: Iterable[Mapping[str, Any]], *, service_account: str = "",  # noqa: C901
                 user: str = "", groups: Sequence[str] = (), default_namespace: str = "default") -> None:
        if service_account:
            ns, _, name = service_account.partition(":")
            if not ns or not name:
                raise ValueError(f"service_account must be NAMESPACE:NAME, got {service_account!r}")
            self.user = f"system:serviceaccount:{ns}:{name}"
            self.groups: tuple[str, ...] = ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                            "system:authenticated")
        else:
            if not user:
                raise ValueError("RbacPolicy needs service_account or user")
            self.user, self.groups = user, (*groups, "system:authenticated")
        self.cluster_roles: dict[str, list[PolicyRule]] = {}
        self.roles: dict[tuple[str, str], list[PolicyRule]] = {}
        self.cluster_bindings: list[tuple[str, str, list[Mapping[str, Any]]]] = []
        self.bindings: list[tuple[str, str, str, list[Mapping[str, Any]]]] = []  # ns, roleKind, roleName, subjects
        aggregations: list[tuple[str, list[Mapping[str, Any]]]] = []
        labels_of: dict[str, Mapping[str, str]] = {}
        for obj in objects:
            if not isinstance(obj, Mapping):
                continue
            kind = obj.get("kind")
            meta = obj.get("metadata") or {}
            name = str(meta.get("name", ""))
            ns = str(meta.get("namespace") or default_namespace)
            rules = [PolicyRule.from_dict(r) for r in obj.get("rules") or []]
            if kind == "ClusterRole":
                self.cluster_roles[name] = rules
                labels_of[name] = meta.get("labels") or {}
                agg = (obj.get("aggregationRule") or {}).get("clusterRoleSelectors")
                if agg:
                    aggregations.append((name, list(agg)))
            elif kind == "Role":
                self.roles[(ns, name)] = rules
            elif kind == "ClusterRoleBinding":
                ref = obj.get("roleRef") or {}
                self.cluster_bindings.append((str(ref.get("kind", "")), str(ref.get("name", "")),
                                              list(obj.get("subjects") or [])))
            elif kind == "RoleBinding":
                ref = obj.get("roleRef") or {}
                self.bindings.append((ns, str(ref.get("kind", "")), str(ref.get("name", "")),
                                      list(obj.get("subjects") or [])))
        for name, selectors in aggregations:
            for other, labels in labels_of.items():
                if other == name:
                    continue
                for sel in selectors:
                    match = sel.get("matchLabels") or {}
                    if match and all(labels.get(k) == v for k, v in match.items()):
                        self.cluster_roles[name] = self.cluster_roles[name] + self.cluster_roles[other]
                        break

    @classmethod
    def from_yaml_text(cls, text: str, **kw: Any) -> RbacPolicy:
        return cls([d for d in yaml.safe_load_all(text) if d], **kw)

    @classmethod
    def from_yaml_files(cls, paths: Iterable[str | Path], **kw: Any) -> RbacPolicy:
        """Load every ClusterRole, Role, ClusterRoleBinding and RoleBinding in the (multi-document) files;
        other kinds are ignored. ``default_namespace`` stands in for a namespace kustomize would set."""
        docs: list[Mapping[str, Any]] = []
        for p in paths:
            for d in yaml.safe_load_all(Path(p).read_text(encoding="utf-8")):
                if isinstance(d, Mapping):
                    docs.extend(d.get("items") or [] if d.get("kind") == "List" else [d])
        return cls(docs, **kw)

    @classmethod
    def from_kustomize(cls, directory: str | Path, *, kubectl: str = "kubectl", **kw: Any) -> RbacPolicy:
        """Render ``directory`` with ``kubectl kustomize`` (namespaces as kustomize sets them) and load it."""
        import subprocess

        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                             check=False)
        if out.returncode != 0:
            raise ValueError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
        return cls.from_yaml_text(out.stdout, **kw)

    def _subject_matches(self, subjects: Sequence[Mapping[str, Any]], binding_ns: str) -> bool:
        for s in subjects:
            kind = s.get("kind")
            name = s.get("name", "")
            if kind == "ServiceAccount":
                if f"system:serviceaccount:{s.get('namespace') or binding_ns}:{name}" == self.user:
                    return True
            elif (kind == "User" and name == self.user) or (kind == "Group" and name in self.groups):
                return True
        return False

    def rules_for(self, namespace: str) -> list[PolicyRule]:
        """The rules that apply to the policy's user for a request in ``namespace`` ("" = cluster scope)."""
        out: list[PolicyRule] = []
        for kind, name, subjects in self.cluster_bindings:
            if kind == "ClusterRole" and self._subject_matches(subjects, ""):
                out.extend(self.cluster_roles.get(name, []))
        if namespace:
            for ns, kind, name, subjects in self.bindings:
                if ns != namespace or not self._subject_matches(subjects, ns):
                    continue
                if kind == "Role":
                    out.extend(self.roles.get((ns, name), []))
                elif kind == "ClusterRole":
                    out.extend(self.cluster_roles.get(name, []))
        return out

    def allows(self, verb: str, api_group: str, resource: str, subresource: str = "", name: str = "",
               namespace: str = "") -> bool:
        return any(r.allows(verb, api_group, resource, subresource, name) for r in self.rules_for(namespace))
