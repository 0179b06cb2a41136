"""One exhaustive check of a configuration, as verdicts: what ``ballast explore`` and
``ballast check`` run.

It explores, writes the shortest counterexample of every broken property (each
replayed through the reference model first), reports deadlocks, the actions
that never fire and the scenarios never witnessed (vacuity), and, when asked,
checks liveness on the full graph under a named fairness choice (``weak`` or
``strong-accept``, see :mod:`ballast.statespace.liveness`), which every liveness
verdict states in its detail and evidence, and the model's properties over runs
(``host_recovers_to_target``: skipped, naming why, where the configuration cannot meet
its assumption). A budget that runs out makes every
property that did not break *inconclusive*, with the number of states explored and
the flag that raises the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ballast.model.config import Config
from ballast.model.system import BalloonModel
from ballast.verdict import CheckResult, PropertyResult, Verdict
from ballast.statespace.deadlock import DEADLOCK
from ballast.statespace.explore import Budget, Exploration, explore
from ballast.statespace.frontier import explore_frontier
from ballast.statespace.graph import state_graph, write_dot, write_graphml
from ballast.statespace.liveness import (
    CAN_REACH,
    FAIRNESS_TEXTS,
    REACHES,
    WEAK,
    SKIPPED,
    VACUOUS,
    check_fairness,
    check_liveness,
    check_reach_properties,
)
from ballast.model.recovery import REACH_PROPERTIES
from ballast.statespace.symmetry import liveness_warning
from ballast.statespace.traces import write_finding, write_liveness

__all__ = ["CHECKER", "ENGINES", "LIVENESS_KIND", "ExploreRun", "choose_engine", "run_explore",
           "unchecked_liveness"]

CHECKER = "explore"

LIVENESS_KIND = "invariant"
"""Liveness results count like invariants in every verdict (their evidence says
``"form": "liveness"``); only scenarios and actions are coverage."""


ENGINES = ("frontier", "reference")
"""The exploration engines: the frontier explorer (:mod:`ballast.statespace.frontier`, the
default where the options allow it) and the object-based reference
(:mod:`ballast.statespace.explore`), which it is judged by: the same results, shown by
``tests/statespace/test_frontier.py``; ``benchmarks/bench_explore.py`` times both."""


def choose_engine(requested: str | None, *, liveness: bool = False,
                  graph: bool = False, cache: bool = True,
                  spill: bool = False) -> tuple[str, str]:
    """(engine, why) for a run: the one asked for, else the frontier engine where the
    options allow it, with symmetry or without (the faster: ``benchmarks/bench_explore.py``),
    liveness and the state graph (--dot, --graphml) included: it keeps the reference's graph,
    state for state and edge for edge (``tests/statespace/test_liveness.py``).

    >>> choose_engine(None)
    ('frontier', 'the default engine')
    >>> choose_engine("reference")
    ('reference', 'asked for')
    >>> choose_engine("frontier", liveness=True)[0]
    'frontier'
    >>> choose_engine(None, spill=True)
    ('frontier', 'a memory budget (--memory-budget) spills to disk on the frontier engine')
    """
    from ballast.errors import UsageError
    if requested is not None:
        if requested not in ENGINES:
            raise UsageError(f"unknown engine {requested!r}; expected one of {', '.join(ENGINES)}")
        if requested == "reference":
            if spill:
                raise UsageError("--memory-budget is an option of the frontier engine")
            return requested, "asked for"
    if spill:
        if liveness or graph or not cache:
            raise UsageError("--memory-budget spills on the frontier engine, which does not "
                             "run --liveness, --dot, --graphml or --no-cache")
        return "frontier", "a memory budget (--memory-budget) spills to disk on the frontier engine"
    if not cache:
        return "reference", "--no-cache is an option of the reference engine"
    if requested == "frontier":
        return "frontier", "asked for"
    return "frontier", "the default engine"


@dataclass
class ExploreRun:
    """The verdicts of one run and the explorations behind them."""

    result: CheckResult
    exploration: Exploration
    liveness_exploration: Exploration | None = None
    warnings: list[str] = field(default_factory=list)
    engine: str = "reference"
    engine_reason: str = ""


def _figures(ex: Exploration) -> dict[str, object]:
    spilled = getattr(ex, "spilled_bytes", 0)
    return {**({"spilled_bytes": spilled} if spilled else {}),
            "states": ex.states, "transitions": ex.transitions, "depth": ex.max_depth,
            "seconds": round(ex.seconds, 3), "symmetry": ex.symmetry,
            "complete": ex.complete, "stop": ex.stop_reason, "complete_depth": ex.complete_depth,
            "bytes_per_state": round(ex.bytes_estimate() / max(1, ex.states), 1),
            "cache": {"part_hits": ex.cache_hits, "part_misses": ex.cache_misses,
                      "steps_recomputed": ex.recomputed}}


_STOPS = {"max_states": "the state budget ran out; raise with --max-states",
          "max_bytes": "the memory budget ran out; raise with --max-mib",
          "max_seconds": "the wall-clock limit (--max-seconds) was reached"}
"""Why an exploration stopped early, and which flag raises that budget."""


def _coverage(ex: Exploration) -> str:
    how = ("every reachable state" if ex.complete else
           f"{ex.states} states (all within {ex.complete_depth} steps) before "
           f"{_STOPS.get(ex.stop_reason, ex.stop_reason)}")
    sym = " (symmetry classes)" if ex.symmetry else ""
    spilled = getattr(ex, "spilled_bytes", 0)
    disk = f"; {spilled / 2**20:.1f} MiB spilled to disk" if spilled else ""
    return f"{how}{sym}: {ex.states} states, {ex.transitions} transitions{disk}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def _safety_exploration(model: BalloonModel, *, symmetry: bool, budget: Budget,
                        liveness: bool, want_graph: bool, stop_on: bool | Sequence[str],
                        progress: Callable[[Exploration], None] | None, cache: bool,
                        engine: str | None, client: Any, memory_budget: int | None
                        ) -> tuple[Exploration, bool, str, str]:
    """The safety exploration on the engine chosen for it: (exploration, whether it also
    serves liveness and the graph, the engine, why that engine)."""
    # Liveness needs every state and edge without symmetry. When that is the exploration
    # asked for anyway, keep its edges instead of exploring twice, unless it may stop at a
    # violation or edges would eat into a memory budget the safety check should not lose.
    one_pass = not symmetry and (want_graph or (
        liveness and not stop_on and budget.max_bytes is None))
    chosen, why = choose_engine(engine, liveness=liveness,
                                graph=want_graph, cache=cache,
                                spill=memory_budget is not None and client is None)
    if client is not None:
        if liveness or want_graph or stop_on or engine == "frontier" or memory_budget:
            from ballast.errors import UsageError
            raise UsageError("a partitioned exploration (--scheduler) checks safety, deadlocks "
                             "and coverage on the reference engine; liveness, --dot, --graphml, "
                             "--stop-at-first, --memory-budget and --engine frontier run on one "
                             "machine")
        from ballast.statespace.partitioned import explore_partitioned
        parted = explore_partitioned(model, client, symmetry=symmetry, budget=budget,
                                     cache=cache, progress=progress)
        return parted, False, "partitioned", (f"the reference engine's search, partitioned "
                                              f"by state hash over {parted.partitions} Dask "
                                              f"workers")
    if chosen == "frontier":
        fx = explore_frontier(model, symmetry=symmetry, budget=budget, keep_edges=one_pass,
                              stop_on=stop_on, progress=progress, memory_budget=memory_budget)
        if fx.model_actions:
            why += (f"; the model's own step for {', '.join(fx.model_actions)} (no kernel on "
                    "the rows for them here)")
        return fx, one_pass, chosen, why
    ex = explore(model, symmetry=symmetry, budget=budget, keep_edges=one_pass,
                 stop_on=stop_on, progress=progress, cache=cache)
    return ex, one_pass, chosen, why


def _safety_results(model: BalloonModel, ex: Exploration, fig: dict[str, object],
                    report_dir: Path, tag: str) -> list[PropertyResult]:
    """The verdicts of the model's properties and of deadlock freedom, with their traces."""
    results: list[PropertyResult] = []
    for prop in model.properties():
        found = ex.violations.get(prop.name)
        if found is not None:
            path = write_finding(ex, found, report_dir, _slug(f"explore-{prop.name}-{tag}"))
            results.append(PropertyResult(
                prop.name, CHECKER, Verdict.VIOLATION,
                f"shortest trace: {found.steps(ex)} steps: {found.message}",
                {**fig, "trace_steps": found.steps(ex)}, path))
        elif ex.complete:
            results.append(PropertyResult(prop.name, CHECKER, Verdict.PASS,
                                          f"held in {_coverage(ex)}", fig))
        else:
            results.append(PropertyResult(prop.name, CHECKER, Verdict.INCONCLUSIVE,
                                          f"held in {_coverage(ex)}", fig))
    if ex.deadlock is not None:
        path = write_finding(ex, ex.deadlock, report_dir, _slug(f"explore-{DEADLOCK}-{tag}"))
        results.append(PropertyResult(
            DEADLOCK, CHECKER, Verdict.VIOLATION,
            f"{ex.deadlocks} stalled state(s); shortest trace {ex.deadlock.steps(ex)} steps: "
            f"{ex.deadlock.message}", {**fig, "deadlocks": ex.deadlocks}, path))
    else:
        results.append(PropertyResult(
            DEADLOCK, CHECKER, Verdict.PASS if ex.complete else Verdict.INCONCLUSIVE,
            f"no stalled balloon protocol in {_coverage(ex)}", fig))
    return results


