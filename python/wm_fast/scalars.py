"""Live training curves for TensorBoard, beside each stage's own log (an optional extra).

    tensorboard --logdir runs/quick        # V, M and C curves of the run, as they train

With `tensorboard` installed (`pip install 'wm-fast[tensorboard]'`), train-vae, train-rnn and
train-controller write their scalars (losses, M's quality, CMA-ES best / mean / worst, the
periodic evaluation of the CMA mean, steps per second) under `<their folder>/tensorboard/`.
Without it, or with WM_FAST_TENSORBOARD=0, nothing is written. The event file is opened on the
first scalar, so a stage with nothing left to train writes no file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


class Scalars:
    """Scalars of one stage into `folder` (TensorBoard event files), or nothing (see the module docstring)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.writer: Any = None
        self.enabled = os.environ.get("WM_FAST_TENSORBOARD", "1") != "0" and _have_tensorboard()

    def add(self, values: dict[str, Any], step: int, prefix: str = "") -> None:
        """Write every finite number of `values` (others are skipped) at `step`, tagged `prefix + key`."""
        if not self.enabled:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder))
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(prefix + key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _have_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
