#!/bin/bash
# Three more of the record's knobs at cpu-small's budget (IHA, target offsets, the square-root warmdown), each alone on
# the same baseline and reference as run.sh (whose baseline runs it reuses), 3 seeds, no stack.
cd /work/main
exec .venv/bin/scarce ablate --data /work/runs/after/sample-0/stores/train-100000 --out /work/runs/abl2 \
  --results /work/runs/abl-res --reference /work/runs/after-res --seeds 3 --workers 2 --threads 1 \
  --set model.depth=4 --set model.aspect_ratio=32 --set model.head_dim=32 --set model.seq_len=128 \
  --set train.batch_size=16 --set train.log_every=1000 --set optim.schedule=wsd --set optim.warmup_frac=0 \
  --set optim.warmdown_frac=0.2 --set optim.lr=3e-3 --set optim.weight_decay=3.2 --set train.epochs=16 \
  --set train.eval_every=1000000000 --no-stack \
  --change iha:model.iha=all --change offset:train.augment_offset=0.1 \
  --change sqrt_warmdown:optim.warmdown_power=0.5
