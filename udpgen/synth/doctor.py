"""The doctor: what a folder of MMD models and motions holds, and what a synthetic run could make of it.

``udpgen doctor MODELS [--motions DIR]`` is what a data engineer runs on a zoo before a big run. Every model
found the way ``udpgen synth`` finds them (:func:`udpgen.synth.sources.discover_models`: recursively, inside
.zip archives too) gets one row:

* the counts of ``udpgen inspect`` (:func:`udpgen.mmd.summary.model_summary`): vertices, faces, bones,
  materials, textures found / missing after lookup (``Model.resolve_texture``);
* humanoid or not: the standard bones canonicalisation needs that the rig lacks
  (:func:`udpgen.rig.canonical.missing_bones`, the check synth's plan makes);
* the rest pose: each upper arm's droop below horizontal in degrees, labelled ``T`` below
  :data:`T_POSE_MAX_DROOP_DEG` (mean of both arms), else ``A``;
* physics: :func:`udpgen.rig.physics.usable_physics`'s summary (bodies and joints kept, and why any are dropped);
  with the engine installed, ``settle``: three seeded random poses settled as synth settles them and how many
  fell back to the kinematic pose (exploding physics; a warning);
* whether canonicalisation succeeds and whether one small test render (the canonical A-pose, one front
  camera, ``render_size`` px, the renderer ``udpgen render`` uses) sees the character and gives a UDP image
  the shard writer accepts;
* for each motion, how many of its bone and morph tracks name the model's bones and morphs;
* a verdict: ``ok``, ``warnings`` (usable, with something to look at: textures missing, physics dropped,
  tolerated oddities the readers warned of, the same file twice) or ``unusable`` (cannot be read, no
  mesh, not humanoid, canonicalisation or the test render failed) and the reason, one line.

Every motion (.vmd/.vpd) gets a row: its kind (bone / morph / camera / light-only / empty; ``pose`` for a
VPD), frame range and track counts. A file that cannot be read is a row with its reason; nothing stops
the run. Models are checked by :func:`udpgen.shards.jobs.run_jobs`, so with ``workers >= 2`` a GL driver
that crashes or hangs on one model costs that model (its row says why), not the run.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.settings import check_settings, setting
from udpgen.mmd import Model, Motion, Pose, load, parse
from udpgen.shards.jobs import describe, run_jobs
from udpgen.synth.sources import ModelSource, discover_models, discover_motions, materialise

__all__ = ["DoctorSettings", "doctor", "check_model", "check_motion", "motion_kind", "rest_label", "format_report",
           "T_POSE_MAX_DROOP_DEG", "VERDICTS", "MOTION_KINDS"]

T_POSE_MAX_DROOP_DEG = 17.5     # half the canonical 35: below it the rest pose is a T-pose
VERDICTS = ("ok", "warnings", "unusable")
MOTION_KINDS = ("bone", "morph", "camera", "light-only", "empty", "pose", "unreadable")
LIST_MAX = 8                    # names listed in one line of text (the JSON lists all)


@dataclass(frozen=True)
class DoctorSettings:
    """render: try one test render per model (off: canonicalisation is the last check); render_size: its
    side in pixels; workers: processes checking models (>= 2: a crash in the GL driver costs one model);
    timeout: seconds one model may take with workers >= 2 (its worker is then killed)."""
    render: bool = setting(True, kind=bool)
    render_size: int = setting(64, kind=int, low=8)
    workers: int = setting(1, kind=int, low=1)
    timeout: float = setting(300.0, low=0, open_low=True)

    def __post_init__(self):
        check_settings(self)


def rest_label(droop_deg: tuple[float, float]) -> str:
    """'T' when the arms' mean droop (degrees below horizontal) is under :data:`T_POSE_MAX_DROOP_DEG`, else 'A'."""
    return "T" if float(np.mean(droop_deg)) < T_POSE_MAX_DROOP_DEG else "A"


