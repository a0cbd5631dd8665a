"""Streaming `scarce prepare` on a corpus far larger than its budget: how much it reads, how fast, in how much memory.

Writes a ~1 GB local JSONL corpus once (the stdlib's .py files repeated, each document made unique by a first
line naming its copy and file), then prepares a 10M-token store from it as `hf:FOLDER` in a child process and
prints a markdown table: MB read, MB/s, wall seconds, peak RSS of the child, tokens per split. Reading stops once
the splits are full, so MB read stays near the sample and the budgets, not the corpus.

    python benchmarks/prepare_stream.py [--corpus-dir /tmp/scarce-stream-1gb] [--gb 1] [--train-tokens 10M]
                                        [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scarce.cli.options import parse_count
from scarce.data.corpora import iter_documents

FILES = 8  # the corpus is a folder of this many .jsonl parts, as a dataset on the hub would be


def write_corpus(folder: Path, gigabytes: float) -> None:
    """The stdlib's documents repeated until the folder holds `gigabytes` of JSONL; written beside and renamed
    into place, so a killed run never leaves a partial corpus that a later run would take as done."""
    docs = list(iter_documents("stdlib"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    target, written, copy = gigabytes * 1e9, 0, 0
    for k in range(FILES):
        with open(tmp / f"part-{k:03d}.jsonl", "w", encoding="utf-8") as f:
            while written < target * (k + 1) / FILES:
                for i, doc in enumerate(docs):
                    line = json.dumps({"text": f"# copy {copy} file {i}\n{doc}"}) + "\n"
                    f.write(line)
                    written += len(line)
                copy += 1
    os.rename(tmp, folder)


def child(args: argparse.Namespace) -> None:
    """Prepare the store (run in a child so its peak RSS is the prepare's alone); print the manifest and seconds."""
    import datasets  # noqa: F401 (imported before the RSS baseline, as prepare would import it)

    from scarce.data.prepare import prepare

    imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        store = prepare(f"hf:{args.corpus_dir}", Path(out) / "s", args.vocab_size, args.train_tokens,
                        args.heldout_tokens, args.heldout_tokens, tokenizer_bytes=args.tokenizer_bytes,
                        threads=args.threads, log=lambda _: None)
        print(json.dumps({"seconds": time.perf_counter() - start, "imports_mb": imports_mb,
                          "manifest": store.manifest}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-dir", type=Path, default=Path(tempfile.gettempdir()) / "scarce-stream-1gb")
    ap.add_argument("--gb", type=float, default=1.0, help="size of the corpus written (once) when it is missing")
    ap.add_argument("--train-tokens", type=parse_count, default=10_000_000)
    ap.add_argument("--heldout-tokens", type=parse_count, default=250_000, help="select and val budgets each")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--tokenizer-bytes", type=parse_count, default=0, help="0: the streaming default sample")
    ap.add_argument("--threads", type=int, default=1, help="encoder threads")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if not args.corpus_dir.is_dir():
        t = time.perf_counter()
        write_corpus(args.corpus_dir, args.gb)
        print(f"wrote {args.corpus_dir} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    corpus_mb = sum(p.stat().st_size for p in args.corpus_dir.glob("*.jsonl")) / 1e6

    load_before = Path("/proc/loadavg").read_text().strip()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, capture_output=True,
                         text=True)
    load_after = Path("/proc/loadavg").read_text().strip()
    if run.returncode:
        sys.exit(run.stderr)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    m, seconds = result["manifest"], result["seconds"]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    read_mb = m["corpus"]["bytes_read"] / 1e6

    import tokenizers
    import torch

    print(f"corpus {args.corpus_dir}: {corpus_mb:,.0f} MB of JSONL in {FILES} files; vocab {args.vocab_size}; "
          f"threads {args.threads}; splits drawn: {m['splits_drawn']}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"torch {torch.__version__}, tokenizers {tokenizers.__version__}")
    print(f"load average before: {load_before}\nload average after:  {load_after}\n")
    print("| MB read | documents read | MB/s (read / wall) | wall s | peak RSS MB (after imports) | BPE sample MB "
          "| train tokens | select tokens | val tokens |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sample = m["tokenizer"].get("sample", {}).get("bytes", 0) / 1e6
    s = m["splits"]
    print(f"| {read_mb:,.1f} | {m['corpus']['documents_read']:,} | {read_mb / seconds:.2f} | {seconds:.1f} "
          f"| {peak_mb:,.0f} ({result['imports_mb']:,.0f}) | {sample:.1f} | {s['train']['tokens']:,} | {s['select']['tokens']:,} "
          f"| {s['val']['tokens']:,} |")
    shares = ", ".join(f"{k} {v:.2%}" for k, v in m["corpus"]["shares"].items())
    print(f"\nshares of the stream: {shares}; {read_mb / corpus_mb:.1%} of the corpus read")


if __name__ == "__main__":
    main()
