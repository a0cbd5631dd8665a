"""`scarce eval` end to end through lm-eval on the embedded task, and its one-line errors."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from scarce.cli.main import main
from scarce.data.store import open_store
from scarce.eval.nextline import TASK, items
from scarce.eval.scoring import Scorer
from scarce.rundir import Member
from scarce.runs.store import RunStore

from .conftest import make_run


def own_accuracy(scorer: Scorer, store) -> float:
    """The embedded task's accuracy computed without lm-eval: the choice of highest log-likelihood."""
    rows = items(store)
    right = 0
    for it in rows:
        scores = [lp for lp, _ in scorer.loglikelihood([(it["context"], c) for c in it["choices"]])]
        right += max(range(len(scores)), key=scores.__getitem__) == it["label"]
    return right / len(rows)


def test_eval_a_run(tiny_store, tmp_path, capsys):
    run = make_run(tiny_store, tmp_path / "run", seed=3)
    assert main(["eval", "--run", str(run), "--tasks", TASK, "--out", str(tmp_path / "r.json"), "--threads", "1",
                 "--results", str(tmp_path / "res")]) == 0
    report = json.loads((run / "evals" / f"{TASK}.json").read_text())
    store = RunStore(tmp_path / "res")
    [row] = store.evals(run)  # the run store records it beside the run
    assert row["tasks"] == [TASK] and row["record"] == str((run / "evals" / f"{TASK}.json").resolve())
    assert row["results"][TASK]["acc"] == report["results"][TASK]["acc"] and row["item_limit"] == 0
    store.close()
    assert report == json.loads((tmp_path / "r.json").read_text())
    acc = report["results"][TASK]
    assert 0 <= acc["acc"] <= 1 and 0 <= acc["acc_norm"] <= 1 and acc["acc_stderr"] > 0
    assert report["samples"][TASK] == len(report["items"][TASK]["acc"]) == len(items(tiny_store))
    assert acc["acc"] == pytest.approx(own_accuracy(Scorer([Member.of_run(run)]), tiny_store))
    assert report["centered"][TASK] == pytest.approx((acc["acc_norm"] - 0.25) / 0.75)
    assert report["core"]["score"] is None
    out = capsys.readouterr().out
    assert TASK in out and "CORE: no core task evaluated" in out


def test_eval_an_ensemble_with_a_limit(tiny_store, eval_runs, tmp_path):
    folder = tmp_path / "ens"
    folder.mkdir()
    members = [{"run_dir": str(r)} for r in eval_runs]
    (folder / "ensemble.json").write_text(json.dumps({"combine": "prob", "members": members}))
    assert main(["eval", "--ensemble", str(folder), "--tasks", TASK, "--limit", "5", "--batch-size", "3",
                 "--results", str(tmp_path / "res")]) == 0
    assert [r["item_limit"] for r in RunStore(tmp_path / "res").evals(folder)] == [5]
    report = json.loads((folder / "evals" / f"{TASK}.limit5.json").read_text())
    assert report["samples"][TASK] == 5 and report["limit"] == 5
    assert report["model"]["combine"] == "prob" and len(report["model"]["members"]) == 2
    scorer = Scorer([Member.of_run(r) for r in eval_runs], "prob")
    first = items(tiny_store)[:5]
    want = [max(range(4), key=lambda c: scorer.loglikelihood([(it["context"], it["choices"][c])])[0][0])
            == it["label"] for it in first]
    assert report["items"][TASK]["acc"] == [float(w) for w in want]


def test_a_run_whose_store_lost_its_tokenizer_is_one_line(tiny_store, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(tiny_store.path, store)
    run = make_run(open_store(store), tmp_path / "run", seed=1)
    (store / "tokenizer.json").unlink()
    assert main(["eval", "--run", str(run), "--tasks", TASK, "--results", str(tmp_path / "res")]) == 2
    assert "tokenizer.json" in one_error_line(capsys)
    assert not (run / "evals").exists() and not (tmp_path / "res").exists()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def test_missing_data_is_one_line(eval_runs, tmp_path, capsys):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "hub_task.yaml").write_text(
        "task: hub_task\ndataset_path: scarce-tests/never-downloaded\noutput_type: multiple_choice\n"
        "test_split: test\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: 0\n")
    run = tmp_path / "run"
    shutil.copytree(eval_runs[0], run)
    assert main(["eval", "--run", str(run), "--tasks", "hub_task", "--include-path", str(tasks)]) == 2
    line = one_error_line(capsys)
    assert "not available offline" in line and "'scarce-tests/never-downloaded'" in line and "hub_task" in line
    assert not (run / "evals").exists()


