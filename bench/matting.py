"""Matting quality and speed against exact alpha: `python -m bench.matting [--n 24] [--size 512]`.

A second table (``matting_styles``; ``--styles N`` drawings per cell, ``--styles-only`` for it alone)
covers line-art styles the first set lacks (:func:`synth_character` styles: gapped outlines around a
white torso, semi-transparent strokes, soft anti-aliased edges, and clean ones) on white, a flat colour,
a photo of udpgen's built-in set and an 'unseen' photo (skimage images outside it: see UNSEEN), for
matte() and for the previous method (plain flood fill, gap_px=0) on the same images, and with
``--model CK`` for matte() given the network's mask ('matte+model'): mean and worst IoU, mean alpha
error over the image and over the edge band, images/s (one core; with the network, its inference
included where it runs: textured backgrounds).

Ground truth: RGBA cut-outs with exact alpha. The project's own renders (udpgen.render of the sample
character and, when ../shared is there, Gene, in random poses and views) make up half the set when a GL
context is available; the rest are anime-like characters synthesised here: flat fills,
dark outlines, a head, hair spikes, a torso, arms that close an enclosed pocket against the body, legs
with a gap, drawn at 4x and area-downsampled so edge alpha is the exact coverage.

Each cut-out is composited (straight alpha, C = aF + (1-a)B) on four background types: white, a random
flat colour, a random flat colour or white saved as JPEG q85, and a textured photo from skimage.data.
Reported per type, for udpgen.drawn.matting.matte and for a cv2.grabCut baseline (rectangle init 4 px inside
the frame, 5 iterations, hard mask): mean IoU of alpha > 0.5, mean SAD (sum |alpha - alpha_gt| over the
image, in thousands, the matting literature's unit), failures (IoU < 0.9). Also: images/s of matte() at
the given size on one core, and how well confidence ranks failures (share of failures that land in the
lowest-confidence 10 % of all images, and the same for a random ranking for scale).
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run from a checkout
from bench.common import median_seconds, pin_one_core, report  # noqa: E402
from udpgen.drawn.matting import matte

REPO = Path(__file__).resolve().parents[1]
SS = 4  # supersampling factor of the synthetic characters


def _hsv(rng, s, v):
    """A random saturated-ish RGB colour (tuple of ints) with saturation in s, value in v."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(*s), rng.integers(*v)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


STYLES = ("clean", "gapped", "translucent", "soft")


