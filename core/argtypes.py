"""Types for command-line numbers: NaN, negative or absurd values are a usage error (exit 2).

``float("nan")`` compares false with everything, so a NaN budget or timeout would
silently mean "no limit"; these types refuse it where the flag is parsed.

>>> seconds("1.5"), seconds("inf")
(1.5, inf)
>>> seconds("nan")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a number of seconds (0 or more), got 'nan'
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a whole number of at least 1, got '0'
"""

from __future__ import annotations

import argparse
import math

__all__ = ["fraction", "positive_float", "positive_int", "seconds"]


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def seconds(text: str) -> float:
    """A duration: 0 or more seconds, ``inf`` for none; never NaN."""
    value = _float(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number greater than 0 (a size in MiB, a timeout that must allow some time)."""
    value = _float(text)
    if value is None or not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A share: greater than 0, at most 1."""
    value = _float(text)
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1 (runs, examples): 0 would check nothing and pass."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value
