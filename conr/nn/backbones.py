"""Image backbones defined in the project, with torchvision's parameter names.

torchvision is not a dependency (its wheels do not import beside the CPU torch build here), but its weight
files are the ones people have: every module below names its parameters exactly as torchvision does
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``; ``features.N`` and
``classifier.N`` for VGG19), so those files load with ``strict=True`` through :mod:`conr.weights`.
The ``bn*`` layers are InstanceNorm (see :class:`InstanceNorm`): a file's BatchNorm ``weight``/``bias`` load into
them, its running statistics are dropped by :func:`conr.weights.adapt_backbone_state_dict`.

Encoders map an image batch (B, C, H, W), H and W multiples of 32, to the feature list at strides
2, 4, 8, 16, 32; ``encoder.channels`` gives the five channel counts.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

# (mean, std) of the data each set of pre-trained weights was trained on, for inputs in [0, 1]. 'caffe':
# the Caffe/MatConvNet VGG convention, 0..255 minus the ImageNet mean (123.68, 116.78, 103.94; kept in RGB
# order here, as torchvision's weights are RGB), the input of Zhang, Ng and Chen's feature loss.
NORMS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "danbooru": ((0.7137, 0.6628, 0.6519), (0.2970, 0.3017, 0.2979)),
    "caffe": ((123.68 / 255, 116.779 / 255, 103.939 / 255), (1 / 255,) * 3),
}


class _Normalize(nn.Module):
    """(x - mean) / std per channel; buffers are not persistent so state dicts keep torchvision's keys."""

    def __init__(self, norm: str | None):
        super().__init__()
        mean, std = NORMS[norm] if norm else ((0.0,) * 3, (1.0,) * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.active = norm is not None

    def forward(self, x):
        return (x - self.mean) / self.std if self.active else x


class InstanceNorm(nn.InstanceNorm2d):
    """The encoders' normalisation layer: InstanceNorm with a learnt per-channel scale and shift
    (``weight``, ``bias``: torchvision's BatchNorm parameter names, so its files load) and no running
    statistics, as in the official CoNR backbone.

    Why not BatchNorm: the shared encoder sees two input distributions per training step (the k composites,
    then the references on black); BatchNorm normalises each pass by its own batch in training but by
    running statistics blending both in eval, so a trained model's eval output drifts from its train
    output (issue #15, defect 1; bench/norm.py measures the gap). Instance statistics are the same in
    train and eval.

    forward: (B, C, H, W) -> same shape. A 1 x 1 map (the stride-32 features of a 32 x 32 image), which
    torch refuses, normalises to 0, so the output is the bias there."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] * x.shape[-2] == 1:
            return (x - x) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return super().forward(x)


_norm = InstanceNorm


# -----------------------------------------------------------------------------------------------------
# ResNet (He et al. 2016), torchvision layout


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = _norm(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = _norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + identity)


class Bottleneck(nn.Module):
    # stride on the 3x3 conv (torchvision's "ResNet v1.5"), which its weight files assume
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = _norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = _norm(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = _norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))


class ResNet(nn.Module):
    """ResNet-18/34/50 encoder with torchvision parameter names.

    Args:
        block, layers: BasicBlock/Bottleneck and the block count of layer1..layer4.
        num_classes: None for an encoder without a classifier; 1000 adds ``fc`` so that a complete
            torchvision classifier file loads strictly into this module.
        in_channels: channels of the input image (3 for every pre-trained file).
        norm: input normalisation applied first ('imagenet', 'danbooru' or None), see NORMS.

    forward: x (B, in_channels, H, W) float in [0, 1], H and W multiples of 32 ->
        [s2 (B, 64, H/2, W/2), s4 (B, 64e, H/4), s8 (B, 128e, H/8), s16 (B, 256e, H/16), s32 (B, 512e, H/32)]
        with e = block.expansion.
    """

    def __init__(self, block, layers: Sequence[int], num_classes: int | None = None, in_channels: int = 3,
                 norm: str | None = None):
        super().__init__()
        e = block.expansion
        self.channels = (64, 64 * e, 128 * e, 256 * e, 512 * e)
        self.normalize = _Normalize(norm)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = _norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, stages = 64, []
        for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(count):
                blocks.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width * e
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512 * e, num_classes) if num_classes else None
        for m in self.modules():  # torchvision's initialisation, for training from random init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s2 = self.relu(self.bn1(self.conv1(self.normalize(x))))
        s4 = self.layer1(self.maxpool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        return [s2, s4, s8, s16, self.layer4(s16)]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) -> ImageNet logits (B, num_classes); only with a classifier (``num_classes``)."""
        return self.fc(torch.flatten(self(x)[-1].mean((2, 3)), 1))


def resnet18(**kw) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), **kw)


