"""What each adaptive attack costs against PGD-10: passes and wall time per image, same model, exit,
images and seeds, attacked as the harness attacks one exit (docs/performance.md).

Usage: python benchmarks/adaptive_cost.py [--model mgnet_small] [--exit E] [--n 200] [--repeats 3]
[--threads 2]

Each attack runs on the images the exit classifies right on clean, through the harness's runtime
copy of the model (batch norm folded where that keeps its logits), in attack mode with the true
gradient. Passes are the attack's own (PassCounter), not the harness's clean and scoring passes.
Wall time is the median of `--repeats` runs that alternate their order; robust images are those
the exit still classifies right on the attack's output.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import attacks  # noqa: E402
from bench.core.conditions import ADAPTIVE, HEADLINE_EPS, Condition, adaptive, pgd  # noqa: E402
from bench.core.seeds import image_seeds  # noqa: E402
from bench.data import cache_dir, load_split, subset_indices, to_unit  # noqa: E402
from bench.fast.runtime_copy import runtime_copy  # noqa: E402
from bench.load.specs import check_test_split, expand, load  # noqa: E402
from bench.models.base import true_gradient  # noqa: E402

EOT = 2  # EOT samples per step: the suite's cheaper setting, so the table shows the smallest cost
BASE = "PGD-10"


@dataclass
class Run:
    """One attack's measurements on the attacked images: the numbers one table row needs."""

    cond: Condition
    seconds: list[float]
    n_forward: int = 0
    n_backward: int = 0
    robust: int = 0


def conditions(eps: float) -> dict[str, Condition]:
    """PGD-10 first (the reference), then every adaptive attack at the same ε and step count."""
    adaptive_conds = {a: adaptive(a, eps, steps=10, eot=EOT) for a in ADAPTIVE}
    return {BASE: pgd(eps), **adaptive_conds}


def setup(spec: str, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, np.ndarray]:
    """The harness's runtime copy of the shipped model and the harness's first `n` test images."""
    lm = load(expand(spec)[0], "cluttered_fmnist", cache_dir())
    test = load_split("cluttered_fmnist", "test")
    check_test_split([lm], test, "cluttered_fmnist")
    idx, _ = subset_indices(len(test), n)
    x = to_unit(test.images[idx], torch.device("cpu"))
    y = torch.from_numpy(test.labels[idx])
    return runtime_copy(lm.model, lm.card.input_size), x, y, idx


def right_on_clean(view: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Indices of the images the exit gets right: the harness attacks only those."""
    with torch.inference_mode():
        return (view(x).argmax(1) == y).nonzero().squeeze(1)


def attack_once(
    model: Any, t: int, atk: Any, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor
) -> tuple[float, int, int, int]:
    """(seconds, forward passes, backward passes, robust images) of one attack on exit t."""
    view = model.at_exit(t)
    counter = attacks.PassCounter(attacks.LogitsGuard(view))
    with true_gradient(model), attacks.attack_mode(model):
        t0 = time.perf_counter()
        x_adv = atk(counter, x, y, seeds=seeds)
        seconds = time.perf_counter() - t0
        with torch.inference_mode():
            robust = int((view(x_adv).argmax(1) == y).sum())
    return seconds, counter.n_forward, counter.n_backward, robust


def measure(
    model: Any, t: int, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor, repeats: int
) -> dict[str, Run]:
    """Every attack `repeats` times, alternating the order each round so noise is shared."""
    conds = conditions(HEADLINE_EPS)
    atks = {k: attacks.build(c) for k, c in conds.items()}
    for atk in atks.values():  # warm-up, untimed: each attack's first-call allocations and set-up
        attack_once(model, t, atk, x[:8], y[:8], seeds[:8])
    runs = {k: Run(c, []) for k, c in conds.items()}
    for r in range(repeats):
        for k in list(atks) if r % 2 == 0 else list(atks)[::-1]:
            s, fwd, bwd, robust = attack_once(model, t, atks[k], x, y, seeds)
            run = runs[k]
            if run.seconds and (fwd, bwd, robust) != (run.n_forward, run.n_backward, run.robust):
                raise RuntimeError(f"{k} is not deterministic across repeats: seeds are per image")
            run.seconds.append(s)
            run.n_forward, run.n_backward, run.robust = fwd, bwd, robust
    return runs


def table(runs: dict[str, Run], n: int) -> list[str]:
    """The markdown table: per attacked image, passes and wall time, and both against PGD-10."""
    base = runs[BASE]
    base_s, base_p = float(np.median(base.seconds)), base.n_forward + base.n_backward
    lines = [
        "| attack | steps | forward / image | backward / image | wall ms / image "
        "| wall ÷ PGD-10 | passes ÷ PGD-10 | robust |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, run in runs.items():
        s, p = float(np.median(run.seconds)), run.n_forward + run.n_backward
        name = f"{k} (EOT {EOT})" if k == "eot_pgd" else k
        lines.append(
            f"| {name} | {run.cond.steps} | {run.n_forward / n:.1f} | {run.n_backward / n:.1f} "
            f"| {1000 * s / n:.1f} | {s / base_s:.2f} | {p / base_p:.2f} | {run.robust}/{n} |"
        )
    return lines


def machine() -> str:
    """The line that says where the numbers were measured, for docs/performance.md."""
    cpu = platform.processor() or platform.machine()
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {datetime.date.today().isoformat()}"
    )


def main() -> None:
    """Load, attack with each condition, print the machine line and the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mgnet_small")
    p.add_argument("--exit", type=int, default=None, help="1-based; default the model's last")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, x, y, idx = setup(a.model, a.n)
    t = model.n_exits if a.exit is None else a.exit
    todo = right_on_clean(model.at_exit(t), x, y)
    seeds = torch.from_numpy(image_seeds(0, idx[todo.numpy()], "adaptive_cost", t))
    runs = measure(model, t, x[todo], y[todo], seeds, a.repeats)
    print(machine())
    print(
        f"model {a.model}, exit {t}/{model.n_exits}, L∞ ε={HEADLINE_EPS * 255:.3g}/255, "
        f"{len(todo)} of {len(x)} test images attacked (right on clean), "
        f"wall time the median of {a.repeats} interleaved runs"
    )
    print()
    print("\n".join(table(runs, len(todo))))


if __name__ == "__main__":
    main()
