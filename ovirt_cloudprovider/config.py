"""INI configuration → :class:`Config`.

``load_config(path, environ)`` reads the file, applies the environment overrides and returns a frozen
:class:`Config`, or raises :class:`ConfigError` whose ``str()`` is one line naming the file, section
and key: ``/etc/ovirt/ovirt-cloud.conf: [nodes] name_source: "fqdnn" is not one of ...``.

The format is the legacy in-tree oVirt provider's (``[connection]`` uri/username/password and
``[filters]`` vms, read there with gcfg), extended with optional keys and the ``[nodes]`` and
``[controller]`` sections. Rules, all documented in ``ovirt-cloud.conf.example``:

- Section and key names are case-insensitive; ``-`` in a key name is read as ``_``.
- A value wrapped in double quotes is unquoted (gcfg did that; ``\\"``, ``\\\\``, ``\\n``, ``\\t`` escapes).
  There are no inline comments: ``#`` and ``;`` only start a comment at the beginning of a line, so
  passwords may contain them. No ``%`` interpolation either.
- An empty value means "the default" for single-valued keys and "an empty list" for list keys.
- Relative file paths (``ca_file``, ``password_file``) are relative to the configuration file's
  directory (from the environment: to the working directory).
- ``OVIRT_URL``, ``OVIRT_USERNAME``, ``OVIRT_PASSWORD`` and ``OVIRT_PASSWORD_FILE`` (when set and not
  empty) win over the file; the password source as a whole: ``OVIRT_PASSWORD_FILE`` replaces the file's
  password, ``OVIRT_PASSWORD`` its password_file. One trailing newline of a password is dropped, from a
  file or from ``OVIRT_PASSWORD`` alike.

Reading files (the configuration, ``ca_file`` and ``password_file`` to check them) is the only I/O here;
everything else is validation.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import json
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .logs import kv

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/ovirt/ovirt-cloud.conf"
DEFAULT_API_PATH = "/ovirt-engine/api"
LEGACY_DEFAULT_USERNAME = "admin@internal"  # the in-tree provider's default when username was not set

ENV_URL = "OVIRT_URL"
ENV_USERNAME = "OVIRT_USERNAME"
ENV_PASSWORD = "OVIRT_PASSWORD"
ENV_PASSWORD_FILE = "OVIRT_PASSWORD_FILE"

_MAX_SECRET_FILE_BYTES = 64 * 1024
_MAX_CA_FILE_BYTES = 16 * 1024 * 1024


class ConfigError(Exception):
    """A configuration mistake. ``str(err)`` is one line: ``<file>: [section] key: what is wrong``.

    For a value that came from the environment it reads ``environment variable OVIRT_URL: what is
    wrong``. ``ConfigError("text")`` (a bare message) also works. Never contains a password.
    """

    def __init__(self, problem: str, *, path: str | None = None, section: str | None = None,
                 key: str | None = None, env: str | None = None) -> None:
        self.problem = _one_line(problem)
        self.path = path
        self.section = section
        self.key = key
        self.env = env
        super().__init__(self.problem)

    def __str__(self) -> str:
        parts: list[str] = []
        if self.env:
            parts.append(f"environment variable {self.env}")
        else:
            if self.path:
                parts.append(self.path)
            if self.section is not None:
                parts.append(f"[{self.section}]" + (f" {self.key}" if self.key else ""))
        parts.append(self.problem)
        return ": ".join(parts)


@dataclass(frozen=True)
class ConnectionConfig:
    uri: str  # https://engine.example.com/ovirt-engine/api
    username: str = LEGACY_DEFAULT_USERNAME
    password: str = field(default="", repr=False)  # never logged; see password_file
    password_file: str | None = None  # re-read on every login, so a rotated Secret is picked up
    ca_file: str | None = None  # PEM bundle; None = the system bundle
    insecure: bool = False  # skip TLS verification (only when asked)
    timeout: float = 30.0  # seconds, bounds every request including the SSO login


@dataclass(frozen=True)
class FiltersConfig:
    vms: str = ""  # the oVirt search query as it is sent (``tags=`` already rewritten to ``tag=``)


@dataclass(frozen=True)
class NodesConfig:
    name_source: str = "name"  # "name" (VM name) | "fqdn" | "short-fqdn"
    internal_cidrs: tuple[str, ...] = ()  # addresses in these networks are InternalIP
    external_cidrs: tuple[str, ...] = ()  # addresses in these networks are ExternalIP
    unmatched_addresses: str = "internal"  # "internal" | "external" | "ignore"
    ignore_interfaces: tuple[str, ...] = (
        "lo", "docker*", "cali*", "flannel*", "cni*", "veth*", "cilium*", "kube-ipvs*", "vxlan*",
        "tunl*", "weave*", "virbr*", "lxc*", "kube-bridge", "nodelocaldns", "ovn-k8s-mp*", "genev_sys_*",
        "antrea-*", "podman*",
        # Docker's user-defined bridge networks: br-<12 hex digits> (not br-ex or other real bridges)
        "br-" + "[0-9a-f]" * 12,
    )
    zone_source: str = "cluster"  # "cluster" | "datacenter" | "host" | "none"
    region_source: str = "datacenter"  # "datacenter" | "cluster" | "none"
    extra_labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    register: bool = True  # create Nodes for running VMs that have none
    initialize: bool = True  # initialize kubelet-registered nodes
    update: bool = True  # keep addresses and labels current
    taint_shutdown: bool = True  # taint nodes whose VM is down or suspended
    delete: bool = True  # delete nodes whose VM is confirmed gone


@dataclass(frozen=True)
class ControllerConfig:
    sync_interval: float = 60.0  # seconds between full sweeps (jittered by up to 10 %)
    event_poll_interval: float = 3.0  # seconds between /events polls; 0 disables
    page_size: int = 100  # VMs per search page
    delete_after_sweeps: int = 3  # consecutive successful sweeps a VM must be absent from
    max_delete_fraction: float = 0.5  # circuit breaker: share of managed nodes deletable at once
    max_delete_count: int = 10  # circuit breaker: absolute cap, whichever is smaller (0 = no cap)
    leader_elect: bool = True
    leader_elect_namespace: str = "kube-system"
    leader_elect_lease_name: str = "ovirt-cloudprovider"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    metrics_bind_address: str = "0.0.0.0:10270"
    backoff_max: float = 300.0  # cap of the exponential backoff after failed sweeps


@dataclass(frozen=True)
class Config:
    path: str
    connection: ConnectionConfig
    filters: FiltersConfig = FiltersConfig()
    nodes: NodesConfig = NodesConfig()
    controller: ControllerConfig = ControllerConfig()


# --- public helpers ---------------------------------------------------------------------------------

def resolve_password(conn: ConnectionConfig) -> str:
    """The password to log in with: ``password_file``'s content (read now, one trailing newline
    stripped) when set, else ``password``. Raises :class:`ConfigError` naming the file if it cannot
    be read or is empty, or when no password is configured at all."""
    if conn.password_file:
        try:
            return _read_secret_file(conn.password_file)
        except _Invalid as err:
            raise ConfigError(err.problem, path=conn.password_file) from None
    if conn.password:
        return conn.password
    raise ConfigError("no password configured (set password or password_file)", section="connection",
                      key="password")


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


# --- schema -----------------------------------------------------------------------------------------

class _Invalid(Exception):
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


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
        raise _Invalid(f"{_show(value)} is not a boolean (use true/false, yes/no, on/off or 1/0)") from None


def _number(value: str, *, unit: str = "seconds") -> float:
    try:
        number = float(value)
    except ValueError:
        raise _Invalid(f"{_show(value)} is not a number ({unit})") from None
    if not math.isfinite(number):
        raise _Invalid(f"{_show(value)} is not a finite number ({unit})")
    return number


def _seconds(minimum: float, *, inclusive: bool = True, zero_ok: bool = False) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = _number(value)
        if zero_ok and number == 0:
            return 0.0
        if number < minimum or (not inclusive and number == minimum):
            bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
            extra = " (or 0 to disable)" if zero_ok else ""
            raise _Invalid(f"must be {bound} seconds{extra}, got {value}")
        return number
    return parse


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise _Invalid(f"{_show(value)} is not a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            wanted = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise _Invalid(f"must be {wanted}, got {number}")
        return number
    return parse


def _fraction(value: str) -> float:
    number = _number(value, unit="a fraction like 0.5")
    if not 0 < number <= 1:
        raise _Invalid(f"must be more than 0 and at most 1, got {value}")
    return number


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normal = value.lower().replace("_", "-")
        if normal in allowed:
            return normal
        hint = difflib.get_close_matches(normal, allowed, n=1)
        did_you_mean = f" (did you mean {_show(hint[0])}?)" if hint else ""
        raise _Invalid(f"{_show(value)} is not one of {', '.join(allowed)}{did_you_mean}")
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
                raise _Invalid(f"{_show(item)} has host bits set (did you mean {fixed}?)") from None
            raise _Invalid(f"{_show(item)} is not a CIDR network like 10.0.0.0/8 or fd00::/8") from None
        if str(network) not in networks:
            networks.append(str(network))
    return tuple(networks)


def _patterns(value: str) -> tuple[str, ...]:
    patterns: list[str] = []
    for item in _split_items(value):
        if "/" in item:
            raise _Invalid(f"{_show(item)} is not an interface name pattern (no '/' allowed)")
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
            raise _Invalid(f"{_show(item)} is not key=value")
        problem = label_key_problem(key)
        if problem:
            raise _Invalid(f"label key {_show(key)} {problem}")
        problem = label_value_problem(label_value)
        if problem:
            raise _Invalid(f"label value {_show(label_value)} for {key} {problem}")
        if key in labels:
            raise _Invalid(f"label {key} is given twice")
        labels[key] = label_value
    return tuple(sorted(labels.items()))


def _namespace(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise _Invalid(f"{_show(value)} is not a valid namespace name (lowercase DNS label, at most 63 "
                       "characters)")
    return value


def _object_name(value: str) -> str:
    if not _DNS_SUBDOMAIN.fullmatch(value):
        raise _Invalid(f"{_show(value)} is not a valid object name (lowercase DNS subdomain)")
    return value


def _bind_address(value: str) -> str:
    try:
        parse_bind_address(value)
    except ValueError as err:
        raise _Invalid(f"{_show(value)} is not HOST:PORT, :PORT or [IPv6]:PORT: {err}") from None
    return value


_SCHEMA: dict[str, dict[str, _Key]] = {
    "connection": {
        "uri": _Key(_text),
        "username": _Key(_text),
        "password": _Key(_text),
        "password_file": _Key(_text),
        "ca_file": _Key(_text),
        "insecure": _Key(_bool),
        "timeout": _Key(_seconds(0, inclusive=False)),
    },
    "filters": {
        "vms": _Key(_text, multiline=True),
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
        "register": _Key(_bool),
        "initialize": _Key(_bool),
        "update": _Key(_bool),
        "taint_shutdown": _Key(_bool),
        "delete": _Key(_bool),
    },
    "controller": {
        "sync_interval": _Key(_seconds(5)),
        "event_poll_interval": _Key(_seconds(1, zero_ok=True)),
        "page_size": _Key(_integer(1, 1000)),
        "delete_after_sweeps": _Key(_integer(1)),
        "max_delete_fraction": _Key(_fraction),
        "max_delete_count": _Key(_integer(0)),
        "leader_elect": _Key(_bool),
        "leader_elect_namespace": _Key(_namespace),
        "leader_elect_lease_name": _Key(_object_name),
        "lease_duration": _Key(_seconds(0, inclusive=False)),
        "renew_deadline": _Key(_seconds(0, inclusive=False)),
        "retry_period": _Key(_seconds(0, inclusive=False)),
        "metrics_bind_address": _Key(_bind_address),
        "backoff_max": _Key(_seconds(1)),
    },
}
_SECTION_CLASSES: dict[str, type[Any]] = {
    "connection": ConnectionConfig, "filters": FiltersConfig, "nodes": NodesConfig,
    "controller": ControllerConfig,
}

# Labels desired.py computes itself; extra_labels may not set them (zone/region only when their
# source is "none").
_COMPUTED_LABELS = (
    "node.kubernetes.io/instance-type", "ovirt.org/host", "ovirt.org/cluster", "ovirt.org/datacenter",
    "kubernetes.io/arch", "kubernetes.io/os", "kubernetes.io/hostname", "app.kubernetes.io/managed-by",
)


def schema_keys() -> dict[str, tuple[str, ...]]:
    """Every section and its keys, in documentation order (used by tests and ``check-config``)."""
    return {section: tuple(keys) for section, keys in _SCHEMA.items()}


# --- reading the file --------------------------------------------------------------------------------

class _Parser(configparser.RawConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr.strip().lower()


def _read_config_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read the configuration file: {err.strerror or err}", path=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not a text file (not UTF-8); expected an INI file", path=path) from None


def _parse_ini(path: str, text: str) -> dict[str, dict[str, str]]:
    """INI text → {section: {key: raw value}}, names normalised; never echoes a line (passwords)."""
    parser = _Parser(interpolation=None, strict=True, default_section="\x00no default section",
                     delimiters=("=", ":"), comment_prefixes=("#", ";"), inline_comment_prefixes=None,
                     empty_lines_in_values=False)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as err:
        raise ConfigError(f"line {err.lineno}: not an INI file: expected a [section] header before the "
                          "first key", path=path) from None
    except configparser.DuplicateSectionError as err:
        raise ConfigError(f"section given twice (line {err.lineno})", path=path,
                          section=err.section) from None
    except configparser.DuplicateOptionError as err:
        raise ConfigError(f"key given twice (line {err.lineno})", path=path, section=err.section,
                          key=err.option) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0] if err.errors else "?"
        raise ConfigError(f"line {lineno}: not an INI line: expected \"key = value\", \"[section]\" or a "
                          "comment", path=path) from None
    except configparser.Error as err:
        raise ConfigError(f"not a valid INI file: {type(err).__name__}", path=path) from None

    result: dict[str, dict[str, str]] = {}
    original_names: dict[str, str] = {}
    for section in parser.sections():
        name = section.strip().lower()
        if name not in _SCHEMA:
            raise ConfigError(f"unknown section{_did_you_mean_section(name)}", path=path, section=section)
        if name in result:
            raise ConfigError(f"section given twice (as [{original_names[name]}] and [{section}])",
                              path=path, section=name)
        original_names[name] = section
        values: dict[str, str] = {}
        written: dict[str, str] = {}
        for key, raw in parser.items(section):
            normal = key.replace("-", "_")
            if normal not in _SCHEMA[name]:
                raise ConfigError(f"unknown key{_did_you_mean_key(name, normal)}", path=path, section=name,
                                  key=key)
            if normal in values:
                raise ConfigError(f"key given twice (as {written[normal]} and {key})", path=path,
                                  section=name, key=normal)
            written[normal] = key
            values[normal] = raw
        result[name] = values
    return result


def _did_you_mean_section(name: str) -> str:
    hint = difflib.get_close_matches(name, list(_SCHEMA), n=1)
    if hint:
        return f" (did you mean [{hint[0]}]?)"
    return f" (known sections: {', '.join(f'[{s}]' for s in _SCHEMA)})"


def _did_you_mean_key(section: str, key: str) -> str:
    for other, keys in _SCHEMA.items():
        if other != section and key in keys:
            return f" (it belongs in [{other}])"
    hint = difflib.get_close_matches(key, list(_SCHEMA[section]), n=1)
    if hint:
        return f" (did you mean {hint[0]!s}?)"
    return f" (known keys: {', '.join(_SCHEMA[section])})"


def _unquote(value: str) -> str:
    """gcfg-style quoting: a value wholly in double quotes loses them; \\" \\\\ \\n \\t are unescaped."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner):
            nxt = inner[i + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if c == '"':  # an unescaped quote inside: not one quoted value, keep it as written
            return value
        out.append(c)
        i += 1
    return "".join(out)


def _split_quoted(text: str) -> list[tuple[bool, str]]:
    """Split a search query into (quoted?, segment) parts; a quoted segment keeps its quotes."""
    parts: list[tuple[bool, str]] = []
    for i, piece in enumerate(re.split(r'("[^"]*")', text)):
        if piece:
            parts.append((i % 2 == 1, piece))
    return parts


# --- building the sections ---------------------------------------------------------------------------

@dataclass
class _Values:
    """One section's values: parsed, by field name (missing = default)."""

    path: str
    section: str
    parsed: dict[str, Any] = field(default_factory=dict)

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(problem, path=self.path, section=self.section, key=key)


def _parse_section(path: str, section: str, raw: dict[str, str]) -> _Values:
    values = _Values(path=path, section=section)
    for key, text in raw.items():
        spec = _SCHEMA[section][key]
        text = text.strip()
        if "\n" in text and not (spec.is_list or spec.multiline):
            raise values.error(key, "the value continues on an indented line below it (an indented line "
                                    "belongs to the key above; remove the indentation)")
        if spec.multiline:
            text = " ".join(text.split("\n"))
        text = _unquote(text)
        if text == "" and not spec.is_list:
            continue  # empty: the default
        try:
            values.parsed[key] = spec.parse(text)
        except _Invalid as err:
            raise values.error(key, err.problem) from None
    return values


def _resolve_path(config_path: str, value: str) -> str:
    value = os.path.expanduser(value)
    return os.path.join(os.path.dirname(config_path), value)


def _read_secret_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_SECRET_FILE_BYTES + 1)
    except OSError as err:
        raise _Invalid(f"cannot read the password file: {err.strerror or type(err).__name__}") from None
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise _Invalid("the password file is too large to hold a password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("the password file is not UTF-8 text") from None
    text = _strip_one_newline(text)
    if not text:
        raise _Invalid("the password file is empty")
    return text


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _check_ca_file(path: str) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CA_FILE_BYTES)
    except OSError as err:
        raise _Invalid(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise _Invalid(f"{path} is not a PEM certificate bundle (no BEGIN CERTIFICATE block)")


def _check_uri(value: str) -> tuple[str, str | None]:
    """Validate and normalise the API URL → (url, what was appended or None)."""
    if any(c.isspace() for c in value):
        raise _Invalid("must not contain spaces")
    if "://" not in value:
        shown = "it" if "@" in value else _show(value)  # "user:password@host" is not echoed
        raise _Invalid(f"{shown} is not a URL; expected https://ENGINE/ovirt-engine/api")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise _Invalid("has an invalid host or port") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _Invalid(f"scheme {_show(parts.scheme)} is not supported; use https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise _Invalid("must not contain a user name or password; use the username and password keys")
    if not parts.hostname:
        raise _Invalid("has no host; expected https://ENGINE/ovirt-engine/api")
    if port == 0:
        raise _Invalid("has an invalid port 0")
    if parts.query or parts.fragment:
        raise _Invalid("must not have a query (?...) or fragment (#...)")
    path = parts.path.rstrip("/")
    appended: str | None = None
    if path == "":
        path, appended = DEFAULT_API_PATH, DEFAULT_API_PATH
    elif path == "/ovirt-engine":
        path, appended = DEFAULT_API_PATH, "/api"
    return f"{scheme}://{parts.netloc}{path}", appended


def _check_query(query: str) -> None:
    unquoted = "".join(seg for quoted, seg in _split_quoted(query) if not quoted)
    if '"' in unquoted:
        raise _Invalid("has an unbalanced double quote")
    if "(" in unquoted or ")" in unquoted:
        raise _Invalid("the engine's search language has no parentheses (write 'a and c or b and c' "
                       "for '(a or b) and c'; quote values that contain them)")
    # oVirt's grammar: "criteria [sortby FIELD [asc|desc]] [page N]" at the end of the query.
    tail = {"sortby": r"(^|\s)sortby\s+\S+(\s+(asc|desc))?(\s+page\s+\d+)?\s*$",
            "page": r"(^|\s)page\s+\d+\s*$"}
    for word, pattern in tail.items():
        if re.search(pattern, unquoted, re.IGNORECASE):
            raise _Invalid(f"must not contain '{word}': the controller adds 'sortby name asc page N' "
                           "itself")


def _connection(path: str, values: _Values, env: Mapping[str, str]) -> ConnectionConfig:
    p = dict(values.parsed)

    def env_value(name: str) -> str | None:
        value = env.get(name)
        return value if value else None  # set but empty = not set

    def error(key: str, env_name: str | None, problem: str) -> ConfigError:
        if env_name:
            return ConfigError(problem, env=env_name)
        return values.error(key, problem)

    # uri
    uri_env = env_value(ENV_URL)
    uri_raw = uri_env.strip() if uri_env is not None else p.get("uri")
    if not uri_raw:
        raise values.error("uri", f"missing (set it here or in environment variable {ENV_URL})")
    try:
        uri, appended = _check_uri(uri_raw)
    except _Invalid as err:
        raise error("uri", ENV_URL if uri_env is not None else None, err.problem) from None
    if appended:
        log.info("the engine URL has no API path; appended %s", appended,
                 extra=kv(path=path, key="connection.uri", uri=uri))
    if uri.startswith("http://"):
        log.warning("the engine URL is plain http: the password and the API traffic are not encrypted",
                    extra=kv(path=path, key="connection.uri", uri=uri))

    # username
    username = (env_value(ENV_USERNAME) or "").strip() or p.get("username")
    if not username:
        username = LEGACY_DEFAULT_USERNAME
        log.info("no username configured; using the legacy default %s", LEGACY_DEFAULT_USERNAME,
                 extra=kv(path=path, key="connection.username"))

    # password / password_file
    file_password: str = p.get("password", "")
    file_password_file: str | None = p.get("password_file")
    if file_password and file_password_file:
        raise values.error("password_file", "conflicts with password; set only one of password and "
                                            "password_file")
    env_password = env_value(ENV_PASSWORD)
    env_password_file = env_value(ENV_PASSWORD_FILE)
    if env_password and env_password_file:
        raise ConfigError(f"conflicts with {ENV_PASSWORD}; set only one of {ENV_PASSWORD} and "
                          f"{ENV_PASSWORD_FILE}", env=ENV_PASSWORD_FILE)
    password = ""
    password_file: str | None = None
    password_file_env: str | None = None
    if env_password_file:
        password_file, password_file_env = os.path.expanduser(env_password_file), ENV_PASSWORD_FILE
    elif env_password:
        password = _strip_one_newline(env_password)  # as from a file: `echo pw | base64` Secrets
    elif file_password_file:
        password_file = _resolve_path(path, file_password_file)
    elif file_password:
        password = file_password
    else:
        raise values.error("password", f"missing; set password or password_file here, or environment "
                                       f"variable {ENV_PASSWORD} or {ENV_PASSWORD_FILE}")
    if password_file is not None:
        try:
            _read_secret_file(password_file)
        except _Invalid as err:
            raise error("password_file", password_file_env, f"{password_file}: {err.problem}") from None

    # ca_file, insecure, timeout
    ca_file: str | None = None
    if p.get("ca_file"):
        ca_file = _resolve_path(path, p["ca_file"])
        try:
            _check_ca_file(ca_file)
        except _Invalid as err:
            raise values.error("ca_file", err.problem) from None
    insecure: bool = p.get("insecure", False)
    if insecure:
        log.warning("TLS verification of the engine is disabled (insecure = true)",
                    extra=kv(path=path, key="connection.insecure", ca_file_ignored=ca_file is not None))

    kwargs: dict[str, Any] = {"uri": uri, "username": username, "password": password,
                              "password_file": password_file, "ca_file": ca_file, "insecure": insecure}
    if "timeout" in p:
        kwargs["timeout"] = p["timeout"]
    return ConnectionConfig(**kwargs)


def _filters(path: str, values: _Values) -> FiltersConfig:
    query: str = values.parsed.get("vms", "")
    try:
        _check_query(query)
    except _Invalid as err:
        raise values.error("vms", err.problem) from None
    rewritten = rewrite_legacy_query(query)
    if rewritten != query:
        log.warning("the search field 'tags' does not exist in the engine (it matches no VM); sending "
                    "'tag' instead", extra=kv(path=path, key="filters.vms", configured=query, sent=rewritten))
    if not rewritten:
        log.warning("no [filters] vms query: every VM the user can see becomes a node",
                    extra=kv(path=path, key="filters.vms"))
    return FiltersConfig(vms=rewritten)


def _nodes(values: _Values) -> NodesConfig:
    p = values.parsed
    internal: tuple[str, ...] = p.get("internal_cidrs", ())
    for network in p.get("external_cidrs", ()):
        if network in internal:
            raise values.error("external_cidrs", f"{network} is also in internal_cidrs; an address "
                                                 "cannot be both")
    sources = {"topology.kubernetes.io/zone": ("zone_source", p.get("zone_source", "cluster")),
               "topology.kubernetes.io/region": ("region_source", p.get("region_source", "datacenter"))}
    for key, _value in p.get("extra_labels", ()):
        if key in _COMPUTED_LABELS:
            raise values.error("extra_labels", f"label {key} is set by the controller and cannot be "
                                               "overridden")
        if key in sources and sources[key][1] != "none":
            raise values.error("extra_labels", f"label {key} comes from {sources[key][0]}; set "
                                               f"{sources[key][0]} = none to set it here")
    return NodesConfig(**p)


def _controller(values: _Values) -> ControllerConfig:
    p = values.parsed
    defaults = ControllerConfig()
    lease = p.get("lease_duration", defaults.lease_duration)
    renew = p.get("renew_deadline", defaults.renew_deadline)
    retry = p.get("retry_period", defaults.retry_period)
    if renew >= lease:
        raise values.error("renew_deadline", f"lease_duration ({lease:g} s) must be more than "
                                             f"renew_deadline ({renew:g} s)")
    if renew <= 1.2 * retry:
        raise values.error("retry_period", f"renew_deadline ({renew:g} s) must be more than 1.2 x "
                                           f"retry_period ({retry:g} s)")
    return ControllerConfig(**p)


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration at ``path``; environment overrides from
    ``environ`` (default ``os.environ``). Raises :class:`ConfigError` (one line) on any mistake."""
    env = os.environ if environ is None else environ
    sections = _parse_ini(path, _read_config_text(path))
    parsed = {name: _parse_section(path, name, sections.get(name, {})) for name in _SCHEMA}
    return Config(
        path=path,
        connection=_connection(path, parsed["connection"], env),
        filters=_filters(path, parsed["filters"]),
        nodes=_nodes(parsed["nodes"]),
        controller=_controller(parsed["controller"]),
    )

