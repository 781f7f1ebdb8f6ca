"""conr.data: batch contract (DESIGN 3.7), view choice and the one-shot rule, random crops, skipping and
counting bad samples, determinism, clear errors for unusable shard folders. Toy shards: 64 px."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conr.config import load_config
from conr.data import (DataError, ItemMaker, SkipTotals, check_shards, choose_views, eval_loader, train_loader,
                       unwrap_worker_error)
from conr.toy import write_toy_shards
from udpgen.shards.reader import iter_keys

S, M, K = 64, 4, 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_toy_shards(tmp_path_factory.mktemp("toy"), characters=10, views=5, size=S, val_characters=2,
                            per_shard=2)


def cfg(*overrides):
    return load_config("tiny", ["data.num_workers=0", *overrides])


def take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def rewrite_shard(src: str, dst_dir: Path, edit) -> Path:
    """Copy a committed shard into dst_dir, passing every member through edit(name, data) -> data | None
    (None drops it), and commit it with a stats.json as udpgen does."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / Path(src).name
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for ti in tin:
            data = edit(ti.name, tin.extractfile(ti).read())
            if data is not None:
                ti.size = len(data)
                tout.addfile(ti, io.BytesIO(data))
    dst.with_name(dst.name.replace(".tar", ".stats.json")).write_text("{}")
    return dst


def test_batch_shapes_dtypes_ranges(shards):
    (batch,) = take(train_loader(shards, cfg(), batch=3, segment=0), 1)
    assert batch["refs"].shape == (3, M, 4, S, S) and batch["refs"].dtype == torch.float32
    assert batch["target_udp"].shape == (3, 4, S, S) and batch["target_rgba"].shape == (3, 4, S, S)
    assert batch["target_composites"].shape == (3, K, 3, S, S)
    assert batch["labelled"].shape == (3,) and batch["labelled"].dtype == torch.bool
    assert len(batch["key"]) == 3 and batch["worker"] == 0 and batch["skipped"] == {}
    for name in ("refs", "target_udp", "target_rgba", "target_composites"):
        assert 0 <= float(batch[name].min()) and float(batch[name].max()) <= 1, name
    for img in (batch["refs"].flatten(0, 1), batch["target_rgba"]):   # premultiplied: rgb <= alpha
        assert (img[:, :3] <= img[:, 3:] + 1e-6).all()
    occ = batch["target_udp"][:, 3]
    assert set(occ.unique().tolist()) <= {0.0, 1.0}                    # nearest resampling keeps it binary
    assert (batch["target_udp"][:, :3] * (1 - occ[:, None])).abs().max() == 0
    # the target UDP and the target image went through the same crop: their silhouettes agree
    alpha = batch["target_rgba"][:, 3] > 0.5
    iou = (alpha & (occ > 0)).sum() / (alpha | (occ > 0)).sum()
    assert iou > 0.9
    # composites: the target over a background; where the target is opaque they show the target
    opaque = (batch["target_rgba"][:, None, 3:] > 0.999).expand(-1, K, 3, -1, -1)
    comp, tgt = batch["target_composites"], batch["target_rgba"][:, None, :3].expand(-1, K, -1, -1, -1)
    assert (comp[opaque] - tgt[opaque]).abs().max() < 1e-5
    assert (comp[~opaque].std() > 0.05)


def test_choose_views_one_shot_rule_and_holdout():
    rng = np.random.default_rng(0)
    assert choose_views(rng, 1, 4) == (0, [0, 0, 0, 0])              # one view: it is its own reference
    for _ in range(20):
        target, refs = choose_views(rng, 3, 4)
        assert target not in refs and set(refs) == {0, 1, 2} - {target} and len(refs) == 4
        target, refs = choose_views(rng, 9, 4)
        assert len({target, *refs}) == 5                              # enough views: all distinct
        target, refs = choose_views(rng, 6, 4, holdout=1)
        assert 5 not in (target, *refs)                               # held-out view never trains
        target, refs = choose_views(rng, 6, 4, holdout=1, evaluate=True)
        assert target == 5 and max(refs) < 5
    assert choose_views(rng, 1, 4, holdout=1, evaluate=True) is None