def motion_kind(motion: Motion | Pose) -> str:
    """What drives what: 'bone' (bone keys, maybe morphs too), 'morph' (facial only), 'camera', 'light-only'
    (lights or shadows and nothing else), 'empty'; 'pose' for a VPD."""
    if isinstance(motion, Pose):
        return "pose"
    if len(motion.bones):
        return "bone"
    if len(motion.morphs):
        return "morph"
    if len(motion.cameras):
        return "camera"
    if len(motion.lights) or len(motion.shadows):
        return "light-only"
    return "empty"


def check_motion(path) -> tuple[dict, Motion | Pose | None]:
    """(row, motion or None when it cannot be read) for one .vmd/.vpd file."""
    from udpgen.mmd.summary import motion_summary, pose_summary

    row = {"file": str(path), "kind": "unreadable", "frame_range": None, "bone_tracks": 0, "morph_tracks": 0,
           "reason": None, "warnings": [], "models": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            motion = parse(Path(path).read_bytes(), str(path))
            if not isinstance(motion, (Motion, Pose)):
                raise UdpgenError(f"{path}: a model, not a motion or pose")
        except Exception as e:  # noqa: BLE001 - a file that cannot be read is a row, whatever went wrong
            row["reason"] = _oneline(describe(e))
            return row, None
    row["warnings"] = [_oneline(str(w.message)) for w in caught]
    row["kind"] = motion_kind(motion)
    if isinstance(motion, Motion):
        s = motion_summary(motion)
        row.update(frame_range=s["frame_range"], bone_tracks=s["bone_tracks"], morph_tracks=s["morph_tracks"],
                   keyframes=s["keyframes"])
    else:
        s = pose_summary(motion)
        row.update(bone_tracks=s["bones"], morph_tracks=s["morphs"])
    return row, motion


# ------------------------------------------------------------------------------------------------
# One model
# ------------------------------------------------------------------------------------------------

def _oneline(text: str) -> str:
    return " ".join(str(text).split())


class _Checks:
    """A row's problems (make it unusable) and warnings, in the order they were found."""

    def __init__(self):
        self.problems: list[str] = []
        self.warnings: list[str] = []


def check_model(source: ModelSource, motions=(), cache_dir=None, renderer=None) -> dict:
    """One model's row (see the module docstring). ``motions``: [(path, Motion | Pose)] to match tracks
    against; ``cache_dir``: where archives are extracted (a temporary folder of the run); ``renderer``:
    a :class:`udpgen.render.Renderer` for the test render, or None (not tried).
    Never raises for what the file holds: every failure is in the row."""
    from udpgen.mmd.summary import match_names, model_summary

    row = {"file": source.path if source.member is None else f"{source.path}:{source.member}",
           "sha256": source.sha256, "format": None, "vertices": None, "faces": None, "bones": None,
           "materials": None, "textures": None, "humanoid": None, "missing_bones": None, "rest": None,
           "physics": None, "canonical": None, "render": None, "motions": [], "read_warnings": []}
    checks = _Checks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            path = materialise(source, cache_dir) if source.member is not None else Path(source.path)
            model = load(path)
            if not isinstance(model, Model):
                raise UdpgenError(f"{row['file']}: not a model (.pmx/.pmd)")
        except Exception as e:  # noqa: BLE001 - unreadable is a verdict, whatever went wrong
            return _finish(row, checks, unreadable=_oneline(describe(e)))
        row["read_warnings"] = [_oneline(str(w.message)) for w in caught]
        checks.warnings += row["read_warnings"]
        s = model_summary(model)
        row.update(format=s["format"], vertices=s["vertices"], faces=s["faces"], bones=s["bones"],
                   materials=s["materials"], textures=s["textures"])
        if s["textures"]["missing"]:
            missing = s["textures"]["missing"]
            checks.warnings.append(f"{len(missing)} of {s['textures']['used']} textures missing: {_names(missing)}")
        if not (s["vertices"] and s["faces"]):
            checks.problems.append(f"no mesh ({s['vertices']} vertices, {s['faces']} faces): a skeleton, camera or "
                                   f"controller model, not renderable")
        _step(checks, "physics check", lambda: _physics(model, row, checks))
        rig = _step(checks, "rig", lambda: _rig(model, row, checks))
        for mpath, motion in motions:
            m = match_names(model, motion)
            row["motions"].append({"motion": str(mpath), "bones": [m["bones"]["matched"], m["bones"]["tracks"]],
                                   "morphs": [m["morphs"]["matched"], m["morphs"]["tracks"]]})
        canonical = None
        if rig is not None and row["humanoid"]:
            canonical = _step(checks, "canonicalisation", lambda: _canonical(rig, row))
        if rig is not None and row["humanoid"] and _simulates(row):
            _step(checks, "physics settle", lambda: _settle(model, rig, row, checks))
        if canonical is not None and renderer is not None and s["vertices"] and s["faces"]:
            _step(checks, "test render", lambda: _render(renderer, model, rig, canonical, row, checks))
        # what posing, skinning or the draw warned of comes after the reader's warnings
        for w in caught[len(row["read_warnings"]):]:
            msg = _oneline(str(w.message))
            if msg not in checks.warnings:
                checks.warnings.append(msg)
    return _finish(row, checks)


def _step(checks: _Checks, what: str, fn):
    """fn() -> its value; any exception becomes a problem naming the step (the row goes on)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the doctor reports, it does not stop
        checks.problems.append(f"{what} failed: {_oneline(describe(e))}")
        return None


def _physics(model: Model, row: dict, checks: _Checks) -> None:
    from udpgen.rig.physics import usable_physics

    row["physics"] = p = usable_physics(model, warn=False).summary(model)
    if p["dropped"]:
        checks.warnings.append(f"physics would drop {p['rigid_bodies'] - p['kept_bodies']} of {p['rigid_bodies']} "
                               f"rigid bodies and {p['joints'] - p['kept_joints']} of {p['joints']} joints: "
                               f"{_names(p['dropped'])}")


SETTLE_POSES = 3       # seeded random poses settled per model with physics


def _simulates(row: dict) -> bool:
    """Whether to try the simulation: the engine is installed and the model keeps some rigid bodies."""
    from udpgen.rig.physics_world import available

    return bool(row["physics"] and row["physics"]["kept_bodies"]) and available()


def _settle(model: Model, rig, row: dict, checks: _Checks) -> None:
    """Settle SETTLE_POSES random poses as synth does; count the poses whose physics fell back to kinematic."""
    from udpgen.rig.physics_world import character_physics
    from udpgen.rig.sampler import PoseSampler

    ph = character_physics(model, rig.skeleton)
    if ph is None:
        row["physics"]["settle"] = {"poses": 0, "fallbacks": 0, "note": "no dynamic body: poses kinematic"}
        return
    for k, values in enumerate(PoseSampler(rig).sample_many(0, SETTLE_POSES)):
        rig.pose_bones(values, physics=ph.settle([0, k]))
    row["physics"]["settle"] = {"poses": SETTLE_POSES, "fallbacks": ph.fallbacks, "reason": ph.last_fallback}
    if ph.fallbacks:
        checks.warnings.append(f"physics fell back to the kinematic pose in {ph.fallbacks} of {SETTLE_POSES} "
                               f"settled poses ({ph.last_fallback})")


def _rig(model: Model, row: dict, checks: _Checks):
    from udpgen.rig import Rig
    from udpgen.rig.canonical import arm_droop_deg, missing_bones

    rig = Rig(model)
    missing = missing_bones(rig.skeleton)
    row["humanoid"], row["missing_bones"] = not missing, missing
    if missing:
        checks.problems.append(f"not humanoid: no {', '.join(missing)} bone{'s' if len(missing) > 1 else ''}")
    else:
        droop = arm_droop_deg(rig.pose_bones().positions, rig.skeleton)
        row["rest"] = {"droop_deg": [round(float(d), 2) for d in droop], "label": rest_label(droop)}
    return rig


def _canonical(rig, row: dict):
    from udpgen.rig.canonical import canonicalize

    row["canonical"] = {"ok": False}
    canonical = canonicalize(rig)
    row["canonical"] = {"ok": True, "height": round(float(canonical.height), 4)}
    return canonical


def _render(renderer, model: Model, rig, canonical, row: dict, checks: _Checks) -> None:
    """One front view of the canonical A-pose; the renderer's warnings (other than missing textures, which
    the row lists already) become warnings."""
    from udpgen.io.udp import validate
    from udpgen.render import CameraSampler

    row["render"] = {"ok": False}
    before = Counter(renderer.warnings)
    render_log = logging.getLogger("udpgen.render")
    level = render_log.level
    render_log.setLevel(logging.ERROR)        # its per-texture lines repeat what the row says
    char = None
    try:
        char = renderer.load(model, rig=rig, landmarks=canonical.landmarks)
        pose = char.pose(canonical.values)
        centre, radius = pose.bounding_sphere()
        camera = CameraSampler.front(centre, radius, renderer.width, renderer.height, elevation=5.0)
        out = renderer.render(pose, camera)
    finally:
        render_log.setLevel(level)
        if char is not None:
            try:
                char.release()
            except Exception:  # noqa: BLE001 - freeing GL objects of a failed draw must not hide its error
                pass
    validate(out.udp, f"{model.path}: test render")     # the shard writer's check: what synth would refuse
    row["render"] = {"ok": True, "size": renderer.width, "coverage": round(float(out.coverage), 4)}
    new = {k: n - before.get(k, 0) for k, n in renderer.warnings.items() if n > before.get(k, 0)}
    new.pop("missing_texture", None)
    if new:
        row["render"]["warnings"] = new
        checks.warnings.append("render: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(new.items())))


def _finish(row: dict, checks: _Checks, unreadable: str | None = None) -> dict:
    if unreadable is not None:
        row.update(verdict="unusable", reason=f"cannot read: {unreadable}", problems=[unreadable], warnings=[])
        return row
    row["problems"], row["warnings"] = checks.problems, checks.warnings
    if checks.problems:
        row.update(verdict="unusable", reason=checks.problems[0])
    elif checks.warnings:
        row.update(verdict="warnings", reason=checks.warnings[0])
    else:
        row.update(verdict="ok", reason=None)
    return row


# ------------------------------------------------------------------------------------------------
# Workers (udpgen.shards.jobs)
# ------------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(motions, settings: DoctorSettings, cache_dir: str) -> None:
    _WORKER.clear()
    _WORKER.update(motions=motions, settings=settings, cache_dir=cache_dir)


def _worker_renderer():
    """This process's renderer (made on first use); None when rendering is off. A renderer that cannot be
    made raises, failing that model's render step with the reason."""
    settings = _WORKER["settings"]
    if not settings.render:
        return None
    if "renderer" not in _WORKER:
        from udpgen.render import Renderer

        _WORKER["renderer"] = Renderer(settings.render_size)
    return _WORKER["renderer"]


