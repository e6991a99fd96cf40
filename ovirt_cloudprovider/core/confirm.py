"""Confirming deletions: positive evidence from the engine before a node whose VM is absent goes (pure).

Confirmation (:func:`confirm_deletions`, applied by the controller between planning and applying)
    A DELETE of an absent VM's node (``DeletedNode``) needs positive evidence: the controller GETs the VM by
    id. 404: the DELETE goes ahead. The VM exists: the controller searches the filter narrowed to that VM
    (:func:`.vmfilter.narrowed`); when the engine answers without it, and its record does not clearly match
    the filter (:func:`.vmfilter.filter_match`), it left the filter (tag removed, another cluster): DELETE
    with reason ``VMLeftFilter``. The VM still matches, or any error: BLOCK_DELETE ``DeletionUnconfirmed``
    (Warning) this sweep, counter unchanged. A search that lost VMs by accident
    (paging shift, engine glitch) therefore never deletes a live VM's node.

Hosts (:func:`confirm_host_deletions`)
    The DELETE of an absent host's node needs the same positive evidence: the controller GETs the host by id.
    404: the DELETE goes ahead. The host exists: the controller searches ``[filters] hosts`` narrowed to that
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


def confirm_deletions(
    plan: Plan, *, query: str, found: Mapping[str, VirtualMachine | None], error: str | None = None,
    researched: frozenset[str] | None = None,
) -> Plan:
    """``plan`` with every DELETE of an absent VM's node (``DeletedNode``) confirmed or blocked.

    ``found``: the engine's answer to a GET of each such VM by id (None: 404); ``error``: why the engine could
    not be asked (then every such DELETE is blocked); ``researched``: the VM ids among those found that the
    search narrowed to each of them returned (None: not asked, so nothing that exists is deleted). See the
    module docstring.
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
        if vm is None:
            actions.append(replace(action, message=action.message[:-1] + "; the engine confirms the VM no longer "
                                                                         "exists (404)."))
            continue
        local = filter_match(query, vm)
        verdict: bool | None = None if researched is None else (
            local is True or vm_id in {providerid.normalize_vm_id(r) for r in researched})
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
                           researched: frozenset[str] | None = None) -> Plan:
    """``plan`` with every DELETE of an absent host's node confirmed or blocked.

    ``found``: the engine's answer to a GET of each such host by id (None: 404); ``error``: why the engine
    could not be asked (then every such DELETE is blocked); ``researched``: the host ids among those found
    that the search ``query`` narrowed to each of them returned (None: not asked, so nothing that exists is
    deleted). See the module docstring."""
    actions: list[Action] = []
    blocked = 0
    returned = None if researched is None else {r.lower() for r in researched}
    for action in plan.actions:
        if not _host_deletion(action):
            actions.append(action)
            continue
        host_id = str(action.vm_id)
        base = f"Deletion of node {action.node} (host {host_id}) is blocked this sweep"
        host = found.get(host_id)
        if error is None and host_id in found and host is None:
            actions.append(replace(action, message=action.message[:-1] + "; the engine confirms the host no longer "
                                                                         "exists (404)."))
            continue
        if error is None and host is not None and returned is not None and host_id.lower() not in returned:
            actions.append(replace(
                action, reason=REASON_HOST_LEFT_FILTER,
                message=f"Deleting node {action.node}: host {host.name} ({host_id}) still exists (status "
                        f"{host.status}, cluster {host.cluster or '?'}) but the engine's search "
                        f"{narrowed(query, host_id)!r} does not return it: it no longer matches the filter "
                        f"{query!r}."))
            continue
        why = (f"the engine could not confirm that the host is gone: {error}" if error is not None
               else "the engine was not asked about the host" if host is None
               else f"host {host.name} still exists (status {host.status}) and the engine was not asked whether "
                    "it left the filter" if returned is None
               else f"host {host.name} still exists (status {host.status}) and matches the filter, so the search "
                    "lost it")
        actions.append(replace(action, kind=ActionKind.BLOCK_DELETE, reason=REASON_UNCONFIRMED, warning=True,
                               message=f"{base}: {why}."))
        blocked += 1
    return replace(plan, actions=tuple(actions), managed_nodes=plan.managed_nodes + blocked,
                   managed_hosts=plan.managed_hosts + blocked)  # a blocked node stays, and it is a host's
