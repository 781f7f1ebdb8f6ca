"""Shard writers: a tar streamed to ``NAME.tar.tmp``, renamed when complete, committed by its stats.json.

Tar bytes are a function of the samples alone (mtime 0, uid/gid 0, empty owner names, mode 0644, members
sorted within a sample), so a rerun with the same inputs gives the same bytes; the tar is hashed as it is
written, and the checksum goes into stats.json.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import FormatError, UdpgenError

from .schema import Sample, check_id, check_sample, encode_sample, json_bytes, shard_name, split_of


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
        write_bytes_atomic(self.stats_path, json_bytes(stats, indent=1))
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
        check_id(key, "background key")
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