def _coverage_results(model: BalloonModel, ex: Exploration,
                      fig: dict[str, object]) -> list[PropertyResult]:
    """The verdicts of coverage: every action fires, every scenario is witnessed."""
    results: list[PropertyResult] = []
    for spec in model.action_specs():
        n = ex.fired.get(spec.name, 0)
        verdict = (Verdict.PASS if n else Verdict.VACUOUS if ex.complete
                   else Verdict.INCONCLUSIVE)
        results.append(PropertyResult(f"action:{spec.name}", CHECKER, verdict,
                                      f"fired on {n} transitions" if n else "never fires",
                                      {"transitions": n}, kind="action"))
    for sc in model.scenarios():
        seen = sc.name in ex.witnessed
        verdict = (Verdict.PASS if seen else Verdict.VACUOUS if ex.complete
                   else Verdict.INCONCLUSIVE)
        results.append(PropertyResult(sc.name, CHECKER, verdict,
                                      "witnessed" if seen
                                      else f"never witnessed in {_coverage(ex)}",
                                      fig, kind="scenario"))
    return results


def _graph_exploration(model: BalloonModel, ex: Exploration, *, one_pass: bool, chosen: str,
                       budget: Budget, progress: Callable[[Exploration], None] | None,
                       cache: bool) -> Exploration:
    """The exploration without symmetry, every edge kept, that liveness and the graph read."""
    # The graph comes from the engine that ran (the partitioned search keeps none: its
    # options exclude liveness and the graph); one without symmetry, second where the
    # safety search was reduced or may have stopped early.
    if one_pass:
        return ex
    if chosen == "frontier":
        return explore_frontier(model, symmetry=False, budget=budget, keep_edges=True,
                                progress=progress)
    return explore(model, symmetry=False, budget=budget, keep_edges=True,
                   progress=progress, cache=cache)


