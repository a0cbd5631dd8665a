"""Fault-injection probe: random SIGKILLs and resumes, flipped bytes and truncations in checkpoint files, a
diverging run, damaged token stores, and SIGTERM of a parallel sweep; prints the counts a results file records.

    python benchmarks/faults.py --out /tmp/faults --kills 10 --corruptions 24 --synth-kills 6

Every trial uses tiny runs on a small stdlib store (seconds each). Outcomes:
- kills: a `scarce train` killed at a random moment and resumed with `scarce train --resume` ends with the
  same final weights as an uninterrupted run (bit-identical) and the same metrics.jsonl (without timings), or not;
- corruptions: a byte flip (or a truncation) in one file of the newest checkpoint or in best.safetensors is
  detected (a one-line error, or resume falling back to the previous checkpoint and saying so) or not
  (the run goes on as if nothing happened with other weights);
- NaN: a diverging run is stored `diverged` (its run folder says so in diverged.json) with valid JSON, never
  done;
- store damage: a byte flip in a split or the tokenizer of a token store (same size, so only the digest can
  tell) is refused by the next run that opens the store, also after an earlier run cached the store as good;
- orphans: processes of a sweep left alive after SIGTERM to the sweep;
- synth kills: a `scarce synth` killed at a random moment (and, every other trial, one of the shards it left
  flipped or truncated) and run again writes the same store, byte for byte, as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from scarce.data.prepare import prepare
from scarce.runs.store import STATUSES, RunStore

TINY = ["--set", "model.depth=2", "--set", "model.head_dim=16", "--set", "model.aspect_ratio=16",
        "--set", "model.seq_len=64", "--set", "train.batch_size=8", "--set", "train.eval_every=10",
        "--set", "train.eval_tokens=2048", "--tokens", "40960", "--threads", "1", "--quiet"]


def cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "scarce.cli", *argv], env=env, capture_output=True, text=True,
                          check=check)


def final_weights(run_dir: Path) -> dict:
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["dir"] / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl without what depends on the clock."""
    timing = {"tok_s", "mfu", "wall_seconds", "eval_seconds", "seconds"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def kills(store: str, out: Path, results: str, n: int, rng: random.Random) -> dict:
    base = ["train", "--data", store, "--results", results, *TINY]
    t0 = time.perf_counter()
    cli(*base, "--out", str(out / "full"))
    seconds = time.perf_counter() - t0
    reference, reference_log = final_weights(out / "full"), records(out / "full")
    identical = killed = same_log = 0
    for i in range(n):
        run = out / f"kill{i}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", *base, "--out", str(run)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, seconds))
        killed += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (run / "config.json").exists():  # killed before the run started: start it again
            cli(*base, "--out", str(run))
        else:
            cli("train", "--resume", str(run), "--results", results, "--quiet")
        identical += same(final_weights(run), reference)
        same_log += records(run) == reference_log
    return {"trials": n, "killed mid-run": killed, "bit-identical": identical, "metrics.jsonl equal": same_log}


