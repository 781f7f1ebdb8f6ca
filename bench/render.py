"""Paired UDP + RGBA images per second on one core: udpgen.render beside a stock-pyrender baseline.

One "pair" is everything a shard writer needs for one view: pose the model at a motion frame, frame it
with a seeded random camera, render the UDP and the colour image, and encode them in the shard formats
(UDP as a 16-bit PNG via udpgen.io.udp.encode_png16, RGBA as an 8-bit PNG).

The baseline is what a user would write with stock pyrender: numpy skinning (udpgen.rig), a new
pyrender.Mesh per frame with the landmarks as vertex colours (rendered FLAT) and a second one with the
textured materials (rendered lit), pyrender.OffscreenRenderer, 8-bit readback, np.savez_compressed.
Same poses, same cameras, same process, same GL (this process's EGL/OSMesa device).

Goal (issue): at least 3x the baseline's pairs/s on CPU (Mesa llvmpipe).

    python bench/render.py [--pairs 10] [--sizes 256 512] [--model PATH --motion PATH]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, pin_one_core, report  # noqa: E402


class Ours:
    """udpgen.render: one draw, float UDP + RGBA, encoded as in the shards."""

    def __init__(self, model, size: int, landmarks):
        from udpgen.render import Renderer

        self.r = Renderer(size)
        self.ch = self.r.load(model, landmarks=landmarks)

    def pair(self, values, camera_for) -> int:
        from udpgen.shards import encode_rgba
        from udpgen.io.udp import encode_png16

        pose = self.ch.pose(values)
        res = self.r.render(pose, camera_for(pose.bounding_sphere()))
        return len(encode_png16(res.udp)) + len(encode_rgba(res.rgba))

    def close(self):
        self.r.close()


class PyrenderBaseline:
    """Stock pyrender, as a user would write it (see the module docstring)."""

    def __init__(self, model, size: int, landmarks):
        import pyrender

        from udpgen.render.texture import load_rgba
        from udpgen.rig import Rig

        self.model, self.rig, self.size = model, Rig(model), size
        self.colors = landmarks
        self.r = pyrender.OffscreenRenderer(size, size)
        self.materials = []
        for m in model.materials:
            path = model.resolve_texture(m.texture_index)
            tex = pyrender.Texture(source=load_rgba(path, 4096)[0], source_channels="RGBA") if path else None
            self.materials.append(pyrender.MetallicRoughnessMaterial(
                baseColorFactor=list(m.diffuse), baseColorTexture=tex, metallicFactor=0.0, roughnessFactor=1.0,
                alphaMode="BLEND" if m.diffuse[3] < 1 else "MASK", doubleSided=True))

    def pair(self, values, camera_for) -> int:
        import numpy as np
        import pyrender

        from udpgen.rig.mesh import to_right_handed, visible_faces

        posed = self.rig.pose(values)
        pos, faces = to_right_handed(posed.positions, visible_faces(self.model, posed.materials.visible))
        nrm = posed.normals * np.array([1.0, 1.0, -1.0])
        uv = posed.uvs.copy()
        uv[:, 1] = 1.0 - uv[:, 1]
        used = np.unique(faces)
        from udpgen.render.camera import bounding_sphere

        cam = camera_for(bounding_sphere(pos[used]))
        pcam = (pyrender.PerspectiveCamera(yfov=cam.yfov, aspectRatio=1.0, znear=cam.znear, zfar=cam.zfar)
                if cam.kind == "perspective" else
                pyrender.OrthographicCamera(xmag=cam.ymag, ymag=cam.ymag, znear=cam.znear, zfar=cam.zfar))
        cam_pose = np.linalg.inv(cam.world_to_camera)
        # UDP: landmark colours, flat
        udp_mesh = pyrender.Mesh([pyrender.Primitive(positions=pos, indices=faces, color_0=self.colors)])
        scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(1.0, 1.0, 1.0))
        scene.add(udp_mesh)
        scene.add(pcam, pose=cam_pose)
        udp, _ = self.r.render(scene, flags=pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA)
        # colour: one primitive per visible material, lit
        prims = []
        for (start, count), m, vis in zip(self.model.material_faces(), self.materials, posed.materials.visible):
            if vis and count:
                f = self.model.faces[start:start + count][:, [0, 2, 1]]
                prims.append(pyrender.Primitive(positions=pos, normals=nrm, texcoord_0=uv, indices=f, material=m))
        scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(0.4, 0.4, 0.4))
        scene.add(pyrender.Mesh(prims))
        scene.add(pcam, pose=cam_pose)
        scene.add(pyrender.DirectionalLight(intensity=2.5), pose=cam_pose)
        rgba, _ = self.r.render(scene, flags=pyrender.RenderFlags.RGBA)
        buf = io.BytesIO()
        np.savez_compressed(buf, udp=udp, rgba=rgba)
        return buf.tell()

    def close(self):
        self.r.delete()


def time_interleaved(methods: dict, values, cameras: dict, count: int) -> dict:
    """{name: (wall seconds list, process CPU seconds list)}: the methods take turns pair by pair (in a
    rotating order), so a machine shared with other jobs slows them alike."""
    for name, m in methods.items():
        m.pair(values[0], cameras[name])                # warm up: shader compiles, texture uploads
    out = {name: ([], []) for name in methods}
    names = list(methods)
    for k in range(count):
        for name in names[k % len(names):] + names[:k % len(names)]:
            w, c = time.perf_counter(), time.process_time()
            methods[name].pair(values[k % len(values)], cameras[name])
            out[name][0].append(time.perf_counter() - w)
            out[name][1].append(time.process_time() - c)
    return out


def _camera_stream(size: int):
    """camera_for(sphere) drawing from one seeded stream: every method gets the same camera sequence."""
    import numpy as np

    from udpgen.render import CameraSampler

    rng, sampler = np.random.default_rng(0), CameraSampler()
    return lambda sphere: sampler.sample(rng, sphere[0], sphere[1], size, size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10, help="pairs timed per model, size and method")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--model", type=Path, action="append")
    ap.add_argument("--motion", type=Path, action="append")
    args = ap.parse_args()
    os.environ.setdefault("LP_NUM_THREADS", "1")        # llvmpipe: no extra raster threads on one core
    pin_one_core()
    import numpy as np

    from udpgen.mmd import load
    from udpgen.render import get_context
    from udpgen.rig import MotionSampler, Rig
    from udpgen.rig.canonical import canonicalize

    ctx = get_context()                                 # sets PYOPENGL_PLATFORM before pyrender imports OpenGL
    repo = Path(__file__).resolve().parents[1]
    jobs = list(zip(args.model, args.motion)) if args.model else [
        (p, m) for p, m in ((SHARED / "assets/gene/Gene_light.pmx", SHARED / "assets/gene/motion/02_laugh.vmd"),
                            (repo / "assets/sample/sample.pmx", repo / "assets/sample/wave.vmd")) if p.is_file()]
    rows = []
    for model_path, motion_path in jobs:
        model, motion = load(model_path), load(motion_path)
        sampler = MotionSampler(model, motion)
        landmarks = canonicalize(Rig(model)).landmarks
        values = [sampler.at(f) for f in np.linspace(*sampler.frame_range, 8)]
        for size in args.sizes:
            methods = {"udpgen": Ours(model, size, landmarks),
                       "pyrender": PyrenderBaseline(model, size, landmarks)}   # created last: its delete()
            cameras = {name: _camera_stream(size) for name in methods}     # ends our EGL display
            result = time_interleaved(methods, values, cameras, args.pairs)
            for m in methods.values():
                m.close()
            (ours, ours_cpu), (base, base_cpu) = (
                (statistics.median(result[k][0]), statistics.median(result[k][1])) for k in ("udpgen", "pyrender"))
            rows.append({"model": model_path.name, "size": size, "udpgen_ms": ours * 1e3, "udpgen_pairs_s": 1 / ours,
                         "pyrender_ms": base * 1e3, "pyrender_pairs_s": 1 / base, "ratio": base / ours,
                         "cpu_ratio": base_cpu / ours_cpu, "meets_3x": base / ours >= 3.0})
    if not rows:
        sys.exit("no model found: pass --model/--motion or put ../shared beside the checkout")
    report("render", rows, {"pairs": args.pairs, "cores": 1, "gl": ctx.describe(), "goal_ratio": 3.0,
                            "note": "per pair: pose + camera + render + encode (udpgen: 16-bit PNG UDP via "
                                    "udpgen.io.udp.encode_png16 + 8-bit PNG RGBA via udpgen.shards.encode_rgba; pyrender: two renders, 8-bit readback, "
                                    "np.savez_compressed); medians of per-pair wall times, the methods taking turns pair by "
                                    "pair; cpu_ratio: the same from process CPU time (robust to other jobs on the core)"})


if __name__ == "__main__":
    main()
