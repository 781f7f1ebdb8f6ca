"""udpgen.render: the GL renderer against the numpy reference rasteriser and the numpy skinning.

Skips cleanly when this machine cannot create a GL context (no EGL/OSMesa); runs on Mesa llvmpipe.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from udpgen.mmd import load
from udpgen.mmd.model import WeightType
from udpgen.rig import MotionSampler
from udpgen.rig.canonical import LANDMARK_LOW, LANDMARK_SPAN, canonicalize
from udpgen.rig.mesh import visible_faces

SIZE = 112




@pytest.fixture(scope="module")
def sample(sample_dir):
    return load(sample_dir / "sample.pmx")


@pytest.fixture(scope="module")
def wave(sample, sample_dir):
    return MotionSampler(sample, load(sample_dir / "wave.vmd"))


@pytest.fixture(scope="module")
def geo(gl):
    """A renderer for geometry checks: no outline, no texture alpha (the reference has neither)."""
    from udpgen.render import Renderer, RenderSettings

    with Renderer(SIZE, settings=RenderSettings(outline=False, texture_alpha=False)) as r:
        yield r


@pytest.fixture(scope="module")
def full(gl):
    from udpgen.render import Renderer

    with Renderer(SIZE) as r:
        yield r


@pytest.fixture(scope="module")
def sample_geo(geo, sample):
    return geo.load(sample)


def views(pose, size=SIZE):
    from udpgen.render import CameraSampler, OrthographicCamera

    c, r = pose.bounding_sphere()
    front = CameraSampler.front(c, r, size, size, azimuth=0, elevation=10)
    back = CameraSampler.front(c, r, size, size, fov_deg=40, azimuth=140, elevation=-5)
    ortho = OrthographicCamera(size, size, front.world_to_camera, front.znear, front.zfar, ymag=r * 1.05)
    return [front, back, ortho]


def compare(out, ref, *, max_median=1e-5):
    """GL result vs reference UDP: coverage, occlusion and values (edge pixels may differ)."""
    a, b = out.udp[..., 3] > 0, ref[..., 3] > 0
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.99, iou
    # pixels that differ must lie on a silhouette (GL's top-left rule vs inclusive edges here; pinholes
    # where a pixel centre falls on a crack between two meshes)
    from scipy.ndimage import binary_dilation, binary_erosion

    edge = (binary_dilation(b) & ~binary_erosion(b)) | (binary_dilation(a) & ~binary_erosion(a))
    assert not ((a ^ b) & ~edge).any()
    both = a & b
    err = np.abs(out.udp[..., :3] - ref[..., :3])[both].max(axis=1)
    assert np.median(err) < max_median, np.median(err)
    # occlusion: the GL pixel shows the nearest surface, as the reference does, almost everywhere
    assert (err < 1e-3).mean() > 0.99, (err < 1e-3).mean()
    return err


# -------------------------------------------------------------------------------------------- context

def test_context(gl):
    from udpgen.render import get_context

    ctx = get_context()
    assert ctx.backend in ("egl", "osmesa")
    assert ctx.limits["max_draw_buffers"] >= 2
    assert json.dumps(ctx.describe())


def test_backend_choice(monkeypatch):
    from udpgen.errors import UdpgenError
    from udpgen.render import platform

    monkeypatch.setenv("UDPGEN_GL", "vulkan")
    with pytest.raises(UdpgenError, match="UDPGEN_GL"):
        platform._requested()
    monkeypatch.setenv("UDPGEN_GL_DEVICE", "x")
    with pytest.raises(UdpgenError, match="UDPGEN_GL_DEVICE"):
        platform._device_index()


def test_no_gl_names_packages(monkeypatch):
    from udpgen.errors import UdpgenError
    from udpgen.render import platform

    monkeypatch.setattr(platform, "_requested", lambda: ["egl", "osmesa"])
    monkeypatch.setattr(platform, "probe_egl", lambda device=0: "no libEGL")
    monkeypatch.setattr(platform, "probe_osmesa", lambda: "no libOSMesa")
    with pytest.raises(UdpgenError, match="libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"):
        platform._create()


_CHILD = """
import json, sys
import numpy as np
from udpgen.mmd import load
from udpgen.render import CameraSampler, Renderer
with Renderer(48) as r:
    pose = r.load(load(sys.argv[1])).pose()
    out = r.render(pose, CameraSampler.front(*pose.bounding_sphere(), 48, 48))
    ok = bool(np.array_equal(out.udp[..., 3] > 0, out.rgba[..., 3] > 0))
    heavy = [m for m in ("pyrender", "trimesh") if m in sys.modules]
    print(json.dumps({"backend": r.context.backend, "coverage": out.coverage, "ok": ok, "heavy": heavy}))
