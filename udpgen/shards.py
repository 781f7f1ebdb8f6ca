"""WebDataset shards of CoNR training data (DESIGN 3.6): sample schema, atomic writers, readers (checks: udpgen.verify).

A sample is one character chunk, key ``{character}-{chunk:04d}`` (character ids match ``[A-Za-z0-9_-]+``,
at most 80 characters, so keys have no dots and member names fit a plain ustar header). Members:

* ``{key}.json``            metadata (:data:`SCHEMA`; see :func:`encode_sample`)
* ``{key}.{i:03d}.rgba.png``  view i: 8-bit RGBA PNG, straight alpha
* ``{key}.{i:03d}.udp.png``   view i's UDP, only for labelled views: 16-bit RGBA PNG (:mod:`udpgen.udp`)

WebDataset splits a member name at the first dot, so a consumer sees ``__key__ = key`` and the fields
``json``, ``000.rgba.png``, ``000.udp.png``, ...; :func:`decode_sample` takes that dict as it is
(``wds.WebDataset(urls).map(decode_sample)``). Do not use webdataset's ``.decode("rgb")`` on UDPs: its
PIL decoder keeps only 8 bits of a 16-bit RGBA PNG.

Directory: ``{split}-{index:06d}.tar`` (split ``train``/``val``: :func:`split_of`; ``bg`` for background
shards of ``{key}.png|jpg`` members). A writer streams into ``NAME.tar.tmp``, renames it to ``NAME.tar``
when complete, then writes ``NAME.stats.json`` atomically: the stats file is the commit marker. A job
skips a shard when :func:`is_complete`; opening a writer removes a stale ``.tmp`` or an uncommitted tar
left by a killed run. Tar bytes are a function of the samples alone (mtime 0, uid/gid 0, empty owner
names, mode 0644, members sorted within a sample), so a rerun with the same inputs gives the same bytes.
``sizes.json`` (shard name -> samples, the convention open_clip-style loaders read) and ``manifest.json``
(config, seed, versions, sha256 of every shard) are written at the end of a run.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from udpgen import udp as udpmod
from udpgen.atomic import write_bytes_atomic
from udpgen.errors import FormatError, UdpgenError

__all__ = ["SCHEMA", "View", "Sample", "sample_key", "split_of", "encode_sample", "decode_sample",
           "check_sample", "encode_rgba", "decode_rgba", "ShardWriter", "BackgroundWriter", "shard_name",
           "is_complete", "list_shards", "write_sizes", "write_manifest", "iter_samples", "iter_backgrounds",
           "SkipCounter"]

SCHEMA = 1                 # metadata "schema": bump when members or metadata keys change meaning
VAL_EVERY = 16             # 1 in 16 characters go to val
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SPLIT_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_SHARD_RE = re.compile(r"^(?P<split>[a-z][a-z0-9_]{0,15})-(?P<index>\d{6,})\.tar$")
_EXT_RE = re.compile(r"^(?:json|(?P<view>\d{3})\.(?P<kind>rgba|udp)\.png)$")
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


def _check_id(value: str, what: str = "character id") -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{what} must match [A-Za-z0-9_-]{{1,80}} (no dots: WebDataset splits keys at the "
                         f"first dot), got {value!r}")
    return value


def sample_key(character: str, chunk: int) -> str:
    """'alice', 3 -> 'alice-0003'."""
    if not isinstance(chunk, (int, np.integer)) or chunk < 0:
        raise ValueError(f"chunk must be an int >= 0, got {chunk!r}")
    return f"{_check_id(character)}-{int(chunk):04d}"


def split_of(character: str) -> str:
    """'val' for 1 in 16 characters, else 'train': the first byte of sha256(UTF-8 id) % 16 == 0. Depends on
    the id only (not on seeds, order or machine), so every worker and rerun agrees."""
    return "val" if hashlib.sha256(_check_id(character).encode()).digest()[0] % VAL_EVERY == 0 else "train"


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


def _json_bytes(obj, indent: int | None = None) -> bytes:
    # sort_keys + fixed separators: the same metadata always gives the same bytes.
    return json.dumps(obj, sort_keys=True, indent=indent, separators=(",", ":") if indent is None else None,
                      ensure_ascii=True, allow_nan=False, default=_json_default).encode()


def encode_rgba(rgba: np.ndarray) -> bytes:
    """(H, W, 4) uint8 RGBA -> 8-bit RGBA PNG bytes (OpenCV wants BGRA: swapped here), with the encoder
    settings of rendered images (:data:`udpgen.udp.PNG_FAST`)."""
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
    members[f"{key}.json"] = _json_bytes(meta)
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
        if not _EXT_RE.match(ext):
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
    meets :func:`udpgen.udp.validate` at the rgba's size; occupancy == (alpha > 0) pixel for pixel."""
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


