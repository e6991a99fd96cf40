"""The configuration reader (config/): parsing, validation, environment overrides, and every error message."""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
from pathlib import Path

import pytest

from ovirt_cloudprovider.app import log_notices
from ovirt_cloudprovider.config import load_config, resolve_password
from ovirt_cloudprovider.config.schema import (
    label_key_problem,
    label_value_problem,
    parse_bind_address,
    rewrite_legacy_query,
    schema_keys,
)
from ovirt_cloudprovider.core.settings import (
    Config,
    ConfigError,
    ConnectionConfig,
    ControllerConfig,
    FiltersConfig,
    NodesConfig,
)

SECRET = "S3cr3t%pa55;#word"
CONNECTION = f"""[connection]
uri = https://engine.example.com/ovirt-engine/api
username = admin@internal
password = {SECRET}
"""
LEGACY = """[connection]
uri = https://ovirt-engine:8443/ovirt-engine/api
username = admin@internal
password = admin
[filters]
vms = tags=kubernetes
"""
CA_FILE = str(importlib.resources.files("ovirt_cloudprovider.simulators") / "tls" / "ca.pem")


def write(tmp_path: Path, text: str | bytes, name: str = "ovirt-cloud.conf") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env or {})


def error(tmp_path: Path, text: str | bytes, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    message = str(info.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


def section(name: str, body: str) -> str:
    return CONNECTION + f"[{name}]\n{body}\n"


# --- the legacy file ---------------------------------------------------------------------------------

def test_legacy_announcement_file_loads_unchanged(tmp_path: Path) -> None:
    config = load(tmp_path, LEGACY)
    assert config.connection == ConnectionConfig(
        uri="https://ovirt-engine:8443/ovirt-engine/api", username="admin@internal", password="admin")
    assert config.filters == FiltersConfig(vms="tag=kubernetes")
    assert config.nodes == NodesConfig()
    assert config.controller == ControllerConfig()
    assert config.path.endswith("ovirt-cloud.conf")
    warnings = [n for n in config.notices if n.level == "warning"]
    assert len(warnings) == 1
    assert "'tags'" in warnings[0].message and "'tag'" in warnings[0].message
    fields = dict(warnings[0].fields)
    assert fields["configured"] == "tags=kubernetes"
    assert fields["sent"] == "tag=kubernetes"


def test_legacy_minimal_file_uses_the_legacy_username_default(
        tmp_path: Path) -> None:
    config = load(tmp_path, "[connection]\nuri = https://e/ovirt-engine/api\npassword = x\n"
                            "[filters]\nvms = tag=k\n")
    assert config.connection.username == "admin@internal"
    assert any(n.level == "info" and "legacy default" in n.message for n in config.notices)


def test_no_warning_when_the_query_is_already_right(tmp_path: Path) -> None:
    assert not [n for n in load(tmp_path, LEGACY.replace("tags=", "tag=")).notices if n.level == "warning"]


@pytest.mark.parametrize(("query", "sent"), [
    ("tags=kubernetes", "tag=kubernetes"),
    ("tags = kubernetes", "tag = kubernetes"),
    ("Tags=kubernetes", "Tag=kubernetes"),
    ("TAGS!=old", "TAG!=old"),
    ("status=up and tags=k8s", "status=up and tag=k8s"),
    ("tags=a or tags=b", "tag=a or tag=b"),
    ("Vms: tags=x", "Vms: tag=x"),
    ("tag=kubernetes", "tag=kubernetes"),
    ("tag=tags", "tag=tags"),
    ("tag = tags and status=up", "tag = tags and status=up"),
    ("name=tags*", "name=tags*"),
    ("name=mytags=1", "name=mytags=1"),
    ("tagsx=1", "tagsx=1"),
    ('name="tags=x"', 'name="tags=x"'),
    ('description="a tags=b" and tags=c', 'description="a tags=b" and tag=c'),
    ("", ""),
])
def test_rewrite_legacy_query_touches_only_the_field_name(query: str, sent: str) -> None:
    assert rewrite_legacy_query(query) == sent


# --- names, quoting, values --------------------------------------------------------------------------

def test_section_and_key_names_are_case_insensitive_and_dashes_read_as_underscores(tmp_path: Path) -> None:
    config = load(tmp_path, "[Connection]\nURI = https://e/ovirt-engine/api\nPassWord = x\n"
                            "[NODES]\nName-Source = FQDN\nTaint-Shutdown = No\n")
    assert config.connection.password == "x"
    assert config.nodes.name_source == "fqdn"
    assert config.nodes.taint_shutdown is False


@pytest.mark.parametrize(("written", "password"), [
    (SECRET, SECRET),  # % # ; kept: no interpolation, no inline comments
    ('"quoted value"', "quoted value"),
    ('" spaced "', " spaced "),
    (r'"with \"escape\" and \\"', 'with "escape" and \\'),
    ('"not" quoted"', '"not" quoted"'),
    ("p@ss w0rd", "p@ss w0rd"),
    ("a=b:c", "a=b:c"),
])
def test_password_values_are_taken_literally_or_unquoted(tmp_path: Path, written: str, password: str) -> None:
    config = load(tmp_path, f"[connection]\nuri = https://e/ovirt-engine/api\npassword = {written}\n")
    assert resolve_password(config.connection) == password


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION + "timeout =\nca_file =\npassword_file =\ninsecure =\n"
                  "[nodes]\nname_source =\nignore_interfaces =\n[controller]\npage_size = \n")
    assert config.connection.timeout == 30.0
    assert config.connection.ca_file is None
    assert config.nodes.name_source == "name"
    assert config.nodes.ignore_interfaces == ()  # a list: empty means empty
    assert config.controller.page_size == 100


def test_the_whole_file_can_use_colons_and_comments(tmp_path: Path) -> None:
    config = load(tmp_path, "# comment\n; comment\n[connection]\nuri: https://e/ovirt-engine/api\n"
                            "password: pw\n\n  # indented comment\n[controller]\npage_size: 50\n")
    assert config.controller.page_size == 50


# --- [connection] ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "expected"), [
    ("https://engine.example.com/ovirt-engine/api", "https://engine.example.com/ovirt-engine/api"),
    ("https://engine.example.com/ovirt-engine/api/", "https://engine.example.com/ovirt-engine/api"),
    ("https://engine.example.com", "https://engine.example.com/ovirt-engine/api"),
    ("https://engine.example.com/", "https://engine.example.com/ovirt-engine/api"),
    ("https://engine.example.com:8443/ovirt-engine", "https://engine.example.com:8443/ovirt-engine/api"),
    ("HTTPS://Engine.Example.com/ovirt-engine/api", "https://Engine.Example.com/ovirt-engine/api"),
    ("https://[fd00::1]:8443/ovirt-engine/api", "https://[fd00::1]:8443/ovirt-engine/api"),
    ("https://10.0.0.1/proxy/api", "https://10.0.0.1/proxy/api"),
])
def test_uri_is_normalised(tmp_path: Path, uri: str, expected: str) -> None:
    assert load(tmp_path, f"[connection]\nuri = {uri}\npassword = x\n").connection.uri == expected


