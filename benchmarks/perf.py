"""`make perf`: this suite against its peers, same model, images and seed, in one run; writes
results/perf/perf.csv.

Ratios are peer time / our time (> 1: we are faster). Ours runs as the runner runs it (the model
channels_last with batch norm folded, PGD with early stopping); the peers get the model as loaded.
Rows with a target compare the same work; rows without one are controls that say where the speed
comes from. Measured: PGD-10 vs torchattacks doing the same work (10 steps on every image, last
iterate, the loaded model), then as the harness runs it; AutoAttack standard (our resumable cascade)
vs pyautoattack's run_standard_evaluation, on the model as loaded and on the harness's copy;
generating the 15 x 5 corruptions as a run does (batched where parity is tested, checked bit for bit
in the run; the reference for the rest) vs imagecorruptions-imaug in one process, and in one process
per core; clean-accuracy throughput vs RobustBench's clean_accuracy on the loaded model, and on the
harness's folded copy; and, unless --skip-e2e, the first `make bench` from nothing (fresh cache,
temporary output folder). Usage: python benchmarks/perf.py [--model resnet_small] [--device auto]
[--skip-e2e] [--only 'make bench' ...]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgd_vs_torchattacks import _interleaved, as_run, compare  # noqa: E402

from bench.attacks import AutoAttack, attack_mode  # noqa: E402
from bench.core.seeds import image_seeds  # noqa: E402
from bench.data import cache_dir, load_split, subset_indices, to_unit  # noqa: E402
from bench.devices.device import device_name, resolve_device  # noqa: E402
from bench.evaluation.scoring import small_batch_kernels  # noqa: E402
from bench.fast import precision  # noqa: E402
from bench.load.specs import expand, load  # noqa: E402
from bench.models.base import true_gradient  # noqa: E402
from bench.store.provenance import code_version  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
COLUMNS = (
    "date",
    "machine",
    "device",
    "measure",
    "model",
    "images",
    "ours",
    "peer",
    "unit",
    "ratio",
    "target",
    "meets",
    "notes",
    "code",
    "torch",
    "peer_version",
    "weights",
)
# The peer each step is measured against (its distribution, for the peer_version column); 'make
# bench' has none.
PEERS = {
    "PGD": "torchattacks",
    "AutoAttack": "pyautoattack",
    "corruptions": "imagecorruptions-imaug",
    "clean": "robustbench",
}


def machine() -> str:
    """Architecture, cores and CPU model (timings from different CPUs are not comparable)."""
    cpu = ""
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    return f"{platform.machine()} {os.cpu_count()} cores" + (f" {cpu}" if cpu else "")


def row(
    measure: str,
    model: str,
    n: int,
    ours_s: float,
    peer_s: float,
    target: float | None,
    notes: str,
    dev: torch.device,
) -> dict:
    """One perf.csv row of two wall times; ratio = peer / ours, judged by `target` unless None."""
    return {
        "date": date.today().isoformat(),
        "machine": machine(),
        "device": device_name(dev),
        "measure": measure,
        "model": model,
        "images": n,
        "ours": f"{ours_s:.3f}",
        "peer": f"{peer_s:.3f}",
        "unit": "s",
        "ratio": f"{peer_s / ours_s:.2f}",
        "target": "" if target is None else f"{target:g}",
        "meets": "" if target is None else str(peer_s / ours_s >= target).lower(),
        "notes": notes,
        "code": code_version(),
        "torch": torch.__version__,
    }


def peer_version(step: str) -> str:
    """The measured peer's distribution and version, e.g. 'torchattacks 3.5.1'."""
    if step not in PEERS:
        return ""
    try:
        return f"{PEERS[step]} {metadata.version(PEERS[step])}"
    except metadata.PackageNotFoundError:
        return f"{PEERS[step]} (version unknown)"


