"""How fast `scarce prepare` is: tokenizer training and tokenization, separately, then end to end.

Runs on the whole stdlib corpus at vocabulary 4096 and prints a markdown table. CPU seconds are
shown beside wall seconds: on a shared machine they tell slow code from a busy machine, and their
ratio is the parallelism actually obtained.

    python benchmarks/prepare_speed.py [--vocab-size 4096] [--threads N] [--corpus stdlib]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from scarce.data import split as split_mod
from scarce.data.corpora import read_corpus
from scarce.data.prepare import prepare
from scarce.data.store import SPLITS
from scarce.data.tokenizer import set_threads, train_bpe


class Timer:
    """Wall and CPU (all threads) seconds of a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def tokenize(tok, docs: list[str]) -> int:
    """Encode every document in the store's batch size and pack into arrays, as `prepare` does."""
    tokens, batch, size = 0, [], 0
    for doc in docs + [None]:
        if doc is not None:
            batch.append(doc)
            size += len(doc)
        if batch and (doc is None or size >= split_mod.ENCODE_BATCH_BYTES):
            for ids in tok.encode_batch(batch):
                tokens += len(np.array(ids + [tok.eot_id], dtype=np.uint16))
            batch, size = [], 0
    return tokens


def row(stage: str, mb: float, t: Timer, note: str = "") -> str:
    return f"| {stage} | {mb:.1f} | {t.wall:.1f} | {t.cpu:.1f} | {mb / t.wall:.2f} | {note} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="stdlib")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None, help="encoder threads (default: all cores)")
    args = ap.parse_args()
    set_threads(args.threads)

    with Timer() as t_read:
        docs = read_corpus(args.corpus)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    with Timer() as t_train:
        tok = train_bpe(docs, args.vocab_size)
    with Timer() as t_encode:
        tokens = tokenize(tok, docs)
    with tempfile.TemporaryDirectory() as tmp, Timer() as t_prepare:
        # Budgets that take nearly the whole corpus (the held-out prefix costs a few cut documents).
        store = prepare(args.corpus, Path(tmp) / "s", args.vocab_size, train_tokens=int(tokens * 0.9),
                        select_tokens=250_000, val_tokens=250_000, log=lambda _: None)
        stored = sum(store.split_tokens(n) for n in SPLITS)

    threads = os.environ.get("RAYON_RS_NUM_CPUS", f"all {os.cpu_count()}")
    print(f"corpus {args.corpus}: {len(docs):,} documents, {mb:.1f} MB; vocab {args.vocab_size}; "
          f"{tokens:,} tokens ({mb * 1e6 / tokens:.2f} bytes/token); threads {threads}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average before/after {LOAD_BEFORE} / {os.getloadavg()[0]:.2f}\n")
    print("| stage | MB | wall s | CPU s | MB/s (wall) | note |")
    print("|---|---:|---:|---:|---:|---|")
    print(row("read corpus", mb, t_read))
    print(row("train BPE tokenizer", mb, t_train, "whole corpus"))
    print(row("tokenize", mb, t_encode, "encode_batch + numpy, store batch size"))
    print(row("prepare end to end", mb, t_prepare, f"{stored:,} tokens stored; read, hash, train, encode, write"))


LOAD_BEFORE = f"{os.getloadavg()[0]:.2f}"

if __name__ == "__main__":
    main()
