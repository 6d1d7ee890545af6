"""Temperature sweeps: the paper's table of a C trained only in the dream at each temperature τ,
its dream score beside its real score.

For each τ, CMA-ES trains C from zeros in M's dream at that τ (the run's controller settings
otherwise, dream dropout included) into `D/sweep/tau_<τ>/controller/` (resumable per
generation, like the dream stage), and C — the CMA mean with the best dream evaluation — is
scored on the same real episodes (env seeds `seed_start ..`). The random policy the data came
from is scored on those episodes too. A τ chosen on this table has been chosen on its seeds: score
the chosen controller again on others (`wm-fast evaluate --controller-file ...` or the scripts in
scripts/) before calling it held out.

    wm-fast sweep-temperature --run-dir D --temperatures 0.5 1.0 1.15 1.3 --episodes 100 --seed-start 2000000

Writes D/sweep/temperature.json, .md and .png (dream and real return against τ).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import ConfigError
from .provenance import git_commit, machine_description, write_results
from .records import record_or_check
from .storage import atomic_write_json, read_json

if TYPE_CHECKING:
    from .pipeline import Run


def tau_dir(run: "Run", tau: float) -> Path:
    """D/sweep/tau_<τ> (τ written with up to 4 significant digits, e.g. tau_1.15)."""
    return run.dir / "sweep" / f"tau_{tau:.4g}"


def score_random_policy(run: "Run", episodes: int, seed_start: int, progress: bool = True) -> dict[str, Any]:
    """The run's collection policy on `episodes` real episodes from env seed `seed_start`:
    {"mean", "std", "returns", "lengths", "seeds", "policy"}."""
    from tqdm.auto import tqdm

    from .rollout.episodes import EpisodeRequest
    from .rollout.pool import WorkerPool, WorkerSpec, run_requests, share

    ev = run.cfg.evaluate
    seeds = [seed_start + i for i in range(episodes)]
    workers, slots = share(episodes, ev.workers, ev.envs_per_worker)
    spec = WorkerSpec(run.cfg.env, ev.env_backend or run.cfg.env_backend, ev.max_steps, slots,
                      policy=run.cfg.collect.policy)
    with tqdm(total=episodes, disable=not progress, desc="random policy", unit="ep") as bar, \
            WorkerPool(spec, workers, timeout_s=run.cfg.real.rollout_timeout_s) as pool:
        results, _ = run_requests(pool, [EpisodeRequest(s) for s in seeds], on_episode=lambda i, out: bar.update(1))
    if any(r is None for r in results):
        raise RuntimeError("random-policy episodes failed on every attempt")
    returns = [float(r["return"]) for r in results]  # type: ignore[index]
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns,
            "lengths": [int(r["steps"]) for r in results], "seeds": seeds,  # type: ignore[index]
            "policy": run.cfg.collect.policy}


def temperature_sweep(run: "Run", temperatures: Sequence[float], episodes: int, seed_start: int,
                      generations: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train C in the dream at each τ in `temperatures` and score it in the dream and on real episodes.

    Every piece resumes: a finished CMA-ES or a scoring with the same seeds is reused.
    Returns the table {"rows": [{"temperature", "dream_dropout", "dream", "real_mean", "real_std",
    "episodes", "generations", "cma_wall_s", "real_seconds"}], "random": {...}, "seeds": [first, last], ...}.
    """
    from .es import train_controller

    if not temperatures or any(not t > 0 for t in temperatures):
        raise ConfigError(f"temperatures must be positive numbers, got {list(temperatures)}")
    if episodes <= 0 or seed_start < 0:
        raise ConfigError(f"need episodes > 0 and seed_start >= 0, got {episodes} and {seed_start}")
    run.require(run.rnn_path, f"a trained M at {run.rnn_path}", "sweep-temperature")
    ev_cfg = dataclasses.replace(run.cfg.evaluate, episodes=episodes, seed_start=seed_start, video=False)
    seeds = [seed_start + i for i in range(episodes)]
    dream = run.dream_evaluator(run.cfg.controller)  # M and the start latents, loaded once for every tau
    rows = []
    for tau in temperatures:
        cfg = dataclasses.replace(run.cfg.controller, temperature=float(tau),
                                  generations=generations or run.cfg.controller.generations)
        out = tau_dir(run, tau)
        out.mkdir(parents=True, exist_ok=True)
        settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("generations", "backend")}
        record_or_check(out / "settings.json", settings, f"the sweep at tau {tau:g} in {out}",
                        f"delete {out} to train again with other settings")
        log(f"[wm-fast] sweep: tau {tau:g}: CMA-ES in the dream ({cfg.generations} generations)")
        evaluator = dream.with_config(cfg)
        metrics = train_controller(evaluator, evaluator.n_params, out / "controller", cfg, progress=run.progress)
        score_path = out / "evaluate.json"
        score = read_json(score_path) if score_path.exists() else None
        if score is None or score.get("seeds") != seeds:
            log(f"[wm-fast] sweep: tau {tau:g}: scoring on {episodes} real episodes from seed {seed_start}")
            score = run.score(out / "controller" / "controller.pt", ev_cfg, out_json=score_path)
        rows.append({"temperature": float(tau), "dream_dropout": cfg.dream_dropout,
                     "dream": metrics["best_eval_return"], "real_mean": score["mean"], "real_std": score["std"],
                     "episodes": episodes, "generations": cfg.generations,
                     "cma_wall_s": metrics["total_wall_s"], "real_seconds": score["seconds"]})
        log(f"[wm-fast] sweep: tau {tau:g}: dream {rows[-1]['dream']:.1f}, "
            f"real {score['mean']:.1f} ± {score['std']:.1f}")
    random_path = run.dir / "sweep" / "random.json"
    random = read_json(random_path) if random_path.exists() else None
    if random is None or random.get("seeds") != seeds:
        random = score_random_policy(run, episodes, seed_start, progress=run.progress)
        atomic_write_json(random_path, random)
    table = {"env": run.cfg.env, "run_dir": str(run.dir), "rows": rows,
             "random": {k: random[k] for k in ("mean", "std", "policy")},
             "seeds": [seed_start, seed_start + episodes - 1], "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": sweep_command(run, temperatures, episodes, seed_start, generations),
             "commit": git_commit(), "machine": machine_description()}
    write_results(run.dir / "sweep" / "temperature", table, markdown(table))
    plot(table, run.dir / "sweep" / "temperature.png")
    return table


