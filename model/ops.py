"""The array-level operations an action's guard and effect are written in, once.

An action of :mod:`ballast.model.actions` is a Python function over frozen
records: readable, but only runnable on one concrete state. Its *kernel*
(:mod:`ballast.model.action_kernels`) says the same thing over the operations
below, for one VM at a time, and each backend reads it with its own
interpreter of :class:`Ops`:

* the Z3 interpreter (:mod:`ballast.proofs.interpret`) unrolls it over the pages
  of one VM into a guard formula and post-state terms;
* the NumPy interpreter (:mod:`ballast.numeric.interpret`) runs it over a batch of
  rows (arrays shaped ``(batch, pages)``), one row per operation.

Values are opaque to a kernel: a *VM value* (a number or a truth value of the VM
the step acts on), a *page vector* (one per PPN of that VM), a *vCPU vector*
(one per vCPU) or a *VPN vector* (one per virtual page). Elementwise operations
broadcast a VM value over a vector; plain Python numbers and truth values are
constants. Field names are the model's own (``inflate_queue``,
``module.balloon``, ``guest.ppn_use``, ...; see :data:`PAGE_FIELDS` and the
others): each interpreter maps them to its storage in one table.

A kernel first states its guard with :meth:`Ops.require` (every call adds a
conjunct), then its effect with the ``set_*`` and VMM operations; it never
requires after an effect. Shared resources of the host (idle processors) are
taken with :meth:`Ops.claim`, after the guard: where one interpretation runs
several operations against one host, it hands them out in row order.

Nothing here imports NumPy or Z3: the model layer sits below both backends.

>>> sorted(PAGE_FIELDS)[:3]
['acked_deflate', 'acked_inflate', 'acked_refused']
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, cast

from ballast.model.config import Config

__all__ = [
    "HOST_FIELDS",
    "HOST_MPN_FIELDS",
    "Kernel",
    "MPN_FIELDS",
    "MemoryOps",
    "Ops",
    "PAGE_FIELDS",
    "StateOps",
    "QUEUE_FIELDS",
    "TOKEN_FIELDS",
    "UNIT_FIELDS",
    "VCPU_FIELDS",
    "VM_FIELDS",
    "VPN_FIELDS",
    "VPN_NUMBER_FIELDS",
    "Value",
    "memory",
    "vector_width",
]

Value = Any
"""A value of some interpretation: a constant, a Z3 term or list of terms, an array."""

PAGE_FIELDS = frozenset({
    "p2m", "ballooned", "acked_inflate", "acked_refused", "acked_deflate",
    "module.balloon", "module.refused", "guest.ppn_use",
    # free page reporting (virtio F_REPORTING): sets of PPNs, never out of range
    "report_queue", "acked_report", "discarded", "module.reporting",
    # free page hinting (virtio F_FREE_PAGE_HINT): sets of PPNs, never out of range
    "hinted", "hint_rewritten"})
"""Per-PPN fields of a VM: ``p2m`` and ``guest.ppn_use`` are numbers, the rest are sets
(a truth value per PPN). ``acked_refused`` may also name PPNs out of range (see
:meth:`Ops.beyond`)."""

QUEUE_FIELDS = frozenset({"inflate_queue", "deflate_queue",
                          # reports in flight across a guest reset (``reset_races_reports``)
                          "stale_inflate", "stale_deflate"})
"""The report queues: multisets of PPNs, possibly out of range (a hostile guest)."""

VM_FIELDS = frozenset({"target", "cpu_target", "module.target", "module.cpu_target",
                       "module.actual", "stats_free",
                       # free page hinting's command ids, the hibernated driver
                       "hint_cmd_id", "module.hinting_for", "module.frozen",
                       # a balloon page migration under way
                       "module.migrating"})
"""Numbers of a VM."""

VCPU_FIELDS = frozenset({"guest.vcpus", "parked_vcpus"})
"""Per-vCPU sets of a VM."""

VPN_FIELDS = frozenset({"guest.lru", "guest.disk"})
"""Per-VPN sets of a VM: resident VPNs (the LRU list) and VPNs on the guest's disk."""

HOST_FIELDS = frozenset({"idle_pcpus", "host.swap_room"})
"""Counters of the host, shared by every VM (``host.swap_room``: free host swap slots,
derived from the swap entries; a claim of it is a guard, the entries are the effect)."""


VECTOR_KINDS = ("pages", "vpns", "vcpus", "units")
"""The kinds of vector a kernel handles: per PPN, per VPN, per vCPU of the VM, per unit
of a host page."""


