"""Probe: does a smaller vocabulary (more tokens per vocabulary entry) flatten the reference and widen the
recipes' multiple at cpu-small's budget? One size (depth 4), cpu-small's chosen regularized setting (lr 3e-3,
weight decay 3.2, 8 epochs; not retuned), a 4-member ensemble, the reference at 8 epochs (8x: 4).

    python benchmarks/vocab_probe.py 512 /tmp/vocab     # ~17 min on 2 cores

Prints each recipe's val loss and data efficiency and the reference; the bench report is in OUT/out{VOCAB}."""
import sys

from scarce.bench import CPU_FAMILY, BenchPreset, bench
from scarce.runs.executors import Execution


def main():
    vocab, out = int(sys.argv[1]), sys.argv[2]
    p = BenchPreset(f"vocab{vocab}", budget_tokens=100_000, multiples=(1, 2, 4, 8), vocab_size=vocab,
                    select_tokens=100_000, val_tokens=100_000, heldout_window=384, overrides=CPU_FAMILY, sizes=(4,),
                    standard_epochs=(8,), reference_epochs={2: (8,), 4: (8,), 8: (4,)}, lrs=(3e-3,),
                    weight_decays=(3.2,), epochs=(8,), max_rounds=0, members=4, downstream_items=0)
    r = bench(f"{out}/out{vocab}", p, execution=Execution(results=f"{out}/res{vocab}"))
    print({k: (v["val_loss"], v["efficiency"]) for k, v in r.recipes.items()})
    print([(x["multiple"], x["val_loss"]) for x in r.reference])


if __name__ == "__main__":
    main()
