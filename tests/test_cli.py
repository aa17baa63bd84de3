"""End to end through the CLI: train, run, resume, report; and every bad input fails cleanly."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core.conditions import ADAPTIVE
from bench.data import cache_dir
from bench.load import checkpoint
from bench.load.specs import default_checkpoint
from bench.store.results import read_rows
from tests.conftest import cli

REPO = Path(__file__).resolve().parent.parent


def test_train_run_resume_report(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        main(
            ["run", "--models", "mgnet_tiny", "resnet_tiny", "--n-images", "50", "--out", str(out)]
        )
        == 0
    )
    rows = read_rows(out / "results.csv")
    assert [(r.model, r.exit) for r in rows] == [("mgnet_tiny", t) for t in (1, 2, 3, 4)] + [
        ("resnet_tiny", 1)
    ]
    for r in rows:
        assert r.n_images == 50 and r.subset == "perm0:50" and 0 <= r.n_correct <= 50
        assert r.accuracy == r.n_correct / 50 and r.kind == "clean" and r.torch == torch.__version__
        assert r.gmacs > 0 and r.params_m > 0 and len(r.weights) == 12
    mg = [r.gmacs for r in rows if r.model == "mgnet_tiny"]
    assert mg == sorted(mg), "later exits cost more"
    before = (out / "results.csv").read_bytes()
    assert (
        main(
            ["run", "--models", "mgnet_tiny", "resnet_tiny", "--n-images", "50", "--out", str(out)]
        )
        == 0
    )
    assert (out / "results.csv").read_bytes() == before, "a rerun skips stored cells"
    report = (out / "report.md").read_text()
    assert (
        "mgnet_tiny" in report and "figures/clean_accuracy_vs_gmacs_cluttered_fmnist.png" in report
    )
    assert (out / "figures" / "clean_accuracy_vs_gmacs_cluttered_fmnist.png").stat().st_size > 5000
    assert f"results: {out / 'results.csv'}" in capsys.readouterr().out
    # the run has no corruption rows, so only the up-front check can catch it
    _fails(
        ["report", str(out), "--baseline", "resnet_tin"],
        capsys,
        "unknown baseline model 'resnet_tin'; did you mean resnet_tiny",
    )


def test_resume_completes_only_missing_cells(trained: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(
            ["run", "--models", "resnet_tiny", "--n-images", "20", "--out", str(out), "--no-report"]
        )
        == 0
    )
    first = read_rows(out / "results.csv")
    assert (
        main(
            ["run", "--models", "resnet_tiny", "mgnet_tiny", "--n-images", "20", "--out", str(out)]
        )
        == 0
    )
    rows = read_rows(out / "results.csv")
    # repr: NaN == NaN
    assert list(map(repr, rows[:1])) == list(map(repr, first)) and len(rows) == 5


def test_a_cell_stored_in_part_runs_only_its_missing_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default suite attacks the last exit only; a later all-exit suite adds the others once."""
    from bench.core import suites
    from bench.core.conditions import fgsm

    monkeypatch.setitem(suites.SUITES, "t_last", (suites.Cell(fgsm(4 / 255), 8, True),))
    monkeypatch.setitem(suites.SUITES, "t_all", (suites.Cell(fgsm(4 / 255), 8),))
    run = ["run", "--models", "mgnet_tiny@random", "--speed-budget", "0", "--no-report", "--out"]
    assert main(run + [str(tmp_path / "a"), "--suite", "t_last"]) == 0
    assert main(run + [str(tmp_path / "a"), "--suite", "t_all"]) == 0
    assert main(run + [str(tmp_path / "b"), "--suite", "t_all"]) == 0
    parts, whole = (
        read_rows(tmp_path / "a" / "results.csv"),
        read_rows(tmp_path / "b" / "results.csv"),
    )
    assert [r.exit for r in parts] == [4, 1, 2, 3] and len({r.key() for r in parts}) == 4
    assert {(r.exit, r.n_correct) for r in parts} == {(r.exit, r.n_correct) for r in whole}