def vector_width(cfg: Config, kind: str) -> int:
    """How many entries a vector of ``kind`` (one of :data:`VECTOR_KINDS`) has.

    >>> vector_width(Config(guest_pages=4, guest_data_pages=2), "vpns")
    2
    """
    widths = {"pages": cfg.guest_pages, "vpns": cfg.guest_data_pages, "vcpus": cfg.vcpus,
              "units": cfg.host_page_units}
    if kind not in widths:
        raise ValueError(f"no vector of kind {kind!r}; expected one of {VECTOR_KINDS}")
    return widths[kind]


class Ops(Protocol):
    """One interpretation of the operations, bound to one step (or a batch of them)."""

    cfg: Config
    """The configuration (a plain Python value: sizes and switches are constants)."""

    # -- reading the state --------------------------------------------------------
    def vm(self, field: str) -> Value:
        """A number of the VM (:data:`VM_FIELDS`)."""

    def pages(self, field: str) -> Value:
        """A page vector of the VM (:data:`PAGE_FIELDS`)."""

    def vcpus(self, field: str) -> Value:
        """A vCPU vector of the VM (:data:`VCPU_FIELDS`)."""

    def vpns(self, field: str) -> Value:
        """A VPN vector of the VM (:data:`VPN_FIELDS`)."""

    def host(self, field: str) -> Value:
        """A counter of the host (:data:`HOST_FIELDS`)."""

    def queued(self, field: str) -> Value:
        """Page vector: whether each PPN is on the queue (:data:`QUEUE_FIELDS`)."""

    def queue_len(self, field: str) -> Value:
        """How many entries the queue holds, duplicates and PPNs out of range included."""

    def beyond(self, field: str) -> Value:
        """Whether the queue or set names a PPN out of range."""

    def filled(self, kind: str, value: Value) -> Value:
        """A vector of ``kind`` (``"pages"``, ``"vpns"``, ``"vcpus"``, ``"units"``) with the
        constant ``value`` in every entry (a reset's "every page", "no page"): read from
        nothing, so an interpreter need not read a field to learn its shape."""

    # -- the step's arguments ------------------------------------------------------
    def arg(self, name: str) -> Value:
        """A number argument."""

    def arg_pages(self, name: str) -> Value:
        """A PPN-set argument as a page vector (the PPNs in range it names)."""

    def arg_size(self, name: str) -> Value:
        """How many PPNs a PPN-set argument lists."""

    def arg_distinct(self, name: str) -> Value:
        """Whether a PPN-set argument lists each PPN once."""

    def arg_beyond(self, name: str) -> Value:
        """Whether a PPN-set argument names a PPN out of range."""

    def arg_beyond_within(self, name: str, field: str) -> Value:
        """Whether every PPN out of range that the argument names is on queue ``field``."""

    def arg_vcpu(self, name: str) -> Value:
        """A vCPU argument as a vCPU vector (all false when out of range)."""

    # -- arithmetic and logic (elementwise, a VM value broadcast over a vector) ---------
    def and_(self, *xs: Value) -> Value:
        """All hold."""

    def or_(self, *xs: Value) -> Value:
        """Some holds."""

    def not_(self, x: Value) -> Value:
        """Does not hold."""

    def implies(self, a: Value, b: Value) -> Value:
        """``a`` implies ``b``."""

    def eq(self, a: Value, b: Value) -> Value:
        """Equal."""

    def ne(self, a: Value, b: Value) -> Value:
        """Different."""

    def lt(self, a: Value, b: Value) -> Value:
        """Less than."""

    def le(self, a: Value, b: Value) -> Value:
        """At most."""

    def add(self, a: Value, b: Value) -> Value:
        """Sum."""

    def sub(self, a: Value, b: Value) -> Value:
        """Difference."""

    def minimum(self, a: Value, b: Value) -> Value:
        """The smaller."""

    def maximum(self, a: Value, b: Value) -> Value:
        """The larger."""

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        """``a`` where ``cond`` holds, else ``b``."""

    # -- reductions over a vector (giving a VM value) ------------------------------------
    def count(self, mask: Value) -> Value:
        """How many entries hold."""

    def any(self, mask: Value) -> Value:
        """Some entry holds."""

    def all(self, mask: Value) -> Value:
        """Every entry holds."""

    # -- selections ---------------------------------------------------------------------
    def lowest(self, mask: Value, k: Value) -> Value:
        """The first ``k`` entries that hold (prefix count at most ``k``)."""

    def up_to_last(self, mask: Value) -> Value:
        """Per entry: whether it or a later entry holds."""

    # -- balloon units (aligned runs of ``balloon_unit_pages`` PPNs) ------------------------
    def unit_whole(self, mask: Value) -> Value:
        """Page vector: per PPN, whether every page of its balloon unit holds in ``mask``."""

    def unit_first(self) -> Value:
        """Page vector: whether the PPN is the first page of its balloon unit (a constant)."""

    # -- guard ------------------------------------------------------------------------
    def require(self, cond: Value) -> None:
        """A conjunct of the guard (a VM truth value)."""

    # -- effect -----------------------------------------------------------------------
    def set_vm(self, field: str, value: Value) -> None:
        """Write a number of the VM."""

    def set_pages(self, field: str, value: Value) -> None:
        """Write a page vector (a set's PPNs out of range stay as they are)."""

    def set_vcpus(self, field: str, value: Value) -> None:
        """Write a vCPU vector."""

    def set_add(self, field: str, mask: Value) -> None:
        """The page set ``field`` gains the PPNs of ``mask``: ``set_pages(field,
        or_(pages(field), mask))``, which an interpreter holding sets as bits does without
        reading them."""

    def set_remove(self, field: str, mask: Value) -> None:
        """The page set ``field`` loses the PPNs of ``mask``: ``set_pages(field,
        and_(pages(field), not_(mask)))``."""

    def queue_add(self, field: str, mask: Value) -> None:
        """Report the PPNs of ``mask`` on the queue once more."""

    def queue_clear(self, field: str) -> None:
        """Empty the queue (PPNs out of range included)."""

    def carry_beyond(self, dst: str, src: str) -> None:
        """The set ``dst`` gains the PPNs out of range on queue ``src``."""

    def clear_beyond(self, field: str) -> None:
        """The set ``field`` loses its PPNs out of range."""

    def claim(self, field: str, n: Value) -> None:
        """Take ``n`` of a host counter: guard ``n`` are there, effect subtract them.
        Called after every other guard; several rows of one host get them in row order."""

    def give(self, field: str, n: Value) -> None:
        """Return ``n`` to a host counter."""

    def unback(self, mask: Value, by_balloon: bool, scrub: bool = True) -> None:
        """VMM: unmap the PPNs of ``mask``, lowest first (the model's ``unback``);
        ``scrub=False`` only for the seeded fault that skips zeroing freed MPNs."""

    def drop_swap(self, mask: Value) -> None:
        """Host: forget the host-swap entries of the PPNs of ``mask``."""

    def set_at(self, field: str, at: Value, value: Value) -> None:
        """Write ``value`` (a VM value) into the entries ``at`` (a one-hot, or any mask; no
        entry: no change) of a page or VPN vector field: ``set_pages(field, where(at, value,
        pages(field)))`` said as a scatter, which an interpreter holding rows of arrays does
        entry by entry rather than over the whole vector."""


