"""INI configuration → :class:`Config`.

``load_config(path, environ)`` reads the file, applies the environment overrides and returns a frozen
:class:`Config`, or raises :class:`ConfigError` whose ``str()`` is one line naming the file, section
and key: ``/etc/ovirt/ovirt-cloud.conf: [nodes] name_source: "fqdnn" is not one of ...``.

The format is the legacy in-tree oVirt provider's (``[connection]`` uri/username/password and
``[filters]`` vms, read there with gcfg), extended with optional keys and the ``[nodes]`` and
``[controller]`` sections. Rules, all documented in ``ovirt-cloud.conf.example``:

- Section and key names are case-insensitive; ``-`` in a key name is read as ``_``.
- LF, CRLF and lone CR all end a line. Errors name the line; they show a section or key name only when it
  is short, name-like and shares nothing with a password (it could be one pasted on its own line).
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
everything else is validation. Each must be a regular file: a FIFO, device or socket is refused before it is
read, so it can never block.
"""

from __future__ import annotations

import configparser
import contextlib
import difflib
import errno
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.nodegroups import MARK_KEY_MIN_BYTES
from ..core.settings import (
    LEGACY_DEFAULT_USERNAME,
    AutoscalerConfig,
    Config,
    ConfigError,
    ConnectionConfig,
    ControllerConfig,
    FiltersConfig,
    NodeGroupConfig,
    NodesConfig,
    Notice,
)
from .schema import (
    COMPUTED_LABELS,
    NODEGROUP,
    NODEGROUP_REQUIRED,
    NODEGROUP_SCHEMA,
    OWNED_LABEL_PREFIXES,
    SCHEMA,
    Invalid,
    _Key,
    check_query,
    check_uri,
    nodegroup_name_problem,
    rewrite_legacy_query,
)

ENV_URL = "OVIRT_URL"
ENV_USERNAME = "OVIRT_USERNAME"
ENV_PASSWORD = "OVIRT_PASSWORD"
ENV_PASSWORD_FILE = "OVIRT_PASSWORD_FILE"

_MAX_SECRET_FILE_BYTES = 64 * 1024
_MAX_CA_FILE_BYTES = 16 * 1024 * 1024


# --- the password ----------------------------------------------------------------------------------

def resolve_password(conn: ConnectionConfig) -> str:
    """The password to log in with: ``password_file``'s content (read now, one trailing newline
    stripped) when set, else ``password``. Raises :class:`ConfigError` naming the file if it cannot
    be read or is empty, or when no password is configured at all."""
    if conn.password_file:
        try:
            return _read_secret_file(conn.password_file)
        except Invalid as err:
            raise ConfigError(err.problem, path=conn.password_file) from None
    if conn.password:
        return conn.password
    raise ConfigError("no password configured (set password or password_file)", section="connection",
                      key="password")


def read_mark_key(config: Config) -> bytes:
    """The autoscaler's mark key: the bytes of ``[autoscaler] mark_key_file`` (one trailing newline dropped), at
    least :data:`MARK_KEY_MIN_BYTES`. Raises :class:`ConfigError` naming the section and key (never the key)."""
    path = config.autoscaler.mark_key_file
    if not path:
        raise ConfigError("missing: the autoscaler signs the ownership marks of its VMs with this key (a file of "
                          f"at least {MARK_KEY_MIN_BYTES} random bytes, e.g. `head -c 32 /dev/urandom | base64`)",
                          path=config.path, section="autoscaler", key="mark_key_file")
    try:
        return _mark_key(path)
    except Invalid as err:
        raise ConfigError(err.problem, path=config.path, section="autoscaler", key="mark_key_file") from None