def synth_character(rng: np.random.Generator, size: int = 512, style: str = "clean") -> np.ndarray:
    """An anime-like flat-coloured character, (size, size, 4) uint8 straight RGBA with exact coverage alpha.

    style: "clean" (closed outlines); "gapped" (sketchy line art: a white torso, like a white jacket on a
    white page, whose shoulder line and hem have 4-7 breaks of 2-5 px, repainted with the fill, alpha kept);
    "translucent" (as clean, plus thin semi-transparent strokes of alpha 0.3-0.7 sticking out of the
    silhouette: loose hair strands, pencil-like line art); "soft" (as clean, blurred by a Gaussian of
    0.6-1.2 px: a painted, softly anti-aliased edge)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    S = size * SS
    col = np.zeros((S, S, 3), np.uint8)
    cov = np.zeros((S, S), np.uint8)
    outline = _hsv(rng, (0, 120), (10, 70))
    t = int(SS * rng.uniform(1.5, 3.5))  # outline thickness, in output pixels times SS
    cx = S // 2 + int(rng.uniform(-0.08, 0.08) * S)
    u = S / 512  # unit: one pixel of a 512 image

    def poly(pts, fill):
        pts = np.int32(np.round(pts)).reshape(-1, 1, 2)
        cv2.fillPoly(col, [pts], fill, cv2.LINE_8)
        cv2.polylines(col, [pts], True, outline, t, cv2.LINE_8)
        cv2.fillPoly(cov, [pts], 255)
        cv2.polylines(cov, [pts], True, 255, t, cv2.LINE_8)

    def ellipse(c, axes, fill):
        pts = cv2.ellipse2Poly((int(c[0]), int(c[1])), (int(axes[0]), int(axes[1])), 0, 0, 360, 4)
        poly(pts, fill)

    skin = _hsv(rng, (20, 80), (200, 250))
    cloth, cloth2 = _hsv(rng, (60, 255), (80, 240)), _hsv(rng, (40, 255), (60, 230))
    if style == "gapped":
        cloth = (255, 255, 255)
    hair = _hsv(rng, (30, 255), (40, 250))
    head_r = rng.uniform(55, 75) * u
    head_y = rng.uniform(1.5 * head_r / u + 12, 130) * u  # hair spikes reach 1.5 head radii up
    shoulder_y, hip_y = head_y + head_r + 20 * u, head_y + head_r + rng.uniform(150, 190) * u
    half_w = rng.uniform(45, 70) * u
    # Legs (a gap between them, open to the bottom of the figure).
    for side in (-1, 1):
        x0 = cx + side * rng.uniform(10, 20) * u
        x1 = cx + side * rng.uniform(35, 55) * u
        foot = min(S - 20 * u, hip_y + rng.uniform(140, 190) * u)
        poly([(x0, hip_y - 10 * u), (x1, hip_y - 10 * u), (x1 + side * 8 * u, foot), (x0, foot)], cloth2)
    # Torso.
    torso = [(cx - half_w, shoulder_y), (cx + half_w, shoulder_y), (cx + half_w * 1.2, hip_y),
             (cx - half_w * 1.2, hip_y)]
    poly(torso, cloth)
    # Arms: one closes a pocket against the hip, the other hangs free or rises.
    for side in (-1, 1):
        sx = cx + side * half_w
        ex = sx + side * rng.uniform(50, 80) * u
        if side == -1 or rng.random() < 0.5:
            path = [(sx, shoulder_y + 10 * u), (ex, shoulder_y + 70 * u), (cx + side * half_w * 1.15, hip_y - 20 * u)]
        else:
            path = [(sx, shoulder_y + 10 * u), (ex, shoulder_y - rng.uniform(0, 60) * u),
                    (ex + side * 30 * u, shoulder_y - 100 * u)]
        for p, q in zip(path[:-1], path[1:]):
            d = np.subtract(q, p)
            n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * 14 * u
            poly([p + n, q + n, q - n, p - n], skin)
        ellipse(path[-1], (16 * u, 16 * u), skin)
    # Head, hair spikes, eyes with highlights (small white spots must stay foreground).
    spikes = []
    for a in np.linspace(np.pi * 1.05, np.pi * 1.95, int(rng.integers(5, 9))):
        r = head_r * rng.uniform(1.15, 1.5)
        spikes.append((cx + np.cos(a) * r, head_y + np.sin(a) * r))
    back = [(cx + head_r * 1.1, head_y + head_r * rng.uniform(0.6, 1.4)),
            (cx - head_r * 1.1, head_y + head_r * rng.uniform(0.6, 1.4))]
    poly([back[1]] + spikes + [back[0]], hair)
    ellipse((cx, head_y), (head_r, head_r * 1.05), skin)
    for side in (-1, 1):
        e = (cx + side * head_r * 0.4, head_y + head_r * 0.15)
        ellipse(e, (head_r * 0.14, head_r * 0.2), _hsv(rng, (80, 255), (60, 200)))
        cv2.circle(col, (int(e[0] - 4 * u), int(e[1] - 5 * u)), int(4 * u), (255, 255, 255), -1)
    if style == "gapped":  # breaks in the shoulder line and the hem, which face the outside background
        for _ in range(int(rng.integers(4, 8))):
            k = int(rng.integers(0, 2))
            p, q = (np.array(torso[0]), np.array(torso[1])) if k == 0 else (np.array(torso[2]), np.array(torso[3]))
            c = p + rng.uniform(0.2, 0.8) * (q - p)
            g = int(rng.uniform(1.0, 2.5) * SS)  # radius: breaks of 2-5 output px (wide enough to cut the line)
            m = np.zeros((S, S), np.uint8)
            cv2.circle(m, (int(c[0]), int(c[1])), max(g, t // 2 + SS // 2), 1, -1)
            m = m.astype(bool) & (cov > 0)
            col[m] = cloth
    if style == "translucent":
        for _ in range(int(rng.integers(3, 7))):
            a0 = rng.uniform(np.pi * 0.9, np.pi * 2.1)
            p = (cx + np.cos(a0) * head_r * 1.0, head_y + np.sin(a0) * head_r * 1.0)
            q = (p[0] + np.cos(a0) * rng.uniform(40, 90) * u, p[1] + np.sin(a0) * rng.uniform(40, 90) * u)
            m = np.zeros((S, S), np.uint8)
            cv2.line(m, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, max(1, int(rng.uniform(1.5, 3) * SS)))
            m = m.astype(bool) & (cov == 0)
            col[m] = outline
            cov[m] = int(255 * rng.uniform(0.3, 0.7))
    a = cov.astype(np.float32) / 255
    pre = cv2.resize(col.astype(np.float32) * a[..., None], (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    if style == "soft":
        sigma = rng.uniform(0.6, 1.2)
        pre, alpha = cv2.GaussianBlur(pre, (0, 0), sigma), cv2.GaussianBlur(alpha, (0, 0), sigma)
    rgb = np.where(alpha[..., None] > 0, pre / np.maximum(alpha[..., None], 1e-6), 0)
    return np.dstack([np.clip(np.round(rgb), 0, 255), np.round(alpha * 255)]).astype(np.uint8)


def project_renders(n: int, size: int, seed: int) -> list[np.ndarray]:
    """n renders (straight-alpha RGBA, exact alpha) of the project's characters, or [] without GL."""
    from udpgen.render import CameraSampler, Renderer, gl_available
    if n <= 0 or not gl_available()[0]:
        return []
    from bench.common import SHARED
    from udpgen.mmd import load
    from udpgen.rig import Rig
    from udpgen.rig.sampler import PoseSampler
    paths = [p for p in (REPO / "assets/sample/sample.pmx", SHARED / "assets/gene/Gene_light.pmx") if p.is_file()]
    out, rng = [], np.random.default_rng(seed)
    with Renderer(size) as r:
        for k, path in enumerate(paths):
            model = load(path)
            rig = Rig(model)
            char = r.load(model, rig=rig)
            count = n // len(paths) + (k < n % len(paths))
            for values in PoseSampler(rig).sample_many(seed + k, count):
                pose = char.pose(values)
                out.append(r.render(pose, CameraSampler().sample(rng, *pose.bounding_sphere(), size, size)).rgba)
    return out


