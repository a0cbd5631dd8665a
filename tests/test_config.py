import pytest

from scarce.config import PRESETS, RunConfig, apply_overrides, get_preset
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
    with pytest.raises(UserError, match="section.field=value"):
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
