"""Live differential testing: the model and an implementation driven with the same commands.

A Hypothesis :class:`~hypothesis.stateful.RuleBasedStateMachine` runs the
reference model (:class:`~ballast.model.BalloonModel`) and the implementation
under test (a subprocess, :mod:`ballast.validate.adapters.process`) side by side.
Each step draws one command: mostly an action the model allows in its current
state, sometimes a *probe* with arbitrary arguments that the model's guard may
refuse. Both sides take the command; then

* a step one side carries out and the other refuses is a divergence (the
  implementation's ``ok:false`` must match the model's
  :class:`~ballast.errors.GuardError`, and the other way round);
* otherwise the implementation's observation must equal the model's for every
  key the implementation declared (:mod:`ballast.validate.adapters.observe`).

Hypothesis shrinks a divergence to a short command sequence; it is written as a
trace plus a Markdown report by :mod:`ballast.validate.adapters.report`. An
implementation that times out, crashes, answers garbage or the wrong request
stops the run at once (no shrinking: each try could cost a timeout) and is
reported as such, naming the request.

>>> import sys
>>> from ballast.model import preset
>>> echo = "import sys; [print('{}', flush=True) for line in sys.stdin]"
>>> print(run_diff([sys.executable, "-c", echo], preset("core")).describe())
... # doctest: +NORMALIZE_WHITESPACE
the implementation failed (garbage) at request hello: not a valid hello reply:
'id' is a required property: '{}'
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    rule,
    run_state_machine_as_test,
)

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, Action
from ballast.model.config import Config, ModuleKind
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.seeded_draws import seed_only_draws
from ballast.validate.adapters.handshake import Hello, handshake
from ballast.validate.adapters.nearmiss import NEAR_MISSES, near_miss_for
from ballast.validate.adapters.observe import compare, observation_problem, observe
from ballast.validate.adapters.process import (
    AdapterError,
    AdapterGarbage,
    AdapterProcess,
    one_line,
)
from ballast.verdict import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_VIOLATION, Verdict

__all__ = [
    "DiffOutcome",
    "Divergence",
    "DivergenceFound",
    "Exchange",
    "DEFAULT_STEPS",
    "RESET_GAP",
    "probe_strategy",
    "run_diff",
    "run_settings",
    "run_to_end",
]

RESET_GAP = 25
"""Commands between two guest resets at least: a reset undoes everything, and
without throttling resets keep the balloon from ever deflating on some presets."""

DEFAULT_STEPS = 200
"""Commands per run by default: deep enough for several inflate-deflate rounds."""


@dataclass(frozen=True)
class Exchange:
    """One command given to both sides and what each made of it."""

    index: int
    """Position in the run: 0 is the reset to the initial state, then 1, 2, ..."""
    action: Action | None
    """The command (None for the reset)."""
    model_ok: bool
    """Whether the model's guard allowed it."""
    model_reason: str | None
    """The guard's reason when it did not."""
    impl_ok: bool
    """Whether the implementation carried it out."""
    impl_reason: str | None
    """The implementation's reason for a refusal."""
    model_observe: dict[str, Any]
    """The model's observation after the command."""
    impl_observe: dict[str, Any] | None
    """The implementation's observation after the command (None: it gave none)."""
    request: str | None = None
    """Protocol 2: the request that made the implementation take this step (or, with
    no ``action``, take none), e.g. ``run module of VM 0``; None when the request
    was the command itself."""

    @property
    def applied(self) -> bool:
        """Both sides carried the command out (it belongs in the trace)."""
        return self.action is not None and self.model_ok and self.impl_ok


