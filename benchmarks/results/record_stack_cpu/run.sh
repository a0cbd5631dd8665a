#!/bin/bash
# The record-stack knobs at cpu-small's budget (sample 0 on 2048-byte pieces), the bench's regularized choice as
# baseline, 3 seeds, each knob added alone and all stacked; reference law: the bench's standard stage of sample 0.
cd /work/main
exec .venv/bin/scarce ablate --data /work/runs/after/sample-0/stores/train-100000 --out /work/runs/abl \
  --results /work/runs/abl-res --reference /work/runs/after-res --seeds 3 --workers 2 --threads 1 \
  --set model.depth=4 --set model.aspect_ratio=32 --set model.head_dim=32 --set model.seq_len=128 \
  --set train.batch_size=16 --set train.log_every=1000 --set optim.schedule=wsd --set optim.warmup_frac=0 \
  --set optim.warmdown_frac=0.2 --set optim.lr=3e-3 --set optim.weight_decay=3.2 --set train.epochs=16 \
  --set train.eval_every=1000000000 \
  --change drop_path:model.drop_path=0.05 --change init_record:model.init=record \
  --change replace:train.augment_replace=0.1 \
  --change wd_record:optim.wd_schedule=record \
  --change doc_shuffle:train.doc_shuffle=true
