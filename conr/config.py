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

:func:`load_config` reads all four into a :class:`RunConfig` (``load_config(spec).model`` where only the
network is wanted) and applies ``section.field=value`` overrides (``conr train --set train.lr=1e-4``).
Every field is declared with :func:`udpgen.settings.setting` and checked by its one checker; unknown keys
and bad values raise :class:`conr.errors.ConfigError` naming the field (``train.lr``; model fields by their
bare name) and the value, before anything runs.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conr.errors import ConfigError
from udpgen.settings import check_settings, fail, setting

ENCODERS = ("resnet18", "resnet34", "resnet50", "plain")
ENCODER_NORMS = ("imagenet", "danbooru", "none")


def _check(obj, section: str) -> None:
    """udpgen.settings' check with conr's error type and key names (``train.lr``), coercing file values."""
    check_settings(obj, section=section, error=ConfigError, coerce=True)


def _fail(obj, section: str, name: str, value, expected: str):
    fail(obj, name, value, expected, section=section, error=ConfigError)


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

    image_size: int = setting(256, kind=int, low=32)
    encoder: str = setting("resnet50", choices=ENCODERS)
    encoder_norm: str = setting("imagenet", choices=ENCODER_NORMS)
    plain_widths: tuple[int, ...] = setting((64, 128, 256, 512, 512), kind="ints", size=5, low=1)
    detector_widths: tuple[int, ...] = setting((256, 128, 64, 32, 16), kind="ints", size=5, low=1)
    renderer_widths: tuple[int, ...] = setting((256, 128, 64, 32), kind="ints", size=4, low=1)
    message_passing: int = setting(3, kind=int, low=1, high=3)
    warping: bool = setting(True, kind=bool)
    cinn: bool = setting(True, kind=bool)
    views: int = setting(4, kind=int, low=1)
    composites: int = setting(4, kind=int, low=1)

    def __post_init__(self):
        _check(self, "")                       # model fields keep their bare names in messages
        if self.image_size % 32:
            _fail(self, "", "image_size", self.image_size, "a positive multiple of 32")
        if any(w % 2 for w in self.renderer_widths[:3]):
            _fail(self, "", "renderer_widths", self.renderer_widths,
                  "even D1..D3 widths (remote/local halves)")

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