def test_rows_of_an_older_scoring_are_measured_again(trained: None, tmp_path: Path) -> None:
    """Resume never reuses a row an older harness scored; the report shows the newest scoring's row
    of a cell even when an older one was written later, and says when a cell has only older rows."""
    import dataclasses

    from bench.store.results import SCORING, append_rows

    out = tmp_path / "run"
    args = ["run", "--models", "resnet_tiny", "--n-images", "20", "--out", str(out)]
    assert main(args + ["--no-report"]) == 0
    [now] = read_rows(out / "results.csv")
    (out / "results.csv").unlink()
    stale = dataclasses.replace(
        now, scoring=SCORING - 1, n_correct=0, accuracy=0.0, created="2099-01-01T00:00:00+00:00"
    )
    append_rows(out / "results.csv", [stale])
    assert main(["report", str(out)]) == 0
    assert "scored by an older harness: 1 of the 1 rows shown" in (out / "report.md").read_text()
    assert main(args) == 0
    rows = read_rows(out / "results.csv")
    timing = ("created", "seconds", "latency_ms", "throughput", "throughput_batch", "mfu")
    again = dataclasses.replace(rows[1], **{f: getattr(now, f) for f in timing})
    # repr: NaN == NaN
    assert len(rows) == 2 and repr(rows[0]) == repr(stale) and repr(again) == repr(now)
    report = (out / "report.md").read_text()
    assert (
        now.accuracy > 0
        and "older harness" not in report
        and f"{100 * now.accuracy:.1f} (" in report
    )


def test_evaluation_is_deterministic_across_batch_sizes(trained: None, tmp_path: Path) -> None:
    for bs in ("7", "64"):
        assert (
            cli(
                "run --models mgnet_tiny --n-images 40 --batch-size {} --out {} --no-report",
                bs,
                tmp_path / bs,
            )
            == 0
        )
    a, b = (read_rows(tmp_path / bs / "results.csv") for bs in ("7", "64"))
    assert [r.n_correct for r in a] == [r.n_correct for r in b]


def test_report_needs_no_torch(trained: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(
            ["run", "--models", "resnet_tiny", "--n-images", "10", "--out", str(out), "--no-report"]
        )
        == 0
    )
    code = (
        "import sys; from pathlib import Path; from bench.report import build; "
        f"build(Path({str(out)!r})); assert 'torch' not in sys.modules, 'report imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert (out / "report.md").is_file()


def test_training_is_seeded(trained: None, tmp_path: Path) -> None:
    from bench.data import load_split
    from bench.load.specs import load
    from bench.train import Recipe, train

    tr, te = load_split("cluttered_fmnist", "train"), load_split("cluttered_fmnist", "test")
    sds = []
    for i in range(2):
        lm = load("mgnet_tiny@random", "cluttered_fmnist", tmp_path)
        p = train(
            lm.model,
            "mgnet_tiny",
            tr,
            te,
            Recipe(epochs=1, batch_size=64, lr=0.05),
            tmp_path / f"{i}.pt",
        )
        sds.append(checkpoint.load(p)[0])
    assert all(torch.equal(sds[0][k], sds[1][k]) for k in sds[0])


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], match: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err and match in err, err
    return err


def test_train_if_missing_skips_only_a_checkpoint_that_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    train = ["train", "resnet_tiny", "--epochs", "1", "--batch-size", "64", "--if-missing"]
    assert main(train) == 0 and main(train) == 0
    assert "checkpoint exists" in capsys.readouterr().out
    ckpt = default_checkpoint(tmp_path / "cache", "cluttered_fmnist", "resnet_tiny")
    # damaged (or cut by a kill): trained again, not skipped
    ckpt.write_bytes(ckpt.read_bytes() + b"x")
    assert main(train) == 0
    out = capsys.readouterr().out
    assert "does not match its sidecar" in out and "training it again" in out
    checkpoint.verify(ckpt)
    from bench.devices import distributed

    asked: list[bool] = []

    def another_rank_lacks_it(
        ok: bool,
    ) -> bool:  # the first question is --if-missing's; the later ones training's
        asked.append(ok)
        return ok and len(asked) > 1

    # another node's rank lacks the file: every rank trains, none waits in DDP
    with monkeypatch.context() as m:
        m.setattr(distributed, "all_ok", another_rank_lacks_it)
        assert main(train) == 0
    assert asked[0] is True
    assert "not on every rank's file system; training it again" in capsys.readouterr().out

    real = os.replace  # a kill between the sidecar and the weights leaves no checkpoint to skip

    def killed_before_the_weights(src: object, dst: object) -> None:
        if Path(dst) == ckpt:
            raise KeyboardInterrupt
        real(src, dst)

    ckpt.unlink()
    monkeypatch.setattr(checkpoint.os, "replace", killed_before_the_weights)
    assert main(train) == 130
    assert not ckpt.exists() and ckpt.with_suffix(".json").is_file()


