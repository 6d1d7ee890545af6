"""Choose one dream-trained C among the CMA-ES means each run evaluated (controller/means/generation_*.pt),
on a short selection block of real episodes, then score the chosen once on a held-out block of 100.

    python scripts/choose_generation.py SELECT_SEED SELECT_EPISODES HELDOUT_SEED OUT COMMAND RUN_DIR [RUN_DIR ...]
        [--export DIR]

Every candidate is scored with its own run's V and M on the same SELECT_EPISODES episodes from SELECT_SEED;
the best real mean there is scored on the 100 episodes from HELDOUT_SEED, which nothing else uses: that score
is the result, whatever it is. A dream score can be exploited (C finds M's errors), so the dream's own choice
of generation may not be the best driver; this asks what a short real check picks instead, and the held-out
block tells whether it holds. Scores are kept in the first RUN_DIR's choice/ folder (a rerun reuses them).
Writes OUT.json and OUT.md (results/ format: command, commit, machine). With --export DIR, the chosen C's run is
exported to DIR (`wm-fast export`: config, V, M, logs) with the chosen mean as DIR/controller/controller.pt, so
that `wm-fast evaluate --run-dir DIR --controller dream` re-scores the chosen C as it stands.
"""

from __future__ import annotations

import shutil
import sys

from doom_heldout_choice import EPISODES, choose_and_hold_out, describe, score  # noqa: E402  (scripts/ is on sys.path)

from wm_fast.export import export_run
from wm_fast.pipeline import Run
from wm_fast.provenance import write_results
from wm_fast.storage import load_checkpoint


def main(select_seed: str, select_episodes: str, heldout_seed: str, out: str, command: str, *run_dirs: str,
         export: str | None = None) -> None:
    select, n_select, heldout = int(select_seed), int(select_episodes), int(heldout_seed)
    runs = [Run(d, progress=False, save_config=False) for d in run_dirs]
    if not runs:
        sys.exit(__doc__)
    folder = runs[0].dir / "choice"
    candidates = []
    for run in runs:
        snapshots = sorted((run.dir / "controller" / "means").glob("generation_*.pt"))
        if not snapshots:
            sys.exit(f"{run.dir}/controller/means holds no evaluated means: train its controller first")
        for path in snapshots:
            state = load_checkpoint(path, required=("params", "generation", "eval_return"))
            ev = score(run, path, select, folder / f"select_{run.dir.name}_{path.stem}.json", n_select)
            candidates.append({"name": f"{run.dir.name}: {describe(run)}, generation {state['generation']}",
                               "run_dir": str(run.dir), "controller": str(path), "generation": state["generation"],
                               "dream": float(state["eval_return"]), "select_mean": ev["mean"],
                               "select_std": ev["std"]})
            print(f"{candidates[-1]['name']}: dream {candidates[-1]['dream']:.1f}, real {ev['mean']:.1f}", flush=True)
    chosen, held, summary = choose_and_hold_out(candidates, {str(r.dir): r for r in runs}, folder, heldout, command,
                                                [select + i for i in range(n_select)])
    last = f"{select:,}–{select + n_select - 1:,}"
    lines = [
        f"# {runs[0].cfg.env}: a generation of dream-trained C chosen on real episodes, scored on held-out ones",
        "",
        f"Held out: **{held['mean']:.1f} ± {held['std']:.1f}** over {held['episodes']} episodes, env seeds "
        f"{heldout:,}–{heldout + EPISODES - 1:,} (used for nothing else), of the C chosen on env seeds {last} "
        f"({n_select} episodes each): {chosen['name']}. Every C was trained only in M's dream.",
        "",
        f"| candidate | dream (its CMA-ES evaluation) | real on {last} |",
        "|---|---:|---|",
        *(f"| {cand['name']}{' (chosen)' if cand is chosen else ''} | {cand['dream']:.1f} | "
          f"{cand['select_mean']:.1f} ± {cand['select_std']:.1f} |" for cand in candidates),
    ]
    print(write_results(out, summary, lines))
    if export is not None:
        export_run(chosen["run_dir"], export)
        shutil.copyfile(chosen["controller"], f"{export}/controller/controller.pt")
        print(f"exported {chosen['run_dir']} to {export}, with the chosen C as its controller")


if __name__ == "__main__":
    args = sys.argv[1:]
    export_dir = None
    if "--export" in args:
        i = args.index("--export")
        if i + 1 >= len(args):
            sys.exit("--export needs a folder")
        export_dir = args[i + 1]
        del args[i:i + 2]
    if len(args) < 6:
        sys.exit(__doc__)
    main(*args, export=export_dir)
