"""The ``udpgen`` command line: inspect, error lines and exit codes."""
from __future__ import annotations

import json

import numpy as np

import pytest
from click.testing import CliRunner

from mmd_fixtures import make_model
from udpgen.cli.main import main
from udpgen.mmd.pmx_writer import write_pmx


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "m.pmx"
    write_pmx(make_model(n_vertices=40), path)
    return path


def test_inspect_model_json(model_file):
    res = run("inspect", model_file, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["vertices"] == 40 and s["bones"] == 12 and s["ik_chains"] == 1 and s["append_bones"] == 1
    assert s["weight_types"] == {"BDEF1": 8, "BDEF2": 8, "BDEF4": 8, "SDEF": 8, "QDEF": 8}
    assert s["morphs"]["total"] == 8 and s["morphs"]["flip"] == 1
    # no texture file exists beside the model: all the used ones are reported missing
    assert s["textures"]["found"] == 0 and "tex\\Body.PNG" in s["textures"]["missing"]


def test_inspect_model_table(model_file, tmp_path):
    (tmp_path / "TEX").mkdir()
    (tmp_path / "TEX" / "body.png").write_bytes(b"x")      # case-insensitive, backslash path
    res = run("inspect", model_file)
    assert res.exit_code == 0
    assert "vertices" in res.output and "40" in res.output
    assert "found    1" in res.output


def test_inspect_gene_with_motion(gene_dir):
    res = run("inspect", gene_dir / "Gene_light.pmx", "--motion", gene_dir / "motion" / "stand.vmd", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["vertices"] == 28646 and s["textures"]["missing"] == []
    assert s["match"]["bones"]["tracks"] > 0


def test_inspect_motion(gene_dir):
    res = run("inspect", gene_dir / "motion" / "stand.vmd", "--model", gene_dir / "Gene_light.pmx", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["format"] == "vmd" and s["keyframes"]["bones"] > 0 and s["frame_range"][1] >= s["frame_range"][0]
    assert s["match"]["bones"]["matched"] + len(s["match"]["bones"]["missing"]) == s["match"]["bones"]["tracks"]


@pytest.mark.parametrize("content", [b"", b"PMX \x00\x00", b"hello"])
def test_bad_files_give_one_line(tmp_path, content):
    path = tmp_path / "bad.pmx"
    path.write_bytes(content)
    res = run("inspect", path)
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "bad.pmx" in lines[0]
    assert "Traceback" not in res.output


def test_missing_and_directory(tmp_path):
    for target in (tmp_path / "nope.pmx", tmp_path):
        res = run("inspect", target)
        assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1


def test_pose_writes_coloured_meshes(sample_dir, tmp_path):
    import trimesh

    model = sample_dir / "sample.pmx"
    for args, name in (([], "rest.ply"), (["--apose"], "apose.glb"),
                       (["--motion", sample_dir / "wave.vmd", "--frame", "30"], "wave.glb")):
        out = tmp_path / name
        res = run("pose", model, *args, "--out", out, "--json")
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output)
        assert summary["faces"] == 9256 and out.is_file()
        mesh = trimesh.load(out, force="mesh", process=False)
        assert len(mesh.faces) == 9256
        colors = np.asarray(mesh.visual.vertex_colors)
        assert colors[:, :3].std() > 20                 # landmark colours vary over the body
    rest = trimesh.load(tmp_path / "rest.ply", process=False)
    assert rest.bounds[0][1] > -0.1 and rest.bounds[1][1] > 18       # +Y up, feet on the floor


def test_pose_bad_input(sample_dir, tmp_path):
    model = sample_dir / "sample.pmx"
    res = run("pose", model, "--apose", "--random-pose", "3", "--out", tmp_path / "x.ply")
    assert res.exit_code != 0 and "at most one" in res.output
    res = run("pose", model, "--out", tmp_path / "x.obj")
    assert res.exit_code == 1 and "unsupported mesh format" in res.output
    res = run("pose", sample_dir / "wave.vmd", "--out", tmp_path / "x.ply")
    assert res.exit_code != 0 and "not a model" in res.output
    assert not (tmp_path / "x.ply").exists()


def test_pose_a_skeleton_without_vertices(sample_dir, tmp_path):
    from mmd_fixtures import skeleton_only
    from udpgen.mmd import load

    path = tmp_path / "bones.pmx"
    write_pmx(skeleton_only(load(sample_dir / "sample.pmx")), path)
    res = run("pose", path, "--apose", "--out", tmp_path / "x.ply")
    assert res.exit_code == 1 and "no vertices" in res.output and "bones.pmx" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "x.ply").exists()
    res = run("inspect", path, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["vertices"] == 0