def resnet34(**kw) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), **kw)


def resnet50(**kw) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), **kw)


# -----------------------------------------------------------------------------------------------------
# Plain U-Net encoder (the "original U-Net" of Tables 2 and 3)


class PlainEncoder(nn.Module):
    """Five stages of (3x3 conv stride 2, IN, ReLU, 3x3 conv, IN, ReLU); IN is :class:`InstanceNorm`.

    forward: x (B, in_channels, H, W) float -> [s2 (B, w0, H/2, W/2), ..., s32 (B, w4, H/32, W/32)].
    """

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        self.channels = tuple(widths)
        stages, cin = [], in_channels
        for w in widths:
            stages.append(nn.Sequential(
                nn.Conv2d(cin, w, 3, 2, 1, bias=False), _norm(w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, 1, 1, bias=False), _norm(w), nn.ReLU(inplace=True),
            ))
            cin = w
        self.stages = nn.ModuleList(stages)
        for m in self.modules():  # as ResNet: keeps activations at unit scale from random init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def build_encoder(name: str, norm: str = "imagenet", plain_widths: Sequence[int] = (64, 128, 256, 512, 512)):
    """The shared 3-channel image encoder named by ModelConfig.encoder (no classifier head)."""
    if name == "plain":
        return PlainEncoder(3, plain_widths)
    return {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}[name](
        norm=None if norm == "none" else norm)


# -----------------------------------------------------------------------------------------------------
# VGG19 (Simonyan & Zisserman 2015), torchvision layout, for the feature loss

_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# torchvision `features` indices of relu1_2, relu2_2, relu3_2, relu4_2, relu5_2: the layers of the
# feature loss of Zhang, Ng and Chen (2018), whose hyper-parameters the paper takes.
VGG19_LOSS_LAYERS = (3, 8, 13, 22, 31)


class VGG19(nn.Module):
    """VGG19 feature extractor with torchvision parameter names (``features.0`` ... ``features.34``).

    Args:
        num_classes: None for the feature extractor alone; 1000 adds ``classifier.{0,3,6}`` so a complete
            torchvision file loads strictly.
        norm: input normalisation ('imagenet' for torchvision weights, 'caffe' for 0..255 minus the mean,
            or None).

    forward: x (B, 3, H, W) float in [0, 1], layers (torchvision ``features`` indices) ->
        the output of each listed layer, in the order given; layers past the last one asked for are skipped.
    """

    def __init__(self, num_classes: int | None = None, norm: str | None = "imagenet"):
        super().__init__()
        self.normalize = _Normalize(norm)
        layers, cin = [], 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = None
        if num_classes:
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor, layers: Sequence[int] = VGG19_LOSS_LAYERS) -> list[torch.Tensor]:
        wanted, out = set(layers), {}
        x = self.normalize(x)
        for i, layer in enumerate(self.features[: max(layers) + 1]):
            # inplace ReLUs would overwrite a conv output that was asked for
            x = layer(x) if not isinstance(layer, nn.ReLU) else torch.relu(x)
            if i in wanted:
                out[i] = x
        return [out[i] for i in layers]
