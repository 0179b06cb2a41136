"""What the virtio profile covers of the model's actions, read from its own tables.

The profile (:mod:`ballast.model.virtio`) projects each model step onto one VM's
virtio-balloon interface: the actions in
:data:`~ballast.model.virtio.PROJECTIONS` have events of their own, those in
:data:`~ballast.model.virtio.PAGE_USE_ONLY` are invisible to device and driver
except for free PFNs the guest takes into use. An action in neither is a gap:
the profile cannot know whether the device would see it. The profile judges
the VirtIO rules, not the model's properties or seeded faults, so it covers
actions only.

>>> encodes().actions["vmm_reclaim"]
'events (ballast.model.virtio._reclaim)'
>>> from ballast.model.config import preset
>>> bool(gaps_in(preset("default")))
False
"""

from __future__ import annotations

from ballast.model.encodings import Encodes, Gaps, gaps
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.virtio import PAGE_USE_ONLY, PROJECTIONS
from ballast.model.keyed import KeyedTable, every

__all__ = ["BACKEND", "KNOWN_GAPS", "TABLES", "encodes", "gaps_in"]

BACKEND = "virtio"


def _qemu_actions() -> dict[str, str]:
    from ballast.validate.qemu.steps import ACTION_OF

    return ACTION_OF


def _scenario_actions() -> dict[str, frozenset[str]]:
    from ballast.validate.adapters.diff import _SCENARIO_ACTIONS

    return _SCENARIO_ACTIONS


def _run_actions() -> frozenset[str]:
    from ballast.validate.adapters.v2 import run_actions

    return run_actions()


def _observed_paths() -> list[str]:
    from ballast.validate.adapters.observe import OBSERVATIONS

    return [t for t, key in OBSERVATIONS.items() if key.derived is None]


KNOWN_GAPS: dict[tuple[str, str], str] = {}
"""Actions the profile deliberately does not project yet, each with its reason."""


TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("PROJECTIONS", "ballast.model.virtio", "actions", lambda: PROJECTIONS),
    KeyedTable("PAGE_USE_ONLY", "ballast.model.virtio", "actions", lambda: PAGE_USE_ONLY),
    KeyedTable("PROJECTIONS or PAGE_USE_ONLY", "ballast.model.virtio", "actions",
               lambda: {*PROJECTIONS, *PAGE_USE_ONLY}, every("actions", but=KNOWN_GAPS)),
    KeyedTable("ACTION_OF", "ballast.validate.qemu.steps", "virtio events", _qemu_actions),
    KeyedTable("ACTION_OF (values)", "ballast.validate.qemu.steps", "actions",
               lambda: _qemu_actions().values()),
    KeyedTable("_SCENARIO_ACTIONS", "ballast.validate.adapters.diff", "scenarios",
               _scenario_actions, every("scenarios")),
    KeyedTable("_SCENARIO_ACTIONS (values)", "ballast.validate.adapters.diff", "actions",
               lambda: {a for acts in _scenario_actions().values() for a in acts}),
    KeyedTable("RUN_ACTORS", "ballast.validate.adapters.v2", "actions", _run_actions),
    KeyedTable("OBSERVATIONS (state paths)", "ballast.validate.adapters.observe", "state paths",
               _observed_paths),
)
"""The validation side's tables keyed by the model's names (checked by
:mod:`ballast.suites.tables`): the virtio profile's projection of every action, the QEMU
events' actions, the adapters' scenario prerequisites, run actors and observation keys."""


def encodes() -> Encodes:
    """The virtio profile's projection of each action, by the model's names."""
    actions = {n: f"events ({fn.__module__}.{fn.__qualname__})" for n, fn in PROJECTIONS.items()}
    actions.update({n: "pages taken into use only" for n in PAGE_USE_ONLY if n in ACTIONS})
    return Encodes(BACKEND, "virtio", actions=actions, invariants={}, faults={},
                   known_gaps=KNOWN_GAPS, covers=("actions",))


def gaps_in(cfg: Config) -> Gaps:
    """The actions ``cfg`` switches on that the virtio profile does not project knowingly."""
    return gaps(encodes(), cfg)
