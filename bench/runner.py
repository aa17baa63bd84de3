"""Plan the cells of a run, skip those already stored, evaluate the rest, append their rows."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench import accel, data_guard, distributed, flops, folder_lock, glimpses, per_image
from bench.conditions import (EXTRA_CORRUPTIONS, TRANSFER_AUTO, Cell, Condition, corruption, pgd_params, pgd_step,
                              suite)
from bench.config import RunConfig
from bench.corrupted_data import CorruptedData
from bench.checks import CheckRow, append_checks, model_checks, read_checks
from bench.data import (ImageSet, cache_dir, check_name, iter_batches, load_split, loader_workers, subset_indices,
                        to_unit)
from bench.device import device_name, rank_device
from bench.errors import BenchError, ensure_writable
from bench.evaluate import Correct, clean_correct, evaluate, merge
from bench.provenance import code_version, utc_now, versions
from bench.results import SCORING, Row, append_rows, canonical_json, read_rows
from bench.specs import LoadedModel, check_fits, expand, load
from bench.speed import Speed, measure

log = logging.getLogger(__name__)
NOT_TIMED = Speed(latency_ms=float("nan"), throughput=float("nan"), batch=0)


def _key_rows(lm: LoadedModel, cfg: RunConfig, subset: str, cond: Condition, exits: tuple[int, ...],
              precision: str = "fp32") -> list[dict]:
    return [dict(model=lm.card.name, weights=lm.weights, dataset=cfg.dataset, subset=subset, kind=cond.kind,
                 condition=cond.name, source=cond.source, protocol=cond.protocol, severity=cond.severity,
                 norm=cond.norm, epsilon=cond.epsilon, steps=cond.steps, step_size=cond.step_size,
                 restarts=cond.restarts, params=cond.params, exit=t, seed=cfg.seed, precision=precision,
                 scoring=SCORING)
            for t in exits]


def _run_checks(lm: LoadedModel, images: ImageSet, indices: np.ndarray, cfg: RunConfig, dev: torch.device,
                path: Path) -> None:
    """Model sanity checks on a batch of test images, kept in checks.csv."""
    lm.model.to(dev)
    _, imgs, labels = next(iter_batches(images, indices[:32], 32, 0))
    created = utc_now()
    rows = [CheckRow(model=lm.card.name, weights=lm.weights, dataset=cfg.dataset, exit=t, check=name,
                     status=status, value=value, detail=detail, created=created)
            for t, name, status, value, detail in model_checks(lm.model, to_unit(imgs, dev),
                                                                torch.from_numpy(labels).to(dev))]
    append_checks(path, rows)
    lm.model.cpu()


def _amp_check(lm: LoadedModel, net: torch.nn.Module, images: ImageSet, indices: np.ndarray, cfg: RunConfig,
               dev: torch.device, path: Path, workers: int) -> None:
    """Clean accuracy per exit in fp32 and under bf16 autocast on the run's clean images, kept in checks.csv."""
    model = net.to(dev)
    acc = {p: clean_correct(model, images, indices, batch_size=cfg.batch_size, device=dev, workers=workers,
                            precision=p).correct.mean(axis=1).tolist() for p in ("fp32", "bf16")}
    net.cpu()
    ok, points = accel.amp_matches(acc["fp32"], acc["bf16"])
    detail = (f"{_amp_setting(len(indices), dev)}, largest difference {points:.2f} points "
              f"(tolerance {100 * accel.AMP_TOLERANCE:.1f}): clean and corruption cells run in "
              f"{'bf16' if ok else 'fp32'}")
    append_checks(path, [CheckRow(model=lm.card.name, weights=lm.weights, dataset=cfg.dataset, exit=0,
                                  check="amp_parity", status="ok" if ok else "warn", value=points, detail=detail,
                                  created=utc_now())])


def _amp_setting(n: int, dev: torch.device) -> str:
    """What an AMP parity check compared on: the images and the device; a stored check counts only for the same."""
    return f"bf16 autocast vs fp32 on {n} clean images on {device_name(dev)}"