def sweep_command(run: "Run", temperatures: Sequence[float], episodes: int, seed_start: int,
                  generations: int | None) -> str:
    """The `wm-fast sweep-temperature` line that makes this sweep: its arguments, and every controller
    setting of `run.cfg` that differs from the run's saved config.json (a --controller.* option)."""
    import shlex

    from .pipeline import load_config

    parts = ["wm-fast", "sweep-temperature", "--run-dir", str(run.dir), "--temperatures",
             *(f"{t:g}" for t in temperatures), "--episodes", str(episodes), "--seed-start", str(seed_start)]
    if generations:
        parts += ["--generations", str(generations)]
    saved_path = run.dir / "config.json"
    saved = load_config(saved_path).controller if saved_path.exists() else run.cfg.controller
    for field in dataclasses.fields(run.cfg.controller):
        value = getattr(run.cfg.controller, field.name)
        if value == getattr(saved, field.name):
            continue
        flag = field.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(f"--controller.{'' if value else 'no-'}{flag}")
        else:
            parts += [f"--controller.{flag}", str(value)]
    return shlex.join(parts)


def markdown(table: dict[str, Any]) -> list[str]:
    """The paper's table: τ, dream score, real score (mean ± std), plus the random policy (lines, without
    the provenance line that `write_results` adds)."""
    first, last = table["seeds"]
    lines = [f"C trained only in M's dream at each temperature τ; real score over env seeds {first:,}–{last:,}.", "",
             "| τ | dream dropout | dream | real (mean ± std) | generations |", "|---:|---:|---:|---|---:|"]
    for r in table["rows"]:
        lines.append(f"| {r['temperature']:g} | {r['dream_dropout']:g} | {r['dream']:.0f} | "
                     f"{r['real_mean']:.0f} ± {r['real_std']:.0f} | {r['generations']} |")
    rnd = table["random"]
    lines.append(f"| random policy ({rnd['policy']}) | | | {rnd['mean']:.0f} ± {rnd['std']:.0f} | |")
    return lines


def plot(table: dict[str, Any], path: Path) -> None:
    """Dream and real return against τ, one pair of curves per dream dropout rate in `table["rows"]`
    (dashed with dropout), the random policy as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for drop in sorted({r["dream_dropout"] for r in table["rows"]}):
        rows = sorted((r for r in table["rows"] if r["dream_dropout"] == drop), key=lambda r: r["temperature"])
        taus, style = [r["temperature"] for r in rows], "-" if drop == 0 else "--"
        label = "" if drop == 0 else f", dropout dreams {drop:g}"
        ax.plot(taus, [r["dream"] for r in rows], "s" + style, color="tab:blue", label=f"dream{label}")
        ax.errorbar(taus, [r["real_mean"] for r in rows], yerr=[r["real_std"] for r in rows], fmt="o" + style,
                    color="tab:orange", capsize=3, label=f"real{label}")
    ax.axhline(table["random"]["mean"], color="gray", lw=1, label="random policy (real)")
    ax.set_xlabel("temperature τ")
    ax.set_ylabel("return")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
