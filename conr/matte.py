"""A small segmentation network for matting drawings on busy backgrounds (issue #18 item 3), trained by the
toolkit on what it already makes: the RGBA views of its shards (rendered cut-outs, confidently matted
drawings) composited on many backgrounds.

Its mask does not replace the matte: :func:`label_maps` turns it into label maps (0 background, 1 the
character) in the layout ``udpgen matte --masks`` reads, where each class shrunk by 2 px seeds the watershed
and the soft-alpha step (udpgen.drawn.masks), so the edge still comes from the image.

    conr train-matte --data SHARDS --out matte.pt         # a few minutes on a CPU at 128 px
    udpgen matte drawings/ --out cut/ --model matte.pt    # or: conr matte-masks --model matte.pt drawings/ --out masks/

Network: a 3-level U-Net, (B, 3, S, S) RGB in [0, 1] -> (B, 1, S, S) logits, S a multiple of 8; about
120k parameters (``widths`` 16, 32, 64), so it runs on a CPU at a drawing per few milliseconds.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from conr.errors import ConrError

__all__ = ["MatteNet", "MatteError", "FORMAT", "composites", "train_matte", "load_matte", "predict", "label_maps"]

FORMAT = "conr-matte/1"


class MatteError(ConrError):
    """A matte checkpoint or its training data is unusable; the message names the file."""


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True))


class MatteNet(nn.Module):
    """(B, 3, S, S) float RGB in [0, 1] -> (B, 1, S, S) foreground logits."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        a, b, c = widths
        self.widths = tuple(widths)
        self.enc1, self.enc2, self.enc3 = _block(3, a), _block(a, b), _block(b, c)
        self.mid = _block(c, c)
        self.dec3, self.dec2, self.dec1 = _block(2 * c, b), _block(2 * b, a), _block(2 * a, a)
        self.head = nn.Conv2d(a, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)                                   # (B, a, S, S)
        e2 = self.enc2(F.max_pool2d(e1, 2))                 # (B, b, S/2, S/2)
        e3 = self.enc3(F.max_pool2d(e2, 2))                 # (B, c, S/4, S/4)
        m = self.mid(F.max_pool2d(e3, 2))                   # (B, c, S/8, S/8)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)  # noqa: E731
        d3 = self.dec3(torch.cat([up(m), e3], 1))           # (B, b, S/4, S/4)
        d2 = self.dec2(torch.cat([up(d3), e2], 1))          # (B, a, S/2, S/2)
        d1 = self.dec1(torch.cat([up(d2), e1], 1))          # (B, a, S, S)
        return self.head(d1)                                # (B, 1, S, S)


def _views(data: str | os.PathLike, keep: int = 4096, seed: int = 0) -> list[np.ndarray]:
    """The RGBA (H, W, 4) uint8 views of the shards in ``data`` (train and val splits) with a visible
    character: all of them, or a seeded uniform sample of ``keep`` (reservoir sampling: memory stays
    bounded however large the shard set)."""
    from udpgen.shards import iter_samples, list_shards

    tars = [t for split in ("train", "val") for t in list_shards(data, split)]
    if not tars:
        raise MatteError(f"{data}: no train-/val-*.tar shards to learn cut-outs from")
    rng, views, seen = np.random.default_rng(seed), [], 0
    for v in (v.rgba for t in tars for s in iter_samples(t) for v in s.views):
        if not (v[..., 3] > 0).any():
            continue
        seen += 1
        if len(views) < keep:
            views.append(v)
        elif (j := int(rng.integers(seen))) < keep:
            views[j] = v
    if not views:
        raise MatteError(f"{data}: the shards hold no view with a visible character")
    return views


