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

Numbers are written as the documentation writes them: the digits 0-9, with a leading ``-``
(which the bounds then refuse where a value cannot be negative), a decimal point and an
exponent for fractional ones, ``inf`` where a limit may be none. Python's ``int`` and
``float`` also take other scripts' digits (``'\u0661\u0662'``, fullwidth ``'\uff11\uff12'``),
underscores (``'1_0'``), ``+`` and surrounding blanks; no flag does:

>>> positive_int("\uff11\uff12")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a whole number of at least 1 and at most
9223372036854775807, written with the digits 0-9, got '\uff11\uff12'
>>> whole_number("1_000"), whole_number(" 7"), whole_number("-3")
(None, None, -3)
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

__all__ = ["MAX_COUNT", "MAX_RLIMIT", "MAX_TIMEOUT", "decimal_number", "fraction",
           "natural_int", "path", "positive_float", "positive_int", "rlimit", "seconds", "seed",
           "timeout_seconds", "whole_number"]

MAX_TIMEOUT = 1_000_000
"""The longest timeout in seconds (11.6 days): the operating system's own waits take at
most about 2**31 milliseconds, and a longer one is a typing slip."""


MAX_COUNT = 2**63 - 1
"""The largest count a flag takes (runs, steps, states, depths): what a trace, a JSON report
and NumPy's integers hold, as for seeds. A count beyond it is a typing slip, never a budget."""

MAX_RLIMIT = 2**32 - 1
"""The most Z3 resource units one limit can give: Z3 takes ``rlimit`` as an unsigned 32-bit
number, and a larger one wraps round (``2**32 + 5`` is 5 units, ``2**33`` none at all)."""


_WHOLE = re.compile(r"-?[0-9]+")
"""A whole number as flags take it: ASCII digits, an optional leading minus."""

_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
"""A decimal number as flags take it: ASCII digits, a point, an exponent."""

_BEYOND = 10**4300
"""What a whole number of more digits than Python's ``int`` converts stands for: it is
beyond every bound, so the bound is what the user is told."""

_INFINITY = ("inf", "infinity")
"""How a limit says "none" (any case); the bounds of each type decide where it means
something."""


def whole_number(text: str) -> int | None:
    """``text`` as a whole number if it is written with the digits 0-9 and an optional
    leading ``-`` (nothing else: no blanks, ``+``, underscores or other scripts' digits,
    which Python's ``int`` takes), else None."""
    if not _WHOLE.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: beyond every bound, and said so
        return -_BEYOND if text.startswith("-") else _BEYOND


def decimal_number(text: str) -> float | None:
    """``text`` as a number if it is written with the digits 0-9 (an optional leading
    ``-``, a decimal point, an exponent) or is ``inf``, else None (never NaN)."""
    if text.lower() in _INFINITY:
        return math.inf
    if not _DECIMAL.fullmatch(text):
        return None
    return float(text)


def seconds(text: str) -> float:
    """A limit in seconds: greater than 0, ``inf`` for none; never NaN (a limit of 0 would
    stop before any work, which no one means)."""
    value = decimal_number(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds greater than 0 (inf: no limit), got {text!r}")
    return value


def timeout_seconds(text: str) -> float:
    """A timeout of one wait: greater than 0, at most :data:`MAX_TIMEOUT`."""
    value = decimal_number(text)
    if value is None or not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds greater than 0 and at most {MAX_TIMEOUT}, "
            f"got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number greater than 0 (a size in MiB, a timeout that must allow some time)."""
    value = decimal_number(text)
    if value is None or not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A share: greater than 0, at most 1."""
    value = decimal_number(text)
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _whole(text: str, least: int, most: int) -> int:
    """``text`` as a whole number from ``least`` to ``most``, else a usage error."""
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least {least} and at most {most}, written with "
            f"the digits 0-9, got {text!r}")
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
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {2**63 - 1}, written with the digits 0-9, "
            f"got {text!r}")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {2**63 - 1}, got {text!r}")
    return value
