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

from ballast.encodings import Encodes, Gaps, gaps
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.virtio import PAGE_USE_ONLY, PROJECTIONS

__all__ = ["BACKEND", "encodes", "gaps_in"]

BACKEND = "virtio"


def encodes() -> Encodes:
    """The virtio profile's projection of each action, by the model's names."""
    actions = {n: f"events ({fn.__module__}.{fn.__qualname__})" for n, fn in PROJECTIONS.items()}
    actions.update({n: "pages taken into use only" for n in PAGE_USE_ONLY if n in ACTIONS})
    return Encodes(BACKEND, "virtio", actions=actions, invariants={}, faults={},
                   covers=("actions",))


def gaps_in(cfg: Config) -> Gaps:
    """The actions ``cfg`` switches on that the virtio profile does not project knowingly."""
    return gaps(encodes(), cfg)
