"""The dream: rolling out controllers inside M, and dispatch to the compiled engine.

`dream_reference` is the pure-PyTorch oracle, written the way a reader of the paper would
write it. P candidates × R rollouts run as one batch of B = P·R dreams:

    z_0 = mu_i + exp(logvar_i / 2) · ε       (i a random real first frame)
    h_0 = c_0 = 0
    for t in 0 .. T-1:
        a_t            = C([z_t, h_t])        (or [z_t, c_t, h_t])
        out, (h, c)    = M.step(z_t, a_t, (h_t, c_t), mask_z, mask_h)   (masks: dropout dreams, below)
        r_t            = out.reward           (or +1 per step alive)
        done_t         = sigmoid(out.done_logit) > done_threshold
        z_{t+1}        ~ mixture(out) at temperature τ   (logits/τ, σ·√τ)
    return_b = Σ_t r_t while alive (the step that ends the dream counts), length_b = steps taken

With opts.dropout = p > 0 (Dropout's Dream Land) each rollout draws one pair of masks, mask_z (Z) and
mask_h (H), of multipliers 0 or 1/(1-p), kept for all its steps: M's gates read z * mask_z and
h * mask_h; C, the head, c and the action are never masked. p = 0 draws nothing.

`dream` runs the same computation on a chosen backend ("auto", "torch", "cpp", "cuda").
"""

from __future__ import annotations

from typing import Literal

import torch

from .controller import LinearController, controller_features, input_size, output_size
from .dream_types import DreamNoise, DreamOptions, DreamResult, check_inputs, check_masks
from .engine import dream_engine
from .mdnrnn import MDNRNN, dropout_masks, sample_mdn

__all__ = ["DreamNoise", "DreamOptions", "DreamResult", "check_inputs", "draw_masks", "draw_noise", "dream",
           "dream_reference", "engine_backends", "resolve_backend"]

_MASK_SALT = 0x6D61736B  # "mask": the reference's masks come from their own generator

Backend = Literal["auto", "torch", "cpp", "cuda"]
RewardSource = Literal["model", "alive"]


