"""udpgen.io: atomic writes, premultiplied alpha, the image-folder walker."""
from __future__ import annotations

import os

import numpy as np
import pytest

from udpgen.io.alpha import premultiply, unpremultiply
from udpgen.io.atomic import atomic_path, write_bytes_atomic
from udpgen.io.images import list_images


def test_atomic_path_replaces_on_success_and_cleans_up_on_failure(tmp_path):
    final = tmp_path / "video.mp4"
    final.write_bytes(b"old")
    with atomic_path(final, suffix=".mp4") as tmp:
        assert tmp.endswith(".mp4") and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "wb").write(b"new")
        assert final.read_bytes() == b"old"            # not visible before the block ends
    assert final.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            open(tmp, "wb").write(b"partial")
            raise RuntimeError("encoder died")
    assert final.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]
    write_bytes_atomic(final, b"third")
    assert final.read_bytes() == b"third" and len(list(tmp_path.iterdir())) == 1


def test_premultiply_round_trip():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    pre = premultiply(rgba)
    assert pre.dtype == np.float32 and pre.max() <= 1.0
    np.testing.assert_allclose(pre[..., :3], rgba[..., :3] / 255 * rgba[..., 3:] / 255, atol=1e-6)
    back = unpremultiply(pre)
    np.testing.assert_array_equal(back[0, 0], [0, 0, 0, 0])            # fully transparent: black
    np.testing.assert_array_equal(back[0, 1], rgba[0, 1])              # opaque: exact
    strong = rgba[..., 3] >= 64                                        # enough alpha to carry 8-bit colour
    assert np.abs(back[strong].astype(int) - rgba[strong]).max() <= 2
    np.testing.assert_allclose(premultiply(rgba.astype(np.float32) / 255), pre, atol=1e-6)   # float input too


def test_list_images_skips_hidden_other_files_and_the_output(tmp_path):
    for rel in ["b/2.PNG", "b/10.jpg", "a.webp", ".hidden/x.png", "b/.y.png", "notes.txt", "out/c.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, exclude=tmp_path / "out")]
    assert found == ["a.webp", "b/10.jpg", "b/2.PNG"]
    assert [p.name for p in list_images(tmp_path / "b", key=lambda p: int(p.stem))] == ["2.PNG", "10.jpg"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.webp"]
