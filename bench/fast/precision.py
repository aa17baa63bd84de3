"""Numeric precision per kind of condition: strict fp32 for attacks, bf16 autocast behind a parity
check.

- Attacks run in strict fp32 everywhere: TF32 off for matmuls and cuDNN convolutions. FGSM and PGD
  step along sign(gradient), so TF32's 10-bit mantissa can flip the sign of small gradient
  coordinates and change x_adv; strict fp32 keeps attack outcomes those of the CPU reference.
- Clean and corruption cells may use bf16 autocast ("bf16"), but only for a model whose clean
  accuracy at every exit matches fp32 within AMP_TOLERANCE on the run's clean images; otherwise they
  stay fp32. The check's outcome is stored in checks.csv (check "amp_parity") and reused on resume.
The precision column of every row says which one produced it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

AMP_TOLERANCE = 0.001  # 0.1 accuracy point


def strict_fp32() -> None:
    """Turn TF32 off for matmuls and cuDNN convolutions (PyTorch leaves it on for convolutions)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def wants_amp(precision: str, device: torch.device) -> bool:
    """Whether clean and corruption cells try bf16 autocast (it must pass the parity check)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast for precision "bf16"; nothing for "fp32"."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def amp_matches(fp32_accuracy: list[float], amp_accuracy: list[float]) -> tuple[bool, float]:
    """(every exit within AMP_TOLERANCE, the largest difference in accuracy points)."""
    worst = max(abs(a - b) for a, b in zip(fp32_accuracy, amp_accuracy))
    return worst <= AMP_TOLERANCE + 1e-12, 100 * worst