def test_one_view_character_reuses_its_view(shards):
    (one,) = [k for k in _keys(shards) if _views(shards, k) == 1]
    batches = take(train_loader(shards, cfg("data.crop_min=1.0"), batch=4, segment=0), 6)
    hits = [(b, i) for b in batches for i, k in enumerate(b["key"]) if k == one]
    assert hits, "the one-view character never came up"
    for b, i in hits:
        for r in range(M):  # no crop: every reference is the target image itself
            assert torch.equal(b["refs"][i, r], b["target_rgba"][i])


def test_unlabelled_targets_have_no_udp(shards):
    batches = take(train_loader(shards, cfg(), batch=4, segment=0), 6)
    labels = torch.cat([b["labelled"] for b in batches])
    assert labels.any() and not labels.all()
    for b in batches:
        assert b["target_udp"][~b["labelled"]].abs().sum() == 0


def test_random_crops_are_independent_per_reference(shards):
    (batch,) = take(train_loader(shards, cfg("data.crop_min=0.5"), batch=4, segment=0), 1)
    (flat,) = take(train_loader(shards, cfg("data.crop_min=1.0"), batch=4, segment=0), 1)
    # crops change the apparent size of the character: coverage varies more across references with crops
    cover = batch["refs"][:, :, 3].mean((2, 3))
    assert float(cover.std()) > 0 and not torch.equal(batch["refs"], flat["refs"])


@pytest.mark.parametrize("where", ["loader", "inference"])
@pytest.mark.parametrize("crop", [256, 100, 80, 48])
def test_udp_and_rgba_resize_stay_aligned_sub_pixel(crop, where):
    """A vertical bar one destination pixel wide (so nearest sampling cannot miss it), at every sub-pixel
    offset: its column centroid after the crop + resize agrees between the UDP (nearest) and RGBA (area /
    linear) paths to within half a destination pixel, in the training loader and in conr.infer's crop alike
    (they must resample the same way). cv2's INTER_NEAREST (floor(i c / S)) missed by 0.75 px at 256 -> 64
    and 0.56 px at 100 -> 64."""
    from conr.data import _crop_resize
    from conr.infer import Box
    from conr.infer import crop as infer_crop

    def resize(img, **kw):
        if where == "loader":
            return _crop_resize(img, (0, 0, crop), S, **kw)
        return infer_crop(img, Box(0, 0, crop, crop, crop), S, nearest=kw.get("nearest", False)).astype(np.float32)

    scale = crop / S
    width = int(np.ceil(scale))
    cols = np.arange(S)
    for offset in range(width + 1):
        x0 = crop // 2 + offset
        rgba = np.zeros((crop, crop, 4), np.uint8)
        rgba[:, x0:x0 + width] = 255
        udp = np.zeros((crop, crop, 4), np.float32)
        udp[:, x0:x0 + width] = 1
        alpha = resize(rgba, premultiply=True)[..., 3].sum(0)
        occ = resize(udp, nearest=True)[..., 3].sum(0)
        assert occ.sum() > 0 and set(np.unique(occ)) <= {0.0, S}           # nearest: no blended values
        gap = abs((alpha * cols).sum() / alpha.sum() - (occ * cols).sum() / occ.sum())
        assert gap <= 0.5 + 1e-4, (crop, offset, gap)


def test_stream_is_a_function_of_seed_and_segment(shards):
    a = take(train_loader(shards, cfg(), batch=2, segment=0), 3)
    b = take(train_loader(shards, cfg(), batch=2, segment=0), 3)
    c = take(train_loader(shards, cfg(), batch=2, segment=5), 3)
    for x, y in zip(a, b):
        assert x["key"] == y["key"] and torch.equal(x["refs"], y["refs"])
        assert torch.equal(x["target_composites"], y["target_composites"])
    assert [x["key"] for x in a] != [z["key"] for z in c] or not torch.equal(a[0]["refs"], c[0]["refs"])


