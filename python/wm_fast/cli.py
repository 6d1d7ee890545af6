"""`wm-fast <command>`: the command line, one subcommand per stage plus `run` for all of them.

Options come from the config dataclasses (config.py), not copied by hand: every field of the
sections a command reads is a flag whose help is the field's docstring, and whose default is
the value this run would use: the run directory's config.json, else the preset (`--preset`,
`--env`). A command that reads one section takes its fields as plain flags
(`wm-fast collect --episodes 40`, `wm-fast evaluate --episodes 100 --seed-start S`); one that
reads several names them (`wm-fast train-controller --controller.generations 5 --real.workers 8`,
`wm-fast run --preset quick --rnn.epochs 10`). `wm-fast <command> --help` lists them all.
Errors are one line and exit status 2; set WM_FAST_DEBUG=1 to see tracebacks. A command
stopped by its `--stop-after-minutes` budget says so in one line and exits with status 3.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import inspect
import os
import sys
import time
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import tyro

from .config import (CollectConfig, ControllerConfig, EvalConfig, IterateConfig, PipelineConfig, RealConfig,
                     RNNConfig, VAEConfig, get_preset, validate)
from .errors import ConfigError, TimeBudgetReached, WmFastError
from .pipeline import Run, load_config
from .storage import dumps_json

Flat = tyro.conf.OmitArgPrefixes
"""A section whose fields are plain flags (`--episodes`, not `--collect.episodes`)."""
EnvBackend = Literal["gymnasium", "envpool"]
ControllerName = Literal["latest", "dream", "real", "dream-real", "iterate", "iterate-best"]
SECTIONS = {CollectConfig: "collect", VAEConfig: "vae", RNNConfig: "rnn", ControllerConfig: "controller",
            EvalConfig: "evaluate", RealConfig: "real", IterateConfig: "iterate"}
"""Config dataclass -> its PipelineConfig field: a command parameter of one of these types gets
the run's section as its default (see `main`)."""


def _config(run_dir: Path, env: Optional[str], preset: Optional[str],
            env_backend: Optional[str] = None) -> PipelineConfig:
    """The config a command starts from: the preset when given (or no run yet), else the run's."""
    saved = run_dir / "config.json"
    if preset is not None or not saved.exists():
        cfg = get_preset(preset or "quick", env or "carracing")
        if env_backend is not None:
            cfg.env_backend = env_backend  # type: ignore[assignment]
            validate(cfg)
        return cfg
    cfg = load_config(saved)
    if env is not None and env != cfg.env:
        raise ConfigError(f"--env {env!r} differs from the run's environment {cfg.env!r} in {saved}")
    if env_backend is not None and env_backend != cfg.env_backend:
        raise ConfigError(f"--env-backend {env_backend!r} differs from the run's {cfg.env_backend!r} in {saved}; "
                          "a run never mixes backends (evaluate takes --env-backend for its own episodes)")
    return cfg


def _deadline(minutes: Optional[float]) -> Optional[float]:
    if minutes is None:
        return None
    if not minutes > 0:
        raise ConfigError(f"--stop-after-minutes must be positive, got {minutes}")
    return time.monotonic() + 60.0 * minutes


def _stage(name: str, run_dir: Path, cfg: PipelineConfig, quiet: bool, call: Optional[dict[str, Any]] = None,
           method: Optional[str] = None, stop_after_minutes: Optional[float] = None) -> dict[str, Any]:
    validate(cfg)
    run = Run(run_dir, cfg, progress=not quiet, save_config=not (run_dir / "config.json").exists(),
              deadline=_deadline(stop_after_minutes))
    metrics = getattr(run, method or name.replace("-", "_"))(**(call or {}))
    print(dumps_json({"stage": name, "run_dir": str(run_dir), "metrics": _short(metrics)}, indent=1))
    return metrics


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}