def composites(views: list[np.ndarray], size: int, rng: np.random.Generator, batch: int,
               backgrounds: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch: ``batch`` random views, scaled (0.6-1.0 of the side) and placed at random on
    random backgrounds -> (images (B, 3, S, S), alpha (B, 1, S, S)), float32 in [0, 1]."""
    import cv2

    imgs, alphas = [], []
    for _ in range(batch):
        rgba = views[int(rng.integers(len(views)))]
        side = int(size * rng.uniform(0.6, 1.0))
        v = cv2.resize(rgba, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        if rng.uniform() < 0.5:
            v = v[:, ::-1]
        bg = backgrounds[int(rng.integers(len(backgrounds)))].astype(np.float32) / 255
        y, x = rng.integers(0, size - side + 1, 2)
        a = np.zeros((size, size, 1), np.float32)
        fg = np.zeros((size, size, 3), np.float32)
        a[y:y + side, x:x + side] = v[..., 3:]
        fg[y:y + side, x:x + side] = v[..., :3]
        img = fg * a + bg * (1 - a)
        imgs.append(img.transpose(2, 0, 1))
        alphas.append(a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(alphas))


def train_matte(data: str | os.PathLike, out: str | os.PathLike, *, steps: int = 2000, size: int = 128,
                batch: int = 8, lr: float = 2e-3, seed: int = 0,
                log: Callable[[str], None] | None = None) -> dict:
    """Train a :class:`MatteNet` on the shards' views composited on the built-in backgrounds (and any
    ``bg-*.tar`` in ``data``) and save it atomically to ``out`` -> {steps, loss_first, loss_last, seconds}.
    Loss: BCE of the logits against alpha plus a soft Dice term (thin parts count)."""
    from udpgen.backgrounds.sets import iter_backgrounds
    from udpgen.io.atomic import atomic_path
    from udpgen.shards import iter_backgrounds as bg_shard, list_shards

    if size < 16 or size % 8:
        raise MatteError(f"size={size}: expected a multiple of 8, at least 16")
    if steps < 1 or batch < 1:
        raise MatteError(f"steps={steps}, batch={batch}: expected at least 1")
    views = _views(data, seed=seed)
    backgrounds = [img for _, img in iter_backgrounds(None, size, seed)]
    import cv2

    for tar in list_shards(data, "bg"):
        backgrounds += [cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for _, img in bg_shard(tar)]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = MatteNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0, first, last = time.perf_counter(), None, None
    for step in range(steps):
        x, a = composites(views, size, rng, batch, backgrounds)
        logits = net(x)
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * a).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + a.sum((1, 2, 3)) + 1)
        loss = F.binary_cross_entropy_with_logits(logits, a) + dice.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        last = loss.item()
        first = last if first is None else first
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps}: loss {last:.4f}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".tmp.pt") as tmp:
        torch.save({"format": FORMAT, "widths": list(net.widths), "size": size, "steps": steps,
                    "views": len(views), "backgrounds": len(backgrounds), "state_dict": net.state_dict()}, tmp)
    return {"steps": steps, "loss_first": first, "loss_last": last, "views": len(views),
            "backgrounds": len(backgrounds), "seconds": round(time.perf_counter() - t0, 1)}


def load_matte(path: str | os.PathLike) -> tuple[MatteNet, int]:
    """A checkpoint of :func:`train_matte` -> (network in eval mode, its training side)."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MatteError(f"{path}: no such matte checkpoint") from None
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: one line naming it
        raise MatteError(f"{path}: not a readable matte checkpoint ({type(e).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise MatteError(f"{path}: not a {FORMAT} checkpoint (`conr train-matte` writes them)")
    net = MatteNet(tuple(ck["widths"]))
    try:
        net.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise MatteError(f"{path}: weights do not fit the network: {str(e).splitlines()[0]}") from None
    return net.eval(), int(ck["size"])


@torch.no_grad()
def predict(net: MatteNet, size: int, rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 foreground probability: the image resized to ``size`` (the
    longer side; padded with its border to a square multiple of 8), the output resized back."""
    import cv2

    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nh, nw = max(8, round(h * s)), max(8, round(w * s))
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (nw, nh), interpolation=cv2.INTER_AREA)
    ph, pw = -nh % 8 + max(0, size - nh), -nw % 8 + max(0, size - nw)
    small = cv2.copyMakeBorder(small, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    x = torch.from_numpy(small.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    p = torch.sigmoid(net(x))[0, 0, :nh, :nw].numpy()
    return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)


def label_maps(model: str | os.PathLike, inputs: list[Path], root: Path, out_dir: Path,
               threshold: float = 0.5) -> Iterator[tuple[Path, str | None]]:
    """For each image (a path under ``root``) write ``out_dir/<rel>.png`` (mode L: 0 background, 1 the
    character, ``udpgen matte --masks`` layout) -> yields (image, None) or (image, why it failed)."""
    from PIL import Image

    from udpgen.io.atomic import atomic_path
    from udpgen.io.images import read_image

    net, size = load_matte(model)
    for p in inputs:
        try:
            img = read_image(p)
            lab = (predict(net, size, img[..., :3]) >= threshold).astype(np.uint8)
            dst = (out_dir / p.relative_to(root)).with_suffix(".png")
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst, suffix=".tmp.png") as tmp:
                Image.fromarray(lab, mode="L").save(tmp)
            yield p, None
        except Exception as e:  # noqa: BLE001 - per image: counted, the batch goes on
            yield p, str(e).removeprefix(f"{p}: ")
