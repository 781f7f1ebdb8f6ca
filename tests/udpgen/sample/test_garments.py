"""udpgen.sample.garments: sleeves, trousers and coats of the family, drawn, built and skinned so that they
stay on the limb they cover when it bends."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from udpgen.mmd.pmx import read_pmx
from udpgen.mmd.pmx_writer import pmx_bytes
from udpgen.rig import Rig
from udpgen.rig import quat as Q
from udpgen.sample import family, garments

SPECS = [family.draw_spec(0, i) for i in range(200)]


def _verts(model, material: str) -> np.ndarray:
    names = [m.name for m in model.materials]
    mi = names.index(material)
    start = sum(m.face_count for m in model.materials[:mi])
    return np.unique(model.faces[start:start + model.materials[mi].face_count])


def test_the_family_draws_every_garment():
    assert {s.sleeves for s in SPECS} == set(garments.SLEEVES)
    assert {s.bottom for s in SPECS} == set(garments.BOTTOMS)
    assert all((s.bottom == "skirt") == (s.skirt > 0) for s in SPECS)
    assert 0.1 < np.mean([s.coat > 0 for s in SPECS]) < 0.3


def _bent(model, bones: list[str], degrees: float):
    """Posed vertex positions with each of ``bones`` rotated by ``degrees`` about X (IK off)."""
    rig = Rig(model)
    v = rig.rest_values()
    r = v.rotation.copy()
    for name in bones:
        r[model.bone_index(name)] = Q.from_axis_angle(np.array([1.0, 0, 0]), np.radians(degrees))
    v = dataclasses.replace(v, rotation=r, ik_enabled=np.zeros_like(v.ik_enabled))
    return rig.pose(v).positions


@pytest.mark.parametrize("sleeves,bottom,coat", [("long", "trousers", 0.0), ("elbow", "shorts", 0.0),
                                                 ("long", "skirt", 4.0)])
def test_garments_stay_on_the_limbs_they_cover_when_they_bend(tmp_path, sleeves, bottom, coat):
    spec = dataclasses.replace(next(s for s in SPECS if s.skirt == 0 and s.hair == "short" and not s.cape),
                               sleeves=sleeves, bottom=bottom, coat=coat, skirt=1.0 if bottom == "skirt" else 0)
    model, _ = family.build_character(spec)
    (tmp_path / "g.pmx").write_bytes(pmx_bytes(model))
    assert pmx_bytes(read_pmx(tmp_path / "g.pmx")) == pmx_bytes(model)        # reads back, round-trips
    names = [m.name for m in model.materials]
    assert ("袖" in names) == (sleeves != "short") and ("ズボン" in names) == (bottom in ("shorts", "trousers"))
    assert ("コート" in names) == bool(coat)
    skin = np.concatenate([_verts(model, "肌"), _verts(model, "服")])         # the body under the garments
    for degrees in (0.0, 80.0, -80.0):
        pos = _bent(model, ["左ひじ", "右ひじ", "左ひざ", "右ひざ", "左足", "右足"], degrees)
        tree = cKDTree(pos[skin])
        for material in ("袖", "ズボン", "コート"):
            if material not in names or material == "コート":     # coat tails hang off the legs by design
                continue
            d, _ = tree.query(pos[_verts(model, material)])
            # cloth eased 0.1-0.2 off the skin; a garment left behind by a bent limb would be units away
            assert np.percentile(d, 99) < 0.45, (material, degrees, float(d.max()))
    if sleeves == "long":        # a long sleeve reaches the forearm: its cuff follows the wrist chain
        v = _verts(model, "袖")
        wrist = {model.bone_index("左手首"), model.bone_index("右手首"), model.bone_index("左手捩"),
                 model.bone_index("右手捩")}
        assert np.isin(model.bone_indices[v], list(wrist)).any()


def test_a_coat_is_open_in_front_and_its_tails_reach_below_the_hips():
    spec = dataclasses.replace(SPECS[0], coat=4.0, sleeves="short")
    model, tex = family.build_character(spec)
    v = _verts(model, "コート")
    p = model.positions[v]
    front = (p[:, 2] < -0.9) & (np.abs(p[:, 0]) < 0.15) & (p[:, 1] > 8)
    assert not front.any()                                                      # worn open
    assert p[:, 1].min() < model.bones[model.bone_index("左ひざ")].position[1] + 3
    assert tex["tex/coat.png"][5, 5, :3].tolist() == list(spec.coat_rgb)