def _check_in_worker(source: ModelSource) -> dict:
    try:
        renderer = _worker_renderer()
    except Exception as e:  # noqa: BLE001 - no GL here: the model's row says so
        renderer, why = None, _oneline(describe(e))
    else:
        why = None
    row = check_model(source, _WORKER["motions"], _WORKER["cache_dir"], renderer)
    if why is not None and row["verdict"] != "unusable":
        row["problems"].append(f"test render failed: {why}")
        row.update(verdict="unusable", reason=row["problems"][0])
    return row


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

def doctor(models_root, motions_root=None, settings: DoctorSettings = DoctorSettings(), progress=None) -> dict:
    """Check every model under ``models_root`` (folder or file) and every motion under ``motions_root``.

    Returns the report: ``{"models_root", "motions_root", "settings", "models": [row...], "motions":
    [row...], "summary": {"models": {"total", "ok", "warnings", "unusable"}, "motions": {"total", kind:
    count...}, "seconds"}}``. UdpgenError only for bad arguments (a path that does not exist, no models).
    progress: optional callable(1) per model checked.
    """
    if not isinstance(settings, DoctorSettings):
        raise UdpgenError(f"doctor settings: expected DoctorSettings, got {type(settings).__name__}")
    started = time.perf_counter()
    sources, problems = discover_models(models_root)
    motion_paths = discover_motions(motions_root)
    if not sources and not problems:
        raise UdpgenError(f"{models_root}: no models (.pmx/.pmd, loose or in .zip archives) found")
    motion_rows, motions = [], []
    for p in motion_paths:
        row, motion = check_motion(p)
        motion_rows.append(row)
        if motion is not None:
            motions.append((str(p), motion))
    render_note = None
    if settings.render:
        from udpgen.render import gl_available

        ok, why = gl_available()
        if not ok:
            render_note = f"not tried: no OpenGL context ({_oneline(why)})"
            settings = replace(settings, render=False)
    with tempfile.TemporaryDirectory(prefix="udpgen-doctor-") as cache:
        def on_done(_outcome) -> None:
            if progress:
                progress(1)

        outcomes = run_jobs(sources, _check_in_worker, workers=settings.workers, timeout=settings.timeout,
                            initializer=_init_worker, initargs=(motions, settings, cache), on_done=on_done)
        renderer = _WORKER.pop("renderer", None)     # made in this process when workers == 1
        if renderer is not None:
            renderer.close()
        _WORKER.clear()
    rows, first_of = [], {}
    for o in outcomes:
        if o.ok:
            row = o.result
        else:                           # the worker died or timed out (twice), or check_model itself failed
            row = {"file": o.job.path if o.job.member is None else f"{o.job.path}:{o.job.member}",
                   "sha256": o.job.sha256, "verdict": "unusable", "reason": _oneline(o.error),
                   "problems": [_oneline(o.error)], "warnings": [], "motions": []}
        first = first_of.setdefault(row["sha256"], row["file"])
        if first != row["file"]:
            row["warnings"].append(f"same bytes as {first} (synth uses one of them)")
            if row["verdict"] == "ok":
                row.update(verdict="warnings", reason=row["warnings"][0])
        rows.append(row)
    for p in problems:                  # unreadable archives
        rows.append({"file": p["file"], "sha256": None, "verdict": "unusable", "reason": _oneline(p["reason"]),
                     "problems": [_oneline(p["reason"])], "warnings": [], "motions": []})
    by_motion = {r["file"]: r for r in motion_rows}
    for row in rows:
        for m in row.get("motions", []):
            by_motion[m["motion"]]["models"].append({"model": row["file"], "bones": m["bones"],
                                                     "morphs": m["morphs"]})
    verdicts = Counter(r["verdict"] for r in rows)
    kinds = Counter(r["kind"] for r in motion_rows)
    summary = {"models": {"total": len(rows), **{v: verdicts.get(v, 0) for v in VERDICTS}},
               "motions": {"total": len(motion_rows), **{k: kinds.get(k, 0) for k in MOTION_KINDS if kinds.get(k)}},
               "seconds": round(time.perf_counter() - started, 3)}
    return {"models_root": str(models_root), "motions_root": str(motions_root) if motions_root else None,
            "settings": asdict(settings),
            "render_note": render_note, "models": rows, "motions": motion_rows, "summary": summary}


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    width = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, width)).rstrip()   # noqa: E731
    return [fmt(header)] + [fmt(r) for r in rows]


