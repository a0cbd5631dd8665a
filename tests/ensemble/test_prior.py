"""The learned prior: mixture weights over any members, fitted on select only, top-K by weight."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from scarce.cli.main import main
from scarce.ensemble import fit_prior, learned_prior, mixture_nll, top_k
from scarce.errors import UserError
from scarce.rundir import Member, read_config


def test_the_prior_weighs_the_better_member_up_and_beats_uniform_on_its_tokens():
    rng = np.random.default_rng(0)
    good = np.log(rng.uniform(0.3, 0.9, (1, 2000)))
    bad = np.log(rng.uniform(0.01, 0.2, (2, 2000)))
    lp = np.concatenate([bad[:1], good, bad[1:]])  # member 1 is the good one
    w = fit_prior(lp)
    assert w.argmax() == 1 and w.sum() == pytest.approx(1.0)
    assert mixture_nll(lp, w).mean() < mixture_nll(lp, np.full(3, 1 / 3)).mean()


def test_top_k_picks_by_weight_in_member_order_and_renormalises():
    chosen, w = top_k(np.array([0.1, 0.5, 0.05, 0.35]), 2)
    assert chosen == [1, 3] and np.allclose(w, [0.5 / 0.85, 0.35 / 0.85])
    with pytest.raises(UserError, match="K must be in 1..4"):
        top_k(np.array([0.1, 0.5, 0.05, 0.35]), 5)


def test_mixture_nll_of_one_member_is_its_own_nll():
    lp = np.log(np.array([[0.5, 0.25], [0.1, 0.9]]))
    assert np.allclose(mixture_nll(lp, [1.0, 0.0]).numpy(), -lp[0])
    assert np.allclose(mixture_nll(lp, [0.5, 0.5]).numpy(), -np.log((np.exp(lp[0]) + np.exp(lp[1])) / 2))


def test_the_prior_never_reads_val(members, store):
    """Val poisoned (random tokens): the fitted weights, the select losses and the chosen K stay as they were."""
    ms = [Member.of_run(d) for d in members]
    seq_len = read_config(members[0]).model.seq_len
    clean = learned_prior(ms, store.split("select"), store.split("val"), seq_len, [1, 2])
    poison = np.random.default_rng(0).integers(0, 300, len(store.split("val"))).astype(store.split("val").dtype)
    dirty = learned_prior(ms, store.split("select"), poison, seq_len, [1, 2])
    assert dirty["weights"] == clean["weights"] and dirty["select_loss"] == clean["select_loss"]
    assert dirty["k"] == clean["k"] and dirty["members"] == clean["members"]
    assert dirty["val_loss"] != clean["val_loss"]  # val was read for the report, once


def test_cli_prior_over_runs_writes_weights_and_the_gain(members, tmp_path):
    out = tmp_path / "prior"
    assert main(["ensemble", "--out", str(out), "--runs", *map(str, members), "--prior", "--top-k", "1", "2",
                 "--combine", "prob", "--quiet"]) == 0
    prior = json.loads((out / "ensemble.json").read_text())["prior"]
    assert prior["fitted_on"] == "select" and prior["k_values"] == [1, 2, 3]
    assert sum(m["weight"] for m in prior["members"]) == pytest.approx(1.0)
    assert sum(m["chosen"] for m in prior["members"]) == prior["k"]
    assert prior["gain"]["low"] <= prior["gain"]["value"] <= prior["gain"]["high"]
    assert prior["gain"]["value"] == pytest.approx(prior["val_loss_uniform"] - prior["val_loss"])


@pytest.mark.parametrize("extra, message", [
    (["--prior", "--top-k", "4"], "K must be in 1..3"),
    (["--top-k", "2"], "add --prior"),
])
def test_cli_prior_bad_input(members, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["ensemble", "--out", str(out), "--runs", *map(str, members), "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_prior_over_two_tokenizers_is_refused(members, store, tmp_path):
    foreign = tmp_path / "foreign"
    shutil.copytree(members[1], foreign)
    record = json.loads((foreign / "run.json").read_text())
    record["tokenizer"] = "0" * 64  # trained with another tokenizer of the same vocabulary size
    (foreign / "run.json").write_text(json.dumps(record))
    ms = [Member.of_run(members[0]), Member.of_run(foreign)]
    with pytest.raises(UserError, match="tokenizer mismatch"):
        learned_prior(ms, store.split("select"), store.split("val"), 32, [1])
