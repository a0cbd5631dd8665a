"""`scarce fit ...`: JSON shape, readable tables, plots, and one-line errors (exit 2) for bad CSVs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarce.cli.main import main
from scarce.scaling.laws import effective_data, power_law


def _run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name, est in out.items():
        assert set(est) == {"value", "low", "high"}, name
    return out


@pytest.fixture
def power_csv(write_csv, rng):
    x = np.geomspace(1e6, 1e9, 10)
    y = power_law(x, 1.8, 400.0, 0.33) + rng.normal(0, 0.005, x.size)
    return write_csv("power.csv", ["params", "loss"], zip(x, y))


def test_power_law_json_shape(capsys, power_csv):
    out = _run_json(capsys, ["fit", "power-law", "--csv", str(power_csv), "--x", "params", "--y", "loss",
                             "--bootstrap", "100", "--seed", "3"])
    assert set(out) == {"E", "A", "alpha"}
    assert out["E"]["low"] <= out["E"]["value"] <= out["E"]["high"]


def test_power_law_table_and_plot(capsys, power_csv, tmp_path):
    png = tmp_path / "fit.png"
    assert main(["fit", "power-law", "--csv", str(power_csv), "--x", "params", "--y", "loss",
                 "--bootstrap", "50", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "95% low" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_interval(capsys, power_csv):
    argv = ["fit", "power-law", "--csv", str(power_csv), "--x", "params", "--y", "loss", "--bootstrap", "50"]
    assert _run_json(capsys, argv + ["--seed", "1"]) == _run_json(capsys, argv + ["--seed", "1"])


def test_joint_json(capsys, write_csv, rng):
    N = np.repeat([1e7, 3e7, 1e8, 3e8], 5)
    K = np.tile([1, 2, 4, 8, 16], 4)
    L = power_law(N, 2.0, 300.0, 0.35) + 0.4 / K + rng.normal(0, 0.002, N.size)
    path = write_csv("joint.csv", ["params", "members", "loss"], zip(N, K, L))
    out = _run_json(capsys, ["fit", "joint", "--csv", str(path), "--bootstrap", "50"])
    assert {"E", "A", "alpha", "E_N=1e+07"} <= set(out)


def test_efficiency_json(capsys, write_csv):
    D = np.geomspace(1e8, 1e10, 8)
    path = write_csv("ref.csv", ["tokens", "loss"], zip(D, power_law(D, 2.0, 200.0, 0.3)))
    target = str(float(power_law(2e9, 2.0, 200.0, 0.3)))
    out = _run_json(capsys, ["fit", "efficiency", "--reference", str(path), "--loss", target, "--tokens", "1e9",
                             "--bootstrap", "50"])
    assert out["efficiency"]["value"] == pytest.approx(2.0, rel=1e-3)
    emp = _run_json(capsys, ["fit", "efficiency", "--reference", str(path), "--loss", target, "--tokens", "1e9",
                             "--empirical", "--bootstrap", "50"])
    assert set(emp) == {"efficiency", "D_ref"}


def test_chinchilla_methods_json(capsys, write_csv, rng, isoflop_points):
    N, C, L = isoflop_points(rng, budgets=(1e18, 1e19, 1e20), per_budget=7)
    path = write_csv("iso.csv", ["params", "flops", "loss"], zip(N, C, L))
    two = _run_json(capsys, ["fit", "chinchilla", "--csv", str(path), "--method", "2", "--bootstrap", "50"])
    assert {"a", "b"} <= set(two)
    three = _run_json(capsys, ["fit", "chinchilla", "--csv", str(path), "--bootstrap", "20"])
    assert set(three) == {"E", "A", "B", "alpha", "beta", "a", "b"}


def test_data_constrained_json(capsys, write_csv, rng):
    U = np.repeat([1e8, 1e9], 5)
    D = U * np.tile([1, 4, 16, 32, 64], 2)
    L = 1.9 + 3000.0 * effective_data(U, D, 15.0) ** -0.35 + rng.normal(0, 0.002, U.size)
    path = write_csv("dc.csv", ["unique_tokens", "tokens", "loss"], zip(U, D, L))
    out = _run_json(capsys, ["fit", "data-constrained", "--csv", str(path), "--bootstrap", "50"])
    assert set(out) == {"E", "B", "beta", "R_star"}


def _law_file(tmp_path):
    """A law.json as `fit chinchilla --json` writes it (point values, no intervals)."""
    law = {k: {"value": v, "low": None, "high": None}
           for k, v in {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}.items()}
    path = tmp_path / "law.json"
    path.write_text(json.dumps(law))
    return path


def test_plan_from_law_json(capsys, tmp_path):
    path = _law_file(tmp_path)
    out = _run_json(capsys, ["fit", "plan", "--law-json", str(path), "--budget", "1e21", "--target-loss", "2.2",
                             "--flops-per-s", "1e15"])
    assert {"C=1e+21:params", "C=1e+21:hours", "L=2.2:flops"} <= set(out)
    assert main(["fit", "plan", "--law-json", str(path), "--budget", "1e21"]) == 0
    assert "tokens_per_param" in capsys.readouterr().out


def test_plan_prices_device_hours_like_a_hand_computation(capsys, tmp_path):
    """1e21 FLOPs on an A100 (312 TFLOP/s dense bf16) at 40% MFU: 1e21 / (312e12 x 0.4) / 3600 = 2,225.8
    device-hours; at $1.80 an hour, $4,006.4."""
    path = _law_file(tmp_path)
    out = _run_json(capsys, ["fit", "plan", "--law-json", str(path), "--budget", "1e21", "--gpu", "A100",
                             "--gpu-price", "1.8"])
    assert out["C=1e+21:hours"]["value"] == pytest.approx(2225.78, abs=0.01)
    assert out["C=1e+21:dollars"]["value"] == pytest.approx(4006.41, abs=0.01)
    assert main(["fit", "plan", "--law-json", str(path), "--budget", "1e21", "--gpu-price", "1.8"]) == 2
    assert "a price needs the device's FLOP/s (--gpu NAME or --flops-per-s)" in capsys.readouterr().err
    assert main(["fit", "plan", "--law-json", str(path), "--budget", "1e21", "--gpu", "A100", "--flops-per-s",
                 "1e15"]) == 2


def test_plan_prices_a_target_core_through_the_map(capsys, tmp_path, write_csv):
    """A target CORE is the target loss the map gives it: CORE = 1.3 - 0.5·loss puts CORE 0.2 at loss 2.2."""
    path = _law_file(tmp_path)
    cmap = write_csv("core.csv", ["loss", "core"], [(x, 1.3 - 0.5 * x) for x in (2.1, 2.3, 2.4, 2.5)])
    argv = ["fit", "plan", "--law-json", str(path), "--gpu", "H100", "--gpu-price", "3", "--bootstrap", "20"]
    out = _run_json(capsys, [*argv, "--target-core", "0.2", "--core-map", str(cmap), "--target-loss", "2.2"])
    for col in ("flops", "hours", "dollars"):
        assert out[f"CORE=0.2:{col}"]["value"] == pytest.approx(out[f"L=2.2:{col}"]["value"])
    assert main([*argv, "--target-core", "0.03", "--core-map", str(cmap)]) == 0
    assert "CORE 0.03 is outside the map's runs" in capsys.readouterr().err


BAD_CSVS = {
    "missing column": ("params,los\n1,3\n2,2.5\n4,2.3\n", "missing column 'loss'"),
    "non-numeric": ("params,loss\n1,3\n2,abc\n4,2.3\n", "line 3: column 'loss' has 'abc', not a number"),
    "non-positive": ("params,loss\n1,3\n0,2.5\n4,2.3\n", "line 3: column 'params' must be a positive"),
    "negative": ("params,loss\n1,3\n2,-2.5\n4,2.3\n", "must be a positive"),
    "nan": ("params,loss\n1,3\n2,nan\n4,2.3\n", "must be a positive finite"),
    "too few points": ("params,loss\n1,3\n2,2.5\n", "at least 3"),
    "empty": ("", "empty file"),
    "header only": ("params,loss\n", "0 data row"),
    "short row": ("params,loss\n1,3\n2\n4,2.3\n", "line 3: column 'loss' has ''"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_is_one_line_exit_2(capsys, tmp_path, case):
    text, message = BAD_CSVS[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    rc = main(["fit", "power-law", "--csv", str(path), "--x", "params", "--y", "loss"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err


@pytest.mark.parametrize("argv, message", [
    (["fit", "power-law", "--csv", "/nonexistent/x.csv", "--x", "a", "--y", "b"], "no such file"),
    (["fit", "chinchilla", "--csv", "{csv}"], "needs a column 'tokens' or 'flops'"),
    (["fit", "joint", "--csv", "{csv}"], "missing column 'members'"),
    (["fit", "efficiency", "--reference", "{csv}", "--loss", "2", "--tokens", "1e9"], "missing column 'tokens'"),
    (["fit", "power-law", "--csv", "{csv}", "--x", "params"], "required: --y"),
    (["fit", "power-law", "--csv", "{csv}", "--x", "params", "--y", "loss", "--bootstrap", "-1"], "--bootstrap"),
    (["fit", "chinchilla", "--csv", "{csv}", "--method", "4"], "invalid choice"),
])
def test_bad_requests_are_one_line_exit_2(capsys, write_csv, argv, message):
    csv = write_csv("ok.csv", ["params", "loss"], [(1e8, 3.0), (2e8, 2.9), (4e8, 2.8), (8e8, 2.7)])
    rc = main([a.replace("{csv}", str(csv)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
