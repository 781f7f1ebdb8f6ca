"""Video files from RGBA frames, through the ffmpeg binary that the imageio-ffmpeg wheel bundles.

Requirement: ``imageio-ffmpeg>=0.5`` (a wheel with a static ffmpeg inside; nothing to install system-wide).
Only :func:`ffmpeg_exe` imports it, so the rest of conr works without it and asking for a video without it
is one clear :class:`VideoError`.

Containers, chosen by the file extension (checked against the bundled ffmpeg 7-9 builds):

=========  ===================================  =================================================================
extension  codec                                 what it is for
=========  ===================================  =================================================================
``.mp4``   H.264 (libx264), yuv420p, CRF 18     plays everywhere; no alpha: frames are composited over
                                                 ``background`` (an RGB colour)
``.webm``  VP9 (libvpx-vp9), yuva420p, CRF 30   transparent video for browsers (Chrome, Firefox) and editors.
                                                 Note: ffmpeg's *native* vp9 decoder drops the alpha plane;
                                                 decode with ``-c:v libvpx-vp9`` to get it back
``.apng``  APNG, rgba, lossless, loops          transparent, lossless, shown by every browser; large files
``.mov``   QuickTime Animation (qtrle), argb    transparent, lossless; for video editors (Premiere, Resolve)
=========  ===================================  =================================================================

Frames are (H, W, 4) uint8 with straight (not premultiplied) alpha. The first frame fixes the video size;
a later frame of another size is letterboxed into it (scaled to fit, keeping its aspect ratio, centred,
transparent / background-coloured bars), because a video stream has one size. yuv420p/yuva420p need even
sides: an odd width or height is padded by one transparent column/row (never resampled). A file is written
under a temporary name and renamed when ffmpeg has finished, so a reader never sees half a video.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from conr.errors import ConrError
from udpgen.io.atomic import atomic_path

__all__ = ["VideoError", "VideoWriter", "FrameSink", "ffmpeg_exe", "KINDS", "letterbox", "over_background",
           "parse_colour"]

# extension -> (codec, pix_fmt_in, pix_fmt_out, extra output parameters, has alpha)
KINDS: dict[str, tuple[str, str, str, list[str], bool]] = {
    ".mp4": ("libx264", "rgb24", "yuv420p", ["-crf", "18", "-preset", "medium", "-movflags", "+faststart"], False),
    ".webm": ("libvpx-vp9", "rgba", "yuva420p", ["-crf", "30", "-b:v", "0", "-row-mt", "1",
                                                 "-auto-alt-ref", "0"], True),
    ".apng": ("apng", "rgba", "rgba", ["-plays", "0", "-f", "apng"], True),
    ".mov": ("qtrle", "rgba", "argb", [], True),
}


class VideoError(ConrError):
    """A video cannot be written: imageio-ffmpeg is missing, an unknown extension, ffmpeg failed."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary of the imageio-ffmpeg wheel; VideoError when the package is missing."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VideoError("writing video needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                         "the PNG frames do not") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise VideoError(f"imageio-ffmpeg found no ffmpeg binary: {e}") from None


def parse_colour(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb', 'r,g,b' (0-255) or a name (white, black, grey/gray, green) -> (r, g, b)."""
    names = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128),
             "green": (0, 255, 0)}
    t = str(text).strip().lower()
    if t in names:
        return names[t]
    try:
        if "," in t:
            rgb = tuple(int(v) for v in t.split(","))
        else:
            h = t.lstrip("#")
            if len(h) != 6:
                raise ValueError
            rgb = tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise VideoError(f"colour {text!r}: expected #rrggbb, r,g,b (0-255) or one of {', '.join(names)}")
    return rgb  # type: ignore[return-value]


