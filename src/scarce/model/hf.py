"""Hugging Face causal LMs in and out of scarce: GPT-2 and Llama weights as a run's initialisation
(`init.source = "hf:NAME_OR_PATH"`), and scarce models written as a folder `transformers` loads.

A HF model is read from a local folder or the user's HF cache only (`local_files_only`: nothing is
downloaded) and from safetensors only (never a pickle). Its architecture becomes the run's model section
(`model_fields`); its weights are renamed into scarce's layout (`load_weights`). Export is the reverse
(`to_hf`): a model with the baseline blocks maps onto Llama (ReLU² as a ReLU-gated MLP whose gate and up
projections are the same matrix: relu(z) * z = relu(z)^2), a model started from GPT-2 maps back onto
GPT-2; a knob neither family has is named in the error, never dropped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from scarce.config import ModelConfig
from scarce.errors import UserError

PREFIX = "hf:"
FAMILIES = ("gpt2", "llama")
ARCHITECTURE = ("depth", "width", "head_dim", "kv_heads", "vocab_size", "tie_embeddings", "mlp", "mlp_ratio",
                "swiglu_hidden", "norm", "norm_affine", "norm_eps", "bias", "position", "rope_base", "rope_scaling")
"""Model fields a HF model decides; a run started from it may set seq_len, dropout, drop_path and mtp_weight."""
FREE = ("seq_len", "dropout", "attn_dropout", "drop_path", "mtp_weight", "aspect_ratio")
RMS_EPS = torch.finfo(torch.float32).eps
"""The epsilon F.rms_norm uses for fp32 when model.norm_eps is 0."""


def is_hf(source: str) -> bool:
    return source.startswith(PREFIX)


def name_of(source: str) -> str:
    """The model name or path of an `hf:` source; a local path is made absolute."""
    name = source[len(PREFIX):]
    if not name:
        raise UserError("init.source hf: names no model; write hf:NAME_OR_PATH (a local folder or a model "
                        "in the HF cache)")
    return str(Path(name).resolve()) if Path(name).exists() else name


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("models from Hugging Face need transformers: pip install 'scarce[hf]'") from None
    return transformers


def load_config(source: str):
    """The HF config of `hf:NAME_OR_PATH`, from a local folder or the HF cache."""
    name = name_of(source)
    try:
        return _transformers().AutoConfig.from_pretrained(name, local_files_only=True)
    except UserError:
        raise
    except Exception as e:  # missing folder, no config.json, not in the cache, unknown model_type
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load the HF model config of {source}: {first} (looked in the local path and the "
                        "HF cache; nothing is downloaded)") from None


def model_fields(hf_config, source: str = "") -> dict:
    """ModelConfig fields reproducing a HF model's architecture (GPT-2 or Llama family)."""
    kind = getattr(hf_config, "model_type", "")
    if kind == "gpt2":
        return _gpt2_fields(hf_config, source)
    if kind == "llama":
        return _llama_fields(hf_config, source)
    raise UserError(f"{source or 'the HF model'} is a {kind or 'unknown'} model; scarce starts from the "
                    f"{' and '.join(FAMILIES)} families")


def _gpt2_fields(c, source: str) -> dict:
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise UserError(f"{source}: activation {c.activation_function!r} is not supported (GPT-2's gelu_new is)")
    if getattr(c, "scale_attn_by_inverse_layer_idx", False):
        raise UserError(f"{source}: scale_attn_by_inverse_layer_idx is not supported")
    hidden = c.n_inner or 4 * c.n_embd
    return {"depth": c.n_layer, "width": c.n_embd, "head_dim": c.n_embd // c.n_head, "kv_heads": 0,
            "vocab_size": c.vocab_size, "tie_embeddings": bool(getattr(c, "tie_word_embeddings", True)),
            "mlp": "gelu", "mlp_ratio": hidden / c.n_embd, "swiglu_hidden": 0, "norm": "layer", "norm_affine": True,
            "norm_eps": c.layer_norm_epsilon, "bias": True, "position": "learned", "rope_base": 10000.0,
            "rope_scaling": ""}