Kernel = Callable[[Ops], None]
"""An action's guard and effect written once: it reads, requires, then writes."""


# --------------------------------------------------------------------------
# Memory operations: machine pages, tokens, the guest's LRU order, host pages.
# (An interpretation provides these as well; they are listed apart so that each
# reads as one concept. See :class:`MemoryOps`.)

TOKEN_FIELDS = frozenset({"host.swap", "guest.disk"})
"""Per-page stores of contents tokens, an entry present or not: host swap per PPN of the
VM, the guest's disk per VPN (``tokens`` reads the token, 0 where none is present)."""

MPN_FIELDS = frozenset({"host.content", "host.cow"})
"""Per-MPN values of the host read through a VM's mapping (``at_mpn``)."""

UNIT_FIELDS = frozenset({"host.free", "host.in_use", "host.reclaimed"})
"""Per-MPN sets of the host, read and written for the units of one host page."""

VPN_NUMBER_FIELDS = frozenset({"guest.expected"})
"""Per-VPN numbers of a VM (the contents its processes last wrote)."""


class MemoryOps(Ops, Protocol):
    """The operations over memory that the guest's accesses, host swap and host pages need.

    The MPN the VMM backs a page with is an explicit value computed by the interpreter in
    one place, as ``actions._vm_free_mpn`` picks it: the lowest free MPN of the host; where
    the VMM keeps host pages to one VM (``actions.vmm_keeps_host_pages``), the lowest free
    one in a host page that backs no other VM's page; in a generic guest system the page's
    own machine page (``actions.own_mpn``).
    """

    # -- arguments ------------------------------------------------------------------------
    def arg_page(self, name: str) -> Value:
        """A PPN argument as a page vector (one-hot; all false when out of range)."""

    def arg_vpn(self, name: str) -> Value:
        """A VPN argument as a VPN vector (one-hot; all false when out of range)."""

    def arg_is(self, name: str, value: str) -> Value:
        """Whether a word argument is ``value`` (a VM truth value)."""

    def hostile(self) -> Value:
        """Whether the VM is configured as hostile (``cfg.hostile_vms``)."""

    # -- reading --------------------------------------------------------------------------
    def tokens(self, field: str) -> Value:
        """The token of each entry of a store (:data:`TOKEN_FIELDS`), 0 where none is present;
        ``pages("host.swap")`` / ``vpns("guest.disk")`` say which are present."""

    def at_mpn(self, field: str, mpn: Value, otherwise: Value = None) -> Value:
        """Per entry of ``mpn`` (a VM value or page vector of MPNs, -1 for none), the host's
        value of that MPN (:data:`MPN_FIELDS`); for -1 the entry of ``otherwise`` (a value
        shaped like ``mpn``), or false or 0 without it."""

    def units(self, field: str) -> Value:
        """Per unit of the host page argument ``host_page``, a set of the host
        (:data:`UNIT_FIELDS`)."""

    def lru_victim(self) -> Value:
        """VPN vector: the least recently used resident VPN (all false when none)."""

    # -- effects --------------------------------------------------------------------------
    def set_units(self, field: str, value: Value) -> None:
        """Write a set of the host for the units of the host page argument."""

    def set_vpns(self, field: str, value: Value) -> None:
        """Write a VPN vector (:data:`VPN_NUMBER_FIELDS`)."""

    def set_tokens(self, field: str, mask: Value, token: Value) -> None:
        """Store ``token`` for the entries of ``mask`` (present from now on)."""

    def drop_tokens(self, field: str, mask: Value) -> None:
        """Forget the entries of ``mask`` of a store."""

    def queue_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        """Report PPN number ``ppn`` (in range or not) on the queue once more, where ``when``."""

    def set_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        """The set ``field`` gains PPN number ``ppn`` (in range, or out of range: see
        :meth:`Ops.beyond`), where ``when``."""

    def queue_copy(self, dst: str, src: str) -> None:
        """Queue ``dst`` becomes a copy of queue ``src``: every entry, duplicates and PPNs
        out of range included (the reports in flight when a guest resets)."""

    def lru_use(self, vpn: Value, resident: Value) -> None:
        """The one-hot VPN becomes the most recently used: moved to the end where
        ``resident``, else appended (a VPN listed already keeps its place)."""

    def lru_remove(self, mask: Value) -> None:
        """The VPNs of ``mask`` leave the LRU order."""

    def touch(self, at: Value, token: Value, write: Value, cow: bool = True,
              lowest: bool = False) -> Value:
        """VMM: the guest accesses the one-hot page ``at`` (``actions.fault_in``) and, where
        ``write`` holds, writes ``token`` to it (``actions.write_page``: a shared page is
        copied first). Each needs a free MPN (a guard, taken like :meth:`claim`: after every
        other guard; several rows of one host get them in row order); in a generic guest
        system (``guest_system``) the page's own machine page, which must be free
        (``actions.own_mpn``). Returns the MPN now backing the page. ``cow=False`` only for
        the seeded fault that writes a shared page in place; ``lowest=True`` only for the
        seeded faults whose resource manager or VMM backs the page with the lowest free MPN
        whatever the configuration (a guest system's own page, a host page of one VM)."""

    def write_pages(self, mask: Value, token: Value) -> None:
        """VMM: the guest writes ``token`` to every page of ``mask`` that holds anything
        (backed, or paged out by the host), lowest first (``actions.write_page`` each: a
        page paged out is faulted in, a shared one copied). Each MPN this needs is a guard,
        taken like :meth:`touch`'s; the step is refused when one is missing. Pages that hold
        nothing read as zero and are left unbacked."""

    def swap_out_oldest(self) -> None:
        """VMM: page out to host swap the oldest page on the host, whichever VM's it is (the
        guest page behind the lowest MPN that backs an unshared page; none, no change): its
        contents go to a host swap slot (claimed before, like :meth:`Ops.claim`), its MPN
        back to the free pool. Only for the seeded fault whose VMM pages out another VM's
        page for a VM over its target."""

    def share(self, at: Value, other_vm: Value, other_at: Value, cow: bool = True) -> None:
        """VMM: map the MPN of page ``at`` of this VM for page ``other_at`` of VM ``other_vm``
        too, copy-on-write (the other's own MPN is unmapped first). ``cow=False`` only for
        the seeded fault that shares read-write (every copy-on-write mark is lost)."""

    def other_mpn(self, other_vm: Value, other_at: Value) -> Value:
        """The MPN backing page ``other_at`` (one-hot) of VM ``other_vm`` (-1 for none)."""

    def this_vm(self) -> Value:
        """The number of the VM the step acts on."""

    def pick(self, values: Value, onehot: Value) -> Value:
        """The entry of ``values`` where the one-hot vector holds (0 or false when none)."""

    def holding(self, vpn: Value) -> Value:
        """The guest pages holding VPN ``vpn``: ``eq(pages("guest.ppn_use"), vpn)`` (one PPN at
        most in every state the model reaches), which an interpreter that indexes its pages
        by VPN answers per VM without reading the VM's pages."""

    def lowest_holding(self, value: Value) -> tuple[Value, Value]:
        """The lowest guest page whose page-table entry holds ``value`` (one-hot, all false
        where none does) and whether one does: ``lowest(m, 1)`` and ``any(m)`` of
        ``m = eq(pages("guest.ppn_use"), value)``, which an interpreter may answer by
        scanning from the lowest PPNs without reading the VM's whole page table (the
        allocator's lowest free page is usually near the bottom)."""

    def token_at(self, field: str, at: Value) -> Value:
        """The token of the one entry ``at`` (one-hot) of a store (:data:`TOKEN_FIELDS`), 0
        where none is present or ``at`` is empty: ``pick(tokens(field), at)`` as a gather."""