"""


@pytest.mark.parametrize("backend", ["osmesa", "egl"])
def test_each_backend_in_a_fresh_process(gl, sample_dir, backend):
    """The backend is chosen by UDPGEN_GL before OpenGL is imported, so each choice needs a new process.
    pyrender's platform modules load without pyrender's package, so rendering never imports trimesh."""
    import os
    import subprocess
    import sys

    from udpgen.render import platform

    problem = platform.probe_osmesa() if backend == "osmesa" else platform.probe_egl()
    if problem is not None:
        pytest.skip(problem)
    env = dict(os.environ, UDPGEN_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(sample_dir / "sample.pmx")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["backend"] == backend and got["ok"] and got["coverage"] > 0.05
    assert got["heavy"] == []


def _child_context(queue):
    from udpgen.errors import UdpgenError
    from udpgen.render import get_context

    try:
        get_context()
        queue.put("created")
    except UdpgenError as e:
        queue.put(str(e))


def test_forked_child_is_refused_not_hung(gl):
    """A child forked after the parent made a context gets a clear error (Mesa would hang in it)."""
    import multiprocessing as mp

    from udpgen.render import get_context

    get_context()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_context, args=(q,))
    p.start()
    msg = q.get(timeout=60)
    p.join(timeout=60)
    assert "spawn" in msg and "fork" in msg


# -------------------------------------------------------------------------------------------- geometry

def test_matches_reference_sample(geo, sample_geo, sample, wave):
    from udpgen.render.reference import reference_udp

    for frame in (0.0, 40.0):
        pose = sample_geo.pose(wave.at(frame))
        faces = visible_faces(sample, pose.visible)
        for cam in views(pose):
            out = geo.render(pose, cam)
            ref, _ = reference_udp(cam, pose.skinned_positions(), faces, sample_geo.landmarks)
            compare(out, ref)


@pytest.mark.shared
def test_matches_reference_gene(geo, gene_dir):
    from udpgen.render.reference import reference_udp

    model = load(gene_dir / "Gene_light.pmx")
    ch = geo.load(model)
    values = MotionSampler(model, load(gene_dir / "motion" / "02_laugh.vmd")).at(8)
    assert np.any(values.morph_weights)          # face morphs: morphed positions are uploaded
    pose = ch.pose(values)
    assert pose.positions is not None
    cam = views(pose)[0]
    out = geo.render(pose, cam)
    ref, _ = reference_udp(cam, pose.skinned_positions(), visible_faces(model, pose.visible), ch.landmarks)
    compare(out, ref)
    np.testing.assert_allclose(geo.skin(pose), pose.skinned_positions(), atol=2e-5)


def test_landmarks_are_canonical_positions(geo, sample_geo, sample):
    """In the canonical A-pose seen straight from the front by an orthographic camera, a pixel's landmark
    (x, y) is the canonical position of the surface there, so it maps back to the pixel's own centre."""
    from udpgen.render import OrthographicCamera, look_at

    can = canonicalize(sample_geo.rig)
    pose = sample_geo.pose(can.values)
    c, r = pose.bounding_sphere()
    cam = OrthographicCamera(SIZE, SIZE, look_at(c + [0, 0, 3 * r], c), r, 5 * r, ymag=r)
    udp = geo.render(pose, cam).udp
    occ = udp[..., 3] > 0
    canon = udp[..., :3] * LANDMARK_SPAN + LANDMARK_LOW            # canonical frame, skeleton heights
    world_x = canon[..., 0] * can.height + can.origin[0]
    world_y = canon[..., 1] * can.height + can.origin[1]
    v, u = np.nonzero(occ)
    s = cam.intrinsics()["ortho_scale"]
    px_x = (world_x[occ] - c[0]) * s + SIZE / 2
    px_y = SIZE / 2 - (world_y[occ] - c[1]) * s
    err = np.hypot(px_x - (u + 0.5), px_y - (v + 0.5))
    assert np.median(err) < 0.05 and np.percentile(err, 99) < 0.75, (np.median(err), np.percentile(err, 99))


