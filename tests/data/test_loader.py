import numpy as np
import pytest

from scarce.data.loader import WindowLoader, eval_batches
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
