"""Every fit renders to a valid, non-empty PNG, and importing the module leaves matplotlib's state alone."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from scarce.report.plots import RENDERERS, plot_fit
from scarce.scaling import (
    effective_data,
    empirical_efficiency,
    fit_approach1,
    fit_approach2,
    fit_data_constrained,
    fit_efficiency,
    fit_joint,
    fit_power_law,
    power_law,
)
from scarce.scaling.laws import Estimate, Fit


def _fits(rng, isoflop_points, chinchilla_loss, true_law):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small synthetic fits warn about few points; not the subject here
        return _make_fits(rng, isoflop_points, chinchilla_loss, true_law)


def _make_fits(rng, isoflop_points, chinchilla_loss, true_law):
    x = np.geomspace(1e6, 1e9, 8)
    N = np.repeat([1e7, 1e8, 1e9, 1e10], 5)
    K = np.tile([1.0, 2, 4, 8, 16], 4)
    D = np.geomspace(1e8, 1e10, 8)
    U = np.repeat([1e8, 1e9], 5)
    DD = U * np.tile([1, 4, 16, 32, 64], 2)
    sizes = np.repeat(np.geomspace(1e7, 1e9, 4), 20)
    toks = np.tile(np.geomspace(1e8, 1e11, 20), 4)
    iso = isoflop_points(rng, budgets=(1e18, 1e19, 1e20), per_budget=7)
    # approach 3 takes seconds; its renderer only needs the data and the estimates, so build the Fit here
    n3, d3 = np.repeat([1e8, 1e9], 3), np.tile([1e9, 1e10, 1e11], 2)
    c3 = Fit("chinchilla3", {k: Estimate(v, v * 0.9, v * 1.1) for k, v in true_law.items()
                             } | {"a": Estimate(0.51, 0.48, 0.55), "b": Estimate(0.49, 0.45, 0.52)},
             6, 0, 0, data={"params": n3, "tokens": d3, "loss": chinchilla_loss(n3, d3)})
    return {
        "power_law": fit_power_law(x, power_law(x, 1.8, 400.0, 0.33) + rng.normal(0, 0.01, 8), n_boot=50),
        "joint": fit_joint(N, K, power_law(N, 2.0, 300.0, 0.35) + 0.4 / K, n_boot=30),
        "efficiency": fit_efficiency(D, power_law(D, 2.0, 200.0, 0.3), 2.3, 1e9, n_boot=30),
        "efficiency_empirical": empirical_efficiency(D, power_law(D, 2.0, 200.0, 0.3), 2.3, 1e9, n_boot=30),
        "data_constrained": fit_data_constrained(U, DD, 1.9 + 3000 * effective_data(U, DD, 15.0) ** -0.35,
                                                 n_boot=30),
        "chinchilla1": fit_approach1(sizes, toks, chinchilla_loss(sizes, toks), n_boot=30),
        "chinchilla2": fit_approach2(*iso, n_boot=30),
        "chinchilla3": c3,
    }


def test_every_fit_renders_a_png(tmp_path, rng, isoflop_points, chinchilla_loss, true_law):
    import matplotlib.image

    fits = _fits(rng, isoflop_points, chinchilla_loss, true_law)
    assert set(fits) == set(RENDERERS)
    for kind, fit in fits.items():
        path = tmp_path / f"{kind}.png"
        plot_fit(fit, path)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, kind
        img = matplotlib.image.imread(path)
        assert img.shape[0] > 300 and img.shape[1] > 500, kind
        assert img[..., :3].std() > 0.05, kind  # not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_import_has_no_matplotlib_side_effects():
    """No pyplot (global figure state, backend choice) and no torch (slow) just for importing."""
    code = ("import sys, scarce.report.plots, scarce.scaling; "
            "print('matplotlib.pyplot' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(KeyError):
        plot_fit(Fit("nope", {}, 0, 0, 0), tmp_path / "x.png")