class _HashingFile:
    """Write-through wrapper that hashes and counts what tarfile writes (tarfile 'w' mode never seeks)."""

    def __init__(self, f):
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def write(self, b) -> int:
        self.f.write(b)
        self.sha.update(b)
        self.n += len(b)
        return len(b)

    def tell(self) -> int:
        return self.n


class _TarWriter:
    """The atomic shard protocol shared by :class:`ShardWriter` and :class:`BackgroundWriter`."""

    def __init__(self, out_dir: str | os.PathLike, split: str, index: int, overwrite: bool = False):
        self.out_dir, self.split, self.index = Path(out_dir), split, int(index)
        self.name = shard_name(split, index)
        self.path = self.out_dir / self.name
        self.tmp_path = self.out_dir / (self.name + ".tmp")
        self.stats_path = self.out_dir / self.name.replace(".tar", ".stats.json")
        self.overwrite = overwrite
        self.samples = 0
        self.failures: list[dict] = []
        self.extra: dict = {}          # the job's own counters, merged into stats.json
        self._keys: set[str] = set()
        self._tar = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def open(self) -> None:
        """Start the shard: refuse a committed one (unless overwrite), clear leftovers of a killed run."""
        if self.stats_path.exists() and not self.overwrite:
            raise UdpgenError(f"{self.path}: already complete ({self.stats_path.name} exists); skip it with "
                              f"is_complete() or pass overwrite=True")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Stats first: once the old marker is gone, no crash below can leave a marker for a wrong tar.
        for p in (self.stats_path, self.path, self.tmp_path):
            p.unlink(missing_ok=True)
        self._t0 = time.monotonic()
        self._file = open(self.tmp_path, "wb")
        self._hf = _HashingFile(self._file)
        self._tar = tarfile.open(fileobj=self._hf, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, name: str, data: bytes) -> None:
        if self._tar is None:
            raise RuntimeError(f"{self.name}: writer is not open (use it as a context manager)")
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 0, 0o644, 0, 0, "", ""
        self._tar.addfile(ti, io.BytesIO(data))

    def _claim(self, key: str) -> None:
        if key in self._keys:   # webdataset would silently merge two samples with one key
            raise ValueError(f"{self.name}: key {key!r} written twice")
        self._keys.add(key)

    def fail(self, key: str, reason: str) -> None:
        """Record a sample that could not be made (it is left out; the reason goes into stats.json)."""
        self.failures.append({"key": str(key), "reason": str(reason)})

    def _stats(self) -> dict:
        return {"shard": self.name, "split": self.split, "index": self.index, "samples": self.samples,
                "failed": len(self.failures), "failures": self.failures, "bytes": self._hf.n,
                "sha256": self._hf.sha.hexdigest(), "duration_s": round(time.monotonic() - self._t0, 3),
                **self.extra}

    def commit(self) -> dict:
        """Finish the tar, fsync, rename .tmp -> .tar, then write stats.json (the commit marker) atomically."""
        self._tar.close()
        self._tar = None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp_path, self.path)
        stats = self._stats()
        write_bytes_atomic(self.stats_path, _json_bytes(stats, indent=1))
        return stats

    def abort(self) -> None:
        """Drop the partial shard: no tar, no stats."""
        try:
            if self._tar is not None:
                self._tar.close()
            self._file.close()
        except Exception:  # noqa: BLE001 - already failing; the cleanup below is what matters
            pass
        self._tar = None
        self.tmp_path.unlink(missing_ok=True)


