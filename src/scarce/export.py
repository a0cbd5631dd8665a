"""`scarce export`: a run's select-chosen weights, or every member of an ensemble, as folders that
Hugging Face `transformers` loads (config.json, model.safetensors, tokenizer), so a scarce model can be
used by other tools. The architecture mapping lives in `scarce.model.hf`; a knob with no counterpart in
the target family is a one-line error, never dropped. The folder is built beside OUT and renamed into
place: a failed export leaves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from scarce import atomic
from scarce.config import RunConfig
from scarce.data.store import open_store
from scarce.ensemble import read_ensemble
from scarce.errors import UserError
from scarce.model import hf
from scarce.rundir import Member, load_weights, read_config

FORMATS = ("hf",)
COMBINE_TEXT = {
    "logit": "logit averaging: softmax of the mean of the members' log-probabilities (a normalised geometric mean)",
    "prob": "probability averaging: the mean of the members' next-token probabilities (a mixture)",
}


def export(out: str | Path, run: str | Path | None = None, ensemble: str | Path | None = None,
           fmt: str = "hf") -> Path:
    """Write the run (or each member of the ensemble folder) to `out`; returns `out`."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if (run is None) == (ensemble is None):
        raise UserError("give a run directory or an ensemble folder to export")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; export into a new folder")
    if run is not None:
        member = Member.of_run(run)
        cfg, model = _hf_model(member)
        atomic.write_dir(out, lambda d: _write_member(d, member, cfg, model))
        return out
    members, combine = read_ensemble(ensemble)
    models = [_hf_model(m) for m in members]  # every member checked before anything is written

    def fill(d: Path) -> None:
        for k, (m, (cfg, model)) in enumerate(zip(members, models), 1):
            (d / f"member-{k}").mkdir()
            _write_member(d / f"member-{k}", m, cfg, model)
        (d / "README.md").write_text(_ensemble_readme(members, combine), encoding="utf-8")
        (d / "scarce_ensemble.json").write_text(json.dumps(
            {"combine": combine, "members": [f"member-{k}" for k in range(1, len(members) + 1)]}, indent=2) + "\n")
    atomic.write_dir(out, fill)
    return out


def _hf_model(member: Member) -> tuple[RunConfig, object]:
    """The member's run config and its weights as a transformers model."""
    cfg = read_config(member.run_dir)
    model, _family = hf.to_hf(cfg.model, load_weights(member.weights))
    return cfg, model


def _write_member(d: Path, member: Member, cfg: RunConfig, model) -> None:
    """config.json + model.safetensors (transformers' own writer), the tokenizer and where it came from."""
    model.save_pretrained(d, safe_serialization=True)
    store = open_store(cfg.data)
    tokenizer = _tokenizer(store)
    if tokenizer is not None:
        tokenizer.save_pretrained(d)
    (d / "scarce.json").write_text(json.dumps({"run_dir": str(member.run_dir), "weights": str(member.weights),
                                               "data": cfg.data, "config": cfg.to_dict()}, indent=2) + "\n")


def _tokenizer(store):
    """The store's tokenizer as a transformers tokenizer (None for a tiktoken reference, which has no
    tokenizer.json to give)."""
    text = (store.path / "tokenizer.json").read_text(encoding="utf-8")
    if "scarce_tiktoken" in json.loads(text):
        return None
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(text)
    eot = backend.id_to_token(store.eot_id)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eot, bos_token=eot)


def _ensemble_readme(members: list[Member], combine: str) -> str:
    lines = [f"# An ensemble of {len(members)} scarce models", "",
             "Each `member-K/` folder loads with `transformers.AutoModelForCausalLM.from_pretrained`.",
             f"The ensemble's next-token distribution is the {COMBINE_TEXT[combine]}, members weighted equally:",
             "", "```python",
             "import torch",
             "from transformers import AutoModelForCausalLM",
             f"members = [AutoModelForCausalLM.from_pretrained(f'member-{{k}}') for k in range(1, {len(members) + 1})]",
             "logp = torch.stack([m(ids).logits.log_softmax(-1) for m in members])  # (K, B, T, V)"]
    if combine == "logit":
        lines.append("ensemble_logp = logp.mean(0).log_softmax(-1)")
    else:
        lines.append(f"ensemble_logp = logp.logsumexp(0) - torch.log(torch.tensor({len(members)}.0))")
    lines += ["```", "", "Members (scarce run folders):", ""]
    lines += [f"- member-{k}: {m.run_dir} ({m.weights.name})" for k, m in enumerate(members, 1)]
    return "\n".join(lines) + "\n"