def draw_masks(p: int, opts: DreamOptions, z_dim: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's dropout masks at rate opts.dropout: mask_z (P, R, Z), mask_h (P, R, H).

    Drawn from a torch.Generator of their own (seeded by opts.seed and a salt), so the rest of the
    noise is the same with or without dropout; with common random numbers candidates share them.
    """
    g = torch.Generator().manual_seed((opts.seed ^ _MASK_SALT) % 2**64)
    lead, r = (1 if opts.common_random_numbers else p), opts.rollouts
    mask_z, mask_h = dropout_masks(lead * r, z_dim, hidden, opts.dropout, generator=g)
    return mask_z.reshape(lead, r, z_dim).expand(p, r, z_dim), mask_h.reshape(lead, r, hidden).expand(p, r, hidden)


def draw_noise(p: int, opts: DreamOptions, pool_size: int, z_dim: int, hidden: int | None = None) -> DreamNoise:
    """Noise for the reference from a torch.Generator seeded by opts.seed.

    With common random numbers every candidate shares the noise of rollout r. With
    opts.dropout > 0 the masks (`draw_masks`, which needs `hidden`) come too.
    """
    if opts.dropout > 0 and hidden is None:
        raise ValueError("draw_noise needs hidden (M's H) to draw dropout masks")
    g = torch.Generator().manual_seed(opts.seed)
    lead = 1 if opts.common_random_numbers else p
    r, t = opts.rollouts, opts.steps
    noise = DreamNoise(
        init_index=torch.randint(pool_size, (lead, r), generator=g),
        init_eps=torch.randn(lead, r, z_dim, generator=g),
        u=torch.rand(t, lead, r, z_dim, generator=g),
        eps=torch.randn(t, lead, r, z_dim, generator=g),
    )
    if opts.common_random_numbers:
        noise = DreamNoise(
            noise.init_index.expand(p, r), noise.init_eps.expand(p, r, z_dim),
            noise.u.expand(t, p, r, z_dim), noise.eps.expand(t, p, r, z_dim),
        )
    if opts.dropout > 0:
        assert hidden is not None
        noise = noise._replace(**dict(zip(("mask_z", "mask_h"), draw_masks(p, opts, z_dim, hidden))))
    return noise


@torch.no_grad()
def dream_reference(
    model: MDNRNN,
    params: torch.Tensor,
    init_mu: torch.Tensor,
    init_logvar: torch.Tensor,
    opts: DreamOptions,
    noise: DreamNoise | None = None,
    return_trajectories: bool = False,
) -> DreamResult:
    """Pure-PyTorch dream of P candidates × R rollouts (the oracle).

    Args:
        model: M (its `step` is used, sharing the training weights).
        params: (P, n) flat controller parameters.
        init_mu, init_logvar: (N, Z) V's posterior of real first frames (the start pool).
        opts: steps, rollouts, temperature, mapping, dropout, ...
        noise: explicit noise (see DreamNoise); drawn from opts.seed when None. Its masks, when
            given, are used whatever opts.dropout; without them opts.dropout > 0 draws `draw_masks`.
    """
    check_inputs(model, params, init_mu, init_logvar, opts)
    p, r, t_max = params.shape[0], opts.rollouts, opts.steps
    z_dim, hidden, a_dim = model.z_dim, model.hidden, model.action_dim
    b = p * r
    if noise is None:
        noise = draw_noise(p, opts, init_mu.shape[0], z_dim, hidden)
    check_masks(noise, p, r, z_dim, hidden)
    if noise.mask_z is None and opts.dropout > 0:
        noise = noise._replace(**dict(zip(("mask_z", "mask_h"), draw_masks(p, opts, z_dim, hidden))))
    mask_z = None if noise.mask_z is None else noise.mask_z.reshape(b, z_dim).to(init_mu.dtype)
    mask_h = None if noise.mask_h is None else noise.mask_h.reshape(b, hidden).to(init_mu.dtype)
    controller = LinearController(
        params, input_size(z_dim, hidden, opts.controller_input),
        output_size(opts.action_mapping, a_dim), opts.action_mapping, a_dim,  # type: ignore[arg-type]
    )

    idx = noise.init_index.reshape(b)
    z = init_mu[idx] + torch.exp(0.5 * init_logvar[idx]) * noise.init_eps.reshape(b, z_dim)
    h, c = model.initial_state(b)
    alive = torch.ones(b, dtype=torch.bool)
    returns = torch.zeros(b)
    lengths = torch.zeros(b, dtype=torch.int64)
    traj: dict[str, list[torch.Tensor]] = {k: [] for k in ("z", "h", "action", "reward", "done", "alive")}

    for t in range(t_max):
        x = controller_features(z, h, c, opts.controller_input).reshape(p, r, -1)
        action = controller(x).reshape(b, -1)
        out, (h_next, c_next) = model.step(z, action, (h, c), mask_z, mask_h)
        reward = out.reward if opts.reward_source == "model" else torch.ones(b)
        done = torch.sigmoid(out.done_logit) > opts.done_threshold
        returns += torch.where(alive, reward, torch.zeros_like(reward))
        lengths += alive.to(torch.int64)
        if return_trajectories:
            for k, v in (("z", z), ("h", h), ("action", action), ("reward", reward),
                         ("done", done), ("alive", alive.clone())):
                traj[k].append(v.reshape(p, r, *v.shape[1:]))
        alive &= ~done
        z = sample_mdn(out, opts.temperature, model.layout,
                       u=noise.u[t].reshape(b, z_dim), eps=noise.eps[t].reshape(b, z_dim))
        h, c = h_next, c_next
        if not alive.any() and not return_trajectories:
            break

    trajectories = {k: torch.stack(v) for k, v in traj.items()} if return_trajectories else None
    return DreamResult(returns.reshape(p, r), lengths.reshape(p, r), trajectories)


def engine_backends() -> list[str]:
    """Compiled backends available in this install ("cpp", "cuda")."""
    try:
        from . import _C  # noqa: F401
    except ImportError:
        return []
    found = []
    if hasattr(_C, "dream_cpu"):
        found.append("cpp")
    if hasattr(_C, "dream_cuda") and torch.cuda.is_available():
        found.append("cuda")
    return found


def resolve_backend(backend: Backend) -> str:
    """The backend `auto` stands for, or a check that the one asked for exists."""
    available = engine_backends()
    if backend == "auto":
        for choice in ("cuda", "cpp"):
            if choice in available:
                return choice
        return "torch"
    if backend == "torch":
        return "torch"
    if backend in ("cpp", "cuda"):
        if backend not in available:
            raise RuntimeError(f"dream backend {backend!r} is not available in this build "
                               f"(available: {['torch', *available]})")
        return backend
    raise ValueError(f"backend must be auto, torch, cpp or cuda, got {backend!r}")


def dream(
    model: MDNRNN,
    params: torch.Tensor,
    init_mu: torch.Tensor,
    init_logvar: torch.Tensor,
    opts: DreamOptions,
    backend: Backend = "auto",
    noise: DreamNoise | None = None,
    return_trajectories: bool = False,
) -> DreamResult:
    """Dream P candidates × R rollouts on `backend` (see module docstring)."""
    chosen = resolve_backend(backend)
    if chosen == "torch":
        return dream_reference(model, params, init_mu, init_logvar, opts, noise, return_trajectories)
    return dream_engine(model, params, init_mu, init_logvar, opts, chosen, noise, return_trajectories)
