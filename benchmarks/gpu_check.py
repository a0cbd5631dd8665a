"""The GPU check: what a CUDA machine must show, in a few minutes, in one results file.

    PYTHONPATH=src python benchmarks/gpu_check.py --out DIR [--quick] [--device cuda]

1. the dense bf16 matmul peak measured on this GPU (8192^3, the MFU denominator beside the table value);
2. a bf16 training step (autocast, fused AdamW, clipping) of the `tiny` and `small` presets, eager and
   `torch.compile`d, and `gpt2-small` eager: tokens/s, MFU against the measured peak, compile seconds;
3. a 1-GPU torchrun run of `scarce train` (a process group and DDP, as on 8 GPUs): it completes, tokens/s; and
   the same with `train.parallel=fsdp` (sharded) on one GPU and on all the GPUs present;
4. ensemble evaluation of 4 members on the GPU: seconds and peak GPU memory for 1 and 4 members (members are
   loaded one at a time, so the peak should not grow with K);
5. continued pretraining on the GPU: a GPT-2-shaped Hugging Face model (built here, random weights, the store's
   tokenizer) as `init.source`, trained in bf16: its loss at step 0 against transformers' own, and after;
6. several runs on one GPU: one run's measured memory and MFU (`scarce.runs.gpushare`: the default workers per
   GPU) and the summed tokens/s of that many concurrent training processes of `tiny` and `small` against one;
   and `train.compile=reduce-overhead` (CUDA graphs) beside eager and the default compile mode;
7. `scarce bench --preset gpu-mini` (the whole bench on one GPU; target 8 min): wall time and findings
   (`--skip-mini` leaves it out);
and writes DIR/gpu_check_<gpu>.md and DIR/gpu_check_<gpu>.json. Every section runs even when one fails
(its error is recorded). `--quick --device cpu` runs the same code tiny, for checking the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from throughput import VOCAB, time_preset  # benchmarks/throughput.py: the trainer's step on random tokens

from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import prepare
from scarce.device import pick_device
from scarce.ensemble import write_evaluation
from scarce.rundir import Member, read_config
from scarce.runs import gpushare
from scarce.runs.executors import cpu_count
from scarce.runs.launch import train
from scarce.train.trainer import build_loader


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, quick: bool) -> float:
    """Mean FLOP/s of ten n^3 bf16 matmuls on random data after three warm-ups (fp32 on the CPU)."""
    n, dtype = (1024, torch.float32) if device == "cpu" or quick else (8192, torch.bfloat16)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 10 * 2 * n**3 / (time.perf_counter() - t0)


def step_rate(preset: str, batch: int, steps: int, device: str, compile_: bool, peak: float) -> dict:
    """Tokens/s and MFU of the trainer's step (bf16 autocast on CUDA) on random tokens."""
    r = time_preset(preset, batch, steps, device, compile_)
    return {**r, "batch": r["B"], "tflops": r["flops"] / 1e12, "mfu": r["flops"] / peak}


def torchrun_check(store: Path, out: Path, device: str, quick: bool, parallel: str = "ddp", ranks: int = 1) -> dict:
    """`scarce train` under torchrun: the process group and the DDP or FSDP path of a multi-GPU run."""
    preset, tokens = ("tiny", "20k") if quick else ("small", "2M")
    run = out / f"{parallel}-run-{ranks}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), "-m",
           "scarce.cli", "train", "--data", str(store), "--out", str(run), "--results", str(out / "results"),
           "--preset", preset, "--tokens", tokens, "--device", device, "--quiet", "--set", "train.batch_size=32",
           "--set", "train.eval_tokens=20000", "--set", f"train.parallel={parallel}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"torchrun exited {p.returncode}: {(p.stderr or p.stdout)[-800:]}")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rates = [r["tok_s"] for r in records if r.get("type") == "train" and r.get("tok_s")]
    summary = json.loads((run / "summary.json").read_text())
    return {"wall_s": wall, "tok_s_last_log": train_rates[-1] if train_rates else None,
            "val_loss": summary["val_loss"], "steps": summary.get("steps"), "ranks": ranks, "parallel": parallel}


