"""``ballast check``: run every checker and gather one verdict per property.

The built-in checkers are the deterministic random runs (:mod:`ballast.simulation.randomwalk`)
and the Hypothesis state machine (:mod:`ballast.simulation.stateful`); the exploration,
proof, numeric and trace-validation suites plug in through their
``suite_check`` functions. A counterexample is shrunk, replayed through the
reference model and written under the report directory before it is
reported. Every checker's work is counted (runs, steps, states, Z3 resource
units, batches; see :mod:`ballast.budget`), so the same options and seed give
the same verdicts and figures on any machine; wall-clock time limits a checker
only when ``max_seconds`` is set. Scenarios ("sometimes" properties) and action
coverage are pooled over all checkers and judged on what each checker can reach:
an item is vacuous only if a chosen checker that could exercise it ran and none
did (see :func:`_pool`).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ballast import progress as shown_progress
from ballast.budget import WorkBudget, out_of_time
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.simulation.randomwalk import random_run
from ballast.simulation.shrink import shrink_actions
from ballast.simulation.stateful import (default_profile, profile_settings,
                                         run_machine)
from ballast.verdict import CheckResult, PropertyResult, Verdict, overall

__all__ = ["BUILTIN", "EXHAUSTIVE", "SUITES", "CheckOptions", "CheckReport", "run_check"]

BUILTIN = ("random", "hypothesis")
"""Checkers that live in this package."""

SUITES = {
    "explore": "ballast.statespace.suite",
    "prove": "ballast.proofs.suite",
    "numeric": "ballast.numeric.suite",
    "validate": "ballast.validate.suite",
}
"""Checker name -> module with a ``suite_check(cfg, *, faults, seed, report_dir, budget)``."""


@dataclass(frozen=True)
class CheckOptions:
    """How hard each checker works (all in units of work), and where reports go."""

    seed: int = 0
    random_runs: int = 300
    random_steps: int = 200
    hypothesis_examples: int | None = None
    """Hypothesis runs; None: the profile's."""
    hypothesis_steps: int | None = None
    """Most steps of one Hypothesis run; None: the profile's."""
    hypothesis_profile: str | None = None
    """``ci``, ``dev`` or ``thorough`` (:data:`ballast.simulation.stateful.PROFILES`); None: ``ci``
    when the environment says ``CI=true``, else ``dev``."""
    hypothesis_db: Path | None = None
    """The Hypothesis example database; None: ``hypothesis-db`` under the report dir,
    except under CI or the ``ci`` profile, where it is off."""
    budget: WorkBudget = WorkBudget()
    """The other checkers' work, and the wall-clock limit per checker if the user set one.
    A checker that runs out of budget is inconclusive, never a pass."""
    report_dir: Path = Path("reports/out")
    checkers: tuple[str, ...] = BUILTIN + tuple(SUITES)


@dataclass
class CheckReport:
    """Everything ``ballast check`` found."""

    config: Config
    faults: tuple[str, ...]
    results: list[CheckResult] = field(default_factory=list)
    pooled: list[PropertyResult] = field(default_factory=list)
    """Scenario and action coverage pooled over all checkers (checker = "all")."""
    seconds: float = 0.0

    @property
    def verdict(self) -> Verdict:
        own = [r.verdict for c in self.results for r in c.results
               if r.kind == "invariant"]
        return overall(own + [r.verdict for r in self.pooled])

    def counterexamples(self) -> list[PropertyResult]:
        return [r for c in self.results for r in c.results if r.counterexample is not None]


Progress = Callable[[str], None]


def _confirmed(model: BalloonModel, actions: list[Action], v: Violation, checker: str,
               seed: int, report_dir: Path) -> tuple[Path, Violation]:
    """Shrink, rebuild the trace with states, replay and write it; the trace path and the
    violation as the shrunk trace shows it (what its replay says, the words reported)."""
    from ballast.reports.counterexample import write_counterexample

    small = shrink_actions(model, actions, v.property)
    s = model.init_states()[0]
    steps = []
    for n, act in enumerate(small, start=1):
        post = model.next_state(s, act)
        steps.append(TraceStep(n, act, state=post.to_dict(),
                               witnesses=tuple(model.witnessed(s, act, post))))
        last = model.step_violations(s, act, post)
        s = post
    message = last[0].message if small and last else v.message
    header = TraceHeader(model.cfg, model.faults, {"checker": checker, "seed": seed},
                         {"property": v.property, "step": len(small), "message": message})
    path = write_counterexample(Trace(header, tuple(steps)), report_dir).trace_path
    return path, Violation(v.property, message, v.form)


