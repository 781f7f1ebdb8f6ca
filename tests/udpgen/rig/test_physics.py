"""Physics input checks: real models keep every body and joint; bad bodies and joints are dropped, warned once."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from udpgen.mmd import load
from udpgen.mmd.model import Joint, RigidBody
from paths import GENE, SAMPLE
from mmd_fixtures import make_model
from udpgen.rig.physics import usable_physics

F = np.float32


@pytest.mark.parametrize("name", ["Gene.pmd", "Gene_light.pmx"])
def test_gene_keeps_every_body_and_joint_without_a_warning(name):
    path = GENE / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    model = load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        usable = usable_physics(model)
    assert len(model.rigid_bodies) > 50 and len(model.joints) > 50
    assert usable.bodies.tolist() == list(range(len(model.rigid_bodies)))
    assert usable.joints.tolist() == list(range(len(model.joints)))
    summary = usable.summary(model)
    modes = [sum(b.mode == k for b in model.rigid_bodies) for k in range(3)]
    assert summary["bodies_by_mode"] == modes and sum(modes) == summary["kept_bodies"] == len(model.rigid_bodies)
    assert summary["dropped"] == []


def test_sample_has_no_physics():
    model = load(next(SAMPLE.glob("*.pmx")))
    usable = usable_physics(model)
    assert len(usable.bodies) == len(model.rigid_bodies) and len(usable.joints) == len(model.joints)


def _good_body(**kw) -> RigidBody:
    return RigidBody(**{"name": "ok", "bone": 1, "shape": 1, "size": np.ones(3, F), "mass": 1.0, "mode": 1, **kw})


def test_bad_bodies_and_joints_are_dropped_with_one_warning_the_rest_kept():
    base = make_model()
    nan3 = np.array([0, np.nan, 0], F)
    bodies = (_good_body(name="good0", mode=0),                      # 0 kept
              _good_body(name="missing bone", bone=999),              # 1
              _good_body(name="zero box", size=np.array([1, 0, 1], F)),   # 2
              _good_body(name="negative sphere", shape=0, size=-np.ones(3, F)),  # 3
              _good_body(name="sphere ignores y z", shape=0, size=np.array([1, 0, 0], F)),  # 4 kept
              _good_body(name="zero mass", mass=0.0),                 # 5
              _good_body(name="zero mass follows bone", mass=0.0, mode=0),  # 6 kept
              _good_body(name="nan position", position=nan3),         # 7
              _good_body(name="nan damping", linear_damping=float("nan")),  # 8
              _good_body(name="good9", bone=-1, shape=2, size=np.array([0.5, 2, 0], F)))  # 9 kept
    joints = (Joint(name="j ok", rigid_a=0, rigid_b=4),               # 0 kept
              Joint(name="j missing", rigid_a=0, rigid_b=77),         # 1
              Joint(name="j to dropped", rigid_a=2, rigid_b=4),       # 2
              Joint(name="j self", rigid_a=9, rigid_b=9),             # 3
              Joint(name="j nan", rigid_a=6, rigid_b=9, spring_angular=nan3),  # 4
              Joint(name="j ok2", rigid_a=6, rigid_b=9))              # 5 kept
    model = dataclasses.replace(base, path="/models/bad.pmx", rigid_bodies=bodies, joints=joints)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = usable_physics(model)
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "/models/bad.pmx" in msg and "dropped 6 of 10 rigid bodies" in msg and "4 of 6 joints" in msg
    assert usable.bodies.tolist() == [0, 4, 6, 9]
    assert usable.joints.tolist() == [0, 5]
    assert "missing bone" in usable.dropped_bodies[0] and "999" in usable.dropped_bodies[0]
    assert "j missing" in usable.dropped_joints[0]
    summary = usable.summary(model)
    assert summary["kept_bodies"] == 4 and summary["kept_joints"] == 2 and len(summary["dropped"]) == 10
    assert summary["bodies_by_mode"] == [2, 2, 0]
