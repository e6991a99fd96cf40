"""Confirming deletions: positive evidence from the engine before a node whose VM is absent goes (pure).

Two independent answers of the engine (issue 17, rule 1)
    A node goes only on two answers of the engine itself: a GET of the VM or host by id, and its filter searched
    narrowed to that id (:func:`.vmfilter.narrowed`). Only the engine's own 404 counts as "it does not exist"
    (the engine client raises on any other 404, such as a proxy's HTML page: an error, so nothing is deleted),
    and even that deletes only when the narrowed search does not return the id either (ids compared
    canonically, :func:`.providerid.normalize_vm_id`); a 404 the narrowed search contradicts, or one the search
    was not asked about, blocks the DELETE (``DeletionUnconfirmed``).

Confirmation (:func:`confirm_deletions`, applied by the controller between planning and applying)
    A DELETE of an absent VM's node (``DeletedNode``) needs positive evidence: the controller GETs the VM by
    id. The engine's own 404 and the narrowed search returning nothing: the DELETE goes ahead. The VM exists:
    the controller searches the filter narrowed to that VM
    (:func:`.vmfilter.narrowed`); when the engine answers without it, and its record does not clearly match
    the filter (:func:`.vmfilter.filter_match`), it left the filter (tag removed, another cluster): DELETE
    with reason ``VMLeftFilter``. The VM still matches, or any error: BLOCK_DELETE ``DeletionUnconfirmed``
    (Warning) this sweep, counter unchanged. A search that lost VMs by accident
    (paging shift, engine glitch) therefore never deletes a live VM's node.

A filter naming a tag the engine does not have
    Never reaches this module: while ``[filters] vms`` (or ``[filters] hosts``) names one, :mod:`.absence` counts
    no node of that kind absent (``UnknownFilterTag``), so no DELETE is planned to confirm, and no
    ``VMLeftFilter`` or ``HostLeftFilter`` can follow from a search the controller does not understand.

Unowned (legacy) nodes (``unowned``: no ``ovirt.org/owner`` recorded, see :mod:`.ownership`)
    Only the default instance counts them absent, and for them only the first of those answers deletes: the VM
    or host is gone (the engine's own 404 and the narrowed search empty). One that still exists but left this
    instance's filter is never deleted (BLOCK_DELETE ``DeletionUnconfirmed``, naming the missing owner): after
    a filter split during the upgrade it may be a VM or host of a new instance that has not adopted it yet.
    ``VMLeftFilter`` and ``HostLeftFilter`` need the ownership recorded on the node.

Hosts (:func:`confirm_host_deletions`)
    The DELETE of an absent host's node needs the same positive evidence: the controller GETs the host by id.
    The engine's own 404 and ``[filters] hosts`` narrowed to it returning nothing: the DELETE goes ahead. The
    host exists: the controller searches ``[filters] hosts`` narrowed to that
    host (:func:`.vmfilter.narrowed`, ``id`` is a host search field); when the engine answers without it, the
    host left the filter (another cluster, a tag removed): DELETE with reason ``HostLeftFilter`` (Normal),
    naming the host and the narrowed search. The narrowed search returns it (the search lost it by accident),
    or any error: BLOCK_DELETE ``DeletionUnconfirmed`` (Warning), counter unchanged. There is no record-based
    veto for hosts (:func:`.vmfilter.filter_match` evaluates VM records only): the engine's narrowed search is
    the only evidence that a host left the filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from . import providerid
from .absence import REASON_DELETED
from .records import KIND_HOST, Action, ActionKind, Host, Plan, VirtualMachine
from .vmfilter import filter_match, narrowed

REASON_LEFT_FILTER = "VMLeftFilter"
REASON_HOST_LEFT_FILTER = "HostLeftFilter"
REASON_UNCONFIRMED = "DeletionUnconfirmed"

# why a legacy node (no owner recorded) is not deleted when its VM or host left the filter
_LEGACY = ("a node of a release before owners were recorded: after a filter split it may be another instance's, "
           "which adopts it; it is deleted only when the engine confirms that its VM or host is gone")


def confirm_deletions(
    plan: Plan, *, query: str, found: Mapping[str, VirtualMachine | None], error: str | None = None,
    researched: frozenset[str] | None = None, unowned: frozenset[str] = frozenset(),
) -> Plan:
    """``plan`` with every DELETE of an absent VM's node (``DeletedNode``) confirmed or blocked.

    ``found``: the engine's answer to a GET of each such VM by id (None: the engine's own 404); ``error``: why
    the engine could not be asked (then every such DELETE is blocked); ``researched``: the VM ids that the
    search narrowed to each VM (found or 404) returned (None: not asked, so nothing is deleted); ``unowned``:
    the names of the nodes that record no owner (legacy: deleted only when the VM is gone, never as
    ``VMLeftFilter``). See the module docstring.
    """
    actions: list[Action] = []
    unblocked = 0
    for action in plan.actions:
        if action.kind is not ActionKind.DELETE or action.reason != REASON_DELETED or action.vm_id is None \
                or action.owner_kind == KIND_HOST:  # hosts: not confirmed by a VM GET (see the rulebook)
            actions.append(action)
            continue
        vm_id = action.vm_id
        base = f"Deletion of node {action.node} (VM {vm_id}) is blocked this sweep"
        if error is not None or vm_id not in found:
            why = f"the engine could not confirm that the VM is gone: {error}" if error is not None \
                else "the engine was not asked about the VM"
            actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                                   message=f"{base}: {why}."))
            unblocked += 1
            continue
        vm = found[vm_id]
        returned = None if researched is None else vm_id in {providerid.normalize_vm_id(r) for r in researched}
        if vm is None:
            if returned is False:
                actions.append(replace(action, message=action.message[:-1] + "; the engine confirms the VM no "
                                       f"longer exists (404) and its search {narrowed(query, vm_id)!r} returns "
                                       "nothing."))
                continue
            why = ("the engine answers 404 for it but was not asked whether its filter, narrowed to it, still "
                   "returns it" if returned is None else
                   f"the engine answers 404 for it, but its search {narrowed(query, vm_id)!r} still returns it")
            actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                                   message=f"{base}: {why}."))
            unblocked += 1
            continue
        local = filter_match(query, vm)
        verdict: bool | None = None if returned is None else (local is True or returned)
        if verdict is False and action.node in unowned:
            actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                                   message=f"{base}: VM {vm.name} still exists but no longer matches the filter "
                                   f"{query!r}, and the node records no owner ({_LEGACY})."))
            unblocked += 1
            continue
        if verdict is False:
            actions.append(replace(
                action, reason=REASON_LEFT_FILTER,
                message=f"Deleting node {action.node}: VM {vm.name} ({vm_id}) still exists (status {vm.status}, "
                        f"cluster {vm.cluster or '?'}) but no longer matches the filter {query!r}."))
            continue
        why = ("it still exists and matches the filter, so the search lost it" if verdict
               else "it still exists and the engine was not asked whether it left the filter")
        actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                               message=f"{base}: VM {vm.name} {why}."))
        unblocked += 1
    if not unblocked:
        return replace(plan, actions=tuple(actions))
    return replace(plan, actions=tuple(actions), managed_nodes=plan.managed_nodes + unblocked)


def pending_deletions(plan: Plan) -> tuple[str, ...]:
    """The VM ids whose nodes :func:`confirm_deletions` has to confirm, in plan order."""
    return tuple(dict.fromkeys(a.vm_id for a in plan.actions
                               if a.kind is ActionKind.DELETE and a.reason == REASON_DELETED and a.vm_id
                               and a.owner_kind != KIND_HOST))


def _host_deletion(action: Action) -> bool:
    return action.kind is ActionKind.DELETE and action.reason == REASON_DELETED and action.vm_id is not None \
        and action.owner_kind == KIND_HOST


def pending_host_deletions(plan: Plan) -> tuple[str, ...]:
    """The host ids whose nodes :func:`confirm_host_deletions` has to confirm, in plan order."""
    return tuple(dict.fromkeys(str(a.vm_id) for a in plan.actions if _host_deletion(a)))


def confirm_host_deletions(plan: Plan, *, query: str, found: Mapping[str, Host | None], error: str | None = None,
                           researched: frozenset[str] | None = None, unowned: frozenset[str] = frozenset()) -> Plan:
    """``plan`` with every DELETE of an absent host's node confirmed or blocked.

    ``found``: the engine's answer to a GET of each such host by id (None: the engine's own 404); ``error``:
    why the engine could not be asked (then every such DELETE is blocked); ``researched``: the host ids that
    the search ``query`` narrowed to each host (found or 404) returned (None: not asked, so nothing is
    deleted); ``unowned``: the names of the nodes that record no owner (never deleted as ``HostLeftFilter``).
    See the module docstring."""
    actions: list[Action] = []
    blocked = 0
    returned = None if researched is None else {providerid.normalize_vm_id(r) for r in researched}
    for action in plan.actions:
        if not _host_deletion(action):
            actions.append(action)
            continue
        host_id = str(action.vm_id)
        listed = returned is not None and providerid.normalize_vm_id(host_id) in returned
        base = f"Deletion of node {action.node} (host {host_id}) is blocked this sweep"
        host = found.get(host_id)
        search = narrowed(query, host_id)
        if error is None and host_id in found and host is None and returned is not None and not listed:
            actions.append(replace(action, message=action.message[:-1] + "; the engine confirms the host no longer "
                                   f"exists (404) and its search {search!r} returns nothing."))
            continue
        if error is None and host is not None and returned is not None and not listed \
                and action.node not in unowned:
            actions.append(replace(
                action, reason=REASON_HOST_LEFT_FILTER,
                message=f"Deleting node {action.node}: host {host.name} ({host_id}) still exists (status "
                        f"{host.status}, cluster {host.cluster or '?'}) but the engine's search "
                        f"{search!r} does not return it: it no longer matches the filter "
                        f"{query!r}."))
            continue
        why = (f"the engine could not confirm that the host is gone: {error}" if error is not None
               else "the engine was not asked about the host" if host_id not in found
               else "the engine answers 404 for it but was not asked whether its filter, narrowed to it, still "
                    "returns it" if host is None and returned is None
               else f"the engine answers 404 for it, but its search {search!r} still returns it" if host is None
               else f"host {host.name} still exists (status {host.status}) and the engine was not asked whether "
                    "it left the filter" if returned is None
               else f"host {host.name} still exists (status {host.status}) but no longer matches the filter "
                    f"{query!r}, and the node records no owner ({_LEGACY})" if not listed
               else f"host {host.name} still exists (status {host.status}) and matches the filter, so the search "
                    "lost it")
        actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                               message=f"{base}: {why}."))
        blocked += 1
    return replace(plan, actions=tuple(actions), managed_nodes=plan.managed_nodes + blocked,
                   managed_hosts=plan.managed_hosts + blocked)  # a blocked node stays, and it is a host's
