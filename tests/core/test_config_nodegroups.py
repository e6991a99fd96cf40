"""``[nodegroup NAME]`` sections: parsed into NodeGroupConfig, checked like every other section (one line naming
file, section and key, "did you mean"), and the user data never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovirt_cloudprovider.config import load_config, read_mark_key
from ovirt_cloudprovider.core.settings import ConfigError, NodeGroupConfig

CONNECTION = """[connection]
uri = https://engine.example.com/ovirt-engine/api
username = autoscaler@internal
password = pw
"""
USER_DATA = "#cloud-config\nruncmd: [kubeadm join --token abcdef.0123456789secret]\n"


def _load(tmp_path: Path, groups: str) -> list[NodeGroupConfig]:
    (tmp_path / "join.yaml").write_text(USER_DATA)
    path = tmp_path / "ovirt-cloud.conf"
    path.write_text(CONNECTION + groups)
    return list(load_config(str(path), {}).nodegroups)


def _error(tmp_path: Path, groups: str) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, groups)
    text = str(err.value)
    assert "\n" not in text and "secret" not in text
    return text


def test_a_full_group(tmp_path: Path) -> None:
    groups = _load(tmp_path, """
[nodegroup pool-a]
template = k8s-node
template_version = 2
cluster = east-a
min_size = 1
max_size = 10
name_prefix = k8s-a
tags = kubernetes, k8s-worker
user_data_file = join.yaml
cpus = 4
memory = 8192
affinity_group = spread

[NodeGroup  pool-b]
template = k8s-node
cluster = east-b
max-size = 3
""")
    a, b = groups
    assert a == NodeGroupConfig(name="pool-a", template="k8s-node", cluster="east-a", max_size=10, min_size=1,
                                template_version=2, name_prefix="k8s-a", tags=("kubernetes", "k8s-worker"),
                                user_data_file=str(tmp_path / "join.yaml"), cpus=4, memory=8192,
                                affinity_group="spread")
    assert (b.name, b.prefix, b.min_size, b.max_size, b.tags, b.user_data_file) == ("pool-b", "pool-b", 0, 3, (),
                                                                                    None)
    assert USER_DATA not in repr(a)


def test_no_group_is_fine_for_the_controller(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_sise = 3\n",
     "[nodegroup pool-a] max_sise: unknown key on line 9 (did you mean max_size?)"),
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\n",
     "[nodegroup pool-a] max_size: missing (a node group needs template, cluster and max_size)"),
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_size = 2\nmin_size = 3\n",
     "[nodegroup pool-a] min_size: more than max_size (3 > 2)"),
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_size = 0\n",
     "[nodegroup pool-a] max_size: must be from 1 to 1000, got 0"),
    ("[nodegroup Pool_A]\ntemplate = t\n", "[nodegroup]: node group name pool_a must be a lowercase DNS label"),
    ("[nodegroup]\ntemplate = t\n", "[nodegroup]: a node group section is [nodegroup NAME], with one name"),
    ("[nodegroups pool-a]\ntemplate = t\n", "[nodegroups]: unknown section on line 6 (did you mean [nodegroup NAME]?)"),
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_size = 2\nuser_data_file = nope.yaml\n",
     "[nodegroup pool-a] user_data_file: cannot read"),
    ("[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_size = 2\nname_prefix = Bad_Prefix\n",
     "[nodegroup pool-a] name_prefix: \"Bad_Prefix\" is not a lowercase DNS label"),
    ("[nodegroup a]\ntemplate = t\ncluster = c\nmax_size = 2\nname_prefix = x\n"
     "[nodegroup b]\ntemplate = t\ncluster = c\nmax_size = 2\nname_prefix = x\n",
     "[nodegroup b] name_prefix: VM names of node groups a and b would share the prefix x"),
    ("[nodegroup a]\ntemplate = t\ncluster = c\nmax_size = 2\nvms = tag=x\n",
     "[nodegroup a] vms: unknown key on line 10 (it belongs in [filters])"),
])
def test_mistakes_are_one_line_naming_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, "\n" + text)


def test_user_data_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    # A binary user_data_file passed check-config and then failed every scale-up with INTERNAL.
    (tmp_path / "join.bin").write_bytes(b"\xff\xfe secret-token")
    text = _error(tmp_path, "\n[nodegroup pool-a]\ntemplate = t\ncluster = c\nmax_size = 2\n"
                            "user_data_file = join.bin\n")
    assert "[nodegroup pool-a] user_data_file:" in text and "is not UTF-8 text" in text


def test_the_mark_key_file(tmp_path: Path) -> None:
    """``[autoscaler] mark_key_file``: relative to the configuration file, checked at load (at least 32 bytes,
    one trailing newline dropped), read by ``read_mark_key``; a problem is one line that never shows the key."""
    path = tmp_path / "ovirt-cloud.conf"
    path.write_text(CONNECTION + "[autoscaler]\nmark_key_file = mark-key\n")
    (tmp_path / "mark-key").write_bytes(b"s3cret-" * 5 + b"\n")
    config = load_config(str(path), {})
    assert config.autoscaler.mark_key_file == str(tmp_path / "mark-key")
    assert read_mark_key(config) == b"s3cret-" * 5
    (tmp_path / "mark-key").write_bytes(b"s3cret-" * 4 + b"\n")  # 28 bytes
    with pytest.raises(ConfigError) as short:
        load_config(str(path), {})
    assert str(short.value) == (f"{path}: [autoscaler] mark_key_file: {tmp_path / 'mark-key'} holds 28 bytes; a mark "
                                "key needs at least 32")
    path.write_text(CONNECTION)
    with pytest.raises(ConfigError, match=r"\[autoscaler\] mark_key_file: missing"):
        read_mark_key(load_config(str(path), {}))
