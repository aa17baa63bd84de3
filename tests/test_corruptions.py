"""Corruptions: seeded per image (not from the global RNG), cached, read from rendered folders."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.corruptions import base, generate, reference, rendered
from tests.conftest import cli


def _images(n: int = 6, side: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "impulse_noise", "glass_blur", "fog", "frost", "brightness"]
)
def test_same_seed_same_bytes_and_the_global_rng_is_untouched(name: str) -> None:
    img = _images(1)[0]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = reference.corrupt(img, name, 3, 7)
    assert np.array_equal(np.random.get_state()[1], before), (
        "the caller's NumPy RNG state is restored"
    )
    b = reference.corrupt(img, name, 3, 7)
    assert a.dtype == np.uint8 and a.shape == img.shape and np.array_equal(a, b)
    c = reference.corrupt(img, name, 3, 8)
    if name == "brightness":
        assert np.array_equal(a, c), "deterministic corruptions ignore the seed"
    else:
        assert not np.array_equal(a, c), "random corruptions follow the seed"


def test_results_do_not_depend_on_workers_batch_or_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imgs, idx = _images(6), np.array([3, 8, 11, 20, 21, 40])
    one = reference.corrupt_many(imgs, idx, "shot_noise", 2, 0)
    monkeypatch.setattr(generate, "WORKER_BYTES", 0)  # start the workers even for this little work
    generate.prepare(
        imgs, idx, [("shot_noise", 2), ("snow", 1)], 0, cache=tmp_path, fingerprint="f", workers=2
    )
    two = generate.corrupted(imgs, idx, "shot_noise", 2, 0, cache=tmp_path, fingerprint="f")
    assert np.array_equal(one, two)
    part = reference.corrupt_many(imgs[[1, 4]], idx[[1, 4]], "shot_noise", 2, 0)
    assert np.array_equal(part, one[[1, 4]])


def test_cache_is_reused_and_a_damaged_entry_regenerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imgs, idx = _images(3), np.arange(3)
    first = generate.corrupted(imgs, idx, "fog", 2, 0, cache=tmp_path, fingerprint="f")
    (entry,) = tmp_path.glob("fog-s2-*.npy")

    def refuse(*a: object) -> None:
        raise AssertionError("regenerated although cached")

    with monkeypatch.context() as mp:
        mp.setattr(reference, "corrupt_many", refuse)
        assert np.array_equal(
            generate.corrupted(imgs, idx, "fog", 2, 0, cache=tmp_path, fingerprint="f"), first
        )
    entry.write_bytes(b"damaged")
    assert np.array_equal(
        generate.corrupted(imgs, idx, "fog", 2, 0, cache=tmp_path, fingerprint="f"), first
    )
    # cut short: prepare's header-only check still finds it damaged
    entry.write_bytes(entry.read_bytes()[:-7])
    generate.prepare(imgs, idx, [("fog", 2)], 0, cache=tmp_path, fingerprint="f")
    assert np.array_equal(np.load(entry), first)
    other = generate.cache_path(tmp_path, "f", idx, "fog", 2, 1)
    assert other != entry, "the seed is part of the key"


def test_bad_corruption_input_is_named() -> None:
    img = _images(1)[0]
    with pytest.raises(BenchError, match="did you mean gaussian_noise"):
        reference.corrupt(img, "gausian_noise", 1, 0)
    for s in (0, 6, 3.0, True):
        with pytest.raises(BenchError, match="severity must be an integer in 1..5"):
            reference.corrupt(img, "fog", s, 0)  # type: ignore[arg-type]
    import torch

    from bench.core.conditions import corruption
    from bench.corruptions import fast

    for s in (0, 2.5):
        with pytest.raises(BenchError, match="severity must be an integer in 1..5"):
            fast.corrupt_batch(img[None], np.zeros(1, np.int64), "fog", s, 0, torch.device("cpu"))  # type: ignore[arg-type]
        with pytest.raises(BenchError, match="severity must be an integer in 1..5"):
            corruption("fog", s)  # type: ignore[arg-type]
    with pytest.raises(BenchError, match="unknown batched corruption 'pixelate'"):
        fast.corrupt_batch(img[None], np.zeros(1, np.int64), "pixelate", 1, 0, torch.device("cpu"))
    with pytest.raises(BenchError, match="28x28 px are too small"):
        reference.corrupt(_images(1, 28)[0], "fog", 1, 0)
    assert base.ALL[:15] == base.COMMON and len(base.EXTRA) == 4 and base.GROUP["fog"] == "weather"


def _fake_c_tree(root: Path, names: tuple[str, ...], side: int = 224) -> None:
    """A fake ImageNet-C tree: one image per class, every corruption/severity linked to one copy."""
    from bench.data import imagenet

    shared = root.parent / f"{root.name}-classes"
    for k, w in enumerate(imagenet.wnids()):
        (shared / w).mkdir(parents=True)
        Image.new("RGB", (side, side), (k, 10, 20)).save(
            shared / w / f"ILSVRC2012_val_{k:08d}.JPEG", quality=95
        )
    for n in names:
        for s in range(1, 6):
            (root / n).mkdir(parents=True, exist_ok=True)
            (root / n / str(s)).symlink_to(shared, target_is_directory=True)


def test_imagenet100c_builder_and_loader_without_resize(tmp_path: Path) -> None:
    _fake_c_tree(tmp_path / "inc", ("fog", "snow"), side=230)
    out = rendered.build(tmp_path / "inc", tmp_path / "in100c")
    rendered.build(tmp_path / "inc", tmp_path / "in100c")  # re-runnable
    ds = rendered.load(out, "fog", 3)
    img, label = ds.get(7)
    assert len(ds) == 100 and label == 7 and img.shape == (230, 230, 3), (
        "no resize or crop of rendered files"
    )
    assert abs(int(img[100, 100, 0]) - 7) <= 2
    with pytest.raises(BenchError, match="missing contrast/1"):
        rendered.check_tree(out, ("fog", "contrast"))


def test_imagenet100c_builder_refuses_missing_classes_and_severities(tmp_path: Path) -> None:
    _fake_c_tree(tmp_path / "inc", ("fog",))
    (tmp_path / "inc" / "fog" / "5").unlink()
    with pytest.raises(BenchError, match="missing fog/5"):
        rendered.build(tmp_path / "inc", tmp_path / "out")
    with pytest.raises(BenchError, match="no ImageNet-C corruption folders"):
        rendered.build(tmp_path / "empty", tmp_path / "out2")


def test_corrupt_rendered_files_fail_unless_skipped(tmp_path: Path) -> None:
    from bench.data import imagenet

    _fake_c_tree(tmp_path / "inc", ("fog",))
    w = imagenet.wnids()[0]
    (tmp_path / "inc-classes" / w / f"ILSVRC2012_val_{0:08d}.JPEG").write_bytes(b"\xff\xd8 broken")
    ds = rendered.load(tmp_path / "inc", "fog", 1)
    with pytest.raises(BenchError, match="cannot read image .*val_00000000.JPEG"):
        ds.get(0)
    assert len(rendered.load(tmp_path / "inc", "fog", 1, skip_corrupt=True)) == 99


def test_rendered_suite_through_the_cli(tmp_path: Path) -> None:
    from bench.cli import main
    from bench.store.results import read_rows
    from tests.test_data import _fake_imagenet

    _fake_imagenet(tmp_path / "in")
    assert (
        main(["data", "build", "imagenet100", str(tmp_path / "in"), str(tmp_path / "in100")]) == 0
    )
    _fake_c_tree(tmp_path / "inc", base.COMMON)
    assert (
        main(["data", "build", "imagenet100-c", str(tmp_path / "inc"), str(tmp_path / "in100c")])
        == 0
    )
    # a 224-px, 100-class model that costs next to nothing per image
    net = tmp_path / "pooled_net.py"
    net.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        from bench import register_model

        @register_model("pooled_net", num_classes=100, input_size=224, mean=None, std=None)
        def pooled_net() -> nn.Module:
            return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 16, 100))
    """)
    )
    out = tmp_path / "run"
    assert (
        cli(
            "run --suite corruptions_rendered --models {} --data imagenet100 --data-root {} "
            "--corruption-root {} --n-images 2 --workers 0 --out {}",
            f"{net}@random",
            tmp_path / "in100",
            tmp_path / "in100c",
            out,
        )
        == 0
    )
    rows = [r for r in read_rows(out / "results.csv") if r.kind == "corruption"]
    assert (
        len(rows) == 75
        and {r.source for r in rows} == {"rendered"}
        and all(r.n_images == 2 for r in rows)
    )
    assert "### pre-rendered files (75 by rendered conditions)" in (out / "report.md").read_text()


