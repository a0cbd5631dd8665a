"""`scarce train` / `scarce runs` from the command line, and each user error as one line with exit 2."""

import json

import pytest

from scarce.cli.main import main

SMALL = ["--set", "model.depth=1", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
         "--set", "train.batch_size=4", "--set", "train.eval_tokens=512", "--threads", "1", "--quiet"]


@pytest.fixture
def run_args(stdlib_store, tmp_path):
    def make(out, *extra):
        return ["train", "--data", str(stdlib_store.path), "--out", str(tmp_path / out),
                "--results", str(tmp_path / "results"), "--tokens", "2048", *SMALL, *extra]
    return make


def one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert match in err, err


def test_train_then_runs_json(run_args, tmp_path, capsys):
    assert main(run_args("run", "--seed", "3")) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    capsys.readouterr()
    assert main(["runs", "--results", str(tmp_path / "results"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["val_loss"] == summary["val_loss"]
    assert rows[0]["config"]["train"]["seed"] == 3 and rows[0]["versions"]["torch"]
    assert main(["runs", "--results", str(tmp_path / "results"), "--where", "train.seed=4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_unknown_preset(run_args, capsys, tmp_path):
    one_line_error(capsys, run_args("a", "--preset", "huge"), "unknown preset")
    assert not (tmp_path / "a").exists()


def test_unknown_option(run_args, capsys):
    one_line_error(capsys, run_args("a", "--learning-rate", "1"), "unrecognized arguments")


def test_malformed_value(run_args, capsys, tmp_path):
    one_line_error(capsys, run_args("a", "--set", "optim.lr=fast"), "optim.lr")
    one_line_error(capsys, run_args("a", "--epochs", "two"), "invalid float")
    assert not (tmp_path / "a").exists()


def test_bad_data_path(tmp_path, capsys):
    one_line_error(capsys, ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")], "nowhere")
    assert not (tmp_path / "a").exists()


def test_vocab_mismatch(run_args, capsys, tmp_path):
    one_line_error(capsys, run_args("a", "--set", "model.vocab_size=999"), "vocabulary mismatch")
    assert not (tmp_path / "a").exists()


def test_out_dir_holding_a_run(run_args, capsys):
    assert main(run_args("a")) == 0
    one_line_error(capsys, run_args("a"), "already holds a run")


def test_corrupt_checkpoint_on_resume(run_args, capsys, tmp_path):
    assert main(run_args("a")) == 0
    for weights in (tmp_path / "a" / "checkpoints").glob("step_*/model.safetensors"):  # every checkpoint kept
        weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    one_line_error(capsys, ["train", "--resume", str(tmp_path / "a"), "--results", str(tmp_path / "results")],
                   "no usable checkpoint")


def test_resume_of_a_non_run(tmp_path, capsys):
    one_line_error(capsys, ["train", "--resume", str(tmp_path)], "not a run directory")


def test_help_describes_every_option(capsys):
    for argv in (["--help"], ["train", "--help"], ["prepare", "--help"], ["runs", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "--vocab-size" in out and "--set" in out


def test_runs_export_feeds_the_fits(run_args, tmp_path, capsys):
    import csv

    for seed in (1, 2, 3):
        assert main(run_args(f"r{seed}", "--seed", str(seed))) == 0
    table, curves = tmp_path / "runs.csv", tmp_path / "curves.csv"
    assert main(["runs", "--results", str(tmp_path / "results"), "--csv", str(table), "--curves", str(curves)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 3 and all(float(r["val_loss"]) > 0 and int(r["train_tokens"]) == 400_000 for r in rows)
    assert len(list(csv.DictReader(curves.open()))) >= 3
    capsys.readouterr()
    assert main(["fit", "power-law", "--csv", str(curves), "--x", "tokens", "--y", "val_loss",
                 "--bootstrap", "20", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"E", "A", "alpha"}


def test_a_diverged_run_is_failed_not_done(run_args, tmp_path, capsys):
    one_line_error(capsys, run_args("a", "--set", "optim.lr=1e4", "--set", "optim.warmup_frac=0",
                                    "--set", "optim.grad_clip=0"), "diverged")
    assert not (tmp_path / "a" / "summary.json").exists()
    assert main(["runs", "--results", str(tmp_path / "results"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # valid JSON: no NaN reached the store
    assert [r["status"] for r in rows] == ["diverged"] and "diverged" in rows[0]["error"]


@pytest.mark.parametrize("extra, match", [
    (["--epochs", "inf"], "finite"), (["--epochs", "0"], "--epochs"), (["--epochs", "-1"], "--epochs"),
    (["--tokens-per-param", "-3"], "--tokens-per-param"), (["--set", "optim.lr=Infinity"], "finite"),
    (["--set", "optim.lr=NaN"], "finite"),
])
def test_nonsense_horizons_and_numbers(run_args, capsys, tmp_path, extra, match):
    argv = [a for a in run_args("a") if a not in ("--tokens", "2048")] + extra
    one_line_error(capsys, argv, match)
    assert not (tmp_path / "a").exists()


def test_resume_records_in_the_store_the_run_started_with(run_args, tmp_path, monkeypatch):
    from scarce.runs.launch import train
    from scarce.runs.store import RunStore

    assert main(run_args("a", "--set", "train.eval_every=2")) == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    from scarce.config import RunConfig

    train(RunConfig.from_dict(cfg), tmp_path / "b", str(tmp_path / "results"), quiet=True, stop_at_step=2)
    monkeypatch.chdir(tmp_path)  # no --results: the default root here would be ./scarce-results
    assert main(["train", "--resume", str(tmp_path / "b"), "--quiet"]) == 0
    assert not (tmp_path / "scarce-results").exists()
    assert {r["status"] for r in RunStore(tmp_path / "results").list()} == {"done"}


def test_store_with_ids_beyond_its_vocabulary(stdlib_store, tmp_path, capsys):
    import shutil

    import numpy as np

    bad = tmp_path / "bad"
    shutil.copytree(stdlib_store.path, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["tokenizer"]["vocab_size"] = 300  # edited by hand: the ids go up to 511
    (bad / "manifest.json").write_text(json.dumps(manifest))
    assert int(np.fromfile(bad / "train.bin", dtype="<u2").max()) >= 300
    one_line_error(capsys, ["train", "--data", str(bad), "--out", str(tmp_path / "a"), "--tokens", "2048", *SMALL],
                   "beyond the vocabulary")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("argv", [["ensemble", "--members", "2"], ["report"], ["train"]])
def test_out_naming_a_file(run_args, tmp_path, capsys, argv):
    (tmp_path / "file").write_text("x")
    extra = run_args("file")[1:3] if argv == ["train"] or argv[0] == "ensemble" else []
    one_line_error(capsys, argv + extra + ["--out", str(tmp_path / "file"), "--results", str(tmp_path / "r")]
                   + (["--tokens", "2048", *SMALL] if extra else []), "not a folder")
    assert (tmp_path / "file").read_text() == "x"


def _flip(path, at: float = 0.6, count: int = 1):
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    for j in range(i, i + count):
        data[j] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_bits_in_the_newest_checkpoint_fall_back_to_the_one_before(run_args, tmp_path, capsys):
    """A checkpoint proves itself: a flipped bit inside the model or optimizer tensors is detected, and
    resume falls back to the previous checkpoint, to the same final weights as an uninterrupted run."""
    from scarce.rundir import read_config
    from scarce.runs.launch import resume, train

    assert main(run_args("full", "--set", "train.eval_every=2")) == 0
    cfg = read_config(tmp_path / "full")
    for name in ("model.safetensors", "optim.safetensors"):
        cut = tmp_path / f"cut-{name}"
        train(cfg, cut, str(tmp_path / "results"), quiet=True, stop_at_step=7)  # checkpoints at steps 4 and 6
        steps = sorted((cut / "checkpoints").glob("step_*"))
        assert [p.name for p in steps] == ["step_00000004", "step_00000006"]
        _flip(steps[-1] / name)
        capsys.readouterr()
        resume(cut, str(tmp_path / "results"), quiet=True)
        err = capsys.readouterr().err
        assert f"step_00000006: {name} does not match its digest" in err and "resuming from step_00000004" in err
        a = json.loads((tmp_path / "full" / "summary.json").read_text())
        b = json.loads((cut / "summary.json").read_text())
        assert a["val_loss"] == b["val_loss"]


def test_flipped_bits_in_best_weights_are_detected(run_args, tmp_path, capsys):
    assert main(run_args("a")) == 0
    _flip(tmp_path / "a" / "checkpoints" / "best.safetensors")
    one_line_error(capsys, ["sample", "--run", str(tmp_path / "a"), "--tokens", "5"], "damaged")


def test_compile_auto_is_decided_from_the_run_and_logged(run_args, tmp_path, capsys):
    """A short run under train.compile=auto stays eager; the decision and its estimate are logged and kept."""
    argv = [a for a in run_args("auto", "--set", "train.compile=auto") if a != "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "compile False (auto: estimated eager training" in out and "< 2 x its ~25 s" in out
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["compiled"] is False


def test_compile_decision_weighs_the_saving_against_the_compile_time():
    from scarce.train.runtime import COMPILE_COST, compile_decision

    cost, speedup, mfu = COMPILE_COST["cpu"]
    peak = 100e9
    breakeven = 2 * cost / (1 - 1 / speedup) * peak * mfu  # training FLOPs whose saving is twice the compile
    assert compile_decision("auto", "cpu", 0.9 * breakeven, peak)[0] is False
    on, why = compile_decision("auto", "cpu", 1.1 * breakeven, peak)
    assert on is True and why.startswith("auto: estimated eager training")
    assert compile_decision(True, "cpu", 1.0, peak) == (True, "set in the config")
    assert compile_decision(False, "cuda", 1e30, peak) == (False, "set in the config")
    gpu_cost, gpu_speedup, gpu_mfu = COMPILE_COST["cuda"]
    assert compile_decision("auto", "cuda", 1.1 * 2 * gpu_cost / (1 - 1 / gpu_speedup) * peak * gpu_mfu, peak)[0]


def test_compile_takes_true_false_or_auto(run_args, capsys):
    one_line_error(capsys, run_args("x", "--set", "train.compile=sometimes"), "train.compile: must be true, false, 'auto' or 'reduce-overhead'")
    one_line_error(capsys, run_args("x", "--set", "train.compile=3"), "config field train.compile: expected bool or str")


def test_a_python_spelled_bool_names_the_json_spelling(run_args, capsys):
    one_line_error(capsys, run_args("x", "--set", "model.tie_embeddings=True"),
                   "config field model.tie_embeddings: expected true or false (lower case, as JSON), got 'True'")
