"""Plan the cells of a run, skip those already stored, evaluate the rest, append their rows."""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from bench import flops
from bench.conditions import Condition, suite
from bench.config import RunConfig
from bench.data import cache_dir, check_name, load_split, subset_indices
from bench.device import device_name, resolve_device
from bench.errors import BenchError
from bench.evaluate import evaluate
from bench.provenance import code_version, utc_now, versions
from bench.results import Row, append_rows, canonical_json, read_rows
from bench.specs import LoadedModel, expand, load

log = logging.getLogger(__name__)


def _probe_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as e:
        raise BenchError(f"cannot write to output folder {out}: {e.strerror or e}") from None


def _check_fits(lm: LoadedModel, n_classes: int, image_shape: tuple[int, ...], dataset: str) -> None:
    if lm.card.num_classes != n_classes:
        raise BenchError(f"{lm.card.name} has {lm.card.num_classes} classes but {dataset} has {n_classes}")
    if image_shape[:2] != (lm.card.input_size, lm.card.input_size):
        raise BenchError(f"{lm.card.name} takes {lm.card.input_size}-px images but {dataset} has "
                         f"{image_shape[0]}x{image_shape[1]}")


def _key_rows(lm: LoadedModel, cfg: RunConfig, subset: str, cond: Condition) -> list[dict]:
    return [dict(model=lm.card.name, weights=lm.weights, dataset=cfg.dataset, subset=subset, kind=cond.kind,
                 condition=cond.name, source=cond.source, protocol=cond.protocol, severity=cond.severity,
                 norm=cond.norm, epsilon=cond.epsilon, steps=cond.steps, step_size=cond.step_size,
                 restarts=cond.restarts, params=cond.params, exit=t, seed=cfg.seed, precision="fp32")
            for t in lm.card.exits]


def run(cfg: RunConfig, progress: bool = True) -> Path:
    """Evaluate every model under every condition of the suite; returns the results CSV path."""
    conditions = suite(cfg.suite)
    check_name(cfg.dataset)
    specs = [s for spec in cfg.models for s in expand(spec)]
    cache = cache_dir()
    loaded = [load(s, cfg.dataset, cache) for s in specs]
    images = load_split(cfg.dataset, "test", Path(cfg.data_root) if cfg.data_root else None)
    first, _ = images.get(0)
    for lm in loaded:
        _check_fits(lm, len(images.classes), first.shape, cfg.dataset)
    out = Path(cfg.out)
    _probe_writable(out)
    path = out / "results.csv"
    done = {r.key() for r in read_rows(path)}
    indices, subset = subset_indices(len(images), cfg.n_images)
    dev = resolve_device(cfg.device)
    provenance = dict(device=device_name(dev), torch=torch.__version__,
                      versions=canonical_json(versions()), code=code_version())
    for lm in loaded:
        costs: dict[int, flops.FlopCount] = {}
        for cond in conditions:
            keys = _key_rows(lm, cfg, subset, cond)
            if all(tuple(k.values()) in done for k in keys):
                log.info("skip %s %s (stored)", lm.card.name, cond.name)
                continue
            for t in lm.card.exits:
                costs.setdefault(t, flops.count(lm.model, t, lm.card.input_size))
            lm.model.to(dev)
            correct = evaluate(lm.model, images, indices, cond, batch_size=cfg.batch_size, device=dev,
                               workers=cfg.workers, desc=f"{lm.card.name} {cond.name}" if progress else "")
            lm.model.cpu()
            created = utc_now()
            rows = []
            for k, t, c in zip(keys, lm.card.exits, correct.correct):
                cost = costs[t]
                rows.append(Row(**k, n_images=int(c.size), n_correct=int(c.sum()), accuracy=float(c.mean()),
                                gmacs=cost.gmacs, params_m=cost.params_m, input_size=lm.card.input_size,
                                flops_uncounted=json.dumps(cost.uncounted, sort_keys=True),
                                seconds=correct.seconds / len(lm.card.exits), family=lm.card.family,
                                exits_total=len(lm.card.exits), created=created, **provenance))
            append_rows(path, rows)
    return path
