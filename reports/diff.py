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
    out.sort(key=lambda change: _order(change[0]))
    return out


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
            and all(hasattr(x, "__dataclass_fields__") for x in a + b)):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{prefix}/{i}", out)
        return
    if (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and len(a) > 1
            and prefix.endswith(_PER_PAGE)):
        out.extend((f"{prefix}/{i}", x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return
    if isinstance(a, frozenset) and isinstance(b, frozenset) and max(len(a), len(b)) > LARGE_SET:
        # A real guest's balloon holds tens of thousands of pages: name what changed.
        out.append((prefix, {"size": len(a)},
                    {"size": len(b), "added": sorted(b - a), "removed": sorted(a - b)}))
        return
    pa, pb = plain_value(a), plain_value(b)
    if pa != pb:
        out.append((prefix, pa, pb))


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
