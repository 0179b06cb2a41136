"""JUnit XML for CI: one test case per property per checker.

The layout is the one pytest writes (``<testsuites>`` holding one ``<testsuite>``
per checker, ``<testcase classname=... name=... time=...>``), which Jenkins,
GitLab and GitHub test reporters all read. How verdicts map:

* pass -> a passing test case;
* violation -> ``<failure type="violation">`` with the message, the counterexample
  file and the command that replays it;
* inconclusive and vacuous -> ``<error type="inconclusive">`` / ``type="vacuous"``:
  the check did not conclude, which must not look green in CI (a ``<skipped>``
  would), and is not a found bug either;
* skipped (property not applicable in this configuration) -> ``<skipped>``; so is
  a scenario or action one checker did not reach when coverage pooled over all
  checkers (checker ``all``) is also reported: only the pooled item can fail.

Test case names: ``classname="ballast.CHECKER"`` and ``name=PROPERTY`` for
invariants; scenarios are named ``sometimes:NAME`` and action coverage
``action:NAME``.

>>> from ballast.verdict import CheckResult, PropertyResult, Verdict
>>> xml = junit_xml([CheckResult("random", [PropertyResult("isolation", "random", Verdict.PASS)])])
>>> '<testcase classname="ballast.random" name="isolation" time="0.000"' in xml
True
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Sequence

from ballast.reports.commands import replay_command
from ballast.reports.summary import decisive, verdict_phrase
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["junit_xml", "testcase_name"]


def testcase_name(r: PropertyResult) -> str:
    """The test case name of one result.

    >>> from ballast.verdict import PropertyResult, Verdict
    >>> testcase_name(PropertyResult("partial_fill", "random", Verdict.PASS, kind="scenario"))
    'sometimes:partial_fill'
    """
    if r.kind == "scenario" and not r.property.startswith("sometimes:"):
        return f"sometimes:{r.property}"
    return str(r.property)


def _seconds(r: PropertyResult) -> float:
    value = r.evidence.get("seconds", 0.0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def junit_xml(results: Sequence[CheckResult]) -> str:
    """The whole JUnit XML document."""
    root = ET.Element("testsuites", name="ballast check")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    counted = {id(r) for r in decisive(results)}
    total_time = 0.0
    for cr in results:
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", name=f"ballast.{cr.checker}")
        for r in cr.results:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", classname=f"ballast.{cr.checker}",
                                 name=testcase_name(r), time=f"{_seconds(r):.3f}")
            text = "\n".join(x for x in (
                r.detail, f"counterexample: {r.counterexample.as_posix()}" if r.counterexample
                else "", f"replay: {replay_command(r.counterexample)}"
                if r.counterexample else "") if x)
            if r.verdict is Verdict.VIOLATION:
                counts["failures"] += 1
                el = ET.SubElement(case, "failure", type="violation",
                                   message=f"{r.property} violated: {r.detail}".rstrip(": "))
                el.text = text
            elif r.verdict in (Verdict.VACUOUS, Verdict.INCONCLUSIVE) and id(r) not in counted:
                # A checker's own coverage item, pooled over all checkers: the pooled item
                # alone is an error, as it is one finding in SARIF and the summaries.
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{verdict_phrase(r)} by this checker; "
                              "coverage is judged over all checkers")
            elif r.verdict in (Verdict.INCONCLUSIVE, Verdict.VACUOUS):
                counts["errors"] += 1
                el = ET.SubElement(case, "error", type=r.verdict.value,
                                   message=verdict_phrase(r))
                el.text = text
            elif r.verdict is Verdict.SKIPPED:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=r.detail or "not applicable here")
            elif r.detail:
                out = ET.SubElement(case, "system-out")
                out.text = verdict_phrase(r)
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{cr.seconds:.3f}")
        total_time += cr.seconds
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
