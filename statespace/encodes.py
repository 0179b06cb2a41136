"""What the explorer covers of the model, read from the model it drives.

The explorer has no encoding of its own: it takes the model's steps
(:meth:`~ballast.model.system.BalloonModel.successors`), caching each action's
steps by the part of the state its arguments are chosen for
(:class:`~ballast.model.actions.Partition`), and the model's checks, caching
per-VM state checks per (host, VM) part. So every action, property and fault of
the model is covered (:func:`encodes`). What ``ballast check`` explores is a set
of small *feature slices* of the configuration; an action the configuration
switches on that no slice does is not explored (:func:`sliced`).

>>> encodes().actions["vmm_share"]
"the model's step, cached per system part"
>>> from ballast.model.config import preset
>>> from ballast.statespace.suite import feature_slices
>>> sliced(feature_slices(preset("default"))).actions["rogue_touch"]
'slices hostile'
"""

from __future__ import annotations

from typing import Mapping

from ballast.model.encodings import Encodes
from ballast.model.actions import ACTIONS
from ballast.model.config import FEATURES, Config, features_on
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS, Property
from ballast.model.keyed import KeyedTable, every
from ballast.model.recovery import REACH_PROPERTIES

__all__ = ["BACKEND", "TABLES", "encodes", "sliced"]

BACKEND = "explore"


def _sliced_features() -> set[str]:
    """The feature switches some feature slice of a configuration with all of them on has on."""
    from ballast.statespace.suite import feature_slices

    everything = Config().replace(**{name: True for name in FEATURES if name != "guest_system"})
    # A generic guest system has neither content sharing nor host use: its own configuration.
    guest_system = everything.replace(sharing=False, host_use=False, guest_system=True,
                                      machine_pages=everything.vms * everything.guest_pages)
    return {f for cfg in (everything, guest_system)
            for small in feature_slices(cfg).values() for f in features_on(small)}


def _target_setters() -> tuple[str, ...]:
    from ballast.statespace.liveness import _TARGET_SETTERS

    return _TARGET_SETTERS


TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("feature_slices", "ballast.statespace.suite", "features", _sliced_features,
               every("features")),
    KeyedTable("_TARGET_SETTERS", "ballast.statespace.liveness", "actions", _target_setters),
)
"""The explorer's tables keyed by the model's names (checked by :mod:`ballast.suites.tables`): every
feature switch is explored by some slice of ``ballast check``."""


def _checks(p: Property) -> str:
    forms = []
    if p.per_vm is not None:
        forms.append("state, cached per (host, VM) part")
    elif p.state is not None:
        forms.append("state, cached per whole state")
    if p.step is not None:
        forms.append("step, on every step")
    return "the model's check: " + "; ".join(forms)


def encodes() -> Encodes:
    """Every action, property and fault of the model, as the explorer runs it."""
    return Encodes(
        BACKEND, "explorer",
        actions={n: f"the model's step, cached per {spec.partition.value} part"
                 for n, spec in ACTIONS.items()},
        invariants={**{n: _checks(p) for n, p in INVARIANTS.items()},
                    **{n: "backward reachability over the full graph of a slice "
                          "(ballast.statespace.liveness.check_reach)"
                       for n in REACH_PROPERTIES}},
        faults={n: f"the model's faulty {f.action}" for n, f in FAULTS.items()})


def sliced(slices: Mapping[str, Config]) -> Encodes:
    """The explorer as ``ballast check`` runs it: the actions some slice switches on."""
    full = encodes()
    actions = {}
    for name, spec in ACTIONS.items():
        where = [s for s, cfg in slices.items() if spec.feature(cfg)]
        if where:
            actions[name] = f"slices {', '.join(where)}"
    return Encodes(BACKEND, "explorer", actions=actions, invariants=full.invariants,
                   faults=full.faults, lack="no feature slice explores")
