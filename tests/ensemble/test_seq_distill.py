"""Sequence-level distillation: a synthetic token store sampled from a teacher, and real:synthetic mixing."""

from __future__ import annotations

import numpy as np
import torch

from scarce.config import MixConfig
from scarce.recipes.distill import seq_distill
from scarce.rundir import best_weights, load_weights
from scarce.runs.launch import train
from scarce.synth import SynthSpec, synthesize
from scarce.train.trainer import Trainer


def test_synthetic_store_keeps_tokenizer_and_heldout_splits(store, members, tmp_path):
    syn = synthesize([members[0]], tmp_path / "syn", SynthSpec(3000, seed=3, streams=16))
    assert len(syn.split("train")) == 3000 and syn.vocab_size == store.vocab_size
    assert np.array_equal(syn.split("val"), store.split("val"))
    again = synthesize([members[0]], tmp_path / "syn2", SynthSpec(3000, seed=3, streams=16))
    assert np.array_equal(again.split("train"), syn.split("train"))  # seeded


def test_mix_zero_is_plain_training_and_mix_half_draws_both(store, members, make_config, tmp_path):
    syn = synthesize([members[0]], tmp_path / "syn", SynthSpec(4000, streams=16))
    cfg = make_config("train.tokens=1280")
    train(cfg, tmp_path / "plain", results=str(tmp_path / "r"), quiet=True)
    mix = make_config("train.tokens=1280")
    mix.mix = MixConfig(str(syn.path), 0.0)
    train(mix, tmp_path / "mix0", results=str(tmp_path / "r"), quiet=True)
    a = load_weights(best_weights(tmp_path / "plain"))
    b = load_weights(best_weights(tmp_path / "mix0"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    mix.mix = MixConfig(str(syn.path), 0.5)
    loader = Trainer(mix, tmp_path / "mix5", quiet=True).loader
    synthetic = [torch.equal(loader.batch(s)[0], loader.other.batch(s)[0]) for s in range(40)]
    real = [torch.equal(loader.batch(s)[0], loader.main.batch(s)[0]) for s in range(40)]
    assert all(a != b for a, b in zip(synthetic, real)) and 10 <= sum(synthetic) <= 30


def test_seq_distill_trains_a_student(members, make_config, tmp_path):
    r = seq_distill(make_config("train.tokens=1280"), [members[0], members[1]], tmp_path / "sd", 3000,
                    synthetic_frac=0.9, results=str(tmp_path / "r"), quiet=True)
    assert r["val_loss"] > 0 and (tmp_path / "sd" / "synthetic" / "manifest.json").is_file()


def test_synth_cli(members, tmp_path):
    from scarce.cli.main import main
    from scarce.data.store import open_store

    argv = ["synth", "--run", str(members[0]), "--tokens", "640", "--out", str(tmp_path / "s"), "--quiet"]
    assert main(argv + ["--streams", "8"]) == 0
    assert len(open_store(tmp_path / "s").split("train")) == 640
    assert main(argv + ["--streams", "8"]) == 0  # the same request again: the finished store is reused
    assert main(argv + ["--streams", "4"]) == 2  # other settings at the same place: refused
