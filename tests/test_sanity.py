"""The report's sanity checks on hand-made result tables (no torch needed)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from bench.report.sanity import attack_findings
from bench.store.results import COLUMNS
from tests.test_results import make_row


def _frame(rows: list) -> pd.DataFrame:  # type: ignore[type-arg]
    return pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=list(COLUMNS))


def _att(
    name: str,
    eps: float,
    acc: float,
    norm: str = "linf",
    steps: int = 10,
    n: int = 100,
    **kw: object,
):  # type: ignore[no-untyped-def]
    return make_row(
        kind="attack",
        condition=name,
        protocol="strict",
        norm=norm,
        epsilon=eps,
        steps=steps,
        n_images=n,
        n_correct=round(acc * n),
        accuracy=acc,
        subset=f"perm0:{n}",
        **kw,
    )


def _status(findings: list, check: str) -> set[str]:  # type: ignore[type-arg]
    return {f.status for f in findings if f.check == check}


def test_a_healthy_sweep_passes_everything() -> None:
    rows = [_att("fgsm", e / 255, a, steps=1) for e, a in ((0, 0.9), (4, 0.5), (16, 0.2))]
    rows += [_att("pgd", e / 255, a) for e, a in ((0, 0.9), (4, 0.3), (16, 0.0))]
    rows += [
        _att("autoattack", 4 / 255, 0.25, steps=0, source="pyautoattack"),
        _att("transfer_pgd", 4 / 255, 0.6),
    ]
    findings = attack_findings(_frame(rows))
    assert findings and all(f.status == "ok" for f in findings), [
        f for f in findings if f.status != "ok"
    ]


def test_masking_signs_are_raised() -> None:
    # rises with ε
    rows = [_att("fgsm", e / 255, a, steps=1) for e, a in ((0, 0.9), (4, 0.3), (16, 0.4))]
    # above FGSM, high at 16/255
    rows += [_att("pgd", e / 255, a) for e, a in ((0, 0.9), (4, 0.5), (16, 0.2))]
    rows += [_att("autoattack", 4 / 255, 0.1, steps=0), _att("transfer_pgd", 4 / 255, 0.3)]
    f = attack_findings(_frame(rows))
    for check in (
        "monotone_in_eps",
        "large_eps_accuracy",
        "pgd_not_weaker_than_fgsm",
        "pgd_gap_to_autoattack",
        "transfer_not_stronger_than_whitebox",
    ):
        assert "warn" in _status(f, check), check


def test_one_image_of_noise_is_tolerated_and_other_subsets_are_not_compared() -> None:
    rows = [_att("pgd", 0.0, 0.50), _att("pgd", 2 / 255, 0.51), _att("pgd", 16 / 255, 0.0)]
    rows += [_att("autoattack", 2 / 255, 0.9, n=20)]  # a different subset: not comparable
    f = attack_findings(_frame(rows))
    assert _status(f, "monotone_in_eps") == {"ok"}
    assert not _status(f, "autoattack_not_weaker_than_pgd")


def test_rows_on_different_subsets_are_compared_on_shared_images(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from bench.store import per_image

    pgd = _att("pgd", 4 / 255, 0.5, n=4)
    aa = _att("autoattack", 4 / 255, 0.0, n=2)
    path = tmp_path / "per_image.csv"
    per_image.append(
        path,
        [
            (pgd, np.array([1, 3, 5, 7]), np.array([True, True, False, False])),
            (aa, np.array([1, 3]), np.array([False, False])),
        ],
    )
    images = per_image.read(path)
    assert images[per_image.row_key(pgd)][0].tolist() == [1, 3, 5, 7]
    df = _frame([pgd, aa])
    df["row_key"] = [per_image.row_key(pgd), per_image.row_key(aa)]
    f = [x for x in attack_findings(df, images) if x.check == "pgd_gap_to_autoattack"]
    # on images 1 and 3 PGD leaves 100 % and AutoAttack 0 %: a 100-point gap on the same 2 images
    assert (
        len(f) == 1
        and f[0].status == "warn"
        and "100.0 points" in f[0].detail
        and "same 2 images" in f[0].detail
    )


def test_a_damaged_per_image_record_is_an_error_not_a_silent_misalignment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import pytest

    from bench.core.errors import BenchError
    from bench.store import per_image

    path = tmp_path / "per_image.csv"
    per_image.append(
        path,
        [(_att("pgd", 4 / 255, 0.5, n=4), np.array([1, 3, 5, 7]), np.array([1, 1, 0, 0], bool))],
    )
    good = path.read_text()
    for damaged in (
        good[:-3] + "\n",
        good.replace("1 3 5 7", "1 3 x 7"),
        good.replace(",1100", ",1120"),
    ):
        path.write_text(damaged)
        with pytest.raises(BenchError, match=r"per_image.csv:2: damaged per-image record"):
            per_image.read(path)


def test_a_folder_with_two_data_sets_checks_each_apart() -> None:
    """One model's sweeps on two data sets: each judged on its own (this raised a pandas error)."""
    rows = []
    for dataset, strong in (("a", 0.3), ("b", 0.6)):
        rows += [
            _att("fgsm", e / 255, a, steps=1, dataset=dataset)
            for e, a in ((0, 0.9), (4, 0.5), (16, 0.2))
        ]
        rows += [_att("pgd", e / 255, a, dataset=dataset) for e, a in ((0, 0.9), (4, strong))]
    findings = attack_findings(_frame(rows))
    assert _status(findings, "pgd_not_weaker_than_fgsm") == {"ok", "warn"}, "b's PGD 0.6 > FGSM 0.5"


