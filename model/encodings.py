"""What one backend encodes of the model, and what it lacks in one configuration.

Every backend (the Z3 proofs, the NumPy core, the explorer, the virtio profile)
exposes an :class:`Encodes`: for each action, property (invariant) and seeded
fault of the model it implements, *where* it implements it, read from the
backend's own tables, never from a copy. :func:`gaps` compares that with what
the model switches on in a configuration; a checker that finds a gap reports
the affected properties inconclusive, naming the gap (:meth:`Gaps.reason`),
and never passes them. :mod:`ballast.suites.backends` gathers every backend's
:class:`Encodes` into one matrix.

For an action without an encoding every property is affected (the backend
cannot know what the step does); for an invariant without an encoding, that
invariant; for a seeded fault without an encoding, the backend cannot check
the run at all.

>>> enc = Encodes("prove", "Z3", actions={"host_set_target": "transitions"}, invariants={},
...               faults={})
>>> g = Gaps(enc, actions=("dummy_lose_page",))
>>> g.reason("memory_conservation", "proved")
'prove: no Z3 encoding of action dummy_lose_page; memory_conservation not proved'
>>> Gaps(enc, invariants=("dummy",)).affects("memory_conservation")
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS

__all__ = ["GRANULAR_ONLY", "HINTING_HIBERNATION_ONLY", "HOSTILE_ONLY", "KINDS",
           "MODERN_VIRTIO_ONLY", "REAL_DRIVER_ONLY", "Encodes", "Gaps", "declared_gaps_on", "gaps",
           "real_driver_gaps"]

KINDS = ("actions", "invariants", "faults")
"""What the model defines and a backend may encode."""


@dataclass(frozen=True)
class Encodes:
    """What one backend implements of the model, by the model's names."""

    backend: str
    """The checker or component name (``prove``, ``numeric``, ``explore``, ``virtio``)."""
    encoding: str
    """What its encoding is called in a sentence ("no Z3 encoding of ...")."""
    actions: Mapping[str, str]
    """Action name -> where the backend implements it."""
    invariants: Mapping[str, str]
    """Property name -> where the backend implements it (every form the model has)."""
    faults: Mapping[str, str]
    """Seeded fault name -> where the backend implements it."""
    known_gaps: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(kind, name) -> why the backend deliberately does not encode it."""
    covers: tuple[str, ...] = KINDS
    """The kinds this backend claims to cover (the virtio profile covers actions only)."""
    lack: str = ""
    """How a missing item is said, before "action NAME"; default "no <encoding> encoding of"."""

    def table(self, kind: str) -> Mapping[str, str]:
        """The implementations of one kind (``actions``, ``invariants`` or ``faults``)."""
        table: Mapping[str, str] = getattr(self, kind)
        return table

    def missing(self, kind: str, names: Iterable[str]) -> tuple[str, ...]:
        """Those of ``names`` this backend does not encode, known gaps included: a
        deliberate gap still leaves what it touches unchecked by this backend."""
        if kind not in self.covers:
            return ()
        have = self.table(kind)
        return tuple(n for n in names if n not in have)

    def unexplained(self, kind: str, names: Iterable[str]) -> tuple[str, ...]:
        """Those of ``names`` this backend neither encodes nor lists as a known gap
        (what the registry's completeness test must find empty)."""
        return tuple(n for n in self.missing(kind, names) if (kind, n) not in self.known_gaps)


@dataclass(frozen=True)
class Gaps:
    """What one backend lacks of what a configuration (and its seeded faults) switches on."""

    encodes: Encodes
    actions: tuple[str, ...] = ()
    invariants: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.actions or self.invariants or self.faults)

    @property
    def blocking(self) -> bool:
        """True when the backend cannot run at all (a seeded fault it does not encode)."""
        return bool(self.faults)

    def affects(self, prop: str) -> bool:
        """Whether the verdict on ``prop`` must not be a pass."""
        return bool(self.faults or self.actions) or prop in self.invariants

    def what(self, prop: str | None = None) -> str:
        """The gap in words: the encoding and the first missing item that matters."""
        e = self.encodes
        lack = e.lack or f"no {e.encoding} encoding of"
        if self.faults:
            return f"{lack} fault {', '.join(self.faults)}"
        if self.actions:
            return f"{lack} action {', '.join(self.actions)}"
        names = [prop] if prop in self.invariants else list(self.invariants)
        return f"{lack} invariant {', '.join(names)}"

    def reason(self, prop: str, done: str = "checked") -> str:
        """One line naming the gap and what it costs ``prop`` ("... not proved")."""
        if self.faults:
            return (f"{self.encodes.backend}: {self.what(prop)}; cannot check that fault, "
                    f"{prop} not {done}")
        return f"{self.encodes.backend}: {self.what(prop)}; {prop} not {done}"


def gaps(encodes: Encodes, cfg: Config, faults: Iterable[str] = ()) -> Gaps:
    """What ``encodes`` lacks of the actions and invariants ``cfg`` switches on and ``faults``.

    Read from the model's tables at call time, so a table extended after import
    (a new action, a test's dummy) is seen.
    """
    acts = [n for n, spec in ACTIONS.items() if spec.feature(cfg)]
    props = [n for n, p in INVARIANTS.items() if p.feature(cfg)]
    named = [f for f in faults if f in FAULTS]
    return Gaps(encodes, encodes.missing("actions", acts), encodes.missing("invariants", props),
                encodes.missing("faults", named))


