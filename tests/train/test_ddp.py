"""torchrun on CPU (gloo): two ranks of batch B take the windows one process of batch 2B takes,
and average gradients, so they reach the same weights (up to float rounding)."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

COMMON = ["--set", "model.depth=1", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
          "--set", "train.eval_tokens=256", "--tokens", str(6 * 8 * 32), "--threads", "1", "--quiet"]


def test_two_ranks_match_one_process_of_twice_the_batch(stdlib_store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = ["train", "--data", str(stdlib_store.path), "--results", str(tmp_path / "r"), *COMMON]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "scarce.cli", *base, "--out", str(tmp_path / "ddp"), "--set", "train.batch_size=4"],
                   check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "scarce.cli", *base, "--out", str(tmp_path / "one"),
                    "--set", "train.batch_size=8"], check=True, env=env, capture_output=True, timeout=300)
    a = load_file(str(tmp_path / "ddp" / "checkpoints" / "best.safetensors"))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "best.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert not torch.equal(a["embed.weight"], torch.zeros_like(a["embed.weight"]))
