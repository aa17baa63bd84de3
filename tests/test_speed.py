"""Latency and throughput on the device: batch-1 latency and the best batch's throughput."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from bench.cost.speed import measure
from tests.conftest import cli


class Sleeper(nn.Module):
    """Costs 20 ms per call whatever the batch: latency 20 ms, throughput batch/0.02."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return x.mean((2, 3))


def test_latency_is_batch_one_and_throughput_the_best_batch() -> None:
    sp = measure(Sleeper(), 8, torch.device("cpu"), budget=1.0, max_batch=8)
    assert 20 <= sp.latency_ms < 40
    assert sp.batch == 8 and 8 / 0.04 < sp.throughput <= 8 / 0.02


def test_measure_keeps_eval_mode_and_counts_batch_one() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    net(torch.rand(2, 3, 8, 8))
    sp = measure(net, 8, torch.device("cpu"), budget=0.05, max_batch=4)
    assert not net.training and sp.latency_ms > 0 and sp.throughput >= 1000 / sp.latency_ms - 1e-9
    assert sp.batch in (1, 2, 4)


def test_clean_rows_carry_speed_and_attack_rows_do_not(tmp_path: Path) -> None:
    import math

    from bench.store.results import read_rows

    out = tmp_path / "run"
    assert (
        cli("run --suite smoke --models mgnet_tiny@random --n-images 4 --out {} --no-report", out)
        == 0
    )
    rows = read_rows(out / "results.csv")
    clean = [r for r in rows if r.kind == "clean"]
    assert [r.exit for r in clean] == [1, 2, 3, 4]
    assert all(r.latency_ms > 0 and r.throughput > 0 and r.throughput_batch >= 1 for r in clean)
    assert all(
        math.isnan(r.latency_ms) and r.throughput_batch == 0 for r in rows if r.kind != "clean"
    )
    assert (
        cli(
            "run --models resnet_tiny@random --n-images 4 --out {} --speed-budget 0 --no-report",
            tmp_path / "r2",
        )
        == 0
    )
    assert all(math.isnan(r.latency_ms) for r in read_rows(tmp_path / "r2" / "results.csv"))


def test_speeds_timed_by_different_runs_are_not_compared(tmp_path: Path) -> None:
    """A model added by a later run: its speed sits beside speeds timed at another time and load,
    so the table marks no best speed and says why; one run timing both marks one."""
    import re

    from bench.store.results import read_rows

    run = "run --suite clean --n-images 4 --out {} --models "
    apart, together = tmp_path / "apart", tmp_path / "together"
    assert cli(run + "resnet_tiny@random --no-report", apart) == 0
    assert cli(run + "mgnet_tiny@random", apart) == 0
    assert cli(run + "resnet_tiny@random mgnet_tiny@random", together) == 0
    assert len({r.created for r in read_rows(together / "results.csv")}) == 1, "one run, one time"

    def headline(folder: Path) -> list[str]:
        text = (folder / "report.md").read_text().split("## Headline", 1)[1].split("\n## ", 1)[0]
        return [ln for ln in text.splitlines() if ln.startswith("| ") and "_tiny" in ln]

    def bold_speeds(folder: Path) -> int:  # latency and throughput are the 5th and 6th columns
        return sum(
            bool(re.search(r"\*\*", ln.split("|")[5] + ln.split("|")[6])) for ln in headline(folder)
        )

    assert bold_speeds(together) >= 1
    assert bold_speeds(apart) == 0
    assert "so they are not compared (none in bold)" in (apart / "report.md").read_text()
