"""The writer's work queue (kube/workqueue.py): priorities, one node's tasks in order across extensions, the
bounds, and the end of the work. Driven step by step, as one worker does."""

from __future__ import annotations

from collections.abc import Callable

from ovirt_cloudprovider.kube.workqueue import EVENT, FOLLOW_UP, StepQueue, Task


def task(log: list[str], name: str, steps: tuple[int, ...]) -> Callable[[], Task]:
    """A task that logs ``name:i`` for its first step and each of ``steps`` (their priorities)."""
    def run() -> Task:
        log.append(f"{name}:0")
        for i, priority in enumerate(steps, 1):
            yield priority
            log.append(f"{name}:{i}")
    return run


def drain(queue: StepQueue) -> None:
    while (step := queue.take()) is not None:
        key, t = step
        try:
            priority: int | None = next(t)
        except StopIteration:
            priority = None
        queue.done(key, t, priority)


def test_first_steps_then_follow_ups_then_events() -> None:
    log: list[str] = []
    drain(StepQueue([(n, task(log, n, (FOLLOW_UP, EVENT))) for n in ("a", "b", "c")]))
    assert log == ["a:0", "b:0", "c:0", "a:1", "b:1", "c:1", "a:2", "b:2", "c:2"]


def test_follow_ups_go_first_beyond_the_bound() -> None:
    log: list[str] = []
    drain(StepQueue([(n, task(log, n, (FOLLOW_UP,))) for n in "abcd"], max_follow_ups=2))
    assert log == ["a:0", "b:0", "a:1", "c:0", "b:1", "d:0", "c:1", "d:1"]


def test_more_is_asked_when_the_first_steps_run_out_and_a_nodes_tasks_stay_in_order() -> None:
    log: list[str] = []
    extensions = [[("a", task(log, "a2", ())), ("x", task(log, "x", (FOLLOW_UP,)))], []]
    asked: list[int] = []

    def more() -> list[tuple[str, Callable[[], Task]]]:
        asked.append(len(log))
        return extensions.pop(0) if extensions else []

    drain(StepQueue([("a", task(log, "a", (FOLLOW_UP, EVENT))), ("b", task(log, "b", (EVENT,)))], more=more))
    # the new node x's first step goes before the follow-ups; a's second task waits for its first to finish
    assert log == ["a:0", "b:0", "x:0", "a:1", "x:1", "b:1", "a:2", "a2:0"]
    assert asked[0] == 2 and len(asked) >= 2  # asked once the first steps had run out, until it had nothing


def test_more_that_raises_is_not_asked_again_and_the_queued_steps_still_run() -> None:
    """A failing extension must not end the worker that asked (its queued steps would never be sent): the queue
    keeps what it raised for the writer to report, and runs what it has."""
    log: list[str] = []
    asked: list[int] = []

    def more() -> list[tuple[str, Callable[[], Task]]]:
        asked.append(1)
        raise RuntimeError("planning failed")

    queue = StepQueue([(n, task(log, n, (FOLLOW_UP, EVENT))) for n in "ab"], more=more)
    drain(queue)
    assert log == ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2"]
    assert asked == [1] and isinstance(queue.failure, RuntimeError)