def _llama_fields(c, source: str) -> dict:
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if head_dim * c.num_attention_heads != c.hidden_size:
        raise UserError(f"{source}: heads x head_dim ({c.num_attention_heads} x {head_dim}) differs from the width "
                        f"{c.hidden_size}; scarce's attention needs them equal")
    if c.hidden_act != "silu":
        raise UserError(f"{source}: activation {c.hidden_act!r} is not supported (Llama's silu is)")
    if bool(getattr(c, "attention_bias", False)) != bool(getattr(c, "mlp_bias", False)):
        raise UserError(f"{source}: attention_bias and mlp_bias differ; scarce has one model.bias for both")
    theta, scaling = _rope(c, source)
    return {"depth": c.num_hidden_layers, "width": c.hidden_size, "head_dim": head_dim,
            "kv_heads": c.num_key_value_heads or 0, "vocab_size": c.vocab_size,
            "tie_embeddings": bool(c.tie_word_embeddings), "mlp": "swiglu", "mlp_ratio": 4.0,
            "swiglu_hidden": c.intermediate_size, "norm": "rms", "norm_affine": True, "norm_eps": c.rms_norm_eps,
            "bias": bool(getattr(c, "attention_bias", False)), "position": "rotary", "rope_base": float(theta),
            "rope_scaling": scaling}


def _rope(c, source: str) -> tuple[float, str]:
    """(theta, model.rope_scaling) from a Llama config of transformers 4 (rope_theta, rope_scaling) or 5
    (rope_parameters)."""
    params = dict(getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, ""
    if kind == "llama3":
        spec = (f"llama3:{params['factor']:g}:{params['low_freq_factor']:g}:{params['high_freq_factor']:g}:"
                f"{int(params['original_max_position_embeddings'])}")
        return theta, spec
    raise UserError(f"{source}: rope type {kind!r} is not supported (default and llama3 are)")


def resolve(model: ModelConfig, source: str) -> ModelConfig:
    """`model` with the architecture of the HF model `source` (its ARCHITECTURE fields replaced); a scarce
    knob the HF model does not have is refused (the run would not start from that model's function)."""
    hf_config = load_config(source)
    fields = model_fields(hf_config, source)
    defaults = ModelConfig()
    knobs = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in ARCHITECTURE + FREE
             and getattr(model, f.name) != getattr(defaults, f.name)]
    if knobs:
        raise UserError(f"{', '.join('model.' + k for k in knobs)}: not part of {source}'s architecture; a run "
                        "started from a HF model keeps its architecture")
    out = dataclasses.replace(model, **fields)
    if out.position == "learned":
        limit = _positions(hf_config)
        if out.seq_len > limit:
            raise UserError(f"model.seq_len {out.seq_len} exceeds the {limit} positions {source} has learned")
    return out


def _positions(c) -> int:
    return getattr(c, "n_positions", None) or c.max_position_embeddings


def load_weights(source: str, model: ModelConfig) -> dict[str, torch.Tensor]:
    """The HF model's weights in scarce's names and layout (fp32), for a model built from `resolve`."""
    transformers = _transformers()
    name = name_of(source)
    try:
        hf = transformers.AutoModelForCausalLM.from_pretrained(name, local_files_only=True, use_safetensors=True,
                                                               dtype=torch.float32)
    except Exception as e:  # no safetensors weights, damaged files, not in the cache
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load the weights of {source}: {first} (safetensors only, from the local path or "
                        "the HF cache)") from None
    sd = {k: v.detach().float() for k, v in hf.state_dict().items()}
    del hf
    return _from_gpt2(sd, model) if model.position == "learned" else _from_llama(sd, model)


