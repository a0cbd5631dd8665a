import numpy as np
import pytest
import torch

from scarce.data.loader import Documents, WindowLoader, eval_batches
from scarce.errors import UserError

TOKENS = np.arange(10_000, dtype=np.uint16)


def test_batches_are_a_pure_function_of_seed_and_step():
    a = WindowLoader(TOKENS, 16, 4, seed=3)
    b = WindowLoader(TOKENS, 16, 4, seed=3)
    for step in (0, 5, a.steps_per_epoch + 2, 3):
        xa, ya = a.batch(step)
        xb, yb = b.batch(step)
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert np.array_equal(xa[:, 1:], ya[:, :-1])  # targets are inputs shifted by one


def test_each_epoch_is_a_fresh_shuffle_without_repeats():
    loader = WindowLoader(TOKENS, 16, 4, seed=0, jitter=False)
    def epoch_starts(e):
        return np.concatenate([loader.batch(e * loader.steps_per_epoch + s)[0][:, 0].numpy()
                               for s in range(loader.steps_per_epoch)])
    e0, e1 = epoch_starts(0), epoch_starts(1)
    assert len(set(e0.tolist())) == len(e0)  # no window twice within an epoch
    assert not np.array_equal(e0, e1)


def test_ranks_take_disjoint_windows():
    parts = [WindowLoader(TOKENS, 16, 4, seed=0, rank=r, world=2, jitter=False).batch(7)[0][:, 0] for r in (0, 1)]
    assert not set(parts[0].tolist()) & set(parts[1].tolist())


def test_too_small_split_is_a_user_error():
    with pytest.raises(UserError, match="windows"):
        WindowLoader(TOKENS[:50], 16, 4)


def test_eval_batches_cover_the_split_once():
    seen = np.concatenate([y.flatten().numpy() for _, y in eval_batches(TOKENS, 16, 5)])
    assert np.array_equal(seen, TOKENS[1:1 + len(seen)]) and len(seen) == (len(TOKENS) - 1) // 16 * 16


def _documents(n_docs: int = 40, seed: int = 0) -> np.ndarray:
    """Documents of 3 to 20 tokens, document j made of the token j + 1 only, each ended by token 0."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.append(np.full(rng.integers(3, 21), j + 1), 0) for j in range(n_docs)]).astype(np.uint16)


def _neighbours(loader: WindowLoader, epoch: int) -> set[tuple[int, int]]:
    """The pairs (document a, document b) where a window of the epoch reads b right after a."""
    pairs = set()
    for step in range(epoch * loader.steps_per_epoch, (epoch + 1) * loader.steps_per_epoch):
        x, y = loader.batch(step)
        for row in torch.cat([x, y[:, -1:]], dim=1).tolist():
            ids = [t for i, t in enumerate(row) if t and (i == 0 or row[i - 1] != t)]  # runs of one document
            assert len(ids) == len(set(ids))  # a document read in one piece
            pairs |= set(zip(ids, ids[1:]))
    return pairs


def test_document_shuffling_reorders_whole_documents_each_epoch():
    tokens = _documents()
    plain = _neighbours(WindowLoader(tokens, 8, 2, seed=3, jitter=False), 0)
    assert plain and all(b == a + 1 for a, b in plain)  # without it: the split's order
    loader = WindowLoader(tokens, 8, 2, seed=3, jitter=False, doc_end=0)
    first, second = _neighbours(loader, 0), _neighbours(loader, 1)
    assert any(b != a + 1 for a, b in first) and first != second  # new neighbours, and others each epoch
    x, y = loader.batch(5)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets still the next tokens of the reordered text
    again = WindowLoader(tokens, 8, 2, seed=3, jitter=False, doc_end=0)
    assert torch.equal(again.batch(5)[0], x)  # a pure function of (seed, step)


def test_document_order_keeps_every_token_and_a_cut_last_document():
    tokens = _documents(10)[:-3]  # the last document cut short, no end token
    docs = Documents(tokens, 0)
    assert docs.lengths.sum() == len(tokens) and len(docs.starts) == 10
    order, new_starts = docs.positions(seed=1, epoch=0)
    shuffled = docs.gather(tokens, np.arange(len(tokens)), order, new_starts)
    assert sorted(shuffled.tolist()) == sorted(tokens.tolist()) and not np.array_equal(shuffled, tokens)
    pieces = np.split(shuffled, new_starts[1:])
    assert all(np.array_equal(p, tokens[docs.starts[d]:docs.starts[d] + docs.lengths[d]]) for p, d in zip(pieces, order))
