"""The Z3 encoding against the executable model, on every reachable state of a configuration.

The proofs are only as good as the claim that the Z3 relation of each action
*is* the model's Python step and that each Z3 property *is* the model's
check. :func:`check_agreement` checks that claim exhaustively on a list of
states (every reachable state of a small configuration, from the explorer):

* every encoded property (state form) evaluates like the model's own check,
  and, without seeded faults, every conjunct of the inductive invariant holds
  (a conjunct false on a reachable state would make the proofs fail or lie);
* every step the model enables (:meth:`BalloonModel.successors`) is admitted
  by the Z3 relation with exactly the model's successor, and every step form
  evaluates like the model's step check;
* every argument tuple the encoding enumerates that the model does not enable
  is refused by the Z3 guard, or else admitted by the model's own guard too
  with the same successor (an argument the model's candidate lists skip);
* an enabled step of an action the encoding lacks is a named gap, never a pass.

Evaluating Z3 terms with ``z3.simplify`` costs about 0.1 s per state, so the
relation is *compiled* once per configuration instead: every guard, post-state
term and formula is built exactly as the proofs build it (``Choice`` arguments
included, each value substituted), and the Z3 term graph is translated node
by node into one straight-line Python function (Boolean connectives,
if-then-else, 16-bit signed bit-vector arithmetic and comparisons, cardinality
constraints). An operator the translator does not know raises
:class:`UnsupportedTerm`; the tests check the translation against
``z3.simplify``.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> report = check_agreement(cfg, [initial_state(cfg)])
>>> report.ok, report.states, report.enabled_steps > 0
(True, 1, True)
"""

from __future__ import annotations

import itertools
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import z3

from ballast.errors import BallastError, GuardError
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.encodings import declared_gaps_on
from ballast.model.invariants import INVARIANTS
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.proofs.encoding import WIDTH, Key, OutOfDomain, concrete_values, fresh, keys
from ballast.proofs.faults import effects_with
from ballast.proofs.properties import SAFETY, STEPS, inductive_invariant
from ballast.proofs.transitions import Choice, encoded_actions, instances, step

__all__ = ["BOUNDED_ONLY", "NUMERIC_PREFIX", "NUMERIC_PREFIX_STATES", "AgreementReport",
           "CompiledEncoding", "Disagreement", "TermProgram", "UnsupportedTerm",
           "check_agreement"]

_HALF = 1 << (WIDTH - 1)
_MASK = (1 << WIDTH) - 1


def _wrap(n: int) -> int:
    """``n`` as a signed ``WIDTH``-bit number (what a Z3 bit-vector holds)."""
    return ((n + _HALF) & _MASK) - _HALF


class UnsupportedTerm(BallastError):
    """A Z3 operator the translation to Python does not know (never evaluated wrongly)."""


_NARY = {z3.Z3_OP_AND: " and ", z3.Z3_OP_OR: " or "}
_CMP = {z3.Z3_OP_SLEQ: "<=", z3.Z3_OP_SGEQ: ">=", z3.Z3_OP_SLT: "<", z3.Z3_OP_SGT: ">"}
_UCMP = {z3.Z3_OP_ULEQ: "<=", z3.Z3_OP_UGEQ: ">=", z3.Z3_OP_ULT: "<", z3.Z3_OP_UGT: ">"}


