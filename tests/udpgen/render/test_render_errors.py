"""udpgen.render on bad input: clear UdpgenErrors or counted warnings, never a GL crash or a silent blank."""
from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest

from udpgen.errors import UdpgenError
from udpgen.mmd import load

SIZE = 64




@pytest.fixture(scope="module")
def sample(sample_dir):
    return load(sample_dir / "sample.pmx")


@pytest.fixture()
def renderer(gl):
    from udpgen.render import Renderer

    with Renderer(SIZE) as r:
        yield r


def front(pose, size=SIZE):
    from udpgen.render import CameraSampler

    return CameraSampler.front(*pose.bounding_sphere(), size, size)


def check_valid(out):
    assert np.isfinite(out.udp).all() and out.udp.min() >= 0 and out.udp.max() <= 1
    np.testing.assert_array_equal(out.udp[..., 3] > 0, out.rgba[..., 3] > 0)
    assert out.coverage > 0.02 and not out.empty


def test_missing_textures_fall_back_and_are_counted(renderer, sample, sample_dir, tmp_path):
    shutil.copy(sample_dir / "sample.pmx", tmp_path / "m.pmx")        # no tex/ folder beside it
    ch = renderer.load(load(tmp_path / "m.pmx"))
    out = renderer.render(ch.pose(), front(ch.pose()))
    check_valid(out)
    assert out.warnings["missing_texture"] == len(sample.textures)
    assert sorted(ch.textures.missing) == sorted(sample.textures)


