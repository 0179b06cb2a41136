"""State changes of one step, as (path, before, after) triples.

Paths are slash paths into :meth:`State.to_dict` (the same paths a trace's
``observe`` uses), so every reported change can be looked up in a trace.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.model.actions import Action, apply
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s0 = initial_state(cfg)
>>> state_diff(s0, apply(cfg, s0, Action.of("guest_write", vm=0, vpn=0, token=1)))[:2]
[('host/content/0', 0, 1), ('host/free', [0, 1], [1])]
"""

from __future__ import annotations

from itertools import compress
from operator import ne
from typing import Any

from ballast.model.state import State, plain_value

__all__ = ["LARGE_SET", "flatten", "format_value", "state_diff"]


def flatten(data: object, prefix: str = "") -> dict[str, object]:
    """Leaves of nested dicts by slash path.

    A set, queue or swap list is one leaf; a per-page table (p2m, contents, the
    guest's page use) has one leaf per page, so a change names the page.
    """
    out: dict[str, object] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}/{i}"))
    elif isinstance(data, list) and len(data) > 1 and prefix.endswith(("/p2m", "/content",
                                                                        "/ppn_use", "/expected")):
        for i, v in enumerate(data):
            out[f"{prefix}/{i}"] = v
    else:
        out[prefix] = data
    return out


def _order(path: str) -> list[Any]:
    return [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in path.split("/")]


def state_diff(before: State, after: State) -> list[tuple[str, object, object]]:
    """(path, before, after) for every part of the state a step changed.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> from ballast.model.actions import Action, apply
    >>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
    >>> s0 = initial_state(cfg)
    >>> state_diff(s0, apply(cfg, s0, Action.of("host_set_target", vm=0, pages=2)))
    [('vms/0/target', 0, 2)]
    """
    # Walks both states together and skips every part the step left identical (the
    # model shares unchanged frozen parts), so a large guest costs only what changed;
    # the paths and values are those of ``flatten(state.to_dict())`` (tested), except that
    # a set larger than LARGE_SET is shown as its sizes and what was added and removed.
    out: list[tuple[str, object, object]] = []
    _diff(before, after, "", out)
    # A per-page table's changes come as one entry (already in page order), sorted by the
    # table's path: no other change's path lies inside a table, so this is the order of
    # sorting every page's change on its own.
    out.sort(key=lambda change: _order(change[0]))
    return [page for change in out for page in
            (change[1].changes if isinstance(change[1], _TableChanges) else (change,))]


class _TableChanges:
    """The changed entries of one per-page table, kept together while changes are sorted."""

    __slots__ = ("changes",)

    def __init__(self, changes: list[tuple[str, object, object]]) -> None:
        self.changes = changes


_PER_PAGE = ("/p2m", "/content", "/ppn_use", "/expected")

LARGE_SET = 64
"""A set with more members than this (before or after) is shown as its sizes and the
members added and removed, not listed whole."""


def _diff(a: object, b: object, prefix: str, out: list[tuple[str, object, object]]) -> None:
    if a is b:
        return
    fields = getattr(a, "__dataclass_fields__", None)
    if fields is not None and type(a) is type(b):
        for name in fields:
            _diff(getattr(a, name), getattr(b, name), f"{prefix}/{name}" if prefix else name, out)
        return
    if (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and a
            and all(hasattr(x, "__dataclass_fields__") for x in a)
            and all(hasattr(x, "__dataclass_fields__") for x in b)):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{prefix}/{i}", out)
        return
    if (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and len(a) > 1
            and prefix.endswith(_PER_PAGE)):
        changes: list[tuple[str, object, object]] = [
            (f"{prefix}/{i}", a[i], b[i]) for i in _changed_positions(a, b)]
        if changes:
            out.append((prefix, _TableChanges(changes), None))
        return
    if isinstance(a, frozenset) and isinstance(b, frozenset) and max(len(a), len(b)) > LARGE_SET:
        # A real guest's balloon holds tens of thousands of pages: name what changed
        # (an equal set rebuilt by the step is no change).
        if a == b:
            return
        out.append((prefix, {"size": len(a)},
                    {"size": len(b), "added": sorted(b - a), "removed": sorted(a - b)}))
        return
    pa, pb = _plain(a), _plain(b)
    if pa != pb:
        out.append((prefix, pa, pb))


def _plain(value: object) -> object:
    """:func:`plain_value`, with a queue of page numbers (hundreds of them on a real guest)
    copied at once rather than page by page."""
    if type(value) is tuple and all(type(x) is int for x in value):
        return list(value)
    return plain_value(value)


_SPAN = 2048
"""Entries of a per-page table compared at once: a real guest has hundreds of thousands of
pages and a step changes a few hundred, so unchanged spans are skipped by one comparison."""


def _changed_positions(a: tuple[Any, ...], b: tuple[Any, ...]) -> list[int]:
    """The indexes at which two tables of the same length differ, in order.

    >>> _changed_positions((0,) * 5000 + (1,), (0,) * 4999 + (2, 1))
    [4999]
    """
    out: list[int] = []
    for lo in range(0, len(a), _SPAN):
        x, y = a[lo:lo + _SPAN], b[lo:lo + _SPAN]
        if x != y:
            out.extend(compress(range(lo, lo + len(x)), map(ne, x, y)))
    return out


def format_value(value: object) -> str:
    """A compact rendering of a state value for tables.

    >>> format_value([1, 2]), format_value(None), format_value([[0, 3, 1]])
    ('[1, 2]', '-', '[(0, 3, 1)]')
    """
    if value is None:
        return "-"
    if isinstance(value, dict) and "size" in value:  # a large set (see LARGE_SET)
        parts = [f"{value['size']:,} pages"]
        for key, sign in (("added", "+"), ("removed", "-")):
            if value.get(key):
                parts.append(f"{sign}{format_value(value[key])}")
        return " ".join(parts)
    if isinstance(value, list):
        return "[" + ", ".join("(" + ", ".join(str(y) for y in x) + ")" if isinstance(x, list)
                               else str(x) for x in value) + "]"
    return str(value)
