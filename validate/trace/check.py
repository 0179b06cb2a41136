"""Validate an implementation's trace (project trace format) against the reference model.

An implementation logs only some of its steps and only some of its state (``observe``
records: slash paths into :meth:`State.to_dict`).  The validator keeps the **set of model
states consistent with the trace so far**: before each logged step it lets the model take
up to ``max_gap`` unlogged steps (any action the model allows, as long as every property
holds; a host's target is not guessed: an unlogged ``host_set_target`` takes the target
the next logged step records or observes, and only where those do not explain the step and
it states no target for some VM is every target tried, on a guest of at most
:data:`CHOICES_SEARCHED` targets; on a larger guest that step is inconclusive, never a
mismatch, since a target not tried might explain it. An unlogged step of the guest's
allocator with more than :data:`CHOICES_SEARCHED` page choices takes the pages the next
logged step names or observes, see :func:`stated_pages`), then applies the logged action to every
candidate and keeps the successors whose recorded state or observation matches and which
break no property; the header's ``observe`` is of the initial state, before any step,
unlogged ones included.  The whole trace must be consumed.  Memory is the candidate set
(bounded by ``max_states``; a set that grows past it makes the result inconclusive) plus
one line; the trace is read lazily.

On a mismatch the report names the first line no model behaviour explains, the last
state that matched, the actions the model allowed there, and the property that would
break if the implementation's step were accepted (see :func:`blame`).

>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action, enabled
>>> from ballast.model.trace import TraceHeader, TraceStep
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2, host_use=False)
>>> steps = [TraceStep(1, Action.of("host_set_target", vm=0, pages=1), line=2),
...          TraceStep(2, Action.of("vmm_reclaim", vm=0, refuse=[]), line=3,
...                    observe={"vms/0/ballooned": [0]})]
>>> r = validate_steps(TraceHeader(cfg), iter(steps), max_gap=2)
>>> r.outcome, r.steps
('ok', 2)
>>> validate_steps(TraceHeader(cfg), iter([])).outcome  # nothing to judge
'inconclusive'
>>> bad = [TraceStep(1, Action.of("vmm_release", vm=0), line=2)]
>>> validate_steps(TraceHeader(cfg), iter(bad), max_gap=0).mismatch.reason
'vmm_release: the guest has reported no page for deflation'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterator

from ballast.errors import GuardError
from ballast.model.actions import Action, enabled
from ballast.model.config import Config
from ballast.model.incremental import StepChecker
from ballast.model.state import FREE, State, plain_value, state_from_dict
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import TraceHeader, TraceStep, observe_matches
from ballast.model.virtio import VirtioEvent, VirtioTracker, project

__all__ = ["CHOICES_SEARCHED", "PAGE_PARAMS", "STATED_BY_THE_LOG", "Mismatch", "TraceReport",
           "blame", "observed_difference", "stated_pages", "stated_targets", "unlogged_actions",
           "validate_steps"]


@dataclass(frozen=True)
class Mismatch:
    """The first logged step that no model behaviour explains."""

    step: int
    line: int | None
    action: Action
    reason: str
    """Why: the guard's reason, or how the observation differs."""
    last_state: State
    """A state that matched every line before this one."""
    possible: tuple[str, ...]
    """Actions the model allowed in that state."""
    property: str | None
    """The property that would break if the step were accepted, when one does."""
    property_message: str | None = None


@dataclass
class TraceReport:
    """The outcome of validating one trace."""

    outcome: str = "ok"
    """``ok``, ``mismatch`` (exit 1) or ``inconclusive`` (exit 3)."""
    steps: int = 0
    """Logged steps explained."""
    unlogged: int = 0
    """Unlogged model steps needed in the narrowest explanation."""
    max_states: int = 0
    """The largest candidate set seen."""
    mismatch: Mismatch | None = None
    detail: str = ""
    violations: list[Violation] = field(default_factory=list)


_MISSING = object()


def _lookup(value: Any, path: str) -> Any:
    """The value at a slash path of :meth:`State.to_dict`, read from the state itself."""
    for part in path.strip("/").split("/"):
        if isinstance(value, tuple):
            value = value[int(part)]
        else:
            value = getattr(value, part, _MISSING)
            if value is _MISSING:
                raise KeyError(part)
    return value


