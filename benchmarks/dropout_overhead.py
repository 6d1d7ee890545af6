"""What dropout dreams cost the engine: paper-generation time with and without dream dropout.

    python benchmarks/dropout_overhead.py [--device cpu|cuda] [--sizes carracing doom] [--rate 0.1]

For each paper shape, times one generation (batch 1024 = 64 candidates x 16 rollouts, 1000
steps, dreams never end early) on the compiled engine with opts.dropout = 0 and = --rate,
alternating the two (best of --repeats each), and prints the ratio measured in the same run.
--json writes the rows {sizes, dropout, seconds} and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def dream_seconds(world: common.World, dropout: float, steps: int, backend: str) -> float:
    """Wall time of one engine dream of `steps` steps at dream dropout `dropout`, after a 5-step warm-up."""
    common.run_engine(world, world.options(5, dropout=dropout), backend)
    t0 = time.perf_counter()
    common.run_engine(world, world.options(steps, seed=1, dropout=dropout), backend)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--sizes", nargs="+", choices=tuple(common.SIZES), default=list(common.SIZES))
    ap.add_argument("--rate", type=float, default=0.1, help="dream dropout rate to compare with 0")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (CPU engine)")
    ap.add_argument("--json", help="write the rows and ratios here")
    args = ap.parse_args()
    if not 0.0 < args.rate < 1.0:
        ap.error(f"--rate must be in (0, 1), got {args.rate}")
    torch.set_num_threads(args.threads)
    backend = "cuda" if args.device == "cuda" else "cpp"
    rows, ratios = [], {}
    for name in args.sizes:
        world = common.make_world(1024, device=args.device, sizes=common.SIZES[name])
        times = {0.0: float("inf"), args.rate: float("inf")}
        for _ in range(args.repeats):  # alternate, so drifting clocks touch both alike
            for rate in times:
                times[rate] = min(times[rate], dream_seconds(world, rate, args.steps, backend))
        for rate, seconds in times.items():
            rows.append({"sizes": name, "dropout": rate, "seconds": seconds})
        ratios[name] = times[args.rate] / times[0.0]
        print(f"{name:9s} {args.device}: {times[0.0] * 1e3:9.2f} ms without dropout, "
              f"{times[args.rate] * 1e3:9.2f} ms at dropout {args.rate}: x{ratios[name]:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "commit": common.git_commit(),
                       "machine": common.machine_description(), "device": args.device,
                       "steps": args.steps, "batch": 1024, "rows": rows, "ratio_with_dropout": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
