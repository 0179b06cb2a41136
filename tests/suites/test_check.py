"""Pooling of verdicts and coverage in ``ballast check``."""

from pathlib import Path

import pytest

from ballast.suites.check import CheckOptions, _pool, run_check
from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.verdict import CheckResult, PropertyResult, Verdict, overall


def test_vacuous_scenarios_make_the_check_inconclusive(tmp_path: Path) -> None:
    # Two steps per run cannot reach a balloon target: the scenario is vacuous.
    opts = CheckOptions(checkers=("random",), random_runs=3, random_steps=2,
                        report_dir=tmp_path)
    report = run_check(preset("default"), (), opts)
    vac = [r.property for r in report.pooled if r.verdict is Verdict.VACUOUS]
    assert "balloon_reaches_target" in vac
    assert report.verdict is Verdict.INCONCLUSIVE


def test_full_coverage_on_the_default_configuration(tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("random",), report_dir=tmp_path)
    report = run_check(preset("default"), (), opts)
    assert [r.property for r in report.pooled if r.verdict is not Verdict.PASS] == []
    assert report.verdict is Verdict.PASS


def test_seeded_fault_gives_a_shrunk_counterexample(tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("random",), report_dir=tmp_path)
    cfg = preset("default").replace(host_page_units=2)
    report = run_check(cfg, ("host_takes_partial_page",), opts)
    assert report.verdict is Verdict.VIOLATION
    [cx] = report.counterexamples()
    assert cx.property == "memory_conservation"
    assert cx.counterexample is not None
    assert len(cx.counterexample.read_text().splitlines()) <= 8  # header + a few steps


def _row(name: str, checker: str, verdict: Verdict, kind: str = "scenario") -> PropertyResult:
    return PropertyResult(name, checker, verdict, kind=kind)


def test_vacuity_is_judged_on_what_each_checker_can_reach() -> None:
    model = BalloonModel(preset("core"))
    names = [sc.name for sc in model.scenarios()]
    first, second = names[0], names[1]
    results = [
        # random could reach every scenario: it saw the first only
        CheckResult("random", [_row(first, "random", Verdict.PASS)]
                    + [_row(n, "random", Verdict.VACUOUS) for n in names[1:]]),
        # the explorer's complete search shows the second unreachable in its slices
        CheckResult("explore", [_row(second, "explore", Verdict.VACUOUS)]),
        # proofs run no steps: every scenario is out of their reach
        CheckResult("prove", []),
    ]
    pooled = {r.property: r for r in _pool(model, results) if r.kind == "scenario"}
    assert pooled[first].verdict is Verdict.PASS
    assert pooled[first].detail == "exercised by random"
    assert pooled[second].verdict is Verdict.VACUOUS
    assert pooled[second].detail == "never exercised by random; out of reach of explore, prove"


def test_a_scenario_no_chosen_checker_can_reach_is_reported_but_not_vacuous() -> None:
    model = BalloonModel(preset("core"))
    name = model.scenarios()[0].name
    results = [CheckResult("prove", []),
               CheckResult("explore", [_row(name, "explore", Verdict.VACUOUS)])]
    pooled = {r.property: r for r in _pool(model, results)}
    assert pooled[name].verdict is Verdict.SKIPPED
    assert pooled[name].detail == "never exercised: out of reach of prove, explore"
    # every scenario and action of the model is listed, exercised or not
    assert set(pooled) == {sc.name for sc in model.scenarios()} | {
        f"action:{a.name}" for a in model.action_specs()}
    assert overall(r.verdict for r in pooled.values()) is Verdict.PASS


@pytest.mark.parametrize("profile", ["ci", "dev"])
def test_the_hypothesis_checker_names_its_profile_and_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str) -> None:
    # No example database unless asked for, in CI or not: a failure kept by one run and
    # replayed first by the next made the same command and seed run differently.
    monkeypatch.delenv("CI", raising=False)
    opts = CheckOptions(checkers=("hypothesis",), report_dir=tmp_path,
                        hypothesis_profile=profile, hypothesis_examples=10)
    report = run_check(preset("core"), (), opts)
    [hyp] = report.results
    held = next(r for r in hyp.results if r.kind == "invariant")
    assert held.verdict is Verdict.PASS
    assert held.evidence["profile"] == profile and held.evidence["database"] is None
    assert not list(tmp_path.rglob("*hypothesis*"))
    # Every pooled item names who exercised it, or who could and did not.
    for r in report.pooled:
        assert r.detail.startswith(("exercised by hypothesis", "never exercised by hypothesis"))


