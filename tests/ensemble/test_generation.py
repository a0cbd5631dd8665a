"""Generation and synthetic stores: the cached sampler against the full forward and the combined distribution,
synthetic stores' provenance (train documents only), resume after a kill, determinism."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from scarce.data.store import open_store
from scarce.ensemble import combine_logprobs
from scarce.errors import UserError
from scarce.rundir import Member, read_json
from scarce.sample import Sampling, decode_steps, filtered_logprobs, generate, load_models
from scarce.synth import SynthSpec, synthesize, train_documents


@torch.no_grad()
def full_forward_greedy(models, prompts, tokens, combine="logit"):
    """Greedy decoding by re-running the whole sequence each step (no cache): the reference."""
    ids = prompts.clone()
    for _ in range(tokens):
        lps = torch.stack([torch.log_softmax(m(ids)[:, -1].float(), -1) for m in models])
        ids = torch.cat([ids, combine_logprobs(lps, combine).argmax(-1, keepdim=True)], dim=1)
    return ids[:, prompts.size(1):]


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_cached_ensemble_decoding_equals_the_full_forward(members, combine):
    models = load_models(members)
    prompts = torch.tensor([[0, 5, 9, 11], [0, 40, 2, 7], [0, 1, 1, 1]])
    got = generate(models, prompts, 20, Sampling(temperature=0, combine=combine))
    assert torch.equal(got, full_forward_greedy(models, prompts, 20, combine))


def test_generation_past_the_context_restarts_the_cache(members):
    models = load_models(members[:1])  # seq_len 32
    ids = generate(models, torch.zeros(2, 1, dtype=torch.long), 100, Sampling(1.0), seed=4)
    assert ids.shape == (2, 100) and ids.max() < models[0].cfg.vocab_size


def test_sampling_follows_the_combined_distribution(members):
    """Many rows sampled one step from one prompt: token frequencies against the ensemble's filtered
    distribution (chi-square, fixed seed), for plain, top-k and top-p sampling."""
    models = load_models(members)
    prompt = torch.tensor([[0, 17, 23]])
    with torch.no_grad():
        lps = torch.stack([torch.log_softmax(m(prompt)[:, -1].float(), -1) for m in models])
    combined = combine_logprobs(lps, "logit")
    n = 20_000
    for s in (Sampling(1.0), Sampling(0.8, top_k=20), Sampling(1.0, top_p=0.7)):
        want = filtered_logprobs(combined, s).exp()[0].double()  # (V,)
        first = next(decode_steps(models, prompt.expand(n, -1), s, seed=11))
        counts = torch.bincount(first, minlength=want.numel()).double()
        assert counts[want == 0].sum() == 0  # nothing outside the top-k / top-p set
        keep = want * n >= 5  # tokens expected 5 times or more are bins of their own, the rest pooled in one
        expected = torch.cat([want[keep] * n, (want[~keep] * n).sum()[None]])
        observed = torch.cat([counts[keep], counts[~keep].sum()[None]])
        if expected[-1] < 5:
            expected, observed = expected[:-1], observed[:-1]
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        dof = len(expected) - 1
        assert chi2 < dof + 5 * math.sqrt(2 * dof), (s, chi2, dof)  # ~5 sigma of the chi-square


def test_top_p_keeps_the_smallest_set_reaching_p():
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filtered_logprobs(lp, Sampling(1.0, top_p=0.75)).exp()
    torch.testing.assert_close(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    kept = filtered_logprobs(lp, Sampling(1.0, top_p=0.8)).exp()  # 0.5 + 0.3 reaches 0.8: two tokens
    torch.testing.assert_close(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))


def test_looped_member_loads_with_its_passes(make_config, tmp_path):
    """A looped run's select-chosen weights evaluate, reloaded, to the loss the trainer recorded for them."""
    from scarce.ensemble import evaluate_ensemble
    from scarce.runs.launch import train

    cfg = make_config("model.depth=3", "model.loop_layers=1:2", "model.loop_extra=2", "model.loop_from=0.3")
    train(cfg, tmp_path / "looped", results=str(tmp_path / "r"), quiet=True)
    member = Member.of_run(tmp_path / "looped")
    summary = read_json(tmp_path / "looped" / "summary.json")
    assert member.load().loops == 2 and summary["best_step"] > 0.3 * summary["steps"]
    store = open_store(cfg.data)
    r = evaluate_ensemble([member], store.split("val"), store.token_bytes(), cfg.model.seq_len, 8)
    assert r["member_loss"][0] == pytest.approx(summary["val_loss"], abs=1e-4)


