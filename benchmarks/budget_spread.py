"""How many source files a bench preset's train budgets draw on, with whole documents and with `piece_bytes` pieces.

For each data seed and piece size, prepares the preset's largest store (its budget x its largest multiple, the
preset's vocabulary, select, val, held-out window, near-duplicate share and tokenizer bytes: what `scarce bench`
prepares) and times it; the smaller budgets are prefixes of its train split (stores nest). Each EOT-ended segment of
train (a document, or a piece) is decoded and traced back to the corpus file it came from. Prints a markdown table:
distinct files behind the first N train tokens (per seed, and the mean) and the largest share of those tokens that
one file gives, then the prepare wall seconds.

    python benchmarks/budget_spread.py [--preset cpu-small-whole] [--seeds 0,1,2] [--pieces 0,2048,4096,8192]
                                       [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from scarce.bench.presets import get_bench_preset
from scarce.data import corpora
from scarce.data.prepare import prepare
from scarce.data.split import cut_pieces


def source_of(texts: set[str], piece_bytes: int) -> dict[str, int]:
    """Each document's text (piece_bytes 0) or each of its pieces' -> the index of its file among `texts`."""
    owner = {}
    for i, doc in enumerate(sorted(texts)):
        for piece in (cut_pieces(doc, piece_bytes) if piece_bytes else [doc]):
            owner.setdefault(piece, i)
    return owner


def segments(store) -> list[tuple[int, str]]:
    """Train's EOT-ended segments as (first token's position, text); the last one may be cut."""
    train, tok = np.asarray(store.split("train")), store.tokenizer()
    ends = np.flatnonzero(train == store.eot_id)
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [len(train)]])
    return [(int(a), tok.decode(train[a:b].tolist())) for a, b in zip(starts, stops) if b > a]


def files_by_budget(store, owner: dict[str, int], budgets: list[int]) -> dict[int, tuple[int, float]]:
    """Budget -> (distinct files behind its tokens, the largest share of them from one file)."""
    segs = segments(store)
    train_len = len(store.split("train"))
    bounds = [a for a, _ in segs[1:]] + [train_len]
    files = []
    for _, text in segs:
        if text in owner:
            files.append(owner[text])
        else:  # the cut last segment (its final character may be a cut multi-byte one)
            files.append(next(f for t, f in owner.items() if t.startswith(text[:-1])))
    out = {}
    for budget in budgets:
        tokens = Counter()
        for (a, _), b, f in zip(segs, bounds, files):
            if a < budget:
                tokens[f] += min(b, budget) - a
        out[budget] = (len(tokens), max(tokens.values()) / sum(tokens.values()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu-small-whole")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--pieces", default="0,2048,4096,8192")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    p = get_bench_preset(args.preset)
    seeds, pieces = [int(x) for x in args.seeds.split(",")], [int(x) for x in args.pieces.split(",")]
    budgets = [p.budget_tokens * m for m in sorted(p.multiples)]
    texts = set(corpora.read_corpus(p.corpus))
    spread, seconds = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for piece in pieces:
            owner = source_of(texts, piece)
            for seed in seeds:
                start = time.perf_counter()
                store = prepare(p.corpus, Path(root) / f"p{piece}-s{seed}", p.vocab_size, budgets[-1], p.select_tokens,
                                p.val_tokens, tokenizer_bytes=p.tokenizer_bytes, threads=args.threads,
                                log=lambda _: None, near_duplicates=p.near_duplicates,
                                heldout_window=p.heldout_window, seed=seed, piece_bytes=piece)
                seconds[piece, seed] = time.perf_counter() - start
                spread[piece, seed] = files_by_budget(store, owner, budgets)
                print(f"piece_bytes {piece}, seed {seed}: {seconds[piece, seed]:.1f} s", flush=True)
    print(f"\n{args.preset}'s prepare on {p.corpus} ({len(texts):,} files), vocabulary {p.vocab_size}, select "
          f"{p.select_tokens:,}, val {p.val_tokens:,}, seeds {args.seeds}; {platform.processor() or platform.machine()}\n")
    print("| piece_bytes | " + " | ".join(f"{b // 1000}k train tokens" for b in budgets) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for piece in pieces:
        cells = []
        for b in budgets:
            n = [spread[piece, s][b][0] for s in seeds]
            top = max(spread[piece, s][b][1] for s in seeds)
            cells.append(f"{np.mean(n):.0f} ({'/'.join(map(str, n))}), top {top:.0%}")
        print(f"| {piece or 'whole'} | " + " | ".join(cells) + " |")
    print("\ncells: distinct files behind the first N train tokens, mean (per seed); top: the largest share of those "
          "tokens that one file gives, the most over seeds")
    print("\n| piece_bytes | prepare wall s per seed | mean |\n|---|---|---|")
    for piece in pieces:
        s = [seconds[piece, seed] for seed in seeds]
        print(f"| {piece or 'whole'} | {' / '.join(f'{x:.1f}' for x in s)} | {np.mean(s):.1f} |")


if __name__ == "__main__":
    main()