def _write_graph(live_ex: Exploration, dot: Path | None, graphml: Path | None) -> None:
    """Write the state graph of ``live_ex`` to the files asked for."""
    g = state_graph(live_ex)
    if dot is not None:
        write_dot(g, dot)
    if graphml is not None:
        write_graphml(g, graphml)


def _fairness_results(live_ex: Exploration, fairness: str, report_dir: Path,
                      tag: str) -> list[PropertyResult]:
    """The verdicts of the liveness properties under the fairness choice ``fairness``."""
    results: list[PropertyResult] = []
    for lr in check_liveness(live_ex, fairness):
        lfig = {**_figures(live_ex), "fairness": FAIRNESS_TEXTS[fairness],
                "fairness_choice": fairness, "form": "liveness"}
        if lr.holds:
            results.append(PropertyResult(lr.property, CHECKER, Verdict.PASS, lr.detail,
                                          lfig, kind=LIVENESS_KIND))
        else:
            path = write_liveness(live_ex, lr, report_dir,
                                  _slug(f"explore-{lr.property}-{tag}"))
            lfig = {**lfig, "prefix_steps": len(lr.prefix), "cycle_steps": len(lr.cycle)}
            results.append(PropertyResult(lr.property, CHECKER, Verdict.VIOLATION,
                                          lr.detail, lfig, path, kind=LIVENESS_KIND))
    return results


