"""``[filters] hosts``: absent or empty means no host discovery; otherwise checked like ``vms``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.test_config import CONNECTION, error, load


def test_hosts_absent_or_empty_means_no_host_discovery(tmp_path: Path) -> None:
    assert load(tmp_path, CONNECTION).filters.hosts is None
    assert load(tmp_path, CONNECTION + "[filters]\nvms = tag=k8s\nhosts =\n").filters.hosts is None


@pytest.mark.parametrize(("written", "sent"), [
    ("cluster=k8s-metal", "cluster=k8s-metal"),
    ("tags=kubernetes", "tag=kubernetes"),
    ("name=*", "name=*"),
    ("cluster=a\n  and status=up", "cluster=a and status=up"),
])
def test_hosts_query(tmp_path: Path, written: str, sent: str) -> None:
    assert load(tmp_path, CONNECTION + f"[filters]\nhosts = {written}\n").filters.hosts == sent


@pytest.mark.parametrize(("query", "problem"), [
    ("cluster=a sortby name", "must not contain 'sortby'"),
    ("cluster=a page 2", "must not contain 'page'"),
    ("(cluster=a)", "no parentheses"),
])
def test_bad_hosts_query(tmp_path: Path, query: str, problem: str) -> None:
    message = error(tmp_path, CONNECTION + f"[filters]\nhosts = {query}\n")
    assert "[filters] hosts" in message and problem in message