def ensemble_check(store, out: Path, device: str, quick: bool) -> dict:
    """Four tiny members trained on the GPU, then evaluated on val with 1 and with 4 members."""
    members = []
    for seed in range(4):
        cfg = apply_overrides(get_preset("tiny"), [f"train.seed={seed}", f"train.device=\"{device}\"",
                                                   "train.eval_every=1000000", "train.log_every=1000000"])
        cfg.train.tokens = 100_000 if quick else 1_000_000
        cfg.train.epochs = 0.0
        cfg.data = str(store.path)
        train(cfg, out / "members" / f"m{seed}", results=str(out / "results"), quiet=True)
        members.append(Member.of_run(out / "members" / f"m{seed}"))
    rows = {}
    for k in (1, 4):
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        report = write_evaluation(out / f"ens{k}", members[:k], batch_size=32, device=device)
        sync(device)
        rows[k] = {"seconds": time.perf_counter() - t0, "tokens": report["tokens"],
                   "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
                   "val_loss": report["prefix_val_loss"][-1]}
    return rows


def concurrent_rate(preset: str, batch: int, n: int, device: str, steps: int, compile_=False) -> dict:
    """`n` processes timing the trainer's step of `preset` at once on the first GPU: the sum of their tokens/s
    (each over its own timed steps) and, conservatively, all their tokens over the wall time of the whole block
    (start-up and warm-up included)."""
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); from throughput import time_preset; "
            f"print(json.dumps(time_preset({preset!r}, {batch}, {steps}, {device!r}, {compile_!r})))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES",
                                                                                        "0").split(",")[0]}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(n)]
    rows = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a timing process exited {p.returncode}: {stderr[-600:]}")
        rows.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    tokens = sum(r["B"] * r["T"] * (steps + 3) for r in rows)
    return {"n": n, "tok_s_sum": sum(r["tok_s"] for r in rows), "tok_s_wall": tokens / wall, "wall_s": wall}


