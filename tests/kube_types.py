"""Typed access to the official ``kubernetes`` client for tests (mypy --strict runs over the tests too).

The client's models type every field ``Optional`` and its API methods name a model for the body, although they
take a JSON-ready dict as well (``ApiClient.sanitize_for_serialization`` passes dicts through, the way our
product code sends them); its ``watch`` module and ``ApiClient.close`` have no annotations. These helpers say
what a test expects instead of silencing the checker:

- :func:`wire`: a dict body for a method annotated with a model (the product code's ``cast(Any, body)``).
- :func:`meta` / :func:`list_meta`: an object's ``metadata``, asserted present (a server always sends it).
- :func:`name_of`: ``metadata.name``, asserted present.
- :func:`watch_stream`: ``watch.Watch().stream(...)``, typed; :func:`close`: ``ApiClient.close()``, typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, cast

from kubernetes import client, watch


class _HasMeta(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


class _HasListMeta(Protocol):
    @property
    def metadata(self) -> client.V1ListMeta | None: ...


def wire(body: Mapping[str, Any]) -> Any:
    """``body`` for a client method whose annotation names a model: the client serializes a dict as it is."""
    return cast(Any, body)


def meta(obj: _HasMeta) -> client.V1ObjectMeta:
    """``obj.metadata``, which a server always returns."""
    m = obj.metadata
    assert m is not None, obj
    return m


def list_meta(obj: _HasListMeta) -> client.V1ListMeta:
    """A list's ``metadata`` (resourceVersion, continue), which a server always returns."""
    m = obj.metadata
    assert m is not None, obj
    return m


def watch_stream(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """``watch.Watch().stream(func, *args, **kwargs)``: its events, ``{"type": ..., "object": ...}``."""
    w = watch.Watch()  # type: ignore[no-untyped-call]  # kubernetes.watch has no annotations
    return cast(Iterator[dict[str, Any]], w.stream(func, *args, **kwargs))  # type: ignore[no-untyped-call]


def close(api: client.ApiClient) -> None:
    """``api.close()`` (unannotated in the client): its connection pool and thread pool."""
    api.close()  # type: ignore[no-untyped-call]


def name_of(obj: _HasMeta) -> str:
    """``obj.metadata.name``, which every stored object has."""
    n = meta(obj).name
    assert n is not None, obj
    return n
