"""conr.metrics: one metrics function for training validation and `conr evaluate`."""
from __future__ import annotations

import torch

from conr.config import load_config
from conr.data import check_shards, eval_loader
from conr.evaluate import evaluate_views
from conr.metrics import Metrics, _photo, character_of
from conr.nn.conr import CoNR
from conr.toy import write_toy_shards
from conr.train import evaluate


def test_photo_is_on_premultiplied_rgb_only():
    target = torch.rand(2, 4, 8, 8)
    pred = target.clone()
    pred[:, 3] = 1 - pred[:, 3]                     # alpha differs, colour does not: not counted twice
    assert torch.allclose(_photo(pred, target), torch.zeros(2))
    pred[1, :3] += 0.5
    assert _photo(pred, target)[1] > 0.4 and _photo(pred, target)[0] == 0


def test_validation_and_evaluate_give_the_same_numbers_and_per_character_rows(tmp_path):
    torch.manual_seed(0)
    write_toy_shards(tmp_path, characters=6, views=5, size=64, val_characters=2, per_shard=2, backgrounds=2)
    cfg = load_config("tiny", ["data.num_workers=0", "model.image_size=64"])
    model = CoNR(cfg.model).eval()
    shards = check_shards(tmp_path, need_train=False)
    val, first = evaluate(model, eval_loader(shards, cfg, "val", batch=4), 8, torch.device("cpu"))
    ev = evaluate_views(model, cfg, str(tmp_path), max_views=cfg.model.views, max_samples=8, source="val",
                        per_character=True)
    row = ev["rows"][cfg.model.views - 1]
    assert val["samples"] == ev["samples"] == 2                         # the two val characters, one item each
    for key in ("photo", "photo_gt", "nearest_ref"):
        assert abs(val[key] - row[key]) < 1e-6, key
    assert abs(val["udp"] - ev["udp"]) < 1e-6 and abs(val["mask"] - ev["mask"]) < 1e-6
    # both crop like training (tiny: data.crop_min 0.8); --no-crop measures whole images instead
    whole = evaluate_views(model, cfg, str(tmp_path), max_views=cfg.model.views, max_samples=8, source="val",
                           crops=False)
    assert cfg.data.crop_min < 1 and abs(whole["rows"][cfg.model.views - 1]["photo"] - row["photo"]) > 1e-4
    assert first is not None and first["pred"].shape == first["target_rgba"].shape
    chars = ev["per_character"]
    assert len(chars) == 2 and all(len(rows) == cfg.model.views for rows in chars.values())
    # the overall mean is the mean of the two characters' items
    n = cfg.model.views
    assert abs(sum(rows[n - 1]["photo"] for rows in chars.values()) / 2 - row["photo"]) < 1e-6


def test_metrics_accumulate_per_character():
    m = Metrics(per_character=True)
    m.add(1, "photo", torch.tensor([0.1, 0.3, 0.5]), ["a-0000", "a-0001", "b-x-0000"])
    assert abs(m.mean(1, "photo") - 0.3) < 1e-6
    assert abs(m.mean(1, "photo", "a") - 0.2) < 1e-6 and abs(m.mean(1, "photo", "b-x") - 0.5) < 1e-6
    assert m.characters() == ["a", "b-x"] and character_of("b-x-0007") == "b-x"
    assert m.mean(2, "photo") is None
