"""Iterative refinement (the paper's section 6): a world model that only saw random play is
improved with the episodes of its own controller.

`wm-fast iterate --rounds K` (or `Run.iterate(K)`) brings run directory D to K rounds in
all (rounds already done are kept: `--rounds 3` after `--rounds 1` does rounds 2 and 3).
Round r (from 1) runs five steps, each under D/iterate/round_{r:03d}/ and each leaving
`<step>.json` (its metrics) when it finishes:

  1. collect   iterate.episodes real episodes of the current C with N(0, noise²) noise on
               its actions (then clipped), into the run's episodes: D/episodes/episode_{I}.npz
               with I = r·100000 + j and env seed 1000000 + I (clear of the random-play and
               evaluation seeds). Local worker processes, fault tolerant (`real.WorkerPool`).
  2. encode    with iterate.retrain_vae: V continues for vae_epochs epochs on every episode
               (round/vae/vae.pt) and every episode is re-encoded into round/latents;
               otherwise V stays and the new episodes are encoded into D/latents.
  3. rnn       M continues from the current M for rnn_epochs epochs on all latents, old + new
               (round/rnn/rnn.pt; its optimizer state carries over).
  4. controller  CMA-ES in the new M's dream for iterate.generations generations, starting
               from the current C (round/controller/); the current C is scored in the new
               dream first, so the round's C is never worse there. With
               iterate.controller_from = "zeros", CMA-ES starts from zeros instead: the
               round's C is trained only in the dream (the data came from the current C).
  5. evaluate  iterate.eval_episodes real episodes of the round's C (env seeds
               iterate.eval_seed_start + i, by default evaluate.seed_start + i) → round/evaluate.json.
               `iterate.pick` "best" makes the round best on them the `iterate` controller: then
               give the rounds seeds of their own, so that `evaluate` scores on seeds no choice used.

Then the round's row (new episodes and their mean return under noise, M's loss, dream and
real scores) is added to D/iterate.json. "Current" means the previous round's (for round 1:
the pipeline's V, M and the controller named by iterate.start). A killed iterate reruns the
step it was in, which resumes from its own checkpoints, and skips finished steps.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .config import ConfigError
from .provenance import git_commit, machine_description
from .records import refuse_changed, with_new_fields
from .storage import MissingStageError, atomic_write_bytes, atomic_write_json, read_json

if TYPE_CHECKING:
    from .pipeline import Run

ROUND_STRIDE = 100_000
"""Episode index of round r's j-th episode: r * ROUND_STRIDE + j."""
SEED_OFFSET = 1_000_000
"""Env seed of episode index I collected by iterate: SEED_OFFSET + I."""
STEPS = ("collect", "encode", "rnn", "controller", "evaluate")


def round_dir(run: "Run", r: int) -> Path:
    return run.dir / "iterate" / f"round_{r:03d}"


_NOT_ROUND_SETTINGS = ("run_rounds", "pick")


def _iterate_config(run: "Run") -> dict[str, Any]:
    d = run.cfg.to_dict()
    ev = {k: d["evaluate"][k] for k in ("seed_start", "max_steps")}
    cfg = {"env": d["env"], **({"env_backend": d["env_backend"]} if d["env_backend"] != "gymnasium" else {}),
           "collect": {k: v for k, v in d["collect"].items() if k not in ("workers", "envs_per_worker")},
           "vae": d["vae"], "rnn": d["rnn"], "controller": d["controller"], "evaluate": ev,
           # how many rounds `run` does and which one `evaluate` names change no round's result
           "iterate": {k: v for k, v in d["iterate"].items() if k not in _NOT_ROUND_SETTINGS}}
    if run.cfg.iterate.start != "dream":
        cfg["real"] = {k: v for k, v in d["real"].items()
                       if k not in ("workers", "envs_per_worker", "backend", "address", "rollout_timeout_s",
                                    "max_attempts")}
    return cfg


def _rows(run: "Run") -> list[dict[str, Any]]:
    path = run.dir / "iterate.json"
    return list(read_json(path).get("rounds", [])) if path.exists() else []


def finished_rounds(run: "Run") -> int:
    """How many iterate rounds `run` has finished."""
    return len(_rows(run))


def latest_models(run: "Run", pick: str | None = None) -> dict[str, Path]:
    """V, latents, M and C of a finished iterate round: the last, or (`pick` "best", default
    `iterate.pick`) the one whose C scored best on its own scoring episodes."""
    rows = _rows(run)
    if not rows:
        raise MissingStageError(f"{run.dir} has no finished iterate round; run wm-fast iterate --run-dir {run.dir}")
    row = max(rows, key=lambda x: x["real_mean"]) if (pick or run.cfg.iterate.pick) == "best" else rows[-1]
    return _current(run, int(row["round"]) + 1)