def _doc_hashes(docs) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(d).tobytes()).hexdigest() for d in docs}


@pytest.mark.parametrize("mode", ["conditioned", "megadoc"])
def test_conditioned_store_starts_only_from_train_documents(store, members, tmp_path, mode):
    spec = SynthSpec(3000, mode, prefix=8, generations=3, length=12, streams=8, seed=2)
    syn = synthesize(members[:2], tmp_path / mode, spec)
    train = np.asarray(syn.split("train"))
    assert len(train) == 3000
    for name in ("select", "val"):
        assert np.array_equal(syn.split(name), store.split(name))
    per_record = {"conditioned": 8 + 12 + 1, "megadoc": 8 + 3 * 12 + 1}[mode]  # prefix, generations, end-of-text
    records = train[:len(train) // per_record * per_record].reshape(-1, per_record)  # the last one is cut short
    assert (records[:, -1] == store.eot_id).all()
    prefixes = _doc_hashes(records[:, :8])
    train_prefixes = _doc_hashes(d[:8] for d in train_documents(store, 8))
    heldout = set().union(*(_doc_hashes(d[:8] for d in _split_docs(store, n)) for n in ("select", "val")))
    assert prefixes <= train_prefixes and not prefixes & (heldout - train_prefixes)
    if mode == "conditioned":  # k generations per document, one after another
        assert all((records[i][:8] == records[i + 1][:8]).all() for i in range(0, len(records) - 2, 3))
    manifest = syn.manifest["synthetic"]
    assert manifest["mode"] == mode and manifest["generations"] == 3 and manifest["source"]["path"] == str(store.path)
    assert manifest["teachers"] == [str(m.resolve()) for m in members[:2]]


def _split_docs(store, name):
    tokens = np.asarray(store.split(name))
    ends = np.flatnonzero(tokens == store.eot_id)
    return [tokens[a + 1:b] for a, b in zip(np.concatenate([[-1], ends]), np.concatenate([ends, [len(tokens)]]))
            if b - a > 8]


def test_killed_generation_resumes_byte_identical(members, tmp_path, monkeypatch, capsys):
    """A generation killed after 3 shards resumes from them; the two it finds damaged it generates again."""
    import scarce.synth as synth

    spec = SynthSpec(2000, "conditioned", prefix=6, generations=2, length=10, streams=4, seed=5)
    whole = synthesize(members[:1], tmp_path / "whole", spec)
    calls = {"n": 0}
    real = synth.generate

    def dies_on_the_fourth(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(synth, "generate", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        synthesize(members[:1], tmp_path / "killed", spec)
    assert len(list((tmp_path / "killed.parts").glob("*.npy"))) == 3 and not (tmp_path / "killed").exists()
    monkeypatch.setattr(synth, "generate", real)
    first, second, third = sorted((tmp_path / "killed.parts").glob("*.npy"))
    data = bytearray(first.read_bytes())
    data[-3] ^= 4  # a flipped bit in a token of shard 0 (same size): only its digest tells
    first.write_bytes(bytes(data))
    second.write_bytes(second.read_bytes()[:40])  # a truncated shard 1
    resumed = synthesize(members[:1], tmp_path / "killed", spec)
    assert (resumed.path / "train.bin").read_bytes() == (whole.path / "train.bin").read_bytes()
    assert not (tmp_path / "killed.parts").exists()
    warned = capsys.readouterr().err
    assert f"{first} is damaged" in warned and f"{second} is damaged" in warned and str(third) not in warned
    other = synthesize(members[:1], tmp_path / "seed6", SynthSpec(2000, "conditioned", 6, 2, 10, 4, seed=6))
    assert (other.path / "train.bin").read_bytes() != (whole.path / "train.bin").read_bytes()


def test_prompt_longer_than_the_context_is_refused(members):
    with pytest.raises(UserError, match="leaves no room"):
        generate(load_models(members[:1]), torch.zeros(1, 32, dtype=torch.long), 4)


def test_two_synthetic_stores_mix_with_the_real_one(store, members, make_config, tmp_path):
    """mix.stores adds stores beside mix.store, each at its share; distill_on=real keeps the distillation term off
    the teachers' own text (plain cross-entropy there)."""
    from scarce.config import MixConfig
    from scarce.train.distill import Distillation
    from scarce.train.trainer import Trainer

    a = synthesize(members[:1], tmp_path / "a", SynthSpec(3000, streams=16))
    b = synthesize(members[:1], tmp_path / "b", SynthSpec(3000, "megadoc", prefix=4, generations=2, streams=16))
    cfg = make_config("train.tokens=1280", "objective.kind=distill", f"objective.teachers=[\"{members[0]}\"]",
                      "objective.distill_on=real")
    cfg.mix = MixConfig(str(a.path), 0.3, [str(b.path)], [0.5])
    trainer = Trainer(cfg, tmp_path / "student", quiet=True)
    sources = [trainer.loader.source(s) for s in range(400)]
    shares = [sources.count(k) / 400 for k in (0, 1, 2)]
    assert shares == pytest.approx([0.2, 0.3, 0.5], abs=0.07)
    for step in range(6):
        want = {0: trainer.loader.main, 1: trainer.loader.others[0], 2: trainer.loader.others[1]}[sources[step]]
        assert torch.equal(trainer.loader.batch(step)[0], want.batch(step)[0])
    assert isinstance(trainer.objective, Distillation)
    x, y = trainer.loader.main.batch(0)
    model = trainer.model
    with torch.no_grad():
        plain = model(x, y)
        assert torch.equal(trainer.objective(model, x, y, real=False), plain)
        assert not torch.equal(trainer.objective(model, x, y, real=True), plain)
    with pytest.raises(ValueError, match="at most 1"):
        MixConfig(str(a.path), 0.6, [str(b.path)], [0.5])


def test_synthetic_students_choose_the_share_on_select(store, members, make_config, tmp_path):
    from scarce.recipes.synthetic import student_config, synthetic_students

    base = make_config("train.tokens=2560")
    r = synthetic_students(base, members[:2], tmp_path / "ss", SynthSpec(2000, streams=16), fracs=(0.5, 0.9),
                           seeds=(7, 8), passes=1.0, results=str(tmp_path / "r"))
    tuned = [s for s in r["students"] if s["seed"] == 7]
    assert {s["frac"] for s in tuned} == {0.5, 0.9}
    assert r["frac"] == min(tuned, key=lambda s: s["select_loss"])["frac"]
    assert [(s["frac"], s["seed"]) for s in r["students"]][2:] == [(r["frac"], 8)]
    assert all(s["val_loss"] > 0 for s in r["students"])
    cfg = student_config(base, [(r["synthetic"], 0.9)], seed=3, passes=4.0,
                         kd={"teachers": [str(m) for m in members[:2]], "alpha": 0.5, "temperature": 1.0})
    assert cfg.train.tokens == math.ceil(4.0 * 2000 / 0.9)  # 4 passes over the synthetic text at its share
    assert cfg.objective.kind == "distill" and cfg.objective.distill_on == "real" and cfg.mix.frac == 0.9
    assert student_config(base, [(r["synthetic"], 0.9)], 3, passes=0.1).train.tokens == 2560  # never below the base


def test_student_groups_train_together_and_one_share_trains_every_seed_at_once(store, make_config, monkeypatch,
                                                                             tmp_path):
    """train_students hands the workers every group's first round in one batch (no group waits for another), a
    group with one share to try trains all its seeds in it, and a group tuning its share trains its other seeds
    at the share chosen on select, in a second batch."""
    import scarce.recipes.synthetic as synthetic

    batches = []

    def fake_train_all(jobs, executor, results, quiet):
        batches.append([(j.config.mix.frac, j.config.train.seed, j.run_dir.parent.name) for j in jobs])
        # select loss: share 0.5 wins in the tuning group
        return [{"run_id": f"r{len(batches)}-{i}", "select_loss": 1.0 + abs(j.config.mix.frac - 0.5),
                 "val_loss": 2.0} for i, j in enumerate(jobs)]

    monkeypatch.setattr(synthetic, "train_all", fake_train_all)
    base = make_config("train.tokens=2560")
    tune = synthetic.StudentGroup(base, str(store.path), SynthSpec(2000), tmp_path / "tune", (0.25, 0.5, 0.9), (7, 8))
    one = synthetic.StudentGroup(base, str(store.path), SynthSpec(2000), tmp_path / "one", (0.9,), (1, 2, 3))
    got = synthetic.train_students([tune, one])
    assert batches == [[(0.25, 7, "tune"), (0.5, 7, "tune"), (0.9, 7, "tune"), (0.9, 1, "one"), (0.9, 2, "one"),
                        (0.9, 3, "one")], [(0.5, 8, "tune")]]
    assert [g["frac"] for g in got] == [0.5, 0.9]
    assert [(s["frac"], s["seed"]) for s in got[0]["students"]] == [(0.25, 7), (0.5, 7), (0.9, 7), (0.5, 8)]
    assert [s["seed"] for s in got[1]["students"]] == [1, 2, 3]
    assert got[1]["students"][2]["run_dir"] == str(tmp_path / "one" / "f0.9-s3")
    batches.clear()
    synthetic.train_students([one])
    assert len(batches) == 1  # nothing left for a second batch
    with pytest.raises(UserError, match="at least one share"):
        synthetic.student_group(base, [], tmp_path / "x", SynthSpec(100), fracs=())


def test_models_of_two_vocabularies_are_refused():
    from scarce.config import ModelConfig
    from scarce.model.gpt import GPT
    from scarce.sample import check_models

    a, b = (GPT(ModelConfig(depth=1, head_dim=16, seq_len=16, vocab_size=v)) for v in (97, 98))
    with pytest.raises(UserError, match="different vocabularies"):
        check_models([a, b])


def test_synthetic_chain_trains_each_member_on_the_previous_ones_text(members, make_config, tmp_path):
    from scarce.recipes.synthetic import synthetic_chain
    from scarce.rundir import read_config

    r = synthetic_chain(make_config("train.tokens=1280"), members[0], tmp_path / "chain", SynthSpec(1500, streams=16),
                        frac=0.75, members=3, passes=1.0, results=str(tmp_path / "r"))
    assert len(r["members"]) == 3 and r["members"][0] == str(members[0].resolve())
    for prev, cur in zip(r["members"], r["members"][1:]):
        mix = read_config(cur).mix
        assert open_store(mix.store).manifest["synthetic"]["teachers"] == [prev] and mix.frac == 0.75
    seeds = [open_store(read_config(m).mix.store).manifest["synthetic"]["seed"] for m in r["members"][1:]]
    assert seeds == [1, 2]
    with pytest.raises(UserError, match="at least 2 members"):
        synthetic_chain(make_config(), members[0], tmp_path / "c1", SynthSpec(100), members=1)
