"""udpgen.settings: one way to declare and check settings, used by every settings class of udpgen."""
from __future__ import annotations

import dataclasses

import pytest

from udpgen.backgrounds.composite import CompositeSettings
from udpgen.drawn.job import HanddrawnSettings
from udpgen.drawn.matting import MattingSettings
from udpgen.errors import SettingsError, UdpgenError
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
