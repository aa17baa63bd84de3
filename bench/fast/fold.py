"""Fold eval-mode batch norm into the convolution that feeds it: the same function, fewer passes
over memory.

In eval mode BN(conv(x)) is one affine map per output channel after the convolution, so it can be
absorbed into the convolution's weight and bias (torch.nn.utils.fusion.fuse_conv_bn_weights) and the
BN replaced by an identity. On the 2-core CPU this makes resnet_small's batch-1 forward plus
backward, the step of AutoAttack's FAB and Square on their last images, about 1.5x faster.

Pairs are found on torch.fx graphs: a BatchNorm2d qualifies when every call of it takes the output
of the same Conv2d, and every call of that Conv2d feeds only that BN (a weight-shared backbone
called once per glimpse qualifies). A module that fx cannot trace is searched child by child. The
caller (`bench.fast.precision.runtime_copy`) checks the folded model against the original on a probe
batch and keeps the original when they differ, so a pattern fx misreads cannot change results.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _pairs(root: nn.Module) -> list[tuple[str, str]] | None:
    """(conv name, bn name) pairs of `root` that can be folded; None when fx cannot trace it."""
    try:
        graph = torch.fx.symbolic_trace(root).graph
    # fx raises many kinds of errors on data-dependent Python; any of them means "search deeper"
    except Exception:
        return None
    mods = dict(root.named_modules())
    calls: dict[str, list[torch.fx.Node]] = defaultdict(list)
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)].append(node)
    pairs = []
    for name, nodes in calls.items():
        if not isinstance(mods.get(name), nn.BatchNorm2d):
            continue
        sources = {
            n.args[0].target
            if isinstance(n.args[0], torch.fx.Node) and n.args[0].op == "call_module"
            else None
            for n in nodes
        }
        if len(sources) != 1 or None in sources:
            continue
        conv = str(sources.pop())
        if not isinstance(mods.get(conv), nn.Conv2d):
            continue
        feeds_only_bn = all(
            len(c.users) == 1
            and next(iter(c.users)).op == "call_module"
            and next(iter(c.users)).target == name
            for c in calls[conv]
        )
        if feeds_only_bn:
            pairs.append((conv, name))
    return pairs


def _find(module: nn.Module, prefix: str = "") -> list[tuple[str, str]]:
    """Foldable pairs in `module`, as full names, tracing the largest traceable sub-trees."""
    pairs = _pairs(module)
    if pairs is not None:
        return [(prefix + c, prefix + b) for c, b in pairs]
    return [p for name, child in module.named_children() for p in _find(child, f"{prefix}{name}.")]


def _usable(bn: nn.BatchNorm2d) -> bool:
    return not bn.training and bn.track_running_stats and bn.running_mean is not None


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every foldable eval-mode BatchNorm2d into its convolution, in place; returns how many
    were folded.

    Only for evaluation: the folded model has no batch-norm statistics to train.
    """
    folded = 0
    for conv_name, bn_name in _find(model):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        if not _usable(bn):
            continue
        w, b = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        conv.weight, conv.bias = w, b
        parent, _, leaf = bn_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
        folded += 1
    return folded