def _mark_key(path: str) -> bytes:
    try:
        data = _read_regular_file(path, _MAX_SECRET_FILE_BYTES + 1)
    except OSError as err:
        raise Invalid(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise Invalid(f"{path} is too large to hold a key")
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if len(data) < MARK_KEY_MIN_BYTES:
        raise Invalid(f"{path} holds {len(data)} bytes; a mark key needs at least {MARK_KEY_MIN_BYTES}")
    return data


# --- reading files -----------------------------------------------------------------------------------

_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _read_regular_file(path: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``). Raises ``OSError`` whose ``strerror`` says why
    not; a FIFO, device or socket is refused without blocking (opened non-blocking, checked before reading)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1  # closed with f
            return f.read() if limit is None else f.read(limit)
    finally:
        if fd >= 0:
            os.close(fd)


# --- reading the file --------------------------------------------------------------------------------

class _Parser(configparser.RawConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr.strip().lower()


def _read_config_text(path: str) -> str:
    try:
        data = _read_regular_file(path)
    except OSError as err:
        raise ConfigError(f"cannot read the configuration file: {err.strerror or err}", path=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not a text file (not UTF-8); expected an INI file", path=path) from None
    # CRLF (Windows) and lone CR (old Mac) line endings are lines too; configparser only splits on \n
    return text.replace("\r\n", "\n").replace("\r", "\n")


# A section or key name is written by the user and may be anything, e.g. a password pasted on its own line
# or the whole file when the line endings were not understood. Errors show a name only when it is short,
# looks like a name, and shares nothing with a password from any source: the file's password, OVIRT_PASSWORD,
# and the content of the password file the file or OVIRT_PASSWORD_FILE names.
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_PASSWORD_LINE = re.compile(r"^\s*password\s*[=:]\s*(.*?)\s*$", re.IGNORECASE)
_PASSWORD_FILE_LINE = re.compile(r"^\s*password_file\s*[=:]\s*(.*?)\s*$", re.IGNORECASE)
_HIDDEN = "(name not shown)"


class _Names:
    """What the error messages may show of the names written in one file, and where they are."""

    def __init__(self, path: str, text: str, environ: Mapping[str, str]) -> None:
        self.lines = text.split("\n")
        secrets = [m.group(1) for line in self.lines if (m := _PASSWORD_LINE.match(line))]
        secrets += [_unquote(s) for s in secrets]
        secrets.append(environ.get(ENV_PASSWORD, ""))
        files = [_resolve_path(path, _unquote(m.group(1))) for line in self.lines
                 if (m := _PASSWORD_FILE_LINE.match(line)) and m.group(1)]
        files += [os.path.expanduser(f) for f in (environ.get(ENV_PASSWORD_FILE),) if f]
        for file in files:
            with contextlib.suppress(Invalid, OSError, ValueError):  # unreadable: reported where it is checked
                secrets.append(_read_secret_file(file))
        self._secrets = [s.lower() for s in secrets if s]

    def safe(self, name: str | None) -> bool:
        if name is None or not _SAFE_NAME.fullmatch(name):
            return False
        lowered = name.lower()
        return not any(secret in lowered or lowered in secret for secret in self._secrets)

    def _headers(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for number, line in enumerate(self.lines, 1):
            if line[:1].isspace():
                continue
            m = _Parser.SECTCRE.match(line.strip())
            if m:
                found.append((number, m.group("header")))
        return found

    def section_line(self, section: str) -> int | None:
        return next((number for number, header in self._headers() if header == section), None)

    def key_line(self, section: str, key: str) -> int | None:
        current: str | None = None
        headers = dict(self._headers())
        for number, line in enumerate(self.lines, 1):
            if number in headers:
                current = headers[number]
                continue
            if current != section or line[:1].isspace() or line.lstrip()[:1] in ("#", ";"):
                continue
            m = _Parser.OPTCRE.match(line.strip())
            if m and _Parser.optionxform(_Parser(), m.group("option")) == key:
                return number
        return None


def _where(line: int | None) -> str:
    return f"line {line}: " if line else ""


def _parse_ini(path: str, text: str, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """INI text → {section: {key: raw value}}, names normalised; never echoes a line (passwords) nor a name
    that could be one (see :class:`_Names`)."""
    names = _Names(path, text, environ)
    parser = _read_ini(path, text, names)
    result: dict[str, dict[str, str]] = {}
    original_names: dict[str, str] = {}
    for section in parser.sections():
        name = section.strip().lower()
        group = _nodegroup_section(path, section, name, names)
        if group is not None:
            name = f"{NODEGROUP} {group}"
        elif name not in SCHEMA:
            line = names.section_line(section)
            if names.safe(section):
                raise ConfigError(f"unknown section{_on_line(line)}{_did_you_mean_section(name)}", path=path,
                                  section=section)
            raise ConfigError(f"{_where(line)}unknown section {_HIDDEN}{_known_sections()}", path=path)
        if name in result:  # names that differ only in case or spaces: both are a known name
            shown = section if names.safe(section) else name
            raise ConfigError(f"section given twice (as [{original_names[name]}] and [{shown}]"
                              f"{_on_line(names.section_line(section))})", path=path, section=name)
        original_names[name] = name if not names.safe(section) else section
        result[name] = _section_keys(path, parser, section, name, names)
    return result


def _nodegroup_section(path: str, section: str, name: str, names: _Names) -> str | None:
    """The group name of a ``[nodegroup NAME]`` header (None for any other section); a malformed one is an error."""
    words = name.split()
    if not words or words[0] != NODEGROUP:
        if len(words) == 2 and difflib.get_close_matches(words[0], [NODEGROUP], n=1) and names.safe(words[0]):
            raise ConfigError(f"unknown section{_on_line(names.section_line(section))} (did you mean "
                              f"[{NODEGROUP} NAME]?)", path=path, section=words[0])
        return None
    line = _on_line(names.section_line(section))
    if len(words) != 2:
        raise ConfigError(f"a node group section is [{NODEGROUP} NAME], with one name{line}", path=path,
                          section=NODEGROUP)
    problem = nodegroup_name_problem(words[1])
    if problem:
        shown = words[1] if names.safe(words[1]) else _HIDDEN
        raise ConfigError(f"node group name {shown} {problem}{line}", path=path, section=NODEGROUP)
    return words[1]


def _schema_of(name: str) -> dict[str, _Key]:
    return NODEGROUP_SCHEMA if name.startswith(NODEGROUP + " ") else SCHEMA[name]


def _read_ini(path: str, text: str, names: _Names) -> configparser.RawConfigParser:
    """The INI syntax, as configparser reads it; every syntax error is one line without the line's text."""
    parser = _Parser(interpolation=None, strict=True, default_section="\x00no default section",
                     delimiters=("=", ":"), comment_prefixes=("#", ";"), inline_comment_prefixes=None,
                     empty_lines_in_values=False)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as err:
        raise ConfigError(f"line {err.lineno}: not an INI file: expected a [section] header before the "
                          "first key", path=path) from None
    except configparser.DuplicateSectionError as err:
        if names.safe(err.section):
            raise ConfigError(f"section given twice on line {err.lineno}", path=path,
                              section=err.section) from None
        raise ConfigError(f"line {err.lineno}: section given twice {_HIDDEN}", path=path) from None
    except configparser.DuplicateOptionError as err:
        section = err.section if names.safe(err.section) else None
        if section is not None and names.safe(err.option):
            raise ConfigError(f"key given twice on line {err.lineno}", path=path, section=section,
                              key=err.option) from None
        raise ConfigError(f"line {err.lineno}: key given twice {_HIDDEN}", path=path, section=section) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0] if err.errors else "?"
        raise ConfigError(f"line {lineno}: not an INI line: expected \"key = value\", \"[section]\" or a "
                          "comment", path=path) from None
    except configparser.Error as err:
        raise ConfigError(f"not a valid INI file: {type(err).__name__}", path=path) from None
    return parser


def _section_keys(path: str, parser: configparser.RawConfigParser, section: str, name: str,
                  names: _Names) -> dict[str, str]:
    """One known section's keys → {normalised key: raw value}; unknown or repeated keys are errors."""
    values: dict[str, str] = {}
    written: dict[str, str] = {}
    for key, raw in parser.items(section):
        normal = key.replace("-", "_")
        if normal not in _schema_of(name):
            line = names.key_line(section, key)
            if names.safe(key):
                raise ConfigError(f"unknown key{_on_line(line)}{_did_you_mean_key(name, normal)}", path=path,
                                  section=name, key=key)
            raise ConfigError(f"{_where(line)}unknown key {_HIDDEN}{_known_keys(name)}", path=path,
                              section=name)
        if normal in values:  # written with "-" and with "_": both spell a known key
            raise ConfigError(f"key given twice (as {written[normal]} and {key})", path=path,
                              section=name, key=normal)
        written[normal] = key
        values[normal] = raw
    return values


def _on_line(line: int | None) -> str:
    return f" on line {line}" if line else ""


def _known_sections() -> str:
    return f" (known sections: {', '.join(f'[{s}]' for s in SCHEMA)}, [{NODEGROUP} NAME])"


def _known_keys(section: str) -> str:
    return f" (known keys: {', '.join(_schema_of(section))})"


def _did_you_mean_section(name: str) -> str:
    hint = difflib.get_close_matches(name, [*SCHEMA, NODEGROUP], n=1)
    if hint:
        return f" (did you mean [{hint[0]}{' NAME' if hint[0] == NODEGROUP else ''}]?)"
    return _known_sections()


def _did_you_mean_key(section: str, key: str) -> str:
    for other, keys in SCHEMA.items():
        if other != section and key in keys:
            return f" (it belongs in [{other}])"
    hint = difflib.get_close_matches(key, list(_schema_of(section)), n=1)
    if hint:
        return f" (did you mean {hint[0]!s}?)"
    return _known_keys(section)


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
    schema = _schema_of(section)
    for key, text in raw.items():
        spec = schema[key]
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
        except Invalid as err:
            raise values.error(key, err.problem) from None
    return values


def _resolve_path(config_path: str, value: str) -> str:
    value = os.path.expanduser(value)
    return os.path.join(os.path.dirname(config_path), value)


def _read_secret_file(path: str) -> str:
    try:
        data = _read_regular_file(path, _MAX_SECRET_FILE_BYTES + 1)
    except OSError as err:
        raise Invalid(f"cannot read the password file: {err.strerror or type(err).__name__}") from None
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise Invalid("the password file is too large to hold a password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("the password file is not UTF-8 text") from None
    text = _strip_one_newline(text)
    if not text:
        raise Invalid("the password file is empty")
    return text


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _check_ca_file(path: str) -> None:
    try:
        data = _read_regular_file(path, _MAX_CA_FILE_BYTES)
    except OSError as err:
        raise Invalid(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise Invalid(f"{path} is not a PEM certificate bundle (no BEGIN CERTIFICATE block)")


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None  # set but empty = not set


def _uri(path: str, values: _Values, env: Mapping[str, str], notices: list[Notice]) -> str:
    uri_env = _env_value(env, ENV_URL)
    uri_raw = uri_env.strip() if uri_env is not None else values.parsed.get("uri")
    if not uri_raw:
        raise values.error("uri", f"missing (set it here or in environment variable {ENV_URL})")
    try:
        uri, appended = check_uri(uri_raw)
    except Invalid as err:
        if uri_env is not None:
            raise ConfigError(err.problem, env=ENV_URL) from None
        raise values.error("uri", err.problem) from None
    if appended:
        notices.append(Notice("info", f"the engine URL has no API path; appended {appended}",
                              (("path", path), ("key", "connection.uri"), ("uri", uri))))
    if uri.startswith("http://"):
        notices.append(Notice("warning", "the engine URL is plain http: the password and the API traffic are not "
                              "encrypted", (("path", path), ("key", "connection.uri"), ("uri", uri))))
    return uri


def _username(path: str, values: _Values, env: Mapping[str, str], notices: list[Notice]) -> str:
    username = (_env_value(env, ENV_USERNAME) or "").strip() or values.parsed.get("username")
    if username:
        return str(username)
    notices.append(Notice("info", f"no username configured; using the legacy default {LEGACY_DEFAULT_USERNAME}",
                          (("path", path), ("key", "connection.username"))))
    return LEGACY_DEFAULT_USERNAME


def _password_source(path: str, values: _Values, env: Mapping[str, str]) -> tuple[str, str | None]:
    """(password, password_file): exactly one is set; the password file is checked now (and read at every
    login). The environment wins over the file, as a whole source."""
    file_password: str = values.parsed.get("password", "")
    file_password_file: str | None = values.parsed.get("password_file")
    if file_password and file_password_file:
        raise values.error("password_file", "conflicts with password; set only one of password and "
                                            "password_file")
    env_password = _env_value(env, ENV_PASSWORD)
    env_password_file = _env_value(env, ENV_PASSWORD_FILE)
    if env_password and env_password_file:
        raise ConfigError(f"conflicts with {ENV_PASSWORD}; set only one of {ENV_PASSWORD} and "
                          f"{ENV_PASSWORD_FILE}", env=ENV_PASSWORD_FILE)
    if env_password:
        return _strip_one_newline(env_password), None  # as from a file: `echo pw | base64` Secrets
    if env_password_file:
        password_file, from_env = os.path.expanduser(env_password_file), True
    elif file_password_file:
        password_file, from_env = _resolve_path(path, file_password_file), False
    elif file_password:
        return file_password, None
    else:
        raise values.error("password", f"missing; set password or password_file here, or environment "
                                       f"variable {ENV_PASSWORD} or {ENV_PASSWORD_FILE}")
    try:
        _read_secret_file(password_file)
    except Invalid as err:
        if from_env:
            raise ConfigError(f"{password_file}: {err.problem}", env=ENV_PASSWORD_FILE) from None
        raise values.error("password_file", f"{password_file}: {err.problem}") from None
    return "", password_file


def _connection(path: str, values: _Values, env: Mapping[str, str], notices: list[Notice]) -> ConnectionConfig:
    p = values.parsed
    uri = _uri(path, values, env, notices)
    username = _username(path, values, env, notices)
    password, password_file = _password_source(path, values, env)
    ca_file: str | None = None
    if p.get("ca_file"):
        ca_file = _resolve_path(path, p["ca_file"])
        try:
            _check_ca_file(ca_file)
        except Invalid as err:
            raise values.error("ca_file", err.problem) from None
    insecure: bool = p.get("insecure", False)
    if insecure:
        notices.append(Notice("warning", "TLS verification of the engine is disabled (insecure = true)",
                              (("path", path), ("key", "connection.insecure"),
                               ("ca_file_ignored", ca_file is not None))))
    kwargs: dict[str, Any] = {"uri": uri, "username": username, "password": password,
                              "password_file": password_file, "ca_file": ca_file, "insecure": insecure}
    if "timeout" in p:
        kwargs["timeout"] = p["timeout"]
    return ConnectionConfig(**kwargs)


def _filters(path: str, values: _Values, notices: list[Notice]) -> FiltersConfig:
    query: str = values.parsed.get("vms", "")
    try:
        check_query(query)
    except Invalid as err:
        raise values.error("vms", err.problem) from None
    rewritten = rewrite_legacy_query(query)
    if rewritten != query:
        notices.append(Notice("warning", "the search field 'tags' does not exist in the engine (it matches no VM); "
                              "sending 'tag' instead",
                              (("path", path), ("key", "filters.vms"), ("configured", query), ("sent", rewritten))))
    if not rewritten:
        notices.append(Notice("warning", "no [filters] vms query: every VM the user can see becomes a node",
                              (("path", path), ("key", "filters.vms"))))
    return FiltersConfig(vms=rewritten, hosts=_hosts_filter(path, values, notices))


def _hosts_filter(path: str, values: _Values, notices: list[Notice]) -> str | None:
    """``[filters] hosts``: the host search, checked like ``vms`` (the engine's host search fields are not
    checked here: no field check exists for ``vms`` either); absent or empty → None (no host discovery)."""
    query: str = values.parsed.get("hosts", "").strip()
    if not query:
        return None
    try:
        check_query(query)
    except Invalid as err:
        raise values.error("hosts", err.problem) from None
    rewritten = rewrite_legacy_query(query)
    if rewritten != query:
        notices.append(Notice("warning", "the search field 'tags' does not exist in the engine (it matches no host); "
                              "sending 'tag' instead",
                              (("path", path), ("key", "filters.hosts"), ("configured", query), ("sent", rewritten))))
    return rewritten


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
        if key in COMPUTED_LABELS or key.startswith(OWNED_LABEL_PREFIXES):
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
    if "leader_elect_lease_name" not in p and "instance" in p:
        p = {**p, "leader_elect_lease_name": p["instance"]}  # the Lease is named after the instance
    return ControllerConfig(**p)


def _autoscaler(path: str, values: _Values) -> AutoscalerConfig:
    p = dict(values.parsed)
    if "mark_key_file" in p:
        p["mark_key_file"] = _resolve_path(path, p["mark_key_file"])
        try:
            _mark_key(p["mark_key_file"])
        except Invalid as err:
            raise values.error("mark_key_file", err.problem) from None
    return AutoscalerConfig(**p)


_MAX_USER_DATA_BYTES = 1024 * 1024


def _nodegroup(path: str, values: _Values) -> NodeGroupConfig:
    p = dict(values.parsed)
    for key in NODEGROUP_REQUIRED:
        if key not in p:
            raise values.error(key, "missing (a node group needs template, cluster and max_size)")
    if p.get("min_size", 0) > p["max_size"]:
        raise values.error("min_size", f"more than max_size ({p['min_size']} > {p['max_size']})")
    if "user_data_file" in p:
        p["user_data_file"] = _resolve_path(path, p["user_data_file"])
        try:
            data = _read_regular_file(p["user_data_file"], _MAX_USER_DATA_BYTES + 1)
        except OSError as err:
            raise values.error("user_data_file", f"cannot read {p['user_data_file']}: "
                                                 f"{err.strerror or type(err).__name__}") from None
        if len(data) > _MAX_USER_DATA_BYTES:
            raise values.error("user_data_file", "larger than 1 MiB")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise values.error("user_data_file", f"{p['user_data_file']} is not UTF-8 text") from None
    return NodeGroupConfig(name=values.section.split()[1], **p)


def _nodegroups(path: str, sections: dict[str, dict[str, str]]) -> tuple[NodeGroupConfig, ...]:
    groups: list[NodeGroupConfig] = []
    for name, raw in sections.items():
        if name.startswith(NODEGROUP + " "):
            group = _nodegroup(path, _parse_section(path, name, raw))
            clash = next((g for g in groups if g.prefix == group.prefix), None)
            if clash is not None:
                raise ConfigError(f"VM names of node groups {clash.name} and {group.name} would share the prefix "
                                  f"{group.prefix}; give one a different name_prefix", path=path, section=name,
                                  key="name_prefix")
            groups.append(group)
    return tuple(groups)


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration at ``path``; environment overrides from
    ``environ`` (default ``os.environ``). Raises :class:`ConfigError` (one line) on any mistake. What the
    reader noticed on the way is in ``Config.notices``, for the caller to log."""
    env = os.environ if environ is None else environ
    sections = _parse_ini(path, _read_config_text(path), env)
    parsed = {name: _parse_section(path, name, sections.get(name, {})) for name in SCHEMA}
    notices: list[Notice] = []
    return Config(
        path=path,
        connection=_connection(path, parsed["connection"], env, notices),
        filters=_filters(path, parsed["filters"], notices),
        nodes=_nodes(parsed["nodes"]),
        controller=_controller(parsed["controller"]),
        autoscaler=_autoscaler(path, parsed["autoscaler"]),
        nodegroups=_nodegroups(path, sections),
        notices=tuple(notices),
    )
