"""What the HTTP side needs of the simulator: :class:`Backend`, the protocol :class:`~.simulator.KubeApiSimulator`
implements and :mod:`.handler` is written against (so neither module imports the other's, and there is no
import cycle between them).

The handler reads the authentication settings (tokens, RBAC policy), records every request, applies the
injected faults and latencies, serves the verbs through the ``op_*`` methods and keeps its watches in the set
the simulator ends on ``stop``.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from .constants import Obj
from .faults import RequestRecord, _Fault, _Latency, _Request, _Watch
from .rbac import Denial, RbacPolicy
from .store import Store


class Backend(Protocol):
    """The simulator as the request handler sees it."""

    token: str | None
    admin_token: str | None
    users: dict[str, str]
    rbac: RbacPolicy | None
    host: str
    bookmark_interval: float
    watch_timeout: float
    store: Store
    forbidden: list[Denial]
    _records: list[RequestRecord]
    _faults: list[_Fault]
    _latency: list[_Latency]
    _watches: set[_Watch]
    _lock: threading.RLock
    _stopping: bool

    @property
    def port(self) -> int: ...

    def op_get(self, req: _Request) -> Obj: ...

    def op_list(self, req: _Request) -> tuple[list[Obj], Obj]: ...

    def op_create(self, req: _Request, body: Any) -> tuple[Obj, int]: ...

    def op_update(self, req: _Request, body: Any) -> tuple[Obj, int]: ...

    def op_patch(self, req: _Request, raw: bytes, content_type: str) -> Obj: ...

    def op_delete(self, req: _Request, body: Any) -> Obj: ...

    def op_delete_collection(self, req: _Request, body: Any) -> Obj: ...

    def list_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj: ...

    def table_body(self, req: _Request, items: list[Obj], meta: Obj) -> Obj: ...

    def _wait_for_rv(self, rv: int) -> None: ...

    def _parse_rv(self, value: str) -> int: ...
