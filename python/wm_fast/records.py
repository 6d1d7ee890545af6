"""One mechanism for "this folder was made with other settings": compare, then refuse or record.

Stage records (D/<stage>.json), iterate.json, a collection folder's collect.json, V's and M's
checkpoints and a DQN run all keep the settings they were made with; a rerun with settings
that change results is refused with the differences named, e.g. `rnn.hidden: 64 -> 32`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .storage import atomic_write_json, read_json


def config_diff(recorded: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Lines "key: recorded -> now" for every (nested) key whose value differs."""
    diffs = []
    for k in sorted(set(recorded) | set(now)):
        a, b = recorded.get(k), now.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return diffs


def with_new_fields(recorded: Mapping[str, Any], now: Mapping[str, Any],
                    defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`recorded` (a config of sections) with the fields added since it was written, at their
    `defaults` (a new field defaults to what the code did before it existed)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in recorded.items()}
    for section, fields in now.items():
        if isinstance(fields, Mapping) and isinstance(out.get(section), dict):
            for key in fields.keys() - out[section].keys():
                if key in defaults.get(section, {}):
                    out[section][key] = defaults[section][key]
    return out


def refuse_changed(recorded: Mapping[str, Any], now: Mapping[str, Any], what: str, fix: str,
                   error: type[Exception] = ConfigError) -> None:
    """Raise `error` naming the differences when `now` differs from `recorded`.

    what: the thing made with `recorded`, e.g. "stage train-rnn in runs/quick";
    fix: what the user can do, e.g. "use a new --run-dir".
    """
    diffs = config_diff(recorded, now)
    if diffs:
        raise error(f"{what} was made with other settings ({'; '.join(diffs)}); {fix}")


def record_or_check(path: Path | str, settings: Mapping[str, Any], what: str, fix: str) -> None:
    """Write `settings` to the JSON file `path` the first time; afterwards refuse other settings."""
    path = Path(path)
    if not path.exists():
        atomic_write_json(path, dict(settings))
        return
    refuse_changed(read_json(path), settings, what, fix)
