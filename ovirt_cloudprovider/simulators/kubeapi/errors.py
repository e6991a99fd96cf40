"""kube-apiserver's errors: :class:`ApiError` with a ``Status`` body, field errors and their messages."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .constants import Obj


class ApiError(Exception):
    """A request failed; carries the ``Status`` object kube-apiserver would send."""

    def __init__(self, status: Obj, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.code = int(status.get("code", 500))
        self.reason = str(status.get("reason", ""))
        self.headers = dict(headers or {})


def status_failure(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    st: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    if reason:
        st["reason"] = reason
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


def _details(name: str, group: str, kind: str, **extra: Any) -> Obj:
    d: Obj = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update(extra)
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def err_not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(status_failure(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                                   _details(name, group, resource)))


def err_already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(status_failure(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                                   _details(name, group, resource)))


def err_conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(status_failure(
        409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource)))


CONFLICT_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def err_bad_request(message: str) -> ApiError:
    return ApiError(status_failure(400, "BadRequest", message))


def err_expired(message: str) -> ApiError:
    return ApiError(status_failure(410, "Expired", message))


def err_method_not_allowed() -> ApiError:
    return ApiError(status_failure(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource", {}))


def err_resource_not_found() -> ApiError:
    return ApiError(status_failure(404, "NotFound", "the server could not find the requested resource", {}))


def err_internal(message: str) -> ApiError:
    return ApiError(status_failure(500, "InternalError", f"Internal error occurred: {message}",
                                   {"causes": [{"message": message}]}))


def err_unprocessable(message: str) -> ApiError:
    """What kube-apiserver answers when a JSON patch cannot be applied (NewGenericServerResponse 422)."""
    return ApiError(status_failure(422, "Invalid", "the server rejected our request due to an error in our request",
                                   {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]}))


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One ``field.Error`` of k8s.io/apimachinery: renders exactly like the Go type."""

    type: str  # "Invalid value", "Required value", "Unsupported value", "Forbidden", "Duplicate value", "Too long"
    field: str
    value: Any = None
    detail: str = ""

    _CAUSE = {"Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired",
              "Unsupported value": "FieldValueNotSupported", "Forbidden": "FieldValueForbidden",
              "Duplicate value": "FieldValueDuplicate", "Too long": "FieldValueTooLong",
              "Not found": "FieldValueNotFound", "Too many": "FieldValueTooMany"}

    def body(self) -> str:
        if self.type in ("Required value", "Forbidden", "Too long", "Internal error"):
            s = self.type
        else:
            s = f"{self.type}: {_go_value(self.value)}"
        if self.detail:
            s += ": " + self.detail
        return s

    def error(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> Obj:
        return {"reason": self._CAUSE.get(self.type, self.type), "message": self.body(), "field": self.field}


class GoRaw(str):
    """A field error value printed as is (Go's %#v of a non-string, e.g. ``0x0``)."""


def _go_value(value: Any) -> str:
    if isinstance(value, GoRaw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def err_invalid(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    agg = errors[0].error() if len(errors) == 1 else "[" + ", ".join(e.error() for e in errors) + "]"
    return ApiError(status_failure(422, "Invalid", f'{qualified} "{name}" is invalid: {agg}',
                                   _details(name, group, kind, causes=[e.cause() for e in errors])))
