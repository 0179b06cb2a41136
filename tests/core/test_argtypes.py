"""Types of command-line numbers and paths: what each refuses, at parsing."""

from __future__ import annotations

import argparse
import doctest

import pytest

import ballast.argtypes
from ballast.argtypes import (
    MAX_COUNT,
    MAX_RLIMIT,
    fraction,
    natural_int,
    path,
    positive_float,
    positive_int,
    rlimit,
    seconds,
    seed,
    timeout_seconds,
    whole_number,
)


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


# Digits Python's int() and float() take but no flag is documented to: Arabic-Indic,
# fullwidth, Bengali, mathematical bold; and the other forms int() lets through.
FOREIGN_WHOLE = ["\u0661\u0662", "\uff11\uff12", "\u09e7", "\U0001d7cf", "1_000", "+5", " 7",
                 "7 ", "7\n", "0x10", "1e3", "-"]


@pytest.mark.parametrize("kind", [positive_int, natural_int, rlimit, seed])
def test_whole_numbers_are_written_with_the_digits_0_to_9_alone(kind: object) -> None:
    assert callable(kind)
    assert kind("12") == 12 and kind("0012") == 12
    for text in FOREIGN_WHOLE:
        with pytest.raises(argparse.ArgumentTypeError, match="written with the digits 0-9"):
            kind(text)


@pytest.mark.parametrize("kind, good, bad", [
    (seconds, ["1.5", ".5", "2.", "1e3", "inf", "INF", "infinity"],
     ["nan", "-inf", "0", "-1"]),
    (timeout_seconds, ["5", "0.25", "1e3"], ["inf", "nan", "0"]),
    (positive_float, ["1", "0.5", "2E-1"], ["inf", "nan", "0"]),
    (fraction, ["1", "0.5", ".25"], ["inf", "nan", "0", "1.5"]),
])
def test_decimal_numbers_are_written_with_the_digits_0_to_9_alone(
        kind: object, good: list[str], bad: list[str]) -> None:
    assert callable(kind)
    for text in good:
        assert kind(text) == float(text)
    for text in bad + ["\u0661.\u0665", "\uff11", "\u0661", "1_0", "+1", " 1", "1 ", "0x1",
                       "1.5.0", "e3", ".", ""]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a"):
            kind(text)


def test_a_number_of_more_digits_than_python_converts_is_beyond_the_bound() -> None:
    text = "9" * 5000  # int() refuses it; it is still a whole number, too large for any flag
    with pytest.raises(argparse.ArgumentTypeError, match="at most 9223372036854775807, got"):
        positive_int(text)
    assert whole_number("-" + text) is not None and whole_number("-" + text) < -MAX_COUNT
