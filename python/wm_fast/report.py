"""Summaries of finished runs for `results/`: every figure names its command, commit and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .pipeline import STAGES, machine_description
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
    return {
        "command": command or f"wm-fast run --env {config['env']} --preset {config['preset']} --run-dir {run_dir}",
        "commit": commits[0] if len(commits) == 1 else commits,
        "machine": records["evaluate"].get("machine") or machine_description(),
        "env": config["env"],
        "preset": config["preset"],
        "dream_return": records["train-controller"]["metrics"].get("best_eval_return"),
        "real": {k: ev[k] for k in ("mean", "std", "returns", "seeds", "episodes")},
        "stages": stages,
        "total_seconds": round(sum(r["seconds"] for r in records.values()), 1),
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
    out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    return summary
