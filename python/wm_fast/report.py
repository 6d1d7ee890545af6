"""Summaries of finished runs for `results/`: every figure names its command, commit and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ConfigError, get_preset
from .pipeline import STAGES, load_config
from .provenance import machine_description
from .storage import MissingStageError, atomic_write_json, read_json


def summarize_run(run_dir: Path | str, command: str | None = None, controller: str = "latest") -> dict[str, Any]:
    """A compact JSON-able summary of a finished run directory.

    Keys: command, commit, machine, env, preset, preset_edits (see `preset_edits`), stages (seconds and
    headline metrics per stage, the real-environment CMA-ES stage included when the run did one),
    dream_return (the dream controller's score in M's dream), dream_search (the dream CMA-ES: its
    settings, the evaluations of its mean and, with restarts, each restart's score on the common
    dreams), real (mean, std, returns, seeds, env backend and controller of the real-environment
    evaluation), iterate_rounds, total_seconds.

    controller: whose real score to report: `latest` reads RUN_DIR/evaluate.json, any other name
    RUN_DIR/evaluate-<name>.json (written by `wm-fast evaluate --controller <name>`).
    """
    run_dir = Path(run_dir)
    evaluate_stage = "evaluate" if controller == "latest" else f"evaluate-{controller}"
    records = {}
    for stage in (*STAGES[:-1], evaluate_stage):
        path = run_dir / f"{stage}.json"
        if not path.exists():
            raise MissingStageError(f"{run_dir} has no finished {stage} stage ({path} is missing)")
        records[stage] = read_json(path)
    for stage in ("train-controller-real", "train-controller-dream-real"):  # a real stage inside `run`
        if (run_dir / f"{stage}.json").exists():
            records[stage] = read_json(run_dir / f"{stage}.json")
    config = read_json(run_dir / "config.json")
    commits = sorted({r.get("commit", "unknown") for r in records.values()})
    ev = records[evaluate_stage]["metrics"]
    stages = {}
    for stage, r in records.items():
        headline = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and k != "seconds"}  # a stage's own "seconds" metric (M: its last epoch) is not its wall time
        stages[stage] = {"seconds": round(r["seconds"], 1), **{k: _round(v) for k, v in headline.items()}}
    rounds = read_json(run_dir / "iterate.json")["rounds"] if (run_dir / "iterate.json").exists() else []
    return {
        "command": command or f"wm-fast run --env {config['env']} --preset {config['preset']} --run-dir {run_dir}",
        "commit": commits[0] if len(commits) == 1 else commits,
        "machine": records[evaluate_stage].get("machine") or machine_description(),
        "env": config["env"],
        "preset": config["preset"],
        "preset_edits": preset_edits(run_dir / "config.json"),
        "dream_return": records["train-controller"]["metrics"].get("best_eval_return"),
        "dream_search": _dream_search(config, records["train-controller"]["metrics"]),
        "real": {k: ev.get(k) for k in ("mean", "std", "returns", "seeds", "episodes", "env_backend", "controller")},
        "stages": stages,
        "iterate_rounds": [{k: r[k] for k in ("round", "real_mean", "real_std", "real_episodes", "dream_return",
                                              "new_episodes", "seconds")} for r in rounds],
        "total_seconds": round(sum(r["seconds"] for r in records.values()) + sum(r["seconds"] for r in rounds), 1),
    }


PLACEMENT_FIELDS = frozenset({"workers", "envs_per_worker", "address"})
"""Config fields that say where work runs, not what it computes: left out of `preset_edits`."""


def preset_edits(config_path: Path | str) -> list[str] | None:
    """The settings ("rnn.epochs=6") in which a run's config.json differs from the preset it names, in the
    config's order; placement fields (PLACEMENT_FIELDS) left out. None when the preset is unknown."""
    cfg = load_config(config_path)
    try:
        preset = get_preset(cfg.preset, cfg.env).to_dict()
    except ConfigError:
        return None
    edits = []
    for section, fields in cfg.to_dict().items():
        if not isinstance(fields, dict):
            if fields != preset[section]:
                edits.append(f"{section}={fields}")
            continue
        edits += [f"{section}.{k}={v}" for k, v in fields.items()
                  if k not in PLACEMENT_FIELDS and v != preset[section][k]]
    return edits


