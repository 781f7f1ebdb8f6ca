"""Streaming shard readers with WebDataset's error-handler rule (used by conr.data and udpgen.shards.verify)."""
from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from udpgen.errors import FormatError

from .schema import Sample, decode_sample


def iter_groups(fileobj, problems: list | None = None, info: dict | None = None
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
        groups = iter_groups(f, None, info)
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


def iter_members(tar_path: str | os.PathLike, handler: Callable[[Exception], bool] | None = None
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member name after the key and its dot, e.g. 'json', '000.rgba.png': bytes}) per sample of one
    tar, undecoded, with the one end-of-archive check (a truncated or damaged tar reaches ``handler``)."""
    return _iter_decoded(tar_path, lambda key, g: (key, {n[len(key) + 1:]: b for n, b in g.items()}), handler)


def iter_keys(tar_path: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """(key, [member names after the key and its dot]) per sample of one tar, from the headers alone (a
    seekable read skips the member data: cheap enough to list a whole split). Grouping as
    :func:`iter_groups`. A damaged or truncated tar ends the listing quietly where tarfile stops: the
    readers above report it when the samples are read."""
    key, names = None, []
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for ti in tar:
                if not ti.isreg():
                    continue
                k, _, rest = ti.name.partition(".")
                if k != key and names:
                    yield key, names
                    names = []
                key = k
                names.append(rest)
    except (tarfile.TarError, EOFError, OSError):
        pass
    if names:
        yield key, names


def iter_samples(tar_path: str | os.PathLike, handler: Callable[[Exception], bool] | None = None
                 ) -> Iterator[Sample]:
    """Samples of one shard, in order. ``handler`` (e.g. a :class:`SkipCounter`) decides what a corrupt
    sample or tar does; without one the FormatError propagates."""
    name = os.path.basename(os.fspath(tar_path))
    return _iter_decoded(tar_path, lambda key, g: decode_sample(g, name), handler)


def iter_backgrounds(tar_path: str | os.PathLike, handler: Callable[[Exception], bool] | None = None
                     ) -> Iterator[tuple[str, np.ndarray]]:
    """(key, (H, W, 3) uint8 RGB) for each background of a ``bg-*.tar`` shard."""
    return _iter_decoded(tar_path, lambda key, g: (key, decode_background(key, g)), handler)


def decode_background(key: str, group: dict[str, bytes]) -> np.ndarray:
    if len(group) != 1 or not re.match(r"^[^.]+\.(png|jpg)$", next(iter(group))):
        raise FormatError(None, None, key, f"expected one {key}.png|jpg, got {sorted(group)}")
    img = cv2.imdecode(np.frombuffer(next(iter(group.values())), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FormatError(None, None, next(iter(group)), "cannot decode the image")
    return np.ascontiguousarray(img[..., ::-1])