def test_landmarks_not_quantised(gl, sample, wave):
    from udpgen.render import CameraSampler, Renderer

    with Renderer(192) as r:
        ch = r.load(sample)
        pose = ch.pose(wave.at(20))
        out = r.render(pose, CameraSampler.front(*pose.bounding_sphere(), 192, 192))
    occ = out.udp[..., 3] > 0
    for k in range(3):
        assert len(np.unique(out.udp[..., k][occ])) > 2000
    assert set(np.unique(out.udp[..., 3])) == {0.0, 1.0}
    assert (out.udp[~occ] == 0).all()


def test_gpu_skinning_matches_numpy(geo, sample_geo, wave):
    pose = sample_geo.pose(wave.at(33))
    np.testing.assert_allclose(geo.skin(pose), pose.skinned_positions(), atol=2e-5)


def test_sdef_and_qdef_skinning(geo):
    """The fixture model cycles BDEF1/2/4, SDEF and QDEF; random rotations of every bone."""
    from mmd_fixtures import make_model
    from udpgen.rig import quat as Q

    model = make_model(n_vertices=400, n_bones=12)
    assert (model.weight_types == WeightType.SDEF).any() and (model.weight_types == WeightType.QDEF).any()
    ch = geo.load(model, landmarks=np.zeros((model.vertex_count, 3), np.float32))
    assert geo.warnings["missing_texture"] >= 1        # its textures do not exist: counted, not fatal
    rng = np.random.default_rng(1)
    values = ch.rig.rest_values()
    values.rotation[:] = Q.normalize(rng.normal(size=values.rotation.shape) * [0.5, 0.5, 0.5, 1] + [0, 0, 0, 2])
    values.translation[:] = rng.normal(size=values.translation.shape) * 0.1
    pose = ch.pose(values)
    np.testing.assert_allclose(geo.skin(pose), pose.skinned_positions(), atol=5e-5)


def test_sdef_render_matches_reference(geo, sample, wave):
    """The sample's BDEF2 vertices turned into SDEF ones (centre at the child bone's head)."""
    from udpgen.render.reference import reference_udp

    wt = sample.weight_types.copy()
    two = wt == WeightType.BDEF2
    wt[two] = WeightType.SDEF
    sdef = np.zeros((sample.vertex_count, 3, 3), np.float32)
    heads = np.array([b.position for b in sample.bones], np.float32)
    c = heads[sample.bone_indices[two, 1]]
    sdef[two, 0] = c
    sdef[two, 1] = 0.5 * (c + sample.positions[two])
    sdef[two, 2] = sample.positions[two]
    model = dataclasses.replace(sample, weight_types=wt, sdef=sdef)
    ch = geo.load(model)
    pose = ch.pose(wave.at(30))
    np.testing.assert_allclose(geo.skin(pose), pose.skinned_positions(), atol=2e-5)
    # SDEF really moves vertices differently from BDEF2 here (else the test would prove nothing)
    plain = geo.load(sample).pose(wave.at(30)).skinned_positions()
    assert np.abs(plain - pose.skinned_positions()).max() > 0.05
    cam = views(pose)[0]
    ref, _ = reference_udp(cam, pose.skinned_positions(), visible_faces(model, pose.visible), ch.landmarks)
    compare(geo.render(pose, cam), ref)


def test_vertex_morph_upload_and_restore(geo, sample_geo, sample):
    from udpgen.render.reference import reference_udp

    rest = sample_geo.pose()
    cam = views(rest)[0]
    before = geo.render(rest, cam).udp
    w = np.zeros(len(sample.morphs))
    w[[m.name for m in sample.morphs].index("あ")] = 1.0           # mouth open: a vertex morph
    w[[m.name for m in sample.morphs].index("まばたき")] = 1.0
    pose = sample_geo.pose(dataclasses.replace(rest.values, morph_weights=w))
    assert pose.positions is not None
    out = geo.render(pose, cam)
    ref, _ = reference_udp(cam, pose.skinned_positions(), visible_faces(sample, pose.visible), sample_geo.landmarks)
    compare(out, ref)
    assert (out.udp != before).any()
    again = geo.render(sample_geo.pose(), cam).udp          # weights back to 0: the rest positions return
    np.testing.assert_array_equal(again, before)