def over_background(rgba: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 4) uint8 straight alpha -> (H, W, 3) uint8 composited over a flat colour."""
    a = rgba[..., 3:4].astype(np.float32) * np.float32(1 / 255)
    bg = np.asarray(colour, np.float32)
    return np.rint(rgba[..., :3].astype(np.float32) * a + bg * (1 - a)).astype(np.uint8)


def letterbox(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit (h, w, 4) uint8 into (height, width, 4): scaled keeping the aspect ratio, centred, transparent bars.
    Scaling works on premultiplied colour so transparent pixels do not bleed into the edges."""
    h, w = rgba.shape[:2]
    if (h, w) == (height, width):
        return rgba
    s = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * s))), max(1, min(width, round(w * s)))
    pre = rgba.astype(np.float32)
    pre[..., :3] *= pre[..., 3:] / 255
    pre = cv2.resize(pre, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    a = np.clip(pre[..., 3:], 0, 255)
    rgb = np.where(a > 0, pre[..., :3] * 255 / np.maximum(a, 1e-6), 0)
    out = np.zeros((height, width, 4), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = np.clip(np.rint(np.concatenate([rgb, a], -1)), 0, 255).astype(np.uint8)
    return out


class VideoWriter:
    """Write straight-alpha RGBA frames to ``path`` (kind by extension, see the module docstring).

    Args:
        path: ``.mp4``, ``.webm``, ``.apng`` or ``.mov``.
        fps: frames per second (> 0).
        background: RGB colour the frames are composited over where the container has no alpha (mp4).

    Use as a context manager; :meth:`write` takes (H, W, 4) uint8 frames. On an exception inside the
    ``with`` block the partial file is removed and nothing is left under ``path``.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, background=(255, 255, 255)):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in KINDS:
            raise VideoError(f"{self.path}: unknown video type {ext!r} (use {', '.join(KINDS)})")
        if not (fps > 0 and np.isfinite(fps)):
            raise VideoError(f"fps must be positive, got {fps}")
        self.codec, self.pix_in, self.pix_out, self.params, self.alpha = KINDS[ext]
        self.fps, self.background = float(fps), tuple(int(v) for v in background)
        self.exe = ffmpeg_exe()
        self.size: tuple[int, int] | None = None        # (height, width) of the input frames
        self.frames = 0
        self._gen = None
        self._atomic = None                             # udpgen.io.atomic.atomic_path: a unique temp name
        self._tmp: Path | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        import imageio_ffmpeg

        self.size = (height, width)
        self._even = (height + height % 2, width + width % 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic = atomic_path(self.path, suffix=".tmp" + self.path.suffix.lower())   # ffmpeg picks by suffix
        self._tmp = Path(self._atomic.__enter__())
        self._gen = imageio_ffmpeg.write_frames(
            str(self._tmp), (self._even[1], self._even[0]), pix_fmt_in=self.pix_in, pix_fmt_out=self.pix_out,
            fps=self.fps, quality=None, codec=self.codec, macro_block_size=1, ffmpeg_log_level="error",
            output_params=list(self.params))
        self._gen.send(None)

    def write(self, rgba: np.ndarray) -> None:
        """Append one (H, W, 4) uint8 straight-alpha frame."""
        rgba = np.asarray(rgba)
        if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise VideoError(f"a frame must be (H, W, 4) uint8, got {rgba.shape} {rgba.dtype}")
        if self._gen is None:
            self._open(*rgba.shape[:2])
        frame = letterbox(rgba, *self.size)
        if self._even != self.size:
            frame = np.pad(frame, ((0, self._even[0] - self.size[0]), (0, self._even[1] - self.size[1]), (0, 0)))
        data = frame if self.alpha else over_background(frame, self.background)
        try:
            self._gen.send(np.ascontiguousarray(data))
        except (OSError, RuntimeError, StopIteration) as e:
            self.abort()
            raise VideoError(f"{self.path}: ffmpeg stopped while writing frame {self.frames}: {e}") from None
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None when no frame was written)."""
        if self._gen is None:
            return None
        gen, self._gen = self._gen, None
        try:
            gen.close()
        except (OSError, RuntimeError) as e:
            self._discard()
            raise VideoError(f"{self.path}: ffmpeg failed: {str(e).strip().splitlines()[-1]}") from None
        atomic, self._atomic = self._atomic, None
        atomic.__exit__(None, None, None)                # moves the finished file into place
        return self.path

    def _discard(self) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(VideoError, VideoError("aborted"), None)   # removes the temp file

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        if self._gen is not None:
            gen, self._gen = self._gen, None
            try:
                gen.close()
            except Exception:  # noqa: BLE001 - we are cleaning up after another error
                pass
        self._discard()


class FrameSink:
    """Where a rendered sequence goes: ``{prefix}{index:05d}.png`` RGBA frames (straight alpha, each at its
    own size) in ``out_dir``, plus optionally a composited video (``video``: any kind above, usually .mp4)
    and a transparent one (``alpha_video``: .webm, .apng or .mov). Both videos take the size of the first
    frame (later frames of another size are letterboxed).

    Use as a context manager; :attr:`files` lists what was written once it is closed. On an exception the
    partial videos are removed (the PNG frames written so far stay: each one is complete)."""

    def __init__(self, out_dir: str | os.PathLike, video: str | os.PathLike | None = None,
                 alpha_video: str | os.PathLike | None = None, fps: float = 30.0, background=(255, 255, 255),
                 prefix: str = "frame_"):
        self.out_dir, self.prefix = Path(out_dir), prefix
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if alpha_video is not None and not KINDS.get(Path(alpha_video).suffix.lower(), ("",) * 5)[4]:
            raise VideoError(f"{alpha_video}: a transparent video must be "
                             f"{', '.join(k for k, v in KINDS.items() if v[4])}")
        self.writers = {role: VideoWriter(p, fps, background)
                        for role, p in (("video", video), ("alpha_video", alpha_video)) if p is not None}
        self.frames: list[Path] = []
        self.files: dict[str, str] = {}

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            for w in self.writers.values():
                w.abort()

    def write(self, index: int, rgba: np.ndarray) -> Path:
        """Write frame ``index`` (H, W, 4) uint8 straight alpha; returns the PNG's path."""
        from udpgen.io.images import write_png_atomic

        path = write_png_atomic(self.out_dir / f"{self.prefix}{index:05d}.png", rgba, compress_level=3)
        self.frames.append(path)
        for w in self.writers.values():
            w.write(rgba)
        return path

    def close(self) -> dict[str, str]:
        for role, w in self.writers.items():
            done = w.close()
            if done is not None:
                self.files[role] = str(done)
        self.files["frames"] = str(self.out_dir / f"{self.prefix}*.png")
        return self.files
