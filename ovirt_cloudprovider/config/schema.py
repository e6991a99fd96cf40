"""The configuration's schema: every section and key, and how each value is parsed and validated.

Pure functions from text to values. A parse failure raises :class:`Invalid` whose ``problem`` says what is wrong
without the surrounding file, section and key (the reader adds those), and never echoes a value that could be a
secret. Also the small parsers other modules share: :func:`parse_bind_address` and :func:`rewrite_legacy_query`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.settings import (
    DEFAULT_API_PATH,
    AutoscalerConfig,
    ConnectionConfig,
    ControllerConfig,
    FiltersConfig,
    NodesConfig,
)


class Invalid(Exception):
    """A value is wrong; ``problem`` says why (the caller adds file, section and key)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class _Key:
    parse: Callable[[str], Any]
    is_list: bool = False  # value may span lines; empty means an empty list
    multiline: bool = False  # a single value that may span lines (joined with spaces)


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
          "0": False}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# "tags" as a search field: at the start or after whitespace / "Vms:", followed by = or !=.
_TAGS_FIELD = re.compile(r"(^|[\s:])(tags)(?=\s*!?=)", re.IGNORECASE)


def _show(value: str) -> str:
    """A value quoted for an error message (one line, at most 80 characters)."""
    if len(value) > 80:
        value = value[:77] + "..."
    return json.dumps(value, ensure_ascii=False)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split_items(value: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", value) if item]


def _bool(value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise Invalid(f"{_show(value)} is not a boolean (use true/false, yes/no, on/off or 1/0)") from None


def _number(value: str, *, unit: str = "seconds") -> float:
    try:
        number = float(value)
    except ValueError:
        raise Invalid(f"{_show(value)} is not a number ({unit})") from None
    if not math.isfinite(number):
        raise Invalid(f"{_show(value)} is not a finite number ({unit})")
    return number


@dataclass(frozen=True)
class _Seconds:
    """A duration from ``minimum`` (or more than it) to at most ``maximum`` seconds; optionally 0 = off."""

    minimum: float
    maximum: float
    inclusive: bool = True
    zero_ok: bool = False

    def __call__(self, value: str) -> float:
        number = _number(value)
        if self.zero_ok and number == 0:
            return 0.0
        if number < self.minimum or (not self.inclusive and number == self.minimum):
            bound = f"at least {self.minimum:g}" if self.inclusive else f"more than {self.minimum:g}"
            extra = " (or 0 to disable)" if self.zero_ok else ""
            raise Invalid(f"must be {bound} seconds{extra}, got {number:g}")
        if number > self.maximum:
            raise Invalid(f"must be at most {self.maximum:g} seconds, got {number:g}")
        return number

    def describe(self) -> str:
        low = f"{self.minimum:g} to" if self.inclusive else f"more than {self.minimum:g} and at most"
        return ("0 (off) or " if self.zero_ok else "") + f"{low} {self.maximum:g} seconds"


@dataclass(frozen=True)
class _Integer:
    minimum: int
    maximum: int

    def __call__(self, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            if re.fullmatch(r"[+-]?[0-9]+", value.strip()):  # more digits than int() accepts
                raise Invalid(f"must be from {self.minimum} to {self.maximum}, got a number of "
                              f"{len(value.strip())} digits") from None
            raise Invalid(f"{_show(value)} is not a whole number") from None
        if not self.minimum <= number <= self.maximum:
            raise Invalid(f"must be from {self.minimum} to {self.maximum}, got {number}")
        return number

    def describe(self) -> str:
        return f"{self.minimum} to {self.maximum}"


@dataclass(frozen=True)
class _Fraction:
    def __call__(self, value: str) -> float:
        number = _number(value, unit="a fraction like 0.5")
        if not 0 < number <= 1:
            raise Invalid(f"must be more than 0 and at most 1, got {value}")
        return number

    def describe(self) -> str:
        return "more than 0 and at most 1"


@dataclass(frozen=True)
class _Rate:
    maximum: float = 100000.0

    def __call__(self, value: str) -> float:
        number = _number(value, unit="requests per second")
        if not 0 < number <= self.maximum:
            raise Invalid(f"must be more than 0 and at most {self.maximum:g} requests per second, got {value}")
        return number

    def describe(self) -> str:
        return f"more than 0 and at most {self.maximum:g} requests per second"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normal = value.lower().replace("_", "-")
        if normal in allowed:
            return normal
        hint = difflib.get_close_matches(normal, allowed, n=1)
        did_you_mean = f" (did you mean {_show(hint[0])}?)" if hint else ""
        raise Invalid(f"{_show(value)} is not one of {', '.join(allowed)}{did_you_mean}")
    return parse


def _text(value: str) -> str:
    return value


def _cidrs(value: str) -> tuple[str, ...]:
    networks: list[str] = []
    for item in _split_items(value):
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as err:
            if "host bits set" in str(err):
                fixed = ipaddress.ip_network(item, strict=False)
                raise Invalid(f"{_show(item)} has host bits set (did you mean {fixed}?)") from None
            raise Invalid(f"{_show(item)} is not a CIDR network like 10.0.0.0/8 or fd00::/8") from None
        if str(network) not in networks:
            networks.append(str(network))
    return tuple(networks)


def _patterns(value: str) -> tuple[str, ...]:
    patterns: list[str] = []
    for item in _split_items(value):
        if "/" in item:
            raise Invalid(f"{_show(item)} is not an interface name pattern (no '/' allowed)")
        if item not in patterns:
            patterns.append(item)
    return tuple(patterns)


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid Kubernetes label key, or ``None`` when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "has an empty prefix before '/'"
    if prefix and not _DNS_SUBDOMAIN.fullmatch(prefix):
        return f"prefix {_show(prefix)} is not a lowercase DNS subdomain (at most 253 characters)"
    if not name:
        return "has an empty name"
    if not _LABEL_NAME.fullmatch(name):
        return ("name part must be at most 63 characters of A-Z a-z 0-9 - _ . and begin and end with a "
                "letter or digit")
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid Kubernetes label value, or ``None`` when it is."""
    if not _LABEL_VALUE.fullmatch(value):
        return ("must be at most 63 characters of A-Z a-z 0-9 - _ . and begin and end with a letter or "
                "digit")
    return None


def _labels(value: str) -> tuple[tuple[str, str], ...]:
    labels: dict[str, str] = {}
    for item in _split_items(value):
        key, eq, label_value = item.partition("=")
        if not eq:
            raise Invalid(f"{_show(item)} is not key=value")
        problem = label_key_problem(key)
        if problem:
            raise Invalid(f"label key {_show(key)} {problem}")
        problem = label_value_problem(label_value)
        if problem:
            raise Invalid(f"label value {_show(label_value)} for {key} {problem}")
        if key in labels:
            raise Invalid(f"label {key} is given twice")
        labels[key] = label_value
    return tuple(sorted(labels.items()))


def namespace(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise Invalid(f"{_show(value)} is not a valid namespace name (lowercase DNS label, at most 63 "
                       "characters)")
    return value


def instance_name(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise Invalid(f"{_show(value)} is not a valid instance name (lowercase DNS label, at most 63 characters: "
                      "it names the Lease and is recorded on every node this instance owns)")
    return value


def object_name(value: str) -> str:
    if not _DNS_SUBDOMAIN.fullmatch(value):
        raise Invalid(f"{_show(value)} is not a valid object name (lowercase DNS subdomain)")
    return value


def _tag_name(value: str) -> str | None:
    """An oVirt tag's name (one line); empty: None."""
    if any(c in value for c in "\n\r\t"):
        raise Invalid("must be one tag name on one line")
    return value.strip() or None


def _bind_address(value: str) -> str:
    try:
        parse_bind_address(value)
    except ValueError as err:
        raise Invalid(f"{_show(value)} is not HOST:PORT, :PORT or [IPv6]:PORT: {err}") from None
    return value


SCHEMA: dict[str, dict[str, _Key]] = {
    "connection": {
        "uri": _Key(_text),
        "username": _Key(_text),
        "password": _Key(_text),
        "password_file": _Key(_text),
        "ca_file": _Key(_text),
        "insecure": _Key(_bool),
        "timeout": _Key(_Seconds(0, 3600, inclusive=False)),
    },
    "filters": {
        "vms": _Key(_text, multiline=True),
        "hosts": _Key(_text, multiline=True),
    },
    "nodes": {
        "name_source": _Key(_choice("name", "fqdn", "short-fqdn")),
        "internal_cidrs": _Key(_cidrs, is_list=True),
        "external_cidrs": _Key(_cidrs, is_list=True),
        "unmatched_addresses": _Key(_choice("internal", "external", "ignore")),
        "ignore_interfaces": _Key(_patterns, is_list=True),
        "zone_source": _Key(_choice("cluster", "datacenter", "host", "none")),
        "region_source": _Key(_choice("datacenter", "cluster", "none")),
        "extra_labels": _Key(_labels, is_list=True),
        "tag_labels": _Key(_tag_name),
        "affinity_labels": _Key(_bool),
        "host_id_label": _Key(_bool),
        "register": _Key(_bool),
        "initialize": _Key(_bool),
        "update": _Key(_bool),
        "taint_shutdown": _Key(_bool),
        "delete": _Key(_bool),
        "out_of_service_taint": _Key(_bool),
        "out_of_service_after": _Key(_Seconds(0, 86400)),
    },
    "controller": {
        "instance": _Key(instance_name),
        "sync_interval": _Key(_Seconds(5, 86400)),
        "event_poll_interval": _Key(_Seconds(1, 86400, zero_ok=True)),
        "page_size": _Key(_Integer(1, 1000)),
        "engine_concurrency": _Key(_Integer(1, 8)),
        "delete_after_sweeps": _Key(_Integer(1, 1000)),
        "max_delete_fraction": _Key(_Fraction()),
        "max_delete_count": _Key(_Integer(0, 100000)),
        "allow_cluster_removal": _Key(_bool),
        "leader_elect": _Key(_bool),
        "leader_elect_namespace": _Key(namespace),
        "leader_elect_lease_name": _Key(object_name),
        "lease_duration": _Key(_Seconds(0, 3600, inclusive=False)),
        "renew_deadline": _Key(_Seconds(0, 3600, inclusive=False)),
        "retry_period": _Key(_Seconds(0, 600, inclusive=False)),
        "metrics_bind_address": _Key(_bind_address),
        "backoff_max": _Key(_Seconds(1, 86400)),
        "kube_api_qps": _Key(_Rate()),
        "kube_api_burst": _Key(_Integer(1, 100000)),
    },
    "autoscaler": {
        "mark_key_file": _Key(_text),
    },
}
# ``[nodegroup NAME]`` sections (any number; NAME a DNS label of at most 40 characters): the autoscaler's node groups.
NODEGROUP = "nodegroup"
_NODEGROUP_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")
_TAG_NAME = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_.]{0,127}")


def _required_text(value: str) -> str:
    if any(c in value for c in "\n\r\t"):
        raise Invalid("must be one line")
    return value


def _name_prefix(value: str) -> str:
    if not _NODEGROUP_NAME.fullmatch(value):
        raise Invalid(f"{_show(value)} is not a lowercase DNS label of at most 40 characters (VM names are "
                      "<name_prefix>-<suffix> and become node names)")
    return value


def _tag_names(value: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in _split_items(value):
        if not _TAG_NAME.fullmatch(item):
            raise Invalid(f"{_show(item)} is not an engine tag name")
        if item not in names:
            names.append(item)
    return tuple(names)


def nodegroup_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a node group, or ``None`` when it can."""
    if not _NODEGROUP_NAME.fullmatch(name):
        return "must be a lowercase DNS label of at most 40 characters"
    return None


NODEGROUP_SCHEMA: dict[str, _Key] = {
    "template": _Key(_required_text),
    "template_version": _Key(_Integer(1, 100000)),
    "cluster": _Key(_required_text),
    "min_size": _Key(_Integer(0, 1000)),
    "max_size": _Key(_Integer(1, 1000)),
    "name_prefix": _Key(_name_prefix),
    "tags": _Key(_tag_names, is_list=True),
    "user_data_file": _Key(_text),
    "cpus": _Key(_Integer(1, 768)),
    "memory": _Key(_Integer(256, 64 * 1024 * 1024)),
    "affinity_group": _Key(_required_text),
}
NODEGROUP_REQUIRED = ("template", "cluster", "max_size")

SECTION_CLASSES: dict[str, type[Any]] = {
    "connection": ConnectionConfig, "filters": FiltersConfig, "nodes": NodesConfig,
    "controller": ControllerConfig, "autoscaler": AutoscalerConfig,
}

# Labels core/desired.py computes itself; extra_labels may not set them (zone/region only when their
# source is "none").
COMPUTED_LABELS = (
    "node.kubernetes.io/instance-type", "ovirt.org/host", "ovirt.org/cluster", "ovirt.org/datacenter",
    "kubernetes.io/arch", "kubernetes.io/os", "kubernetes.io/hostname", "app.kubernetes.io/managed-by",
    "ovirt.org/migratable", "topology.scs.community/host-id",
)
# Label prefixes whose labels the controller owns (core/metadata.py): extra_labels may not use them.
OWNED_LABEL_PREFIXES = ("tags.ovirt.org/", "affinity.ovirt.org/")


def schema_keys() -> dict[str, tuple[str, ...]]:
    """Every section and its keys, in documentation order (used by tests and ``check-config``)."""
    return {section: tuple(keys) for section, keys in SCHEMA.items()}


def value_range(section: str, key: str) -> str:
    """The documented range of a numeric key ("5 to 86400 seconds"), or "" for a key that is not a number."""
    parse = (NODEGROUP_SCHEMA if section == NODEGROUP else SCHEMA[section])[key].parse
    return parse.describe() if isinstance(parse, (_Seconds, _Integer, _Fraction, _Rate)) else ""


def parse_bind_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[IPv6]:PORT`` → ``(host, port)``; host ``""`` means all
    interfaces. Raises ``ValueError`` with a short reason."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or not value[end + 1:].startswith(":"):
            raise ValueError("expected [IPv6]:PORT")
        host, port_text = value[1:end], value[end + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT or :PORT")
        if ":" in host:
            raise ValueError("write an IPv6 host in brackets: [::]:PORT")
        if host and not (_is_ip(host) or _DNS_SUBDOMAIN.fullmatch(host.lower())):
            raise ValueError(f"{host!r} is not an IP address or host name")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
    return host, int(port_text)


def rewrite_legacy_query(query: str) -> str:
    """Rewrite the search field ``tags`` to ``tag`` (``tags=x``, ``Tags = x``, ``tags!=x``), outside
    quoted strings and only where a field name stands (not inside values)."""
    out: list[str] = []
    for quoted, segment in _split_quoted(query):
        out.append(segment if quoted else _TAGS_FIELD.sub(lambda m: m.group(1) + m.group(2)[:-1], segment))
    return "".join(out)


def _split_quoted(text: str) -> list[tuple[bool, str]]:
    """Split a search query into (quoted?, segment) parts; a quoted segment keeps its quotes."""
    parts: list[tuple[bool, str]] = []
    for i, piece in enumerate(re.split(r'("[^"]*")', text)):
        if piece:
            parts.append((i % 2 == 1, piece))
    return parts


def check_uri(value: str) -> tuple[str, str | None]:
    """Validate and normalise the API URL → (url, what was appended or None)."""
    if any(c.isspace() for c in value):
        raise Invalid("must not contain spaces")
    if "://" not in value:
        shown = "it" if "@" in value else _show(value)  # "user:password@host" is not echoed
        raise Invalid(f"{shown} is not a URL; expected https://ENGINE/ovirt-engine/api")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise Invalid("has an invalid host or port") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise Invalid(f"scheme {_show(parts.scheme)} is not supported; use https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain a user name or password; use the username and password keys")
    if not parts.hostname:
        raise Invalid("has no host; expected https://ENGINE/ovirt-engine/api")
    if port == 0:
        raise Invalid("has an invalid port 0")
    if parts.query or parts.fragment:
        raise Invalid("must not have a query (?...) or fragment (#...)")
    path = parts.path.rstrip("/")
    appended: str | None = None
    if path == "":
        path, appended = DEFAULT_API_PATH, DEFAULT_API_PATH
    elif path == "/ovirt-engine":
        path, appended = DEFAULT_API_PATH, "/api"
    return f"{scheme}://{parts.netloc}{path}", appended


def check_query(query: str) -> None:
    unquoted = "".join(seg for quoted, seg in _split_quoted(query) if not quoted)
    if '"' in unquoted:
        raise Invalid("has an unbalanced double quote")
    if "(" in unquoted or ")" in unquoted:
        raise Invalid("the engine's search language has no parentheses (write 'a and c or b and c' "
                       "for '(a or b) and c'; quote values that contain them)")
    # oVirt's grammar: "criteria [sortby FIELD [asc|desc]] [page N]" at the end of the query.
    tail = {"sortby": r"(^|\s)sortby\s+\S+(\s+(asc|desc))?(\s+page\s+\d+)?\s*$",
            "page": r"(^|\s)page\s+\d+\s*$"}
    for word, pattern in tail.items():
        if re.search(pattern, unquoted, re.IGNORECASE):
            raise Invalid(f"must not contain '{word}': the controller adds 'sortby name asc page N' "
                           "itself")
