"""udpgen.settings: one way to declare and check settings, used by every settings class of udpgen."""
from __future__ import annotations

import dataclasses

import pytest

from udpgen.backgrounds.composite import CompositeSettings
from udpgen.drawn.job import HanddrawnSettings
from udpgen.drawn.matting import MattingSettings
from udpgen.errors import SettingsError, UdpgenError
from udpgen.settings import check_settings, setting
from udpgen.render.camera import CameraSampler
from udpgen.render.renderer import RenderSettings
from udpgen.rig.sampler import SamplerSettings
from udpgen.synth.doctor import DoctorSettings
from udpgen.synth.job import SynthConfig

CLASSES = [CompositeSettings, HanddrawnSettings, MattingSettings, CameraSampler, RenderSettings, SamplerSettings,
           SynthConfig, DoctorSettings]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_carries_a_rule_and_defaults_pass(cls):
    for f in dataclasses.fields(cls):
        assert "rule" in f.metadata, f"{cls.__name__}.{f.name} has no setting() rule"
    cls()


@pytest.mark.parametrize("cls, key, value, expected", [
    (SynthConfig, "size", 0, "an integer in [1, 4096]"),
    (SynthConfig, "poses", True, "an integer >= 0"),
    (SamplerSettings, "legs", "up", "one of 'ik', 'fk'"),
    (SamplerSettings, "tries", 2.5, "an integer in [1, 64]"),
    (RenderSettings, "light_direction", (0, 0, 0), "3 numbers, not all zero"),
    (RenderSettings, "default_toon", 10, "an integer in [0, 9], or None"),
    (CameraSampler, "fov", (30.0, 200.0), "a (low, high) pair with low <= high in (0, 170)"),
    (CameraSampler, "azimuth", (10.0, -10.0), "a (low, high) pair with low <= high"),
    (CompositeSettings, "bg_brightness", 1.0, "a number in [0, 1)"),
    (MattingSettings, "gap_px", float("nan"), "a number >= 0"),
    (MattingSettings, "texture_fallback", 1, "true or false"),
    (HanddrawnSettings, "min_confidence", 1.5, "a number in [0, 1]"),
])
def test_a_bad_value_names_class_key_value_and_expectation(cls, key, value, expected):
    with pytest.raises(SettingsError) as e:
        cls(**{key: value})
    assert str(e.value) == f"{cls.__name__}.{key} = {value!r}: expected {expected}"
    assert isinstance(e.value, UdpgenError) and isinstance(e.value, ValueError)


def test_rules_that_tie_fields_together_still_hold():
    with pytest.raises(SettingsError, match="crouch_prob \\+ sit_prob \\+ lift_foot_prob = 1.2"):
        SamplerSettings(crouch_prob=0.5, sit_prob=0.5, lift_foot_prob=0.2)


@dataclasses.dataclass(frozen=True)
class _FromFile:
    lr: float = setting(1e-4, low=0)
    betas: tuple = setting((0.9, 0.999), kind="vector", size=2, low=0, high=1, open_high=True)
    widths: tuple = setting((8, 8), kind="ints", size=2, low=1)


class _KeyError(ValueError):
    def __init__(self, key, value, reason):
        super().__init__(f"{key}={value!r}: {reason}")


def test_another_package_keeps_its_error_type_and_key_names_and_file_values_are_coerced():
    obj = _FromFile(lr="1e-3", betas=[0.5, 0.25], widths=[16, 4])   # as PyYAML reads them
    check_settings(obj, section="train", error=_KeyError, coerce=True)
    assert (obj.lr, obj.betas, obj.widths) == (1e-3, (0.5, 0.25), (16, 4)) and isinstance(obj.lr, float)
    for key, value, message in [("lr", "fast", "train.lr='fast': expected a number >= 0"),
                                ("betas", (0.5, 1.0), "train.betas=(0.5, 1.0): expected 2 numbers in [0, 1)"),
                                ("widths", [4, 0], "train.widths=(4, 0): expected 2 integers >= 1")]:
        with pytest.raises(_KeyError) as e:
            check_settings(_FromFile(**{key: value}), section="train", error=_KeyError, coerce=True)
        assert str(e.value) == message
    with pytest.raises(SettingsError, match=r"^widths = \(4, 0\)"):          # '' names the bare field
        check_settings(_FromFile(widths=(4, 0)), section="")
