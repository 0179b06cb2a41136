"""One registry: which backend implements each action, property and seeded fault of the model.

Gathered from what each backend exposes about itself (an
:class:`~ballast.model.encodings.Encodes` read from its own tables: the Z3 relations
registered with ``@_encodes``, the NumPy engine's methods and workload weights,
the virtio profile's projections, ...), never from a hand-written copy. The
backends are imported lazily, so the model and the common ground never import
them. ``ballast list actions --backends`` prints the matrix (also for
``invariants`` and ``faults``). Below the matrix, :mod:`ballast.suites.tables` checks each
table the backends key by the model's names, naming the file and the table of a gap.

Backends, as columns: ``model`` (the Python reference model: always), ``prove``
(Z3), ``numeric`` (NumPy), ``explore`` (the explorer: the model's own steps,
with its caches per partition) and ``virtio`` (the virtio profile's projection
of each action). Adapters declare the actions they carry out in their ``hello``
at run time, so they have no column.

>>> m = matrix("actions")
>>> m["vmm_reclaim"]["prove"].status
'encoded'
>>> m["vmm_reclaim"]["numeric"].where
'Engine.vmm_reclaim, weight 4'
>>> matrix("invariants")["isolation"]["virtio"].status
'not covered'
>>> incomplete()
[]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ballast.model.encodings import KINDS, Encodes
from ballast.errors import UsageError
from ballast.model.actions import ACTIONS
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.recovery import REACH_PROPERTIES

__all__ = ["BACKENDS", "Cell", "all_encodes", "incomplete", "matrix", "matrix_json",
           "model_encodes"]

BACKENDS: dict[str, str] = {
    "model": "",
    "prove": "ballast.proofs.encodes",
    "numeric": "ballast.numeric.encodes",
    "explore": "ballast.statespace.encodes",
    "virtio": "ballast.validate.virtio.encodes",
}
"""Backend name -> module with an ``encodes()`` function (the model's is built here)."""


@dataclass(frozen=True)
class Cell:
    """One backend's implementation of one item of the model."""

    status: str
    """``encoded``, ``known gap`` (with the backend's reason), ``missing`` or ``not covered``
    (the backend does not claim to cover that kind)."""
    where: str = ""
    """Where it is implemented, or why not."""

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"status": self.status, "where": self.where}


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def model_encodes() -> Encodes:
    """The Python reference model: the definition of every item, so nothing is missing."""
    def forms(name: str) -> str:
        p = INVARIANTS[name]
        return ", ".join(f"{_where(f)}{tag}" for f, tag in (
            (p.per_vm or p.state, ""), (p.step, " [step]")) if f is not None)

    return Encodes("model", "Python",
                   actions={n: _where(spec.effect) for n, spec in ACTIONS.items()},
                   invariants={**{n: forms(n) for n in INVARIANTS},
                               **{n: f"ballast.model.recovery.REACH_PROPERTIES[{n!r}] [over runs]"
                                  for n in REACH_PROPERTIES}},
                   faults={n: f"{_where(f.effect)} (replaces {f.action})"
                           for n, f in FAULTS.items()})


def all_encodes() -> dict[str, Encodes]:
    """Every backend's :class:`Encodes`, by backend name."""
    out = {}
    for name, module in BACKENDS.items():
        out[name] = model_encodes() if not module else importlib.import_module(module).encodes()
    return out


def _names(kind: str) -> list[str]:
    if kind == "actions":
        return list(ACTIONS)
    if kind == "invariants":  # the properties over runs after the safety properties
        return list(INVARIANTS) + list(REACH_PROPERTIES)
    if kind == "faults":
        return list(FAULTS)
    raise UsageError(f"no backend matrix for {kind!r}; expected one of {', '.join(KINDS)}")


def _cell(enc: Encodes, kind: str, name: str) -> Cell:
    if kind not in enc.covers:
        return Cell("not covered", f"{enc.backend} does not check the model's {kind}")
    where = enc.table(kind).get(name)
    if where is not None:
        return Cell("encoded", where)
    reason = enc.known_gaps.get((kind, name))
    if reason is not None:
        return Cell("known gap", reason)
    return Cell("missing", f"no {enc.encoding} encoding of {kind[:-1]} {name}")


def matrix(kind: str) -> dict[str, dict[str, Cell]]:
    """Item name -> backend name -> :class:`Cell`, for ``actions``, ``invariants`` or ``faults``."""
    names = _names(kind)
    encs = all_encodes()
    return {n: {b: _cell(e, kind, n) for b, e in encs.items()} for n in names}


def matrix_json(kind: str) -> dict[str, Any]:
    """The matrix as JSON-able data: ``{"kind", "backends", "rows": {name: {backend: cell}}}``."""
    m = matrix(kind)
    return {"kind": kind, "backends": list(BACKENDS),
            "rows": {n: {b: c.to_dict() for b, c in row.items()} for n, row in m.items()}}


def incomplete() -> list[tuple[str, str, str]]:
    """(backend, kind, name) of every item a backend claims to cover but does not encode
    and does not list as a known gap: empty for a complete registry."""
    return [(b, kind, n) for kind in KINDS for n, row in matrix(kind).items()
            for b, c in row.items() if c.status == "missing"]
