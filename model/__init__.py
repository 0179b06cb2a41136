"""The Ballast reference model: frozen state, pure actions, named properties.

The public surface: :class:`Config` and presets, :class:`State`,
:class:`Action` with the action table :data:`ACTIONS`, the properties
:data:`INVARIANTS` and scenarios :data:`SOMETIMES`, seeded :data:`FAULTS`, and
:class:`BalloonModel`, which checkers drive.
"""

from ballast.model.actions import ACTIONS, Action, ActionSpec, Actor, apply, enabled
from ballast.model.config import PRESETS, Config, load_config, preset
from ballast.model.faults import FAULTS, Fault
from ballast.model.invariants import INVARIANTS, Property
from ballast.model.sometimes import SOMETIMES, Scenario
from ballast.model.state import State, initial_state
from ballast.model.system import BalloonModel, Violation

__all__ = [
    "ACTIONS", "Action", "ActionSpec", "Actor", "apply", "enabled",
    "PRESETS", "Config", "load_config", "preset",
    "FAULTS", "Fault",
    "INVARIANTS", "Property",
    "SOMETIMES", "Scenario",
    "State", "initial_state",
    "BalloonModel", "Violation",
]
