"""A table of code keyed by the model's names, as the backend that owns it declares it.

Code outside the model finds actions, properties, faults and the rest by their names
(the Z3 relations of ``@_encodes``, the numeric workload's ``WEIGHTS``, ...). Each
backend declares such tables as :class:`KeyedTable` values in its ``encodes`` module;
:mod:`ballast.suites.tables` checks them all. This module is the model's side of that
contract: which kinds of name exist (:data:`NAME_KINDS`) and which of them a table must
cover (:func:`every`).

>>> KeyedTable("T", "ballast.model.faults", "actions", lambda: ["vmm_reclaim"]).kind
'actions'
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Collection, Iterable, Mapping

from ballast.model.actions import ACTIONS
from ballast.model.config import FEATURES, Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.recovery import REACH_PROPERTIES
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import initial_state
from ballast.model.virtio import EVENT_KINDS

__all__ = ["NAME_KINDS", "KeyedTable", "every", "has_state_form", "has_step_form"]


def _parameters() -> set[str]:
    return {p for spec in ACTIONS.values() for p in spec.params}


def _state_paths() -> set[str]:
    """Every leaf of :meth:`State.to_dict`, ``*`` standing for the VM number."""
    out: set[str] = set()

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}/", item)
        elif prefix == "vms/" and isinstance(value, list):
            walk("vms/*/", value[0])
        else:
            out.add(prefix.rstrip("/"))

    walk("", initial_state(Config(vms=1)).to_dict())
    return out


NAME_KINDS: dict[str, tuple[str, Callable[[], Collection[str]]]] = {
    "actions": ("an action", lambda: ACTIONS),
    "invariants": ("a property", lambda: [*INVARIANTS, *REACH_PROPERTIES]),
    "faults": ("a seeded fault", lambda: FAULTS),
    "scenarios": ("a scenario", lambda: SOMETIMES),
    "parameters": ("an action parameter", _parameters),
    "config fields": ("a configuration field", lambda: {f.name for f in fields(Config)}),
    "features": ("a feature switch", lambda: FEATURES),
    "state paths": ("a state path", _state_paths),
    "virtio events": ("a virtio profile event", lambda: EVENT_KINDS),
}
"""Kind of name -> (one of them in words, every name of that kind the model defines, read
when called so that a table extended later is seen)."""


@dataclass(frozen=True)
class KeyedTable:
    """One table of code keyed by the model's names, as its owner declares it."""

    name: str
    """What the code calls it (``WEIGHTS``, ``ENCODED (@_encodes)``)."""
    module: str
    """The dotted module it lives in; its file is derived from it (:func:`source_file`)."""
    kind: str
    """Which names key it: one of :data:`NAME_KINDS`."""
    keys: Callable[[], Iterable[str]]
    """Its keys, read when checked."""
    covers: Callable[[], Iterable[str]] | None = None
    """The names it must have an entry for (see :func:`every`); None: any subset will do."""
    closed: bool = True
    """Whether every key must be a name of ``kind`` (False for prose, such as the README)."""
    file: str | None = None
    """A file relative to the repository root, for a table that is not a module's."""


def every(kind: str, *, but: Mapping[tuple[str, str], str] | Iterable[str] = (),
          where: Callable[[str], bool] | None = None) -> Callable[[], list[str]]:
    """The names of ``kind`` a table must cover: every one the model defines (that
    satisfies ``where``), less ``but`` (a backend's known gaps, by ``(kind, name)``, or
    plain names).

    >>> "vmm_reclaim" in every("actions")()
    True
    >>> every("actions", but={("actions", "vmm_reclaim"): "why"})().count("vmm_reclaim")
    0
    """
    def names() -> list[str]:
        skip = {k[1] if isinstance(k, tuple) else k for k in but
                if not isinstance(k, tuple) or k[0] == kind}
        return [n for n in NAME_KINDS[kind][1]() if n not in skip and (where is None or where(n))]
    return names


def has_state_form(name: str) -> bool:
    """Whether property ``name`` has a state form (a table of state checks covers it; a
    property over runs has none)."""
    return name in INVARIANTS and INVARIANTS[name].state is not None


def has_step_form(name: str) -> bool:
    """Whether property ``name`` has a step form (a table of step checks covers it)."""
    return name in INVARIANTS and INVARIANTS[name].step is not None
