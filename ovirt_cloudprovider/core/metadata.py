"""oVirt's own metadata as node labels: tags under a parent tag, affinity labels, placement (pure).

- **Tags** (``[nodes] tag_labels = <parent>``), read as vSphere's cloud provider reads tag categories: a child
  tag of the parent that has children is a key and each of its children a value (a VM tagged ``a100``, a child of
  ``gpu``, a child of the parent, gets ``tags.ovirt.org/gpu=a100``); a child without children is
  ``tags.ovirt.org/<name>=true``. Deeper tags are not read. The tree is the discovery's one list of ``/tags``
  (:attr:`~.records.Snapshot.tags`), tags joined by name (the engine keeps tag names unique). A key or value
  that is no valid label is skipped with a note (``InvalidMetadataLabel``); two values for one key on one VM is
  a conflict (``TagLabelConflict``): no label for that key, never a guess.
- **Affinity labels** (``[nodes] affinity_labels = true``): ``affinity.ovirt.org/<name>=true`` for each of the
  VM's (or host's) oVirt affinity labels; an invalid name is skipped with a note.
- **Placement**: ``ovirt.org/migratable`` = ``true`` for a ``migratable`` placement policy, ``false`` for
  ``user_migratable`` and ``pinned``; omitted when the engine does not say. ``[nodes] host_id_label = true``:
  ``topology.scs.community/host-id`` = the id of the oVirt host the VM runs on.

Labels under ``tags.ovirt.org/`` and ``affinity.ovirt.org/`` are ours: :mod:`.changes` removes one that is no
longer derived. Not while the parent is unknown: when ``[nodes] tag_labels`` names a tag the engine's tag tree
does not have (renamed or removed) or the tree was not listed, no tag label is derived and the NodeSpec keeps
``tags.ovirt.org/`` (``NodeSpec.kept_label_prefixes``): the nodes' tag labels are left as they are, never all
stripped because of a tree the controller does not understand.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .naming import quote
from .records import (
    AFFINITY_LABEL_PREFIX,
    LABEL_HOST_ID,
    LABEL_MIGRATABLE,
    TAG_LABEL_PREFIX,
    Tag,
    VirtualMachine,
)
from .settings import NodesConfig

REASON_TAG_CONFLICT = "TagLabelConflict"
REASON_INVALID_LABEL = "InvalidMetadataLabel"
NOTE_REASONS = (REASON_TAG_CONFLICT, REASON_INVALID_LABEL)

# a label name (the part after the prefix) and a label value, as kube-apiserver validates them
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_PLACEMENT = {"migratable": "true", "user_migratable": "false", "pinned": "false"}

Note = tuple[str, str]  # (reason, message)


@dataclass(frozen=True)
class TagLabels:
    """What each tag under the parent means: tag name → (label key, value), or → why it is no label."""

    parent: str
    labels: Mapping[str, tuple[str, str]]
    invalid: Mapping[str, str]

    @property
    def empty(self) -> bool:
        return not self.labels and not self.invalid


def tag_labels(tags: Sequence[Tag] | None, parent: str | None) -> TagLabels | None:
    """The label of every tag under ``parent`` in the tag tree ``tags``; None when there is no parent configured,
    the tree was not listed, or the parent is not in it (renamed or removed: what the tags mean is not known, so
    :mod:`.desired` keeps the labels under ``tags.ovirt.org/`` as they are rather than removing them)."""
    if parent is None or tags is None or not any(t.name == parent for t in tags):
        return None
    children: dict[str | None, list[Tag]] = defaultdict(list)
    for tag in tags:
        children[tag.parent_id].append(tag)
    labels: dict[str, tuple[str, str]] = {}
    invalid: dict[str, str] = {}
    for top in (t for t in tags if t.name == parent):
        for child in children.get(top.id, ()):
            key_ok = _NAME.fullmatch(child.name) is not None
            key = TAG_LABEL_PREFIX + child.name
            values = children.get(child.id, ())
            if not values:
                if key_ok:
                    labels[child.name] = (key, "true")
                else:
                    invalid[child.name] = f"tag {quote(child.name)} under {quote(parent)} is no valid label name"
            for value in values:
                if not key_ok:
                    invalid[value.name] = (f"tag {quote(child.name)} under {quote(parent)} (the key of tag "
                                           f"{quote(value.name)}) is no valid label name")
                elif _VALUE.fullmatch(value.name) is None:
                    invalid[value.name] = (f"tag {quote(value.name)} under {quote(child.name)} is no valid label "
                                           "value")
                else:
                    labels[value.name] = (key, value.name)
    return TagLabels(parent=parent, labels=labels, invalid=invalid)


def _tags(vm_tags: Iterable[str], table: TagLabels) -> tuple[dict[str, str], list[Note]]:
    found: dict[str, set[str]] = defaultdict(set)
    notes: list[Note] = []
    for name in vm_tags:
        if name in table.invalid:
            notes.append((REASON_INVALID_LABEL, f"{table.invalid[name]}; skipped"))
        elif name in table.labels:
            key, value = table.labels[name]
            found[key].add(value)
    labels: dict[str, str] = {}
    for key, values in found.items():
        if len(values) == 1:
            labels[key] = next(iter(values))
        else:
            listed = ", ".join(quote(v) for v in sorted(values))
            notes.append((REASON_TAG_CONFLICT, f"tags {listed} all give label {key}: no label for that key"))
    return labels, notes


def affinity(names: Iterable[str]) -> tuple[dict[str, str], list[Note]]:
    """``affinity.ovirt.org/<name>=true`` for each affinity label name; a note for each invalid one."""
    labels: dict[str, str] = {}
    notes: list[Note] = []
    for name in names:
        if _NAME.fullmatch(name) is None:
            notes.append((REASON_INVALID_LABEL, f"affinity label {quote(name)} is no valid label name; skipped"))
        else:
            labels[AFFINITY_LABEL_PREFIX + name] = "true"
    return labels, notes


def vm_metadata(vm: VirtualMachine, nodes: NodesConfig,
                table: TagLabels | None) -> tuple[dict[str, str], tuple[Note, ...]]:
    """The metadata labels of ``vm``'s node and the notes on those that could not be derived."""
    labels: dict[str, str] = {}
    notes: list[Note] = []
    migratable = _PLACEMENT.get(vm.placement or "")
    if migratable is not None:
        labels[LABEL_MIGRATABLE] = migratable
    if nodes.host_id_label and vm.host_id and _VALUE.fullmatch(vm.host_id):
        labels[LABEL_HOST_ID] = vm.host_id
    if table is not None:
        got, more = _tags(vm.tags, table)
        labels.update(got)
        notes += more
    if nodes.affinity_labels:
        got, more = affinity(vm.affinity_labels)
        labels.update(got)
        notes += more
    return labels, tuple(notes)


__all__ = ["NOTE_REASONS", "REASON_INVALID_LABEL", "REASON_TAG_CONFLICT", "TagLabels", "affinity", "tag_labels",
           "vm_metadata"]
