"""The training losses of CoNR (paper Eq. 2-5) and the validation metric LPIPS.

    L = L_udp + L_cons + L_mask + L_photo + alpha * L_vgg                                   (Eq. 5)

each term with its weight from :class:`conr.config.LossConfig` (``loss.udp`` ... ``loss.vgg``; alpha is
``loss.vgg``); a weight of 0 turns its term off (Table 4).

Inputs are what :meth:`conr.nn.CoNR.forward_train` returns and a :mod:`conr.data` batch:
    det          (B, k, 4, H, W) detector outputs per composite: xyz in [0, 1], mask logits
    target_udp   (B, 4, H, W) ground-truth UDP (x, y, z, occupancy) in [0, 1]; zeros when unlabelled
    labelled     (B,) bool: which targets have a ground-truth UDP
    rgba         (B, 4, H, W) the renderer's premultiplied RGBA in [0, 1]; target_rgba likewise

* L_udp (Eq. 2): L1 between the averaged detection P_tar = mean_j P_j (its xyz) and the ground truth,
  over the pixels the ground truth occupies, per sample, averaged over the labelled samples (with
  gradient accumulation or DDP over the labelled samples of the whole step: :func:`ddp_counts`).
* L_mask (Eq. 3): binary cross entropy of the averaged mask probability mean_j sigmoid(l_j) against the
  ground-truth occupancy, computed from the logits with log-sum-exp (stable, and autocast-safe where
  ``F.binary_cross_entropy`` is not), over the labelled samples.
* Unlabelled samples (hand-drawn data) skip only L_udp (as in the paper): their L_mask target is the
  image's matte (target_rgba alpha), the labelled samples' the UDP occupancy (:func:`mask_target`).
* L_cons (Eq. 4): the per-pixel standard deviation over the k detections (Bessel-corrected, k - 1) of
  xyz and mask probability, averaged over pixels; sqrt(var + 1e-6) keeps its gradient finite where the
  detections agree. Zero for k = 1.
* L_photo: L1 between the rendered and the target premultiplied RGBA.
* L_vgg: the feature loss of Zhang, Ng and Chen (2018), whose hyper-parameters the paper takes: L1 of
  VGG19 activations relu1_2, relu2_2, relu3_2, relu4_2, relu5_2 weighted 1/2.6, 1/4.8, 1/3.7, 1/5.6,
  10/1.5 (their compute_percep_loss; checked against their released code, which names the post-ReLU
  outputs conv1_2 ... conv5_2). Their code also adds the L1 of the input pixels with weight 1; L_photo is
  that term here (loss.photo). The VGG sees the premultiplied RGB (the character on black).

  Scale (issue #15, defect 6). Their VGG is fed 0..255 minus the mean, and their pixel term is on that
  0..255 scale too: dividing their whole loss by 255 gives L1 on [0, 1] (our L_photo) plus 1/255 of their
  feature term. Our VGG19 is torchvision's, fed ImageNet-normalised input (x - mean) / std, which is the
  Caffe input divided by 255 * std. To first order (a ReLU network is positively homogeneous once its
  biases are small against the input) the features scale with the input, so the recipe's feature term,
  over 255, is about std times ours: :data:`VGG_RECIPE_SCALE` = 0.226 (the geometric mean of the ImageNet
  stds). VGGLoss multiplies by it by default, so with alpha = loss.vgg = 1 the feature term weighs
  against L_photo as in the recipe; without it it weighed ~4.4x (1 / 0.226) more. The literal recipe (the
  network fed 0..255 minus the mean, scale 1/255: ``VGGLoss(VGG19(norm="caffe"), scale=1 / 255)``) is
  the same balance, within 2% for a bias-free network (tests/conr/test_losses.py); the default keeps the
  torchvision network on the input distribution it was trained on.

ImageNet VGG19 weights come only from local files through :mod:`conr.weights` (train.vgg_weights); see
:func:`build_vgg_loss` for what happens when they are absent.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from conr.config import LossConfig, TrainConfig
from conr.errors import WeightsError
from conr.nn.backbones import NORMS, VGG19, VGG19_LOSS_LAYERS
from conr.weights import RANDOM, load_weights

# Zhang, Ng and Chen (2018), compute_percep_loss: conv1_2 / 2.6, conv2_2 / 4.8, conv3_2 / 3.7,
# conv4_2 / 5.6, conv5_2 * 10 / 1.5 (all after their ReLU).
VGG_LAYER_WEIGHTS = (1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)
# The feature term's factor that gives it the recipe's balance against L1 on [0, 1] (see the module
# docstring): (Caffe input / 255) / (ImageNet-normalised input) = std, geometric mean over RGB.
VGG_RECIPE_SCALE = math.prod(NORMS["imagenet"][1]) ** (1 / 3)
LOSS_NAMES = ("udp", "mask", "cons", "photo", "vgg")


def _labelled_mean(per_sample: torch.Tensor, labelled: torch.Tensor, count: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Sum of (B,) over the labelled samples divided by ``count`` (default: their number, at least 1); 0
    (still a tensor) when none is. Under DDP ``count`` comes from :func:`ddp_counts`."""
    w = labelled.to(per_sample.dtype)
    return (per_sample * w).sum() / (w.sum().clamp(min=1) if count is None else count)