def test_two_sided_and_culling_agree_on_front_faces(gl, sample_geo, sample):
    """With back-face culling the same (front) surfaces are seen: the winding conversion is right."""
    from udpgen.render import Renderer, RenderSettings

    pose = sample_geo.pose()
    cam = views(pose)[0]
    with Renderer(SIZE, settings=RenderSettings(outline=False, two_sided=False)) as r:
        culled = r.render(r.load(sample).pose(), cam).udp
    with Renderer(SIZE, settings=RenderSettings(outline=False)) as r:
        both = r.render(r.load(sample).pose(), cam).udp
    occ = (culled[..., 3] > 0) & (both[..., 3] > 0)
    assert occ.sum() > 0.95 * (both[..., 3] > 0).sum()
    assert np.median(np.abs(culled - both)[occ]) < 1e-6


# -------------------------------------------------------------------------------------------- colour

def test_occupancy_equals_alpha_with_outlines_and_textures(full, sample, wave):
    ch = full.load(sample)
    for frame in (0.0, 25.0):
        pose = ch.pose(wave.at(frame))
        for cam in views(pose):
            out = full.render(pose, cam)
            np.testing.assert_array_equal(out.udp[..., 3] > 0, out.rgba[..., 3] > 0)
            assert out.rgba.dtype == np.uint8 and out.udp.dtype == np.float32
            assert out.udp.min() >= 0 and out.udp.max() <= 1


@pytest.mark.shared
def test_gene_occupancy_and_look(full, gene_dir):
    model = load(gene_dir / "Gene_light.pmx")
    ch = full.load(model)
    pose = ch.pose(MotionSampler(model, load(gene_dir / "motion" / "00_normal.vmd")).at(5))
    for cam in views(pose)[:2]:
        out = full.render(pose, cam)
        np.testing.assert_array_equal(out.udp[..., 3] > 0, out.rgba[..., 3] > 0)
        occ = out.rgba[..., 3] > 0
        colours = out.rgba[occ][:, :3]
        assert len(np.unique(colours, axis=0)) > 300          # textured, not flat colour
    hidden = [i for i, m in enumerate(model.materials) if m.diffuse[3] == 0]
    assert hidden and not pose.visible[hidden].any()


def test_outline(gl, sample, wave):
    from udpgen.render import Renderer, RenderSettings

    with Renderer(SIZE, settings=RenderSettings(outline=False)) as r:
        ch = r.load(sample)
        pose = ch.pose(wave.at(10))
        cam = views(pose)[0]
        plain = r.render(pose, cam)
    with Renderer(SIZE, settings=RenderSettings(outline_px=2.0)) as r:
        edged = r.render(r.load(sample).pose(wave.at(10)), cam)
    a, b = plain.udp[..., 3] > 0, edged.udp[..., 3] > 0
    assert (b & ~a).sum() > 100 and not (a & ~b).any()      # the hull only adds pixels, outside
    ring = b & ~a
    edge_rgb = np.array(sample.materials[0].edge_color[:3]) * 255
    assert np.median(np.abs(edged.rgba[ring][:, :3] - edge_rgb)) < 2
    np.testing.assert_array_equal(edged.rgba[..., 3] > 0, b)


def _with_alpha(model, material: str, alpha: float):
    """(copy of ``model`` whose material named ``material`` has diffuse alpha ``alpha``, its index)."""
    mats = list(model.materials)
    k = [m.name for m in mats].index(material)
    diffuse = mats[k].diffuse.copy()
    diffuse[3] = alpha
    mats[k] = dataclasses.replace(mats[k], diffuse=diffuse)
    return dataclasses.replace(model, materials=tuple(mats)), k


def test_straight_alpha_and_translucent_order(gl, sample):
    """A half-transparent material: straight alpha in the colour image; in the UDP (not blended) the
    nearest surface's landmark, exactly as for opaque geometry."""
    from udpgen.render import Renderer, RenderSettings
    from udpgen.render.reference import reference_udp

    model, _ = _with_alpha(sample, "服", 0.5)
    with Renderer(SIZE, settings=RenderSettings(outline=False)) as r:
        ch = r.load(model)
        pose, opaque = ch.pose(), r.load(sample).pose()
        cam = views(pose)[0]
        out, ref = r.render(pose, cam), r.render(opaque, cam)
    geometry, _ = reference_udp(cam, pose.skinned_positions(), visible_faces(model, pose.visible), ch.landmarks)
    compare(out, geometry)
    half = (out.rgba[..., 3] > 100) & (out.rgba[..., 3] < 160)
    assert half.sum() > 50
    # straight alpha: where only the half-transparent cloth covers the background its colour is unchanged
    only = half & (ref.rgba[..., 3] == 255)
    diff = np.abs(out.rgba[only][:, :3].astype(int) - ref.rgba[only][:, :3].astype(int))
    assert np.median(diff) <= 40          # premultiplied would be about half as bright (difference ~100)
    np.testing.assert_array_equal(out.udp[..., 3] > 0, out.rgba[..., 3] > 0)