# -----------------------------------------------------------------------------------------------------
# Training and data configuration


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
        compile: torch.compile the model. sync_bn: SyncBatchNorm under DDP (CUDA only); the
            built-in networks have no BatchNorm (InstanceNorm encoders), so it changes nothing for them.
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

    steps: int = setting(224_000, kind=int, low=1)
    batch_size: int = setting(24, kind=int, low=1)
    grad_accum: int = setting(1, kind=int, low=1)
    lr: float = setting(1e-4, low=0)
    min_lr: float = setting(1e-6, low=0)
    warmup_steps: int = setting(2000, kind=int, low=0)
    weight_decay: float = setting(1e-4, low=0)
    betas: tuple[float, float] = setting((0.9, 0.999), kind="vector", size=2, low=0, high=1,
                                            open_high=True)
    grad_clip: float = setting(1.0, low=0)
    render_udp: str = setting("ground_truth", choices=("ground_truth", "detected"))
    vgg_weights: str = setting("vgg19", kind=str)
    vgg_required: bool = setting(False, kind=bool)
    encoder_weights: str = setting("auto", kind=str)
    amp: str = setting("auto", choices=("auto", "bf16", "fp16", "off"))
    channels_last: bool = setting(True, kind=bool)
    compile: bool = setting(False, kind=bool)
    sync_bn: bool = setting(False, kind=bool)
    device: str = setting("auto", choices=("auto", "cpu", "cuda"))
    seed: int = setting(0, kind=int, low=0)
    log_every: int = setting(20, kind=int, low=1)
    val_every: int = setting(4000, kind=int, low=0)
    val_at_start: bool = setting(True, kind=bool)
    ckpt_every: int = setting(2000, kind=int, low=0)
    keep_every: int = setting(0, kind=int, low=0)
    image_every: int = setting(0, kind=int, low=0)
    tensorboard: bool = setting(True, kind=bool)
    progress: bool = setting(True, kind=bool)
    lpips: bool = setting(True, kind=bool)
    lpips_backbone: str = setting("vgg16-397923af.pth", kind=str)
    lpips_linear: str = setting("lpips-vgg-v0.1.pth", kind=str)

    def __post_init__(self):
        _check(self, "train")
        if self.min_lr > self.lr:
            _fail(self, "train", "min_lr", self.min_lr, f"at most train.lr = {self.lr}")


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
            resizes to model.image_size; 1 = no crop. Validation crops the same way, seeded per item.
        crop_refs_independent: each reference gets its own crop (the target UDP, target image and its
            composites always share one), so the renderer cannot copy a reference into place.
        holdout_views: the last this many views of every chunk with more views are never used in training;
            'holdout' validation renders them from the other views (held-out poses).
        val_source: 'auto' (the val split when there is one, else held-out poses when holdout_views > 0,
            else none), 'val', 'holdout' or 'none'.
        val_samples: items per validation: the whole split when it holds no more, else a sample of this many
            stratified by character (seeded by train.seed; the same items for any num_workers, every time).
        segment_steps: the data stream restarts, seeded by (seed, step), every this many optimizer steps;
            0 = train.ckpt_every. Resuming re-creates the stream of the segment and skips what was used.
        max_bad_streak: this many unusable samples in a row mean the shards are not of this schema: fail.
    """

    num_workers: int = setting(6, kind=int, low=0)
    shard_mode: str = setting("resampled", choices=("resampled", "split"))
    shuffle_buffer: int = setting(512, kind=int, low=1)
    shuffle_initial: int = setting(128, kind=int, low=1)
    prefetch_factor: int = setting(2, kind=int, low=1)
    backgrounds: str = setting("auto", kind=str)
    bg_pool: int = setting(256, kind=int, low=1)
    bg_refresh: float = setting(0.25, low=0)
    crop_min: float = setting(0.8, low=0, high=1, open_low=True)
    crop_refs_independent: bool = setting(True, kind=bool)
    holdout_views: int = setting(0, kind=int, low=0)
    val_source: str = setting("auto", choices=("auto", "val", "holdout", "none"))
    val_samples: int = setting(512, kind=int, low=1)
    segment_steps: int = setting(0, kind=int, low=0)
    max_bad_streak: int = setting(256, kind=int, low=1)

    def __post_init__(self):
        _check(self, "data")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the terms of Eq. 5 (conr.losses): L = udp L_udp + cons L_cons + mask L_mask + photo L_photo
    + vgg L_vgg. The paper's are all 1 (its alpha, the weight of L_vgg, is not stated otherwise); L_vgg
    itself carries the factor that balances it against L1 as in Zhang, Ng and Chen's Caffe recipe
    (conr.losses.VGG_RECIPE_SCALE), so vgg = 1 is their balance.

    A weight of 0 turns its loss off (Table 4): the term is left out of the total (the cheap ones are still
    logged, without gradient); the VGG19 of L_vgg is not built; with photo = vgg = 0 the renderer is not run
    in training, and with udp = mask = cons = 0 (and train.render_udp = 'ground_truth') the detector's
    decoder is frozen and runs, without gradient, only to drive unlabelled targets.
    """

    udp: float = setting(1.0, low=0)
    mask: float = setting(1.0, low=0)
    cons: float = setting(1.0, low=0)
    photo: float = setting(1.0, low=0)
    vgg: float = setting(1.0, low=0)

    def __post_init__(self):
        _check(self, "loss")
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


def _yaml_load(text: str):
    """PyYAML's safe load with YAML 1.2's booleans: only true/false are booleans, so ``amp: off`` stays the
    string 'off' (YAML 1.1 reads on/off/yes/no as booleans). A boolean field still takes on/off/yes/no:
    udpgen.settings coerces those strings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    bool_tag = "tag:yaml.org,2002:bool"
    Loader.yaml_implicit_resolvers = {c: [r for r in rs if r[0] != bool_tag]
                                      for c, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    return yaml.load(text, Loader=Loader)


def _read_table_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = _yaml_load(text)
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
                value = _yaml_load(raw) if raw else ""
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
