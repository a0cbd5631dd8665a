"""Every command on malformed input: exit status 2, one line `error: ...` naming the problem, no traceback,
and nothing left on disk.

One table of cases, each `(id, argv, expected substring, setup)`. `argv` may name `{tmp}` (the case's own
empty folder, also the working directory, so a default `./scarce-results` would land there too),
`{store}` (a small valid token store), `{run}` (a small finished run) and `{results}` (the results root
that run is recorded in). `setup(tmp, fx)` creates what the case needs beforehand (a damaged copy of the
store, a corrupt run dir, a bad CSV); after the call the file tree under `{tmp}` and under the shared
store, run and results must be exactly what it was before.
"""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import pytest

from scarce.cli.main import main

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_run(tiny_store, tmp_path_factory):
    """A finished tiny run (a few seconds) and the results root it is recorded in."""
    from scarce.config import apply_overrides, get_preset
    from scarce.runs.launch import train

    results = tmp_path_factory.mktemp("bad_input_results")
    run_dir = tmp_path_factory.mktemp("bad_input_run") / "run"
    cfg = apply_overrides(get_preset("tiny"), ["model.depth=1", "model.head_dim=16", "model.seq_len=64",
                                               "train.batch_size=8", "train.threads=1", "train.eval_every=4"])
    cfg.data = str(tiny_store.path)
    train(cfg, run_dir, results=str(results), quiet=True)
    return run_dir, results


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# -- setup helpers ----------------------------------------------------------------------------------


def write(rel: str, text: str | bytes):
    """Setup: write one file (folders above it made)."""
    def setup(tmp: Path, fx) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("{store}", str(fx.store)))
    return setup


def mkdir(rel: str):
    def setup(tmp: Path, fx) -> None:
        (tmp / rel).mkdir(parents=True)
    return setup


def both(*setups):
    def setup(tmp: Path, fx) -> None:
        for s in setups:
            s(tmp, fx)
    return setup


def corpus(tmp: Path, fx) -> None:
    """A ~40 kB jsonl corpus under tmp/corpus (the one `tiny_store` is made from)."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    lines = [json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1200]}) for p in files]
    (tmp / "corpus").mkdir()
    (tmp / "corpus" / "docs.jsonl").write_text("\n".join(lines) + "\n")


def store_copy(edit=None):
    """Setup: a copy of the store at tmp/store, then `edit(folder)` damages it."""
    def setup(tmp: Path, fx) -> None:
        shutil.copytree(fx.store, tmp / "store")
        if edit:
            edit(tmp / "store")
    return setup


def edit_manifest(change):
    def edit(folder: Path) -> None:
        m = json.loads((folder / "manifest.json").read_text())
        change(m)
        (folder / "manifest.json").write_text(json.dumps(m))
    return edit


def truncate(name: str):
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return edit


def flip_best(folder: Path) -> None:
    best = folder / "checkpoints" / "best.safetensors"
    data = bytearray(best.read_bytes())
    data[-7] ^= 0x80  # a bit of the last tensor's bytes: the file parses, the digest does not match
    best.write_bytes(bytes(data))


def token_beyond_vocab(folder: Path) -> None:
    data = bytearray((folder / "train.bin").read_bytes())
    data[0:2] = b"\xff\xff"  # uint16 65535, beyond the 300-token vocabulary; same size
    (folder / "train.bin").write_bytes(bytes(data))


def run_copy(edit=None):
    """Setup: a copy of the finished run at tmp/run, then `edit(folder)` damages it."""
    def setup(tmp: Path, fx) -> None:
        shutil.copytree(fx.run, tmp / "run")
        if edit:
            edit(tmp / "run")
    return setup


def other_tokenizer(folder: Path) -> None:
    """The run's run.json names another tokenizer (a run of a store of the same vocabulary size)."""
    info = json.loads((folder / "run.json").read_text())
    info["tokenizer"] = "0" * 64
    (folder / "run.json").write_text(json.dumps(info))


def ensemble_of_other_tokenizers(tmp: Path, fx) -> None:
    """Setup: tmp/e/ensemble.json of the run and a copy of it that names another tokenizer."""
    run_copy(other_tokenizer)(tmp, fx)
    (tmp / "e").mkdir()
    (tmp / "e" / "ensemble.json").write_text(json.dumps({"members": [{"run_dir": str(fx.run)},
                                                                     {"run_dir": str(tmp / "run")}]}))


def edit_config(change):
    def edit(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        change(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
    return edit


def rm(rel: str):
    def edit(folder: Path) -> None:
        path = folder / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return edit


def bad_run(config_text: str):
    """Setup: tmp/bad holding only a config.json with this text."""
    return write("bad/config.json", config_text)


def points_csv(header: str, rows: list[str]):
    return write("p.csv", "\n".join([header, *rows]) + "\n")


def sweep_toml(body: str):
    return write("s.toml", body)


def results_store(tmp: Path, fx) -> None:
    """Setup: an empty run store at tmp/res."""
    from scarce.runs.store import RunStore

    RunStore(tmp / "res").close()


def sqlite_db(rel: str, *statements: str):
    """Setup: a SQLite database at tmp/rel made by another program (these statements run in it)."""
    def setup(tmp: Path, fx) -> None:
        import sqlite3

        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(tmp / rel)
        for sql in statements:
            db.execute(sql)
        db.commit()
        db.close()
    return setup


def other_store(tmp: Path, fx) -> None:
    """Setup: a store at tmp/other whose tokenizer was trained on another corpus (same vocabulary size)."""
    from scarce.data.prepare import prepare

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[60:120]
    (tmp / "other-corpus").mkdir()
    (tmp / "other-corpus" / "docs.jsonl").write_text("\n".join(
        json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1200]}) for p in files) + "\n")
    prepare(f"files:{tmp}/other-corpus", tmp / "other", vocab_size=300, train_tokens=3000, select_tokens=600,
            val_tokens=600, log=lambda *a: None)


def run_of_another_vocabulary(tmp: Path, fx) -> None:
    """Setup: tmp/orun, a finished tiny run on a store of 320 tokens (the fixture run's has 300)."""
    from scarce.config import apply_overrides, get_preset
    from scarce.data.prepare import prepare
    from scarce.runs.launch import train

    corpus = tmp / "v320-corpus"
    corpus.mkdir()
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    (corpus / "docs.jsonl").write_text("\n".join(
        json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1200]}) for p in files) + "\n")
    store = prepare(f"files:{corpus}", tmp / "v320", vocab_size=320, train_tokens=3000, select_tokens=600,
                    val_tokens=600, log=lambda *a: None)
    cfg = apply_overrides(get_preset("tiny"), ["model.depth=1", "model.head_dim=16", "model.seq_len=64",
                                               "train.batch_size=8", "train.threads=1", "train.tokens=1024"])
    cfg.data = str(store.path)
    train(cfg, tmp / "orun", results=str(tmp / "ores"), quiet=True)