@dataclass(frozen=True)
class Divergence:
    """The first command after which model and implementation disagree."""

    kind: str
    """``observation``, ``refused`` (the implementation refused a step the model
    allows) or ``accepted`` (it carried out a step the model's guard forbids)."""
    exchanges: tuple[Exchange, ...]
    """The whole run up to and including the diverging command."""
    diffs: tuple[tuple[str, Any, Any], ...]
    """(key, model value, implementation value) for each differing observation."""
    requests: int | None = None
    """Protocol 2: commands sent in the run (a run request may add no step or several)."""

    @property
    def last(self) -> Exchange:
        """The diverging exchange."""
        return self.exchanges[-1]

    @property
    def commands(self) -> int:
        """Commands in the shrunk run (the reset not counted)."""
        return self.requests if self.requests is not None else len(self.exchanges) - 1

    def describe(self) -> str:
        """One line for a person."""
        ex = self.last
        if ex.request is not None:
            step = "no step" if ex.action is None else f"step {ex.action}"
            what = f"command {ex.index} ({ex.request}: {step})"
        elif ex.action is None:
            what = "the initial state"
        else:
            what = f"command {ex.index} ({ex.action})"
        if self.kind == "refused":
            return (f"{what}: the implementation refused it ({ex.impl_reason or 'no reason'}) "
                    "but the model allows it")
        if self.kind == "accepted":
            return (f"{what}: the implementation carried it out but the model's guard "
                    f"refuses it: {ex.model_reason}")
        shown = "; ".join(f"{k} is {m} in the model, {i} in the implementation"
                          for k, m, i in self.diffs[:3])
        return f"{what}: observations differ: {shown}"


class DivergenceFound(AssertionError):
    """Raised inside the state machine when the two sides disagree."""

    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence
        super().__init__(divergence.describe())


class _Stop(BaseException):
    """Ends the Hypothesis run at once, shrinking included.

    A BaseException on purpose: Hypothesis takes only Exception (and a few
    others) as test failures, and lets anything else end the whole run.
    Raised when the implementation fails to answer (every further try could
    cost a timeout) and when the shrink budget is spent.
    """


@dataclass(frozen=True)
class DiffOutcome:
    """The result of one differential run."""

    verdict: Verdict
    """PASS (agree), VIOLATION (divergence) or INCONCLUSIVE (the implementation failed)."""
    hello: Hello | None
    cfg: Config
    seed: int
    command: tuple[str, ...]
    divergence: Divergence | None = None
    adapter_error: AdapterError | None = None
    error_exchanges: tuple[Exchange, ...] = ()
    """For an adapter error: the run's commands before the one that failed."""
    error_action: Action | None = None
    """For an adapter error: the command that failed (None: the reset or the hello)."""
    flaky: bool = False
    """The implementation answered the same commands differently on a rerun."""
    failure_while_shrinking: AdapterError | None = None
    """The implementation failed to answer while a divergence was being shrunk."""
    examples: int = 0
    commands: int = 0
    requests: int = 0
    seconds: float = 0.0
    carried_out: dict[str, int] = field(default_factory=dict)
    """Per action: commands both sides carried out."""
    refused: dict[str, int] = field(default_factory=dict)
    """Per action: commands both sides refused (guards that agreed)."""
    never_happened: tuple[str, ...] = ()
    """Actions the implementation declared that no run carried out (the run is inconclusive)."""
    unreached: tuple[str, ...] = ()
    """"Sometimes" scenarios of the configuration that no run reached (inconclusive)."""
    protocol: int = 1
    """The protocol version the implementation spoke."""
    near_misses: int = 0
    """Near-miss probes sent (each refused by the model's guard)."""
    faults: tuple[str, ...] = ()
    """The faults seeded into the model side."""

    @property
    def exit_code(self) -> int:
        """0 agree, 1 divergence, 3 inconclusive."""
        return {Verdict.PASS: EXIT_OK, Verdict.VIOLATION: EXIT_VIOLATION}.get(
            self.verdict, EXIT_INCONCLUSIVE)

    def describe(self) -> str:
        """One line for a person."""
        name = self.hello.implementation if self.hello else "the implementation"
        if self.adapter_error is not None:
            err = self.adapter_error
            at = (f" at command {self.error_action}" if self.error_action else
                  f" at request {_request_words(err.request)}" if err.request else "")
            return f"{name} failed ({err.kind}){at}: {err.message}"
        if self.flaky:
            # No divergence stands: what one run showed, the same commands did not show again.
            seen = f" ({self.divergence.describe()}, then not again)" if self.divergence else ""
            return (f"{name} is not deterministic: the same commands gave different "
                    f"results{seen}")
        if self.divergence is not None:
            return (f"{name} diverges from the model after {self.divergence.commands} "
                    f"commands: {self.divergence.describe()}")
        agree = (f"{name} agrees with the model over {self.examples} runs, "
                 f"{self.commands} commands")
        gaps = []
        if self.never_happened:
            gaps.append(f"declared actions that never happened: {', '.join(self.never_happened)}")
        if self.unreached:
            gaps.append(f"scenarios never reached: {', '.join(self.unreached)}")
        if gaps:
            return f"{agree}, but the test is vacuous in part: {'; '.join(gaps)}"
        return agree


