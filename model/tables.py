"""A state's large per-page records held in mutable tables, read through persistent views.

A real guest has 131,072 PPNs and a balloon of tens of thousands of pages. The model is
frozen data and pure steps, so a step that inflates a report of 256 pages copies the
guest's whole page table (``guest.ppn_use``) and the whole balloon sets (``ballooned``,
``module.balloon``): on a long trace those copies are nearly all of the work, although a
step changes a few hundred entries.

:class:`StateTables` keeps those three records of every VM in mutable tables (a list, two
sets) and gives a :class:`~ballast.model.state.State` that reads them: its
``guest.ppn_use`` is the list itself, its balloon sets are :class:`PageSet` views (the
table, plus the pages added and removed beside it). The model's own action functions and
properties run on such a state unchanged. Every read gives what the frozen record would
give; an effect leaves the tables alone and puts its changes beside them (the model's
``_with_use`` makes a :class:`PageVector` of a list, ``|`` and ``-`` of a view make new
views). :meth:`StateTables.commit` then writes the step's changes into the tables, in
place and as many entries as the step changed, and gives the states before and after the
step, both as views of the tables as they now are; :meth:`StateTables.roll_back` undoes
it (a step whose properties break is not taken). A step costs what it changes, not the
size of the guest, and its states are the values the frozen model computes
(``tests/model/test_tables.py`` compares both, step by step, on random walks of every
preset and on the real QEMU capture).

Views read the tables as they are: after a commit, only the states it gave may be read. A
VM's records get new view objects whenever one of its tables changes (the page table itself
keeps its identity, the sets' views are new), so a cache keyed on the identities of a VM's
records, such as the model's property caches, never mistakes a changed state for one it saw.

>>> from ballast.model.actions import Action
>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> m = BalloonModel(Config(vms=1, guest_pages=4, machine_pages=4))
>>> tables = StateTables(m.init_states()[0])
>>> s = tables.state
>>> for act in (Action.of("host_set_target", vm=0, pages=2), Action.of("balloon_poll", vm=0),
...             Action.of("balloon_inflate", vm=0, ppns=(1, 3))):
...     before, s = tables.commit(m.next_state(s, act))
>>> tables.vms[0].use, list(before.vms[0].guest.ppn_use)
([-1, -2, -1, -2], [-1, -1, -1, -1])
>>> frozen_copy(s) == m.next_state(frozen_copy(before), act)
True
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Iterator, cast

from ballast.model.state import GuestState, State, VmState, replace_fields

__all__ = ["PageSet", "PageVector", "StateTables", "TableReads", "cut_set", "frozen_copy",
           "same_view"]


class PageVector:
    """A per-PPN record (``guest.ppn_use``): a shared table and the entries changed beside it.

    Reads as the tuple it stands for: entries by index, ``len``, iteration, ``count``,
    ``index``, ``in`` and ``==`` (with a tuple or another view).

    >>> v = PageVector([5, 6, 5], {})
    >>> w = v.with_values([0], 6)
    >>> w[0], w.count(5), w.count(6), w.index(5), 7 in w, w == (6, 6, 5)
    (6, 1, 2, 2, False, True)
    """

    __slots__ = ("table", "changed")

    def __init__(self, table: list[int], changed: dict[int, int]) -> None:
        self.table = table
        """The entries as of the last commit (shared by every view of it)."""
        self.changed = changed
        """PPN -> the entry this view has instead of the table's."""

    def with_values(self, ppns: Iterable[int], value: int) -> "PageVector":
        """A view with each of ``ppns`` holding ``value`` (this one unchanged)."""
        changed = dict(self.changed)
        changed.update(dict.fromkeys(ppns, value))
        return PageVector(self.table, changed)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: Any) -> Any:
        if index.__class__ is int and index >= 0:  # the common read: one PPN's entry
            changed = self.changed
            if changed and index in changed:
                return changed[index]
            return self.table[index]
        if isinstance(index, slice):
            return tuple(self)[index]
        return self[index + len(self.table)]

    def __iter__(self) -> Iterator[int]:
        if not self.changed:
            return iter(self.table)
        out = list(self.table)
        for p, value in self.changed.items():
            out[p] = value
        return iter(out)

    def count(self, value: int) -> int:
        """How many entries hold ``value`` (the table's count, corrected by the changes)."""
        n = self.table.count(value)
        table = self.table
        for p, new in self.changed.items():
            n += (new == value) - (table[p] == value)
        return n

    def index(self, value: int, start: int = 0) -> int:
        """The first PPN at or after ``start`` that holds ``value`` (ValueError if none)."""
        best: int | None = None
        for p, new in self.changed.items():
            if new == value and p >= start and (best is None or p < best):
                best = p
        table, at = self.table, start
        end = len(table) if best is None else best
        while at < end:
            try:
                at = table.index(value, at, end)
            except ValueError:
                break
            if at not in self.changed:
                return at
            at += 1
        if best is None:
            raise ValueError(f"{value} is not in the page record")
        return best

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.count(value) > 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, PageVector)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"PageVector({tuple(self)!r})"


