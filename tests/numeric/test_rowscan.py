"""The per-row scans give NumPy's direct answers, on every shape and density."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.numeric import rowscan
from ballast.numeric.rowscan import entries, first_k, row_counts, up_to_last

# Widths on both sides of every switch: small batches (NumPy's direct forms), 64-column
# words, the 8-byte lanes' limit, and widths the word forms cannot take.
WIDTHS = [0, 1, 7, 8, 64, 72, 128, 1024, 2040, 2048, 4096]


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    width = draw(st.sampled_from(WIDTHS))
    rows = draw(st.integers(0, 40))
    density = draw(st.sampled_from([0.0, 0.002, 0.05, 0.5, 0.97, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).random((rows, width)) < density


@settings(max_examples=150, deadline=None)
@given(masks())
def test_entries_and_counts_are_numpys(mask):
    r, c = np.nonzero(mask)
    got_r, got_c = entries(mask)
    assert got_r.tolist() == r.tolist() and got_c.tolist() == c.tolist()
    assert row_counts(mask).tolist() == np.count_nonzero(mask, axis=1).tolist()
    assert row_counts(mask).dtype == np.int64


@settings(max_examples=150, deadline=None)
@given(masks(), st.integers(-2, 70), st.integers(0, 2**32 - 1))
def test_first_k_is_the_running_count_up_to_k(mask, k, seed):
    want = mask & (np.cumsum(mask, axis=1) <= k)
    assert (first_k(mask, k) == want).all()
    per_row = np.random.default_rng(seed).integers(-1, mask.shape[1] + 2, len(mask))
    want = mask & (np.cumsum(mask, axis=1) <= per_row[:, None])
    assert (first_k(mask, per_row) == want).all()


@settings(max_examples=150, deadline=None)
@given(masks())
def test_up_to_last_is_an_or_from_the_right(mask):
    want = np.logical_or.accumulate(mask[:, ::-1], axis=1)[:, ::-1] if mask.size else mask
    assert (up_to_last(mask) == want).all()


@pytest.mark.parametrize("k", [1, 8, 9, 64, 65, 500])
def test_first_k_finds_the_entry_in_every_block_word_and_column(k):
    # One row per position of entry number k: it falls in each block, word and column.
    width = 1024
    rows = np.zeros((width - k + 1, width), dtype=bool)
    for last in range(k - 1, width):
        rows[last - k + 1, last - k + 1:last + 1] = True  # k entries, the last at `last`
    rows[:, -1] = True  # one more entry after them, never kept (when it is not the k-th)
    got = first_k(rows, k)
    assert (got.sum(axis=1) == k).all()
    assert (got == (rows & (np.cumsum(rows, axis=1) <= k))).all()


def test_broadcast_and_strided_rows_count_as_their_values():
    base = np.random.default_rng(3).random((1, 1024)) < 0.3
    wide = np.broadcast_to(base, (50, 1024))
    assert row_counts(wide).tolist() == [int(base.sum())] * 50
    every_other = np.random.default_rng(4).random((60, 2048)) < 0.5
    view = every_other[:, ::2]
    assert row_counts(view).tolist() == np.count_nonzero(view, axis=1).tolist()
    assert (first_k(view, 5) == (view & (np.cumsum(view, axis=1) <= 5))).all()


def test_the_word_forms_are_the_ones_tested():
    """The fast forms run on the sizes the numeric core uses (else the tests above would
    only compare NumPy with itself)."""
    mask = np.zeros((100, 1024), dtype=bool)
    assert mask.size >= rowscan._SMALL
    assert rowscan._words(mask) is not None
