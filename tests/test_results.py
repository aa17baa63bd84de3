"""The results CSV: exact round trip, atomic appends, refusal of foreign files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.store.results import COLUMNS, KEY_FIELDS, SCORING, Row, append_rows, read_rows

REPO = Path(__file__).resolve().parent.parent

# the key columns of a strict PGD-10 row at 4/255
PGD_4 = dict(
    kind="attack",
    condition="pgd",
    source="bench",
    protocol="strict",
    norm="linf",
    epsilon=4 / 255,
    steps=10,
    step_size=1 / 255,
    restarts=1,
)


def make_row(**kw: object) -> Row:
    base = dict(
        model="m",
        weights="random",
        dataset="d",
        subset="all",
        kind="clean",
        condition="clean",
        source="dataset",
        protocol="",
        severity=0,
        norm="",
        epsilon=0.0,
        steps=0,
        step_size=0.0,
        restarts=0,
        params="{}",
        exit=1,
        seed=0,
        precision="fp32",
        scoring=SCORING,
        n_images=3,
        n_correct=1,
        accuracy=1 / 3,
        gmacs=0.1 + 0.2,
        params_m=1.5,
        input_size=64,
        flops_uncounted='{"aten::add_": 2}',
        seconds=0.25,
        n_forward=3,
        n_backward=0,
        latency_ms=1.25,
        throughput=812.5,
        throughput_batch=64,
        mfu=0.125,
        family="resnet",
        exits_total=1,
        device="cpu (2 threads)",
        torch="2.14.1",
        versions='{"torch":"2.14.1"}',
        code="",
        created="2026-11-25T00:00:00+00:00",
    )
    # rows must agree with themselves: accuracy = n_correct / n_images
    if "accuracy" in kw and "n_correct" not in kw:
        base["n_images"] = kw.get("n_images", 20)
        base["n_correct"] = round(float(kw["accuracy"]) * base["n_images"])  # type: ignore[arg-type]
    return Row(**{**base, **kw})  # type: ignore[arg-type]


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    rows = [make_row(), make_row(exit=2, epsilon=4 / 255, params='{"a,b":"x\\"y"}')]
    append_rows(path, rows[:1])
    append_rows(path, rows[1:])
    assert read_rows(path) == rows
    assert path.read_text().splitlines()[0].split(",") == list(COLUMNS)
    assert KEY_FIELDS[0] == "model" and KEY_FIELDS[-1] == "scoring" and "accuracy" not in KEY_FIELDS
    import numpy as np

    # NumPy 2 reprs it as np.float64(...)
    append_rows(path, [make_row(exit=3, epsilon=np.float64(1 / 3))])
    assert read_rows(path)[-1].epsilon == 1 / 3


def test_failed_append_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.csv"
    append_rows(path, [make_row()])
    before = path.read_bytes()

    def boom(*a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError):
        append_rows(path, [make_row(exit=2)])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left behind


def test_foreign_or_damaged_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(BenchError, match="header does not match"):
        read_rows(path)
    append_rows(tmp_path / "ok.csv", [make_row()])
    text = (tmp_path / "ok.csv").read_text()
    (tmp_path / "cut.csv").write_text(text + "m,random,d\n")
    with pytest.raises(BenchError, match="expected"):
        read_rows(tmp_path / "cut.csv")
    for cut in (1, 3, 5, 10):  # a line cut inside its last field, `created`, still has every field
        (tmp_path / "cut.csv").write_text(text + text.splitlines()[1][:-cut] + "\n")
        with pytest.raises(
            BenchError, match=r"cut.csv:3: cannot parse results row: created is not a time"
        ):
            read_rows(tmp_path / "cut.csv")
    append_rows(
        tmp_path / "json.csv", [make_row(), make_row(exit=2, flops_uncounted='{"aten::add_": 2')]
    )
    with pytest.raises(BenchError, match=r"json.csv:3: cannot parse results row: Expecting"):
        read_rows(tmp_path / "json.csv")  # the report would json.loads it
    bad = tmp_path / "bad.csv"
    for damaged, says in (
        (text.replace("random", "r\xe9", 1).encode("latin-1"), "cannot parse CSV file"),
        (text.replace("random", "r" * 200_000, 1).encode(), "field larger than field limit"),
    ):
        bad.write_bytes(damaged)
        with pytest.raises(BenchError, match=says):
            read_rows(bad)
    for i, row in enumerate(
        (
            make_row(n_correct=1, accuracy=0.5),
            make_row(n_correct=1, accuracy=float("nan")),
            make_row(n_correct=4, accuracy=4 / 3),
        )
    ):
        append_rows(tmp_path / f"acc{i}.csv", [row])
        with pytest.raises(
            BenchError,
            match=r":2: cannot parse results row: accuracy .* is not n_correct / n_images",
        ):
            read_rows(tmp_path / f"acc{i}.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(BenchError, match="cannot read CSV file"):
        read_rows(tmp_path / "dir.csv")


def test_appending_to_a_file_saved_without_its_last_newline_keeps_rows_apart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.csv"
    append_rows(path, [make_row()])
    path.write_text(path.read_text().rstrip("\n"))  # as some editors save it
    append_rows(path, [make_row(exit=2)])
    assert [r.exit for r in read_rows(path)] == [1, 2]


def test_rows_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_row().accuracy = 1.0  # type: ignore[misc]


# the columns each older results schema lacked (v2 added the speed columns, v3 mfu, v4 scoring)
OLDER = {
    1: ("latency_ms", "throughput", "throughput_batch", "mfu", "scoring"),
    2: ("mfu", "scoring"),
    3: ("scoring",),
}


@pytest.mark.parametrize("version", sorted(OLDER))
def test_a_file_an_older_harness_wrote_is_refused_untouched(tmp_path: Path, version: int) -> None:
    """Rows measured without today's columns are neither resumed nor upgraded: one line says to run
    into a new folder, and the file stays as it was."""
    path = tmp_path / "results.csv"
    cols = [c for c in COLUMNS if c not in OLDER[version]]
    row = make_row()
    path.write_text(
        ",".join(cols)
        + "\n"
        + ",".join(
            repr(getattr(row, c)) if isinstance(getattr(row, c), float) else str(getattr(row, c))
            for c in cols
        )
        + "\n"
    )
    before = path.read_bytes()
    for action in (lambda: read_rows(path), lambda: append_rows(path, [make_row(exit=2)])):
        with pytest.raises(
            BenchError, match=r"written by an older harness .*run into a new folder"
        ):
            action()
    assert path.read_bytes() == before


def test_tables_show_the_newest_attack_variant_per_cell(tmp_path: Path) -> None:
    from bench.report.tables import latest, load_results

    path = tmp_path / "results.csv"
    pgd = PGD_4
    append_rows(
        path,
        [
            make_row(),
            make_row(**pgd, accuracy=0.4, created="2026-11-24T00:00:00+00:00"),
            # a later run, another variant
            make_row(**pgd, params='{"early_stop":true}', accuracy=0.3),
            make_row(**{**pgd, "epsilon": 8 / 255}, accuracy=0.1),
        ],
    )
    t = latest(load_results(path))
    att = t[t.kind == "attack"].set_index("epsilon")
    assert (
        len(t) == 3
        and att.loc[4 / 255, "accuracy"] == 0.3
        and att.loc[4 / 255, "params"] == '{"early_stop":true}'
    )


def test_tables_show_one_run_of_each_cell_and_each_models_newest_weights(tmp_path: Path) -> None:
    """Runs appended to one file with another subset, seed, precision or backend, or a retrained
    model, never mix into one table: each cell shows its newest row, each model its newest weights;
    pre-rendered files stay apart."""
    from bench.report.corruption_section import headline
    from bench.report.tables import current, latest, load_results

    path = tmp_path / "results.csv"
    old, new = "2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00"
    fog = dict(kind="corruption", condition="fog", severity=1, source="reference")
    append_rows(
        path,
        [
            make_row(**fog, accuracy=0.5, created=old),
            # a later run
            make_row(
                **{**fog, "source": "torch"}, subset="n100", seed=1, accuracy=0.25, created=new
            ),
            # files: its own sweep
            make_row(**{**fog, "source": "rendered"}, accuracy=0.75, created=new),
            make_row(precision="bf16", accuracy=0.5, created=old),
            make_row(accuracy=0.75, created=new),
            make_row(model="n", weights="aaa", accuracy=0.5, created=old),
            # retrained, evaluated again
            make_row(model="n", weights="bbb", accuracy=0.25, created=new),
        ],
    )
    df = load_results(path)
    t = latest(current(df))
    fogs = t[t.kind == "corruption"].set_index("source").accuracy
    assert fogs.to_dict() == {"torch": 0.25, "rendered": 0.75}
    clean = t[t.kind == "clean"].set_index("model").accuracy
    assert clean.to_dict() == {"m": 0.75, "n": 0.25}
    assert set(current(df).weights[current(df).model == "n"]) == {"bbb"}

    # a full sweep plus a later rerun of one corruption with the other backend: still one complete
    # sweep
    from bench.report.metrics import COMMON

    sweep = [
        make_row(
            kind="corruption",
            condition=c,
            severity=s,
            source="reference",
            accuracy=0.5,
            created=old,
        )
        for c in COMMON
        for s in range(1, 6)
    ]
    again = [
        make_row(
            kind="corruption",
            condition=COMMON[0],
            severity=s,
            source="torch",
            accuracy=0.25,
            created=new,
        )
        for s in range(1, 6)
    ]
    path2 = tmp_path / "sweep.csv"
    append_rows(path2, sweep + again)
    h = headline(current(load_results(path2)), None)
    assert len(h) == 1 and h.corruption_acc.iloc[0] == pytest.approx((70 * 0.5 + 5 * 0.25) / 75)


def test_the_headline_names_the_seeds_when_its_columns_come_from_runs_of_several(
    tmp_path: Path,
) -> None:
    """A clean rerun with seed 1 beside attacks of seed 0 shares a row of the headline; the caption
    says which is which (one seed: nothing to say)."""
    from bench.report.headline import section
    from bench.report.metrics import COMMON
    from bench.report.tables import load_results

    pgd = dict(PGD_4, accuracy=0.25)
    sweep = [
        make_row(kind="corruption", condition=c, severity=s, source="torch", accuracy=0.5)
        for c in COMMON
        for s in range(1, 6)
    ]
    one = tmp_path / "one.csv"
    append_rows(one, [make_row(), make_row(**pgd)] + sweep)
    assert "seed" not in "\n".join(section(load_results(one), None))
    mixed = tmp_path / "mixed.csv"
    append_rows(
        mixed,
        [
            make_row(),
            make_row(**pgd),
            make_row(seed=1, accuracy=0.5, created="2026-11-26T00:00:00+00:00"),
            make_row(model="n", seed=1, **pgd),
        ]
        + sweep,
    )
    caption = "\n".join(section(load_results(mixed), None))
    assert (
        "Columns come from runs with different seeds (seed 0: mean corruption acc (%), mCE; seeds "
        "0, 1: PGD-10 L∞ 4/255 (%); seed 1: latency (ms), throughput (img/s), clean (%))."
    ) in caption


def test_results_readme_documents_every_column_in_order() -> None:
    import re

    from bench.store.results import SCHEMA_VERSION

    doc = (Path(__file__).parents[1] / "results" / "README.md").read_text()
    title = f"## `results.csv` schema (v{SCHEMA_VERSION})"
    assert title in doc
    section = doc.split(title, 1)[1].split("\n## ", 1)[0]
    named = [
        c.strip("` ")
        for cell in re.findall(r"^\| (`[^|]+) \|", section, re.M)
        for c in cell.split(",")
    ]
    assert named == list(COLUMNS)


def test_the_corruption_section_keeps_data_sets_apart(tmp_path: Path) -> None:
    """Runs on two data sets in one results file each get their own tables, means and mCE.

    A baseline with no corruption rows in one of them leaves that one without mCE instead of failing
    the report.
    """
    from bench.report.corruption_section import section
    from bench.report.metrics import COMMON
    from bench.report.tables import load_results

    def sweep(dataset: str, model: str, acc: float) -> list[Row]:
        return [
            make_row(
                dataset=dataset,
                model=model,
                kind="corruption",
                condition=c,
                severity=s,
                source="torch",
                accuracy=acc,
            )
            for c in COMMON
            for s in range(1, 6)
        ]

    path = tmp_path / "results.csv"
    append_rows(
        path,
        sweep("a", "m", 0.5)
        + sweep("a", "base", 0.75)
        + sweep("b", "m", 0.25)
        + sweep("a", "p", 0.9)[:5]
        + [make_row(dataset=d, accuracy=0.5) for d in ("a", "b")],
    )
    lines = "\n".join(section(load_results(path), tmp_path, "base", None))
    a, b = lines.split("### a, ")[1].split("### b, ")
    # no per-image records: no interval for a mean over corruptions, so no best is called
    assert (
        "| m | 1/1 | 0.3 | 50.0 (29.9–70.1) | 50.0 | 200.0 |" in a
        and "| base | 1/1 | 0.3 | – | 75.0 | 100.0 |" in a
    )
    assert "| p | 1/1 | 0.3 | – | 90.0 (partial) |" in a, "a partial sweep is not ranked"
    assert (
        "| m | 1/1 | 0.3 | 50.0 (29.9–70.1) | 25.0 | – |" in b
        and "No mCE: the baseline `base` has no corruption rows" in b
    )
    assert (tmp_path / "figures" / "corruption_heatmap_a_generated_m.png").is_file()
    assert (tmp_path / "figures" / "corruption_heatmap_b_generated_m.png").is_file()


def test_the_corruption_section_says_why_an_mce_is_missing(tmp_path: Path) -> None:
    """The corruption section says why an mCE is missing.

    A model without clean rows gets no relative mCE, with the reason. An origin (pre-rendered files)
    where the baseline has no rows gets no mCE, not a note that it was normalised by that baseline.
    """
    from bench.report.corruption_section import section
    from bench.report.metrics import COMMON
    from bench.report.tables import load_results

    def sweep(model: str, acc: float, source: str = "torch") -> list[Row]:
        return [
            make_row(
                model=model, kind="corruption", condition=c, severity=s, source=source, accuracy=acc
            )
            for c in COMMON
            for s in range(1, 6)
        ]

    path = tmp_path / "results.csv"
    append_rows(
        path,
        sweep("m", 0.5)
        + sweep("base", 0.75)
        + sweep("m", 0.25, "rendered")
        + [make_row(model="base", accuracy=0.8)],
    )
    generated, rendered = "\n".join(section(load_results(path), tmp_path, "base", None)).split(
        "### pre-rendered"
    )
    assert "| m | 1/1 | 0.3 | – | 50.0 | 200.0 | – |" in generated
    assert (
        "normalised by `base` (exit 1)" in generated
        and "Relative mCE not defined: no clean rows for `m`." in generated
    )
    assert (
        "normalised by" not in rendered
        and "No mCE: the baseline `base` has no corruption rows here." in rendered
    )
    assert "| m | 1/1 | 0.3 | – | 25.0 | – | – |" in rendered


def test_the_attack_section_names_pgd_by_its_steps_and_keeps_data_sets_apart(
    tmp_path: Path,
) -> None:
    from bench.report.headline import section as headline_section
    from bench.report.markdown import _attack_section
    from bench.report.tables import load_results

    pgd = dict(PGD_4, steps=2)
    path = tmp_path / "results.csv"
    append_rows(
        path,
        [
            make_row(dataset="a"),
            make_row(dataset="a", accuracy=0.25, **pgd),
            make_row(dataset="b", model="n"),
            make_row(dataset="b", model="n", accuracy=0.5, **pgd),
            make_row(dataset="b", model="n", accuracy=0.1, **{**pgd, "epsilon": 8 / 255}),
        ],
    )
    df = load_results(path)
    text = "\n".join(_attack_section(df, tmp_path, {}))
    a, b = text.split("### Robust accuracy at ε = 4/255 (L∞) (a)")[1].split(
        "### Robust accuracy at ε = 4/255 (L∞) (b)"
    )
    assert "PGD-2 L∞ (%)" in a and "PGD-10" not in text and "FGSM" not in a, "no empty column"
    assert "| m | 1/1 | 0.3 | 33.3 (6.1–79.2) | 25.0 (11.2–46.9) |" in a and "| n |" not in a
    assert (
        "| n | 1/1 | 0.3 | 33.3 (6.1–79.2) | 50.0 (29.9–70.1) |" in b
        and "Images per column: pgd 20, clean 3." in b
    )
    assert "PGD-2 L∞ 4/255 (%)" in "\n".join(headline_section(df, None))
    # no L∞ attack at 4/255: a sentence, not an empty table or footer
    only8 = tmp_path / "only8.csv"
    append_rows(only8, [make_row(), make_row(accuracy=0.1, **{**pgd, "epsilon": 8 / 255})])
    text = "\n".join(_attack_section(load_results(only8), tmp_path, {}))
    assert "No L∞ attack ran at 4/255" in text and "Images per column: clean 3." in text


def test_a_report_carries_the_explanation_of_each_raised_check_wherever_it_is(
    tmp_path: Path,
) -> None:
    """No link to the checkout's docs, which breaks when a results folder is moved: the text."""
    from bench.report.markdown import CHECKS_DOC, _sanity_section, check_explanations
    from bench.report.tables import load_results
    from bench.store.checks import CheckRow, append_checks

    raised = ("deterministic", "amp_parity")
    entries = check_explanations(list(raised))
    assert set(entries) == set(raised) and all("Raised if" in e for e in entries.values())
    for where in (tmp_path, tmp_path / "a" / "b" / "c"):
        where.mkdir(parents=True, exist_ok=True)
        append_rows(where / "results.csv", [make_row()])
        flags = [
            CheckRow(
                model="m",
                weights="random",
                dataset="d",
                exit=1,
                check=c,
                status="warn",
                value=1.0,
                detail="y",
                created="2026",
            )
            for c in raised
        ]
        # a rerun cell writes its flags again: shown once
        append_checks(where / "checks.csv", flags + flags)
        text = "\n".join(_sanity_section(load_results(where / "results.csv"), where, {}))
        assert text.count("| m | 1 | deterministic | y |") == 1 and "](" not in text
        assert all(f"- **{c}**: {entries[c]}" in text for c in raised)
    names = {ln[3:].strip() for ln in CHECKS_DOC.read_text().splitlines() if ln.startswith("## ")}
    code = "".join(p.read_text() for p in (REPO / "bench").rglob("*.py"))
    assert all(f'"{n}"' in code for n in names), "every documented check is raised by the code"
