"""Train CoNR end to end from shards: ``conr train --config NAME|FILE --data SHARDS --out RUN``.

The script reads top to bottom (nanoGPT style; split as litgpt splits it): :func:`setup` makes the
processes, the run directory, the data, the model, losses and optimizer into a :class:`Run`; :func:`fit` runs
the loop, calling :func:`validate` and :func:`save_checkpoint` (whose keys :mod:`conr.checkpoint` owns);
:func:`train` is setup then fit. The helpers above them are small and separate.

* Forward: the detector on the k composites (their detections averaged, Eq. 2-4), the renderer on the m
  references driven by the target's ground-truth UDP when it has one, else by the detection
  (train.render_udp; 'detected' drives every target by its detection, CoNR.forward_train). Loss: Eq. 5.
* Optimisation: AdamW (decoupled weight decay train.weight_decay on conv/linear weights), linear warm-up
  then cosine decay to train.min_lr (the rate is a pure function of the step, :func:`lr_at`), global grad
  norm clipping, gradient accumulation, AMP (bf16 autocast on CUDA, off on CPU; fp16 with a GradScaler on
  request, which skips a step whose loss overflows; MAX_NONFINITE_STEPS in a row stop the run; without a
  scaler the first non-finite loss does), channels_last, optional torch.compile.
* DDP under torchrun: rank and world size from the environment (RANK, WORLD_SIZE, LOCAL_RANK; gloo on CPU,
  nccl on CUDA). train.batch_size is the global batch; each rank takes batch_size / (world x grad_accum)
  per micro-step. The encoders normalise per instance (InstanceNorm), so no statistic depends on the
  micro-batch or the rank; train.sync_bn only matters for a BatchNorm a custom module might add.
* Run directory: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON object per logged
  step, ``split`` train or val), ``ckpt/last.pt`` (+ ``ckpt/step_NNNNNNNN.pt`` every train.keep_every),
  ``tb/`` TensorBoard events (scalars; image grids references | target | prediction | UDP | detected UDP)
  when the tensorboard package is importable.
* Checkpoints (rank 0, temp file + os.replace) hold plain values and tensors only, so they load with
  ``torch.load(weights_only=True)``: format, the resolved config, model, optimizer, scheduler and
  GradScaler state, the step, RNG states (python, numpy, torch, cuda) and the data position.
* Exact resume: the data stream is a function of (seed, segment start, rank, worker) and restarts every
  data.segment_steps steps; ``--resume`` loads ``ckpt/last.pt``, re-creates the stream of its segment and
  skips the batches already used, so a killed and resumed run logs the same losses as an uninterrupted one
  (same device, world size and workers). metrics.jsonl and TensorBoard drop what was logged after it.
* SIGTERM / SIGINT: the step finishes, a checkpoint is written, the run stops (a second SIGINT kills).
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from conr.checkpoint import CheckpointError, compare_configs, load_checkpoint, make_state, restore, save_atomic
from conr.config import RunConfig
from conr.data import (DataError, SkipTotals, check_shards, check_split, eval_keys, eval_loader, eval_source,
                       train_loader, unwrap_worker_error)
from conr.errors import ConfigError, ConrError
from conr.losses import LOSS_NAMES, CoNRLoss, build_lpips, build_vgg_loss, ddp_counts
from conr.nn.conr import CoNR, TrainOutput
from conr.nn.detector import fuse_detections
from conr.weights import load_weights


class TrainingError(ConrError):
    """Training cannot go on (e.g. the loss is no longer finite)."""


# ----------------------------------------------------------------------------------------------------
# Helpers


def lr_at(step: int, cfg) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up over warmup_steps, then cosine
    from lr to min_lr at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * t)) * (cfg.lr - cfg.min_lr)


def setup_distributed(cfg: RunConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; initialises the process group if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda", "CUDA is not available here")
    device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, (dist.get_world_size() if dist.is_initialized() else 1), device


def teardown_distributed() -> None:
    """Destroy the process group, if any, while the interpreter is still whole.

    DDP modules hold the group in reference cycles, so they are collected first: a group left to
    interpreter exit aborts the process in gloo's threads ("terminate called without an active exception",
    2 exits in 20 on this CPU), and torchrun then reports the finished run as failed."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only (biases and norm parameters are 1-D)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def encoder_source(cfg: RunConfig) -> str:
    """train.encoder_weights resolved: 'auto' -> the published file matching the encoder and its norm."""
    src, m = cfg.train.encoder_weights, cfg.model
    if m.encoder == "plain":
        return "random"
    if src != "auto":
        return src
    if m.encoder_norm == "none":
        return "random"
    if m.encoder_norm == "danbooru":
        if m.encoder != "resnet50":
            raise ConfigError("train.encoder_weights", "auto", f"no Danbooru weights for {m.encoder}")
        return "resnet50-danbooru"
    return m.encoder


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def trained_parts(cfg: RunConfig) -> dict[str, bool]:
    """Which parts of the network the loss weights need in training: {'render': the renderer runs (L_photo
    or L_vgg on), 'detector': the detector's decoder is trained (L_udp, L_mask or L_cons on, or L_photo
    reaches it through the detected UDP in render_udp 'detected')}."""
    w = cfg.loss
    render = w.photo > 0 or w.vgg > 0
    detector = w.udp > 0 or w.mask > 0 or w.cons > 0 or (render and cfg.train.render_udp == "detected")
    return {"render": render, "detector": detector}