def _clean_precision(loaded: list[LoadedModel], runtime: dict[str, torch.nn.Module], cells: list[Cell],
                     images: ImageSet, cfg: RunConfig, dev: torch.device, path: Path,
                     workers: int) -> dict[tuple[str, str], str]:
    """Per model: "bf16" where AMP was asked for and passed its parity check, else "fp32" (checked once, on rank 0)."""
    plain = [c for c in cells if c.condition.kind in ("clean", "corruption")]
    if not (plain and accel.wants_amp(cfg.precision, dev)):
        return {}
    n = max((len(images) if c.n_images is None else min(c.n_images, len(images))) for c in plain)
    indices, _ = subset_indices(len(images), n)

    setting = distributed.gather(_amp_setting(n, dev) + ",")[0]  # rank 0 checks; every rank runs what it found

    def stored() -> dict[tuple[str, str], str]:
        return {(c.model, c.weights): "bf16" if c.status == "ok" else "fp32" for c in read_checks(path)
                if c.check == "amp_parity" and c.dataset == cfg.dataset and c.detail.startswith(setting)}

    if distributed.world().main:
        done = stored()
        for lm in loaded:
            if (lm.card.name, lm.weights) not in done:
                _amp_check(lm, runtime[lm.card.name], images, indices, cfg, dev, path, workers)
    distributed.barrier()
    return stored()


def _corrupted_data(cells: list[Cell], images: ImageSet, cfg: RunConfig, cache: Path,
                    dev: torch.device) -> CorruptedData:
    """Where the run's corruption cells get their images; a missing or incomplete folder of rendered files fails
    here, before anything is written."""
    data = CorruptedData(images, cfg.seed, cache / "corruptions", cfg.workers or os.cpu_count() or 1,
                         cfg.corruption_root, cfg.skip_corrupt_files, str(dev))
    for c in cells:
        if c.condition.kind == "corruption" and c.condition.source == "rendered":
            data.subset(c.condition, c.n_images)
    return data


def _data_identity(dataset: str, images: ImageSet, corrupted: CorruptedData) -> dict[str, dict]:
    """The run's data as data.json records it: the test images, and every pre-rendered folder its cells read."""
    current = {dataset: data_guard.identity(images, corrupted.fp)}  # the fingerprint corruption caches use too
    for (name, severity), rset in corrupted.rendered_sets().items():
        current[data_guard.rendered_name(dataset, name, severity)] = data_guard.identity(rset)
    return current


def _prepare_corruptions(data: CorruptedData, cells: list[Cell], images: ImageSet, cfg: RunConfig, out: Path,
                         shape: tuple[int, ...], examples: bool = True) -> None:
    """Check the image size, then generate every reference corruption of the run in worker processes."""
    made = [c for c in cells if c.condition.kind == "corruption" and c.condition.source != "rendered"]
    if not made:
        return
    from corruptions.base import check_size

    check_size(shape[0], shape[1])
    fly = [c for c in made if c.condition.source == "reference"]
    wanted: dict[bytes, tuple[np.ndarray, list[tuple[str, int]]]] = {}
    for c in fly:
        idx, _ = subset_indices(len(images), c.n_images)
        wanted.setdefault(idx.tobytes(), (idx, []))[1].append((c.condition.name, c.condition.severity))
    total = sum(len(v[1]) for v in wanted.values())
    with tqdm(total=total, desc="corruptions", unit="cond", leave=False, disable=None) as bar:
        data.prepare(wanted, progress=lambda name, sev: bar.update(1))
    if examples:
        data.example_grid(out / "examples" / "corruptions.png",
                          list(dict.fromkeys(dataclasses.replace(c.condition, severity=1) for c in made)))


def _transfer_source(loaded: list[LoadedModel]) -> LoadedModel | None:
    """The run's ResNet baseline (else the official baseline): the model transfer attacks start from."""
    for family in ("resnet", "mgbase"):
        for lm in loaded:
            if lm.card.family == family:
                return lm
    return None


def _resolve(cond: Condition, target: LoadedModel, loaded: list[LoadedModel], randomized: bool = False,
             ) -> Condition | None:
    """Fill in run-dependent parts of a condition; None when it does not apply to this model (a transfer attack
    without a source, the paper protocol on a model that does not normalize its input).

    AutoAttack switches to its `rand` version (EOT) for a model whose evaluation is not deterministic.
    """
    if cond.protocol == "paper" and not target.model.normalizes:  # its ε and step live in that space
        return None
    if cond.name == "autoattack" and randomized:
        params = json.loads(cond.params)
        return dataclasses.replace(cond, params=canonical_json({**params, "version": "rand"}))
    if cond.name != "transfer_pgd":
        return cond
    wanted = json.loads(cond.params)["from"]
    src = _transfer_source(loaded) if wanted == TRANSFER_AUTO else next(
        (lm for lm in loaded if lm.card.name == wanted), None)
    if src is None or src.card.name == target.card.name:
        return None
    return dataclasses.replace(cond, params=canonical_json({"from": src.card.name, "from_weights": src.weights}))


