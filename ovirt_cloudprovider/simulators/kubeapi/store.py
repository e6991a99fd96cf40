"""Storage: a versioned key space with a bounded change history (the etcd of the simulator)."""

from __future__ import annotations

import collections
import copy
import dataclasses
import threading

from .constants import Obj

Key = tuple[str, str, str]  # (resource, namespace, name)


@dataclasses.dataclass
class StoredEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    obj: Obj
    prev: Obj | None


class Store:
    """The etcd of the simulator: one global revision, per-key versions (reads at an older revision for
    paginated lists) and the last ``history`` changes (watches). Older changes are compacted away."""

    def __init__(self, history: int = 1000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.history_limit = max(1, history)
        self.rv = 1
        self.compacted = 0
        self.current: dict[Key, Obj] = {}
        self.versions: dict[Key, list[tuple[int, Obj | None]]] = {}
        self.events: collections.deque[StoredEvent] = collections.deque()

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, type_: str, key: Key, obj: Obj | None, prev: Obj | None, rv: int) -> None:
        """Record a change at revision ``rv`` (caller holds the lock and stamped ``obj``)."""
        if obj is None:
            self.current.pop(key, None)
            assert prev is not None
            shown = copy.deepcopy(prev)
            shown["metadata"]["resourceVersion"] = str(rv)
        else:
            self.current[key] = obj
            shown = obj
        self.versions.setdefault(key, []).append((rv, obj))
        self.events.append(StoredEvent(rv, type_, key, shown, prev))
        while len(self.events) > self.history_limit:
            self._compact_one()
        self.changed.notify_all()

    def _compact_one(self) -> None:
        ev = self.events.popleft()
        self.compacted = max(self.compacted, ev.rv)
        self._prune(ev.key)

    def _prune(self, key: Key) -> None:
        vers = self.versions.get(key)
        if not vers:
            return
        older = [v for v in vers if v[0] <= self.compacted]
        newer = [v for v in vers if v[0] > self.compacted]
        keep = ([older[-1]] if older and older[-1][1] is not None else []) + newer
        if keep:
            self.versions[key] = keep
        else:
            del self.versions[key]

    def compact(self, rv: int | None = None) -> int:
        with self.lock:
            target = self.rv if rv is None else min(rv, self.rv)
            self.compacted = max(self.compacted, target)
            while self.events and self.events[0].rv <= self.compacted:
                self.events.popleft()
            for key in list(self.versions):
                self._prune(key)
            return self.compacted

    def snapshot(self, resource: str, namespace: str | None, at: int | None) -> list[tuple[Key, Obj]]:
        """Objects of ``resource`` (in ``namespace`` when given), sorted by key, as of revision ``at``."""
        out: list[tuple[Key, Obj]] = []
        if at is None or at >= self.rv:
            for key, obj in self.current.items():
                if key[0] == resource and (namespace is None or key[1] == namespace):
                    out.append((key, obj))
        else:
            for key, vers in self.versions.items():
                if key[0] != resource or (namespace is not None and key[1] != namespace):
                    continue
                found: Obj | None = None
                for rv, version in vers:
                    if rv <= at:
                        found = version
                    else:
                        break
                if found is not None:
                    out.append((key, found))
        out.sort(key=lambda kv: _key_string(kv[0]))
        return out

    def events_after(self, rv: int) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for ev in reversed(self.events):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out


def _key_string(key: Key) -> str:
    return f"{key[1]}/{key[2]}" if key[1] else key[2]