REAL_DRIVER_ONLY: tuple[tuple[str, str], ...] = ()
"""Behaviours of real virtio drivers (the ``qemu`` preset) that only the Python model's
checkers and ``validate --format qemu`` check so far: the known gaps of Z3 and NumPy.
Empty: balloon page migration and deflate on OOM are kernels
(:mod:`ballast.model.action_kernels`) with their property
(:mod:`ballast.model.property_kernels`); a behaviour added here is reported by name."""


MODERN_VIRTIO_ONLY: tuple[tuple[str, str], ...] = ()
"""Nothing: free page reporting, page poisoning, the statistics queue (virtio 1.x section
5.5.6.3-5.5.6.6) and the VMM's own bound on report floods are kernels
(``ballast.model.reporting_kernels``) that Z3 and NumPy read; a virtio 1.x feature added to
the model without kernels is listed here until it has them."""


HINTING_HIBERNATION_ONLY: tuple[tuple[str, str], ...] = ()
"""Nothing: free page hinting (virtio 1.x section 5.5.6.5, the ``hinting`` preset) and
hibernation (the ``hibernation`` preset) are kernels (``ballast.model.feature_kernels``)
that Z3 and NumPy read; such a feature added without kernels is listed here until it has
them."""


HOSTILE_ONLY: tuple[tuple[str, str], ...] = (
    ("invariants", "host_recovers_to_target"), ("faults", "vmm_stops_one_page_over"))
"""What the host does against guests that will not cooperate (the ``hostile`` preset) and
Z3 and NumPy do not check: the host recovering a VM to its target
(``host_recovers_to_target``), a property over runs that only the explorer's graph decides
(Z3 and NumPy check states and steps, so it is their known gap, never a pass), and its
fault. Everything else of the preset is kernels that Z3 and NumPy read: rogue processor
actions with the VMM enforcing the host's CPU target, reports in flight across a guest reset
(``ballast.model.feature_kernels``), and the VMM paging out a VM over its target with the
starvation property ``honest_memory_not_taken`` (``ballast.model.over_target_kernels``)."""


GRANULAR_ONLY: tuple[tuple[str, str], ...] = ()
"""Nothing: host pages kept to one VM (host pages of several balloon units shared by several
VMs, the ``hugepages`` preset: the VMM backs a page only in a host page of that VM's or a
wholly free one, and ``host_page_backs_one_vm``), balloon units of several pages
(``balloon_unit_pages``, the ``large-units`` preset) and the generic guest system
(``guest_system``, the ``guest-system`` preset, whose pages are the machine's own) are
kernels (``ballast.model.granular_kernels``) that Z3 and NumPy read; such a feature added
without kernels is listed here until it has them."""


def real_driver_gaps(encoding: str) -> dict[tuple[str, str], str]:
    """The known gaps of a backend whose encoding (``Z3``, ``NumPy``) lacks
    :data:`REAL_DRIVER_ONLY`, :data:`MODERN_VIRTIO_ONLY`, :data:`HINTING_HIBERNATION_ONLY`,
    :data:`HOSTILE_ONLY` and :data:`GRANULAR_ONLY`, each with its reason.

    >>> ("actions", "balloon_migrate") in real_driver_gaps("Z3")
    False
    >>> ("actions", "vmm_discard_reported") in real_driver_gaps("NumPy")
    False
    """
    why = ("a behaviour of real virtio drivers (``qemu`` preset) checked by the Python "
           f"model's checkers and ``validate --format qemu``; no {encoding} encoding yet")
    modern = ("a virtio 1.x feature checked by the Python model's checkers (random, "
              f"Hypothesis, explore); no {encoding} kernel of it yet")
    later = ("free page hinting or hibernation, checked by the Python model's checkers "
             f"(random, Hypothesis, explore); no {encoding} encoding of the hint cycle and "
             "the frozen driver yet")
    hostile = ("what the host does against a guest that will not cooperate (``hostile`` "
               "preset): a property over runs, decided on the explorer's graph of the "
               f"Python model's states; no {encoding} encoding yet")
    granular = ("a feature of host pages or balloon units checked by the Python model's "
                f"checkers (random, Hypothesis, explore); no {encoding} kernel of it yet")
    return {**{item: granular for item in GRANULAR_ONLY},
            **{item: why for item in REAL_DRIVER_ONLY},
            **{item: modern for item in MODERN_VIRTIO_ONLY},
            **{item: later for item in HINTING_HIBERNATION_ONLY},
            **{item: hostile for item in HOSTILE_ONLY}}


def declared_gaps_on(cfg: Config) -> list[str]:
    """The actions and invariants of :func:`real_driver_gaps` that ``cfg`` switches on.

    Such a feature may also change the guard or effect of an action the kernels do encode
    (a frozen guest takes no step; the VMM grants vCPUs against the host's target), so an
    encoding is compared with the model only on configurations where this is empty.

    >>> from ballast.model.config import PRESETS
    >>> declared_gaps_on(PRESETS["default"])
    []
    >>> declared_gaps_on(PRESETS["hibernation"])
    []
    """
    named = [*REAL_DRIVER_ONLY, *MODERN_VIRTIO_ONLY, *HINTING_HIBERNATION_ONLY, *HOSTILE_ONLY,
             *GRANULAR_ONLY]
    on = {("actions", n) for n, spec in ACTIONS.items() if spec.feature(cfg)}
    on |= {("invariants", n) for n, prop in INVARIANTS.items() if prop.feature(cfg)}
    return sorted(name for kind, name in named if (kind, name) in on)
