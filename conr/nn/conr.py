"""CoNR: the shared encoder, the UDP detector's decoder and the collaborative renderer in one module.

One encoder, two users: the detector decodes the encoder's features of an image into its UDP; the renderer
decodes the encoder's features of each reference view (with the target UDP) into the target image. Both
losses train the encoder (the paper shares the two encoders' weights; here they are one module).

Typical use::

    model = CoNR(PRESETS["paper"])
    rgba = model(refs, target_udp)                    # (B, 4, H, W)
    sheet = model.encode(refs)                        # encode the character sheet once ...
    frames = model.render(sheet, udps)                # ... render (B, T, 4, H, W) for T target poses
    out = model.forward_train(refs, composites)       # detector on k composites -> UDP -> renderer
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from conr.config import ModelConfig
from conr.errors import InputError
from conr.nn.backbones import build_encoder
from conr.nn.detector import DetectorDecoder, fuse_detections
from conr.nn.inputs import check_image_batch, check_refs, check_udp
from conr.nn.renderer import CollaborativeRenderer, Sheet, UNetRenderer


@dataclass
class TrainOutput:
    """detections (B, k, 4, H, W): per composite, xyz in [0, 1] and mask logits;
    udp (B, 4, H, W): the fused detection the renderer was driven by; rgba (B, 4, H, W) premultiplied."""

    detections: torch.Tensor
    udp: torch.Tensor
    rgba: torch.Tensor


class CoNR(nn.Module):
    """Modules: ``encoder`` (ResNet or plain, 3-channel images -> features at strides 2..32),
    ``detector_decoder`` (:class:`DetectorDecoder`), ``renderer`` (:class:`CollaborativeRenderer`, or
    :class:`UNetRenderer` when ``cfg.cinn`` is off)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder, cfg.encoder_norm, cfg.plain_widths)
        self.detector_decoder = DetectorDecoder(self.encoder.channels, cfg.detector_widths)
        self.renderer = CollaborativeRenderer(self.encoder.channels, cfg) if cfg.cinn else UNetRenderer(cfg)

    def detect(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) RGB in [0, 1] -> (B, 4, H, W): xyz in [0, 1], mask logits."""
        check_image_batch("images", images, 4, 3)
        return self.detector_decoder(self.encoder(images), images)

    def encode(self, refs: torch.Tensor) -> Sheet:
        """refs (B, n, 4, H, W) premultiplied RGBA in [0, 1] -> Sheet for :meth:`render`.

        The encoder sees the premultiplied RGB (the character on black, like the detector's composites
        on their backgrounds); alpha reaches the renderer's blocks as coverage maps.
        """
        check_refs(refs)
        if not self.cfg.cinn:
            if refs.shape[1] != self.cfg.views:
                raise InputError("refs", f"n = {refs.shape[1]} reference views",
                                 f"the U-Net baseline concatenates exactly views = {self.cfg.views}")
            return Sheet(refs=refs)
        return CollaborativeRenderer.make_sheet(refs, self.encoder(refs[:, :, :3].flatten(0, 1)))

    def render(self, sheet: Sheet, target_udp: torch.Tensor) -> torch.Tensor:
        """sheet from :meth:`encode`, target_udp (B, 4, H, W) or (B, T, 4, H, W) UDP in [0, 1] ->
        premultiplied RGBA in [0, 1] of the same shape; T targets share one encoding of the sheet."""
        check_udp(target_udp, sheet.refs)
        if target_udp.dim() == 4:
            return self.renderer(sheet, target_udp.unsqueeze(1)).squeeze(1)
        return self.renderer(sheet, target_udp)

    def forward(self, refs: torch.Tensor, target_udp: torch.Tensor) -> torch.Tensor:
        """refs (B, n, 4, H, W), target_udp (B, 4, H, W) -> rgba (B, 4, H, W) premultiplied in [0, 1]."""
        return self.render(self.encode(refs), target_udp)

    def forward_train(self, refs: torch.Tensor, composites: torch.Tensor) -> TrainOutput:
        """One training sample as in the paper: the detector runs on the target pasted on k backgrounds,
        the average of the k detections is the UDP the renderer draws the target from.

        refs (B, m, 4, H, W); composites (B, k, 3, H, W) RGB in [0, 1] -> TrainOutput.
        """
        check_refs(refs)
        check_image_batch("composites", composites, 5, 3)
        B, m, k = refs.shape[0], refs.shape[1], composites.shape[1]
        if composites.shape[0] != B or composites.shape[-2:] != refs.shape[-2:]:
            raise InputError("composites", f"shape {tuple(composites.shape)}",
                             f"expected batch {B} and size {refs.shape[-2]}x{refs.shape[-1]} of refs")
        images = composites.flatten(0, 1)                            # (B*k, 3, H, W)
        if self.cfg.cinn:  # one encoder pass over the references and the composites together
            images = torch.cat((refs[:, :, :3].flatten(0, 1), images))
        feats = self.encoder(images)
        det = self.detector_decoder([f[-B * k:] for f in feats], images[-B * k:]).unflatten(0, (B, k))
        udp = fuse_detections(det)
        if self.cfg.cinn:
            sheet = CollaborativeRenderer.make_sheet(refs, [f[: B * m] for f in feats])
        else:
            sheet = self.encode(refs)
        return TrainOutput(det, udp, self.render(sheet, udp))