def pgd(
    model: torch.nn.Module,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    idx: np.ndarray,
    dev: torch.device,
    repeats: int,
) -> list[dict]:
    """PGD-10 L∞ 4/255, step ε/4, batch 128 vs torchattacks 3.5.1: the same work (every image 10
    steps, last iterate, both on the model as loaded), then ours as the harness runs it (early stop,
    folded, channels_last)."""
    seeds = torch.from_numpy(image_seeds(0, idx, "perf"))
    tc, ac = compare(model, x, y, seeds, 4 / 255, 128, repeats, harness=False)
    t, acc = compare(model, x, y, seeds, 4 / 255, 128, repeats)
    return [
        row(
            "PGD-10 vs torchattacks, same work",
            name,
            len(x),
            tc["ours"],
            tc["peer"],
            1.0,
            f"robust accuracy {100 * ac['ours']:.1f} % vs {100 * ac['peer']:.1f} % (random starts "
            "differ); both run 10 steps on every image and return the last iterate, on the model "
            f"as loaded; median of {repeats} interleaved runs",
            dev,
        ),
        row(
            "PGD-10 vs torchattacks, as the harness runs it",
            name,
            len(x),
            t["ours"],
            t["peer"],
            None,
            f"robust accuracy {100 * acc['ours']:.1f} % vs {100 * acc['peer']:.1f} %; ours stops "
            "each image at its first fooling iterate (images misclassified clean cost no steps) "
            "and runs channels_last, batch norm folded: less work for an equal or lower robust "
            f"accuracy; median of {repeats} interleaved runs",
            dev,
        ),
    ]


def autoattack(
    model: torch.nn.Module,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    dev: torch.device,
    repeats: int,
) -> list[dict]:
    """AutoAttack standard L∞ 4/255: our cascade (per-chunk seeds, resumable) vs pyautoattack called
    directly, on the model as loaded and, a control, on the copy the harness runs (batch norm
    folded, channels_last)."""
    from pyautoattack import AutoAttack as PyAA

    from bench.attacks.autoattack import Flags

    eps, bs = 4 / 255, 100

    def peer(net: torch.nn.Module) -> tuple[float, dict[str, int]]:
        aa = PyAA(net, eps=eps, norm="Linf", version="standard", seed=0, device=str(dev))
        aa.verbose = True  # its per-stage robust accuracy, read from its log
        stages = _StageCounts(len(x))
        level = aa.logger.level
        aa.logger.addHandler(stages)
        aa.logger.setLevel(logging.DEBUG)
        try:
            adv, _ = aa.run_standard_evaluation(x, y, batch_size=bs)  # (x_adv, y_adv)
        finally:
            aa.logger.removeHandler(stages)
            aa.logger.setLevel(level)
        with torch.no_grad():
            return (model(adv).argmax(1) == y).float().mean().item(), stages.counts

    def ours() -> tuple[float, dict[str, int]]:
        flags = Flags()
        robust = AutoAttack(eps).robust(
            mine,
            x,
            y,
            seed=0,
            batch_size=bs,
            flags=flags,
            chunk_context=small_batch_kernels(mine, x),
        )
        return robust.float().mean().item(), flags.robust_after

    mine = as_run(model, x.shape[-1])
    with true_gradient(mine), attack_mode(mine), true_gradient(model), attack_mode(model):
        t, out = _interleaved(
            {"ours": ours, "peer": lambda: peer(model), "control": lambda: peer(mine)}, repeats
        )
    acc = {k: 100 * v[0] for k, v in out.items()}
    by_stage = {k: "/".join(str(v[1].get(s, "?")) for s in STAGES) for k, v in out.items()}
    same = "the same" if len(set(by_stage.values())) == 1 else "NOT the same"
    note = (
        f"images left after {', '.join(STAGES)} (last timed run): ours {by_stage['ours']}, peer "
        f"{by_stage['peer']}, peer on the copy {by_stage['control']} of {len(x)} ({same} work); "
        f"median of {repeats} interleaved runs"
    )
    return [
        row(
            "AutoAttack standard vs pyautoattack",
            name,
            len(x),
            t["ours"],
            t["peer"],
            1.0,
            f"robust accuracy {acc['ours']:.1f} % vs {acc['peer']:.1f} %; ours runs channels_last, "
            f"batch norm folded, PyTorch's convolutions on small CPU batches; {note}",
            dev,
        ),
        row(
            "AutoAttack standard vs pyautoattack on the harness's copy",
            name,
            len(x),
            t["ours"],
            t["control"],
            None,
            f"robust accuracy {acc['ours']:.1f} % vs {acc['control']:.1f} %; both on the folded "
            f"channels_last copy: what remains is our cascade's small-batch kernels; {note}",
            dev,
        ),
    ]