def _small(other: Iterable[int]) -> frozenset[int] | set[int]:
    """``other`` as a set to combine with a view (a view of a table is read whole)."""
    return other if isinstance(other, (set, frozenset)) else frozenset(other)


class PageSet:
    """A set of PPNs (``ballooned``, ``module.balloon``): a shared table, the pages added
    beside it and the table's pages removed beside it.

    Reads as the frozenset it stands for (``in``, ``len``, iteration, ``==``, subset
    tests); ``|`` and ``-`` give views, ``&`` gives a frozenset (read from the smaller side).

    >>> s = PageSet({1, 2, 3}, frozenset(), frozenset())
    >>> t = (s - {2}) | {7}
    >>> sorted(t), len(t), 2 in t, {1, 7} <= t, sorted(t & {3, 4}), sorted({3, 9} - t)
    ([1, 3, 7], 3, False, True, [3], [9])
    """

    __slots__ = ("table", "added", "removed")

    def __init__(self, table: set[int], added: frozenset[int], removed: frozenset[int]) -> None:
        self.table = table
        """The pages as of the last commit (shared by every view of it)."""
        self.added = added
        """Pages this view has that the table has not."""
        self.removed = removed
        """Pages of the table this view has not."""

    def __len__(self) -> int:
        return len(self.table) + len(self.added) - len(self.removed)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, page: object) -> bool:
        return page in self.added or (page in self.table and page not in self.removed)

    def __iter__(self) -> Iterator[int]:
        removed = self.removed
        for p in self.table:
            if p not in removed:
                yield p
        yield from self.added

    def __or__(self, other: Iterable[int]) -> "PageSet":
        more = _small(other)
        table = self.table
        return PageSet(table, self.added | more.difference(table), self.removed - more)

    __ror__ = __or__

    def __sub__(self, other: Iterable[int]) -> "PageSet":
        less = _small(other)
        table = self.table
        return PageSet(table, self.added - less, self.removed | table.intersection(less))

    def __and__(self, other: Iterable[int]) -> frozenset[int]:
        if isinstance(other, PageSet):
            return frozenset(p for p in other if p in self)
        # Set operations of the C library, each reading the smaller side.
        return self.cut(self.table.intersection(other), other)

    def cut(self, in_table: set[int], other: Iterable[int]) -> frozenset[int]:
        """``self & other``, given ``in_table``: the table's pages among ``other``."""
        mine = in_table - self.removed if self.removed else in_table
        if self.added:  # a new set: ``in_table`` may be kept by the caller
            mine = mine | self.added.intersection(other)
        return frozenset(mine)

    __rand__ = __and__

    def __rsub__(self, other: Iterable[int]) -> frozenset[int]:
        rest = set(other) - self.added
        return frozenset(rest.difference(self.table) | (rest & self.removed))

    def __le__(self, other: Any) -> bool:
        return len(self) <= len(other) and all(p in other for p in self)

    def __ge__(self, other: Any) -> bool:
        if isinstance(other, PageSet):
            return all(p in self for p in other)
        rest = _small(other)
        if self.added:
            rest = rest - self.added
        return rest.issubset(self.table) and rest.isdisjoint(self.removed)

    def issubset(self, other: Iterable[int]) -> bool:
        """Whether every page of this set is in ``other``."""
        return self <= _small(other)

    def issuperset(self, other: Iterable[int]) -> bool:
        """Whether every page of ``other`` is in this set."""
        return self >= _small(other)

    def isdisjoint(self, other: Iterable[int]) -> bool:
        """Whether no page of ``other`` is in this set."""
        return not any(p in self for p in other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (set, frozenset, PageSet)):
            return len(other) == len(self) and all(p in other for p in self)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self))

    def __repr__(self) -> str:
        return f"PageSet({sorted(self)!r})"


