"""Atomic files, strict JSON and checkpoints.

Everything written by a long job goes through a temporary file and `os.replace`, so a
kill at any moment leaves either the old file or the new one, never half of one.
Checkpoints hold only tensors and plain Python values and load with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


from .errors import (  # noqa: F401  (re-exported: they used to live here)
    CheckpointError,
    CorruptShardError,
    InsufficientDiskSpaceError,
    MissingStageError,
    WmFastError,
)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(obj: Any) -> Any:
    """NaN and infinities become None, so the file is strict JSON that any parser reads.

    numpy scalars (np.float32, np.int64, np.bool_, ...) become the Python values they hold.
    """
    if type(obj).__module__ == "numpy" and getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any, **kw: Any) -> str:
    """`json.dumps` that always yields strict JSON: NaN and infinities become null.

    Use it for every JSON the library prints or writes (`json.dumps` alone would write the
    bare tokens NaN / Infinity, which strict parsers reject). `kw` go to `json.dumps`
    (indent, sort_keys, ...); `allow_nan` is always False.
    """
    kw["allow_nan"] = False
    return json.dumps(_json_safe(obj), **kw)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented, strict JSON (non-finite floats as null), atomically."""
    text = dumps_json(obj, indent=2, sort_keys=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: Path | str) -> Any:
    """Read a JSON file; a clear error names the file when it is broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WmFastError(f"{path}: not valid JSON ({e})") from e


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """Save a dict of tensors and plain values atomically with torch.save."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path | str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, lacks a `required` key,
            or a tensor in it is not finite.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt zips
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt and cannot be loaded ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict (got {type(state).__name__})")
    for key in required:
        if key not in state:
            raise CheckpointError(f"checkpoint {path} lacks the key {key!r}")
    check_finite(state, f"checkpoint {path}")
    return state


def check_finite(obj: Any, where: str, _prefix: str = "") -> None:
    """Raise CheckpointError if any floating tensor or float inside `obj` is NaN or infinite."""
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not torch.isfinite(obj).all():
            raise CheckpointError(f"{where}: tensor {_prefix or '<root>'} holds NaN or infinite values")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, where, f"{_prefix}.{k}" if _prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, where, f"{_prefix}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        # optimizer hyper-parameters may legitimately be inf? none of ours are.
        raise CheckpointError(f"{where}: value {_prefix} is {obj}")