def test_uri_path_appended_is_noticed(tmp_path: Path) -> None:
    config = load(tmp_path, "[connection]\nuri = https://engine/\npassword = x\n")
    infos = [n for n in config.notices if "appended /ovirt-engine/api" in n.message]
    assert len(infos) == 1 and infos[0].level == "info"


def test_plain_http_uri_is_allowed_with_a_warning(tmp_path: Path) -> None:
    config = load(tmp_path, "[connection]\nuri = http://engine:8080/ovirt-engine/api\npassword = x\n")
    assert config.connection.uri == "http://engine:8080/ovirt-engine/api"
    assert any(n.level == "warning" and "plain http" in n.message for n in config.notices)


@pytest.mark.parametrize(("uri", "problem"), [
    ("ftp://engine/ovirt-engine/api", 'scheme "ftp" is not supported; use https:// (or http://)'),
    ("engine.example.com/ovirt-engine/api",
     '"engine.example.com/ovirt-engine/api" is not a URL; expected https://ENGINE/ovirt-engine/api'),
    ("admin:hunter2@engine/ovirt-engine/api", "it is not a URL; expected https://ENGINE/ovirt-engine/api"),
    ("https:///ovirt-engine/api", "has no host; expected https://ENGINE/ovirt-engine/api"),
    ("https://admin:hunter2@engine/ovirt-engine/api",
     "must not contain a user name or password; use the username and password keys"),
    ("https://engine:99999/ovirt-engine/api", "has an invalid host or port"),
    ("https://engine:0/ovirt-engine/api", "has an invalid port 0"),
    ("https://engine/ovirt-engine/api?x=1", "must not have a query (?...) or fragment (#...)"),
    ("https://engine/ovirt-engine/api#top", "must not have a query (?...) or fragment (#...)"),
])
def test_bad_uri(tmp_path: Path, uri: str, problem: str) -> None:
    message = error(tmp_path, f"[connection]\nuri = {uri}\npassword = x\n")
    assert message == f"{tmp_path}/ovirt-cloud.conf: [connection] uri: {problem}"
    assert "hunter2" not in message.removeprefix(str(tmp_path))  # (tmp_path holds the test id)


def test_missing_uri(tmp_path: Path) -> None:
    assert error(tmp_path, "[connection]\npassword = x\n") == (
        f"{tmp_path}/ovirt-cloud.conf: [connection] uri: missing (set it here or in environment variable "
        "OVIRT_URL)")


