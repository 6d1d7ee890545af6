"""Real-environment evaluation of C acting on V's z and M's h, and an episode video.

Per step: z_t = V.encode(frame_t).mu, a_t = C([z_t, h_t]), the env steps with a_t,
and M advances its state with (z_t, a_t) (`rollout.agent.BatchedAgent`). Episodes run on
the worker pool (`rollout.pool`): each worker steps a VecEnv of `cfg.envs_per_worker` slots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .config import EvalConfig
from .storage import atomic_write_json


def evaluate(
    env_name: str,
    vae_path: Path | str | None,
    rnn_path: Path | str,
    controller_path: Path | str,
    cfg: EvalConfig,
    env_backend: str = "gymnasium",
    out_json: Path | str | None = None,
    video_path: Path | str | None = None,
    progress: bool = True,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run cfg.episodes real episodes with seeds seed_start + i; write out_json and a GIF.

    `vae_path` None: a state env (its normalized state is z). Episodes run on `cfg.workers`
    local worker processes (`rollout.pool.WorkerPool`): a worker that dies or runs a batch
    longer than `timeout_s` is replaced and its episodes re-run; the result says how many
    such faults there were.

    Returns {"mean", "std", "returns", "lengths", "seeds", "episodes", "env", "env_backend",
    "seconds", "video", "faults"}.
    """
    from .es import load_controller
    from .rollout.episodes import EpisodeRequest
    from .rollout.pool import WorkerPool, agent_spec, run_requests, share, short_event
    from .storage import WmFastError

    params = load_controller(controller_path).numpy()
    seeds = [cfg.seed_start + i for i in range(cfg.episodes)]
    requests = [EpisodeRequest(s, params, record=bool(cfg.video and i == 0 and video_path is not None))
                for i, s in enumerate(seeds)]
    workers, slots = share(len(requests), cfg.workers, cfg.envs_per_worker)
    spec = agent_spec(env_name, env_backend, cfg.max_steps, slots, vae_path, rnn_path)
    start = time.perf_counter()
    bar = tqdm(total=len(requests), disable=not progress, desc="evaluate", unit="ep")

    def on_episode(i: int, out: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(last=f"{out['return']:.1f}")

    with WorkerPool(spec, workers, timeout_s=timeout_s) as pool:
        results, report = run_requests(pool, requests, on_episode=on_episode,
                                       label=lambda i: f"evaluation episode {i} (env seed {seeds[i]})")
    bar.close()
    failed = [i for i, r in enumerate(results) if r is None]
    if failed:
        raise WmFastError(f"evaluation episodes {failed} failed on every attempt: {short_event(report['events'][-1])}")
    returns = [float(r["return"]) for r in results]  # type: ignore[index]
    lengths = [int(r["steps"]) for r in results]  # type: ignore[index]
    video_frames = [f for r in results for f in (r.get("frames") or [])]  # type: ignore[union-attr]

    video = None
    if video_frames and video_path is not None:
        video = str(write_gif(video_frames, Path(video_path)))
    result = {
        "mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns,
        "lengths": lengths, "seeds": seeds, "episodes": len(seeds), "env": env_name, "env_backend": env_backend,
        "seconds": time.perf_counter() - start, "video": video, "faults": report["summary"],
    }
    if out_json is not None:
        atomic_write_json(out_json, result)
    return result


def write_gif(frames: list[np.ndarray], path: Path, every: int = 2, scale: int = 2, fps: int = 25) -> Path:
    """Write every `every`-th frame (H, W, 3) uint8, upscaled `scale`×, as a GIF."""
    import imageio.v3 as iio

    scale = scale if frames[0].shape[0] < 200 else 1  # upscale only small frames (CarRacing's 96x96)
    picked = [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames[::every]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    iio.imwrite(tmp, np.stack(picked), extension=".gif", duration=1000 * every / fps, loop=0)
    tmp.replace(path)
    return path
