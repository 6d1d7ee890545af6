"""Where a figure came from: the commit of the code and the machine it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# What "-dirty" looks at: the code and the build, not results/ or runs/ (which the commands
# behind results/ write while they run).
_SOURCE_PATHS = ("python", "csrc", "cmake", "CMakeLists.txt", "pyproject.toml", "scripts", "benchmarks")


def git_commit(where: Path | None = None) -> str:
    """The commit of the source tree holding `where` (default: this package), or 'unknown'.

    '-dirty' when its code (_SOURCE_PATHS) has uncommitted changes.
    """
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, cwd=here,
                                timeout=5)
        if commit.returncode != 0 or not commit.stdout.strip():
            return "unknown"
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, cwd=here,
                             timeout=5).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", *_SOURCE_PATHS], capture_output=True,
                                text=True, cwd=top or here, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if status else "")


def machine_description() -> str:
    """A one-line description of this machine for results files."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cpus, Python {platform.python_version()}"


def write_results(out: Path | str, summary: dict, lines: list[str]) -> str:
    """Write a results/ pair: OUT.json (`summary`, which must name "command", "commit" and "machine") and
    OUT.md (`lines`, then a line naming the three). Returns the markdown."""
    from .storage import atomic_write_json

    missing = [k for k in ("command", "commit", "machine") if not summary.get(k)]
    if missing:
        raise ValueError(f"a results summary must name {', '.join(missing)}")
    out = Path(out)
    atomic_write_json(out.with_suffix(".json"), summary)
    text = "\n".join([*lines, "", f"Command: `{summary['command']}`; commit {summary['commit']}; "
                                  f"{summary['machine']}."]) + "\n"
    out.with_suffix(".md").write_text(text)
    return text