def _from_run(run_dir: Path, env: Optional[str], preset: Optional[str], env_backend: Optional[str] = None,
              **sections: Any) -> PipelineConfig:
    return dataclasses.replace(_config(run_dir, env, preset, env_backend), **sections)


def run(run_dir: Path, collect: CollectConfig, vae: VAEConfig, rnn: RNNConfig, controller: ControllerConfig,
        evaluate: EvalConfig, real: RealConfig, iterate: IterateConfig, env: str = "carracing",
        preset: str = "quick", env_backend: EnvBackend = "gymnasium", quiet: bool = False,
        stop_after_minutes: Optional[float] = None) -> None:
    """Run every stage in order (collect, train-vae, encode, train-rnn, train-controller, evaluate).

    Stages already complete in the run directory are skipped; interrupted ones resume. Any
    field of the preset can be changed, e.g. --collect.episodes 40.

    Args:
        run_dir: Run directory (created if missing).
        env: Environment: carracing, or cartpole (its state is z: no V).
        preset: tiny (seconds), quick (minutes), headline (hours, in steps: see --stop-after-minutes),
            or paper (the paper's settings).
        env_backend: gymnasium (the reference) or envpool (C++, faster; `pip install 'wm-fast[envpool]'`).
        quiet: No progress bars.
        stop_after_minutes: Stop cleanly after the first CMA-ES generation that ends past this budget
            (exit status 3, state saved); the same command again continues, with the same result.
    """
    cfg = PipelineConfig(env=env, env_backend=env_backend, preset=preset, collect=collect, vae=vae, rnn=rnn,
                         controller=controller, evaluate=evaluate, real=real, iterate=iterate)
    validate(cfg)
    results = Run(run_dir, cfg, progress=not quiet, deadline=_deadline(stop_after_minutes)).run_all()
    ev = results.get("evaluate", {})
    print(f"[wm-fast] done: real mean return {ev.get('mean', float('nan')):.1f} ± {ev.get('std', float('nan')):.1f} "
          f"over {len(ev.get('returns', []))} episodes; see {run_dir}/evaluate.json")


def collect(run_dir: Path, collect: Annotated[CollectConfig, Flat], env: Optional[str] = None,
            preset: Optional[str] = None, env_backend: Optional[EnvBackend] = None, quiet: bool = False) -> None:
    """Collect random-policy episodes into RUN_DIR/episodes (resumable after a kill).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's, else carracing).
        preset: Preset for the defaults (default: the run's config, else quick).
        env_backend: gymnasium or envpool (a new run only: a run never mixes backends).
        quiet: No progress bars.
    """
    _stage("collect", run_dir, _from_run(run_dir, env, preset, env_backend, collect=collect), quiet)


def train_vae(run_dir: Path, vae: Annotated[VAEConfig, Flat], env: Optional[str] = None,
              preset: Optional[str] = None, quiet: bool = False) -> None:
    """Train V (the ConvVAE) on RUN_DIR/episodes (checkpoint every epoch, resumable).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
    """
    _stage("train-vae", run_dir, _from_run(run_dir, env, preset, vae=vae), quiet)


def encode(run_dir: Path, env: Optional[str] = None, preset: Optional[str] = None, quiet: bool = False) -> None:
    """Encode every episode with V into RUN_DIR/latents (mu, logvar per frame).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
    """
    _stage("encode", run_dir, _from_run(run_dir, env, preset), quiet)


def train_rnn(run_dir: Path, rnn: Annotated[RNNConfig, Flat], env: Optional[str] = None,
              preset: Optional[str] = None, quiet: bool = False) -> None:
    """Train M (the MDN-RNN) on RUN_DIR/latents (checkpoint every epoch, resumable).

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
    """
    _stage("train-rnn", run_dir, _from_run(run_dir, env, preset, rnn=rnn), quiet)


