"""`bench`: list models, build data, train, run suites, count FLOPs, write reports."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench.core.errors import BenchError
from bench.core.recipe import RECIPES

EXAMPLES = {
    "models": "bench models 'mgnet_*'",
    "suites": "bench suites",
    "data": "bench data build imagenet100 /data/imagenet /data/imagenet100   |   "
    "bench data build imagenet100-c /data/imagenet-c /data/imagenet100-c",
    "train": "bench train mgnet_small resnet_small --data cluttered_fmnist --if-missing",
    "run": "bench run --config results/default/run.toml   |   bench run --models my_net.py "
    "--n-images 500",
    "flops": "bench flops mgnet_r18 resnet18",
    "report": "bench report results/default",
    "exits": "bench exits results/default --tau 0.5 0.9 0.99",
}


IMAGENET_ROOT = (
    "ImageNet100 folder made by `bench data build imagenet100` (default $BENCH_DATA/imagenet100)"
)
DEVICE = "auto (default: CUDA when present, else CPU), cpu or cuda[:N]"
WORKERS = (
    "image-decoding processes for folder data sets (default: this rank's cores less one, at most 8)"
)


def _sub(sp: argparse._SubParsersAction, name: str, help_: str) -> argparse.ArgumentParser:
    examples = "\n".join(f"  {e}" for e in EXAMPLES[name].split("   |   "))
    # examples stay copyable
    return sp.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=f"example:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_models(sp: argparse._SubParsersAction) -> None:
    """The options of `bench models`."""
    c = _sub(sp, "models", "List registered models.")
    c.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    c.add_argument("--all", action="store_true", help="include the tiny test models")


def _add_suites(sp: argparse._SubParsersAction) -> None:
    """The options of `bench suites`."""
    _sub(sp, "suites", "List the condition suites.")


def _add_data(sp: argparse._SubParsersAction) -> None:
    """The options of `bench data`."""
    c = _sub(sp, "data", "Build a data set folder.")
    c.add_argument("action", choices=["build"])
    c.add_argument("name", choices=["imagenet100", "imagenet100-c", "cluttered_fmnist"])
    c.add_argument(
        "src",
        nargs="?",
        help="ImageNet root with train/ and val/ class folders, or an ImageNet-C root",
    )
    c.add_argument("dst", nargs="?", help="folder to create for ImageNet100 or ImageNet100-C")


def _add_train(sp: argparse._SubParsersAction) -> None:
    """The options of `bench train`."""
    c = _sub(sp, "train", "Train models with the data set's recipe and cache their checkpoints.")
    c.add_argument(
        "models", nargs="+", help="model specs (registry names, file.py[:factory], module:factory)"
    )
    c.add_argument(
        "--data",
        default="cluttered_fmnist",
        help="data set and recipe: cluttered_fmnist (default) or imagenet100",
    )
    c.add_argument("--data-root", default="", help=IMAGENET_ROOT)
    r = RECIPES["cluttered_fmnist"]
    c.add_argument(
        "--epochs", type=int, help=f"override the recipe's epochs (cluttered_fmnist: {r.epochs})"
    )
    c.add_argument(
        "--batch-size",
        type=int,
        help=f"override the recipe's batch size (cluttered_fmnist: {r.batch_size})",
    )
    c.add_argument("--lr", type=float, help=f"override the recipe's OneCycle max lr ({r.lr})")
    c.add_argument(
        "--seed", type=int, default=0, help="initialisation, order and flips (default 0)"
    )
    c.add_argument("--device", default="auto", help=DEVICE)
    c.add_argument("--workers", type=int, help=WORKERS)
    c.add_argument(
        "--if-missing", action="store_true", help="skip models that already have a checkpoint"
    )
    c.add_argument(
        "--download", action="store_true", help="allow torchvision to download Fashion-MNIST"
    )
    c.add_argument(
        "--ship",
        action="store_true",
        help="also write the weights into the package's shipped weights (models/weights/, for "
        "maintainers; the recipe must be the data set's own)",
    )


def _run_attacks(c: argparse.ArgumentParser) -> None:
    """`bench run`'s options of the attack sweeps."""
    c.add_argument(
        "--attack-backend", choices=["bench", "torchattacks"], help="who runs FGSM and PGD"
    )
    c.add_argument(
        "--eps", nargs="+", metavar="E", help="L∞ radii of the FGSM/PGD sweeps, e.g. 0 2/255 8/255"
    )
    c.add_argument("--eps-l2", nargs="+", metavar="E", help="L2 radii of the PGD-L2 sweep")
    c.add_argument("--pgd-steps", type=int, help="PGD iterations (default: the suite's)")
    c.add_argument("--restarts", type=int, help="PGD restarts (each image keeps the first success)")


