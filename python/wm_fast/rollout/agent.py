"""V, M and C acting on a batch of env slots: the one agent of every real-environment loop.

Per step, for every slot i: z_i = V(obs_i).mu (or the normalized state, for a state env),
a_i = C_i([z_i, h_i]) (each slot has its own controller parameters), optional exploration
noise, then M advances slot i's state with (z_i, a_i), the action actually taken.

Batch invariance. Torch's CPU kernels may round differently for different batch sizes, and
CarRacing amplifies any difference. So the agent always computes in blocks of exactly
`BLOCK` rows (padding the last block): a slot's numbers are then the same whether it shares
the batch with 0 or 15 other envs, and an episode depends on its seed and parameters only.
(tests/test_rollout.py checks this against a one-env run.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..controller import controller_features, input_size, map_action, n_params, output_size, unflatten
from ..mdnrnn import MDNRNN

BLOCK = 4
"""Rows per forward pass of V, M and C (see the module docstring)."""
STATE_LOGVAR = -20.0
"""log sigma^2 stored with a state env's z: M trains on z sampled from it, the state to within 5e-5."""
NOISE_STREAM = 0x1D1E
"""Mixed into an episode's seed for its exploration-noise generator."""

Encoder = Callable[[np.ndarray], torch.Tensor]
"""Observations (B, *obs_shape) -> z (B, Z) float32."""


def vae_encoder(vae_path: Path | str) -> Encoder:
    """z = V's posterior mean of uint8 frames (B, 64, 64, 3)."""
    from ..train_vae import load_vae
    from ..vae import frames_to_tensor

    vae = load_vae(vae_path)
    return lambda frames: vae.encode(frames_to_tensor(frames))[0]


def state_encoder(env_name: str) -> Encoder:
    """z = the env module's `normalize(state)` (a state env has no V)."""
    import importlib

    from .. import envs

    module = importlib.import_module(envs.facts(env_name).factory.partition(":")[0])
    return lambda states: torch.as_tensor(module.normalize(states), dtype=torch.float32)


class BatchedAgent:
    """V (an `Encoder`), M and one C per slot over `num_envs` slots (the rollout `Actor` of a trained C).

    Args:
        encoder: observations -> z.
        model: M.
        action_mapping, controller_input: the env's facts (see envs.EnvSpec).
        num_envs: N slots.
        action_low, action_high: (A,) the env's action box (noisy actions are clipped to it).
    """

    def __init__(self, encoder: Encoder, model: MDNRNN, action_mapping: str, controller_input: str,
                 num_envs: int, action_low: np.ndarray, action_high: np.ndarray):
        self.encoder, self.model = encoder, model.eval()
        self.mapping, self.controller_input = action_mapping, controller_input
        self.in_size = input_size(model.z_dim, model.hidden, controller_input)  # type: ignore[arg-type]
        self.out_size = output_size(action_mapping, model.action_dim)  # type: ignore[arg-type]
        self.n_params = n_params(self.in_size, self.out_size)
        self.num_envs = num_envs
        self.rows = -(-num_envs // BLOCK) * BLOCK
        self.params = torch.zeros(self.rows, self.n_params)
        self.h = torch.zeros(self.rows, model.hidden)
        self.c = torch.zeros(self.rows, model.hidden)
        self.low = np.asarray(action_low, dtype=np.float32)
        self.high = np.asarray(action_high, dtype=np.float32)
        self.noise = np.zeros(self.rows)
        self.rngs: list[np.random.Generator | None] = [None] * self.rows

    def begin(self, slot: int, seed: int, params: np.ndarray | None, noise: float = 0.0) -> None:
        """Start an episode in `slot`: zero M's state, load C's flat params (n,), seed its noise."""
        if params is None:
            raise ValueError("an agent episode needs controller params")
        p = torch.as_tensor(np.asarray(params, dtype=np.float32))
        if p.shape != (self.n_params,):
            raise ValueError(f"controller params must have shape ({self.n_params},), got {tuple(p.shape)}")
        if not torch.isfinite(p).all():
            raise ValueError("controller params hold NaN or infinite values")
        self.params[slot] = p
        self.h[slot] = 0.0
        self.c[slot] = 0.0
        self.noise[slot] = float(noise)
        self.rngs[slot] = np.random.default_rng([int(seed), NOISE_STREAM]) if noise > 0 else None

    @torch.no_grad()
    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Actions (N, A) float32 for observations (N, *obs_shape); advances M for every slot.

        A block with an active slot is computed whole (inactive rows too, their results never
        used); a block without one is skipped, its actions left at zero: a slot's numbers do not
        depend on the other rows, and a new episode starts M's state afresh (`begin`).
        """
        n, rows = self.num_envs, self.rows
        if rows > n:
            obs = np.concatenate([obs, np.zeros((rows - n, *obs.shape[1:]), dtype=obs.dtype)])
        w, b = unflatten(self.params, self.in_size, self.out_size)
        actions = torch.zeros(rows, self.model.action_dim)
        for s in range(0, rows, BLOCK):
            if not np.any(active[s:s + BLOCK]):
                continue
            blk = slice(s, s + BLOCK)
            z = self.encoder(obs[blk])
            x = controller_features(z, self.h[blk], self.c[blk], self.controller_input)  # type: ignore[arg-type]
            raw = torch.bmm(x[:, None, :], w[blk].transpose(1, 2))[:, 0] + b[blk]
            actions[blk] = self._explore(raw, s, active)
            _, (self.h[blk], self.c[blk]) = self.model.step(z, actions[blk], (self.h[blk], self.c[blk]))
        return actions[:n].numpy().astype(np.float32)

    def _explore(self, raw: torch.Tensor, start: int, active: np.ndarray) -> torch.Tensor:
        """The block's actions with each slot's exploration: Gaussian noise of std `noise` on the
        action, then clipped to the box (continuous mapping); or, with probability `noise`, a
        uniformly random action instead of C's (discrete mappings: argmax, threshold)."""
        actions = map_action(raw, self.mapping, self.model.action_dim)  # type: ignore[arg-type]
        for i in range(start, min(start + len(raw), self.num_envs)):
            rng = self.rngs[i]
            if not active[i] or rng is None:
                continue
            row = actions[i - start]
            if self.mapping == "carracing":
                eps = self.noise[i] * rng.standard_normal(len(row))
                row[:] = torch.as_tensor(np.clip(row.numpy() + eps.astype(np.float32), self.low, self.high))
            elif rng.random() < self.noise[i]:
                k = int(rng.integers(self.model.action_dim if self.mapping == "argmax" else 3))
                row[:] = torch.eye(self.model.action_dim)[k] if self.mapping == "argmax" else float(k - 1)
        return actions