def _cells(cfg: RunConfig) -> list[Cell]:
    """The suite's cells with the run's overrides: image cap, ε radii, PGD steps, restarts, backend."""
    cap = cfg.n_images
    cells: list[Cell] = []
    base = list(suite(cfg.suite))
    if cfg.extra_corruptions:
        for source in dict.fromkeys(c.condition.source for c in base if c.condition.kind == "corruption"):
            n = next(c.n_images for c in base if c.condition.kind == "corruption" and c.condition.source == source)
            base += [Cell(corruption(name, sv, source), n) for name in EXTRA_CORRUPTIONS for sv in range(1, 6)]
    if cfg.corruptions is not None:
        base = [c for c in base if c.condition.kind != "corruption" or c.condition.name in cfg.corruptions]
    for c in base:
        cond = c.condition
        if cond.kind == "corruption" and cond.source == "reference" and cfg.corruption_backend == "auto":
            from corruptions.base import PARITY

            if cond.name in PARITY:
                cond = dataclasses.replace(cond, source="torch")
        if cond.name in ("fgsm", "pgd") and cond.protocol == "strict":
            radii = cfg.eps_l2 if cond.norm == "l2" else cfg.eps
            if radii is not None:  # one sweep cell per radius, built from the suite's first one
                if any(x.condition.name == cond.name and x.condition.norm == cond.norm for x in cells):
                    continue
                variants = [dataclasses.replace(cond, epsilon=e, step_size=e) for e in dict.fromkeys(radii)]
            else:
                variants = [cond]
            if cond.name == "pgd":
                variants = [dataclasses.replace(v, steps=cfg.pgd_steps or v.steps, restarts=cfg.restarts or v.restarts,
                                                step_size=pgd_step(v.epsilon, cfg.pgd_steps or v.steps))
                            for v in variants]
            variants = [dataclasses.replace(v, source=cfg.attack_backend) for v in variants]
            if cond.name == "pgd":
                variants = [dataclasses.replace(v, params=pgd_params(v.source, v.params)) for v in variants]
        else:
            variants = [cond]
        n = cap if c.n_images is None else (c.n_images if cap is None else min(cap, c.n_images))
        cells += [dataclasses.replace(c, condition=v, n_images=n) for v in variants]
    _check_options_apply(cfg, cells)
    return cells


def _check_options_apply(cfg: RunConfig, cells: list[Cell]) -> None:
    """An option that selects or sizes cells the suite does not have is a mistake, not something to ignore."""
    def has(kind: str, names: tuple[str, ...] = (), norm: str = "") -> bool:
        return any(c.condition.kind == kind and (not names or c.condition.name in names)
                   and (not norm or c.condition.norm == norm) for c in cells)

    if cfg.corruptions is not None and not has("corruption"):
        names = " ".join(cfg.corruptions)
        raise BenchError(f"--corruptions {names}: suite {cfg.suite!r} has no such corruption cells")
    if cfg.eps is not None and not has("attack", ("fgsm", "pgd"), "linf"):
        raise BenchError(f"--eps: suite {cfg.suite!r} has no L∞ FGSM or PGD sweep (try --suite attacks)")
    if cfg.eps_l2 is not None and not has("attack", ("pgd",), "l2"):
        raise BenchError(f"--eps-l2: suite {cfg.suite!r} has no L2 PGD sweep (try --suite attacks)")
    for option, given in (("--pgd-steps", cfg.pgd_steps is not None), ("--restarts", cfg.restarts is not None)):
        if given and not has("attack", ("pgd",)):  # the strict PGD cells: the paper's and transfer's have own names
            raise BenchError(f"{option}: suite {cfg.suite!r} has no PGD cells (try --suite attacks)")
    if cfg.attack_backend != "bench" and not has("attack", ("fgsm", "pgd")):
        raise BenchError(f"--attack-backend {cfg.attack_backend}: suite {cfg.suite!r} has no FGSM or PGD cells")
    if cfg.extra_corruptions and not has("corruption"):
        raise BenchError(f"--extra-corruptions: suite {cfg.suite!r} has no corruption cells")