def memory(o: Ops) -> MemoryOps:
    """``o`` with its memory operations (every interpretation provides them)."""
    return cast(MemoryOps, o)
# Reads over the whole host, for the property kernels (ballast.model.property_kernels).
# A property is a fact of one state, not a step: these operations only read.

HOST_MPN_FIELDS = frozenset({"free", "in_use", "cow", "reclaimed", "content"})
"""Per-MPN fields of the host: four sets and the token each machine page holds."""


class StateOps(Ops, Protocol):
    """The operations and the reads a property needs beyond one VM: an *MPN vector*
    (one value per machine page of the host) and a *host value* (one number or truth
    value of the whole state). A property kernel only reads."""

    def mpns(self, field: str) -> Value:
        """An MPN vector of the host (:data:`HOST_MPN_FIELDS`)."""

    def mapped(self) -> Value:
        """MPN vector: whether the MPN backs some guest page of some VM."""

    def shared(self, across_vms: bool) -> Value:
        """MPN vector: whether the MPN backs two or more guest pages (``across_vms``:
        guest pages of two or more VMs)."""

    def swapped(self) -> Value:
        """Page vector of the VM: whether the PPN holds a host swap slot."""

    def own_mpns(self) -> Value:
        """Page vector of the VM: the machine page that is each of its pages in a generic
        guest system (``actions.own_mpn``: VM number times ``guest_pages``, plus the PPN)."""

    def vms_count(self, field: str) -> Value:
        """Host value: how many entries a per-vCPU set holds, summed over every VM."""

    def host_page_all(self, mask: Value) -> Value:
        """Per host page: whether every balloon unit (MPN) of it holds in ``mask``."""

    def host_page_any(self, mask: Value) -> Value:
        """Per host page: whether some balloon unit (MPN) of it holds in ``mask``."""

    def host_page_backs_two_vms(self) -> Value:
        """Per host page: whether its balloon units (MPNs) back pages of two or more VMs."""

    def matches_vpn(self, x: Value, values: Value, vpn: Value) -> Value:
        """Page vector: per PPN, whether ``x`` equals the entry of the VPN vector ``values`` at
        the VPN number the page vector ``vpn`` gives (true where it names no VPN)."""

    def held(self, once: bool) -> Value:
        """VPN vector: whether some PPN of the VM holds the VPN (``guest.ppn_use``); with
        ``once``, whether no two PPNs hold it."""

    def unchanged(self, before: "StateOps") -> Value:
        """VM value: whether every field of the VM's own records (the VMM's, the guest's, the
        module's; not the host's) is as in ``before``, the same VM read in another state.
        A step form reads its pre-state and its post-state through two interpretations."""