def load_truth(n: int, size: int, rng, renders: int) -> list[tuple[str, np.ndarray]]:
    """n ground-truth (source, RGBA cut-out): ``renders`` of the project's own characters ('render'), then
    synthetic ones ('drawn')."""
    out = [("render", im) for im in project_renders(min(renders, n), size, int(rng.integers(1 << 30)))]
    while len(out) < n:
        out.append(("drawn", synth_character(rng, size)))
    return out


def _photos(size):
    from udpgen.backgrounds.sets import builtin_backgrounds, fit
    return [fit(im, size) for _, im in builtin_backgrounds()]


# skimage.data images in the wheel that are not udpgen's built-in backgrounds, so no `conr train-matte` run
# has composited on them (it uses the built-in set): photos held out to judge the network. Read at run time
# for this benchmark only (their licence lines are not the explicit CC0/PD grants BUILTIN requires).
UNSEEN = ("moon", "coins", "clock", "page", "immunohistochemistry", "retina")


def _unseen_photos(size):
    import skimage.data

    from udpgen.backgrounds.sets import fit
    return [fit(np.asarray(getattr(skimage.data, name)(), dtype=np.uint8), size) for name in UNSEEN]


def composite_on(rgba, kind, rng, photos):
    """The cut-out on one background type -> (H, W, 3) uint8."""
    h, w = rgba.shape[:2]
    if kind == "white":
        bg = np.full((h, w, 3), 255, np.float32)
    elif kind in ("flat", "jpeg85"):
        c = (255, 255, 255) if kind == "jpeg85" and rng.random() < 0.5 else _hsv(rng, (0, 255), (40, 255))
        bg = np.broadcast_to(np.float32(c), (h, w, 3))
    else:
        bg = photos[rng.integers(len(photos))].astype(np.float32)
    a = rgba[..., 3:].astype(np.float32) / 255
    out = np.clip(np.round(a * rgba[..., :3] + (1 - a) * bg), 0, 255).astype(np.uint8)
    if kind == "jpeg85":
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=85)
        out = np.asarray(Image.open(buf).convert("RGB"))
    return out


