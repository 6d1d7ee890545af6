"""Loads the compiled ops (wm_fast._C) and registers their fake (meta) kernels for torch.compile.

    torch.ops.wm_fast.controller_forward(params, x, out_size) -> raw outputs (P, B, out)
    torch.ops.wm_fast.dream(...) -> (returns, lengths, z, h, action, reward, done, alive)
        the dream engine (schema in csrc/ops.cpp, contract in csrc/dream.h); engine.py wraps it.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.wm_fast.*)


@torch.library.register_fake("wm_fast::controller_forward")
def _controller_forward_fake(params: torch.Tensor, x: torch.Tensor, out_size: int) -> torch.Tensor:
    return x.new_empty((x.shape[0], x.shape[1], out_size))


controller_forward = torch.ops.wm_fast.controller_forward


@torch.library.register_fake("wm_fast::dream")
def _dream_fake(w_ih, w_hh, b_ih, b_hh, head_w, head_b, params, init_mu, init_logvar, steps, rollouts,
                temperature, seed, action_mapping, controller_input, reward_source, done_threshold, layout,
                common_random_numbers, init_index, init_eps, noise_u, noise_eps, return_trajectories, dropout=0.0,
                mask_z=None, mask_h=None):
    p, r, t = params.shape[0], rollouts, steps
    z, h, a = init_mu.shape[1], w_hh.shape[1], w_ih.shape[1] - init_mu.shape[1]
    f = dict(dtype=torch.float32, device=params.device)
    b = dict(dtype=torch.bool, device=params.device)
    returns = params.new_empty((p, r), dtype=torch.float32)
    lengths = params.new_empty((p, r), dtype=torch.int64)
    if not return_trajectories:
        return (returns, lengths, torch.empty(0, **f), torch.empty(0, **f), torch.empty(0, **f),
                torch.empty(0, **f), torch.empty(0, **b), torch.empty(0, **b))
    return (returns, lengths, torch.empty(t, p, r, z, **f), torch.empty(t, p, r, h, **f),
            torch.empty(t, p, r, a, **f), torch.empty(t, p, r, **f), torch.empty(t, p, r, **b),
            torch.empty(t, p, r, **b))


dream = torch.ops.wm_fast.dream
