"""`scarce report` on any run store: training curves, val loss against each swept setting, and --compare."""

from __future__ import annotations

import json

from scarce.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000, path


def test_report_draws_curves_and_each_swept_setting(sweep_store, tmp_path):
    out = tmp_path / "r"
    assert main(["report", "--results", str(sweep_store / "res"), "--out", str(out)]) == 0
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == ["curves.png", "field_optim_lr.png", "field_optim_weight_decay.png", "loss_vs_compute.png"]
    for name in plots:
        _png(out / "plots" / name)
    md = (out / "report.md").read_text()
    assert "## Training curves" in md and "## Swept settings" in md and "val loss against" not in md.split("##")[0]
    html = (out / "report.html").read_text()
    assert html.count("<img") == len(plots)


def test_compare_shows_the_settings_that_differ(sweep_store, tmp_path):
    runs = sorted(p.parent for p in (sweep_store / "runs").glob("*/config.json"))
    cfgs = [json.loads((r / "config.json").read_text()) for r in runs]
    a, b = next((x, y) for x in range(4) for y in range(4)  # same weight decay, other learning rate
                if cfgs[x]["optim"]["weight_decay"] == cfgs[y]["optim"]["weight_decay"]
                and cfgs[x]["optim"]["lr"] < cfgs[y]["optim"]["lr"])
    out = tmp_path / "c"
    run_id = json.loads((runs[b] / "summary.json").read_text())["run_id"]
    # one by folder, one by id; no run store needed for the folder alone
    assert main(["report", "--results", str(sweep_store / "res"), "--out", str(out), "--compare", str(runs[a]),
                 run_id]) == 0
    md = (out / "report.md").read_text()
    section = md.split("## Compared runs")[1].split("##")[0]
    header = section.strip().splitlines()[0]
    assert "optim.lr" in header and "optim.weight_decay" not in header and "train.seed" not in header
    _png(out / "plots" / "compare.png")
    alone = tmp_path / "alone"
    assert main(["report", "--results", str(tmp_path / "none"), "--out", str(alone), "--compare", str(runs[a])]) == 0
    assert not (tmp_path / "none" / "runs.db").exists()


def test_compare_of_something_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "o"), "--compare",
                 str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --compare") and "neither a run id in the run store nor a run directory" in err
    assert err.count("\n") == 1


def test_isoflop_runs_get_their_curves_and_the_optimum(tiny_store, tmp_path):
    """Runs of the IsoFLOP recipe (tags.budget: 2 budgets x 3 depths) are drawn as IsoFLOP parabolas with the
    fitted N_opt against compute (Chinchilla approach 2), its caveats beside it."""
    argv = ["recipe", "isoflop", "--data", str(tiny_store.path), "--out", str(tmp_path / "iso"), "--sizes", "1", "2",
            "3", "--results", str(tmp_path / "res"), "--workers", "1", "--threads", "1", "--set", "model.head_dim=16",
            "--set", "model.seq_len=32", "--set", "train.batch_size=4", "--option", "budgets=[2e8,6e8]"]
    assert main(argv) == 0
    out = tmp_path / "r"
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    _png(out / "plots" / "isoflop.png")
    md = (out / "report.md").read_text()
    section = md.split("## IsoFLOP")[1].split("\n## ")[0]
    assert "| isoflop | a |" in section and "N_opt[C=2e+08]" in section and "N_opt[C=6e+08]" in section
    assert "2 compute budgets: the exponent a is a line through 2 points" in section


def test_ensembles_of_the_store_get_their_k_curves(tiny_store, tmp_path):
    argv = ["ensemble", "--data", str(tiny_store.path), "--preset", "tiny", "--members", "2", "--out",
            str(tmp_path / "ens"), "--results", str(tmp_path / "res"), "--set", "model.depth=1", "--set",
            "model.head_dim=16", "--set", "model.seq_len=32", "--set", "train.batch_size=4", "--tokens", "1024",
            "--threads", "1", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    ens = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    out = tmp_path / "r"
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    _png(out / "plots" / "ensembles.png")
    section = (out / "report.md").read_text().split("## Ensembles")[1].split("\n## ")[0]
    row = [line for line in section.splitlines() if line.startswith("| ens |")]
    assert len(row) == 1 and f"| 2 | {ens['members'][0]['val_loss']:.4f} | {ens['prefix_val_loss'][-1]:.4f} |" in row[0]
