"""PGD-10 throughput and robust accuracy: this suite's PGD against torchattacks, same model, images,
seed.

Usage: python benchmarks/pgd_vs_torchattacks.py [--model resnet_small] [--n 256] [--repeats 3] Needs
the trained default checkpoint (`make bench`), or a spec with weights (NAME@random works but its
robust accuracy says nothing). Prints images/s (median of runs that alternate their order) and
robust accuracy of both, and their ratio. Random starts differ (per-image seeds vs torchattacks'
global RNG), so robust accuracies agree statistically, not image by image. Ours stops each image at
its first fooling iterate (counted as broken), so its robust accuracy can only be lower; a control
line times it on the same model layout returning the last iterate, as torchattacks does.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.attacks import PGD, TorchattacksAttack, attack_mode
from bench.core.seeds import image_seeds
from bench.data import cache_dir, load_split, subset_indices, to_unit
from bench.devices.device import device_name, resolve_device
from bench.fast import precision
from bench.fast.runtime_copy import runtime_copy
from bench.load.specs import expand, load
from bench.models.base import true_gradient


def _interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Median wall time of each function, alternating their order every round (noise is shared).

    On CUDA each timing waits for the device, since a peer may return before its kernels finish.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times: dict = {k: [] for k in fns}
    outs: dict = {}
    for r in range(repeats):
        for k in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            sync()
            t0 = time.perf_counter()
            outs[k] = fns[k]()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, outs


def as_run(model: torch.nn.Module, input_size: int) -> torch.nn.Module:
    """The runner's copy of `model` (batch norm folded, channels_last); peers get it as loaded."""
    return runtime_copy(model, input_size)


def compare(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    seeds: torch.Tensor,
    eps: float,
    batch_size: int,
    repeats: int,
    harness: bool = True,
) -> tuple[dict, dict]:
    """({"ours", "peer"}: median seconds, {"ours", "peer"}: robust accuracy) of PGD-10 L∞, step ε/4.

    Ours runs as the harness runs it (channels_last, batch norm folded, attack mode, true gradient,
    early stop); with `harness=False`, on the very model torchattacks gets and returning the last
    iterate, a control. torchattacks runs as a user calls it.
    """
    mine = as_run(model, x.shape[-1]) if harness else model
    ours, peer = (
        PGD(eps, eps / 4, 10, early_stop=harness),
        TorchattacksAttack("pgd", eps, "linf", eps / 4, 10),
    )

    def run(atk, net) -> torch.Tensor:  # type: ignore[no-untyped-def]
        outs = []
        with true_gradient(net):
            for s in range(0, len(x), batch_size):
                sl = slice(s, s + batch_size)
                if isinstance(atk, PGD):
                    with attack_mode(net):
                        outs.append(atk(net, x[sl], y[sl], seeds=seeds[sl]))
                else:
                    outs.append(atk(net, x[sl], y[sl], seeds=seeds[sl]))
        return torch.cat(outs)

    run(ours, mine)  # warm-up
    run(peer, model)
    t, adv = _interleaved(
        {"ours": lambda: run(ours, mine), "peer": lambda: run(peer, model)}, repeats
    )
    with torch.no_grad():
        return t, {k: (model(v).argmax(1) == y).float().mean().item() for k, v in adv.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet_small")
    p.add_argument("--data", default="cluttered_fmnist")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eps", type=float, default=4 / 255)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    dev = resolve_device(a.device)
    precision.strict_fp32()  # as the runner: no TF32 on a GPU, for ours and the peers alike
    lm = load(expand(a.model)[0], a.data, cache_dir())
    model = lm.model.to(dev).eval()
    images = load_split(a.data, "test")
    idx, _ = subset_indices(len(images), a.n)
    x = to_unit(images.images[idx], dev)  # type: ignore[attr-defined]
    y = torch.from_numpy(images.labels[idx]).to(dev)  # type: ignore[attr-defined]
    seeds = torch.from_numpy(image_seeds(0, idx, "bench"))
    t, acc = compare(model, x, y, seeds, a.eps, a.batch_size, a.repeats)
    t_ours, t_peer, acc_ours, acc_peer = t["ours"], t["peer"], acc["ours"], acc["peer"]
    tc, ac = compare(model, x, y, seeds, a.eps, a.batch_size, a.repeats, harness=False)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    n = len(x)
    print(
        f"model {lm.card.name} ({lm.weights}) on {device_name(dev)}, {n} images of {a.data}, "
        f"PGD-10 L∞ ε={a.eps * 255:.3g}/255, step ε/4, median of {a.repeats} interleaved runs; "
        f"clean accuracy {100 * clean:.1f} %"
    )
    print(f"{'':14s} {'images/s':>10s} {'robust acc':>11s}")
    print(f"{'bench PGD':14s} {n / t_ours:10.1f} {100 * acc_ours:10.1f} %")
    print(f"{'torchattacks':14s} {n / t_peer:10.1f} {100 * acc_peer:10.1f} %")
    print(
        f"throughput ratio (bench / torchattacks): {t_peer / t_ours:.2f}x; "
        f"robust accuracy difference: {100 * (acc_ours - acc_peer):+.1f} points"
    )
    print(
        f"control, same model layout and last iterate: {tc['peer'] / tc['ours']:.2f}x; "
        f"robust accuracy {100 * ac['ours']:.1f} % vs {100 * ac['peer']:.1f} %"
    )
    assert np.isfinite(t_ours)


if __name__ == "__main__":
    main()
