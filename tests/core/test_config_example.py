"""ovirt-cloud.conf.example loads, and documents every key of every section with its real default.

Convention in the example: a line ``# key = value`` documents ``key`` with its DEFAULT (uncomment to
change it). Live (uncommented) lines are example settings, allowed only for the keys below. This test
parses those lines and compares them with the dataclasses, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ovirt_cloudprovider.config import load_config
from ovirt_cloudprovider.config.schema import schema_keys
from ovirt_cloudprovider.core.settings import ConnectionConfig, ControllerConfig, FiltersConfig, NodesConfig
from tests.helpers import REPO

EXAMPLE = REPO / "ovirt-cloud.conf.example"
REQUIRED = {"connection": {"uri", "password"}}  # no default: shown live, not as "# key = default"
LIVE_EXAMPLES = {"connection": {"uri", "password"}, "filters": {"vms"}}
DEFAULTS = {"filters": FiltersConfig(), "nodes": NodesConfig(), "controller": ControllerConfig()}

_SECTION = re.compile(r"^\[([a-z]+)\]\s*$")
_DOCUMENTED = re.compile(r"^#\s?([a-z][a-z0-9_]*) = ?(.*)$")
_LIVE = re.compile(r"^([a-z][a-z0-9_]*) = ?(.*)$")


def _parse_example() -> tuple[list[str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    sections: list[str] = []
    documented: dict[str, dict[str, str]] = {}
    live: dict[str, dict[str, str]] = {}
    current = ""
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        if m := _SECTION.match(line):
            current = m.group(1)
            sections.append(current)
            documented[current], live[current] = {}, {}
        elif m := _DOCUMENTED.match(line):
            assert current, f"line {number}: a documented key before the first section"
            key, value = m.groups()
            assert key in schema_keys()[current], f"line {number}: [{current}] {key} is not a key here"
            assert key not in documented[current], f"line {number}: [{current}] {key} documented twice"
            documented[current][key] = value
        elif m := _LIVE.match(line):
            key, value = m.groups()
            assert key in LIVE_EXAMPLES.get(current, set()), f"line {number}: [{current}] {key} set live"
            live[current][key] = value
    return sections, documented, live


def test_example_loads_as_it_is() -> None:
    config = load_config(str(EXAMPLE), {})
    assert config.connection.uri == "https://engine.example.com/ovirt-engine/api"
    assert config.filters.vms == "tag=kubernetes"


def test_example_has_every_section_in_order() -> None:
    sections, _, _ = _parse_example()
    assert sections == list(schema_keys())


@pytest.mark.parametrize("section", list(schema_keys()))
def test_every_key_is_documented(section: str) -> None:
    _, documented, live = _parse_example()
    required = REQUIRED.get(section, set())
    assert set(documented[section]) == set(schema_keys()[section]) - required
    assert required <= set(live[section])


def test_documented_values_are_the_defaults(tmp_path: Path) -> None:
    _, documented, live = _parse_example()
    lines: list[str] = []
    for section, keys in documented.items():
        lines.append(f"[{section}]")
        required = REQUIRED.get(section, set())
        lines += [f"{key} = {value}" for key, value in live[section].items() if key in required]
        lines += [f"{key} = {value}" for key, value in keys.items()]
    path = tmp_path / "defaults.conf"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(str(path), {})
    assert config.filters == DEFAULTS["filters"]
    assert config.nodes == DEFAULTS["nodes"]
    assert config.controller == DEFAULTS["controller"]
    assert config.connection == ConnectionConfig(uri=config.connection.uri,
                                                 password=live["connection"]["password"])


def test_example_mentions_the_environment_variables() -> None:
    text = EXAMPLE.read_text()
    for name in ("OVIRT_URL", "OVIRT_USERNAME", "OVIRT_PASSWORD", "OVIRT_PASSWORD_FILE"):
        assert name in text


README = REPO / "README.md"


def _readme_configuration_table() -> dict[str, dict[str, str]]:
    """The README's configuration table: section -> key -> the default cell's value for that key (``""`` when the
    cell is prose, not one backticked value per key)."""
    text = README.read_text(encoding="utf-8")
    body = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] not in schema_keys():
            continue
        keys = re.findall(r"`([a-z][a-z0-9_]*)`", cells[1])
        defaults = re.findall(r"`([^`]*)`", cells[2])
        for index, key in enumerate(keys):
            table.setdefault(cells[0], {})[key] = defaults[index] if len(defaults) == len(keys) else ""
    return table


@pytest.mark.parametrize("section", list(schema_keys()))
def test_every_key_is_in_the_readme_table(section: str) -> None:
    documented = set(_readme_configuration_table().get(section, {}))
    keys = set(schema_keys()[section])
    assert keys - documented == set(), f"README's configuration table lacks [{section}] {sorted(keys - documented)}"
    assert documented - keys == set(), f"README's configuration table has unknown [{section}] keys"


def test_readme_table_defaults_are_the_defaults() -> None:
    _, documented, _ = _parse_example()
    for section, keys in _readme_configuration_table().items():
        for key, default in keys.items():
            if default and key in documented[section]:
                assert default == documented[section][key], f"README: [{section}] {key} default {default!r}"