def _from_gpt2(sd: dict, m: ModelConfig) -> dict:
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    out = {"embed.weight": sd["wte.weight"], "pos.weight": sd["wpe.weight"][: m.seq_len], "norm.weight": sd["ln_f.weight"],
           "norm.bias": sd["ln_f.bias"]}
    if not m.tie_embeddings:
        out["head.weight"] = sd["lm_head.weight"]
    pairs = {"ln_1": "norm1", "ln_2": "norm2"}
    conv = {"attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
    for i in range(m.depth):
        for a, b in pairs.items():
            for p in ("weight", "bias"):
                out[f"blocks.{i}.{b}.{p}"] = sd[f"h.{i}.{a}.{p}"]
        for a, b in conv.items():  # GPT-2's Conv1D stores (in, out): transposed from nn.Linear
            out[f"blocks.{i}.{b}.weight"] = sd[f"h.{i}.{a}.weight"].t().contiguous()
            out[f"blocks.{i}.{b}.bias"] = sd[f"h.{i}.{a}.bias"]
    return out


def _from_llama(sd: dict, m: ModelConfig) -> dict:
    out = {"embed.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"]}
    if not m.tie_embeddings:
        out["head.weight"] = sd["lm_head.weight"]
    for i in range(m.depth):
        a, b = f"model.layers.{i}.", f"blocks.{i}."
        params = ("weight", "bias") if m.bias else ("weight",)
        for p in params:
            out[b + f"attn.qkv.{p}"] = torch.cat([sd[a + f"self_attn.{x}_proj.{p}"] for x in "qkv"])
            out[b + f"attn.proj.{p}"] = sd[a + f"self_attn.o_proj.{p}"]
            for x, y in (("gate", "gate"), ("up", "fc"), ("down", "proj")):
                out[b + f"mlp.{y}.{p}"] = sd[a + f"mlp.{x}_proj.{p}"]
        out[b + "norm1.weight"] = sd[a + "input_layernorm.weight"]
        out[b + "norm2.weight"] = sd[a + "post_attention_layernorm.weight"]
    return out


# -- export --------------------------------------------------------------------------------------

UNMAPPED = {"value_embed": "", "unet_skips": False, "resid_lambdas": False, "attn_gate": False, "xsa": False,
            "rotary_frac": 1.0, "key_offset": "", "qk_norm": False, "softcap": 0.0, "window_pattern": "",
            "loop_layers": "", "iha": ""}
"""Knobs neither Llama nor GPT-2 has, at the value that turns them off."""


def to_hf(model: ModelConfig, state: dict[str, torch.Tensor]):
    """(a transformers model holding the weights, family name) for a scarce model; knobs that do not map
    are named in a one-line error."""
    on = [k for k, off in UNMAPPED.items() if getattr(model, k) != off]
    if on:
        raise UserError(f"cannot export to a Hugging Face family: {', '.join('model.' + k for k in on)} "
                        "has no counterpart in GPT-2 or Llama")
    if model.position == "learned":
        return _to_gpt2(model, state), "gpt2"
    if model.norm != "rms" or model.mlp == "gelu":
        raise UserError(f"cannot export: model.norm={model.norm} with model.mlp={model.mlp} and rotary positions "
                        "is neither GPT-2 nor Llama")
    return _to_llama(model, state), "llama"