TableReads = dict[int, tuple[set[int], set[int]]]
"""For :func:`cut_set`: by the identity of a set table, (the table, its pages among those
the caller cuts to)."""


def cut_set(record: frozenset[int], pages: set[int], read: TableReads | None = None
            ) -> frozenset[int]:
    """``record & pages``, a frozenset, for a set record (a frozenset or a :class:`PageSet`).
    With ``read``, which the caller keeps for one ``pages``, a view's table is read once
    however many views of it are cut (the states before and after a step read the same
    tables, whose tens of thousands of pages lie far apart in memory).

    >>> table, read = {1, 2, 3}, {}
    >>> before = PageSet(table, frozenset({9}), frozenset({2}))
    >>> after = PageSet(table, frozenset(), frozenset())
    >>> sorted(cut_set(before, {2, 3, 9}, read)), sorted(cut_set(after, {2, 3, 9}, read))
    ([3, 9], [2, 3])
    >>> len(read), sorted(cut_set(frozenset({3, 4}), {2, 3, 9}, read))
    (1, [3])
    """
    if read is None or not isinstance(record, PageSet):
        return record & pages
    table = record.table
    known = read.get(id(table))
    if known is None or known[0] is not table:
        known = read[id(table)] = (table, table.intersection(pages))
    return record.cut(known[1], pages)