def _invariant_results(model: BalloonModel, checker: str, violation: Violation | None,
                       cx: Path | None, held: str, evidence: dict[str, object]
                       ) -> list[PropertyResult]:
    out = []
    for p in model.properties():
        if violation is not None and p.name == violation.property:
            out.append(PropertyResult(p.name, checker, Verdict.VIOLATION, violation.message,
                                      evidence, cx))
        else:
            out.append(PropertyResult(p.name, checker, Verdict.PASS, held, evidence))
    return out


def _coverage(model: BalloonModel, checker: str, witnessed: Iterable[str],
              fired: Iterable[str]) -> list[PropertyResult]:
    seen, done = set(witnessed), set(fired)
    out = [PropertyResult(sc.name, checker, Verdict.PASS if sc.name in seen else Verdict.VACUOUS,
                          "witnessed" if sc.name in seen else "never witnessed", kind="scenario")
           for sc in model.scenarios()]
    out += [PropertyResult(f"action:{a.name}", checker,
                           Verdict.PASS if a.name in done else Verdict.VACUOUS,
                           "fired" if a.name in done else "never fired", kind="action")
            for a in model.action_specs()]
    return out


def check_random(model: BalloonModel, opts: CheckOptions) -> CheckResult:
    """Deterministic random runs, seeds ``seed .. seed+runs-1``."""
    start = time.monotonic()
    deadline = opts.budget.deadline()
    steps = 0
    witnessed: set[str] = set()
    fired: set[str] = set()
    violation, cx, runs = None, None, 0
    complete = True
    meter = shown_progress.meter("random", total=opts.random_runs, unit="runs")
    for seed in range(opts.seed, opts.seed + opts.random_runs):
        if deadline.passed():
            complete = False
            break
        # The limit is asked before every step too: one run may be long (--random-steps).
        run = random_run(model, seed, opts.random_steps, record_states=False,
                         stop=deadline.passed)
        if run.cut_short:
            complete = False
        runs += 1
        steps += len(run.trace.steps)
        meter.update(runs, note=f"{steps:,} steps")
        witnessed |= run.witnessed
        fired |= run.fired
        if run.violation is not None:
            cx, violation = _confirmed(model, [st.action for st in run.trace.steps],
                                       run.violation, "random", seed, opts.report_dir)
            break
        if not complete:
            break
    meter.close()
    evidence: dict[str, object] = {"runs": runs, "steps": steps, "first_seed": opts.seed}
    held = f"held over {steps:,} random steps ({runs} runs)"
    results = _invariant_results(model, "random", violation, cx, held, evidence)
    if not complete and violation is None:
        why = out_of_time(f"stopped after {steps:,} steps ({runs} of {opts.random_runs} runs)",
                          opts.budget.max_seconds or 0)
        results = [PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE, why, evidence)
                   for r in results]
    results += _coverage(model, "random", witnessed, fired)
    return CheckResult("random", results, time.monotonic() - start,
                       {"steps": steps, "runs": runs})


def check_hypothesis(model: BalloonModel, opts: CheckOptions) -> CheckResult:
    """The Hypothesis state machine, seeded; a failure is shrunk by Hypothesis first."""
    start = time.monotonic()
    profile = opts.hypothesis_profile or default_profile()
    # Off unless asked for: replaying the failures an earlier run kept would make the same
    # command and seed run differently from one time to the next.
    database = opts.hypothesis_db
    examples = opts.hypothesis_examples or profile_settings(profile).max_examples
    with shown_progress.meter("hypothesis", total=examples, unit="runs") as meter:
        def ran(runs: int) -> None:
            # Hypothesis may run more than its examples (runs it discards, the replay of a
            # saved failure): the count is never shown past its total.
            meter.update(runs, total=max(examples, runs))

        out = run_machine(model, seed=opts.seed, examples=opts.hypothesis_examples,
                          steps=opts.hypothesis_steps, profile=profile, database=database,
                          on_run=ran, stop=opts.budget.deadline().passed)
    cx, violation = None, out.violation
    if out.violation is not None and out.trace is not None:
        cx, violation = _confirmed(model, [st.action for st in out.trace.steps],
                                   out.violation, "hypothesis", opts.seed, opts.report_dir)
    evidence: dict[str, object] = {
        "runs": out.runs, "steps": out.steps_run, "seed": opts.seed, "profile": profile,
        "database": str(database) if database is not None else None,
        "discarded": out.discarded, "domain_draws": out.blind}
    held = (f"held over {out.steps_run:,} Hypothesis steps ({out.runs} runs, profile "
            f"{profile}; {out.blind:,} steps with arguments drawn from the domains, "
            f"{out.discarded:,} draws the guards turned down)")
    results = _invariant_results(model, "hypothesis", violation, cx, held, evidence)
    if out.flaky:
        results = [PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE,
                                  "Hypothesis reported a flaky failure", evidence)
                   if r.verdict is Verdict.PASS else r for r in results]
    if out.cut_short and violation is None:
        why = out_of_time(f"stopped after {out.steps_run:,} steps ({out.runs} of {examples} "
                          "runs)", opts.budget.max_seconds or 0)
        results = [PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE, why, evidence)
                   for r in results]
    results += _coverage(model, "hypothesis", out.witnessed, out.fired)
    return CheckResult("hypothesis", results, time.monotonic() - start,
                       {"steps": out.steps_run, "runs": out.runs, "profile": profile,
                        "discarded": out.discarded})


