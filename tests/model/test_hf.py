"""Hugging Face models in and out: tiny random-init GPT-2 and Llama models built here from a config (no
download), started from with init.source hf:PATH, and scarce runs exported and reloaded by transformers."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from scarce.config import ModelConfig  # noqa: E402
from scarce.data.prepare import prepare  # noqa: E402
from scarce.data.store import open_store  # noqa: E402
from scarce.ensemble import evaluate_ensemble  # noqa: E402
from scarce.errors import UserError  # noqa: E402
from scarce.export import export  # noqa: E402
from scarce.model import hf  # noqa: E402
from scarce.model.gpt import GPT  # noqa: E402
from scarce.rundir import Member, load_model, load_weights, read_config  # noqa: E402
from scarce.runs.launch import resume, train  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
VOCAB, EOS = 320, "<|endoftext|>"


def _tokenizer(corpus: Path):
    """A small byte-level BPE in a transformers wrapper, trained on the test corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([json.loads(line)["text"] for line in corpus.read_text().splitlines()], trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)


def _perturb_norms(model) -> None:
    """Random-init HF norms are all ones; perturb them so a dropped gain would show."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """{name: folder} of tiny HF models sharing one tokenizer, and a local corpus."""
    root = tmp_path_factory.mktemp("hf")
    corpus = root / "corpus"
    corpus.mkdir()
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:80]
    (corpus / "docs.jsonl").write_text("\n".join(
        json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1500]}) for p in files) + "\n")
    tok = _tokenizer(corpus / "docs.jsonl")
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0))
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 16, "rope_theta": 500000.0}
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False, rope_parameters=llama3,
        bos_token_id=0, eos_token_id=0))
    folders = {"corpus": corpus}
    for name, model in (("gpt2", gpt2), ("llama", llama)):
        _perturb_norms(model)
        folders[name] = root / name
        model.save_pretrained(folders[name])
        tok.save_pretrained(folders[name])
    return folders


@pytest.fixture(scope="module")
def hf_store(hf_models, tmp_path_factory):
    """A token store made with the models' tokenizer."""
    return prepare(f"files:{hf_models['corpus']}", tmp_path_factory.mktemp("s") / "hf", vocab_size=512,
                   train_tokens=6000, select_tokens=600, val_tokens=600, tokenizer=f"hf:{hf_models['gpt2']}",
                   log=lambda *a: None)


def _cfg(tiny_config, store, source: str, **kw):
    cfg = tiny_config(store, **{"model.seq_len": 32, "train.batch_size": 4, "train.epochs": 1.0,
                                "train.log_every": 1, **kw})
    cfg.init.source = source
    return cfg


def _hf_loss(folder: Path, x: torch.Tensor, y: torch.Tensor) -> float:
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = ref(x).logits
    return F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_hf_logits_match_after_import(hf_models, name):
    source = f"hf:{hf_models[name]}"
    m = hf.resolve(ModelConfig(seq_len=32), source)
    model = GPT(m).eval()
    model.load_state_dict(hf.load_weights(source, m))
    ref = transformers.AutoModelForCausalLM.from_pretrained(hf_models[name]).eval()
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), ref(idx).logits, atol=1e-5, rtol=0)
    assert (m.kv_heads, m.rope_scaling) == ((2, "llama3:8:1:4:16") if name == "llama" else (0, ""))
    assert hf.resolve(ModelConfig(seq_len=32, drop_path=0.1), source).drop_path == 0.1  # a regulariser: free
    with pytest.raises(UserError, match="model.init: not part of"):  # the weights come from the HF model
        hf.resolve(ModelConfig(seq_len=32, init="record"), source)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_step_zero_loss_equals_the_hf_models(hf_models, hf_store, tiny_config, tmp_path, name):
    """`--init hf:PATH`: the first logged training loss is the HF model's loss on that batch."""
    cfg = _cfg(tiny_config, hf_store, f"hf:{hf_models[name]}")
    train(cfg, tmp_path / "run", results=tmp_path / "res", quiet=True, stop_at_step=1)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    stored = read_config(tmp_path / "run")
    from scarce.train.trainer import build_loader

    x, y = build_loader(stored, open_store(stored.data), 0, 1).batch(0)
    assert first["loss"] == pytest.approx(_hf_loss(hf_models[name], x, y), abs=1e-4)
    assert stored.model.depth == 2 and stored.model.width == 32