def _run_corruptions(c: argparse.ArgumentParser) -> None:
    """`bench run`'s options of the corruption cells."""
    c.add_argument(
        "--corruptions", nargs="+", metavar="NAME", help="only these corruptions, e.g. fog snow"
    )
    c.add_argument(
        "--extra-corruptions",
        action="store_true",
        default=None,
        help="add the 4 held-out corruptions (speckle_noise, gaussian_blur, spatter, saturate)",
    )
    c.add_argument(
        "--corruption-root", help="ImageNet100-C folder for --suite corruptions_rendered"
    )
    c.add_argument(
        "--corruption-backend",
        choices=["auto", "reference"],
        help="auto (default): batched torch where parity with the reference is tested",
    )
    c.add_argument(
        "--skip-corrupt-files",
        action="store_true",
        default=None,
        help="skip (and report) unreadable pre-rendered files instead of failing",
    )


def _run_speed(c: argparse.ArgumentParser) -> None:
    """`bench run`'s options of timing, precision and MFU."""
    c.add_argument(
        "--speed-budget",
        type=float,
        metavar="S",
        help="seconds per exit for timing latency and throughput on clean cells (0: skip; default "
        "1)",
    )
    c.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="clean and corruption cells: bf16 autocast where a model's clean accuracy matches "
        "fp32 within 0.1 point (auto: on CUDA only; default), or fp32; attacks always run strict "
        "fp32",
    )
    c.add_argument(
        "--peak-tflops",
        type=float,
        metavar="T",
        help="the device's dense fp32 peak TFLOP/s for fp32 rows' MFU, when bench/cost/mfu.py does "
        "not list the device",
    )
    c.add_argument("--peak-tflops-bf16", type=float, metavar="T", help="the same for bf16 rows")


def _add_run(sp: argparse._SubParsersAction) -> None:
    """The options of `bench run`."""
    c = _sub(
        sp, "run", "Evaluate models under a suite and append rows to OUT/results.csv (resumable)."
    )
    c.add_argument("--config", type=Path, help="run.toml with any of the options below")
    c.add_argument(
        "--models",
        nargs="+",
        help="model specs: NAME[@random|@ckpt.pt|@official:FILE], file.py[:factory], "
        "module:factory, tv:NAME[@ENUM|@FILE], timm:NAME[@FILE], rb:[DATASET/THREAT/]NAME",
    )
    c.add_argument(
        "--suite", help="the conditions to run, listed by `bench suites` (default clean)"
    )
    c.add_argument("--data", dest="dataset", help="cluttered_fmnist (default) or imagenet100")
    c.add_argument("--data-root", help=IMAGENET_ROOT)
    c.add_argument(
        "--n-images", type=int, help="cap on every cell's image count (default: the suite's counts)"
    )
    c.add_argument(
        "--seed", type=int, help="image subsets, corruption noise, attack starts (default 0)"
    )
    c.add_argument("--device", help=DEVICE)
    c.add_argument("--batch-size", type=int, help="evaluation batch size (default 256)")
    c.add_argument("--workers", type=int, help=WORKERS)
    c.add_argument(
        "--out", help="results folder; rows already in it are skipped (default results/default)"
    )
    _run_attacks(c)
    _run_corruptions(c)
    _run_speed(c)
    c.add_argument("--no-report", action="store_true", help="do not rebuild report.md afterwards")


def _add_flops(sp: argparse._SubParsersAction) -> None:
    """The options of `bench flops`."""
    c = _sub(sp, "flops", "GMACs and parameters of models, per exit.")
    c.add_argument(
        "models", nargs="+", help="model specs (registry names, file.py[:factory], module:factory)"
    )