class ShardWriter(_TarWriter):
    """``with ShardWriter(out_dir, 'train', 3) as w: w.write(sample)`` -> train-000003.tar + stats.json.

    Samples go into the tar in the order written (the job keeps that order deterministic). :meth:`write`
    raises ValueError for a sample of the other split or a repeated key, and FormatError(shard, None,
    member, reason) for a sample failing :func:`check_sample`; a job may catch that and call :meth:`fail`."""

    def __init__(self, out_dir: str | os.PathLike, split: str, shard_index: int, overwrite: bool = False):
        if split == "bg":
            raise ValueError("'bg' shards hold backgrounds: use BackgroundWriter")
        super().__init__(out_dir, split, shard_index, overwrite)
        self.views = self.labelled_views = 0

    def write(self, sample: Sample) -> None:
        if self.split in ("train", "val") and split_of(sample.character) != self.split:
            raise ValueError(f"{sample.key}: character {sample.character!r} belongs to "
                             f"{split_of(sample.character)}, not {self.split}")
        problems = check_sample(sample)
        if problems:
            raise FormatError(self.name, None, problems[0][0], problems[0][1])
        members = encode_sample(sample)
        self._claim(sample.key)
        for name, data in members.items():
            self._add(name, data)
        self.samples += 1
        self.views += len(sample.views)
        self.labelled_views += sum(v.labelled for v in sample.views)

    def _stats(self) -> dict:
        return {**super()._stats(), "views": self.views, "labelled_views": self.labelled_views}


class BackgroundWriter(_TarWriter):
    """``bg-{index:06d}.tar`` with one ``{key}.png`` or ``{key}.jpg`` per background, same protocol."""

    def __init__(self, out_dir: str | os.PathLike, index: int, overwrite: bool = False):
        super().__init__(out_dir, "bg", index, overwrite)

    def write(self, key: str, image: np.ndarray | bytes, ext: str = "png", jpeg_quality: int = 95) -> None:
        """image: (H, W, 3) uint8 RGB (encoded as ``ext``), or PNG/JPEG bytes stored as they are."""
        _check_id(key, "background key")
        if isinstance(image, (bytes, bytearray)):
            ext = "png" if image[:8] == b"\x89PNG\r\n\x1a\n" else "jpg" if image[:3] == b"\xff\xd8\xff" else None
            if ext is None:
                raise ValueError(f"background {key}: bytes are neither PNG nor JPEG")
            data = bytes(image)
        else:
            img = np.asarray(image)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or ext not in ("png", "jpg"):
                raise ValueError(f"background {key}: expected (H, W, 3) uint8 RGB and ext png|jpg, "
                                 f"got {img.shape} {img.dtype}, {ext!r}")
            params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == "jpg" else []
            ok, buf = cv2.imencode("." + ext, np.ascontiguousarray(img[..., ::-1]), params)
            if not ok:
                raise RuntimeError(f"cv2.imencode failed for background {key}")
            data = buf.tobytes()
        self._claim(key)
        self._add(f"{key}.{ext}", data)
        self.samples += 1


# ---------------------------------------------------------------------------------------------- directory

def is_complete(out_dir: str | os.PathLike, split: str, index: int) -> bool:
    """True when the shard's tar and its stats.json (the commit marker) both exist: a job skips it."""
    name = shard_name(split, index)
    return (Path(out_dir) / name).is_file() and (Path(out_dir) / name.replace(".tar", ".stats.json")).is_file()


def list_shards(out_dir: str | os.PathLike, split: str) -> list[str]:
    """Sorted paths of the committed shards of ``split`` ('train', 'val', 'bg', ...) in ``out_dir``."""
    d = Path(out_dir)
    return [str(p) for p in sorted(d.glob(f"{split}-*.tar"))
            if _SHARD_RE.match(p.name) and p.with_name(p.name.replace(".tar", ".stats.json")).is_file()]


def _committed(d: Path) -> dict[str, dict]:
    """{shard name: its stats} for every committed shard."""
    out = {}
    for p in sorted(d.glob("*.stats.json")):
        tar = p.with_name(p.name.replace(".stats.json", ".tar"))
        if _SHARD_RE.match(tar.name) and tar.is_file():
            out[tar.name] = json.loads(p.read_text())
    return out


def write_sizes(out_dir: str | os.PathLike) -> dict[str, int]:
    """Write ``sizes.json`` = {shard file name: sample count} over the committed shards; return it."""
    sizes = {name: int(s["samples"]) for name, s in _committed(Path(out_dir)).items()}
    write_bytes_atomic(Path(out_dir) / "sizes.json", _json_bytes(sizes, indent=1))
    return sizes


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    import udpgen
    try:
        wds = metadata.version("webdataset")
    except metadata.PackageNotFoundError:
        wds = "absent"
    return {"python": platform.python_version(), "numpy": np.__version__, "cv2": cv2.__version__,
            "webdataset": wds, "udpgen": udpgen.__version__}