def _names(items: list[str]) -> str:
    if len(items) <= LIST_MAX:
        return ", ".join(items)
    return ", ".join(items[:LIST_MAX]) + f", ... ({len(items)} in all)"


def _short(path: str, root: str) -> str:
    """``path`` (a file, or 'archive.zip:member') relative to the run's root folder when below it; the
    rows keep the full path."""
    prefix = root.rstrip(os.sep) + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path


def _model_cells(r: dict, root: str) -> list[str]:
    def get(key, fmt=str, default="-"):
        v = r.get(key)
        return default if v is None else fmt(v)

    rest = r.get("rest")
    phys = r.get("physics")
    tex = r.get("textures")
    canon, render = r.get("canonical"), r.get("render")
    return [_short(r["file"], root), r["verdict"],
            get("vertices"), get("faces"),
            "-" if r.get("humanoid") is None else "yes" if r["humanoid"] else "no",
            f"{rest['label']} {np.mean(rest['droop_deg']):.1f}" if rest else "-",
            f"{phys['kept_bodies']}/{phys['rigid_bodies']}" if phys else "-",
            f"{phys['kept_joints']}/{phys['joints']}" if phys else "-",
            _settled(phys),
            f"{tex['found']}/{tex['used']}" if tex else "-",
            "-" if canon is None else "ok" if canon.get("ok") else "FAIL",
            "-" if render is None else "ok" if render.get("ok") else "FAIL",
            r.get("reason") or ""]