def test_missing_password(tmp_path: Path) -> None:
    assert error(tmp_path, "[connection]\nuri = https://e/ovirt-engine/api\nusername = u\n") == (
        f"{tmp_path}/ovirt-cloud.conf: [connection] password: missing; set password or password_file here, "
        "or environment variable OVIRT_PASSWORD or OVIRT_PASSWORD_FILE")


def test_password_and_password_file_together(tmp_path: Path) -> None:
    pw = write(tmp_path, "x\n", "pw")
    message = error(tmp_path, CONNECTION + f"password_file = {pw}\n")
    assert message == (f"{tmp_path}/ovirt-cloud.conf: [connection] password_file: conflicts with password; "
                       "set only one of password and password_file")


def test_password_file_is_read_at_call_time(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    write(tmp_path, "first\n", "secret/password")
    config = load(tmp_path, "[connection]\nuri = https://e/ovirt-engine/api\n"
                            "password_file = secret/password\n")
    assert config.connection.password_file == str(tmp_path / "secret" / "password")  # relative to the file
    assert config.connection.password == ""
    assert resolve_password(config.connection) == "first"
    write(tmp_path, "rotated", "secret/password")
    assert resolve_password(config.connection) == "rotated"


@pytest.mark.parametrize(("content", "password"), [
    ("pw\n", "pw"), ("pw\r\n", "pw"), ("pw", "pw"), ("pw\n\n", "pw\n"), (" pw \n", " pw "),
    (SECRET + "\n", SECRET),
])
def test_password_file_strips_one_trailing_newline(tmp_path: Path, content: str, password: str) -> None:
    conn = ConnectionConfig(uri="https://e/ovirt-engine/api", username="u",
                            password_file=write(tmp_path, content, "pw"))
    assert resolve_password(conn) == password


@pytest.mark.parametrize(("make", "problem"), [
    (lambda d: str(d / "missing"), "cannot read the password file: No such file or directory"),
    (lambda d: str(d), "cannot read the password file: Is a directory"),
    (lambda d: write(d, "", "empty"), "the password file is empty"),
    (lambda d: write(d, "\n", "newline"), "the password file is empty"),
    (lambda d: write(d, b"\xff\xfe\x00", "binary"), "the password file is not UTF-8 text"),
])
def test_unreadable_password_file(tmp_path: Path, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    pw = make(tmp_path)
    message = error(tmp_path, f"[connection]\nuri = https://e/ovirt-engine/api\npassword_file = {pw}\n")
    assert message == f"{tmp_path}/ovirt-cloud.conf: [connection] password_file: {pw}: {problem}"
    with pytest.raises(ConfigError) as info:
        resolve_password(ConnectionConfig(uri="https://e/ovirt-engine/api", username="u", password_file=pw))
    assert str(info.value) == f"{pw}: {problem}"


def test_password_file_that_becomes_unreadable_later(tmp_path: Path) -> None:
    pw = write(tmp_path, "x", "pw")
    config = load(tmp_path, f"[connection]\nuri = https://e/ovirt-engine/api\npassword_file = {pw}\n")
    os.unlink(pw)
    with pytest.raises(ConfigError, match=r"pw: cannot read the password file: No such file or directory$"):
        resolve_password(config.connection)


def test_resolve_password_without_any_password() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_password(ConnectionConfig(uri="https://e/ovirt-engine/api", username="u"))
    assert str(info.value) == "[connection] password: no password configured (set password or password_file)"


def test_ca_file_accepted(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION + f"ca_file = {CA_FILE}\n")
    assert config.connection.ca_file == CA_FILE


def test_ca_file_relative_to_the_config_file(tmp_path: Path) -> None:
    write(tmp_path, Path(CA_FILE).read_text(), "ca.pem")
    config = load(tmp_path, CONNECTION + "ca_file = ca.pem\n")
    assert config.connection.ca_file == str(tmp_path / "ca.pem")


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("missing.pem", None, "cannot read {f}: No such file or directory"),
    ("dir", "DIR", "cannot read {f}: Is a directory"),
    ("key.der", b"\x30\x82\x01\x0a", "{f} is not a PEM certificate bundle (no BEGIN CERTIFICATE block)"),
])
def test_bad_ca_file(tmp_path: Path, name: str, content: bytes | str | None, problem: str) -> None:
    target = tmp_path / name
    if content == "DIR":
        target.mkdir()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    message = error(tmp_path, CONNECTION + f"ca_file = {target}\n")
    assert message == f"{tmp_path}/ovirt-cloud.conf: [connection] ca_file: {problem.format(f=target)}"


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("yes", True), ("on", True), ("1", True), ("TRUE", True), ("Yes", True),
    ("false", False), ("no", False), ("off", False), ("0", False), ("False", False), ("OFF", False),
])
def test_booleans(tmp_path: Path, text: str, value: bool) -> None:
    assert load(tmp_path, CONNECTION + f"insecure = {text}\n").connection.insecure is value


def test_insecure_gives_a_warning(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION + "insecure = yes\n")
    assert any(n.level == "warning" and "TLS verification" in n.message for n in config.notices)


