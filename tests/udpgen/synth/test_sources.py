"""Finding models inside archives as users have them: cp932 names, zip-slip and zip-bomb guards, broken members."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from udpgen.errors import UdpgenError
from udpgen.synth import sources
from udpgen.synth.sources import discover_models, materialise, read_source


class _Cp932Info(zipfile.ZipInfo):
    """An entry whose name is stored as cp932 bytes without the UTF-8 flag, as Windows archivers write."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp932"), self.flag_bits & ~0x800


def _zip(path: Path, members: dict[str, bytes], cp932: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = (_Cp932Info if cp932 else zipfile.ZipInfo)(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return path


def _sample_members(sample_dir: Path, folder: str) -> dict[str, bytes]:
    return {f"{folder}/{f.relative_to(sample_dir).as_posix()}".replace("sample.pmx", "本体.pmx"): f.read_bytes()
            for f in sorted(sample_dir.rglob("*")) if f.is_file() and f.suffix != ".vmd"}


def test_cp932_names_are_read_as_the_archiver_meant(tmp_path, sample_dir):
    z = _zip(tmp_path / "pack.zip", _sample_members(sample_dir, "キャラ"), cp932=True)
    with zipfile.ZipFile(z) as raw:          # what Python's zipfile alone makes of the names: mojibake
        assert not any("キャラ" in n for n in raw.namelist())
    found, problems = discover_models(tmp_path)
    assert problems == [] and [s.member for s in found] == ["キャラ/本体.pmx"]
    assert read_source(found[0]) == (sample_dir / "sample.pmx").read_bytes()
    path = materialise(found[0], tmp_path / "cache")
    assert path.name == "本体.pmx" and (path.parent / "tex" / "skin.png").is_file()


def test_zip_slip_members_are_never_written_outside_the_cache(tmp_path, sample_dir):
    members = _sample_members(sample_dir, "ok")
    members["../../evil.pmx"] = b"PMX evil"
    members["/abs/evil.pmx"] = b"PMX evil"
    members["ok/../../escape.png"] = b"x"
    (tmp_path / "in").mkdir()
    _zip(tmp_path / "in" / "pack.zip", members)
    found, problems = discover_models(tmp_path / "in")
    assert [s.member for s in found] == ["ok/本体.pmx"]
    assert sorted(p["file"].split(":", 1)[1] for p in problems) == ["../../evil.pmx", "/abs/evil.pmx"]
    assert all("unsafe" in p["reason"] for p in problems)
    cache = tmp_path / "cache"
    materialise(found[0], cache)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not any("evil" in w or "escape" in w for w in written), written
    assert all(w.startswith(("in/", "cache/")) for w in written), written


def test_zip_bombs_are_refused_before_unpacking(tmp_path, sample_dir, monkeypatch):
    _zip(tmp_path / "pack.zip", {"big/model.pmx": b"\0" * 4_000_000, "big/tex.png": b"\0" * 4_000_000})
    monkeypatch.setattr(sources, "MAX_MODEL_BYTES", 1_000_000)
    found, problems = discover_models(tmp_path)
    assert found == [] and len(problems) == 1 and "declares 4000000 bytes" in problems[0]["reason"]
    monkeypatch.setattr(sources, "MAX_MODEL_BYTES", 512 << 20)
    monkeypatch.setattr(sources, "MAX_ARCHIVE_BYTES", 5_000_000)
    found, _ = discover_models(tmp_path)
    with pytest.raises(UdpgenError, match="archive too large"):
        materialise(found[0], tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.png"))


def test_broken_archives_and_members_are_data_not_crashes(tmp_path, sample_dir):
    good = _zip(tmp_path / "a.zip", _sample_members(sample_dir, "c"))
    data = bytearray(good.read_bytes())
    # corrupt the compressed bytes of the first texture member: its CRC check fails on reading
    with zipfile.ZipFile(good) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(".png"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 10:start + 40] = b"\xff" * 30
    broken_member = tmp_path / "b" / "b.zip"
    broken_member.parent.mkdir()
    broken_member.write_bytes(bytes(data))
    found, problems = discover_models(broken_member.parent)
    assert problems == [] and len(found) == 1               # the model member itself is intact
    path = materialise(found[0], tmp_path / "cache")        # the broken texture is skipped, the model is not
    assert path.is_file() and not (path.parent / info.filename.split("/", 1)[1]).exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "truncated.zip").write_bytes(good.read_bytes()[: len(data) // 2])
    found, problems = discover_models(tmp_path / "c")
    assert found == [] and len(problems) == 1 and "unreadable archive" in problems[0]["reason"]