def _request_words(request: dict[str, Any]) -> str:
    """A request that is no model command (the hello, a reset, a protocol-2 run), in words.

    >>> _request_words({"id": 0, "hello": {"protocol": 2}})
    'hello'
    >>> _request_words({"id": 13, "run": {"actor": "vmm", "vm": 0}})
    '13 (run vmm of VM 0)'
    """
    what = next((k for k in request if k != "id"), "?")
    if what == "hello":
        return "hello"
    body = request.get(what)
    if what == "run" and isinstance(body, dict):
        what = f"run {body.get('actor')} of VM {body.get('vm')}"
    return f"{request.get('id')} ({what})"


# -- command strategies ------------------------------------------------------

def _param_strategies(cfg: Config) -> dict[str, st.SearchStrategy[Any]]:
    """Arguments of probes: every value the model's guards look at, plus one out of range."""
    page = st.integers(0, cfg.guest_pages)
    pages = st.lists(st.integers(0, cfg.guest_pages), min_size=0, max_size=cfg.batch + 1)
    return {
        "vm": st.integers(0, cfg.vms),
        "other_vm": st.integers(0, cfg.vms),
        "pages": st.integers(0, cfg.guest_pages + 1),
        "vcpus": st.integers(0, cfg.vcpus + 1),
        "vcpu": st.integers(0, cfg.vcpus),
        "host_page": st.integers(0, cfg.host_pages),
        "ppn": page,
        "other_ppn": page,
        "vpn": st.integers(0, cfg.guest_data_pages),
        "token": st.integers(0, cfg.tokens + 1),
        "ppns": pages,
        "refuse": pages,
        "queue": st.sampled_from(["inflate", "deflate"]),
        "actual": st.integers(0, cfg.guest_pages + 1),
    }


def probe_strategy(cfg: Config, actions: Sequence[str]) -> st.SearchStrategy[Action] | None:
    """Commands with arbitrary (well-typed) arguments for ``actions``; None if none can be built.

    >>> from ballast.model import preset
    >>> from hypothesis import find
    >>> find(probe_strategy(preset("core"), ["host_set_target"]), lambda a: True)
    Action(name='host_set_target', args=(('vm', 0), ('pages', 0)))
    """
    params = _param_strategies(cfg)
    options: list[st.SearchStrategy[Action]] = []
    for name in actions:
        spec = ACTIONS[name]
        if all(p in params for p in spec.params):
            fields = {p: params[p] for p in spec.params}
            options.append(st.fixed_dictionaries(fields).map(_builder(name)))
    return st.one_of(options) if options else None


def _builder(name: str) -> Callable[[dict[str, Any]], Action]:
    def build(args: dict[str, Any]) -> Action:
        return Action.of(name, **args)
    return build


# -- the run -----------------------------------------------------------------