def _setup(cfg: RunConfig) -> tuple[list[Cell], list[LoadedModel], ImageSet, CorruptedData, torch.device, int]:
    """Everything a run checks and loads before it takes its output folder: cells, models, data, device."""
    cells = _cells(cfg)
    check_name(cfg.dataset)
    specs = [s for spec in cfg.models for s in expand(spec)]
    names = [s.partition("@")[0] for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # rows, tables and transfer sources know a model by its name
        both = ", ".join(s for s in specs if s.partition("@")[0] == twice[0])
        raise BenchError(f"model {twice[0]} appears twice in one run ({both}); compare two weights of one model in "
                         "separate --out folders, or register the second under its own name")
    cache = cache_dir()
    loaded = [load(s, cfg.dataset, cache) for s in specs]
    images = load_split(cfg.dataset, "test", Path(cfg.data_root) if cfg.data_root else None)
    first, _ = images.get(0)
    for lm in loaded:
        check_fits(lm, len(images.classes), first.shape, cfg.dataset)
    dev = rank_device(cfg.device)
    corrupted = _corrupted_data(cells, images, cfg, cache, dev)
    workers = loader_workers(images, cfg.workers)
    ensure_writable(Path(cfg.out), f"to output folder {cfg.out}")
    return cells, loaded, images, corrupted, dev, workers


def run(cfg: RunConfig, progress: bool = True) -> Path:
    """Evaluate every model under every condition of the suite; returns the results CSV path."""
    # on every rank, so that bad input or a missing file on one of them stops them all, none left at a barrier
    cells, loaded, images, corrupted, dev, workers = distributed.together(lambda: _setup(cfg))
    w = distributed.world()
    first, _ = images.get(0)
    out = Path(cfg.out)
    with folder_lock.hold(out):
        path = out / "results.csv"
        stored = read_rows(path)
        done = {r.key() for r in stored}
        changed = data_guard.check(out, _data_identity(cfg.dataset, images, corrupted),
                                   data_guard.measured(stored, cfg.dataset), write=w.main)
        if cfg.dataset in changed and w.main:  # progress of cells interrupted on the earlier images: not for these
            for f in (out / ".state").glob("*"):
                f.unlink(missing_ok=True)
        checks_path = out / "checks.csv"
        per_image.read(out / "per_image.csv")  # a damaged file beside results.csv fails now, before a row is added
        read_checks(checks_path)
        glimpses.read(out / "glimpses.csv")
        distributed.barrier()  # every rank plans from the same stored rows before rank 0 appends any
        progress = progress and w.main
        provenance = dict(device=device_name(dev), torch=torch.__version__,
                          versions=canonical_json(versions()), code=code_version())
        # What evaluation runs (batch norm folded, channels_last); FLOPs, checks and glimpses use the model as loaded.
        runtime = {lm.card.name: accel.runtime_copy(lm.model, lm.card.input_size) for lm in loaded}
        for rank0_turn in (True, False):  # rank 0 generates and caches the corruptions, the others then read them
            if w.main == rank0_turn:
                _prepare_corruptions(corrupted, cells, images, cfg, out, first.shape, examples=w.main)
            distributed.barrier()
        if any(c.condition.kind == "attack" for c in cells) and w.main:
            checked = {(c.model, c.weights, c.dataset) for c in read_checks(checks_path) if c.check == "deterministic"}
            for lm in loaded:
                if (lm.card.name, lm.weights, cfg.dataset) not in checked:
                    _run_checks(lm, images, subset_indices(len(images), 32)[0], cfg, dev, checks_path)
        distributed.barrier()
        randomized = {(c.model, c.weights) for c in read_checks(checks_path)
                      if c.check == "deterministic" and c.status == "warn" and c.dataset == cfg.dataset}
        accel.strict_fp32()
        amp = _clean_precision(loaded, runtime, cells, images, cfg, dev, checks_path, workers)
        # Cell by cell, every model in turn: a corruption cell's images are generated once for all models.
        costs: dict[str, dict[int, flops.FlopCount]] = {lm.card.name: {} for lm in loaded}
        idle_told, planned = False, set[str]()
        for cell in cells:
            for lm in loaded:
                cond = _resolve(cell.condition, lm, loaded, (lm.card.name, lm.weights) in randomized)
                if cond is None and cell.condition.protocol == "paper":
                    log.warning("skip %s %s: the official attack's ε and step are in a model's normalized input "
                                "space, which %s does not have (registered without mean and std)", lm.card.name,
                                cell.condition.name, lm.card.name)
                    continue
                if cond is None:
                    log.info("skip %s %s: no transfer source in this run", lm.card.name, cell.condition.name)
                    continue
                data_indices, subset = (corrupted.subset(cond, cell.n_images) if cond.kind == "corruption"
                                        else subset_indices(len(images), cell.n_images))
                exits = lm.card.exits[-1:] if cell.last_exit_only else lm.card.exits
                precision = amp.get((lm.card.name, lm.weights), "fp32") if cond.kind != "attack" else "fp32"
                keys = _key_rows(lm, cfg, subset, cond, exits, precision)
                planned.add(state_path(out, keys[0]).name)
                todo = [(k, t) for k, t in zip(keys, exits) if tuple(k.values()) not in done]  # a cell can be partly
                if not todo:  # stored: a last-exit-only cell of another suite holds one of its rows
                    log.info("skip %s %s (stored)", lm.card.name, cond.label())
                    if w.main:  # progress a kill left between writing the rows and removing it
                        _remove_state(state_path(out, keys[0]))
                    continue
                wanted = [t for _, t in todo]
                model_costs = costs[lm.card.name]
                for t in exits:
                    if t not in model_costs:
                        model_costs[t] = flops.count(lm.model, t, lm.card.input_size)
                net = runtime[lm.card.name].to(dev)
                cell_state = state_path(out, keys[0])
                state = cell_state.with_name(cell_state.name + (f"-rank{w.rank}of{w.size}" if w.size > 1 else ""))
                chunk = _chunk(cond, cfg)
                pos, chunk_ids = distributed.shard(len(data_indices), chunk)
                idle = _idle_ranks(len(data_indices), chunk, w.size, cond.name == "autoattack")
                if idle and w.main and not idle_told:
                    idle_told = True
                    log.warning("%s %s: %s", lm.card.name, cond.label(), idle)
                share = None
                if len(pos):  # this rank's images: a corruption cell's are generated for this share alone
                    cell_images, positions = (corrupted.share(cond, cell.n_images, pos) if cond.kind == "corruption"
                                              else (images, data_indices[pos]))
                    share = evaluate(net, cell_images, positions, cond, seed=cfg.seed, batch_size=cfg.batch_size,
                                     device=dev, workers=workers, sources=runtime, state=state, exits=wanted,
                                     desc=f"{lm.card.name} {cond.label()}" if progress else "",
                                     chunk_ids=chunk_ids, precision=precision)
                correct = merge(distributed.gather((pos, share)), data_indices, lm.model.n_exits)
                done |= {tuple(k.values()) for k in keys}  # a spec or radius given twice runs once
                speeds = {t: measure(net.at_exit(t), lm.card.input_size, dev, cfg.speed_budget, precision=precision)
                          for t in wanted} if cond.kind == "clean" and cfg.speed_budget > 0 and w.main else {}
                net.cpu()
                if not w.main:  # rank 0 writes the rows
                    _remove_state(state)
                    continue
                created = utc_now()
                peak = accel.peak_tflops(provenance["device"], precision,
                                         cfg.peak_tflops_bf16 if precision == "bf16" else cfg.peak_tflops)
                rows = []
                for k, t in todo:
                    c = correct.correct[t - 1]
                    cost = model_costs[t]
                    sp = speeds.get(t, NOT_TIMED)
                    seconds = correct.seconds_of(t, len(exits))
                    n_fwd, n_bwd = int(correct.n_forward[t - 1]), int(correct.n_backward[t - 1])
                    rows.append(Row(**k, n_images=int(c.size), n_correct=int(c.sum()), accuracy=float(c.mean()),
                                    gmacs=cost.gmacs, params_m=cost.params_m, input_size=lm.card.input_size,
                                    flops_uncounted=json.dumps(cost.uncounted, sort_keys=True),
                                    seconds=seconds, n_forward=n_fwd, n_backward=n_bwd,
                                    latency_ms=sp.latency_ms, throughput=sp.throughput, throughput_batch=sp.batch,
                                    mfu=_row_mfu(cond, correct, cost, model_costs[max(exits)], peak, w.size,
                                                 sp.throughput, n_fwd, n_bwd, seconds),
                                    family=lm.card.family, exits_total=len(lm.card.exits), created=created,
                                    **provenance))
                per_image.append(out / "per_image.csv", [(r, data_indices, correct.correct[t - 1])
                                                         for r, t in zip(rows, wanted)])
                append_checks(checks_path, [CheckRow(model=lm.card.name, weights=lm.weights, dataset=cfg.dataset,
                                                     exit=t, check="autoattack_flag", status="warn", value=1.0,
                                                     detail=msg, created=created) for t, msg in correct.notes])
                append_rows(path, rows)  # last: a cell killed before this line is run again whole
                _remove_state(cell_state)  # every rank's, of any world size an interrupted launch had
        if w.main:
            for lm in loaded:
                _record_glimpses(lm, cells, images, corrupted, cfg, out, dev)
            _tell_stale_state(out, planned)
        distributed.barrier()
        return path


def _row_mfu(cond: Condition, correct: Correct, cost: flops.FlopCount, deepest: flops.FlopCount, peak: float,
             ranks: int, throughput: float, n_fwd: int, n_bwd: int, seconds: float) -> float:
    """A row's MFU: from its exit's measured throughput (one device), else from the passes over the time they took
    on all ranks' devices. Where one pass or attack serves every exit, that is the cell's MFU, at the cost of the
    deepest exit it computed; a transfer cell's passes run on two models, so it has none."""
    if throughput > 0:
        return accel.mfu(cost.gmacs, peak, throughput=throughput)
    if correct.exit_seconds is not None:  # each exit attacked on its own, and timed
        return accel.mfu(cost.gmacs, peak * ranks, n_forward=n_fwd, n_backward=n_bwd, seconds=seconds)
    if cond.name == "transfer_pgd":
        return math.nan
    return accel.mfu(deepest.gmacs, peak * ranks, n_forward=n_fwd, n_backward=n_bwd, seconds=correct.seconds)


def state_path(out: Path, key: dict) -> Path:
    """Where a cell's resumable state lives, named by the key of its first row (ranks add a suffix)."""
    return out / ".state" / hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def _tell_stale_state(out: Path, planned: set[str]) -> None:
    """Name the progress files of cells this run did not plan: an interrupted run with other settings left them,
    and only that run, given again, resumes from them."""
    stale = {f.name[:16] for f in (out / ".state").glob("[!.]*")} - planned
    if stale:
        log.warning("%s holds the progress of %d interrupted cell(s) this run does not have (another suite, "
                    "radius or option); rerun those settings to resume them, or remove the folder", out / ".state",
                    len(stale))


def _remove_state(state: Path) -> None:
    for f in state.parent.glob(f"{state.name}*"):
        f.unlink(missing_ok=True)  # another rank may remove the same file


def _chunk(cond: Condition, cfg: RunConfig) -> int:
    """The batch ranks share a cell by: AutoAttack's own (each chunk seeded by its number), else --batch-size."""
    if cond.name == "autoattack":
        return int(json.loads(cond.params).get("batch_size", cfg.batch_size))
    return cfg.batch_size


def _idle_ranks(n: int, chunk: int, ranks: int, autoattack: bool = False) -> str:
    """Why some ranks wait in a cell of n images ('' if none does): ranks take whole batches."""
    batches = -(-n // chunk)
    if batches >= ranks:
        return ""
    hint = ("AutoAttack's chunks are the suite's, which seed them, not --batch-size" if autoattack
            else "a smaller --batch-size spreads small cells")
    return (f"{n} image(s) are {batches} batch(es) of {chunk} for {ranks} ranks, so {ranks - batches} wait (ranks take "
            f"whole batches, which keeps the rows equal to one process's; {hint})")


def _record_glimpses(lm: LoadedModel, cells: list[Cell], images: ImageSet, corrupted: CorruptedData, cfg: RunConfig,
                     out: Path, dev: torch.device) -> None:
    """Glimpse boxes on example images under the run's kinds of condition (models with glimpses only)."""
    corr = next((c.condition for c in cells if c.condition.kind == "corruption"), None)
    example = None
    if corr is not None:
        corr = dataclasses.replace(corr, severity=3)
        cset, positions, _, _ = corrupted.images(corr, glimpses.N_EXAMPLES)
        example = (corr, cset, positions)
    glimpses.record(lm, images, cfg.dataset, cfg.seed, out, dev, example,
                    attack=any(c.condition.kind == "attack" for c in cells))
