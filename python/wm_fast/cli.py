"""`wm-fast <stage>`: the command line, one subcommand per stage plus `run` for all of them.

Every subcommand takes `--run-dir`. The config comes from `--preset` (and `--env`) when
given, else from the run directory's config.json, else the `quick` preset; a few common
fields can be overridden per command. Set WM_FAST_DEBUG=1 to see tracebacks of errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from .config import ConfigError, PipelineConfig, get_preset
from .storage import WmFastError, dumps_json


def _config(run_dir: Path, env: Optional[str], preset: Optional[str],
            env_backend: Optional[str] = None) -> PipelineConfig:
    saved = run_dir / "config.json"
    if preset is not None or not saved.exists():
        cfg = get_preset(preset or "quick", env or "carracing")
        if env_backend is not None:
            from .config import validate

            cfg.env_backend = env_backend  # type: ignore[assignment]
            validate(cfg)
        return cfg
    from .pipeline import load_config

    cfg = load_config(saved)
    if env is not None and env != cfg.env:
        raise ConfigError(f"--env {env!r} differs from the run's environment {cfg.env!r} in {saved}")
    if env_backend is not None and env_backend != cfg.env_backend:
        raise ConfigError(f"--env-backend {env_backend!r} differs from the run's {cfg.env_backend!r} in {saved}; "
                          "a run never mixes backends (evaluate takes --env-backend for its own episodes)")
    return cfg


def _stage(name: str, run_dir: Path, env: Optional[str], preset: Optional[str], quiet: bool,
           call: Optional[dict[str, Any]] = None, method: Optional[str] = None, env_backend: Optional[str] = None,
           **overrides: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import Run, replace

    cfg = replace(_config(run_dir, env, preset, env_backend),
                  **{k: {f: v for f, v in d.items() if v is not None} for k, d in overrides.items()})
    run = Run(run_dir, cfg, progress=not quiet, save_config=not (run_dir / "config.json").exists())
    metrics = getattr(run, method or name.replace("-", "_"))(**(call or {}))
    print(dumps_json({"stage": name, "run_dir": str(run_dir), "metrics": _short(metrics)}, indent=1))
    return metrics


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}


def run(run_dir: Path, env: str = "carracing", preset: str = "quick",
        env_backend: Literal["gymnasium", "envpool"] = "gymnasium", quiet: bool = False) -> None:
    """Run every stage in order (collect, train-vae, encode, train-rnn, train-controller, evaluate).

    Stages already complete in the run directory are skipped; interrupted ones resume.

    Args:
        run_dir: Run directory (created if missing).
        env: Environment: carracing, or cartpole (its state is z: no V).
        preset: tiny (seconds), quick (minutes), or paper (the paper's settings).
        env_backend: gymnasium (the reference) or envpool (C++, faster; `pip install 'wm-fast[envpool]'`).
        quiet: No progress bars.
    """
    from .pipeline import Run

    cfg = get_preset(preset, env)
    cfg.env_backend = env_backend
    results = Run(run_dir, cfg, progress=not quiet).run_all()
    ev = results.get("evaluate", {})
    print(f"[wm-fast] done: real mean return {ev.get('mean', float('nan')):.1f} ± {ev.get('std', float('nan')):.1f} "
          f"over {len(ev.get('returns', []))} episodes; see {run_dir}/evaluate.json")


def collect(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
            episodes: Optional[int] = None, max_steps: Optional[int] = None,
            policy: Optional[str] = None, workers: Optional[int] = None, envs_per_worker: Optional[int] = None,
            seed: Optional[int] = None, env_backend: Optional[Literal["gymnasium", "envpool"]] = None,
            quiet: bool = False) -> None:
    """Collect random-policy episodes into RUN_DIR/episodes (resumable after a kill).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's, else carracing).
        preset: Preset for the defaults (default: the run's config, else quick).
        episodes: Number of episodes.
        max_steps: Steps per episode at most.
        policy: brownian, iid or held.
        workers: Worker processes (default: the cores).
        envs_per_worker: Env slots each worker steps as one batch.
        seed: Episode i uses env seed seed+i.
        env_backend: gymnasium or envpool (a new run only: a run never mixes backends).
        quiet: No progress bars.
    """
    _stage("collect", run_dir, env, preset, quiet, env_backend=env_backend, collect=dict(
        episodes=episodes, max_steps=max_steps, policy=policy, workers=workers, envs_per_worker=envs_per_worker,
        seed=seed))


def train_vae(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
              epochs: Optional[int] = None, batch_size: Optional[int] = None, quiet: bool = False) -> None:
    """Train V (the ConvVAE) on RUN_DIR/episodes (checkpoint every epoch, resumable).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        epochs: Passes over the frames.
        batch_size: Frames per batch.
        quiet: No progress bars.
    """
    _stage("train-vae", run_dir, env, preset, quiet, vae=dict(epochs=epochs, batch_size=batch_size))


def encode(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None, quiet: bool = False) -> None:
    """Encode every episode with V into RUN_DIR/latents (mu, logvar per frame).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
    """
    _stage("encode", run_dir, env, preset, quiet)


def train_rnn(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
              epochs: Optional[int] = None, layout: Optional[str] = None, quiet: bool = False) -> None:
    """Train M (the MDN-RNN) on RUN_DIR/latents (checkpoint every epoch, resumable).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        epochs: Passes over the sequences.
        layout: Mixture layout: shared or per_dim.
        quiet: No progress bars.
    """
    _stage("train-rnn", run_dir, env, preset, quiet, rnn=dict(epochs=epochs, layout=layout))


def train_controller(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
                     mode: Literal["dream", "real", "dream-then-real"] = "dream",
                     generations: Optional[int] = None, popsize: Optional[int] = None,
                     rollouts: Optional[int] = None, temperature: Optional[float] = None,
                     dream_backend: Optional[str] = None, real_generations: Optional[int] = None,
                     real_popsize: Optional[int] = None, real_rollouts: Optional[int] = None,
                     real_sigma0: Optional[float] = None, real_max_steps: Optional[int] = None,
                     eval_every: Optional[int] = None, eval_rollouts: Optional[int] = None,
                     backend: Optional[str] = None, workers: Optional[int] = None, address: Optional[str] = None,
                     rollout_timeout: Optional[float] = None, seed: Optional[int] = None, quiet: bool = False) -> None:
    """Train C with CMA-ES: in M's dream, in the real environment, or dream then real (resumable).

    The CMA-ES state is saved every generation: kill the command at any moment and rerun it
    to continue. `--mode dream` writes RUN_DIR/controller; `--mode real` (CMA-ES from zeros
    on real episodes) writes RUN_DIR/controller_real; `--mode dream-then-real` runs the dream
    stage (skipped when complete), then a shorter real run from its solution with a smaller
    step size into RUN_DIR/controller_dream_real. Real modes print the projected wall time
    (from a short measured probe) before they start, and log worker faults per generation.

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        mode: dream, real, or dream-then-real.
        generations: Dream CMA-ES generations.
        popsize: Dream population size.
        rollouts: Dream rollouts per candidate.
        temperature: Dream temperature tau.
        dream_backend: Dream engine: auto, torch, cpp or cuda.
        real_generations: Real CMA-ES generations (of --mode real, or of the real phase of dream-then-real).
        real_popsize: Real population size.
        real_rollouts: Real episodes per candidate.
        real_sigma0: Initial step size of the real run (of --mode real, or of the real phase of dream-then-real).
        real_max_steps: Steps per real episode at most.
        eval_every: Evaluate the CMA mean every N generations (of the mode's CMA-ES: dream, or real).
        eval_rollouts: Rollouts of that evaluation (dream rollouts, or real episodes).
        backend: Where real episodes run: local (worker processes, default) or ray.
        workers: Real-episode workers (local processes, or Ray actors; a local Ray cluster gets this many CPUs).
        address: Ray: address of an existing cluster (default: start a local one).
        rollout_timeout: Seconds after which a real episode counts as hung: its worker is killed and it re-runs elsewhere.
        seed: Seed of CMA-ES and of the rollouts (of the CMA-ES runs the mode trains).
        quiet: No progress bars.
    """
    dream_mode, real_mode = mode in ("dream", "dream-then-real"), mode in ("real", "dream-then-real")
    finetune = mode == "dream-then-real"
    controller = dict(generations=generations, popsize=popsize, rollouts=rollouts, temperature=temperature,
                      backend=dream_backend, seed=seed if dream_mode else None)
    real = dict(popsize=real_popsize, rollouts=real_rollouts, max_steps=real_max_steps, backend=backend,
                workers=workers, address=address, rollout_timeout_s=rollout_timeout,
                seed=seed if real_mode else None,
                **{("finetune_generations" if finetune else "generations"): real_generations,
                   ("finetune_sigma0" if finetune else "sigma0"): real_sigma0})
    # eval_every / eval_rollouts go to the CMA-ES the mode trains last
    (real if real_mode else controller).update(eval_every=eval_every, eval_rollouts=eval_rollouts)
    name = {"dream": "train-controller", "real": "train-controller-real",
            "dream-then-real": "train-controller-dream-real"}[mode]
    _stage(name, run_dir, env, preset, quiet, call={"mode": mode}, method="train_controller",
           controller=controller, real=real)


def evaluate(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
             controller: Literal["latest", "dream", "real", "dream-real", "iterate"] = "latest",
             episodes: Optional[int] = None, seed_start: Optional[int] = None,
             max_steps: Optional[int] = None, workers: Optional[int] = None,
             envs_per_worker: Optional[int] = None, env_backend: Optional[Literal["gymnasium", "envpool"]] = None,
             video: bool = True, quiet: bool = False) -> None:
    """Evaluate a trained controller (with V and M) in the real environment.

    Writes RUN_DIR/evaluate.json (mean, std, returns, seeds) and RUN_DIR/evaluate.gif for the
    dream-trained controller; RUN_DIR/evaluate-<controller>.json and .gif for the others.

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        controller: latest (the last iterate round's when the run has rounds, else dream; writes
            evaluate.json), dream (train-controller), real (--mode real), dream-real (--mode dream-then-real)
            or iterate (the last iterate round's).
        episodes: Real episodes.
        seed_start: Episode i uses env seed seed_start+i.
        max_steps: Steps per episode at most.
        workers: Worker processes.
        envs_per_worker: Env slots each worker steps as one batch.
        env_backend: Evaluate on gymnasium or envpool (default: the run's backend); named in the JSON.
        video: Write a GIF of the first episode.
        quiet: No progress bars.
    """
    if (run_dir / "dqn.pt").exists():
        from .baselines.dqn import evaluate_cli

        return evaluate_cli(run_dir, episodes, seed_start)
    name = "evaluate" if controller == "latest" else f"evaluate-{controller}"
    _stage(name, run_dir, env, preset, quiet, call={"controller": controller}, method="evaluate", evaluate=dict(
        episodes=episodes, seed_start=seed_start, max_steps=max_steps, workers=workers,
        envs_per_worker=envs_per_worker, env_backend=env_backend, video=video))


def iterate(run_dir: Path, rounds: int = 1, env: Optional[str] = None, preset: Optional[str] = None,
            start: Optional[Literal["dream", "dream-real", "real"]] = None, episodes: Optional[int] = None,
            noise: Optional[float] = None, retrain_vae: bool = False, rnn_epochs: Optional[int] = None,
            generations: Optional[int] = None, eval_episodes: Optional[int] = None,
            workers: Optional[int] = None, dream_backend: Optional[str] = None, quiet: bool = False) -> None:
    """Iterative refinement: rounds of collect with C (+ noise), retrain M (V optional), retrain C in the dream.

    Each round's real score goes into RUN_DIR/iterate.json (one row per round). Rounds are
    cumulative (--rounds 3 after --rounds 1 runs rounds 2-3) and resumable: a killed
    iterate continues at the round and step it was in.

    Args:
        run_dir: Run directory (with the pipeline's V, M, latents and a trained controller).
        rounds: Rounds in all.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        start: Controller of round 1: dream (default), dream-real or real.
        episodes: New real episodes per round.
        noise: Std of the Gaussian exploration noise on C's actions while collecting.
        retrain_vae: Also retrain V each round (and re-encode every episode).
        rnn_epochs: Extra epochs of M per round.
        generations: Dream CMA-ES generations per round.
        eval_episodes: Real episodes scoring each round's controller.
        workers: Worker processes for collection (real.workers) and scoring (evaluate.workers).
        dream_backend: Dream engine: auto, torch, cpp or cuda.
        quiet: No progress bars.
    """
    from .pipeline import Run, replace

    cfg = replace(_config(run_dir, env, preset), **{k: {f: v for f, v in d.items() if v is not None} for k, d in dict(
        iterate=dict(start=start, episodes=episodes, noise=noise, retrain_vae=True if retrain_vae else None,
                     rnn_epochs=rnn_epochs, generations=generations, eval_episodes=eval_episodes),
        real=dict(workers=workers), evaluate=dict(workers=workers), controller=dict(backend=dream_backend)).items()})
    run = Run(run_dir, cfg, progress=not quiet, save_config=not (run_dir / "config.json").exists())
    result = run.iterate(rounds)
    print(dumps_json({"stage": "iterate", "run_dir": str(run_dir), "path": result["path"], "rounds": [
        {k: v for k, v in row.items() if not isinstance(v, (list, dict))} for row in result["rounds"]]}, indent=1))


def summarize(run_dir: Path, json_out: Path, command: Optional[str] = None) -> None:
    """Summarize a finished run into JSON_OUT (and a markdown table beside it) for results/.

    The summary names the command, the commit and the machine of every figure in it.

    Args:
        run_dir: A run directory whose six stages are complete.
        json_out: The JSON file to write (a .md with the same stem is written beside it).
        command: The command that made the run (default: the `wm-fast run` line of its config).
    """
    from .report import write_summary

    summary = write_summary(run_dir, json_out, command)
    print(json_out.with_suffix(".md").read_text())
    print(f"wrote {json_out} (real mean {summary['real']['mean']:.1f})")


def dqn(run_dir: Path, preset: str = "quick", total_steps: Optional[int] = None, seed: Optional[int] = None,
        quiet: bool = False) -> None:
    """DQN baseline on CartPole-v1 (replay buffer, target network, epsilon-greedy).

    Keeps the best network of periodic validation rounds, scores it on 100 real episodes from
    unseen seeds; writes RUN_DIR/dqn.pt and dqn_summary.json. See wm_fast/baselines/dqn.py.

    Args:
        run_dir: Run directory.
        preset: tiny (seconds) or quick (the results/ settings).
        total_steps: Environment steps of training.
        seed: Seed of everything.
        quiet: No progress lines.
    """
    from .baselines.dqn import get_config, train_dqn

    s = train_dqn(run_dir, get_config(preset, total_steps=total_steps, seed=seed), progress=not quiet)
    print(dumps_json({"stage": "dqn", "run_dir": str(run_dir), "metrics": _short(s)}, indent=1))


COMMANDS: dict[str, Callable[..., None]] = {
    "run": run,
    "collect": collect,
    "train-vae": train_vae,
    "encode": encode,
    "train-rnn": train_rnn,
    "train-controller": train_controller,
    "evaluate": evaluate,
    "iterate": iterate,
    "summarize": summarize,
    "dqn": dqn,
}


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the `wm-fast` console script."""
    import tyro

    try:
        tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="wm-fast")
    except (ConfigError, WmFastError, ValueError) as e:
        if os.environ.get("WM_FAST_DEBUG"):
            raise
        print(f"wm-fast: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
