"""Types of command-line numbers and paths: what each refuses, at parsing."""

from __future__ import annotations

import argparse
import doctest

import pytest

import ballast.argtypes
from ballast.argtypes import MAX_COUNT, MAX_RLIMIT, natural_int, path, positive_int, rlimit


def test_doctests() -> None:
    assert doctest.testmod(ballast.argtypes).failed == 0


@pytest.mark.parametrize("kind, good, bad", [
    (positive_int, ["1", str(MAX_COUNT)], ["0", "-1", str(MAX_COUNT + 1), str(10**30), "1.0",
                                           "nan", ""]),
    (natural_int, ["0", str(MAX_COUNT)], ["-1", str(10**30), "x"]),
    # Z3 takes rlimit as 32 bits: 2**32 would wrap round to no limit at all.
    (rlimit, ["1", str(MAX_RLIMIT)], ["0", str(2**32), str(2**33), str(10**30)]),
])
def test_counts_have_a_floor_and_a_ceiling(kind: object, good: list[str],
                                           bad: list[str]) -> None:
    assert callable(kind)
    for text in good:
        assert kind(text) == int(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number"):
            kind(text)


def test_an_empty_path_is_refused() -> None:
    assert str(path("out")) == "out"
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        path("")
