"""``suite_check`` for ``ballast check`` at a tiny size."""

from __future__ import annotations

from ballast.budget import WorkBudget
from ballast.model.config import preset
from ballast.numeric.scale import scaled
from ballast.numeric.suite import SuiteSize, suite_check
from ballast.numeric.workload import drawn_actions
from ballast.verdict import Verdict

TINY = SuiteSize(vms=8, pages=32, seeds=2, batches=40)


def _invariants(r):
    return [x for x in r.results if x.kind == "invariant"]


def test_passes_on_the_model(tmp_path):
    r = suite_check(preset("default"), report_dir=tmp_path, size=TINY)
    assert r.verdict is Verdict.PASS
    assert {x.property for x in r.results} >= {"memory_conservation", "isolation"}
    assert all(x.evidence["ops"] > 0 for x in _invariants(r))


def test_reports_which_drawn_actions_took_effect(tmp_path):
    """``ballast check`` pools these with the other checkers': an action the numeric core
    never fired counts as missed by it, one it does not draw as out of its reach."""
    r = suite_check(preset("default"), report_dir=tmp_path, size=TINY)
    actions = {x.property: x for x in r.results if x.kind == "action"}
    seen = r.stats["actions"]
    assert actions and set(actions) == {f"action:{n}" for n in drawn_actions(
        scaled(preset("default"), vms=TINY.vms, pages=TINY.pages))}
    for name, x in actions.items():
        fired = seen.get(name.removeprefix("action:"), 0) > 0
        assert x.verdict is (Verdict.PASS if fired else Verdict.VACUOUS), (name, x.detail)
    assert actions["action:guest_read"].verdict is Verdict.PASS
    assert any(x.verdict is Verdict.VACUOUS for x in actions.values())  # 2 x 40 batches


def test_fault_gives_a_confirmed_violation(tmp_path):
    size = SuiteSize(vms=8, pages=32, seeds=6, batches=300)
    r = suite_check(preset("default"), faults=("free_without_scrub",), report_dir=tmp_path,
                    size=size)
    assert r.verdict is Verdict.VIOLATION
    bad = [x for x in r.results if x.verdict is Verdict.VIOLATION]
    assert bad[0].property == "isolation" and bad[0].counterexample.exists()
    assert r.stats["fault_seeds"]["free_without_scrub"] == 1  # the seed that caught it


def test_a_fault_no_seed_exercised_is_inconclusive_naming_it(tmp_path):
    """``vmm_accepts_flood`` differs from the model only for a report on full queues, which
    two short seeds never reach: the property it is there to break is inconclusive and
    says why, not a pass; the others held."""
    r = suite_check(preset("default"), faults=("vmm_accepts_flood",), report_dir=tmp_path,
                    size=TINY)
    assert r.verdict is Verdict.INCONCLUSIVE and r.stats["fault_seeds"] == {
        "vmm_accepts_flood": 0}
    flood = next(x for x in r.results if x.property == "vmm_refuses_report_floods")
    assert flood.verdict is Verdict.INCONCLUSIVE
    assert flood.detail == ("the seeded fault vmm_accepts_flood was never exercised: its "
                            "rogue_report never did otherwise than the model's in 80 "
                            "batches (2 seeds), so no run could catch it; raise "
                            "--numeric-seeds or --numeric-batches")
    assert all(x.verdict is Verdict.PASS for x in _invariants(r) if x is not flood)


def test_wall_clock_stop_is_inconclusive_and_says_so(tmp_path):
    r = suite_check(preset("default"), report_dir=tmp_path, size=TINY,
                    budget=WorkBudget(max_seconds=0.0))
    assert r.verdict is Verdict.INCONCLUSIVE
    assert all("wall-clock limit of 0 s reached (--max-seconds)" in x.detail
               for x in _invariants(r))


def test_the_work_budget_sets_seeds_and_batches(tmp_path):
    small = WorkBudget(numeric_seeds=2, numeric_batches=5)
    r = suite_check(preset("core"), report_dir=tmp_path, budget=small)
    assert r.verdict is Verdict.PASS
    ev = r.results[0].evidence
    assert ev["seeds"] == 2 and ev["batches"] == 10 and ev["vms"] == 1024


def _replayed(path):
    """What ``ballast replay`` says of the trace at ``path``: (step, action, VM, the
    properties its failing step breaks with the model's messages)."""
    from ballast.model.replay import ReplayOutcome, replay
    from ballast.model.trace import read_trace
    result = replay(read_trace(path))
    assert result.outcome is ReplayOutcome.VIOLATION
    return (result.step, str(result.action), result.action.kwargs.get("vm"),
            {v.property: v.message for v in result.violations})


def test_a_violation_is_worded_as_its_trace_replays(tmp_path):
    """The big run finds the fault on some VM of 64 (VM 8 with seed 1); the trace written is
    shrunk onto VM 0 and another step: the line reported, its property and its figures are
    the trace's, as ``ballast replay`` shows them; the big run's find comes after, as such."""
    size = SuiteSize(vms=64, pages=64, seeds=2, batches=100)
    r = suite_check(preset("default"), faults=("oom_deflate_without_report",),
                    report_dir=tmp_path, size=size)
    [bad] = [x for x in r.results if x.verdict is Verdict.VIOLATION]
    step, action, vm, broken = _replayed(bad.counterexample)
    assert bad.property in broken
    line = f"step {step} ({action}) breaks {bad.property}: {broken[bad.property]}"
    assert bad.detail.startswith(line + "; found by seed "), (bad.detail, line)
    assert f"vm={vm}" in action and bad.evidence["trace"]["vm"] == vm
    assert bad.evidence["trace"]["step"] == step == bad.evidence["shrunk_steps"]
    found = bad.evidence["found"]["message"]
    assert found != broken[bad.property]  # the big run's VM and pages: not the trace's
    assert bad.detail.endswith(f'as "{found}", shrunk to {step} steps')
