"""torchvision, timm and RobustBench models, loaded from local files where each library looks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision

from bench import models  # noqa: F401
from bench.core.errors import BenchError
from bench.load.specs import expand, load
from bench.models.resnet import IMAGENET_MEAN, IMAGENET_STD

X = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
NORM = (X - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
    1, 3, 1, 1
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every download fails at once (a closed local port), and every library cache is fresh."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("BENCH_RB_MODELS", str(tmp_path / "rb"))


def _random_resnet18(seed: int = 3) -> torchvision.models.ResNet:
    torch.manual_seed(seed)
    return torchvision.models.resnet18().eval()


def _hub_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state: dict) -> Path:
    """Save `state` in torch.hub's cache named with its real sha256 prefix; point the enum at it."""
    blob = tmp_path / "blob.pth"
    torch.save(state, blob)
    prefix = hashlib.sha256(blob.read_bytes()).hexdigest()[:8]
    w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setattr(
        w.value, "url", f"https://download.pytorch.org/models/resnet18-{prefix}.pth"
    )
    path = tmp_path / "torch" / "hub" / "checkpoints" / f"resnet18-{prefix}.pth"
    path.parent.mkdir(parents=True)
    blob.rename(path)
    return path


def test_torchvision_weights_enum_from_hub_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = _random_resnet18()
    _hub_file(monkeypatch, tmp_path, ref.state_dict())
    [name] = expand("tv:resnet18")
    lm = load(name, "imagenet100", tmp_path)
    assert (
        lm.card.num_classes == 100 and lm.card.input_size == 224 and lm.card.family == "torchvision"
    )
    assert lm.weights.startswith("ResNet18_Weights.IMAGENET1K_V1:")
    with torch.no_grad():
        assert torch.allclose(lm.model(X), ref(NORM)[:, :100], atol=1e-5)


def test_torchvision_checksum_mismatch_and_missing_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _hub_file(monkeypatch, tmp_path, _random_resnet18().state_dict())
    # replaced after the fact: the name's prefix is now wrong
    torch.save(_random_resnet18(4).state_dict(), path)
    with pytest.raises(BenchError, match="checksum mismatch"):
        load(expand("tv:resnet18")[0], "imagenet100", tmp_path)
    path.unlink()
    with pytest.raises(BenchError, match="not in the torch hub cache .* could not be downloaded"):
        load("tv:resnet18", "imagenet100", tmp_path)


def test_torchvision_local_file_enum_names_and_bad_specs(tmp_path: Path) -> None:
    ref = _random_resnet18()
    f = tmp_path / "mine.pth"
    torch.save({"state_dict": ref.state_dict()}, f)
    lm = load(expand(f"tv:resnet18@{f}")[0], "imagenet100", tmp_path)
    assert lm.weights.startswith("file:")
    with torch.no_grad():
        assert torch.allclose(lm.model(X), ref(NORM)[:, :100], atol=1e-5)
    torch.save(torchvision.models.resnet34().state_dict(), f)
    with pytest.raises(BenchError, match="does not fit the model"):
        load(f"tv:resnet18@{f}", "imagenet100", tmp_path)
    with pytest.raises(
        BenchError, match="unknown weights of torchvision resnet18 'IMAGENET1K_V9'.*IMAGENET1K_V1"
    ):
        load("tv:resnet18@IMAGENET1K_V9", "imagenet100", tmp_path)
    with pytest.raises(
        BenchError, match="unknown torchvision classification model 'resnet19'; did you mean"
    ):
        expand("tv:resnet19")
    assert load("tv:resnet18@random", "imagenet100", tmp_path).weights == "random"


def test_torchvision_weights_file_named_without_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _random_resnet18()
    torch.save(ref.state_dict(), tmp_path / "weights.bin")
    monkeypatch.chdir(tmp_path)  # `tv:resnet18@weights.bin`: a file here, not an enum member
    assert load(expand("tv:resnet18@weights.bin")[0], "imagenet100", tmp_path).weights.startswith(
        "file:"
    )


def test_torchvision_weights_that_need_other_inputs_or_another_build_are_refused() -> None:
    from bench.models.sources import torchvision_hub

    with pytest.raises(
        BenchError, match="tv:googlenet is not supported: torchvision builds it differently"
    ):
        expand("tv:googlenet")
    # 384-px inputs; the card has 224
    swag = torchvision.models.RegNet_Y_16GF_Weights.IMAGENET1K_SWAG_E2E_V1
    with pytest.raises(
        BenchError, match="needs 1000 classes and 384-px inputs .* set up for its DEFAULT weights"
    ):
        torchvision_hub._check_same_preprocessing("regnet_y_16gf", swag)
    # no classifier, other normalization
    feats = torchvision.models.VGG16_Weights.IMAGENET1K_FEATURES
    with pytest.raises(BenchError, match="needs 0 classes"):
        torchvision_hub._check_same_preprocessing("vgg16", feats)
    torchvision_hub._check_same_preprocessing(
        "resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    )


def test_a_densenet_file_with_its_published_key_names_loads(tmp_path: Path) -> None:
    """DenseNet's published files: pre-PyTorch-0.4 names (`norm.1`), no batch-norm counters."""
    import re

    torch.manual_seed(0)
    ref = torchvision.models.densenet121().eval()
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)", r"\1.\2", k): v
        for k, v in ref.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert any(".norm.1." in k for k in old)
    f = tmp_path / "densenet121-old.pth"
    torch.save(old, f)
    lm = load(expand(f"tv:densenet121@{f}")[0], "imagenet100", tmp_path)
    with torch.no_grad():
        assert torch.allclose(lm.model(X), ref(NORM)[:, :100], atol=1e-5)


