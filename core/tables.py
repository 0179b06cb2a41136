"""Every string-keyed table that ties the model's names to code, and its completeness check.

Actions, properties, seeded faults and scenarios are defined once, in the model;
elsewhere code is found by their names: the Z3 relations registered with
``@_encodes``, the numeric workload's ``WEIGHTS``, the virtio profile's
``PROJECTIONS``, the sequence diagram's ``MESSAGES``, ... Each such table is
declared once as a :class:`KeyedTable`: by its backend in that backend's
``encodes`` module (``TABLES``), or here for the model's own tables, the reports
and the README. :func:`problems` checks every one of them: each key is a name the
model defines (a misspelt key is named with the closest real name), and a table
that must cover a kind of name has an entry for every one the model defines, less
the gaps its backend declares on purpose. Each problem names the file, the table
and the key. A test keeps the list empty for the shipped model.

>>> [str(p) for p in problems([KeyedTable("T", "ballast.model.faults", "actions",
...                                       lambda: ["vmm_reclaim", "vmm_reclam"])])]
["model/faults.py: T: 'vmm_reclam' is not an action of the model (did you mean vmm_reclaim?)"]
>>> problems()
[]
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

import ballast
from ballast.backends import BACKENDS
from ballast.model.actions import ACTIONS
from ballast.model.config import FEATURES, Config
from ballast.model.domains import DOMAINS
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import initial_state
from ballast.model.virtio import EVENT_KINDS

__all__ = ["MODEL_TABLES", "NAME_KINDS", "KeyedTable", "Problem", "all_tables", "every",
           "has_state_form", "has_step_form", "problems", "source_file"]


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
    "invariants": ("a property", lambda: INVARIANTS),
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
    """Whether property ``name`` has a state form (a table of state checks covers it)."""
    return INVARIANTS[name].state is not None


def has_step_form(name: str) -> bool:
    """Whether property ``name`` has a step form (a table of step checks covers it)."""
    return INVARIANTS[name].step is not None


def source_file(module: str) -> str:
    """The file of ``module``, relative to the folder that holds the package's folders.

    >>> source_file("ballast.model.virtio")
    'model/virtio.py'
    """
    path = importlib.import_module(module).__file__
    assert path is not None
    root = Path(ballast.__file__).resolve().parent.parent
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return module.replace(".", "/") + ".py"


def _readme_names() -> set[str]:
    root = Path(ballast.__file__).resolve().parent.parent
    readme = root / "README.md"
    if not readme.is_file():  # an installed package has no README beside it
        return set(ACTIONS) | set(INVARIANTS)
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", readme.read_text(encoding="utf-8")))


def _sequence() -> Any:
    return importlib.import_module("ballast.reports.sequence")


MODEL_TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("DOMAINS", "ballast.model.domains", "parameters", lambda: DOMAINS,
               every("parameters")),
    KeyedTable("Fault.action", "ballast.model.faults", "actions",
               lambda: [f.action for f in FAULTS.values()]),
    # Every property has a seeded fault that breaks it, so each checker is shown to catch it.
    KeyedTable("Fault.breaks", "ballast.model.faults", "invariants",
               lambda: [f.breaks for f in FAULTS.values()], every("invariants")),
    KeyedTable("Fault.config", "ballast.model.faults", "config fields",
               lambda: [k for f in FAULTS.values() for k in f.config]),
    KeyedTable("MESSAGES", "ballast.reports.sequence", "actions", lambda: _sequence().MESSAGES,
               every("actions")),
    KeyedTable("the actors and actions", "", "actions", _readme_names, every("actions"),
               closed=False, file="README.md"),
    KeyedTable("the safety properties", "", "invariants", _readme_names, every("invariants"),
               closed=False, file="README.md"),
)
"""The tables of the model itself, of the reports and of the README."""


def all_tables() -> list[KeyedTable]:
    """The model's tables and every backend's (``TABLES`` of its ``encodes`` module)."""
    out = list(MODEL_TABLES)
    for module in BACKENDS.values():
        if module:
            out += importlib.import_module(module).TABLES
    return out


@dataclass(frozen=True)
class Problem:
    """A key of a table that names nothing in the model, or a name a table lacks."""

    file: str
    table: str
    key: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.table}{self.what}"


def _check(t: KeyedTable) -> list[Problem]:
    try:
        where = t.file or source_file(t.module)
        keys = list(t.keys())
    except (ImportError, AttributeError) as exc:
        return [Problem(t.file or t.module, t.name, "", f": cannot be read ({exc})")]
    singular, defined = NAME_KINDS[t.kind]
    names = list(defined())
    out = []
    if t.closed:
        for key in dict.fromkeys(keys):
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                out.append(Problem(where, t.name, key,
                                   f": {key!r} is not {singular} of the model{hint}"))
    if t.covers is not None:
        have = set(keys)
        for name in t.covers():
            if name not in have:
                out.append(Problem(where, t.name, name,
                                   f" has no entry for {singular.split(' ', 1)[1]} {name}"))
    return out


def problems(tables: Iterable[KeyedTable] | None = None) -> list[Problem]:
    """Every misspelt key and every missing entry of ``tables`` (default: all of them)."""
    return [p for t in (all_tables() if tables is None else tables) for p in _check(t)]
