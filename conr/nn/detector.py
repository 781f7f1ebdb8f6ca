"""UDP detector: a U-Net whose encoder is the shared image encoder (ResNet-50 in the paper) and whose
decoder is 5 residual blocks, one per upsampling from stride 32 back to full resolution.

The encoder is not owned here: :class:`conr.nn.conr.CoNR` holds one encoder module that the detector and
the renderer both call, so the detector decoder takes the encoder's feature list.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from conr.nn.blocks import ResBlock, up2


class DetectorDecoder(nn.Module):
    """Decode encoder features of an image into its UDP.

    Args:
        enc_channels: the encoder's channels at strides 2, 4, 8, 16, 32.
        widths: channels of the 5 residual blocks, at strides 16, 8, 4, 2, 1.

    forward: feats [s2 .. s32] of image, image (B, 3, H, W) in [0, 1] ->
        (B, 4, H, W) float: channels 0..2 landmark xyz in [0, 1] (sigmoid), channel 3 mask logits.
    """

    def __init__(self, enc_channels: Sequence[int], widths: Sequence[int]):
        super().__init__()
        # skips at strides 16, 8, 4, 2, then the image itself at stride 1 for sharp silhouettes
        skips = (enc_channels[3], enc_channels[2], enc_channels[1], enc_channels[0], 3)
        blocks, cin = [], enc_channels[4]
        for skip, w in zip(skips, widths):
            blocks.append(ResBlock(cin + skip, w))
            cin = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 4, 1)

    def forward(self, feats: Sequence[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        skips = (feats[3], feats[2], feats[1], feats[0], image)
        x = feats[4]                                   # (B, C32, H/32, W/32)
        for block, skip in zip(self.blocks, skips):
            x = block(torch.cat((up2(x), skip), 1))    # (B, w_i, 2h, 2w)
        out = self.head(x)                             # (B, 4, H, W)
        return torch.cat((torch.sigmoid(out[:, :3]), out[:, 3:]), 1)


def fuse_detections(det: torch.Tensor) -> torch.Tensor:
    """The paper's final UDP of a target from its k detections: their average, as a UDP image.

    det (B, k, 4, H, W) detector outputs -> UDP (B, 4, H, W) in [0, 1]: xyz = mean_k(xyz) * occupancy,
    occupancy = mean_k(sigmoid(mask logits)); background goes to zeros as in the UDP contract while the
    whole map stays differentiable, so the renderer's loss trains the detector end to end.
    """
    xyz = det[:, :, :3].mean(1)
    occupancy = torch.sigmoid(det[:, :, 3:]).mean(1)
    return torch.cat((xyz * occupancy, occupancy), 1)
