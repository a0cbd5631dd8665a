"""Beyond one machine, tested as two local "nodes": multi-node torchrun (one process per node, a c10d rendezvous on
localhost) reaches what one process of twice the batch reaches, and a Ray cluster started with `ray start --head`
runs a sweep's points (`--executor ray --ray-address`), and the bench's, to the same run-store rows as local
workers."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scarce.runs.store import RunStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
RAY_ENV = {**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
"""Ray's single-machine mode, every Ray process of the test on the loopback address (else Ray reaches its head
through the machine's own network address); token authentication, which `ray start` turns on, for the head and
the driver alike (the driver reads the token `ray start` wrote)."""
COMMON = ["--set", "model.depth=1", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
          "--set", "train.eval_tokens=256", "--tokens", str(6 * 8 * 32), "--threads", "1", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_match_one_process(stdlib_store, tmp_path):
    """`torchrun --nnodes 2 --node_rank K --rdzv_backend c10d --rdzv_endpoint HOST:PORT`, as on two machines."""
    base = ["train", "--data", str(stdlib_store.path), "--results", str(tmp_path / "r"), *COMMON]
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(k),
                               "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
                               "--rdzv_id", "scarce-test", "-m", "scarce.cli", *base, "--out", str(tmp_path / "nodes"),
                               "--set", "train.batch_size=4"], env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    for node in nodes:
        assert node.wait(timeout=300) == 0, node.stderr.read()[-3000:]
    subprocess.run([sys.executable, "-m", "scarce.cli", *base, "--out", str(tmp_path / "one"),
                    "--set", "train.batch_size=8"], check=True, env=ENV, capture_output=True, timeout=300)
    a = load_file(str(tmp_path / "nodes" / "checkpoints" / "best.safetensors"))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "best.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


@pytest.fixture(scope="module")
def ray_head():
    """A one-machine Ray cluster started by hand (`ray start --head`) on the loopback address: its address."""
    if importlib.util.find_spec("ray") is None or RAY is None:
        pytest.skip("needs the ray extra")
    port = _free_port()
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"], check=True, env=RAY_ENV,
                   capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=RAY_ENV, capture_output=True, timeout=120)


def test_a_ray_cluster_started_by_hand_runs_a_sweep(tiny_store, tmp_path, ray_head):
    spec = {"name": "cl", "data": str(tiny_store.path), "grid": {"optim.lr": [1e-3, 3e-3]},
            "set": {"model.depth": 1, "model.aspect_ratio": 32, "model.head_dim": 16, "model.seq_len": 32,
                    "train.batch_size": 4, "train.tokens": 256, "train.eval_tokens": 256}}
    rows = {}
    for name, executor in (("local", ["--workers", "2"]),
                           ("ray", ["--executor", "ray", "--ray-address", ray_head, "--workers", "2"])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**spec, "out": str(tmp_path / name / "runs")}))
        (tmp_path / f"{name}.py").write_text(f"import json\ndef make():\n    return json.load(open({str(path)!r}))\n")
        done = subprocess.run([sys.executable, "-m", "scarce.cli", "sweep", f"{tmp_path / name}.py:make",
                               "--results", str(tmp_path / name), "--threads", "1", *executor],
                              env=RAY_ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        store = RunStore(tmp_path / name)
        rows[name] = {r.id: (r.status, r.val_loss) for r in store.list(sweep="cl")}
        store.close()
    assert rows["ray"] == rows["local"] and len(rows["ray"]) == 2


def test_the_bench_runs_its_runs_on_a_ray_cluster(tmp_path, ray_head, monkeypatch):
    """`scarce bench --executor ray --ray-address HEAD`: every run a task on the cluster, the same run-store rows
    (ids and losses) as the same bench on one local worker."""
    from scarce.bench import BenchPreset
    from scarce.cli.main import main

    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "docs.jsonl").write_text("\n".join(
        json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:900]}) for p in files) + "\n")
    preset = BenchPreset("ray-micro", budget_tokens=1000, multiples=(1, 2, 4), corpus=f"files:{tmp_path / 'corpus'}",
                         vocab_size=300, select_tokens=500, val_tokens=500, tokenizer_bytes=0, heldout_window=200,
                         overrides={"model.aspect_ratio": 16, "model.head_dim": 16, "model.seq_len": 32,
                                    "train.batch_size": 4}, sizes=(1, 2), standard_epochs=(1, 2),
                         reference_epochs={2: (1,), 4: (1,)}, lrs=(3e-3,), weight_decays=(0.1, 0.8), epochs=(2,),
                         max_rounds=1, members=1, n_boot=20, downstream_items=0, smoke=True)
    from scarce.bench.presets import BENCH_PRESETS

    monkeypatch.setitem(BENCH_PRESETS, "ray-micro", preset)
    rows = {}
    for name, executor in (("local", ["--workers", "1"]), ("ray", ["--executor", "ray", "--ray-address", ray_head])):
        argv = ["bench", "--preset", "ray-micro", "--recipe", "regularized", "--out", str(tmp_path / name),
                "--results", str(tmp_path / f"{name}-results"), *executor]
        assert main(argv) == 0
        store = RunStore(tmp_path / f"{name}-results")
        rows[name] = {r.id: (r.status, r.val_loss) for r in store.list()}
        store.close()
    assert rows["ray"] == rows["local"] and len(rows["ray"]) >= 8