STAGES = ("clean", "apgd-ce", "apgd-t", "fab-t", "square")


class _StageCounts(logging.Handler):
    """Images robust after each stage, by pyautoattack's verbose log ('robust accuracy after …')."""

    _AFTER = re.compile(r"^(?:initial accuracy|robust accuracy after ([A-Z-]+)): ([0-9.]+)%")
    _NONE_LEFT = "no robust datapoints left"  # then it logs no later stage: each leaves 0

    def __init__(self, n: int) -> None:
        super().__init__(logging.DEBUG)
        self.n, self._seen, self._none_left = n, dict[str, int](), False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        m = self._AFTER.match(message)
        if m:
            self._seen[(m.group(1) or "clean").lower()] = round(float(m.group(2)) / 100 * self.n)
        self._none_left |= message.startswith(self._NONE_LEFT)

    @property
    def counts(self) -> dict[str, int]:
        """Images left after each logged stage; 0 after the stages skipped for want of images."""
        return {**({s: 0 for s in STAGES} if self._none_left else {}), **self._seen}


def _reference_part(job: tuple[np.ndarray, list[tuple[str, int]]]) -> list[np.ndarray]:
    from bench.corruptions import reference

    images, conds = job
    return [reference.corrupt_many(images, np.arange(len(images)), n, s, 0) for n, s in conds]


