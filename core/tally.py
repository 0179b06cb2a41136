"""What a command has done so far, said when it is interrupted (Ctrl-C).

Long-running parts register a function that describes their progress in a few
words (``"12,000 states explored"``); nothing is counted on their hot paths, the
function reads counters they keep anyway. ``ballast`` prints every description
when it is interrupted, then exits 130.

>>> reset()
>>> done = [0]
>>> note("random", lambda: f"{done[0]:,} random steps run")
>>> done[0] = 1200
>>> so_far()
'1,200 random steps run'
>>> add("random steps", 5); add("random steps", 7); so_far()
'1,200 random steps run; 12 random steps'
"""

from __future__ import annotations

from typing import Callable

__all__ = ["add", "note", "reset", "so_far"]

_describers: dict[str, Callable[[], str | None]] = {}
_counts: dict[str, int] = {}


def note(key: str, describe: Callable[[], str | None]) -> None:
    """Register (or replace, by ``key``) a description of work in progress."""
    _describers[key] = describe


def add(what: str, n: int = 1) -> None:
    """Count ``n`` more of ``what`` (for work counted in whole pieces, not per step)."""
    _counts[what] = _counts.get(what, 0) + n


def reset() -> None:
    """Forget everything: a new command starts."""
    _describers.clear()
    _counts.clear()


def so_far() -> str:
    """Every description, ``; ``-separated ("" when nothing was registered)."""
    parts = []
    for describe in list(_describers.values()):
        try:
            text = describe()
        except Exception:  # noqa: BLE001 - a half-updated counter must not hide the rest
            text = None
        if text:
            parts.append(text)
    parts += [f"{n:,} {what}" for what, n in _counts.items()]
    return "; ".join(parts)
