"""The writer's work queue: every node's writes in their order, the nodes' first writes before their follow-ups.

A node's work is a *task*: a generator that makes one request per step and yields, before each next request,
that request's priority (:data:`FIRST`, :data:`FOLLOW_UP`, :data:`EVENT`). :class:`StepQueue` hands steps to the
writer's workers: a node's first step goes before any follow-up, follow-ups (a ``nodes/status`` patch, the node's
next action) before Events; within one priority, first come first served. So in a batch of initializations every
node's initializing patch (providerID, taint removal) is sent before the batch's address patches and Events, and
one node's requests still go strictly in order (one step of a task at a time, and a task of a node that has one
running waits for it: a node's writes never overtake each other, whichever apply or extension they came from).

Bounds: at most ``max_follow_ups`` follow-ups wait (a node's addresses come after at most that many other nodes'
first writes: about 0.1 s at a few hundred writes a second, not a whole batch's), and at most ``max_deferred``
tasks wait between their steps, Events included; beyond either the workers take the waiting steps before new
nodes, so neither memory (a registration of 10,000 nodes) nor the time from a node's first write to its
follow-ups grows with the batch. ``more`` (optional) is asked for further tasks whenever the queued first steps
have run out (at most one worker asks at a time): how a sweep of joining nodes takes the kubelets that joined
while it was applying. When ``more`` raises it is not asked again, the queued steps still run and what it raised
is kept in :attr:`StepQueue.failure`.

Lifecycle: built per apply; :meth:`StepQueue.take` blocks a worker until a step is ready, and answers None once
nothing is queued, running or to be had from ``more``; :meth:`StepQueue.done` reports a step's result.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable

__all__ = ["EVENT", "FIRST", "FOLLOW_UP", "MAX_DEFERRED", "MAX_FOLLOW_UPS", "StepQueue", "Task"]

FIRST = 0  # a node's first request of this work (the measured moment of a join: its initializing patch)
FOLLOW_UP = 1  # its later requests: the nodes/status patch, its next action
EVENT = 2  # an Event: a side note, last
MAX_FOLLOW_UPS = 64  # follow-ups (a status patch, a node's next action) waiting before they go first
MAX_DEFERRED = 1024  # tasks waiting between their steps (Events included) before they go first

Task = Generator[int, None, None]


class StepQueue:
    """The steps of ``tasks`` (key, task factory) and of whatever ``more`` hands out later, for the workers."""

    def __init__(self, tasks: Iterable[tuple[str, Callable[[], Task]]], *,
                 more: Callable[[], list[tuple[str, Callable[[], Task]]]] | None = None,
                 max_follow_ups: int = MAX_FOLLOW_UPS, max_deferred: int = MAX_DEFERRED) -> None:
        self._new: deque[tuple[str, Callable[[], Task]]] = deque()
        self._pending = iter(tasks)  # consumed lazily: a task per node is made only when it starts
        self._more = more
        self._max_follow_ups = max(1, max_follow_ups)
        self._max_deferred = max(1, max_deferred)
        self._follow_ups = 0  # FOLLOW_UP steps in self._ready
        self._ready: list[tuple[int, int, str, Task]] = []  # heap: (priority, arrival, key, task)
        self._waiting: dict[str, deque[Callable[[], Task]]] = {}  # key → tasks behind the one running for it
        self._busy: set[str] = set()  # keys with a task started and not finished
        self._running = 0  # steps handed out and not done
        self._seq = itertools.count()
        self._asking = False  # a worker is calling ``more``
        self.failure: BaseException | None = None  # what ``more`` raised (then it is not asked again)
        self._cond = threading.Condition()

    def take(self) -> tuple[str, Task] | None:
        """The next step to run (its task: run it with ``next()``, then :meth:`done`), or None when all is done."""
        with self._cond:
            while True:
                step = self._first_locked()
                if step is not None:
                    return self._hand_out(step)
                asked_empty = False
                if self._more is not None and not self._asking:
                    extra = self._ask_locked()
                    if extra:
                        self._new.extend(extra)
                        self._cond.notify_all()
                        continue
                    asked_empty = True
                if self._ready:
                    return self._hand_out(self._pop_locked())
                if self._running == 0 and not self._asking and (self._more is None or asked_empty):
                    self._more = None  # nothing queued, running or to be had: this work is complete
                    self._cond.notify_all()
                    return None
                self._cond.wait(0.1 if self._more is not None else 0.5)

    def _pop_locked(self) -> tuple[str, Task]:
        priority, _, key, task = heapq.heappop(self._ready)
        if priority == FOLLOW_UP:
            self._follow_ups -= 1
        return key, task

    def _hand_out(self, step: tuple[str, Task]) -> tuple[str, Task]:
        self._running += 1
        return step

    def _ask_locked(self) -> list[tuple[str, Callable[[], Task]]]:
        """Call ``more`` without the lock (one worker at a time). When it raises, it is not asked again and what
        it raised is kept in :attr:`failure` (the caller's to report): the queued steps still run, and no worker
        dies of it (a dead worker would leave them queued, unsent)."""
        assert self._more is not None
        more = self._more
        self._asking = True
        self._cond.release()
        failure: BaseException | None = None
        try:
            return more()
        except BaseException as exc:  # kept for the caller, which re-raises or reports it
            failure = exc
            return []
        finally:
            self._cond.acquire()
            self._asking = False
            if failure is not None:
                self.failure, self._more = failure, None

    def done(self, key: str, task: Task, priority: int | None) -> None:
        """A step of ``key``'s ``task`` ran; ``priority`` is that of its next step, None when it finished."""
        with self._cond:
            self._running -= 1
            if priority is not None:
                heapq.heappush(self._ready, (priority, next(self._seq), key, task))
                self._follow_ups += priority == FOLLOW_UP
            else:
                self._busy.discard(key)
                behind = self._waiting.get(key)
                if behind:
                    factory = behind.popleft()
                    if not behind:
                        del self._waiting[key]
                    self._busy.add(key)
                    heapq.heappush(self._ready, (FIRST, next(self._seq), key, factory()))
            self._cond.notify_all()

    def _first_locked(self) -> tuple[str, Task] | None:
        """A node's first step (a task of a key whose earlier task finished, or a new task), or a waiting step
        when ``max_follow_ups`` follow-ups or ``max_deferred`` steps wait."""
        if self._ready and (self._ready[0][0] == FIRST or self._follow_ups >= self._max_follow_ups
                            or len(self._ready) >= self._max_deferred):
            return self._pop_locked()
        while True:
            item = self._new.popleft() if self._new else next(self._pending, None)
            if item is None:
                return None
            key, factory = item
            if key in self._busy:  # after the node's running task, in order
                self._waiting.setdefault(key, deque()).append(factory)
                continue
            self._busy.add(key)
            return key, factory()