def test_unreadable_texture_is_counted(renderer, sample_dir, tmp_path):
    shutil.copytree(sample_dir, tmp_path / "s")
    (tmp_path / "s" / "tex" / "skin.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    ch = renderer.load(load(tmp_path / "s" / "sample.pmx"))
    check_valid(renderer.render(ch.pose(), front(ch.pose())))
    assert renderer.warnings["unreadable_texture"] == 1 and renderer.warnings["missing_texture"] == 0


def test_nan_vertices_and_bad_faces(renderer, sample):
    pos = sample.positions.copy()
    pos[:25] = np.nan
    faces = sample.faces.copy()
    faces[100] = [7, 7, 8]                       # repeated index
    faces[101] = [0, 1, sample.vertex_count + 5]  # out of range
    model = dataclasses.replace(sample, positions=pos, faces=faces)
    ch = renderer.load(model)
    pose = ch.pose()
    c, r = pose.bounding_sphere()
    assert np.isfinite(c).all() and math.isfinite(r)
    check_valid(renderer.render(pose, front(pose)))
    w = renderer.warnings
    assert w["nan_vertices"] == 25 and w["nan_faces"] > 0 and w["degenerate_faces"] == 1 and w["bad_face_indices"] == 1


def test_bad_bone_indices(renderer, sample):
    idx = sample.bone_indices.copy()
    idx[:40, 0] = len(sample.bones) + 7
    ch = renderer.load(dataclasses.replace(sample, bone_indices=idx))
    pose = ch.pose()
    check_valid(renderer.render(pose, front(pose)))
    assert renderer.warnings["bad_bone_indices"] == 40


def test_no_visible_material(renderer, sample):
    mats = tuple(dataclasses.replace(m, diffuse=np.array([*m.diffuse[:3], 0.0], np.float32)) for m in sample.materials)
    ch = renderer.load(dataclasses.replace(sample, materials=mats))
    pose = ch.pose()
    with pytest.raises(UdpgenError, match="no visible material"):
        pose.bounding_sphere()
    cam = front(renderer.load(sample).pose())
    with pytest.raises(UdpgenError, match="no visible material"):
        renderer.render(pose, cam)


def test_empty_model(renderer, sample):
    with pytest.raises(UdpgenError, match="no vertices or no faces"):
        renderer.load(dataclasses.replace(sample, faces=np.zeros((0, 3), np.int32)))


@pytest.mark.parametrize("size", [0, -3, 10 ** 6, 64.5, "big", None])
def test_bad_sizes(gl, size):
    from udpgen.render import Renderer

    with pytest.raises(UdpgenError, match="size"):
        Renderer(size)


def test_empty_view_raises_or_is_flagged(gl, sample):
    from udpgen.render import EmptyRenderError, PerspectiveCamera, Renderer, RenderSettings, look_at

    with Renderer(SIZE) as r:
        pose = r.load(sample).pose()
        away = PerspectiveCamera(SIZE, SIZE, look_at([0, 10, 40], [0, 10, 80]), 0.1, 100.0)   # looks away
        with pytest.raises(EmptyRenderError, match="sees nothing"):
            r.render(pose, away)
    with Renderer(SIZE, settings=RenderSettings(allow_empty=True)) as r:
        out = r.render(r.load(sample).pose(), away)
        assert out.empty and out.coverage == 0 and not out.udp.any() and not out.rgba.any()


def test_camera_size_mismatch(renderer, sample):
    pose = renderer.load(sample).pose()
    with pytest.raises(UdpgenError, match="camera is"):
        renderer.render(pose, front(pose, SIZE * 2))


def test_non_finite_pose(renderer, sample):
    ch = renderer.load(sample)
    values = ch.rig.rest_values()
    values.translation[1] = np.nan
    with pytest.raises(UdpgenError, match="non-finite"):
        ch.pose(values)
    with pytest.raises(UdpgenError, match="morph weights"):
        ch.pose(dataclasses.replace(values, translation=np.zeros_like(values.translation),
                                    morph_weights=np.ones(3)))


def test_bad_cameras():
    from udpgen.render import CameraSampler, OrthographicCamera, PerspectiveCamera, bounding_sphere, look_at

    with pytest.raises(UdpgenError):
        PerspectiveCamera(0, 10)
    with pytest.raises(UdpgenError):
        PerspectiveCamera(10, 10, yfov=math.pi)
    with pytest.raises(UdpgenError):
        OrthographicCamera(10, 10, ymag=0)
    with pytest.raises(UdpgenError):
        PerspectiveCamera(10, 10, znear=5, zfar=1)
    with pytest.raises(UdpgenError):
        look_at([1, 2, 3], [1, 2, 3])
    with pytest.raises(UdpgenError):
        bounding_sphere(np.full((4, 3), np.nan))
    with pytest.raises(UdpgenError):
        CameraSampler(distance=(0.5, 1.0))
    with pytest.raises(UdpgenError):
        CameraSampler(fov=(30, 20))


def test_big_texture_is_downscaled(tmp_path):
    import cv2

    from udpgen.render.texture import load_rgba

    cv2.imwrite(str(tmp_path / "t.png"), np.zeros((40, 100, 3), np.uint8))
    img, shrunk = load_rgba(str(tmp_path / "t.png"), max_size=32)
    assert shrunk and img.shape == (12, 32, 4) and (img[..., 3] == 255).all()


def test_settings_validation():
    from udpgen.render import RenderSettings

    with pytest.raises(UdpgenError):
        RenderSettings(light_direction=(0, 0, 0))
    with pytest.raises(UdpgenError):
        RenderSettings(default_toon=10)
    with pytest.raises(UdpgenError):
        RenderSettings(outline_px=-1)


def test_context_lost_to_pyrender_delete(gl, sample):
    """pyrender's OffscreenRenderer.delete() terminates the EGL display the whole process shares: the old
    renderer then says so clearly, and a new one works."""
    from udpgen.render import Renderer, get_context

    if get_context().backend != "egl":
        pytest.skip("only EGL shares the display")
    old = Renderer(SIZE)
    pose = old.load(sample).pose()
    cam = front(pose)
    import pyrender

    pyrender.OffscreenRenderer(8, 8).delete()
    with pytest.raises(UdpgenError, match="lost"):
        old.render(pose, cam)
    old.close()
    with Renderer(SIZE) as r:
        check_valid(r.render(r.load(sample).pose(), cam))
