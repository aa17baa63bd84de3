"""Property tests: random malformed inputs to the model checks, the spec parser and the CSV
readers get one `bench: error:` line, a nonzero exit and nothing written; valid ones pass."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.card import ModelCard
from bench.core.errors import BenchError
from bench.load.contract import check_outputs
from bench.models.base import Exits
from bench.store.results import COLUMNS
from tests.conftest import cli

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class _Fixed(torch.nn.Module):
    """A model whose exits return the given outputs, whatever the images."""

    def __init__(self, out: object, n_exits: int) -> None:
        super().__init__()
        self.out, self._e = out, n_exits

    @property
    def n_exits(self) -> int:
        return self._e

    def exits(self, x: torch.Tensor) -> object:
        return Exits(self.out) if isinstance(self.out, torch.Tensor) else self.out


def _loaded(out: object, exits: int, classes: int) -> object:
    from bench.load.specs import LoadedModel

    card = ModelCard(
        name="m",
        family="user",
        build=lambda: None,
        num_classes=classes,
        input_size=8,
        mean=None,
        std=None,
        exits=tuple(range(1, exits + 1)),
    )
    return LoadedModel(spec="m", card=card, model=_Fixed(out, exits), weights="random", meta={})


SPECIAL = st.sampled_from([0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e30])
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool])


@st.composite
def outputs(draw: st.DrawFn) -> tuple[torch.Tensor, int, int]:
    """(outputs, declared exits, declared classes): often right, often wrong in one way."""
    exits, classes, n = draw(st.integers(1, 3)), draw(st.integers(2, 6)), 4
    shape = draw(
        st.sampled_from(
            [
                (exits, n, classes),
                (exits, n, classes + 1),
                (n, classes),
                (exits + 1, n, classes),
                (exits, n - 1, classes),
            ]
        )
    )
    z = torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    if draw(st.booleans()):
        z = z.softmax(-1)
    for _ in range(draw(st.integers(0, 2))):
        z.view(-1)[draw(st.integers(0, z.numel() - 1))] = draw(SPECIAL)
    return z.to(draw(DTYPES)), exits, classes


@SETTINGS
@given(outputs())
def test_the_model_checks_accept_logits_and_refuse_the_rest_in_one_line(
    case: tuple[torch.Tensor, int, int],
) -> None:
    z, exits, classes = case
    valid = (
        tuple(z.shape) == (exits, 4, classes)
        and z.is_floating_point()
        and bool(torch.isfinite(z).all())
        and not any(
            bool(((t >= 0) & (t <= 1)).all())
            and bool(
                torch.allclose(t.double().sum(1), torch.ones(4, dtype=torch.float64), atol=1e-4)
            )
            for t in z
        )
    )
    try:
        check_outputs(_loaded(z, exits, classes), torch.rand(4, 3, 8, 8))
    except BenchError as e:
        assert not valid and "\n" not in str(e), str(e)
    else:
        assert valid


@pytest.mark.parametrize("out", [{"logits": torch.zeros(1, 4, 3)}, (torch.zeros(1, 4, 3),), 5])
def test_the_model_checks_refuse_what_is_not_a_tensor(out: object) -> None:
    with pytest.raises(BenchError, match="must return a logits tensor"):
        check_outputs(_loaded(out, 1, 3), torch.rand(4, 3, 8, 8))


SPEC_PART = st.text(alphabet="abz_09.:/@-~ ", min_size=0, max_size=12)


@SETTINGS
@given(
    prefix=st.sampled_from(["", "tv:", "timm:", "rb:", "zz_", "nope.py", "./x/", "mgnet_small@"]),
    middle=SPEC_PART,
    suffix=st.sampled_from(["", "@", "@random", "@official:", "@none.pt", ":f", ".py"]),
)
def test_a_malformed_model_spec_gets_one_line_and_nothing_written(
    prefix: str, middle: str, suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.load.specs import expand

    spec = prefix + middle + suffix
    try:
        expand(spec)
    except BenchError:
        pass
    else:  # a spec that names a registered model: not malformed
        return
    out = tmp_path / "never"
    assert cli("run --suite clean --n-images 2 --out {} --models {}", out, spec) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err, err
    assert not out.exists()


def _good_rows(folder: Path) -> bytes:
    """A results.csv of two well-formed rows."""
    from bench.store.results import append_rows
    from tests.test_results import make_row

    append_rows(folder / "results.csv", [make_row(), make_row(exit=2)])
    return (folder / "results.csv").read_bytes()


@st.composite
def damaged_csv(draw: st.DrawFn, good: bytes) -> bytes:
    """The good file, damaged one way or several."""
    lines = good.split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(
                [
                    "cut",
                    "swap_header",
                    "drop_field",
                    "odd_bytes",
                    "bad_value",
                    "bom",
                    "nul",
                    "extra_field",
                ]
            )
        )
        k = draw(st.integers(1, len(lines) - 2))
        fields = lines[k].split(b",")
        if how == "cut":
            lines[k] = lines[k][: draw(st.integers(0, max(0, len(lines[k]) - 1)))]
        elif how == "swap_header":
            head = lines[0].split(b",")
            i, j = draw(st.integers(0, len(head) - 1)), draw(st.integers(0, len(head) - 1))
            head[i], head[j] = head[j], head[i]
            lines[0] = b",".join(head)
        elif how == "drop_field":
            del fields[draw(st.integers(0, len(fields) - 1))]
            lines[k] = b",".join(fields)
        elif how == "extra_field":
            lines[k] += b",x"
        elif how == "odd_bytes":
            lines[k] = (
                lines[k][:5]
                + draw(st.sampled_from([b"\xff\xfe", b"\xe9", b"\x80\x81"]))
                + lines[k][5:]
            )
        elif how == "bad_value":
            fields[draw(st.integers(0, len(fields) - 1))] = draw(
                st.sampled_from([b"nan", b"", b"-1", b"1e999", b"abc", b'"{', b"None"])
            )
            lines[k] = b",".join(fields)
        elif how == "bom":
            lines[0] = b"\xef\xbb\xbf" + lines[0]
        else:
            lines[k] = lines[k][:3] + b"\x00" + lines[k][3:]
    return b"\n".join(lines)


def test_the_csv_header_order_is_the_schema() -> None:
    assert COLUMNS[0] == "model" and COLUMNS[-1] == "created"


@SETTINGS
@given(data=st.data())
def test_a_damaged_results_file_gets_one_line_and_no_report(
    data: st.DataObject,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.store.results import read_rows

    folder = tmp_path_factory.mktemp("csv")
    good = _good_rows(folder)
    bad = data.draw(damaged_csv(good))
    (folder / "results.csv").write_bytes(bad)
    try:
        rows = read_rows(folder / "results.csv")
    except BenchError as e:
        assert "\n" not in str(e)
        assert cli("report {}", folder) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("bench: error: ") and "\n" not in err, err
        assert not (folder / "report.md").exists() and not (folder / "figures").exists()
        assert (folder / "results.csv").read_bytes() == bad, "the file is left as it was"
    else:  # a damage the reader may take: it must still be a consistent table
        assert all(0 <= r.n_correct <= r.n_images for r in rows)


@SETTINGS
@given(data=st.data())
def test_damaged_per_image_checks_or_glimpse_files_get_one_line(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from bench.store import glimpses, per_image
    from bench.store.checks import read_checks

    folder = tmp_path_factory.mktemp("side")
    readers = {
        "per_image.csv": (per_image.read, b"row_key,indices,correct\nabc,1 2 3,101\n"),
        "checks.csv": (
            read_checks,
            b"model,weights,dataset,exit,check,status,value,detail,"
            b"created\nm,r,d,1,x,warn,1.0,y,2026\n",
        ),
        "glimpses.csv": (
            glimpses.read,
            b"model,weights,dataset,condition,image,label,exit,"
            b"predicted,x0,y0,x1,y1,inputs\nm,r,d,clean,1,2,1,2,0.1,"
            b"0.1,0.5,0.5,a.png\n",
        ),
    }
    name = data.draw(st.sampled_from(sorted(readers)))
    read, good = readers[name]
    read(_write(folder / name, good))  # the good one reads
    bad = data.draw(damaged_csv(good + good.split(b"\n", 1)[1]))
    try:
        read(_write(folder / name, bad))
    except BenchError as e:
        assert "\n" not in str(e)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
