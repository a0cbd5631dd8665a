"""Shared fixtures for the scaling tests: points drawn from known laws, and CSV writing.

(Fixtures rather than importable helpers: pytest runs with --import-mode=importlib.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scarce.scaling.chinchilla import compute_optimal

# Epoch AI's refit of Chinchilla (Besiroglu et al. 2024), used as a realistic "true" law.
TRUE_LAW = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def _loss(N, D, law=TRUE_LAW):
    return law["E"] + law["A"] * N ** -law["alpha"] + law["B"] * D ** -law["beta"]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def true_law():
    return dict(TRUE_LAW)


@pytest.fixture
def chinchilla_loss():
    """L(N, D) under TRUE_LAW (or a given law)."""
    return _loss


@pytest.fixture
def isoflop_points():
    """Factory: (params, flops, loss) at sizes spread around each budget's optimum, as an IsoFLOP sweep."""

    def make(rng, budgets=(1e18, 3e18, 1e19, 3e19, 1e20), per_budget=9, spread=8.0, noise=0.005):
        N, C, L = [], [], []
        for c in budgets:
            n_opt, _ = compute_optimal(c, *(TRUE_LAW[k] for k in ("A", "B", "alpha", "beta")))
            for n in np.geomspace(n_opt / spread, n_opt * spread, per_budget):
                N.append(n)
                C.append(c)
                L.append(_loss(n, c / (6 * n)) + rng.normal(0, noise))
        return np.array(N), np.array(C), np.array(L)

    return make


@pytest.fixture
def write_csv(tmp_path):
    """Factory: write rows under a header to tmp_path/name and return the path."""

    def write(name: str, header: list[str], rows) -> Path:
        lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def reference_csv() -> Path:
    """Epoch AI's digitisation of Hoffmann et al.'s Figure 4, shared beside the repository."""
    path = Path(__file__).resolve().parents[2].parent / "shared/reference/chinchilla_fig4_points.csv"
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (it lives outside the repository, in ../shared)")
    return path