def test_bad_boolean(tmp_path: Path) -> None:
    assert error(tmp_path, CONNECTION + "insecure = maybe\n") == (
        f'{tmp_path}/ovirt-cloud.conf: [connection] insecure: "maybe" is not a boolean (use true/false, '
        "yes/no, on/off or 1/0)")


@pytest.mark.parametrize(("value", "problem"), [
    ("0", "must be more than 0 seconds, got 0"),
    ("-1", "must be more than 0 seconds, got -1"),
    ("soon", '"soon" is not a number (seconds)'),
    ("30s", '"30s" is not a number (seconds)'),
    ("inf", '"inf" is not a finite number (seconds)'),
    ("nan", '"nan" is not a finite number (seconds)'),
])
def test_bad_timeout(tmp_path: Path, value: str, problem: str) -> None:
    assert error(tmp_path, CONNECTION + f"timeout = {value}\n") == (
        f"{tmp_path}/ovirt-cloud.conf: [connection] timeout: {problem}")


def test_timeout_fraction(tmp_path: Path) -> None:
    assert load(tmp_path, CONNECTION + "timeout = 2.5\n").connection.timeout == 2.5


def test_an_indented_line_is_a_continuation_and_an_error_for_single_values(tmp_path: Path) -> None:
    message = error(tmp_path, "[connection]\nuri = https://e/ovirt-engine/api\n  username = admin\n"
                              "password=x\n")
    assert message == (f"{tmp_path}/ovirt-cloud.conf: [connection] uri: the value continues on an indented "
                       "line below it (an indented line belongs to the key above; remove the indentation)")


# --- the environment ---------------------------------------------------------------------------------

def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION, {"OVIRT_URL": "https://other/ovirt-engine/api",
                                         "OVIRT_USERNAME": "k8s@internal", "OVIRT_PASSWORD": "from-env"})
    assert config.connection.uri == "https://other/ovirt-engine/api"
    assert config.connection.username == "k8s@internal"
    assert resolve_password(config.connection) == "from-env"


def test_environment_password_file_wins_over_the_file_password(tmp_path: Path) -> None:
    pw = write(tmp_path, "from-file\n", "pw")
    config = load(tmp_path, CONNECTION, {"OVIRT_PASSWORD_FILE": pw})
    assert config.connection.password == "" and config.connection.password_file == pw
    assert resolve_password(config.connection) == "from-file"


def test_environment_password_wins_over_the_file_password_file(tmp_path: Path) -> None:
    text = "[connection]\nuri = https://e/ovirt-engine/api\npassword_file = /nonexistent/pw\n"
    config = load(tmp_path, text, {"OVIRT_PASSWORD": "from-env"})
    assert config.connection.password_file is None
    assert resolve_password(config.connection) == "from-env"


def test_environment_password_loses_one_trailing_newline_like_a_file(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION, {"OVIRT_PASSWORD": "pw\n", "OVIRT_USERNAME": " k8s@internal\n"})
    assert resolve_password(config.connection) == "pw"
    assert config.connection.username == "k8s@internal"


def test_no_connection_section_when_the_environment_has_everything(tmp_path: Path) -> None:
    config = load(tmp_path, "[filters]\nvms = tag=k8s\n",
                  {"OVIRT_URL": "https://e", "OVIRT_USERNAME": "u@internal", "OVIRT_PASSWORD": "p"})
    assert config.connection.uri == "https://e/ovirt-engine/api"


def test_empty_environment_variables_are_ignored(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION, {"OVIRT_URL": "", "OVIRT_PASSWORD": "", "OVIRT_PASSWORD_FILE": ""})
    assert config.connection.uri == "https://engine.example.com/ovirt-engine/api"
    assert resolve_password(config.connection) == SECRET


def test_default_environment_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVIRT_USERNAME", "os-environ@internal")
    assert load_config(write(tmp_path, CONNECTION)).connection.username == "os-environ@internal"


@pytest.mark.parametrize(("env", "message"), [
    ({"OVIRT_URL": "ftp://x"},
     'environment variable OVIRT_URL: scheme "ftp" is not supported; use https:// (or http://)'),
    ({"OVIRT_URL": "engine"},
     'environment variable OVIRT_URL: "engine" is not a URL; expected https://ENGINE/ovirt-engine/api'),
    ({"OVIRT_PASSWORD": "a", "OVIRT_PASSWORD_FILE": "/x"},
     "environment variable OVIRT_PASSWORD_FILE: conflicts with OVIRT_PASSWORD; set only one of "
     "OVIRT_PASSWORD and OVIRT_PASSWORD_FILE"),
    ({"OVIRT_PASSWORD_FILE": "/nonexistent/pw"},
     "environment variable OVIRT_PASSWORD_FILE: /nonexistent/pw: cannot read the password file: No such file "
     "or directory"),
])
def test_environment_errors_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    assert error(tmp_path, CONNECTION, env) == message


