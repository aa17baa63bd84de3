"""GPU-path decisions, run on the CPU: AMP only after its parity check, strict-fp32 attacks, MFU."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import models  # noqa: F401  (registers the models)
from bench.cli import main
from bench.core.registry import MODELS
from bench.cost.mfu import mfu, peak_tflops
from bench.devices.device import device_name
from bench.fast import precision
from bench.fast.layout import onednn_nhwc_weight_grad_ok, training_layout
from bench.models.resnet import SmallResNet
from bench.store.checks import read_checks
from bench.store.results import read_rows
from tests.conftest import cli


def test_mfu_from_throughput_and_from_passes() -> None:
    # 0.5 GMACs = 1 GFLOP per image; 1 image/s on a 1-TFLOP/s device = 0.1 %
    assert mfu(0.5, 1.0, throughput=1.0) == pytest.approx(1e-3)
    # 100 forward + 50 backward (twice the forward cost) = 200 GFLOP in 2 s on 0.5 TFLOP/s = 20 %
    assert mfu(0.5, 0.5, n_forward=100, n_backward=50, seconds=2.0) == pytest.approx(0.2)
    assert math.isnan(mfu(0.5, math.nan, throughput=1000.0))
    assert math.isnan(mfu(0.5, 1.0, seconds=0.0))


def test_peak_lookup_by_device_name_and_precision() -> None:
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == 66.9
    assert peak_tflops("NVIDIA H200", "fp32") == 66.9
    assert peak_tflops("NVIDIA H100 NVL", "fp32") == 60.0
    assert math.isnan(peak_tflops("NVIDIA H200 NVL", "bf16")), "no SXM figures for an NVL board"
    assert [peak_tflops(f"NVIDIA {g}", "bf16") for g in ("L4", "L40", "L40S")] == [
        121.0,
        181.0,
        362.1,
    ]
    assert math.isnan(peak_tflops("cpu (2 threads)", "fp32"))
    assert peak_tflops("cpu (2 threads)", "fp32", override=1.5) == 1.5


def test_amp_tolerance_is_a_tenth_of_a_point() -> None:
    assert precision.amp_matches([0.5, 0.9], [0.501, 0.9]) == (True, pytest.approx(0.1))
    assert precision.amp_matches([0.5, 0.9], [0.5, 0.898])[0] is False


def test_row_mfu_where_one_pass_serves_every_exit_is_the_cells() -> None:
    """4-exit model scored in one pass: no row's share of the time is paired with all passes."""
    import numpy as np

    from bench.core.conditions import CLEAN, pgd, transfer
    from bench.cost.flops import FlopCount
    from bench.evaluation.correct import Correct
    from bench.evaluation.write import row_mfu

    cost = [FlopCount(gmacs=g, params_m=1.0) for g in (1.0, 2.0, 3.0, 4.0)]
    n = np.full(4, 1000)
    shared = Correct(np.arange(1000), np.ones((4, 1000), bool), 10.0, n, np.zeros(4, np.int64))
    cell = 2e9 * 4.0 * 1000 / 10.0 / 1e12  # the deepest exit's cost over the cell's time: 0.0008
    for t in range(1, 5):
        assert row_mfu(
            CLEAN, shared, cost[t - 1], cost[3], 1.0, 1, math.nan, 1000, 0, 2.5
        ) == pytest.approx(cell)
    assert row_mfu(
        CLEAN, shared, cost[3], cost[3], 1.0, 2, math.nan, 1000, 0, 2.5
    ) == pytest.approx(cell / 2)
    assert math.isnan(
        row_mfu(transfer("src"), shared, cost[3], cost[3], 1.0, 1, math.nan, 1000, 0, 2.5)
    )
    timed = Correct(
        np.arange(1000),
        np.ones((4, 1000), bool),
        10.0,
        n,
        n,
        exit_seconds=np.array([1.0, 2.0, 3.0, 4.0]),
    )
    assert row_mfu(
        pgd(4 / 255), timed, cost[1], cost[3], 1.0, 1, math.nan, 1000, 1000, 2.0
    ) == pytest.approx(2e9 * 2.0 * 3000 / 2.0 / 1e12)  # its own exit, passes and time
    assert row_mfu(CLEAN, shared, cost[1], cost[3], 1.0, 1, 500.0, 0, 0, 0.0) == pytest.approx(
        2e9 * 2.0 * 500 / 1e12
    )


