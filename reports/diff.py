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

from ballast.model.state import State

__all__ = ["flatten", "format_value", "state_diff"]


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
    a, b = flatten(before.to_dict()), flatten(after.to_dict())
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=_order)
            if a.get(k) != b.get(k)]


def format_value(value: object) -> str:
    """A compact rendering of a state value for tables.

    >>> format_value([1, 2]), format_value(None), format_value([[0, 3, 1]])
    ('[1, 2]', '-', '[(0, 3, 1)]')
    """
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join("(" + ", ".join(str(y) for y in x) + ")" if isinstance(x, list)
                               else str(x) for x in value) + "]"
    return str(value)