# --- [filters] ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "sent"), [
    ("tag=kubernetes and status=up", "tag=kubernetes and status=up"),
    ('"tag=kubernetes"', "tag=kubernetes"),
    ("tag=a or\n  tag=b", "tag=a or tag=b"),
    ('name="vm (old)"', 'name="vm (old)"'),
    ("tag = page and name = sortby*", "tag = page and name = sortby*"),  # values, not the clauses
    ("name=page", "name=page"),
])
def test_filter_queries(tmp_path: Path, written: str, sent: str) -> None:
    assert load(tmp_path, section("filters", f"vms = {written}")).filters.vms == sent


def test_empty_filter_warns(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION)
    assert config.filters.vms == ""
    assert any(n.level == "warning" and "every VM" in n.message for n in config.notices)


@pytest.mark.parametrize(("query", "problem"), [
    ("(tag=a or tag=b) and status=up", "the engine's search language has no parentheses"),
    ("tag=a sortby name", "must not contain 'sortby': the controller adds 'sortby name asc page N' itself"),
    ("tag=a page 2", "must not contain 'page'"),
    ("tag=a sortby name desc page 2", "must not contain 'sortby'"),
    ('name="unbalanced', "has an unbalanced double quote"),
])
def test_bad_filter(tmp_path: Path, query: str, problem: str) -> None:
    message = error(tmp_path, section("filters", f"vms = {query}"))
    assert message.startswith(f"{tmp_path}/ovirt-cloud.conf: [filters] vms: {problem}")


# --- [nodes] -----------------------------------------------------------------------------------------

def test_nodes_section(tmp_path: Path) -> None:
    nodes = load(tmp_path, section("nodes", """name_source = short_fqdn
internal_cidrs = 10.0.0.0/8, 192.168.0.0/16
  fd00::/8 10.0.0.0/8
external_cidrs = "10.1.0.0/16"
unmatched_addresses = IGNORE
ignore_interfaces = lo docker* eth9
zone_source = host
region_source = none
extra_labels = example.com/pool=general, tier=web team=
register = no
initialize = off
update = 0
taint_shutdown = false
delete = no""")).nodes
    assert nodes == NodesConfig(
        name_source="short-fqdn", internal_cidrs=("10.0.0.0/8", "192.168.0.0/16", "fd00::/8"),
        external_cidrs=("10.1.0.0/16",), unmatched_addresses="ignore",
        ignore_interfaces=("lo", "docker*", "eth9"),
        zone_source="host", region_source="none",
        extra_labels=(("example.com/pool", "general"), ("team", ""), ("tier", "web")),
        register=False, initialize=False, update=False, taint_shutdown=False, delete=False)


@pytest.mark.parametrize(("body", "problem"), [
    ("internal_cidrs = 10.0.0.0/8, 10.0.0.0/33",
     'internal_cidrs: "10.0.0.0/33" is not a CIDR network like 10.0.0.0/8 or fd00::/8'),
    ("external_cidrs = banana", 'external_cidrs: "banana" is not a CIDR network like 10.0.0.0/8 or fd00::/8'),
    ("internal_cidrs = 10.0.0.1/8",
     'internal_cidrs: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)'),
    ("internal_cidrs = 10.0.0.0/8\nexternal_cidrs = 10.0.0.0/8",
     "external_cidrs: 10.0.0.0/8 is also in internal_cidrs; an address cannot be both"),
    ("name_source = fqdnn",
     'name_source: "fqdnn" is not one of name, fqdn, short-fqdn (did you mean "fqdn"?)'),
    ("zone_source = cluser",
     'zone_source: "cluser" is not one of cluster, datacenter, host, none (did you mean "cluster"?)'),
    ("region_source = host", 'region_source: "host" is not one of datacenter, cluster, none'),
    ("unmatched_addresses = drop", 'unmatched_addresses: "drop" is not one of internal, external, ignore'),
    ("ignore_interfaces = eth/0",
     'ignore_interfaces: "eth/0" is not an interface name pattern (no \'/\' allowed)'),
    ("extra_labels = tier", 'extra_labels: "tier" is not key=value'),
    ("extra_labels = Example.com/x=y",
     'extra_labels: label key "Example.com/x" prefix "Example.com" is not a lowercase DNS subdomain '
     "(at most 253 characters)"),
    ("extra_labels = /x=y", 'extra_labels: label key "/x" has an empty prefix before \'/\''),
    ("extra_labels = example.com/=y", 'extra_labels: label key "example.com/" has an empty name'),
    ("extra_labels = -tier=web",
     'extra_labels: label key "-tier" name part must be at most 63 characters of A-Z a-z 0-9 - _ . and begin '
     "and end with a letter or digit"),
    ("extra_labels = tier=-web",
     'extra_labels: label value "-web" for tier must be at most 63 characters of A-Z a-z 0-9 - _ . and begin '
     "and end with a letter or digit"),
    (f"extra_labels = tier={'x' * 64}", "extra_labels: label value"),
    ("extra_labels = a=1, a=2", "extra_labels: label a is given twice"),
    ("extra_labels = ovirt.org/cluster=x",
     "extra_labels: label ovirt.org/cluster is set by the controller and cannot be overridden"),
    ("extra_labels = topology.kubernetes.io/zone=z1",
     "extra_labels: label topology.kubernetes.io/zone comes from zone_source; set zone_source = none to "
     "set it here"),
    ("register = maybe", 'register: "maybe" is not a boolean (use true/false, yes/no, on/off or 1/0)'),
])
def test_bad_nodes_values(tmp_path: Path, body: str, problem: str) -> None:
    message = error(tmp_path, section("nodes", body))
    assert message.startswith(f"{tmp_path}/ovirt-cloud.conf: [nodes] {problem}")


