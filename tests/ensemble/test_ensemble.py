"""Ensemble combination and memory-bounded, one-pass prefix evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from scarce.ensemble import combine_logprobs, evaluate_ensemble
from scarce.eval.loss import evaluate
from scarce.rundir import Member, load_model


def _eval(store, members, combine="logit", **kw):
    return evaluate_ensemble([Member.of_run(m) for m in members], store.split("val"), store.token_bytes(), 32,
                             combine=combine, **kw)


def test_combine_rules():
    lp = torch.log_softmax(torch.randn(3, 5, 7), dim=-1)
    logit = combine_logprobs(lp, "logit")
    prob = combine_logprobs(lp, "prob")
    assert torch.allclose(logit.exp(), torch.softmax(lp.mean(0), -1), atol=1e-6)
    assert torch.allclose(prob.exp(), lp.exp().mean(0), atol=1e-6)
    assert torch.allclose(logit.exp().sum(-1), torch.ones(5), atol=1e-5)
    assert torch.allclose(combine_logprobs(lp[:1].expand(4, 5, 7), "logit"), lp[0], atol=1e-6)


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_identical_members_equal_the_member(store, members, combine):
    r = _eval(store, [members[0]] * 3, combine)
    assert r["prefix_loss"] == pytest.approx([r["member_loss"][0]] * 3, abs=1e-6)
    assert r["prefix_bpb"] == pytest.approx([r["member_bpb"][0]] * 3, abs=1e-6)


def test_member_loss_matches_single_model_evaluation(store, members):
    r = _eval(store, members[:1])
    one = evaluate(load_model(members[0]), store.split("val"), store.token_bytes(), 32, 16)
    assert r["member_loss"][0] == pytest.approx(one["loss"], abs=1e-6)
    assert r["member_bpb"][0] == pytest.approx(one["bpb"], abs=1e-6)
    assert r["tokens"] == one["tokens"]


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_one_pass_prefixes_equal_separate_evaluations(store, members, combine, tmp_path):
    r = _eval(store, members, combine, cache_dir=tmp_path)
    for k in range(1, len(members) + 1):
        alone = _eval(store, members[:k], combine)
        assert r["prefix_loss"][k - 1] == pytest.approx(alone["prefix_loss"][-1], abs=1e-6)
    assert r["prefix_loss"][-1] < min(r["member_loss"])  # seeds differ: the ensemble beats every member
    assert list(tmp_path.iterdir()) == []  # the disk accumulator is removed


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    torch.set_num_threads(1)
    from scarce.config import ModelConfig, RunConfig
    from scarce.data.store import open_store
    from scarce.ensemble import evaluate_ensemble
    from scarce.model.gpt import GPT
    from scarce.rundir import Member, save_weights
    from pathlib import Path
    store, root, ks = open_store(sys.argv[1]), Path(sys.argv[2]), [int(k) for k in sys.argv[3:]]
    cfg = RunConfig(data=str(store.path), model=ModelConfig(depth=2, width=512, head_dim=64, seq_len=32,
                                                            vocab_size=store.vocab_size))
    members = []
    for k in range(max(ks)):  # random members of ~25 MB each: loading all would show in the peak
        d = root / f"m{k}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg.to_dict()))
        torch.manual_seed(k)
        save_weights(d / "checkpoints" / "best.safetensors", GPT(cfg.model).state_dict())
        members.append(Member.of_run(d))
    peaks = {}
    for k in ks:
        evaluate_ensemble(members[:k], store.split("val"), store.token_bytes(), 32, 8, max_tokens=256)
        peaks[k] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB, monotone over the run
    print(json.dumps(peaks))
""")


def test_peak_memory_flat_in_k(store, tmp_path):
    member_mb = 4 * (2 * 12 * 512 * 512 + 300 * 512) / 2**20  # ~25 MB of fp32 weights
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(store.path), str(tmp_path), "1", "6"],
                         capture_output=True, text=True, check=True)
    peaks = json.loads(out.stdout)
    # All six members in memory would add ~5 x 25 MB over K=1; allow less than two members of growth.
    assert peaks["6"] - peaks["1"] < 2 * member_mb, peaks


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_blocked_evaluation_equals_one_block(store, members, combine):
    whole = _eval(store, members, combine)
    blocked = _eval(store, members, combine, max_cache_bytes=1)  # one batch of windows per block
    assert blocked["tokens"] == whole["tokens"] and blocked["bytes"] == whole["bytes"]
    assert blocked["prefix_loss"] == pytest.approx(whole["prefix_loss"], abs=1e-6)
    assert blocked["member_loss"] == pytest.approx(whole["member_loss"], abs=1e-6)
