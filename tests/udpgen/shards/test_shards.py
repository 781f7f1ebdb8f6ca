"""udpgen.shards and udpgen.cli.shards: schema round trip, deterministic atomic writers, readers, verify."""
from __future__ import annotations

import io
import json
import tarfile

import click
import numpy as np
import pytest
from click.testing import CliRunner

from udpgen import shards as S
from udpgen.cli.shards import register
from udpgen.errors import FormatError, UdpgenError
from udpgen.shards.verify import verify


def chars(split: str, n: int) -> list[str]:
    """The first n ids 'c0', 'c1', ... that split_of puts in ``split``."""
    out, i = [], 0
    while len(out) < n:
        if S.split_of(f"c{i}") == split:
            out.append(f"c{i}")
        i += 1
    return out


def make_view(seed: int, labelled: bool = True, h: int = 16, w: int = 12) -> S.View:
    rng = np.random.default_rng(seed)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[3:12, 2:9] = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    rgba[3:12, 2:9, 3] = rng.integers(1, 256, (9, 7), dtype=np.uint8)   # any alpha > 0 is occupied
    udp = None
    if labelled:
        udp = np.zeros((h, w, 4), np.float32)
        udp[3:12, 2:9, :3] = rng.random((9, 7, 3), dtype=np.float32)
        udp[3:12, 2:9, 3] = 1.0
    return S.View(rgba, udp, "wave.vmd", seed, {"K": np.eye(3) * 2, "pose": np.arange(16.0).reshape(4, 4)},
                  {"light": 0.5} if seed % 2 else {})


def make_sample(character: str, chunk: int = 0, views: int = 3, labelled: bool = True) -> S.Sample:
    return S.Sample(character, chunk, [make_view(100 * chunk + i, labelled and i != 1) for i in range(views)],
                    model_file=f"{character}.pmx", model_sha256="ab" * 32, extra={"seed": 7})


def write_dir(d, split="train", n=3, index=0) -> list[S.Sample]:
    samples = [make_sample(c, k) for k, c in enumerate(chars(split, n))]
    with S.ShardWriter(d, split, index) as w:
        for s in samples:
            w.write(s)
    S.write_sizes(d)
    S.write_manifest(d, {"size": 16}, seed=7)
    return samples


def assert_same(a: S.Sample, b: S.Sample) -> None:
    assert (a.key, a.source, a.model_file, a.model_sha256, a.extra) == (b.key, b.source, b.model_file,
                                                                        b.model_sha256, b.extra)
    for va, vb in zip(a.views, b.views, strict=True):
        np.testing.assert_array_equal(va.rgba, vb.rgba)
        assert (va.udp is None) == (vb.udp is None)
        if va.udp is not None:
            assert np.abs(va.udp - vb.udp).max() <= 1e-5
        assert (va.motion, va.frame, va.extra) == (vb.motion, vb.frame, vb.extra)
        assert json.dumps(va.camera, default=lambda o: o.tolist()) == json.dumps(vb.camera)


