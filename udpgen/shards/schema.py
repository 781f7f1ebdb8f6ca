"""The sample schema of the shards: ids and keys, member names, metadata, image encodings, content checks.

See :mod:`udpgen.shards` for the layout; everything here is pure (bytes and arrays in, bytes and arrays out).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from udpgen.io import udp as udpmod
from udpgen.errors import FormatError

SCHEMA = 1                 # metadata "schema": bump when members or metadata keys change meaning
VAL_EVERY = 16             # 1 in 16 characters go to val
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SPLIT_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
SHARD_RE = re.compile(r"^(?P<split>[a-z][a-z0-9_]{0,15})-(?P<index>\d{6,})\.tar$")
MEMBER_RE = re.compile(r"^(?:json|(?P<view>\d{3})\.(?P<kind>rgba|udp)\.png)$")   # a member after its key
_SAMPLE_KEYS = {"schema", "key", "character", "chunk", "source", "labelled", "model_file", "model_sha256", "views"}
_VIEW_KEYS = {"index", "labelled", "size", "motion", "frame", "camera"}
SOURCES = ("synthetic", "handdrawn")


@dataclass
class View:
    """One image of a character. rgba: (H, W, 4) uint8 straight alpha; udp: (H, W, 4) float32 UDP of the
    same draw, or None when unlabelled; motion: motion/pose file name or e.g. 'random:7' (None for
    hand-drawn); frame: frame of the motion at 30 fps; camera: JSON-able intrinsics/extrinsics (numpy
    arrays are stored as lists and come back as lists); extra: more JSON-able per-view keys."""
    rgba: np.ndarray
    udp: np.ndarray | None = None
    motion: str | None = None
    frame: float | None = None
    camera: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.udp is not None


@dataclass
class Sample:
    """One character chunk: ``views`` of character ``character`` (id ``[A-Za-z0-9_-]+``), chunk number
    ``chunk`` >= 0; source 'synthetic' | 'handdrawn'; the model file name and its sha256 (None for
    hand-drawn); extra: more JSON-able top-level metadata."""
    character: str
    chunk: int
    views: list[View]
    source: str = "synthetic"
    model_file: str | None = None
    model_sha256: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return sample_key(self.character, self.chunk)

    @property
    def labelled(self) -> bool:
        """True when every view has a UDP (per-view flags are in each View)."""
        return bool(self.views) and all(v.labelled for v in self.views)


def check_id(value: str, what: str = "character id") -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{what} must match [A-Za-z0-9_-]{{1,80}} (no dots: WebDataset splits keys at the "
                         f"first dot), got {value!r}")
    return value


def sample_key(character: str, chunk: int) -> str:
    """'alice', 3 -> 'alice-0003'."""
    if not isinstance(chunk, (int, np.integer)) or chunk < 0:
        raise ValueError(f"chunk must be an int >= 0, got {chunk!r}")
    return f"{check_id(character)}-{int(chunk):04d}"


def split_of(character: str) -> str:
    """'val' for 1 in 16 characters, else 'train': the first byte of sha256(UTF-8 id) % 16 == 0. Depends on
    the id only (not on seeds, order or machine), so every worker and rerun agrees."""
    return "val" if hashlib.sha256(check_id(character).encode()).digest()[0] % VAL_EVERY == 0 else "train"


def shard_name(split: str, index: int) -> str:
    """'train', 3 -> 'train-000003.tar'."""
    if not isinstance(split, str) or not _SPLIT_RE.match(split):
        raise ValueError(f"split must match [a-z][a-z0-9_]*, got {split!r}")
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"shard index must be an int >= 0, got {index!r}")
    return f"{split}-{int(index):06d}.tar"


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def json_bytes(obj, indent: int | None = None) -> bytes:
    # sort_keys + fixed separators: the same metadata always gives the same bytes.
    return json.dumps(obj, sort_keys=True, indent=indent, separators=(",", ":") if indent is None else None,
                      ensure_ascii=True, allow_nan=False, default=_json_default).encode()


def encode_rgba(rgba: np.ndarray) -> bytes:
    """(H, W, 4) uint8 RGBA -> 8-bit RGBA PNG bytes (OpenCV wants BGRA: swapped here), with the encoder
    settings of rendered images (:data:`udpgen.io.udp.PNG_FAST`)."""
    a = np.asarray(rgba)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 4:
        raise ValueError(f"rgba must be (H, W, 4) uint8, got {a.shape} {a.dtype}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGBA2BGRA), udpmod.PNG_FAST)
    if not ok:
        raise RuntimeError("cv2.imencode failed for an RGBA PNG")
    return buf.tobytes()


def decode_rgba(data: bytes, name: str | None = None) -> np.ndarray:
    """8-bit RGBA PNG bytes -> (H, W, 4) uint8 RGBA; FormatError for any other PNG or broken data."""
    h, w, depth, channels = udpmod.png_header(data, name)
    if depth != 8 or channels != 4:
        raise FormatError(name, 24, "header", f"{depth}-bit, {channels} channel(s); expected 8-bit RGBA")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint8 or img.shape != (h, w, 4):
        raise FormatError(name, None, "data", "cannot decode the image data")
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def encode_sample(sample: Sample) -> dict[str, bytes]:
    """Sample -> {member name: bytes}, names sorted (the order they go into the tar).

    ``{key}.json`` holds (keys sorted, compact): schema, key, character, chunk, source, labelled,
    model_file, model_sha256, views = [{index, labelled, size: [H, W], motion, frame, camera, **view.extra}],
    **sample.extra. Raises ValueError for a malformed sample (ids, sources, shapes, reserved extra keys)."""
    key = sample.key
    if sample.source not in SOURCES:
        raise ValueError(f"{key}: source must be one of {SOURCES}, got {sample.source!r}")
    if not 1 <= len(sample.views) <= 1000:
        raise ValueError(f"{key}: 1 to 1000 views per sample, got {len(sample.views)}")
    if _SAMPLE_KEYS & set(sample.extra):
        raise ValueError(f"{key}: extra keys {sorted(_SAMPLE_KEYS & set(sample.extra))} are reserved")
    members, views = {}, []
    for i, v in enumerate(sample.views):
        if _VIEW_KEYS & set(v.extra):
            raise ValueError(f"{key}: view {i} extra keys {sorted(_VIEW_KEYS & set(v.extra))} are reserved")
        members[f"{key}.{i:03d}.rgba.png"] = encode_rgba(v.rgba)
        if v.udp is not None:
            if np.shape(v.udp)[:2] != v.rgba.shape[:2]:
                raise ValueError(f"{key}: view {i} udp {np.shape(v.udp)} and rgba {v.rgba.shape} differ in size")
            members[f"{key}.{i:03d}.udp.png"] = udpmod.encode_png16(v.udp)
        views.append({**v.extra, "index": i, "labelled": v.labelled, "size": list(v.rgba.shape[:2]),
                      "motion": v.motion, "frame": v.frame, "camera": v.camera})
    meta = {**sample.extra, "schema": SCHEMA, "key": key, "character": sample.character, "chunk": int(sample.chunk),
            "source": sample.source, "labelled": sample.labelled, "model_file": sample.model_file,
            "model_sha256": sample.model_sha256, "views": views}
    members[f"{key}.json"] = json_bytes(meta)
    return dict(sorted(members.items()))


def decode_sample(members: dict, where: str | None = None) -> Sample:
    """The members of one sample -> Sample. Takes either {full member name: bytes} (one key) or a
    WebDataset dict ({'__key__': key, 'json': ..., '000.rgba.png': ..., ...}; '__*' entries ignored).
    Raises FormatError(where, None, member name, reason) for a missing, unexpected or undecodable
    member, or metadata that contradicts the members. Image content is checked by :func:`check_sample`."""
    if "__key__" in members:
        key = members["__key__"]
        where = where or members.get("__url__")
        exts = {k: v for k, v in members.items() if not k.startswith("__")}
    else:
        keys = {n.split(".", 1)[0] for n in members}
        if len(keys) != 1:
            raise FormatError(where, None, "", f"members of {len(keys)} samples given: {sorted(keys)[:3]}")
        key = keys.pop()
        exts = {n.split(".", 1)[1] if "." in n else "": v for n, v in members.items()}
    where = where or key
    for ext in exts:
        if not MEMBER_RE.match(ext):
            raise FormatError(where, None, f"{key}.{ext}", "unexpected member (not json, NNN.rgba.png, NNN.udp.png)")
    if "json" not in exts:
        raise FormatError(where, None, f"{key}.json", "missing")
    try:
        meta = exts["json"] if isinstance(exts["json"], dict) else json.loads(exts["json"])
        views_meta = meta["views"]
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"schema {meta.get('schema')!r}; this udpgen reads schema {SCHEMA}")
        if meta.get("key", key) != key or sample_key(meta["character"], meta["chunk"]) != key:
            raise ValueError(f"metadata names {meta.get('key')!r}, the member key is {key!r}")
        if meta["source"] not in SOURCES or not isinstance(views_meta, list) or not views_meta:
            raise ValueError("bad source or empty views")
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(where, None, f"{key}.json", f"bad metadata: {e}") from None
    extra_members = {e for e in exts if e != "json" and int(e[:3]) >= len(views_meta)}
    if extra_members:
        raise FormatError(where, None, f"{key}.{min(extra_members)}", f"beyond the {len(views_meta)} views listed")
    views = []
    for i, vm in enumerate(views_meta):
        rgba_name, udp_name = f"{i:03d}.rgba.png", f"{i:03d}.udp.png"
        if not isinstance(vm, dict) or vm.get("index") != i or not isinstance(vm.get("labelled"), bool):
            raise FormatError(where, None, f"{key}.json", f"views[{i}] lacks index {i} or a labelled flag")
        if rgba_name not in exts:
            raise FormatError(where, None, f"{key}.{rgba_name}", f"missing (view {i} of {len(views_meta)})")
        if vm["labelled"] != (udp_name in exts):
            raise FormatError(where, None, f"{key}.{udp_name}", "missing for a labelled view" if vm["labelled"]
                              else "present but the view is marked unlabelled")
        rgba = decode_rgba(exts[rgba_name], f"{key}.{rgba_name}")
        if vm.get("size") != list(rgba.shape[:2]):
            raise FormatError(where, None, f"{key}.{rgba_name}",
                              f"size {rgba.shape[:2]}, metadata says {vm.get('size')}")
        u = udpmod.decode_png16(exts[udp_name], f"{key}.{udp_name}") if vm["labelled"] else None
        views.append(View(rgba, u, vm.get("motion"), vm.get("frame"), vm.get("camera"),
                          {k: x for k, x in vm.items() if k not in _VIEW_KEYS}))
    return Sample(meta["character"], int(meta["chunk"]), views, meta["source"], meta.get("model_file"),
                  meta.get("model_sha256"), {k: x for k, x in meta.items() if k not in _SAMPLE_KEYS})


def check_sample(sample: Sample) -> list[tuple[str, str]]:
    """Content checks of a sample -> [(member name, problem)], empty when fine: rgba (H, W, 4) uint8; udp
    meets :func:`udpgen.io.udp.validate` at the rgba's size; occupancy == (alpha > 0) pixel for pixel."""
    out, key = [], sample.key
    for i, v in enumerate(sample.views):
        rn, un = f"{key}.{i:03d}.rgba.png", f"{key}.{i:03d}.udp.png"
        r = np.asarray(v.rgba)
        if r.dtype != np.uint8 or r.ndim != 3 or r.shape[2] != 4:
            out.append((rn, f"rgba is {r.shape} {r.dtype}, expected (H, W, 4) uint8"))
            continue
        if v.udp is None:
            continue
        try:
            udpmod.validate(v.udp, un)
        except FormatError as e:
            out.append((un, f"{e.field}: {e.reason}"))
            continue
        if v.udp.shape[:2] != r.shape[:2]:
            out.append((un, f"size {v.udp.shape[:2]} differs from the rgba's {r.shape[:2]}"))
            continue
        diff = (v.udp[..., 3] > 0) != (r[..., 3] > 0)
        if diff.any():
            y, x = np.argwhere(diff)[0]
            out.append((un, f"occupancy differs from alpha > 0 at {int(diff.sum())} pixels, first (y={y}, x={x})"))
    return out
