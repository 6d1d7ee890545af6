"""Copy a run directory's small state to another folder (e.g. results/<name>): what re-scores and
continues it, never its episodes.

Kept: config.json, stage records and every other JSON, logs, plots, V, M (each iterate round's
too) and C checkpoints, sweep results. Left out: episodes/, latents/, tensorboard/, GIFs and
temporary files. Without `keep_optimizer`, V and M checkpoints lose their optimizer state (what
`evaluate` and `video` load is kept) and CMA-ES states (es_state.pt) are left out; with it, the copy
can continue training where the run stopped (the CarRacing headline chain does).

    wm-fast export --run-dir runs/doom_quick --out results/doom_quick
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .storage import load_checkpoint, save_checkpoint

SKIPPED_FOLDERS = frozenset({"episodes", "latents", "tensorboard"})
_TRAINING_ONLY = ("optimizer", "torch_rng")
"""Keys of a V or M checkpoint needed only to continue its training."""


def _kept(path: Path, root: Path, keep_optimizer: bool) -> bool:
    rel = path.relative_to(root)
    if SKIPPED_FOLDERS & set(rel.parts) or path.suffix == ".gif" or ".tmp" in path.name:
        return False
    return keep_optimizer or path.name != "es_state.pt"


def export_run(run_dir: Path | str, out: Path | str, keep_optimizer: bool = False) -> dict[str, Any]:
    """Copy `run_dir`'s small state into `out` (replacing what `out` held). Returns {"files", "bytes", "out"}.

    Raises:
        ConfigError: `run_dir` is not a run directory, or `out` is inside it.
    """
    src, dst = Path(run_dir).resolve(), Path(out).resolve()
    if not (src / "config.json").exists():
        raise ConfigError(f"{run_dir} is not a run directory (it has no config.json)")
    if dst == src or src in dst.parents:
        raise ConfigError(f"the export folder {out} must be outside the run directory {run_dir}")
    files = sorted(p for p in src.rglob("*") if p.is_file() and _kept(p, src, keep_optimizer))
    shutil.rmtree(dst, ignore_errors=True)
    for f in files:
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not keep_optimizer and f.parent.name in ("vae", "rnn") and f.name in ("vae.pt", "rnn.pt"):
            state = load_checkpoint(f)
            save_checkpoint(target, {k: v for k, v in state.items() if k not in _TRAINING_ONLY})
        else:
            shutil.copyfile(f, target)
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in dst.rglob("*") if p.is_file()),
            "out": str(dst)}