def _settled(phys: dict | None) -> str:
    """'3/3' poses simulated without falling back, '-' when not simulated."""
    st = (phys or {}).get("settle")
    return f"{st['poses'] - st['fallbacks']}/{st['poses']}" if st and st["poses"] else "-"


def format_report(report: dict) -> str:
    """The report as text for a terminal: a model table, a motion table (with per-model track matches),
    the problems and warnings of each model, and the summary."""
    root = report["models_root"]
    root_dir = root if Path(root).is_dir() else str(Path(root).parent)
    lines = [f"models ({len(report['models'])}) under {root}"]
    lines += _table(["model", "verdict", "verts", "faces", "humanoid", "rest", "bodies", "joints", "settled",
                     "textures",
                     "canon", "render", "reason"], [_model_cells(r, root_dir) for r in report["models"]])
    details = []
    for r in report["models"]:             # what the reason column does not show
        for text in r["problems"] + r["warnings"]:
            if text != r["reason"] and not (r["reason"] or "").endswith(text):
                details.append(f"  {_short(r['file'], root_dir)}: {text}")
    if details:
        lines += ["details:"] + details
    if report["render_note"]:
        lines.append(f"test render: {report['render_note']}")
    if report["motions"]:
        mroot = report["motions_root"]
        mroot_dir = mroot if Path(mroot).is_dir() else str(Path(mroot).parent)
        lines += ["", f"motions ({len(report['motions'])}) under {mroot}"]
        mrows = []
        for m in report["motions"]:
            fr = m["frame_range"]
            tracks = [f"{_short(x['model'], root_dir)} {x['bones'][0]}/{x['bones'][1]}" for x in m["models"]]
            mrows.append([_short(m["file"], mroot_dir), m["kind"], f"{fr[0]}-{fr[1]}" if fr else "-",
                          str(m["bone_tracks"]), str(m["morph_tracks"]),
                          m["reason"] or (_names(tracks) if m["bone_tracks"] else "")])
        lines += _table(["motion", "kind", "frames", "bone tracks", "morph tracks",
                         "bone tracks each model has (matched/total), or reason"], mrows)
    s = report["summary"]
    rows = [["models", str(s["models"]["total"]), ", ".join(f"{v} {s['models'][v]}" for v in VERDICTS)]]
    if report["motions_root"]:
        rows.append(["motions", str(s["motions"]["total"]),
                     ", ".join(f"{k} {s['motions'][k]}" for k in MOTION_KINDS if k in s["motions"])])
    lines += ["", "summary"] + _table(["", "total", "by verdict / kind"], rows)
    lines.append(f"checked in {s['seconds']:.1f} s")
    return "\n".join(lines)
