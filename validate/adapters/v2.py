"""Protocol 2: Ballast plays the environment, the implementation makes its own choices.

In protocol 1 Ballast tells the implementation every step with every argument,
so an implementation whose guest allocates other pages than the model's can
only refuse, and an allocator bug can never show. In protocol 2 Ballast sends
what the *environment* decides and the implementation answers with what its
actors chose, as QuickCheck state machines feed responses back into the model:

* **environment commands**: the host's targets and its own use of memory, the
  guest's workload (a process reads or writes a virtual page), reboots and,
  for a hostile VM, what the attacker does. Sent as action requests, exactly
  as in protocol 1; both sides must agree whether the step is allowed.
* **run requests** (``{"run": {"actor": "module", "vm": 0}}``): timing is the
  environment's, the choice is the implementation's. Its balloon module, its
  VMM's device or its guest OS under memory pressure takes the step it would
  take next (or none) and reports it in the trace format, with its own
  choices as arguments: the PPNs its allocator picked, the pages its device
  refused. The model checks each reported step against its guard
  (:meth:`~ballast.model.BalloonModel.next_state`) and then continues from the
  implementation's choice; the observation after the run must match.
* **near-miss probes** (:mod:`ballast.validate.adapters.nearmiss`): the model's
  own next step with one limit relaxed, which the implementation must refuse.

The commands of one run are a plain list drawn by Hypothesis (their meaning
never depends on an earlier answer), so a divergence shrinks like any list;
a deterministic pass then deletes every command it does not need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from hypothesis import given
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, Action, Actor
from ballast.model.config import Config
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.model.trace import arguments_problem
from ballast.seeded_draws import seed_only_draws
from ballast.validate.adapters.diff import (
    RESET_GAP,
    DiffOutcome,
    Divergence,
    DivergenceFound,
    Exchange,
    _Run,
    _Stop,
    outcome_of,
    run_settings,
    run_to_end,
)
from ballast.validate.adapters.handshake import Hello
from ballast.validate.adapters.nearmiss import NEAR_MISSES, near_miss_for
from ballast.validate.adapters.observe import compare, observe
from ballast.validate.adapters.process import AdapterGarbage, AdapterProcess, one_line

__all__ = ["ENVIRONMENT_ACTORS", "RUN_ACTORS", "Command", "command_strategy", "drive",
           "run_actions"]

RUN_ACTORS: dict[str, frozenset[str]] = {
    "module": frozenset(n for n, a in ACTIONS.items() if a.actor is Actor.MODULE),
    "vmm": frozenset(n for n, a in ACTIONS.items() if a.actor is Actor.VMM),
    "guest": frozenset({"guest_evict"}),
}
"""Per actor a run request names: the actions it may report. The guest OS's only
choice of its own is which page to page out under memory pressure."""

ENVIRONMENT_ACTORS = frozenset({Actor.HOST, Actor.GUEST, Actor.ROGUE})
"""Actors whose steps Ballast decides (guest_evict excepted: the guest chooses it)."""

MAX_STEPS_PER_RUN = 64
"""Most steps one run reply may report (the schema's limit too)."""


def run_actions() -> frozenset[str]:
    """Every action an implementation reports in run replies rather than being sent."""
    return frozenset().union(*RUN_ACTORS.values())


@dataclass(frozen=True)
class Command:
    """One thing the environment does; its meaning never depends on earlier answers."""

    kind: str
    """``env`` (an action request), ``run`` (let an actor step), ``near_miss``
    (a probe built from the model's state) or ``reset_guest`` (throttled reboot)."""
    vm: int = 0
    action: Action | None = None
    """For ``env``: the action, arguments included."""
    name: str = ""
    """For ``run``: the actor; for ``near_miss``: which limit is relaxed."""

    def __str__(self) -> str:
        if self.kind == "run":
            return f"run {self.name} of VM {self.vm}"
        if self.kind == "near_miss":
            return f"near miss {self.name} on VM {self.vm}"
        return str(self.action)


# -- command strategies ------------------------------------------------------

WEIGHTS = {"run_module": 12, "run_vmm": 6, "run_guest": 2, "host_set_target": 8,
           "guest_read": 1, "guest_write": 1, "guest_reset": 1, "host_take_page": 3,
           "near_miss": 3, "other": 1}
"""How often each kind of command is drawn: the module and the VMM get the most
turns, so that the inflate-report-deflate-release path stays busy."""


def _env(name: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    def build(args: dict[str, Any]) -> Command:
        return Command("env", int(args.get("vm", 0)), Action.of(name, **args))
    return st.fixed_dictionaries(fields).map(build)


def _run(actor: str) -> Callable[[int], Command]:
    def build(vm: int) -> Command:
        return Command("run", vm, name=actor)
    return build


def _near(vm_which: tuple[int, str]) -> Command:
    return Command("near_miss", vm_which[0], name=vm_which[1])


def command_strategy(cfg: Config, actions: Sequence[str]) -> st.SearchStrategy[Command]:
    """Environment commands, run requests and near-miss probes, weighted (:data:`WEIGHTS`).

    Arguments of environment commands range one past the legal values, so the
    guards are probed too.

    >>> from ballast.model import preset
    >>> from hypothesis import find
    >>> find(command_strategy(preset("core"), ["balloon_poll", "host_set_target"]),
    ...      lambda c: True)
    Command(kind='run', vm=0, action=None, name='module')
    """
    offered = set(actions)
    vm = st.integers(0, cfg.vms - 1)
    any_vm = st.integers(0, cfg.vms)
    page, vpn = st.integers(0, cfg.guest_pages), st.integers(0, cfg.guest_data_pages)
    hostile = sorted(cfg.hostile_vms)
    options: list[tuple[int, st.SearchStrategy[Command]]] = []
    for actor in RUN_ACTORS:
        if RUN_ACTORS[actor] & offered:
            options.append((WEIGHTS[f"run_{actor}"], vm.map(_run(actor))))
    env: dict[str, st.SearchStrategy[Command]] = {
        # Mostly empty or full: each swing is a round of inflate or deflate reports.
        "host_set_target": _env("host_set_target", vm=any_vm, pages=st.sampled_from(
            [0, 0, cfg.guest_pages, cfg.guest_pages, *range(1, cfg.guest_pages + 2)])),
        "host_set_cpu_target": _env("host_set_cpu_target", vm=vm,
                                    vcpus=st.integers(0, cfg.vcpus + 1)),
        "host_take_page": _env("host_take_page", host_page=st.integers(0, cfg.host_pages)),
        "host_return_page": _env("host_return_page", host_page=st.integers(0, cfg.host_pages)),
        "host_swap_out": _env("host_swap_out", vm=vm, ppn=page),
        "guest_read": _env("guest_read", vm=vm, vpn=vpn),
        "guest_write": _env("guest_write", vm=vm, vpn=vpn,
                            token=st.integers(1, max(1, cfg.tokens))),
        "guest_reset": vm.map(lambda v: Command("reset_guest", v,
                                                Action.of("guest_reset", vm=v))),
    }
    if hostile:
        hv = st.sampled_from(hostile)
        env["rogue_report"] = _env("rogue_report", vm=hv,
                                   queue=st.sampled_from(["inflate", "deflate"]), ppn=page)
        env["rogue_touch"] = _env("rogue_touch", vm=hv, ppn=page,
                                  token=st.integers(0, cfg.tokens))
        env["rogue_set_actual"] = _env("rogue_set_actual", vm=hv,
                                       actual=st.integers(0, cfg.guest_pages + 1))
    for name, strategy in env.items():
        if name in offered and ACTIONS[name].feature(cfg):
            options.append((WEIGHTS.get(name, WEIGHTS["other"]), strategy))
    near = st.tuples(vm, st.sampled_from(sorted(NEAR_MISSES))).map(_near)
    options.append((WEIGHTS["near_miss"], near))
    # one_of would merge equal branches, so the weights are drawn as an index.
    strategies = [strategy for _, strategy in options]
    weighted = [i for i, (w, _) in enumerate(options) for _ in range(w)]
    return st.sampled_from(weighted).flatmap(strategies.__getitem__)


# -- the run -----------------------------------------------------------------

class _RunV2(_Run):
    """One protocol-2 run: commands go to both sides, reported steps to the model's guards."""

    offered: frozenset[str] = frozenset()
    sent: int = 0
    """Commands sent to the implementation since the last reset."""
    budget: int = 0
    """Commands the deletion pass may still send."""

    def execute(self, commands: Sequence[Command]) -> Divergence | None:
        """Run ``commands`` from a reset; the divergence they reach (None: none)."""
        self.log = []
        self.last_reset = -RESET_GAP
        self.sent = 0
        try:
            state, _ = self.exchange(self.model.init_states()[0], None)
            for i, cmd in enumerate(commands):
                state = self.command(state, cmd, i)
        except DivergenceFound as exc:
            return exc.divergence
        return None

    def exchange(self, state: State, action: Action | None) -> tuple[State, Exchange]:
        try:
            return super().exchange(state, action)
        except DivergenceFound as exc:
            found = replace(exc.divergence, requests=self.sent)
            if self.best is exc.divergence:
                self.best = found
            self.last_divergence = found
            raise DivergenceFound(found) from None

    def command(self, state: State, cmd: Command, index: int) -> State:
        self.sent += 1
        self.budget -= 1
        if cmd.kind == "reset_guest":
            if index - self.last_reset < RESET_GAP:
                self.sent -= 1
                return state  # throttled: a reset undoes everything
            self.last_reset = index
        if cmd.kind in ("env", "reset_guest"):
            assert cmd.action is not None
            state, _ = self.exchange(state, cmd.action)
            return state
        if cmd.kind == "near_miss":
            act = near_miss_for(self.model, state, cmd.vm, cmd.name, self.offered)
            if act is None:
                self.sent -= 1  # nothing sent
                return state
            self.near_misses += 1
            state, _ = self.exchange(state, act)
            return state
        return self.run_actor(state, cmd)

    def _garbage(self, message: dict[str, Any], why: str) -> _Stop:
        self.error = AdapterGarbage(why, message, self.proc.stderr_tail())
        self.error_exchanges, self.error_action, self.stopped = tuple(self.log), None, True
        return _Stop(why)

    def _reported(self, message: dict[str, Any], cmd: Command, record: dict[str, Any]) -> Action:
        """The model action a step record names, after the protocol's checks."""
        name, args = record["action"], record["args"]
        spec = ACTIONS.get(name)
        if spec is None or name not in RUN_ACTORS[cmd.name]:
            raise self._garbage(message, f"{cmd} reported {name!r}, which is no step of "
                                         f"the {cmd.name}")
        if name not in self.offered:
            raise self._garbage(message, f"{cmd} reported {name}, which the hello did not declare")
        if record["actor"] != spec.actor.value:
            raise self._garbage(message, f"{name} is a step of the {spec.actor.value}, "
                                         f"reported as one of the {record['actor']}")
        if sorted(args) != sorted(spec.params):
            given = one_line(", ".join(sorted(args))) or "none"
            raise self._garbage(message, f"{name} takes {', '.join(spec.params)}; "
                                         f"reported with {given}")
        # The schema lets any array through and counts 1.0 as an integer: a page list
        # [true] would reach the guard as PPN 1, and the run's trace would not replay.
        problem = arguments_problem(spec, args)
        if problem is not None:
            raise self._garbage(message, f"{name} reported with {problem}: "
                                         f"{one_line(json.dumps(args))}")
        if args.get("vm") != cmd.vm and args.get("other_vm") != cmd.vm:
            raise self._garbage(message, f"{cmd} reported a step of VM {args.get('vm')}")
        # Pages travel as sets: the model states them in increasing order.
        clean = {k: sorted(v) if isinstance(v, list) and all(isinstance(x, int) for x in v)
                 else v for k, v in args.items()}
        return Action.of(name, **clean)

    def run_actor(self, state: State, cmd: Command) -> State:
        """Let one actor take its next step(s); check each against the model's guard."""
        body = {"run": {"actor": cmd.name, "vm": cmd.vm}}
        message = {"id": self.next_id, **body}
        reply = self.send(body, None, reply_kind="run_reply")
        self.commands += 1
        records = reply["steps"]
        impl_obs = reply["observe"]
        request = str(cmd)
        if not records:
            diffs = compare(observe(state, self.hello.keys), impl_obs)
            if diffs:
                ex = Exchange(len(self.log), None, True, None, True, None,
                              observe(state, self.hello.keys), impl_obs, request)
                self._diverge("observation", ex, diffs)
            return state
        actions = [self._reported(message, cmd, r) for r in records]
        for i, act in enumerate(actions):
            last = i == len(actions) - 1
            try:
                post = self.model.next_state(state, act)
            except GuardError as exc:
                ex = Exchange(len(self.log), act, False, exc.reason, True, None,
                              observe(state, self.hello.keys), impl_obs if last else None,
                              request)
                self._diverge("accepted", ex, [])
            self.carried_out[act.name] = self.carried_out.get(act.name, 0) + 1
            self.witnessed.update(self.model.witnessed(state, act, post))
            state = post
            model_obs = observe(state, self.hello.keys)
            ex = Exchange(len(self.log), act, True, None, True, None, model_obs,
                          impl_obs if last else None, request)
            if last:
                diffs = compare(model_obs, impl_obs)
                if diffs:
                    self._diverge("observation", ex, diffs)
            self.log.append(ex)
        return state

    def _diverge(self, kind: str, ex: Exchange, diffs: list[tuple[str, Any, Any]]) -> None:
        self.log.append(ex)
        found = Divergence(kind, tuple(self.log), tuple(diffs), self.sent)
        self.last_divergence = found
        if self.first_failure is None:
            self.first_failure = self.examples
        if self.best is None or found.commands < self.best.commands:
            self.best = found
        raise DivergenceFound(found)

    def minimise_commands(self, commands: list[Command], found: Divergence) -> tuple[
            list[Command], Divergence]:
        """Delete commands while a divergence of the same kind, at a step of the same
        action, remains: halves first, then quarters, down to one at a time."""
        best_cmds, best = list(commands), found

        def same(got: Divergence | None) -> bool:
            a, b = got.last if got else None, best.last
            return (got is not None and a is not None and got.kind == best.kind
                    and (a.action.name if a.action else a.request)
                    == (b.action.name if b.action else b.request))

        chunk = max(1, len(best_cmds) // 2)
        # Each try replays the run: the pass may send some 20 times the run's length.
        self.budget = 20 * len(best_cmds) + 500
        while True:
            changed = False
            i = len(best_cmds) - 1 - chunk  # never the diverging command itself
            while i >= 0:
                if self.budget <= 0:
                    return best_cmds, best
                trial = best_cmds[:i] + best_cmds[i + chunk:]
                try:
                    got = self.execute(trial)
                except _Stop:
                    self.error = None
                    return best_cmds, best
                if same(got):
                    assert got is not None
                    best_cmds, best, changed = trial, got, True
                i = min(i - chunk, len(best_cmds) - 1 - chunk)
            if chunk == 1 and not changed:
                return best_cmds, best
            chunk = max(1, chunk // 2) if not changed or chunk > 1 else 1


def drive(model: BalloonModel, proc: AdapterProcess, hello: Hello, *, examples: int,
          steps: int, seed: int, shrink_runs: int,
          progress: Callable[[int], None] | None, started: float) -> DiffOutcome:
    """The protocol-2 differential test, after the handshake."""
    cfg = model.cfg
    run = _RunV2(model, proc, hello, progress=progress, shrink_runs=shrink_runs)
    run.offered = frozenset(hello.actions)
    strategy = command_strategy(cfg, hello.actions)
    # The length is drawn first, uniformly: deep states need long runs (a list
    # strategy's lengths are short on average), and Hypothesis shrinks it.
    length = st.integers(1, steps)
    failing: list[list[Command]] = []

    def one_run(data: st.DataObject) -> None:
        if run.shrink_budget_spent():
            run.stopped = True
            raise _Stop("shrink budget spent")
        run.examples += 1
        if run.progress is not None:
            run.progress(run.examples)
        cmds: list[Command] = []
        run.log = []
        run.last_reset = -RESET_GAP
        run.sent = 0
        try:
            state, _ = run.exchange(model.init_states()[0], None)
            for i in range(data.draw(length, label="length")):
                cmds.append(data.draw(strategy, label="command"))
                state = run.command(state, cmds[-1], i)
        except DivergenceFound as exc:
            if run.best is exc.divergence or not failing:
                failing[:] = [cmds]
            raise

    test = run_settings(examples)(given(st.data())(one_run))
    hypothesis_seed(seed)(test)
    with seed_only_draws():
        final, flaky = run_to_end(run, test)

    def minimise(found: Divergence) -> Divergence:
        if failing:
            again = run.execute(failing[0])
            if again is not None:
                return run.minimise_commands(failing[0], again)[1]
        return found

    return outcome_of(run, final, flaky, started, minimise, hello=hello, cfg=cfg, seed=seed,
                      command=tuple(proc.argv), examples=run.examples, commands=run.commands,
                      requests=proc.requests, carried_out=dict(run.carried_out),
                      refused=dict(run.refused), near_misses=run.near_misses, protocol=2)