def synth_kills(out: Path, n: int, rng: random.Random) -> dict:
    """`scarce synth` from the finished run, SIGKILLed at a random moment and run again: the same store, byte for
    byte, as an uninterrupted generation; then one shard of a killed generation flipped or truncated."""
    base = ["synth", "--run", str(out / "full"), "--tokens", "60000", "--mode", "conditioned", "--prefix-tokens",
            "8", "--streams", "16", "--threads", "1", "--quiet"]
    t0 = time.perf_counter()
    cli(*base, "--out", str(out / "synth-full"))
    seconds = time.perf_counter() - t0
    reference = (out / "synth-full" / "train.bin").read_bytes()
    counts = {"trials": n, "killed mid-run": 0, "byte-identical": 0, "damaged shards": 0, "damage caught": 0}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for i in range(n):
        store = out / f"synth-kill{i}"
        proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", *base, "--out", str(store)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, seconds))
        counts["killed mid-run"] += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shards = sorted(out.glob(f"synth-kill{i}.parts/*.npy"))
        if i % 2 and shards:  # every other trial: damage a shard the kill left
            path = rng.choice(shards)
            data = bytearray(path.read_bytes())
            if rng.random() < 0.5:
                data = data[:rng.randrange(1, len(data))]
            else:
                data[rng.randrange(128, len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
            counts["damaged shards"] += 1
        r = cli(*base, "--out", str(store), check=False)
        counts["damage caught"] += "is damaged" in r.stderr
        ok = r.returncode == 0 and (store / "train.bin").read_bytes() == reference
        counts["byte-identical"] += ok
        if not ok:
            print(f"synth trial {i}: rc {r.returncode} {r.stderr.strip()[:200]}")
    return counts


def flip(path: Path, rng: random.Random, truncate: bool) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(bytes(data[: rng.randrange(1, len(data))]))
        return
    i = rng.randrange(len(data) // 4, len(data))  # inside the tensors, past most of the header
    data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def corruptions(store: str, out: Path, results: str, n: int, rng: random.Random) -> dict:
    base = out / "full"
    files = ["model.safetensors", "optim.safetensors", "state.json", "best.safetensors"]
    counts = {"trials": n, "detected": 0, "recovered": 0, "undetected": 0}
    reference = final_weights(base)
    for i in range(n):
        run = out / f"corrupt{i}"
        shutil.copytree(base, run)
        name, truncate = files[i % len(files)], i % 2 == 1
        latest = json.loads((run / "checkpoints" / "latest.json").read_text())["dir"]
        target = run / "checkpoints" / ("" if name == "best.safetensors" else latest) / name
        flip(target, rng, truncate)
        (run / "summary.json").unlink()  # as if killed at the end: resume must read the checkpoint
        if name == "best.safetensors":
            r = cli("sample", "--run", str(run), "--tokens", "4", check=False)
        else:
            r = cli("train", "--resume", str(run), "--results", results, "--quiet", check=False)
        if r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1:
            counts["detected"] += 1
        elif r.returncode == 0 and "instead" in r.stderr and same(final_weights(run), reference):
            counts["detected"] += 1
            counts["recovered"] += 1
        elif r.returncode == 0 and name == "state.json" and same(final_weights(run), reference):
            counts["recovered"] += 1  # a flipped digit of JSON that still parses and changes nothing that matters
        else:
            counts["undetected"] += 1
            print(f"undetected: {name} truncate={truncate}: rc {r.returncode} {r.stderr.strip()[:200]}")
    return counts


def diverging(store: str, out: Path, results: str) -> dict:
    r = cli("train", "--data", store, "--results", results, "--out", str(out / "nan"), *TINY, "--set", "optim.lr=1e4",
            "--set", "optim.warmup_frac=0", "--set", "optim.grad_clip=0", check=False)
    rows = json.loads(cli("runs", "--results", results, "--json").stdout)  # must parse: no NaN in the store
    row = [x for x in rows if x["run_dir"] == str((out / "nan").resolve())]
    marker = out / "nan" / "diverged.json"
    return {"exit": r.returncode, "status": row[0]["status"] if row else None,
            "diverged.json": json.loads(marker.read_text())["status"] if marker.is_file() else None,
            "done with NaN": sum(1 for x in rows if x["status"] == "done" and x["val_loss"] != x["val_loss"])}


def store_damage(store: str, out: Path, results: str, rng: random.Random) -> dict:
    files = ["train.bin", "select.bin", "val.bin", "tokenizer.json"]
    counts = {"trials": len(files), "detected": 0, "undetected": 0}
    for i, name in enumerate(files):
        copy = out / f"store-damaged{i}"
        shutil.copytree(store, copy)
        # a good run first, so the damaged store is one the cache already holds as verified
        cli("train", "--data", str(copy), "--results", results, "--out", str(out / f"store-good{i}"), *TINY)
        path = copy / name
        data = bytearray(path.read_bytes())
        at = rng.randrange(len(data))
        data[at] ^= 1
        path.write_bytes(bytes(data))
        r = cli("train", "--data", str(copy), "--results", results, "--out", str(out / f"store-bad{i}"), *TINY,
                check=False)
        ok = r.returncode == 2 and "does not match its sha256" in r.stderr and r.stderr.count("\n") == 1
        counts["detected" if ok else "undetected"] += 1
        if not ok:
            print(f"undetected: {name}: rc {r.returncode} {r.stderr.strip()[:200]}")
    return counts


def orphans(store: str, out: Path) -> dict:
    spec = out / "spec.py"
    spec.write_text("def make():\n    return " + repr({
        "name": "orphans", "data": store, "out": str(out / "sweep"), "results": str(out / "sweep-results"),
        "set": {"model.depth": 1, "model.head_dim": 16, "model.aspect_ratio": 16, "model.seq_len": 32,
                "train.batch_size": 4, "train.tokens": 4_000_000, "train.eval_every": 50},
        "grid": {"optim.lr": [1e-3, 2e-3, 3e-3, 4e-3]}}) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", "sweep", f"{spec}:make", "--workers", "2",
                             "--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(children) < 2:
        children |= {int(p.name) for p in Path("/proc").glob("[0-9]*")
                     if _ppid(p) == proc.pid}
        time.sleep(0.2)
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    time.sleep(1)
    alive = [pid for pid in children if _alive(pid)]
    rows = RunStore(out / "sweep-results").list()
    return {"exit": rc, "workers": len(children), "orphans": len(alive),
            "rows": {s: sum(r["status"] == s for r in rows) for s in STATUSES}}


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--corruptions", type=int, default=24)
    p.add_argument("--synth-kills", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    out, rng = Path(a.out), random.Random(a.seed)
    out.mkdir(parents=True, exist_ok=True)
    store = str(prepare("stdlib", out / "store", 512, 200_000, 20_000, 20_000, tokenizer_bytes=2_000_000,
                        log=lambda *x: None).path)
    results = str(out / "results")
    report = {"kills": kills(store, out, results, a.kills, rng),
              "corruptions": corruptions(store, out, results, a.corruptions, rng),
              "synth kills": synth_kills(out, a.synth_kills, rng),
              "diverging run": diverging(store, out, results),
              "store damage": store_damage(store, out, results, rng), "sweep SIGTERM": orphans(store, out)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