def write_manifest(out_dir: str | os.PathLike, config: dict, seed: int | None) -> dict:
    """Write ``manifest.json``: format, schema, config, seed, package versions, and per committed shard its
    sha256, bytes and samples. No timestamps: same inputs, same manifest.

    Checksums come from each shard's stats.json (hashed as the tar was written), so a run, or each of a
    cluster's array jobs, does not read the whole dataset back at its end; ``udpgen verify`` compares both
    with the files. Stats without a checksum (written by other tools) are hashed from the file."""
    d = Path(out_dir)
    shards = {}
    for name, s in _committed(d).items():
        sha, size = s.get("sha256"), s.get("bytes")
        if not (isinstance(sha, str) and isinstance(size, int)):
            sha, size = sha256_file(d / name), (d / name).stat().st_size
        shards[name] = {"sha256": sha, "bytes": size, "samples": int(s["samples"])}
    manifest = {"format": "udpgen-shards", "schema": SCHEMA, "config": config, "seed": seed,
                "versions": package_versions(), "shards": shards}
    write_bytes_atomic(d / "manifest.json", _json_bytes(manifest, indent=1))
    return manifest


# ---------------------------------------------------------------------------------------------- reading

def _iter_groups(fileobj, problems: list | None = None, info: dict | None = None
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream a tar -> (key, {member name: bytes}) for each run of adjacent members sharing a key (the
    text before the first dot, as WebDataset groups). Non-regular members are reported or skipped;
    ``info['end']`` gets the offset where tarfile stopped (the end-of-archive blocks should start there)."""
    key, group = None, {}
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for ti in tar:
            if not ti.isreg():
                if problems is not None:
                    problems.append((ti.name, "not a regular file"))
                continue
            data = tar.extractfile(ti).read()
            if info is not None:
                info["last"] = ti.name
            k = ti.name.split(".", 1)[0]
            if k != key and group:
                yield key, group
                group = {}
            key = k
            group[ti.name] = data
        if group:
            yield key, group
        if info is not None:
            info["end"] = tar.offset


class SkipCounter:
    """An error handler for :func:`iter_samples`: count and remember errors and keep going."""

    def __init__(self):
        self.count, self.errors = 0, []

    def __call__(self, exc: Exception) -> bool:
        self.count += 1
        self.errors.append(str(exc))
        return True


def _iter_decoded(tar_path, decode, handler):
    """Shared reader loop: handler(exc) -> True continues, False stops; None re-raises (WebDataset's rule)."""
    info: dict = {}
    with open(tar_path, "rb") as f:
        groups = _iter_groups(f, None, info)
        while True:
            try:
                key, group = next(groups)
            except StopIteration:
                # tarfile ends quietly at a cut on a header boundary: the end blocks tell a whole tar.
                if os.pread(f.fileno(), 1024, info.get("end", 0)) == bytes(1024):
                    return
                err = FormatError(tar_path, None, info.get("last", ""), "truncated: no end-of-archive blocks")
            except (tarfile.TarError, EOFError, OSError) as e:
                err = FormatError(tar_path, None, info.get("last", ""), f"unreadable after this member: {e}")
            else:
                err = None
            if err is not None:
                if handler is None:
                    raise err from None
                handler(err)
                return
            try:
                item = decode(key, group)
            except FormatError as e:
                if handler is None:
                    raise
                if not handler(e):
                    return
                continue
            yield item


def iter_samples(tar_path: str | os.PathLike, handler: Callable[[Exception], bool] | None = None
                 ) -> Iterator[Sample]:
    """Samples of one shard, in order. ``handler`` (e.g. a :class:`SkipCounter`) decides what a corrupt
    sample or tar does; without one the FormatError propagates."""
    name = os.path.basename(os.fspath(tar_path))
    return _iter_decoded(tar_path, lambda key, g: decode_sample(g, name), handler)


def iter_backgrounds(tar_path: str | os.PathLike, handler: Callable[[Exception], bool] | None = None
                     ) -> Iterator[tuple[str, np.ndarray]]:
    """(key, (H, W, 3) uint8 RGB) for each background of a ``bg-*.tar`` shard."""
    return _iter_decoded(tar_path, lambda key, g: (key, _decode_background(key, g)), handler)


def _decode_background(key: str, group: dict[str, bytes]) -> np.ndarray:
    if len(group) != 1 or not re.match(r"^[^.]+\.(png|jpg)$", next(iter(group))):
        raise FormatError(None, None, key, f"expected one {key}.png|jpg, got {sorted(group)}")
    img = cv2.imdecode(np.frombuffer(next(iter(group.values())), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FormatError(None, None, next(iter(group)), "cannot decode the image")
    return np.ascontiguousarray(img[..., ::-1])
