"""Real-environment evaluation of C acting on V's z and M's h, and an episode video.

Per step: z_t = V.encode(frame_t).mu, a_t = C([z_t, h_t]), the env steps with a_t,
and M advances its state with (z_t, a_t). Episodes run in worker processes, one env and
one copy of V, M, C per worker.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import EvalConfig
from .storage import atomic_write_json

_WORKER: dict[str, Any] = {}


class Agent:
    """V + M + C acting in a real environment, one step at a time."""

    def __init__(self, vae_path: Path | str, rnn_path: Path | str, controller_path: Path | str,
                 action_mapping: str, controller_input: str = "zh"):
        from .controller import LinearController, input_size, output_size
        from .es import load_controller
        from .train_rnn import load_mdnrnn
        from .train_vae import load_vae

        self.vae = load_vae(vae_path)
        self.model = load_mdnrnn(rnn_path)
        m = self.model
        self.controller_input = controller_input
        self.controller = LinearController(
            load_controller(controller_path), input_size(m.z_dim, m.hidden, controller_input),
            output_size(action_mapping, m.action_dim), action_mapping, m.action_dim)  # type: ignore[arg-type]
        self.reset()

    def reset(self) -> None:
        self.state = self.model.initial_state(1)

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        """frame (64, 64, 3) uint8 → action (A,) float32; advances M's state."""
        from .controller import controller_features
        from .vae import frames_to_tensor

        mu, _ = self.vae.encode(frames_to_tensor(frame[None]))
        h, c = self.state
        action = self.controller(controller_features(mu, h, c, self.controller_input))  # (1, A)
        _, self.state = self.model.step(mu, action, self.state)
        return action[0].numpy().astype(np.float32)


def run_episode(env, agent: Agent, seed: int, record: bool = False) -> tuple[float, int, list[np.ndarray]]:
    """One episode; returns (total reward, steps, raw frames if `record`)."""
    frame = env.reset(seed)
    agent.reset()
    total, steps, frames = 0.0, 0, []
    while True:
        if record:
            frames.append(env.render().copy())
        frame, reward, terminated, truncated = env.step(agent.act(frame))
        total += reward
        steps += 1
        if terminated or truncated:
            return total, steps, frames


def _init_worker(env_name: str, max_steps: int, paths: tuple[str, str, str]) -> None:
    from .envs import make, spec

    torch.set_num_threads(1)
    _WORKER["env"] = make(env_name, max_steps=max_steps)
    _WORKER["agent"] = Agent(*paths, action_mapping=spec(env_name).action_mapping)


def _worker_episode(job: tuple[int, int, bool]) -> tuple[int, float, int, list[np.ndarray]]:
    index, seed, record = job
    ret, steps, frames = run_episode(_WORKER["env"], _WORKER["agent"], seed, record)
    return index, ret, steps, frames


def evaluate(
    env_name: str,
    vae_path: Path | str,
    rnn_path: Path | str,
    controller_path: Path | str,
    cfg: EvalConfig,
    out_json: Path | str | None = None,
    video_path: Path | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run cfg.episodes real episodes with seeds seed_start + i; write out_json and a GIF.

    Returns {"mean", "std", "returns", "lengths", "seeds", "episodes", "seconds", "video"}.
    """
    paths = (str(vae_path), str(rnn_path), str(controller_path))
    seeds = [cfg.seed_start + i for i in range(cfg.episodes)]
    jobs = [(i, s, cfg.video and i == 0 and video_path is not None) for i, s in enumerate(seeds)]
    returns, lengths = [0.0] * len(seeds), [0] * len(seeds)
    video_frames: list[np.ndarray] = []
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), disable=not progress, desc="evaluate", unit="ep")

    def collect(result: tuple[int, float, int, list[np.ndarray]]) -> None:
        i, ret, steps, frames = result
        returns[i], lengths[i] = ret, steps
        if frames:
            video_frames.extend(frames)
        bar.update(1)
        bar.set_postfix(last=f"{ret:.1f}")

    workers = min(cfg.workers, len(jobs))
    if workers <= 1:
        _init_worker(env_name, cfg.max_steps, paths)
        for job in jobs:
            collect(_worker_episode(job))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(env_name, cfg.max_steps, paths)) as pool:
            for result in pool.imap_unordered(_worker_episode, jobs):
                collect(result)
    bar.close()

    video = None
    if video_frames and video_path is not None:
        video = str(write_gif(video_frames, Path(video_path)))
    result = {
        "mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns,
        "lengths": lengths, "seeds": seeds, "episodes": len(seeds), "env": env_name,
        "seconds": time.perf_counter() - start, "video": video,
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