def _to_gpt2(m: ModelConfig, state: dict):
    t = _transformers()
    if m.norm != "layer" or not m.norm_affine or not m.bias or m.mlp != "gelu" or m.kv_heads:
        raise UserError("cannot export: learned positions map onto GPT-2 only with model.norm=layer, "
                        "model.norm_affine, model.bias and model.mlp=gelu (a model started from GPT-2)")
    cfg = t.GPT2Config(vocab_size=m.vocab_size, n_positions=m.seq_len, n_embd=m.d_model, n_layer=m.depth,
                       n_head=m.n_heads, n_inner=m.mlp_hidden, activation_function="gelu_new",
                       layer_norm_epsilon=m.norm_eps or 1e-5, tie_word_embeddings=m.tie_embeddings,
                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    sd = {"transformer.wte.weight": state["embed.weight"], "transformer.wpe.weight": state["pos.weight"],
          "transformer.ln_f.weight": state["norm.weight"], "transformer.ln_f.bias": state["norm.bias"],
          "lm_head.weight": state.get("head.weight", state["embed.weight"])}
    conv = {"attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
    for i in range(m.depth):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        for a, c in (("ln_1", "norm1"), ("ln_2", "norm2")):
            sd[h + f"{a}.weight"], sd[h + f"{a}.bias"] = state[b + f"{c}.weight"], state[b + f"{c}.bias"]
        for a, c in conv.items():
            sd[h + f"{a}.weight"] = state[b + f"{c}.weight"].t().contiguous()
            sd[h + f"{a}.bias"] = state[b + f"{c}.bias"]
    return _filled(t.GPT2LMHeadModel(cfg), sd)


def _to_llama(m: ModelConfig, state: dict):
    t = _transformers()
    gated = m.mlp == "swiglu"
    rope = {"rope_type": "default", "rope_theta": m.rope_base}
    if m.rope_factors is not None:
        f, low, high, original = m.rope_factors
        rope = {"rope_type": "llama3", "rope_theta": m.rope_base, "factor": f, "low_freq_factor": low,
                "high_freq_factor": high, "original_max_position_embeddings": original}
    cfg = t.LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.mlp_hidden,
                        num_hidden_layers=m.depth, num_attention_heads=m.n_heads, num_key_value_heads=m.n_kv_heads,
                        head_dim=m.head_dim, hidden_act="silu" if gated else "relu", max_position_embeddings=m.seq_len,
                        rms_norm_eps=m.norm_eps or RMS_EPS, tie_word_embeddings=m.tie_embeddings,
                        attention_bias=m.bias, mlp_bias=m.bias, rope_parameters=rope, rope_scaling=rope,
                        rope_theta=m.rope_base, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    ones = torch.ones(m.d_model)
    sd = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state.get("norm.weight", ones),
          "lm_head.weight": state.get("head.weight", state["embed.weight"])}
    H, KV, D = m.n_heads, m.n_kv_heads, m.head_dim
    for i in range(m.depth):
        a, b = f"model.layers.{i}.", f"blocks.{i}."
        for p in ("weight", "bias") if m.bias else ("weight",):
            q, k, v = state[b + f"attn.qkv.{p}"].split((H * D, KV * D, KV * D))
            sd.update({a + f"self_attn.q_proj.{p}": q, a + f"self_attn.k_proj.{p}": k, a + f"self_attn.v_proj.{p}": v,
                       a + f"self_attn.o_proj.{p}": state[b + f"attn.proj.{p}"],
                       a + f"mlp.up_proj.{p}": state[b + f"mlp.fc.{p}"], a + f"mlp.down_proj.{p}": state[b + f"mlp.proj.{p}"],
                       # ReLU²: the gate is the up projection itself, relu(z) * z = relu(z)^2
                       a + f"mlp.gate_proj.{p}": state[b + (f"mlp.gate.{p}" if gated else f"mlp.fc.{p}")]})
        sd[a + "input_layernorm.weight"] = state.get(b + "norm1.weight", ones)
        sd[a + "post_attention_layernorm.weight"] = state.get(b + "norm2.weight", ones)
    return _filled(t.LlamaForCausalLM(cfg), sd)


def _filled(hf, sd: dict):
    """`hf` with the weights `sd` (every parameter given; a tied head checked equal to the embedding)."""
    missing, unexpected = hf.load_state_dict({k: v.contiguous().clone() for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]
    assert not missing and not unexpected, (missing, unexpected)
    return hf.eval()