def test_zone_and_region_labels_allowed_when_their_source_is_none(tmp_path: Path) -> None:
    nodes = load(tmp_path, section("nodes", "zone_source = none\nregion_source = none\nextra_labels = "
                                            "topology.kubernetes.io/zone=z1 topology.kubernetes.io/region=r1"
                                   )).nodes
    assert dict(nodes.extra_labels) == {"topology.kubernetes.io/zone": "z1",
                                        "topology.kubernetes.io/region": "r1"}


@pytest.mark.parametrize(("key", "ok"), [
    ("tier", True), ("example.com/tier", True), ("a.b-c.d/x_y.z-1", True), ("x" * 63, True),
    (".".join(["a" * 63] * 3 + ["a" * 61]) + "/x", True), ("x" * 64, False), (f"{'a' * 64}/x", False),
    (".".join(["a" * 63] * 3 + ["a" * 62]) + "/x", False), ("a/b/c", False), ("Tier_", False),
    ("", False), ("a b", False), ("UPPER.com/x", False), ("example.com/Upper_OK", True),
])
def test_label_keys(key: str, ok: bool) -> None:
    assert (label_key_problem(key) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("", True), ("a", True), ("A.b_c-9", True), ("x" * 63, True), ("x" * 64, False), ("-a", False),
    ("a_", False), ("a b", False), ("a/b", False), ("é", False),
])
def test_label_values(value: str, ok: bool) -> None:
    assert (label_value_problem(value) is None) is ok


# --- [controller] ------------------------------------------------------------------------------------

def test_controller_section(tmp_path: Path) -> None:
    controller = load(tmp_path, section("controller", """sync_interval = 5
event_poll_interval = 0
page_size = 1000
delete_after_sweeps = 1
max_delete_fraction = 1
max_delete_count = 0
leader_elect = false
leader_elect_namespace = ovirt
leader_elect_lease_name = ovirt.cloud-provider
lease_duration = 60
renew_deadline = 40
retry_period = 5
metrics_bind_address = :9100
backoff_max = 1
kube_api_qps = 2.5
kube_api_burst = 1""")).controller
    assert controller == ControllerConfig(
        sync_interval=5, event_poll_interval=0, page_size=1000, delete_after_sweeps=1, max_delete_fraction=1,
        max_delete_count=0, leader_elect=False, leader_elect_namespace="ovirt",
        leader_elect_lease_name="ovirt.cloud-provider", lease_duration=60, renew_deadline=40, retry_period=5,
        metrics_bind_address=":9100", backoff_max=1, kube_api_qps=2.5, kube_api_burst=1)


