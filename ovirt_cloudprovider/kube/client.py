"""The Kubernetes API client: building it, and reading its raw JSON answers.

- :func:`load_api_client` builds an ``ApiClient`` from its own ``Configuration`` (the client's global
  default is never touched, so several clients can live in one process): an explicit kubeconfig, the
  in-cluster service account, ``$KUBECONFIG`` or ``~/.kube/config``; nothing usable is a
  :class:`~.errors.KubeConfigError` of one line. So is a token that could not be sent as a header (a line
  break or another control character in it, e.g. pasted with its newline): every request would fail, and the
  error that http.client raises quotes the header, token included; the error names the file, never the token.
- Requests and responses are plain JSON (raw responses, see :mod:`.raw`; bodies sent with the
  ``CONTENT_*`` types); :func:`read_json` reads such an answer and releases its connection, so no
  client model object is ever built; :func:`discard` reads an answer we do not use (a patched Node's echo)
  without decoding it, and releases its connection.
- :func:`utc_now` and :func:`rfc3339`: the timestamps we write.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from kubernetes.config.kube_config import load_kube_config

from .errors import KubeConfigError, one_line

__all__ = [
    "CONTENT_JSON",
    "CONTENT_MERGE",
    "CONTENT_SMP",
    "discard",
    "load_api_client",
    "read_json",
    "rfc3339",
    "utc_now",
]

CONTENT_SMP = "application/strategic-merge-patch+json"
CONTENT_MERGE = "application/merge-patch+json"
CONTENT_JSON = "application/json"


def load_api_client(kubeconfig: str | None = None, *,
                    environ: Mapping[str, str] | None = None) -> k8s.ApiClient:
    """Build an ``ApiClient`` from, in order: ``kubeconfig`` (a path), the in-cluster service account
    (when ``KUBERNETES_SERVICE_HOST`` is set), ``$KUBECONFIG``, ``~/.kube/config``.

    Every client gets its own ``Configuration``; the client library's global default is never changed.
    The in-cluster token is re-read when it rotates (the client's refresh hook). Raises
    :class:`KubeConfigError` with one line naming the file when nothing usable is found.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    cfg = k8s.Configuration()
    if kubeconfig:
        _load_kubeconfig(kubeconfig, cfg)
    elif env.get("KUBERNETES_SERVICE_HOST"):
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=SERVICE_TOKEN_FILENAME, cert_filename=SERVICE_CERT_FILENAME,
            try_refresh_token=True, environ=env)
        try:
            loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
        except Exception as exc:  # ConfigException, OSError: report, never a traceback
            raise KubeConfigError(
                f"in-cluster configuration ({SERVICE_TOKEN_FILENAME}): {one_line(exc)}") from None
    elif env.get("KUBECONFIG"):
        _load_kubeconfig(env["KUBECONFIG"], cfg)
    else:
        home = env.get("HOME") or os.path.expanduser("~")
        default = os.path.join(home, ".kube", "config")
        if not os.path.exists(default):
            raise KubeConfigError(
                f"no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST unset), "
                f"$KUBECONFIG unset and {default} does not exist; use --kubeconfig PATH")
        _load_kubeconfig(default, cfg)
    _check_token(cfg, kubeconfig or (SERVICE_TOKEN_FILENAME if env.get("KUBERNETES_SERVICE_HOST")
                                     else env.get("KUBECONFIG") or "~/.kube/config"))
    if hasattr(cfg, "keep_alive"):
        cfg.keep_alive = True  # TCP keepalive: long watches through idle proxies are not cut silently
    return k8s.ApiClient(configuration=cfg)


def _check_token(cfg: k8s.Configuration, source: str) -> None:
    """A KubeConfigError naming ``source`` (never the value) when a credential header holds a control character."""
    for value in (cfg.api_key or {}).values():
        if any(ord(c) < 32 or ord(c) == 127 for c in str(value)):
            raise KubeConfigError(f"{source}: invalid kubeconfig: the user's token contains a line break or another "
                                  "control character (not shown); remove it")


def _load_kubeconfig(path: str, cfg: k8s.Configuration) -> None:
    paths = [p for p in path.split(os.pathsep) if p]
    existing = [p for p in paths if os.path.exists(os.path.expanduser(p))]
    if not existing:
        raise KubeConfigError(f"{path}: kubeconfig file not found")
    try:
        # persist_config=False: never write back to the user's kubeconfig.
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=cfg, persist_config=False)
    except Exception as exc:  # ConfigException, YAMLError, OSError, KeyError...: one line, no traceback
        raise KubeConfigError(f"{path}: invalid kubeconfig: {one_line(exc)}") from None


def read_json(resp: Any) -> dict[str, Any]:
    """Read a raw response body (:mod:`.raw`) as a JSON object and release it."""
    try:
        data = resp.data
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()
    if not data:
        return {}
    doc = json.loads(data)
    return doc if isinstance(doc, dict) else {}


def discard(resp: Any) -> None:
    """Read a raw response body (:mod:`.raw`) that is not needed, without decoding it, and release it (read to the
    end, its keep-alive connection goes back to the pool)."""
    try:
        resp.data  # noqa: B018 - reading is the point
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