def ddp_counts(*selections: torch.Tensor, micro_steps: int = 1) -> tuple[torch.Tensor, ...]:
    """(N,) bool selections of this rank's samples of one optimizer step (all its micro-batches) -> per
    selection the divisor of each micro-batch's sum, max(global count, 1) / (world_size * micro_steps), so
    that the mean over micro-steps (the trainer divides each by grad_accum) and DDP's mean over ranks give
    the mean over every selected sample of the step. One all_reduce when a process group is initialised.

    Why: a per-micro-batch mean followed by those means over micro-steps and ranks weighs each sample by 1 /
    its own micro-batch's count, and a micro-batch with none adds 0: L_udp was under-weighted whenever
    labelled (synthetic) and unlabelled (hand-drawn) samples spread unevenly (issue #15, defect 7). Under
    DDP every rank must call it (a collective)."""
    import torch.distributed as dist

    total = torch.stack([s.sum() for s in selections]).float()
    world = 1
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(total)
        world = dist.get_world_size()
    return tuple(total.clamp(min=1) / (world * micro_steps))


def udp_loss(det: torch.Tensor, target_udp: torch.Tensor, labelled: torch.Tensor,
             count: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2 -> scalar: mean |mean_j xyz_j - xyz_gt| inside the ground-truth occupancy, labelled samples
    (``count``: the divisor, see :func:`_labelled_mean`)."""
    xyz = det[:, :, :3].float().mean(1)                                    # (B, 3, H, W)
    inside = (target_udp[:, 3:] > 0.5).float()                            # (B, 1, H, W)
    err = ((xyz - target_udp[:, :3].float()).abs() * inside).sum((1, 2, 3))
    return _labelled_mean(err / (3 * inside.sum((1, 2, 3))).clamp(min=1), labelled, count)


def mask_target(target_udp: torch.Tensor, target_rgba: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) UDP, (B, 4, H, W) RGBA, (B,) bool -> (B, 4, H, W) whose channel 3 is L_mask's target:
    the UDP occupancy where labelled, the alpha matte (in [0, 1]) of the target image elsewhere."""
    occ = torch.where(labelled.view(-1, 1, 1, 1), target_udp[:, 3:].float(), target_rgba[:, 3:].float())
    return torch.cat([target_udp[:, :3].float(), occ], 1)


def mask_loss(det: torch.Tensor, target_udp: torch.Tensor, labelled: torch.Tensor,
              count: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3 -> scalar: BCE(mean_j sigmoid(l_j), occupancy), labelled samples (``count`` as in udp_loss).

    log(mean_j sigmoid(l_j)) = logsumexp_j(logsigmoid(l_j)) - log k, and likewise for 1 - p with -l."""
    logits = det[:, :, 3].float()                                          # (B, k, H, W)
    log_k = math.log(logits.shape[1])
    log_p = torch.logsumexp(F.logsigmoid(logits), 1) - log_k
    log_q = torch.logsumexp(F.logsigmoid(-logits), 1) - log_k
    gt = target_udp[:, 3].float()
    bce = -(gt * log_p + (1 - gt) * log_q)                                 # (B, H, W)
    return _labelled_mean(bce.mean((1, 2)), labelled, count)


def consistency_loss(det: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 4 -> scalar: mean over pixels and channels of the std over k of (xyz, sigmoid(mask logits))."""
    if det.shape[1] < 2:
        return det.new_zeros((), dtype=torch.float32)
    p = torch.cat((det[:, :, :3].float(), torch.sigmoid(det[:, :, 3:].float())), 2)
    var = p.var(1, unbiased=True)                                          # (B, 4, H, W), 1/(k-1)
    return torch.sqrt(var + eps).mean()


def photo_loss(rgba: torch.Tensor, target_rgba: torch.Tensor) -> torch.Tensor:
    """L1 between premultiplied RGBA images (B, 4, H, W) -> scalar."""
    return (rgba.float() - target_rgba.float()).abs().mean()


class VGGLoss(nn.Module):
    """scale * sum_l w_l * mean |phi_l(x) - phi_l(y)| over VGG19 relu1_2 .. relu5_2 (weights above).

    scale: :data:`VGG_RECIPE_SCALE` (0.226) for the ImageNet-normalised torchvision VGG19, so that the term
    weighs against L1 on [0, 1] as in Zhang, Ng and Chen's recipe (module docstring); 1 / 255 for a VGG19
    built with norm='caffe' (their recipe literally); 1 for the unscaled sum.

    forward: x, y (B, 3, H, W) in [0, 1] (y is the target: no gradient) -> scalar.
    """

    def __init__(self, vgg: VGG19, weights=VGG_LAYER_WEIGHTS, layers=VGG19_LOSS_LAYERS,
                 scale: float = VGG_RECIPE_SCALE):
        super().__init__()
        self.vgg, self.weights, self.layers = vgg.eval().requires_grad_(False), tuple(weights), tuple(layers)
        self.scale = float(scale)

    def train(self, mode: bool = True):  # the VGG stays in eval mode whatever the trainer asks
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fy = self.vgg(y, self.layers)
        fx = self.vgg(x, self.layers)
        return self.scale * sum(w * (a.float() - b.float()).abs().mean() for w, a, b in zip(self.weights, fx, fy))


def build_vgg_loss(cfg: TrainConfig, device: torch.device | str = "cpu", weight: float = 1.0
                   ) -> tuple[VGGLoss | None, str]:
    """The L_vgg module for ``cfg`` (``weight``: loss.vgg) and a line saying what was done.

    - weight == 0 or vgg_weights == 'none': None (L_vgg off, by request; no VGG19 is built).
    - vgg_weights == 'random': a randomly initialised VGG19, only because it was asked for (a warning says
      its features are not ImageNet's).
    - otherwise the file is resolved through conr.weights (never downloaded). When it is missing or does
      not load: WeightsError if vgg_required, else a warning and None (L_vgg off for this run).
    """
    if weight == 0 or cfg.vgg_weights == "none":
        return None, "L_vgg off (loss.vgg = 0 or train.vgg_weights = none)"
    vgg = VGG19(num_classes=None, norm="imagenet")
    if cfg.vgg_weights == RANDOM:
        msg = ("L_vgg uses a randomly initialised VGG19 (train.vgg_weights = random, as asked): its features "
               "are not the paper's ImageNet features")
        warnings.warn(msg, stacklevel=2)
        return VGGLoss(vgg).to(device), msg
    try:
        path = load_weights(vgg, cfg.vgg_weights, backbone=True)
    except WeightsError as e:
        if cfg.vgg_required:
            raise
        msg = (f"L_vgg disabled: {e}. Put torchvision's vgg19 file in $CONR_WEIGHTS_DIR, or set "
               "train.vgg_weights=none (silences this) or train.vgg_weights=random")
        warnings.warn(msg, stacklevel=2)
        return None, msg
    return VGGLoss(vgg).to(device), f"L_vgg with VGG19 weights {path}"


class CoNRLoss(nn.Module):
    """Eq. 5 with per-term weights. forward(out: TrainOutput, batch) -> {'total', 'udp', 'mask', 'cons',
    'photo', 'vgg'} scalar float32 tensors; batch needs target_udp, target_rgba, labelled.

    A term whose weight is 0 is not part of 'total'; it is still reported (detached) when it is cheap and its
    input is there. out.detections or out.rgba may be None (that part of the network was not run, see
    conr.train): their terms are 0. 'vgg' is 0 when the VGG loss is off (``vgg`` None).

    counts: the divisors of L_udp and L_mask from :func:`ddp_counts` over the step's labelled flags and
    all-true flags (the trainer passes them: grad_accum > 1 or DDP); each micro-batch's value is then its
    share, and the mean over micro-steps and ranks is the mean over all the step's samples. None: the means
    over this batch."""

    def __init__(self, weights: LossConfig = LossConfig(), vgg: VGGLoss | None = None):
        super().__init__()
        self.weights, self.vgg = weights, vgg

    def forward(self, out, batch: dict, counts: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
        det, rgba = out.detections, out.rgba
        ref = det if det is not None else rgba
        labelled = batch["labelled"].to(ref.device)
        zero = torch.zeros((), device=ref.device)
        losses = dict.fromkeys(LOSS_NAMES, zero)
        everyone = torch.ones_like(labelled)
        n_udp, n_mask = counts if counts is not None else (None, None)
        if det is not None:
            losses["udp"] = udp_loss(det, batch["target_udp"], labelled, n_udp)
            losses["mask"] = mask_loss(det, mask_target(batch["target_udp"], batch["target_rgba"], labelled),
                                       everyone, n_mask)
            losses["cons"] = consistency_loss(det)
        if rgba is not None:
            losses["photo"] = photo_loss(rgba, batch["target_rgba"])
            if self.vgg is not None and self.weights.vgg > 0:
                losses["vgg"] = self.vgg(rgba[:, :3], batch["target_rgba"][:, :3]).float()
        total = zero
        for name in LOSS_NAMES:
            w = getattr(self.weights, name)
            if w > 0:
                total = total + w * losses[name]
            else:
                losses[name] = losses[name].detach()
        losses["total"] = total
        return losses


# ----------------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018, "The unreasonable effectiveness of deep features"), VGG variant, v0.1

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_LPIPS_TAPS = (3, 8, 15, 22, 29)             # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class _VGG16Features(nn.Module):
    """torchvision's vgg16 ``features`` (parameter names ``features.N``), so its file loads strictly."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for v in _VGG16_CFG:
            layers += [nn.MaxPool2d(2, 2)] if v == "M" else [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v if v != "M" else cin
        self.features = nn.Sequential(*layers)
        self.classifier = None  # the classifier of torchvision's file is dropped on load

    def forward(self, x):
        out = []
        for i, layer in enumerate(self.features[: _LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in _LPIPS_TAPS:
                out.append(x)
        return out


class _LPIPSLinear(nn.Module):
    """The lpips package's linear heads: keys ``lin{i}.model.1.weight`` (Dropout, 1x1 conv, no bias)."""

    def __init__(self):
        super().__init__()
        for i, c in enumerate(_LPIPS_CHANNELS):
            setattr(self, f"lin{i}", nn.Module())
            getattr(self, f"lin{i}").model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS(vgg, v0.1). forward: x, y (B, 3, H, W) in [0, 1] -> (B,) distances (0 for equal images)."""

    def __init__(self, backbone: str, linear: str):
        super().__init__()
        self.net, self.lin = _VGG16Features(), _LPIPSLinear()
        load_weights(self.net, backbone, backbone=True)
        load_weights(self.lin, linear)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net(((x.float() * 2 - 1) - self.shift) / self.scale)
        fy = self.net(((y.float() * 2 - 1) - self.shift) / self.scale)
        total = 0
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self.lin, f"lin{i}").model((a - b) ** 2).mean((1, 2, 3))
        return total


def build_lpips(cfg: TrainConfig, device: torch.device | str = "cpu") -> tuple[LPIPS | None, str]:
    """LPIPS when train.lpips is on and both weight files resolve locally; else None and the reason."""
    if not cfg.lpips:
        return None, "LPIPS off (train.lpips = false)"
    try:
        return LPIPS(cfg.lpips_backbone, cfg.lpips_linear).to(device), "LPIPS(vgg) on"
    except WeightsError as e:
        return None, f"LPIPS skipped: {e}"