def test_attacks_run_with_tf32_off() -> None:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    precision.strict_fp32()
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_bf16_cells_only_after_the_parity_check(
    trained: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = [
        "run",
        "--suite",
        "smoke",
        "--models",
        "resnet_tiny",
        "--precision",
        "bf16",
        "--pgd-steps",
        "2",
        "--eps",
        "4/255",
        "--speed-budget",
        "0.05",
        "--peak-tflops",
        "0.1",
        "--peak-tflops-bf16",
        "0.2",
        "--no-report",
    ]
    out = tmp_path / "pass"
    monkeypatch.setattr(precision, "AMP_TOLERANCE", 1.0)  # any model passes
    assert main(run + ["--out", str(out)]) == 0
    [check] = [c for c in read_checks(out / "checks.csv") if c.check == "amp_parity"]
    assert check.status == "ok" and "run in bf16" in check.detail
    rows = read_rows(out / "results.csv")
    assert {r.precision for r in rows if r.kind != "attack"} == {"bf16"}
    assert {r.precision for r in rows if r.kind == "attack"} == {"fp32"}, (
        "attacks never run in reduced precision"
    )
    assert all(r.mfu > 0 for r in rows), "MFU from the given peaks on every row"
    clean = next(r for r in rows if r.kind == "clean")
    assert clean.mfu == pytest.approx(2e9 * clean.gmacs * clean.throughput / 0.2e12), (
        "bf16 rows: the bf16 peak"
    )
    fgsm = next(r for r in rows if r.condition == "fgsm")
    assert fgsm.mfu == pytest.approx(
        2e9 * fgsm.gmacs * (fgsm.n_forward + 2 * fgsm.n_backward) / fgsm.seconds / 0.1e12
    )

    # no model can pass: every cell stays fp32
    monkeypatch.setattr(precision, "AMP_TOLERANCE", -1.0)
    out = tmp_path / "fail"
    assert main(run + ["--out", str(out)]) == 0
    [check] = [c for c in read_checks(out / "checks.csv") if c.check == "amp_parity"]
    assert check.status == "warn" and "run in fp32" in check.detail
    assert {r.precision for r in read_rows(out / "results.csv")} == {"fp32"}
    assert main(run + ["--out", str(out)]) == 0, "a resumed run reuses the stored check"
    assert len([c for c in read_checks(out / "checks.csv") if c.check == "amp_parity"]) == 1
    assert main(run + ["--out", str(out), "--n-images", "4"]) == 0, (
        "other images: checked again, not reused"
    )
    assert [
        c.detail.split(",")[0] for c in read_checks(out / "checks.csv") if c.check == "amp_parity"
    ][1:] == [f"bf16 autocast vs fp32 on 4 clean images on {device_name(torch.device('cpu'))}"]


def test_cpu_runs_stay_fp32_by_default(trained: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            "run --suite clean --models resnet_tiny --n-images 8 --speed-budget 0 --out {} "
            "--no-report",
            out,
        )
        == 0
    )
    [r] = read_rows(out / "results.csv")
    assert r.precision == "fp32" and math.isnan(r.mfu), "no peak known for a CPU"
    assert not (out / "checks.csv").exists() or not any(
        c.check == "amp_parity" for c in read_checks(out / "checks.csv")
    )


def test_training_layout_keeps_onednns_strided_1x1_weight_gradient_off_nhwc() -> None:
    cpu = torch.device("cpu")
    # layer2's shortcut: 1x1, stride 2, 4 input channels
    narrow = SmallResNet((4, 8, 8, 8), (1, 1, 1, 1), 10)
    assert not onednn_nhwc_weight_grad_ok(narrow) and not training_layout(narrow, cpu)
    assert all(p.is_contiguous() for p in narrow.parameters())
    wide = SmallResNet((16, 32, 64, 128), (1, 1, 1, 1), 10)
    assert training_layout(wide, cpu)
    assert wide.layer2[0].downsample[0].weight.is_contiguous(memory_format=torch.channels_last)
    cuda = torch.device("cuda")  # a policy decision: no GPU needed
    assert training_layout(SmallResNet((4, 8, 8, 8), (1, 1, 1, 1), 10), cuda), (
        "cuDNN has no such bug"
    )


# not mgnet_small: at initialisation its later glimpses move with float rounding (an input scaled by
# 1 + 1e-6 changes its exit-4 logits as much as the layout does); mgbase_small runs the same code
# once
@pytest.mark.parametrize("name", ["resnet_small", "mgbase_small"])
def test_channels_last_training_step_has_the_nchw_gradients(name: str) -> None:
    torch.manual_seed(0)
    nchw = MODELS.get(name).build().train()
    nhwc = copy.deepcopy(nchw)
    assert training_layout(nhwc, torch.device("cpu"))
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    # mgbase's localization network is frozen
    trained = [k for k, p in nchw.named_parameters() if p.requires_grad]
    want, got = (
        torch.autograd.grad(
            m.train_loss(x, y),
            [p for k, p in m.named_parameters() if k in trained],
            allow_unused=True,
        )
        for m in (nchw, nhwc)
    )
    for k, a, b in zip(trained, want, got):
        assert (a is None) == (b is None), k
        assert a is None or torch.allclose(a, b, rtol=1e-3, atol=1e-5 * float(a.abs().max())), k


def test_the_tf32_benchmark_runs_both_passes_and_restores_strict_fp32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """benchmarks/tf32_effect.py on the CPU: both passes run (same kernels there, same outcomes),
    and the harness's strict fp32 is back afterwards."""

    from bench.core.conditions import CLEAN, pgd
    from bench.data import ArrayImageSet
    from bench.load.specs import load

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import tf32_effect

    rng = np.random.default_rng(0)
    images = ArrayImageSet(
        "toy",
        "test",
        tuple("abcdefghij"),
        rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8),
        np.arange(6) % 10,
    )
    net = load("mgnet_tiny@random", "cluttered_fmnist", None).model.eval()
    assert not tf32_effect.tf32_exists(torch.device("cpu"))
    torch.backends.cudnn.allow_tf32 = True
    res = tf32_effect.both(
        net, images, np.arange(6), pgd(8 / 255), torch.device("cpu"), 4, tf32_first=True
    )
    assert set(res) == {False, True} and res[False][0].shape == (4, 6)
    assert np.array_equal(res[False][0], res[True][0])
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert tf32_effect.both(net, images, np.arange(6), CLEAN, torch.device("cpu"), 4, False)[False][
        0
    ].any()
