"""Building blocks shared by the UDP detector and the collaborative renderer.

Shapes: N is a batch (targets x views once views are flattened), C channels, h x w a feature scale.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """Two 3x3 convs with a residual path (1x1 conv when the width changes); no normalisation, so the
    output of a view does not depend on which other views or targets share its batch.

    forward: x (N, cin, h, w) -> (N, cout, h, w)
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        # He init: torch's default shrinks activations ~1.7x per conv, which would leave the reference
        # views almost no say in the output of a freshly built (or briefly trained) renderer
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + self.skip(x))


def up2(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, 2h, 2w), bilinear."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def udp_pyramid(udp: torch.Tensor, strides: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """UDP (N, 4, H, W) -> {stride: (N, 4, H/stride, W/stride)} by area averaging all four channels.

    A UDP image stores xyz premultiplied by occupancy (zeros on the background; :func:`fuse_detections`
    writes xyz * occupancy), like premultiplied RGBA. The area mean of a stride x stride block is then the
    premultiplied form of (occupancy-weighted mean xyz of the block's occupied pixels, mean occupancy):
    a block that is all body keeps its mean landmark, a block on the silhouette gets fractional occupancy
    without its xyz being pulled towards the background's zeros, and the occupancy at every stride is
    exactly the coverage :func:`alpha_pyramid` gives the reference alphas. Both are centre-aligned: the
    value of block (i, j) describes the pixels it covers, where nearest sampling would have taken its
    top-left pixel (half a block up and left of its centre, and blind to the rest of the block). Only blocks
    straddling a depth edge mix two surfaces' landmarks, which the decoder's bilinear feature resampling
    does at such blocks anyway.
    """
    H, W = udp.shape[-2:]
    return {s: udp if s == 1 else F.interpolate(udp, size=(H // s, W // s), mode="area") for s in strides}


def alpha_pyramid(alpha: torch.Tensor, strides: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Coverage (N, 1, H, W) in [0, 1] -> {stride: (N, 1, H/stride, W/stride)} by area averaging."""
    H, W = alpha.shape[-2:]
    return {s: F.interpolate(alpha, size=(H // s, W // s), mode="area") for s in strides}


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out[p] = x[p + flow[p]], bilinear, zeros outside.

    x (N, C, h, w); flow (N, 2, h, w) in pixels of this scale, channel 0 = dx (right), 1 = dy (down).
    """
    h, w = x.shape[-2:]
    # float32 coordinates whatever the autocast dtype: bf16 cannot address the pixels of a 256 px map
    flow = flow.float()
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32),
                            torch.arange(w, device=x.device, dtype=torch.float32), indexing="ij")
    # pixel centres to [-1, 1] for align_corners=False: (2 * (i + 0.5) / size) - 1
    px = (2 * (gx + flow[:, 0] + 0.5) / w) - 1
    py = (2 * (gy + flow[:, 1] + 0.5) / h) - 1
    grid = torch.stack((px, py), dim=-1)  # (N, h, w, 2)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def mean_of_others(x: torch.Tensor) -> torch.Tensor:
    """Cross-view message: for each view, the mean over the OTHER views.

    x (N, n, C, h, w) -> (N, n, C, h, w). With n == 1 a view's message is its own features, which makes a
    sheet [A] render exactly like [A, A] (the paper's one-shot rule fills m views by repeating images).
    Sum-minus-self keeps it O(n) and independent of the order of the views.
    """
    n = x.shape[1]
    if n == 1:
        return x
    return (x.sum(dim=1, keepdim=True) - x) / (n - 1)
