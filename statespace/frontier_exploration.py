"""What a frontier search finds: an exploration whose states are packed keys.

:class:`FrontierExploration` is the reference's
:class:`~ballast.statespace.explore.Exploration` (so the verdicts, traces and reports serve
both engines) holding each state as its row packed into 64-bit words, the visited set, and
where they go on disk beyond a memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ballast.model.state import State
from ballast.statespace.explore import Exploration
from ballast.statespace.keyset import KeySet, Spill
from ballast.statespace.rowcodec import RowLayout

__all__ = ["FrontierExploration"]

Keys = npt.NDArray[np.uint64]


@dataclass
class FrontierExploration(Exploration):
    """What the frontier engine found: an :class:`Exploration` whose states are packed keys."""

    layout: RowLayout | None = None
    engine: str = "frontier"
    kernel_actions: tuple[str, ...] = ()
    """Actions stepped by their kernel over whole batches."""
    model_actions: tuple[str, ...] = ()
    """Actions stepped by the Python model (no kernel yet)."""
    count: int = 0
    rep_keys: Keys = field(default_factory=lambda: np.zeros((0, 1), dtype=np.uint64))
    visited: KeySet | None = None
    deepest: int = 0
    spill: Spill | None = None
    """Where the visited keys and the states go beyond the memory budget (None: no budget)."""
    _rep_file: tuple[str, ...] = ()

    @property
    def spilled_bytes(self) -> int:
        """Bytes of visited keys and states written to disk (0 without a memory budget)."""
        return 0 if self.spill is None else self.spill.written

    @property
    def states(self) -> int:
        return self.count

    @property
    def max_depth(self) -> int:
        return self.deepest

    def bytes_estimate(self) -> int:
        on_disk = isinstance(self.rep_keys, np.memmap)
        held = ((0 if on_disk else self.rep_keys[:self.count].nbytes) + 12 * self.count
                + 12 * len(self.edge_src))
        return held + (self.visited.nbytes() if self.visited is not None else 0)

    def state(self, sid: int) -> State:
        assert self.layout is not None
        return self.layout.decode(self.layout.unpack(self.rep_keys[sid:sid + 1])[0])

    def all_states(self) -> list[State]:
        """Every real state, by id: the keys unpacked a block at a time, not one by one."""
        assert self.layout is not None
        out: list[State] = []
        for lo in range(0, self.count, 65536):
            rows = self.layout.unpack(self.rep_keys[lo:min(self.count, lo + 65536)])
            out += [self.layout.decode(r) for r in rows]
        return out

    def _grow(self, n: int) -> None:
        need = self.count + n
        if need > len(self.rep_keys):
            cap = max(need, 2 * len(self.rep_keys), 1024)
            shape = (cap, self.rep_keys.shape[1])
            sp = self.spill
            if sp is not None and cap * shape[1] * 8 > sp.budget:
                # Beyond the budget the states live in a file, memory-mapped.
                files, (grown,) = sp.create(((shape, np.uint64),))
                grown[:self.count] = self.rep_keys[:self.count]
                if self._rep_file:
                    sp.discard(self._rep_file[0], self.rep_keys.nbytes)
                self._rep_file = files
            else:
                grown = np.zeros(shape, dtype=np.uint64)
                grown[:self.count] = self.rep_keys[:self.count]
            self.rep_keys = grown
