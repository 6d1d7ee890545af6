"""C: the linear controller, its action mappings and flat parameter vectors.

Parameters of one controller are a flat vector `[W (out, in) row-major, b (out,)]`, so
CMA-ES sees n = out*in + out numbers (867 for CarRacing: in = 32 + 256, out = 3).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

ActionMapping = Literal["carracing", "threshold", "argmax"]
ControllerInput = Literal["zh", "zch"]

ACTION_MAPPINGS: tuple[str, ...] = ("carracing", "threshold", "argmax")
CONTROLLER_INPUTS: tuple[str, ...] = ("zh", "zch")


def input_size(z_dim: int, hidden: int, controller_input: ControllerInput = "zh") -> int:
    """Controller input width: z_dim + hidden ([z, h]) or z_dim + 2*hidden ([z, c, h])."""
    if controller_input not in CONTROLLER_INPUTS:
        raise ValueError(f"controller_input must be one of {CONTROLLER_INPUTS}, got {controller_input!r}")
    return z_dim + (2 if controller_input == "zch" else 1) * hidden


def output_size(mapping: ActionMapping, action_dim: int) -> int:
    """Raw controller outputs for an action mapping: threshold uses one output."""
    return 1 if mapping == "threshold" else action_dim


def n_params(in_size: int, out_size: int) -> int:
    """Number of parameters of a linear controller."""
    return out_size * in_size + out_size


def n_params_for(model: Any, controller_input: ControllerInput, mapping: ActionMapping) -> int:
    """Parameters of one C for M `model` (anything with z_dim, hidden and action_dim), its input and mapping."""
    return n_params(input_size(model.z_dim, model.hidden, controller_input), output_size(mapping, model.action_dim))


def unflatten(params: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split flat params (..., n) into W (..., out, in) and b (..., out)."""
    n = n_params(in_size, out_size)
    if params.shape[-1] != n:
        raise ValueError(f"params must have {n} entries in the last dim (in={in_size}, out={out_size}), "
                         f"got shape {tuple(params.shape)}")
    w = params[..., : out_size * in_size].reshape(*params.shape[:-1], out_size, in_size)
    b = params[..., out_size * in_size :]
    return w, b


def controller_features(z: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                        controller_input: ControllerInput) -> torch.Tensor:
    """Controller input from z (..., Z), h and c (..., H): [z, h] or [z, c, h]."""
    return torch.cat([z, h] if controller_input == "zh" else [z, c, h], dim=-1)


def map_action(raw: torch.Tensor, mapping: ActionMapping, action_dim: int) -> torch.Tensor:
    """Turn raw outputs W x + b into the action M and the env receive.

    raw: (..., out). Returns (..., action_dim):
      carracing: [tanh(raw0), sigmoid(raw1), sigmoid(raw2)] = steer, gas, brake;
      threshold: one output a = tanh(raw0); action -1 if a < -1/3, +1 if a > 1/3, else 0
                 (DoomTakeCover's left / stay / right), returned as (..., 1);
      argmax:    one-hot of argmax(raw) over action_dim discrete actions (CartPole).
    """
    if mapping == "carracing":
        return torch.cat([torch.tanh(raw[..., :1]), torch.sigmoid(raw[..., 1:3])], dim=-1)
    if mapping == "threshold":
        a = torch.tanh(raw[..., :1])
        return (a > 1 / 3).to(raw.dtype) - (a < -1 / 3).to(raw.dtype)
    if mapping == "argmax":
        return torch.nn.functional.one_hot(raw.argmax(-1), action_dim).to(raw.dtype)
    raise ValueError(f"action mapping must be one of {ACTION_MAPPINGS}, got {mapping!r}")


class LinearController:
    """One or a batch of linear controllers a = map(W x + b).

    Args:
        params: (n,) for one controller or (P, n) for P candidates.
    """

    def __init__(self, params: torch.Tensor, in_size: int, out_size: int,
                 mapping: ActionMapping = "carracing", action_dim: int = 3):
        self.params = torch.as_tensor(params, dtype=torch.float32)
        if not torch.isfinite(self.params).all():
            raise ValueError("controller params hold NaN or infinite values")
        self.w, self.b = unflatten(self.params, in_size, out_size)
        self.mapping = mapping
        self.action_dim = action_dim

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) for one controller, or (P, ..., in) for a batch of P → (..., out)."""
        if self.w.dim() == 2:
            return x @ self.w.T + self.b
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])  # (P, B, in)
        out = torch.baddbmm(self.b.unsqueeze(1), flat, self.w.transpose(1, 2))
        return out.reshape(*shape[:-1], self.w.shape[-2])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Actions (..., action_dim) for inputs x (..., in)."""
        return map_action(self.raw(x), self.mapping, self.action_dim)
