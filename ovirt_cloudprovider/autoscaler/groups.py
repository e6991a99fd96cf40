"""The node groups' state and operations: what the gRPC service asks, answered from memory or done in the engine.

:class:`NodeGroups` holds the VMs of every configured group as the last group search found them (one search for
all groups, :mod:`~ovirt_cloudprovider.core.nodegroups` says which VM is whose). The rules:

- ``group_for``, ``target_size``, ``nodes``, ``groups`` answer from memory, never from the engine.
- Ownership: a VM is a member of a group only when its signed mark verifies under the mark key and it is in the
  group's cluster, from the group's template, named ``<name_prefix>-<slot>`` (:func:`~ovirt_cloudprovider.core.
  nodegroups.ownership_problem`; the template's and cluster's ids are read once per group and cached). A VM that
  claims a group but fails this is never touched: it is logged once (a warning naming it and why) and counted in
  :meth:`unverified`.
- ``refresh()`` is one group search (the cluster-autoscaler calls Refresh once per loop); the repairs it finds
  needed are made by the background thread, not in the call: a ``down`` VM of a group is started (a restart
  between a create and its start, a VM stopped by hand) and a VM missing one of its group's tags gets it. A repair
  that fails is logged, never raised: the next round tries again. A VM this process is removing is never started.
- ``increase(group, delta)`` searches first (the engine is the truth: another replica or a restart may have
  created VMs since the last refresh), refuses to go above ``max_size``, then creates the VMs one by one from the
  template with the signed mark, each in a free slot ``<name_prefix>-<n>`` (n below ``max_size``): when a create
  fails without an answer (a timeout, a dropped connection) or with 409 "name in use" (curl resent it after a
  dropped answer, or another replica created that slot first), the VM is looked up by that name and counted if it
  is this group's, so it is never made twice, and two replicas together never exceed ``max_size`` (the engine's
  unique VM names decide). A slot whose name a VM that is not this group's holds is skipped. The new VMs are
  tagged, and started by the background starter as soon as the engine has copied their disks (``down``). A
  failure mid-way leaves the VMs already created (they count towards the target size) and is returned to the
  autoscaler, which asks again with what is still missing.
- ``delete(group, provider_ids)`` searches first, refuses the whole request when one node is not a VM of this
  group (another group's VM, a hand-made VM, no VM at all) or is being removed by another request, or when the
  group would go below ``min_size`` (the VMs other requests are removing count as gone), then for each VM
  re-reads it (GET by id) and verifies its ownership again right before stopping it and removing it with its
  disks. Only the decision is one request at a time per group: parallel requests (the autoscaler sends one per
  node) wait for their power-offs together. A removal the engine refuses is an error returned to the autoscaler,
  not a retry loop. A VM removed here is no member any more, even if a search still lists it. The ``min_size``
  guard is this process's: two replicas deleting at the same time could together go below it (the engine has no
  lock to take), so the deployments run exactly one replica (``strategy: Recreate``).
- ``template_node(group)`` reads the template, cluster and data center once (cached) and computes the node.

Lifecycle: ``start()`` runs the background thread (the starter, and a refresh when the autoscaler has not asked for
``idle_refresh`` seconds, so the state and readiness stay current); ``stop()`` ends it, and from then on an increase
or delete in flight starts no further create or removal (it ends with an error saying what was done).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core import nodegroups as ng
from ..core import providerid
from ..core.nodegroups import GroupVm, TemplateInfo, TemplateNode
from ..core.settings import NodeGroupConfig, NodesConfig
from ..engine.errors import EngineError, EngineFaultError, EngineTransientError
from ..logs import kv

log = logging.getLogger(__name__)

MAX_USER_DATA_BYTES = 1024 * 1024


class Engine(Protocol):
    """What NodeGroups needs of the engine (:class:`~ovirt_cloudprovider.engine.provisioner.Provisioner`)."""

    def group_vms(self) -> tuple[GroupVm, ...]: ...
    def get_vm(self, vm_id: str) -> GroupVm | None: ...
    def find_vm(self, name: str) -> GroupVm | None: ...
    def template(self, group: NodeGroupConfig) -> TemplateInfo: ...
    def create(self, group: NodeGroupConfig, name: str, user_data: str | None, description: str) -> GroupVm: ...
    def tag(self, vm_id: str, tag: str) -> None: ...
    def start(self, vm_id: str) -> None: ...
    def stop(self, vm_id: str) -> None: ...
    def remove(self, vm_id: str) -> None: ...


class Refused(Exception):
    """A request refused by the rules (unknown group, above max, below min, not this group's VM); one line.
    ``kind``: ``not_found``, ``invalid`` or ``precondition`` (the gRPC code the service answers)."""

    def __init__(self, message: str, kind: str = "precondition") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Instance:
    provider_id: str
    state: int  # ng.INSTANCE_*


def read_user_data(path: str | None) -> str | None:
    """The cloud-init user data of a group, read at each creation (at most 1 MiB, UTF-8); never logged. A file that
    cannot be read (gone, unreadable, not UTF-8) refuses the creation with one line naming it (never a traceback,
    never its content)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_USER_DATA_BYTES + 1)
    except OSError as err:
        raise Refused(f"user_data_file {path} cannot be read: {err.strerror or type(err).__name__}; "
                      "no VM was created") from None
    if len(data) > MAX_USER_DATA_BYTES:
        raise Refused(f"user_data_file {path} is larger than 1 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"user_data_file {path} is not UTF-8 text; no VM was created") from None


class NodeGroups:
    """The node groups of one autoscaler process. Thread-safe; see the module docstring for the rules."""

    def __init__(self, groups: Sequence[NodeGroupConfig], nodes: NodesConfig, engine: Engine, *, mark_key: bytes,
                 user_data: Callable[[str | None], str | None] = read_user_data,
                 poll_interval: float = 2.0, stop_timeout: float = 120.0, idle_refresh: float = 60.0,
                 on_engine: Callable[[str | None], None] = lambda error: None,
                 on_created: Callable[[str, int], None] = lambda group, n: None,
                 on_removed: Callable[[str, int], None] = lambda group, n: None) -> None:
        self._groups = {g.name: g for g in groups}
        self._nodes = nodes
        self._engine = engine
        if len(mark_key) < ng.MARK_KEY_MIN_BYTES:
            raise ValueError(f"the mark key must have at least {ng.MARK_KEY_MIN_BYTES} bytes")
        self._key = mark_key
        self._user_data = user_data
        self._poll = poll_interval
        self._stop_timeout = stop_timeout
        self._idle_refresh = idle_refresh
        self._on_engine = on_engine  # None after a successful engine search, else the error (for readiness)
        self._on_created, self._on_removed = on_created, on_removed  # (group, VMs): for the metrics
        self._lock = threading.Lock()  # guards the state below (never held across an engine request)
        self._members: dict[str, tuple[GroupVm, ...]] = {name: () for name in self._groups}
        self._owner: dict[str, str] = {}  # normalised VM id -> group
        self._templates: dict[str, TemplateInfo] = {}
        self._unverified: dict[str, int] = {name: 0 for name in self._groups}  # at the last search
        self._warned: set[str] = set()  # VM ids whose failed ownership was logged (once per VM)
        self._pending: dict[str, float] = {}  # VM ids created here, not started yet -> when given up
        self._removing: set[str] = set()  # VM ids being stopped and removed here: never started
        # VM ids removed here that a search may still return (one answered before the removal, or an engine still
        # listing a VM while it removes its disks): not members; forgotten once a search no longer returns them.
        self._gone: set[str] = set()
        self._op_locks = {name: threading.Lock() for name in self._groups}  # one change per group at a time
        self._refreshed_at: float | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshed = False  # True once a search succeeded

    # --- answered from memory ----------------------------------------------------------------------

    def configs(self) -> tuple[NodeGroupConfig, ...]:
        return tuple(self._groups.values())

    def config(self, name: str) -> NodeGroupConfig:
        group = self._groups.get(name)
        if group is None:
            raise Refused(f"no node group {name!r}", "not_found")
        return group

    def group_for(self, provider_id: str) -> str | None:
        vm_id = providerid.vm_id_of(provider_id)
        with self._lock:
            return self._owner.get(vm_id) if vm_id is not None else None

    def target_size(self, name: str) -> int:
        self.config(name)
        with self._lock:
            return len(self._members[name])

    def nodes(self, name: str) -> tuple[Instance, ...]:
        self.config(name)
        with self._lock:
            vms, removing = self._members[name], set(self._removing)
        return tuple(Instance(vm.provider_id, ng.INSTANCE_DELETING if vm.id in removing
                              else ng.instance_state(vm.status)) for vm in vms)

    def unverified(self, name: str) -> int:
        """VMs claiming group ``name`` whose ownership did not verify at the last search (never touched)."""
        with self._lock:
            return self._unverified.get(name, 0)

    # --- the engine ----------------------------------------------------------------------------------

    def _place(self, group: NodeGroupConfig) -> TemplateInfo:
        """The group's template and cluster as the engine knows them (read once, then cached)."""
        with self._lock:
            info = self._templates.get(group.name)
        if info is None:
            info = self._engine.template(group)
            with self._lock:
                self._templates[group.name] = info
        return info

    def _verify(self, group: NodeGroupConfig, vm: GroupVm) -> str | None:
        """Why ``vm`` is not a VM of ``group`` (see :func:`ng.ownership_problem`), or None."""
        return ng.ownership_problem(group, vm, self._key, self._place(group))

    def _search(self) -> dict[str, tuple[GroupVm, ...]]:
        """One group search; the state replaced by its answer."""
        try:
            places = {name: self._place(group) for name, group in self._groups.items()}
            vms = self._engine.group_vms()
        except EngineError as err:
            self._on_engine(str(err))
            raise
        self._on_engine(None)
        with self._lock:
            listed = {vm.id for vm in vms}
            self._gone &= listed
            found = ng.members(list(self._groups.values()), [vm for vm in vms if vm.id not in self._gone],
                               self._key, places)
            members = found.groups
            self._members = members
            self._owner = ng.snapshot_by_provider_id(members)
            self._unverified = {name: 0 for name in self._groups}
            for vm, _ in found.unverified:
                self._unverified[vm.group] += 1
            news = [(vm, why) for vm, why in found.unverified if vm.id not in self._warned]
            self._warned = {vm.id for vm, _ in found.unverified}
            self._refreshed_at = time.monotonic()
            self.refreshed = True
        for vm, why in news:
            log.warning("a VM claims a node group but is not its; it is never touched",
                        extra=kv(group=vm.group, vm=vm.name, vm_id=vm.id, reason=why))
        return members

    def refresh(self) -> None:
        """One group search; the repairs it finds needed (start ``down`` VMs, add missing tags) are handed to the
        background thread, so a Refresh costs one search whatever it finds. Raises EngineError when the search
        fails (the state is then unchanged)."""
        members = self._search()
        if self._needs_repair(members):
            self._wake.set()

    def _needs_repair(self, members: dict[str, tuple[GroupVm, ...]]) -> bool:
        return any(ng.to_start(vms) or any(ng.missing_tags(self._groups[name], vm) for vm in vms)
                   for name, vms in members.items())

    def _repair(self, members: dict[str, tuple[GroupVm, ...]]) -> None:
        for name, vms in members.items():
            group = self._groups[name]
            for vm in vms:
                self._tag(group, vm, ng.missing_tags(group, vm))
            with self._lock:
                removing = set(self._removing)
            for vm in ng.to_start(vms):
                if vm.id in removing:
                    continue
                if self._try(f"starting VM {vm.name}", functools.partial(self._engine.start, vm.id)):
                    log.info("started node-group VM", extra=kv(group=name, vm=vm.name, vm_id=vm.id))
                    with self._lock:  # what the engine shows now, so that it is not started twice
                        self._pending.pop(vm.id, None)
                        self._members[name] = tuple(dataclasses.replace(v, status="powering_up") if v.id == vm.id
                                                    else v for v in self._members[name])

    def _tag(self, group: NodeGroupConfig, vm: GroupVm, tags: Sequence[str]) -> None:
        for tag in tags:
            self._try(f"tagging VM {vm.name} of node group {group.name} with {tag}",
                      functools.partial(self._engine.tag, vm.id, tag))

    @staticmethod
    def _try(what: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except EngineError as err:
            log.warning(f"{what} failed; the next round tries again: {err}")
            return False
        return True

    def increase(self, name: str, delta: int) -> tuple[GroupVm, ...]:
        """Create ``delta`` VMs in group ``name`` (see the module docstring); the VMs created."""
        group = self.config(name)
        with self._op_locks[name]:
            current = self._search()[name]
            problem = ng.increase_problem(group, len(current), delta)
            if problem is not None:
                raise Refused(problem, "invalid" if delta <= 0 else "precondition")
            user_data = self._user_data(group.user_data_file)
            slots = iter(ng.free_slots(group, (v.name for v in current)))
            created: list[GroupVm] = []  # made here, or found made by another replica in the slot
            made = 0
            try:
                while len(created) < delta:
                    self._check_stopping(f"node group {name}: {len(created)} of {delta} VMs created")
                    slot = next(slots, None)
                    if slot is None:
                        raise Refused(f"node group {name}: {len(created)} of {delta} VMs created; every other name "
                                      f"{group.prefix}-0..{group.max_size - 1} is held by a VM that is not this "
                                      "group's")
                    vm, new = self._create(group, ng.slot_name(group, slot), user_data)
                    if vm is None:
                        continue
                    created.append(vm)
                    made += new
                    with self._lock:
                        self._members[name] = (*(v for v in self._members[name] if v.id != vm.id), vm)
                        self._owner[providerid.normalize_vm_id(vm.id)] = name
                        self._pending[vm.id] = time.monotonic() + max(600.0, self._stop_timeout)
                    self._wake.set()
                    self._tag(group, vm, ng.missing_tags(group, vm))
            finally:
                if made:
                    self._on_created(name, made)
                if created:
                    log.info("node-group VMs created", extra=kv(group=name, asked=delta, created=made,
                                                                counted=len(created) - made,
                                                                vms=",".join(v.name for v in created)))
            return tuple(created)

    def _check_stopping(self, done: str) -> None:
        """No new engine change once :meth:`stop` was called (SIGTERM): the request ends with what is done."""
        if self._stopping.is_set():
            raise EngineTransientError(f"shutting down: {done}")

    def _create(self, group: NodeGroupConfig, name: str, user_data: str | None) -> tuple[GroupVm | None, bool]:
        """The VM in the slot ``name``: (the VM, True) when created here, (the VM, False) when a create without a
        usable answer or another replica made it, (None, False) when a VM that is not this group's (or one being
        removed here) holds the name: the caller takes the next slot."""
        try:
            return self._engine.create(group, name, user_data, ng.signed_mark(self._key, group.name, name)), True
        except EngineError as err:
            # No answer (the create may have happened), or 409 "name in use" (curl resends a request whose reused
            # connection died without an answer: the first one did it; or another replica took this slot). The name
            # was chosen before: look it up.
            if not isinstance(err, EngineTransientError) and err.code != 409:
                raise
            found = self._engine.find_vm(name)
            if found is None:
                raise
            problem = self._verify(group, found)
            with self._lock:
                leaving = found.id in self._gone or found.id in self._removing
            if problem is None and not leaving:
                log.info("the VM of this name exists already (a create without a usable answer, or another "
                         "replica's); counted once", extra=kv(group=group.name, vm=name, error=str(err)))
                return found, False
            if err.code != 409:
                raise
            log.warning("a VM that is not this group's (or is being removed) holds the name; next slot",
                        extra=kv(group=group.name, vm=name, vm_id=found.id,
                                 reason=problem or "being removed by this autoscaler"))
            return None, False

    def delete(self, name: str, provider_ids: Sequence[str]) -> tuple[GroupVm, ...]:
        """Stop and remove the VMs of group ``name`` the nodes ``provider_ids`` name (all or nothing).

        The decision (a search, the rules, the VMs reserved in ``_removing``) is made one request at a time per
        group; the stops, waits and removals are not, so parallel requests (the cluster-autoscaler sends one per
        node) power their VMs off together, and the VMs reserved by the others count as gone in each decision."""
        group = self.config(name)
        with self._op_locks[name]:
            current = self._search()[name]
            with self._lock:
                decided = ng.deletion(group, current, list(provider_ids), removing=self._removing)
                if decided.problem is None:
                    self._removing.update(v.id for v in decided.vms)
            if decided.problem is not None:
                raise Refused(decided.problem)
        removed: list[GroupVm] = []
        try:
            for vm in decided.vms:
                self._check_stopping(f"node group {name}: {len(removed)} of {len(decided.vms)} VMs removed")
                self._remove(group, vm)
                removed.append(vm)
        finally:
            with self._lock:
                self._removing.difference_update(v.id for v in decided.vms)
                gone = {v.id for v in removed}
                self._gone.update(gone)
                self._members[name] = tuple(v for v in self._members[name] if v.id not in gone)
                for vm_id in gone:
                    self._owner.pop(providerid.normalize_vm_id(vm_id), None)
            if removed:
                self._on_removed(name, len(removed))
                log.info("node-group VMs removed", extra=kv(group=name, vms=",".join(v.name for v in removed)))
        return tuple(removed)

    def _remove(self, group: NodeGroupConfig, vm: GroupVm) -> None:
        """Stop and remove one VM reserved in ``_removing`` by :meth:`delete`."""
        try:
            current = self._engine.get_vm(vm.id)
            if current is None:
                return  # already gone
            problem = self._verify(group, current)  # the VM is re-read and verified right before the removal
            if problem is not None:
                raise Refused(f"node group {group.name}: VM {current.name} ({vm.id}) is no longer this group's "
                              f"({problem}); it was not removed")
            if current.status != "down":
                self._engine.stop(vm.id)
                self._wait_down(vm)
            self._engine.remove(vm.id)
        finally:
            with self._lock:
                self._pending.pop(vm.id, None)

    def _wait_down(self, vm: GroupVm) -> None:
        deadline = time.monotonic() + self._stop_timeout
        while True:
            current = self._engine.get_vm(vm.id)
            if current is None or current.status == "down":
                return
            if time.monotonic() >= deadline:
                raise EngineFaultError(f"VM {vm.name} ({vm.id}) was stopped but is still {current.status} after "
                                       f"{self._stop_timeout:g} s; it was not removed")
            if self._stopping.wait(min(self._poll, 1.0)):
                raise EngineTransientError(f"VM {vm.name} ({vm.id}): shutting down before it was removed")

    def template_node(self, name: str) -> TemplateNode:
        group = self.config(name)
        return ng.template_node(group, self._place(group), self._nodes)

    # --- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nodegroups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                now = time.monotonic()
                self._pending = {k: v for k, v in self._pending.items() if v > now}
                pending = bool(self._pending)
                idle = self._refreshed_at is None or now - self._refreshed_at >= self._idle_refresh
            members: dict[str, tuple[GroupVm, ...]] | None = None
            if pending or idle:
                with contextlib.suppress(EngineError):
                    members = self._search()
            else:
                with self._lock:
                    members = dict(self._members)
            if members is not None and self._needs_repair(members):
                self._repair(members)
            self._wake.wait(self._poll if pending else min(self._poll * 5, self._idle_refresh))
            self._wake.clear()


__all__ = ["Engine", "Instance", "NodeGroups", "Refused", "read_user_data"]
