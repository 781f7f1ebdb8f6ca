"""Find, check and load weight files. Nothing is ever downloaded.

A weight source is resolved in this order:

1. an explicit path to an existing file (a path that does not exist is an error, never a fallback);
2. a bare file name, or an alias from :data:`KNOWN` (``resnet50``, ``vgg19``, ...), looked up in
   ``$CONR_WEIGHTS_DIR`` and then in torch's hub cache ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME``
   defaults to ``$XDG_CACHE_HOME/torch``, i.e. ``~/.cache/torch``, as in torch.hub).

Files are read with ``torch.load(weights_only=True, map_location="cpu")`` and loaded strictly. When a
sha256 is known (given, or the prefix an alias's torchvision file name carries) the file is checked first.
Random initialisation happens only when the source is the literal :data:`RANDOM`.

Every failure raises :class:`conr.errors.WeightsError` naming the file, and for a file that does not fit
the network, the missing keys, the unexpected keys and the shape mismatches.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from conr.errors import WeightsError

RANDOM = "random"

# alias -> (file name as published, sha256 prefix). torchvision's file names carry the first hex digits of
# the file's sha256 (torch.hub's check_hash convention); RF5/danbooru-pretrained's release file follows it.
KNOWN: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet18-f37072fd.pth", "f37072fd"),
    "resnet34": ("resnet34-b627a593.pth", "b627a593"),
    "resnet50": ("resnet50-0676ba61.pth", "0676ba61"),
    "resnet50-v2": ("resnet50-11ad3fa6.pth", "11ad3fa6"),
    "resnet50-danbooru": ("resnet50-13306192.pth", "13306192"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "dcbb9e9d"),
}

_LIST_LIMIT = 8  # keys named per category in an error message
_BN_STATS = (".running_mean", ".running_var", ".num_batches_tracked")  # BatchNorm buffers, not parameters


def search_dirs() -> list[Path]:
    """The folders a bare file name is looked up in, in order."""
    dirs = []
    if os.environ.get("CONR_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["CONR_WEIGHTS_DIR"]).expanduser())
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    dirs.append(Path(torch_home).expanduser() / "hub" / "checkpoints")
    return dirs


def resolve(source: str | os.PathLike, sha256: str | None = None) -> tuple[Path, str | None]:
    """Source (path, file name or alias) -> (existing file, expected sha256 or prefix, or None)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path, sha256
    name = str(source)
    if path.is_absolute() or os.sep in name or "/" in name:
        raise WeightsError(path, "no such file")
    filename, prefix = KNOWN.get(name, (name, None))
    for d in search_dirs():
        if (d / filename).is_file():
            return d / filename, sha256 or prefix
    where = ", ".join(str(d) for d in search_dirs())
    raise WeightsError(filename, f"not found in {where} (set CONR_WEIGHTS_DIR or pass a path; "
                                 "nothing is downloaded)")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict (also from a checkpoint holding one under 'state_dict' or 'model', and without a
    DDP 'module.' prefix) after checking sha256 (full or prefix) when given."""
    if sha256:
        digest = sha256_of(path)
        if not digest.startswith(sha256.lower()):
            raise WeightsError(path, f"sha256 {digest} does not match the expected {sha256}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle, EOF and weights_only refusals all mean "not a usable file"
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsError(path, "cannot be read as a torch weights file "
                                 f"({type(e).__name__}: {first_line})") from None
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        obj = next((obj[k] for k in ("state_dict", "model") if k in obj and _is_state_dict(obj[k])), obj)
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise WeightsError(path, f"holds a {type(obj).__name__}, not a state dict of named tensors")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """module.load_state_dict(state_dict, strict=True), with one WeightsError naming the file, the missing and
    unexpected keys and every shape mismatch when the file does not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:_LIST_LIMIT])}"
                 + (", ..." if len(keys) > _LIST_LIMIT else "")
                 for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", shapes)) if keys]
        raise WeightsError(path, f"does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)


def adapt_backbone_state_dict(module: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map published layouts onto the project's backbones before the strict load.

    - RF5's Danbooru ResNet-50 is a fastai ``Sequential(body, head)`` whose body is torchvision's ResNet
      children in order: ``0.0`` conv1, ``0.1`` bn1, ``0.4``..``0.7`` layer1..layer4; its head (``1.*``,
      a 6000-tag classifier) is not part of an encoder and is dropped.
    - A classifier head (``fc.*`` / ``classifier.*``) is dropped when the module was built without one.
    - BatchNorm running statistics (``*.running_mean``, ``*.running_var``, ``*.num_batches_tracked``) are
      dropped where the module has no such buffer: the project's encoders use InstanceNorm without
      running statistics (conr.nn.backbones.InstanceNorm) and keep only the layer's ``weight``/``bias``.
    Everything else must match exactly.
    """
    if "0.4.0.conv1.weight" in sd and "0.0.weight" in sd:
        names = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
        body = [(k.split(".", 2), v) for k, v in sd.items() if k.startswith("0.")]
        # "0.4.0.conv1.weight" -> ("0", "4", "0.conv1.weight") -> "layer1.0.conv1.weight"
        sd = {f"{names.get(idx, idx)}.{rest}": v for (_, idx, rest), v in body}
    for head in ("fc", "classifier"):
        if getattr(module, head, None) is None:
            sd = {k: v for k, v in sd.items() if not k.startswith(head + ".")}
    own = module.state_dict()
    return {k: v for k, v in sd.items() if k in own or not k.endswith(_BN_STATS)}


def load_weights(module: nn.Module, source: str | os.PathLike | None, *, sha256: str | None = None,
                 backbone: bool = False) -> Path | None:
    """Load ``source`` into ``module`` strictly; returns the file used, or None for random init.

    Args:
        source: a path, a file name or an alias in KNOWN, or RANDOM to keep the module's random init.
            None is an error: random init must be asked for.
        sha256: expected sha256 (or a prefix of at least 8 hex digits) of the file.
        backbone: apply :func:`adapt_backbone_state_dict` (published ResNet/VGG layouts, dropped heads).
    """
    if source is None:
        raise WeightsError("<none>", f"no weights given for {type(module).__name__}; pass a file or "
                                     f"'{RANDOM}' to start from random initialisation")
    if str(source) == RANDOM:
        return None
    if sha256 is not None and (len(sha256) < 8 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
        raise WeightsError(source, f"sha256 {sha256!r} is not a hex digest (or a prefix of 8+ hex digits)")
    path, expected = resolve(source, sha256)
    sd = read_state_dict(path, expected)
    if backbone:
        sd = adapt_backbone_state_dict(module, sd)
    load_strict(module, sd, path)
    return path
