"""Ensembles: combine members' next-token distributions, memory-bounded, with the K-scaling curve in one pass.

Two ways to combine K members' distributions p_1..p_K over the vocabulary:
- logit averaging: the normalised geometric mean, softmax(mean_k log p_k) (sharper; usually better for LMs);
- probability averaging: the arithmetic mean, mean_k p_k (a proper mixture).

Memory does not grow with K: members are loaded one at a time, and each member's predictions are
added to a running sum held in a disk-backed array (the summed log-probabilities over the whole
vocabulary for logit averaging; the summed target probabilities for probability averaging). After
member k is added, the sum is the ensemble of the first k members, so one pass over the members
gives the loss of every prefix k = 1..K.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scarce import atomic
from scarce.config import RunConfig
from scarce.data.loader import eval_batches
from scarce.errors import UserError
from scarce.model.gpt import GPT
from scarce.train.checkpoint import load_weights

COMBINES = ("logit", "prob")


@dataclass(frozen=True)
class Member:
    """One ensemble member: a run's config and one of its weight files (best-on-select by default)."""

    run_dir: Path
    weights: Path

    @classmethod
    def of_run(cls, run_dir: str | Path) -> Member:
        run_dir = Path(run_dir)
        return cls(run_dir, run_dir / "checkpoints" / "best.safetensors")


def snapshot_members(run_dir: str | Path) -> list[Member]:
    """Snapshot ensemble: every weight file a run kept under checkpoints/snapshots/ (e.g. the ends
    of the cycles of a cyclic schedule), in step order."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "checkpoints" / "snapshots").glob("*.safetensors"))
    if not files:
        raise UserError(f"{run_dir} has no snapshots (checkpoints/snapshots/*.safetensors); "
                        "train with snapshots or list member runs instead")
    return [Member(run_dir, f) for f in files]


def read_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); check the path")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def load_member(member: Member | str | Path, device: str = "cpu") -> GPT:
    """The member's model in inference mode (a run dir means its best-on-select weights)."""
    if not isinstance(member, Member):
        member = Member.of_run(member)
    model = GPT(read_config(member.run_dir).model)
    model.load_state_dict(load_weights(member.weights))
    return model.to(device).eval().requires_grad_(False)


def combine_logprobs(logprobs: torch.Tensor, combine: str = "logit") -> torch.Tensor:
    """Combine stacked member log-probs (K, ..., V) into the ensemble's log-probs (..., V)."""
    k = logprobs.shape[0]
    if combine == "logit":
        return torch.log_softmax(logprobs.mean(0), dim=-1)
    if combine == "prob":
        return torch.logsumexp(logprobs, dim=0) - math.log(k)
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")


