"""The dream's data types and input checks, below both the PyTorch reference (dream.py) and
the compiled engine (engine.py), which share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .controller import ACTION_MAPPINGS, CONTROLLER_INPUTS, input_size, output_size
from .mdnrnn import MDNRNN


class DreamNoise(NamedTuple):
    """Explicit noise for a dream of T steps, P candidates, R rollouts, Z latent dims, H hidden units.

    init_index: (P, R) int64 index into the initial latent pool
    init_eps:   (P, R, Z) standard normal for z_0
    u:          (T, P, R, Z) uniform [0, 1) picking mixture components (shared layout uses [..., 0])
    eps:        (T, P, R, Z) standard normal for z_{t+1}
    mask_z:     (P, R, Z) dropout multipliers on z as it enters M's gates (0 or 1/(1-p)), or None
    mask_h:     (P, R, H) dropout multipliers on h as it enters M's recurrent matmul, or None
                (both or neither; one pair per rollout, the same at every step; never on actions)
    """

    init_index: torch.Tensor
    init_eps: torch.Tensor
    u: torch.Tensor
    eps: torch.Tensor
    mask_z: torch.Tensor | None = None
    mask_h: torch.Tensor | None = None


class DreamResult(NamedTuple):
    """returns, lengths: (P, R). trajectories: dict of (T, P, R, ...) tensors or None:
    z (z_t fed to C and M), h (h_t fed to C), action, reward, done (bool), alive (bool, before step t)."""

    returns: torch.Tensor
    lengths: torch.Tensor
    trajectories: dict[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class DreamOptions:
    """Everything about a dream besides the tensors."""

    steps: int
    rollouts: int
    temperature: float = 1.0
    seed: int = 0
    action_mapping: str = "carracing"
    controller_input: str = "zh"
    reward_source: str = "model"
    done_threshold: float = 0.5
    common_random_numbers: bool = False
    dropout: float = 0.0
    """Dropout dreams: rate p of M's input (z) and recurrent (h) masks, one pair per rollout (0: none)."""

    def check(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.rollouts <= 0:
            raise ValueError(f"rollouts must be positive, got {self.rollouts}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.action_mapping not in ACTION_MAPPINGS:
            raise ValueError(f"action_mapping must be one of {ACTION_MAPPINGS}, got {self.action_mapping!r}")
        if self.controller_input not in CONTROLLER_INPUTS:
            raise ValueError(f"controller_input must be one of {CONTROLLER_INPUTS}, got {self.controller_input!r}")
        if self.reward_source not in ("model", "alive"):
            raise ValueError(f"reward_source must be 'model' or 'alive', got {self.reward_source!r}")
        if not 0.0 < self.done_threshold < 1.0:
            raise ValueError(f"done_threshold must be in (0, 1), got {self.done_threshold}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def check_masks(noise: DreamNoise, p: int, r: int, z_dim: int, hidden: int) -> None:
    """Raise ValueError naming mask_z or mask_h when the masks of `noise` are malformed."""
    given = (noise.mask_z is not None) + (noise.mask_h is not None)
    if given == 1:
        raise ValueError(f"mask_z and mask_h must be given together (got {given} of 2)")
    if given == 0:
        return
    for name, t, size in (("mask_z", noise.mask_z, z_dim), ("mask_h", noise.mask_h, hidden)):
        assert t is not None
        if t.shape != (p, r, size) or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape {(p, r, size)}, got {t.dtype} {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds NaN or infinite values")


def check_inputs(model: MDNRNN, params: torch.Tensor, init_mu: torch.Tensor,
                 init_logvar: torch.Tensor, opts: DreamOptions) -> None:
    """Raise ValueError naming the argument that is malformed."""
    opts.check()
    z_dim = model.z_dim
    n_in = input_size(z_dim, model.hidden, opts.controller_input)
    n_out = output_size(opts.action_mapping, model.action_dim)
    n = n_in * n_out + n_out
    if params.dim() != 2 or params.shape[0] == 0 or params.shape[1] != n:
        raise ValueError(f"params must be (P>0, {n}), got {tuple(params.shape)}")
    if not torch.isfinite(params).all():
        raise ValueError("params hold NaN or infinite values")
    for name, t in (("init_mu", init_mu), ("init_logvar", init_logvar)):
        if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] != z_dim:
            raise ValueError(f"{name} must be (N>0, {z_dim}), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    for name, w in model.named_parameters():
        if not torch.isfinite(w).all():
            raise ValueError(f"model weight {name} holds NaN or infinite values")
