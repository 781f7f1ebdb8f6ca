"""VPD (Vocaloid Pose Data) poses: read and write.

A VPD is cp932 text with CRLF line ends. MMD writes::

    Vocaloid Pose Data file
    
    miku.osm;		// 親ファイル名
    2;				// 総ポーズボーン数
    
    Bone0{センター
      0.000000,1.000000,0.000000;				// trans x,y,z
      0.000000,0.000000,0.000000,1.000000;		// Quaternion x,y,z,w
    }
    
    Morph0{まばたき
      0.500000;				// weight
    }

``//`` starts a comment that runs to the end of the line; blank lines are ignored. The count line gives the
number of ``Bone`` blocks (morph blocks, written by later MMD versions and MikuMikuMoving, are not
counted). Translations are in MMD units relative to the rest pose; quaternions are (x, y, z, w), also
relative to the rest pose. Names are read as the rest of the block's first line, whitespace stripped.

Every problem raises :class:`udpgen.errors.FormatError` with ``offset=None`` (a text format), the field
(``bones[3].rotation``, ``morphs[0].weight``, ``bone_count``, ...) and the 1-based line number in the reason.
Quaternions are normalised; NaN/inf or zero ones are rejected with the bone named.
"""
from __future__ import annotations

import os
import re

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import FormatError
from udpgen.mmd.binary import read_file_bytes
from udpgen.mmd.model import Pose
from udpgen.mmd.vmd import normalize_quaternions

HEADER = "Vocaloid Pose Data file"

# A decimal number as MMD and the tools write it; deliberately not Python's float() syntax, which would
# also accept 'nan', 'inf' and '1_000'.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MODEL = re.compile(r"(.*?)\s*;")
_COUNT = re.compile(r"(\d+)\s*;")
_BLOCK = re.compile(r"(Bone|Morph)(\d+)\s*\{(.*)")


def read_vpd(path: str | os.PathLike) -> Pose:
    """Read a .vpd file; see :func:`parse_vpd`. OS problems (missing file, a directory) raise FormatError."""
    return parse_vpd(read_file_bytes(path), path)


def parse_vpd(data: bytes, path: str | os.PathLike | None = None) -> Pose:
    """Parse VPD bytes (cp932 text) into a :class:`Pose`.

    ``Pose.model_name`` is the parent-file text before the ';' as written (e.g. 'miku.osm'); bones are
    (name, (3,) float32 translation, (4,) float32 unit quaternion) in file order; morphs (name, weight).
    """
    p = os.fspath(path) if path is not None else None
    try:
        text = bytes(data).decode("cp932")
    except UnicodeDecodeError as e:
        line = bytes(data).count(b"\n", 0, e.start) + 1
        raise FormatError(p, None, "text",
                          f"line {line}: invalid cp932 text ({e.reason} at byte {e.start})") from None
    lines = _Lines(p, text.split("\n"))

    first = lines.raw_first()
    if first.strip().lstrip("\ufeff") != HEADER:
        raise FormatError(p, None, "header", f"line 1: expected {HEADER!r}, got {first.strip()[:60]!r}")

    n, content = lines.next("model_name", "the parent file name 'name.osm;'")
    m = _MODEL.fullmatch(content)
    if m is None:
        raise lines.error("model_name", n, f"expected the parent file name 'name.osm;', got {content!r}")
    model_name = m.group(1)

    count_line, content = lines.next("bone_count", "the bone count 'N;'")
    m = _COUNT.fullmatch(content)
    if m is None:
        raise lines.error("bone_count", count_line, f"expected the bone count 'N;', got {content!r}")
    bone_count = int(m.group(1))

    bones: list[tuple[str, np.ndarray, np.ndarray]] = []
    morphs: list[tuple[str, float]] = []
    while not lines.at_end():
        n, content = lines.next("blocks", "a block")
        m = _BLOCK.fullmatch(content)
        if m is None:
            raise lines.error("blocks", n, f"expected 'BoneN{{name' or 'MorphN{{name', got {content[:60]!r}")
        kind, name = m.group(1), m.group(3).strip()
        if kind == "Bone":
            field = f"bones[{len(bones)}]"
            if not name:
                raise lines.error(field + ".name", n, "empty bone name")
            who = f"bone {name!r}: "
            trans = lines.numbers(field + ".position", 3, "the translation 'x,y,z;'", who)
            rot_line, rot = lines.numbers_at(field + ".rotation", 4, "the quaternion 'x,y,z,w;'", who)
            q, bad = normalize_quaternions(rot, tol=0.0, zero_to_identity=False)
            if bad.size:
                raise lines.error(field + ".rotation", rot_line,
                                  f"{who}quaternion {rot.tolist()} is zero (has no rotation axis)")
            lines.close(field)
            bones.append((name, trans.astype(np.float32), q.astype(np.float32)))
        else:
            field = f"morphs[{len(morphs)}]"
            if not name:
                raise lines.error(field + ".name", n, "empty morph name")
            weight = lines.numbers(field + ".weight", 1, "the weight 'w;'", f"morph {name!r}: ")
            lines.close(field)
            morphs.append((name, float(np.float32(weight[0]))))

    if len(bones) != bone_count:
        raise lines.error("bone_count", count_line,
                          f"says {bone_count} bones but the file has {len(bones)} Bone blocks")
    return Pose(path=p, model_name=model_name, bones=tuple(bones), morphs=tuple(morphs))


