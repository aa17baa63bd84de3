"""report.html: one self-contained page whose figures load in a real browser (headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.cli import main
from tests.conftest import cli

PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const probe = imgs.map(i => [i.alt, i.complete, i.naturalWidth]);
  document.body.setAttribute("data-probe", JSON.stringify(probe));
});
</script></body>"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "run"
    assert (
        cli(
            "run --suite smoke --models mgnet_tiny@random resnet_tiny@random --n-images 8 --out {}",
            out,
        )
        == 0
    )
    return out


def test_html_is_self_contained_with_every_figure_of_the_markdown(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(figures) >= 5 and any("glimpses_mgnet_tiny" in f for f in figures)
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert 'src="figures/' not in page and "<table>" in page and "Headline" in page
    assert "Where MGNet looks" in md and "latency (ms)" in md


def test_missing_figure_is_said_not_drawn_empty(run_dir: Path, tmp_path: Path) -> None:
    from bench.report.html import write

    out = write("![gone](figures/none.png)\n", tmp_path, "t")
    assert "figure figures/none.png is missing" in out.read_text()


def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make setup installs Debian's package as root)")
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text().replace("</body>", PROBE, 1))
    res = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r'data-probe="([^"]*)"', res.stdout)
    assert m, res.stderr[-2000:]
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(images) == (run_dir / "report.html").read_text().count("<img")
    assert images and all(complete and width > 0 for _, complete, width in images), images


def test_damaged_glimpse_files_are_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (run_dir / "glimpses.csv").read_text().splitlines(keepends=True)
    strip = lines[1].rsplit(",", 1)[1].strip()
    for name, damage, says in (
        ("row", lambda d: (d / "glimpses.csv").write_text("".join(lines[:-1])), "no box for image"),
        ("png", lambda d: (d / strip).unlink(), "is missing"),
        (
            "int",
            lambda d: (d / "glimpses.csv").write_text(
                "".join(lines).replace(",clean,", ",clean,x", 1)
            ),
            "damaged glimpse record",
        ),
    ):
        d = tmp_path / name
        shutil.copytree(run_dir, d)
        damage(d)
        assert main(["report", str(d)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("bench: error: ") and "\n" not in err and says in err, err


def test_damaged_run_files_fail_report_and_resume_before_a_row_is_added(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file beside results.csv is read before a resumed run appends anything."""
    header = (run_dir / "results.csv").read_text().splitlines(keepends=True)[0]
    for name, file, text, says in (
        (
            "checks",
            "checks.csv",
            lambda t: t + "m,w,d,1,deterministic,ok,abc,x,2026\n",
            "damaged check record",
        ),
        (
            "per_image",
            "per_image.csv",
            lambda t: t.rstrip("\n")[:-2] + "\n",
            "damaged per-image record",
        ),
        (
            "glimpses",
            "glimpses.csv",
            lambda t: t.replace(",clean,", ",clean,x", 1),
            "damaged glimpse record",
        ),
        ("header_only", "results.csv", lambda t: header, "holds no rows"),
        (
            "flags",
            "per_image.csv",
            lambda t: t.replace(",0", ",1").replace("0\n", "1\n"),
            "disagrees with results.csv",
        ),
    ):
        d = tmp_path / name
        shutil.copytree(run_dir, d)
        (d / file).write_text(text((d / file).read_text()))
        before = (d / "results.csv").read_bytes()
        commands = [["report", str(d)]]
        # a run reads these; only the report compares records with rows
        if name not in ("header_only", "flags"):
            run = "run --suite smoke --models mgnet_tiny@random resnet_tiny@random --n-images 8"
            commands.append([*run.split(), "--seed", "1", "--out", str(d)])
        for argv in commands:
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert err.startswith("bench: error: ") and "\n" not in err and says in err, (argv, err)
            assert (d / "results.csv").read_bytes() == before


def test_glimpse_figure_shows_the_weights_the_tables_show(
    trained: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.report.glimpse_figure as gf

    out = tmp_path / "run"
    # the trained checkpoint after the random weights
    for spec in ("mgnet_tiny@random", "mgnet_tiny"):
        assert (
            cli("run --suite clean --models {} --n-images 4 --out {} --no-report", spec, out) == 0
        )
    stored = (out / "glimpses.csv").read_text().splitlines()[1:]
    weights = sorted({line.split(",")[1] for line in stored})
    assert len(weights) == 2 and "random" in weights
    trained = next(w for w in weights if w != "random")
    assert len(list((out / "examples" / "glimpses").glob(f"mgnet_tiny-{trained}-*.png"))) == 1
    called: list[int] = []
    real = gf.plt.Rectangle
    monkeypatch.setattr(gf.plt, "Rectangle", lambda *a, **k: called.append(1) or real(*a, **k))
    [(model, path)] = gf.draw(out, {("mgnet_tiny", "cluttered_fmnist", trained)})
    assert model == "mgnet_tiny" and path.name == "glimpses_mgnet_tiny_cluttered_fmnist.png"
    assert len(called) == 4 * 4, (
        "one box per exit on each of the 4 example images, of one set of weights"
    )
