"""Real-environment throughput per core, end to end, gymnasium against EnvPool (issue #10).

    python benchmarks/real_env.py --json results/real_env_cpu.json --md results/real_env_cpu.md

One process, one thread (what one worker of the pool does on one core). For each backend and
number of env slots N, a `WorkerCore` (VecEnv of N CarRacing-v3 slots + the batched agent:
preprocessing, V encode, M step, C on paper sizes: z 32, LSTM 256) runs episodes of
--max-steps steps with a fixed random controller; steps/s counts env steps of all slots.
"env only" rows run the same loop with the random policy (no V, M, C). "collect" rows time
`rollout.collect.collect` (random policy, compressed shards written) in frames/s. Each
figure is the best of --repeats runs. Untrained V and M: their speed does not depend on
their weights. The ratios compare EnvPool with gymnasium at the same N, in this run.
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
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from wm_fast.config import CollectConfig  # noqa: E402
from wm_fast.rollout import EpisodeRequest, run_episodes  # noqa: E402
from wm_fast.rollout.collect import collect  # noqa: E402
from wm_fast.rollout.pool import WorkerCore, WorkerSpec, agent_spec  # noqa: E402


def steps_per_s(spec: WorkerSpec, episodes: int, repeats: int) -> float:
    core = WorkerCore(spec)
    n_params = getattr(core.actor, "n_params", None)
    rng = np.random.default_rng(0)
    best = 0.0
    for rep in range(repeats):
        reqs = [EpisodeRequest(1000 * rep + i, None if n_params is None else
                               rng.normal(0, 0.1, n_params).astype(np.float32)) for i in range(episodes)]
        t0 = time.perf_counter()
        out = run_episodes(core.vec, reqs, core.actor)
        best = max(best, sum(r["steps"] for r in out) / (time.perf_counter() - t0))
    core.close()
    return best


def collect_frames_per_s(backend: str, envs: int, episodes: int, max_steps: int, repeats: int) -> float:
    best = 0.0
    for rep in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            cfg = CollectConfig(episodes=episodes, max_steps=max_steps, workers=1, envs_per_worker=envs, seed=rep * 100)
            best = max(best, collect(d, cfg, env_backend=backend, progress=False, log=lambda s: None)["frames_per_s"])
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--backends", nargs="+", default=["gymnasium", "envpool"])
    ap.add_argument("--max-steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        vae, rnn = common.untrained_models(d, z_dim=32, action_dim=3, hidden=256)
        for backend in args.backends:
            for n in args.envs:
                episodes = max(n, 4)
                for what, spec in (("agent", agent_spec("carracing", backend, args.max_steps, n, vae, rnn)),
                                   ("env only", WorkerSpec("carracing", backend, args.max_steps, n))):
                    rate = steps_per_s(spec, episodes, args.repeats)
                    rows.append({"backend": backend, "envs": n, "what": what, "steps_per_s": round(rate, 1)})
                    print(json.dumps(rows[-1]), flush=True)
            rate = collect_frames_per_s(backend, 8, 8, args.max_steps, args.repeats)
            rows.append({"backend": backend, "envs": 8, "what": "collect", "frames_per_s": round(rate, 1)})
            print(json.dumps(rows[-1]), flush=True)
    get = {(r["backend"], r["envs"], r["what"]): r for r in rows}
    ratios = {f"envpool/gymnasium agent N={n}": round(get["envpool", n, "agent"]["steps_per_s"] /
                                                      get["gymnasium", n, "agent"]["steps_per_s"], 2)
              for n in args.envs if ("envpool", n, "agent") in get and ("gymnasium", n, "agent") in get}
    out = {"command": "python " + " ".join(sys.argv), "commit": common.git_commit(),
           "machine": common.machine_description(), "threads": 1, "max_steps": args.max_steps,
           "repeats": args.repeats, "rows": rows, "ratios": ratios}
    lines = ["# Real-environment throughput per core (CarRacing-v3, one process, one thread)", "",
             f"`{out['command']}` at commit {out['commit']}; {out['machine']}. Best of {args.repeats}; episodes of "
             f"{args.max_steps} steps. Agent = preprocessing + V encode + M step + C on paper sizes, batched over "
             "the N env slots in blocks of 4.", "",
             "| backend | N envs | agent steps/s | env-only steps/s |", "|---|---:|---:|---:|"]
    for backend in args.backends:
        for n in args.envs:
            lines.append(f"| {backend} | {n} | {get[backend, n, 'agent']['steps_per_s']:,.0f} | "
                         f"{get[backend, n, 'env only']['steps_per_s']:,.0f} |")
    lines += ["", "| backend | collect frames/s (8 envs, shards written) |", "|---|---:|"]
    lines += [f"| {b} | {get[b, 8, 'collect']['frames_per_s']:,.0f} |" for b in args.backends]
    lines += ["", "Ratios (same run): " + ", ".join(f"{k}: {v}x" for k, v in ratios.items())]
    common.write_report(lines, out, args.json, args.md)


if __name__ == "__main__":
    main()