def test_an_unloadable_weights_file_gets_a_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "pickled.pth"
    # a whole module: weights_only refuses it, with a long message
    torch.save(_random_resnet18(), f)
    with pytest.raises(BenchError, match="cannot be loaded") as e:
        load(expand(f"tv:resnet18@{f}")[0], "imagenet100", tmp_path)
    assert "\n" not in str(e.value)


def test_timm_feature_only_weights_are_refused() -> None:
    with pytest.raises(
        BenchError, match=r"timm:convnextv2_atto.fcmae holds feature-only weights \(num_classes 0\)"
    ):
        expand("timm:convnextv2_atto.fcmae")


def _hf_cache(root: Path, repo: str, fname: str, data: bytes) -> Path:
    """A Hugging Face hub cache entry as huggingface_hub writes it (blob named by its sha256)."""
    sha = hashlib.sha256(data).hexdigest()
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / sha).write_bytes(data)
    commit = "0" * 40
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / fname).symlink_to(Path("../../blobs") / sha)
    return folder / "blobs" / sha


def test_timm_pretrained_from_hf_cache_and_checksum(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import timm
    from safetensors.torch import save

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    torch.manual_seed(5)
    ref = timm.create_model("resnet18", pretrained=False).eval()
    blob = _hf_cache(
        tmp_path / "hf",
        "timm/resnet18.a1_in1k",
        "model.safetensors",
        save({k: v.contiguous() for k, v in ref.state_dict().items()}),
    )
    lm = load(expand("timm:resnet18.a1_in1k")[0], "imagenet100", tmp_path)
    assert (
        lm.card.num_classes == 100 and lm.card.family == "timm" and lm.weights.startswith("timm:")
    )
    with torch.no_grad():
        norm = (X - torch.tensor(lm.card.mean).view(1, 3, 1, 1)) / torch.tensor(lm.card.std).view(
            1, 3, 1, 1
        )
        assert torch.allclose(lm.model(X), ref(norm)[:, :100], atol=1e-5)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BenchError, match="checksum mismatch"):
        load("timm:resnet18.a1_in1k", "imagenet100", tmp_path)
    with pytest.raises(BenchError, match="not in the local cache and could not be downloaded"):
        load(expand("timm:resnet34.a1_in1k")[0], "imagenet100", tmp_path)
    with pytest.raises(BenchError, match="Invalid pretrained tag"):
        expand("timm:resnet18.nope")


def test_robustbench_zoo_model_from_model_dir(tmp_path: Path) -> None:
    ref = _random_resnet18(6)
    path = tmp_path / "rb" / "imagenet" / "Linf" / "Salman2020Do_R18.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    lm = load(expand("rb:Salman2020Do_R18")[0], "imagenet100", tmp_path)
    assert lm.card.mean is None and lm.card.num_classes == 100 and lm.weights.startswith("rb:")
    with torch.no_grad():
        assert torch.allclose(lm.model(X), ref(NORM)[:, :100], atol=1e-5)
    import autoattack  # the adapter robustbench imports

    assert autoattack.AutoAttack.__mro__[1].__module__.startswith("pyautoattack")
    path.unlink()
    with pytest.raises(BenchError, match="Salman2020Do_R18.pt is not there"):
        load("rb:Salman2020Do_R18", "imagenet100", tmp_path)
    with pytest.raises(BenchError, match="unknown RobustBench imagenet model 'Salman2020Do_R19'"):
        expand("rb:Salman2020Do_R19")
    with pytest.raises(BenchError, match="use tv:resnet50@IMAGENET1K_V1"):
        expand("rb:Standard_R50")
    with pytest.raises(
        BenchError,
        match=r"^rb:imagenet/Linf/Debenedetti2022Light_XCiT-S12: this robustbench release "
        r"cannot build it: .*Unknown model \(debenedetti2020light_xcit_s_imagenet",
    ):
        load(expand("rb:imagenet/Linf/Debenedetti2022Light_XCiT-S12")[0], "imagenet100", tmp_path)


def test_a_cache_file_with_no_recorded_checksum_is_loaded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A weights file that cannot be checked loads with a warning, never silently.

    Such a file is a hub file whose name carries no hash, or a Hugging Face file copied out of its
    blob. A file that can be checked gives no warning.
    """
    from bench.models.sources.hub_file import verify_hf_file, verify_hub_file

    data = b"weights"
    sha = hashlib.sha256(data).hexdigest()
    named = tmp_path / f"resnet18-{sha[:8]}.pth"
    plain, copied = tmp_path / "resnet18.pth", tmp_path / "model.safetensors"
    for f in (named, plain, copied):
        f.write_bytes(data)
    blob = _hf_cache(tmp_path / "hf", "timm/x", "model.safetensors", data)
    caplog.set_level("WARNING")
    assert (
        verify_hub_file(named) == sha
        and verify_hf_file(blob.parents[1] / "snapshots" / ("0" * 40) / "model.safetensors") == sha
    )
    assert not caplog.records
    assert verify_hub_file(plain) == sha and verify_hf_file(copied) == sha
    assert len(caplog.records) == 2
    assert (
        "its name carries no sha256 prefix to check it against; loaded unchecked (sha256 "
        f"{sha[:12]}" in caplog.records[0].getMessage()
    )
    assert "is a copy, not the hub cache's link to its blob" in caplog.records[1].getMessage()