def _add_report(sp: argparse._SubParsersAction) -> None:
    """The options of `bench report`."""
    c = _sub(
        sp, "report", "Build report.md and figures from a run's results.csv (no torch needed)."
    )
    c.add_argument("run", nargs="?", type=Path, default=Path("results/default"))
    c.add_argument(
        "--baseline", help="model that normalises mCE (default: the run's ResNet baseline)"
    )


def _add_exits(sp: argparse._SubParsersAction) -> None:
    """The options of `bench exits`."""
    c = _sub(
        sp,
        "exits",
        "Early exits: accuracy and mean GMACs of a multi-exit model that stops at the first exit "
        "whose confidence reaches τ, from a run's stored records (no model is run).",
    )
    c.add_argument("run", type=Path, help="a run folder written by `bench run`")
    c.add_argument(
        "--tau", type=float, nargs="+", required=True, help="confidence thresholds in (0, 1]"
    )
    c.add_argument("--models", nargs="+", help="multi-exit models (default: all of the run's)")
    c.add_argument(
        "--measure",
        choices=("msp", "entropy"),
        default="msp",
        help="largest softmax probability (default) or 1 − normalized entropy",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line, like every other error of bench."""

    def error(self, message: str) -> NoReturn:
        raise BenchError(f"{self.prog}: {message} (`{self.prog} --help` shows the options)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bench",
        description="Robustness bench for efficient vision models.",
        epilog="example: bench run --config results/default/run.toml && bench report "
        "results/default",
    )
    sp = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _add_models(sp)
    _add_suites(sp)
    _add_data(sp)
    _add_train(sp)
    _add_run(sp)
    _add_flops(sp)
    _add_report(sp)
    _add_exits(sp)
    return p


def _cmd_models(a: argparse.Namespace) -> int:
    from bench import models  # noqa: F401
    from bench.core.registry import MODELS
    from bench.load import shipped

    names = [n for n in MODELS.names(a.pattern) if a.all or not MODELS.get(n).hidden]
    if not names:
        hidden = "" if a.all else " (--all adds the tiny test models)"
        raise BenchError(f"no registered model matches {a.pattern!r}{hidden}")
    for name in names:
        c = MODELS.get(name)
        ships = "shipped weights, " if c.data and shipped.available(c.data, name) else ""
        print(
            f"{name:16s} {c.family:7s} {c.num_classes:4d} classes {c.input_size:4d}px "
            f"exits={len(c.exits)} data={c.data or 'any'}  {ships}{c.description}"
        )
    return 0


def _cmd_suites(a: argparse.Namespace) -> int:
    from bench.core.suites import SUITE_HELP, SUITES

    width = max(map(len, SUITES))
    for name, cells in SUITES.items():
        print(f"{name:{width}s} {len(cells):3d} cells  {SUITE_HELP[name]}")
    return 0


def _cmd_data(a: argparse.Namespace) -> int:
    if a.name == "imagenet100":
        from bench.data import imagenet

        if not a.src or not a.dst:
            raise BenchError("usage: bench data build imagenet100 SRC DST")
        print(f"ImageNet100 linked under {imagenet.build(Path(a.src), Path(a.dst))}")
        return 0
    if a.name == "imagenet100-c":
        from bench.corruptions import rendered

        if not a.src or not a.dst:
            raise BenchError("usage: bench data build imagenet100-c IMAGENET_C_ROOT DST")
        print(f"ImageNet100-C linked under {rendered.build(Path(a.src), Path(a.dst))}")
        return 0
    from bench.data import load_split

    for split in ("train", "test"):
        s = load_split("cluttered_fmnist", split)
        print(f"cluttered_fmnist {split}: {len(s)} images {s.get(0)[0].shape}")
    return 0


def _recipe(a: argparse.Namespace) -> Any:
    """The data set's training recipe with the epochs, batch size and lr the command gave."""
    if a.data not in RECIPES:
        raise BenchError(
            f"no training recipe for data set {a.data!r} (known: {', '.join(RECIPES)})"
        )
    given = dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr)
    return dataclasses.replace(RECIPES[a.data], **{k: v for k, v in given.items() if v is not None})


