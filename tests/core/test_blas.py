"""BLAS held to one thread for a block, and given back its setting after it."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from ballast.blas import one_blas_thread


def _blas_threads() -> list[int]:
    return [int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]


def test_one_thread_inside_the_block_and_the_earlier_setting_after() -> None:
    np.ones((2, 2)) @ np.ones(2)  # NumPy's BLAS is loaded
    if not _blas_threads():
        pytest.skip("NumPy found no BLAS library here")
    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_the_setting_comes_back_after_an_exception() -> None:
    np.ones((2, 2)) @ np.ones(2)
    if not _blas_threads():
        pytest.skip("NumPy found no BLAS library here")
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(KeyError):
            with one_blas_thread():
                raise KeyError("inside")
        assert set(_blas_threads()) == {2}
