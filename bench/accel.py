"""The GPU path: numeric precision per kind of condition, memory layout, and model FLOP utilisation.

Policy (the precision column of every row says which one produced it):
- Attacks run in strict fp32 everywhere: TF32 off for matmuls and cuDNN convolutions. FGSM and PGD
  step along sign(gradient), so TF32's 10-bit mantissa can flip the sign of small gradient
  coordinates and change x_adv; strict fp32 keeps attack outcomes those of the CPU reference.
- Clean and corruption cells may use bf16 autocast ("bf16"), but only for a model whose clean
  accuracy at every exit matches fp32 within AMP_TOLERANCE on the run's clean images; otherwise they
  stay fp32. The check's outcome is stored in checks.csv (check "amp_parity") and reused on resume.
- Models run channels_last (NHWC weights; inputs stay NCHW as `to_unit` makes them): cuDNN's fast
  layout on CUDA, and on CPU oneDNN's too (2-core CPU, 64 px, batch 256: forward 1.15-1.3x, forward
  plus backward 1.05-1.25x for the three default models). Accuracy does not depend on it.
- Training runs channels_last too (a training step of the default models 1.15-1.3x faster on 2 CPU
  cores), except on a CPU for a model with a strided 1x1 convolution of fewer than 16 input channels:
  there oneDNN's weight gradient writes past its workspace (`onednn_nhwc_weight_grad_ok`). Attacks
  freeze the weights (`attack_mode`), so evaluation never takes that path.
- Evaluation runs a copy of the model with eval-mode batch norm folded into its convolutions
  (`runtime_copy`, bench/fold.py): the same function up to float rounding, checked on a probe batch;
  FLOPs, parameters and the model checks are taken on the model as loaded.
- On the CPU only: AutoAttack's small batches run PyTorch's own convolutions (bench/cpu_kernels.py),
  and training takes the weight gradient of convolutions with tiny outputs as one matrix product
  (bench/small_map_grad.py).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import Iterator

import torch

log = logging.getLogger(__name__)
AMP_TOLERANCE = 0.001  # 0.1 accuracy point
FOLD_TOLERANCE = 1e-3  # largest logit difference from folding, relative to the largest logit
PRECISIONS = ("auto", "fp32", "bf16")

# Dense peak throughput in TFLOP/s by device name fragment and precision (vendor data sheets; bf16
# and fp32 without sparsity). MFU is left empty for a device not listed here.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 80GB HBM3": {"fp32": 66.9, "bf16": 989.4},  # SXM5
    "H100 PCIe": {"fp32": 51.2, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "bf16": 835.0},
    "H200": {"fp32": 66.9, "bf16": 989.4},
    "A100": {"fp32": 19.5, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "bf16": 362.1},
    "L40": {"fp32": 90.5, "bf16": 181.0},
    "L4": {"fp32": 30.3, "bf16": 121.0},
}


def strict_fp32() -> None:
    """Turn TF32 off for matmuls and cuDNN convolutions (PyTorch leaves it on for convolutions)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def wants_amp(precision: str, device: torch.device) -> bool:
    """Whether to try bf16 autocast for clean and corruption cells (it must still pass the parity check)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast for precision "bf16"; nothing for "fp32"."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model with channels_last weights, in place: the faster convolution layout on CUDA and CPU."""
    return model.to(memory_format=torch.channels_last)


def onednn_nhwc_weight_grad_ok(model: torch.nn.Module) -> bool:
    """Whether oneDNN computes this model's weight gradients correctly on NHWC (channels_last) tensors.

    Its strided 1x1 convolution, given an NHWC input with fewer input channels than its channel block
    (8 with AVX2, 16 with AVX-512), writes its weight gradient past its workspace: heap corruption or a
    hang (uxlfoundation/oneDNN#6035, open; reproduced with torch 2.14.1 on a 2-core AMD EPYC).
    """
    return not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                   and m.in_channels // m.groups < 16 for m in model.modules())