def _preset_label(summary: dict[str, Any]) -> str:
    """The markdown table's preset cell: the preset's name, with the number of settings changed from it."""
    edits = summary.get("preset_edits")
    if edits is None:
        return f"{summary['preset']} (unknown preset)"
    return summary["preset"] if not edits else f"{summary['preset']}, {len(edits)} settings changed"


def _dream_search(config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The dream CMA-ES of train-controller: settings, evaluations of its mean, restarts (when any)."""
    c = config["controller"]
    search = {k: c.get(k) for k in ("popsize", "rollouts", "temperature", "dream_dropout", "restarts", "seed")}
    search["generations"] = metrics.get("generations")
    search["evals"] = [{"generation": e["generation"], "return": _round(e["mean_solution_return"])}
                       for e in metrics.get("evals", [])]
    if "restart_returns" in metrics:
        search.update(chosen_restart=metrics["restart"], restart_returns=[_round(r) for r in metrics["restart_returns"]],
                      restart_rollouts=metrics.get("restart_rollouts"))
    return search


def _round(v: float | int) -> float | int:
    return round(v, 4) if isinstance(v, float) else v


def write_summary(run_dir: Path | str, out: Path | str, command: str | None = None,
                  controller: str = "latest") -> dict[str, Any]:
    """Write summarize_run(run_dir, command, controller) to `out` (JSON) and a markdown table beside it (.md)."""
    summary = summarize_run(run_dir, command, controller)
    out = Path(out)
    atomic_write_json(out, summary)
    real = summary["real"]
    dream = summary["dream_return"]
    rows = [
        "| env | preset | real return (mean ± std, episodes) | dream return | wall time | commit | command |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['env']} | {_preset_label(summary)} | {real['mean']:.1f} ± {real['std']:.1f} ({real['episodes']}) "
        f"| {dream:.1f} | {summary['total_seconds'] / 60:.1f} min | {summary['commit']} | `{summary['command']}` |",
        "",
        f"Machine: {summary['machine']}. The real return is of the run's "
        f"{'latest controller' if controller == 'latest' else 'controller named'} "
        f"({real.get('controller') or 'dream'}) on {real.get('env_backend') or 'gymnasium'}, env seeds "
        f"{real['seeds'][0]}..{real['seeds'][-1]}; the dream return is the dream stage's controller in M's dream.",
    ]
    if summary["preset_edits"]:
        rows += ["", f"Settings changed from the {summary['preset']} preset: "
                 + ", ".join(f"`{e}`" for e in summary["preset_edits"]) + "."]
    rows += _dream_search_lines(summary["dream_search"])
    for stage in ("train-controller-real", "train-controller-dream-real"):
        if stage in summary["stages"]:
            st = summary["stages"][stage]
            rows += ["", f"`{stage}` inside the run: {st.get('generations')} CMA-ES generations in "
                     f"{st['seconds'] / 60:.1f} min; best evaluation of the CMA mean {st.get('best_eval_return', 0):.1f} "
                     "(on its own real training episodes, which may stop early: see real.py)."]
    if summary["iterate_rounds"]:
        pick = read_json(Path(run_dir) / "config.json").get("iterate", {}).get("pick", "last")
        which = ("the last round's" if pick == "last" else
                 "the round's best on those episodes (so they are not held out; the score above is on others)")
        rows += ["", f"Iterate rounds inside the run (each round's real score on its own scoring episodes; the "
                 f"final controller is {which}):", "",
                 "| round | real (mean ± std, episodes) | dream | new episodes | seconds |", "|---|---|---|---|---|"]
        rows += [f"| {r['round']} | {r['real_mean']:.1f} ± {r['real_std']:.1f} ({r['real_episodes']}) | "
                 f"{r['dream_return']:.1f} | {r['new_episodes']} | {r['seconds']:.0f} |" for r in summary["iterate_rounds"]]
    out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    return summary


def _dream_search_lines(search: dict[str, Any]) -> list[str]:
    """Markdown lines on the dream CMA-ES: its settings, its mean's evaluations, the restarts' scores."""
    lines = ["", f"Dream CMA-ES: population {search['popsize']} x {search['rollouts']} dreams, "
             f"{search['generations']} generations, temperature {search['temperature']}, dream dropout "
             f"{search['dream_dropout']}, seed {search['seed']}."]
    if search["evals"]:
        lines.append("Dream evaluations of the CMA mean by generation: "
                     + ", ".join(f"{e['generation']}: {e['return']:.1f}" for e in search["evals"]) + ".")
    if "restart_returns" in search:
        lines += ["", f"{len(search['restart_returns'])} restarts (CMA-ES seeds {search['seed']}.."
                  f"{search['seed'] + len(search['restart_returns']) - 1}); the C kept is the restart that scored best on the same {search['restart_rollouts']} fresh "
                  "dreams (chosen in the dream only):", "", "| restart | dream (common dreams) |", "|---:|---:|"]
        lines += [f"| {k}{' (chosen)' if k == search['chosen_restart'] else ''} | {r:.1f} |"
                  for k, r in enumerate(search["restart_returns"])]
    return lines


def progress(controller_dir: Path | str) -> dict[str, list[float]]:
    """A CMA-ES run's scores against cumulative wall-clock hours and env steps, from its
    log.jsonl and es_state.pt (generations and evaluations of the mean in the order they ran).

    Returns lists: gen_hours, gen_steps, gen_mean (the population's mean return), eval_hours,
    eval_steps, eval_score (the CMA mean's evaluation), and uncounted_evals: evaluations
    whose steps and wall time predate their logging (they count as 0 in the sums).
    """
    from .es import STATE_FILE
    from .storage import load_checkpoint

    folder = Path(controller_dir)
    evals = list(load_checkpoint(folder / STATE_FILE, required=("evals",))["evals"])
    history = _read_jsonl(folder / "log.jsonl")
    out: dict[str, list[float]] = {k: [] for k in ("gen_hours", "gen_steps", "gen_mean", "eval_hours", "eval_steps",
                                                   "eval_score", "uncounted_evals")}
    seconds = steps = 0.0

    def add_evals(generation: int) -> None:
        nonlocal seconds, steps
        for e in (e for e in evals if e["generation"] == generation):
            if "steps" not in e:
                out["uncounted_evals"].append(generation)
            seconds += e.get("wall_s", 0.0)
            steps += e.get("steps", 0)
            out["eval_hours"].append(seconds / 3600)
            out["eval_steps"].append(steps)
            out["eval_score"].append(e["mean_solution_return"])

    add_evals(0)
    for h in history:
        seconds += h["wall_s"]
        steps += h.get("steps", h["steps_per_s"] * h["wall_s"])
        out["gen_hours"].append(seconds / 3600)
        out["gen_steps"].append(steps)
        out["gen_mean"].append(h["mean"])
        add_evals(h["generation"])
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_progress(curves: dict[str, dict[str, list[float]]], path: Path | str,
                  final: dict[str, tuple[float, float, float, float]] | None = None) -> Path:
    """PNG: score against wall-clock hours (left) and real env steps (right), one colour per run.

    curves: label -> `progress(...)`. final: label -> (hours, steps, mean, std) of a held-out
    score, drawn as a point with an error bar.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, (label, c) in enumerate(curves.items()):
        colour = f"C{i}"
        for ax, x, ex in ((axes[0], c["gen_hours"], c["eval_hours"]), (axes[1], c["gen_steps"], c["eval_steps"])):
            scale = 1e6 if ax is axes[1] else 1.0
            ax.plot([v / scale for v in x], c["gen_mean"], color=colour, alpha=0.3, lw=0.8)
            ax.plot([v / scale for v in ex], c["eval_score"], "o-", color=colour, ms=3,
                    label=f"{label}: CMA mean (its evaluation episodes)")
        if final and label in final:
            hours, steps, mean, std = final[label]
            axes[0].errorbar([hours], [mean], [std], fmt="*", color=colour, ms=10, capsize=3,
                             label=f"{label}: held-out {mean:.0f} ± {std:.0f}")
            axes[1].errorbar([steps / 1e6], [mean], [std], fmt="*", color=colour, ms=10, capsize=3)
    axes[0].set_xlabel("wall-clock hours of CMA-ES")
    axes[1].set_xlabel("real env steps (millions)")
    axes[0].set_ylabel("return (thin: population mean)")
    axes[0].legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
