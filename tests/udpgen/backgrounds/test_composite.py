"""udpgen.backgrounds.composite and udpgen.backgrounds.sets: shapes, dtypes, ranges, alignment, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from udpgen.backgrounds.sets import BUILTIN, dhash, fit, hamming, iter_backgrounds, procedural
from udpgen.backgrounds.composite import CompositeSettings, SettingsError, composite, place_foreground


def cutout(h=48, w=40):
    """A red square with a soft left edge, straight alpha, uint8 (h, w, 4)."""
    c = np.zeros((h, w, 4), np.uint8)
    c[8:40, 10:30] = (220, 30, 30, 255)
    c[8:40, 9, :3], c[8:40, 9, 3] = (220, 30, 30), 128
    return c


def backgrounds(rng):
    return [rng.integers(0, 256, (64, 80, 3), np.uint8), rng.integers(0, 256, (30, 30, 3), np.uint8),
            np.full((100, 50, 3), 0.5, np.float32)]


def test_shapes_dtypes_ranges_and_alignment():
    c = cutout()
    out = composite(c, backgrounds(np.random.default_rng(0)), 4, np.random.default_rng(0))
    assert out.images.shape == (4, 48, 40, 3) and out.images.dtype == np.uint8
    assert out.alpha.shape == (4, 48, 40) and out.alpha.dtype == np.float32 and len(out.params) == 4
    # Default settings leave the character in place: alpha and opaque colours are the cut-out's.
    assert np.abs(out.alpha - c[..., 3] / 255).max() < 1e-6
    opaque = c[..., 3] == 255
    assert np.array_equal(out.images[:, opaque], np.broadcast_to(c[opaque, :3], (4, opaque.sum(), 3)))
    f = composite(c.astype(np.float32) / 255, backgrounds(np.random.default_rng(0)), 4, np.random.default_rng(0))
    assert f.images.dtype == np.float32 and 0 <= f.images.min() and f.images.max() <= 1
    assert np.abs(f.images * 255 - out.images).max() <= 0.5 + 1e-3  # same maths, only the rounding differs


def test_premultiplied_input_matches_straight():
    c = cutout().astype(np.float32) / 255
    pre = c.copy()
    pre[..., :3] *= pre[..., 3:]
    bgs = backgrounds(np.random.default_rng(1))
    a = composite(c, bgs, 2, np.random.default_rng(5))
    b = composite(pre, bgs, 2, np.random.default_rng(5), premultiplied=True)
    assert np.abs(a.images - b.images).max() < 1e-5


def test_fast_paths_equal_the_general_maths():
    """The identity placement skips the resampler: its taps (weights 1 and 0) return the image bit for bit.
    The colour jitter as one matrix equals brightness, then contrast, then saturation step by step."""
    from udpgen.backgrounds.composite import _jitter, _resample

    rng = np.random.default_rng(4)
    img = rng.random((37, 53, 4)).astype(np.float32)
    assert np.array_equal(_resample(img, (0.0, 0.0, 37.0, 53.0), (37, 53)), img)
    rgb = rng.random((20, 30, 3)).astype(np.float32)
    luma = np.float32([0.299, 0.587, 0.114])
    for b, c, s in [(1.2, 0.8, 1.3), (0.75, 1.25, 0.6), (1.0, 1.0, 0.0)]:
        x = rgb * b
        x = (x - (x @ luma).mean()) * c + (x @ luma).mean()
        x = (x @ luma)[..., None] + (x - (x @ luma)[..., None]) * s
        np.testing.assert_allclose(_jitter(rgb, (b, c, s)), np.clip(x, 0, 1), atol=2e-6)


def test_determinism_and_variety():
    bgs = backgrounds(np.random.default_rng(2))
    a = composite(cutout(), bgs, 6, np.random.default_rng(7))
    b = composite(cutout(), bgs, 6, np.random.default_rng(7))
    c = composite(cutout(), bgs, 6, np.random.default_rng(8))
    assert np.array_equal(a.images, b.images) and a.params == b.params
    assert not np.array_equal(a.images, c.images)
    assert len({p.bg_index for p in a.params + c.params}) > 1


def test_moved_character_and_place_foreground_stay_aligned():
    s = CompositeSettings(fg_scale=(0.5, 0.8), fg_shift=0.2, fg_hflip=1.0, fg_brightness=0.3, bg_vflip=1.0)
    c = cutout()
    out = composite(c, backgrounds(np.random.default_rng(3)), 3, np.random.default_rng(3), s, out_size=(32, 64))
    assert out.images.shape == (3, 32, 64, 3)
    for i, p in enumerate(out.params):
        assert p.fg_hflip and 0.5 <= p.fg_scale <= 0.8
        moved = place_foreground(c[..., 3], p, (32, 64))
        assert np.abs(moved - out.alpha[i]).max() < 1e-5
        lab = place_foreground(c[..., 3], p, (32, 64), nearest=True)
        assert set(np.unique(lab)) <= {0.0, np.float32(128 / 255), 1.0}
        assert np.count_nonzero(lab) > 0 and np.abs((lab > 0.5).mean() - (out.alpha[i] > 0.5).mean()) < 0.05


@pytest.mark.parametrize("kw", [{"bg_zoom": (2.0, 1.0)}, {"bg_hflip": 1.5}, {"fg_shift": -0.1},
                                {"bg_brightness": 1.0}, {"fg_scale": 1.0}])
def test_bad_settings(kw):
    (name, value), = kw.items()
    with pytest.raises(SettingsError, match=name):
        CompositeSettings(**kw)


def test_composite_imports_no_cv2_and_no_torch():
    import subprocess
    import sys

    code = "import sys, udpgen.backgrounds.composite; print('cv2' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.split() == ["False", "False"]


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        composite(cutout(), [], 2, rng)
    with pytest.raises(ValueError):
        composite(cutout()[..., :3], backgrounds(rng), 2, rng)


# --- backgrounds -----------------------------------------------------------------------------------

def test_fit_procedural_and_dhash():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (90, 160, 3), np.uint8)
    assert fit(img, 64).shape == (64, 64, 3) and fit(img[..., 0], (30, 50)).shape == (30, 50, 3)
    assert fit(img, (200, 100), rng).shape == (200, 100, 3)
    for kind in ("flat", "linear", "radial", "noise"):
        p = procedural(rng, (40, 60), kind)
        assert p.shape == (40, 60, 3) and p.dtype == np.uint8
    with pytest.raises(ValueError):
        procedural(rng, 8, "plaid")
    smooth = procedural(np.random.default_rng(1), 128, "noise")
    near = np.clip(fit(smooth, 96).astype(int) + 3, 0, 255).astype(np.uint8)  # rescaled and brightened
    assert hamming(dhash(smooth), dhash(near)) <= 6
    assert hamming(dhash(smooth), dhash(procedural(np.random.default_rng(2), 128, "noise"))) > 6


def test_iter_backgrounds_default_set_and_user_folder(tmp_path):
    from PIL import Image

    a = list(iter_backgrounds(None, 48, seed=3, n_procedural=4))
    b = list(iter_backgrounds(None, 48, seed=3, n_procedural=4))
    assert [k for k, _ in a] == [k for k, _ in b] and all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert len(a) == len(BUILTIN) + 4 and all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for _, im in a)
    assert all("." not in k for k, _ in a)
    rng = np.random.default_rng(0)
    photo = procedural(rng, (120, 160), "noise")
    Image.fromarray(photo).save(tmp_path / "one.png")
    Image.fromarray(photo).save(tmp_path / "one.jpg", quality=90)  # a near-duplicate: dropped
    Image.fromarray(procedural(rng, (100, 100), "noise")).save(tmp_path / "two.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    errors = []
    got = list(iter_backgrounds([tmp_path], 32, seed=0, on_error=lambda p, e: errors.append(p)))
    assert [k for k, _ in got] == ["one", "two"] and len(errors) == 1