def corruptions(images: np.ndarray, dev: torch.device, repeats: int) -> list[dict]:
    """All 15 x 5 conditions: the harness's generation vs imagecorruptions-imaug in one process, and
    in as many processes as the harness has cores (numba's kernels and the harness's workers use
    them all); median of `repeats` interleaved runs; the batched outputs are checked against the
    reference's in the timed run."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from bench.corruptions import fast, generate, reference
    from bench.corruptions.base import COMMON, PARITY

    idx = np.arange(len(images))
    for name in COMMON:  # warm-up on both sides: numba compiles (or loads) its kernels on first use
        reference.corrupt(images[0], name, 1, 0)
        if name in PARITY:
            fast.corrupt_batch(images[:2], idx[:2], name, 1, 0, dev)
    conds = [(n, s) for n in COMMON for s in range(1, 6)]
    workers = os.cpu_count() or 1
    rest = [c for c in conds if c[0] not in PARITY]
    out: dict = {}

    def peer() -> None:
        out["peer"] = {(n, s): reference.corrupt_many(images, idx, n, s, 0) for n, s in conds}

    def peer_pool() -> None:  # the conditions dealt round-robin to one process per core
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            parts = list(
                pool.map(_reference_part, [(images, conds[k::workers]) for k in range(workers)])
            )
        out["pool"] = {c: parts[k % workers][k // workers] for k, c in enumerate(conds)}

    def ours() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            generate.prepare(
                images, idx, rest, 0, cache=Path(tmp), fingerprint="perf", workers=workers
            )
            got = {
                (n, s): fast.corrupt_batch(images, idx, n, s, 0, dev)
                for n, s in conds
                if n in PARITY
            }
            if dev.type == "cuda":
                torch.cuda.synchronize()
        out["ours"] = {
            k: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in got.items()
        }

    t, _ = _interleaved({"ours": ours, "peer": peer, "pool": peer_pool}, repeats)
    exact = sum(np.array_equal(out["ours"][c], out["peer"][c]) for c in out["ours"])
    assert all(np.array_equal(out["pool"][c], out["peer"][c]) for c in conds), (
        "the pool's images differ"
    )
    in_workers = generate.uses_workers(images, len(rest), workers)
    target = 50.0 if dev.type == "cuda" else 5.0
    common = (
        f"{images.shape[1]} px; ours: torch/numba path for "
        f"{len([n for n in COMMON if n in PARITY])} of the 15 ({exact} of {len(out['ours'])} "
        "conditions bit-exact with the reference in this run), reference "
        f"{f'in {workers} worker processes' if in_workers else 'in process'} for the rest; median "
        f"of {repeats} interleaved runs"
    )
    return [
        row(
            "15 x 5 corruptions vs imagecorruptions-imaug in one process",
            "-",
            len(images),
            t["ours"],
            t["peer"],
            target,
            common,
            dev,
        ),
        row(
            f"15 x 5 corruptions vs imagecorruptions-imaug in {workers} processes",
            "-",
            len(images),
            t["ours"],
            t["pool"],
            None,
            common + f"; the peer uses as many cores as ours ({workers})",
            dev,
        ),
    ]


def clean(
    model: torch.nn.Module, name: str, images, idx: np.ndarray, dev: torch.device, repeats: int
) -> list[dict]:  # type: ignore[no-untyped-def]
    """Clean accuracy: our evaluation (uint8 batches converted on the fly) vs RobustBench's
    clean_accuracy, on the model as loaded, and on the copy the harness runs (batch norm folded,
    channels_last), a control."""
    from bench.evaluation.scoring import clean_correct
    from bench.models.sources.autoattack_shim import import_robustbench

    import_robustbench()
    from robustbench.utils import clean_accuracy

    x = to_unit(images.images[idx], torch.device("cpu"))
    y = torch.from_numpy(images.labels[idx])
    mine = as_run(model, x.shape[-1])
    t, out = _interleaved(
        {
            "ours": lambda: clean_correct(mine, images, idx, batch_size=256, device=dev),
            "peer": lambda: clean_accuracy(model, x, y, batch_size=256, device=dev),
            "control": lambda: clean_accuracy(mine, x, y, batch_size=256, device=dev),
        },
        repeats,
    )
    ours_acc = float(out["ours"].correct[-1].mean())
    note = f"median of {repeats} interleaved runs"
    return [
        row(
            "clean accuracy vs RobustBench clean_accuracy",
            name,
            len(idx),
            t["ours"],
            t["peer"],
            1.0,
            f"accuracy {100 * ours_acc:.1f} % vs {100 * out['peer']:.1f} %; ours runs "
            f"channels_last, batch norm folded; {note}",
            dev,
        ),
        row(
            "clean accuracy vs RobustBench clean_accuracy on the harness's copy",
            name,
            len(idx),
            t["ours"],
            t["control"],
            None,
            f"accuracy {100 * ours_acc:.1f} % vs {100 * out['control']:.1f} %; both on the folded "
            "channels_last copy: what remains is the loop (uint8 batches converted on the fly); "
            f"{note}",
            dev,
        ),
    ]


def make_bench(dev: torch.device, keep: Path | None = None) -> dict:
    """The first `make bench` from nothing: the data set, the corruption cache and the default suite
    on the shipped weights (fresh cache, nothing trained).

    `keep`: an empty or new folder to leave its cache and results in, instead of a temporary one.
    """
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise SystemExit(f"--e2e-dir {keep} is not empty: the first run needs a fresh cache")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = keep or Path(scratch)
        env = {**os.environ, "BENCH_CACHE": str(Path(tmp) / "cache")}
        bench = str(Path(sys.executable).parent / "bench")
        t0 = time.perf_counter()
        subprocess.run(
            [bench, "run", "--config", "results/default/run.toml", "--out", str(Path(tmp) / "out")],
            env=env,
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - t0
    return row(
        "make bench, first run (target: at most 360 s)",
        "default models",
        0,
        seconds,
        360.0,
        1.0,
        "ours = wall time (the shipped weights; data set, corruption cache and evaluation); peer "
        "column = the 6-minute target",
        dev,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet_small")
    p.add_argument("--device", default="auto")
    p.add_argument("--n-pgd", type=int, default=512)
    p.add_argument("--n-aa", type=int, default=32)
    p.add_argument("--n-corruptions", type=int, default=100)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--aa-repeats", type=int, default=3)
    p.add_argument(
        "--only",
        nargs="+",
        metavar="STEP",
        help="only these steps: PGD AutoAttack corruptions clean 'make bench'",
    )
    p.add_argument("--skip-e2e", action="store_true", help="do not time a first `make bench`")
    p.add_argument(
        "--e2e-dir",
        type=Path,
        help="keep the first `make bench`'s cache and results here (a new folder)",
    )
    p.add_argument("--out", type=Path, default=REPO / "results" / "perf" / "perf.csv")
    a = p.parse_args()
    dev = resolve_device(a.device)
    precision.strict_fp32()  # as the runner: no TF32 on a GPU, for ours and the peers alike
    lm = load(expand(a.model)[0], "cluttered_fmnist", cache_dir())
    model = lm.model.to(dev).eval()
    images = load_split("cluttered_fmnist", "test")
    idx, _ = subset_indices(len(images), a.n_pgd)
    x = to_unit(images.images[idx], dev)  # type: ignore[attr-defined]
    y = torch.from_numpy(images.labels[idx]).to(dev)  # type: ignore[attr-defined]
    rows = []
    steps = [
        ("PGD", lambda: pgd(model, lm.card.name, x, y, idx, dev, a.repeats)),
        (
            "AutoAttack",
            lambda: autoattack(model, lm.card.name, x[: a.n_aa], y[: a.n_aa], dev, a.aa_repeats),
        ),
        ("corruptions", lambda: corruptions(images.images[: a.n_corruptions], dev, 3)),  # type: ignore[attr-defined]
        (
            "clean",
            lambda: clean(model, lm.card.name, images, np.arange(len(images)), dev, 2 * a.repeats),
        ),
    ]
    if not a.skip_e2e:
        steps.append(("make bench", lambda: [make_bench(dev, a.e2e_dir)]))
    steps = [st for st in steps if not a.only or st[0] in a.only]
    for label, fn in steps:
        print(f"measuring {label} ...", flush=True)
        for r in fn():
            # the model's checkpoint (sha256 prefix), so a ratio can be tied to the weights it was
            # measured with
            r.update(
                peer_version=peer_version(label),
                weights=lm.weights if r["model"] == lm.card.name else "",
            )
            rows.append(r)
            judged = (
                f"target {r['target']}x: {'met' if r['meets'] == 'true' else 'NOT met'}"
                if r["target"]
                else "a control"
            )
            print(
                f"  {r['measure']}: ours {r['ours']} s, peer {r['peer']} s, ratio {r['ratio']}x "
                f"({judged}); {r['notes']}",
                flush=True,
            )
    append(a.out, rows)


def append(path: Path, rows: list[dict]) -> None:
    """Add rows to perf.csv (header first when new); a file with other columns is refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if not new:
        with path.open(newline="") as f:
            had = tuple(csv.DictReader(f).fieldnames or ())
        if had != COLUMNS:
            raise SystemExit(
                f"{path} has other columns than this perf.py writes (an older perf.py, or another "
                "file): move it away; nothing written"
            )
    with path.open("w" if new else "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerows(rows)
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
