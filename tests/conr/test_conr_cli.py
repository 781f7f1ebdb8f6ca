"""ModelConfig validation, config files, FLOP counts and `conr info`."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
from click.testing import CliRunner

from conr.cli import main
from conr.config import PRESETS, DataConfig, LossConfig, ModelConfig, TrainConfig, load_config
from conr.errors import ConfigError
from conr.nn import CoNR
from conr.stats import flops_per_sample, parameter_counts


def test_presets_build_and_are_the_papers():
    paper = PRESETS["paper"]
    assert (paper.image_size, paper.encoder, paper.views, paper.composites) == (256, "resnet50", 4, 4)
    assert paper.cinn and paper.warping and paper.message_passing == 3
    assert not PRESETS["unet-baseline"].cinn and not PRESETS["unet-baseline"].warping
    assert PRESETS["mp1"].message_passing == 1


@pytest.mark.parametrize("field,value,expected", [
    ("message_passing", 4, "message_passing=4: expected an integer in [1, 3]"),
    ("encoder", "vit", "encoder='vit': expected one of 'resnet18', 'resnet34', 'resnet50', 'plain'"),
    ("image_size", 100, "image_size=100: expected a positive multiple of 32"),
    ("warping", "maybe", "warping='maybe': expected true or false"),
    ("renderer_widths", (8, 8, 8), "renderer_widths=(8, 8, 8): expected 4 integers >= 1"),
    ("renderer_widths", (9, 8, 8, 8), "expected even D1..D3 widths"),
    ("views", 0, "views=0: expected an integer >= 1"),
    ("colour", 1, "colour=1: unknown model field"),
])
def test_bad_config_values_name_the_field(field, value, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)) as e:
        PRESETS["tiny"].replace(**{field: value})
    assert e.value.field == field and isinstance(e.value, ValueError)


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, DataConfig, LossConfig], ids=lambda c: c.__name__)
def test_every_config_field_is_declared_with_a_setting_rule(cls):
    for f in dataclasses.fields(cls):
        assert "rule" in f.metadata, f"{cls.__name__}.{f.name} has no udpgen.settings.setting() rule"


def test_config_files(tmp_path):
    toml = tmp_path / "mp1.toml"
    toml.write_text('preset = "tiny"\n[model]\nmessage_passing = 1\nrenderer_widths = [16, 8, 8, 8]\n')
    cfg = load_config(toml).model
    assert cfg == PRESETS["tiny"].replace(message_passing=1, renderer_widths=(16, 8, 8, 8))
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"model": {"warping": False}}))
    assert load_config(js).model == ModelConfig(warping=False)
    for text, match in [('[model]\nwarp = false\n', "warp=False: unknown model field"),
                        ('[trian]\nsteps = 3\n', "trian=.*unknown top-level key"),
                        ('preset = "huge"\n', "preset='huge'"),
                        ('[model\n', "cannot be parsed")]:
        toml.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(toml)
    with pytest.raises(ConfigError, match="not a preset .* nor an existing file"):
        load_config(tmp_path / "absent.toml")


def test_parameter_counts_and_flops():
    cfg = PRESETS["tiny"]
    counts = parameter_counts(CoNR(cfg))
    assert counts["total"] == counts["encoder"] + counts["detector_decoder"] + counts["renderer"]
    assert counts["renderer.decoder.blocks"] + counts["renderer.decoder.gather"] == counts["renderer"]
    flops = flops_per_sample(cfg)
    assert flops["forward"] == sum(flops["forward_by_module"].values())
    assert 1.5 < flops["backward"] / flops["forward"] < 2.5  # input grads + weight grads
    # the detector runs k times, the renderer's encoder m times: more composites cost more
    assert flops_per_sample(cfg.replace(composites=5))["forward"] > flops["forward"]


def test_info_json_is_valid():
    result = CliRunner().invoke(main, ["info", "--config", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"] == PRESETS["tiny"].to_dict()
    assert report["parameters"]["total"] == parameter_counts(CoNR(PRESETS["tiny"]))["total"]
    assert report["flops_per_sample"]["total"] > 0
    assert report["sample"] == {"image_size": 64, "views": 4, "composites": 4}
    assert report["official"]["parameters"] == 180_000_000
    assert report["official"]["ratio"]["parameters"] == pytest.approx(report["parameters"]["total"] / 180e6)


def test_paper_wide_has_the_official_cinns_capacity():
    """paper-wide: the paper preset with the renderer at ~96M parameters (the official CINN's); paper keeps
    its narrow renderer and every other field."""
    from conr.config import run_preset

    wide, paper = run_preset("paper-wide").model, PRESETS["paper"]
    assert wide.replace(renderer_widths=paper.renderer_widths) == paper
    result = CliRunner().invoke(main, ["info", "--config", "paper-wide", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert 0.95 < report["parameters"]["renderer"] / 96e6 < 1.1
    assert report["flops_per_sample"]["total"] > 0 and report["official"]["flops"] is None
    text = CliRunner().invoke(main, ["info", "--config", "paper-wide"]).output
    assert "beside the official inference model" in text and "180,000,000" in text


def test_info_text_and_help():
    result = CliRunner().invoke(main, ["info", "--config", "tiny"])
    assert result.exit_code == 0 and "FLOPs per training sample" in result.output
    assert "renderer.decoder.blocks" in result.output
    help_text = CliRunner().invoke(main, ["info", "--help"]).output
    assert "Example" in help_text and "conr info --config" in help_text


def test_info_bad_config_is_one_line_and_nonzero(tmp_path):
    result = CliRunner().invoke(main, ["info", "--config", "nonsense"])
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "config='nonsense'" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nmessage_passing = 9\n")
    result = CliRunner().invoke(main, ["info", "--config", str(bad)])
    assert result.exit_code != 0 and result.output.strip() == "Error: message_passing=9: expected an integer in [1, 3]"


def test_every_table_row_has_a_preset_and_info_lists_them():
    from conr.config import PRESET_TABLE, run_preset

    rows = " ".join(p.rows for p in PRESET_TABLE.values())
    for row in ("Table 1 m = 1", "Table 1 m = 4", "Table 2 Original U-Net", "Table 2 U-Net+R34", "Table 2 U-Net+R50",
                "Table 3 U-Net ", "Table 3 U-Net+Warping ", "Table 3 U-Net+CINN+R50", "Table 3 U-Net+Warping+CINN ",
                "Table 3 U-Net+Warping+CINN+R50", "w/o L_mask", "w/o L_photo", "w/o L_vgg", "Table 4 Baseline",
                "messaging 1 time", "messaging 3 times"):
        assert row in rows, row
    assert run_preset("m1").model.views == 1 and run_preset("resnet34").model.encoder == "resnet34"
    assert run_preset("no-mask").loss.mask == 0 and run_preset("no-mask").model == PRESETS["paper"]
    assert run_preset("no-photo").loss.photo == 0 and run_preset("no-vgg").loss.vgg == 0
    assert all(getattr(run_preset("paper").loss, k) == 1 for k in ("udp", "mask", "cons", "photo", "vgg"))
    result = CliRunner().invoke(main, ["info", "--presets"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in PRESET_TABLE:
        assert any(line.startswith(name + " ") for line in lines), name
    assert any(line.startswith("no-vgg ") and "loss.vgg=0.0" in line and "w/o L_vgg" in line for line in lines)
    listed = json.loads(CliRunner().invoke(main, ["info", "--presets", "--json"]).output)
    assert [r["name"] for r in listed] == list(PRESET_TABLE)


@pytest.mark.parametrize("overrides,needle", [
    (["loss.lpips=1"], "loss.lpips=1: unknown loss field"),
    (["loss.udp=-1"], "loss.udp=-1.0: expected a number >= 0"),
    (["loss.vgg=much"], "loss.vgg='much': expected a number"),
    (["train.vgg_alpha=0.5"], "train.vgg_alpha=0.5: renamed: set loss.vgg"),
    (["loss.udp=0", "loss.mask=0", "loss.cons=0", "loss.photo=0", "loss.vgg=0"], "every loss weight is 0"),
])
def test_bad_loss_weights_fail_at_start_naming_key_and_value(overrides, needle):
    from conr.config import load_config

    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_config("paper", overrides)


def test_unknown_preset_is_one_line_naming_it():
    result = CliRunner().invoke(main, ["info", "--config", "table5"])
    assert result.exit_code == 1 and "config='table5': not a preset" in result.output
    assert result.output.strip().count("\n") == 0


def test_set_string_fields_take_the_text_as_written():
    from conr.config import RunConfig, load_config

    # YAML reads a bare off/on/no as a bool: a string field takes the text itself, quoted or not
    cfg = load_config("tiny", ["train.amp=off", "train.render_udp='detected'", "train.vgg_weights=no"])
    assert (cfg.train.amp, cfg.train.render_udp, cfg.train.vgg_weights) == ("off", "detected", "no")
    assert load_config("tiny", ["train.compile=off"]).train.compile is False  # a bool field keeps YAML's reading
    # a config stored by an older version (train.vgg_alpha, no loss table) reads as it was trained
    old = cfg.to_dict()
    old.pop("loss")
    old["train"]["vgg_alpha"] = 0.25
    assert RunConfig.from_dict(old).loss.vgg == 0.25
