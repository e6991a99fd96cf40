"""Request records, injected faults and latency, watch registrations, parsed requests and continue tokens."""

from __future__ import annotations

import base64
import dataclasses
import json
import socket

from .constants import ADMIN_USER, Obj
from .errors import err_bad_request
from .resources import ResourceType

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered (``resource`` is e.g. "nodes" or "nodes/status"; None for
    discovery and other non-resource paths); ``received`` is the ``time.monotonic()`` at which its request
    line and headers had arrived (a test compares it with the client's deadlines, on the same clock)."""

    method: str
    path: str
    verb: str
    resource: str | None
    namespace: str
    name: str
    code: int
    user: str
    received: float = 0.0


@dataclasses.dataclass
class _Fault:
    kind: str  # "error" | "throttle" | "conflict"
    remaining: int
    code: int
    verb: str | None
    resource: str | None
    retry_after: int | None = None
    message: str | None = None
    name: str | None = None

    def matches(self, verb: str, resource: str, name: str = "") -> bool:
        if self.kind == "conflict" and verb not in ("update", "patch", "delete"):
            return False
        return ((self.verb is None or self.verb == verb) and (self.resource is None or self.resource == resource)
                and (self.name is None or self.name == name))


@dataclasses.dataclass
class _Latency:
    seconds: float
    verb: str | None
    resource: str | None


class _Watch:
    def __init__(self, resource: str, conn: socket.socket) -> None:
        self.resource = resource
        self.conn = conn
        self.dropped = False
        self.abrupt = False


@dataclasses.dataclass
class _Request:
    """What kube-apiserver's RequestInfo resolver makes of a resource request."""

    rt: ResourceType
    verb: str
    namespace: str
    name: str
    subresource: str
    query: dict[str, str]
    user: str = ADMIN_USER
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def resource(self) -> str:
        return f"{self.rt.name}/{self.subresource}" if self.subresource else self.rt.name

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def key_ns(self) -> str:
        return self.namespace if self.rt.namespaced else ""


_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int) or not isinstance(d.get("start"), str):
            raise ValueError("bad token")
        return int(d["rv"]), str(d["start"])
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise err_bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                              "(version meta.k8s.io/v1)") from None


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _partial(rt: ResourceType, obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}
