"""`udpgen handdrawn` and `udpgen backgrounds` end to end on small synthetic 'hand-drawn' images: shards
verify, samples read back unlabelled with the right counts and split, per-file failures are recorded,
reruns skip committed shards and give identical bytes."""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from udpgen.cli.main import main
from udpgen.drawn.job import character_id, discover, fit_rgba
from udpgen.shards import iter_backgrounds, iter_samples, list_shards, split_of
from udpgen.shards.verify import verify


GROUP = main


def run(*args):
    return CliRunner().invoke(GROUP, [str(a) for a in args])


def figure(size=64, bg=(255, 255, 255), colour=(200, 60, 60), shift=0) -> np.ndarray:
    """A flat-coloured figure with a dark outline on a flat background: (size, size, 3) uint8 RGB."""
    img = np.full((size, size, 3), bg, np.uint8)
    body = np.int32([[24 + shift, 26], [40 + shift, 26], [44 + shift, 56], [20 + shift, 56]]) * size // 64
    cv2.fillPoly(img, [body], colour, cv2.LINE_AA)
    cv2.polylines(img, [body], True, (30, 20, 40), 2, cv2.LINE_AA)
    cv2.circle(img, ((32 + shift) * size // 64, 16 * size // 64), 8 * size // 64, (250, 220, 200), -1, cv2.LINE_AA)
    cv2.circle(img, ((32 + shift) * size // 64, 16 * size // 64), 8 * size // 64, (30, 20, 40), 2, cv2.LINE_AA)
    return img


def png_claiming(w, h) -> bytes:
    """A PNG header declaring w x h pixels with almost no data: a decompression bomb for the reader."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def val_name() -> str:
    """A folder name whose character id lands in val (1 in 16 do)."""
    return next(f"val{i}" for i in range(1000) if split_of(character_id(f"val{i}")) == "val")


@pytest.fixture()
def drawings(tmp_path) -> Path:
    d = tmp_path / "drawings"
    for name in ("Alice B", "Alice_B", "carol", "bob", val_name()):
        (d / name).mkdir(parents=True)
    Image.fromarray(figure()).save(d / "Alice B" / "01.png")
    Image.fromarray(figure(bg=(170, 200, 240), shift=4)).save(d / "Alice B" / "02.jpg", quality=92)
    Image.fromarray(figure()[..., 0]).save(d / "Alice B" / "03_grey.png")           # grayscale (mode L)
    rgba = np.zeros((64, 64, 4), np.uint8)                                          # already cut out
    cv2.circle(rgba, (32, 32), 20, (40, 160, 90, 255), -1)
    Image.fromarray(rgba).save(d / "Alice_B" / "cutout.png")
    for i in range(5):
        Image.fromarray(figure(colour=(60, 60 + 30 * i, 200), shift=i)).save(d / "carol" / f"{i:02d}.png")
    Image.fromarray(figure(colour=(90, 200, 90))).save(d / "bob" / "ok.png")
    (d / "bob" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "bob" / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    rng = np.random.default_rng(0)   # noise to every edge: no background border to matte against
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "bob" / "noise.png")
    Image.fromarray(figure(colour=(220, 180, 40))).save(d / val_name() / "a.png")
    Image.fromarray(figure(colour=(40, 40, 40), bg=(250, 250, 240))).save(d / "solo.png")  # one-shot
    return d


def tar_hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}


def test_character_ids_are_safe_stable_and_distinct():
    a, b = character_id("Alice B"), character_id("Alice_B")
    assert a != b and a.startswith("Alice_B-") and b.startswith("Alice_B-")
    assert character_id("Alice B") == a                                       # stable
    assert character_id("初音ミク").startswith("character-")                   # nothing safe left
    assert character_id("Cafe\u0301") == character_id("Caf\u00e9")             # NFD == NFC
    long = character_id("x" * 300)
    assert len(long) <= 80 and split_of(long) in ("train", "val")


def test_fit_rgba_letterboxes_without_fringes():
    rgba = np.zeros((40, 80, 4), np.uint8)
    rgba[10:30, 20:60] = (255, 0, 0, 255)
    out = fit_rgba(rgba, 32)
    assert out.shape == (32, 32, 4) and out.dtype == np.uint8
    assert (out[:8, :, 3] == 0).all() and (out[24:, :, 3] == 0).all()     # transparent bars top and bottom
    edge = out[..., 3] > 0
    assert (out[edge][:, 0] == 255).all() and (out[edge][:, 1:3] == 0).all()   # straight colour, no dark rim
    assert fit_rgba(rgba, 32, crop=True)[..., 3].astype(bool).mean() > out[..., 3].astype(bool).mean()


def test_handdrawn_end_to_end(drawings, tmp_path):
    out = tmp_path / "shards"
    root, chars = discover(drawings)
    assert len(chars) == 6 and any(c.name == "solo.png" and c.files == ("solo.png",) for c in chars)
    args = ["handdrawn", drawings, "--out", out, "--size", 48, "--per-shard", 2, "--views-per-sample", 2,
            "--json", "-q"]
    r = run(*args)
    assert r.exit_code == 1, r.output              # some images failed: exit 1, shards still complete
    assert "3 image(s) failed" in r.stderr and "bob/broken.png" in r.stderr
    summary = json.loads(r.stdout)
    reasons = {f["key"]: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"bob/broken.png", "bob/bomb.png", "bob/noise.png"}
    assert "bomb" in reasons["bob/bomb.png"] and "matte" in reasons["bob/noise.png"]
    report = verify(out)
    assert report.ok, report.problems
    # Alice B 3 views -> 2 chunks; Alice_B 1; carol 5 -> 3 chunks; bob 1 usable; val 1; solo 1 = 9 samples
    assert summary["samples"] == 9 and summary["views"] == 12 and report.samples == 9
    assert summary["splits"]["val"]["samples"] == 1 and summary["splits"]["train"]["samples"] == 8
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("train-*.stats.json"))]
    assert sum(s["failed"] for s in stats) == 3 and all(s["source"] == "handdrawn" for s in stats)
    samples = {s.key: s for split in ("train", "val") for t in list_shards(out, split) for s in iter_samples(t)}
    assert len(samples) == 9
    for s in samples.values():
        assert s.source == "handdrawn" and not s.labelled and s.model_file is None
        assert all(v.udp is None and v.rgba.shape == (48, 48, 4) for v in s.views)
        assert split_of(s.character) == ("val" if s.extra["name"].startswith("val") else "train")
    alice = [s for s in samples.values() if s.extra["name"] == "Alice B"]
    assert sorted(len(s.views) for s in alice) == [1, 2]
    assert {v.extra["file"] for s in alice for v in s.views} == {"Alice B/01.png", "Alice B/02.jpg",
                                                                  "Alice B/03_grey.png"}
    kept = next(s for s in samples.values() if s.extra["name"] == "Alice_B").views[0]
    assert kept.extra["alpha"] == "input" and kept.extra["confidence"] == 1.0
    assert all(v.extra["alpha"] == "matte" for s in alice for v in s.views)
    assert all(0 < (v.rgba[..., 3] > 0).mean() < 0.6 for s in alice for v in s.views)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["handdrawn"]["views_per_sample"] == 2

    # Rerun: every shard skipped, same bytes; then a lost shard and a stale .tmp are redone identically.
    before = tar_hashes(out)
    r2 = run(*args)
    assert r2.exit_code == 1 and json.loads(r2.stdout)["skipped"] == summary["shards"]
    victim = sorted(out.glob("train-*.tar"))[1]
    victim.with_name(victim.name.replace(".tar", ".stats.json")).unlink()
    (out / "train-000000.tar.tmp").write_bytes(b"half a shard")
    r3 = run(*args[:-2], "-q", "--allow-failures")
    assert r3.exit_code == 0, r3.output
    assert tar_hashes(out) == before and verify(out).ok
    assert json.loads((out / "manifest.json").read_text()) == manifest

    # Other settings into the same directory: refused, nothing changed.
    r4 = run("handdrawn", drawings, "--out", out, "--size", 32, "-q")
    assert r4.exit_code == 1 and "another run" in r4.output
    assert "settings differ: size:" in r4.output, r4.output
    assert tar_hashes(out) == before

    # --retry-failed redoes exactly the shards whose stats record failed images, to the same bytes.
    failing = {p.name.replace(".stats.json", ".tar") for p in out.glob("*.stats.json")
               if json.loads(p.read_text())["failures"]}
    assert failing and failing != set(before)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    r5 = run(*args[:-2], "-q", "--allow-failures", "--retry-failed", "--json")
    assert r5.exit_code == 0, r5.output
    assert json.loads(r5.stdout)["written"] == len(failing)
    assert {n for n, t in mtimes.items() if (out / n).stat().st_mtime_ns != t} == failing
    assert tar_hashes(out) == before

    # --overwrite replaces the old run with the new settings.
    r6 = run("handdrawn", drawings, "--out", out, "--size", 32, "-q", "--overwrite", "--allow-failures")
    assert r6.exit_code == 0, r6.output
    assert verify(out).ok and json.loads((out / "manifest.json").read_text())["config"]["handdrawn"]["size"] == 32


def test_handdrawn_skip_low_and_workers(drawings, tmp_path):
    out = tmp_path / "s"
    r = run("handdrawn", drawings, "--out", out, "--size", 32, "--min-confidence", 1.0, "--skip-low",
            "--per-shard", 3, "--workers", 2, "--json", "-q")
    summary = json.loads(r.stdout)
    # Only the cut-out with its own alpha has confidence 1: every matted image is left out as a failure.
    assert summary["samples"] == 1 and summary["failed"] == summary["images"] - 1
    assert verify(out).ok


def test_backgrounds_dedup_failures_resume_and_shared_dir(drawings, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(cv2.resize(small, (80, 60), interpolation=cv2.INTER_CUBIC)).save(src / f"p{i}.png")
    dup = np.asarray(Image.open(src / "p1.png"))
    Image.fromarray(cv2.resize(dup, (120, 90))).save(src / "p1_big.jpg", quality=90)   # near-duplicate
    (src / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    listing = tmp_path / "list.txt"
    listing.write_text("# backgrounds\nphotos\n\n")
    out = tmp_path / "shards"
    args = ["backgrounds", listing, "--out", out, "--size", 32, "--per-shard", 2, "--seed", 3, "--json", "-q"]
    r = run(*args)
    assert r.exit_code == 1 and "zz_broken.jpg" in r.stderr
    s = json.loads(r.stdout)
    assert (s["backgrounds"], s["shards"], s["failed"], s["duplicates_dropped"]) == (3, 2, 1, 1)
    stats = json.loads((out / "bg-000001.stats.json").read_text())     # trailing failure: the last shard
    assert stats["failures"][0]["key"].endswith("zz_broken.jpg") and stats["samples"] == 1
    assert verify(out).ok
    got = [(k, img.shape) for t in list_shards(out, "bg") for k, img in iter_backgrounds(t)]
    assert got == [("p0", (32, 32, 3)), ("p1", (32, 32, 3)), ("p2", (32, 32, 3))]
    before = tar_hashes(out)
    (out / "bg-000000.stats.json").unlink()
    r2 = run(*args[:-2], "--allow-failures", "-q")
    assert r2.exit_code == 0 and tar_hashes(out) == before

    # The built-in set, and hand-drawn shards in the same directory: one manifest, verify passes.
    built = tmp_path / "builtin"
    r3 = run("backgrounds", "builtin", "--out", built, "--size", 16, "--per-shard", 10, "--json", "-q")
    assert r3.exit_code == 0, r3.output
    assert json.loads(r3.stdout)["backgrounds"] >= 20 and verify(built).ok
    r4 = run("handdrawn", drawings, "--out", out, "--size", 32, "--allow-failures", "-q")
    assert r4.exit_code == 0, r4.output
    assert verify(out).ok
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert set(config) == {"backgrounds", "handdrawn"}
    assert run("backgrounds", tmp_path / "nope", "--out", out).exit_code == 1


def test_background_shards_are_jobs_same_bytes_for_any_workers_and_one_resume_rule(tmp_path):
    from udpgen.backgrounds.sets import iter_backgrounds as builtin_set

    args = ["backgrounds", "builtin", "--size", 16, "--per-shard", 8, "--json", "-q"]
    one, two = tmp_path / "one", tmp_path / "two"
    r1, r2 = run(*args, "--out", one), run(*args, "--out", two, "--workers", 2)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert json.loads(r2.stdout)["written"] == json.loads(r2.stdout)["shards"] == 4      # 25 backgrounds
    assert tar_hashes(one) == tar_hashes(two)
    # the shards hold exactly what iter_backgrounds (the in-memory set conr falls back to) yields
    got = [(k, img) for t in list_shards(one, "bg") for k, img in iter_backgrounds(t)]
    want = list(builtin_set(None, 16, 0))
    assert [k for k, _ in got] == [k for k, _ in want]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want))
    before = tar_hashes(one)
    r3 = run(*args[:2], "--size", 24, *args[4:], "--out", one)                     # another size: refused
    assert r3.exit_code == 1 and "size: 16 then, 24 now" in r3.output and tar_hashes(one) == before
    r4 = run(*args[:2], "--size", 24, *args[4:], "--out", one, "--overwrite")
    assert r4.exit_code == 0 and json.loads(r4.stdout)["written"] == 4 and tar_hashes(one) != before


def test_handdrawn_markers_and_text_summary(tmp_path):
    d, marks = tmp_path / "in", tmp_path / "marks"
    (d / "m").mkdir(parents=True)
    (marks / "m").mkdir(parents=True)
    Image.fromarray(figure()).save(d / "m" / "a.png")
    Image.fromarray(figure(shift=3)).save(d / "m" / "b.jpg")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(marks / "m" / "a.png")        # wrong size
    scribble = np.zeros((64, 64, 3), np.uint8)
    scribble[40:44, 30:38] = (0, 255, 0)                                              # on the body
    Image.fromarray(scribble).save(marks / "m" / "b.png")                             # b.jpg -> b.png
    out = tmp_path / "out"
    r = run("handdrawn", d, "--out", out, "--markers", marks, "--size", 32, "-q")
    assert r.exit_code == 1 and "markers" in r.stderr and "m/a.png" in r.stderr
    assert "1 character(s), 1 view(s) in 1 sample(s)" in r.stdout
    s = json.loads(next(out.glob("*-000000.stats.json")).read_text())
    assert [f["key"] for f in s["failures"]] == ["m/a.png"] and verify(out).ok
