"""The README's "Compare your model against MGNet" example, run as written on a small stored run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bench.cli import main
from bench.store.results import read_rows

REPO = Path(__file__).resolve().parent.parent


def _example() -> tuple[str, list[str]]:
    """(the model file, the bench commands) of the README section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Compare your model against MGNet", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    commands = [
        ln
        for ln in re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines()  # type: ignore[union-attr]
        if ln.startswith("bench ")
    ]
    return code, commands


def test_readme_example_is_short_and_complete() -> None:
    code, commands = _example()
    assert code.startswith("# my_net.py\n") and len(code.strip().splitlines()) <= 15
    assert [c.split()[1] for c in commands] == ["train", "run"]
    # the run's ResNet is in the command: the transfer attack on my_net starts from it
    assert "resnet_small" in commands[1].split()[commands[1].split().index("--models") :]


def test_readme_compare_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored MGNet/ResNet rows (smoke suite, 8 images), then the README's file and commands."""
    import dataclasses

    from bench import train
    from bench.core.registry import MODELS
    from bench.load import specs

    # a registry of this test only: other tests register a my_net of their own
    monkeypatch.setattr(MODELS, "_items", {k: v for k, v in MODELS._items.items() if k != "my_net"})
    monkeypatch.setattr(specs, "_IMPORTED", {})
    # smoke and a transfer cell: the README's command fills the transfer column
    from bench.core import suites
    from bench.core.conditions import transfer

    monkeypatch.setitem(
        suites.SUITES, "smoke", (*suites.SUITES["smoke"], suites.Cell(transfer(), 8))
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "default").mkdir(parents=True)
    (tmp_path / "results" / "default" / "run.toml").write_text(
        'models = ["mgnet_tiny@random", "resnet_tiny@random"]\nsuite = "smoke"\nn_images = 8\n'
    )
    assert main(["run", "--config", "results/default/run.toml"]) == 0
    stored = read_rows(tmp_path / "results" / "default" / "results.csv")
    # the recipe shortened to one epoch, so the example trains in seconds on the test data
    monkeypatch.setitem(
        train.RECIPES,
        "cluttered_fmnist",
        dataclasses.replace(train.RECIPES["cluttered_fmnist"], epochs=1),
    )
    code, commands = _example()
    (tmp_path / "my_net.py").write_text(code)
    for line in commands:  # the stored run's tiny ResNet stands in for the default one
        argv = shlex.split(line.replace("resnet_small", "resnet_tiny@random"))[1:]
        assert main(argv) == 0, line
    rows = read_rows(tmp_path / "results" / "default" / "results.csv")

    def ident(rs: list) -> list:  # type: ignore[type-arg]
        return [(r.key(), r.n_correct, r.created) for r in rs]

    # stored rows untouched, nothing re-evaluated
    assert ident(rows[: len(stored)]) == ident(stored)
    assert {r.model for r in rows[len(stored) :]} == {"my_net"}
    # every condition of the ResNet's, and the transfer attack from it
    assert {(r.kind, r.condition) for r in rows if r.model == "my_net"} == {
        (r.kind, r.condition) for r in stored if r.model == "resnet_tiny"
    } | {("attack", "transfer_pgd")}
    report = (tmp_path / "results" / "default" / "report.md").read_text()
    headline = report.split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert all(f"| {m} |" in headline for m in ("my_net", "mgnet_tiny", "resnet_tiny"))
    assert (tmp_path / "results" / "default" / "report.html").is_file()
