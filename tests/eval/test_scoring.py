"""The scorer behind `scarce eval` against direct computations from the models' logits."""

from __future__ import annotations

import pytest
import torch

from scarce.ensemble import combine_logprobs
from scarce.eval.scoring import Scorer, cut, windows
from scarce.rundir import Member, load_model

CODE = "import os\n\n\ndef walk(top):\n    for root, dirs, files in os.walk(top):\n        yield root\n"
PAIRS = [
    ("def add(a, b):\n", "    return a + b\n"),
    ("", "import sys"),  # empty context: the continuation follows end-of-text
    ("x = 1 ", "+ 2"),  # trailing space in the context
    (CODE * 12, "    return None\n"),  # context far longer than seq_len (64 tokens): cut on the left
]


def direct(models, tok, eot, seq_len, context, continuation, combine="logit"):
    """log P(continuation | context) and greedy, from one forward pass over the last seq_len tokens."""
    whole, ctx = tok.encode(context + continuation), tok.encode(context) if context else []
    n = next((i for i, (a, b) in enumerate(zip(ctx, whole)) if a != b), min(len(ctx), len(whole)))
    tokens = [eot] + whole
    m = len(whole) - n
    x = torch.tensor([tokens[:-1][-seq_len:]])
    lps = torch.stack([torch.log_softmax(model(x)[0].float(), -1)[-m:] for model in models])  # (K, m, V)
    lp = combine_logprobs(lps, combine) if len(models) > 1 else lps[0]
    target = torch.tensor(tokens[-m:])
    return lp.gather(1, target[:, None]).sum().item(), bool((lp.argmax(-1) == target).all())


@torch.no_grad()
def test_loglikelihood_matches_the_model_logits(eval_runs):
    scorer = Scorer([Member.of_run(eval_runs[0])], batch_size=3)
    model = load_model(eval_runs[0])
    assert len(scorer.tokenizer.encode(PAIRS[-1][0])) > 3 * scorer.seq_len
    got = scorer.loglikelihood(PAIRS)
    for (context, continuation), (lp, greedy) in zip(PAIRS, got):
        want_lp, want_greedy = direct([model], scorer.tokenizer, scorer.eot, scorer.seq_len, context, continuation)
        assert lp == pytest.approx(want_lp, abs=1e-4)
        assert greedy == want_greedy
        assert lp < 0


@pytest.mark.parametrize("combine", ["logit", "prob"])
@torch.no_grad()
def test_ensemble_is_the_combination_of_its_members(eval_runs, combine):
    members = [Member.of_run(r) for r in eval_runs]
    models = [load_model(r) for r in eval_runs]
    scorer = Scorer(members, combine, batch_size=2)
    small_blocks = Scorer(members, combine, batch_size=2, block_bytes=1)  # a block per batch
    got, blocked = scorer.loglikelihood(PAIRS), small_blocks.loglikelihood(PAIRS)
    for (context, continuation), (lp, greedy), (lp2, _) in zip(PAIRS, got, blocked):
        want_lp, want_greedy = direct(models, scorer.tokenizer, scorer.eot, scorer.seq_len, context, continuation,
                                      combine)
        assert lp == pytest.approx(want_lp, abs=1e-4) and lp2 == pytest.approx(want_lp, abs=1e-4)
        assert greedy == want_greedy
    singles = [Scorer([m]).loglikelihood(PAIRS[:1])[0][0] for m in members]
    assert got[0][0] != pytest.approx(singles[0], abs=1e-6)  # the ensemble is not its first member


def test_windows_predict_every_token_once_with_the_most_context():
    tokens = list(range(1000, 1200))
    wins = list(windows(tokens, 1, 64))
    assert [t for w in wins for t in w.targets] == tokens[1:]
    for w in wins:
        assert len(w.inputs) <= 64 and len(w.targets) <= len(w.inputs)
        start = tokens.index(w.inputs[0])  # inputs then the last target are a contiguous slice
        assert tokens[start:start + len(w.inputs) + 1] == w.inputs + [w.targets[-1]]
    assert len(wins[-1].inputs) == 64  # the last chunk gets a full context
    assert list(windows(tokens[:5], 5, 64)) == []


def test_rolling_equals_loglikelihood_after_end_of_text(eval_runs):
    scorer = Scorer([Member.of_run(eval_runs[0])])
    text = CODE * 3  # longer than one window
    rolled = scorer.loglikelihood_rolling([text, "x = 1\n"])
    assert rolled[1] == pytest.approx(scorer.loglikelihood([("", "x = 1\n")])[0][0], abs=1e-5)
    ids = scorer.tokenizer.encode(text)
    model = load_model(eval_runs[0])
    tokens = [scorer.eot] + ids
    want = 0.0
    with torch.no_grad():
        for w in windows(tokens, 1, scorer.seq_len):
            lp = torch.log_softmax(model(torch.tensor([w.inputs]))[0].float(), -1)[-len(w.targets):]
            want += lp.gather(1, torch.tensor(w.targets)[:, None]).sum().item()
    assert rolled[0] == pytest.approx(want, abs=1e-3)


@torch.no_grad()
def test_generate_is_greedy_and_stops(eval_runs):
    scorer = Scorer([Member.of_run(eval_runs[0])], batch_size=2)
    model = load_model(eval_runs[0])
    ids = [scorer.eot] + scorer.tokenizer.encode("def f(x):\n")
    new = []
    for _ in range(6):
        nxt = int(model(torch.tensor([(ids + new)[-scorer.seq_len:]]))[0, -1].argmax())
        if nxt == scorer.eot:
            break
        new.append(nxt)
    want = scorer.tokenizer.decode(new)
    got = scorer.generate(["def f(x):\n", "def f(x):\n"], [[], [want[-1:]]], [6, 6])
    assert got[0] == want
    assert got[1] == cut(want, [want[-1:]]) and len(got[1]) < len(want)


def test_scorer_refuses_what_it_cannot_score(eval_runs, tmp_path):
    from scarce.errors import UserError

    with pytest.raises(UserError, match="no weights"):
        Scorer([Member(eval_runs[0], tmp_path / "none.safetensors")])
    with pytest.raises(UserError, match="combine"):
        Scorer([Member.of_run(eval_runs[0])], combine="median")