def test_bad_inputs_fail_with_one_line_and_no_results(
    trained: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "run"
    run = ["run", "--n-images", "5", "--out", str(out), "--models"]
    _fails(run + ["mgnet_smal"], capsys, "did you mean mgnet_small")
    _fails(
        run + ["resnet_tiny@random", "resnet_tiny"],
        capsys,
        "model resnet_tiny appears twice in one run",
    )
    _fails(run + ["resnet_tiny", "--data", "cifar"], capsys, "unknown data set 'cifar'")
    _fails(
        run + ["resnet18@random"], capsys, "resnet18 has 100 classes but cluttered_fmnist has 10"
    )
    _fails(run + ["mgnet_small"], capsys, "no trained weights for mgnet_small")
    _fails(
        run + ["resnet18"],
        capsys,
        "resnet18 is made for imagenet100 (100 classes, 224 px), not cluttered_fmnist",
    )
    small = tmp_path / "small_net.py"
    small.write_text(
        "import torch.nn as nn\nfrom bench import register_model\n"
        "@register_model('small_net', num_classes=10, input_size=32)\n"
        "def small_net():\n    return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))\n"
    )
    _fails(
        ["train", str(small), "--epochs", "1"],
        capsys,
        "small_net takes 32-px images but cluttered_fmnist has 64x64",
    )
    odd = tmp_path / "odd_net.py"  # a name goes into Markdown tables, HTML and figure file names
    odd.write_text(small.read_text().replace("'small_net'", "'net|<b>x</b>'"))
    _fails(
        run + [str(odd)],
        capsys,
        "model name 'net|<b>x</b>': use letters, digits and _ . : / + - only",
    )
    (tmp_path / "file").write_text("")
    _fails(
        ["run", "--models", "resnet_tiny", "--out", str(tmp_path / "file" / "x")],
        capsys,
        "cannot write",
    )
    _fails(run + ["resnet_tiny", "--n-images", "0"], capsys, "--n-images must be positive")
    for seed in ("-1", str(2**32 + 5)):  # both would alias a seed in range (its low 32 bits)
        _fails(
            run + ["resnet_tiny", "--seed", seed],
            capsys,
            f"--seed must be in [0, 2**32), got {seed}",
        )
    _fails(
        run + ["resnet_tiny", "--suite", "attacks", "--eps", "0", "-1/255"],
        capsys,
        "--eps -1/255 is negative",
    )
    _fails(
        run + ["resnet_tiny", "--suite", "attacks", "--eps-l2", "-1e-3"],
        capsys,
        "--eps-l2 -1e-3 is negative",
    )
    _fails(
        run
        + [
            "resnet_tiny",
            "--suite",
            "attacks",
            "--attack-backend",
            "torchattacks",
            "--restarts",
            "2",
        ],
        capsys,
        "--restarts needs --attack-backend bench",
    )
    for extra, says in (
        (["--pgd-steps", "5"], "--pgd-steps: suite 'clean' has no PGD cells"),
        (["--restarts", "3"], "--restarts: suite 'clean' has no PGD cells"),
        (
            ["--attack-backend", "torchattacks"],
            "--attack-backend torchattacks: suite 'clean' has no",
        ),
        (["--extra-corruptions"], "--extra-corruptions: suite 'clean' has no corruption cells"),
    ):
        # an option that would do nothing
        _fails(run + ["resnet_tiny", "--suite", "clean"] + extra, capsys, says)
    _fails(run + ["resnet_tiny", "--data-root", str(tmp_path)], capsys, "takes no --data-root")
    ckpt = default_checkpoint(cache_dir(), "cluttered_fmnist", "resnet_tiny")
    _fails(run + [f"mgnet_tiny@{ckpt}"], capsys, "trained for resnet_tiny")
    sd, meta, _ = checkpoint.load(ckpt)
    sd["net.fc.weight"] = torch.zeros(5, 8)
    checkpoint.save(tmp_path / "bad.pt", "resnet_tiny", sd, meta)
    _fails(
        run + [f"resnet_tiny@{tmp_path / 'bad.pt'}"],
        capsys,
        "shape mismatches (e.g. net.fc.weight (5, 8) vs (10, 8))",
    )
    sd_only = tmp_path / "s.pt"
    checkpoint.save(sd_only, "resnet_tiny", checkpoint.load(ckpt)[0], meta)
    sd_only.with_suffix(".json").write_text("[1, 2]")
    _fails(run + [f"resnet_tiny@{sd_only}"], capsys, "unreadable sidecar")
    tampered = tmp_path / "t.pt"
    checkpoint.save(tampered, "resnet_tiny", checkpoint.load(ckpt)[0], meta)
    tampered.write_bytes(tampered.read_bytes() + b"x")
    _fails(run + [f"resnet_tiny@{tampered}"], capsys, "does not match its sidecar")
    side = json.loads(tampered.with_suffix(".json").read_text())
    sd_only.with_suffix(".json").write_text(json.dumps({**side, "sha256": 5}))
    _fails(
        run + [f"resnet_tiny@{sd_only}"],
        capsys,
        "unreadable sidecar (sha256 is 5, not a hex string)",
    )
    (tmp_path / "official.ckpt").write_bytes(b"weights without a sidecar")
    _fails(
        run + [f"resnet_tiny@{tmp_path / 'official.ckpt'}"],
        capsys,
        "official MGNet files load with @official:PATH",
    )
    toml = tmp_path / "run.toml"
    for text, says in (
        ('models = "resnet_tiny"', "`models` must be a list, got 'resnet_tiny'"),
        ('models = ["resnet_tiny"]\nn_images = 2.5', "`n_images` must be a whole number, got 2.5"),
        ('models = ["resnet_tiny"]\neps = [true]', "`eps` must be a number, got True"),
    ):
        toml.write_text(text)
        _fails(["run", "--config", str(toml), "--out", str(out)], capsys, says)
    monkeypatch.setenv("BENCH_FMNIST_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    _fails(run + ["resnet_tiny@random"], capsys, "Fashion-MNIST not found")
    assert not out.exists()


def test_user_model_file_joins_the_comparison(trained: None, tmp_path: Path) -> None:
    f = tmp_path / "my_net.py"
    f.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        from bench import register_model

        @register_model("my_net", num_classes=10, input_size=64, mean=(0.5, 0.5, 0.5),
                        std=(0.25, 0.25, 0.25))
        def my_net() -> nn.Module:
            return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(8, 10))
    """)
    )
    assert main(["train", f"{f}:my_net", "--epochs", "1", "--batch-size", "64"]) == 0
    out = tmp_path / "run"
    assert (
        main(["run", "--models", str(f), "resnet_tiny", "--n-images", "20", "--out", str(out)]) == 0
    )
    assert [r.model for r in read_rows(out / "results.csv")] == ["my_net", "resnet_tiny"]
    assert read_rows(out / "results.csv")[0].family == "user"


def test_a_model_file_in_a_folder_whose_name_has_an_at_sign(tmp_path: Path) -> None:
    from bench.load.specs import expand

    f = tmp_path / "proj@v2" / "at_net.py"
    f.parent.mkdir()
    f.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        from bench import register_model

        @register_model("at_net", num_classes=10, input_size=64)
        def at_net() -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10))
    """)
    )
    assert expand(str(f)) == ["at_net"] and expand(f"{f}@random") == ["at_net@random"]
    assert expand(f"{f}:at_net@random") == ["at_net@random"]


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    shown = capsys.readouterr().out
    assert "mgnet_small" in shown and "resnet50" in shown and "mgnet_tiny" not in shown
    assert main(["models", "*_tiny", "--all"]) == 0
    assert "mgnet_tiny" in capsys.readouterr().out
    _fails(
        ["models", "*_tiny"],
        capsys,
        "no registered model matches '*_tiny' (--all adds the tiny test models)",
    )
    _fails(["flops", "resnet_tiny", "nope"], capsys, "unknown model 'nope'")
    assert capsys.readouterr().out == "", "no table header before the error"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_states_the_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """The defaults quoted in `--help` are the ones the code uses."""
    from bench.core.config import RunConfig
    from bench.train import RECIPES

    run_help, train_help = _help("run", capsys), _help("train", capsys)
    cfg, recipe = RunConfig(models=("x",)), RECIPES["cluttered_fmnist"]
    for said in (
        f"(default {cfg.suite})",
        f"{cfg.dataset} (default)",
        f"(default {cfg.seed})",
        f"(default {cfg.batch_size})",
        f"(default {cfg.out})",
        f"{cfg.device} (default:",
    ):
        assert said in run_help, said
    for said in (
        f"cluttered_fmnist: {recipe.epochs})",
        f"cluttered_fmnist: {recipe.batch_size})",
        f"max lr ({recipe.lr})",
    ):
        assert said in train_help, said