def train_controller(run_dir: Path, controller: ControllerConfig, real: RealConfig,
                     mode: Literal["dream", "real", "dream-then-real"] = "dream", env: Optional[str] = None,
                     preset: Optional[str] = None, quiet: bool = False,
                     stop_after_minutes: Optional[float] = None) -> None:
    """Train C with CMA-ES: in M's dream, in the real environment, or dream then real (resumable).

    The CMA-ES state is saved every generation: kill the command at any moment and rerun it
    to continue. `--mode dream` (the --controller.* settings) writes RUN_DIR/controller;
    `--mode real` (CMA-ES from zeros on real episodes, the --real.* settings) writes
    RUN_DIR/controller_real; `--mode dream-then-real` runs the dream stage (skipped when
    complete), then real.finetune_generations from its solution with step size
    real.finetune_sigma0 into RUN_DIR/controller_dream_real. Real modes print the projected
    wall time (from a short measured probe) before they start, and log worker faults.

    Args:
        run_dir: Run directory.
        mode: dream, real, or dream-then-real.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
        stop_after_minutes: Stop cleanly after the first generation that ends past this budget
            (exit status 3, state saved); the same command again continues, with the same result.
    """
    name = {"dream": "train-controller", "real": "train-controller-real",
            "dream-then-real": "train-controller-dream-real"}[mode]
    _stage(name, run_dir, _from_run(run_dir, env, preset, controller=controller, real=real), quiet,
           call={"mode": mode}, method="train_controller", stop_after_minutes=stop_after_minutes)


def evaluate(run_dir: Path, evaluate: Annotated[EvalConfig, Flat], env: Optional[str] = None,
             preset: Optional[str] = None, controller: ControllerName = "latest",
             quiet: bool = False) -> None:
    """Evaluate a trained controller (with V and M) in the real environment.

    Writes RUN_DIR/evaluate.json (mean, std, returns, seeds) and RUN_DIR/evaluate.gif for the
    latest controller; RUN_DIR/evaluate-<controller>.json and .gif for a named one. A DQN run
    (RUN_DIR/dqn.pt) is scored too.

    Args:
        run_dir: Run directory.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        controller: latest (the last iterate round's when the run has rounds, else dream), dream
            (train-controller), real (--mode real), dream-real (--mode dream-then-real), iterate (the round
            iterate.pick names, the last by default) or iterate-best (the round best on its scoring episodes).
        quiet: No progress bars.
    """
    if (run_dir / "dqn.pt").exists():
        from .baselines.dqn import evaluate_cli

        return evaluate_cli(run_dir, evaluate.episodes, evaluate.seed_start)
    name = "evaluate" if controller == "latest" else f"evaluate-{controller}"
    _stage(name, run_dir, _from_run(run_dir, env, preset, evaluate=evaluate), quiet,
           call={"controller": controller}, method="evaluate")


def iterate(run_dir: Path, iterate: Annotated[IterateConfig, Flat], controller: ControllerConfig,
            real: RealConfig, evaluate: EvalConfig, rounds: int = 1, env: Optional[str] = None,
            preset: Optional[str] = None, quiet: bool = False) -> None:
    """Iterative refinement: rounds of collect with C (+ noise), retrain M (V optional), retrain C in the dream.

    Each round's real score goes into RUN_DIR/iterate.json (one row per round). Rounds are
    cumulative (--rounds 3 after --rounds 1 runs rounds 2-3) and resumable: a killed
    iterate continues at the round and step it was in. Collection runs on real.workers
    workers, the dream on controller.backend, each round's scoring on evaluate.workers.

    Args:
        run_dir: Run directory (with the pipeline's V, M, latents and a trained controller).
        rounds: Rounds in all.
        env: Environment (default: the run's).
        preset: Preset for the defaults (default: the run's config, else quick).
        quiet: No progress bars.
    """
    cfg = _from_run(run_dir, env, preset, iterate=iterate, controller=controller, real=real, evaluate=evaluate)
    validate(cfg)
    run = Run(run_dir, cfg, progress=not quiet, save_config=not (run_dir / "config.json").exists())
    result = run.iterate(rounds)
    print(dumps_json({"stage": "iterate", "run_dir": str(run_dir), "path": result["path"], "rounds": [
        {k: v for k, v in row.items() if not isinstance(v, (list, dict))} for row in result["rounds"]]}, indent=1))


