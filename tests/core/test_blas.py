"""BLAS held to one thread for a block, and given back its setting after it."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from ballast.blas import one_blas_thread


def _blas_threads() -> list[int]:
    return [int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def _two_blas_threads() -> Iterator[None]:
    """NumPy's BLAS loaded and set to two threads around each test."""
    np.ones((2, 2)) @ np.ones(2)
    if not _blas_threads():
        # A NumPy built without a BLAS library has no threads to hold; the wheels CI
        # installs always bring one, so there this is a failure.
        assert os.environ.get("CI") != "true", "NumPy found no BLAS library under CI"
        pytest.skip("NumPy was built without a BLAS library")
    with threadpool_limits(limits=2, user_api="blas"):
        yield


def test_one_thread_inside_the_block_and_the_earlier_setting_after() -> None:
    with one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}


def test_the_setting_comes_back_after_an_exception() -> None:
    with pytest.raises(KeyError):
        with one_blas_thread():
            raise KeyError("inside")
    assert set(_blas_threads()) == {2}
