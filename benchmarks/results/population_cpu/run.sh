#!/bin/bash
# population against independent members at cpu-small's budget (pieces, data sample 0), depth 4
cd /work/main
STORE=/work/runs/after/sample-0/stores/train-100000
SET="--set model.aspect_ratio=32 --set model.head_dim=32 --set model.seq_len=128 --set train.batch_size=16 --set train.log_every=1000 --set optim.schedule=wsd --set optim.warmup_frac=0.0 --set optim.warmdown_frac=0.2 --set optim.lr=0.003 --set optim.weight_decay=3.2 --set train.eval_every=1000000000"
variant=$1; seed=$2; shift 2
.venv/bin/scarce recipe population --data $STORE --sizes 4 --out /work/runs/pop/$variant-s$seed --preset tiny $SET \
  --workers 2 --threads 1 --results /work/runs/pop/res \
  --option trajectories=2 --option cycles=8 --option cycle_epochs=2 --option members=4 --option member_epochs=16 \
  --option seed=$seed "$@"