def _suite(name: str, cfg: Config, faults: tuple[str, ...], opts: CheckOptions) -> CheckResult:
    module = importlib.import_module(SUITES[name])
    result: CheckResult = module.suite_check(cfg, faults=faults, seed=opts.seed,
                                             report_dir=opts.report_dir, budget=opts.budget)
    return result


EXHAUSTIVE = ("explore",)
"""Checkers whose search is complete: what such a checker never exercised is out of its
reach (unreachable in what it explores), not vacuous."""


def _reach(r: PropertyResult) -> str:
    """``exercised``, ``missed`` (in the checker's reach, not exercised) or ``beyond``."""
    if r.verdict is Verdict.PASS:
        return "exercised"
    if r.verdict is Verdict.SKIPPED or (r.verdict is Verdict.VACUOUS
                                        and r.checker in EXHAUSTIVE):
        return "beyond"
    return "missed"


def _pool(model: BalloonModel, results: list[CheckResult]) -> list[PropertyResult]:
    """Coverage over all chosen checkers, judged on what each can reach.

    An item (scenario or action) passes if some checker exercised it. It is vacuous
    only if some chosen checker could have exercised it and none did; an item that no
    chosen checker can reach (they do not run the model's steps, or an exhaustive
    search shows it unreachable in what they explore) is reported as never exercised,
    naming the checkers, but it is not a finding (skipped).
    """
    pooled = []
    chosen = [c.checker for c in results]
    for kind in ("scenario", "action"):
        names: dict[str, list[PropertyResult]] = {}
        known = ([sc.name for sc in model.scenarios()] if kind == "scenario"
                 else [f"action:{a.name}" for a in model.action_specs()])
        for name in known:
            names[name] = []
        for c in results:
            for r in c.results:
                if r.kind == kind:
                    names.setdefault(r.property, []).append(r)
        for name, rs in names.items():
            by = [r.checker for r in rs if _reach(r) == "exercised"]
            missed = [r.checker for r in rs if _reach(r) == "missed"]
            beyond = [c for c in chosen if c not in by and c not in missed]
            out_of_reach = f"out of reach of {', '.join(beyond)}" if beyond else ""
            if by:
                verdict, detail = Verdict.PASS, f"exercised by {', '.join(by)}"
            elif missed:
                verdict = Verdict.VACUOUS
                detail = f"never exercised by {', '.join(missed)}" + (
                    f"; {out_of_reach}" if beyond else "")
            else:
                verdict = Verdict.SKIPPED
                detail = f"never exercised: {out_of_reach or 'no checker ran'}"
            pooled.append(PropertyResult(name, "all", verdict, detail, kind=kind,
                                         evidence={"exercised_by": by, "missed_by": missed,
                                                   "out_of_reach_of": beyond}))
    return pooled


def run_check(cfg: Config, faults: tuple[str, ...] = (), opts: CheckOptions = CheckOptions(),
              progress: Progress | None = None) -> CheckReport:
    """Run the selected checkers on ``cfg`` (with seeded ``faults``) and pool the verdicts."""
    start = time.monotonic()
    model = BalloonModel(cfg, faults)
    report = CheckReport(cfg, faults)
    checkers = shown_progress.meter("check", total=len(opts.checkers), unit="checkers",
                                    rate=False)
    for done, name in enumerate(opts.checkers):
        checkers.update(done, note=f"running {name}")
        if progress is not None:
            progress(name)
        if name == "random":
            report.results.append(check_random(model, opts))
        elif name == "hypothesis":
            report.results.append(check_hypothesis(model, opts))
        else:
            report.results.append(_suite(name, cfg, faults, opts))
    # Counted before each checker starts (to name it): the last one is counted here, so
    # the final line says every checker finished, not that the last is still running.
    checkers.update(len(opts.checkers), note="")
    checkers.close()
    report.pooled = _pool(model, report.results)
    report.seconds = time.monotonic() - start
    return report