class _TrainStep(nn.Module):
    """One training forward as a module (DDP only hooks ``forward``) -> (detections, fused UDP, rgba).

    render_udp 'detected': CoNR.forward_train (the renderer draws from the fused detection). 'ground_truth':
    the detector runs on the composites as before, the renderer draws labelled targets from their own UDP
    and unlabelled ones from the detection, detached (public CoNR methods: detect, encode, render).

    parts (:func:`trained_parts`): without 'render' rgba is None (the renderer is not run); without
    'detector' the detector runs without gradient, and only when an unlabelled target needs its detection
    (detections and UDP are None otherwise). The parts not run are frozen by :func:`setup`, so that DDP
    does not wait for their gradients."""

    def __init__(self, model: CoNR, render_udp: str, parts: dict[str, bool] | None = None):
        super().__init__()
        self.model, self.render_udp = model, render_udp
        self.parts = parts or {"render": True, "detector": True}

    def forward(self, refs, composites, target_udp, labelled):
        render, trained = self.parts["render"], self.parts["detector"]
        if self.render_udp == "detected" and render and trained:
            out = self.model.forward_train(refs, composites)
            return out.detections, out.udp, out.rgba
        B, k = composites.shape[:2]
        det = udp = None
        if trained or (render and not bool(labelled.all())):
            with contextlib.nullcontext() if trained else torch.no_grad():
                det = self.model.detect(composites.flatten(0, 1)).unflatten(0, (B, k))
                udp = fuse_detections(det)
        if not render:
            return det, udp, None
        if udp is None:  # every target is labelled (render_udp 'detected' always trains the detector)
            drive = target_udp
        else:
            # detached: on an unlabelled target, L_photo through the detected UDP would train the detector,
            # which sees the target image, to pass its appearance to the renderer in the UDP channels
            drive = torch.where(labelled.view(B, 1, 1, 1), target_udp.to(udp.dtype), udp.detach())
        return det, udp, self.model.render(self.model.encode(refs), drive)


# fp16: this many non-finite losses in a row (the scale halved each time) mean the run has diverged.
MAX_NONFINITE_STEPS = 16


@torch.no_grad()
def evaluate(model: CoNR, batches: Iterable[dict], max_samples: int, device: torch.device,
             autocast=contextlib.nullcontext, lpips=None, channels_last: bool = False) -> tuple[dict, dict | None]:
    """Validation over up to ``max_samples`` items -> (metrics, the first batch with predictions).

    metrics: those of :mod:`conr.metrics` (the same function as ``conr evaluate``) at n = model.views:
    photo, photo_gt, nearest_ref, lpips, lpips_gt (when measured), udp and mask, samples, labelled. Runs in
    eval mode."""
    from conr.metrics import PER_N, Metrics, measure_batch

    was_training = model.training
    model.eval()
    metrics, first, n_views = Metrics(), None, model.cfg.views
    try:
        for batch in batches:
            n = min(len(batch["key"]), max_samples - metrics.samples)
            if n <= 0:
                break
            b = to_device({k: v[:n] for k, v in batch.items() if isinstance(v, (torch.Tensor, list))},
                          device, channels_last)
            with torch.no_grad(), autocast():
                out = measure_batch(model, b, [n_views], metrics, lpips)
            if first is None and out:
                first = {**{k: v.float().cpu() for k, v in b.items() if isinstance(v, torch.Tensor)},
                         "pred": out["pred"].float().cpu(), "pred_udp": out["udp"].float().cpu()}
    finally:
        model.train(was_training)
    res = {k: metrics.mean(n_views, k) for k in PER_N}
    res.update(udp=metrics.mean(None, "udp"), mask=metrics.mean(None, "mask"))
    return {**{k: v for k, v in res.items() if v is not None}, "samples": metrics.samples,
            "labelled": metrics.labelled}, first


