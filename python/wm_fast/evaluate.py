"""Real-environment evaluation of C acting on V's z and M's h, and an episode video.

Per step: z_t = V.encode(frame_t).mu, a_t = C([z_t, h_t]), the env steps with a_t,
and M advances its state with (z_t, a_t). Episodes run in worker processes (see
`wm_fast.real`), one env and one copy of V, M, C per worker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import EvalConfig
from .storage import atomic_write_json


class Agent:
    """V + M + C acting in a real environment, one step at a time.

    Built once per worker; `set_params` copies new controller parameters into the existing
    tensor (no new modules per call: worker memory stays flat over any number of calls).
    `controller_path=None` starts with zero parameters.
    """

    def __init__(self, vae_path: Path | str, rnn_path: Path | str, controller_path: Path | str | None,
                 action_mapping: str, controller_input: str = "zh"):
        from .controller import LinearController, input_size, n_params, output_size
        from .es import load_controller
        from .train_rnn import load_mdnrnn
        from .train_vae import load_vae

        self.vae = load_vae(vae_path)
        self.model = load_mdnrnn(rnn_path)
        m = self.model
        self.controller_input = controller_input
        in_size = input_size(m.z_dim, m.hidden, controller_input)  # type: ignore[arg-type]
        out_size = output_size(action_mapping, m.action_dim)  # type: ignore[arg-type]
        self.n_params = n_params(in_size, out_size)
        params = load_controller(controller_path) if controller_path is not None else torch.zeros(self.n_params)
        self.controller = LinearController(params.clone(), in_size, out_size, action_mapping,  # type: ignore[arg-type]
                                           m.action_dim)
        self.reset()

    def set_params(self, params: np.ndarray | torch.Tensor) -> None:
        """Load flat controller params (n,) in place (C's W and b are views of this tensor)."""
        p = torch.as_tensor(np.asarray(params, dtype=np.float32))
        if p.shape != (self.n_params,):
            raise ValueError(f"controller params must have shape ({self.n_params},), got {tuple(p.shape)}")
        if not torch.isfinite(p).all():
            raise ValueError("controller params hold NaN or infinite values")
        self.controller.params.copy_(p)

    def reset(self) -> None:
        self.state = self.model.initial_state(1)

    @torch.no_grad()
    def act(self, frame: np.ndarray, noise: np.ndarray | None = None,
            low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
        """frame (64, 64, 3) uint8 → action (A,) float32; advances M's state.

        With `noise` (A,), the action is C's plus the noise, clipped to [low, high]; M's state
        advances with the action actually taken.
        """
        from .controller import controller_features
        from .vae import frames_to_tensor

        mu, _ = self.vae.encode(frames_to_tensor(frame[None]))
        h, c = self.state
        action = self.controller(controller_features(mu, h, c, self.controller_input))  # (1, A)
        if noise is not None:
            a = action[0].numpy() + noise
            if low is not None and high is not None:
                a = np.clip(a, low, high)
            action = torch.as_tensor(a, dtype=torch.float32)[None]
        _, self.state = self.model.step(mu, action, self.state)
        return action[0].numpy().astype(np.float32)


def run_episode(env, agent: Agent, seed: int, record: bool = False,
                max_steps: int | None = None) -> tuple[float, int, list[np.ndarray]]:
    """One episode; returns (total reward, steps, raw frames if `record`).

    Ends when the env terminates or truncates, or after `max_steps` steps when given.
    """
    frame = env.reset(seed)
    agent.reset()
    total, steps, frames = 0.0, 0, []
    while True:
        if record:
            frames.append(env.render().copy())
        frame, reward, terminated, truncated = env.step(agent.act(frame))
        total += reward
        steps += 1
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return total, steps, frames


def noisy_episode(env, agent: Agent, seed: int, max_steps: int, noise: float) -> dict[str, Any]:
    """One episode of C plus Gaussian exploration noise, kept as an episode shard's arrays.

    The noise comes from a generator seeded by the env seed, so the episode depends on
    `seed` only. Returns frames (T+1, 64, 64, 3) uint8, actions (T, A), rewards (T,),
    terminated, truncated, seed (the `shards.save_episode` arguments).
    """
    rng = np.random.default_rng([int(seed), 0x1D1E])
    low = np.asarray(env.action_low, dtype=np.float32)
    high = np.asarray(env.action_high, dtype=np.float32)
    first = env.reset(seed)
    agent.reset()
    frames = [first]
    actions, rewards = [], []
    terminated = truncated = False
    while len(actions) < max_steps and not (terminated or truncated):
        eps = (noise * rng.standard_normal(low.shape)).astype(np.float32) if noise > 0 else None
        a = agent.act(frames[-1], eps, low, high)
        frame, reward, terminated, truncated = env.step(a)
        frames.append(frame)
        actions.append(a)
        rewards.append(reward)
    return {
        "frames": np.stack(frames), "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32), "terminated": bool(terminated),
        "truncated": bool(truncated or not terminated), "seed": int(seed),
    }


def evaluate(
    env_name: str,
    vae_path: Path | str,
    rnn_path: Path | str,
    controller_path: Path | str,
    cfg: EvalConfig,
    out_json: Path | str | None = None,
    video_path: Path | str | None = None,
    progress: bool = True,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run cfg.episodes real episodes with seeds seed_start + i; write out_json and a GIF.

    Episodes run on `cfg.workers` local worker processes (`wm_fast.real.WorkerPool`): a
    worker that dies or runs an episode longer than `timeout_s` is replaced and the episode
    re-run; the result says how many such faults there were.

    Returns {"mean", "std", "returns", "lengths", "seeds", "episodes", "seconds", "video", "faults"}.
    """
    from .es import load_controller
    from .real import Task, WorkerPool, env_action_mapping, worker_spec

    params = load_controller(controller_path).numpy()
    seeds = [cfg.seed_start + i for i in range(cfg.episodes)]
    tasks = [Task("episode", s, params, {"record": bool(cfg.video and i == 0 and video_path is not None)},
                  label=f"evaluation episode {i} (env seed {s})") for i, s in enumerate(seeds)]
    spec = worker_spec(env_name, cfg.max_steps, vae_path, rnn_path, env_action_mapping(env_name))
    start = time.perf_counter()
    bar = tqdm(total=len(tasks), disable=not progress, desc="evaluate", unit="ep")

    def on_result(i: int, out: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(last=f"{out['return']:.1f}")

    with WorkerPool(spec, min(cfg.workers, len(tasks)), timeout_s=timeout_s) as pool:
        results, report = pool.run(tasks, on_result=on_result)
    bar.close()
    failed = [i for i, r in enumerate(results) if r is None]
    if failed:
        from .storage import WmFastError

        raise WmFastError(f"evaluation episodes {failed} failed on every attempt: {report['events'][-1]}")
    returns = [float(r["return"]) for r in results]  # type: ignore[index]
    lengths = [int(r["steps"]) for r in results]  # type: ignore[index]
    video_frames = [f for r in results for f in (r.get("frames") or [])]  # type: ignore[union-attr]

    video = None
    if video_frames and video_path is not None:
        video = str(write_gif(video_frames, Path(video_path)))
    result = {
        "mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns,
        "lengths": lengths, "seeds": seeds, "episodes": len(seeds), "env": env_name,
        "seconds": time.perf_counter() - start, "video": video, "faults": report["summary"],
    }
    if out_json is not None:
        atomic_write_json(out_json, result)
    return result


def write_gif(frames: list[np.ndarray], path: Path, every: int = 2, scale: int = 2, fps: int = 25) -> Path:
    """Write every `every`-th frame (H, W, 3) uint8, upscaled `scale`×, as a GIF."""
    import imageio.v3 as iio

    picked = [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames[::every]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    iio.imwrite(tmp, np.stack(picked), extension=".gif", duration=1000 * every / fps, loop=0)
    tmp.replace(path)
    return path
