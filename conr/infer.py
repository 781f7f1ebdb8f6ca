"""Inference: a character sheet encoded once + a sequence of target UDPs -> frames; images -> UDPs.

The paper's inference: "when generating more than one pose, we feed different UDPs and keep the same
reference character sheet". :class:`Animator` encodes the sheet once (:meth:`CoNR.encode`) and renders
batches of T target poses from that encoding (:meth:`CoNR.render` with (1, T, 4, S, S) UDPs); with
``encode_once=False`` it runs the whole network per frame instead (the reference path, for checks and the
benchmark).

Geometry, as the official CoNR pipeline prepares inputs (its "auto-centering and zero padding" crop at
scale 1 without jitter): every image is cut to a square centred on the bounding box of its alpha (sheet
images) or occupancy (target UDPs), of side ``max(box h, box w) * (1 + margin)``, padded with zeros where
the square leaves the image, and resized to the model's side S. So sheet images of different sizes and
target UDPs of any resolution all work: each is cropped on its own. A rendered frame is resized back to its
square and pasted into a canvas of its UDP's original size (RGBA straight alpha, transparent elsewhere).

Sheet images without a meaningful alpha channel (RGB files, or alpha all opaque) are cut out with
:func:`udpgen.drawn.matting.matte` (its confidence is reported; below 0.5 the matte deserves a look).

Typical use::

    model, cfg = model_from_checkpoint("runs/tiny/ckpt/last.pt")
    sheet = load_sheet("sheet/", cfg.model.image_size)            # SheetInput: refs (n, 4, S, S)
    anim = Animator(model, sheet.refs)
    for frame in anim.frames(read_pose_files(list_pose_files("poses/"))):
        ...                                                       # Frame: rgba (H, W, 4) uint8
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from conr.config import RunConfig
from conr.data import resize_nearest
from conr.errors import ConrError, WeightsError
from conr.nn.conr import CoNR
from udpgen.io.alpha import premultiply, unpremultiply
from udpgen.io.images import IMAGE_SUFFIXES, list_images

POSE_EXTS = (".png", ".npz", ".exr")
MARGIN = 0.1          # crop side = (1 + MARGIN) x the longer side of the character's bounding box


class InferenceError(ConrError):
    """Inputs of inference cannot be used: an empty sheet folder, an image without a character, no poses."""


# ----------------------------------------------------------------------------------------------------
# The model


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CoNR, RunConfig]:
    """A ``conr train`` checkpoint -> (CoNR in eval mode on ``device``, the resolved RunConfig it stored).

    The network is built from the config inside the checkpoint, so any preset or ablation loads. Raises
    CheckpointError (one line) for a file that is not such a checkpoint (e.g. a bare state dict such as the
    official CoNR release's weights), a config this version cannot read, or weights that do not fit it.
    """
    from conr.checkpoint import CheckpointError, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (expected a checkpoint written by `conr train`, e.g. RUN/ckpt/last.pt; "
                              "weights of another architecture do not load)") from None
    try:
        cfg = RunConfig.from_dict(ckpt["config"])
    except (ConrError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its stored config does not load here: {e}") from None
    model = CoNR(cfg.model)
    try:
        from conr.weights import load_strict

        load_strict(model, ckpt.get("model", {}), path)
    except WeightsError as e:
        raise CheckpointError(f"{path}: the weights are of another architecture than its config "
                              f"({cfg.preset}): {e.reason}") from None
    return model.to(device).eval(), cfg


def save_model_checkpoint(model: CoNR, cfg: RunConfig, path: str | os.PathLike, step: int = 0) -> Path:
    """Write ``model`` with its run config in the checkpoint format of ``conr train`` (the fields inference
    reads: format, config, model, step), e.g. a randomly initialised network for tests and benchmarks."""
    from conr.checkpoint import CKPT_FORMAT, save_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"format": CKPT_FORMAT, "config": cfg.to_dict(), "step": int(step),
                 "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)
    return path


def pick_device(name: str = "auto") -> torch.device:
    """'auto' (CUDA when available), 'cpu' or 'cuda' -> torch.device; InferenceError for CUDA without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError("--device cuda: CUDA is not available here")
    return torch.device(name)


# ----------------------------------------------------------------------------------------------------
# Square crops around a character and back


@dataclass(frozen=True)
class Box:
    """A square window of an image of size (height, width): top-left (y0, x0), side ``side`` pixels. It may
    extend past the image's borders; those pixels read as zeros (or the edge, see :func:`crop`)."""

    y0: int
    x0: int
    side: int
    height: int
    width: int


def box_around(mask: np.ndarray, margin: float = MARGIN) -> Box | None:
    """The square crop centred on the bounding box of ``mask`` (H, W) bool, side = longer box side x
    (1 + margin); None when the mask is empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    bh, bw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    side = max(1, int(math.ceil(max(bh, bw) * (1 + margin))))
    cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    return Box(int(round(cy - side / 2)), int(round(cx - side / 2)), side, *mask.shape[:2])


def box_whole(height: int, width: int) -> Box:
    """The square that holds the whole image, centred (the shorter side padded)."""
    side = max(height, width)
    return Box((height - side) // 2, (width - side) // 2, side, height, width)


def crop(img: np.ndarray, box: Box, size: int, nearest: bool = False, edge: bool = False) -> np.ndarray:
    """Cut ``box`` out of ``img`` (H, W, C) (zero padding outside the image, or the nearest edge pixel with
    ``edge``) and resize it to (size, size, C). nearest: for UDPs (blending landmarks invents landmarks);
    otherwise area averaging when shrinking, bilinear when enlarging. Keeps the dtype."""
    h, w = img.shape[:2]
    y1, x1 = box.y0 + box.side, box.x0 + box.side
    part = img[max(box.y0, 0):min(y1, h), max(box.x0, 0):min(x1, w)]
    pads = ((max(-box.y0, 0), max(y1 - h, 0)), (max(-box.x0, 0), max(x1 - w, 0))) + ((0, 0),) * (img.ndim - 2)
    if any(p for pair in pads for p in pair):
        part = np.pad(part, pads, mode="edge") if edge and part.size else np.pad(part, pads)
    if box.side == size:
        return np.ascontiguousarray(part)
    if nearest:  # centre-aligned, as the training loader resizes UDPs (aligned with the image's filters)
        return resize_nearest(part, size)
    out = cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA if box.side > size else cv2.INTER_LINEAR)
    return out.reshape(size, size, *img.shape[2:])


def paste(square: np.ndarray, box: Box, nearest: bool = False) -> np.ndarray:
    """Inverse of :func:`crop`: (S, S, C) float resized to the box and placed in a zero canvas of the box's
    image size -> (height, width, C) float32."""
    c = square.shape[2]
    if box.side != square.shape[0] and nearest:
        square = resize_nearest(square, box.side)
    elif box.side != square.shape[0]:
        interp = cv2.INTER_AREA if box.side < square.shape[0] else cv2.INTER_LINEAR
        square = cv2.resize(square, (box.side, box.side), interpolation=interp).reshape(box.side, box.side, c)
    out = np.zeros((box.height, box.width, c), np.float32)
    ys, xs = max(box.y0, 0), max(box.x0, 0)
    ye, xe = min(box.y0 + box.side, box.height), min(box.x0 + box.side, box.width)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = square[ys - box.y0:ye - box.y0, xs - box.x0:xe - box.x0]
    return out


# ----------------------------------------------------------------------------------------------------
# The character sheet


def natural_key(path: Path) -> list:
    """Sort 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


@dataclass
class SheetInput:
    """A prepared character sheet. refs: (n, 4, S, S) float32 premultiplied RGBA in [0, 1]; names: the
    files; rgba: the cut-out images as read (H, W, 4) uint8; matted: which were matted (name -> confidence);
    warnings: lines worth showing the user."""

    refs: torch.Tensor
    names: list[str]
    rgba: list[np.ndarray]
    matted: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def sheet_from_images(images: list[np.ndarray], size: int, margin: float = MARGIN,
                      names: list[str] | None = None) -> SheetInput:
    """Straight-alpha RGBA images (H_i, W_i, 4) uint8 of one character (any sizes) -> SheetInput: each is
    cropped around its own alpha, padded to a square and resized to ``size``."""
    names = names or [f"image{i}" for i in range(len(images))]
    if not images:
        raise InferenceError("the character sheet has no images")
    refs = []
    for name, img in zip(names, images):
        box = box_around(img[..., 3] > 0, margin)
        if box is None:
            raise InferenceError(f"{name}: the image is fully transparent: no character to use as a reference")
        refs.append(crop(premultiply(img), box, size))
    return SheetInput(torch.from_numpy(np.stack(refs)).permute(0, 3, 1, 2).contiguous(), list(names), list(images))


def load_sheet(path: str | os.PathLike, size: int, margin: float = MARGIN, matting: bool = True) -> SheetInput:
    """A folder of character images (or one image file) -> SheetInput at side ``size``.

    Images with a meaningful alpha channel are used as they are; the others are matted (udpgen.drawn.matting)
    unless ``matting`` is off, in which case they are refused. Raises InferenceError / udpgen FormatError
    (one line, naming the file)."""
    from udpgen.io.images import read_image
    from udpgen.drawn.matting import alpha_is_meaningful, matte

    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = list_images(path, recursive=False, key=natural_key)
        if not files:
            raise InferenceError(f"{path}: no character images ({', '.join(IMAGE_SUFFIXES)}) in the sheet folder")
    else:
        raise InferenceError(f"{path}: no such sheet folder or image")
    images, matted, notes = [], {}, []
    for f in files:
        img = read_image(f)
        if not alpha_is_meaningful(img):
            if not matting:
                raise InferenceError(f"{f}: the image has no transparent background (matting is off)")
            res = matte(img)
            img = res.rgba
            matted[f.name] = round(float(res.confidence), 3)
            if res.confidence < 0.5:
                notes.append(f"{f.name}: matted with low confidence {res.confidence:.2f} "
                             f"({'; '.join(res.notes[-2:])}); give it a transparent background for best results")
        images.append(img)
    sheet = sheet_from_images(images, size, margin, [f.name for f in files])
    sheet.matted, sheet.warnings = matted, notes
    return sheet


# ----------------------------------------------------------------------------------------------------
# Target poses


def list_pose_files(folder: str | os.PathLike) -> list[Path]:
    """UDP files of a folder (16-bit ``.png``, official ``.npz`` with key ``i``, ``.exr``), in natural order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InferenceError(f"{folder}: no such pose folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in POSE_EXTS and p.is_file()
                    and not p.name.startswith(".")), key=natural_key)
    if not files:
        raise InferenceError(f"{folder}: no UDP files ({', '.join(POSE_EXTS)}) in the pose folder")
    return files


def read_pose_files(files: Iterable[Path], axes: str = "xyz") -> Iterator[tuple[str, np.ndarray]]:
    """Yield (file stem, UDP (H, W, 4) float32) per file; udpgen.io.udp reads each by its extension and raises
    FormatError naming a file that is not a UDP (e.g. an 8-bit PNG)."""
    from udpgen.io import udp

    for f in files:
        yield f.name.split(".")[0], udp.load(f, axes)


class MotionPoses:
    """Target UDPs of an MMD model playing a motion (.vmd) or holding a pose (.vpd), rendered with udpgen.

    One front camera frames the character over the whole sequence (the union of its bounding spheres at up
    to 16 evenly spaced frames), so the character moves inside a still frame. Iterating yields
    (name, udp (size, size, 4) float32, rgba (size, size, 4) uint8): the toon render of the same view comes
    along as a ground truth. ``frames``: 'A:B:S' as in ``udpgen render --frames`` (default: every frame).

    Raises InferenceError for a motion that drives none of the model's bones (made for another skeleton)
    and udpgen errors (one line) for unreadable files; ``warnings`` says when most tracks match no bone.
    """

    def __init__(self, model_path: str | os.PathLike, motion_path: str | os.PathLike, size: int,
                 frames: str | None = None):
        from udpgen.rig.motion import parse_frames
        from udpgen.mmd import Model, Motion, Pose, load
        from udpgen.rig import MotionSampler, pose_values

        self.warnings: list[str] = []
        self.model = load(model_path)
        if not isinstance(self.model, Model):
            raise InferenceError(f"{model_path}: not a model (.pmx/.pmd)")
        motion = load(motion_path)
        names = {b.name for b in self.model.bones}
        if isinstance(motion, Pose):
            if not any(name in names for name, _, _ in motion.bones):
                raise InferenceError(f"{motion_path}: none of its {len(motion.bones)} bones is a bone of "
                                     f"{model_path} (a pose for another skeleton?)")
            self.labels, self._values = ["pose"], [pose_values(self.model, motion)]
        elif isinstance(motion, Motion):
            sampler = MotionSampler(self.model, motion)
            if not len(sampler.animated_bones):
                raise InferenceError(f"{motion_path}: none of its {len(motion.bones.names)} bone tracks names a "
                                     f"bone of {model_path} (a motion for another skeleton?)")
            unmatched, total = len(sampler.unmatched_bones), len(motion.bones.names)
            if unmatched * 2 > total:
                self.warnings.append(f"{motion_path}: {unmatched} of its {total} bone tracks name no bone of "
                                     f"{model_path} and are ignored (made for another skeleton?)")
            frame_list = parse_frames(frames or "0:", sampler.frame_range)
            self.labels = [f"f{f:g}" for f in frame_list]
            self._values = [lambda f=f: sampler.at(f) for f in frame_list]
        else:
            raise InferenceError(f"{motion_path}: not a motion (.vmd) or a pose (.vpd)")
        self.size, self.camera = int(size), None

    def __len__(self) -> int:
        return len(self.labels)

    def _values_at(self, i: int):
        v = self._values[i]
        return v() if callable(v) else v

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        from udpgen.render import CameraSampler, EmptyRenderError, Renderer
        from udpgen.rig import Rig

        with Renderer(self.size) as r:
            char = r.load(self.model, rig=Rig(self.model))
            probe = np.unique(np.linspace(0, len(self) - 1, min(16, len(self))).round().astype(int))
            spheres = [char.pose(self._values_at(int(i))).bounding_sphere() for i in probe]
            lo = np.min([c - rad for c, rad in spheres], 0)
            hi = np.max([c + rad for c, rad in spheres], 0)
            centre = (lo + hi) / 2
            radius = max(float(np.linalg.norm(c - centre)) + rad for c, rad in spheres)
            self.camera = CameraSampler.front(centre, radius, self.size, self.size)
            for i, label in enumerate(self.labels):
                try:
                    res = r.render(char.pose(self._values_at(i)), self.camera)
                    yield label, res.udp, res.rgba
                except EmptyRenderError:
                    yield label, np.zeros((self.size, self.size, 4), np.float32), \
                        np.zeros((self.size, self.size, 4), np.uint8)


# ----------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Frame:
    """One rendered target. rgba: (H, W, 4) uint8 straight alpha at the UDP's size; crop: (S, S, 4) float32
    premultiplied network output; box: where the crop sits in the frame (None: empty UDP, blank frame)."""

    index: int
    name: str
    rgba: np.ndarray
    crop: np.ndarray
    box: Box | None
    udp: np.ndarray


class Animator:
    """A CoNR model bound to one character sheet.

    Args:
        model: CoNR in eval mode. refs: (n, 4, S, S) premultiplied sheet (SheetInput.refs).
        device: where to run. batch: target poses per network call.
        encode_once: encode the sheet once (the paper's inference); False runs encoder + renderer per frame.
        margin: crop margin of the target UDPs (see the module docstring).
    """

    def __init__(self, model: CoNR, refs: torch.Tensor, device: str | torch.device = "cpu", batch: int = 8,
                 encode_once: bool = True, margin: float = MARGIN):
        self.model, self.device = model, torch.device(device)
        self.refs = refs.to(self.device, torch.float32).unsqueeze(0)            # (1, n, 4, S, S)
        self.size, self.batch, self.encode_once, self.margin = refs.shape[-1], max(1, int(batch)), encode_once, margin
        with torch.inference_mode():
            self.sheet = model.encode(self.refs) if encode_once else None

    @torch.inference_mode()
    def render_crops(self, udps: torch.Tensor) -> torch.Tensor:
        """(T, 4, S, S) target UDPs -> (T, 4, S, S) premultiplied RGBA in [0, 1] (on the CPU)."""
        udps = udps.to(self.device, torch.float32)
        if self.encode_once:
            out = self.model.render(self.sheet, udps.unsqueeze(0))[0]
        else:  # the sheet goes through the encoder again for every frame
            T = udps.shape[0]
            out = self.model(self.refs.expand(T, *self.refs.shape[1:]), udps)
        return out.float().cpu()

    def frames(self, poses: Iterable[tuple[str, np.ndarray]]) -> Iterator[Frame]:
        """(name, UDP (H, W, 4) float32 in [0, 1]) per target -> Frame per target, in order, computed in
        batches of ``batch``. A UDP with no occupied pixel gives a transparent frame."""
        S, pending, index = self.size, [], 0
        for name, udp in poses:
            udp = np.asarray(udp, np.float32)
            if udp.ndim != 3 or udp.shape[2] != 4:
                raise InferenceError(f"pose {name}: shape {udp.shape}, expected (H, W, 4)")
            box = box_around(udp[..., 3] > 0, self.margin)
            pending.append((index, name, udp, box))
            index += 1
            if len(pending) == self.batch:
                yield from self._flush(pending, S)
                pending = []
        if pending:
            yield from self._flush(pending, S)

    def _flush(self, pending, S) -> Iterator[Frame]:
        todo = [p for p in pending if p[3] is not None]
        crops = {}
        if todo:
            x = np.stack([crop(p[2], p[3], S, nearest=True) for p in todo]).transpose(0, 3, 1, 2)
            out = self.render_crops(torch.from_numpy(np.ascontiguousarray(x))).permute(0, 2, 3, 1).numpy()
            crops = {p[0]: o for p, o in zip(todo, out)}
        for index, name, udp, box in pending:
            if box is None:
                h, w = udp.shape[:2]
                yield Frame(index, name, np.zeros((h, w, 4), np.uint8), np.zeros((S, S, 4), np.float32), None, udp)
                continue
            c = crops[index]
            yield Frame(index, name, unpremultiply(paste(c, box)), c, box, udp)


# ----------------------------------------------------------------------------------------------------
# Detection


@dataclass
class Detection:
    """UDP detected in one image. udp: (H, W, 4) float32 in the UDP contract at the image's size;
    crop: (S, S, 4) the network's UDP of the square crop; image: (S, S, 3) float32 RGB the detector saw."""

    udp: np.ndarray
    crop: np.ndarray
    image: np.ndarray


@torch.inference_mode()
def detect(model: CoNR, img: np.ndarray, size: int, background=(255, 255, 255), margin: float = MARGIN,
           device: str | torch.device = "cpu", threshold: float = 0.5) -> Detection:
    """Run the UDP detector on one image (H, W, 3|4) uint8.

    With a meaningful alpha channel the character is cropped around its alpha (as a sheet image) and
    composited over ``background`` (the detector was trained on composites), and its alpha (>= 50 %) is
    the occupancy. Without, the whole image is padded to a square (edge pixels repeated, so a flat
    background stays flat) and the detector's mask (probability >= ``threshold``) is the occupancy."""
    from udpgen.drawn.matting import alpha_is_meaningful

    cut = img.shape[2] == 4 and alpha_is_meaningful(img)
    if cut:
        box = box_around(img[..., 3] > 0, margin)
        pre = crop(premultiply(img), box, size)
        rgb = pre[..., :3] + (1 - pre[..., 3:]) * (np.asarray(background, np.float32) / 255)
        occ_known = crop(img[..., 3:], box, size, nearest=True)[..., 0] >= 128
    else:
        box = box_whole(*img.shape[:2])
        rgb = crop(img[..., :3], box, size, edge=True).astype(np.float32) / 255
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    det = model.detect(x)[0].float().cpu().numpy().transpose(1, 2, 0)               # (S, S, 4)
    xyz = np.clip(det[..., :3], 0, 1)
    occ = occ_known if cut else (1 / (1 + np.exp(-det[..., 3])) >= threshold)
    udp = np.concatenate([xyz * occ[..., None], occ[..., None]], -1).astype(np.float32)
    # back at the image's size: landmarks by nearest sampling (blending would invent landmarks); the
    # occupancy of a cut-out is its own alpha at full resolution, not a resampled one
    full = paste(np.concatenate([xyz, occ[..., None]], -1).astype(np.float32), box, nearest=True)
    if cut:
        full[..., 3] = img[..., 3] >= 128
    full[..., 3] = full[..., 3] > 0.5
    full[..., :3] *= full[..., 3:]
    return Detection(full, udp, rgb.astype(np.float32))

