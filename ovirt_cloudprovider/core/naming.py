"""Node names, label values and skip reasons: what a VM's (:mod:`.desired`) and a host's (:mod:`.hosts`) Node
derivation share (pure).

Node names
    Kubernetes node names are DNS-1123 subdomains. A name that is valid once lowercased is used as it is (the
    kubelet lowercases its hostname the same way). Otherwise it is made valid predictably: lowercase; every run
    of characters other than ``a-z 0-9 . -`` becomes one ``-``; within each dot-separated label runs of ``-``
    collapse to one and leading/trailing ``-`` go; empty labels (``..``, leading or trailing dots) go.
    ``My_VM 01`` → ``my-vm-01``, ``web..Front_`` → ``web.front``. When nothing is left, or the result is longer
    than 253 characters or has a label longer than 63, there is no name (:func:`make_node_name` says why) and
    the VM or host is skipped: a name is never guessed.

Label values
    Characters other than ``A-Z a-z 0-9 . _ -`` become ``-``, non-alphanumerics are trimmed at both ends; a
    value that is empty or longer than 63 characters then omits the label (:func:`label_value`).

``kubernetes.io/arch``
    amd64 (x86_64), arm64 (aarch64), ppc64le (ppc64le, and ppc64, which is how the engine names its POWER
    platform; oVirt runs little-endian POWER guests), s390x; omitted otherwise (:func:`kube_arch`).

Skip reasons
    A skipped VM's or host's ``reason`` starts with a stable short code for metrics (:func:`skip_code`), then a
    sentence: ``invalid-name: ...``, ``duplicate-name: ...``, ``no-fqdn: ...``, ``invalid-id: ...``,
    ``inconsistent: ...``, ``unreadable: ...``; values from the engine are quoted (:func:`quote`).
    ``unreadable``: one bad datum affects one VM or host, never the others: whatever raises while one record's
    name or NodeSpec is derived (a value no rule foresaw) skips that record, with the error in the reason
    (:func:`unreadable`). A skipped VM or host is present: its node is neither written nor counted absent.
"""

from __future__ import annotations

import re

from .records import SkippedVM

SKIP_INVALID_NAME = "invalid-name"
SKIP_DUPLICATE_NAME = "duplicate-name"
SKIP_NO_FQDN = "no-fqdn"
SKIP_INVALID_ID = "invalid-id"
SKIP_INCONSISTENT = "inconsistent"
SKIP_UNREADABLE = "unreadable"
SKIP_CODES = frozenset({SKIP_INVALID_NAME, SKIP_DUPLICATE_NAME, SKIP_NO_FQDN, SKIP_INVALID_ID, SKIP_INCONSISTENT,
                        SKIP_UNREADABLE})

_DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
_ARCHITECTURES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le",
    "ppc64": "ppc64le", "s390x": "s390x",
}

def skip_code(skipped: SkippedVM) -> str:
    """The stable short code of a skip reason (a metrics label value), ``"other"`` if it has none."""
    code = skipped.reason.split(":", 1)[0]
    return code if code in SKIP_CODES else "other"


def unreadable(what: str, exc: Exception) -> str:
    """The coded skip reason of a VM or host whose derivation raised ``exc`` (one line, bounded)."""
    detail = " ".join(str(exc).split())
    return (f"{SKIP_UNREADABLE}: its {what} record could not be turned into a node "
            f"({type(exc).__name__}: {quote(detail)[1:-1]}); it is left as it is")


def safe_text(text: object) -> str:
    """A record's id or name for a skip record, whatever it holds."""
    return text if isinstance(text, str) else ""


def make_node_name(raw: str) -> tuple[str | None, str | None]:
    """``raw`` as a valid node name → ``(name, None)``, or ``(None, problem)`` when it cannot be."""
    lowered = raw.strip().lower()
    if _DNS_SUBDOMAIN.fullmatch(lowered):
        return (raw if lowered == raw else lowered), None  # the VM's own string when valid: one copy, not two
    replaced = re.sub(r"[^a-z0-9.-]+", "-", lowered)
    labels = [re.sub(r"-{2,}", "-", label).strip("-") for label in replaced.split(".")]
    name = ".".join(label for label in labels if label)
    if not name:
        return None, "has no letters or digits to make a node name of"
    if len(name) > 253:
        return None, f"makes a node name of {len(name)} characters (at most 253)"
    long_label = next((label for label in name.split(".") if len(label) > 63), None)
    if long_label is not None:
        return None, f"makes a node name with a part of {len(long_label)} characters (at most 63)"
    return name, None
def label_value(value: str | None) -> str | None:
    """``value`` as a valid label value, or ``None`` (omit the label) when nothing valid is left or it
    is longer than 63 characters."""
    if value is None:
        return None
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value.strip()).strip("-._")
    if not cleaned or len(cleaned) > 63:
        return None
    return cleaned


def kube_arch(architecture: str | None) -> str | None:
    """The Kubernetes (GOARCH) name for an oVirt / guest architecture, or ``None``."""
    return _ARCHITECTURES.get((architecture or "").strip().lower())


def quote(text: str | None) -> str:
    """``text`` in double quotes, escaped, at most 80 characters: a value from the engine in a reason."""
    text = text or ""
    if len(text) > 80:
        text = text[:77] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def and_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
