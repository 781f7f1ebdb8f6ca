"""Configuration: the model (:class:`ModelConfig`), training (:class:`TrainConfig`), data
(:class:`DataConfig`) and loss-weight (:class:`LossConfig`) dataclasses, named presets, and config files.

A config is named by a preset (``paper``, ``tiny``, or one of the rows of the paper's tables:
:data:`PRESET_TABLE`, ``conr info --presets``) or given as a file (``.toml``, ``.yaml``/``.yml`` or
``.json``)::

    preset = "tiny"             # optional base, default "paper"
    [model]
    message_passing = 1
    [train]
    lr = 1e-3
    steps = 500
    [data]
    num_workers = 2
    [loss]
    vgg = 0                     # Table 4 "w/o L_vgg"

:func:`load_model_config` reads the model part only (a file with other tables is refused, as before);
:func:`load_config` reads all four into a :class:`RunConfig` and applies ``section.field=value``
overrides (``conr train --set train.lr=1e-4``). Unknown keys and bad values raise
:class:`conr.errors.ConfigError` naming the field (``train.lr``; model fields by their bare name) and the
value, before anything runs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conr.errors import ConfigError

ENCODERS = ("resnet18", "resnet34", "resnet50", "plain")
ENCODER_NORMS = ("imagenet", "danbooru", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the CoNR networks and the paper's ablation switches.

    Fields:
        image_size: training side length in px (multiple of 32); FLOP counts and benchmarks use it. The
            networks themselves take any side that is a multiple of 32.
        encoder: the shared encoder of the UDP detector and the renderer: 'resnet50' (paper), 'resnet34',
            'resnet18', or 'plain' (the U-Net's own conv encoder, Table 2/3 "without R50").
        encoder_norm: input normalisation of a ResNet encoder, matching its pre-trained weights:
            'imagenet' (torchvision files), 'danbooru' (RF5's Danbooru ResNet-50), 'none'.
        plain_widths: channels of the 5 stages (strides 2..32) of a plain encoder; also the encoder of the
            U-Net baseline renderer.
        detector_widths: channels of the 5 residual decoder blocks of the UDP detector (strides 16..1).
        renderer_widths: channels of the renderer's decoder blocks D1..D4 (strides 16, 8, 4, 2); D1..D3
            split their output into remote and local halves, so those three must be even.
        message_passing: how many times the per-view sub-networks exchange messages, 1..3. The last
            exchange is always the gather into D4; 3 exchanges at every block (paper), 1 only at the gather.
        warping: predict a 2-channel flow per block (accumulated over the blocks), warp the remote half
            onto the target and pre-warp each view's skip features and alpha before the next block.
        cinn: collaborative inference (one sub-network per reference view, shared weights, averaged
            messages). False gives the paper's plain U-Net baseline, whose encoder takes the ``views``
            references and the target UDP concatenated (so it only takes n == views at inference).
        views: m, reference views per training sample.
        composites: k, backgrounds the target is pasted on for the detector per training sample.
    """

    image_size: int = 256
    encoder: str = "resnet50"
    encoder_norm: str = "imagenet"
    plain_widths: tuple[int, ...] = (64, 128, 256, 512, 512)
    detector_widths: tuple[int, ...] = (256, 128, 64, 32, 16)
    renderer_widths: tuple[int, ...] = (256, 128, 64, 32)
    message_passing: int = 3
    warping: bool = True
    cinn: bool = True
    views: int = 4
    composites: int = 4

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f.name, value, "expected true or false")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f.name, value, "expected an integer")
            if f.type == "str" and not isinstance(value, str):
                raise ConfigError(f.name, value, "expected a string")
            if f.type == "tuple[int, ...]":
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, f.name, value)
                if not isinstance(value, tuple) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
                ):
                    raise ConfigError(f.name, value, "expected a list of positive integers")
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError("image_size", self.image_size, "expected a positive multiple of 32")
        if self.encoder not in ENCODERS:
            raise ConfigError("encoder", self.encoder, f"expected one of {', '.join(ENCODERS)}")
        if self.encoder_norm not in ENCODER_NORMS:
            raise ConfigError("encoder_norm", self.encoder_norm,
                              f"expected one of {', '.join(ENCODER_NORMS)}")
        for name, count in (("plain_widths", 5), ("detector_widths", 5), ("renderer_widths", 4)):
            if len(getattr(self, name)) != count:
                raise ConfigError(name, getattr(self, name), f"expected {count} widths")
        if any(w % 2 for w in self.renderer_widths[:3]):
            raise ConfigError("renderer_widths", self.renderer_widths,
                              "D1..D3 widths must be even (remote/local halves)")
        if not 1 <= self.message_passing <= 3:
            raise ConfigError("message_passing", self.message_passing, "expected 1, 2 or 3")
        if self.views < 1:
            raise ConfigError("views", self.views, "expected at least 1 reference view")
        if self.composites < 1:
            raise ConfigError("composites", self.composites, "expected at least 1 composite")

    def replace(self, **changes) -> ModelConfig:
        """A copy with ``changes`` applied; an unknown field raises ConfigError naming it."""
        known = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ConfigError(key, value, f"unknown model field (known: {', '.join(sorted(known))})")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