def observed_difference(state: State, observe: dict[str, Any]) -> str | None:
    """Like :func:`ballast.model.trace.observe_matches`, reading only the observed fields
    (tested to agree with it)."""
    first = _first_difference(state, observe)
    return None if first is None else observe_matches(state, dict([first]))


def _first_difference(state: State, observe: dict[str, Any]) -> tuple[str, Any] | None:
    """The first observed (path, value) ``state`` disagrees with, or None: a path into the
    state's fields is read and compared as it is, anything else (a content observation, no
    such path) is asked of :func:`~ballast.model.trace.observe_matches`."""
    for path, want in observe.items():
        try:
            have = plain_value(_lookup(state, path))
        except (KeyError, IndexError, ValueError, AttributeError):
            if observe_matches(state, {path: want}) is not None:
                return path, want
            continue
        if have != want:
            return path, want
    return None


def _differs(post: State, st: TraceStep) -> bool:
    """Whether the model's ``post`` disagrees with what step ``st`` recorded or observed."""
    if st.state is not None and post.to_dict() != st.state:
        return True
    return st.observe is not None and _first_difference(post, st.observe) is not None


def _difference(post: State, st: TraceStep) -> str:
    """What :func:`_differs` found, in words (asked for only when a step is explained by
    no candidate: most candidates of a gap differ, and saying how costs a conversion)."""
    if st.state is not None and post.to_dict() != st.state:
        return "the recorded state differs from the model's"
    diff = observed_difference(post, st.observe or {})
    return f"observation differs: {diff}" if diff is not None else "no difference"


STATED_BY_THE_LOG = "host_set_target"
"""The action whose value (the target) a log states rather than the model choosing it: an
unlogged one takes its value from what the next logged step observes, never from trying
every possible target."""


def stated_targets(st: TraceStep, unit: int = 1) -> tuple[tuple[int, int], ...]:
    """``(vm, target)`` for each target an unlogged ``host_set_target`` before step ``st``
    may have set: the targets ``st`` records or observes.

    When ``st`` itself sets VM ``v``'s target to ``p``, an earlier unlogged target of ``v``
    is overwritten; whatever it was (any value but ``p``), the states after ``st`` are the
    same unless an unlogged step between them read it, so one value stands for them all:
    the next lower target the host may set (``p - unit``, targets being whole balloon units
    of ``unit`` pages), or ``unit`` when ``p`` is 0.  A target no logged step shows is not
    searched for: a log that needs one must log or observe it.

    >>> stated_targets(TraceStep(1, Action.of("vmm_release", vm=0), observe={"vms/0/target": 3}))
    ((0, 3),)
    >>> stated_targets(TraceStep(1, Action.of("host_set_target", vm=0, pages=0)))
    ((0, 1),)
    >>> stated_targets(TraceStep(1, Action.of("host_set_target", vm=0, pages=2)), unit=2)
    ((0, 0),)
    """
    found: set[tuple[int, int]] = set()
    if st.state is not None:
        for v, vm in enumerate(st.state.get("vms", ())):
            if isinstance(vm, dict) and type(vm.get("target")) is int:
                found.add((v, vm["target"]))
    for path, value in (st.observe or {}).items():
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "vms" or not parts[1].isdigit():
            continue
        if parts[2:] == ["target"] and type(value) is int:
            found.add((int(parts[1]), value))
        elif len(parts) == 2 and isinstance(value, dict) and type(value.get("target")) is int:
            found.add((int(parts[1]), value["target"]))
    if st.action.name == STATED_BY_THE_LOG:
        # What it records of its own VM is its own target, not the earlier one.
        vm, pages = st.action.kwargs["vm"], st.action.kwargs["pages"]
        assert isinstance(vm, int) and isinstance(pages, int)
        found = {(v, p) for v, p in found if v != vm} | {
            (vm, pages - unit if pages >= unit else unit)}
    return tuple(sorted(found))


PAGE_PARAMS = ("ppns", "new", "old")
"""Arguments by which the guest's allocator or balloon module names the pages it chose."""

CHOICES_SEARCHED = 64
"""Most argument choices of one unlogged page-choosing action tried from one state; past it
(a real guest has hundreds of thousands of pages) only the pages the log states are tried."""

_PAGE_FIELDS = frozenset({"ballooned", "inflate_queue", "deflate_queue", "acked_inflate",
                          "acked_refused", "acked_deflate", "balloon", "refused"})


