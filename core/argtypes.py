"""Types for command-line numbers: NaN, negative or absurd values are a usage error (exit 2).

``float("nan")`` compares false with everything, so a NaN budget or timeout would
silently mean "no limit"; these types refuse it where the flag is parsed.

>>> seconds("1.5"), seconds("inf")
(1.5, inf)
>>> seconds("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a number of seconds greater than 0 (inf: no limit), got '0'
>>> timeout_seconds("3000000")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a number of seconds greater than 0 and at most 1000000,
got '3000000'
>>> positive_int("0")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a whole number of at least 1 and at most
9223372036854775807, got '0'
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["MAX_COUNT", "MAX_RLIMIT", "MAX_TIMEOUT", "fraction", "natural_int", "path",
           "positive_float", "positive_int", "rlimit", "seconds", "seed", "timeout_seconds"]

MAX_TIMEOUT = 1_000_000
"""The longest timeout in seconds (11.6 days): the operating system's own waits take at
most about 2**31 milliseconds, and a longer one is a typing slip."""


MAX_COUNT = 2**63 - 1
"""The largest count a flag takes (runs, steps, states, depths): what a trace, a JSON report
and NumPy's integers hold, as for seeds. A count beyond it is a typing slip, never a budget."""

MAX_RLIMIT = 2**32 - 1
"""The most Z3 resource units one limit can give: Z3 takes ``rlimit`` as an unsigned 32-bit
number, and a larger one wraps round (``2**32 + 5`` is 5 units, ``2**33`` none at all)."""


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def seconds(text: str) -> float:
    """A limit in seconds: greater than 0, ``inf`` for none; never NaN (a limit of 0 would
    stop before any work, which no one means)."""
    value = _float(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds greater than 0 (inf: no limit), got {text!r}")
    return value


def timeout_seconds(text: str) -> float:
    """A timeout of one wait: greater than 0, at most :data:`MAX_TIMEOUT`."""
    value = _float(text)
    if value is None or not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds greater than 0 and at most {MAX_TIMEOUT}, "
            f"got {text!r}")
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


def _whole(text: str, least: int, most: int) -> int:
    """``text`` as a whole number from ``least`` to ``most``, else a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if not least <= value <= most:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least {least} and at most {most}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1 (runs, examples): 0 would check nothing and pass; at most
    :data:`MAX_COUNT`.

    >>> positive_int(str(10**30))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a whole number of at least 1 and at most
    9223372036854775807, got '1000000000000000000000000000000'
    """
    return _whole(text, 1, MAX_COUNT)


def natural_int(text: str) -> int:
    """A count that may be 0 (a depth, a threshold that 0 switches off), at most
    :data:`MAX_COUNT`."""
    return _whole(text, 0, MAX_COUNT)


def rlimit(text: str) -> int:
    """Z3 resource units: at least 1, at most :data:`MAX_RLIMIT` (what Z3 can count)."""
    return _whole(text, 1, MAX_RLIMIT)


def path(text: str) -> Path:
    """A path to write to: an empty one would silently mean the current folder.

    >>> path("")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a path, got an empty string
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def seed(text: str) -> int:
    """A random seed: a whole number from 0 below 2**63 (what a trace records and NumPy's
    generators take; a longer one would be written to a trace no replay reads).

    >>> seed("52")
    52
    >>> seed("99999999999999999999999")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a whole number from 0 to 9223372036854775807,
    got '99999999999999999999999'
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {2**63 - 1}, got {text!r}")
    return value
