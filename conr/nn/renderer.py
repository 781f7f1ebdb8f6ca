"""The collaborative renderer (CINN decoder) and the paper's plain U-Net baseline.

Every reference view runs its own copy of the decoder (weights shared: views are batched as N * n). Each
decoder block D1..D3 (strides 16, 8, 4) takes

    [upsampled local half + message from the block before | encoder skip of this view at this stride |
     target UDP area-averaged to this stride | this view's alpha coverage | flow so far (when warping)]

and splits its output channels into a local half (kept by this view) and a remote half, which a 2-channel
flow warps onto the target before the mean over the OTHER views is handed to the next block (cross-view
message passing). The flow is accumulated from block to block (each adds a residual to the one before,
upsampled). With warping on, D2 and D3 also take this view's encoder skip and alpha pre-warped onto the
target by that accumulated flow, so every block after the first refines the flow against features that are
already aligned with the target UDP; with warping off nothing is warped anywhere. The last block D4
(stride 2, one per target) gathers the all-view mean of the outputs of D1, D2 and D3 with the target UDP and
outputs premultiplied RGBA at full resolution. Every cross-view operation is a mean, so any n >= 1 works
with one set of weights and the order of the views does not matter.

Shapes: B targets' batch, T targets per sheet, n views, N = B * T, H x W the image (multiples of 32).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from conr.config import ModelConfig
from conr.nn.backbones import PlainEncoder
from conr.nn.blocks import ResBlock, alpha_pyramid, mean_of_others, udp_pyramid, up2, warp

VIEW_STRIDES = (16, 8, 4)   # D1, D2, D3
SKIP_STRIDES = (4, 8, 16, 32)


@dataclass
class Sheet:
    """A character sheet encoded once, to render any number of target poses from.

    refs: (B, n, 4, H, W) the references as given (premultiplied RGB + alpha in [0, 1]).
    feats: {stride: (B, n, C_s, H/s, W/s)} encoder features for strides 4, 8, 16, 32, or None for the
        U-Net baseline (its encoder sees the target UDP, so nothing can be encoded ahead of the target).
    alphas: {stride: (B, n, 1, H/s, W/s)} reference coverage at strides 16, 8, 4, or None.
    """

    refs: torch.Tensor
    feats: dict[int, torch.Tensor] | None = None
    alphas: dict[int, torch.Tensor] | None = None


class ViewBlock(nn.Module):
    """One decoder block of one view's sub-network (D1..D3).

    forward: x (M, cin, h, w) block input, flow_in (M, 2, h, w) flow of the block before at this scale or
        None -> local (M, c/2, h, w), remote (M, c/2, h, w) warped onto the target, flow (M, 2, h, w) or None.
    """

    def __init__(self, cin: int, cout: int, warping: bool, has_flow_in: bool):
        super().__init__()
        self.body = ResBlock(cin + (2 if has_flow_in else 0), cout)
        self.flow = nn.Conv2d(cout, 2, 3, padding=1) if warping else None
        if warping:
            # start from the identity warp; the flow is learnt as a residual on the coarser one
            nn.init.zeros_(self.flow.weight)
            nn.init.zeros_(self.flow.bias)

    def forward(self, x, flow_in):
        y = self.body(x if flow_in is None else torch.cat((x, flow_in), 1))
        local, remote = y.chunk(2, dim=1)
        if self.flow is None:
            return local, remote, None
        flow = self.flow(y) if flow_in is None else flow_in + self.flow(y)
        return local, warp(remote, flow), flow


class GatherBlock(nn.Module):
    """D4: gathered all-view features + target UDP at stride 2 -> premultiplied RGBA at stride 1.

    forward: x (N, cin, H/2, W/2), udp (N, 4, H, W) -> (N, 4, H, W): rgb * alpha, alpha; all in [0, 1];
    alpha is 0 wherever the target UDP's occupancy is 0.
    """

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.body = ResBlock(cin, width)
        # the full-resolution UDP comes back in so the silhouette is drawn at pixel precision
        self.conv = nn.Conv2d(width + 4, width, 3, padding=1)
        self.out = nn.Conv2d(width, 4, 3, padding=1)

    def forward(self, x, udp):
        y = up2(self.body(x))
        y = self.out(F.relu(self.conv(torch.cat((y, udp), 1))))
        # The target's silhouette is given: alpha is learnt only where the UDP says there is body. Without
        # this gate the (mostly empty) background drives every alpha logit down until the sigmoid saturates
        # and the renderer collapses to a transparent image early in training.
        alpha = torch.sigmoid(y[:, 3:]) * udp[:, 3:4]
        return torch.cat((torch.sigmoid(y[:, :3]) * alpha, alpha), 1)


class CollaborativeDecoder(nn.Module):
    """D1..D4 over n views.

    Args:
        skip_channels: encoder channels at strides 4, 8, 16, 32.
        widths: output channels of D1..D4.
        warping: flows + warping of the remote halves.
        message_passing: exchanges between views, 1..3; the last is always the gather into D4, the ones
            before it are at the outputs of D2 (2 and up) and D1 (3). A block that does not exchange hands
            its own remote half to its next block.
        use_alpha: feed each view's alpha coverage into its blocks.

    forward: feats {stride: (N, n, C_s, H/s, W/s)} for strides 4..32, alphas {stride: (N, n, 1, ...)} for
        strides 16, 8, 4 or None, udp (N, 4, H, W) -> rgba (N, 4, H, W) premultiplied in [0, 1].
    """

    def __init__(self, skip_channels: Sequence[int], widths: Sequence[int], warping: bool,
                 message_passing: int, use_alpha: bool):
        super().__init__()
        skips = dict(zip(SKIP_STRIDES, skip_channels))
        self.use_alpha = use_alpha
        self.exchange = [i >= len(VIEW_STRIDES) - message_passing for i in range(len(VIEW_STRIDES) - 1)]
        blocks, cprev = [], skips[32]
        for i, (s, w) in enumerate(zip(VIEW_STRIDES, widths)):
            cin = cprev + skips[s] + 4 + (1 if use_alpha else 0)
            blocks.append(ViewBlock(cin, w, warping, has_flow_in=warping and i > 0))
            cprev = w
        self.blocks = nn.ModuleList(blocks)
        self.gather = GatherBlock(sum(widths[:3]) + 4, widths[3])

    @staticmethod
    def prewarp(skip: torch.Tensor, alpha: torch.Tensor | None, flow: torch.Tensor):
        """A view's own encoder skip (M, C, h, w) and alpha (M, 1, h, w) or None, backward-warped onto the
        target by its accumulated flow (M, 2, h, w) in pixels of this scale, before the block that refines
        that flow: it then matches aligned features against the target UDP (the official network warps
        each view's reference and features at every level the same way)."""
        return warp(skip, flow), None if alpha is None else warp(alpha, flow)

    def forward(self, feats, alphas, udp):
        N, n = feats[32].shape[:2]
        H, W = udp.shape[-2:]
        udps = udp_pyramid(udp, (16, 8, 4, 2))

        def per_view(t):  # (N, C, h, w) -> (N * n, C, h, w), the same target for every view
            return t.unsqueeze(1).expand(N, n, *t.shape[1:]).reshape(N * n, *t.shape[1:])

        x = up2(feats[32].flatten(0, 1))                             # (N*n, C32, H/16, W/16)
        flow, gathered = None, []
        for i, (block, s) in enumerate(zip(self.blocks, VIEW_STRIDES)):
            flow_in = None if flow is None else 2 * up2(flow)       # pixels double with the scale
            skip = feats[s].flatten(0, 1)
            alpha = alphas[s].flatten(0, 1) if self.use_alpha else None
            if flow_in is not None:
                skip, alpha = self.prewarp(skip, alpha, flow_in)
            parts = [x, skip, per_view(udps[s])] + ([] if alpha is None else [alpha])
            local, remote, flow = block(torch.cat(parts, 1), flow_in)  # (N*n, w/2, H/s, W/s) each
            out = torch.cat((local, remote), 1).unflatten(0, (N, n))  # (N, n, w, H/s, W/s)
            gathered.append(F.interpolate(out.mean(1), size=(H // 2, W // 2), mode="bilinear",
                                          align_corners=False))      # (N, w, H/2, W/2)
            if i < len(self.exchange):
                remote = remote.unflatten(0, (N, n))
                message = mean_of_others(remote) if self.exchange[i] else remote
                x = up2(torch.cat((local, message.flatten(0, 1)), 1))  # (N*n, w, 2h, 2w)
        return self.gather(torch.cat(gathered + [udps[2]], 1), udp)


class CollaborativeRenderer(nn.Module):
    """CoNR's renderer (CINN on): the decoder over per-view features of the shared encoder.

    forward: sheet (feats and alphas from :meth:`make_sheet`), udp (B, T, 4, H, W) -> rgba (B, T, 4, H, W).
    """

    def __init__(self, enc_channels: Sequence[int], cfg: ModelConfig):
        super().__init__()
        self.decoder = CollaborativeDecoder(enc_channels[1:], cfg.renderer_widths, cfg.warping,
                                            cfg.message_passing, use_alpha=True)

    @staticmethod
    def make_sheet(refs: torch.Tensor, feats: Sequence[torch.Tensor]) -> Sheet:
        """refs (B, n, 4, H, W), feats: encoder output for refs[:, :, :3].flatten(0, 1) -> Sheet."""
        B, n = refs.shape[:2]
        return Sheet(refs=refs,
                     feats={s: f.unflatten(0, (B, n)) for s, f in zip(SKIP_STRIDES, feats[1:])},
                     alphas={s: a.unflatten(0, (B, n)) for s, a in
                             alpha_pyramid(refs[:, :, 3:].flatten(0, 1), VIEW_STRIDES).items()})

    def forward(self, sheet: Sheet, udp: torch.Tensor) -> torch.Tensor:
        B, T = udp.shape[:2]

        def per_target(t):  # (B, n, ...) -> (B * T, n, ...): encoded once, decoded for every target
            return t.unsqueeze(1).expand(B, T, *t.shape[1:]).flatten(0, 1)

        feats = {s: per_target(f) for s, f in sheet.feats.items()}
        alphas = {s: per_target(a) for s, a in sheet.alphas.items()}
        return self.decoder(feats, alphas, udp.flatten(0, 1)).unflatten(0, (B, T))


class UNetRenderer(nn.Module):
    """The paper's plain U-Net baseline (CINN off): one network whose encoder takes the ``views`` references
    and the target UDP concatenated along channels; the decoder is the same D1..D4 with a single "view"
    (so no exchange; with warping on, each block warps its own remote half: Table 3's "U-Net + Warping").

    forward: sheet (refs only), udp (B, T, 4, H, W) -> rgba (B, T, 4, H, W).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.views = cfg.views
        self.encoder = PlainEncoder(4 * cfg.views + 4, cfg.plain_widths)
        self.decoder = CollaborativeDecoder(cfg.plain_widths[1:], cfg.renderer_widths, cfg.warping,
                                            cfg.message_passing, use_alpha=False)

    def forward(self, sheet: Sheet, udp: torch.Tensor) -> torch.Tensor:
        B, T = udp.shape[:2]
        refs = sheet.refs.flatten(1, 2)                              # (B, 4n, H, W)
        refs = refs.unsqueeze(1).expand(B, T, *refs.shape[1:])      # (B, T, 4n, H, W)
        x = torch.cat((refs, udp), 2).flatten(0, 1)                  # (B*T, 4n + 4, H, W)
        feats = {s: f.unsqueeze(1) for s, f in zip(SKIP_STRIDES, self.encoder(x)[1:])}
        return self.decoder(feats, None, udp.flatten(0, 1)).unflatten(0, (B, T))
