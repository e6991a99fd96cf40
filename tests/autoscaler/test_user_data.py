"""A group's user_data_file that goes bad after the start (deleted, unreadable, rewritten as binary): the scale-up
is refused with one line naming the file, nothing is created, the log has no traceback and no content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.autoscaler.conftest import POOL, Scaler, config_for


@pytest.mark.parametrize("fault", ["deleted", "directory", "binary"])
def test_a_user_data_file_gone_bad_refuses_the_scale_up_in_one_line(
        sim: EngineSimulator, scalers: Callable[..., Scaler], tmp_path: Path, fault: str,
        caplog: pytest.LogCaptureFixture) -> None:
    user_data = tmp_path / "join.yaml"
    user_data.write_text("#cloud-config\n")
    scaler = scalers(config_for(sim, replace(POOL, user_data_file=str(user_data))))
    vms_before = set(sim.fleet.vms)
    user_data.unlink()
    if fault == "directory":
        user_data.mkdir()
    elif fault == "binary":
        user_data.write_bytes(b"\xff\xfe token=s3cr3t-join-token")
    with pytest.raises(grpc.RpcError) as err:
        scaler.call("NodeGroupIncreaseSize", id="pool", delta=1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert f"user_data_file {user_data}" in details and "\n" not in details
    assert "s3cr3t" not in details
    assert set(sim.fleet.vms) == vms_before
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage()]
