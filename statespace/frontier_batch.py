"""A batch of the frontier engine's states and the steps made from them, in order.

:class:`Batch` holds the states of one batch of a level and the steps made from them, action
by action, as they are made; :class:`Ordered` puts the steps in the reference's order (state
by state, then the model's order of actions and candidates); :class:`Chosen` is a selection
of them that the model's own checks answer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from ballast.model.invariants import Property
from ballast.model.sometimes import Scenario
from ballast.model.state import State
from ballast.statespace.frontier_parts import PartIds
from ballast.statespace.rowcodec import RowLayout

__all__ = ["Batch", "Carried", "Chosen", "Flagged", "Ordered"]

Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.uint64]

Flagged = Property | Scenario
"""What a kernel flags steps for: a step property they break, or a scenario they witness."""


class _Decoded:
    """The states of rows, each decoded when first asked for."""

    def __init__(self, layout: RowLayout, rows: npt.NDArray[np.int16]) -> None:
        self.layout = layout
        self.rows = rows
        self.done: list[State | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self.done)

    def __getitem__(self, i: int) -> State:
        got = self.done[i]
        if got is None:
            got = self.done[i] = self.layout.decode(self.rows[i])
        return got

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self.done)))


class _Blocks:
    """Rows kept as the blocks they were made in (``(n_i, width)`` each), read by their
    positions in all the blocks put end to end, without putting them together.

    >>> import numpy as np
    >>> b = _Blocks([np.array([[1], [2]], dtype=np.int16), np.array([[3]], dtype=np.int16)], 1)
    >>> b.take(np.array([2, 0])).tolist(), b.take(1).tolist()
    ([[3], [1]], [2])
    """

    def __init__(self, blocks: list[npt.NDArray[np.int16]], width: int) -> None:
        self.blocks = blocks
        self.width = width
        sizes = np.array([len(b) for b in blocks], dtype=np.int64)
        self.starts = np.cumsum(sizes) - sizes

    def take(self, at: Any) -> npt.NDArray[np.int16]:
        """The rows at positions ``at`` (a position: one row; an array: rows, in its order)."""
        if np.ndim(at) == 0:
            b = int(np.searchsorted(self.starts, at, side="right")) - 1
            row: npt.NDArray[np.int16] = self.blocks[b][int(at) - int(self.starts[b])]
            return row
        at = np.asarray(at, dtype=np.int64)
        out = np.empty((len(at), self.width), dtype=np.int16)
        if not len(at):
            return out
        which = np.searchsorted(self.starts, at, side="right") - 1
        order = np.argsort(which, kind="stable")
        cuts = np.searchsorted(which[order], np.arange(len(self.blocks) + 1))
        for b in np.flatnonzero(np.diff(cuts)).tolist():
            sel = order[cuts[b]:cuts[b + 1]]
            out[sel] = np.take(self.blocks[b], at[sel] - self.starts[b], axis=0)
        return out


class Carried:
    """The ids of states' parts (host, and one per VM), in the states' order: read when the
    states were found, kept for the batch that expands them. (Their rows are not kept: a
    level's rows, 2 bytes a column, would cost more memory than the states' keys.)

    >>> import numpy as np
    >>> c = Carried(np.array([0, 1, 0]), np.array([[5], [6], [7]]))
    >>> kept = Carried.joined([c.taken(np.array([True, False, True])), c.part(1, 1)])
    >>> kept.host.tolist(), kept.vms.tolist(), len(kept)
    ([0, 0, 1], [[5], [7], [6]], 3)
    """

    def __init__(self, host: Ints, vms: Ints) -> None:
        self.host = host
        self.vms = vms

    def __len__(self) -> int:
        return len(self.host)

    def taken(self, which: npt.NDArray[np.bool_]) -> Carried:
        """The states ``which`` selects, in order."""
        return Carried(self.host[which], self.vms[which])

    def part(self, start: int, size: int) -> Carried:
        """The ``size`` states from position ``start`` (fewer at the end)."""
        end = start + size
        return Carried(self.host[start:end], self.vms[start:end])

    @staticmethod
    def joined(parts: list[Carried]) -> Carried:
        """``parts`` end to end."""
        if len(parts) == 1:
            return parts[0]
        return Carried(np.concatenate([p.host for p in parts]),
                       np.concatenate([p.vms for p in parts]))


class Batch:
    """A batch of states of one level and the steps made from them, in the order made."""

    def __init__(self, lay: RowLayout, sids: list[int], rep_keys: Keys, part_ids: PartIds,
                 flag: Callable[[npt.NDArray[np.int16], npt.NDArray[np.int16], Ints,
                                 npt.NDArray[np.bool_]], list[tuple[Ints, Flagged]]],
                 keep_rows: bool = True, carried: Carried | None = None) -> None:
        self.lay = lay
        self.keep_rows = keep_rows
        """Whether the successors' rows are kept until the batch's steps are ordered (a
        search that canonicalises every successor reads them all); else only their keys
        are, and a row is unpacked from its key where read."""
        self.sids = sids
        self.m = len(sids)
        self.src = np.array(sids, dtype=np.int64)
        self.row_keys: Keys = rep_keys[self.src]
        rows = self.rows = lay.unpack(self.row_keys)
        if carried is not None:  # the part ids the batch that found the states gave them
            self.pre_h, self.pre_v = carried.host, carried.vms
        else:
            self.pre_h, self.pre_v = part_ids.of_keys(self.row_keys, lambda: rows)
        self.states = _Decoded(lay, rows)
        self.flag = flag
        """The steps a step property's kernel finds broken, or a scenario's kernel finds
        witness it (:meth:`~ballast.statespace.frontier_checks.StepChecks.flagged`)."""
        self.par: list[Any] = []
        self.order: list[Any] = []
        self.aids: list[Any] = []
        self.out_rows: list[Any] = []
        self.out_keys: list[Keys] = []
        self.posts: dict[int, State] = {}
        self.flagged: list[tuple[Ints, Flagged]] = []
        self.produced = 0

    def emit(self, p: Any, o: Any, a: Any, r: Any, post: list[State] | None = None,
             before: npt.NDArray[np.int16] | None = None) -> None:
        """Add the steps from the states ``p`` (positions in the batch) at the model's order
        ``o`` by the actions ``a`` to the rows ``r`` (``post``: their states, if made;
        ``before``: the rows of ``p``, if gathered already)."""
        lay = self.lay
        produced = self.produced
        self.par.append(p)
        self.order.append(o)
        self.aids.append(a)
        if self.keep_rows:
            self.out_rows.append(r)
        if before is None:
            before = np.take(self.rows, p, axis=0)  # take: a fraction of the time of indexing
        changed = lay.changed_columns(before, r)
        # The successors' keys from their parents': one action's steps change a few
        # columns, which alone are packed again.
        self.out_keys.append(lay.repack(self.row_keys[p], before, r, changed))
        # Step properties with a kernel: over these steps at once, as they are made.
        touched = np.zeros(lay.width, dtype=bool)
        touched[changed] = True
        flagged = self.flagged
        for at, prop in self.flag(before, r, np.asarray(a), touched):
            flagged.append((at + produced, prop))
        if post is not None:
            posts = self.posts
            for k, s in enumerate(post):
                posts[produced + k] = s
        self.produced = produced + len(p)

    def mark(self) -> tuple[int, int, int]:
        """Where the steps made so far end (for :meth:`drop_since`)."""
        return len(self.par), self.produced, len(self.flagged)

    def drop_since(self, mark: tuple[int, int, int]) -> None:
        """Drop the steps made since :meth:`mark` gave ``mark``."""
        n, produced, n_flagged = mark
        del self.par[n:], self.order[n:], self.aids[n:]
        del self.out_rows[n:], self.out_keys[n:], self.flagged[n_flagged:]
        self.produced = produced


class Ordered:
    """The steps of a batch in the reference's order (state by state, then the model's order
    of actions and candidates): parents, actions and keys; rows and states where read."""

    def __init__(self, batch: Batch) -> None:
        lay = self.lay = batch.lay
        produced = self.count = batch.produced
        if produced:
            par = np.concatenate(batch.par).astype(np.int64)
            order = np.concatenate(batch.order).astype(np.int64)
            aid = np.concatenate(batch.aids).astype(np.int64)
            keys = np.concatenate(batch.out_keys)
        else:
            par = order = aid = np.zeros(0, dtype=np.int64)
            keys = np.zeros((0, lay.words), dtype=np.uint64)
        perm = self.perm = np.lexsort((order, par))
        self.par: Ints = par[perm]
        self.aid: Ints = aid[perm]
        self.keys: Keys = keys[perm]
        self.made = _Blocks(batch.out_rows, lay.width) if batch.keep_rows else None
        self.post_of: list[State | None] = [None] * produced
        self.where: Ints | None = None
        """Per step in the order made, its position in this order (where needed)."""
        if batch.posts or batch.flagged:
            where = self.where = np.empty(produced, dtype=np.int64)
            where[perm] = np.arange(produced)
            post_of = self.post_of
            for k, s in batch.posts.items():
                post_of[int(where[k])] = s

    def rows_at(self, ks: Any) -> npt.NDArray[np.int16]:
        """Successor rows in the reference's order (``ks``: positions in that order).
        Most are read only through their keys: where the batch kept the rows they are
        gathered from the blocks they were made in, else unpacked from their keys (a batch
        holds a key, not a row, per step)."""
        if self.made is not None:
            return self.made.take(self.perm[ks])
        if np.ndim(ks) == 0:
            row: npt.NDArray[np.int16] = self.lay.unpack(self.keys[int(ks):int(ks) + 1])[0]
            return row
        return self.lay.unpack(self.keys[ks])

    def post_state(self, k: int) -> State:
        """The state the step at ``k`` leads to, decoded when first asked for."""
        got = self.post_of[k]
        if got is None:
            got = self.post_of[k] = self.lay.decode(self.rows_at(k))
        return got


class Chosen:
    """The steps of a batch whose step properties or scenarios the model answers: their
    positions among the ordered steps, their parents and actions."""

    def __init__(self, batch: Batch, steps: Ordered, at: Ints) -> None:
        self.batch = batch
        self.steps = steps
        self.at = at
        self.aid: Ints = steps.aid[at]
        self.par: Ints = steps.par[at]
        self.aids: list[int] = self.aid.tolist()
        self.pars: list[int] = self.par.tolist()

    def __len__(self) -> int:
        return len(self.at)

    def post(self, k: int) -> State:
        """The state the ``k``-th chosen step leads to."""
        return self.steps.post_state(int(self.at[k]))
