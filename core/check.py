"""``ballast check``: run every checker and gather one verdict per property.

The built-in checkers are the deterministic random runs (:mod:`ballast.randomwalk`)
and the Hypothesis state machine (:mod:`ballast.stateful`); the exploration,
proof, numeric and trace-validation suites plug in through their
``suite_check`` functions. A counterexample is shrunk, replayed through the
reference model and written under the report directory before it is
reported. Every checker's work is counted (runs, steps, states, Z3 resource
units, batches; see :mod:`ballast.budget`), so the same options and seed give
the same verdicts and figures on any machine; wall-clock time limits a checker
only when ``max_seconds`` is set. Scenarios ("sometimes" properties) and action
coverage are pooled over all checkers: one that no checker exercised is
reported as vacuous.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ballast.budget import WorkBudget, out_of_time
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.randomwalk import random_run
from ballast.shrink import shrink_actions
from ballast.stateful import run_machine
from ballast.verdict import CheckResult, PropertyResult, Verdict, overall

__all__ = ["BUILTIN", "SUITES", "CheckOptions", "CheckReport", "run_check"]

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
    hypothesis_examples: int = 150
    hypothesis_steps: int = 60
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
               seed: int, report_dir: Path) -> Path:
    """Shrink, rebuild the trace with states, replay and write it; the trace path."""
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
    return write_counterexample(Trace(header, tuple(steps)), report_dir).trace_path


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
    for seed in range(opts.seed, opts.seed + opts.random_runs):
        if deadline.passed():
            complete = False
            break
        run = random_run(model, seed, opts.random_steps, record_states=False)
        runs += 1
        steps += len(run.trace.steps)
        witnessed |= run.witnessed
        fired |= run.fired
        if run.violation is not None:
            violation = run.violation
            cx = _confirmed(model, [st.action for st in run.trace.steps], violation, "random",
                            seed, opts.report_dir)
            break
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
    out = run_machine(model, seed=opts.seed, examples=opts.hypothesis_examples,
                      steps=opts.hypothesis_steps)
    cx = None
    if out.violation is not None and out.trace is not None:
        cx = _confirmed(model, [st.action for st in out.trace.steps], out.violation,
                        "hypothesis", opts.seed, opts.report_dir)
    evidence: dict[str, object] = {"runs": out.runs, "steps": out.steps_run, "seed": opts.seed}
    held = f"held over {out.steps_run:,} Hypothesis steps ({out.runs} runs)"
    results = _invariant_results(model, "hypothesis", out.violation, cx, held, evidence)
    if out.flaky:
        results = [PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE,
                                  "Hypothesis reported a flaky failure", evidence)
                   if r.verdict is Verdict.PASS else r for r in results]
    results += _coverage(model, "hypothesis", out.witnessed, out.fired)
    return CheckResult("hypothesis", results, time.monotonic() - start,
                       {"steps": out.steps_run, "runs": out.runs})


def _suite(name: str, cfg: Config, faults: tuple[str, ...], opts: CheckOptions) -> CheckResult:
    module = importlib.import_module(SUITES[name])
    result: CheckResult = module.suite_check(cfg, faults=faults, seed=opts.seed,
                                             report_dir=opts.report_dir, budget=opts.budget)
    return result


def _pool(model: BalloonModel, results: list[CheckResult]) -> list[PropertyResult]:
    pooled = []
    for kind in ("scenario", "action"):
        names: dict[str, list[PropertyResult]] = {}
        for c in results:
            for r in c.results:
                if r.kind == kind:
                    names.setdefault(r.property, []).append(r)
        for name, rs in names.items():
            by = [r.checker for r in rs if r.verdict is Verdict.PASS]
            verdict = Verdict.PASS if by else Verdict.VACUOUS
            detail = f"exercised by {', '.join(by)}" if by else "no checker exercised it"
            pooled.append(PropertyResult(name, "all", verdict, detail, kind=kind))
    return pooled


def run_check(cfg: Config, faults: tuple[str, ...] = (), opts: CheckOptions = CheckOptions(),
              progress: Progress | None = None) -> CheckReport:
    """Run the selected checkers on ``cfg`` (with seeded ``faults``) and pool the verdicts."""
    start = time.monotonic()
    model = BalloonModel(cfg, faults)
    report = CheckReport(cfg, faults)
    for name in opts.checkers:
        if progress is not None:
            progress(name)
        if name == "random":
            report.results.append(check_random(model, opts))
        elif name == "hypothesis":
            report.results.append(check_hypothesis(model, opts))
        else:
            report.results.append(_suite(name, cfg, faults, opts))
    report.pooled = _pool(model, report.results)
    report.seconds = time.monotonic() - start
    return report
