"""The tree's layers hold: core definitions, storage and the report import with torch blocked;
models, attacks and corruptions never import the evaluation layer, the fast paths or training; the
training loop never imports the fast paths (they reach it as a hook)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TORCH_FREE = ("bench/core", "bench/store", "bench/report")
# folder -> module prefixes it must never import, at module level or inside a function
AFTER = ("bench.evaluation", "bench.fast", "bench.train", "bench.cli")
FORBIDDEN = {
    "models": AFTER,
    "attacks": AFTER,
    "corruptions": AFTER,
    "bench/train": ("bench.fast", "bench.cli"),
    "bench/load": AFTER,
    "bench/data": (*AFTER, "bench.load", "bench.cost", "bench.store"),
    "bench/devices": (*AFTER, "bench.load", "bench.cost", "bench.store"),
    "bench/fast": ("bench.evaluation", "bench.train", "bench.cli", "bench.load", "bench.store"),
    "bench/cost": ("bench.evaluation", "bench.train", "bench.cli", "bench.store"),
    "bench/core": ("bench.evaluation", "bench.fast", "bench.train", "bench.load", "bench.cost"),
    "bench/store": ("bench.evaluation", "bench.fast", "bench.train", "bench.load", "bench.cost"),
    "bench/report": ("bench.evaluation", "bench.fast", "bench.train", "bench.load", "bench.cost"),
}
BLOCKER = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Blocked())
"""


def _modules(folder: str) -> list[str]:
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / folder).rglob("*.py")
    )


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) per import in a file, absolute only (the project uses no relative imports)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            out += [(node.lineno, node.module)] + [
                (node.lineno, f"{node.module}.{a.name}") for a in node.names
            ]
    return out


@pytest.mark.parametrize("folder", TORCH_FREE)
def test_torch_free_layers_import_with_torch_blocked(folder: str) -> None:
    modules = _modules(folder)
    assert len(modules) >= 5, modules
    code = BLOCKER + "".join(f"import {m}\n" for m in modules)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_the_blocker_does_block() -> None:
    code = BLOCKER + "import bench.evaluation.scoring\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and "torch is blocked" in done.stderr


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layers_never_import_what_comes_after_them(folder: str) -> None:
    files = sorted((REPO / folder).rglob("*.py"))
    assert files
    found = [
        f"{f.relative_to(REPO)}:{line}: {name}"
        for f in files
        for line, name in _imports(f)
        if name.startswith(FORBIDDEN[folder])
    ]
    assert not found, found


def test_autoattack_gets_its_cpu_kernels_from_the_evaluation_layer() -> None:
    """The fast path reaches AutoAttack's chunks as a context the scorer hands it."""
    scoring = [name for _, name in _imports(REPO / "bench" / "evaluation" / "scoring.py")]
    assert "bench.fast.cpu_kernels" in scoring
    assert "chunk_context" in (REPO / "attacks" / "autoattack.py").read_text()


def test_every_package_folder_is_packaged_under_bench() -> None:
    """pyproject's list names every folder with an __init__.py, under the import name it has."""
    import tomllib

    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    where = {name: REPO / folder for name, folder in tool["package-dir"].items()}
    found = set()
    for init in [*(REPO / "bench").rglob("__init__.py")] + [
        p for root in where.values() for p in root.rglob("__init__.py")
    ]:
        folder = init.parent
        for name, root in [("bench", REPO / "bench"), *where.items()]:
            if folder == root or root in folder.parents:
                found.add(".".join([name, *folder.relative_to(root).parts]))
                break
    assert set(tool["packages"]) == found


def test_models_attacks_and_corruptions_load_nothing_of_the_later_layers() -> None:
    """Not even through another module: importing all of them leaves those packages unloaded."""
    names = [
        n.replace("models", "bench.models", 1)
        .replace("attacks", "bench.attacks", 1)
        .replace("corruptions", "bench.corruptions", 1)
        for folder in ("models", "attacks", "corruptions")
        for n in _modules(folder)
    ]
    code = "".join(f"import {n}\n" for n in names) + (
        "import sys\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({AFTER!r}))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