def _current(run: "Run", r: int) -> dict[str, Path]:
    """V, latents folder, M and C that round r starts from."""
    if r == 1:
        c = run.controller_file(run.cfg.iterate.start)
        if not c.exists():
            raise MissingStageError(f"iterate starts from the {run.cfg.iterate.start} controller, and {c} is "
                                    f"missing; train it first (wm-fast train-controller --run-dir {run.dir})")
        return {"vae": run.vae_path, "latents": run.latents_dir, "rnn": run.rnn_path, "controller": c}
    prev = round_dir(run, r - 1)
    vae_latents = ({"vae": prev / "vae" / "vae.pt", "latents": prev / "latents"} if run.cfg.iterate.retrain_vae
                   else {"vae": run.vae_path, "latents": run.latents_dir})
    return {**vae_latents, "rnn": prev / "rnn" / "rnn.pt", "controller": prev / "controller" / "controller.pt"}


def _step(folder: Path, name: str, fn: Callable[[], dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    marker = folder / f"{name}.json"
    if marker.exists():
        return read_json(marker)["metrics"]
    log(f"[wm-fast] iterate {folder.name}: {name}")
    t0 = time.perf_counter()
    metrics = fn()
    atomic_write_json(marker, {"step": name, "metrics": metrics, "seconds": time.perf_counter() - t0})
    return metrics


def _start_from(src: Path, dst: Path, load_model: Callable[[Path], Any], lr: float, seed: int) -> tuple[bool, int]:
    """Start a continued training from `src`'s checkpoint (once: a resumed step keeps its own). A checkpoint
    without optimizer state (`wm-fast export` strips it) starts with a fresh Adam (`lr`), a torch RNG state
    seeded by `seed` and, where that is gone too, an empty history. Returns (whether `src` is such a
    checkpoint, the epochs `src` had trained)."""
    from .storage import load_checkpoint, save_checkpoint

    state = load_checkpoint(src, required=("epoch",))
    fresh, epoch = "optimizer" not in state, int(state["epoch"])
    if dst.exists():
        return fresh, epoch
    if not fresh:
        atomic_write_bytes(dst, src.read_bytes())
        return False, epoch
    import torch

    state["optimizer"] = torch.optim.Adam(load_model(src).parameters(), lr=lr).state_dict()
    state["torch_rng"] = torch.Generator().manual_seed(seed).get_state()
    state.setdefault("history", [])
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, state)
    return True, epoch


def _collect(run: "Run", r: int, cur: dict[str, Path]) -> dict[str, Any]:
    import numpy as np

    from .es import load_controller
    from .rollout.collect import folder_lock, remove_temp_files
    from .rollout.episodes import EpisodeRequest
    from .rollout.pool import WorkerPool, run_requests, share
    from .shards import episode_name

    it, folder = run.cfg.iterate, run.collect_dir
    params = load_controller(cur["controller"]).numpy()
    indices = [r * ROUND_STRIDE + j for j in range(it.episodes)]
    folder.mkdir(parents=True, exist_ok=True)  # an exported run (latents, no episodes) has none yet
    with folder_lock(folder):
        remove_temp_files(folder)
        todo = [i for i in indices if not (folder / episode_name(i)).exists()]
        requests = [EpisodeRequest(SEED_OFFSET + i, p, noise=a, keep=True)
                    for i, (a, p) in zip(todo, _exploration(it, r, params, indices, todo))]
        workers, slots = share(max(len(requests), 1), run.cfg.real.workers, run.cfg.real.envs_per_worker)
        spec = run.real_worker_spec(run.cfg.collect.max_steps, cur["vae"], cur["rnn"], slots)
        results: list = []
        report: dict[str, Any] = {"summary": {}, "events": []}
        if requests:
            with WorkerPool(spec, workers, "local", timeout_s=run.cfg.real.rollout_timeout_s,
                            max_attempts=run.cfg.real.max_attempts) as pool:
                results, report = run_requests(
                    pool, requests, shards=[str(folder / episode_name(i)) for i in todo],
                    label=lambda k: f"iterate round {r} episode {todo[k]} (env seed {SEED_OFFSET + todo[k]})")
    done = [x for x in results if x is not None]
    return {"new_episodes": len(done), "failed_episodes": len(results) - len(done),
            "skipped_existing": len(indices) - len(todo),
            "mean_return": float(np.mean([x["return"] for x in done])) if done else None,
            "steps": int(sum(x["steps"] for x in done)), "noise": it.noise, "faults": report["events"]}


def _exploration(it: Any, r: int, params: Any, indices: list[int], todo: list[int]) -> list[tuple[float, Any]]:
    """(action noise, C's parameters) of each episode still to collect in round r (see IterateConfig:
    noise, spread_noise, param_noise); drawn for every index of the round, so a resumed round
    collects its missing episodes as the uninterrupted one would."""
    import numpy as np

    n = len(indices)
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.ones(1)
    noise = it.noise * ramp if it.spread_noise else np.full(n, it.noise)
    rng = np.random.default_rng([r, 0x17E2])
    scale = rng.permutation(ramp * it.param_noise)
    eps = rng.standard_normal((n, len(params))).astype(np.float32)
    rms = float(np.sqrt(np.mean(params.astype(np.float64) ** 2)))
    out = []
    for i in todo:
        j = indices.index(i)
        p = params + (scale[j] * rms * eps[j]).astype(np.float32) if it.param_noise > 0 else params
        out.append((float(noise[j]), p))
    return out


def _encode(run: "Run", r: int, cur: dict[str, Path]) -> dict[str, Any]:
    from .encode import encode_episodes
    from .shards import list_episodes
    from .train_vae import load_vae, train_vae

    if not run.has_frames:  # the collected episodes are latent files already
        return {"vae": None, "latents": str(cur["latents"]), "skipped": "state observations: V is the identity"}
    files = list(list_episodes(run.episodes_dir).values())
    if not run.cfg.iterate.retrain_vae:
        metrics = encode_episodes(files, load_vae(cur["vae"]), cur["latents"], progress=run.progress)
        return {"vae": str(cur["vae"]), "latents": str(cur["latents"]), **metrics}
    out = round_dir(run, r)
    fresh_optimizer, done = _start_from(cur["vae"], out / "vae" / "vae.pt", load_vae, run.cfg.vae.lr, run.cfg.vae.seed)
    epochs = done + run.cfg.iterate.vae_epochs
    vae_metrics = train_vae(files, out / "vae", dataclasses.replace(run.cfg.vae, epochs=epochs), progress=run.progress)
    metrics = encode_episodes(files, load_vae(out / "vae" / "vae.pt"), out / "latents", progress=run.progress)
    return {"vae": str(out / "vae" / "vae.pt"), "latents": str(out / "latents"), "vae_loss": vae_metrics["loss"],
            "vae_fresh_optimizer": fresh_optimizer, **metrics}


def _rnn(run: "Run", r: int, cur: dict[str, Path], latents: Path) -> dict[str, Any]:
    from .envs import spec
    from .shards import list_episodes
    from .train_rnn import load_mdnrnn, train_rnn

    out = round_dir(run, r) / "rnn"
    fresh_optimizer, done = _start_from(cur["rnn"], out / "rnn.pt", load_mdnrnn, run.cfg.rnn.lr, run.cfg.rnn.seed)
    epochs = done + run.cfg.iterate.rnn_epochs
    files = list(list_episodes(latents).values())
    metrics = train_rnn(files, out, dataclasses.replace(run.cfg.rnn, epochs=epochs),
                        action_dim=spec(run.cfg.env).action_dim, progress=run.progress)
    metrics.pop("history", None)
    return {**metrics, "episodes": len(files), "epochs_total": epochs, "fresh_optimizer": fresh_optimizer}


def _controller(run: "Run", r: int, cur: dict[str, Path], latents: Path) -> dict[str, Any]:
    from .es import load_controller, train_controller

    cfg = dataclasses.replace(run.cfg.controller, generations=run.cfg.iterate.generations)
    ev = run.dream_evaluator(cfg, round_dir(run, r) / "rnn" / "rnn.pt", latents)
    x0 = load_controller(cur["controller"]).double().numpy()
    from_zeros = run.cfg.iterate.controller_from == "zeros"
    metrics = train_controller(ev, len(x0), round_dir(run, r) / "controller", cfg, x0=None if from_zeros else x0,
                               progress=run.progress, eval_start=not from_zeros, deadline=run.deadline)
    metrics["dream_return_start"] = (metrics["evals"][0]["mean_solution_return"]
                                     if metrics["evals"] and not from_zeros else None)
    return metrics


def _evaluate(run: "Run", r: int, vae: Path | None) -> dict[str, Any]:
    """Round r's C in the real env as `evaluate` scores (its env backend, workers, episode cap), on the round's
    iterate.eval_episodes episodes from iterate.eval_seed_start (default evaluate.seed_start)."""
    folder = round_dir(run, r)
    seed_start = run.cfg.iterate.eval_seed_start
    cfg = dataclasses.replace(run.cfg.evaluate, episodes=run.cfg.iterate.eval_episodes, video=False,
                              seed_start=run.cfg.evaluate.seed_start if seed_start is None else seed_start)
    return run.score(folder / "controller" / "controller.pt", cfg, rnn_path=folder / "rnn" / "rnn.pt", vae_path=vae)


def iterate(run: "Run", rounds: int) -> dict[str, Any]:
    """Bring `run` to `rounds` finished iterate rounds (see the module docstring).

    Returns {"rounds": [one row per finished round], "path": D/iterate.json}.
    Raises:
        ConfigError: bad `rounds`, or D/iterate.json was made with other settings.
        MissingStageError: the pipeline's V, M, latents or starting controller are missing.
    """
    from .shards import list_episodes

    if rounds <= 0:
        raise ConfigError(f"--rounds must be positive, got {rounds}")
    it = run.cfg.iterate
    if it.episodes >= ROUND_STRIDE or run.cfg.collect.episodes >= ROUND_STRIDE:
        raise ConfigError(f"iterate keeps episode indices below {ROUND_STRIDE} per round; "
                          f"collect.episodes and iterate.episodes must be smaller")
    for path, what in ((run.vae_path, "a trained V"), (run.rnn_path, "a trained M")):
        if what != "a trained V" or run.has_frames:
            run.require(path, f"{what} at {path}", "iterate")
    run.require(dict(enumerate(list_episodes(run.latents_dir))), f"latent files in {run.latents_dir}", "iterate")

    path = run.dir / "iterate.json"
    config = _iterate_config(run)
    record = read_json(path) if path.exists() else {"rounds": []}
    if record.get("config") is not None:
        from .config import PipelineConfig

        recorded = with_new_fields(record["config"], config, PipelineConfig().to_dict())
        for key in _NOT_ROUND_SETTINGS:  # recorded by earlier versions
            recorded.get("iterate", {}).pop(key, None)
        refuse_changed(recorded, config, str(path),
                       f"use a new --run-dir, or delete {run.dir / 'iterate'} and {path} to start over")
    rows = list(record["rounds"])
    for r in range(len(rows) + 1, rounds + 1):
        folder = round_dir(run, r)
        folder.mkdir(parents=True, exist_ok=True)
        cur = _current(run, r)
        steps: dict[str, dict[str, Any]] = {}
        steps["collect"] = _step(folder, "collect", lambda: _collect(run, r, cur), run.log)
        steps["encode"] = _step(folder, "encode", lambda: _encode(run, r, cur), run.log)
        latents = Path(steps["encode"]["latents"])
        vae = Path(steps["encode"]["vae"]) if steps["encode"]["vae"] is not None else None
        steps["rnn"] = _step(folder, "rnn", lambda: _rnn(run, r, cur, latents), run.log)
        steps["controller"] = _step(folder, "controller", lambda: _controller(run, r, cur, latents), run.log)
        steps["evaluate"] = _step(folder, "evaluate", lambda: _evaluate(run, r, vae), run.log)
        seconds = sum(read_json(folder / f"{s}.json")["seconds"] for s in STEPS)
        real = steps["evaluate"]
        row = {
            "round": r, "new_episodes": steps["collect"]["new_episodes"],
            "failed_episodes": steps["collect"]["failed_episodes"],
            "episodes_total": len(list_episodes(run.collect_dir)),
            "collect_mean_return": steps["collect"]["mean_return"], "collect_noise": it.noise,
            "vae_retrained": it.retrain_vae, "rnn_loss": steps["rnn"].get("loss"), "rnn_nll": steps["rnn"].get("nll"),
            "rnn_epochs_total": steps["rnn"]["epochs_total"],
            "dream_return_start": steps["controller"]["dream_return_start"],
            "dream_return": steps["controller"]["best_eval_return"],
            "real_mean": real["mean"], "real_std": real["std"], "real_episodes": real["episodes"],
            "real_returns": real["returns"], "real_seeds": real["seeds"],
            "controller": str((folder / "controller" / "controller.pt").relative_to(run.dir)),
            "started_from": str(cur["controller"].relative_to(run.dir)) if cur["controller"].is_relative_to(run.dir)
            else str(cur["controller"]),
            "seconds": seconds,
        }
        rows.append(row)
        atomic_write_json(path, {"config": config, "rounds": rows, "commit": git_commit(),
                                 "machine": machine_description(),
                                 "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        run.log(f"[wm-fast] iterate round {r}: real {real['mean']:.1f} ± {real['std']:.1f} over {real['episodes']} "
                f"episodes (dream {row['dream_return']:.1f}); {row['new_episodes']} new episodes, "
                f"{row['episodes_total']} in all")
    return {"rounds": rows, "path": str(path)}