def test_ci_runs_the_readme_commands() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make setup" in readme and "make test" in readme
    assert ci.strip().splitlines()[-2:] == ["make setup", "make test"]


def test_imagenet100_through_the_cli_with_loader_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_data import _fake_imagenet

    _fake_imagenet(tmp_path / "in")
    assert (
        main(["data", "build", "imagenet100", str(tmp_path / "in"), str(tmp_path / "in100")]) == 0
    )
    out = tmp_path / "run"
    assert (
        cli(
            "run --models resnet18@random mgbase_r18@random --data imagenet100 --data-root {} "
            "--n-images 6 --workers 2 --out {} --no-report",
            tmp_path / "in100",
            out,
        )
        == 0
    )
    rows = read_rows(out / "results.csv")
    assert [(r.model, r.dataset, r.n_images, r.input_size) for r in rows] == [
        ("resnet18", "imagenet100", 6, 224),
        ("mgbase_r18", "imagenet100", 6, 224),
    ]
    stored = (out / "results.csv").read_bytes()

    # the same files elsewhere: resumed, nothing run again
    (tmp_path / "in100").rename(tmp_path / "moved")
    again = [
        "run",
        "--models",
        "resnet18@random",
        "--data",
        "imagenet100",
        "--n-images",
        "6",
        "--workers",
        "0",
        "--out",
        str(out),
        "--no-report",
    ]
    assert main(again + ["--data-root", str(tmp_path / "moved")]) == 0
    assert (out / "results.csv").read_bytes() == stored
    # other images under the same name: refused, nothing written
    _fake_imagenet(tmp_path / "other", per_class=2)
    assert (
        main(["data", "build", "imagenet100", str(tmp_path / "other"), str(tmp_path / "other100")])
        == 0
    )
    capsys.readouterr()
    _fails(
        again + ["--data-root", str(tmp_path / "other100")],
        capsys,
        "holds rows measured on other imagenet100 data (100 images",
    )
    assert (out / "results.csv").read_bytes() == stored
    (
        out / "results.csv"
    ).unlink()  # no rows left: the other images are recorded, and no progress of the first kept
    (out / ".state").mkdir(exist_ok=True)
    (out / ".state" / "0123456789abcdef-exit1.json").write_text("{}")
    assert main(again + ["--data-root", str(tmp_path / "other100"), "--suite", "clean"]) == 0
    assert not any((out / ".state").iterdir())
    assert json.loads((out / "data.json").read_text())["imagenet100"]["images"] == 200


