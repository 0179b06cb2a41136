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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import ballast
from ballast.suites.backends import BACKENDS
from ballast.model.actions import ACTIONS
from ballast.model.domains import DOMAINS
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.keyed import NAME_KINDS, KeyedTable, every, has_state_form, has_step_form
from ballast.model.scenario_kernels import SCENARIO_KERNELS

__all__ = ["MODEL_TABLES", "NAME_KINDS", "KeyedTable", "Problem", "all_tables", "every",
           "has_state_form", "has_step_form", "problems", "source_file"]


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
    KeyedTable("SCENARIO_KERNELS", "ballast.model.scenario_kernels", "scenarios",
               lambda: SCENARIO_KERNELS),
    KeyedTable("ScenarioKernel.actions", "ballast.model.scenario_kernels", "actions",
               lambda: [a for k in SCENARIO_KERNELS.values() for a in k.actions]),
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