def test_metric_formulas_on_a_hand_made_table() -> None:
    from bench.report.metrics import COMMON, alexnet_reference, mce, relative_mce

    ref = {c: {s: 0.2 + 0.1 * s for s in range(1, 6)} for c in COMMON}  # errors 0.3 .. 0.7, sum 2.5
    half = {c: {s: e / 2 for s, e in v.items()} for c, v in ref.items()}
    assert mce(ref, ref)[0] == pytest.approx(100.0)
    assert mce(half, ref)[0] == pytest.approx(50.0)
    assert relative_mce(ref, 0.2, ref, 0.2)[0] == pytest.approx(100.0)
    # relative: Σ(E - 0.1) = 2.0 for the model vs Σ(E - 0.2) = 1.5 for the reference
    assert relative_mce(ref, 0.1, ref, 0.2)[0] == pytest.approx(100 * 2.0 / 1.5)
    flat = {c: {s: 0.1 for s in range(1, 6)} for c in COMMON}
    value, why = relative_mce(ref, 0.2, flat, 0.5)
    assert math.isnan(value) and "denominator" in why
    assert math.isnan(mce({k: v for k, v in ref.items() if k != "fog"}, ref)[0]), (
        "a missing corruption gives NaN"
    )
    alex, alex_clean = alexnet_reference()
    assert mce(alex, alex)[0] == pytest.approx(100.0) and alex_clean == pytest.approx(0.4348)
    assert sum(alex["gaussian_noise"].values()) / 5 == pytest.approx(0.886428)