class TermProgram:
    """Many Z3 terms over named constants, compiled into one Python function.

    ``inputs`` names the constants (in the order of the tuple the function takes);
    :meth:`run` returns the value of every node, and :meth:`index` says where a
    root's value is. Bit-vectors are evaluated as signed ``WIDTH``-bit integers.

    >>> x, y = z3.BitVec("x", WIDTH), z3.BitVec("y", WIDTH)
    >>> prog = TermProgram([z3.If(x + y > 3, x - y, y), z3.AtMost(x == 1, y == 1, 1)], ["x", "y"])
    >>> vals = prog.run((2, 5))
    >>> vals[prog.index(0)], vals[prog.index(1)]
    (-3, True)
    """

    def __init__(self, roots: Sequence[z3.ExprRef], inputs: Sequence[str]) -> None:
        where = {name: i for i, name in enumerate(inputs)}
        slot: dict[int, int] = {}
        lines: list[str] = []
        self._roots: list[int] = []
        for root in roots:
            self._roots.append(self._emit(root, where, slot, lines))
        body = "\n".join(f"    {ln}" for ln in lines)
        src = (f"def run(x):\n{body}\n    return ({', '.join(f'v{i}' for i in range(len(lines)))}"
               f"{',' if lines else ''})\n")
        env: dict[str, Any] = {"_wrap": _wrap}
        exec(compile(src, "<z3 terms>", "exec"), env)  # noqa: S102 - our own generated code
        self.run: Callable[[Sequence[int | bool]], tuple[Any, ...]] = env["run"]
        self.nodes = len(lines)

    def index(self, root: int) -> int:
        """Position of root number ``root``'s value in :meth:`run`'s result."""
        return self._roots[root]

    @staticmethod
    def _emit(root: z3.ExprRef, where: dict[str, int], slot: dict[int, int],
              lines: list[str]) -> int:
        # Iterative post-order walk: Z3 shares equal subterms, and so does the program.
        stack: list[tuple[z3.ExprRef, bool]] = [(root, False)]
        while stack:
            t, ready = stack.pop()
            tid = t.get_id()
            if tid in slot:
                continue
            kids = [t.arg(i) for i in range(t.num_args())]
            if not ready:
                stack.append((t, True))
                stack.extend((k, False) for k in kids if k.get_id() not in slot)
                continue
            args = [f"v{slot[k.get_id()]}" for k in kids]
            slot[tid] = len(lines)
            lines.append(f"v{len(lines)} = {TermProgram._expr(t, args, where)}")
        return slot[root.get_id()]

    @staticmethod
    def _expr(t: z3.ExprRef, a: list[str], where: dict[str, int]) -> str:
        kind = t.decl().kind()
        if kind == z3.Z3_OP_TRUE:
            return "True"
        if kind == z3.Z3_OP_FALSE:
            return "False"
        if kind == z3.Z3_OP_BNUM:
            assert isinstance(t, z3.BitVecNumRef)
            # WIDTH-bit numbers are signed; narrower ones (bits taken out of a mask by
            # Extract) are compared unsigned, as Extract's results are.
            return str(t.as_signed_long() if t.size() == WIDTH else t.as_long())
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = t.decl().params()
            child = t.arg(0)
            assert isinstance(child, z3.BitVecRef)
            whole, part = (1 << child.size()) - 1, (1 << (hi - lo + 1)) - 1
            return f"((({a[0]}) & {whole}) >> {lo} & {part})"
        if kind == z3.Z3_OP_UNINTERPRETED and not a:
            name = t.decl().name()
            if name not in where:
                raise UnsupportedTerm(f"a constant the inputs do not name: {name}")
            return f"x[{where[name]}]"
        if isinstance(t, z3.BitVecRef) and t.size() != WIDTH:
            raise UnsupportedTerm(f"a bit-vector of {t.size()} bits: {t.sexpr()[:80]}")
        if kind in _NARY:
            if not a:  # the empty conjunction holds, the empty disjunction does not
                return "True" if kind == z3.Z3_OP_AND else "False"
            return "(" + _NARY[kind].join(a) + ")"
        if kind == z3.Z3_OP_NOT:
            return f"(not {a[0]})"
        if kind == z3.Z3_OP_IMPLIES:
            return f"((not {a[0]}) or {a[1]})"
        if kind == z3.Z3_OP_XOR:
            return f"({a[0]} != {a[1]})"
        if kind == z3.Z3_OP_EQ:
            return f"({a[0]} == {a[1]})"
        if kind == z3.Z3_OP_DISTINCT:
            return f"(len({{{', '.join(a)}}}) == {len(a)})"
        if kind == z3.Z3_OP_ITE:
            return f"({a[1]} if {a[0]} else {a[2]})"
        if kind in (z3.Z3_OP_PB_AT_MOST, z3.Z3_OP_PB_AT_LEAST):
            (k,) = t.decl().params()
            op = "<=" if kind == z3.Z3_OP_PB_AT_MOST else ">="
            return f"(({' + '.join(a)}) {op} {k})"
        if kind == z3.Z3_OP_BADD:
            return f"_wrap({' + '.join(a)})"
        if kind == z3.Z3_OP_BSUB:
            return f"_wrap({' - '.join(a)})"
        if kind == z3.Z3_OP_BMUL:
            return f"_wrap({' * '.join(a)})"
        if kind == z3.Z3_OP_BNEG:
            return f"_wrap(-{a[0]})"
        if kind in _CMP:
            return f"({a[0]} {_CMP[kind]} {a[1]})"
        if kind in _UCMP:
            return f"(({a[0]}) & {_MASK} {_UCMP[kind]} ({a[1]}) & {_MASK})"
        raise UnsupportedTerm(f"no Python form for the Z3 operator {t.decl().name()!r}")