def video(run_dir: Path, controller: ControllerName = "latest",
          seed: int = 123, steps: int = 300, temperature: Optional[float] = None, out: Optional[Path] = None,
          env_backend: Optional[EnvBackend] = None) -> None:
    """A GIF of C on a real track beside V's decoding of M's dream from the same first frame.

    Panels: the real frame | V's decoding of the real z (what C sees) | V's decoding of the
    dreamed z (C driving in M's dream). See wm_fast/video.py.

    Args:
        run_dir: A run directory with a trained controller.
        controller: Which controller (as for evaluate).
        seed: Env seed of the real episode (and of the dream's noise).
        steps: Steps of both (at most).
        temperature: Dream temperature (default: the run's controller.temperature).
        out: The GIF (default: RUN_DIR/real_vs_dream-<controller>.gif).
        env_backend: Env backend of the real episode (default: the run's).
    """
    from .evaluate import write_gif
    from .video import real_beside_dream

    if steps <= 0:
        raise ConfigError(f"--steps must be positive, got {steps}")
    if not (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} is not a run directory (it has no config.json)")
    run = Run(run_dir, progress=False, save_config=False)
    models = run.controller_models(controller)
    run.require(models["controller"], f"a trained controller at {models['controller']}", "video")
    tau = run.cfg.controller.temperature if temperature is None else temperature
    result = real_beside_dream(run.cfg.env, env_backend or run.cfg.env_backend, models["vae"], models["rnn"],
                               models["controller"], seed, steps, tau, run.cfg.controller.done_threshold)
    path = write_gif(result.pop("frames"), out or run_dir / f"real_vs_dream-{models['name']}.gif", scale=1)
    print(dumps_json({"video": str(path), "seed": seed, "temperature": tau, **result}, indent=1))


def sweep_temperature(run_dir: Path, controller: ControllerConfig, temperatures: tuple[float, ...] = (0.1, 0.5, 1.0, 1.15, 1.3),
                      episodes: int = 100, seed_start: int = 2_000_000, generations: Optional[int] = None,
                      quiet: bool = False) -> None:
    """The paper's temperature table: C trained only in the dream at each tau, dream and real scores side by side.

    For each tau, CMA-ES from zeros in M's dream (the run's --controller.* settings, dream dropout included)
    into RUN_DIR/sweep/tau_<tau>/controller, then C scored on the same real episodes; the random policy on
    them too. Writes RUN_DIR/sweep/temperature.{json,md,png}. Resumable: finished pieces are reused.
    A tau chosen on this table was chosen on its seeds: score the chosen C on others to report it.

    Args:
        run_dir: A run directory with a trained M.
        temperatures: The temperatures tau.
        episodes: Real episodes per tau (and for the random policy).
        seed_start: Env seed of the first real episode (keep clear of the collection's seeds).
        generations: CMA-ES generations per tau (default: --controller.generations).
        quiet: No progress bars.
    """
    from .sweep import temperature_sweep

    if not (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} is not a run directory (it has no config.json)")
    base = load_config(run_dir / "config.json")
    cfg = dataclasses.replace(base, controller=controller)
    validate(cfg)
    run = Run(run_dir, cfg, progress=not quiet, save_config=False)
    table = temperature_sweep(run, temperatures, episodes, seed_start, generations)
    print((run_dir / "sweep" / "temperature.md").read_text())
    print(dumps_json({"stage": "sweep-temperature", "run_dir": str(run_dir), "rows": table["rows"]}, indent=1))


