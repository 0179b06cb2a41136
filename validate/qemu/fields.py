"""The syntax of QEMU's trace lines: numbers, ``key value`` fields, pointers, prefixes.

QEMU prints numbers in ASCII; Python's ``int`` would also take other scripts' digits,
``_``, spaces and any length, so every number of a log goes through these.

>>> parse_int("0x1000", 16), u32(-1), fields("vdev 0x1 val 15", ("vdev", "val"))
(4096, 4294967295, ['0x1', '15'])
>>> parse_prefix("7@100.000001")
(7, 100.000001)
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["ascii_digits", "fields", "parse_int", "parse_prefix", "pointer", "u32"]

_HEX: Final = re.compile(r"0x[0-9a-fA-F]{1,16}")


def parse_int(text: str, base: int = 10) -> int:
    """A number as QEMU prints it: ASCII digits only, at most 64 bits' worth.

    (Python's ``int`` would also take other scripts' digits, ``_``, spaces and any length.)
    """
    if base == 16:
        if not _HEX.fullmatch(text):
            raise ValueError(text)
        return int(text[2:], 16)
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 20):
        raise ValueError(text)
    return int(text, base)


def ascii_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` accepts superscripts and other scripts' digits)."""
    return text.isascii() and text.isdigit()


def u32(value: int) -> int:
    """QEMU prints some uint32 fields with %d: undo the sign."""
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(value)
    return value & 0xFFFFFFFF


def fields(args: str, keys: tuple[str, ...]) -> list[str]:
    """Values of ``key value key value ...`` with exactly ``keys`` in that order."""
    tokens = args.split()
    if len(tokens) != 2 * len(keys) or tuple(tokens[::2]) != keys:
        raise ValueError(args)
    return tokens[1::2]


def pointer(text: str) -> str:
    """A pointer as QEMU prints it (``0x...`` or ``(nil)``)."""
    if text == "(nil)" or (text.startswith("0x") and text.isascii() and 2 < len(text) <= 18
                           and text[2:].isalnum() and int(text[2:], 16) >= 0):
        return text
    raise ValueError(text)



def parse_prefix(prefix: str) -> tuple[int, float] | None:
    """``TID@SECONDS.MICROS`` -> (thread, time), or None when malformed."""
    tid, _, stamp = prefix.partition("@")
    sec, dot, micro = stamp.partition(".")
    if tid.isdigit() and sec.isdigit() and dot and micro.isdigit() and prefix.isascii():
        return int(tid), float(stamp)
    return None

