"""The compiled dream engine: `dream_engine` runs `wm_fast::dream` (csrc/) on M's weights.

`dream.dream(..., backend="cpp" | "cuda")` lands here. The op evaluates P candidates × R
rollouts × T steps in one call with the semantics of `dream.dream_reference`; its noise comes
from counter-based Philox streams keyed by (seed, candidate, rollout, step, lane) — candidate 0
for everyone with common random numbers — so a seed gives the same returns whatever the
thread count or tiling. With `noise` (a DreamNoise) it uses exactly that noise instead, which
is how it is tested against the reference trajectory for trajectory. Dropout masks
(opts.dropout > 0) follow the same rule: the noise's masks when it has them, else the engine's
own Philox masks keyed by (seed, candidate, rollout).
"""

from __future__ import annotations

import torch

from .dream_types import DreamNoise, DreamOptions, DreamResult, check_inputs
from .mdnrnn import MDNRNN

TRAJECTORY_KEYS = ("z", "h", "action", "reward", "done", "alive")


def model_weights(model: MDNRNN, device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """(w_ih, w_hh, b_ih, b_hh, head_w, head_b) as contiguous float32 tensors (the layout of mdnrnn.py)."""
    lstm, head = model.lstm, model.head
    ws = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, head.weight, head.bias)
    return tuple(w.detach().to(device=device, dtype=torch.float32).contiguous() for w in ws)


def engine_device(backend: str) -> torch.device:
    """Device the op runs on for a compiled backend ("cpp" or "cuda")."""
    if backend == "cpp":
        return torch.device("cpu")
    if backend == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    raise ValueError(f"engine backend must be 'cpp' or 'cuda', got {backend!r}")


def engine_noise(p: int, opts: DreamOptions, pool_size: int, z_dim: int, hidden: int | None = None) -> DreamNoise:
    """The noise the engine draws internally for opts.seed, as a DreamNoise (CPU tensors).

    `dream_reference(..., noise=engine_noise(...))` repeats a generator-driven engine run
    trajectory for trajectory (up to float rounding): the Philox streams of csrc/philox.h.
    With opts.dropout > 0 the masks come too (mask_h needs `hidden`, M's H).
    """
    from . import _C

    if opts.dropout > 0 and hidden is None:
        raise ValueError("engine_noise needs hidden (M's H) to give dropout masks")
    index, init_eps, u, eps = _C.philox_dream_noise(int(opts.seed), p, opts.rollouts, opts.steps, z_dim,
                                                    pool_size, bool(opts.common_random_numbers))
    masks = (None, None)
    if opts.dropout > 0:
        masks = _C.philox_dream_masks(int(opts.seed), p, opts.rollouts, z_dim, hidden, float(opts.dropout),
                                      bool(opts.common_random_numbers))
    return DreamNoise(index, init_eps, u, eps, *masks)


@torch.no_grad()
def dream_engine(
    model: MDNRNN,
    params: torch.Tensor,
    init_mu: torch.Tensor,
    init_logvar: torch.Tensor,
    opts: DreamOptions,
    backend: str = "cpp",
    noise: DreamNoise | None = None,
    return_trajectories: bool = False,
) -> DreamResult:
    """Dream P candidates × R rollouts with the compiled engine.

    Args:
        model: M; its LSTM and head weights are read (mdnrnn.py's layout contract).
        params: (P, n) flat controller parameters.
        init_mu, init_logvar: (N, Z) the pool of initial latents.
        opts: dream options (see DreamOptions).
        backend: "cpp" (CPU threads) or "cuda" (current CUDA device and stream).
        noise: explicit noise in place of the Philox streams (see DreamNoise); its dropout masks, when
            given, are used whatever opts.dropout.
        return_trajectories: also return (T, P, R, ...) trajectories like dream_reference.
    Returns:
        DreamResult on params' device: returns (P, R) float32, lengths (P, R) int64.
    """
    from . import ops  # noqa: F401  (loads _C, registers the op and its fake kernel)

    check_inputs(model, params, init_mu, init_logvar, opts)
    device = engine_device(backend)
    out_device = params.device
    f32 = dict(device=device, dtype=torch.float32)
    weights = model_weights(model, device)
    noise_args: tuple[torch.Tensor | None, ...] = (None, None, None, None)
    mask_args: tuple[torch.Tensor | None, ...] = (None, None)
    if noise is not None:
        noise_args = (noise.init_index.to(device=device, dtype=torch.int64).contiguous(),
                      noise.init_eps.to(**f32).contiguous(), noise.u.to(**f32).contiguous(),
                      noise.eps.to(**f32).contiguous())
        mask_args = tuple(None if m is None else m.to(**f32).contiguous() for m in (noise.mask_z, noise.mask_h))
    out = torch.ops.wm_fast.dream(
        *weights, params.to(**f32).contiguous(), init_mu.to(**f32).contiguous(),
        init_logvar.to(**f32).contiguous(), opts.steps, opts.rollouts, float(opts.temperature), int(opts.seed),
        opts.action_mapping, opts.controller_input, opts.reward_source, float(opts.done_threshold), model.layout,
        bool(opts.common_random_numbers), *noise_args, bool(return_trajectories), float(opts.dropout), *mask_args,
    )
    returns, lengths = out[0].to(out_device), out[1].to(out_device)
    trajectories = None
    if return_trajectories:
        trajectories = {k: v.to(out_device) for k, v in zip(TRAJECTORY_KEYS, out[2:])}
    return DreamResult(returns, lengths, trajectories)