def training_layout(model: torch.nn.Module, device: torch.device) -> bool:
    """Make `model` channels_last for training where the backend gets its weight gradients right; in place.

    Returns whether it did; call before wrapping in DistributedDataParallel, which buckets gradients by
    the parameters' strides.
    """
    if device.type == "cpu" and not onednn_nhwc_weight_grad_ok(model):
        return False
    layout(model)
    return True


def runtime_copy(model: torch.nn.Module, input_size: int, seed: int = 0) -> torch.nn.Module:
    """The copy of `model` that evaluation runs: eval mode, batch norm folded and channels_last where that keeps
    its logits.

    Each candidate is checked as it will run, on a seeded probe batch (every exit's logits within
    FOLD_TOLERANCE of the largest): folded and channels_last, then channels_last alone, then the model as
    loaded. MGNet's glimpse recurrence amplifies rounding, so the layout alone can miss.
    """
    from bench.fold import fold_batchnorm

    original = model.eval()
    device = next(original.parameters(), torch.empty(0)).device
    g = torch.Generator().manual_seed(seed)
    probe = torch.rand(2, 3, input_size, input_size, generator=g).to(device)

    def logits(m: torch.nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return m.exits(probe).logits if hasattr(m, "exits") else m(probe)

    want = logits(original)
    folded = copy.deepcopy(original)
    candidates = [("folded", layout(folded))] if fold_batchnorm(folded) else []
    candidates.append(("channels_last", layout(copy.deepcopy(original))))
    misses = []
    for what, m in candidates:
        worst = float((want - logits(m)).abs().max()) / max(1.0, float(want.abs().max()))
        if worst <= FOLD_TOLERANCE:
            if misses:
                log.warning("%s: %s changed its logits; evaluating it %s", type(model).__name__, ", ".join(misses),
                            "unfolded" if what == "channels_last" else what)
            return m
        misses.append(f"{'folding batch norm' if what == 'folded' else 'the channels_last layout'} "
                      f"({worst:.2g} relative)")
    log.warning("%s: %s changed its logits; evaluating it as loaded", type(model).__name__, ", ".join(misses))
    return copy.deepcopy(original)


def amp_matches(fp32_accuracy: list[float], amp_accuracy: list[float]) -> tuple[bool, float]:
    """(every exit within AMP_TOLERANCE, the largest difference in accuracy points)."""
    worst = max(abs(a - b) for a, b in zip(fp32_accuracy, amp_accuracy))
    return worst <= AMP_TOLERANCE + 1e-12, 100 * worst


def peak_tflops(device_name: str, precision: str, override: float = 0.0) -> float:
    """The device's dense peak for `precision` (TFLOP/s); `override` (the user's figure for that precision) wins;
    NaN when unknown. An NVL board matches only an NVL entry: its clocks and peaks are lower than the SXM part's."""
    if override > 0:
        return override
    for fragment in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "L40S" before "L40" before "L4"
        if "NVL" in device_name and "NVL" not in fragment:
            continue
        if fragment in device_name:
            return PEAK_TFLOPS[fragment]["bf16" if precision == "bf16" else "fp32"]
    return math.nan


def mfu(gmacs: float, peak: float, *, throughput: float = math.nan, n_forward: int = 0, n_backward: int = 0,
        seconds: float = 0.0) -> float:
    """Model FLOP utilisation: achieved model FLOP/s over `peak` TFLOP/s; NaN when either is unknown.

    2 FLOPs per MAC. With a measured `throughput` (clean rows: images/s at the best batch size) the
    model's own rate; otherwise the cell's passes over its wall time, a backward pass counted at twice
    the forward cost (the usual convention; attacks need input gradients only, so for attack rows
    this is an upper bound on the work done).
    """
    if not peak > 0:
        return math.nan
    if throughput > 0:
        return 2e9 * gmacs * throughput / (peak * 1e12)
    if seconds <= 0:
        return math.nan
    return 2e9 * gmacs * (n_forward + 2 * n_backward) / seconds / (peak * 1e12)