@torch.no_grad()
def evaluate_ensemble(members: list[Member], tokens: np.ndarray, token_bytes: np.ndarray, seq_len: int,
                      batch_size: int = 16, max_tokens: int = 0, combine: str = "logit", device: str = "cpu",
                      cache_dir: str | Path | None = None, max_cache_bytes: int = 2 << 30) -> dict:
    """Loss (nats/token, bits/byte) of every prefix k = 1..K of `members` and of each member alone,
    in one pass over the members, with one member in memory at a time.

    Logit averaging needs the summed log-probs over the whole vocabulary, 4 * V bytes per token on
    disk. A split whose sum would exceed `max_cache_bytes` is evaluated in blocks, each a full pass
    over the members (members are then loaded once per block)."""
    if combine not in COMBINES:
        raise UserError(f"--combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    if not members:
        raise UserError("an ensemble needs at least one member")
    windows = (len(tokens) - 1) // seq_len
    windows = min(windows, max(1, max_tokens // seq_len)) if max_tokens else windows
    vocab = read_config(members[0].run_dir).model.vocab_size
    per_window = 4 * seq_len * (vocab if combine == "logit" else 1)
    block = max(batch_size, max_cache_bytes // per_window // batch_size * batch_size)
    prefix_nll, member_nll = np.zeros(len(members)), np.zeros(len(members))
    n = nbytes = 0
    for start in range(0, max(windows, 1), block):
        part = tokens[start * seq_len:min(start + block, windows) * seq_len + 1]
        batches = list(eval_batches(part, seq_len, batch_size))
        n += sum(y.numel() for _, y in batches)
        nbytes += sum(int(token_bytes[y.numpy()].sum()) for _, y in batches)
        ens, own = _one_pass(members, batches, vocab, combine, device, cache_dir)
        prefix_nll += ens
        member_nll += own
    bits = math.log(2) * max(nbytes, 1)
    return {
        "combine": combine, "tokens": n, "bytes": nbytes,
        "prefix_loss": [x / n for x in prefix_nll], "prefix_bpb": [x / bits for x in prefix_nll],
        "member_loss": [x / n for x in member_nll], "member_bpb": [x / bits for x in member_nll],
    }


def _one_pass(members: list[Member], batches: list, vocab: int, combine: str, device: str,
              cache_dir) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL of each prefix ensemble and of each member over `batches`, adding members one by one
    to a running sum kept in a disk-backed array (deleted afterwards)."""
    n = sum(y.numel() for _, y in batches)
    ens, own = np.zeros(len(members)), np.zeros(len(members))
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="ensemble-acc-") as tmp:
        shape = (n, vocab) if combine == "logit" else (n,)
        acc = np.lib.format.open_memmap(Path(tmp) / "acc.npy", mode="w+", dtype=np.float32, shape=shape)
        for k, member in enumerate(members, start=1):
            model = load_member(member, device)
            if model.cfg.vocab_size != vocab:
                raise UserError(f"member {member.run_dir} has vocabulary {model.cfg.vocab_size}, not {vocab}")
            ens[k - 1], own[k - 1] = _add_member(model, batches, acc, k, combine, device)
            del model
        del acc
    return ens, own


def _add_member(model: GPT, batches, acc: np.ndarray, k: int, combine: str, device: str) -> tuple[float, float]:
    """Add one member to the running sum; returns (NLL of the k-prefix ensemble, NLL of the member)."""
    ens_nll, own_nll, row = 0.0, 0.0, 0
    for x, y in batches:
        lp = torch.log_softmax(model(x.to(device)).float(), dim=-1).flatten(0, 1).cpu()  # (b*T, V)
        target = y.flatten()
        rows = slice(row, row + target.numel())
        row += target.numel()
        own = lp.gather(1, target[:, None]).squeeze(1)  # (b*T,)
        own_nll -= own.double().sum().item()
        if combine == "logit":
            total = lp if k == 1 else torch.from_numpy(acc[rows]) + lp
            acc[rows] = total.numpy()
            ens = torch.log_softmax(total / k, dim=-1).gather(1, target[:, None]).squeeze(1)
        else:
            total = own.exp() if k == 1 else torch.from_numpy(acc[rows]) + own.exp()
            acc[rows] = total.numpy()
            ens = torch.log(total / k)
        ens_nll -= ens.double().sum().item()
    return ens_nll, own_nll


# ---------------------------------------------------------------------------------------------
# Training an ensemble: K members that differ by seed, each a normal run grouped under one id.

SEED_MODES = ("both", "init", "data")


def member_config(base: RunConfig, k: int, group: str, seed_mode: str = "both") -> RunConfig:
    """Member k's config: the base with its own seed (init, data order or both) and the group tags."""
    if seed_mode not in SEED_MODES:
        raise UserError(f"--seed-mode must be one of {', '.join(SEED_MODES)}, got {seed_mode!r}")
    cfg = RunConfig.from_dict(base.to_dict())
    seed = base.train.seed + k
    if seed_mode in ("both", "data"):
        cfg.train.seed = seed
    if seed_mode != "both":  # the init seed differs from the data seed: MemberTrainer re-initialises
        cfg.tags["init_seed"] = seed if seed_mode == "init" else base.train.seed
    cfg.tags.update(group=group, member=k)
    return cfg


def ensemble_group(base: RunConfig, seed_mode: str, distill: dict | None, role: str = "members") -> str:
    """The ensemble id: a hash of what defines the members (not K, so a larger K extends an ensemble)."""
    probe = RunConfig.from_dict(base.to_dict())
    probe.tags.update(seed_mode=seed_mode, distill=distill or {}, role=role)
    return "ens-" + probe.run_id()[:12]


def ensemble(base: RunConfig, members: int, out: str | Path, combine: str = "logit", workers: int = 1,
             seed_mode: str = "both", chain_distill: bool = False, alpha: float = 0.5, temperature: float = 2.0,
             results: str | None = None, quiet: bool = False, log=print, student: bool = False) -> dict:
    """Train (or reuse) K members into OUT/members/, evaluate every prefix on val, write OUT/ensemble.json;
    with `student`, also distill the K-member ensemble into one model of the same config (OUT/student)."""
    if members < 1:
        raise UserError("--members must be >= 1")
    if workers < 1:
        raise UserError("--workers must be >= 1")
    if not base.data:
        raise UserError("no token store given: pass --data DIR (made by `scarce prepare`)")
    base = RunConfig.from_dict({**base.to_dict(), "data": str(Path(base.data).resolve())})
    out = Path(out)
    distill = {"alpha": alpha, "temperature": temperature} if chain_distill else None
    group = ensemble_group(base, seed_mode, distill)
    cfgs = [member_config(base, k, group, seed_mode) for k in range(members)]
    dirs = [out / "members" / f"m{k:02d}" for k in range(members)]
    if chain_distill:
        if workers > 1:
            log("note: chain distillation trains members one after another (member k needs k-1); --workers ignored")
        for k in range(members):
            cfg = cfgs[k] if k == 0 else _chain_config(cfgs[k], dirs[k - 1], alpha, temperature)
            train_member(cfg.to_dict(), str(dirs[k]), results, quiet)
    else:
        _train_all(cfgs, dirs, workers, results, quiet)
    report = write_evaluation(out, [Member.of_run(d) for d in dirs], combine, base.train.batch_size,
                              extra={"group": group, "seed_mode": seed_mode, "chain_distill": chain_distill,
                                     **({"alpha": alpha, "temperature": temperature} if chain_distill else {})})
    if student:
        report["student"] = distill_student(base, dirs, out, alpha, temperature, results, quiet)
        atomic.write_json(out / "ensemble.json", report)
    return report


def distill_student(base: RunConfig, teachers: list[Path], out: str | Path, alpha: float = 0.5,
                    temperature: float = 2.0, results: str | None = None, quiet: bool = False) -> dict:
    """Train one model of the base config from the logit-averaged ensemble of `teachers` into OUT/student;
    returns its run dir and val loss, evaluated like the members."""
    cfg = _chain_config(base, teachers, alpha, temperature)
    cfg.train.seed = base.train.seed + len(teachers)  # a seed no member used
    cfg.tags.update(group=ensemble_group(base, "", cfg.tags["distill"], "student"), member="student")
    run_dir = Path(out) / "student"
    train_member(cfg.to_dict(), str(run_dir), results, quiet)
    from scarce.data.store import open_store

    store = open_store(cfg.data)
    r = evaluate_ensemble([Member.of_run(run_dir)], store.split("val"), store.token_bytes(), cfg.model.seq_len,
                          cfg.train.batch_size, cache_dir=out)
    return {"run_dir": str(run_dir), "val_loss": r["member_loss"][0], "val_bpb": r["member_bpb"][0],
            "alpha": alpha, "temperature": temperature, "teachers": len(teachers)}


def seq_distill(base: RunConfig, teachers: list[Path], out: str | Path, synthetic_tokens: int,
                synthetic_frac: float = 0.9, temperature: float = 1.0, top_k: int = 0,
                results: str | None = None, quiet: bool = False) -> dict:
    """Sequence-level distillation: sample `synthetic_tokens` from the teacher(s) into OUT/synthetic,
    then train one model of the base config on `synthetic_frac` synthetic : the rest real batches."""
    from scarce.train.distill import synthesize

    if not 0 <= synthetic_frac <= 1:
        raise UserError(f"synthetic_frac must be in [0, 1], got {synthetic_frac}")
    out = Path(out)
    if not (out / "synthetic" / "manifest.json").is_file():
        synthesize([Path(t).resolve() for t in teachers], out / "synthetic", synthetic_tokens, temperature, top_k,
                   seed=base.train.seed)
    cfg = RunConfig.from_dict(base.to_dict())
    cfg.data = str(Path(cfg.data).resolve())
    cfg.train.seed = base.train.seed + len(teachers)
    cfg.tags["mix"] = {"store": str((out / "synthetic").resolve()), "synthetic_frac": synthetic_frac}
    cfg.tags.update(group=ensemble_group(base, "", cfg.tags["mix"], "seq_student"), member="seq_student")
    run_dir = out / "seq_student"
    train_member(cfg.to_dict(), str(run_dir), results, quiet)
    from scarce.data.store import open_store

    store = open_store(cfg.data)
    r = evaluate_ensemble([Member.of_run(run_dir)], store.split("val"), store.token_bytes(), cfg.model.seq_len,
                          cfg.train.batch_size, cache_dir=out)
    return {"run_dir": str(run_dir), "val_loss": r["member_loss"][0], "val_bpb": r["member_bpb"][0],
            "synthetic_tokens": synthetic_tokens, "synthetic_frac": synthetic_frac, "temperature": temperature}


def _chain_config(cfg: RunConfig, teacher: Path | list[Path], alpha: float, temperature: float) -> RunConfig:
    from scarce.train.distill import DistillConfig, with_teacher

    teachers = teacher if isinstance(teacher, list) else [teacher]
    try:
        return with_teacher(cfg, DistillConfig(tuple(str(t.resolve()) for t in teachers), alpha, temperature))
    except ValueError as e:
        raise UserError(str(e)) from None


def _train_all(cfgs: list[RunConfig], dirs: list[Path], workers: int, results: str | None, quiet: bool) -> None:
    if workers == 1:
        for cfg, d in zip(cfgs, dirs):
            train_member(cfg.to_dict(), str(d), results, quiet)
        return
    import concurrent.futures
    import multiprocessing

    # Parallel members are 1-thread processes: on shared CPUs more threads per process stall badly.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        jobs = []
        for cfg, d in zip(cfgs, dirs):
            one = RunConfig.from_dict(cfg.to_dict())
            one.train.threads = 1
            jobs.append(pool.submit(train_member, one.to_dict(), str(d), results, True))
        for job in jobs:
            job.result()


def train_member(cfg_dict: dict, run_dir: str, results: str | None, quiet: bool) -> dict:
    """Train one member, resume it if it was killed, or reuse it if it is complete."""
    from scarce.train.trainer import resume, train

    cfg = RunConfig.from_dict(cfg_dict)
    trainer_cls = _trainer_class(cfg)
    run_dir = Path(run_dir)
    if (run_dir / "config.json").is_file():
        stored, probe = read_config(run_dir), RunConfig.from_dict(cfg.to_dict())
        if probe.model.vocab_size == 0:  # filled from the token store when the run started
            probe.model.vocab_size = stored.model.vocab_size
        if stored.run_id() != probe.run_id():
            raise UserError(f"{run_dir} holds a run of another config (other preset, overrides or ensemble "
                            "settings); choose another --out")
        if (run_dir / "summary.json").is_file():
            return json.loads((run_dir / "summary.json").read_text())
        return resume(run_dir, results, quiet, trainer_cls=trainer_cls)
    return train(cfg, run_dir, results, quiet, trainer_cls=trainer_cls)


def _trainer_class(cfg: RunConfig):
    from scarce.train.distill import DistillTrainer, mixed
    from scarce.train.trainer import Trainer

    base = DistillTrainer if "distill" in cfg.tags else Trainer
    if "mix" in cfg.tags:
        base = mixed(base)
    if "snapshot_every" in cfg.tags:
        base = _snapshot_trainer(base)
    if "init_seed" not in cfg.tags:
        return base

    class MemberTrainer(base):
        """Initialise from tags['init_seed'] instead of train.seed (init and data order seeded apart)."""

        def __init__(self, cfg, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            torch.manual_seed(cfg.tags["init_seed"])
            self.model.reset_parameters()

    return MemberTrainer


def _snapshot_trainer(base):
    class SnapshotTrainer(base):
        """Evaluates every tags['snapshot_every'] steps and keeps the weights of each evaluation as a
        snapshot member (Huang et al., 2017: snapshot ensembles; set the interval to the LR cycle)."""

        def __init__(self, cfg, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            self.eval_every = int(cfg.tags["snapshot_every"])

        def checkpoint(self, record: dict) -> None:
            super().checkpoint(record)
            from scarce.train.checkpoint import save_weights

            path = self.run_dir / "checkpoints" / "snapshots" / f"step_{record['step']:08d}.safetensors"
            save_weights(path, self.model.state_dict())

    return SnapshotTrainer


def snapshot_ensemble(cfg: RunConfig, every: int, out: str | Path, combine: str = "logit",
                      results: str | None = None, quiet: bool = False) -> dict:
    """Train one run into OUT/run keeping a snapshot every `every` steps; evaluate the snapshots as an ensemble."""
    if every < 1:
        raise UserError("--snapshot-every must be >= 1")
    if not cfg.data:
        raise UserError("no token store given: pass --data DIR (made by `scarce prepare`)")
    cfg = RunConfig.from_dict(cfg.to_dict())
    cfg.data = str(Path(cfg.data).resolve())
    cfg.tags["snapshot_every"] = every
    run_dir = Path(out) / "run"
    train_member(cfg.to_dict(), str(run_dir), results, quiet)
    return write_evaluation(out, snapshot_members(run_dir), combine, cfg.train.batch_size,
                            extra={"snapshots": str(run_dir), "snapshot_every": every})


def write_evaluation(out: str | Path, members: list[Member], combine: str = "logit", batch_size: int = 16,
                     max_tokens: int = 0, split: str = "val", extra: dict | None = None) -> dict:
    """Evaluate an ensemble on a split of the first member's token store and write OUT/ensemble.json."""
    from scarce.data.store import open_store

    cfg = read_config(members[0].run_dir)
    store = open_store(cfg.data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    r = evaluate_ensemble(members, store.split(split), store.token_bytes(), cfg.model.seq_len, batch_size,
                          max_tokens, combine, cache_dir=out)
    report = {
        "combine": combine, "split": split, "tokens": r["tokens"], "data": str(store.path), **(extra or {}),
        "members": [{"run_dir": str(m.run_dir), "weights": str(m.weights), f"{split}_loss": loss, f"{split}_bpb": bpb}
                    for m, loss, bpb in zip(members, r["member_loss"], r["member_bpb"])],
        f"prefix_{split}_loss": r["prefix_loss"], f"prefix_{split}_bpb": r["prefix_bpb"],
    }
    atomic.write_json(out / "ensemble.json", report)
    return report
