"""Checks of the tensors handed to the networks (DESIGN 3.7), each failure an InputError naming the
tensor and the value received. Side lengths must be multiples of 32: the encoders downsample five times
and the decoders concatenate skips of matching size."""
from __future__ import annotations

import torch

from conr.errors import InputError

STRIDE = 32


def check_image_batch(name: str, x: object, dims: int, channels: int) -> torch.Tensor:
    """x must be a finite float tensor with ``dims`` dims, ``channels`` at dim -3 and H, W multiples of 32."""
    if not isinstance(x, torch.Tensor):
        raise InputError(name, type(x).__name__, "expected a torch.Tensor")
    if x.dim() != dims:
        layout = {4: "(B, C, H, W)", 5: "(B, n, C, H, W)"}[dims]
        raise InputError(name, f"shape {tuple(x.shape)}", f"expected {dims} dims {layout}")
    if not x.is_floating_point():
        raise InputError(name, f"dtype {x.dtype}", "expected a floating-point tensor with values in [0, 1]")
    if x.shape[-3] != channels:
        raise InputError(name, f"{x.shape[-3]} channels (shape {tuple(x.shape)})", f"expected {channels}")
    H, W = x.shape[-2:]
    if H < STRIDE or W < STRIDE or H % STRIDE or W % STRIDE:
        raise InputError(name, f"size {H}x{W}", f"height and width must be positive multiples of {STRIDE}")
    # meta tensors (FLOP counting) have shapes but no values
    if x.device.type != "meta" and x.numel() and not bool(torch.isfinite(x).all()):
        raise InputError(name, "NaN or infinite values", "expected finite values in [0, 1]")
    return x


def check_refs(refs: object) -> torch.Tensor:
    """refs (B, n, 4, H, W), n >= 1: premultiplied RGB + alpha."""
    check_image_batch("refs", refs, 5, 4)
    if refs.shape[1] == 0:
        raise InputError("refs", f"n = 0 reference views (shape {tuple(refs.shape)})", "expected at least one")
    if refs.shape[0] == 0:
        raise InputError("refs", f"batch of 0 (shape {tuple(refs.shape)})", "expected at least one sheet")
    return refs


def check_udp(udp: object, refs: torch.Tensor) -> torch.Tensor:
    """target_udp (B, 4, H, W) or (B, T, 4, H, W) with the batch and image size of ``refs``."""
    if isinstance(udp, torch.Tensor) and udp.dim() == 5:
        check_image_batch("target_udp", udp, 5, 4)
    else:
        check_image_batch("target_udp", udp, 4, 4)
    if udp.shape[0] != refs.shape[0]:
        raise InputError("target_udp", f"batch {udp.shape[0]}", f"expected the batch of refs, {refs.shape[0]}")
    if udp.shape[-2:] != refs.shape[-2:]:
        raise InputError("target_udp", f"size {udp.shape[-2]}x{udp.shape[-1]}",
                         f"expected the size of refs, {refs.shape[-2]}x{refs.shape[-1]}")
    if udp.dim() == 5 and udp.shape[1] == 0:
        raise InputError("target_udp", f"T = 0 targets (shape {tuple(udp.shape)})", "expected at least one")
    return udp
