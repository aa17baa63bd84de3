"""benchmarks/perf.py's perf.csv: provenance on new rows; a file with other columns is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch


def test_perf_csv_rows_carry_provenance_and_other_columns_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import perf

    path = tmp_path / "perf.csv"
    new = perf.row(
        "PGD-10 vs torchattacks, same work",
        "resnet_small",
        8,
        1.0,
        2.0,
        1.0,
        "n",
        torch.device("cpu"),
    )
    new.update(peer_version=perf.peer_version("PGD"), weights="abc123")
    perf.append(path, [new])
    perf.append(path, [new])  # today's columns: appended, not rewritten
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == perf.COLUMNS and len(rows) == 2
    assert (
        rows[1]["ratio"] == "2.00" and rows[1]["meets"] == "true" and rows[1]["weights"] == "abc123"
    )
    assert rows[1]["torch"] == torch.__version__ and rows[1]["peer_version"].startswith(
        "torchattacks 3."
    )
    assert perf.peer_version("make bench") == ""

    old_columns = perf.COLUMNS[: perf.COLUMNS.index("notes") + 1]  # an older perf.py's file
    for name, text in (
        ("older.csv", ",".join(old_columns) + "\n"),
        ("foreign.csv", "date,speed\n1,2\n"),
    ):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit, match="other columns than this perf.py writes"):
            perf.append(tmp_path / name, [new])
        assert (tmp_path / name).read_text() == text


def test_make_perf_reads_pyautoattacks_survivors_per_stage_from_its_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The AutoAttack rows say whether both sides did the same work: images left after each stage,
    the peer's read from the lines pyautoattack logs (checked against its source)."""
    import logging

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import perf

    log = logging.getLogger("auto-attack-test")
    log.setLevel(logging.DEBUG)
    stages = perf._StageCounts(32)
    log.addHandler(stages)
    log.debug(f"initial accuracy: {28 / 32:.2%}")
    for attack, left in (("apgd-ce", 3), ("apgd-t", 2), ("fab-t", 2), ("square", 2)):
        log.debug(f"running {attack}")
        log.debug(
            f"robust accuracy after {attack.upper()}: {left / 32:.2%} (total time {1.5:.1f} s)"
        )
    log.removeHandler(stages)
    assert stages.counts == {"clean": 28, "apgd-ce": 3, "apgd-t": 2, "fab-t": 2, "square": 2}
    assert tuple(stages.counts) == perf.STAGES

    # every image broken by APGD-CE: the later stages are skipped, not logged
    stopped = perf._StageCounts(32)
    log.addHandler(stopped)
    log.debug(f"initial accuracy: {28 / 32:.2%}")
    log.debug("robust accuracy after {}: {:.2%} (total time {:.1f} s)".format("APGD-CE", 0.0, 1.5))
    log.debug("no robust datapoints left, skipping remaining attacks")
    log.removeHandler(stopped)
    assert [stopped.counts[s] for s in perf.STAGES] == [28, 0, 0, 0, 0]

    import inspect

    import pyautoattack.autoattack

    source = inspect.getsource(pyautoattack.autoattack)  # the strings above are the library's own
    for line in (
        "'initial accuracy: {:.2%}'",
        "'robust accuracy after {}: {:.2%} (total time {:.1f} s)'",
        "'no robust datapoints left, skipping remaining attacks'",
    ):
        assert line in source, line
