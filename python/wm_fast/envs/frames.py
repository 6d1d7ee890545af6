"""Frame resizing shared by the pixel environments: exact area averaging, deterministic."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 matrix: output pixel i averages the input pixels it covers.

    Output pixel i covers the input interval [i * n_in / n_out, (i + 1) * n_in / n_out);
    an input pixel partly inside it gets a weight proportional to the overlap (as PIL's BOX
    filter or OpenCV's INTER_AREA). Rows sum to 1.
    """
    scale = n_in / n_out
    edges_out = np.arange(n_out + 1, dtype=np.float64) * scale
    lo, hi = edges_out[:-1, None], edges_out[1:, None]
    j = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    w = (overlap / scale).astype(np.float32)
    w.flags.writeable = False
    return w


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resize an (H, W, 3) uint8 image to (height, width, 3) uint8 (round half to even)."""
    x = np.asarray(image).astype(np.float32).transpose(2, 0, 1)  # (3, H, W)
    out = area_weights(x.shape[1], height) @ x @ area_weights(x.shape[2], width).T  # (3, height, width)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(1, 2, 0))
