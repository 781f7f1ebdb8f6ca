"""Training checkpoints: the file format, atomic saves, loading, exact-resume RNG state and config checks.

A checkpoint (written by rank 0 of ``conr train``) is a dict of plain values and tensors only, so it loads
with ``torch.load(weights_only=True)``: ``format`` (:data:`CKPT_FORMAT`), the resolved config, model,
optimizer, scheduler and GradScaler state, the step, RNG states and the data position.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from conr.config import RunConfig
from conr.errors import ConrError
from conr.weights import load_strict

# 2: the encoders' norm layers are InstanceNorm without running statistics (issue #15, defect 1); a
# format-1 checkpoint holds BatchNorm statistics its weights were trained with and is refused, not adapted.
CKPT_FORMAT = "conr-train/2"
_OLD_FORMATS = {"conr-train/1": "its encoder uses BatchNorm; this version's uses InstanceNorm, retrain"}
# Config fields that may change on --resume: these keep the run exact ...
RESUME_SAFE = {"train.log_every", "train.val_every", "train.val_at_start", "train.ckpt_every",
               "train.keep_every", "train.image_every", "train.tensorboard", "train.progress", "train.lpips",
               "train.lpips_backbone", "train.lpips_linear", "data.prefetch_factor", "data.val_samples",
               "data.val_source"}
# ... these are allowed but change the numbers (a warning says so); every other difference is an error.
RESUME_WARN = {"train.steps", "train.compile", "train.device", "train.amp", "train.channels_last", "data.num_workers"}


class CheckpointError(ConrError):
    """A checkpoint cannot be used: unreadable, of another format, or of another configuration."""


def rng_state() -> dict:
    """Python, numpy, torch and CUDA RNG states as plain lists/tensors (weights_only-loadable)."""
    np_state = np.random.get_state()
    return {"python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj, path: Path) -> None:
    """torch.save through :func:`udpgen.io.atomic.atomic_path` (a unique temp file in the same folder,
    fsynced, then os.replace): a reader never sees half a file, a failed save leaves no temp file."""
    from udpgen.io.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def make_state(cfg: RunConfig, step: int, world: int, model, optimizer, scaler, lr: float, data: dict,
               vgg: bool) -> dict:
    """The checkpoint dict (the one place its keys are written): format, config, step, world size, model,
    optimizer and GradScaler state, the scheduler position, RNG states, the data position (``data``:
    segment_steps, skipped counts) and whether L_vgg ran."""
    return {"format": CKPT_FORMAT, "config": cfg.to_dict(), "step": step, "world_size": world,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "scheduler": {"kind": "warmup_cosine", "step": step, "lr": lr}, "rng": rng_state(), "data": data,
            "vgg": vgg}


def restore(ckpt: dict, path: Path, model, optimizer, scaler) -> int:
    """Load a :func:`make_state` checkpoint into the run's objects and RNGs; returns its step."""
    load_strict(model, ckpt["model"], path)
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["step"])


def load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle/EOF errors and weights_only refusals: not a usable checkpoint
        raise CheckpointError(f"{path}: cannot be read as a conr checkpoint ({type(e).__name__})") from None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if isinstance(fmt, str) and fmt in _OLD_FORMATS:
        raise CheckpointError(f"{path}: a {fmt} checkpoint, this version reads {CKPT_FORMAT} "
                              f"({_OLD_FORMATS[fmt]})")
    if fmt != CKPT_FORMAT:
        raise CheckpointError(f"{path}: not a {CKPT_FORMAT} training checkpoint")
    return ckpt


def compare_configs(saved: dict, cfg: RunConfig) -> list[str]:
    """Raise CheckpointError when ``cfg`` differs from the checkpoint's config outside RESUME_SAFE and
    RESUME_WARN; return warnings for the RESUME_WARN differences."""
    try:
        old = RunConfig.from_dict(saved).flat()
    except ConrError as e:
        raise CheckpointError(f"the checkpoint's config does not load here: {e}") from None
    new = cfg.flat()
    diff = [k for k in new if old.get(k) != new[k]]
    bad = [k for k in diff if k not in RESUME_SAFE | RESUME_WARN]
    if bad:
        shown = "; ".join(f"{k}: checkpoint {old.get(k)!r}, config {new[k]!r}" for k in bad[:4])
        raise CheckpointError(f"the checkpoint is of another config ({shown}{'; ...' if len(bad) > 4 else ''}); "
                              "resume with the config it was trained with, or use another --out")
    return [f"{k} changed on resume ({old.get(k)!r} -> {new[k]!r}): the run is no longer bit-exact"
            for k in diff if k in RESUME_WARN]