def _trained_already(name: str, out: Path, if_missing: bool) -> bool:
    """With --if-missing: whether every rank has a verified checkpoint (DDP needs all to train)."""
    from bench.devices import distributed
    from bench.load import checkpoint

    have = False
    if if_missing and out.is_file():
        try:
            checkpoint.verify(out)
            have = True
        except BenchError as e:
            print(f"{name}: {e}; training it again")
    if if_missing and distributed.all_ok(have):
        print(f"{name}: checkpoint exists ({out}), skipped")
        return True
    if have:
        print(
            f"{name}: checkpoint exists here but not on every rank's file system; training it again"
        )
    return False


def _train_setup(a: argparse.Namespace, name: str, sets: tuple | None) -> tuple:  # type: ignore[type-arg]
    """The model at its seeded initialisation and the data set's splits (loaded once), checked."""
    from bench.data import cache_dir, load_split
    from bench.load.contract import check_outputs, probe_batch
    from bench.load.specs import check_fits, load

    lm = load(f"{name}@random", a.data, cache_dir(), init_seed=a.seed)
    if sets is None:
        root = Path(a.data_root) if a.data_root else None
        sets = tuple(load_split(a.data, split, root, a.download) for split in ("train", "test"))
    check_fits(lm, len(sets[0].classes), sets[0].get(0)[0].shape, a.data)
    check_outputs(lm, probe_batch(sets[0]))
    return lm, sets


def _cmd_train(a: argparse.Namespace) -> int:
    from bench.data import cache_dir, check_name
    from bench.devices import distributed
    from bench.fast.training import speedups
    from bench.load import shipped
    from bench.load.specs import default_checkpoint, expand
    from bench.train import train

    check_name(a.data)
    if not 0 <= a.seed < 2**32:
        raise BenchError(f"--seed must be in [0, 2**32), got {a.seed}")
    recipe, sets = _recipe(a), None
    if a.ship:  # before any training, on every rank
        if recipe != RECIPES[a.data]:
            raise BenchError(
                f"--ship takes the {a.data} recipe as it is: drop --epochs/--batch-size/--lr"
            )
        shipped.check_writable(a.data)
    for name in [s.partition("@")[0] for spec in a.models for s in expand(spec)]:
        out = default_checkpoint(cache_dir(), a.data, name)
        trained = not _trained_already(name, out, a.if_missing)
        if trained:
            # under torchrun: an error on one rank stops every rank
            lm, sets = distributed.together(
                lambda name=name, sets=sets: _train_setup(a, name, sets)
            )
            train(
                lm.model,
                name,
                sets[0],
                sets[1],
                recipe,
                out,
                seed=a.seed,
                device=a.device,
                workers=a.workers,
                speedups=speedups,
            )
        if trained or a.ship:
            distributed.on_main(lambda name=name, out=out: _after(out, name, a.data, a.ship))
    return 0


def _after(out: Path, name: str, dataset: str, ship: bool) -> None:
    """Say what training gave and how it compares with the shipped weights, or ship it."""
    from bench.load import checkpoint, shipped

    sd, meta, _ = checkpoint.load(out)
    resumed = meta.get("resumed_after_epoch")
    print(
        f"{name}: test accuracy {100 * meta['accuracy']:.2f}% after {meta['epoch']} epochs "
        f"({meta['train_seconds']} s{f', resumed after epoch {resumed}' if resumed else ''}) -> "
        f"{out}"
    )
    if ship:
        path, sha = shipped.ship(sd, meta, shipped.ROOT)
        print(f"{name}: shipped as {path} (sha256 {sha[:12]})")
    elif shipped.available(dataset, name):  # NAME means the shipped weights: say how to pick these
        print(f"{name}: {_against_shipped(sd, name, dataset)}; evaluate it with {name}@trained")


def _against_shipped(sd: dict[str, Any], name: str, dataset: str) -> str:
    """Whether freshly trained weights are, bit for bit, the ones the package ships."""
    from bench.load import shipped

    try:
        want = shipped.read_meta(shipped.path_for(dataset, name))["sha256"]
    except BenchError as e:
        return f"cannot compare with the shipped weights ({e})"
    got = shipped.digest(sd)
    if got == want:
        return f"bit-identical to the shipped weights (sha256 {want[:12]})"
    return (
        f"not the shipped weights (sha256 {got[:12]}, shipped {want[:12]}: another recipe, seed, "
        "machine or thread count gives other bits)"
    )


