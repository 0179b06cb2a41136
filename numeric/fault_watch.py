"""Whether a seeded fault ever did otherwise than the model: the fault's branch exercised.

A seeded fault (:data:`ballast.model.faults.FAULTS`) replaces one action's step with a broken
variant; where the variant does what the model's own step does, the run shows nothing of the
fault, and a campaign that never reached a state where the two differ has not checked it at
all. :class:`FaultWatch` runs, beside each batch of a seeded fault's action, the model's own
step (the engine with that fault left out) on a copy of the arrays, with the same VMs and
arguments, and notes the first batch in which the two differ: in which operations took effect,
or in any part of the state after the batch. The fault's step runs on the engine's own arrays
as it would unwatched, so a seed does the same operations with or without the watch.

Once a fault has deviated its action's batches are no longer copied: a seed costs the copies
of its batches up to the first deviation, and nothing at all without a seeded fault.

>>> import numpy as np
>>> from ballast.model.config import Config
>>> from ballast.numeric.engine import Engine
>>> cfg = Config(vms=2, guest_pages=4, machine_pages=8, processors=True)
>>> eng = Engine(cfg, ["cpu_reclaim_keeps_parked"])
>>> watch = FaultWatch(eng)
>>> watch.watched
{'vmm_cpu_reclaim': ('cpu_reclaim_keeps_parked',)}
>>> before = watch.before("vmm_cpu_reclaim", np.array([0]), {})
>>> ok = eng.apply_batch("vmm_cpu_reclaim", np.array([0]))
>>> watch.after(before, ok, batch=1), watch.first  # nothing parked: both refuse alike
(False, {})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from ballast.model.action_kernels import FAULT_KERNELS
from ballast.model.faults import FAULTS
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.engine import Engine

__all__ = ["FaultWatch", "same_arrays"]


def same_arrays(a: SystemArrays, b: SystemArrays) -> bool:
    """Whether two engines' arrays hold the same state, every part compared (arrays,
    counters and the dictionaries of rare entries).

    >>> from ballast.model.config import Config
    >>> a = SystemArrays.initial(Config(vms=1, guest_pages=2, machine_pages=2))
    >>> b = a.copy()
    >>> same_arrays(a, b)
    True
    >>> b.content[1] = 7
    >>> same_arrays(a, b)
    False
    """
    for key, value in a.__dict__.items():
        other = getattr(b, key)
        if isinstance(value, np.ndarray):
            if not np.array_equal(value, other):
                return False
        elif key != "cfg" and value != other:
            return False
    return True


@dataclass
class _Probe:
    """The model's own step of one batch, run on a copy of the arrays before it."""

    action: str
    model: Engine
    ok: npt.NDArray[np.bool_]


class FaultWatch:
    """Notes, for each fault seeded into ``eng``, the first batch in which its step did
    otherwise than the model's own (:attr:`first`)."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        by_action: dict[str, list[str]] = {}
        for name in sorted(eng.faults):
            action, kernel = FAULT_KERNELS[name]
            # A fault that another seeded fault of the same action displaces never runs: it
            # is never credited with a deviation.
            if eng._kernels.get(action) is kernel:
                by_action.setdefault(action, []).append(name)
        self.watched: dict[str, tuple[str, ...]] = {a: tuple(f) for a, f in by_action.items()}
        """Action -> the seeded faults whose step the engine runs for it."""
        self.first: dict[str, int] = {}
        """Fault -> the batch (counted from 1) in which its step first did otherwise than
        the model's."""
        self._models: dict[str, Engine] = {}

    def _model(self, action: str) -> Engine:
        """An engine running the model's own step of ``action`` (the other faults kept)."""
        model = self._models.get(action)
        if model is None:
            rest = [f for f in self.eng.faults if FAULTS[f].action != action]
            # Its arrays are replaced by a copy of the engine's before each batch it runs.
            model = self._models[action] = Engine(self.eng.cfg, rest, self.eng.arr)
        return model

    def before(self, action: str, vms: Any, args: Mapping[str, Any]) -> _Probe | None:
        """Run the model's own step of a batch of ``action`` that the engine is about to
        run (None: no seeded fault of that action is still to be seen deviating)."""
        faults = self.watched.get(action)
        if faults is None or all(f in self.first for f in faults):
            return None
        model = self._model(action)
        model.arr = self.eng.arr.copy()
        model.hint = self.eng.hint
        model.step_violations = []
        own = {k: (v.copy() if isinstance(v, np.ndarray) else list(v)) for k, v in args.items()}
        ok = model.apply_batch(action, np.array(vms, dtype=np.int64, copy=True), **own)
        return _Probe(action, model, ok)

    def after(self, probe: _Probe | None, ok: npt.NDArray[np.bool_], *, batch: int) -> bool:
        """Compare the engine's batch (``ok``: which operations took effect) with the
        model's step of it; note and return whether the fault's step did otherwise."""
        if probe is None:
            return False
        differs = not np.array_equal(ok, probe.ok) or not same_arrays(self.eng.arr,
                                                                       probe.model.arr)
        probe.model.arr = self.eng.arr  # the copy is not kept (memory)
        if differs:
            for fault in self.watched[probe.action]:
                self.first.setdefault(fault, batch)
        return differs