def same_view(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are views of one set table with nothing beside it: both read
    the table as it is, so they hold the same pages (a commit gives an unchanged set a new
    view of its table when the VM's page table changed: see :meth:`_VmTables.write`).

    >>> table, none = {1, 2}, frozenset()
    >>> same_view(PageSet(table, none, none), PageSet(table, none, none))
    True
    >>> same_view(PageSet(table, none, none), PageSet(table, frozenset({3}), none))
    False
    """
    if not (isinstance(a, PageSet) and isinstance(b, PageSet)):
        return False
    return a.table is b.table and not (a.added or a.removed or b.added or b.removed)


class _VmTables:
    """One VM's tables: the guest's page use, the VMM's ballooned set, the module's balloon;
    and what the last commit overwrote (to read the state before it, or to roll it back)."""

    __slots__ = ("use", "ballooned", "balloon", "old_use", "old_sets")

    def __init__(self, v: VmState) -> None:
        self.use = list(v.guest.ppn_use)
        self.ballooned = set(v.ballooned)
        self.balloon = set(v.module.balloon)
        self.old_use: dict[int, int] | list[int] = {}
        """PPN -> its entry before the last commit, or the whole table before it."""
        self.old_sets: list[tuple[set[int], Any, Any]] = []
        """(table, pages the last commit added, pages it removed), or (table, None, the
        whole table before it)."""

    def write(self, pre: VmState, post: VmState) -> tuple[VmState, VmState]:
        """Write ``post`` (computed from ``pre``, a view of the tables) into the tables; the
        VM before and after, as views of them."""
        use = self.use
        record: object = post.guest.ppn_use  # the table itself, a view of it, or a tuple
        if (record is use and post.ballooned is pre.ballooned
                and post.module.balloon is pre.module.balloon):
            # Most steps of a trace change none of the tables (a poll, a target, the
            # acknowledgement of a deflate): ``pre`` and ``post`` read them as they are.
            self.old_use, self.old_sets = {}, []
            return pre, post
        before_use: Any
        if record is use:
            self.old_use = {}
            before_use = use
        elif isinstance(record, PageVector) and record.table is use:
            changed = record.changed
            # Read and write the entries by C-level loops (a report changes hundreds).
            old = dict(zip(changed, map(use.__getitem__, changed)))
            _run(map(use.__setitem__, changed, changed.values()))
            self.old_use = old
            before_use = PageVector(use, old) if old else use
        else:  # a record the step made anew (a reset): the whole table
            self.old_use = list(use)
            use[:] = cast(tuple[int, ...], record)
            before_use = tuple(self.old_use)
        self.old_sets = []
        # The page table keeps its identity (it is the list itself), so when it changes the
        # sets get new views: a cache keyed on the identities of a VM's records (the model's
        # property caches key ``guest.ppn_use`` with ``ballooned``) sees the change.
        fresh = before_use is not use
        ballooned = self._write_set(self.ballooned, post.ballooned, fresh)
        balloon = self._write_set(self.balloon, post.module.balloon, fresh)
        return (self._view(pre, before_use, ballooned[0], balloon[0]),
                self._view(post, use, ballooned[1], balloon[1]))

    def _write_set(self, table: set[int], record: Any, fresh: bool
                   ) -> tuple[frozenset[int], frozenset[int]]:
        """Write a set record into its table: (the set before, after), as views of it (the
        view after is a new one when the set changed or ``fresh`` asks for it)."""
        if isinstance(record, PageSet) and record.table is table:
            if not (record.added or record.removed):  # unchanged: the same view reads it
                return (cast(frozenset[int], record),
                        _set_view(table) if fresh else cast(frozenset[int], record))
            table -= record.removed
            table |= record.added
            self.old_sets.append((table, record.added, record.removed))
            return (cast(frozenset[int], PageSet(table, record.removed, record.added)),
                    _set_view(table))
        whole = frozenset(table)
        table.clear()
        table |= set(record)
        self.old_sets.append((table, None, whole))
        return whole, _set_view(table)

    def roll_back(self) -> None:
        """Undo the last commit."""
        if isinstance(self.old_use, list):
            self.use[:] = self.old_use
        else:
            _run(map(self.use.__setitem__, self.old_use, self.old_use.values()))
        for table, added, removed in self.old_sets:
            if added is None:
                table.clear()
                table |= removed
            else:
                table -= added
                table |= removed
        self.old_use, self.old_sets = {}, []

    @staticmethod
    def _view(v: VmState, use: Any, ballooned: frozenset[int], balloon: frozenset[int]
              ) -> VmState:
        # Records already the right ones are kept (each copy of a record costs its fields).
        guest = (v.guest if v.guest.ppn_use is use
                 else replace_fields(v.guest, ppn_use=cast(tuple[int, ...], use)))
        module = v.module if v.module.balloon is balloon else replace_fields(v.module,
                                                                              balloon=balloon)
        if guest is v.guest and module is v.module and v.ballooned is ballooned:
            return v
        return replace_fields(v, guest=guest, module=module, ballooned=ballooned)


def _run(calls: Iterable[object]) -> None:
    """Make every call of a lazy ``map`` (a loop in C)."""
    deque(calls, maxlen=0)


def _set_view(table: set[int]) -> frozenset[int]:
    return cast(frozenset[int], PageSet(table, frozenset(), frozenset()))


class StateTables:
    """The large per-page records of a state in mutable tables, and the state as views of them.

    :attr:`state` is the current state: its ``guest.ppn_use`` is the table itself (read at
    the speed of a list), its balloon sets views of theirs. :meth:`commit` makes a state the
    model computed from it the current one; :meth:`roll_back` undoes that.
    """

    def __init__(self, s: State) -> None:
        self.vms = [_VmTables(v) for v in s.vms]
        self.state: State = State(s.host, tuple(
            t._view(v, t.use, _set_view(t.ballooned), _set_view(t.balloon))
            for t, v in zip(self.vms, s.vms)))
        self.before: State | None = None
        """The state before the last commit, as views of the tables after it."""

    def commit(self, post: State) -> tuple[State, State]:
        """Write ``post`` (a state the model computed from :attr:`state`) into the tables and
        make it the current state. Gives (the state before, the state after), both as views
        of the tables as they now are (the earlier views are stale: they read the tables)."""
        pre = self.state
        pairs = [t.write(u, v) for t, u, v in zip(self.vms, pre.vms, post.vms)]
        if all(b is u and a is v for (b, a), u, v in zip(pairs, pre.vms, post.vms)):
            self.before, self.state = pre, post  # no table changed
        else:
            self.before = State(pre.host, tuple(b for b, _ in pairs))
            self.state = State(post.host, tuple(a for _, a in pairs))
        return self.before, self.state

    def roll_back(self, pre: State) -> None:
        """Undo the last commit: the tables hold what they did, and ``pre`` (the state the
        commit was made from) is the current state again."""
        for t in self.vms:
            t.roll_back()
        self.state, self.before = pre, None


def frozen_copy(s: State) -> State:
    """``s`` with every view read into the frozen record it stands for (a tuple, a frozenset).

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=1, guest_pages=2, machine_pages=2))
    >>> frozen_copy(StateTables(s).state) == s
    True
    """
    vms = []
    for v in s.vms:
        guest: GuestState = replace_fields(v.guest, ppn_use=tuple(v.guest.ppn_use))
        module = replace_fields(v.module, balloon=frozenset(v.module.balloon))
        vms.append(replace_fields(v, guest=guest, module=module, ballooned=frozenset(v.ballooned)))
    return State(s.host, tuple(vms))