def test_eval_pass_is_deterministic_and_finite(shards):
    passes = [list(eval_loader(shards, cfg(), "val", batch=4)) for _ in range(2)]
    keys = [k for b in passes[0] for k in b["key"]]
    assert len(keys) == 2 and keys == [k for b in passes[1] for k in b["key"]]
    assert torch.equal(passes[0][0]["target_composites"], passes[1][0]["target_composites"])
    assert passes[0][0]["ref_udp"].shape == (2, M, 4, S, S)
    held = list(eval_loader(shards, cfg("data.holdout_views=1"), "holdout", batch=8))
    assert sum(len(b["key"]) for b in held) == 7                     # 8 train characters, one has 1 view


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """8 val characters of 4 chunks each, 3 samples a shard, in character order (as udpgen writes them)."""
    shards = write_toy_shards(tmp_path_factory.mktemp("chunked"), characters=10, views=3, size=S,
                              val_characters=8, per_shard=3, chunks=4, backgrounds=2)
    characters = sorted({k.rsplit("-", 1)[0] for p in shards.val for k, _ in iter_keys(p)})
    return shards, characters, 4 * len(characters)


def val_keys(shards, cap, workers, seed=0):
    c = cfg(f"data.val_samples={cap}", f"data.num_workers={workers}", f"train.seed={seed}")
    keys = [k for b in eval_loader(shards, c, "val", batch=4) for k in b["key"]]
    return sorted(keys[:cap])                  # conr.train.evaluate takes the first val_samples items


def test_validation_items_are_stratified_by_character_and_independent_of_workers(chunked):
    shards, characters, total = chunked
    assert len(shards.val) > 4 and len(characters) >= 6
    cap = len(characters) + 2
    keys = val_keys(shards, cap, 0)
    assert len(keys) == cap and len(set(keys)) == cap
    assert keys == val_keys(shards, cap, 2)                            # any number of workers: the same items
    assert val_keys(shards, 5, 0) == val_keys(shards, 5, 2)
    assert {k.rsplit("-", 1)[0] for k in keys} == set(characters)      # every character, not the first shards'
    assert val_keys(shards, cap, 0, seed=1) != keys                    # a seeded sample
    everything = val_keys(shards, total + 5, 2)                        # uncapped: the whole split
    assert len(everything) == total == len(set(everything))


def test_no_usable_validation_item_is_one_clear_error(shards):
    from conr.data import eval_keys

    assert len(eval_keys(shards, cfg("data.holdout_views=4"), "holdout")) == 7     # 5 views > 4, not the one-view
    with pytest.raises(DataError, match="holdout data holds no usable sample .* more than 5 views"):
        eval_keys(shards, cfg("data.holdout_views=5"), "holdout")


def test_validation_items_are_cropped_like_training_and_the_same_every_time(chunked):
    shards = chunked[0]

    def items(crop, workers):
        c = cfg(f"data.crop_min={crop}", f"data.num_workers={workers}", "data.val_samples=8")
        got = {k: (b["refs"][i], b["target_rgba"][i], b["target_udp"][i])
               for b in eval_loader(shards, c, "val", batch=4) for i, k in enumerate(b["key"])}
        return dict(sorted(got.items()))

    whole, cropped, again = items(1.0, 0), items(0.5, 0), items(0.5, 2)
    assert list(whole) == list(cropped) == list(again)
    for key in whole:
        assert all(torch.equal(a, b) for a, b in zip(cropped[key], again[key]))     # seeded per item
    # cropping to [0.5, 1] of the side magnifies the character: coverage grows, as in training batches
    cover = {name: float(torch.stack([v[1][3].mean() for v in d.values()]).mean())
             for name, d in (("whole", whole), ("cropped", cropped))}
    assert cover["cropped"] > 1.1 * cover["whole"], cover
    # the target image and its UDP share one crop: the UDP's occupancy stays on the image's silhouette
    for refs, rgba, udp in cropped.values():
        if udp[3].any():
            assert float(((udp[3] > 0) != (rgba[3] > 0.5)).float().mean()) < 0.05


