import torch

from scarce.config import ModelConfig
from scarce.model.gpt import GPT, flops_per_token, param_counts


def make(**kw):
    cfg = ModelConfig(depth=2, aspect_ratio=32, head_dim=16, seq_len=32, vocab_size=100, **kw)
    torch.manual_seed(0)
    return GPT(cfg)


def test_param_counts_match_the_formula():
    m = make()
    d, V, L = 64, 100, 2
    per_block = 3 * d * d + d * d + 2 * 4 * d * d  # qkv, proj, mlp in and out; no biases, no norm gains
    assert param_counts(m) == {"total": V * d + L * per_block, "non_embedding": L * per_block}
    untied = make(tie_embeddings=False)
    assert param_counts(untied)["total"] == 2 * V * d + L * per_block
    assert flops_per_token(m) == 6 * (L * per_block + V * d) + 12 * L * d * 32


def test_causal_future_tokens_do_not_change_past_logits():
    m = make().eval()
    x = torch.randint(0, 100, (2, 32))
    y = x.clone()
    y[:, 20:] = torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(m(x)[:, :20], m(y)[:, :20])


def test_loss_at_init_is_near_uniform():
    m = make()
    x, y = torch.randint(0, 100, (2, 4, 32))
    loss = m(x, y).item()
    assert abs(loss - torch.log(torch.tensor(100.0)).item()) < 0.2


def test_dropout_only_in_training():
    m = make(dropout=0.5)
    x = torch.randint(0, 100, (2, 32))
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x))
    m.train()
    with torch.no_grad():
        assert not torch.equal(m(x), m(x))