def test_module_factory_spec_and_python_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench

    (tmp_path / "zoo_mod.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        from bench import register_model

        @register_model("zoo_net", num_classes=10, input_size=64, mean=None, std=None)
        def zoo_net() -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = bench.load_model("zoo_mod:zoo_net@random")
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10) and not model.normalizes
    path = bench.run(
        bench.RunConfig(models=("zoo_mod:zoo_net@random",), n_images=8, out=str(tmp_path / "r"))
    )
    assert [r.model for r in read_rows(path)] == ["zoo_net"]
    assert bench.build_report(tmp_path / "r").name == "report.md"
    with pytest.raises(bench.BenchError, match="has no attribute 'nope'"):
        bench.load_model("zoo_mod:nope")


def test_attack_suite_end_to_end(
    trained: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Default suite, 4 images: each attack condition runs; rows, checks and report are written."""
    from bench.store.checks import read_checks

    out = tmp_path / "run"
    assert (
        cli("run --suite default --models mgnet_tiny resnet_tiny --n-images 4 --out {}", out) == 0
    )
    rows = read_rows(out / "results.csv")
    mg = [r for r in rows if r.model == "mgnet_tiny"]
    kinds = {(r.condition, r.norm, r.protocol) for r in mg if r.kind != "corruption"}
    corr = [r for r in mg if r.kind == "corruption"]
    assert len(corr) == 15 * 5 * 4 and {r.severity for r in corr} == {1, 2, 3, 4, 5}
    from bench.corruptions.base import PARITY

    assert all(
        r.source == ("torch" if r.condition in PARITY else "reference") and r.n_images == 4
        for r in corr
    )
    assert (out / "examples" / "corruptions.png").is_file()
    assert {
        ("clean", "", ""),
        ("fgsm", "linf", "strict"),
        ("pgd", "linf", "strict"),
        ("pgd", "l2", "strict"),
        ("paper_pgd", "linf", "paper"),
        ("transfer_pgd", "linf", "strict"),
        ("autoattack", "linf", "strict"),
        ("bpda_pgd", "linf", "strict"),
        ("eot_pgd", "linf", "strict"),
        ("look_pgd", "linf", "strict"),
        ("smooth_transfer", "linf", "strict"),
        ("exit_union_pgd", "linf", "strict"),
        ("slowdown_pgd", "linf", "strict"),
    } == kinds
    adaptive = [r for r in rows if r.condition in ADAPTIVE]
    assert {(r.model, r.exit) for r in adaptive} == {("mgnet_tiny", 4)}, "last exit, sampler only"
    assert "skip resnet_tiny bpda_pgd: it attacks through a glimpse sampler" in caplog.text
    assert "skip resnet_tiny slowdown_pgd: it attacks an early-exit policy" in caplog.text
    assert not any(r.condition == "transfer_pgd" for r in rows if r.model == "resnet_tiny"), (
        "no self-transfer"
    )
    aa = [r for r in mg if r.condition == "autoattack"]
    assert [r.exit for r in aa] == [4], "the default suite runs AutoAttack at the last exit only"
    pgd4 = [r for r in mg if r.condition == "pgd" and r.norm == "linf" and r.epsilon == 4 / 255]
    assert [r.exit for r in pgd4] == [1, 2, 3, 4] and all(
        r.params == '{"early_stop":true}' for r in pgd4
    )
    # the clean pass on 4 images, then on the k the exit classifies right: at least PGD's first pass
    # and the scoring pass, at most 10 steps each (fooled images stop) and the scoring pass
    right = {r.exit: r.n_correct for r in mg if r.condition == "clean"}
    assert all(
        r.n_backward <= 10 * right[r.exit]
        and 4 + 2 * right[r.exit] <= r.n_forward <= 4 + 11 * right[r.exit]
        for r in pgd4
    )
    assert all(
        r.n_correct <= right[r.exit] for r in mg if r.kind == "attack" and r.protocol == "strict"
    )
    # 10 steps and the scoring pass on 4 images, every row
    paper = [r for r in mg if r.condition == "paper_pgd"]
    assert [(r.exit, r.n_forward, r.n_backward) for r in paper] == [
        (t, 44, 40) for t in (1, 2, 3, 4)
    ]
    for r in rows:
        if r.kind == "attack" and r.epsilon > 0:
            assert r.n_correct <= 4 and r.n_forward > 0
    clean = {r.exit: r.n_correct for r in mg if r.condition == "clean"}
    zero = {r.exit: r.n_correct for r in mg if r.condition == "pgd" and r.epsilon == 0}
    assert zero == clean, "PGD at ε = 0 scores exactly the clean images (same 4-image subset)"
    from bench.store import per_image

    images = per_image.read(out / "per_image.csv")
    assert all(int(images[per_image.row_key(r)][1].sum()) == r.n_correct for r in rows)
    checks = read_checks(out / "checks.csv")
    assert {c.check for c in checks} >= {
        "deterministic",
        "zero_gradient_fraction",
        "rescaler_effect",
        "attack_zero_gradient",
    }
    report = (out / "report.md").read_text()
    assert (
        "Paper protocol vs strict protocol" in report and "accuracy_vs_eps_pgd_linf.png" in report
    )
    assert "best-known L∞ 4/255 (%)" in report and "`mgnet_tiny` exit 4: 10 attacks" in report
    assert "under slow-down PGD 4/255" in report
    assert "generated on the fly" in report and "(partial)" not in report, (
        "torch and reference rows form one sweep"
    )
    base_row = next(
        line
        for line in report.splitlines()
        if line.startswith("| resnet_tiny | 1/1 |") and "| 100.0 |" in line
    )
    assert base_row, "the baseline's own mCE is 100"
    before = (out / "results.csv").read_bytes()
    assert (
        cli(
            "run --suite default --models mgnet_tiny resnet_tiny --n-images 4 --out {} --no-report",
            out,
        )
        == 0
    )
    assert (out / "results.csv").read_bytes() == before
    assert not any((out / ".state").glob("*")), (
        "AutoAttack state files are removed once rows are written"
    )
    # left by an interrupted run of other settings
    other = out / ".state" / "0123456789abcdef-exit1.json"
    other.write_text("{}")
    from tests.test_distributed import _plant_stale_states

    # left by kills after the rows were written
    stored = _plant_stale_states(out / "results.csv", out)
    caplog.clear()
    assert (
        cli(
            "run --suite default --models mgnet_tiny resnet_tiny --n-images 4 --out {} --no-report",
            out,
        )
        == 0
    )
    assert (
        other.exists()
        and "holds the progress of 1 interrupted cell(s) this run does not have" in caplog.text
    )
    assert stored and not any(f.exists() for f in stored)


def test_attack_options_backend_radii_steps(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            "run --suite smoke --models resnet_tiny --attack-backend torchattacks --eps 0 8/255 "
            "8/255 --pgd-steps 3 --out {} --no-report",
            out,
        )
        == 0
    )
    # a radius given twice runs once
    att = [r for r in read_rows(out / "results.csv") if r.kind == "attack"]
    assert sorted((r.condition, r.source, r.epsilon, r.steps) for r in att) == [
        ("fgsm", "torchattacks", 0.0, 1),
        ("fgsm", "torchattacks", 8 / 255, 1),
        ("pgd", "torchattacks", 0.0, 3),
        ("pgd", "torchattacks", 8 / 255, 3),
    ]
    bad = ["run", "--suite", "smoke", "--models", "resnet_tiny", "--out", str(tmp_path / "bad")]
    _fails(bad + ["--eps", "2"], capsys, "outside [0, 1]")
    _fails(bad + ["--eps", "four"], capsys, "cannot read epsilon 'four'")
    _fails(bad + ["--eps-l2", "-1"], capsys, "--eps-l2 -1.0 must be a finite radius")
    _fails(bad + ["--eps-l2", "nan"], capsys, "--eps-l2 nan must be a finite radius")
    _fails(bad + ["--eps", "nan"], capsys, "outside [0, 1]")
    _fails(
        bad + ["--suite", "clean", "--eps", "4/255"],
        capsys,
        "suite 'clean' has no L∞ FGSM or PGD sweep",
    )
    _fails(
        bad + ["--suite", "clean", "--corruptions", "fog"],
        capsys,
        "suite 'clean' has no such corruption cells",
    )
    _fails(bad + ["--device", "cdua"], capsys, "cdua")
    _fails(
        bad + ["--suite", "corruptions_rendered"],
        capsys,
        "rendered corruptions need --corruption-root",
    )
    _fails(bad + ["--pgd-steps", "0"], capsys, "--pgd-steps and --restarts must be positive")
    _fails(bad + ["--suite", "atacks"], capsys, "unknown suite 'atacks'")
    assert not (tmp_path / "bad").exists()


def test_autoattack_switches_to_rand_for_randomized_models() -> None:
    from bench.core.conditions import autoattack
    from bench.evaluation.plan import resolve

    cond = autoattack()
    assert resolve(cond, None, [], randomized=False) is cond  # type: ignore[arg-type]
    rand = resolve(cond, None, [], randomized=True)  # type: ignore[arg-type]
    assert rand is not None and rand.params["version"] == "rand"


def test_the_paper_protocol_skips_a_model_without_a_normalized_input_space(tmp_path: Path) -> None:
    """The official ε = 4/255 is in normalized units; in pixel space it would be ~4.4x larger."""
    import dataclasses

    from bench.core.conditions import PAPER_PGD
    from bench.evaluation.plan import resolve
    from bench.load.specs import load

    lm = load("resnet_tiny@random", "cluttered_fmnist", tmp_path)
    assert resolve(PAPER_PGD, lm, [lm]) is PAPER_PGD
    lm.model.normalizes = False  # as a user model registered without mean and std
    assert resolve(PAPER_PGD, lm, [lm]) is None
    assert resolve(dataclasses.replace(PAPER_PGD, protocol="strict"), lm, [lm]) is not None


def test_corruption_selection_and_backends(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            "run --suite corruptions --models resnet_tiny --corruptions pixelate contrast "
            "--extra-corruptions --n-images 3 --out {} --no-report",
            out,
        )
        == 0
    )
    rows = [r for r in read_rows(out / "results.csv") if r.kind == "corruption"]
    assert sorted({(r.condition, r.source) for r in rows}) == [
        ("contrast", "torch"),
        ("pixelate", "reference"),
    ]
    assert (
        cli(
            "run --suite corruptions --models resnet_tiny --corruptions contrast "
            "--corruption-backend reference --n-images 3 --out {} --no-report",
            out,
        )
        == 0
    )
    ref = [
        r
        for r in read_rows(out / "results.csv")
        if r.condition == "contrast" and r.source == "reference"
    ]
    assert len(ref) == 5
    _fails(
        [
            "run",
            "--suite",
            "corruptions",
            "--models",
            "resnet_tiny",
            "--corruptions",
            "fgo",
            "--out",
            str(tmp_path / "bad"),
        ],
        capsys,
        "unknown corruption 'fgo'; did you mean fog",
    )
    assert not (tmp_path / "bad").exists()
    _fails(
        ["report", str(out), "--baseline", "resnet_tiyn"],
        capsys,
        "unknown baseline model 'resnet_tiyn'; did you mean",
    )
    mask = os.umask(0)
    os.umask(mask)
    for f in ("results.csv", "per_image.csv"):  # readable by others, as the report beside them
        assert (out / f).stat().st_mode & 0o777 == 0o666 & ~mask, f


def test_config_file_values_take_their_fields_types(tmp_path: Path) -> None:
    """TOML writes 0 for 0.0 (row keys must not depend on it); radii may use the CLI's syntax."""
    from bench.core.config import RunConfig, load_toml

    toml = tmp_path / "run.toml"
    toml.write_text(
        'models = ["resnet_tiny"]\neps = [0, "4/255", 0.5, -0.0, "-0"]\nspeed_budget = '
        "0\nn_images = 5\n"
    )
    cfg = RunConfig(**load_toml(toml))
    assert cfg.eps == (0.0, 4 / 255, 0.5, 0.0, 0.0) and all(type(e) is float for e in cfg.eps)
    assert [math.copysign(1, e) for e in cfg.eps] == [1] * 5, "-0 is 0: one row key, one label"
    assert type(cfg.speed_budget) is float and cfg.n_images == 5 and cfg.out == str(tmp_path)
