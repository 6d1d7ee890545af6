"""DoomTakeCover throughput against the number of worker processes, on this machine's cores.

    python benchmarks/doom_workers.py --json results/doom_workers.json --md results/doom_workers.md

The Doom presets once ran one worker process (8 games) because two workers on 2 cores ran 10-20x
slower (before workers ran numpy's BLAS on one thread); this measurement moved them to 2 workers x 4
games. It times, end to end, each (workers, games per worker) layout:
  collect  `rollout.collect.collect` with the paper's random policy (actions held 1-10 frames),
           compressed shards written: episodes/s and frames/s;
  agent    the same episodes played by V + M + C at the paper's Doom sizes (z 64, LSTM 512,
           C on [z, c, h]) with a fixed random C through a `WorkerPool`, as `evaluate` and
           real-env CMA-ES run them: env steps/s.
Untrained V and M (their speed does not depend on their weights). Each figure is the best of
--repeats runs on the same env seeds; the ratios compare each layout with 1 worker x 8 games in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from wm_fast.config import CollectConfig  # noqa: E402
from wm_fast.controller import input_size, n_params  # noqa: E402
from wm_fast.rollout import EpisodeRequest  # noqa: E402
from wm_fast.rollout.collect import collect  # noqa: E402
from wm_fast.rollout.pool import WorkerPool, agent_spec, run_requests, share  # noqa: E402

MAX_STEPS = 2100  # the paper's episode cap


def collect_rate(workers: int, games: int, episodes: int, repeats: int) -> dict[str, float]:
    best: dict[str, float] = {"episodes_per_s": 0.0, "frames_per_s": 0.0}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            cfg = CollectConfig(episodes=episodes, max_steps=MAX_STEPS, policy="held", workers=workers,
                                envs_per_worker=games, seed=0)
            out = collect(d, cfg, env_name="doom", progress=False, log=lambda s: None)
        if out["episodes_per_s"] > best["episodes_per_s"]:
            best = {"episodes_per_s": out["episodes_per_s"], "frames_per_s": out["frames_per_s"]}
    return best


def agent_rate(workers: int, games: int, episodes: int, repeats: int, vae: Path, rnn: Path) -> float:
    workers, slots = share(episodes, workers, games)
    spec = agent_spec("doom", "gymnasium", MAX_STEPS, slots, vae, rnn)
    params = np.random.default_rng(0).normal(0, 0.1, n_params(input_size(64, 512, "zch"), 1)).astype(np.float32)
    requests = [EpisodeRequest(i, params) for i in range(episodes)]
    best = 0.0
    with WorkerPool(spec, workers, "inline" if workers == 1 else "local") as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            results, _ = run_requests(pool, requests)
            steps = sum(r["steps"] for r in results if r is not None)
            best = max(best, steps / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layouts", nargs="+", default=["1x8", "2x4", "2x8"],
                    help="WORKERSxGAMES layouts; the first is the baseline of the ratios")
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    layouts = [tuple(int(x) for x in s.split("x")) for s in args.layouts]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        vae, rnn = common.untrained_models(d, z_dim=64, action_dim=1, hidden=512)  # the paper's Doom sizes
        for workers, games in layouts:
            row = {"workers": workers, "games_per_worker": games,
                   **{k: round(v, 2) for k, v in collect_rate(workers, games, args.episodes, args.repeats).items()},
                   "agent_steps_per_s": round(agent_rate(workers, games, args.episodes, args.repeats, vae, rnn), 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]
    ratios = {f"{r['workers']}x{r['games_per_worker']} / {base['workers']}x{base['games_per_worker']}": {
        "collect": round(r["episodes_per_s"] / base["episodes_per_s"], 2),
        "agent": round(r["agent_steps_per_s"] / base["agent_steps_per_s"], 2)} for r in rows[1:]}
    out = {"command": "python " + " ".join(sys.argv), "commit": common.git_commit(),
           "machine": common.machine_description(), "cpus": os.cpu_count(), "episodes": args.episodes,
           "repeats": args.repeats, "rows": rows, "ratios": ratios}
    lines = ["# DoomTakeCover throughput against worker processes", "",
             f"`{out['command']}` at commit {out['commit']}; {out['machine']}. "
             f"Best of {args.repeats}; {args.episodes} episodes (env seeds 0-{args.episodes - 1}, capped at "
             f"{MAX_STEPS} frames). Collect: the paper's random policy, shards written. Agent: untrained V + M + "
             "C at the paper's Doom sizes, a fixed random C.", "",
             "| workers x games | collect episodes/s | collect frames/s | agent steps/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['workers']} x {r['games_per_worker']} | {r['episodes_per_s']:.2f} | {r['frames_per_s']:,.0f} | "
              f"{r['agent_steps_per_s']:,.0f} |" for r in rows]
    lines += ["", "Ratios (same run): " + ", ".join(f"{k}: collect {v['collect']}x, agent {v['agent']}x"
                                                   for k, v in ratios.items())]
    common.write_report(lines, out, args.json, args.md)


if __name__ == "__main__":
    main()
