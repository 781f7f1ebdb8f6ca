"""The character family (udpgen.sample.family, ``udpgen characters``): files that read back and round-trip
byte for byte, canonicalise and render; determinism; resume; variety; bad input."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from udpgen.cli.main import main as cli
from udpgen.mmd.model import BoneFlag
from udpgen.mmd.pmx import read_pmx
from udpgen.mmd.pmx_writer import pmx_bytes
from udpgen.rig import Rig
from udpgen.rig.canonical import canonicalize
from udpgen.sample import family

COUNT, SEED = 8, 5


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    out = tmp_path_factory.mktemp("family")
    family.write_family(out, COUNT, SEED)
    return out


def _pmx(fam, i):
    name = family.character_name(SEED, i)
    return fam / name / f"{name}.pmx"


def test_files_read_back_and_round_trip(fam):
    for i in range(COUNT):
        path = _pmx(fam, i)
        model = read_pmx(path, strict=True)
        assert pmx_bytes(model) == path.read_bytes()
        for t in model.textures:
            assert (path.parent / t).is_file()
        for name in ("センター", "左足ＩＫ", "右足ＩＫ", "左ひざ", "両目", "左目"):
            assert model.bone_index(name) >= 0, name
        ik = model.bones[model.bone_index("左足ＩＫ")].ik
        assert ik.links[0].lower is not None                       # the knee is limited
        assert model.bones[model.bone_index("左目")].flags & BoneFlag.APPEND_ROTATE
        for j in model.joints:
            assert 0 <= j.rigid_a < len(model.rigid_bodies) and 0 <= j.rigid_b < len(model.rigid_bodies)
        for rb in model.rigid_bodies:
            assert 0 <= rb.bone < len(model.bones)


def test_canonicalises_into_the_unit_cube(fam):
    for i in range(COUNT):
        model = read_pmx(_pmx(fam, i))
        can = canonicalize(Rig(model))
        lm = np.asarray(can.landmarks)
        assert np.isfinite(lm).all() and lm.min() >= 0 and lm.max() <= 1


def test_same_seed_same_bytes_and_resume(fam, tmp_path):
    summary = family.write_family(tmp_path, 3, SEED)
    assert len(summary["written"]) == 3
    for i in range(3):
        assert _pmx(tmp_path, i).read_bytes() == _pmx(fam, i).read_bytes()
    first = _pmx(tmp_path, 0)
    before = first.stat().st_mtime_ns
    again = family.write_family(tmp_path, 4, SEED)               # an interrupted run of 4 goes on
    assert again["skipped"] == [family.character_name(SEED, i) for i in range(3)]
    assert again["written"] == [family.character_name(SEED, 3)]
    assert first.stat().st_mtime_ns == before


def test_specs_cover_the_ranges():
    specs = [family.draw_spec(0, i) for i in range(200)]
    ratios = [s.head_ratio for s in specs]
    assert min(ratios) < 3.3 and max(ratios) > 7.2
    assert {s.hair for s in specs} == set(family.HAIR_STYLES)
    assert {s.pattern for s in specs} == set(family.PATTERNS)
    assert any(s.skirt == 0 for s in specs) and max(s.skirt for s in specs) > 1.3
    assert 0.15 < np.mean([s.cape > 0 for s in specs]) < 0.45
    assert {a for s in specs for a in s.accessories} == set(family.ACCESSORIES)


def test_capes_bobs_and_accessories_are_parts_with_their_own_bodies():
    specs = [family.draw_spec(0, i) for i in range(200)]
    caped = next(s for s in specs if s.cape > 0 and s.hair == "short")
    model, textures = family.build_character(caped)
    assert model.materials[-1].name == "マント" and textures["tex/cape.png"][5, 5, :3].tolist() == list(caped.cape_rgb)
    upper = model.bone_index("上半身2")
    cape_bones = [i for i, b in enumerate(model.bones) if "マント" in b.name]
    assert len(cape_bones) == 2 * (family.CARD_BONES + 1) and model.bones[cape_bones[0]].parent == upper
    cape = [rb for rb in model.rigid_bodies if rb.name.startswith(("マント", "上半身")) or "マント" in rb.name]
    assert sorted(rb.mode for rb in cape) == [0] + [1] * 2 * family.CARD_BONES    # a kinematic anchor, dynamic cards
    tips = model.positions[-3:]                                  # the last card row: below the hips, behind her
    assert tips[:, 1].max() < model.bones[model.bone_index("下半身")].position[1] and tips[:, 2].min() > 0
    bob = next(s for s in specs if s.hair == "bob" and not s.cape)
    model, _ = family.build_character(bob)
    hair = [b for b in model.bones if "髪" in b.name]
    assert len(hair) == 5 * (family.CARD_BONES + 1)
    worn = next(s for s in specs if set(s.accessories) == set(family.ACCESSORIES))
    model, _ = family.build_character(worn)
    acc = model.materials[-1]
    assert acc.name == "小物" and acc.face_count > 0
    head = model.bone_index("頭")
    first = sum(m.face_count for m in model.materials[:-1])
    verts = np.unique(model.faces[first:])
    assert (model.bone_indices[verts, 0] == head).all()             # rigid on the head


def test_head_ratio_is_what_the_spec_says(fam):
    from udpgen.sample.character import build_model

    base = len(build_model()[0].positions)                 # the hair cards' vertices come after these
    for i in range(COUNT):
        spec = family.draw_spec(SEED, i)
        model = read_pmx(_pmx(fam, i))
        y = model.positions[:base, 1]
        skin = np.unique(model.faces[:model.materials[0].face_count])        # material 0 is the skin
        skin = skin[(model.bone_indices[skin, 0] == model.bone_index("頭")) & (model.bone_weights[skin, 0] > 0.999)]
        ratio = y.max() / (y.max() - model.positions[skin, 1].min())             # height / (crown - chin)
        assert y.min() > -0.5
        assert abs(ratio - spec.head_ratio) < 0.15 * spec.head_ratio, (ratio, spec.head_ratio)


def test_renders_and_differ(fam, gl):
    from udpgen.render import Renderer

    with Renderer(64) as r:
        rgbas = [family.apose_render(r, read_pmx(_pmx(fam, i))) for i in range(COUNT)]
    for a in rgbas:
        assert (a[..., 3] > 0).mean() > 0.02
    d = family.pairwise_distances(rgbas)
    off = ~np.eye(COUNT, dtype=bool)
    assert np.allclose(np.diag(d["iou"]), 1) and np.allclose(np.diag(d["hist"]), 0)
    # no near-duplicates: every pair differs in silhouette or in colours
    assert ((d["iou"][off] < 0.95) | (d["hist"][off] > 0.2)).all(), (d["iou"], d["hist"])


@pytest.mark.parametrize("args, words", [(["--count", "0"], "--count"), (["--count", "2", "--seed", "-3"], "--seed")])
def test_cli_bad_arguments(tmp_path, args, words):
    res = CliRunner().invoke(cli, ["characters", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and words in res.output and "Traceback" not in res.output


def test_cli_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["characters", "--count", "1", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "notes.txt" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_writes(tmp_path):
    res = CliRunner().invoke(cli, ["characters", "--count", "2", "--seed", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*/*.pmx"))) == 2


def test_skirts_hang_on_bone_chains_with_bodies_that_collide_with_the_legs():
    from udpgen.sample.parts import LEG_GROUP, SKIRT_CHAINS, SKIRT_GROUP

    spec = next(s for s in (family.draw_spec(0, i) for i in range(50)) if s.skirt > 1.0)
    model, _ = family.build_character(spec)
    chains = [b for b in model.bones if b.name.startswith("スカート")]
    assert len(chains) == 3 * SKIRT_CHAINS
    hip = model.bone_index("下半身")
    roots = [i for i, b in enumerate(model.bones) if b.name.startswith("スカート") and b.name.endswith("_1")]
    assert all(model.bones[i].parent == hip for i in roots)
    skirt = [rb for rb in model.rigid_bodies if rb.group == SKIRT_GROUP]
    legs = [rb for rb in model.rigid_bodies if rb.group == LEG_GROUP]
    assert sorted(rb.mode for rb in skirt) == [0] + [1] * 2 * SKIRT_CHAINS and [rb.mode for rb in legs] == [0] * 4
    # Bullet's rule: a pair collides when each one's group is in the other's mask
    assert all(s.no_collision_mask >> LEG_GROUP & 1 and l.no_collision_mask >> SKIRT_GROUP & 1
               for s in skirt for l in legs)
    assert not any(a.no_collision_mask >> SKIRT_GROUP & 1 for a in skirt)          # the skirt never with itself
    mi = [m.name for m in model.materials].index("スカート")
    start = sum(m.face_count for m in model.materials[:mi])
    verts = np.unique(model.faces[start:start + model.materials[mi].face_count])
    hem = verts[model.positions[verts, 1] < model.positions[verts, 1].min() + 0.3]
    chain_ids = {model.bone_index(b.name) for b in chains}
    on_chains = [sum(float(w) for b, w in zip(model.bone_indices[v], model.bone_weights[v]) if b in chain_ids)
                 for v in hem]
    assert len(hem) > 10 and min(on_chains) > 0.999                   # the hem hangs on the chains alone



def test_faces_vary_in_iris_shape_lashes_and_blush():
    import dataclasses

    base = family.draw_spec(0, 0)
    eye = lambda **kw: family.build_textures(dataclasses.replace(base, **kw), family.build_model()[1])["tex/face.png"][:, :64]  # noqa: E731
    narrow, round_ = eye(eye_shape=0.8, iris=1.0), eye(eye_shape=1.2, iris=1.0)
    coloured = lambda img: int((img[..., :3].astype(int).sum(-1) < 700)[12:].sum())  # noqa: E731 - below the lash
    assert coloured(round_) > 1.3 * coloured(narrow)
    dark = lambda img: int((img[:, 32, :3] == (35, 25, 30)).all(-1).sum())  # noqa: E731 - lash rows at the centre
    assert dark(eye(lash=12)) == 12 and dark(eye(lash=6)) == 6
    assert (eye(blush=True) != eye(blush=False)).any()
    specs = [family.draw_spec(0, i) for i in range(100)]
    assert min(s.eye_shape for s in specs) < 0.85 and max(s.eye_shape for s in specs) > 1.15
    assert 0.2 < np.mean([s.blush for s in specs]) < 0.6
