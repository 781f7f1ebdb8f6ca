"""Model configuration: one frozen dataclass, named presets, and config files.

A config is named by a preset (``paper``, ``tiny``, or one of the paper's ablations) or given as a file
(``.json`` or ``.toml``)::

    preset = "paper"            # optional base, default "paper"
    [model]
    message_passing = 1
    warping = false

Unknown keys and bad values raise :class:`conr.errors.ConfigError` naming the field and the value.
"""
from __future__ import annotations

import dataclasses
import json
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
        warping: predict a 2-channel flow per block and warp the remote half onto the target.
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
_TINY = ModelConfig(
    image_size=64,
    encoder="plain",
    encoder_norm="none",
    plain_widths=(8, 16, 24, 32, 48),
    detector_widths=(24, 16, 12, 8, 8),
    renderer_widths=(24, 16, 12, 8),
)

# The paper's ablations (Table 3 rows and the appendix's message-passing count) as named presets.
PRESETS: dict[str, ModelConfig] = {
    "paper": _PAPER,
    "tiny": _TINY,
    "unet-baseline": _PAPER.replace(cinn=False, warping=False),
    "unet-warp": _PAPER.replace(cinn=False),
    "no-warp": _PAPER.replace(warping=False),
    "plain-encoder": _PAPER.replace(encoder="plain", encoder_norm="none"),
    "mp1": _PAPER.replace(message_passing=1),
}


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
