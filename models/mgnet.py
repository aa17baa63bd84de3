"""MGNet (Tan, Dong, Ma, BMVC 2021): a classifier that looks through a few learned glimpses.

Re-implemented from the architecture description (shared reference mgnet.md §1); submodule
names follow the official code so its checkpoints load by stripping the `model.` prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.base import BenchModel, Exits, GradRescale, GradStop, check_exit
from bench.models.glimpse import affine_to_box, glimpse_side
from bench.models.sampler import GlimpseSampler

Translation = Literal["tight-crop", "center-invariant", "naive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MGNetConfig:
    """Forward-relevant settings (a checkpoint's state dict does not hold them)."""

    n_iter: int = 4
    scale: float = 2.33  # downsample factor: glimpse side = input_size // scale
    scale_min: float = 0.2
    scale_max: float = 0.5
    translation: Translation = "tight-crop"
    grad_scale: float = 0.02  # the `s` of the gradient rescaler; 1.0 when n_iter == 1
    alpha: float = 0.6  # weight of the auxiliary glimpse loss; 0 when n_iter == 1
    detach_affine: bool = True

    def __post_init__(self) -> None:
        if self.n_iter < 1 or self.scale < 1.0 or not 0 < self.scale_min <= self.scale_max <= 1:
            raise ValueError(f"bad MGNet config {self}")
        if self.translation not in ("tight-crop", "center-invariant", "naive"):
            raise ValueError(f"unknown translation {self.translation!r}")


class _Head(nn.Module):
    """A Linear under the attribute `fc`, to keep the official key names; Kaiming-normal weights and
    zero bias, as the official classifiers start."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)


class FeatureFusion(nn.Module):
    """1-head self-attention over [feature; detached affine] tokens, LayerNorm, last token, ReLU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, num_heads=1, dropout=0.0)
        self.norm = nn.LayerNorm(dim)
        nn.init.kaiming_normal_(self.mha.in_proj_weight)
        nn.init.kaiming_normal_(self.mha.out_proj.weight)
        nn.init.zeros_(self.mha.in_proj_bias)
        nn.init.zeros_(self.mha.out_proj.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (t, N, d') sequence-first -> z_t (N, d').

        Only the newest token is used as query: LayerNorm and ReLU act per position, so this
        equals the official full self-attention followed by taking the last position.
        """
        out = self.mha(tokens[-1:], tokens, tokens, need_weights=False)[0]
        return F.relu(self.norm(out[0]))


class LocalizationNet(nn.Module):
    """Linear -> sigmoid -> gradient rescale: where to look next."""

    def __init__(self, dim: int, grad_scale: float) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 3)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.grad_factor = GradRescale(grad_scale)

    def forward(self, z: Tensor) -> Tensor:
        return self.grad_factor(torch.sigmoid(self.fc(z)))


class MGNet(BenchModel):
    """Multi-Glimpse Network over a ResNet backbone; exit t sees glimpses 1..t."""

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        num_classes: int,
        input_size: int,
        cfg: MGNetConfig = MGNetConfig(),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(mean, std)
        self.cfg = cfg
        self.input_size = input_size
        self.side = glimpse_side(input_size, cfg.scale)
        d = feat_dim + 3
        self.backbone = backbone
        self.sampler = GlimpseSampler()
        self.feat_fusion = FeatureFusion(d)
        self.loc_network = LocalizationNet(d, cfg.grad_scale if cfg.n_iter > 1 else 1.0)
        # one glimpse never runs it (its weights stay: official checkpoints hold them)
        if cfg.n_iter == 1:
            self.loc_network.requires_grad_(False)  # frozen, so DDP expects no gradient for it
        self.global_fc = _Head(d, num_classes)
        self.glimpse_fc = _Head(feat_dim, num_classes) if cfg.alpha > 0 and cfg.n_iter > 1 else None
        self.affine_stop = GradStop(cfg.detach_affine)

    @property
    def n_exits(self) -> int:
        return self.cfg.n_iter

    def _next_affine(self, sig: Tensor) -> Tensor:
        c = self.cfg
        s = c.scale_min + (c.scale_max - c.scale_min) * sig[:, 0]
        if c.translation == "tight-crop":
            uv = 2 * (sig[:, 1:] - 0.5) * (1 - s[:, None])
        elif c.translation == "center-invariant":
            uv = 2 * (sig[:, 1:] - 0.5) * (1 / c.scale_min - 1) * s[:, None]
        else:  # a range that keeps the smallest glimpse inside the image
            trans_range = 2 * (1 - c.scale_min)
            uv = sig[:, 1:] * trans_range - trans_range / 2
        return torch.cat([s[:, None], uv], 1)

    def _run(self, x: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Run n glimpses: logits (n,N,K), affines (n,N,3), features (n,N,d)."""
        x = self.normalize(x)
        affine = x.new_tensor([1.0, 0.0, 0.0]).expand(x.shape[0], 3)
        tokens, logits, affines, feats = [], [], [], []
        for t in range(n):
            h = self.backbone(self.sampler(x, affine, self.side))
            tokens.append(torch.cat([h, self.affine_stop(affine)], 1))
            z = self.feat_fusion(torch.stack(tokens))
            logits.append(self.global_fc.fc(z))
            affines.append(affine)
            feats.append(h)
            if t + 1 < n:
                affine = self._next_affine(self.loc_network(z))
        return torch.stack(logits), torch.stack(affines), torch.stack(feats)

    def exits_upto(self, x: Tensor, n: int) -> Exits:
        """Logits and glimpse boxes of exits 1..n (n glimpses, nothing more computed)."""
        check_exit(n, self.n_exits)
        logits, affines, _ = self._run(x, n)
        return Exits(logits, affine_to_box(affines))

    def train_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """(1-α)·mean_t CE(exit t) + α·mean_{t>=2} CE(aux classifier on glimpse t's feature)."""
        logits, _, feats = self._run(x, self.n_exits)
        ce = torch.stack([F.cross_entropy(lg, y) for lg in logits]).mean()
        if self.glimpse_fc is None:
            return ce
        aux = torch.stack([F.cross_entropy(self.glimpse_fc.fc(h), y) for h in feats[1:]]).mean()
        return (1 - self.cfg.alpha) * ce + self.cfg.alpha * aux