class _Lines:
    """Cursor over the non-blank, comment-stripped lines, remembering 1-based line numbers."""

    def __init__(self, path: str | None, raw: list[str]):
        self.path = path
        self.raw = raw
        self.items = []
        for i, line in enumerate(raw[1:], start=2):        # line 1 is the header, checked verbatim
            content = line.split("//", 1)[0].strip()
            if content:
                self.items.append((i, content))
        self.i = 0

    def raw_first(self) -> str:
        return self.raw[0] if self.raw else ""

    def at_end(self) -> bool:
        return self.i >= len(self.items)

    def error(self, field: str, line: int, reason: str) -> FormatError:
        return FormatError(self.path, None, field, f"line {line}: {reason}")

    def next(self, field: str, what: str) -> tuple[int, str]:
        if self.at_end():
            raise self.error(field, len(self.raw), f"file ends where {what} was expected")
        item = self.items[self.i]
        self.i += 1
        return item

    def numbers_at(self, field: str, count: int, what: str, who: str = "") -> tuple[int, np.ndarray]:
        """Next line as ``count`` comma-separated finite numbers ending in ';' -> (line, float64 array).

        ``who`` prefixes the reason (e.g. "bone 'センター': ") so errors name the bone, not just its index.
        """
        n, content = self.next(field, who + what)
        if not content.endswith(";"):
            raise self.error(field, n, f"{who}expected {what}, got {content!r} (no ';')")
        parts = [s.strip() for s in content[:-1].split(",")]
        if len(parts) != count or not all(_NUMBER.fullmatch(s) for s in parts):
            raise self.error(field, n, f"{who}expected {what} ({count} decimal numbers; NaN/inf are not "
                                       f"allowed), got {content!r}")
        values = np.array([float(s) for s in parts], np.float64)
        with np.errstate(over="ignore"):
            finite = np.isfinite(values.astype(np.float32)).all()
        if not finite:
            raise self.error(field, n, f"{who}value out of float32 range: {content!r}")
        return n, values

    def numbers(self, field: str, count: int, what: str, who: str = "") -> np.ndarray:
        return self.numbers_at(field, count, what, who)[1]

    def close(self, field: str) -> None:
        n, content = self.next(field, "'}'")
        if content != "}":
            raise self.error(field, n, f"expected '}}' closing the block, got {content!r}")


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def vpd_text(pose: Pose) -> str:
    """The VPD text for ``pose`` in MMD's layout (CRLF line ends, 6 decimals, MMD's comments).

    Six decimals is what MMD writes; a round trip changes values by up to 5e-7 (plus renormalisation).

    Raises:
        ValueError: a name that is empty, has surrounding whitespace, or contains a line break or '//'
            (the format cannot hold it), or a non-finite value.
    """
    model = pose.model_name
    if model != model.strip() or "\n" in model or "\r" in model or "//" in model:
        raise ValueError(f"model_name {model!r} cannot be written to a VPD (surrounding whitespace, a line "
                         "break or '//')")
    out = [HEADER, "", f"{model};\t\t// 親ファイル名", f"{len(pose.bones)};\t\t\t\t// 総ポーズボーン数", ""]
    for i, (name, trans, rot) in enumerate(pose.bones):
        _check_name(name, f"bones[{i}].name")
        t = _finite(trans, 3, f"bones[{i}].position")
        q = _finite(rot, 4, f"bones[{i}].rotation")
        out += [f"Bone{i}{{{name}",
                "  " + ",".join(f"{v:.6f}" for v in t) + ";\t\t\t\t// trans x,y,z",
                "  " + ",".join(f"{v:.6f}" for v in q) + ";\t\t// Quaternion x,y,z,w",
                "}", ""]
    for i, (name, weight) in enumerate(pose.morphs):
        _check_name(name, f"morphs[{i}].name")
        w = _finite([weight], 1, f"morphs[{i}].weight")
        out += [f"Morph{i}{{{name}", f"  {w[0]:.6f};\t\t\t\t// weight", "}", ""]
    return "\r\n".join(out) + "\r\n"


def vpd_bytes(pose: Pose) -> bytes:
    """:func:`vpd_text` encoded as cp932; a character cp932 cannot hold raises ValueError."""
    text = vpd_text(pose)
    try:
        return text.encode("cp932")
    except UnicodeEncodeError as e:
        raise ValueError(f"VPD text has a character cp932 cannot encode: {e.object[e.start:e.end]!r} "
                         f"in {e.object[max(0, e.start - 20):e.end + 20]!r}") from None


def write_vpd(pose: Pose, path: str | os.PathLike) -> None:
    """Write ``pose`` to ``path`` atomically (temp file + rename)."""
    write_bytes_atomic(path, vpd_bytes(pose))


def _check_name(name: str, field: str) -> None:
    if not name or name != name.strip() or "\n" in name or "\r" in name or "//" in name:
        raise ValueError(f"{field}: {name!r} cannot be written to a VPD (empty, surrounding whitespace, "
                         "a line break or '//')")


def _finite(values, count: int, field: str) -> np.ndarray:
    v = np.asarray(values, np.float64).reshape(-1)
    if v.shape != (count,):
        raise ValueError(f"{field}: expected {count} values, got shape {np.shape(values)}")
    if not np.isfinite(v).all():
        raise ValueError(f"{field}: not finite: {v.tolist()}")
    return v