@dataclass(frozen=True)
class _Instance:
    """One encoded step with concrete arguments (each Choice value substituted)."""

    action: Action
    guard: int
    post: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    steps: tuple[tuple[str, int], ...]
    """(property, node) of each step form on this step."""


def _action_key(act: Action) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return act.name, tuple(sorted(act.args))


class CompiledEncoding:
    """Every encoded step, property and conjunct of ``cfg`` as one compiled program."""

    def __init__(self, cfg: Config, faults: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.keys: list[Key] = [k for k, _ in keys(cfg)]
        self._seen: dict[State, tuple[int | bool, ...]] = {}
        pre = fresh(cfg, "pre")
        inputs = [str(pre[k]) for k in self.keys]
        effects = effects_with(tuple(faults))
        roots: list[z3.ExprRef] = []

        def add(t: z3.ExprRef) -> int:
            roots.append(t)
            return len(roots) - 1

        inv = inductive_invariant(pre)
        self.properties = {p: add(SAFETY[p](pre)) for p in SAFETY if INVARIANTS[p].feature(cfg)}
        self.conjuncts = {c: add(f) for c, f in inv.items() if c not in self.properties}
        self.actions = encoded_actions(cfg)
        raw: list[tuple[Action, int, list[int], list[tuple[str, int]]]] = []
        for name in self.actions:
            for args in instances(cfg, name):
                st = step(cfg, pre, name, args, effects)
                choices = [(k, v) for k, v in args.items() if isinstance(v, Choice)]
                for values in itertools.product(*(range(c.lo, c.hi + 1) for _, c in choices)):
                    pairs = [(st.sym[k], z3.BitVecVal(n, WIDTH))
                             for (k, _), n in zip(choices, values)]

                    def sub(t: z3.ExprRef) -> z3.ExprRef:
                        return z3.substitute(t, *pairs) if pairs else t

                    concrete = dict(args)
                    for (k, c), n in zip(choices, values):
                        concrete[k] = c.value(n)
                    raw.append((Action.of(name, **concrete), add(sub(st.guard)),
                                [add(sub(st.post[k])) for k in self.keys],
                                [(p, add(sub(fn(pre, name, st.sym, st.post))))
                                 for p, fn in STEPS.items()]))
        self.program = TermProgram(roots, inputs)
        ix = self.program.index
        self.instances = [
            _Instance(act, ix(g), operator.itemgetter(*(ix(i) for i in post)),
                      tuple((p, ix(i)) for p, i in props))
            for act, g, post, props in raw]
        self.by_action = {_action_key(i.action): i for i in self.instances}
        self.properties = {p: ix(i) for p, i in self.properties.items()}
        self.conjuncts = {c: ix(i) for c, i in self.conjuncts.items()}

    def inputs(self, s: State) -> tuple[int | bool, ...]:
        """The encoding of ``s`` in input order, wrapped as Z3 holds it (raises OutOfDomain)."""
        return tuple(v if isinstance(v, bool) else _wrap(v) for v in self.encoded(s))

    def encoded(self, s: State) -> tuple[int | bool, ...]:
        """The encoding of ``s`` in input order, unwrapped (to compare successors with).

        Remembered per state: a reachable state is the successor of many others.
        """
        got = self._seen.get(s)
        if got is None:
            vals = concrete_values(self.cfg, s)
            got = self._seen[s] = tuple(vals[k] for k in self.keys)
        return got


@dataclass(frozen=True)
class Disagreement:
    """One place where the encoding and the model differ."""

    index: int
    """Position of the state in the list checked."""
    state: State
    what: str


@dataclass
class AgreementReport:
    """What one exhaustive agreement check covered and found."""

    cfg: Config
    faults: tuple[str, ...]
    states: int = 0
    enabled_steps: int = 0
    """Steps the model enables, each admitted by the Z3 relation with its successor."""
    refused_steps: int = 0
    """Encoded argument tuples the model does not enable, each refused by the Z3 guard."""
    outside_candidates: int = 0
    """Encoded argument tuples both guards admit that the model's candidate lists skip."""
    property_checks: int = 0
    conjunct_checks: int = 0
    conjuncts_broken: dict[str, int] = field(default_factory=dict)
    """With seeded faults: conjuncts false on reachable states (expected there)."""
    gaps: dict[str, int] = field(default_factory=dict)
    """Actions the model enables that the encoding lacks, with how many steps."""
    disagreements: list[Disagreement] = field(default_factory=list)
    nodes: int = 0
    compile_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No disagreement and no gap."""
        return not self.disagreements and not self.gaps

    def summary(self) -> str:
        """One line of figures."""
        return (f"{self.states} states, {self.enabled_steps} enabled steps, "
                f"{self.refused_steps} refused, {self.outside_candidates} outside the model's "
                f"candidates, {self.property_checks} property and {self.conjunct_checks} "
                f"conjunct evaluations; {len(self.disagreements)} disagreements"
                + (f"; not encoded: {', '.join(sorted(self.gaps))}" if self.gaps else ""))


def check_agreement(cfg: Config, states: Sequence[State], faults: Sequence[str] = (), *,
                    steps: Sequence[Sequence[tuple[Action, int]]] | None = None,
                    encoding_faults: Sequence[str] | None = None,
                    max_disagreements: int = 10) -> AgreementReport:
    """Compare the encoding with the model on every state of ``states`` (see the module text).

    ``steps`` (per state: every enabled step as (action, index of the successor in
    ``states``), as the explorer found them) saves asking ``BalloonModel.successors``
    again. ``encoding_faults`` (default: ``faults``) seeds faults into the encoding
    alone, so a test can show that a wrong encoding is caught.
    """
    t0 = time.perf_counter()
    faults = tuple(faults)
    enc = CompiledEncoding(cfg, faults if encoding_faults is None else encoding_faults)
    report = AgreementReport(cfg, faults, nodes=enc.program.nodes,
                             compile_seconds=time.perf_counter() - t0)
    model = BalloonModel(cfg, faults)
    for prop in model.properties():
        # A form of the property (state or step) without its Z3 formula: a named gap.
        if ((prop.state is not None and prop.name not in SAFETY)
                or (prop.step is not None and prop.name not in STEPS)):
            report.gaps[prop.name] = 0
    for i, s in enumerate(states):
        if len(report.disagreements) >= max_disagreements:
            break  # enough to show; the figures then cover the states checked so far

        def differ(what: str, i: int = i, s: State = s) -> None:
            if len(report.disagreements) < max_disagreements:
                report.disagreements.append(Disagreement(i, s, what))

        report.states += 1
        try:
            vals = enc.program.run(enc.inputs(s))
        except OutOfDomain as exc:
            differ(f"a reachable state is outside the encoding's domain: {exc}")
            continue
        _compare_state_forms(cfg, enc, report, vals, s, bool(faults), differ)
        succ = (model.successors(s) if steps is None else
                ((a, states[j]) for a, j in steps[i]))
        _compare_steps_of(cfg, enc, model, report, vals, s, succ, differ)
    report.seconds = time.perf_counter() - t0
    return report


def _compare_state_forms(cfg: Config, enc: CompiledEncoding, report: AgreementReport,
                         vals: tuple[Any, ...], s: State, faulty: bool,
                         differ: Callable[[str], None]) -> None:
    """The encoding's properties and inductive conjuncts on state ``s`` against the model's
    (a conjunct false on a reachable state of a faulty model is counted, not a
    disagreement: the fault may break it)."""
    for p, node in enc.properties.items():
        report.property_checks += 1
        want = INVARIANTS[p].check_state(cfg, s)
        if vals[node] != (want is None):
            differ(f"property {p}: Z3 says {'holds' if vals[node] else 'broken'}, "
                   f"the model says {want or 'holds'}")
    for c, node in enc.conjuncts.items():
        report.conjunct_checks += 1
        if not vals[node]:
            if faulty:
                report.conjuncts_broken[c] = report.conjuncts_broken.get(c, 0) + 1
            else:
                differ(f"conjunct {c} of the inductive invariant is false on a reachable state")


def _compare_steps_of(cfg: Config, enc: CompiledEncoding, model: BalloonModel,
                      report: AgreementReport, vals: tuple[Any, ...], s: State,
                      succ: Iterable[tuple[Action, State]],
                      differ: Callable[[str], None]) -> None:
    """Every step from ``s``: those the model enables (``succ``) against the encoding's, then
    every instance the encoding enumerates that the model did not list."""
    enabled: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Action, State]] = {
        _action_key(a): (a, post) for a, post in succ}
    for key, (act, post) in enabled.items():
        inst = enc.by_action.get(key)
        if inst is None:
            if act.name in enc.actions:
                differ(f"{act} is enabled but the encoding does not enumerate it")
            else:
                report.gaps[act.name] = report.gaps.get(act.name, 0) + 1
            continue
        report.enabled_steps += 1
        _compare_step(cfg, enc, inst, vals, s, act, post, differ)
    for inst in enc.instances:
        if _action_key(inst.action) in enabled:
            continue
        if not vals[inst.guard]:
            report.refused_steps += 1
            continue
        try:
            post = model.next_state(s, inst.action)
        except GuardError as exc:
            differ(f"Z3 admits {inst.action}, the model refuses it ({exc})")
            continue
        report.outside_candidates += 1
        _compare_step(cfg, enc, inst, vals, s, inst.action, post, differ)


def _compare_step(cfg: Config, enc: CompiledEncoding, inst: _Instance, vals: tuple[Any, ...],
                  s: State, act: Action, post: State, differ: Callable[[str], None]) -> None:
    if not vals[inst.guard]:
        differ(f"the model enables {act}, the Z3 guard refuses it")
        return
    try:
        want = enc.encoded(post)
    except OutOfDomain as exc:
        differ(f"the successor of {act} is outside the encoding's domain: {exc}")
        return
    got = inst.post(vals)
    if got != want:
        wrong = [f"{k}: Z3 {g}, model {w}" for k, g, w in zip(enc.keys, got, want) if g != w]
        differ(f"successor of {act} differs: {'; '.join(wrong[:4])}")
    for p, node in inst.steps:
        msg = INVARIANTS[p].check_step(cfg, s, act, post)
        if vals[node] != (msg is None):
            differ(f"step form of {p} on {act}: Z3 says "
                   f"{'holds' if vals[node] else 'broken'}, the model says {msg or 'holds'}")


BOUNDED_ONLY: dict[str, str] = {
    "hostile/hostile-processors":
        "a hostile guest's rogue memory and processor steps on one page: more than 200,000 "
        "reachable states, compared on the breadth-first prefix of the default run only",
}
"""Agreement configurations compared on a bounded prefix only, never on every reachable
state, each with the reason."""

NUMERIC_PREFIX: dict[str, str] = {
    "default/flood":
        "a hostile guest against the VMM's own flood bound on one page: 85,440 reachable "
        "states, every one compared by Z3",
    "default/hostile":
        "a hostile guest's queues, refused and acknowledged sets and false actual on one "
        "page: 69,840 reachable states, every one compared by Z3",
}
"""Agreement configurations the NumPy comparison checks on their first
:data:`NUMERIC_PREFIX_STATES` breadth-first states only (every other configuration on every
reachable state; Z3 on every state of these too), each with the reason: at about 10 ms a
state, the NumPy comparison of every state of these two would be half of the complete checks'
time."""

NUMERIC_PREFIX_STATES = 20_000


def agreement_configs() -> dict[str, Config]:
    """One small configuration per feature slice the explorer checks, for every preset.

    Each slice of :func:`ballast.statespace.suite.feature_slices` is shrunk further
    (no guest disk, the fewest machine pages its host pages and VMs allow, one VPN;
    a ``protocol-paging`` copy with the guest disk and one PPN);
    one configuration is kept per slice and per protocol variant (module kind,
    ``MUST_TELL_HOST``, guest policy, eager backing, a VMM that accepts beyond the target)
    the presets choose.

    >>> sorted(agreement_configs())[:3]
    ['application/protocol', 'application/protocol-paging', 'default/flood']
    """
    out = _slice_configs()
    out.update(_feature_configs(out))
    # Features the encodings declare as known gaps (none today) may change what an encoded
    # action may do, so the encodings are compared with the model only where none is on.
    return {name: c for name, c in out.items() if not declared_gaps_on(c)}


def _slice_configs() -> dict[str, Config]:
    """Per preset, each explorer slice shrunk (and a ``-paging`` copy of ``protocol``), one
    per slice and protocol variant (:func:`agreement_configs`)."""
    from ballast.model.config import PRESETS
    from ballast.statespace.suite import feature_slices

    out: dict[str, Config] = {}
    seen: set[tuple[object, ...]] = set()
    # The preset with every feature last, so that a slice it shares with a feature's own
    # preset keeps that preset's name (``hibernation/hibernation``, ``xen/protocol``).
    for preset_name in sorted(PRESETS, key=lambda name: name == "hostile"):
        cfg = PRESETS[preset_name]
        for slice_name, small in feature_slices(cfg).items():
            if declared_gaps_on(small):
                continue  # not compared (below)
            # The fewest machine pages; a generic guest system's are every guest's pages.
            fewest = small.vms * (small.guest_pages if small.guest_system else 1)
            tiny = small.replace(guest_disk_slots=0,
                                 machine_pages=small.host_page_units * fewest,
                                 guest_data_pages=min(small.guest_data_pages, 1))
            shapes = {slice_name: tiny}
            if small.guest_disk_slots and slice_name == "protocol":
                # The guest paging out to its disk needs a disk slot; one PPN (one balloon
                # unit) keeps it small.
                shapes[f"{slice_name}-paging"] = tiny.replace(
                    guest_disk_slots=small.guest_disk_slots, guest_pages=small.balloon_unit_pages)
            for shape, c in shapes.items():
                # One per slice, and one per variant of the protocol the presets choose
                # (the module, MUST_TELL_HOST, the guest's allocator, the VMM's backing).
                variant = (shape, c.module, c.must_tell_host, c.guest_policy, c.eager_backing,
                           c.accept_beyond_target)
                if variant not in seen:
                    seen.add(variant)
                    out[f"{preset_name}/{shape}"] = c
    return out


def _feature_configs(slices: dict[str, Config]) -> dict[str, Config]:
    """The features the shrunk slices leave out, each on the smallest guest that exercises
    it (some made from ``slices``, the shrunk slices of :func:`_slice_configs`)."""
    from ballast.model.config import PRESETS
    from ballast.statespace.suite import feature_slices

    out: dict[str, Config] = {}
    # The virtio 1.x features (free page reporting, page poison, statistics, the VMM's own
    # flood bound) on the smallest guests that exercise them: one PPN and the guest's disk
    # (the guest frees and reuses pages), with host swap (the VMM discards swapped pages).
    for preset_name in ("reporting", "poison"):
        one = feature_slices(PRESETS[preset_name])["protocol"].replace(
            guest_pages=1, machine_pages=1, guest_data_pages=1)
        out[f"{preset_name}/protocol-paging"] = one
        out[f"{preset_name}/host-swap"] = one.replace(
            host_swap=True, host_swap_slots=1, host_use=False)
    out["default/flood"] = feature_slices(
        PRESETS["default"].replace(vmm_bounds_queues=True))["hostile"]
    # Reports in flight across a reset (``reset_races_reports``), on one PPN with the virtio
    # 1.x features off: the reset copies the queues, the VMM drops (or applies) them.
    out["hostile/reset-races"] = feature_slices(PRESETS["hostile"])["reset"].replace(
        guest_pages=1, machine_pages=1, guest_data_pages=1, guest_disk_slots=0,
        free_page_reporting=False, page_poison=False, stats_queue=False,
        vmm_bounds_queues=False, migration=False, oom_notifier=False, deflate_on_oom=False,
        vmm_reclaims_over_target=False)
    # The hostile guest's processors with two vCPUs (the explorer's slice has one, to fit its
    # budget): the VMM enforcing the host's CPU target needs a vCPU beyond the target.
    out["hostile/hostile-processors"] = slices["hostile/hostile-processors"].replace(
        vcpus=2, pcpus=3)
    # The VMM enforcing the host's CPU target against honest guests, small enough to be
    # compared on every reachable state (the hostile guest's above is not: BOUNDED_ONLY).
    out["hostile/cpu-target"] = slices["default/processors"].replace(
        vmm_enforces_cpu_target=True)
    # Free page hinting on one PPN: the guest may take a hinted page into use at once.
    out["hinting/hinting"] = feature_slices(PRESETS["hinting"])["hinting"].replace(
        guest_pages=1, machine_pages=1, guest_data_pages=1, guest_disk_slots=0)
    # Balloon units of two pages (the explorer's slices share their names with the default
    # preset's, so they are not kept above): two units in a guest of four PPNs, and one unit
    # with the guest's disk, host swap and a reset; then the features that combine with
    # units: refusal and the OOM notifier on two units, reporting (with poison) and hinting
    # on one.
    units = feature_slices(PRESETS["large-units"])["protocol"].replace(
        guest_disk_slots=0, guest_data_pages=1, machine_pages=2, host_use=False,
        deflate_on_oom=True)
    out["large-units/two-units"] = units.replace(guest_pages=4, batch=2)
    out["large-units/swap-reset"] = units.replace(
        guest_disk_slots=1, host_swap=True, host_swap_slots=1, reset=True)
    out["large-units/refusal-oom"] = units.replace(guest_pages=4, batch=2, refusal=True,
                                                   oom_notifier=True)
    out["large-units/reporting"] = units.replace(free_page_reporting=True, page_poison=True,
                                                 poison_val=1, host_swap=True, host_swap_slots=1)
    out["large-units/hinting"] = units.replace(free_page_hint=True)
    # A generic guest system's own pages: one guest of two pages with host swap (the
    # explorer's two-guests slice, kept above, has one page each; with a reset too, over
    # 13,000 states).
    out["guest-system/host-swap"] = feature_slices(PRESETS["guest-system"])["reset"].replace(
        guest_disk_slots=0, guest_data_pages=1, machine_pages=2, host_swap=True,
        host_swap_slots=1, reset=False)
    return out
