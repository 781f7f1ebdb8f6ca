"""Check a shard directory (or one tar) against the schema of :mod:`udpgen.shards`: what ``udpgen verify`` runs.

Every member readable, each sample's files adjacent and complete, images of the right depth and size, the
UDP contract and occupancy == alpha > 0 in every labelled view, characters in the right split, counts equal
to stats.json and sizes.json, checksums equal to stats.json and manifest.json, no leftover temp files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


from udpgen.errors import FormatError
from udpgen.shards.reader import decode_background, iter_groups
from udpgen.shards.schema import SHARD_RE, check_sample, decode_sample, split_of

@dataclass
class Problem:
    """One thing wrong: the file in the shard directory, the tar member (or sizes/manifest entry), what."""
    shard: str
    member: str
    what: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.shard, self.member, self.what) if p)


@dataclass
class Report:
    """What :func:`verify` found: counts over readable samples, and every problem (empty = ok)."""
    root: str
    shards: int = 0
    samples: int = 0
    views: int = 0
    labelled_views: int = 0
    backgrounds: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, shard: str, member: str, what: str) -> None:
        self.problems.append(Problem(shard, member, what))

    def to_dict(self) -> dict:
        return {"root": self.root, "ok": self.ok, "shards": self.shards, "samples": self.samples,
                "views": self.views, "labelled_views": self.labelled_views, "backgrounds": self.backgrounds,
                "problems": [vars(p) for p in self.problems]}


class _HashingReader:
    def __init__(self, f):
        self.f, self.sha = f, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        b = self.f.read(size)
        self.sha.update(b)
        return b


def _check_group(shard: str, split: str, key: str, group: dict, report: Report, seen: dict) -> None:
    if split == "bg":
        try:
            decode_background(key, group)
            report.backgrounds += 1
        except FormatError as e:
            report.add(shard, e.field, e.reason)
        return
    try:
        s = decode_sample(group, shard)
    except FormatError as e:
        report.add(shard, e.field, e.reason)
        return
    for member, what in check_sample(s):
        report.add(shard, member, what)
    if split in ("train", "val") and split_of(s.character) != split:
        report.add(shard, f"{key}.json", f"character {s.character!r} belongs to {split_of(s.character)}")
    if key in seen:
        report.add(shard, f"{key}.json", f"key {key} is also in {seen[key]}")
    seen[key] = shard
    report.samples += 1
    report.views += len(s.views)
    report.labelled_views += sum(v.labelled for v in s.views)


def _verify_tar(path: Path, split: str, report: Report, seen: dict) -> tuple[int, str]:
    """Read every member of one tar, check every sample -> (sample count, sha256 of the file)."""
    count, done, info, bad = 0, set(), {}, []
    with open(path, "rb") as f:
        reader = _HashingReader(f)
        try:
            for key, group in iter_groups(reader, bad, info):
                count += 1
                if key in done:
                    report.add(path.name, next(iter(group)), f"members of sample {key} are not adjacent")
                done.add(key)
                _check_group(path.name, split, key, group, report, seen)
        except (tarfile.TarError, EOFError, OSError) as e:
            report.add(path.name, info.get("last", ""), f"unreadable after this member (truncated or corrupt): {e}")
        else:
            # tarfile stops quietly at a truncated or garbage header: demand the two zero end blocks.
            if os.pread(f.fileno(), 1024, info.get("end", 0)) != bytes(1024):   # pread: the stream keeps its place
                report.add(path.name, info.get("last", ""),
                           "no end-of-archive blocks after this member (truncated tar)")
        for m, what in bad:
            report.add(path.name, m, what)
        while reader.read(1 << 20):
            pass
    return count, reader.sha.hexdigest()


def _load_json(path: Path, report: Report):
    if not path.is_file():
        report.add(path.name, "", "missing")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        report.add(path.name, "", f"unreadable JSON: {e}")
        return None


def verify(path: str | os.PathLike, progress: Callable[[str], None] | None = None) -> Report:
    """Check a shard directory (or one tar) -> Report. Nothing is raised for a bad shard: it is listed.

    Checks: no leftover ``.tmp``; every tar named SPLIT-NNNNNN.tar, committed (stats.json) and fully
    readable with its end-of-archive blocks; each sample's members adjacent and complete (json, rgba per
    view, udp exactly for labelled views, nothing else), images decode as 8-bit / 16-bit RGBA of the size
    in the metadata, UDPs meet the contract with occupancy == alpha > 0, characters in their split, keys
    unique over the directory; backgrounds decode; sample counts equal stats.json and sizes.json;
    sha256 equals stats.json and manifest.json. ``progress(name)`` is called after each tar."""
    p = Path(path)
    report = Report(str(p))
    if p.is_file():
        root, tars, single = p.parent, [p], True
    elif p.is_dir():
        root, single = p, False
        files = sorted(x.name for x in p.iterdir() if x.is_file())
        tars = [p / n for n in files if n.endswith(".tar")]
        for n in files:
            if n.endswith(".tmp"):
                report.add(n, "", "leftover temporary file (a killed or still running writer)")
            if n.endswith(".stats.json") and n[:-len(".stats.json")] + ".tar" not in files:
                report.add(n, "", "stats without its tar")
        if not tars:
            report.add("", "", "no shards (*.tar) found")
    else:
        raise FormatError(p, None, "", "no such shard directory or tar file")
    counts, shas, seen = {}, {}, {}
    for t in tars:
        m = SHARD_RE.match(t.name)
        if not m:
            report.add(t.name, "", "not a shard name (SPLIT-NNNNNN.tar)")
            continue
        counts[t.name], shas[t.name] = _verify_tar(t, m["split"], report, seen)
        report.shards += 1
        sp = t.with_name(t.name.replace(".tar", ".stats.json"))
        if not single and not sp.is_file():
            report.add(t.name, "", "no stats.json: not committed (killed run?); rerun its job")
        elif not single:
            stats = _load_json(sp, report) or {}
            if stats.get("samples") != counts[t.name]:
                report.add(sp.name, "", f"says {stats.get('samples')} samples, the tar holds {counts[t.name]}")
            if stats.get("sha256") != shas[t.name]:
                report.add(sp.name, "", "sha256 differs from the tar's (changed after it was written)")
        if progress is not None:
            progress(t.name)
    if single:
        return report
    sizes = _load_json(root / "sizes.json", report)
    if sizes is not None:
        for name in sorted(set(counts) | set(sizes)):
            if name not in counts:
                report.add("sizes.json", name, "entry for a shard that is not there")
            elif sizes.get(name) != counts[name]:
                report.add("sizes.json", name, f"says {sizes.get(name)} samples, the tar holds {counts[name]}")
    manifest = _load_json(root / "manifest.json", report)
    if manifest is not None:
        listed = manifest.get("shards", {})
        for name in sorted(set(shas) | set(listed)):
            if name not in shas:
                report.add("manifest.json", name, "lists a shard that is not there")
            elif name not in listed:
                report.add("manifest.json", name, "shard missing from the manifest")
            elif listed[name].get("sha256") != shas[name]:
                report.add("manifest.json", name, "sha256 differs from the shard's (changed after the manifest)")
    return report
