"""Paired bootstrap of loss differences: exact values, intervals that cover, and the block resampling."""

import numpy as np
import pytest

from scarce.scaling.paired import block_bootstrap, gain_share, loss_difference


def test_loss_difference_value_and_interval():
    rng = np.random.default_rng(0)
    base = rng.gamma(5.0, 100.0, size=400)  # per-window NLL sums of 128 tokens, very uneven windows
    better = base - 128 * 0.05 + rng.normal(0, 2.0, size=400)  # 0.05 nats/token better, paired
    d = loss_difference(base, better, 128, n_boot=500)
    assert abs(d["value"] - (base.sum() - better.sum()) / (400 * 128)) < 1e-12
    assert d["low"] < 0.05 < d["high"] and d["high"] - d["low"] < 0.01  # paired: tight despite uneven windows
    unpaired_se = np.std(base / 128) / np.sqrt(400)
    assert d["se"] < unpaired_se / 10


def test_gain_share():
    base = np.full(100, 500.0)
    target = base - 10.0
    student = base - 8.3
    s = gain_share(base, target, student, n_boot=200)
    assert abs(s["value"] - 0.83) < 1e-12 and abs(s["low"] - 0.83) < 1e-9 and abs(s["high"] - 0.83) < 1e-9


def test_no_bootstrap_and_degenerate_input():
    assert block_bootstrap(lambda x: x.mean(), [np.arange(5.0)], n_boot=0)["low"] is None
    assert block_bootstrap(lambda x: x.mean(), [np.ones(1)], n_boot=10)["se"] is None


def test_blocks_widen_the_interval_of_correlated_windows():
    rng = np.random.default_rng(1)
    doc = np.repeat(rng.normal(0, 1, size=50), 8)  # 50 documents of 8 windows each: strongly correlated
    diff_single = loss_difference(doc, np.zeros_like(doc), 1, n_boot=400, block=1)
    diff_block = loss_difference(doc, np.zeros_like(doc), 1, n_boot=400, block=8)
    assert diff_block["se"] > 1.8 * diff_single["se"]


def test_resampled_losses_feed_a_power_law_fit_through_three_points():
    from scarce.scaling import FitWarning, fit_power_law
    from scarce.scaling.paired import resampled_losses

    rng = np.random.default_rng(2)
    params = np.array([1e5, 4e5, 1.6e6])
    loss = 3.0 + 40.0 * params ** -0.3  # E = 3
    noise = rng.normal(0, 30.0, size=(1, 500))  # shared window difficulty: paired across the three models
    windows = loss[:, None] * 128 + noise + rng.normal(0, 1.0, size=(3, 500))
    draws = resampled_losses(windows, 128, n_boot=300)
    assert draws.shape == (300, 3) and np.allclose(draws.mean(0), windows.sum(1) / (500 * 128), atol=0.02)
    with pytest.warns(FitWarning, match="measurement noise"):
        fit = fit_power_law(params, windows.sum(1) / (500 * 128), y_draws=draws)
    e = fit.estimates["E"]
    assert e.low < e.value < e.high and fit.n_boot == 300
    assert any("measurement noise" in w for w in fit.warnings)
