"""``udpgen doctor`` on a small zoo: the bundled sample, Gene (when present), a truncated PMX, a zero-vertex
skeleton, a non-humanoid model, a broken and a morph-only VMD and the sample's wave motion."""
from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile

import numpy as np

import pytest
from click.testing import CliRunner

from mmd_fixtures import make_model, skeleton_only
from paths import GENE, SAMPLE

NOT_HUMANOID = ["センター", "左腕", "左ひじ", "右腕", "右ひじ", "首 (or 頭)"]


def run(*args):
    from udpgen.cli.main import main

    return CliRunner().invoke(main, ["doctor", *map(str, args)])


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from udpgen.mmd import load
    from udpgen.mmd.model import CameraKeys, LightKeys, Motion, Pose
    from udpgen.mmd.pmx_writer import write_pmx
    from udpgen.mmd.vmd import parse_vmd, vmd_bytes
    from udpgen.mmd.vpd import write_vpd

    root = tmp_path_factory.mktemp("zoo")
    models, motions = root / "models", root / "motions"
    (models / "sample").mkdir(parents=True)
    shutil.copy(SAMPLE / "sample.pmx", models / "sample" / "sample.pmx")
    shutil.copytree(SAMPLE / "tex", models / "sample" / "tex")
    if (GENE / "Gene_light.pmx").is_file():                 # by link: the test copies nothing big
        (models / "gene").mkdir()
        (models / "gene" / "Gene_light.pmx").symlink_to(GENE / "Gene_light.pmx")
        (models / "gene" / "light").symlink_to(GENE / "light", target_is_directory=True)
    (models / "broken").mkdir()
    (models / "broken" / "truncated.pmx").write_bytes((SAMPLE / "sample.pmx").read_bytes()[:3000])
    sample = load(SAMPLE / "sample.pmx")
    write_pmx(skeleton_only(sample), models / "skeleton.pmx")
    write_pmx(make_model(), models / "accessory.pmx")
    with zipfile.ZipFile(models / "zipped.zip", "w") as z:   # textures beside it; sorts after sample/
        z.write(SAMPLE / "sample.pmx", "chara/sample.pmx")
        for tex in sorted((SAMPLE / "tex").iterdir()):
            z.write(tex, f"chara/tex/{tex.name}")
    motions.mkdir()
    shutil.copy(SAMPLE / "wave.vmd", motions / "wave.vmd")
    wave = (SAMPLE / "wave.vmd").read_bytes()
    (motions / "broken.vmd").write_bytes(wave[:len(wave) // 2 + 7])
    morph_only = dataclasses.replace(parse_vmd(wave), bones=type(parse_vmd(wave).bones)())
    (motions / "face.vmd").write_bytes(vmd_bytes(morph_only))
    two = np.zeros(2, np.float32)
    camera = Motion(cameras=CameraKeys(frame=np.array([0, 30], np.uint32), distance=two - 45,
                                       target=np.zeros((2, 3), np.float32), rotation=np.zeros((2, 3), np.float32),
                                       interpolation=np.full((2, 24), 20, np.uint8), fov=np.array([30, 30], np.uint32),
                                       orthographic=np.zeros(2, bool)))
    (motions / "camera.vmd").write_bytes(vmd_bytes(camera))
    light = Motion(lights=LightKeys(frame=np.array([10], np.uint32), color=np.full((1, 3), 0.6, np.float32),
                                    direction=np.array([[-0.5, -1.0, 0.5]], np.float32)))
    (motions / "sub" / "light.vmd").parent.mkdir()
    (motions / "sub" / "light.vmd").write_bytes(vmd_bytes(light))
    q = np.array([0.0, 0.0, 0.0, 1.0])
    write_vpd(Pose(bones=(("左腕", np.zeros(3), q), ("存在しない", np.zeros(3), q))), motions / "pose.vpd")
    res = run(models, "--motions", motions, "--json")
    text = run(models, "--motions", motions)
    return {"models": models, "motions": motions, "json": res, "text": text}


def _rows(report) -> dict:
    return {r["file"].split("/models/", 1)[1]: r for r in report["models"]}


def test_rest_label_and_motion_kind():
    from udpgen.mmd.model import Motion, Pose
    from udpgen.synth.doctor import T_POSE_MAX_DROOP_DEG, motion_kind, rest_label

    assert rest_label((0.0, 1.5)) == "T" and rest_label((-5.0, 4.0)) == "T"
    assert rest_label((35.0, 33.0)) == "A" and rest_label((T_POSE_MAX_DROOP_DEG, T_POSE_MAX_DROOP_DEG)) == "A"
    assert motion_kind(Motion()) == "empty" and motion_kind(Pose()) == "pose"


def test_doctor_verdicts(zoo):
    res = zoo["json"]
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    rows = _rows(report)
    assert {"sample/sample.pmx", "broken/truncated.pmx", "skeleton.pmx", "accessory.pmx"} <= set(rows)
    sample = rows["sample/sample.pmx"]
    assert sample["verdict"] == "ok" and sample["reason"] is None, sample
    assert sample["humanoid"] and sample["missing_bones"] == []
    assert sample["rest"]["label"] == "A" and sample["rest"]["droop_deg"] == pytest.approx([37.0, 37.0], abs=0.1)
    assert sample["textures"] == {"total": 4, "used": 4, "found": 4, "missing": []}
    assert sample["vertices"] > 0 and sample["faces"] > 0 and sample["canonical"]["ok"]
    assert sample["physics"]["rigid_bodies"] == 0 and sample["physics"]["dropped"] == []
    from udpgen.render import gl_available

    if gl_available()[0]:
        assert sample["render"]["ok"] and sample["render"]["coverage"] > 0.05
    else:
        assert sample["render"] is None and report["render_note"].startswith("not tried")

    bad = rows["broken/truncated.pmx"]
    assert bad["verdict"] == "unusable" and bad["reason"].startswith("cannot read: ")
    assert "truncated.pmx" in bad["reason"] and "\n" not in bad["reason"]

    skel = rows["skeleton.pmx"]       # humanoid bones, nothing to draw
    assert skel["verdict"] == "unusable" and skel["vertices"] == 0 and skel["humanoid"]
    assert skel["reason"].startswith("no mesh") and skel["render"] is None

    acc = rows["accessory.pmx"]       # no standard bones, odd physics, textures that do not exist
    assert acc["verdict"] == "unusable" and acc["humanoid"] is False
    assert acc["missing_bones"] == NOT_HUMANOID and acc["reason"].startswith("not humanoid")
    assert acc["rest"] is None and acc["canonical"] is None
    assert acc["physics"]["kept_bodies"] == 1 and acc["physics"]["kept_joints"] == 0
    assert len(acc["physics"]["dropped"]) == 2
    assert acc["textures"]["found"] == 0 and len(acc["textures"]["missing"]) == 3
    assert any(w.startswith("physics would drop 1 of 2") for w in acc["warnings"])

    packed = rows["zipped.zip:chara/sample.pmx"]    # extracted for the texture lookup; the same bytes again
    assert packed["verdict"] == "warnings" and packed["textures"]["found"] == 4
    assert packed["reason"] == "same bytes as " + sample["file"] + " (synth uses one of them)"

    s = report["summary"]["models"]
    assert s["total"] == len(rows) and s["unusable"] == 3 and s["ok"] + s["warnings"] == len(rows) - 3


def test_doctor_gene(zoo, gene_dir):
    rows = _rows(json.loads(zoo["json"].stdout))
    gene = rows["gene/Gene_light.pmx"]
    assert gene["verdict"] in ("ok", "warnings") and gene["humanoid"], gene
    assert gene["rest"]["label"] == "A" and gene["rest"]["droop_deg"] == pytest.approx([34.0, 34.0], abs=0.5)
    assert gene["physics"]["rigid_bodies"] > 50 and gene["physics"]["kept_bodies"] > 0
    assert gene["textures"]["found"] == gene["textures"]["used"] > 0      # found in light/ through the lookup
    wave = next(m for m in gene["motions"] if m["motion"].endswith("wave.vmd"))
    assert wave["bones"] == [5, 5]


def test_doctor_motions(zoo):
    report = json.loads(zoo["json"].stdout)
    motions = {m["file"].rsplit("/", 1)[1]: m for m in report["motions"]}
    assert set(motions) == {"wave.vmd", "broken.vmd", "face.vmd", "camera.vmd", "light.vmd", "pose.vpd"}
    wave = motions["wave.vmd"]
    assert wave["kind"] == "bone" and wave["frame_range"] == [0, 84] and wave["bone_tracks"] == 5
    tracks = {m["model"].split("/models/", 1)[1]: m["bones"] for m in wave["models"]}
    assert tracks["sample/sample.pmx"] == [5, 5]
    assert tracks["skeleton.pmx"] == [5, 5]         # the skeleton keeps the sample's bones
    assert tracks["accessory.pmx"] == [0, 5]
    assert "broken/truncated.pmx" not in tracks      # unreadable models match nothing
    assert motions["face.vmd"]["kind"] == "morph" and motions["face.vmd"]["bone_tracks"] == 0
    broken = motions["broken.vmd"]
    assert broken["kind"] == "unreadable" and "broken.vmd" in broken["reason"] and broken["models"] == []
    assert motions["camera.vmd"]["kind"] == "camera" and motions["camera.vmd"]["frame_range"] == [0, 30]
    assert motions["light.vmd"]["kind"] == "light-only" and motions["light.vmd"]["frame_range"] == [10, 10]
    pose = motions["pose.vpd"]
    assert pose["kind"] == "pose" and pose["bone_tracks"] == 2 and pose["frame_range"] is None
    assert {m["model"].split("/models/", 1)[1]: m["bones"] for m in pose["models"]}["sample/sample.pmx"] == [1, 2]
    assert report["summary"]["motions"] == {"total": 6, "bone": 1, "morph": 1, "camera": 1, "light-only": 1,
                                            "pose": 1, "unreadable": 1}


def test_doctor_text_has_the_json_rows(zoo):
    res = zoo["text"]
    assert res.exit_code == 0, res.output
    report = json.loads(zoo["json"].stdout)
    lines = res.stdout.splitlines()
    for r in report["models"]:
        name = r["file"].split("/models/", 1)[1]
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.split()[1] == r["verdict"]
        if r["reason"]:
            assert r["reason"] in row
    wave = next(line for line in lines if line.startswith("wave.vmd "))
    assert "sample/sample.pmx 5/5" in wave and "accessory.pmx 0/5" in wave
    assert any(line.startswith("models ") and "unusable 3" in line for line in lines)
    assert any(line.startswith("motions ") and "bone 1, morph 1" in line for line in lines)
    assert "Traceback" not in res.output


def test_doctor_workers_and_single_file(zoo, tmp_path):
    """Through spawned workers (the job runner) the rows are the same; a single file is a zoo of one."""
    for name in ("broken/truncated.pmx", "accessory.pmx"):
        shutil.copy(zoo["models"] / name, tmp_path / name.replace("/", "_"))
    res = run(tmp_path, "--workers", 2, "--no-render", "--json")
    assert res.exit_code == 0, res.output
    direct = _rows(json.loads(zoo["json"].stdout))
    rows = json.loads(res.stdout)["models"]
    assert [r["file"] for r in rows] == [str(tmp_path / "accessory.pmx"), str(tmp_path / "broken_truncated.pmx")]
    assert rows[0]["missing_bones"] == NOT_HUMANOID and rows[0]["physics"] == direct["accessory.pmx"]["physics"]
    assert rows[1]["verdict"] == "unusable" and rows[1]["reason"].startswith("cannot read")
    one = run(zoo["models"] / "sample" / "sample.pmx", "--motions", zoo["motions"] / "wave.vmd", "--no-render",
              "--json")
    report = json.loads(one.stdout)
    assert one.exit_code == 0 and len(report["models"]) == 1 and report["models"][0]["verdict"] == "ok"
    assert report["models"][0]["render"] is None and report["models"][0]["motions"][0]["bones"] == [5, 5]


@pytest.mark.parametrize("args", [["/no/such/folder"], ["{empty}"], ["{empty}", "--workers", "0"],
                                  [str(SAMPLE / "sample.pmx"), "--motions", "/no/such/motions"]])
def test_doctor_bad_arguments(tmp_path, args):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    res = run(*args)
    assert res.exit_code == 1
    assert res.stdout == "" and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "Traceback" not in res.output


def test_doctor_on_the_robustness_corpus(tmp_path):
    """Every file of the robustness corpus (tests/robustness_corpus.py, issue #13 item 4): the verdict agrees
    with what the corpus says of it. Skips where the corpus is not in this checkout."""
    corpus = pytest.importorskip("robustness_corpus")
    entries = corpus.write_corpus(tmp_path)
    res = run(tmp_path, "--motions", tmp_path / "motions", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    report = json.loads(res.stdout)
    seen = {}
    for r in report["models"]:
        seen[r["file"][len(str(tmp_path)) + 1:]] = r["verdict"] != "unusable"
    for r in report["motions"]:
        seen[r["file"][len(str(tmp_path)) + 1:]] = r["kind"] == "bone"
    expected = {name: e.usable for name, e in entries.items()}
    assert seen == expected


def test_doctor_settles_physics_and_counts_fallbacks(tmp_path, monkeypatch):
    pytest.importorskip("panda3d.bullet")
    from udpgen.rig import physics_world
    from udpgen.sample import family
    from udpgen.synth.doctor import SETTLE_POSES, DoctorSettings, doctor

    family.write_family(tmp_path / "fam", 1, seed=0)
    rep = doctor(tmp_path / "fam", None, DoctorSettings(render=False))
    (row,) = rep["models"]
    assert row["physics"]["settle"] == {"poses": SETTLE_POSES, "fallbacks": 0, "reason": None}
    monkeypatch.setattr(physics_world.PhysicsWorld, "exploded", lambda self, world: "a body flew off")
    rep = doctor(tmp_path / "fam", None, DoctorSettings(render=False))
    (row,) = rep["models"]
    assert row["physics"]["settle"]["fallbacks"] == SETTLE_POSES and row["verdict"] == "warnings"
    assert any("fell back to the kinematic pose" in w and "a body flew off" in w for w in row["warnings"])