_PAPER = ModelConfig()

@dataclass(frozen=True)
class Preset:
    """A named run: ``changes`` ({'model.views': 1, 'loss.mask': 0.0}) over the paper's run config
    (:func:`run_preset`), and the rows of the paper's tables it is the setting of (``rows``)."""

    changes: dict
    rows: str


# Every row of the paper's Tables 1-4 and of the appendix's message-passing ablation is one of these. A row is
# a training run; the n of Table 1 is the evaluation's (`conr evaluate` reports every n = 1..8 of one run).
# Table 3's R50 column: the U-Net baseline renderer (cinn off) has its own plain encoder whatever
# model.encoder is, so its rows differ from each other in warping only (the detector keeps R50).
PRESET_TABLE: dict[str, Preset] = {
    "paper": Preset({}, "Table 1 m = 4 (n = 1, n = 4); Table 2 U-Net+R50; Table 3 U-Net+Warping+CINN+R50; "
                        "Table 4 Baseline; messaging 3 times"),
    "tiny": Preset({"model.image_size": 64, "model.encoder": "plain", "model.encoder_norm": "none",
                    "model.plain_widths": [8, 16, 24, 32, 48], "model.detector_widths": [24, 16, 12, 8, 8],
                    "model.renderer_widths": [24, 16, 12, 8]},
                   "none: a CPU smoke run in minutes (also its own train and data settings: 600 steps, batch 4, "
                   "lr 1e-3, no L_vgg, random init, 2 workers)"),
    "m1": Preset({"model.views": 1}, "Table 1 m = 1 (n = 1, n = 4)"),
    "resnet34": Preset({"model.encoder": "resnet34"}, "Table 2 U-Net+R34"),
    "plain-encoder": Preset({"model.encoder": "plain", "model.encoder_norm": "none"},
                            "Table 2 Original U-Net; Table 3 U-Net+Warping+CINN (no R50)"),
    "unet-baseline": Preset({"model.cinn": False, "model.warping": False},
                            "Table 3 U-Net (the renderer has its own plain encoder)"),
    "unet-warp": Preset({"model.cinn": False}, "Table 3 U-Net+Warping (likewise)"),
    "no-warp": Preset({"model.warping": False}, "Table 3 U-Net+CINN+R50"),
    "no-mask": Preset({"loss.mask": 0.0}, "Table 4 w/o L_mask"),
    "no-photo": Preset({"loss.photo": 0.0}, "Table 4 w/o L_photo"),
    "no-vgg": Preset({"loss.vgg": 0.0}, "Table 4 w/o L_vgg"),
    "mp1": Preset({"model.message_passing": 1}, "messaging 1 time"),
    "paper-wide": Preset({"model.renderer_widths": [1536, 768, 384, 128]},
                         "none: the paper preset at the official CINN's capacity (renderer 98.7M parameters, "
                         "the official ~96M; `paper` keeps the 10.1M renderer)"),
}


def _model_changes(preset: Preset) -> dict:
    return {k.split(".", 1)[1]: v for k, v in preset.changes.items() if k.startswith("model.")}


# The model of every preset (the loss-only presets have the paper's model).
PRESETS: dict[str, ModelConfig] = {
    name: _PAPER.replace(**_model_changes(p)) for name, p in PRESET_TABLE.items()}


