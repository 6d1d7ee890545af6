"""Loads the compiled ops (wm_fast._C) and registers their fake (meta) kernels for torch.compile."""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.wm_fast.*)


@torch.library.register_fake("wm_fast::controller_forward")
def _controller_forward_fake(params: torch.Tensor, x: torch.Tensor, out_size: int) -> torch.Tensor:
    return x.new_empty((x.shape[0], x.shape[1], out_size))


controller_forward = torch.ops.wm_fast.controller_forward