def test_the_hypothesis_progress_never_counts_past_its_total(tmp_path: Path) -> None:
    """Hypothesis may run more than its examples: the line read 118/100 runs."""
    import io
    import re

    from ballast.progress import shown

    stream = io.StringIO()
    opts = CheckOptions(checkers=("hypothesis",), report_dir=tmp_path,
                        hypothesis_profile="ci", hypothesis_examples=10)
    with shown(stream=stream, every=1e-9):
        report = run_check(preset("core"), (), opts)
    runs = report.results[0].stats["runs"]
    counts = [(int(a), int(b)) for a, b in
              re.findall(r"hypothesis: (\d+)/(\d+) runs", stream.getvalue())]
    assert counts and all(done <= total for done, total in counts), counts
    assert counts[-1] == (runs, max(10, runs))


def test_the_checkers_progress_ends_with_every_checker_counted(tmp_path: Path) -> None:
    """A checker was counted before it ran: the last line said 'check: 0/1 checkers
    (running hypothesis)' after the checker had finished."""
    import io

    from ballast.progress import shown

    stream = io.StringIO()
    opts = CheckOptions(checkers=("random", "hypothesis"), random_runs=2, random_steps=5,
                        report_dir=tmp_path, hypothesis_profile="ci", hypothesis_examples=2)
    with shown(stream=stream, every=1e-9):
        run_check(preset("core"), (), opts)
    lines = [line for line in stream.getvalue().splitlines() if "check: " in line]
    assert any("check: 1/2 checkers (running hypothesis)" in line for line in lines), lines
    assert lines[-1].endswith("done: check: 2/2 checkers"), lines


FOREIGN_SETS = [arg for key, value in (
    ("vms", 2), ("guest_pages", 2), ("guest_data_pages", 1), ("guest_disk_slots", 1),
    ("machine_pages", 4), ("host_swap_slots", 1), ("tokens", 1), ("batch", 1))
    for arg in ("--set", f"{key}={value}")]
"""Two small VMs of two PPNs, as the proof tests refute the fault on."""


def test_every_output_words_a_violation_as_its_trace_replays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ballast check``: the numeric checker (1,024 VMs, then shrunk) and the prove checker
    (a counterexample to induction, then a bounded search) each report a violation whose
    line, in every output, is what ``ballast replay`` prints of the trace it links: the
    failing step, its action and VM, the property and the model's message."""
    import json
    import xml.etree.ElementTree as ET

    from ballast.cli import main
    out = {name: tmp_path / name for name in ("check.json", "junit.xml", "check.sarif",
                                               "summary.md")}
    code = main(["check", "--preset", "core", *FOREIGN_SETS, "--fault",
                 "vmm_maps_foreign_host_page", "--checkers", "numeric,prove",
                 "--numeric-seeds", "1", "--numeric-batches", "100",
                 "--report-dir", str(tmp_path / "out"), "--json", str(out["check.json"]),
                 "--junit", str(out["junit.xml"]), "--sarif", str(out["check.sarif"]),
                 "--summary-md", str(out["summary.md"])])
    terminal = capsys.readouterr().out
    assert code == 1
    results = [r for c in json.loads(out["check.json"].read_text())["checkers"]
               for r in c["results"] if r["verdict"] == "violation"]
    assert {r["checker"] for r in results} == {"numeric", "prove"}
    junit = [f.get("message", "") for f in ET.parse(out["junit.xml"]).iter("failure")]
    sarif = [x["message"]["text"] for x in json.loads(out["check.sarif"].read_text())
             ["runs"][0]["results"] if x["kind"] == "fail"]
    summary = out["summary.md"].read_text()
    for r in results:
        assert main(["replay", r["counterexample"]]) == 1
        replayed = capsys.readouterr().out.splitlines()[0].split(": violation: ", 1)[1]
        assert replayed.split(" breaks ", 1)[1].startswith(r["property"] + ": ")
        assert r["detail"].startswith(replayed + "; "), (r["checker"], r["detail"], replayed)
        assert f"VIOLATION {r['property']} ({r['checker']}): {replayed}; " in terminal
        assert any(m.startswith(f"{r['property']} violated: {replayed}; ") for m in junit)
        assert any(t.startswith(f"{r['property']} violated ({r['checker']}): {replayed}; ")
                   for t in sarif)
        assert f"({r['checker']}): violated -- {replayed}; " in summary