@dataclass
class _Run:
    """State shared by every example of one run."""

    model: BalloonModel
    proc: AdapterProcess
    hello: Hello
    next_id: int = 1
    examples: int = 0
    commands: int = 0
    error: AdapterError | None = None
    error_exchanges: tuple[Exchange, ...] = ()
    error_action: Action | None = None
    last_divergence: Divergence | None = None
    probes: st.SearchStrategy[Action] | None = None
    progress: Callable[[int], None] | None = None
    log: list[Exchange] = field(default_factory=list)
    carried_out: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    shrink_runs: int = 100
    first_failure: int | None = None
    """``examples`` when the first divergence was seen."""
    best: Divergence | None = None
    """The shortest divergence seen so far."""
    stopped: bool = False
    """The run was ended on purpose (by :class:`_Stop`)."""
    witnessed: set[str] = field(default_factory=set)
    """"Sometimes" scenarios some step reached."""
    last_reset: int = -RESET_GAP
    """Commands given (this example) when a guest last reset."""
    near_misses: int = 0

    def shrink_budget_spent(self) -> bool:
        """Whether Hypothesis has had its share of runs to shrink the divergence."""
        return (self.first_failure is not None
                and self.examples - self.first_failure >= self.shrink_runs)

    def send(self, body: dict[str, Any], action: Action | None,
             reply_kind: str = "step_reply") -> dict[str, Any]:
        message = {"id": self.next_id, **body}
        self.next_id += 1
        try:
            reply = self.proc.request(message, reply_kind=reply_kind)
            self._check_observe(reply, message, action)
        except AdapterError as err:
            self.error, self.error_exchanges, self.error_action = err, tuple(self.log), action
            self.stopped = True
            raise _Stop(str(err)) from None
        return reply

    def _check_observe(self, reply: dict[str, Any], message: dict[str, Any],
                       action: Action | None) -> None:
        obs = reply.get("observe")
        if obs is None:
            if reply["ok"]:
                what = "a reset" if action is None else "an accepted step"
                raise AdapterGarbage(f"the reply to {what} carries no observation", message,
                                     self.proc.stderr_tail())
            return
        missing = [k for k in self.hello.keys if k not in obs]
        extra = sorted(set(obs) - set(self.hello.keys))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks declared keys {', '.join(missing)}")
            if extra:
                parts.append(f"has undeclared keys {', '.join(extra)}")
            raise AdapterGarbage(f"observation {' and '.join(parts)}", message,
                                 self.proc.stderr_tail())
        for key in self.hello.keys:
            # A value of another kind than the model's (a float, a truth value, a string in a
            # set) is no observation: garbage, never compared loosely nor written to a trace
            # no replay reads.
            problem = observation_problem(key, obs[key])
            if problem is not None:
                raise AdapterGarbage(f"observation {key} {problem}", message,
                                     self.proc.stderr_tail())

    def exchange(self, state: State, action: Action | None) -> tuple[State, Exchange]:
        """Give one command (or the reset) to both sides; return the model's next state."""
        model_ok, model_reason, post = True, None, state
        if action is not None:
            try:
                post = self.model.next_state(state, action)
            except GuardError as exc:
                model_ok, model_reason = False, exc.reason
            reply = self.send({"action": action.name, "args": action.to_dict()}, action)
            self.commands += 1
        else:
            reply = self.send({"reset": {}}, None)
        impl_ok = bool(reply["ok"])
        if action is None and not impl_ok:
            self.error = AdapterGarbage("the implementation refused to reset",
                                        {"id": reply["id"], "reset": {}})
            self.error_exchanges, self.error_action = tuple(self.log), None
            self.stopped = True
            raise _Stop(str(self.error))
        reason = reply.get("reason")
        ex = Exchange(len(self.log), action, model_ok, model_reason, impl_ok,
                      None if reason is None else one_line(reason),
                      observe(post, self.hello.keys), reply.get("observe"))
        self.log.append(ex)
        if action is not None and model_ok == impl_ok:
            tally = self.carried_out if model_ok else self.refused
            tally[action.name] = tally.get(action.name, 0) + 1
            if model_ok:
                self.witnessed.update(self.model.witnessed(state, action, post))
                if action.name == "guest_reset":
                    self.last_reset = len(self.log)
        kind = None
        diffs: list[tuple[str, Any, Any]] = []
        if ex.impl_observe is not None:
            diffs = compare(ex.model_observe, ex.impl_observe)
        if model_ok and not impl_ok:
            kind = "refused"
        elif impl_ok and not model_ok:
            kind = "accepted"
        elif diffs:
            kind = "observation"
        if kind is not None:
            self.last_divergence = Divergence(kind, tuple(self.log), tuple(diffs))
            if self.first_failure is None:
                self.first_failure = self.examples
            if self.best is None or self.last_divergence.commands < self.best.commands:
                self.best = self.last_divergence
            raise DivergenceFound(self.last_divergence)
        return post, ex

    def _stand_in(self, state: State, act: Action) -> Action | None:
        """The first step of the same action (same VM) the model allows in ``state``."""
        vm = act.kwargs.get("vm")
        for alt, _ in self.model.successors(state):
            if alt.name == act.name and alt.kwargs.get("vm") == vm:
                return alt
        return None

    def rerun(self, commands: Sequence[tuple[Action, bool]]) -> Divergence | None:
        """Run ``commands`` on both sides from a reset; the divergence they reach, if any.

        Each command carries whether the model allowed it in the original run. A
        command the model allowed there but refuses now (an earlier command was
        removed) is replaced by the same action with the arguments the model
        allows now (the guest's allocator picks other pages), or dropped.
        """
        self.log = []
        try:
            state, _ = self.exchange(self.model.init_states()[0], None)
            for act, allowed in commands:
                if allowed and self.model.try_next_state(state, act) is None:
                    alt = self._stand_in(state, act)
                    if alt is None:
                        continue
                    act = alt
                state, _ = self.exchange(state, act)
        except DivergenceFound as exc:
            return exc.divergence
        return None

    def minimise(self, found: Divergence) -> Divergence:
        """Delete commands while the same divergence remains: all before the diverging
        one, then halves, quarters, down to one at a time.

        Hypothesis's shrinker has a bounded number of runs; this pass finishes
        the job deterministically (each try is one reset and a few commands).
        """
        best = found
        # Chunks first (all commands before the diverging one, then halves, ...),
        # then one at a time, until no deletion keeps the divergence.
        chunk = max(1, best.commands - 1)
        while True:
            changed = False
            i = best.commands - 1 - chunk  # never the diverging command itself
            while i >= 0:
                commands = [(ex.action, ex.model_ok) for ex in best.exchanges[1:]
                            if ex.action is not None]
                trial = commands[:i] + commands[i + chunk:]
                try:
                    got = self.rerun(trial)
                except _Stop:
                    # It failed on a shorter run: keep the divergence found so far.
                    self.error = None
                    return best
                if (got is not None and got.kind == best.kind and got.commands < best.commands
                        and got.last.action is not None and best.last.action is not None
                        and got.last.action.name == best.last.action.name):
                    best, changed = got, True
                i = min(i - chunk, best.commands - 1 - chunk)
            if chunk == 1 and not changed:
                return best
            if not changed or chunk > 1:
                chunk = max(1, chunk // 2)


WEIGHTS: dict[str, int] = {
    "host_set_target": 4, "guest_read": 2, "guest_write": 2, "guest_evict": 2,
    "balloon_poll": 6, "balloon_inflate": 6, "vmm_reclaim": 6, "balloon_complete": 6,
    "balloon_deflate": 6, "vmm_release": 6, "balloon_free_refused": 3, "host_take_page": 2,
}
"""How often each enabled action is drawn, against 1 for the others: the inflate,
report, deflate and release path stays busy, resets and host-side noise rare."""

PROBE_WEIGHT, NEAR_MISS_WEIGHT = 2, 4
"""How often a probe with arbitrary arguments and a near-miss probe are drawn."""


def _machine(run: _Run) -> type[RuleBasedStateMachine]:
    """One rule: a weighted draw among the actions the implementation carries out and
    the model allows now (the arguments among the model's choices), a probe with
    arbitrary arguments that the guard may refuse, or a near-miss probe."""
    model = run.model
    supported = set(run.hello.actions)
    kinds = st.sampled_from(sorted(NEAR_MISSES))
    vms = st.integers(0, max(0, model.cfg.vms - 1))
    probes = run.probes

    class DifferentialMachine(RuleBasedStateMachine):
        """The model and the implementation, one command at a time."""

        def __init__(self) -> None:
            super().__init__()
            if run.shrink_budget_spent():
                run.stopped = True
                raise _Stop("shrink budget spent")
            run.examples += 1
            if run.progress is not None:
                run.progress(run.examples)
            run.log = []
            run.last_reset = -RESET_GAP
            self.state, _ = run.exchange(model.init_states()[0], None)

        def menu(self) -> tuple[dict[str, list[Action]], list[str]]:
            table: dict[str, list[Action]] = {}
            for a, _ in model.successors(self.state):
                if a.name in supported:
                    table.setdefault(a.name, []).append(a)
            if len(run.log) - run.last_reset < RESET_GAP:
                table.pop("guest_reset", None)
            weighted = [n for n in run.hello.actions if n in table
                        for _ in range(WEIGHTS.get(n, 1))]
            if probes is not None:
                weighted += ["probe"] * PROBE_WEIGHT
            weighted += ["near_miss"] * NEAR_MISS_WEIGHT
            return table, weighted

        def give(self, act: Action) -> None:
            self.state, _ = run.exchange(self.state, act)

        @rule(data=st.data())
        def command(self, data: st.DataObject) -> None:
            """One command: a step the model allows, a probe or a near-miss probe."""
            table, weighted = self.menu()
            name = data.draw(st.sampled_from(weighted), label="command")
            if name == "probe":
                assert probes is not None
                self.give(data.draw(probes, label="probe"))
            elif name == "near_miss":
                act = near_miss_for(model, self.state, data.draw(vms, label="vm"),
                                    data.draw(kinds, label="near_miss"), supported)
                if act is not None:
                    run.near_misses += 1
                    self.give(act)
            else:
                self.give(data.draw(st.sampled_from(table[name]), label=name))

    return DifferentialMachine


def run_settings(examples: int, **extra: Any) -> settings:
    """Hypothesis's settings for a differential run of either protocol version: no
    deadline, no example database, generate then shrink, quiet."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    print_blob=False, report_multiple_bugs=False, verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate, Phase.shrink], **extra)


def run_to_end(run: _Run, test: Callable[[], None]) -> tuple[Divergence | None, bool]:
    """Run a Hypothesis test of ``run`` to its end: (the divergence it ended with, if any;
    whether the implementation answered differently on a rerun)."""
    try:
        test()
    except DivergenceFound as exc:
        return exc.divergence, False
    except (_Stop, Flaky):
        # Ending a run on purpose may surface as Hypothesis's complaint that
        # the run stopped drawing early: that is no flakiness of the implementation.
        if run.stopped:
            return run.best, False
        return None, True
    return None, False


def outcome_of(run: _Run, final: Divergence | None, flaky: bool, started: float,
               minimise: Callable[[Divergence], Divergence], **common: Any) -> DiffOutcome:
    """The outcome of a finished run, for either protocol version.

    A divergence stands even when the implementation failed while it was being
    shrunk; a failure to answer, or answers that change on a rerun, are
    inconclusive; a divergence is made as short as ``minimise`` can and reported;
    a run in which everything agreed goes to :func:`finish_pass`.
    """
    def seconds() -> float:
        return time.monotonic() - started

    if run.error is not None and run.best is not None:
        # It failed while a divergence was being shrunk: the divergence stands.
        return DiffOutcome(Verdict.VIOLATION, divergence=run.best,
                           failure_while_shrinking=run.error, seconds=seconds(), **common)
    if run.error is not None:
        return DiffOutcome(Verdict.INCONCLUSIVE, adapter_error=run.error,
                           error_exchanges=run.error_exchanges, error_action=run.error_action,
                           flaky=flaky, seconds=seconds(), **common)
    if flaky:
        return DiffOutcome(Verdict.INCONCLUSIVE, divergence=run.last_divergence, flaky=True,
                           seconds=seconds(), **common)
    if final is not None:
        final = minimise(final)
        common.update(examples=run.examples, commands=run.commands, requests=run.proc.requests)
        return DiffOutcome(Verdict.VIOLATION, divergence=final, seconds=seconds(), **common)
    common.pop("protocol", None)  # the pass names the protocol the implementation spoke
    return finish_pass(run, seconds=seconds(), **common)


def finish_pass(run: _Run, **common: Any) -> DiffOutcome:
    """The outcome of a run in which every command agreed: a pass, or inconclusive
    when part of it was vacuous (:func:`coverage_gaps`)."""
    never, unreached = coverage_gaps(run.model, run.hello, run.carried_out, run.witnessed)
    verdict = Verdict.INCONCLUSIVE if never or unreached else Verdict.PASS
    return DiffOutcome(verdict, never_happened=never, unreached=unreached,
                       protocol=run.hello.protocol, **common)


def coverage_gaps(model: BalloonModel, hello: Hello, carried_out: dict[str, int],
                  witnessed: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(declared actions never carried out, scenarios of the configuration never reached).

    Only scenarios whose witnessing action the implementation carries out count:
    a VMM-only implementation cannot show a guest paging out.
    """
    never = tuple(a for a in hello.actions if not carried_out.get(a))
    offered = set(hello.actions)
    unreached = tuple(sc.name for sc in model.scenarios()
                      if sc.name not in witnessed and _scenario_actions(sc.name) <= offered
                      and (sc.name != "partial_fill" or _partial_fill_possible(model.cfg)))
    return never, unreached


_SCENARIO_ACTIONS: dict[str, frozenset[str]] = {
    "balloon_reaches_target": frozenset({"balloon_inflate", "vmm_reclaim", "balloon_complete"}),
    "deflate_under_memory_pressure": frozenset({"balloon_deflate", "guest_write"}),
    "host_reuses_reclaimed_page": frozenset({"host_take_page", "vmm_reclaim"}),
    "partial_fill": frozenset({"balloon_inflate", "guest_write"}),
    "guest_pages_out_for_balloon": frozenset({"guest_evict", "balloon_inflate"}),
    "host_refuses_page": frozenset({"vmm_reclaim"}),
    "host_swap_fallback": frozenset({"host_swap_out"}),
    "page_shared": frozenset({"vmm_share"}),
    "copy_on_write_break": frozenset({"vmm_share", "guest_write"}),
    # A guest that keeps to the protocol never touches its balloon: only a hostile one.
    "balloon_pops": frozenset({"vmm_reclaim", "rogue_touch"}),
    "reset_with_balloon": frozenset({"guest_reset", "vmm_reclaim"}),
    "processor_given_back": frozenset({"vmm_cpu_reclaim"}),
    "reported_page_discarded": frozenset({"balloon_report_free_pages", "vmm_discard_reported"}),
    "reported_page_reused": frozenset({"vmm_discard_reported", "balloon_report_done",
                                       "guest_write"}),
    "poisoned_page_reported": frozenset({"balloon_report_free_pages", "vmm_discard_reported"}),
    "stats_reported": frozenset({"balloon_report_stats"}),
    "report_flood_refused": frozenset({"rogue_report"}),
    "hinted_page_skipped": frozenset({"vmm_request_hints", "balloon_hint_free_pages",
                                      "vmm_skip_hinted"}),
    "hinted_page_rewritten": frozenset({"balloon_hint_free_pages", "guest_write"}),
    "stale_hint_ignored": frozenset({"vmm_stop_hints", "balloon_hint_free_pages"}),
    "restored_with_balloon": frozenset({"balloon_freeze", "balloon_restore"}),
    "target_changed_while_frozen": frozenset({"balloon_freeze", "host_set_target"}),
    "hostile_vcpu_unparked": frozenset({"rogue_cpu_park", "rogue_cpu_online"}),
    "vmm_stops_excess_vcpus": frozenset({"host_set_cpu_target", "vmm_enforce_cpu_target"}),
    "stale_report_dropped": frozenset({"balloon_inflate", "guest_reset",
                                       "vmm_drop_stale_reports"}),
    "over_target_page_recovered": frozenset({"host_set_target", "vmm_swap_over_target"}),
    "over_target_vm_recovered": frozenset({"host_set_target", "vmm_swap_over_target"}),
    "host_page_kept_from_other_vm": frozenset({"guest_write"}),
    "guest_system_page_comes_back": frozenset({"balloon_inflate", "vmm_reclaim",
                                               "balloon_deflate", "guest_write"}),
    "whole_unit_ballooned": frozenset({"balloon_inflate", "vmm_reclaim"}),
    "whole_unit_returned": frozenset({"balloon_deflate", "vmm_release"}),
}


def _partial_fill_possible(cfg: Config) -> bool:
    # Fewer pages than asked, but at least one: the module must be able to ask for two.
    return cfg.module is ModuleKind.DRIVER and cfg.batch >= 2


def _scenario_actions(name: str) -> frozenset[str]:
    """Actions without which a scenario cannot happen (unknown scenarios: none)."""
    return _SCENARIO_ACTIONS.get(name, frozenset())


def run_diff(command: str | Sequence[str], cfg: Config, *, examples: int = 100,
             steps: int = DEFAULT_STEPS, seed: int = 0, timeout_s: float = 5.0,
             shrink_runs: int = 100, faults: Sequence[str] = (),
             progress: Callable[[int], None] | None = None) -> DiffOutcome:
    """Run the differential test of the implementation started by ``command``.

    The model side runs ``cfg`` with the seeded ``faults`` (a correct implementation
    then diverges from it: a check that ``diff`` catches the fault); the outcome and
    its counterexample name them. See :func:`_diff` for the rest.
    """
    outcome = _diff(command, cfg, examples=examples, steps=steps, seed=seed,
                    timeout_s=timeout_s, shrink_runs=shrink_runs, faults=tuple(faults),
                    progress=progress)
    return dataclasses.replace(outcome, faults=tuple(faults))


def _diff(command: str | Sequence[str], cfg: Config, *, examples: int,
          steps: int, seed: int, timeout_s: float, shrink_runs: int, faults: tuple[str, ...],
          progress: Callable[[int], None] | None) -> DiffOutcome:
    """Run the differential test of the implementation started by ``command``.

    ``examples`` runs of up to ``steps`` commands each, seeded with ``seed``;
    each request waits at most ``timeout_s`` for its reply. A configuration the
    implementation does not run raises :class:`~ballast.validate.adapters.handshake.ConfigMismatch`.
    Hypothesis shrinks a divergence for at most ``shrink_runs`` runs, then a
    deletion pass removes every command the divergence does not need.
    ``progress`` (if given) is called with the number of runs started so far.

    The protocol version is the implementation's (``hello``): version 1 is driven
    here, version 2 by :func:`ballast.validate.adapters.v2.drive`. A run in which
    every command agreed but a declared action never happened, or a scenario of
    the configuration was never reached, is inconclusive.
    """
    started = time.monotonic()
    proc = AdapterProcess(command, timeout_s=timeout_s)
    argv = tuple(proc.argv)
    model = BalloonModel(cfg, faults)
    try:
        try:
            proc.start()
            hello = handshake(proc, cfg)
        except AdapterError as err:
            return DiffOutcome(Verdict.INCONCLUSIVE, None, cfg, seed, argv, adapter_error=err,
                               requests=proc.requests, seconds=time.monotonic() - started)
        if hello.protocol == 2:
            from ballast.validate.adapters.v2 import drive

            model = BalloonModel(hello.run_config(cfg), faults)
            return drive(model, proc, hello, examples=examples, steps=steps, seed=seed,
                         shrink_runs=shrink_runs, progress=progress, started=started)
        run = _Run(model, proc, hello, probes=probe_strategy(cfg, hello.actions),
                   progress=progress, shrink_runs=shrink_runs)
        machine = _machine(run)
        conf = run_settings(examples, stateful_step_count=steps)
        hypothesis_seed(seed)(machine)
        with seed_only_draws():
            final, flaky = run_to_end(
                run, lambda: run_state_machine_as_test(machine, settings=conf))
        return outcome_of(run, final, flaky, started, run.minimise, hello=hello, cfg=cfg,
                          seed=seed, command=argv, examples=run.examples,
                          commands=run.commands, requests=proc.requests,
                          carried_out=dict(run.carried_out), refused=dict(run.refused),
                          near_misses=run.near_misses)
    finally:
        proc.close()