def grabcut(rgb):
    mask = np.zeros(rgb.shape[:2], np.uint8)
    h, w = mask.shape
    cv2.grabCut(rgb[..., ::-1].copy(), mask, (4, 4, w - 8, h - 8), np.zeros((1, 65), np.float64),
                np.zeros((1, 65), np.float64), 5, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def scores(alpha, gt):
    p, g = alpha > 0.5, gt > 0.5
    union = np.count_nonzero(p | g)
    return (np.count_nonzero(p & g) / union if union else 1.0), float(np.abs(alpha - gt).sum() / 1000)


def alpha_errors(alpha, gt) -> tuple[float, float]:
    """Mean |alpha - gt| over the whole image, and over the edge band (pixels within 3 px of a pixel
    whose true alpha is neither 0 nor 1, or of the true silhouette's boundary): the second is what
    the soft-alpha step decides."""
    soft = ((gt > 0) & (gt < 1)).astype(np.uint8)
    g = (gt > 0.5).astype(np.uint8)
    rim = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    band = cv2.dilate(soft | rim, np.ones((7, 7), np.uint8)).astype(bool)
    err = np.abs(alpha - gt)
    return float(err.mean()), float(err[band].mean()) if band.any() else 0.0


def styles_table(n: int, size: int, rng, photos, model=None, unseen=None) -> list[dict]:
    """Line-art styles (see :func:`synth_character`) on white, a flat colour, a photo of the built-in set
    and, given ``unseen`` photos, one of those ('unseen', drawn with their own generator so that the other
    cells keep their images): matte() with today's settings against the previous method (plain flood
    fill, ``gap_px=0``) on the same images, and with ``model`` (a ``conr train-matte`` checkpoint) also
    matte() seeded by its mask ("matte+model")."""
    from udpgen.drawn.matting import MattingSettings
    methods = {"matte": MattingSettings(), "previous": MattingSettings(gap_px=0)}
    seed = None
    if model is not None:
        from udpgen.drawn.masks import network_prior
        seed = network_prior(model)
        methods["matte+model"] = MattingSettings()
    rows = []
    for style in STYLES:
        truth = [synth_character(rng, size, style) for _ in range(n)]
        kinds = [("white", "white", rng, photos), ("flat", "flat", rng, photos), ("photo", "textured", rng, photos)]
        if unseen:
            kinds.append(("unseen", "textured", np.random.default_rng([n, STYLES.index(style)]), unseen))
        for kind, composite, r, pool in kinds:
            imgs = [composite_on(gt, composite, r, pool) for gt in truth]
            for name, st in methods.items():
                v, seconds = [], 0.0
                for gt, img in zip(truth, imgs):
                    ga = gt[..., 3].astype(np.float32) / 255
                    t = time.perf_counter()  # the network's markers included: what `udpgen matte --model` costs
                    a = matte(img, settings=st, prior=(lambda: seed(img)) if name == "matte+model" else None).alpha
                    seconds += time.perf_counter() - t
                    v.append((scores(a, ga)[0], *alpha_errors(a, ga)))
                v = np.array(v)
                rows.append({"style": style, "background": kind, "method": name, "images": n,
                             "mean_iou": float(v[:, 0].mean()), "min_iou": float(v[:, 0].min()),
                             "alpha_err": float(v[:, 1].mean()), "band_alpha_err": float(v[:, 2].mean()),
                             "images_per_s": n / seconds})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="cut-outs per background type")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-grabcut", action="store_true", help="skip the (slow) grabCut baseline")
    ap.add_argument("--renders", type=int, default=None, help="renders of the project's characters (default n/2)")
    ap.add_argument("--styles", type=int, default=8, help="drawings per line-art style and background in the"
                    " styles table (gapped / translucent / soft outlines; 0: skip it)")
    ap.add_argument("--styles-only", action="store_true", help="only the styles table (and the speed figure)")
    ap.add_argument("--model", default=None, help="a `conr train-matte` checkpoint: the styles table gains "
                    "'matte+model' (matte seeded by its mask)")
    args = ap.parse_args(argv)
    pin_one_core()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    if args.styles:
        report("matting_styles", styles_table(args.styles, args.size, np.random.default_rng(args.seed + 1),
                                              _photos(args.size), args.model, _unseen_photos(args.size)),
               {"size": args.size, "seed": args.seed, "model": args.model})
    if args.styles_only:
        imgs = [composite_on(synth_character(rng, args.size, st), "white", rng, None)
                for st in STYLES for _ in range(2)]
        it = iter(range(10 ** 9))
        sec, _ = median_seconds(lambda: matte(imgs[next(it) % len(imgs)]), repeats=15, warmup=2)
        print(f"matte(): {1 / sec:.1f} images/s at {args.size} px on one core (line-art styles, white)")
        return 0
    truth = load_truth(args.n, args.size, rng, args.n // 2 if args.renders is None else args.renders)
    photos = _photos(args.size)
    rows, confs, ious = [], [], []
    for kind in ("white", "flat", "jpeg85", "textured"):
        res = {}
        for source, gt in truth:
            img = composite_on(gt, kind, rng, photos)
            ga = gt[..., 3].astype(np.float32) / 255
            r = matte(img)
            res.setdefault(("matte", source), []).append(scores(r.alpha, ga))
            confs.append(r.confidence)
            ious.append(res[("matte", source)][-1][0])
            if not args.no_grabcut:
                res.setdefault(("grabcut", source), []).append(scores(grabcut(img), ga))
        for (method, source), v in sorted(res.items()):
            v = np.array(v)
            rows.append({"background": kind, "truth": source, "method": method, "images": len(v),
                         "mean_iou": float(v[:, 0].mean()), "min_iou": float(v[:, 0].min()),
                         "mean_sad_k": float(v[:, 1].mean()), "failures": int((v[:, 0] < 0.9).sum())})
    confs, ious = np.array(confs), np.array(ious)
    fail = ious < 0.9
    low = confs <= np.quantile(confs, 0.10)
    share = float((fail & low).sum() / fail.sum()) if fail.any() else float("nan")
    speed_imgs = [composite_on(g, "white", rng, photos) for _, g in truth[:8]]
    it = iter(range(10 ** 9))
    sec, _ = median_seconds(lambda: matte(speed_imgs[next(it) % len(speed_imgs)]), repeats=15, warmup=2)
    extra = {"size": args.size, "seed": args.seed, "images_per_second_one_core": 1 / sec,
             "failures_total": int(fail.sum()), "images_total": int(len(ious)),
             "failure_share_in_lowest_conf_10pct": share, "lowest_10pct_count": int(low.sum()),
             "mean_conf_failures": float(confs[fail].mean()) if fail.any() else None,
             "mean_conf_successes": float(confs[~fail].mean()) if (~fail).any() else None,
             "goal": {"flat_mean_iou": 0.97, "images_per_second": 20}}
    report("matting", rows, extra)
    print(f"matte(): {1 / sec:.1f} images/s at {args.size} px on one core; failures (IoU<0.9): {int(fail.sum())}"
          f"/{len(ious)}, share in lowest-confidence 10%: {share:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