def _cmd_run(a: argparse.Namespace) -> int:
    from bench.core.config import RunConfig, load_toml, parse_eps
    from bench.evaluation.runner import run

    base = load_toml(a.config) if a.config else {}
    if a.models:
        base["models"] = tuple(a.models)
    if "models" not in base:
        raise BenchError("no models given (use --models or --config)")
    cfg = RunConfig(**base).with_overrides(
        suite=a.suite,
        dataset=a.dataset,
        data_root=a.data_root,
        n_images=a.n_images,
        seed=a.seed,
        device=a.device,
        batch_size=a.batch_size,
        workers=a.workers,
        out=a.out,
        attack_backend=a.attack_backend,
        pgd_steps=a.pgd_steps,
        restarts=a.restarts,
        extra_corruptions=a.extra_corruptions,
        corruption_root=a.corruption_root,
        skip_corrupt_files=a.skip_corrupt_files,
        corruption_backend=a.corruption_backend,
        speed_budget=a.speed_budget,
        precision=a.precision,
        peak_tflops=a.peak_tflops,
        peak_tflops_bf16=a.peak_tflops_bf16,
        corruptions=tuple(a.corruptions) if a.corruptions else None,
        eps=tuple(map(parse_eps, a.eps)) if a.eps else None,
        eps_l2=tuple(map(parse_eps, a.eps_l2)) if a.eps_l2 else None,
    )
    from bench.devices import distributed

    path = run(cfg)
    if not distributed.world().main:  # under torchrun rank 0 reports
        return 0
    print(f"results: {path}")
    if not a.no_report:
        from bench.report import build

        md = build(path.parent)
        print(f"report:  {md} and {md.with_suffix('.html').name}")
    return 0


def _cmd_flops(a: argparse.Namespace) -> int:
    from bench.cost import flops
    from bench.data import cache_dir
    from bench.load.specs import expand, load

    loaded = [
        load(f"{s.partition('@')[0]}@random", "", cache_dir())
        for spec in a.models
        for s in expand(spec)
    ]
    print(f"{'model':16s} {'exit':>4s} {'GMACs':>10s} {'params(M)':>10s}  uncounted ops")
    for lm in loaded:
        name = lm.card.name
        for t in lm.card.exits:
            c = flops.count(lm.model, t, lm.card.input_size)
            print(
                f"{name:16s} {t:4d} {c.gmacs:10.4f} {c.params_m:10.3f}  "
                f"{', '.join(sorted(c.uncounted))}"
            )
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from bench.report import build

    print(f"report: {build(a.run, a.baseline)}")
    return 0


def _cmd_exits(a: argparse.Namespace) -> int:
    from bench.report.policy_table import policy_table

    print(policy_table(a.run, a.tau, a.models, a.measure))
    return 0


COMMANDS = {
    "models": _cmd_models,
    "suites": _cmd_suites,
    "data": _cmd_data,
    "train": _cmd_train,
    "run": _cmd_run,
    "flops": _cmd_flops,
    "report": _cmd_report,
    "exits": _cmd_exits,
}


# What argparse takes for an option although no option starts with a digit: "-1/255", "-1e-3" ("-1",
# "-0.5" it reads).
_NEGATIVE = re.compile(r"^-\.?\d")
_ARGPARSE_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 with one line on stderr for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    misread = next(
        (i for i, a in enumerate(argv) if _NEGATIVE.match(a) and not _ARGPARSE_NEGATIVE.match(a)),
        None,
    )
    # argparse would say "expected at least one argument" of the option before it
    if misread is not None:
        option = next(
            (a for a in reversed(argv[:misread]) if a.startswith("-") and not _NEGATIVE.match(a)),
            "",
        )
        said = f"bench: error: {option} {argv[misread]} is negative"
        _say(f"{said} (radii, counts and sizes never are)".replace(":  ", ": "))
        return 2
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.cmd](args)
    except BenchError as e:
        _say(f"bench: error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say("bench: interrupted; finished cells and training epochs are kept, rerun to resume")
        return 130


def _say(line: str) -> None:
    """One line to stderr in one write, so the lines of torchrun's ranks never run together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
