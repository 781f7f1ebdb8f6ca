"""The CoNR networks on tiny configs (64 px, a few channels): shapes, ranges, invariances, gradients,
the encode-once API, the ablation switches and the input checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from conr.config import PRESETS
from conr.errors import InputError
from conr.nn import CoNR
from conr.nn.blocks import alpha_pyramid, mean_of_others, udp_pyramid, warp
from conr.nn.detector import fuse_detections

TINY = PRESETS["tiny"]
S = 64  # px


def make_refs(B: int, n: int, seed: int = 0, size: int = S) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rgb, alpha = torch.rand(B, n, 3, size, size, generator=g), torch.rand(B, n, 1, size, size, generator=g)
    return torch.cat((rgb * alpha, alpha), 2)  # premultiplied


def make_udp(*lead: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(*lead, 1, S, S, generator=g) > 0.3).float()
    return torch.cat((torch.rand(*lead, 3, S, S, generator=g) * occ, occ), -3)


@pytest.fixture(scope="module")
def model() -> CoNR:
    torch.manual_seed(0)
    return CoNR(TINY).eval()


def test_shapes_and_ranges(model):
    refs, udp = make_refs(2, 3), make_udp(2)
    with torch.no_grad():
        rgba = model(refs, udp)
        det = model.detect(refs[:, 0, :3])
        out = model.forward_train(refs, torch.rand(2, 4, 3, S, S))
    assert rgba.shape == (2, 4, S, S) and rgba.dtype == torch.float32
    assert rgba.min() >= 0 and rgba.max() <= 1
    assert (rgba[:, :3] <= rgba[:, 3:] + 1e-6).all(), "premultiplied: rgb <= alpha"
    assert det.shape == (2, 4, S, S) and det[:, :3].min() >= 0 and det[:, :3].max() <= 1
    assert out.detections.shape == (2, 4, 4, S, S)
    assert out.udp.shape == (2, 4, S, S) and out.udp.min() >= 0 and out.udp.max() <= 1
    assert out.rgba.shape == (2, 4, S, S)


def test_output_invariant_to_view_order(model):
    refs, udp = make_refs(1, 5), make_udp(1)
    with torch.no_grad():
        a = model(refs, udp)
        b = model(refs[:, torch.tensor([3, 0, 4, 2, 1])], udp)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_any_view_count_with_one_set_of_weights(model):
    udp = make_udp(1)
    outs = []
    with torch.no_grad():
        for n in range(1, 9):
            out = model(make_refs(1, n, seed=n), udp)
            assert out.shape == (1, 4, S, S) and torch.isfinite(out).all()
            outs.append(out)
        # one view renders like that view repeated (the one-shot rule: views are reused to fill m)
        one = make_refs(1, 1, seed=9)
        torch.testing.assert_close(model(one, udp), model(one.repeat(1, 3, 1, 1, 1), udp), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outs[0], outs[3]), "the views must matter"


@pytest.mark.parametrize("cinn", [True, False], ids=["conr", "unet-baseline"])
def test_encode_once_equals_plain_forward(cinn):
    torch.manual_seed(0)
    model = CoNR(TINY.replace(cinn=cinn, views=3)).eval()
    refs, udps = make_refs(2, 3), make_udp(2, 3)  # 3 targets per sheet
    with torch.no_grad():
        sheet = model.encode(refs)
        batched = model.render(sheet, udps)
        single = model.render(sheet, udps[:, 1])
        plain = torch.stack([model(refs, udps[:, t]) for t in range(3)], 1)
    assert batched.shape == (2, 3, 4, S, S)
    torch.testing.assert_close(batched, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, plain[:, 1], atol=1e-5, rtol=1e-5)


def test_forward_train_renders_from_fused_detections(model):
    refs, composites = make_refs(1, 2), torch.rand(1, 3, 3, S, S)
    with torch.no_grad():
        out = model.forward_train(refs, composites)
        det = torch.stack([model.detect(composites[:, j]) for j in range(3)], 1)
        torch.testing.assert_close(out.detections, det, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.udp, fuse_detections(det))
        torch.testing.assert_close(out.rgba, model(refs, out.udp), atol=1e-5, rtol=1e-5)


def test_encoder_is_one_module_for_both_users(model):
    names = [n for n, _ in model.named_children()]
    assert names == ["encoder", "detector_decoder", "renderer"]
    assert not any("encoder" in n for n, _ in model.renderer.named_modules())


ABLATIONS = {
    "paper-switches": {},
    "message_passing=1": {"message_passing": 1},
    "message_passing=2": {"message_passing": 2},
    "no warping": {"warping": False},
    "no cinn (U-Net baseline)": {"cinn": False, "warping": False},
    "no cinn, warping": {"cinn": False},
    "resnet18 encoder": {"encoder": "resnet18", "encoder_norm": "imagenet"},
}


@pytest.mark.parametrize("changes", ABLATIONS.values(), ids=ABLATIONS.keys())
def test_every_switch_builds_runs_and_trains_every_parameter(changes):
    torch.manual_seed(0)
    cfg = TINY.replace(views=2, composites=2, **changes)
    model = CoNR(cfg).train()
    out = model.forward_train(make_refs(1, 2), torch.rand(1, 2, 3, S, S))
    assert out.rgba.shape == (1, 4, S, S)
    (out.detections.mean() + out.rgba.mean()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


def test_message_passing_count_changes_the_output():
    torch.manual_seed(0)
    m3 = CoNR(TINY).eval()
    m1 = CoNR(TINY.replace(message_passing=1)).eval()
    m1.load_state_dict(m3.state_dict())  # same weights: only the exchanges differ
    refs, udp = make_refs(1, 3), make_udp(1)
    with torch.no_grad():
        assert (m3(refs, udp) - m1(refs, udp)).abs().max() > 1e-5


def test_warp_identity_and_shift():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 4, 5)), x)
    flow = torch.zeros(2, 2, 4, 5)
    flow[:, 0] = 1.0  # sample one pixel to the right
    shifted = warp(x, flow)
    torch.testing.assert_close(shifted[..., :-1], x[..., 1:])
    assert (shifted[..., -1] == 0).all()


def test_mean_of_others():
    x = torch.tensor([1.0, 2.0, 6.0]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(mean_of_others(x).flatten(), torch.tensor([4.0, 3.5, 1.5]))
    torch.testing.assert_close(mean_of_others(x[:, :1]), x[:, :1])


BAD = {
    "refs 4 dims": (lambda: (torch.rand(1, 4, S, S), make_udp(1)), "refs", "shape (1, 4, 64, 64)"),
    "refs 3 channels": (lambda: (torch.rand(1, 2, 3, S, S), make_udp(1)), "refs", "3 channels"),
    "refs side 48": (lambda: (torch.rand(1, 2, 4, 48, 48), torch.rand(1, 4, 48, 48)), "refs", "48x48"),
    "n = 0": (lambda: (torch.rand(1, 0, 4, S, S), make_udp(1)), "refs", "n = 0"),
    "NaN refs": (lambda: (make_refs(1, 2).index_fill(3, torch.tensor([5]), float("nan")), make_udp(1)),
                 "refs", "NaN"),
    "integer refs": (lambda: (torch.zeros(1, 2, 4, S, S, dtype=torch.uint8), make_udp(1)), "refs", "torch.uint8"),
    "udp 3 channels": (lambda: (make_refs(1, 2), torch.rand(1, 3, S, S)), "target_udp", "3 channels"),
    "udp other size": (lambda: (make_refs(1, 2), torch.rand(1, 4, 32, 32)), "target_udp", "32x32"),
    "udp other batch": (lambda: (make_refs(1, 2), make_udp(2)), "target_udp", "batch 2"),
    "NaN udp": (lambda: (make_refs(1, 2), make_udp(1) * float("nan")), "target_udp", "NaN"),
    "refs not a tensor": (lambda: ([[0.0]], make_udp(1)), "refs", "list"),
}


@pytest.mark.parametrize("make,name,value", BAD.values(), ids=BAD.keys())
def test_bad_inputs_name_the_tensor_and_value(model, make, name, value):
    refs, udp = make()
    with pytest.raises(InputError) as e:
        model(refs, udp)
    assert e.value.name == name and str(e.value).startswith(name) and value in str(e.value)
    assert isinstance(e.value, ValueError)


def test_bad_detector_and_composite_inputs(model):
    with pytest.raises(InputError, match=r"^images: got 4 channels"):
        model.detect(torch.rand(1, 4, S, S))
    with pytest.raises(InputError, match=r"^composites: got shape \(2, 3, 3, 64, 64\)"):
        model.forward_train(make_refs(1, 2), torch.rand(2, 3, 3, S, S))


def test_unet_baseline_takes_exactly_its_view_count():
    model = CoNR(TINY.replace(cinn=False, views=3)).eval()
    with torch.no_grad():
        assert model(make_refs(1, 3), make_udp(1)).shape == (1, 4, S, S)
    with pytest.raises(InputError, match=r"^refs: got n = 2 reference views: .*views = 3"):
        model(make_refs(1, 2), make_udp(1))


def test_encoder_norm_is_stateless_and_handles_one_pixel_maps():
    # issue #15 defect 1: InstanceNorm (no running statistics), so train and eval mode agree; a 32 x 32 image
    # has 1 x 1 stride-32 features, which torch's instance norm refuses: they normalise to 0 (the bias)
    from conr.nn.backbones import InstanceNorm, resnet18

    enc = resnet18()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in enc.modules())
    assert not [k for k in enc.state_dict() if "running" in k or "num_batches" in k]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = enc.train()(x), enc.eval()(x)
    assert a[-1].shape[-2:] == (1, 1)
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb)
    norm = InstanceNorm(3)
    norm.bias.data = torch.tensor([0.5, -1.0, 2.0])
    torch.testing.assert_close(norm(torch.rand(2, 3, 1, 1)), norm.bias.view(1, 3, 1, 1).expand(2, 3, 1, 1))


def _decoder_inputs(model: CoNR, n: int = 2):
    """feats/alphas of a tiny model's decoder: zeros but one impulse at (row 3, col 5) of stride 8."""
    dec = model.renderer.decoder
    chans = dict(zip((4, 8, 16, 32), model.encoder.channels[1:]))
    feats = {s: torch.zeros(1, n, c, S // s, S // s) for s, c in chans.items()}
    alphas = {s: torch.zeros(1, n, 1, S // s, S // s) for s in (16, 8, 4)}
    feats[8][..., 3, 5] = 1.0
    alphas[8][..., 3, 5] = 1.0
    return dec, feats, alphas, chans


def _d2_input(dec, feats, alphas, udp):
    seen = {}
    hook = dec.blocks[1].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    try:
        with torch.no_grad():
            dec(feats, alphas, udp)
    finally:
        hook.remove()
    return seen["x"]


@pytest.mark.parametrize("warping", [True, False], ids=["warping", "no-warp"])
def test_prewarp_moves_a_views_skip_and_alpha_by_its_flow(warping):
    """D1 predicts a constant flow of 1 px right at stride 16 (2 px at stride 8): D2 must see the view's
    stride-8 skip and alpha impulse 2 px to the left (out[p] = in[p + flow]); with warping off, unmoved."""
    torch.manual_seed(0)
    model = CoNR(TINY.replace(warping=warping)).eval()
    dec, feats, alphas, chans = _decoder_inputs(model)
    if warping:
        with torch.no_grad():
            dec.blocks[0].flow.bias.copy_(torch.tensor([1.0, 0.0]))
    x = _d2_input(dec, feats, alphas, make_udp(1))
    c0 = dec.blocks[0].body.conv2.out_channels       # D1's width: the upsampled local + message part
    skip = x[:, c0:c0 + chans[8]]
    alpha = x[:, c0 + chans[8] + 4:c0 + chans[8] + 5]
    col = 3 if warping else 5
    for t in (skip, alpha):
        peak = t.abs().amax(dim=(0, 1))              # (h, w)
        assert peak[3, col] == pytest.approx(1.0, abs=1e-5)
        assert peak.sum() == pytest.approx(1.0, abs=1e-5), "the impulse is moved whole, not smeared"


def test_renderer_output_depends_on_the_prewarp_path():
    """Same weights, same nonzero flow: turning only the pre-warp into the identity (the renderer before
    pre-warping) changes the rendering; with a zero flow the pre-warp is the identity and nothing changes."""
    torch.manual_seed(0)
    model = CoNR(TINY).eval()
    dec = model.renderer.decoder
    refs, udp = make_refs(1, 2), make_udp(1)
    with torch.no_grad():
        same = model(refs, udp)
        dec.prewarp = lambda skip, alpha, flow: (skip, alpha)
        assert torch.equal(model(refs, udp), same)   # flows start at zero: pre-warp is the identity
        dec.blocks[0].flow.bias.copy_(torch.tensor([1.5, -0.5]))
        without = model(refs, udp)
        del dec.prewarp
        with_prewarp = model(refs, udp)
    assert (with_prewarp - without).abs().max() > 1e-4


def test_udp_pyramid_is_centre_aligned_with_the_alpha_pyramid():
    """A body that covers only the bottom-right pixel of every 2x2 block (and then a real silhouette):
    at each stride the UDP's occupancy is the alpha pyramid's coverage of the same mask (top-left nearest
    sampling saw no body at all), and xyz / occupancy is the mean landmark of the covered pixels."""
    occ = torch.zeros(1, 1, S, S)
    occ[..., 1::2, 1::2] = 1.0
    xyz = torch.rand(1, 3, S, S) * occ
    udp = torch.cat((xyz, occ), 1)
    strides = (16, 8, 4, 2)
    pyr, cover = udp_pyramid(udp, strides), alpha_pyramid(occ, strides)
    for s in strides:
        torch.testing.assert_close(pyr[s][:, 3:], cover[s])
        assert (pyr[s][:, 3] == 0.25).all()
    # a silhouette edge that does not fall on block boundaries; a constant landmark inside it
    occ = torch.zeros(1, 1, S, S)
    occ[..., 5:41, 3:29] = 1.0
    udp = torch.cat((torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1) * occ, occ), 1)
    pyr, cover = udp_pyramid(udp, strides), alpha_pyramid(occ, strides)
    for s in strides:
        torch.testing.assert_close(pyr[s][:, 3:], cover[s])
        body = pyr[s][:, 3:] > 0
        landmark = pyr[s][:, :3] / pyr[s][:, 3:].clamp_min(1e-8)
        torch.testing.assert_close(landmark[body.expand_as(landmark)],
                                   torch.tensor([0.2, 0.5, 0.8]).view(3, 1).expand(3, int(body.sum())).flatten())
    assert torch.equal(udp_pyramid(udp, (1,))[1], udp)
