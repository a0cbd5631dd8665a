"""`scarce export`: a run or an ensemble as folders that Hugging Face transformers loads."""

from __future__ import annotations

from scarce.cli import options
from scarce.export import FORMATS, export


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run (or an ensemble's members) as a Hugging Face model folder",
                       description="Write a run's select-chosen weights as a folder transformers loads "
                                   "(config.json, model.safetensors, tokenizer): Llama for scarce's blocks, GPT-2 "
                                   "for a model started from GPT-2. A knob with no counterpart is named in an "
                                   "error. An ensemble folder exports each member and a README of how they combine.")
    p.add_argument("--run", metavar="RUN_DIR", help="the run to export")
    p.add_argument("--ensemble", metavar="DIR", help="an ensemble folder (ensemble.json): every member")
    p.add_argument("--format", default="hf", choices=FORMATS, help="hf: Hugging Face transformers (default)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    p.set_defaults(func=run)


def run(args) -> int:
    options.check_out(args.out, "--out")
    out = export(args.out, args.run, args.ensemble, args.format)
    print(f"exported -> {out}")
    return 0