def test_cpt_run_resumes_bit_identical(hf_models, hf_store, tiny_config, tmp_path):
    cfg = _cfg(tiny_config, hf_store, f"hf:{hf_models['llama']}", **{"train.log_every": 1000})
    whole = train(cfg, tmp_path / "whole", results=tmp_path / "res", quiet=True)
    assert train(cfg, tmp_path / "cut", results=tmp_path / "res", quiet=True, stop_at_step=3) is None
    resumed = resume(tmp_path / "cut", quiet=True)
    assert resumed["val_loss"] == whole["val_loss"]
    a, b = (load_weights(tmp_path / d / "checkpoints" / "best.safetensors") for d in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_ensemble_of_cpt_members_trains_and_evaluates(hf_models, hf_store, tiny_config, tmp_path):
    members = []
    for seed in (1, 2):
        cfg = _cfg(tiny_config, hf_store, f"hf:{hf_models['gpt2']}", **{"train.seed": seed, "train.log_every": 1000})
        train(cfg, tmp_path / f"m{seed}", results=tmp_path / "res", quiet=True)
        members.append(Member.of_run(tmp_path / f"m{seed}"))
    r = evaluate_ensemble(members, hf_store.split("val"), hf_store.token_bytes(), 32, batch_size=4)
    assert r["prefix_loss"][1] < max(r["member_loss"])  # different data orders: the ensemble helps
    w1, w2 = (load_weights(m.weights) for m in members)
    assert not torch.equal(w1["embed.weight"], w2["embed.weight"])


@pytest.mark.parametrize("kw", [{}, {"model.mlp": "swiglu", "model.kv_heads": 2}])
def test_export_then_transformers_reload_gives_the_same_logits(hf_store, tiny_config, tmp_path, kw):
    cfg = tiny_config(hf_store, **{"model.seq_len": 32, "train.batch_size": 4, "train.epochs": 0.2, **kw})
    train(cfg, tmp_path / "run", results=tmp_path / "res", quiet=True)
    export(tmp_path / "hf", run=tmp_path / "run")
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    model = load_model(tmp_path / "run")
    idx = torch.randint(0, hf_store.vocab_size, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(ref(idx).logits, model(idx), atol=1e-5, rtol=0)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "def f(x):\n    return x\n"
    assert tok(text)["input_ids"] == hf_store.tokenizer().encode(text)


def test_a_run_from_gpt2_exports_as_gpt2(hf_models, hf_store, tiny_config, tmp_path):
    cfg = _cfg(tiny_config, hf_store, f"hf:{hf_models['gpt2']}", **{"train.epochs": 0.2, "train.log_every": 1000})
    train(cfg, tmp_path / "run", results=tmp_path / "res", quiet=True)
    export(tmp_path / "hf", run=tmp_path / "run")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "gpt2"
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(ref(idx).logits, load_model(tmp_path / "run")(idx), atol=1e-5, rtol=0)


def test_an_ensemble_exports_its_members_and_how_they_combine(hf_store, tiny_config, tmp_path):
    from scarce.ensemble import write_evaluation

    members = []
    for seed in (1, 2):
        cfg = tiny_config(hf_store, **{"model.seq_len": 32, "train.epochs": 0.1, "train.seed": seed})
        train(cfg, tmp_path / f"m{seed}", results=tmp_path / "res", quiet=True)
        members.append(Member.of_run(tmp_path / f"m{seed}"))
    write_evaluation(tmp_path / "ens", members, combine="prob", max_tokens=64)
    export(tmp_path / "hf", ensemble=tmp_path / "ens")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["README.md", "member-1", "member-2",
                                                                  "scarce_ensemble.json"]
    assert "probability averaging" in (tmp_path / "hf" / "README.md").read_text()
    for k in (1, 2):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf" / f"member-{k}")


def test_knobs_without_a_counterpart_are_named_not_dropped(hf_store, tiny_config, tmp_path):
    cfg = tiny_config(hf_store, **{"model.seq_len": 32, "train.epochs": 0.05, "model.xsa": True,
                                   "model.value_embed": "all"})
    train(cfg, tmp_path / "run", results=tmp_path / "res", quiet=True)
    with pytest.raises(UserError, match="model.value_embed, model.xsa"):
        export(tmp_path / "hf", run=tmp_path / "run")
    assert not (tmp_path / "hf").exists() and not list(tmp_path.glob(".hf.*"))


def test_clean_errors(hf_models, hf_store, stdlib_store, tiny_config, tmp_path):
    with pytest.raises(UserError, match="cannot load the HF model config of hf:.*nothing is downloaded"):
        hf.load_config(f"hf:{tmp_path / 'absent'}")
    neox = tmp_path / "neox"
    transformers.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=4, intermediate_size=64).save_pretrained(neox)
    with pytest.raises(UserError, match="is a gpt_neox model; scarce starts from the gpt2 and llama families"):
        hf.resolve(ModelConfig(), f"hf:{neox}")
    with pytest.raises(UserError, match="tokenizer mismatch: .* prepare the store with --tokenizer hf:"):
        train(_cfg(tiny_config, stdlib_store, f"hf:{hf_models['gpt2']}"), tmp_path / "r", results=tmp_path / "res")
    assert not (tmp_path / "r").exists()
    with pytest.raises(UserError, match="model.xsa: not part of"):
        train(_cfg(tiny_config, hf_store, f"hf:{hf_models['gpt2']}", **{"model.xsa": True}), tmp_path / "r2",
              results=tmp_path / "res")
    with pytest.raises(UserError, match="model.seq_len 128 exceeds the 64 positions"):
        train(_cfg(tiny_config, hf_store, f"hf:{hf_models['gpt2']}", **{"model.seq_len": 128}), tmp_path / "r3",
              results=tmp_path / "res")


def test_train_cli_init_hf_then_export_cli(hf_models, hf_store, tmp_path):
    from scarce.cli.main import main

    argv = ["train", "--data", str(hf_store.path), "--init", f"hf:{hf_models['llama']}", "--out", str(tmp_path / "r"),
            "--results", str(tmp_path / "res"), "--epochs", "0.2", "--set", "model.seq_len=32", "--threads", "1",
            "--quiet"]
    assert main(argv) == 0
    cfg = read_config(tmp_path / "r")
    assert cfg.init.source == f"hf:{hf_models['llama']}" and cfg.model.kv_heads == 2
    assert main(["export", "--run", str(tmp_path / "r"), "--out", str(tmp_path / "x")]) == 0
    assert json.loads((tmp_path / "x" / "config.json").read_text())["num_key_value_heads"] == 2
