"""``ballast explore`` and the ``ballast check`` suite entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ballast.budget import WorkBudget
from ballast.cli import main
from ballast.model.config import preset
from ballast.model.trace import read_trace
from ballast.verdict import Verdict
from ballast.statespace.suite import feature_slices, suite_check


def test_explore_passes_a_small_preset_except_for_vacuity(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", "xen", "--small", "--json",
                 "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    invariants = [r for r in out["results"] if r["kind"] == "invariant"]
    assert invariants and all(r["verdict"] == "pass" for r in invariants)
    assert out["stats"]["complete"] is True
    vacuous = [r for r in out["results"] if r["verdict"] == "vacuous"]
    assert vacuous and code == 0  # coverage is reported, not a failure of the properties
    assert list(tmp_path.iterdir()) == []
    assert main(["explore", "--preset", "xen", "--small", "--strict-coverage",
                 "--report-dir", str(tmp_path)]) == 3
    capsys.readouterr()
    # In words: what the complete search never met is unreachable here, not a vacuous
    # check (which would be exit 3).
    assert main(["explore", "--preset", "xen", "--small",
                 "--report-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for r in vacuous:
        assert re.search(rf"^unreachable +{r['kind']} .*{r['property']}", text, re.M), text
    assert not re.search(r"^vacuous", text, re.M)


SMALL_PRESET_STATES = {"hugepages": 3_208, "guest-system": 19_136, "large-units": 99_044,
                       "hibernation": 9_396}
"""Distinct states (symmetry classes) of ``explore --preset P --small`` on presets of two
VMs, which get one page each, and on two of one VM: every one finishes."""

SLOW_SMALL_PRESETS = {"large-units"}
"""About a minute each: balloon units with refusal, the OOM notifier, reporting and hinting
all in one configuration (``ballast check`` explores them slice by slice)."""


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SMALL_PRESETS else n
    for n in sorted(SMALL_PRESET_STATES)])
def test_explore_finishes_on_the_small_copy_of_a_preset(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", name, "--small", "--json",
                 "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in out["results"] if r["verdict"] != "pass"]
    assert out["stats"]["complete"] is True
    assert out["stats"]["states"] == SMALL_PRESET_STATES[name]


def test_explore_finds_a_fault_and_writes_its_trace(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", "core", "--small", "--fault", "host_takes_partial_page",
                 "--stop-at-first", "--json", "--report-dir", str(tmp_path)])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    bad = [r for r in out["results"] if r["verdict"] == "violation"]
    assert [r["property"] for r in bad] == ["memory_conservation"]
    trace = read_trace(bad[0]["counterexample"])
    assert trace.header.faults == ("host_takes_partial_page",)


def test_a_fault_the_small_copy_hides_is_said_to_be_unseen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--small keeps features, not the sizes a fault needs (sharing between VMs on one VM):
    a pass with a seeded fault says the configuration may be too small to show it."""
    code = main(["explore", "--preset", "core", "--small", "--fault", "share_without_cow",
                 "--json", "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert any("--small shrank the configuration" in w and "share_without_cow" in w
               for w in out["warnings"]), out["warnings"]
    # Where the fault shows, or without --small, nothing is said.
    assert main(["explore", "--preset", "core", "--small", "--json",
                 "--report-dir", str(tmp_path)]) == 0
    assert not json.loads(capsys.readouterr().out)["warnings"]


def test_budget_gives_inconclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", "core", "--max-states", "50",
                 "--report-dir", str(tmp_path)])
    assert code == 3
    out = capsys.readouterr().out
    assert "max_states" in out and "state budget ran out; raise with --max-states" in out


