"""One run writes a results folder at a time, and it clears what a killed run left half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.evaluation.folder_lock import hold
from tests.conftest import cli


def test_a_held_folder_refuses_a_second_writer_until_released(tmp_path: Path) -> None:
    with hold(tmp_path):
        with pytest.raises(
            BenchError, match=f"another bench run is writing to {tmp_path}; wait for it"
        ):
            with hold(tmp_path):
                pass
    with hold(tmp_path):  # released
        pass


def test_holding_removes_half_written_files_of_killed_runs_only(tmp_path: Path) -> None:
    (tmp_path / ".state").mkdir()
    kept = [
        tmp_path / "results.csv",
        tmp_path / ".state" / "0123abcd-exit1.json",
        tmp_path / "notes.tmp",
    ]
    gone = [
        tmp_path / ".results.csv.k2j4_x.tmp",
        tmp_path / ".per_image.csv.a1.tmp",
        tmp_path / ".data.json.77.tmp",
        tmp_path / ".state" / ".0123abcd-exit1.json.tmp",
    ]
    for f in kept + gone:
        f.write_text("x")
    with hold(tmp_path):
        assert all(f.exists() for f in kept) and not any(f.exists() for f in gone)


def test_a_run_into_a_folder_another_run_holds_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with hold(tmp_path):
        assert (
            cli("run --models resnet_tiny@random --n-images 4 --speed-budget 0 --out {}", tmp_path)
            == 2
        )
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"bench: error: another bench run is writing to {tmp_path}; wait for it to finish or "
        "use another --out"
    )
    assert not (tmp_path / "results.csv").exists()
