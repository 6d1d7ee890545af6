"""`wm-fast <stage>`: the command line, one subcommand per stage plus `run` for all of them.

Every subcommand takes `--run-dir`. The config comes from `--preset` (and `--env`) when
given, else from the run directory's config.json, else the `quick` preset; a few common
fields can be overridden per command. Set WM_FAST_DEBUG=1 to see tracebacks of errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .config import ConfigError, PipelineConfig, get_preset
from .storage import WmFastError


def _config(run_dir: Path, env: Optional[str], preset: Optional[str]) -> PipelineConfig:
    saved = run_dir / "config.json"
    if preset is not None or not saved.exists():
        return get_preset(preset or "quick", env or "carracing")
    from .pipeline import load_config

    cfg = load_config(saved)
    if env is not None and env != cfg.env:
        raise ConfigError(f"--env {env!r} differs from the run's environment {cfg.env!r} in {saved}")
    return cfg


def _stage(name: str, run_dir: Path, env: Optional[str], preset: Optional[str], quiet: bool,
           **overrides: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import Run, replace

    cfg = replace(_config(run_dir, env, preset),
                  **{k: {f: v for f, v in d.items() if v is not None} for k, d in overrides.items()})
    run = Run(run_dir, cfg, progress=not quiet, save_config=not (run_dir / "config.json").exists())
    metrics = getattr(run, name.replace("-", "_"))()
    print(json.dumps({"stage": name, "run_dir": str(run_dir), "metrics": _short(metrics)}, indent=1))
    return metrics


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}


def run(run_dir: Path, env: str = "carracing", preset: str = "quick", quiet: bool = False) -> None:
    """Run every stage in order (collect, train-vae, encode, train-rnn, train-controller, evaluate).

    Stages already complete in the run directory are skipped; interrupted ones resume.

    Args:
        run_dir: Run directory (created if missing).
        env: Environment: carracing.
        preset: tiny (seconds), quick (minutes), or paper (the paper's settings).
        quiet: No progress bars.
    """
    from .pipeline import Run

    results = Run(run_dir, get_preset(preset, env), progress=not quiet).run_all()
    ev = results.get("evaluate", {})
    print(f"[wm-fast] done: real mean return {ev.get('mean', float('nan')):.1f} ± {ev.get('std', float('nan')):.1f} "
          f"over {len(ev.get('returns', []))} episodes; see {run_dir}/evaluate.json")


def collect(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
            episodes: Optional[int] = None, max_steps: Optional[int] = None,
            policy: Optional[str] = None, workers: Optional[int] = None, seed: Optional[int] = None,
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
        seed: Episode i uses env seed seed+i.
        quiet: No progress bars.
    """
    _stage("collect", run_dir, env, preset, quiet, collect=dict(
        episodes=episodes, max_steps=max_steps, policy=policy, workers=workers, seed=seed))


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
                     generations: Optional[int] = None, popsize: Optional[int] = None,
                     rollouts: Optional[int] = None, temperature: Optional[float] = None,
                     backend: Optional[str] = None, seed: Optional[int] = None, quiet: bool = False) -> None:
    """Train C with CMA-ES inside M's dream (state saved every generation, resumable).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        generations: CMA-ES generations.
        popsize: Population size.
        rollouts: Dream rollouts per candidate.
        temperature: Dream temperature tau.
        backend: Dream backend: auto, torch, cpp or cuda.
        seed: Seed of CMA-ES and of the dreams.
        quiet: No progress bars.
    """
    _stage("train-controller", run_dir, env, preset, quiet, controller=dict(
        generations=generations, popsize=popsize, rollouts=rollouts, temperature=temperature,
        backend=backend, seed=seed))


def evaluate(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None,
             episodes: Optional[int] = None, seed_start: Optional[int] = None,
             max_steps: Optional[int] = None, workers: Optional[int] = None,
             video: bool = True, quiet: bool = False) -> None:
    """Evaluate the trained controller (with V and M) in the real environment.

    Writes RUN_DIR/evaluate.json (mean, std, returns, seeds) and RUN_DIR/evaluate.gif.

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        episodes: Real episodes.
        seed_start: Episode i uses env seed seed_start+i.
        max_steps: Steps per episode at most.
        workers: Worker processes.
        video: Write a GIF of the first episode.
        quiet: No progress bars.
    """
    _stage("evaluate", run_dir, env, preset, quiet, evaluate=dict(
        episodes=episodes, seed_start=seed_start, max_steps=max_steps, workers=workers, video=video))


COMMANDS: dict[str, Callable[..., None]] = {
    "run": run,
    "collect": collect,
    "train-vae": train_vae,
    "encode": encode,
    "train-rnn": train_rnn,
    "train-controller": train_controller,
    "evaluate": evaluate,
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
