import json

import pytest

from scarce.config import (
    PRESETS,
    RunConfig,
    apply_overrides,
    get_preset,
    slowrun_overrides,
    with_slowrun_tiny_stack,
)
from scarce.errors import UserError


def test_presets_build_and_round_trip():
    for name in PRESETS:
        cfg = get_preset(name)
        assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_size_dial_derives_width_and_heads():
    cfg = get_preset("tiny").model
    assert (cfg.d_model, cfg.n_heads) == (128, 4)
    cfg = apply_overrides(get_preset("tiny"), ["model.depth=6"]).model
    assert cfg.d_model == 6 * 32 and cfg.n_heads == 6


def test_overrides_parse_json_values_and_check_types():
    cfg = apply_overrides(get_preset("tiny"), ["optim.weight_decay=6", "model.tie_embeddings=false"])
    assert cfg.optim.weight_decay == 6.0 and cfg.model.tie_embeddings is False
    with pytest.raises(UserError, match="optim.lr"):
        apply_overrides(cfg, ["optim.lr=fast"])
    with pytest.raises(UserError, match="unknown config field"):
        apply_overrides(cfg, ["optim.learning_rate=1"])
    with pytest.raises(UserError, match="FIELD=VALUE"):
        apply_overrides(cfg, ["optim.lr"])
    with pytest.raises(UserError, match="model.dropout"):
        apply_overrides(cfg, ["model.dropout=1.5"])


def test_run_id_names_the_semantic_config():
    a = get_preset("tiny")
    assert a.run_id("fp") == get_preset("tiny").run_id("fp")
    assert apply_overrides(a, ["train.seed=1"]).run_id("fp") != a.run_id("fp")
    assert apply_overrides(a, ["train.threads=1"]).run_id("fp") == a.run_id("fp")  # execution detail
    assert a.run_id("fp") != a.run_id("other-data")


def test_run_ids_without_dropout_survive_the_attn_dropout_field():
    # Ids from before model.attn_dropout existed: runs without dropout keep theirs; runs with
    # model.dropout > 0 (which then also dropped attention probabilities) get new ones.
    a = get_preset("tiny")
    assert a.run_id("fp") == "a0f423421e096fff"
    assert apply_overrides(a, ["model.dropout=0.1"]).run_id("fp") != "08a03a79359dba6d"
    assert apply_overrides(a, ["model.attn_dropout=0.1"]).run_id("fp") != a.run_id("fp")


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset"):
        get_preset("huge")


def test_configs_of_earlier_versions_move_tag_behaviour_into_sections():
    """Before the objective, mix and init sections, distillation, mixing, the init seed and snapshots
    travelled in tags; a config.json of that time loads as the same run, with nothing left in tags."""
    old = get_preset("tiny").to_dict()
    for section in ("objective", "mix", "init"):
        del old[section]
    del old["train"]["snapshot_every"]
    old["tags"] = {"group": "ens-1", "member": 1, "init_seed": 5, "snapshot_every": 4,
                   "distill": {"teachers": ["/runs/m00"], "alpha": 0.5, "temperature": 2.0},
                   "mix": {"store": "/stores/synthetic", "synthetic_frac": 0.9}}
    cfg = RunConfig.from_dict(old)
    assert cfg.tags == {"group": "ens-1", "member": 1}
    assert (cfg.objective.kind, cfg.objective.teachers, cfg.objective.alpha) == ("distill", ["/runs/m00"], 0.5)
    assert (cfg.mix.store, cfg.mix.frac, cfg.init.seed, cfg.train.snapshot_every) == ("/stores/synthetic", 0.9, 5, 4)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_new_sections_at_their_defaults_leave_run_ids_unchanged():
    plain = get_preset("tiny")
    assert plain.run_id("fp") == "a0f423421e096fff"  # the id this config had before the sections existed
    for override in ("objective.alpha=0.7", "init.seed=3", "mix.store=\"x\"", "train.snapshot_every=5"):
        assert apply_overrides(plain, [override]).run_id("fp") != plain.run_id("fp"), override


def test_objective_sections_are_checked():
    with pytest.raises(UserError, match="objective.teachers"):
        apply_overrides(get_preset("tiny"), ["objective.kind=distill"])
    with pytest.raises(UserError, match="mix.store"):
        apply_overrides(get_preset("tiny"), ["mix.frac=0.5"])
    with pytest.raises(UserError, match="objective.teachers"):
        apply_overrides(get_preset("tiny"), ['objective.teachers=["a", 3]'])


def test_slowrun_tiny_preset_is_the_tiny_records_lines_on_the_small_size():
    cfg, small = get_preset("slowrun-tiny"), get_preset("small")
    m, o = cfg.model, cfg.optim
    assert (m.depth, m.d_model, m.seq_len, o.lr, cfg.train.epochs) == (6, 288, 256, 2e-3, 1.0)  # small's size
    assert (m.loop_layers, m.loop_extra, m.loop_from, m.loop_backprop) == ("0:5", 1, 0.7, "last")  # 2x, last 30%
    assert (m.xsa, m.xsa_learn, m.rotary_frac, m.key_offset, m.window_pattern) == (True, True, 0.5, "3,5", "SSSL")
    assert (m.mlp, m.value_embed, m.softcap, m.dropout, m.tie_embeddings, m.iha) == ("swiglu", "alt", 15.0, 0.1,
                                                                                     False, "")
    assert (o.optimizer, o.muon_orth, o.muon_row_norm, o.muon_momentum_warmup, o.weight_decay) == (
        "muon", "polar-express", False, 300, 0.8)
    assert (o.schedule, o.warmdown_frac, o.swa_epochs, cfg.train.doc_shuffle) == ("wsd", 0.4, 0, True)
    deeper = with_slowrun_tiny_stack(apply_overrides(small, ["model.depth=8"]))
    assert (deeper.model.loop_layers, deeper.model.key_offset) == ("0:7", "3,7")


def test_slowrun_preset_has_the_record_lines_and_the_bench_stack_does_not():
    """The `slowrun` preset carries the 1-hour record's later lines (14, 15, 17-20) at the record's values; the bench's
    stack (`slowrun_overrides()`) keeps the earlier lines only, and `record=True` gives the preset's."""
    cfg = get_preset("slowrun")
    o, m, t = cfg.optim, cfg.model, cfg.train
    assert (m.init, m.drop_path, m.iha, m.loop_backprop) == ("record", 0.05, "all", "all")
    assert (o.muon_orth, o.muon_row_norm, o.muon_momentum_warmup, o.muon_momentum_start) == (
        "polar-express", True, 300, 0.85)
    assert (o.wd_schedule, o.warmdown_power, o.swa_epochs, t.doc_shuffle) == ("record", 0.5, 0, True)
    bench = slowrun_overrides()
    assert bench["optim.wd_schedule"] == "constant" and "model.iha" not in bench and "train.doc_shuffle" not in bench
    full = slowrun_overrides(record=True)
    stacked = apply_overrides(get_preset("small"), [f"{k}={json.dumps(v)}" for k, v in full.items()])
    assert (stacked.model, stacked.optim, stacked.train) == (m, o, t)
