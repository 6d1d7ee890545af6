"""Summaries of finished runs for `results/`: every figure names its command, commit and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .pipeline import STAGES
from .provenance import machine_description
from .storage import MissingStageError, atomic_write_json, read_json


def summarize_run(run_dir: Path | str, command: str | None = None) -> dict[str, Any]:
    """A compact JSON-able summary of a finished run directory.

    Keys: command, commit, machine, env, preset, stages (seconds and headline metrics per stage),
    dream_return (the controller's score in M's dream), real (mean, std, returns, seeds of the
    real-environment evaluation), total_seconds.
    """
    run_dir = Path(run_dir)
    records = {}
    for stage in STAGES:
        path = run_dir / f"{stage}.json"
        if not path.exists():
            raise MissingStageError(f"{run_dir} has no finished {stage} stage ({path} is missing)")
        records[stage] = read_json(path)
    config = read_json(run_dir / "config.json")
    commits = sorted({r.get("commit", "unknown") for r in records.values()})
    ev = records["evaluate"]["metrics"]
    stages = {}
    for stage, r in records.items():
        headline = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        stages[stage] = {"seconds": round(r["seconds"], 1), **{k: _round(v) for k, v in headline.items()}}
    rounds = read_json(run_dir / "iterate.json")["rounds"] if (run_dir / "iterate.json").exists() else []
    return {
        "command": command or f"wm-fast run --env {config['env']} --preset {config['preset']} --run-dir {run_dir}",
        "commit": commits[0] if len(commits) == 1 else commits,
        "machine": records["evaluate"].get("machine") or machine_description(),
        "env": config["env"],
        "preset": config["preset"],
        "dream_return": records["train-controller"]["metrics"].get("best_eval_return"),
        "real": {k: ev[k] for k in ("mean", "std", "returns", "seeds", "episodes")},
        "stages": stages,
        "iterate_rounds": [{k: r[k] for k in ("round", "real_mean", "real_std", "real_episodes", "dream_return",
                                              "new_episodes", "seconds")} for r in rounds],
        "total_seconds": round(sum(r["seconds"] for r in records.values()) + sum(r["seconds"] for r in rounds), 1),
    }


def _round(v: float | int) -> float | int:
    return round(v, 4) if isinstance(v, float) else v


def write_summary(run_dir: Path | str, out: Path | str, command: str | None = None) -> dict[str, Any]:
    """Write summarize_run(run_dir) to `out` (JSON) and a one-row markdown table beside it (.md)."""
    summary = summarize_run(run_dir, command)
    out = Path(out)
    atomic_write_json(out, summary)
    real = summary["real"]
    dream = summary["dream_return"]
    rows = [
        "| env | preset | real return (mean ± std, episodes) | dream return | wall time | commit | command |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['env']} | {summary['preset']} | {real['mean']:.1f} ± {real['std']:.1f} ({real['episodes']}) "
        f"| {dream:.1f} | {summary['total_seconds'] / 60:.1f} min | {summary['commit']} | `{summary['command']}` |",
        "",
        f"Machine: {summary['machine']}.",
    ]
    if summary["iterate_rounds"]:
        rows += ["", "Iterate rounds inside the run (each round's real score: its own episodes, logged only; the "
                 "final controller is the last round's):", "",
                 "| round | real (mean ± std, episodes) | dream | new episodes | seconds |", "|---|---|---|---|---|"]
        rows += [f"| {r['round']} | {r['real_mean']:.1f} ± {r['real_std']:.1f} ({r['real_episodes']}) | "
                 f"{r['dream_return']:.1f} | {r['new_episodes']} | {r['seconds']:.0f} |" for r in summary["iterate_rounds"]]
    out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    return summary


def summarize_refinement(run_dir: Path | str, command: str) -> dict[str, Any]:
    """Rows for a run refined by #4's steps: the dream controller, dream-then-real, iterate rounds.

    Each row: step, real_mean, real_std, real_episodes, real_seeds, dream_return (None where the
    step has no dream score), and the file it came from.
    """
    run_dir = Path(run_dir)
    rows = []
    ev = read_json(run_dir / "evaluate.json")
    rows.append(_row("dream: CMA-ES in M's dream", ev,
                     read_json(run_dir / "train-controller.json")["metrics"].get("best_eval_return"),
                     "evaluate.json"))
    if (run_dir / "evaluate-dream-real.json").exists():
        rows.append(_row("dream-then-real: dream solution fine-tuned in the real env",
                         read_json(run_dir / "evaluate-dream-real.json"), None, "evaluate-dream-real.json"))
    if (run_dir / "iterate.json").exists():
        for r in read_json(run_dir / "iterate.json")["rounds"]:
            rows.append({
                "step": f"iterate round {r['round']}: +{r['new_episodes']} episodes with C, M and C retrained",
                "real_mean": r["real_mean"], "real_std": r["real_std"], "real_episodes": r["real_episodes"],
                "real_seeds": r["real_seeds"], "dream_return": r["dream_return"], "source": "iterate.json",
            })
    commits = sorted({read_json(p).get("commit", "unknown") for p in run_dir.glob("*.json")
                      if p.name != "config.json"} - {"unknown"})
    config = read_json(run_dir / "config.json")
    return {"command": command, "commit": commits[0] if len(commits) == 1 else commits,
            "machine": machine_description(), "env": config["env"], "preset": config["preset"], "rows": rows}


def _row(step: str, ev: dict[str, Any], dream: float | None, source: str) -> dict[str, Any]:
    return {"step": step, "real_mean": ev["mean"], "real_std": ev["std"], "real_episodes": ev["episodes"],
            "real_seeds": ev["seeds"], "dream_return": dream, "source": source}


def write_refinement(run_dir: Path | str, out: Path | str, command: str) -> dict[str, Any]:
    """Write summarize_refinement as JSON to `out` and as a markdown table beside it."""
    summary = summarize_refinement(run_dir, command)
    out = Path(out)
    atomic_write_json(out, summary)
    lines = ["| step | real return (mean ± std) | real episodes | dream return |", "|---|---|---|---|"]
    for r in summary["rows"]:
        dream = "—" if r["dream_return"] is None else f"{r['dream_return']:.1f}"
        lines.append(f"| {r['step']} | {r['real_mean']:.1f} ± {r['real_std']:.1f} | {r['real_episodes']} | {dream} |")
    lines += ["", f"Command: `{command}`", f"Commit: {summary['commit']}. Machine: {summary['machine']}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return summary