@pytest.mark.parametrize(("body", "problem"), [
    ("sync_interval = 4", "sync_interval: must be at least 5 seconds, got 4"),
    ("sync_interval = often", 'sync_interval: "often" is not a number (seconds)'),
    ("event_poll_interval = 0.5",
     "event_poll_interval: must be at least 1 seconds (or 0 to disable), got 0.5"),
    ("page_size = 0", "page_size: must be from 1 to 1000, got 0"),
    ("page_size = 1001", "page_size: must be from 1 to 1000, got 1001"),
    ("page_size = 10.5", 'page_size: "10.5" is not a whole number'),
    ("delete_after_sweeps = 0", "delete_after_sweeps: must be from 1 to 1000, got 0"),
    ("max_delete_fraction = 0", "max_delete_fraction: must be more than 0 and at most 1, got 0"),
    ("max_delete_fraction = 1.5", "max_delete_fraction: must be more than 0 and at most 1, got 1.5"),
    ("max_delete_fraction = half", 'max_delete_fraction: "half" is not a number (a fraction like 0.5)'),
    ("max_delete_count = -1", "max_delete_count: must be from 0 to 100000, got -1"),
    ("leader_elect = perhaps", 'leader_elect: "perhaps" is not a boolean'),
    ("leader_elect_namespace = Kube_System",
     'leader_elect_namespace: "Kube_System" is not a valid namespace name (lowercase DNS label, at most 63 '
     "characters)"),
    ("instance = Hypervisors",
     'instance: "Hypervisors" is not a valid instance name (lowercase DNS label, at most 63 characters'),
    ("instance = east.a", 'instance: "east.a" is not a valid instance name'),
    ("leader_elect_lease_name = my_lease",
     'leader_elect_lease_name: "my_lease" is not a valid object name (lowercase DNS subdomain)'),
    ("renew_deadline = 15", "renew_deadline: lease_duration (15 s) must be more than renew_deadline (15 s)"),
    ("lease_duration = 8", "renew_deadline: lease_duration (8 s) must be more than renew_deadline (10 s)"),
    ("retry_period = 9", "retry_period: renew_deadline (10 s) must be more than 1.2 x retry_period (9 s)"),
    ("retry_period = 0", "retry_period: must be more than 0 seconds, got 0"),
    ("metrics_bind_address = 10270",
     'metrics_bind_address: "10270" is not HOST:PORT, :PORT or [IPv6]:PORT: expected HOST:PORT or :PORT'),
    ("metrics_bind_address = 0.0.0.0:http", 'metrics_bind_address: "0.0.0.0:http" is not HOST:PORT'),
    ("backoff_max = 0.5", "backoff_max: must be at least 1 seconds, got 0.5"),
    ("kube_api_qps = 0", "kube_api_qps: must be more than 0 and at most 100000 requests per second, got 0"),
    ("kube_api_qps = -5", "kube_api_qps: must be more than 0 and at most 100000 requests per second, got -5"),
    ("kube_api_qps = fast", 'kube_api_qps: "fast" is not a number (requests per second)'),
    ("kube_api_burst = 0", "kube_api_burst: must be from 1 to 100000, got 0"),
    ("kube_api_burst = 2.5", 'kube_api_burst: "2.5" is not a whole number'),
])
def test_bad_controller_values(tmp_path: Path, body: str, problem: str) -> None:
    message = error(tmp_path, section("controller", body))
    assert message.startswith(f"{tmp_path}/ovirt-cloud.conf: [controller] {problem}")


@pytest.mark.parametrize(("body", "instance", "lease"), [
    ("", "ovirt-cloudprovider", "ovirt-cloudprovider"),
    ("instance = hypervisors", "hypervisors", "hypervisors"),  # the Lease follows the instance
    ("instance = hypervisors\nleader_elect_lease_name = hv-lease", "hypervisors", "hv-lease"),
    ("leader_elect_lease_name = my-lease", "ovirt-cloudprovider", "my-lease"),
])
def test_the_lease_is_named_after_the_instance(tmp_path: Path, body: str, instance: str, lease: str) -> None:
    ctl = load(tmp_path, section("controller", body)).controller
    assert (ctl.instance, ctl.leader_elect_lease_name) == (instance, lease)


@pytest.mark.parametrize(("value", "parsed"), [
    (":10270", ("", 10270)), ("0.0.0.0:10270", ("0.0.0.0", 10270)), ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::]:9100", ("::", 9100)), ("[fd00::1]:65535", ("fd00::1", 65535)), ("localhost:80", ("localhost", 80)),
])
def test_bind_addresses(value: str, parsed: tuple[str, int]) -> None:
    assert parse_bind_address(value) == parsed


@pytest.mark.parametrize("value", [
    "10270", "::10270", "[::1]10270", "[zz]:1", "host:65536", "host:", "bad_host:80", "1.2.3.4:-1", "[::1",
])
def test_bad_bind_addresses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_bind_address(value)


# --- structure errors --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "problem"), [
    ("[conection]\nuri = x\n", "[conection]: unknown section on line 1 (did you mean [connection]?)"),
    ("[Node]\nregister = no\n", "[Node]: unknown section on line 1 (did you mean [nodes]?)"),
    ("[global]\nx = 1\n",
     "[global]: unknown section on line 1 (known sections: [connection], [filters], [nodes], [controller], "
     "[autoscaler], [nodegroup NAME])"),
    ("[DEFAULT]\ntimeout = 5\n",
     "[DEFAULT]: unknown section on line 1 (known sections: [connection], [filters], [nodes], [controller], "
     "[autoscaler], [nodegroup NAME])"),
    (CONNECTION + "pasword = x\n", "[connection] pasword: unknown key on line 5 (did you mean password?)"),
    (CONNECTION + "ca-fil = x\n", "[connection] ca-fil: unknown key on line 5 (did you mean ca_file?)"),
    (CONNECTION + "[nodes]\npage_size = 10\n", "[nodes] page_size: unknown key on line 6 (it belongs in [controller])"),
    (CONNECTION + "[filters]\ntemplates = x\n", "[filters] templates: unknown key on line 6 (known keys: vms, hosts)"),
    (CONNECTION + "[connection]\ntimeout = 5\n", "[connection]: section given twice on line 5"),
    (CONNECTION + "[Connection]\ntimeout = 5\n",
     "[connection]: section given twice (as [connection] and [Connection] on line 5)"),
    (CONNECTION + "password = again\n", "[connection] password: key given twice on line 5"),
    (CONNECTION + "timeout = 1\nTimeOut = 2\n", "[connection] timeout: key given twice on line 6"),
    (CONNECTION + "password_file = a\npassword-file = b\n",
     "[connection] password_file: key given twice (as password_file and password-file)"),
])
def test_structure_errors(tmp_path: Path, text: str, problem: str) -> None:
    assert error(tmp_path, text) == f"{tmp_path}/ovirt-cloud.conf: {problem}"