def test_a_weaker_attack_breaking_what_a_stronger_one_missed_is_raised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from bench.store import per_image

    fgsm = _att("fgsm", 4 / 255, 0.5, steps=1, n=6)
    pgd = _att("pgd", 4 / 255, 0.5, n=6)
    idx = np.arange(6)
    # FGSM breaks images 0-2, PGD images 3-5: FGSM broke 3 images PGD left robust
    fgsm_ok, pgd_ok = idx >= 3, idx < 3
    per_image.append(tmp_path / "p.csv", [(fgsm, idx, fgsm_ok), (pgd, idx, pgd_ok)])
    df = _frame([fgsm, pgd])
    df["row_key"] = [per_image.row_key(fgsm), per_image.row_key(pgd)]
    images = per_image.read(tmp_path / "p.csv")
    (f,) = [x for x in attack_findings(df, images) if x.check == "weaker_attack_breaks_more"]
    assert f.status == "warn" and "fgsm broke 3 of 6 images that pgd left robust" in f.detail
    # the same robust images: nothing to raise; without records, nothing to compare
    per_image.append(tmp_path / "q.csv", [(fgsm, idx, pgd_ok), (pgd, idx, pgd_ok)])
    (f,) = [
        x
        for x in attack_findings(df, per_image.read(tmp_path / "q.csv"))
        if x.check == "weaker_attack_breaks_more"
    ]
    assert f.status == "ok"
    assert not [x for x in attack_findings(df, {}) if x.check == "weaker_attack_breaks_more"]


def test_per_cell_attack_indicators_collapse_to_one_line_per_model() -> None:
    from bench.report.markdown import _warn_rows
    from bench.store.checks import CheckRow

    def row(exit_: int, k: int) -> CheckRow:
        return CheckRow(
            model="m",
            weights="w",
            dataset="d",
            exit=exit_,
            check="attack_not_converged",
            status="warn",
            value=float(k),
            detail=f"pgd: {k} images",
            created="",
        )

    (r,) = _warn_rows([row(1, 2), row(3, 7), row(2, 4)])
    assert r["exit"] == "1, 2, 3" and r["detail"] == (
        "raised in 3 cells; the largest count, at exit 3: pgd: 7 images"
    )
