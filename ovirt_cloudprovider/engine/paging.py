"""The overlapped pager: the GETs of one lean discovery, at most ``slots`` in flight on one SDK connection.

A lean discovery asks for the VMs with only what is per VM (:data:`LEAN_FOLLOW`) and lists the clusters, data
centers, hosts and instance types once (:data:`LISTS`), to join their names in by id. :func:`run` sends the
first search page, then the lists, then the next pages, keeping up to ``slots`` requests in flight: while one
answer is read (parsed, by the caller's ``read``), the next ones are already on their way. The SDK connection
is used from the calling thread only: curl's multi handle moves every request in flight on whenever one is
waited for, and the answers are read in the order they were sent.

Paging rules stay with the caller's ``read`` (it returns False on the short page that ends the search, and
raises on a repeated page): pages sent past the end are waited for and dropped, unread. Any failure (an answer
that is not 200, a ``read`` that raises) fails the whole run: every other request in flight is cancelled before
the error leaves, so none is left running.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..metrics import Outcome
from .connection import SdkConnection
from .errors import EngineError

# What a lean search inlines per VM: only what belongs to that VM (guest-reported NICs, tags).
LEAN_FOLLOW = "reported_devices,tags"


@dataclass(frozen=True)
class Get:
    """One GET of a discovery: ``path`` relative to the API URL; ``page`` > 0 for a VM search page."""

    operation: str  # metrics operation
    what: str  # for messages, e.g. "VM search"
    path: str
    query: dict[str, str] = field(default_factory=dict)
    page: int = 0


# path -> (root element, item element) of the collections a lean discovery lists once
LISTS: dict[str, tuple[str, str]] = {
    "clusters": ("clusters", "cluster"),
    "datacenters": ("data_centers", "data_center"),
    "hosts": ("hosts", "host"),
    "instancetypes": ("instance_types", "instance_type"),
}


def list_gets(*, tags: bool = False) -> list[Get]:
    """The GETs of the lists a lean discovery joins (one request each), and with ``tags`` the tag tree
    (``/tags``, read by :func:`.fastxml.read_tags`)."""
    gets = [Get(f"list_{path}", "VM search", path) for path in LISTS]  # a failure reads "VM search at ... failed"
    return [*gets, Get("list_tags", "VM search", "tags")] if tags else gets


def page_get(search: str, page: int, page_size: int, *, affinity_labels: bool = False) -> Get:
    """Page ``page`` of the VM search ``search`` (without ``page N``: it is added here); with
    ``affinity_labels`` the VMs' affinity labels are inlined too."""
    query = {"search": f"{search} sortby name asc page {page}".strip(), "max": str(page_size),
             "follow": f"{LEAN_FOLLOW},affinity_labels" if affinity_labels else LEAN_FOLLOW}
    return Get("search_vms", "VM search", "vms", query, page)


def run(conn: SdkConnection, *, page: Callable[[int], Get], others: Sequence[Get], slots: int,
        read: Callable[[Get, bytes], bool], observe: Callable[[str], contextlib.AbstractContextManager[Outcome]],
        fail: Callable[[Exception, Get], EngineError]) -> int:
    """Send page 1, ``others``, then pages 2, 3, ... while ``read`` of the pages returns True; at most ``slots``
    requests in flight. Returns how many requests were sent. ``fail`` turns an SDK failure into an EngineError."""
    if slots < 1:
        raise ValueError("slots must be at least 1")
    more = True

    def planned() -> Iterator[Get]:
        yield page(1)
        yield from others
        number = 2
        while more:
            yield page(number)
            number += 1

    queue = planned()
    inflight: deque[tuple[Get, object]] = deque()
    sent = 0

    def fill() -> None:
        nonlocal sent
        while len(inflight) < slots and (get := next(queue, None)) is not None:
            inflight.append((get, conn.start_get(get.path, get.query)))
            sent += 1

    try:
        fill()
        while inflight:
            get, context = inflight.popleft()
            with observe(get.operation) as outcome:
                try:
                    body = conn.finish_get(context)
                except EngineError:
                    raise
                except Exception as exc:
                    if get.page and not more:
                        outcome.code = str(conn.last_status or "error")
                        continue  # a page past the end: not needed, its failure is not the sweep's
                    raise fail(exc, get) from exc
                outcome.code = str(conn.last_status or 200)
            if get.page and not more:
                continue  # sent before the short page was read: dropped unread
            fill()  # the next requests go out before this answer is read
            try:
                full = read(get, body)
            except EngineError:
                raise
            except Exception as exc:
                raise fail(exc, get) from exc
            if get.page and not full:
                more = False
    finally:
        while inflight:
            conn.cancel(inflight.popleft()[1])
    return sent


__all__ = ["LEAN_FOLLOW", "LISTS", "Get", "list_gets", "page_get", "run"]