@pytest.mark.parametrize("argv", [
    ["--max-states", "300"],  # a budget that runs out: the same reason for every property
    ["--small", "--fault", "reclaim_keeps_mapping"],  # a violation among passing properties
], ids=["budget", "violation"])
def test_results_that_say_the_same_are_one_line(tmp_path: Path, argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    main(["explore", "--preset", "core", *argv, "--report-dir", str(tmp_path)])
    text = capsys.readouterr().out
    main(["explore", "--preset", "core", *argv, "--json", "--report-dir", str(tmp_path)])
    results = json.loads(capsys.readouterr().out)["results"]
    # the results, between the header lines and the verdict
    lines = [x for x in text.splitlines()[:-1]
             if not x.startswith(("configuration:", "explored "))]
    assert len(lines) == len(set(lines))  # no line repeats another
    details = [line.split(": ", 1)[1] for line in lines]
    assert len(details) == len(set(details))  # nor says the same of other properties
    for r in results:  # every result is still said, under its own name
        if r["kind"] == "action" and r["verdict"] == "pass":
            continue
        [line] = [x for x in lines if re.search(rf"[ (]{re.escape(r['property'])}[,):]", x)]
        # A complete search labels what it never met "unreachable" in words (vacuous in JSON).
        label = "unreachable" if r["verdict"] == "vacuous" and "every reachable state" in \
            r["detail"] else r["verdict"]
        assert line.startswith(label) and r["detail"] in line
        if r["counterexample"]:
            assert line.endswith(f"-> {r['counterexample']}")


def test_liveness_and_graph_from_the_command_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dot, gml = tmp_path / "g.dot", tmp_path / "g.graphml"
    code = main(["explore", "--preset", "application", "--small", "--liveness", "--json",
                 "--dot", str(dot), "--graphml", str(gml), "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    live = {r["property"]: r["verdict"] for r in out["results"]
            if r["evidence"].get("form") == "liveness"}
    assert live == {"balloon_can_reach_target": "pass", "balloon_eventually_at_target": "pass"}
    assert dot.read_text().startswith("digraph") and gml.stat().st_size > 0
    assert code == 0


def _eventually(args: list[str],
                capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["explore", "--preset", "core", "--small", "--set", "refusal=true",
                 "--set", "host_use=false", "--set", "guest_disk_slots=0", "--liveness",
                 "--json", *args])
    out = json.loads(capsys.readouterr().out)
    reach = next(r for r in out["results"] if r["property"] == "balloon_eventually_at_target")
    return code, reach


def test_fairness_choice_from_the_command_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A VMM that may refuse forever starves the balloon under weak fairness only.
    code, weak = _eventually(["--report-dir", str(tmp_path)], capsys)
    assert code == 1 and weak["verdict"] == "violation" and weak["counterexample"]
    assert weak["evidence"]["fairness_choice"] == "weak"  # type: ignore[index]
    code, strong = _eventually(["--fairness", "strong-accept", "--report-dir", str(tmp_path)],
                               capsys)
    assert code == 0 and strong["verdict"] == "pass" and "strong-accept" in str(strong["detail"])
    assert strong["evidence"]["fairness_choice"] == "strong-accept"  # type: ignore[index]
    assert main(["explore", "--preset", "core", "--small", "--fairness", "strong-accept"]) == 2
    assert main(["explore", "--preset", "core", "--small", "--liveness",
                 "--fairness", "sometimes"]) == 2


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    assert main(["explore", "--preset", "nope"]) == 2
    assert main(["explore", "--preset", "core", "--max-seconds", "-1"]) == 2
    assert main(["explore", "--preset", "core", "--fault", "nope"]) == 2


@pytest.mark.parametrize("flag", ["--memory-budget", "--max-mib"])
@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_a_size_that_is_not_a_finite_positive_number_is_exit_2(
        flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", "core", "--small", "-q", flag, value,
                 "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "internal error" not in err
    assert f"argument {flag}: expected a number greater than 0, got '{value}'" in err


def test_suite_check_reports_every_property(tmp_path: Path) -> None:
    result = suite_check(preset("application"), report_dir=tmp_path)
    names = {r.property for r in result.results}
    assert {"memory_conservation", "deadlock_free", "balloon_eventually_at_target"} <= names
    assert all(r.checker == "explore" for r in result.results)
    inv = [r for r in result.results if r.kind == "invariant"]
    assert all(r.verdict is Verdict.PASS for r in inv)


def test_suite_check_budget_is_never_a_pass(tmp_path: Path) -> None:
    result = suite_check(preset("default"), report_dir=tmp_path,
                         budget=WorkBudget(max_states=40))
    by = {r.property: r for r in result.results if r.kind == "invariant"}
    # Every slice has memory: one slice out of budget keeps it from passing.
    assert by["memory_conservation"].verdict is Verdict.INCONCLUSIVE
    assert re.search(r"stopped after [\d,]+ states \(budget\); raise with --max-states",
                     by["memory_conservation"].detail)
    assert Verdict.VIOLATION not in {r.verdict for r in by.values()}
    assert result.stats["states"] > 0


def test_suite_check_wall_clock_stop_is_inconclusive(tmp_path: Path) -> None:
    result = suite_check(preset("core"), report_dir=tmp_path,
                         budget=WorkBudget(max_seconds=0.0))
    mc = next(r for r in result.results if r.property == "memory_conservation")
    assert mc.verdict is Verdict.INCONCLUSIVE and "(--max-seconds)" in mc.detail


def test_suite_finds_a_fault_in_the_slice_that_has_its_feature(tmp_path: Path) -> None:
    from ballast.model.faults import FAULTS

    # The default preset with three slices (protocol, processors, two VMs) of its seven: the
    # others have no processors either, and explore for a minute and more.
    cfg = preset("default").replace(**FAULTS["cpu_reclaim_keeps_parked"].config).replace(
        sharing=False, host_swap=False, refusal=False, reset=False, hostile_vms=frozenset())
    assert sorted(feature_slices(cfg)) == ["processors", "protocol", "two-vms"]
    result = suite_check(cfg, faults=("cpu_reclaim_keeps_parked",), report_dir=tmp_path)
    [bad] = [r for r in result.results if r.verdict is Verdict.VIOLATION]
    assert bad.property == "processor_conservation" and bad.counterexample is not None
    assert bad.evidence["slice"] == "processors"


def test_explore_without_the_cache_gives_the_same_verdicts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for extra in (["--engine", "reference"], ["--no-cache"]):
        code = main(["explore", "--preset", "virtio", "--small", "--json", "--no-symmetry",
                     "--report-dir", str(tmp_path), *extra])
        out = json.loads(capsys.readouterr().out)
        runs.append((code, [(r["property"], r["verdict"]) for r in out["results"]],
                     out["stats"]["states"], out["stats"]["cache"]))
    (code_a, verdicts_a, states_a, cache_a), (code_b, verdicts_b, states_b, cache_b) = runs
    assert (code_a, verdicts_a, states_a) == (code_b, verdicts_b, states_b)
    assert cache_a["part_hits"] > 0 and cache_b["part_hits"] == 0


def test_both_engines_give_the_same_verdicts_and_say_which_ran(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for engine in ("frontier", "reference"):
        code = main(["explore", "--preset", "core", "--small", "--fault",
                     "release_keeps_balloon_set", "--json", "--engine", engine,
                     "--report-dir", str(tmp_path / engine)])
        out = json.loads(capsys.readouterr().out)
        assert out["stats"]["engine"] == engine
        runs.append((code, [(r["property"], r["verdict"], r["detail"])
                            for r in out["results"]], out["stats"]["states"]))
    assert runs[0] == runs[1] and runs[0][0] == 1
    # Liveness too runs on the frontier engine, on its own graph, with the reference's
    # verdicts (a lasso included: the VMM may refuse forever under weak fairness).
    live = []
    for engine in ("frontier", "reference"):
        code = main(["explore", "--preset", "core", "--small", "--liveness", "--set",
                     "refusal=true", "--json", "--engine", engine,
                     "--report-dir", str(tmp_path / f"live-{engine}")])
        out = json.loads(capsys.readouterr().out)
        assert out["stats"]["engine"] == engine
        live.append((code, [(r["property"], r["verdict"], r["detail"])
                            for r in out["results"] if r["evidence"].get("form") == "liveness"]))
    assert live[0] == live[1] and live[0][0] == 1
    assert ("balloon_eventually_at_target", "violation") in [(p, v) for p, v, _ in live[0][1]]
    main(["explore", "--preset", "core", "--small", "--liveness", "--max-states", "50",
          "--report-dir", str(tmp_path)])
    assert "engine: frontier (the default engine)" in capsys.readouterr().out


def test_a_memory_budget_spills_to_disk_and_the_verdict_says_how_much(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for extra in ([], ["--memory-budget", "0.01"]):
        code = main(["explore", "--preset", "core", "--small", "--no-symmetry", "--json",
                     *extra, "--report-dir", str(tmp_path)])
        out = json.loads(capsys.readouterr().out)
        runs.append((code, out["stats"]["states"], out["stats"].get("spilled_bytes", 0),
                     [r["detail"] for r in out["results"] if r["kind"] == "invariant"]))
    (code0, states0, spilled0, _), (code1, states1, spilled1, details) = runs
    assert code0 == code1 == 0 and states0 == states1 > 1000
    assert spilled0 == 0 and spilled1 > 10_000
    assert all("MiB spilled to disk" in d for d in details)
    assert main(["explore", "--preset", "core", "--small", "--engine", "reference",
                 "--memory-budget", "1"]) == 2
