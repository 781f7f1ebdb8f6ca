"""Model statistics: parameter counts per module and FLOPs per training sample.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products,
2 FLOPs per multiply-add; resampling, grid_sample and element-wise ops are not counted) on the ``meta``
device, so counting the paper's model takes no memory and well under a second.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from conr.config import ModelConfig
from conr.nn.conr import CoNR


# The official CoNR inference model, as counted by issue #15's review of the official inference code
# (its networks' parameters, not stated in the paper): the whole model, and its CINN renderer.
OFFICIAL = {"parameters": 180_000_000, "renderer_parameters": 96_000_000,
            "source": "counted from the official inference code in issue #15; the paper states no size"}


def parameter_counts(model: nn.Module, depth: int = 2) -> dict[str, int]:
    """{'total': N, 'encoder': N, 'renderer.decoder.blocks': N, ...}: parameters per module, ``depth``
    levels down; a module that is its parent's only child with parameters does not use up a level."""
    counts = {"total": _numel(model)}

    def visit(prefix: str, module: nn.Module, level: int):
        children = [(n, c) for n, c in module.named_children() if _numel(c)]
        for name, child in children:
            counts[prefix + name] = _numel(child)
            next_level = level + (len(children) > 1)
            if next_level < depth or len(children) == 1:
                visit(f"{prefix}{name}.", child, next_level)

    visit("", model, 0)
    return counts


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sample_inputs(cfg: ModelConfig, batch: int = 1, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Random refs (batch, m, 4, S, S) (premultiplied) and composites (batch, k, 3, S, S) at the config's
    training size S, m = views, k = composites."""
    S = cfg.image_size
    refs = torch.rand(batch, cfg.views, 4, S, S, device=device, dtype=dtype)
    refs = torch.cat((refs[:, :, :3] * refs[:, :, 3:], refs[:, :, 3:]), 2)
    composites = torch.rand(batch, cfg.composites, 3, S, S, device=device, dtype=dtype)
    return refs, composites


def training_loss(out) -> torch.Tensor:
    """A stand-in loss touching every output of :meth:`CoNR.forward_train` (for FLOP counts and benches)."""
    return out.detections.mean() + out.udp.mean() + out.rgba.mean()


def flops_per_sample(cfg: ModelConfig) -> dict:
    """FLOPs of one training sample (m reference views, k composites, image_size px):
    {'forward': F, 'backward': B, 'total': F + B, 'forward_by_module': {'encoder': .., ...}}."""
    with torch.device("meta"):
        model = CoNR(cfg)
        refs, composites = sample_inputs(cfg, device="meta")
    with FlopCounterMode(display=False, depth=1) as fwd:
        loss = training_loss(model.forward_train(refs, composites))
    with FlopCounterMode(display=False, depth=1) as bwd:
        loss.backward()
    f, b = fwd.get_total_flops(), bwd.get_total_flops()
    # the counter names modules by class; the top-level modules of CoNR have distinct classes
    by_class = {k: sum(v.values()) for k, v in fwd.get_flop_counts().items()}
    by_module = {name: by_class.get(type(m).__name__, 0) for name, m in model.named_children()}
    return {"forward": f, "backward": b, "total": f + b, "forward_by_module": by_module}