@pytest.mark.slow
def test_unknown_task_is_one_line(eval_runs, capsys):
    assert main(["eval", "--run", str(eval_runs[0]), "--tasks", f"{TASK},arc_eazy"]) == 2
    line = one_error_line(capsys)
    assert "unknown task arc_eazy" in line and "arc_easy" in line


@pytest.mark.parametrize("argv, expected", [
    (["--tasks", TASK], "give --run RUN_DIR or --ensemble DIR"),
    (["--run", "{run}", "--ensemble", "{tmp}", "--tasks", TASK], "give --run RUN_DIR or --ensemble DIR"),
    (["--run", "{run}", "--tasks", TASK, "--limit", "0"], "--limit must be >= 1"),
    (["--run", "{run}", "--tasks", " , "], "--tasks names no task"),
    (["--run", "{tmp}/nowhere", "--tasks", TASK], "not a run directory"),
    (["--run", "{tmp}/noweights", "--tasks", TASK], "has no weights"),
    (["--ensemble", "{tmp}", "--tasks", TASK], "holds no ensemble.json"),
    (["--run", "{run}", "--tasks", TASK, "--include-path", "{tmp}/nowhere"], "is not a folder of task YAMLs"),
    (["--run", "{run}", "--tasks", TASK, "--out", "{tmp}"], "is a folder"),
])
def test_bad_input_is_one_line(argv, expected, eval_runs, tmp_path, capsys):
    shutil.copytree(eval_runs[0], tmp_path / "noweights")
    (tmp_path / "noweights" / "checkpoints" / "best.safetensors").unlink()
    args = [a.replace("{run}", str(eval_runs[0])).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["eval", *args]) == 2
    assert expected in one_error_line(capsys)
    assert not (eval_runs[0] / "evals").exists()


def test_own_task_yamls_of_each_request_type(eval_runs, tmp_path):
    """Tasks of your own from --include-path, reading local JSONL: multiple choice (loglikelihood),
    perplexity (loglikelihood_rolling) and greedy generation (generate_until)."""
    data = tmp_path / "items.jsonl"
    rows = [{"q": "def add(a, b):\n", "choices": ["    return a + b", "    pass"], "label": 0, "a": "return"},
            {"q": "import os\n", "choices": ["import sys", "x"], "label": 0, "a": "import"},
            {"q": "class A:\n", "choices": ["    pass", "x = 1"], "label": 0, "a": "pass"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "own_mc.yaml").write_text(common + "task: own_mc\noutput_type: multiple_choice\ndoc_to_text: q\n"
                                       "doc_to_choice: choices\ndoc_to_target: label\ntarget_delimiter: ''\n"
                                       "metric_list:\n  - metric: acc\n")
    (tasks / "own_ppl.yaml").write_text(common + "task: own_ppl\noutput_type: loglikelihood_rolling\n"
                                        "doc_to_text: ''\ndoc_to_target: q\nmetric_list:\n  - metric: bits_per_byte\n")
    (tasks / "own_gen.yaml").write_text(common + "task: own_gen\noutput_type: generate_until\ndoc_to_text: q\n"
                                        "doc_to_target: a\ngeneration_kwargs:\n  until: ['\\n']\n  max_gen_toks: 4\n"
                                        "metric_list:\n  - metric: exact_match\n")
    run = tmp_path / "run"
    shutil.copytree(eval_runs[0], run)
    assert main(["eval", "--run", str(run), "--tasks", "own_mc,own_ppl,own_gen", "--include-path", str(tasks),
                 "--results", str(tmp_path / "res")]) == 0
    report = json.loads((run / "evals" / "own_mc+own_ppl+own_gen.json").read_text())
    assert 0 <= report["results"]["own_mc"]["acc"] <= 1 and report["samples"]["own_mc"] == 3
    scorer = Scorer([Member.of_run(run)])
    nats = sum(scorer.loglikelihood_rolling([r["q"] for r in rows]))
    nbytes = sum(len(r["q"].encode()) for r in rows)
    assert report["results"]["own_ppl"]["bits_per_byte"] == pytest.approx(-nats / nbytes / math.log(2), rel=1e-5)
    assert report["results"]["own_gen"]["exact_match"] in (0.0, 1 / 3, 2 / 3, 1.0)