def export(run_dir: Path, out: Path, keep_optimizer: bool = False) -> None:
    """Copy a run's small state to OUT (e.g. results/<name>): config, stage records, logs, plots, V, M and C
    checkpoints (every iterate round's too), sweeps; never episodes, latents, TensorBoard files or GIFs.

    OUT then re-scores as it stands (`wm-fast evaluate --run-dir OUT ...`). OUT is replaced.

    Args:
        run_dir: A run directory.
        out: The folder to write.
        keep_optimizer: Keep V's and M's optimizer states and the CMA-ES states, so training can continue from OUT.
    """
    from .export import export_run

    result = export_run(run_dir, out, keep_optimizer)
    print(dumps_json({"stage": "export", "run_dir": str(run_dir), **result}, indent=1))


def summarize(run_dir: Path, json_out: Path, command: Optional[str] = None,
              controller: ControllerName = "latest") -> None:
    """Summarize a finished run into JSON_OUT (and a markdown table beside it) for results/.

    The summary names the command, the commit and the machine of every figure in it, and the
    dream CMA-ES behind the controller (settings, evaluations, restarts and the one chosen).

    Args:
        run_dir: A run directory whose stages are complete.
        json_out: The JSON file to write (a .md with the same stem is written beside it).
        command: The command that made the run (default: the `wm-fast run` line of its config).
        controller: Whose real score: latest (RUN_DIR/evaluate.json) or the name given to
            `wm-fast evaluate --controller` (RUN_DIR/evaluate-<name>.json).
    """
    from .report import write_summary

    summary = write_summary(run_dir, json_out, command, controller)
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
    "video": video,
    "sweep-temperature": sweep_temperature,
    "export": export,
    "summarize": summarize,
    "dqn": dqn,
}


def _base_config(command: Optional[str], args: list[str]) -> PipelineConfig:
    """The config whose sections are the flags' defaults: `run`'s preset, else the run's own."""
    pre = argparse.ArgumentParser(add_help=False)
    for flag in ("--run-dir", "--env", "--preset", "--env-backend"):
        pre.add_argument(flag)
    known, _ = pre.parse_known_args(args)
    if command not in ("run", "collect"):  # evaluate's --env-backend is its own section's field
        known.env_backend = None
    if command != "run" and known.run_dir is not None:
        return _config(Path(known.run_dir), known.env, known.preset, known.env_backend)
    cfg = get_preset(known.preset or "quick", known.env or "carracing")
    if known.env_backend is not None:
        cfg.env_backend = known.env_backend
        validate(cfg)
    return cfg


def _with_section_defaults(fn: Callable[..., None], cfg: PipelineConfig) -> Callable[..., None]:
    """`fn` whose config-section parameters default to `cfg`'s sections (what tyro shows and parses)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = []
    for p in inspect.signature(fn).parameters.values():
        cls = typing.get_args(hints[p.name])[0] if typing.get_origin(hints[p.name]) is Annotated else hints[p.name]
        params.append(p.replace(default=copy.deepcopy(getattr(cfg, SECTIONS[cls]))) if cls in SECTIONS else p)
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)

    @functools.wraps(fn)
    def with_defaults(*args: Any, **kwargs: Any) -> None:
        return fn(*args, **kwargs)

    with_defaults.__signature__ = inspect.signature(fn).replace(parameters=params)  # type: ignore[attr-defined]
    return with_defaults


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the `wm-fast` console script."""
    import signal

    from .rollout.pool import exit_on_termination_signals

    replaced = exit_on_termination_signals()  # a killed command closes its envs and their processes on the way out
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = args[0] if args and args[0] in COMMANDS else None
        base = _base_config(command, args[1:])
        commands = {name: _with_section_defaults(fn, base) for name, fn in COMMANDS.items()}
        tyro.extras.subcommand_cli_from_dict(commands, args=args, prog="wm-fast")
    except TimeBudgetReached as e:
        print(f"wm-fast: stopped: {e}", file=sys.stderr)
        sys.exit(3)
    except (ConfigError, WmFastError, ValueError) as e:
        if os.environ.get("WM_FAST_DEBUG"):
            raise
        print(f"wm-fast: error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        for sig, handler in replaced.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    main()