def test_workers_batch_and_count_together(shards, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in shards.train + shards.bg:
        for f in (p, p.replace(".tar", ".stats.json")):
            shutil.copy(f, bad / Path(f).name)
    rewrite_shard(shards.train[0], bad, lambda n, d: b"not a png" if n.endswith(".rgba.png") else d)
    s = check_shards(bad)
    loader = train_loader(s, cfg("data.num_workers=2"), batch=2, segment=0)
    totals = SkipTotals()
    workers = set()
    for b in take(loader, 8):
        totals.update(b)
        workers.add(b["worker"])
        assert b["refs"].shape == (2, M, 4, S, S)
    assert workers == {0, 1} and totals.total().get("decode_error", 0) >= 1


def test_corrupt_member_missing_field_and_broken_tar_are_skipped_and_counted(shards, tmp_path):
    first = shards.train[0]
    with tarfile.open(first) as t:
        names = t.getnames()
    key = names[0].split(".", 1)[0]
    d = tmp_path / "mixed"
    # a sample with corrupt PNGs (only the views a sample uses are decoded: all are corrupt here), a
    # labelled sample missing a UDP, and a tar with a garbage header half-way
    rewrite_shard(first, d, lambda n, data: data[:40] + b"\0" * 50 if n.startswith(key) and "rgba" in n else data)
    second = shards.train[1]
    with tarfile.open(second) as t:
        key2 = t.getnames()[0].split(".", 1)[0]
    rewrite_shard(second, d, lambda n, data: None if n == f"{key2}.000.udp.png" else data)
    raw = bytearray(Path(shards.train[2]).read_bytes())
    with tarfile.open(shards.train[2]) as t:
        members = t.getmembers()
    at = members[len(members) // 2].offset                          # a header block half-way through
    raw[at:at + 100] = b"\xff" * 100
    broken = d / Path(shards.train[2]).name
    broken.write_bytes(bytes(raw))
    broken.with_name(broken.name.replace(".tar", ".stats.json")).write_text("{}")
    s = check_shards(d)
    totals = SkipTotals()
    with pytest.warns(UserWarning, match="conr.data: skipping"):
        for b in take(train_loader(s, cfg(), batch=2, segment=0), 25):
            totals.update(b)
            assert key not in b["key"] and key2 not in b["key"]
    counts = totals.total()
    assert counts.get("decode_error", 0) >= 1 and counts.get("missing_field", 0) >= 1
    assert counts.get("read_error", 0) >= 1


def test_unusable_folders_fail_with_one_clear_error(tmp_path, shards):
    with pytest.raises(DataError, match="no such shard directory"):
        check_shards(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no committed train-"):
        check_shards(tmp_path / "empty")
    other = tmp_path / "other"
    rewrite_shard(shards.train[0], other, lambda n, d: d)
    (other / "train-000000.tar").unlink()
    with tarfile.open(other / "train-000000.tar", "w") as t:  # an image-classification shard
        for name, data in (("a0.jpg", b"\xff\xd8\xff"), ("a0.cls", b"3"), ("a1.jpg", b"\xff\xd8\xff")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    with pytest.raises(DataError, match="not of the udpgen shard schema"):
        check_shards(other)
    # a stream of nothing usable (past the checked first shard) stops instead of spinning
    stream = train_loader(_unchecked(other), cfg("data.max_bad_streak=5"), batch=2, segment=0)
    with pytest.raises(DataError, match="5 unusable samples in a row"), pytest.warns(UserWarning):
        take(stream, 1)


def test_worker_errors_come_back_as_one_line():
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback:\n  File x\n"
                        "conr.data.DataError: 5 unusable samples in a row")
    assert str(unwrap_worker_error(wrapped)) == "5 unusable samples in a row"


def test_item_maker_rejects_bad_metadata():
    from conr.data import _Skip

    maker = ItemMaker(cfg())
    with pytest.raises(_Skip, match="json"):
        maker({"__key__": "x-0000", "000.rgba.png": b""}, np.random.default_rng(0), [])
    with pytest.raises(_Skip) as e:
        maker({"__key__": "x-0000", "json": b"[1, 2]"}, np.random.default_rng(0), [])
    assert e.value.reason == "bad_metadata"


# helpers over the toy shards

def _members(shards):
    out = {}
    for p in shards.train:
        with tarfile.open(p) as t:
            for ti in t:
                if ti.name.endswith(".json"):
                    out[ti.name[:-5]] = json.loads(t.extractfile(ti).read())
    return out


def _keys(shards):
    return list(_members(shards))


def _views(shards, key):
    return len(_members(shards)[key]["views"])


def _unchecked(d):
    from conr.data import ShardSet
    from udpgen.shards import list_shards

    return ShardSet(list_shards(d, "train"), [], [])


def test_backgrounds_setting_is_checked_and_a_folder_of_images_is_used(shards, tmp_path):
    import cv2

    from conr.errors import ConfigError

    data_dir = Path(shards.train[0]).parent
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigError, match=r"data\.backgrounds=.*no-such-folder.*no such folder"):
        check_shards(data_dir, backgrounds=str(missing))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"data\.backgrounds=.*junk.*no readable image"):
        check_shards(data_dir, backgrounds=str(junk))
    red = tmp_path / "red"
    red.mkdir()
    img = np.zeros((80, 96, 3), np.uint8)
    img[..., 2] = 255                                              # BGR on disk: pure red
    cv2.imwrite(str(red / "red.png"), img)
    got = check_shards(data_dir, backgrounds=str(red))
    assert got.bg == [str(red / "red.png")]
    batch = take(train_loader(got, cfg(), batch=2, segment=0), 1)[0]
    comps, alpha = batch["target_composites"], batch["target_rgba"][:, 3]
    empty = (alpha < 1e-3)[:, None].expand(-1, comps.shape[1], -1, -1)  # (B, k, S, S): no figure there
    pixels = comps.permute(0, 1, 3, 4, 2)[empty]                  # (N, 3)
    # composite() jitters colour, so the red image stays red (R well above G = B), not exactly (1, 0, 0);
    # the built-in photos this setting used to fall back to are not
    assert len(pixels) > 0 and bool((pixels[:, 0] > pixels[:, 1] + 0.3).all())
    assert torch.allclose(pixels[:, 1], pixels[:, 2], atol=2 / 255)


def test_a_truncated_or_missing_shard_is_reported_and_the_stream_goes_on(shards, tmp_path):
    from conr.data import tar_samples

    good = shards.train[0]
    data = Path(good).read_bytes()
    cut = tmp_path / "train-000098.tar"
    cut.write_bytes(data[: len(data) * 2 // 3 // 512 * 512])   # cut on a block boundary: tarfile ends quietly
    errors = []
    out = list(tar_samples([str(cut), str(tmp_path / "missing.tar"), good], errors.append))
    assert len(errors) == 2 and all(isinstance(e, DataError) for e in errors)
    assert str(cut) in str(errors[0]) and "truncated" in str(errors[0])
    assert "missing.tar" in str(errors[1])
    whole = [s for s in out if s["__url__"] == good]
    with tarfile.open(good) as t:
        keys = {m.name.split(".", 1)[0] for m in t.getmembers()}
    assert {s["__key__"] for s in whole} == keys and all("json" in s for s in whole)
