"""Every exception wm_fast raises on purpose (the lowest layer: imports nothing of ours).

The CLI turns each into a one-line `wm-fast: error: ...` and exit status 2.
"""


class WmFastError(RuntimeError):
    """Base class of the errors this library raises for bad files or input."""


class ConfigError(ValueError):
    """An invalid option: unknown preset, environment or backend, an out-of-range value, or
    settings that differ from those a run directory was made with."""


class CorruptShardError(WmFastError):
    """An episode shard (or latent file) is unreadable or has inconsistent arrays."""


class CheckpointError(WmFastError):
    """A checkpoint is missing, truncated, from another model, or holds non-finite values."""


class MissingStageError(WmFastError):
    """A stage needs the output of an earlier stage that is not in the run directory."""


class InsufficientDiskSpaceError(WmFastError):
    """The data a command would write does not fit in the free space of the target disk."""


class CollectError(WmFastError):
    """Collection failed: an episode failed on every try, or the folder is in use."""


class RealEvalError(WmFastError):
    """Real-environment episodes could not be run: workers cannot start, or every try failed."""


class TimeBudgetReached(WmFastError):
    """A command stopped cleanly at its time budget (`--stop-after-minutes`), its state saved:
    running the same command again continues where it stopped, with the same result."""
