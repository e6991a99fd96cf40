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

    def apply(self, actions: Sequence[Action], *, may_write: Callable[[], bool] | None = None) -> ApplyResult:
        self.actions.extend(actions)
        return ApplyResult(applied=len(actions))
