"""Shared bits of the examples: argument parsing and saving a matplotlib figure."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse(description: str, default_out: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=Path(default_out), help="PNG to write")
    p.add_argument("--small", action="store_true", help="smallest settings (used by the tests)")
    return p.parse_args()


def save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return out
