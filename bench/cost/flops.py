"""GMACs and parameters per model and exit (fvcore tracing, with handlers for what it misses).

One multiply-accumulate counts 1 (fvcore's "flop"); GFLOPs are about 2 x GMACs. Counted: conv,
linear/matmul, batch and layer norm, adaptive average pooling, grid_sample (fvcore), plus our
handlers for scaled-dot-product attention and affine_grid. Not counted, and listed per model: what
fvcore reports as unsupported (max pooling among them), and the element-wise ops it skips silently
(ReLU, adds, sigmoid).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.models.base import BenchModel, true_gradient


@dataclass(frozen=True)
class FlopCount:
    """Cost of one image up to one exit."""

    gmacs: float
    params_m: float
    uncounted: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    counter: str = ""


def _shape(v: Any) -> list[int]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(v)


def sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """Q·Kᵀ and A·V of scaled-dot-product attention: B·L·S·(E + Ev) MACs."""
    q, k, v = (_shape(inputs[i]) for i in range(3))
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def affine_grid_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """Each output grid point is a 2x3 matrix times (x, y, 1): 6 MACs."""
    out = _shape(outputs[0])
    return math.prod(out[:-1]) * 6


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_macs,
    "aten::affine_grid_generator": affine_grid_macs,
}


def inference_params(model: nn.Module) -> int:
    """Parameters used at inference: the training-only auxiliary glimpse classifier is excluded."""
    aux = getattr(model, "glimpse_fc", None)
    skip = {id(p) for p in aux.parameters()} if isinstance(aux, nn.Module) else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def count(model: BenchModel, exit: int, input_size: int) -> FlopCount:
    """Trace exit `exit` of `model` at batch 1 on the CPU and count its multiply-accumulates."""
    with warnings.catch_warnings():
        # torch.jit deprecation, raised by fvcore on import
        warnings.simplefilter("ignore", FutureWarning)
        import fvcore
        from fvcore.nn import FlopCountAnalysis

    view = model.at_exit(exit)
    was_training = [m.training for m in model.modules()]
    device = next(model.parameters()).device
    model.eval().cpu()
    try:
        x = torch.rand(1, 3, input_size, input_size)
        with true_gradient(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            fa = FlopCountAnalysis(view, (x,))
            for op, h in EXTRA_HANDLES.items():
                fa.set_op_handle(op, h)
            fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings(
                "none"
            )
            total = fa.total()
            by_op = dict(fa.by_operator())
            uncounted = dict(sorted(fa.unsupported_ops().items()))
    finally:
        model.to(device)
        for m, t in zip(model.modules(), was_training):
            m.training = t
    return FlopCount(
        gmacs=total / 1e9,
        params_m=inference_params(model) / 1e6,
        uncounted=uncounted,
        by_operator=by_op,
        counter=f"fvcore {getattr(fvcore, '__version__', '')}".strip(),
    )