def load_model_config(spec: str | Path) -> ModelConfig:
    """Resolve a preset name or a ``.json`` / ``.toml`` file into a ModelConfig.

    Raises ConfigError naming the config (unknown name, unreadable file) or the offending field.
    """
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError("config", str(spec), f"not a preset ({', '.join(PRESETS)}) nor an existing file")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError("config", str(path), f"cannot be parsed: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "expected a table of settings at the top level")
    for key in data:
        if key not in ("preset", "model"):
            raise ConfigError(key, data[key], f"unknown top-level key in {path} (known: preset, model)")
    base = data.get("preset", "paper")
    if base not in PRESETS:
        raise ConfigError("preset", base, f"expected one of {', '.join(PRESETS)}")
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError("model", model, "expected a table of model fields")
    return PRESETS[base].replace(**model)


# -----------------------------------------------------------------------------------------------------
# Training and data configuration


def _check_fields(obj, section: str, choices: dict[str, tuple], minimum: dict[str, float]) -> None:
    """Type-check every field of a frozen dataclass (by its annotation), coerce the lenient cases
    (int -> float, list -> tuple, a numeric string such as YAML's ``1e-4`` -> float) and check choices and
    lower bounds. Raises ConfigError named ``section.field``."""
    for f in dataclasses.fields(obj):
        name, value = f"{section}.{f.name}", getattr(obj, f.name)
        if f.type == "bool" and not isinstance(value, bool):
            raise ConfigError(name, value, "expected true or false")
        if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(name, value, "expected an integer")
        if f.type == "float":
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(name, value, "expected a number") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(name, value, "expected a finite number")
            object.__setattr__(obj, f.name, float(value))
        if f.type == "str" and not isinstance(value, str):
            raise ConfigError(name, value, "expected a string")
        if f.type == "tuple[float, float]":
            if isinstance(value, list):
                value = tuple(value)
            if not (isinstance(value, tuple) and len(value) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise ConfigError(name, value, "expected a list of two numbers")
            object.__setattr__(obj, f.name, tuple(float(v) for v in value))
        value = getattr(obj, f.name)
        if f.name in choices and value not in choices[f.name]:
            raise ConfigError(name, value, f"expected one of {', '.join(map(str, choices[f.name]))}")
        if f.name in minimum and value < minimum[f.name]:
            raise ConfigError(name, value, f"expected at least {minimum[f.name]}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, losses, logging and checkpoints (conr.train). The paper fixes AdamW with weight decay
    1e-4, batch 24, 224k iterations and the loss of Eq. 5; learning rate, schedule and clipping are not
    stated there: the values below are this project's choices.

    Fields:
        steps: optimizer steps of the whole schedule (``conr train --steps`` overrides it).
        batch_size: global batch per optimizer step, over all DDP ranks and accumulation micro-steps; the
            per-rank micro-batch is batch_size / (world_size * grad_accum), which must divide exactly.
        grad_accum: micro-batches accumulated per optimizer step.
        lr, min_lr, warmup_steps: linear warm-up from 0 to lr, then cosine decay to min_lr at ``steps``.
        weight_decay: AdamW decoupled weight decay on conv/linear weights (not biases and norms).
        betas: AdamW betas. grad_clip: max global grad norm, 0 = off.
        render_udp: the UDP the renderer is driven by in training. 'ground_truth': a labelled target's
            own UDP, the detection for unlabelled (hand-drawn) targets (the paper's detector paragraph: "while
            training with synthesized dataset, UDP P_tar can be directly obtained"); 'detected': the fused
            detection for every target (its training-strategy paragraph read strictly, CoNR.forward_train).
            The detector gets L_udp, L_mask and L_cons either way; with 'detected' also L_photo's gradient.
        vgg_weights: ImageNet VGG19 for L_vgg, resolved through conr.weights (an alias such as 'vgg19', a
            file name, a path); 'none' turns L_vgg off (as loss.vgg = 0 does); 'random' uses a randomly initialised VGG19 (only
            when asked for: its features are not perceptual). A missing file disables L_vgg with a
            warning, or fails when vgg_required is true.
        encoder_weights: pre-trained weights of a ResNet encoder: 'auto' (the torchvision/Danbooru file
            matching model.encoder and model.encoder_norm, an error when absent), 'random', or a source
            for conr.weights. A plain encoder always starts from random init.
        amp: 'auto' (bf16 autocast on CUDA, off on CPU), 'bf16', 'fp16' (with a GradScaler) or 'off'.
        channels_last: NHWC memory format for model and inputs (faster convolutions on tensor cores).
        compile: torch.compile the model. sync_bn: SyncBatchNorm under DDP (CUDA only; BatchNorm
            statistics are otherwise per rank micro-batch).
        device: 'auto' (cuda:LOCAL_RANK when available, else cpu), 'cpu' or 'cuda'.
        seed: seeds the model init and the data order (with the step; see conr.data).
        log_every, val_every, ckpt_every: intervals in optimizer steps (val and ckpt 0 = only at the end).
        keep_every: also keep a copy of the checkpoint every this many steps (0 = only the last).
        val_at_start: validate before the first step of a fresh run (the step-0 reference point).
        image_every: TensorBoard image grids every this many steps (0 = with each validation).
        tensorboard: write TensorBoard events when the tensorboard package is importable.
        progress: show a tqdm bar (rank 0).
        lpips, lpips_backbone, lpips_linear: report LPIPS(vgg) in validation when both weight files
            resolve locally (torchvision's vgg16 file and the lpips v0.1 linear layers); never downloaded.
    """

    steps: int = 224_000
    batch_size: int = 24
    grad_accum: int = 1
    lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_steps: int = 2000
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    render_udp: str = "ground_truth"
    vgg_weights: str = "vgg19"
    vgg_required: bool = False
    encoder_weights: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 20
    val_every: int = 4000
    val_at_start: bool = True
    ckpt_every: int = 2000
    keep_every: int = 0
    image_every: int = 0
    tensorboard: bool = True
    progress: bool = True
    lpips: bool = True
    lpips_backbone: str = "vgg16-397923af.pth"
    lpips_linear: str = "lpips-vgg-v0.1.pth"

    def __post_init__(self):
        _check_fields(self, "train", {"amp": ("auto", "bf16", "fp16", "off"), "device": ("auto", "cpu", "cuda"),
                                      "render_udp": ("ground_truth", "detected")},
                      {"steps": 1, "batch_size": 1, "grad_accum": 1, "lr": 0, "min_lr": 0, "warmup_steps": 0,
                       "weight_decay": 0, "grad_clip": 0, "log_every": 1, "val_every": 0,
                       "ckpt_every": 0, "keep_every": 0, "image_every": 0, "seed": 0})
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError("train.betas", self.betas, "expected two numbers in [0, 1)")
        if self.min_lr > self.lr:
            raise ConfigError("train.min_lr", self.min_lr, f"expected at most train.lr = {self.lr}")


@dataclass(frozen=True)
class DataConfig:
    """The shard stream of conr.data. Image size, m (model.views) and k (model.composites) come from the
    model config.

    Fields:
        num_workers: DataLoader worker processes per rank (0 = in the training process).
        shard_mode: 'resampled' (every worker draws shards with replacement, an endless stream) or
            'split' (shards split by rank, then by worker, each part repeated in a new order every pass;
            needs at least world_size * max(num_workers, 1) shards).
        shuffle_buffer, shuffle_initial: buffer of still-compressed samples shuffled before decoding.
        prefetch_factor: batches each worker prepares ahead.
        backgrounds: 'auto' (bg-*.tar beside the training shards, else the built-in set), 'builtin'
            (udpgen.backgrounds.sets' skimage photos + procedural ones), or a folder: its bg-*.tar shards,
            else its images (recursively); a missing folder or one with nothing readable fails at start-up.
        bg_pool: backgrounds a worker holds decoded; bg_refresh of them (on average) are replaced per sample
            from the background stream, so a long run sees every background (0.25: one every 4 samples;
            decoding and fitting a background costs about as much as decoding a view).
        crop_min: the appendix's random crop keeps a square of side in [crop_min, 1] of the image, then
            resizes to model.image_size; 1 = no crop.
        crop_refs_independent: each reference gets its own crop (the target UDP, target image and its
            composites always share one), so the renderer cannot copy a reference into place.
        holdout_views: the last this many views of every chunk with more views are never used in training;
            'holdout' validation renders them from the other views (held-out poses).
        val_source: 'auto' (the val split when there is one, else held-out poses when holdout_views > 0,
            else none), 'val', 'holdout' or 'none'.
        val_samples: samples per validation (deterministic: the same samples and crops every time).
        segment_steps: the data stream restarts, seeded by (seed, step), every this many optimizer steps;
            0 = train.ckpt_every. Resuming re-creates the stream of the segment and skips what was used.
        max_bad_streak: this many unusable samples in a row mean the shards are not of this schema: fail.
    """

    num_workers: int = 6
    shard_mode: str = "resampled"
    shuffle_buffer: int = 512
    shuffle_initial: int = 128
    prefetch_factor: int = 2
    backgrounds: str = "auto"
    bg_pool: int = 256
    bg_refresh: float = 0.25
    crop_min: float = 0.8
    crop_refs_independent: bool = True
    holdout_views: int = 0
    val_source: str = "auto"
    val_samples: int = 512
    segment_steps: int = 0
    max_bad_streak: int = 256

    def __post_init__(self):
        _check_fields(self, "data", {"shard_mode": ("resampled", "split"),
                                     "val_source": ("auto", "val", "holdout", "none")},
                      {"num_workers": 0, "shuffle_buffer": 1, "shuffle_initial": 1, "prefetch_factor": 1,
                       "bg_pool": 1, "bg_refresh": 0, "holdout_views": 0, "val_samples": 1,
                       "segment_steps": 0, "max_bad_streak": 1})
        if not 0 < self.crop_min <= 1:
            raise ConfigError("data.crop_min", self.crop_min, "expected a fraction in (0, 1]")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the terms of Eq. 5 (conr.losses): L = udp L_udp + cons L_cons + mask L_mask + photo L_photo
    + vgg L_vgg. The paper's are all 1 (its alpha, the weight of L_vgg, is not stated otherwise).

    A weight of 0 turns its loss off (Table 4): the term is left out of the total (the cheap ones are still
    logged, without gradient); the VGG19 of L_vgg is not built; with photo = vgg = 0 the renderer is not run
    in training, and with udp = mask = cons = 0 (and train.render_udp = 'ground_truth') the detector's
    decoder is frozen and runs, without gradient, only to drive unlabelled targets.
    """

    udp: float = 1.0
    mask: float = 1.0
    cons: float = 1.0
    photo: float = 1.0
    vgg: float = 1.0

    def __post_init__(self):
        _check_fields(self, "loss", {}, {f.name: 0 for f in dataclasses.fields(self)})
        if not any(getattr(self, f.name) for f in dataclasses.fields(self)):
            raise ConfigError("loss", dataclasses.asdict(self), "every loss weight is 0: nothing would be trained")


# A CPU smoke run in minutes: no VGG (no ImageNet weights needed), plain encoder from random init.
_TINY_TRAIN = TrainConfig(
    steps=600, batch_size=4, lr=1e-3, min_lr=1e-5, warmup_steps=20, vgg_weights="none",
    encoder_weights="random", channels_last=False, log_every=10, val_every=100, ckpt_every=100)
_TINY_DATA = DataConfig(num_workers=2, shuffle_buffer=64, shuffle_initial=16, bg_pool=32, val_samples=32)


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run is made of; checkpoints store :meth:`to_dict` (plain values only)."""

    preset: str = "paper"
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()

    def to_dict(self) -> dict:
        return {"preset": self.preset, "model": self.model.to_dict(),
                "train": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.train).items()},
                "data": dataclasses.asdict(self.data), "loss": dataclasses.asdict(self.loss)}

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Inverse of :meth:`to_dict`; the preset is the base for tables that leave fields out. A stored config
        of an older version (train.vgg_alpha, no loss table) reads as it was trained."""
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
        if isinstance(d.get("train"), dict) and "vgg_alpha" in d["train"]:
            loss = d.setdefault("loss", {})
            if isinstance(loss, dict):
                loss.setdefault("vgg", d["train"].pop("vgg_alpha"))
        return _build(d, "<dict>")

    def flat(self) -> dict[str, object]:
        """{'model.views': 4, 'train.lr': 0.0001, ...} for comparisons and logs."""
        return {f"{s}.{k}": v for s, table in self.to_dict().items() if isinstance(table, dict)
                for k, v in table.items()}


def run_preset(name: str) -> RunConfig:
    """The RunConfig of a preset: PRESET_TABLE's changes over the paper's run (tiny: its own training and
    data settings)."""
    if name not in PRESET_TABLE:
        raise ConfigError("preset", name, f"expected one of {', '.join(PRESET_TABLE)}")
    tiny = name == "tiny"
    loss = {k.split(".", 1)[1]: v for k, v in PRESET_TABLE[name].changes.items() if k.startswith("loss.")}
    return RunConfig(name, PRESETS[name], _TINY_TRAIN if tiny else TrainConfig(),
                     _TINY_DATA if tiny else DataConfig(), LossConfig(**loss))


def describe_presets() -> list[dict]:
    """[{'name', 'changes': {'model.views': 1, ...}, 'rows'}] for `conr info --presets`, in table order."""
    return [{"name": n, "changes": dict(p.changes), "rows": p.rows} for n, p in PRESET_TABLE.items()]


def _read_table_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSON/TOML decode errors are ValueErrors
        raise ConfigError("config", str(path), f"cannot be parsed: {e}") from None
    except Exception as e:  # yaml.YAMLError
        raise ConfigError("config", str(path), f"cannot be parsed: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "expected a table of settings at the top level")
    return data


def _build(data: dict, source: str) -> RunConfig:
    for key in data:
        if key not in ("preset", "model", "train", "data", "loss"):
            raise ConfigError(key, data[key], f"unknown top-level key in {source} (known: preset, model, "
                                              "train, data, loss)")
    base = run_preset(data.get("preset", "paper"))
    tables = {}
    for section in ("model", "train", "data", "loss"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, table, f"expected a table of {section} fields")
        tables[section] = table
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for key, value in tables["model"].items():
        if key not in model_fields:
            raise ConfigError(f"model.{key}", value,
                              f"unknown model field (known: {', '.join(sorted(model_fields))})")
    model = base.model.replace(**tables["model"])  # bad model values keep their bare field names
    sections = {"train": (base.train, TrainConfig), "data": (base.data, DataConfig),
                "loss": (base.loss, LossConfig)}
    built = {}
    for section, (default, cls) in sections.items():
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in tables[section].items():
            if section == "train" and key == "vgg_alpha":
                raise ConfigError("train.vgg_alpha", value, "renamed: set loss.vgg (the weight of L_vgg)")
            if key not in known:
                raise ConfigError(f"{section}.{key}", value,
                                  f"unknown {section} field (known: {', '.join(sorted(known))})")
        built[section] = dataclasses.replace(default, **tables[section])
    return RunConfig(base.preset, model, built["train"], built["data"], built["loss"])


_SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "loss": LossConfig}


def parse_override(text: str) -> tuple[str, str, object]:
    """'train.lr=1e-4' -> ('train', 'lr', 1e-4). The value of a string field is taken as written
    ('train.amp=off' is 'off', not YAML's false); others are read as YAML scalars/lists (true, 3, [8, 8]),
    with numbers such as 1e-4 read as floats; anything else stays a string."""
    key, sep, raw = text.partition("=")
    section, dot, field = key.strip().partition(".")
    if not sep or not dot or section not in _SECTIONS or not field:
        raise ConfigError(key.strip() or text, raw if sep else None,
                          f"expected SECTION.FIELD=VALUE with SECTION one of {', '.join(_SECTIONS)}")
    raw = raw.strip()
    types = {f.name: f.type for f in dataclasses.fields(_SECTIONS[section])}
    if types.get(field) == "str":
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
        return section, field, raw[1:-1] if quoted else raw
    try:
        value: object = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            import yaml

            try:
                value = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError:
                value = raw
            if value is None:
                value = raw
    return section, field, value


def load_config(spec: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Resolve a preset name or a ``.toml`` / ``.yaml`` / ``.json`` file (``preset`` plus ``[model]``,
    ``[train]``, ``[data]``, ``[loss]`` tables) and ``section.field=value`` overrides into a RunConfig.

    Raises ConfigError naming the config (unknown name, unreadable file) or the offending key.
    """
    if str(spec) in PRESETS:
        data: dict = {"preset": str(spec)}
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError("config", str(spec), f"not a preset ({', '.join(PRESETS)}) nor an existing file")
        data = _read_table_file(path)
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for text in overrides:
        section, field, value = parse_override(text)
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, table, f"expected a table of {section} fields")
        table[field] = value
    return _build(data, str(spec))
