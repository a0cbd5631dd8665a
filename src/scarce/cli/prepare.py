"""`scarce prepare`: tokenize a corpus into a token store (train / select / val)."""

from __future__ import annotations

import argparse
import time

from scarce.cli import options
from scarce.cli.options import add_threads, count_or_zero, parse_count
from scarce.data.corpora import DEFAULT_SOURCE
from scarce.data.prepare import prepare
from scarce.data.store import SPLITS, TokenStore
from scarce.data.stream import STREAM_SAMPLE_BYTES
from scarce.data.tokenizer import MIN_VOCAB
from scarce.errors import UserError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into a token store (train / select / val)",
        description="Split a corpus by document into val, select and train token arrays with exact budgets, "
        "training a byte-level BPE on train documents only (or using an existing tokenizer, --tokenizer). "
        "A hf: corpus is streamed: documents go to a split by their hash as they come, reading stops once the "
        "splits are full, and a status line shows progress on a terminal. "
        "Re-running with the same arguments reuses the store.",
    )
    p.add_argument("--corpus", default=DEFAULT_SOURCE, metavar="SOURCE",
                   help="'stdlib' (Python's standard library, the default), 'files:PATH' (.txt/.jsonl file or "
                   "folder) or 'hf:NAME[:CONFIG]' (a Hugging Face dataset or local data folder, streamed: only the "
                   "prefix the budgets need is read; needs scarce[hf])")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create the token store in")
    p.add_argument("--vocab-size", type=parse_count, default=4096, metavar="V",
                   help="BPE vocabulary size, <|endoftext|> included (default 4096; ignored for an existing "
                        "tokenizer)")
    p.add_argument("--train-tokens", type=parse_count, required=True, metavar="N",
                   help="exact size of the train split, e.g. 2M, 500k or 1e6")
    p.add_argument("--select-tokens", type=parse_count, default=250_000, metavar="N",
                   help="exact size of the select split, for choosing checkpoints and hyperparameters (default 250k)")
    p.add_argument("--val-tokens", type=parse_count, default=250_000, metavar="N",
                   help="exact size of the val split, for reporting only (default 250k)")
    p.add_argument("--tokenizer", default="bpe", metavar="SPEC",
                   help="'bpe' trains one on the train documents (default); 'gpt2' (or r50k_base, p50k_base, "
                        "cl100k_base, o200k_base) a tiktoken encoding, from NAME.tiktoken in ~/.cache/scarce/"
                        "tokenizers when there, else through tiktoken; a path ending in .tiktoken that file; "
                        "'hf:NAME_OR_PATH' a Hugging Face model's tokenizer (a local model folder, or a model "
                        "already in the local HF cache: nothing is downloaded; needs scarce[hf]), documents "
                        "ending with its eos_token; a path ending in .json a tokenizer.json file")
    p.add_argument("--tokenizer-bytes", type=parse_count, default=0, metavar="N",
                   help="train the BPE on at most N bytes of train documents (default: all of them; for a streamed "
                        f"hf: corpus the first {STREAM_SAMPLE_BYTES // 10**6}M, which also size the val and select shares "
                        "of the stream)")
    p.add_argument("--near-duplicates", type=float, default=0.0, metavar="SHARE",
                   help="drop a document when this share of its distinct non-trivial lines repeats one earlier "
                        "document (e.g. 0.5; default 0 keeps near-copies)")
    p.add_argument("--heldout-window", type=parse_count, default=0, metavar="N",
                   help="each select and val document gives one window of at most N tokens (e.g. 1024), so the "
                        "held-out splits span many documents (default: whole documents)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="another sample of the corpus: N > 0 shuffles which documents go to val, select and the "
                        "first train tokens (default 0: the order of the documents' hashes)")
    p.add_argument("--piece-bytes", type=count_or_zero, default=0, metavar="N",
                   help="cut train documents at line ends into pieces of about N bytes (e.g. 2k) and fill train with "
                        "the pieces in a pseudo-random order (by their hash, salted by --seed), so a small train "
                        "budget samples many documents; val and select keep whole documents, and no document gives "
                        "to both train and val or select (default 0: train takes whole documents; not for hf:)")
    p.add_argument("--doc-bytes", type=count_or_zero, default=0, metavar="N",
                   help="cut every document at line ends into pieces of about N bytes (e.g. 8k) before the split, so "
                        "a corpus of a few long documents (books) gives --heldout-window windows per piece; the split "
                        "stays per document unless --piece-splits (default 0: whole documents; not for hf:)")
    p.add_argument("--piece-splits", action="store_true",
                   help="with --doc-bytes, split per piece: one document's pieces may land in val, select and train, "
                        "never one piece in two (default: per source document)")
    add_threads(p, "encoder threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.tokenizer == "bpe" and args.vocab_size < MIN_VOCAB:
        raise UserError(f"--vocab-size must be >= {MIN_VOCAB} (256 bytes + <|endoftext|>), got {args.vocab_size}")
    options.check_out(args.out, "--out")
    start = time.perf_counter()
    store = prepare(args.corpus, args.out, args.vocab_size, args.train_tokens, args.select_tokens,
                    args.val_tokens, tokenizer=args.tokenizer, tokenizer_bytes=args.tokenizer_bytes,
                    threads=args.threads, near_duplicates=args.near_duplicates,
                    heldout_window=args.heldout_window, seed=args.seed, piece_bytes=args.piece_bytes,
                    doc_bytes=args.doc_bytes, piece_splits=args.piece_splits)
    print(summary(store, time.perf_counter() - start))
    return 0


def summary(store: TokenStore, seconds: float) -> str:
    """A short table of the splits, then tokenizer, corpus size and speed."""
    m = store.manifest
    lines = [f"{'split':<8}{'tokens':>14}{'bytes':>15}{'bytes/token':>13}{'documents':>11}"]
    for name in SPLITS:
        s = m["splits"][name]
        lines.append(f"{name:<8}{s['tokens']:>14,}{s['bytes']:>15,}{s['bytes'] / s['tokens']:>13.2f}{s['documents']:>11,}")
    corpus, tok = m["corpus"], m["tokenizer"]
    if "bytes_read" in corpus:  # a streamed corpus: only what was read is known
        mb = corpus["bytes_read"] / 1e6
        read = f"read {mb:.1f} MB in {corpus['documents_read']:,} documents of the stream"
    else:
        mb = corpus["bytes"] / 1e6
        read = f"corpus {mb:.1f} MB in {corpus['documents']:,} documents"
    name = f"{tok['kind']}:{tok['source']}" if tok.get("source") else tok["kind"]
    lines.append(f"tokenizer {name} ({tok['vocab_size']:,} tokens); {read}; {seconds:.1f} s "
                 f"({mb / max(seconds, 1e-9):.1f} MB/s)")
    lines.append(f"token store {store.path} (fingerprint {store.fingerprint})")
    return "\n".join(lines)