def tar_members(path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def rewrite(d, name: str, members: list[tuple[str, bytes]]) -> None:
    """Replace a committed shard's content and refresh its stats, sizes.json and manifest.json, so that
    verify sees only the problem planted in the members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for n, data in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    (d / name).write_bytes(buf.getvalue())
    stats_path = d / name.replace(".tar", ".stats.json")
    stats = json.loads(stats_path.read_text())
    stats.update(samples=len({n.split(".")[0] for n, _ in members}), sha256=S.sha256_file(d / name))
    stats_path.write_text(json.dumps(stats))
    S.write_sizes(d)
    S.write_manifest(d, {}, 0)


def problems(d) -> list[str]:
    return [str(p) for p in verify(d).problems]


def test_keys_and_split():
    assert S.sample_key("Alice_01-b", 3) == "Alice_01-b-0003"
    for bad in ["a.b", "", "a/b", "ä", "x" * 81]:
        with pytest.raises(ValueError):
            S.sample_key(bad, 0)
    with pytest.raises(ValueError):
        S.sample_key("a", -1)
    ids = [f"character_{i}" for i in range(10_000)]
    val = sum(S.split_of(c) == "val" for c in ids)
    assert abs(val / len(ids) - 1 / 16) < 0.01                  # 625 expected; binomial sd ~24
    assert [S.split_of(c) for c in ids[:50]] == [S.split_of(c) for c in ids[:50]]


def test_encode_decode_round_trip():
    s = make_sample("alice", 2)
    members = S.encode_sample(s)
    assert list(members) == sorted(members) == [
        "alice-0002.000.rgba.png", "alice-0002.000.udp.png", "alice-0002.001.rgba.png",
        "alice-0002.002.rgba.png", "alice-0002.002.udp.png", "alice-0002.json"]
    meta = json.loads(members["alice-0002.json"])
    assert meta["labelled"] is False and [v["labelled"] for v in meta["views"]] == [True, False, True]
    assert meta["views"][0]["size"] == [16, 12] and meta["seed"] == 7 and meta["schema"] == S.SCHEMA
    back = S.decode_sample(members)
    assert_same(s, back)
    assert back.labelled is False and back.views[1].udp is None
    with pytest.raises(ValueError):
        S.encode_sample(S.Sample("a", 0, [make_view(0)], extra={"views": 1}))
    with pytest.raises(ValueError):
        S.encode_sample(S.Sample("a", 0, [make_view(0)], source="photo"))


def test_decode_sample_names_the_bad_member():
    members = S.encode_sample(make_sample("bob"))
    for drop, field in [("bob-0000.json", "bob-0000.json"), ("bob-0000.002.udp.png", "bob-0000.002.udp.png"),
                        ("bob-0000.001.rgba.png", "bob-0000.001.rgba.png")]:
        with pytest.raises(FormatError) as e:
            S.decode_sample({k: v for k, v in members.items() if k != drop})
        assert e.value.field == field
    with pytest.raises(FormatError, match="unexpected member"):
        S.decode_sample({**members, "bob-0000.txt": b""})
    with pytest.raises(FormatError, match="marked unlabelled"):
        S.decode_sample({**members, "bob-0000.001.udp.png": members["bob-0000.000.udp.png"]})
    with pytest.raises(FormatError, match="8-bit RGBA"):
        S.decode_sample({**members, "bob-0000.000.rgba.png": members["bob-0000.000.udp.png"]})


def test_writer_is_byte_deterministic(tmp_path):
    for run in ("a", "b"):
        write_dir(tmp_path / run)
    a, b = (tmp_path / r / "train-000000.tar" for r in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    with tarfile.open(a) as t:
        infos = t.getmembers()
    assert all((m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644) for m in infos)
    stats = json.loads((tmp_path / "a" / "train-000000.stats.json").read_text())
    assert (stats["samples"], stats["views"], stats["labelled_views"], stats["failed"]) == (3, 9, 6, 0)
    assert stats["sha256"] == S.sha256_file(a) and stats["bytes"] == a.stat().st_size


def test_writer_atomic_protocol(tmp_path):
    train = chars("train", 2)
    with pytest.raises(RuntimeError, match="render crashed"):
        with S.ShardWriter(tmp_path, "train", 1) as w:
            w.write(make_sample(train[0]))
            raise RuntimeError("render crashed")
    assert list(tmp_path.iterdir()) == []                       # no tar, no stats, no .tmp
    # A killed run leaves a .tmp (or a renamed tar without stats): the next writer starts over.
    (tmp_path / "train-000001.tar.tmp").write_bytes(b"partial")
    (tmp_path / "train-000001.tar").write_bytes(b"uncommitted")
    assert not S.is_complete(tmp_path, "train", 1)
    with S.ShardWriter(tmp_path, "train", 1) as w:
        w.write(make_sample(train[1]))
        w.fail("c-9999", "model has no texture")
    assert S.is_complete(tmp_path, "train", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000001.stats.json", "train-000001.tar"]
    assert json.loads((tmp_path / "train-000001.stats.json").read_text())["failures"] == [
        {"key": "c-9999", "reason": "model has no texture"}]
    with pytest.raises(UdpgenError, match="already complete"):
        S.ShardWriter(tmp_path, "train", 1).open()
    with S.ShardWriter(tmp_path, "train", 1, overwrite=True) as w:
        w.write(make_sample(train[0]))
    assert S.list_shards(tmp_path, "train") == [str(tmp_path / "train-000001.tar")]


def test_writer_refuses_bad_samples(tmp_path):
    train, val = chars("train", 1)[0], chars("val", 1)[0]
    with S.ShardWriter(tmp_path, "train", 0) as w:
        with pytest.raises(ValueError, match="belongs to val"):
            w.write(make_sample(val))
        w.write(make_sample(train))
        with pytest.raises(ValueError, match="written twice"):
            w.write(make_sample(train))
        bad = make_sample(train, 1)
        bad.views[0].rgba[0, 0, 3] = 255                         # alpha without occupancy
        with pytest.raises(FormatError, match="occupancy differs from alpha"):
            w.write(bad)
    assert verify(tmp_path / "train-000000.tar").ok


def test_verify_clean_directory_and_counts(tmp_path):
    write_dir(tmp_path, "train", 3, 0)
    write_dir(tmp_path, "val", 2, 0)
    with S.BackgroundWriter(tmp_path, 0) as w:
        w.write("sky", np.full((8, 10, 3), (90, 160, 230), np.uint8))
        w.write("wall", np.zeros((6, 6, 3), np.uint8), ext="jpg")
    sizes = S.write_sizes(tmp_path)
    manifest = S.write_manifest(tmp_path, {"size": 16}, 7)
    assert sizes == {"bg-000000.tar": 2, "train-000000.tar": 3, "val-000000.tar": 2}
    assert set(manifest["versions"]) >= {"numpy", "cv2", "webdataset", "udpgen"}
    r = verify(tmp_path)
    assert r.ok, r.problems
    assert (r.shards, r.samples, r.views, r.labelled_views, r.backgrounds) == (3, 5, 15, 10, 2)
    got = dict(S.iter_backgrounds(tmp_path / "bg-000000.tar"))
    np.testing.assert_array_equal(got["sky"][0, 0], [90, 160, 230])
    assert got["wall"].shape == (6, 6, 3)


def test_verify_finds_truncation(tmp_path):
    write_dir(tmp_path)
    tar = tmp_path / "train-000000.tar"
    data = tar.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        infos = t.getmembers()
    tar.write_bytes(data[:infos[8].offset_data + 100])           # cut inside a member's data
    assert any(p.startswith(f"train-000000.tar: {infos[7].name}: unreadable after this member")
               for p in problems(tmp_path))
    # Cut exactly after a member's data: tarfile itself reads that as a clean end of the archive.
    tar.write_bytes(data[:infos[3].offset])
    found = problems(tmp_path)
    assert any("no end-of-archive" in p for p in found)
    assert any(p.startswith("sizes.json: train-000000.tar: says 3 samples") for p in found)
    assert any("manifest.json: train-000000.tar: sha256 differs" in p for p in found)


def test_verify_finds_planted_problems(tmp_path):
    samples = write_dir(tmp_path)
    members = tar_members(tmp_path / "train-000000.tar")
    key = samples[1].key
    rewrite(tmp_path, "train-000000.tar", [m for m in members if m[0] != f"{key}.002.udp.png"])
    assert problems(tmp_path) == [f"train-000000.tar: {key}.002.udp.png: missing for a labelled view"]

    bad = make_sample(samples[0].character, samples[0].chunk)
    bad.views[2].rgba[0, 0, 3] = 9                               # alpha where the UDP is background
    planted = [(n, d) for n, d in S.encode_sample(bad).items()] + members[len(S.encode_sample(bad)):]
    rewrite(tmp_path, "train-000000.tar", planted)
    assert problems(tmp_path) == [f"train-000000.tar: {bad.key}.002.udp.png: occupancy differs from alpha > 0 "
                                  f"at 1 pixels, first (y=0, x=0)"]

    order = members[1:] + members[:1]                            # first sample's first member moved to the end
    rewrite(tmp_path, "train-000000.tar", order)
    assert any("not adjacent" in p for p in problems(tmp_path))


def test_verify_finds_directory_problems(tmp_path):
    write_dir(tmp_path)
    (tmp_path / "sizes.json").write_text(json.dumps({"train-000000.tar": 4, "train-000009.tar": 1}))
    (tmp_path / "val-000003.tar.tmp").write_bytes(b"partial")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"]["train-000000.tar"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert problems(tmp_path) == [
        "val-000003.tar.tmp: leftover temporary file (a killed or still running writer)",
        "sizes.json: train-000000.tar: says 4 samples, the tar holds 3",
        "sizes.json: train-000009.tar: entry for a shard that is not there",
        "manifest.json: train-000000.tar: sha256 differs from the shard's (changed after the manifest)"]
    (tmp_path / "train-000000.stats.json").unlink()
    assert "train-000000.tar: no stats.json: not committed (killed run?); rerun its job" in problems(tmp_path)


@pytest.mark.filterwarnings("ignore:WebDataset\\(shardshuffle")
def test_plain_webdataset_reads_the_shards(tmp_path):
    wds = pytest.importorskip("webdataset")
    samples = write_dir(tmp_path)
    raw = list(wds.WebDataset([str(tmp_path / "train-000000.tar")]))   # WebDataset groups at the first dot
    assert [r["__key__"] for r in raw] == [s.key for s in samples]
    assert {k for k in raw[0] if not k.startswith("__")} == {
        "json", "000.rgba.png", "000.udp.png", "001.rgba.png", "002.rgba.png", "002.udp.png"}
    decoded = list(wds.WebDataset(str(tmp_path / "train-000000.tar"), shardshuffle=False).map(S.decode_sample))
    for a, b in zip(samples, decoded, strict=True):
        assert_same(a, b)


def test_iter_samples_skips_and_counts(tmp_path):
    samples = write_dir(tmp_path)
    members = tar_members(tmp_path / "train-000000.tar")
    broken = [(n, b"garbage" if n == f"{samples[1].key}.000.rgba.png" else d) for n, d in members]
    rewrite(tmp_path, "train-000000.tar", broken)
    with pytest.raises(FormatError):
        list(S.iter_samples(tmp_path / "train-000000.tar"))
    skip = S.SkipCounter()
    got = [s.key for s in S.iter_samples(tmp_path / "train-000000.tar", handler=skip)]
    assert got == [samples[0].key, samples[2].key] and skip.count == 1
    write_dir(tmp_path / "ok")
    data = (tmp_path / "ok" / "train-000000.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        infos = t.getmembers()
    for cut, name in [(infos[8].offset_data + 100, infos[7].name), (infos[12].offset, infos[11].name)]:
        (tmp_path / "cut.tar").write_bytes(data[:cut])            # mid-member; exactly between two samples
        skip = S.SkipCounter()
        assert len(list(S.iter_samples(tmp_path / "cut.tar", handler=skip))) == (1 if cut < infos[12].offset else 2)
        assert skip.count == 1 and name in skip.errors[0]


def _cli() -> click.Group:
    group = click.Group()
    register(group)
    return group


def test_cli_verify_and_preview(tmp_path):
    write_dir(tmp_path / "ds")
    runner = CliRunner()
    r = runner.invoke(_cli(), ["verify", str(tmp_path / "ds"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["samples"] == 3
    r = runner.invoke(_cli(), ["preview", str(tmp_path / "ds"), "--out", str(tmp_path / "sheet.png"),
                               "--samples", "2", "--views", "3", "--cell", "32"])
    assert r.exit_code == 0, r.output
    import cv2
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet.shape == (2 * 36 + 4, 6 * 36 + 4, 3)
    (tmp_path / "ds" / "sizes.json").write_text("{}")
    r = runner.invoke(_cli(), ["verify", str(tmp_path / "ds"), "-q"])
    assert r.exit_code == 1 and "sizes.json: train-000000.tar" in r.output


def test_iter_keys_lists_the_members_of_every_sample_from_the_headers(tmp_path):
    from udpgen.shards.reader import iter_keys, iter_members

    samples = write_dir(tmp_path)
    path = tmp_path / "train-000000.tar"
    listed = list(iter_keys(path))
    assert [k for k, _ in listed] == [s.key for s in samples]
    assert listed == [(k, list(m)) for k, m in iter_members(path)]     # the same grouping as the walker
    data = path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        cut = t.getmembers()[8].offset_data + 100
    (tmp_path / "cut.tar").write_bytes(data[:cut])                   # truncated: the listing stops quietly
    partial = list(iter_keys(tmp_path / "cut.tar"))
    assert 1 <= len(partial) <= 2 and partial[0] == listed[0]
