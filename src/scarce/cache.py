"""Small JSON caches under $XDG_CACHE_HOME/scarce (~/.cache/scarce): facts about this machine and its files
that are slow to measure and safe to forget (delete the folder to measure afresh)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scarce import atomic


def cache_path(name: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scarce" / name


def read(name: str) -> dict:
    """The cache `name`, or {} when it is missing or unreadable."""
    try:
        data = json.loads(cache_path(name).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update(name: str, entries: dict) -> None:
    """Merge `entries` into the cache `name` (atomic; a read-only home only loses the cache)."""
    try:
        atomic.write_json(cache_path(name), {**read(name), **entries})
    except OSError:
        pass
