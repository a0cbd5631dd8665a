#!/bin/bash
# The record lines left after the first two runs, against the bench's slowrun stack (no looping) at cpu-small's budget (sample 0
# on 2048-byte pieces), at the bench's regularized choice (depth 4, lr 3e-3, 16 epochs, WSD) with the stack on top as
# the bench stacks it (Muon, weight decay 1.3, dropout 0.1, ...), 3 seeds, each change alone; reference law: the
# bench's standard stage of sample 0.
cd /work/main
exec .venv/bin/scarce ablate --data /work/runs/after/sample-0/stores/train-100000 --out /work/runs/abl-stack \
  --results /work/runs/abl-stack-res --reference /work/runs/after-res --seeds 3 --workers 2 --threads 1 --no-stack \
  --set model.depth=4 --set model.aspect_ratio=32 --set model.head_dim=32 --set model.seq_len=128 \
  --set train.batch_size=16 --set train.log_every=1000 --set optim.lr=3e-3 --set train.epochs=16 \
  --set train.eval_every=1000000000 \
  --set model.mlp=swiglu --set model.value_embed=alt --set model.unet_skips=true --set model.attn_gate=true \
  --set model.mtp_weight=0.3 --set model.resid_lambdas=true --set model.qk_norm=true --set model.window_pattern=SSSL \
  --set model.tie_embeddings=false --set model.softcap=10.0 --set model.dropout=0.1 --set model.loop_layers= \
  --set optim.optimizer=muon --set optim.cautious_wd=true --set optim.weight_decay=1.3 --set optim.beta1=0.8 \
  --set optim.eps=1e-10 --set optim.grad_clip=0.0 --set optim.schedule=wsd --set optim.warmup_frac=0.0 \
  --set optim.warmdown_frac=0.2 --set optim.final_lr_frac=0.0 --set optim.wd_schedule=constant \
  --set optim.ema_decay=0.0 --set optim.avg_last=3 \
  --change muoneq:optim.muon_row_norm=true,optim.muon_orth=polar-express,optim.muon_momentum_warmup=300,optim.muon_momentum_start=0.85 \
  --change swa:optim.swa_epochs=3 \
  --change xsa_learn:model.xsa=true,model.xsa_learn=true \
  --change loop_last:model.loop_layers=0:3,model.loop_extra=1,model.loop_from=0.7,model.loop_backprop=last \
  --change record:optim.muon_row_norm=true,optim.muon_orth=polar-express,optim.muon_momentum_warmup=300,optim.muon_momentum_start=0.85,optim.swa_epochs=3,optim.wd_schedule=record,optim.warmdown_power=0.5,model.init=record,model.drop_path=0.05,model.iha=all,train.doc_shuffle=true