def stated_pages(st: TraceStep) -> dict[int, tuple[int, ...]]:
    """VM -> the PPNs logged step ``st`` names: its page arguments, and the page sets it
    records or observes (ballooned, queues, acknowledgements, the module's balloon).

    >>> stated_pages(TraceStep(1, Action.of("vmm_reclaim", vm=0, refuse=[]),
    ...                        observe={"vms/0/ballooned": [5, 7]}))
    {0: (5, 7)}
    """
    found: dict[int, set[int]] = {}

    def walk(vm: int, key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, x in value.items():
                walk(vm, str(k), x)
        elif key in _PAGE_FIELDS and isinstance(value, (list, tuple)):
            found.setdefault(vm, set()).update(p for p in value if type(p) is int)

    for v, vm in enumerate((st.state or {}).get("vms", ())):
        walk(v, "", vm)
    for path, value in (st.observe or {}).items():
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "vms" and parts[1].isdigit():
            walk(int(parts[1]), parts[-1], value)
    vm = st.action.kwargs.get("vm")
    if isinstance(vm, int):
        for name in PAGE_PARAMS + ("refuse",):
            value = st.action.kwargs.get(name)
            pages = value if isinstance(value, tuple) else (value,)
            found.setdefault(vm, set()).update(p for p in pages if type(p) is int)
    return {v: tuple(sorted(pages)) for v, pages in sorted(found.items()) if pages}


def _stated_arguments(params: tuple[str, ...], s: State, vm: int, pages: tuple[int, ...]
                      ) -> Iterator[dict[str, Any]]:
    """Arguments of a page-choosing action made of stated pages only: every stated page
    alone, all of them, those the guest has free, those in the module's balloon."""
    v = s.vms[vm]
    use = v.guest.ppn_use
    free = tuple(p for p in pages if 0 <= p < len(use) and use[p] == FREE)
    held = tuple(p for p in pages if p in v.module.balloon)
    for name in params:
        if name == "ppns":
            for ppns in dict.fromkeys([pages, free, held, *((p,) for p in pages)]):
                if ppns:
                    yield {"vm": vm, "ppns": ppns}
        elif name in ("new", "old"):
            for p in pages:
                yield {"vm": vm, name: p}


class _Successors:
    """The model's successors of a state that break no property, remembered (bounded).

    Targets are never enumerated: an unlogged ``host_set_target`` is tried only with the
    targets the next logged step states (see :func:`stated_targets`)."""

    def __init__(self, model: BalloonModel, limit: int,
                 unlogged: frozenset[str] | None = None) -> None:
        self.model, self.limit, self.unlogged = model, limit, unlogged
        self.memo: dict[tuple[State, tuple[tuple[int, int], ...],
                              tuple[tuple[int, tuple[int, ...]], ...]],
                        tuple[State, ...]] = {}
        self.chosen = {name: spec for name, spec in model.table.items()
                       if name != STATED_BY_THE_LOG and (unlogged is None or name in unlogged)}
        self.targets_unlogged = unlogged is None or STATED_BY_THE_LOG in unlogged
        self.stated: tuple[tuple[int, int], ...] = ()
        self.pages: dict[int, tuple[int, ...]] = {}
        """The pages the next logged step states (:func:`stated_pages`)."""
        self.unstated: str | None = None
        """An unlogged action with too many page choices and no stated pages to take."""
        self.by_pages = {name for name, spec in self.chosen.items()
                         if set(spec.params) & set(PAGE_PARAMS)
                         and set(spec.params) <= set(PAGE_PARAMS) | {"vm"}}

    def _candidates(self, s: State) -> Iterator[tuple[Action, State]]:
        m = self.model
        for name, spec in self.chosen.items():
            if name not in self.by_pages:
                yield from enabled(m.cfg, s, {name: spec})
                continue
            if not spec.feature(m.cfg):
                continue
            args = list(islice(spec.candidates(m.cfg, s), CHOICES_SEARCHED + 1))
            if len(args) > CHOICES_SEARCHED:
                # Too many choices to try: take the pages the log states, never all of them.
                args = [a for vm, pages in self.pages.items() if 0 <= vm < m.cfg.vms
                        for a in _stated_arguments(spec.params, s, vm, pages)]
                if not args:
                    self.unstated = name
            for a in args:
                act = Action.of(name, **a)
                post = m.try_next_state(s, act)
                if post is not None:
                    yield act, post
        if not self.targets_unlogged:
            return
        for vm, pages in self.stated:
            act = Action.of(STATED_BY_THE_LOG, vm=vm, pages=pages)
            post = m.try_next_state(s, act)
            if post is not None:
                yield act, post

    def __call__(self, s: State) -> tuple[State, ...]:
        key = (s, self.stated, tuple(self.pages.items()))
        got = self.memo.get(key)
        if got is None:
            m = self.model
            got = tuple(post for act, post in self._candidates(s)
                        if not m.step_violations(s, act, post))
            if len(self.memo) >= self.limit:
                self.memo.clear()  # keeps memory bounded; the next steps refill it
            self.memo[key] = got
        return got


def _closure(succ: _Successors, frontier: dict[State, int], gap: int, limit: int
             ) -> dict[State, int] | None:
    """Every state reachable from ``frontier`` in at most ``gap`` unlogged steps that break
    no property, with the fewest unlogged steps to reach it; None past ``limit`` states."""
    seen = dict(frontier)
    layer = list(frontier)
    for depth in range(1, gap + 1):
        nxt = []
        for s in layer:
            for post in succ(s):
                if post in seen:
                    continue
                seen[post] = seen[s] + 1
                nxt.append(post)
                if len(seen) > limit:
                    return None
        if not nxt:
            break
        layer = nxt
    return seen


def unlogged_actions(header: TraceHeader) -> frozenset[str] | None:
    """The actions a trace declares it does not log (``source.unlogged_actions``), or None
    when it declares nothing (then any action may have happened unlogged).

    An implementation that logs every step declares ``[]``; Ballast's own runs do.
    """
    names = header.source.get("unlogged_actions")
    return None if names is None else frozenset(str(n) for n in names)


def validate_steps(header: TraceHeader, steps: Iterator[TraceStep], *, max_gap: int = 2,
                   max_states: int = 50_000,
                   on_step: Callable[[TraceStep], None] | None = None) -> TraceReport:
    """Check that every logged step is explained by the model, with at most ``max_gap``
    unlogged model steps before it (only of the actions the header declares unlogged, if it
    declares them); stop at the first step that is not explained."""
    model = BalloonModel(header.config, header.faults)
    unlogged = unlogged_actions(header)
    if unlogged is not None and not unlogged:
        max_gap = 0
    s0 = state_from_dict(header.initial) if header.initial else model.init_states()[0]
    rep = TraceReport()
    first = model.violations(s0)
    if first:
        rep.outcome, rep.violations = "mismatch", first
        rep.detail = f"the initial state breaks {first[0].property}: {first[0].message}"
        return rep
    if header.observe is not None:
        # What the implementation observed before any step, unlogged ones included.
        diff = observed_difference(s0, header.observe)
        if diff is not None:
            rep.outcome = "mismatch"
            rep.detail = (f"line 1: the initial state (before step 1) is not explained by the "
                          f"model: observation differs: {diff}")
            return rep
    # A list, not a set: hashing a large guest's state reads all of it, so candidates are
    # told apart by hashing only when there is more than one (see _fewest).
    frontier: list[State] = [s0]
    checker = StepChecker(model)
    succ = _Successors(model, min(max(2 * max_states, 1000), 20_000), unlogged)
    for st in steps:
        succ.stated = stated_targets(st, header.config.balloon_unit_pages)
        succ.pages = stated_pages(st)
        succ.unstated = None
        closed = (dict.fromkeys(frontier, 0) if len(frontier) > 1 or max_gap > 0 else None)
        if closed is not None:
            closed = _closure(succ, closed, max_gap, max_states)
        cands = [(frontier[0], 0)] if len(frontier) == 1 and max_gap == 0 else (
            list(closed.items()) if closed is not None else None)
        if cands is None:
            rep.outcome = "inconclusive"
            rep.detail = (f"line {st.line}: more than {max_states} model states explain the trace "
                          f"with up to {max_gap} unlogged steps; raise --max-states or lower "
                          f"--max-gap")
            return rep
        tried = _Tried.of(model, checker, cands, st)
        nxt = _fewest(tried.found)
        rep.max_states = max(rep.max_states, len(cands))
        if not nxt and succ.unstated is not None:
            rep.outcome = "inconclusive"
            rep.detail = (f"line {st.line}: an unlogged {succ.unstated} has more than "
                          f"{CHOICES_SEARCHED} page choices and the log states none of its pages; "
                          f"log the step, or observe the pages it reports")
            return rep
        unseen = _targets_not_stated(succ, model, max_gap) if not nxt else []
        if unseen:
            # The targets the log states do not explain the step, and it states none for
            # some VM: on a small guest every target the host may set is tried before a
            # mismatch is claimed; on a large one no target is guessed, so no verdict.
            every = _every_target(model.cfg, unseen)
            if every is None:
                rep.outcome = "inconclusive"
                rep.detail = (f"line {st.line}: no model behaviour explains this step with the "
                              f"targets the log states, and an unlogged host_set_target may "
                              f"have set one it never states (a guest of more than "
                              f"{CHOICES_SEARCHED} pages: targets are not guessed); log "
                              f"host_set_target, or observe "
                              f"{', '.join(f'vms/{v}/target' for v in unseen)}")
                return rep
            succ.stated = tuple(sorted(set(succ.stated) | set(every)))
            closed = _closure(succ, dict.fromkeys(frontier, 0), max_gap, max_states)
            if closed is None:
                rep.outcome = "inconclusive"
                rep.detail = (f"line {st.line}: more than {max_states} model states explain "
                              f"the trace with up to {max_gap} unlogged steps and any target "
                              f"the host may set; raise --max-states, or log host_set_target")
                return rep
            tried = _Tried.of(model, checker, list(closed.items()), st)
            nxt = _fewest(tried.found)
            rep.max_states = max(rep.max_states, len(closed))
        if not nxt:
            rep.outcome = "mismatch"
            rep.violations = tried.broke
            rep.mismatch = tried.mismatch(model, header.config, frontier[0], st)
            return rep
        rep.unlogged += min(d for _, d in nxt)
        frontier = [post for post, _ in nxt]
        rep.steps += 1
        if on_step is not None:
            on_step(st)
    if rep.steps == 0 and not header.initial and not header.observe:
        # Only the model's own initial state was checked: passing would pass an empty log.
        rep.outcome = "inconclusive"
        rep.detail = ("the trace logs no step, no initial state and no observation of it: "
                      "nothing of the implementation was judged")
    return rep


def _targets_not_stated(succ: _Successors, model: BalloonModel, max_gap: int) -> list[int]:
    """The VMs an unlogged ``host_set_target`` may have given a target that the step being
    tried does not state (so none was tried): none where no step goes unlogged
    (``max_gap`` 0), where the log logs every target, or where the host sets none."""
    if max_gap == 0 or not succ.targets_unlogged or STATED_BY_THE_LOG not in model.table:
        return []
    stated = {vm for vm, _ in succ.stated}
    return [vm for vm in range(model.cfg.vms) if vm not in stated]


def _every_target(cfg: Config, vms: list[int]) -> list[tuple[int, int]] | None:
    """``(vm, target)`` for every target the host may set on each of ``vms`` (whole balloon
    units), or None where that is more than :data:`CHOICES_SEARCHED` choices.

    >>> _every_target(Config(vms=2, guest_pages=4, machine_pages=8), [1])
    [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    >>> _every_target(Config(vms=1, guest_pages=4096, machine_pages=4096), [0]) is None
    True
    """
    unit = cfg.balloon_unit_pages
    targets = range(0, cfg.guest_pages + 1, unit)
    if len(targets) * len(vms) > CHOICES_SEARCHED:
        return None
    return [(vm, p) for vm in vms for p in targets]


@dataclass
class _Tried:
    """The logged step tried from each candidate state: the posts that explain it (with
    the unlogged steps before them), why the others do not (a guard's words, or a post
    whose recorded parts differ: its words made when needed), the properties that every
    explanation broke, and a post the guard allowed (for the report)."""

    found: list[tuple[State, int]] = field(default_factory=list)
    reasons: list[str | State] = field(default_factory=list)
    broke: list[Violation] = field(default_factory=list)
    allowed: State | None = None

    @classmethod
    def of(cls, model: BalloonModel, checker: StepChecker, cands: list[tuple[State, int]],
           st: TraceStep) -> "_Tried":
        """Step ``st`` tried from each of ``cands`` (state, unlogged steps before it)."""
        out = cls()
        for s, depth in cands:
            try:
                post = model.next_state(s, st.action)
            except GuardError as exc:
                out.reasons.append(f"{exc.action}: {exc.reason}")
                continue
            if _differs(post, st):
                out.reasons.append(post)
                out.allowed = out.allowed or post
                continue
            # One candidate (a fully logged trace) is checked from the step's footprint.
            bad = checker.check(s, st.action, post)
            if bad:
                out.broke.extend(bad)
                continue
            out.found.append((post, depth))
        return out

    def mismatch(self, model: BalloonModel, cfg: Config, last: State,
                 st: TraceStep) -> Mismatch:
        """Why nothing explains step ``st`` after state ``last``, with what the model
        allowed there."""
        broke = self.broke
        prop, msg = (broke[0].property, broke[0].message) if broke else blame(
            cfg, last, st, self.allowed)
        reason = (f"every explanation breaks {broke[0].property}: {broke[0].message}"
                  if broke else _most_telling(
                      [r if isinstance(r, str) else _difference(r, st) for r in self.reasons]))
        possible = tuple(str(a) for a, _ in islice(model.successors(last), 20))
        return Mismatch(st.step, st.line, st.action, reason, last, possible[:20], prop, msg)


def _fewest(found: list[tuple[State, int]]) -> list[tuple[State, int]]:
    """Each distinct state once, with the fewest unlogged steps that reach it, in order."""
    if len(found) <= 1:
        return found
    best: dict[State, int] = {}
    for post, depth in found:
        if post not in best or best[post] > depth:
            best[post] = depth
    return list(best.items())


def _most_telling(reasons: list[str]) -> str:
    """The reason most candidates gave (ties: the first)."""
    if not reasons:
        return "no model state is left"
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return max(counts, key=lambda r: counts[r])


def blame(cfg: Config, last: State, st: TraceStep, post: State | None = None
          ) -> tuple[str | None, str | None]:
    """The property that would break if ``st`` were accepted after ``last``.

    First the model's own invariants, on the state the trace claims (a full ``state``, or
    the model's successor ``post`` -- else ``last`` -- with the observed values patched
    in); then the virtio rules, on the profile events the logged action stands for.
    """
    model = BalloonModel(cfg)
    claimed: dict[str, Any] | None = st.state
    if claimed is None and st.observe:
        claimed = _patched(post if post is not None else last, st)
    if claimed is not None:
        try:
            state = state_from_dict(claimed)
            found = model.violations(state)
        except (KeyError, TypeError, ValueError, IndexError):
            found = []
        if found:
            return found[0].property, found[0].message
    vm = st.action.kwargs.get("vm")
    if isinstance(vm, int) and 0 <= vm < cfg.vms:
        t = VirtioTracker(project(cfg, last, vm).features, project(cfg, last, vm))
        for e in _claimed_events(st, vm):
            broken = t.violations(e)
            if broken:
                return broken[0][0].name, broken[0][1]
            t.apply(e)
    return None, None


def _patched(last: State, st: TraceStep) -> dict[str, Any] | None:
    data: dict[str, Any] = last.to_dict()
    assert st.observe is not None
    for path, value in st.observe.items():
        parts = path.strip("/").split("/")
        node: Any = data
        try:
            for p in parts[:-1]:
                node = node[int(p)] if isinstance(node, list) else node[p]
            key = parts[-1]
            if isinstance(node, list):
                node[int(key)] = value
            else:
                node[key] = value
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return data


def _claimed_events(st: TraceStep, vm: int) -> list[VirtioEvent]:
    """The profile events a logged action claims, read from its arguments and observation."""
    a = st.action
    args = a.kwargs
    ppns = args.get("ppns")
    pfns = tuple(int(p) for p in ppns) if isinstance(ppns, tuple) else ()
    if a.name == "balloon_inflate":
        return [VirtioEvent("inflate", pfns)]
    if a.name == "balloon_deflate":
        return [VirtioEvent("deflate", pfns)]
    ppn = args.get("ppn")
    if a.name == "rogue_touch" and isinstance(ppn, int):
        return [VirtioEvent("use", (ppn,))]
    actual = (st.observe or {}).get(f"vms/{vm}/module/actual")
    if a.name == "balloon_complete" and isinstance(actual, int):
        return [VirtioEvent("write_actual", value=actual)]
    return []