def workers_check(store, device: str, quick: bool) -> list[dict]:
    """Workers per GPU: the default from one measured run, and the aggregate rate it buys over one worker."""
    gpus = max(1, torch.cuda.device_count()) if device == "cuda" else 1
    rows = []
    for preset, batch, steps in ([("tiny", 8, 5)] if quick else [("tiny", 64, 300), ("small", 32, 200)]):
        cfg = apply_overrides(get_preset(preset), [f'train.device="{device}"', f"train.batch_size={batch}"])
        cfg.data = str(store.path)
        probe = gpushare.measure(cfg)
        n, why = gpushare.per_gpu(probe, cpu_count() // gpus)
        n = min(n, 2) if quick else n
        one = concurrent_rate(preset, batch, 1, device, steps)
        many = concurrent_rate(preset, batch, n, device, steps) if n > 1 else one
        rows.append({"preset": preset, "batch": batch, "probe": probe.as_dict(), "workers": n, "why": why,
                     "one": one, "many": many, "gain_sum": many["tok_s_sum"] / one["tok_s_sum"],
                     "gain_wall": many["tok_s_wall"] / one["tok_s_wall"]})
    return rows


def mini_check(out: Path) -> dict:
    """`scarce bench --preset gpu-mini` from a fresh folder: wall time, the default multiple, the findings."""
    run = out / "gpu-mini"
    cmd = [sys.executable, "-m", "scarce.cli", "bench", "--preset", "gpu-mini", "--out", str(run), "--results",
           str(out / "results-mini")]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"bench exited {p.returncode} after {wall:.0f} s: {(p.stderr or p.stdout)[-800:]}")
    result = json.loads((run / "bench.json").read_text())
    eff = result["efficiency"].get("parametric") or {}
    return {"wall_s": wall, "workers": result.get("workers"), "default": result["default_recipe"],
            "efficiency": eff.get("value"), "low": eff.get("low"), "high": eff.get("high"),
            "findings": [{"id": f["id"], "reproduced": f["reproduced"]} for f in result["findings"]],
            "peak_gpu_mb": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default=pick_device())
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script itself")
    ap.add_argument("--skip-mini", action="store_true", help="leave out the gpu-mini bench (~8 min)")
    args = ap.parse_args()
    out, device = Path(args.out), args.device
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    tag = re.sub(r"[^a-z0-9]+", "_", gpu.lower().replace("nvidia", "")).strip("_") or "cpu"
    result = {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sections": {}, "errors": {}}

    def section(name, fn):
        t0 = time.perf_counter()
        try:
            result["sections"][name] = fn()
        except Exception as e:  # record and go on: one broken section must not hide the others
            result["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"
        print(f"[{time.perf_counter() - t0:6.1f}s] {name}: {'error' if name in result['errors'] else 'ok'}", flush=True)
        write(out, tag, result)

    section("peak", lambda: {"flops": matmul_peak(device, args.quick)})
    peak = result["sections"].get("peak", {}).get("flops", 1.0)
    steps = 3 if args.quick else 20
    shapes = [("tiny", 64, False), ("tiny", 64, True), ("small", 32, False), ("small", 32, True),
              ("gpt2-small", 16, False), ("gpt2-small", 16, True)]
    if args.quick:
        shapes = [("tiny", 4, False)]
    if device == "cuda":  # CUDA graphs (torch.compile's reduce-overhead mode) where launches bound the step
        shapes += [("tiny", 64, "reduce-overhead"), ("small", 32, "reduce-overhead")]
    section("steps", lambda: [step_rate(p, b, steps, device, c, peak) for p, b, c in shapes])
    store_dir = out / "store"
    store = None

    def make_store():
        nonlocal store
        train_tokens = 300_000 if args.quick else 1_000_000  # the stdlib of a minimal Python image holds ~3M tokens
        store = prepare("stdlib", store_dir, VOCAB if not args.quick else 512, train_tokens, 100_000, 100_000,
                        tokenizer_bytes=2_000_000, log=lambda *a, **k: None)
        return {"train_tokens": train_tokens, "vocab": store.vocab_size}

    section("store", make_store)
    if store is not None:
        section("torchrun", lambda: torchrun_check(store.path, out, device, args.quick))
        gpus = max(1, torch.cuda.device_count())  # FSDP on one GPU, and on all of them (2 ranks on a CPU check)
        for ranks in sorted({1, gpus} if device == "cuda" else {2}):
            section(f"fsdp-{ranks}", lambda r=ranks: torchrun_check(store.path, out, device, args.quick, "fsdp", r))
        section("ensemble", lambda: ensemble_check(store, out, device, args.quick))
        section("cpt", lambda: cpt_check(store, out, device, args.quick))
        section("workers", lambda: workers_check(store, device, args.quick))
    if not args.skip_mini and not args.quick:
        section("gpu-mini", lambda: mini_check(out))
    return 0


def cpt_check(store, out: Path, device: str, quick: bool) -> dict:
    """A HF GPT-2 (12 x 768 unless quick) with the store's tokenizer, continued on the store in bf16."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = out / "hf-gpt2"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(store.path / "tokenizer.json"), eos_token="<|endoftext|>")
    shape = dict(n_layer=2, n_embd=64, n_head=4) if quick else dict(n_layer=12, n_embd=768, n_head=12)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=store.vocab_size, n_positions=256, **shape)).save_pretrained(folder)
    tok.save_pretrained(folder)
    cpt_store = prepare("stdlib", out / "cpt-store", 512, 300_000, 50_000, 50_000, tokenizer=f"hf:{folder}",
                        log=lambda *a, **k: None)
    cfg = apply_overrides(get_preset("tiny"), [f"train.device=\"{device}\"", "model.seq_len=256", "train.batch_size=16",
                                               "train.log_every=1", "train.eval_tokens=20000"])
    cfg.init.source, cfg.data = f"hf:{folder}", str(cpt_store.path)
    cfg.train.tokens, cfg.train.epochs = (8_192 if quick else 200_000), 0.0
    t0 = time.perf_counter()
    summary = train(cfg, out / "cpt-run", results=str(out / "results"), quiet=True)
    wall = time.perf_counter() - t0
    first = json.loads((out / "cpt-run" / "metrics.jsonl").read_text().splitlines()[0])
    stored = read_config(out / "cpt-run")
    x, y = build_loader(stored, cpt_store, 0, 1).batch(0)
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        logits = ref(x.to(device)).logits.float()
    hf_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.to(device).flatten()).item()
    return {"params": summary.get("params"), "first_loss": first["loss"], "hf_loss_bf16": hf_loss,
            "val_loss": summary["val_loss"], "wall_s": wall}


def write(out: Path, tag: str, r: dict) -> None:
    (out / f"gpu_check_{tag}.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    s = r["sections"]
    lines = [f"# GPU check: {r['gpu']}", "",
             f"{r['date']}; torch {r['torch']} (CUDA {r['cuda']}), Python {r['python']}; "
             "`PYTHONPATH=src python benchmarks/gpu_check.py --out DIR`.", ""]
    if "peak" in s:
        lines += [f"Measured dense matmul peak: **{s['peak']['flops'] / 1e12:.3g} TFLOP/s** (bf16 8192^3 on CUDA, "
                  "fp32 1024^3 on a CPU); MFU below divides by it.", ""]
    if "steps" in s:
        lines += ["| preset | compiled | params | batch x T | tokens/s | TFLOP/s | MFU | warm-up s (compile) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {x['preset']} | {x['compile'] if isinstance(x['compile'], str) else 'yes' if x['compile'] else 'no'} | {x['params'] / 1e6:.1f}M | {x['batch']} x {x['T']} "
                  f"| {x['tok_s']:,.0f} | {x['tflops']:.1f} | {x['mfu']:.1%} | {x['warmup_s']:.1f} |" for x in s["steps"]]
        lines.append("")
    if "torchrun" in s:
        t = s["torchrun"]
        lines += [f"1-GPU torchrun (`scarce train`, process group and DDP): completed in {t['wall_s']:.1f} s wall, "
                  f"last logged {t['tok_s_last_log'] or 0:,.0f} tokens/s, val loss {t['val_loss']:.4f}.", ""]
    for key in sorted(k for k in s if k.startswith("fsdp-")):
        t = s[key]
        lines += [f"torchrun with train.parallel=fsdp on {t['ranks']} rank(s): completed in {t['wall_s']:.1f} s wall, "
                  f"last logged {t['tok_s_last_log'] or 0:,.0f} tokens/s per rank, val loss {t['val_loss']:.4f}.", ""]
    if "ensemble" in s:
        lines += ["| ensemble members | seconds | val tokens | peak GPU memory MB | val loss |", "|---|---|---|---|---|"]
        for k, e in s["ensemble"].items():
            mem = "" if e["peak_gpu_mb"] is None else f"{e['peak_gpu_mb']:,.0f}"
            lines.append(f"| {k} | {e['seconds']:.1f} | {e['tokens']:,} | {mem} | {e['val_loss']:.4f} |")
        lines.append("")
    if "cpt" in s:
        c = s["cpt"]
        lines += [f"Continued pretraining from a HF GPT-2 (`init.source hf:`, bf16): step-0 loss {c['first_loss']:.4f} "
                  f"(transformers on the same batch, bf16 autocast: {c['hf_loss_bf16']:.4f}); val loss after "
                  f"{c['wall_s']:.1f} s: {c['val_loss']:.4f}.", ""]
    if "workers" in s:
        lines += ["| preset | batch | one run: MFU, peak memory | workers per GPU (default) | 1 worker tokens/s | "
                  "N workers tokens/s (sum; over the wall) | gain (sum; wall) |", "|---|---|---|---|---|---|---|"]
        for w in s["workers"]:
            pr = w["probe"]
            lines.append(f"| {w['preset']} | {w['batch']} | {pr['mfu']:.1%}, {pr['peak_bytes'] / 2**30:.2f} GiB | "
                         f"{w['workers']} | {w['one']['tok_s_sum']:,.0f} | {w['many']['tok_s_sum']:,.0f}; "
                         f"{w['many']['tok_s_wall']:,.0f} | {w['gain_sum']:.1f}x; {w['gain_wall']:.1f}x |")
        lines += ["", "Default workers per GPU: " + "; ".join(f"{w['preset']}: {w['why']}" for w in s["workers"]), ""]
    if "gpu-mini" in s:
        m = s["gpu-mini"]
        found = ", ".join(f"{f['id']} {'yes' if f['reproduced'] else 'no' if f['reproduced'] is False else '-'}"
                          for f in m["findings"])
        eff = "-" if m["efficiency"] is None else f"{m['efficiency']:.2f}x [{m['low']:.2f}, {m['high']:.2f}]"
        lines += [f"`scarce bench --preset gpu-mini`: **{m['wall_s'] / 60:.1f} min** on {m['workers']} worker(s) "
                  f"(target 8 min); default {m['default']} {eff}; findings reproduced: {found}.", ""]
    for name, err in r["errors"].items():
        lines += [f"**{name} failed**:", "", "```", err.strip(), "```", ""]
    (out / f"gpu_check_{tag}.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