def image_grid(batch: dict, rows: int = 4) -> torch.Tensor:
    """(3, rows*S, (m + 4)*S) in [0, 1]: references | target | prediction | target UDP | detected UDP,
    premultiplied images shown over white."""
    def over_white(x):  # (..., 4, S, S) premultiplied -> (..., 3, S, S)
        return x[..., :3, :, :] + (1 - x[..., 3:, :, :])

    lines = []
    for i in range(min(rows, batch["refs"].shape[0])):
        tiles = [*over_white(batch["refs"][i]), over_white(batch["target_rgba"][i]), over_white(batch["pred"][i]),
                 batch["target_udp"][i][:3], batch["pred_udp"][i][:3]]
        lines.append(torch.cat(tiles, 2))
    return torch.cat(lines, 1).clamp(0, 1)


class MetricsLog:
    """metrics.jsonl: one JSON object per line; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path, keep_until: int | None):
        self.path = path
        if keep_until is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= keep_until]
            path.write_text("".join(ln + "\n" for ln in kept))
        elif keep_until is None:
            path.write_text("")

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _open_tensorboard(out: Path, purge_step: int | None, log: Callable):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log("TensorBoard off: the tensorboard package is not installed (pip install tensorboard); "
            "scalars still go to metrics.jsonl")
        return None
    return SummaryWriter(str(out / "tb"), purge_step=purge_step)


# ----------------------------------------------------------------------------------------------------
# The script


@dataclass
class Run:
    """A set-up training run: what :func:`fit`, :func:`validate` and :func:`save_checkpoint` work on."""
    cfg: RunConfig
    out: Path
    rank: int
    world: int
    device: torch.device
    log: Callable[[str], None]
    per_rank: int                       # samples per rank per micro-step
    amp: str                            # 'bf16' | 'fp16' | 'off'
    autocast: Callable
    ckpt_path: Path
    resumed: bool
    shards: object                      # conr.data.ShardSet, or None with a test loader_fn
    val_source: str
    loader_fn: Callable
    segment_steps: int
    skipped: SkipTotals
    model: CoNR
    net: nn.Module                      # the train step module (DDP / compiled)
    criterion: CoNRLoss
    vgg: bool
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int
    metrics: MetricsLog | None
    tb: object
    lpips: object

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(cfg: RunConfig, data: str | os.PathLike, out: str | os.PathLike, *, resume: bool = False,
          loader_fn: Callable | None = None, log: Callable[[str], None] = print) -> Run:
    """Processes, devices, the run directory, the data, the model, losses and optimizer (restored from
    ``out/ckpt/last.pt`` with ``resume``), logging. Raises ConrError subclasses for bad input before any run
    folder is made.

    loader_fn(segment, rank, world, micro_batch) -> iterable of batches replaces the shard stream (tests).
    """
    rank, world, device = setup_distributed(cfg)
    main = rank == 0
    log = log if main else (lambda *_: None)
    T, out = cfg.train, Path(out)
    per_rank = T.batch_size // (world * T.grad_accum)
    if per_rank < 1 or per_rank * world * T.grad_accum != T.batch_size:
        raise ConfigError("train.batch_size", T.batch_size, f"must be a multiple of world_size x grad_accum = "
                                                            f"{world} x {T.grad_accum}")
    amp = T.amp if T.amp != "auto" else ("bf16" if device.type == "cuda" else "off")
    autocast = (lambda: torch.autocast(device.type, {"bf16": torch.bfloat16, "fp16": torch.float16}[amp])) \
        if amp != "off" else contextlib.nullcontext
    ckpt_path = out / "ckpt" / "last.pt"
    ckpt = None
    if ckpt_path.exists() and not resume:
        raise CheckpointError(f"{out} already holds a checkpoint ({ckpt_path}); pass --resume to continue it "
                              "or choose another --out")
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        for w in compare_configs(ckpt["config"], cfg):
            log(f"warning: {w}")
        if ckpt["world_size"] != world:
            log(f"warning: resumed with world size {world}, the checkpoint ran {ckpt['world_size']}: the data "
                "order differs from the uninterrupted run")
    elif resume:
        log(f"no checkpoint in {out}: starting at step 0")

    # -- data ------------------------------------------------------------------------------------------
    if loader_fn is None:
        shards = check_shards(data, backgrounds=cfg.data.backgrounds)
        check_split(shards, cfg, world)
        val_source = eval_source(shards, cfg)
        if val_source != "none" and main:
            eval_keys(shards, cfg, val_source)  # no usable validation item fails here, not at the first validation

        def loader_fn(segment, rank, world, micro):
            return train_loader(shards, cfg, batch=micro, segment=segment, rank=rank, world=world,
                                pin_memory=device.type == "cuda")
    else:
        shards, val_source = None, "none"
    segment_steps = (ckpt["data"]["segment_steps"] if ckpt else
                     cfg.data.segment_steps or T.ckpt_every or T.steps)
    skipped = SkipTotals(ckpt["data"]["skipped"] if ckpt else None)

    # -- model, losses, optimizer ------------------------------------------------------------------------
    torch.manual_seed(T.seed)
    random.seed(T.seed)
    np.random.seed(T.seed)
    model = CoNR(cfg.model)
    if ckpt is None:
        enc = encoder_source(cfg)
        if enc != "random":
            try:
                load_weights(model.encoder, enc, backbone=True)
            except ConrError as e:
                raise ConfigError("train.encoder_weights", T.encoder_weights,
                                  f"{e} (set train.encoder_weights=random to train the encoder from scratch)") from None
    if world > 1 and T.sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif world > 1 and T.sync_bn:
        log("warning: train.sync_bn needs CUDA; BatchNorm statistics stay per rank (the built-in networks "
            "have none: their encoders use InstanceNorm)")
    model.to(device)
    if T.channels_last:
        model = model.to(memory_format=torch.channels_last)
    parts = trained_parts(cfg)
    if not parts["render"]:
        model.renderer.requires_grad_(False)
        log("renderer not trained: loss.photo = loss.vgg = 0")
    if not parts["detector"]:
        model.detector_decoder.requires_grad_(False)
        log("detector decoder not trained: loss.udp = loss.mask = loss.cons = 0")
    vgg, msg = build_vgg_loss(T, device, cfg.loss.vgg)
    log(msg)
    criterion = CoNRLoss(cfg.loss, vgg)
    optimizer = torch.optim.AdamW(param_groups(model, T.weight_decay), lr=T.lr, betas=T.betas,
                                  **({"fused": True} if device.type == "cuda" else {}))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    step = 0
    if ckpt is not None:
        step = restore(ckpt, ckpt_path, model, optimizer, scaler)
        log(f"resumed {ckpt_path} at step {step}")
    net: nn.Module = _TrainStep(model, T.render_udp, parts)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if T.compile:
        net = torch.compile(net)

    # -- logging -----------------------------------------------------------------------------------------
    if main:  # only once the input checked out: bad data or weights leave no run folder behind
        (out / "ckpt").mkdir(parents=True, exist_ok=True)
        import yaml

        from udpgen.io.atomic import write_bytes_atomic

        write_bytes_atomic(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    metrics = MetricsLog(out / "metrics.jsonl", step if ckpt else None) if main else None
    tb = _open_tensorboard(out, step if ckpt else None, log) if main and T.tensorboard else None
    lpips, msg = build_lpips(T, device) if main and val_source != "none" else (None, "")
    if msg:
        log(msg)
    if main and val_source == "none":
        log("validation off: no val-*.tar shards and data.holdout_views = 0")
    if main:
        from conr.stats import parameter_counts

        log(f"conr train: {cfg.preset} preset, {parameter_counts(model)['total']:,} parameters, device {device}, "
            f"world {world}, batch {T.batch_size} = {world} x {T.grad_accum} x {per_rank}, amp {amp}, "
            f"steps {step}..{T.steps}")
    return Run(cfg, out, rank, world, device, log, per_rank, amp, autocast, ckpt_path, ckpt is not None, shards,
               val_source, loader_fn, segment_steps, skipped, model, net, criterion, vgg is not None, optimizer,
               scaler, step, metrics, tb, lpips)


def validate(run: Run, step: int) -> dict | None:
    """Validation (rank 0, when there is validation data): :func:`evaluate` on the items of
    :func:`conr.data.eval_keys` (the whole split, or data.val_samples of it stratified by character; the
    same items at every validation and for any data.num_workers), logged to metrics.jsonl, TensorBoard and
    the log; returns the metrics."""
    cfg, T, log, metrics, tb = run.cfg, run.cfg.train, run.log, run.metrics, run.tb
    if not run.main or run.val_source == "none":
        return None
    loader = eval_loader(run.shards, cfg, run.val_source, batch=run.per_rank)
    try:
        res, first = evaluate(run.model, loader, cfg.data.val_samples, run.device, run.autocast, run.lpips,
                              T.channels_last)
    except DataError as e:
        raise unwrap_worker_error(e) from None
    metrics.write({"step": step, "split": "val", "source": run.val_source, **res})
    if tb is not None:
        for k, v in res.items():
            tb.add_scalar(f"val/{k}", v, step)
        if first is not None and (T.image_every == 0 or step % T.image_every == 0):
            tb.add_image("val/refs|target|pred|udp|detected", image_grid(first), step)
    log(f"step {step}: val ({run.val_source}, {res['samples']} samples) " +
        " ".join(f"{k} {v:.4f}" for k, v in res.items() if k not in ("samples", "labelled")))
    return res


def save_checkpoint(run: Run, step: int) -> None:
    """ckpt/last.pt (rank 0; atomic), plus a kept copy every train.keep_every steps."""
    if not run.main:
        return
    T = run.cfg.train
    state = make_state(run.cfg, step, run.world, run.model, run.optimizer, run.scaler, lr_at(max(step - 1, 0), T),
                       {"segment_steps": run.segment_steps, "skipped": run.skipped.total()}, run.vgg)
    save_atomic(state, run.ckpt_path)
    if T.keep_every and step % T.keep_every == 0:
        save_atomic(state, run.ckpt_path.with_name(f"step_{step:08d}.pt"))


def fit(run: Run, _stop_after: int | None = None) -> dict:
    """The training loop from ``run.step`` to train.steps: validation, checkpoints, a clean stop on SIGTERM /
    SIGINT; returns a summary (step, last train losses, last validation, skipped counts).

    _stop_after: stop after this many steps of this call without a final checkpoint, as a kill would.
    """
    T, log, main, device = run.cfg.train, run.log, run.main, run.device
    model, net, criterion, optimizer, scaler = run.model, run.net, run.criterion, run.optimizer, run.scaler
    rank, world, per_rank, autocast, skipped = run.rank, run.world, run.per_rank, run.autocast, run.skipped
    metrics, tb, segment_steps, loader_fn, step = run.metrics, run.tb, run.segment_steps, run.loader_fn, run.step

    # -- stop on SIGTERM / SIGINT after the current step -----------------------------------------------------
    stop = {"requested": False}

    def on_signal(signum, frame):
        if stop["requested"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["requested"] = True
        log(f"\nsignal {signum}: stopping after this step (a checkpoint will be written)")

    handlers = {}
    if threading_main():
        handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    # -- the loop ----------------------------------------------------------------------------------------------
    summary: dict = {"step": step}
    bar = None
    try:
        if not run.resumed and T.val_at_start:
            summary["val"] = validate(run, 0)
        if main and T.progress:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (logs, the demo's child process)
            bar = tqdm(total=T.steps, initial=step, unit="step", dynamic_ncols=True, disable=None)
        batches, done_here, nonfinite = None, 0, 0
        window = {"t": time.perf_counter(), "steps": 0, "wait": 0.0,
                  "sums": torch.zeros(len(LOSS_NAMES) + 1, device=device)}
        while step < T.steps:
            if batches is None or step % segment_steps == 0:
                # The stream of a segment is a function of (seed, segment start, rank, worker): restart it here
                # (and on resume), skipping what the segment already used.
                segment = step - step % segment_steps
                batches = None  # shut the old workers down first
                skipped.new_stream()
                batches = iter(loader_fn(segment, rank, world, per_rank))
                for _ in range((step - segment) * T.grad_accum):
                    next_batch(batches)
            lr = lr_at(step, T)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t_wait = time.perf_counter()
            micro_batches = [next_batch(batches) for _ in range(T.grad_accum)]
            window["wait"] += time.perf_counter() - t_wait         # the loader's share of the step time
            counts = None
            if world > 1 or T.grad_accum > 1:
                # labelled-only means over the whole step (all micro-batches, all ranks), not per micro-batch
                labelled = torch.cat([mb["labelled"] for mb in micro_batches]).to(device)
                counts = ddp_counts(labelled, torch.ones_like(labelled), micro_steps=T.grad_accum)
            for micro, batch in enumerate(micro_batches):
                skipped.update(batch)
                b = to_device(batch, device, T.channels_last)
                sync = micro == T.grad_accum - 1 or world == 1
                with (contextlib.nullcontext() if sync else net.no_sync()), autocast():
                    det, udp, rgba = net(b["refs"], b["target_composites"], b["target_udp"], b["labelled"])
                    losses = criterion(TrainOutput(det, udp, rgba), b, counts)
                scaler.scale(losses["total"] / T.grad_accum).backward()
                window["sums"] += torch.stack([losses["total"].detach()] + [losses[k].detach() for k in LOSS_NAMES]) \
                    / T.grad_accum
            # Under fp16 an overflow is routine: GradScaler skips the step and lowers its scale, so only a
            # long streak is fatal; without a scaler a non-finite loss is a bug and stops the run at once.
            nonfinite = 0 if torch.isfinite(losses["total"]) else nonfinite + 1
            if nonfinite and (not scaler.is_enabled() or nonfinite > MAX_NONFINITE_STEPS):
                raise TrainingError(f"the loss is not finite at step {step + 1}" +
                                    (f" ({nonfinite} steps in a row)" if nonfinite > 1 else "") + " (" +
                                    ", ".join(f"{k} {float(v):.4g}" for k, v in losses.items()) + ")")
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), T.grad_clip or float("inf"))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, done_here = step + 1, done_here + 1
            window["steps"] += 1

            if step % T.log_every == 0 or step == T.steps:
                sums = window["sums"].clone()
                if world > 1:
                    dist.all_reduce(sums)
                    sums /= world
                means = (sums / window["steps"]).tolist()
                dt = time.perf_counter() - window["t"]
                rec = {"step": step, "split": "train", "loss": means[0], **dict(zip(LOSS_NAMES, means[1:])),
                       "lr": lr, "grad_norm": float(grad_norm), "samples_per_s": window["steps"] * T.batch_size / dt,
                       "data_wait_share": window["wait"] / dt, "skipped": skipped.total()}
                summary.update(step=step, train=rec)
                if main:
                    metrics.write(rec)
                    if tb is not None:
                        for k in ("loss", *LOSS_NAMES, "lr", "grad_norm", "samples_per_s"):
                            tb.add_scalar(f"train/{k}", rec[k], step)
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", photo=f"{rec['photo']:.4f}",
                                        samples_s=f"{rec['samples_per_s']:.1f}")
                window = {"t": time.perf_counter(), "steps": 0, "wait": 0.0, "sums": torch.zeros_like(window["sums"])}
            if bar is not None:
                bar.update(1)
            if _stop_after is not None and done_here >= _stop_after:
                run.step = step
                return summary  # as if killed: no final checkpoint
            stop_now = stop["requested"]
            if world > 1:  # every rank stops at the same step
                flag = torch.tensor([float(stop_now)], device=device)
                dist.all_reduce(flag)
                stop_now = bool(flag.item())
            t_side = time.perf_counter()  # validation and checkpoints stay out of samples/s
            if T.val_every and step % T.val_every == 0 and step != T.steps:
                summary["val"] = validate(run, step)
            if stop_now or step == T.steps or (T.ckpt_every and step % T.ckpt_every == 0):
                if step == T.steps:
                    summary["val"] = validate(run, step)
                save_checkpoint(run, step)
            if world > 1:
                dist.barrier()
            window["t"] += time.perf_counter() - t_side
            if stop_now:
                log(f"stopped at step {step}; continue with --resume")
                break
    finally:
        batches = None
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
        for s, h in handlers.items():
            signal.signal(s, h)
    run.step = step
    summary["skipped"] = skipped.total()
    return summary




def train(cfg: RunConfig, data: str | os.PathLike, out: str | os.PathLike, *, resume: bool = False,
          loader_fn: Callable | None = None, log: Callable[[str], None] = print,
          _stop_after: int | None = None) -> dict:
    """Train ``cfg`` on the shards in ``data``, writing the run to ``out``: :func:`setup`, then :func:`fit`;
    returns fit's summary. Raises ConrError subclasses for bad input. A process group that setup starts
    (under torchrun) is destroyed on the way out; one the caller started is left to the caller."""
    owned = not (dist.is_available() and dist.is_initialized())
    try:
        return fit(setup(cfg, data, out, resume=resume, loader_fn=loader_fn, log=log), _stop_after)
    finally:
        if owned:
            teardown_distributed()


def next_batch(batches) -> dict:
    try:
        return next(batches)
    except DataError as e:  # raised in a worker: one line, not the worker's traceback
        raise unwrap_worker_error(e) from None


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
