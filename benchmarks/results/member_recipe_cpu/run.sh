#!/bin/bash
# Kim et al.'s member recipe (2x epochs, 0.5x weight decay) against the single-model setting, as 4-member ensembles
# at cpu-small's budget (sample 0 on pieces), depth 4, seeds 0, 100 and 200 (members s..s+3); the reference is the
# bench's standard stage on the same sample. The 1.0/1.0 members of seeds 0 and 100 are population_cpu's.
cd /work/main
STORE=/work/runs/after/sample-0/stores/train-100000
SET="--set model.aspect_ratio=32 --set model.head_dim=32 --set model.seq_len=128 --set train.batch_size=16 --set train.log_every=1000 --set optim.schedule=wsd --set optim.warmup_frac=0.0 --set optim.warmdown_frac=0.2 --set optim.lr=0.003 --set optim.weight_decay=3.2 --set train.eval_every=1000000000 --set train.epochs=16"
.venv/bin/python benchmarks/member_recipe.py --data $STORE --results /work/runs/pop/res --out /work/runs/kim/out \
  --depth 4 --members 4 --workers 2 --seeds 0 100 200 --recipes 1.0/1.0 2.0/0.5 --reference /work/runs/after-res $SET
# the size probe: 4 members of depth 6 at depth 4's setting (seed 0), measured alone
.venv/bin/python benchmarks/member_recipe.py --data $STORE --results /work/runs/pop/res --out /work/runs/kim/d6 \
  --depth 6 --members 4 --workers 2 --seeds 0 --recipes 1.0/1.0 --reference /work/runs/after-res $SET
