"""wm_fast: World Models (Ha & Schmidhuber 2018) with a compiled dream engine.

    import wm_fast
    run = wm_fast.Run("runs/demo", wm_fast.get_preset("quick"))
    run.run_all()
"""

from .config import ConfigError, PipelineConfig, get_preset
from .pipeline import Run
from .storage import CheckpointError, CorruptShardError, MissingStageError, WmFastError

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "CorruptShardError", "MissingStageError", "PipelineConfig", "Run",
    "WmFastError", "get_preset",
]