def set_ds(d: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for p in path:
        d = d[p]
    d[last] = value


PL = ["fit", "power-law", "--csv", "{tmp}/p.csv", "--x", "params", "--y", "loss", "--bootstrap", "0"]
CHIN = ["fit", "chinchilla", "--csv", "{tmp}/p.csv", "--bootstrap", "0"]
PLAN = ["fit", "plan", "--law-json", "{tmp}/law.json"]
LAW = json.dumps({k: {"value": v, "low": v, "high": v}
                  for k, v in {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}.items()})
GOOD_PL = points_csv("params,loss", ["1e6,4.0", "2e6,3.6", "4e6,3.3", "8e6,3.1"])
CHIN_ROWS = [f"{n},{d},{4 + 100 / n ** 0.3 + 100 / d ** 0.3}" for n in (1e6, 2e6, 4e6) for d in (1e8, 2e8)]
TRAIN = ["train", "--data", "{store}", "--out", "{tmp}/r", "--results", "{tmp}/res"]
TRAIN_OTHER = ["train", "--data", "{tmp}/other", "--out", "{tmp}/r", "--results", "{tmp}/res"]
DAMAGED = ["train", "--data", "{tmp}/store", "--out", "{tmp}/r", "--results", "{tmp}/res"]  # with store_copy(...)
PREP = ["prepare", "--corpus", "files:{tmp}/corpus", "--out", "{tmp}/s", "--vocab-size", "300",
        "--train-tokens", "6000", "--select-tokens", "600", "--val-tokens", "600"]
ENS = ["ensemble", "--out", "{tmp}/e", "--results", "{tmp}/res"]
ABL = ["ablate", "--data", "{store}", "--out", "{tmp}/a", "--results", "{tmp}/res", "--reference", "{tmp}/res"]
SAMPLE = ["sample", "--tokens", "8"]
SYNTH = ["synth", "--tokens", "100", "--out", "{tmp}/s", "--quiet"]
EVAL = ["eval", "--tasks", "scarce_nextline"]
RECIPE = ["recipe", "standard", "--data", "{store}", "--out", "{tmp}/o", "--results", "{tmp}/res"]
TOML = 'name = "s"\ndata = "{store}"\n'

# (id, argv, expected substring of the error line, setup)
CASES = [
    # -- the top level -----------------------------------------------------------------------------
    ("unknown-command", ["frobnicate"], "invalid choice: 'frobnicate'", None),
    ("unknown-top-option", ["--frobnicate"], "unrecognized arguments: --frobnicate", None),
    # -- prepare -----------------------------------------------------------------------------------
    ("prepare-no-train-tokens", ["prepare", "--out", "{tmp}/s"], "--train-tokens", None),
    ("prepare-no-out", ["prepare", "--train-tokens", "1k"], "--out", None),
    ("prepare-tokens-word", [*PREP[:-6], "--train-tokens", "lots"], "'lots' is not a count", None),
    ("prepare-tokens-zero", [*PREP[:-6], "--train-tokens", "0"], "'0' is not a positive whole number", None),
    ("prepare-tokens-negative", [*PREP[:-6], "--train-tokens", "-5"], "'-5' is not a count", None),
    ("prepare-tokens-inf", [*PREP[:-6], "--train-tokens", "inf"], "'inf' is not a count", None),
    ("prepare-tokens-nan", [*PREP[:-6], "--train-tokens", "nan"], "'nan' is not a count", None),
    ("prepare-tokens-fraction", [*PREP[:-6], "--train-tokens", "1.5"], "not a positive whole number", None),
    ("prepare-tokens-overflow", [*PREP[:-6], "--train-tokens", "1e400"], "'1e400'", None),
    ("prepare-select-zero", [*PREP, "--select-tokens", "0k"], "--select-tokens", None),
    ("prepare-vocab-small", [*PREP, "--vocab-size", "100"], "--vocab-size must be >= 257", None),
    ("prepare-vocab-word", [*PREP, "--vocab-size", "big"], "--vocab-size", None),
    ("prepare-out-name-too-long", [*PREP[:3], "--out", "{tmp}/" + "s" * 300, *PREP[5:]],
     "a name in it is 300 bytes long", None),
    ("prepare-threads-zero", [*PREP, "--threads", "0"], "argument --threads: must be >= 1", None),
    ("prepare-tokenizer-choice", [*PREP, "--tokenizer", "wordpiece"], "unknown tokenizer 'wordpiece'; give 'bpe'",
     None),
    ("prepare-tokenizer-hf-missing", [*PREP, "--tokenizer", "hf:{tmp}/nowhere"], "no model folder at {tmp}/nowhere",
     None),
    ("prepare-tokenizer-hf-no-tokenizer", [*PREP, "--tokenizer", "hf:{tmp}/m"], "m holds no tokenizer", mkdir("m")),
    ("prepare-tokenizer-hf-not-cached", [*PREP, "--tokenizer", "hf:no-such-org/no-such-model"],
     "nor a model in the local Hugging Face cache; nothing was downloaded", None),
    ("prepare-tokenizer-hf-bad-json", [*PREP, "--tokenizer", "hf:{tmp}/m"], "cannot load a tokenizer from {tmp}/m",
     write("m/tokenizer.json", "{not json")),
    ("prepare-tokenizer-json-bad", [*PREP, "--tokenizer", "{tmp}/t.json"], "cannot read tokenizer {tmp}/t.json",
     write("t.json", '{"version": "1.0"}')),
    ("prepare-tokenizer-json-missing", [*PREP, "--tokenizer", "{tmp}/t.json"], "no tokenizer file at", None),
    ("prepare-tokenizer-tiktoken", [*PREP, "--tokenizer", "{tmp}/r.tiktoken"], "records neither its split pattern",
     write("r.tiktoken", "IQ== 0\n")),
    ("prepare-near-dup-range", [*PREP, "--near-duplicates", "2"], "near_duplicates must be a share", corpus),
    ("prepare-near-dup-nan", [*PREP, "--near-duplicates", "nan"], "near_duplicates must be a share", corpus),
    ("prepare-heldout-zero", [*PREP, "--heldout-window", "0"], "--heldout-window", None),
    ("prepare-unknown-source", [*PREP, "--corpus", "s3:bucket"], "unknown corpus source 's3:bucket'", None),
    ("prepare-missing-corpus", [*PREP, "--corpus", "files:{tmp}/nowhere"], "does not exist", None),
    ("prepare-empty-corpus-folder", PREP, "holds no .txt or .jsonl files", mkdir("corpus")),
    ("prepare-corpus-wrong-suffix", [*PREP, "--corpus", "files:{tmp}/c.csv"], "neither .txt nor .jsonl",
     write("c.csv", "text\nhello\n")),
    ("prepare-corpus-bad-jsonl", [*PREP, "--corpus", "files:{tmp}/c.jsonl"], "c.jsonl:2 is not a JSON object",
     write("c.jsonl", '{"text": "a"}\nnot json\n')),
    ("prepare-hf-corpus-bad-jsonl", [*PREP, "--corpus", "hf:{tmp}/h"], "reading Hugging Face dataset '{tmp}/h' failed",
     write("h/train.jsonl", '{"text": "ok"}\nnot json\n')),
    ("prepare-corpus-jsonl-no-text", [*PREP, "--corpus", "files:{tmp}/c.jsonl"], "with a 'text' field",
     write("c.jsonl", '{"body": "a"}\n')),
    ("prepare-corpus-text-number", [*PREP, "--corpus", "files:{tmp}/c.jsonl"], "'text' field is int",
     write("c.jsonl", '{"text": 5}\n')),
    ("prepare-corpus-blank", [*PREP, "--corpus", "files:{tmp}/c.txt"], "holds no non-empty documents",
     write("c.txt", "   \n\n")),
    ("prepare-corpus-lone-surrogate", [*PREP, "--corpus", "files:{tmp}/c.jsonl"],
     "c.jsonl:2: the 'text' field holds a lone surrogate escape (\\ud800 at character 4)",
     write("c.jsonl", '{"text": "fine"}\n{"text": "abc \\ud800 def"}\n')),
    ("prepare-corpus-not-utf8", [*PREP, "--corpus", "files:{tmp}/c.txt"], "is not valid UTF-8",
     write("c.txt", b"caf\xe9 au lait\n")),
    ("prepare-corpus-too-small", [*PREP[:-6], "--train-tokens", "10M", "--select-tokens", "600",
                                  "--val-tokens", "600"], "too few for the budgets", corpus),
    ("prepare-out-is-file", [*PREP[:3], "--out", "{tmp}/f.txt", *PREP[5:]], "f.txt",
     both(corpus, write("f.txt", "x"))),
    ("prepare-out-nonempty-folder", [*PREP[:3], "--out", "{tmp}/d", *PREP[5:]],
     "holds something that is not a complete token store", write("d/notes.txt", "mine")),
    ("prepare-out-under-file", [*PREP[:3], "--out", "{tmp}/f/s", *PREP[5:]], "f is a file, not a folder",
     both(corpus, write("f", "x"))),
    ("prepare-corpus-two-docs", [*PREP, "--corpus", "files:{tmp}/c.jsonl"], "holds 2 distinct document(s)",
     write("c.jsonl", '{"text": "a"}\n{"text": "b"}\n')),
    ("prepare-corpus-duplicates", [*PREP, "--corpus", "files:{tmp}/c.jsonl"], "holds 1 distinct document(s)",
     write("c.jsonl", '{"text": "same"}\n' * 5)),
    ("prepare-near-dup-negative", [*PREP, "--near-duplicates", "-0.5"], "near_duplicates must be a share", corpus),
    ("prepare-other-request", [*PREP[:3], "--out", "{store}", *PREP[5:]], "a different request", corpus),
    # -- train ---------------------------------------------------------------------------------------
    ("train-no-data", ["train", "--out", "{tmp}/r"], "--data DIR is required", None),
    ("train-no-out", ["train", "--data", "{store}"], "--out RUN_DIR is required", None),
    ("train-fsdp-one-process", [*TRAIN, "--set", "train.parallel=fsdp"], "train.parallel=fsdp shards the model over the "
     "ranks of a process group: launch with torchrun", None),
    ("train-parallel-unknown", [*TRAIN, "--set", "train.parallel=zero3"], "train.parallel: must be ddp or fsdp", None),
    # -- cyclic schedules, populations and the record's knobs (issues 41 and 42) --------------------------
    ("train-cyclic-no-length", [*TRAIN, "--set", "optim.schedule=cyclic"], "schedule cyclic needs exactly one cycle length",
     None),
    ("train-cyclic-two-lengths", [*TRAIN, "--set", "optim.schedule=cyclic", "--set", "optim.cycle_steps=4",
                                  "--set", "optim.cycle_epochs=1"], "schedule cyclic needs exactly one cycle length", None),
    ("train-cycle-longer-than-run", [*TRAIN, "--tokens", "2048", "--set", "optim.schedule=cyclic",
                                     "--set", "optim.cycle_steps=100000"], "is longer than the run", None),
    ("train-cycle-floor-zero", [*TRAIN, "--set", "optim.schedule=cyclic", "--set", "optim.cycle_steps=4",
                                "--set", "optim.final_lr_frac=0"], "is the floor of each cycle: must be in (0, 1]", None),
    ("train-cycles-without-cyclic", [*TRAIN, "--set", "optim.cycle_steps=4"], "only schedule cyclic has cycles", None),
    ("train-cycle-shape", [*TRAIN, "--set", "optim.schedule=cyclic", "--set", "optim.cycle_steps=4",
                           "--set", "optim.cycle_shape=square"], "optim.cycle_shape: must be cosine or linear", None),
    ("train-wd-floor-zero", [*TRAIN, "--set", "optim.wd_schedule=anti", "--set", "optim.wd_floor=0"],
     "optim.wd_floor: must be in (0, 1]", None),
    ("train-wd-floor-above-one", [*TRAIN, "--set", "optim.wd_floor=1.5"], "optim.wd_floor: must be in (0, 1]", None),
    ("train-perturb-without-cycles", [*TRAIN, "--set", "optim.perturb=0.25"], "only schedule cyclic has them", None),
    ("train-perturb-negative", [*TRAIN, "--set", "optim.schedule=cyclic", "--set", "optim.cycle_steps=4",
                                "--set", "optim.perturb=-0.1"], "optim.perturb/perturb_final: must be in [0, 10]", None),
    ("train-chain-without-cycles", [*TRAIN, "--tokens", "2048", "--set", "objective.kind=chain"],
     "objective.kind=chain distills each cycle from the one before: it needs optim.schedule=cyclic", None),
    ("train-chain-from-zero", [*TRAIN, "--set", "objective.kind=chain", "--set", "objective.chain_from=0"],
     "objective.chain_from: must be >= 1", None),
    ("train-chain-with-teachers", [*TRAIN, "--set", "objective.kind=chain", "--set", 'objective.teachers=["{run}"]'],
     "only objective.kind=distill has teachers", None),
    ("train-drop-path-one", [*TRAIN, "--set", "model.drop_path=1"], "model.drop_path: must be in [0, 1)", None),
    ("train-init-unknown", [*TRAIN, "--set", "model.init=xavier"], "model.init: must be gpt2 or record", None),
    ("train-augment-replace-one", [*TRAIN, "--set", "train.augment_replace=1"],
     "train.augment_replace: must be in [0, 1)", None),
    ("train-swa-longer-than-run", [*TRAIN, "--tokens", "2048", "--set", "optim.swa_epochs=1000"],
     "SWA epochs of", None),
    ("train-swa-with-cycles", [*TRAIN, "--set", "optim.schedule=cyclic", "--set", "optim.cycle_steps=4",
                               "--set", "optim.swa_epochs=1"], "optim.swa_epochs", None),
    ("train-swa-floor-zero", [*TRAIN, "--set", "optim.swa_floor=0"], "optim.swa_floor: must be in (0, 1]", None),
    ("train-muon-orth-unknown", [*TRAIN, "--set", "optim.optimizer=muon", "--set", "optim.muon_orth=svd"],
     "optim.muon_orth: must be newton-schulz or polar-express", None),
    ("train-muon-row-norm-without-muon", [*TRAIN, "--set", "optim.muon_row_norm=true"],
     "shape Muon's update: set optim.optimizer=muon", None),
    ("train-muon-momentum-start-one", [*TRAIN, "--set", "optim.optimizer=muon", "--set",
                                       "optim.muon_momentum_start=1"], "optim.muon_momentum_start: must be in [0, 1)",
     None),
    ("train-iha-missing-layer", [*TRAIN, "--set", "model.iha=1,9"], "model.iha: layer 9 does not exist", None),
    ("train-recurrence-without-loop", [*TRAIN, "--set", "model.loop_backprop=last"],
     "'last' truncates backprop through the looped passes: set model.loop_layers", None),
    ("train-recurrence-loop-not-from-zero", [*TRAIN, "--set", "model.loop_backprop=last", "--set",
                                             "model.loop_layers=1:2"], "'last' needs a loop from layer 0", None),
    ("train-xsa-learn-without-xsa", [*TRAIN, "--set", "model.xsa_learn=true"], "model.xsa_learn", None),
    ("train-augment-offset-one", [*TRAIN, "--set", "train.augment_offset=1"],
     "train.augment_offset: must be in [0, 1)", None),
    ("train-augment-offset-beyond-window", [*TRAIN, "--set", "train.augment_offset=0.2", "--set",
                                            "train.augment_offset_max=100000"], "train.augment_offset_max: must be below",
     None),
    ("ensemble-prior-top-k-above-members", [*ENS, "--runs", "{run}", "--prior", "--top-k", "2"],
     "--top-k: K must be in 1..1 (the members)", None),
    ("ensemble-prior-top-k-zero", [*ENS, "--runs", "{run}", "--prior", "--top-k", "0"], "--top-k: K must be in 1..1", None),
    ("ensemble-top-k-without-prior", [*ENS, "--runs", "{run}", "--top-k", "1"], "add --prior", None),
    ("ensemble-prior-without-members", [*ENS, "--members", "2", "--prior"], "--prior weighs existing members", None),
    ("ensemble-prior-no-snapshots", [*ENS, "--snapshots", "{run}", "--prior"], "has no snapshots", None),
    ("recipe-population-no-trajectories", ["recipe", "population", "--data", "{store}", "--out", "{tmp}/o",
                                           "--results", "{tmp}/res", "--option", "trajectories=0"],
     "trajectories, cycles and members must be >= 1", None),
    ("recipe-population-unknown-option", ["recipe", "population", "--data", "{store}", "--out", "{tmp}/o",
                                          "--option", "cyclez=3"], "unknown option 'cyclez'", None),
    # -- ablate (issue 48) ------------------------------------------------------------------------------
    ("ablate-change-malformed", [*ABL, "--change", "nocolon"], "write NAME:FIELD=VALUE", None),
    ("ablate-change-unknown-stack", [*ABL, "--change", "x:@record"], "unknown stack 'record'", None),
    ("ablate-change-unknown-field", [*ABL, "--change", "x:model.layers=3"], "unknown config field 'model.layers'",
     None),
    ("ablate-change-bad-value", [*ABL, "--change", "x:model.drop_path=1.5"], "model.drop_path: must be in [0, 1)",
     None),
    ("ablate-changes-conflict", [*ABL, "--change", "a:model.mlp=swiglu", "--change", "b:model.mlp=relu2"],
     "cannot be stacked", None),
    ("ablate-change-reserved", [*ABL, "--change", "baseline:model.mlp=swiglu"], "is reserved", None),
    ("ablate-change-seed", [*ABL, "--change", "s:train.seed=3"], "cannot be ablated", None),
    ("ablate-no-reference", ABL[:-2] + ["--change", "a:model.mlp=swiglu"], "one of the arguments --reference", None),
    ("ablate-reference-missing", [*ABL[:-1], "{tmp}/nowhere", "--change", "a:model.mlp=swiglu"], "no run store at",
     None),
    ("ablate-reference-without-standard-runs", [*ABL[:-1], "{results}", "--change", "a:model.mlp=swiglu"],
     "a reference law needs 3", None),
    ("ablate-seeds-zero", [*ABL, "--change", "a:model.mlp=swiglu", "--seeds", "0"], "--seeds", None),
    ("train-missing-store", [*TRAIN[:2], "{tmp}/nowhere", *TRAIN[3:]], "no token store at", None),
    ("train-store-is-file", [*TRAIN[:2], "{tmp}/f", *TRAIN[3:]], "no token store at", write("f", "x")),
    ("train-store-empty-folder", [*TRAIN[:2], "{tmp}/d", *TRAIN[3:]], "no manifest.json", mkdir("d")),
    ("train-unknown-preset", [*TRAIN, "--preset", "huge"], "unknown preset 'huge'", None),
    ("train-unknown-option", [*TRAIN, "--learning-rate", "1"], "unrecognized arguments: --learning-rate", None),
    ("train-depth-beyond-memory", [*TRAIN, "--set", "model.depth=100000"],
     "model.depth=100000 (width 3,200,000) makes a model of more than", None),
    ("train-depth-23-digits", [*TRAIN, "--set", "model.depth=10000000000000000000000"],
     "is beyond what a tensor dimension holds", None),
    ("train-seed-beyond-64-bits", [*TRAIN, "--seed", str(2**64)], "is not a seed", None),
    ("train-set-seed-beyond-64-bits", [*TRAIN, "--set", f"train.seed={2**70}"], f"train.seed {2**70} is not a seed",
     None),
    ("train-set-epochs-zero", [*TRAIN, "--set", "train.epochs=0"], "--set train.epochs=0 sets no horizon", None),
    ("train-set-tokens-zero", [*TRAIN, "--set", "train.tokens=0"], "--set train.tokens=0 sets no horizon", None),
    ("train-set-tokens-per-param-zero", [*TRAIN, "--set", "train.tokens_per_param=0.0"], "sets no horizon", None),
    ("train-set-lr-infinity", [*TRAIN, "--set", "optim.lr=Infinity"], "optim.lr: expected a finite number", None),
    ("train-set-lr-nan", [*TRAIN, "--set", "optim.lr=NaN"], "optim.lr: expected a finite number", None),
    ("train-set-lr-negative", [*TRAIN, "--set", "optim.lr=-1"], "optim.lr: must be > 0", None),
    ("train-set-lr-word", [*TRAIN, "--set", "optim.lr=fast"], "optim.lr: expected float, got 'fast'", None),
    ("train-set-lr-list", [*TRAIN, "--set", "optim.lr=[1]"], "optim.lr: expected float", None),
    ("train-tracker-unknown", [*TRAIN, "--tracker", "mlflow"], "invalid choice: 'mlflow'", None),
    ("train-set-tracker-unknown", [*TRAIN, "--set", "train.tracker=mlflow"], "train.tracker: must be none, tensorboard or "
     "wandb", None),
    ("train-set-unknown-section", [*TRAIN, "--set", "optimizer.lr=1"], "unknown config section 'optimizer'", None),
    ("train-set-unknown-field", [*TRAIN, "--set", "model.layers=3"], "unknown config field 'model.layers'", None),
    ("train-set-no-equals", [*TRAIN, "--set", "optim.lr"], "is not of the form FIELD=VALUE", None),
    ("train-set-no-field", [*TRAIN, "--set", "=3"], "is not of the form FIELD=VALUE", None),
    ("train-set-too-deep", [*TRAIN, "--set", "model.depth.x=1"], "unknown config section 'depth'", None),
    ("train-set-section-scalar", [*TRAIN, "--set", "model=3"], "expected an object", None),
    ("train-set-depth-float", [*TRAIN, "--set", "model.depth=2.5"], "model.depth: expected int", None),
    ("train-set-depth-bool", [*TRAIN, "--set", "model.depth=true"], "model.depth: expected int", None),
    ("train-set-depth-zero", [*TRAIN, "--set", "model.depth=0"], "model.depth: must be >= 1", None),
    ("train-set-teachers-string", [*TRAIN, "--set", "objective.teachers=x"], "expected a list", None),
    ("train-set-tokens-negative", [*TRAIN, "--set", "train.tokens=-5"], "must be >= 0", None),
    ("train-config-two-horizons", [*TRAIN, "--config", "{tmp}/c.json"], "set at most one horizon",
     write("c.json", '{"train": {"epochs": 1, "tokens": 100000}}')),
    ("train-set-window-pattern", [*TRAIN, "--set", "model.window_pattern=SX"], "model.window_pattern", None),
    ("train-set-loop-layers", [*TRAIN, "--set", "model.loop_layers=1-2"], "model.loop_layers", None),
    ("train-set-value-embed", [*TRAIN, "--set", "model.value_embed=0,9"], "layer 9 does not exist", None),
    ("train-set-mix-without-store", [*TRAIN, "--set", "mix.frac=0.5"], "mix.frac > 0 needs a token store", None),
    ("train-set-distill-no-teacher", [*TRAIN, "--set", "objective.kind=distill"], "needs at least one teacher",
     None),
    ("train-vocab-mismatch", [*TRAIN, "--set", "model.vocab_size=999"], "vocabulary mismatch", None),
    ("train-seq-len-too-long", [*TRAIN, "--set", "model.seq_len=4096"], "fewer than one step needs", None),
    ("train-missing-init-source", [*TRAIN, "--set", "init.source={tmp}/nowhere"], "is not a run directory (no config.json)", None),
    ("train-missing-mix-store", [*TRAIN, "--set", "mix.store={tmp}/nowhere", "--set", "mix.frac=0.5"],
     "no token store at", None),
    ("train-mix-store-other-tokenizer", [*TRAIN, "--set", "mix.store={tmp}/store", "--set", "mix.frac=0.5"],
     "have different tokenizers", store_copy(edit_manifest(lambda m: m["tokenizer"].update(sha256="0" * 64)))),
    ("train-missing-teacher", [*TRAIN, "--set", "objective.kind=distill", "--set",
                               'objective.teachers=["{tmp}/nowhere"]'], "not a run directory", None),
    ("train-epochs-zero", [*TRAIN, "--epochs", "0"], "--epochs must be a finite number > 0", None),
    ("train-epochs-negative", [*TRAIN, "--epochs", "-1"], "--epochs must be a finite number > 0", None),
    ("train-epochs-inf", [*TRAIN, "--epochs", "inf"], "--epochs must be a finite number > 0", None),
    ("train-epochs-nan", [*TRAIN, "--epochs", "nan"], "--epochs must be a finite number > 0", None),
    ("train-epochs-word", [*TRAIN, "--epochs", "two"], "invalid float value: 'two'", None),
    ("train-tokens-zero", [*TRAIN, "--tokens", "0"], "--tokens: '0' is not a positive whole number", None),
    ("train-tpp-nan", [*TRAIN, "--tokens-per-param", "nan"], "--tokens-per-param must be a finite number", None),
    ("train-two-horizons", [*TRAIN, "--epochs", "1", "--tokens", "2M"], "not allowed with argument", None),
    ("train-set-missing-value", [*TRAIN, "--set"], "argument --set: expected one argument", None),
    ("train-set-mlp-number", [*TRAIN, "--set", "model.mlp=5"], "model.mlp: expected str, got 5", None),
    ("train-set-device-word", [*TRAIN, "--set", "train.device=gpu"], "train.device: must be auto, cpu or cuda", None),
    ("train-set-tags-number", [*TRAIN, "--set", "tags=5"], "config field tags: expected dict", None),
    ("train-seed-word", [*TRAIN, "--seed", "x"], "invalid int value: 'x'", None),
    ("train-device-choice", [*TRAIN, "--device", "tpu"], "invalid choice: 'tpu'", None),
    ("train-threads-negative", [*TRAIN, "--threads", "-2"], "argument --threads: must be >= 1", None),
    ("train-threads-zero", [*TRAIN, "--threads", "0"], "argument --threads: must be >= 1", None),
    ("train-init-other-tokenizer", [*TRAIN_OTHER, "--init", "{run}"], "tokenizer mismatch: init.source", other_store),
    ("train-teacher-other-tokenizer", [*TRAIN_OTHER, "--set", 'objective.kind="distill"', "--set",
                                       'objective.teachers=["{run}"]'], "tokenizer mismatch: objective.teachers",
     other_store),
    ("train-init-other-architecture", [*TRAIN, "--init", "{run}", "--set", "model.depth=3"],
     "do not fit the model: ", None),
    ("train-init-hf-folder-without-prefix", [*TRAIN, "--init", "{tmp}/bert"], "holds a Hugging Face model",
     write("bert/config.json", '{"model_type": "bert", "vocab_size": 300}')),
    ("train-out-name-too-long", [*TRAIN[:4], "{tmp}/" + "r" * 300, *TRAIN[5:]], "a name in it is 300 bytes long", None),
    ("train-out-path-too-long", [*TRAIN[:4], "{tmp}/" + "/".join(["r" * 200] * 21), *TRAIN[5:]],
     "the path is longer than 4095 bytes", None),
    ("train-results-name-too-long", [*TRAIN[:6], "{tmp}/" + "s" * 256], "a name in it is 256 bytes long", None),
    ("train-resume-complete-damaged-best", ["train", "--resume", "{tmp}/run"], "best.safetensors is damaged",
     run_copy(flip_best)),
    ("train-threads-negative-set", [*TRAIN, "--set", "train.threads=-2"], "train.threads: must be >= 0", None),
    ("train-config-array", [*TRAIN, "--config", "{tmp}/c.json"], "must hold a JSON object, not a list",
     write("c.json", "[1, 2]")),
    ("train-config-invalid-json", [*TRAIN, "--config", "{tmp}/c.json"], "is not valid JSON",
     write("c.json", '{"model": ')),
    ("train-config-missing", [*TRAIN, "--config", "{tmp}/c.json"], "cannot read config file", None),
    ("train-config-folder", [*TRAIN, "--config", "{tmp}/c"], "cannot read config file", mkdir("c")),
    ("train-config-unknown-key", [*TRAIN, "--config", "{tmp}/c.json"], "unknown config field modle",
     write("c.json", '{"modle": {"depth": 2}}')),
    ("train-config-unknown-nested", [*TRAIN, "--config", "{tmp}/c.json"], "unknown config field model.deep",
     write("c.json", '{"model": {"deep": 2}}')),
    ("train-config-wrong-type", [*TRAIN, "--config", "{tmp}/c.json"], "model.depth: expected int",
     write("c.json", '{"model": {"depth": "two"}}')),
    ("train-config-section-scalar", [*TRAIN, "--config", "{tmp}/c.json"], "expected an object",
     write("c.json", '{"optim": 5}')),
    ("train-config-not-utf8", [*TRAIN, "--config", "{tmp}/c.json"], "is not UTF-8 text",
     write("c.json", b'{"model": "\xff"}')),
    ("train-config-data-number", [*TRAIN, "--config", "{tmp}/c.json"], "config field data: expected str, got 5",
     write("c.json", '{"data": 5}')),
    ("train-out-under-file", [*TRAIN[:4], "{tmp}/f/r", *TRAIN[5:]], "f is a file, not a folder", write("f", "x")),
    ("train-out-is-file", [*TRAIN[:4], "{tmp}/f", *TRAIN[5:]], "exists and is not a folder", write("f", "x")),
    ("train-out-holds-run", [*TRAIN[:4], "{run}", *TRAIN[5:]], "already holds a run", None),
    ("train-results-is-file", [*TRAIN[:6], "{tmp}/f"], "cannot open the run store", write("f", "x")),
    ("train-store-manifest-json", DAMAGED, "damaged or not a scarce manifest",
     store_copy(lambda d: (d / "manifest.json").write_text("{"))),
    ("train-store-manifest-edited", DAMAGED, "the manifest says",
     store_copy(edit_manifest(lambda m: set_ds(m, "splits.train.tokens", 7000)))),
    ("train-store-manifest-version", DAMAGED, "format_version 99",
     store_copy(edit_manifest(lambda m: set_ds(m, "format_version", 99)))),
    ("train-store-manifest-dtype", DAMAGED, "damaged or not a scarce manifest",
     store_copy(edit_manifest(lambda m: set_ds(m, "dtype", "float128x")))),
    ("train-store-manifest-no-split", DAMAGED, "damaged or not a scarce manifest",
     store_copy(edit_manifest(lambda m: m["splits"].pop("val")))),
    ("train-store-manifest-array", DAMAGED, "a JSON list, not an object",
     store_copy(lambda d: (d / "manifest.json").write_text("[]"))),
    ("train-store-manifest-vocab-string", DAMAGED, "tokenizer.vocab_size is '300'",
     store_copy(edit_manifest(lambda m: set_ds(m, "tokenizer.vocab_size", "300")))),
    ("train-store-manifest-eot", DAMAGED, "tokenizer.eot_id is 5000",
     store_copy(edit_manifest(lambda m: set_ds(m, "tokenizer.eot_id", 5000)))),
    ("train-store-bin-truncated", DAMAGED, "holds 6,000 bytes but the manifest says 12,000",
     store_copy(truncate("train.bin"))),
    ("train-store-bin-missing", DAMAGED, "lacks val.bin", store_copy(rm("val.bin"))),
    ("train-store-no-tokenizer", DAMAGED, "lacks tokenizer.json", store_copy(rm("tokenizer.json"))),
    ("train-store-token-beyond-vocab", DAMAGED, "does not match its sha256", store_copy(token_beyond_vocab)),
    # -- train --resume --------------------------------------------------------------------------------
    ("resume-with-out", ["train", "--resume", "{run}", "--out", "{tmp}/r"], "--resume takes the run directory alone",
     None),
    ("resume-with-data", ["train", "--resume", "{run}", "--data", "{store}"], "--resume takes the run directory",
     None),
    ("resume-missing-dir", ["train", "--resume", "{tmp}/nowhere"], "not a run directory", None),
    ("resume-file", ["train", "--resume", "{tmp}/f"], "not a run directory", write("f", "x")),
    ("resume-empty-dir", ["train", "--resume", "{tmp}"], "not a run directory", None),
    ("resume-config-invalid-json", ["train", "--resume", "{tmp}/bad"], "config.json is not valid JSON",
     bad_run("{not json")),
    ("resume-config-array", ["train", "--resume", "{tmp}/bad"], "expected an object, got list", bad_run("[]")),
    ("resume-config-unknown-key", ["train", "--resume", "{tmp}/bad"], "unknown config field colour",
     bad_run('{"colour": "red"}')),
    ("resume-config-not-utf8", ["train", "--resume", "{tmp}/bad"], "config.json is not UTF-8 text",
     bad_run(b'{"data": "\xff"}')),
    ("resume-config-bad-value", ["train", "--resume", "{tmp}/bad"], "optim.lr: must be > 0",
     bad_run('{"data": "x", "optim": {"lr": -1}}')),
    ("resume-config-no-data", ["train", "--resume", "{tmp}/bad"], "names no token store", bad_run("{}")),
    ("resume-store-gone", ["train", "--resume", "{tmp}/run"], "no token store at",
     run_copy(edit_config(lambda c: set_ds(c, "data", "/nowhere/store")))),
    ("resume-vocab-mismatch", ["train", "--resume", "{tmp}/run"], "vocabulary mismatch",
     run_copy(edit_config(lambda c: set_ds(c, "model.vocab_size", 999)))),
    ("resume-checkpoints-damaged", ["train", "--resume", "{tmp}/run"], "no usable checkpoint",
     run_copy(lambda d: [rm(str(p.relative_to(d)))(d) for p in d.glob("checkpoints/step_*/state.json")])),
    # -- runs ------------------------------------------------------------------------------------------
    ("runs-where-no-equals", ["runs", "--where", "model.depth"], "--where 'model.depth' is not of the form", None),
    ("runs-where-no-field", ["runs", "--where", "=4"], "--where '=4' is not of the form", None),
    ("runs-status-choice", ["runs", "--status", "finished"], "invalid choice: 'finished'", None),
    ("runs-results-name-too-long", ["runs", "--results", "{tmp}/" + "s" * 300], "a name in it is 300 bytes long", None),
    ("runs-unknown-option", ["runs", "--sort", "val_loss"], "unrecognized arguments: --sort", None),
    ("runs-results-is-file", ["runs", "--results", "{tmp}/f"], "cannot open the run store", write("f", "x")),
    ("runs-results-not-sqlite", ["runs", "--results", "{tmp}/res"], "cannot open the run store",
     write("res/runs.db", "this is not a database\n" * 100)),
    ("runs-results-db-folder", ["runs", "--results", "{tmp}/res"], "cannot open the run store", mkdir("res/runs.db")),
    ("runs-csv-is-folder", ["runs", "--results", "{results}", "--csv", "{tmp}/d"], "d is a folder; give the path",
     mkdir("d")),
    ("runs-curves-is-folder", ["runs", "--results", "{tmp}/res", "--curves", "{tmp}/d"], "d is a folder",
     mkdir("d")),
    ("runs-csv-under-file", ["runs", "--results", "{tmp}/res", "--csv", "{tmp}/f/runs.csv"],
     "f is a file, not a folder", write("f", "x")),
    # -- fit -------------------------------------------------------------------------------------------
    ("fit-no-fit", ["fit"], "choose a fit", None),
    ("fit-unknown-fit", ["fit", "exponential"], "invalid choice: 'exponential'", None),
    ("fit-csv-missing", PL, "p.csv: no such file", None),
    ("fit-csv-folder", PL, "cannot read as CSV", mkdir("p.csv")),
    ("fit-csv-empty", PL, "empty file", write("p.csv", "")),
    ("fit-csv-header-only", PL, "0 data row(s); this fit needs at least 3", write("p.csv", "params,loss\n")),
    ("fit-csv-missing-column", PL, "missing column 'loss'", points_csv("params,val", ["1,2", "2,3", "3,4"])),
    ("fit-csv-not-number", PL, "line 3: column 'loss' has 'abc', not a number",
     points_csv("params,loss", ["1e6,4", "2e6,abc", "4e6,3"])),
    ("fit-csv-negative", PL, "must be a positive finite number, got '-3'",
     points_csv("params,loss", ["1e6,4", "2e6,-3", "4e6,3"])),
    ("fit-csv-inf", PL, "got 'inf'", points_csv("params,loss", ["1e6,4", "2e6,inf", "4e6,3"])),
    ("fit-csv-nan", PL, "got 'nan'", points_csv("params,loss", ["1e6,4", "nan,3.5", "4e6,3"])),
    ("fit-csv-not-utf8", PL, "cannot read as CSV", write("p.csv", b"params,loss\n\xff\xfe,1\n")),
    ("fit-csv-short-row", PL, "column 'loss' has '', not a number", points_csv("params,loss", ["1e6", "2,3", "3,4"])),
    ("fit-missing-x", PL[:4] + PL[6:], "the following arguments are required: --x", None),
    ("fit-bootstrap-negative", [*PL[:-1], "-1"], "--bootstrap must be >= 0", GOOD_PL),
    ("fit-bootstrap-word", [*PL[:-1], "many"], "invalid int value: 'many'", None),
    ("fit-plot-folder", [*PL, "--plot", "{tmp}/d"], "d is a folder; give the path of a file", both(GOOD_PL, mkdir("d"))),
    ("fit-plot-under-file", [*PL, "--plot", "{tmp}/f/fit.png"], "f is a file, not a folder",
     both(GOOD_PL, write("f", "x"))),
    ("fit-joint-too-few", ["fit", "joint", "--csv", "{tmp}/p.csv"], "this fit needs at least 9",
     points_csv("params,members,loss", ["1e6,1,4", "1e6,2,3.9", "1e6,4,3.8"])),
    ("fit-joint-columns", ["fit", "joint", "--csv", "{tmp}/p.csv"], "missing column 'members'",
     points_csv("params,loss", ["1e6,4"])),
    ("fit-efficiency-no-loss", ["fit", "efficiency", "--reference", "{tmp}/p.csv", "--tokens", "1e6"],
     "required: --loss", None),
    ("fit-efficiency-loss-word", ["fit", "efficiency", "--reference", "{tmp}/p.csv", "--tokens", "1e6",
                                  "--loss", "low"], "invalid float value: 'low'", None),
    ("fit-efficiency-loss-nan", ["fit", "efficiency", "--reference", "{tmp}/p.csv", "--tokens", "1e6",
                                 "--loss", "nan", "--bootstrap", "0"], "--loss must be a positive finite number",
     points_csv("tokens,loss", ["1e6,4.0", "2e6,3.6", "4e6,3.3", "8e6,3.1"])),
    ("fit-efficiency-tokens-zero", ["fit", "efficiency", "--reference", "{tmp}/p.csv", "--tokens", "0",
                                    "--loss", "3.5", "--bootstrap", "0"], "--tokens must be a positive finite number",
     points_csv("tokens,loss", ["1e6,4.0", "2e6,3.6", "4e6,3.3", "8e6,3.1"])),
    ("fit-efficiency-reference-missing", ["fit", "efficiency", "--reference", "{tmp}/p.csv", "--tokens", "1e6",
                                          "--loss", "3"], "p.csv: no such file", None),
    ("fit-chinchilla-method", [*CHIN, "--method", "4"], "invalid choice: 4", None),
    ("fit-chinchilla-no-tokens", CHIN, "needs a column 'tokens' or 'flops'", points_csv("params,loss", ["1,2"])),
    ("fit-chinchilla-too-few", CHIN, "this fit needs at least 6",
     points_csv("params,tokens,loss", CHIN_ROWS[:5])),
    ("fit-chinchilla-drop-negative", [*CHIN, "--drop-highest-loss", "-1"], "--drop-highest-loss must be >= 0",
     points_csv("params,tokens,loss", CHIN_ROWS)),
    ("fit-chinchilla-drop-too-many", [*CHIN, "--drop-highest-loss", "3"], "this fit needs at least 9",
     points_csv("params,tokens,loss", CHIN_ROWS)),
    ("fit-data-constrained-columns", ["fit", "data-constrained", "--csv", "{tmp}/p.csv"],
     "missing column 'unique_tokens'", points_csv("tokens,loss", ["1,2"])),
    ("fit-data-constrained-too-few", ["fit", "data-constrained", "--csv", "{tmp}/p.csv"], "needs at least 5",
     points_csv("unique_tokens,tokens,loss", ["1e6,1e6,4", "1e6,2e6,3.9"])),
    ("fit-plan-no-law", ["fit", "plan", "--budget", "1e18"], "one of the arguments --csv --law-json is required",
     None),
    ("fit-plan-csv-and-law", ["fit", "plan", "--csv", "a.csv", "--law-json", "b.json"], "not allowed with", None),
    ("fit-plan-law-missing", [*PLAN, "--budget", "1e18"], "law.json: no such file", None),
    ("fit-plan-law-invalid", [*PLAN, "--budget", "1e18"], "not the JSON of `scarce fit chinchilla",
     write("law.json", "{")),
    ("fit-plan-law-array", [*PLAN, "--budget", "1e18"], "a JSON list, not an object", write("law.json", "[1, 2]")),
    ("fit-plan-law-empty", [*PLAN, "--budget", "1e18"], "lacks E, A, B, alpha, beta", write("law.json", "{}")),
    ("fit-plan-law-word", [*PLAN, "--budget", "1e18"], "not the JSON of", write("law.json", '{"E": {"value": "x"}}')),
    ("fit-plan-law-number", [*PLAN, "--budget", "1e18"], "not the JSON of", write("law.json", '{"E": 1.7}')),
    ("fit-plan-law-nan", [*PLAN, "--budget", "1e18"], "E not a finite number",
     write("law.json", LAW.replace('{"value": 1.7', '{"value": "nan"'))),
    ("fit-plan-nothing", PLAN, "give at least one compute budget, target loss or target CORE", write("law.json", LAW)),
    ("fit-plan-core-no-map", [*PLAN, "--target-core", "0.25"], "a target CORE needs a CORE map", write("law.json", LAW)),
    ("fit-plan-core-range", [*PLAN, "--target-core", "2", "--core-map", "{tmp}/p.csv"], "target CORE must be in (0, 1]",
     both(write("law.json", LAW), points_csv("loss,core", ["3.0,0.1", "2.9,0.12", "2.8,0.15"]))),
    ("fit-plan-core-map-column", [*PLAN, "--target-core", "0.2", "--core-map", "{tmp}/p.csv"], "missing column 'core'",
     both(write("law.json", LAW), points_csv("loss,CORE", ["3.0,0.1", "2.9,0.12", "2.8,0.15"]))),
    ("fit-plan-core-map-rising", [*PLAN, "--target-core", "0.2", "--core-map", "{tmp}/p.csv"],
     "CORE does not fall with val loss", both(write("law.json", LAW), points_csv("loss,core", ["3.0,0.2", "2.9,0.12",
                                                                                                "2.8,0.1"]))),
    ("fit-plan-core-map-flat", [*PLAN, "--target-core", "0.2", "--core-map", "{tmp}/p.csv"],
     "CORE does not move with val loss in these runs",
     both(write("law.json", LAW), points_csv("loss,core", ["3.0,0.1", "2.9,0.1", "2.8,0.1", "2.7,0.1"]))),
    ("fit-plan-core-map-noise", [*PLAN, "--target-core", "0.2", "--core-map", "{tmp}/p.csv"],
     "CORE does not fall with val loss clearly in these runs",
     both(write("law.json", LAW), points_csv("loss,core", ["3.0,0.11", "2.9,0.13", "2.8,0.1", "2.7,0.13"]))),
    ("fit-plan-budget-negative", [*PLAN, "--budget=-1e18"], "budget must be a positive finite number", write("law.json", LAW)),
    ("fit-plan-budget-nan", [*PLAN, "--budget", "nan"], "budget must be a positive finite number of FLOPs, got nan", write("law.json", LAW)),
    ("fit-plan-budget-inf", [*PLAN, "--budget", "inf"], "budget must be a positive finite number of FLOPs, got inf", write("law.json", LAW)),
    ("fit-plan-target-below-e", [*PLAN, "--target-loss", "1.0"], "at or below the fitted asymptote",
     write("law.json", LAW)),
    ("fit-plan-target-nan", [*PLAN, "--target-loss", "nan"], "target loss must be a positive finite number", write("law.json", LAW)),
    ("fit-plan-target-negative", [*PLAN, "--target-loss=-2"], "target loss must be a positive finite number",
     write("law.json", LAW)),
    ("fit-plan-flops-nan", [*PLAN, "--budget", "1e18", "--flops-per-s", "nan"],
     "flops_per_s must be a positive finite number, got nan", write("law.json", LAW)),
    ("fit-plan-mfu-zero", [*PLAN, "--budget", "1e18", "--mfu", "0"], "MFU must be in (0, 1]",
     write("law.json", LAW)),
    ("fit-plan-mfu-nan", [*PLAN, "--budget", "1e18", "--mfu", "nan"], "MFU must be in (0, 1]",
     write("law.json", LAW)),
    ("fit-plan-flops-negative", [*PLAN, "--budget", "1e18", "--flops-per-s", "-5"], "flops_per_s must be a positive finite",
     write("law.json", LAW)),
    # -- ensemble ----------------------------------------------------------------------------------------
    ("ensemble-no-out", ["ensemble", "--members", "2"], "required: --out", None),
    ("ensemble-no-members", ENS, "--members K is required", None),
    ("ensemble-runs-and-snapshots", [*ENS, "--runs", "{run}", "--snapshots", "{run}"],
     "give --runs or --snapshots, not both", None),
    ("ensemble-out-is-file", ["ensemble", "--out", "{tmp}/f", "--runs", "{run}"], "exists and is not a folder",
     write("f", "x")),
    ("ensemble-out-under-file", ["ensemble", "--out", "{tmp}/f/e", "--runs", "{run}"], "f is a file, not a folder",
     write("f", "x")),
    ("ensemble-members-zero", [*ENS, "--members", "0", "--data", "{store}"], "--members is out of range: 0", None),
    ("ensemble-members-word", [*ENS, "--members", "two"], "invalid int value: 'two'", None),
    ("ensemble-workers-zero", [*ENS, "--members", "2", "--workers", "0"], "argument --workers: must be >= 1", None),
    ("ensemble-alpha-range", [*ENS, "--members", "2", "--alpha", "1.5"], "--alpha is out of range", None),
    ("ensemble-temperature-zero", [*ENS, "--members", "2", "--temperature", "0"], "--temperature is out of range",
     None),
    ("ensemble-synthetic-frac", [*ENS, "--members", "2", "--synthetic-frac", "-0.5"], "--synthetic-frac",
     None),
    ("ensemble-snapshot-every-zero", [*ENS, "--snapshot-every", "0"], "--snapshot-every is out of range", None),
    ("ensemble-seq-student-zero", [*ENS, "--members", "2", "--seq-student", "0"], "--seq-student", None),
    ("ensemble-combine-choice", [*ENS, "--runs", "{run}", "--combine", "median"], "invalid choice: 'median'", None),
    ("ensemble-seed-mode-choice", [*ENS, "--members", "2", "--seed-mode", "all"], "invalid choice: 'all'", None),
    ("ensemble-no-data", [*ENS, "--members", "2"], "--data DIR is required", None),
    ("ensemble-missing-store", [*ENS, "--members", "2", "--data", "{tmp}/nowhere"], "no token store at", None),
    ("ensemble-vocab-mismatch", [*ENS, "--members", "2", "--data", "{store}", "--set", "model.vocab_size=999"],
     "vocabulary mismatch", None),
    ("ensemble-set-lr-infinity", [*ENS, "--members", "2", "--data", "{store}", "--set", "optim.lr=Infinity"],
     "expected a finite number", None),
    ("ensemble-missing-run", [*ENS, "--runs", "{tmp}/nowhere"], "not a run directory", None),
    ("ensemble-corrupt-run", [*ENS, "--runs", "{tmp}/bad"], "config.json is not valid JSON", bad_run("{")),
    ("ensemble-snapshots-missing-dir", [*ENS, "--snapshots", "{tmp}/nowhere"], "not a run directory", None),
    ("ensemble-run-store-gone", [*ENS, "--runs", "{tmp}/run"], "no token store at",
     run_copy(edit_config(lambda c: set_ds(c, "data", "/nowhere/store")))),
    ("ensemble-truncated-weights", [*ENS, "--runs", "{run}", "{tmp}/run"], "corrupt or truncated",
     run_copy(truncate("checkpoints/best.safetensors"))),
    ("ensemble-runs-other-tokenizers", [*ENS, "--runs", "{run}", "{tmp}/run"], "were trained with different tokenizers",
     run_copy(other_tokenizer)),
    ("ensemble-no-snapshots", [*ENS, "--snapshots", "{run}"], "has no snapshots", None),
    ("ensemble-eval-tokens-negative", [*ENS, "--runs", "{run}", "--eval-tokens", "-5"], "--eval-tokens must be >= 0", None),
    ("ensemble-missing-weights", [*ENS, "--runs", "{tmp}/run"], "does not exist",
     run_copy(rm("checkpoints/best.safetensors"))),
    # -- eval --------------------------------------------------------------------------------------------
    ("eval-nothing", [*EVAL], "give --run RUN_DIR or --ensemble DIR", None),
    ("eval-no-tasks", ["eval", "--run", "{run}"], "the following arguments are required: --tasks", None),
    ("eval-empty-tasks", ["eval", "--run", "{run}", "--tasks", ","], "--tasks names no task", None),
    ("eval-limit-zero", [*EVAL, "--run", "{run}", "--limit", "0"], "--limit must be >= 1", None),
    ("eval-missing-run", [*EVAL, "--run", "{tmp}/nowhere"], "not a run directory", None),
    ("eval-run-without-weights", [*EVAL, "--run", "{tmp}/run"], "has no weights",
     run_copy(rm("checkpoints/best.safetensors"))),
    ("eval-truncated-weights", [*EVAL, "--run", "{tmp}/run"], "corrupt or truncated",
     run_copy(truncate("checkpoints/best.safetensors"))),
    ("eval-ensemble-empty", [*EVAL, "--ensemble", "{tmp}"], "holds no ensemble.json", None),
    ("eval-ensemble-other-tokenizers", [*EVAL, "--ensemble", "{tmp}/e"], "were trained with different tokenizers",
     ensemble_of_other_tokenizers),
    ("eval-include-broken-yaml", [*EVAL, "--run", "{run}", "--include-path", "{tmp}/t"], "bad.yaml is not valid YAML at line",
     write("t/bad.yaml", "task: own\ndoc_to_text: [unclosed\n")),
    ("eval-include-yaml-list", [*EVAL, "--run", "{run}", "--include-path", "{tmp}/t"], "is not a task YAML",
     write("t/list.yaml", "- task: own\n")),
    # -- train --init and export -----------------------------------------------------------------------
    ("init-hf-missing", [*TRAIN, "--init", "hf:{tmp}/nowhere"], "cannot load the HF model config of hf:", None),
    ("init-hf-empty", [*TRAIN, "--init", "hf:"], "hf: names no model", None),
    ("init-hf-not-a-model", [*TRAIN, "--init", "hf:{tmp}/m"], "cannot load the HF model config", mkdir("m")),
    ("init-hf-unsupported", [*TRAIN, "--init", "hf:{tmp}/m"], "is a bert model; scarce starts from the gpt2 and llama",
     write("m/config.json", '{"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, '
                            '"num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 100}')),
    ("init-hf-architecture-override", [*TRAIN, "--init", "hf:{tmp}/m", "--set", "model.depth=3"],
     "model.depth: set by hf:", write("m/config.json", '{"model_type": "gpt2"}')),
    ("init-run-missing", [*TRAIN, "--init", "{tmp}/nowhere"], "is not a run directory (no config.json); give a scarce run folder or hf:", None),
    ("export-nothing", ["export", "--out", "{tmp}/x"], "give a run directory or an ensemble folder", None),
    ("export-no-out", ["export", "--run", "{run}"], "--out", None),
    ("export-format", ["export", "--run", "{run}", "--out", "{tmp}/x", "--format", "onnx"], "invalid choice: 'onnx'",
     None),
    ("export-missing-run", ["export", "--run", "{tmp}/nowhere", "--out", "{tmp}/x"], "not a run directory", None),
    ("export-out-not-empty", ["export", "--run", "{run}", "--out", "{tmp}/x"], "already exists and is not an empty "
     "folder", write("x/a", "keep")),
    ("export-out-file", ["export", "--run", "{run}", "--out", "{tmp}/x"], "exists and is not a folder", write("x", "f")),
    ("export-truncated-weights", ["export", "--run", "{tmp}/run", "--out", "{tmp}/x"], "corrupt or truncated",
     run_copy(truncate("checkpoints/best.safetensors"))),
    ("export-ensemble-empty", ["export", "--ensemble", "{tmp}", "--out", "{tmp}/x"], "holds no ensemble.json", None),
    # -- sample ------------------------------------------------------------------------------------------
    ("sample-seed-beyond-64-bits", [*SAMPLE, "--run", "{run}", "--seed", str(2**64)],
     f"--seed {2**64} is not a seed: give a whole number from 0 to 2^64 - 1", None),
    ("sample-seed-negative", [*SAMPLE, "--run", "{run}", "--seed", "-1"], "--seed -1 is not a seed", None),
    ("synth-seed-beyond-64-bits", [*SYNTH, "--run", "{run}", "--seed", "1" + "0" * 23], "is not a seed", None),
    ("sample-nothing", SAMPLE, "give --run RUN_DIR (one or more) or --ensemble DIR", None),
    ("sample-run-and-ensemble", [*SAMPLE, "--run", "{run}", "--ensemble", "{tmp}"], "give --run RUN_DIR", None),
    ("sample-temperature-negative", [*SAMPLE, "--run", "{run}", "--temperature", "-1"], "temperature must be a finite number >= 0",
     None),
    ("sample-temperature-nan", [*SAMPLE, "--run", "{run}", "--temperature", "nan"], "temperature must be a finite number >= 0", None),
    ("sample-top-k-negative", [*SAMPLE, "--run", "{run}", "--top-k", "-3"], "top-k must be >= 0", None),
    ("sample-top-p-zero", [*SAMPLE, "--run", "{run}", "--top-p", "0"], "top-p must be in (0, 1]", None),
    ("sample-tokens-zero", ["sample", "--run", "{run}", "--tokens", "0"], "--tokens: '0' is not a positive", None),
    ("sample-missing-run", [*SAMPLE, "--run", "{tmp}/nowhere"], "not a run directory", None),
    ("sample-corrupt-run", [*SAMPLE, "--run", "{tmp}/bad"], "config.json is not valid JSON", bad_run("{")),
    ("sample-truncated-weights", [*SAMPLE, "--run", "{tmp}/run"], "corrupt or truncated",
     run_copy(truncate("checkpoints/best.safetensors"))),
    ("sample-runs-other-tokenizers", [*SAMPLE, "--run", "{run}", "{tmp}/run"], "were trained with different tokenizers",
     run_copy(other_tokenizer)),
    ("sample-runs-two-vocabularies", [*SAMPLE, "--run", "{run}", "{tmp}/orun"], "the models have different vocabularies "
     "(300, 320)", run_of_another_vocabulary),
    ("sample-rows-beyond-memory", [*SAMPLE, "--run", "{run}", "--rows", "1000000000"],
     "1,000,000,000 rows decoded together need about", None),
    ("sample-ensemble-empty", [*SAMPLE, "--ensemble", "{tmp}"], "holds no ensemble.json", None),
    ("sample-ensemble-invalid-json", [*SAMPLE, "--ensemble", "{tmp}/e"], "ensemble.json is not valid JSON",
     write("e/ensemble.json", "{")),
    ("sample-ensemble-no-members", [*SAMPLE, "--ensemble", "{tmp}/e"], "ensemble.json lists no members",
     write("e/ensemble.json", '{"members": 5}')),
    ("sample-ensemble-array", [*SAMPLE, "--ensemble", "{tmp}/e"], "ensemble.json lists no members", write("e/ensemble.json", "[]")),
    ("sample-run-store-gone", [*SAMPLE, "--run", "{tmp}/run"], "no token store at",
     run_copy(edit_config(lambda c: set_ds(c, "data", "/nowhere/store")))),
    # -- synth -------------------------------------------------------------------------------------------
    ("synth-nothing", [*SYNTH], "give --run RUN_DIR (one or more) or --ensemble DIR", None),
    ("synth-no-out", ["synth", "--run", "{run}", "--tokens", "100"], "--out", None),
    ("synth-tokens-negative", ["synth", "--run", "{run}", "--out", "{tmp}/s", "--tokens", "-5"], "is not a count",
     None),
    ("synth-prefix-too-long", [*SYNTH, "--run", "{run}", "--mode", "conditioned", "--prefix-tokens", "63"],
     "leaves no room in the teachers' context of 64 tokens", None),
    ("synth-prefix-zero", [*SYNTH, "--run", "{run}", "--mode", "megadoc", "--prefix-tokens", "0"],
     "the prefix must be >= 1 token", None),
    ("synth-streams-zero", [*SYNTH, "--run", "{run}", "--streams", "0"], "synthetic streams must be a whole number",
     None),
    ("synth-generations-zero", [*SYNTH, "--run", "{run}", "--generations", "0"], "synthetic generations must be",
     None),
    ("synth-length-negative", [*SYNTH, "--run", "{run}", "--length", "-1"], "generation length must be >= 0", None),
    ("synth-length-beyond-tokens", ["synth", "--tokens", "200", "--out", "{tmp}/s", "--quiet", "--run", "{run}",
                                    "--length", "100000"], "a generation length of 100,000 tokens is more than the 200",
     None),
    ("synth-top-p-above-one", [*SYNTH, "--run", "{run}", "--top-p", "1.5"], "top-p must be in (0, 1]", None),
    ("synth-streams-beyond-memory", [*SYNTH, "--run", "{run}", "--streams", "1000000000"],
     "rows decoded together need about", None),
    ("synth-tokens-beyond-disk", ["synth", "--run", "{run}", "--out", "{tmp}/s", "--tokens", "1000000000000000000"],
     "do not fit in the", None),
    ("synth-unknown-mode", [*SYNTH, "--run", "{run}", "--mode", "rephrase"], "invalid choice: 'rephrase'", None),
    ("synth-data-not-a-store", [*SYNTH, "--run", "{run}", "--data", "{tmp}"], "is not a token store", None),
    ("synth-teacher-other-tokenizer", [*SYNTH, "--run", "{run}", "--data", "{tmp}/other"],
     "was trained with another tokenizer than", other_store),
    ("synth-missing-run", [*SYNTH, "--run", "{tmp}/nowhere"], "is not a run directory", None),
    ("synth-out-is-file", [*SYNTH, "--run", "{run}"], "--out {tmp}/s exists and is not a folder", write("s", "x")),
    ("synth-out-existing-store", ["synth", "--run", "{run}", "--tokens", "100", "--out", "{store}"],
     "already holds a token store made otherwise", None),
    ("synth-out-not-a-store", [*SYNTH, "--run", "{run}"], "already holds something that is not a token store",
     write("s/notes.txt", "keep")),
    ("synth-parts-other-settings", [*SYNTH, "--run", "{run}"], "holds a generation with other settings",
     write("s.parts/plan.json", "{}")),
    # -- sweep -------------------------------------------------------------------------------------------
    ("sweep-no-spec", ["sweep"], "the following arguments are required: spec", None),
    ("sweep-missing-toml", ["sweep", "{tmp}/s.toml"], "cannot read sweep spec", None),
    ("sweep-toml-folder", ["sweep", "{tmp}/s.toml"], "cannot read sweep spec", mkdir("s.toml")),
    ("sweep-toml-not-utf8", ["sweep", "{tmp}/s.toml"], "is not UTF-8 text", write("s.toml", b'name = "\xff"\n')),
    ("sweep-invalid-toml", ["sweep", "{tmp}/s.toml"], "is not valid TOML", sweep_toml("name = \n")),
    ("sweep-empty-toml", ["sweep", "{tmp}/s.toml"], "`name` is required", sweep_toml("")),
    ("sweep-name-number", ["sweep", "{tmp}/s.toml"], "`name` is required", sweep_toml("name = 5\ndata = 'x'\n")),
    ("sweep-no-data", ["sweep", "{tmp}/s.toml"], "`data` is required", sweep_toml('name = "s"\n')),
    ("sweep-unknown-key", ["sweep", "{tmp}/s.toml"], "unknown key 'grids'", sweep_toml(TOML + "[grids]\n")),
    ("sweep-grid-not-list", ["sweep", "{tmp}/s.toml"], "must be a non-empty list",
     sweep_toml(TOML + '[grid]\n"optim.lr" = 0.1\n')),
    ("sweep-grid-empty-list", ["sweep", "{tmp}/s.toml"], "must be a non-empty list",
     sweep_toml(TOML + '[grid]\n"optim.lr" = []\n')),
    ("sweep-set-not-table", ["sweep", "{tmp}/s.toml"], "`set` must be a table", sweep_toml(TOML + "set = 3\n")),
    ("sweep-points-not-list", ["sweep", "{tmp}/s.toml"], "`points` must be a list", sweep_toml(TOML + "points = 3\n")),
    ("sweep-grid-epochs-zero", ["sweep", "{tmp}/s.toml"], "sweep s: train.epochs=0 sets no horizon",
     sweep_toml(TOML + '[grid]\n"train.epochs" = [0, 1]\n')),
    ("sweep-set-tokens-zero", ["sweep", "{tmp}/s.toml"], "sweep s: train.tokens=0 sets no horizon",
     sweep_toml(TOML + '[set]\n"train.tokens" = 0\n')),
    ("sweep-branch-string", ["sweep", "{tmp}/s.toml"], "`branch` must be true or false, got 'false'",
     sweep_toml(TOML + 'branch = "false"\n')),
    ("sweep-preset-number", ["sweep", "{tmp}/s.toml"], "`preset` must be a string, got 3",
     sweep_toml(TOML + 'preset = 3\n')),
    ("sweep-out-number", ["sweep", "{tmp}/s.toml"], "`out` must be a string", sweep_toml(TOML + 'out = 3\n')),
    ("sweep-search-seed-word", ["sweep", "{tmp}/s.toml"], "[search] seed must be a whole number",
     sweep_toml(TOML + '[search]\nsamples = 2\nseed = "x"\n[search.space]\n"optim.lr" = [0.1]\n')),
    ("sweep-set-unknown-field", ["sweep", "{tmp}/s.toml"], "unknown config field 'model.layers'",
     sweep_toml(TOML + '[set]\n"model.layers" = 2\n')),
    ("sweep-set-lr-inf", ["sweep", "{tmp}/s.toml"], "optim.lr: expected a finite number",
     sweep_toml(TOML + '[set]\n"optim.lr" = inf\n')),
    ("sweep-unknown-preset", ["sweep", "{tmp}/s.toml"], "unknown preset 'huge'",
     sweep_toml(TOML + 'preset = "huge"\n')),
    ("sweep-missing-store", ["sweep", "{tmp}/s.toml"], "no token store at",
     sweep_toml('name = "s"\ndata = "nowhere"\n')),
    ("sweep-vocab-mismatch", ["sweep", "{tmp}/s.toml"], "vocabulary mismatch",
     sweep_toml(TOML + '[set]\n"model.vocab_size" = 999\n')),
    ("sweep-search-no-samples", ["sweep", "{tmp}/s.toml"], "[search] needs samples >= 1",
     sweep_toml(TOML + '[search]\nseed = 1\n[search.space]\n"optim.lr" = [0.1]\n')),
    ("sweep-search-bad-dim", ["sweep", "{tmp}/s.toml"], "search field optim.lr",
     sweep_toml(TOML + '[search]\nsamples = 2\n[search.space]\n"optim.lr" = "big"\n')),
    ("sweep-search-log-negative", ["sweep", "{tmp}/s.toml"], "search field optim.lr",
     sweep_toml(TOML + '[search]\nsamples = 2\n[search.space]\n"optim.lr" = {min = -1.0, max = 1.0, log = true}\n')),
    ("sweep-search-range-word", ["sweep", "{tmp}/s.toml"], "search field optim.lr",
     sweep_toml(TOML + '[search]\nsamples = 2\n[search.space]\n"optim.lr" = {min = "a", max = 1.0}\n')),
    ("sweep-search-min-above-max", ["sweep", "{tmp}/s.toml"], "min <= max",
     sweep_toml(TOML + '[search]\nsamples = 2\n[search.space]\n"optim.lr" = {min = 0.1, max = 0.01}\n')),
    ("sweep-points-unknown-field", ["sweep", "{tmp}/s.toml"], "unknown config field 'model.layers'",
     sweep_toml(TOML + '[[points]]\n"model.layers" = 1\n')),
    ("sweep-yaml", ["sweep", "{tmp}/s.yaml"], "give a .toml file or a Python function", None),
    ("sweep-missing-py", ["sweep", "{tmp}/s.py:make"], "no file", None),
    ("sweep-missing-module", ["sweep", "no_such_module_xyz:make"], "no module no_such_module_xyz", None),
    ("sweep-missing-function", ["sweep", "{tmp}/s.py:make"], "has no function make", write("s.py", "x = 1\n")),
    ("sweep-function-returns-number", ["sweep", "{tmp}/s.py:make"],
     "the function returned int", write("s.py", "def make():\n    return 5\n")),
    ("sweep-function-returns-none", ["sweep", "{tmp}/s.py:make"], "the function returned NoneType",
     write("s.py", "def make():\n    pass\n")),
    ("sweep-function-syntax-error", ["sweep", "{tmp}/s.py:make"], "s.py line 1: invalid syntax", write("s.py", "def make(:\n")),
    ("sweep-workers-zero", ["sweep", "{tmp}/s.toml", "--workers", "0"], "argument --workers: must be >= 1",
     sweep_toml(TOML)),
    ("sweep-threads-negative", ["sweep", "{tmp}/s.toml", "--threads", "-1"], "argument --threads: must be >= 1",
     sweep_toml(TOML)),
    ("sweep-executor-choice", ["sweep", "{tmp}/s.toml", "--executor", "slurm"], "invalid choice: 'slurm'", None),
    ("sweep-ray-address-local", ["sweep", "{tmp}/s.toml", "--ray-address", "x:1"], "a Ray address needs",
     sweep_toml(TOML)),
    # -- recipe ------------------------------------------------------------------------------------------
    ("recipe-unknown", ["recipe", "magic", "--data", "{store}", "--out", "{tmp}/o"], "invalid choice: 'magic'", None),
    ("recipe-no-data", ["recipe", "standard", "--out", "{tmp}/o"], "required: --data", None),
    ("recipe-option-no-equals", [*RECIPE, "--option", "members"], "--option 'members' is not of the form", None),
    ("recipe-option-unknown", [*RECIPE, "--option", "colour=red"], "unknown option 'colour'", None),
    ("recipe-set-no-equals", [*RECIPE, "--set", "optim.lr"], "--set 'optim.lr' is not of the form", None),
    ("recipe-sizes-word", [*RECIPE, "--sizes", "big"], "invalid int value: 'big'", None),
    ("recipe-workers-zero", [*RECIPE, "--workers", "0"], "argument --workers: must be >= 1", None),
    ("recipe-threads-negative", [*RECIPE, "--threads", "-1"], "argument --threads: must be >= 1", None),
    ("recipe-sizes-zero", [*RECIPE, "--sizes", "0"], "sizes must be model depths >= 1", None),
    ("recipe-out-is-file", [*RECIPE[:4], "--out", "{tmp}/f", *RECIPE[6:]], "exists and is not a folder",
     write("f", "x")),
    ("recipe-unknown-preset", [*RECIPE, "--preset", "huge"], "unknown preset 'huge'", None),
    ("recipe-set-unknown-field", [*RECIPE, "--set", "model.layers=2"], "unknown config field 'model.layers'", None),
    ("recipe-missing-store", [*RECIPE[:2], "--data", "{tmp}/nowhere", *RECIPE[4:]], "no token store at", None),
    # -- bench -------------------------------------------------------------------------------------------
    ("bench-no-out", ["bench"], "required: --out", None),
    ("bench-unknown-preset", ["bench", "--out", "{tmp}/b", "--preset", "huge"], "unknown bench preset 'huge'", None),
    ("bench-unknown-recipe", ["bench", "--out", "{tmp}/b", "--recipe", "magic"], "unknown bench recipe 'magic'",
     None),
    ("bench-out-is-file", ["bench", "--out", "{tmp}/f"], "exists and is not a folder", write("f", "x")),
    ("bench-out-under-file", ["bench", "--out", "{tmp}/f/b"], "f is a file, not a folder", write("f", "x")),
    ("bench-workers-negative", ["bench", "--out", "{tmp}/b", "--workers", "-1"], "argument --workers: must be >= 1", None),
    ("bench-samples-one", ["bench", "--out", "{tmp}/b", "--samples", "1"], "--samples needs 2 or more", None),
    ("bench-samples-million", ["bench", "--out", "{tmp}/b", "--samples", "1000000"],
     "--samples 1,000,000 is more than the 64 samples a bench combines", None),
    ("bench-samples-with-data", ["bench", "--out", "{tmp}/b", "--samples", "3", "--data", "{store}"],
     "a store given with --data is one sample", None),
    ("bench-samples-with-seed", ["bench", "--out", "{tmp}/b", "--samples", "3", "--data-seed", "2"],
     "leave out --data-seed", None),
    ("bench-workers-word", ["bench", "--out", "{tmp}/b", "--workers", "many"], "'many' is not a whole number", None),
    ("bench-workers-per-gpu-without-gpu", ["bench", "--out", "{tmp}/b", "--workers-per-gpu", "2"],
     "--workers-per-gpu needs a visible GPU", None),
    ("bench-workers-and-per-gpu", ["bench", "--out", "{tmp}/b", "--workers", "2", "--workers-per-gpu", "2"],
     "not both", None),
    ("sweep-workers-per-gpu-zero", ["sweep", "{tmp}/s.toml", "--workers-per-gpu", "0"],
     "argument --workers-per-gpu: must be >= 1", None),
    ("sweep-threads-zero", ["sweep", "{tmp}/s.toml", "--threads", "0"], "argument --threads: must be >= 1", None),
    ("bench-missing-store", ["bench", "--out", "{tmp}/b", "--data", "{tmp}/nowhere", "--results", "{tmp}/res"],
     "no token store at", None),
    # -- report ------------------------------------------------------------------------------------------
    ("report-no-out", ["report"], "required: --out", None),
    ("report-out-is-file", ["report", "--out", "{tmp}/f", "--results", "{results}"], "exists and is not a folder",
     write("f", "x")),
    ("report-unknown-sweep", ["report", "--out", "{tmp}/o", "--results", "{results}", "--sweep", "nosuch"],
     "no finished runs of sweep 'nosuch'", None),
    ("report-empty-store", ["report", "--out", "{tmp}/o", "--results", "{tmp}/res"], "no finished runs",
     results_store),
    ("report-no-store", ["report", "--out", "{tmp}/o", "--results", "{tmp}/res"], "res holds no runs.db", None),
    ("report-out-under-file", ["report", "--out", "{tmp}/f/o", "--results", "{results}"], "f is a file, not a folder",
     write("f", "x")),
    ("report-results-is-file", ["report", "--out", "{tmp}/o", "--results", "{tmp}/f"], "cannot open the run store",
     write("f", "x")),
    ("report-foreign-runs-table", ["report", "--out", "{tmp}/o", "--results", "{tmp}/res"],
     "res/runs.db is not a scarce run store: it holds a runs table without the run store's columns",
     sqlite_db("res/runs.db", "CREATE TABLE runs (name TEXT, score REAL)", "INSERT INTO runs VALUES ('a', 1.0)")),
    ("report-foreign-database", ["report", "--out", "{tmp}/o", "--results", "{tmp}/res"],
     "is not a scarce run store: it holds tables of its own (users)",
     sqlite_db("res/runs.db", "CREATE TABLE users (name TEXT)")),
    ("report-compare-summary-not-object", ["report", "--out", "{tmp}/o", "--results", "{tmp}/res", "--compare",
                                           "{tmp}/run"], "summary.json holds a JSON list, not the object a run writes",
     run_copy(lambda d: (d / "summary.json").write_text("[1, 2]"))),
    ("runs-foreign-runs-table", ["runs", "--json", "--results", "{tmp}/res"], "is not a scarce run store",
     sqlite_db("res/runs.db", "CREATE TABLE runs (name TEXT, score REAL)")),
    # -- quickstart --------------------------------------------------------------------------------------
    ("quickstart-tokens-zero", ["quickstart", "--out", "{tmp}/q", "--train-tokens", "0"], "not a positive whole", None),
    ("quickstart-tokens-overflow", ["quickstart", "--out", "{tmp}/q", "--train-tokens", "1e999"], "'1e999'", None),
    ("quickstart-epochs-zero", ["quickstart", "--out", "{tmp}/q", "--epochs", "0"], "--epochs must be a finite", None),
    ("quickstart-epochs-nan", ["quickstart", "--out", "{tmp}/q", "--epochs", "nan"], "--epochs must be a finite", None),
    ("quickstart-epochs-inf", ["quickstart", "--out", "{tmp}/q", "--epochs", "inf"], "--epochs must be a finite", None),
    ("quickstart-epochs-word", ["quickstart", "--out", "{tmp}/q", "--epochs", "two"], "invalid float value", None),
    ("quickstart-threads-negative", ["quickstart", "--out", "{tmp}/q", "--threads", "-1"], "argument --threads: must be >= 1",
     None),
    ("quickstart-out-is-file", ["quickstart", "--out", "{tmp}/f"], "exists and is not a folder", write("f", "x")),
    ("quickstart-out-under-file", ["quickstart", "--out", "{tmp}/f/q"], "f is a file, not a folder", write("f", "x")),
    ("quickstart-results-under-file", ["quickstart", "--out", "{tmp}/q", "--results", "{tmp}/f/res"],
     "f is a file, not a folder", write("f", "x")),
    ("quickstart-results-is-file", ["quickstart", "--out", "{tmp}/q", "--results", "{tmp}/f"],
     "cannot open the run store", write("f", "x")),
]


if Path("/proc/self").is_dir():  # Linux: a folder that takes no new entries, whoever runs the tests (root too)
    CASES += [
        ("train-out-in-proc", [*TRAIN[:4], "/proc/scarce-run/r", *TRAIN[5:]], "/proc takes no new entries", None),
        ("prepare-out-in-proc", [*PREP[:3], "--out", "/proc/scarce-store", *PREP[5:]], "/proc takes no new entries",
         None),
        ("bench-out-in-proc", ["bench", "--out", "/proc/scarce-bench"], "/proc takes no new entries", None),
        ("runs-results-in-proc", ["runs", "--results", "/proc/scarce-results"], "/proc takes no new entries", None),
    ]


NOT_INSTALLED = [  # run with Ray made unimportable: an executor that is not installed is refused before any write
    ("sweep-ray-not-installed", ["sweep", "{tmp}/s.toml", "--executor", "ray", "--results", "{tmp}/res"],
     "the ray executor needs Ray", sweep_toml(TOML)),
    ("recipe-ray-not-installed", [*RECIPE, "--executor", "ray"], "the ray executor needs Ray", None),
    ("bench-ray-not-installed", ["bench", "--out", "{tmp}/b", "--executor", "ray", "--results", "{tmp}/res"],
     "the ray executor needs Ray", None),
    ("bench-samples-ray-not-installed", ["bench", "--out", "{tmp}/b", "--samples", "2", "--executor", "ray",
                                         "--results", "{tmp}/res"], "the ray executor needs Ray", None),
]


@pytest.mark.parametrize("argv, expected, setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(argv, expected, setup, tiny_store, trained_run, tmp_path, monkeypatch, capsys):
    run_dir, results = trained_run
    fx = SimpleNamespace(store=tiny_store.path, run=run_dir, results=results)
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    monkeypatch.chdir(case_dir)
    monkeypatch.delenv("SCARCE_RESULTS", raising=False)
    if setup:
        setup(case_dir, fx)
    names = {"{tmp}": case_dir, "{store}": fx.store, "{run}": fx.run, "{results}": fx.results}

    def fill(text: str) -> str:
        for key, value in names.items():
            text = text.replace(key, str(value))
        return text

    args, expected = [fill(a) for a in argv], fill(expected)
    roots = [case_dir, fx.store, fx.run.parent, fx.results]
    before = [_tree(r) for r in roots]
    capsys.readouterr()

    code = main(args)

    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert expected in err, err
    after = [_tree(r) for r in roots]
    for root, b, a in zip(roots, before, after):
        assert a == b, f"{root}: new {sorted(a - b)}, gone {sorted(b - a)}"



@pytest.mark.parametrize("argv, expected, setup", [c[1:] for c in NOT_INSTALLED], ids=[c[0] for c in NOT_INSTALLED])
def test_executor_not_installed(argv, expected, setup, tiny_store, trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    test_bad_input(argv, expected, setup, tiny_store, trained_run, tmp_path, monkeypatch, capsys)
