"""Versions, defaults and limits of the simulated kube-apiserver, the JSON object type and the TLS files."""

from __future__ import annotations

import importlib.resources
import logging
from typing import Any

log = logging.getLogger("ovirt_cloudprovider.simulators.kubeapi")

Obj = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-04-22T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
KUBELET_VERSION = "v1.36.0"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")
MAX_JSON_PATCH_OPERATIONS = 10000
WATCH_TOO_LARGE_WAIT = 3.0


def _tls_file(name: str) -> str:
    return str(importlib.resources.files("ovirt_cloudprovider.simulators") / "tls" / name)