def _reach_results(live_ex: Exploration, report_dir: Path, tag: str) -> list[PropertyResult]:
    """The verdicts of the model's properties over runs that the configuration has."""
    results: list[PropertyResult] = []
    for lr in check_reach_properties(live_ex):
        rfig = {**_figures(live_ex), "form": "liveness",
                "assumes": REACH_PROPERTIES[lr.property].assumes}
        if not lr.holds:
            path = write_liveness(live_ex, lr, report_dir,
                                  _slug(f"explore-{lr.property}-{tag}"))
            results.append(PropertyResult(
                lr.property, CHECKER, Verdict.VIOLATION, lr.detail,
                {**rfig, "prefix_steps": len(lr.prefix)}, path, kind=LIVENESS_KIND))
        else:
            verdict = {SKIPPED: Verdict.SKIPPED, VACUOUS: Verdict.VACUOUS}.get(
                lr.outcome, Verdict.PASS)
            results.append(PropertyResult(lr.property, CHECKER, verdict, lr.detail,
                                          rfig, kind=LIVENESS_KIND))
    return results


def unchecked_liveness(cfg: Config, fairness: str, why: str,
                       figures: dict[str, Any]) -> list[PropertyResult]:
    """Inconclusive verdicts of every property over runs that ``cfg`` has (the balloon's
    liveness and the reach properties of its features), not checked for reason ``why``:
    a property that was not checked is reported as such, never left out."""
    reach = [p.name for p in REACH_PROPERTIES.values() if p.feature(cfg)]
    return [PropertyResult(name, CHECKER, Verdict.INCONCLUSIVE, f"not checked: {why}",
                           {**figures, "form": "liveness",
                            "fairness": FAIRNESS_TEXTS[fairness],
                            "fairness_choice": fairness},
                           kind=LIVENESS_KIND)
            for name in (CAN_REACH, REACHES, *reach)]


def run_explore(cfg: Config, *, faults: Sequence[str] = (), symmetry: bool = True,
                budget: Budget = Budget(), liveness: bool = False, report_dir: Path,
                dot: Path | None = None, graphml: Path | None = None,
                stop_on: bool | Sequence[str] = False,
                progress: Callable[[Exploration], None] | None = None,
                fairness: str = WEAK, cache: bool = True,
                engine: str | None = None, client: Any = None,
                memory_budget: int | None = None) -> ExploreRun:
    """Explore ``cfg`` (with seeded ``faults``) and turn the findings into verdicts;
    with ``liveness``, ``balloon_eventually_at_target`` assumes the fairness choice
    ``fairness``. ``cache=False`` takes every step straight from the model (slower;
    the same results, for when the transition cache itself is in doubt). ``engine``: see
    :func:`choose_engine`; the safety exploration runs on it, liveness and the state graph
    on the reference engine. ``client``: a Dask client; the exploration is partitioned
    across its workers (:mod:`ballast.statespace.partitioned`: the reference engine's
    results, without liveness, the state graph or stopping at the first violation).
    ``memory_budget`` (bytes): the frontier engine's budget beyond which visited keys and
    states spill to disk."""
    check_fairness(fairness)
    model = BalloonModel(cfg, faults)
    want_graph = dot is not None or graphml is not None
    warnings: list[str] = []
    if liveness and symmetry:
        warnings.append(liveness_warning(True) or "")
    ex, one_pass, chosen, why = _safety_exploration(
        model, symmetry=symmetry, budget=budget, liveness=liveness, want_graph=want_graph,
        stop_on=stop_on, progress=progress, cache=cache, engine=engine, client=client,
        memory_budget=memory_budget)
    fig = _figures(ex)
    fig["engine"] = chosen
    fig["engine_reason"] = why
    tag = "-".join(faults) or "model"
    results = _safety_results(model, ex, fig, report_dir, tag)
    results += _coverage_results(model, ex, fig)
    live_ex: Exploration | None = None
    if liveness or want_graph:
        live_ex = _graph_exploration(model, ex, one_pass=one_pass, chosen=chosen,
                                     budget=budget, progress=progress, cache=cache)
    if want_graph and live_ex is not None:
        _write_graph(live_ex, dot, graphml)
    if liveness and live_ex is not None:
        if live_ex.complete and not live_ex.violations:
            results += _fairness_results(live_ex, fairness, report_dir, tag)
            results += _reach_results(live_ex, report_dir, tag)
        else:
            unchecked = ("a safety property is broken" if live_ex.violations
                         else f"the full exploration stopped ({live_ex.stop_reason})")
            results += unchecked_liveness(cfg, fairness, unchecked, _figures(live_ex))
    seconds = ex.seconds + (live_ex.seconds if live_ex is not None and live_ex is not ex else 0.0)
    check = CheckResult(CHECKER, results, seconds, stats=fig)
    return ExploreRun(check, ex, live_ex, [w for w in warnings if w], chosen, why)