def test_hidden_material_by_alpha_zero(geo, sample):
    model, k = _with_alpha(sample, "髪", 0.0)
    ch = geo.load(model)
    pose = ch.pose()
    assert not pose.visible[k]
    from udpgen.render.reference import reference_udp

    cam = views(pose)[0]
    ref, _ = reference_udp(cam, pose.skinned_positions(), visible_faces(model, pose.visible), ch.landmarks)
    compare(geo.render(pose, cam), ref)


# -------------------------------------------------------------------------------------------- cameras

def test_camera_json_and_projection(geo, sample_geo, wave):
    from udpgen.render import camera_from_dict

    pose = sample_geo.pose(wave.at(12))
    pts = pose.skinned_positions()[np.unique(visible_faces(sample_geo.model, pose.visible))] * [1, 1, -1]
    for cam in views(pose):
        d = json.loads(json.dumps(cam.to_dict()))
        back = camera_from_dict(d)
        np.testing.assert_allclose(back.projection(), cam.projection())
        uv, depth = cam.project(pts)
        assert (depth > 0).all()
        occ = geo.render(pose, cam).udp[..., 3] > 0
        v, u = np.nonzero(occ)
        # the silhouette's box is the projected vertices' box (to a pixel)
        assert abs(u.min() - uv[:, 0].min()) < 1.5 and abs(u.max() + 1 - uv[:, 0].max()) < 1.5
        assert abs(v.min() - uv[:, 1].min()) < 1.5 and abs(v.max() + 1 - uv[:, 1].max()) < 1.5
        k = d["intrinsics"]
        if d["kind"] == "perspective":      # OpenCV form gives the same pixels
            cv = np.array(d["world_to_camera_opencv"])
            pc = pts @ cv[:3, :3].T + cv[:3, 3]
            np.testing.assert_allclose(k["fx"] * pc[:, 0] / pc[:, 2] + k["cx"], uv[:, 0], atol=1e-6)
            np.testing.assert_allclose(k["fy"] * pc[:, 1] / pc[:, 2] + k["cy"], uv[:, 1], atol=1e-6)


def test_sampler_frames_the_character(geo, sample_geo, wave):
    from udpgen.render import CameraSampler

    sampler = CameraSampler(orthographic_prob=0.3)
    pose = sample_geo.pose(wave.at(50))
    cams = sampler.sample_many(7, 6, *pose.bounding_sphere(), SIZE, SIZE)
    again = sampler.sample_many(7, 6, *pose.bounding_sphere(), SIZE, SIZE)
    assert all(np.array_equal(a.world_to_camera, b.world_to_camera) for a, b in zip(cams, again))
    for cam in cams:
        occ = geo.render(pose, cam).udp[..., 3] > 0
        assert occ.mean() > 0.03
        assert not (occ[0].any() or occ[-1].any() or occ[:, 0].any() or occ[:, -1].any())


def test_landmarks_at_the_box_edges_stay_in_range(full, sample):
    """Landmarks exactly 0 or 1 (clipped vertices outside the canonical box, as chibi and long-haired
    characters have) must read back in [0, 1]: perspective-correct interpolation rounds past them."""
    from udpgen.render import CameraSampler

    n = len(sample.positions)
    edges = np.where(np.arange(n)[:, None] % 2 == 0, 1.0, 0.0).astype(np.float32) * np.ones((1, 3), np.float32)
    ch = full.load(sample, landmarks=edges)
    try:
        pose = ch.pose()
        c, r = pose.bounding_sphere()
        rng = np.random.default_rng(3)
        for _ in range(4):
            cam = CameraSampler().sample(rng, c, r, SIZE, SIZE)
            udp = full.render(pose, cam).udp
            assert udp.min() >= 0.0 and udp.max() <= 1.0
    finally:
        ch.release()
