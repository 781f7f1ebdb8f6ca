"""A toy data set in udpgen's shard schema: smoke runs, tests and benchmarks without the renderer.

Each character is a paper doll (torso, head, one arm) in a palette and stripe frequency of its own; its
views are random similarity transforms and arm angles, each pixel's landmark being its point on the doll
at rest, so shards written here exercise every path of conr.data and conr.train in milliseconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conr.data import ShardSet, check_shards


def _toy_view(palette: np.ndarray, freq: float, pose: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A paper-doll character: torso, head, one arm. pose = (angle, scale, dy, dx, arm angle) -> (rgba
    (S, S, 4) uint8 straight alpha, udp (S, S, 4) float32). A pixel's landmark is its point on the doll at
    rest (arm straight out), so the same spot keeps its landmark in every pose (DESIGN 3.3 in miniature)."""
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    ang, scale, dy, dx, arm = pose
    c, s = np.cos(-ang), np.sin(-ang)
    py, px = (yy - 0.5 - dy) / scale, (xx - 0.5 - dx) / scale
    v, u = c * py + s * px + 0.5, -s * py + c * px + 0.5           # canonical (rest) coordinates
    torso = ((u - 0.5) / 0.17) ** 2 + ((v - 0.58) / 0.25) ** 2 <= 1
    head = ((u - 0.5) / 0.12) ** 2 + ((v - 0.22) / 0.12) ** 2 <= 1
    ca, sa = np.cos(-arm), np.sin(-arm)
    ay, ax = v - 0.42, u - 0.6                                     # arm frame at the shoulder
    al, aw = ca * ax - sa * ay, sa * ax + ca * ay
    arm_m = (al >= 0) & (al <= 0.3) & (np.abs(aw) <= 0.05)
    part = np.where(arm_m, 3, np.where(head, 2, np.where(torso, 1, 0)))
    lu, lv = np.where(arm_m, 0.6 + al, u), np.where(arm_m, 0.42 + aw, v)
    occ = part > 0
    udp = np.stack([np.clip(lu, 0, 1), np.clip(lv, 0, 1), part / 4.0, np.ones_like(u)], -1).astype(np.float32)
    udp *= occ[..., None]
    stripe = 0.7 + 0.3 * np.sign(np.sin(2 * np.pi * freq * (lu + 0.5 * lv)))
    rgb = palette[part] * stripe[..., None]
    rgba = np.concatenate([np.clip(rgb, 0, 255), occ[..., None] * 255.0], -1).round().astype(np.uint8)
    rgba[~occ] = 0
    return rgba, udp


def write_toy_shards(out_dir: str | Path, characters: int = 12, views: int = 6, size: int = 64, seed: int = 0,
                     per_shard: int = 4, val_characters: int = 2, one_view: int = 1, unlabelled: int = 1,
                     backgrounds: int = 8, chunks: int = 1) -> ShardSet:
    """Write ``characters`` toy characters (``val_characters`` of them in val, by udpgen's split rule: ids
    are drawn until the split counts fit) of ``views`` random poses each, ``one_view`` train characters
    with a single view and ``unlabelled`` train characters without UDPs (as hand-drawn data), plus one
    ``bg`` shard of procedural backgrounds. Each character has ``chunks`` samples (chunk 0, 1, ...: keys
    ``{character}-{chunk:04d}``, each of its own poses), written in character order as udpgen does.
    Deterministic in ``seed``."""
    from udpgen.backgrounds.sets import procedural
    from udpgen.shards import BackgroundWriter, Sample, ShardWriter, View, split_of

    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {"train": [], "val": []}
    want, j = {"train": characters - val_characters, "val": val_characters}, 0
    while any(len(names[k]) < want[k] for k in names):
        name, j = f"toy{seed}c{j:04d}", j + 1
        if len(names[split_of(name)]) < want[split_of(name)]:
            names[split_of(name)].append(name)
    by_split: dict[str, list] = {"train": [], "val": []}
    for split, ids in names.items():
        for i, name in enumerate(ids):
            palette = np.concatenate([np.zeros((1, 3)), rng.uniform(40, 255, (3, 3))]).astype(np.float32)
            freq = float(rng.uniform(2, 6))
            one, labelled = split == "train" and i < one_view, not (split == "train" and i >= len(ids) - unlabelled)
            for chunk in range(chunks):
                vs = []
                for _ in range(1 if one else views):
                    pose = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.75, 1.0), *rng.uniform(-0.08, 0.08, 2),
                                     rng.uniform(-1.2, 1.2)], np.float32)
                    rgba, udp = _toy_view(palette, freq, pose, size)
                    vs.append(View(rgba, udp if labelled else None, motion="toy"))
                by_split[split].append(Sample(name, chunk, vs, "synthetic" if labelled else "handdrawn"))
    for split, samples in by_split.items():
        for j in range(0, len(samples), per_shard):
            with ShardWriter(out_dir, split, j // per_shard, overwrite=True) as w:
                for s in samples[j:j + per_shard]:
                    w.write(s)
    if backgrounds:
        with BackgroundWriter(out_dir, 0, overwrite=True) as w:
            for b in range(backgrounds):
                w.write(f"bg{b:03d}", procedural(rng, 2 * size))
    return check_shards(out_dir)
