"""A real episode beside M's dream of it: the video that shows whether the dream is the world.

From one env seed, C drives the real environment while, from the same first frame, C drives
M's dream (closed loop: C acts on dreamed z and M's h, z sampled at temperature τ). Each GIF
frame has three panels, left to right:

    the real frame (what the env renders) | V's decoding of the real z (what C sees) | V's decoding of the dreamed z

Where the right panel drifts from the middle one, M's world differs from the real one. The
dream panel holds its last frame once M predicts the episode's end.

    wm-fast video --run-dir results/carracing_headline --seed 123 --steps 300
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

PANEL = 128
"""Side in pixels of each panel."""


def _resize(frame: np.ndarray, side: int = PANEL) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, 3) uint8 frame to (side, side, 3)."""
    rows = np.arange(side) * frame.shape[0] // side
    cols = np.arange(side) * frame.shape[1] // side
    return frame[rows][:, cols]


@torch.no_grad()
def _decode(vae: Any, z: torch.Tensor) -> np.ndarray:
    """V's decoding of z (T, Z) as (T, 64, 64, 3) uint8."""
    out = torch.cat([vae.decode(chunk) for chunk in z.split(256)])
    return (out.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@torch.no_grad()
def real_beside_dream(env_name: str, env_backend: str, vae_path: Path | str, rnn_path: Path | str,
                      controller_path: Path | str, seed: int, steps: int, temperature: float = 1.0,
                      done_threshold: float = 0.5) -> dict[str, Any]:
    """Run the real episode and the dream from its first frame; return their frames and scores.

    Returns {"frames": list of (PANEL, 3*PANEL, 3) uint8, "real_return", "real_steps",
    "dream_return", "dream_steps"}.
    """
    from .dream import dream_reference
    from .dream_types import DreamOptions
    from .envs import facts
    from .es import load_controller
    from .rollout.episodes import EpisodeRequest, run_episodes
    from .rollout.pool import WorkerCore, agent_spec
    from .train_rnn import load_mdnrnn
    from .train_vae import load_vae
    from .vae import frames_to_tensor

    env = facts(env_name)
    if env.observation != "frames":
        raise ValueError(f"{env_name} has state observations: there are no frames to show")
    params = load_controller(controller_path)
    core = WorkerCore(agent_spec(env_name, env_backend, steps, 1, vae_path, rnn_path))
    try:
        real = run_episodes(core.vec, [EpisodeRequest(seed, params.numpy(), record=True, keep=True)], core.actor)[0]
    finally:
        core.close()
    vae, model = load_vae(vae_path), load_mdnrnn(rnn_path)
    obs = frames_to_tensor(real["observations"][: real["steps"]])
    mu, logvar = vae.encode(obs)
    opts = DreamOptions(steps=steps, rollouts=1, temperature=temperature, seed=seed,
                        action_mapping=env.action_mapping, controller_input=env.controller_input,
                        reward_source=env.reward_source, done_threshold=done_threshold)
    dreamt = dream_reference(model, params[None], mu[:1], logvar[:1], opts, return_trajectories=True)
    dream_steps = int(dreamt.lengths[0, 0])
    real_view = _decode(vae, mu)
    dream_view = _decode(vae, dreamt.trajectories["z"][:dream_steps, 0, 0])
    frames = []
    for t in range(real["steps"]):
        panels = [_resize(real["frames"][t]), _resize(real_view[t]), _resize(dream_view[min(t, dream_steps - 1)])]
        frames.append(np.concatenate(panels, axis=1))
    return {"frames": frames, "real_return": float(real["return"]), "real_steps": int(real["steps"]),
            "dream_return": float(dreamt.returns[0, 0]), "dream_steps": dream_steps}
