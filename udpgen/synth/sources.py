"""Finding the inputs of a synthetic run: MMD models (loose or inside .zip archives, as they are usually
distributed) and motions, each with a stable identity.

A character's id is ``c`` + the first 15 hex digits of the sha256 of its model file's bytes: it survives
renames and moves, and decides the train/val split (udpgen.shards.split_of). Archives are read with the
names MMD tools write (cp932 unless the entry says UTF-8) and extracted, when a worker needs one, into a
cache folder with zip-slip and zip-bomb guards.
"""
from __future__ import annotations

import hashlib
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import UdpgenError

log = logging.getLogger("udpgen.synth")

MODEL_EXTS = (".pmx", ".pmd")
MOTION_EXTS = (".vmd", ".vpd")
MAX_ARCHIVE_BYTES = 2 << 30          # refuse archives that unpack to more than 2 GiB
MAX_ARCHIVE_MEMBERS = 20000
MAX_MODEL_BYTES = 512 << 20          # no real model file is near this; a bigger member is a bomb or junk


@dataclass(frozen=True)
class ModelSource:
    """One model. path: the .pmx/.pmd, or the .zip holding it; member: its name inside the zip (or None);
    sha256: of the model file's bytes; name: what metadata shows (file name, 'archive.zip:inner/path.pmx')."""
    path: str
    member: str | None
    sha256: str

    @property
    def character(self) -> str:
        return "c" + self.sha256[:15]

    @property
    def name(self) -> str:
        return Path(self.path).name + (f":{self.member}" if self.member else "")


def _member_name(info: zipfile.ZipInfo) -> str:
    """Entry name as the archiver meant it: UTF-8 when flagged, else cp932 (Windows MMD archives)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p


def discover_models(root: str | os.PathLike) -> tuple[list[ModelSource], list[dict]]:
    """Models under ``root`` (a folder, searched recursively, or one file), sorted by path; and the
    archives that could not be read, as [{"file", "reason"}]. Files are hashed, not parsed."""
    root = Path(root)
    if not root.exists():
        raise UdpgenError(f"{root}: no such models folder or file")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    found, problems = [], []
    for f in files:
        ext = f.suffix.lower()
        if ext in MODEL_EXTS:
            found.append(ModelSource(str(f), None, hashlib.sha256(f.read_bytes()).hexdigest()))
        elif ext == ".zip":
            try:
                with zipfile.ZipFile(f) as z:
                    for info in z.infolist():
                        name = _member_name(info)
                        if Path(name).suffix.lower() not in MODEL_EXTS:
                            continue
                        if _safe_member(name) is None:
                            problems.append({"file": f"{f}:{name}", "reason": "unsafe member name (absolute or "
                                             "'..'): not extracted"})
                        elif info.file_size > MAX_MODEL_BYTES:
                            problems.append({"file": f"{f}:{name}", "reason": f"declares {info.file_size} bytes "
                                             f"unpacked (over {MAX_MODEL_BYTES}): not read"})
                        else:
                            found.append(ModelSource(str(f), name, hashlib.sha256(z.read(info)).hexdigest()))
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError,
                    ValueError) as e:
                problems.append({"file": str(f), "reason": f"unreadable archive: {e}"})
    return found, problems


def discover_motions(root: str | os.PathLike | None) -> list[Path]:
    """Motion (.vmd) and pose (.vpd) files under ``root``, sorted; [] for None."""
    if root is None:
        return []
    root = Path(root)
    if not root.exists():
        raise UdpgenError(f"{root}: no such motions folder or file")
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MOTION_EXTS)


def read_source(source: ModelSource) -> bytes:
    """The model file's bytes, from disk or from inside its archive (no extraction)."""
    if source.member is None:
        return Path(source.path).read_bytes()
    with zipfile.ZipFile(source.path) as z:
        info = next((i for i in z.infolist() if _member_name(i) == source.member), None)
        if info is None:
            raise UdpgenError(f"{source.name}: no such member in the archive")
        return z.read(info)


def materialise(source: ModelSource, cache_dir: str | os.PathLike) -> Path:
    """The model as a file on disk, its textures beside it: the file itself, or the archive extracted once
    into ``cache_dir/<archive sha256>/`` (guarded against absolute or '..' names and oversized archives)."""
    if source.member is None:
        return Path(source.path)
    data = Path(source.path).read_bytes()
    target = Path(cache_dir) / hashlib.sha256(data).hexdigest()[:16]
    done = target / ".complete"
    if not done.exists():
        with zipfile.ZipFile(source.path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ARCHIVE_MEMBERS or sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
                raise UdpgenError(f"{source.path}: archive too large to extract "
                                  f"({len(infos)} members, {sum(i.file_size for i in infos)} bytes)")
            for info in infos:
                rel = _safe_member(_member_name(info))
                if rel is None or info.is_dir():
                    continue
                try:
                    data = z.read(info)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as e:
                    # a broken texture should cost that texture (MMD shows the colour), not the character
                    log.warning("%s: member %r unreadable (%s): not extracted", source.path, info.filename, e)
                    continue
                out = target.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(out, data)
        write_bytes_atomic(done, b"")
    path = target.joinpath(*_safe_member(source.member).parts)
    if not path.is_file():
        raise UdpgenError(f"{source.name}: not found after extracting the archive (unreadable member?)")
    return path
