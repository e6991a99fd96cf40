"""Stand-ins for the controller's node-cache and writer ports, for loop tests that need a real engine only.

They implement our own protocols (``controller._Cache``, ``controller._Writer``), not any client library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ovirt_cloudprovider.core.records import Action, ApplyResult, ObservedNode


class Cache:
    """An always-synced, empty node cache."""

    synced = True

    def nodes(self) -> tuple[ObservedNode, ...]:
        return ()


class Writer:
    """Records the actions it is given and reports them all applied."""

    def __init__(self) -> None:
        self.actions: list[Action] = []

    def apply(self, actions: Sequence[Action], *, may_write: Callable[[], bool] | None = None,
              more: Callable[[], Sequence[Action]] | None = None) -> ApplyResult:
        applied = list(actions)
        while more is not None and (extra := more()):  # a sweep's extension: until it has nothing more
            applied.extend(extra)
        self.actions.extend(applied)
        return ApplyResult(applied=len(applied))
