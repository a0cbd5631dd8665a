"""Recipes: named functions that produce sweeps, plus the logic that selects among their runs."""

from __future__ import annotations

RECIPES: dict[str, str] = {}


def run_recipe(name: str, data: str, out: str, **kwargs) -> dict:
    raise NotImplementedError(name)