def test_example_grid_shows_one_image_clean_then_corrupted(tmp_path: Path) -> None:
    from bench.core.conditions import corruption
    from bench.data import load_split
    from bench.data.corrupted import CorruptedData

    data = CorruptedData(load_split("cluttered_fmnist", "test"), 0, tmp_path / "c", 1)
    path = data.example_grid(tmp_path / "grid.png", [corruption("brightness", 1, "torch")])
    grid = np.asarray(Image.open(path))
    side = grid.shape[0]
    clean, s1 = grid[:, :side].astype(int), grid[:, side : 2 * side].astype(int)
    # brightness only raises V in HSV: the corrupted cell is the same picture, never darker
    assert (s1 >= clean - 1).all() and np.corrcoef(clean.ravel(), s1.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("source", ["torch", "reference"])
def test_a_share_of_a_cell_is_those_images_of_the_whole_cell(tmp_path: Path, source: str) -> None:
    """Ranks generate only their share: each image must come out as it does in the whole cell."""
    from bench.core.conditions import corruption
    from bench.data import load_split
    from bench.data.corrupted import CorruptedData

    clean = load_split("cluttered_fmnist", "test")
    cond = corruption("glass_blur", 2, source)
    whole, positions, idx, _ = CorruptedData(clean, 0, tmp_path / "a", 1).images(cond, 9)
    pos = np.array([1, 4, 7, 8])
    part, where = CorruptedData(clean, 0, tmp_path / "b", 1).share(cond, 9, pos)
    assert len(part) == len(pos) and len(whole) == len(idx) == 9
    for p, w in zip(pos, where):
        got, want = part.get(int(w)), whole.get(int(positions[p]))
        assert np.array_equal(got[0], want[0]) and got[1] == want[1]


def test_every_model_of_a_run_evaluates_one_generation_of_each_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.core.config import RunConfig
    from bench.corruptions import fast
    from bench.evaluation.runner import run
    from bench.store.results import read_rows

    calls: list[tuple[str, int]] = []
    real = fast.corrupt_batch

    def counted(images, indices, name, severity, seed, device):  # type: ignore[no-untyped-def]
        if len(images) == 5:  # the cells' images (example grids and glimpse figures take 1 and 4)
            calls.append((name, severity))
        return real(images, indices, name, severity, seed, device)

    monkeypatch.setattr(fast, "corrupt_batch", counted)
    out = tmp_path / "run"
    run(
        RunConfig(
            models=("resnet_tiny@random", "mgnet_tiny@random"),
            suite="corruptions",
            n_images=5,
            corruptions=("fog", "brightness"),
            out=str(out),
            speed_budget=0.0,
        ),
        progress=False,
    )
    cells = [(n, s) for n in ("fog", "brightness") for s in range(1, 6)]
    assert sorted(calls) == sorted(cells)
    rows = read_rows(out / "results.csv")
    assert {(r.model, r.condition, r.severity) for r in rows if r.kind == "corruption"} == {
        (m, n, s) for m in ("resnet_tiny", "mgnet_tiny") for n, s in cells
    }


def test_cached_corruptions_follow_the_clean_pixels_not_only_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder set's fingerprint (file names and sizes) survives another resize, crop or decoder;
    the cached reference images must not: the cache key hashes the decoded subset too."""
    from bench.core.conditions import corruption
    from bench.corruptions import reference
    from bench.data import ArrayImageSet, load_split
    from bench.data import corrupted as corrupted_data

    monkeypatch.setattr(corrupted_data, "fingerprint", lambda images: "same files")
    clean = load_split("cluttered_fmnist", "test")
    cond = corruption("pixelate", 3, "reference")
    first = corrupted_data.CorruptedData(clean, 0, tmp_path, 1).images(cond, 3)[0].images.copy()
    redone = ArrayImageSet(clean.name, clean.split, clean.classes, 255 - clean.images, clean.labels)
    second, _, idx, _ = corrupted_data.CorruptedData(redone, 0, tmp_path, 1).images(cond, 3)
    assert not np.array_equal(first, second.images)
    assert np.array_equal(
        second.images, reference.corrupt_many(redone.images[idx], idx, "pixelate", 3, 0)
    )


def test_the_example_grid_enlarges_small_images(tmp_path: Path) -> None:
    from bench.core.conditions import corruption
    from bench.data import ArrayImageSet
    from bench.data.corrupted import CorruptedData

    small = ArrayImageSet(
        "toy",
        "test",
        ("a",),
        np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), np.uint8),
        np.zeros(3, np.int64),
    )
    path = CorruptedData(small, 0, tmp_path / "c", 1).example_grid(
        tmp_path / "grid.png", [corruption("contrast", 1, "torch")]
    )
    # 40 px cells, drawn twice as large
    assert np.asarray(Image.open(path)).shape[:2] == (80, 6 * 80)


def test_prepare_checks_a_cached_entry_without_reading_its_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run asks prepare if conditions are cached, reads each once; prepare only maps files."""
    imgs, idx = _images(3), np.arange(3)
    generate.corrupted(imgs, idx, "fog", 2, 0, cache=tmp_path, fingerprint="f")
    modes: list[object] = []
    real = np.load

    def load(*a: object, **kw: object) -> object:
        modes.append(kw.get("mmap_mode"))
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(generate.np, "load", load)
    generate.prepare(imgs, idx, [("fog", 2)], 0, cache=tmp_path, fingerprint="f")
    assert modes == ["r"]