@pytest.mark.parametrize(("text", "problem"), [
    ("uri = https://e\n", "line 1: not an INI file: expected a [section] header before the first key"),
    ("<?xml version='1.0'?>\n<config/>\n",
     "line 1: not an INI file: expected a [section] header before the first key"),
    ('{"connection": {}}\n', "line 1: not an INI file: expected a [section] header before the first key"),
    (f"[connection]\nuri = https://e\npassword {SECRET}\n",
     'line 3: not an INI line: expected "key = value", "[section]" or a comment'),
    (b"\xff\xfe[\x00c\x00", "not a text file (not UTF-8); expected an INI file"),
])
def test_not_an_ini_file(tmp_path: Path, text: str | bytes, problem: str) -> None:
    assert error(tmp_path, text) == f"{tmp_path}/ovirt-cloud.conf: {problem}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.conf"), {})
    assert str(info.value) == (f"{tmp_path}/nope.conf: cannot read the configuration file: No such file or "
                               "directory")


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path), {})
    assert str(info.value) == f"{tmp_path}: cannot read the configuration file: Is a directory"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "\ufeff" + CONNECTION), {}).connection.username == "admin@internal"


def test_empty_file_reports_the_missing_uri(tmp_path: Path) -> None:
    assert error(tmp_path, "").endswith(
        "[connection] uri: missing (set it here or in environment variable OVIRT_URL)")


# --- secrets -----------------------------------------------------------------------------------------

def test_password_never_in_repr(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION)
    assert config.connection.password == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.connection)
    assert SECRET not in str(config)


@pytest.mark.parametrize("extra", [
    "timeout = x", "insecure = x", "unknown = x", f"{SECRET} = x", "[nodes]\nname_source = x",
    "[controller]\nlease_duration = 1", f"password_file = {SECRET}", "ca_file = /nonexistent",
])
def test_password_never_in_errors_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                          extra: str) -> None:
    caplog.set_level(logging.DEBUG)
    error(tmp_path, CONNECTION + extra + "\n")  # asserts SECRET is not in the message
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in repr(record.__dict__)


def test_multiline_password_error_does_not_show_it(tmp_path: Path) -> None:
    message = error(tmp_path, f"[connection]\nuri = https://e/ovirt-engine/api\npassword = abc\n  {SECRET}\n")
    assert message.endswith("[connection] password: the value continues on an indented line below it (an "
                            "indented line belongs to the key above; remove the indentation)")


def test_notices_of_a_good_load_do_not_contain_the_password(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = load(tmp_path, CONNECTION.replace("https", "http") + "insecure = yes\n")
    assert len(config.notices) >= 2
    assert all(SECRET not in repr(n) for n in config.notices)
    log_notices(config)  # as the CLI does
    assert len(caplog.records) == len(config.notices)
    assert SECRET not in caplog.text and all(SECRET not in repr(r.__dict__) for r in caplog.records)


# --- ConfigError and the schema ----------------------------------------------------------------------

def test_config_error_formats() -> None:
    assert str(ConfigError("bad", path="/etc/x.conf", section="nodes", key="k")) == (
        "/etc/x.conf: [nodes] k: bad")
    assert str(ConfigError("bad", path="/etc/x.conf", section="nodes")) == "/etc/x.conf: [nodes]: bad"
    assert str(ConfigError("bad", path="/etc/x.conf")) == "/etc/x.conf: bad"
    assert str(ConfigError("bad\nnews", env="OVIRT_URL")) == "environment variable OVIRT_URL: bad news"
    assert str(ConfigError("plain")) == "plain"
    err = ConfigError("bad", path="p", section="s", key="k")
    assert (err.path, err.section, err.key, err.problem) == ("p", "s", "k", "bad")


@pytest.mark.parametrize(("name", "cls"), [
    ("connection", ConnectionConfig), ("filters", FiltersConfig), ("nodes", NodesConfig),
    ("controller", ControllerConfig),
])
def test_schema_keys_are_the_dataclass_fields(name: str, cls: type) -> None:
    assert set(schema_keys()[name]) == {f.name for f in dataclasses.fields(cls)}


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTION)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.connection.uri = "x"  # type: ignore[misc]
