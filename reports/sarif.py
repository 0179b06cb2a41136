"""SARIF 2.1.0 for code-scanning tools: one rule per property, one result per finding.

* rule ``id`` = the property's model name; its docstring is the rule's help;
* a violation is a result of ``kind: "fail"``, ``level: "error"``, located at
  the trace file's line of the failing step, with the trace steps as a code
  flow (one thread-flow location per step, pointing at that step's line) and a
  stable fingerprint of the (shrunk) trace in ``partialFingerprints``: the
  SHA-256 of its action sequence, so the same bug found again (another seed,
  another day) is recognised as the same finding;
* an inconclusive or vacuous check is a result of ``kind: "open"`` (the tool
  could not decide), whose level is ``"none"`` as the standard requires.

>>> from ballast.model.actions import Action
>>> from ballast.model.config import Config
>>> from ballast.model.trace import TraceHeader, TraceStep, Trace
>>> t = Trace(TraceHeader(Config()), (TraceStep(1, Action.of("balloon_poll", vm=0)),))
>>> trace_fingerprint(t)[:12]
'21a397076f5e'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote
from typing import Any, Sequence

from ballast.model.actions import ACTIONS
from ballast.model.invariants import INVARIANTS
from ballast.model.replay import replay
from ballast.model.sometimes import SOMETIMES
from ballast.model.trace import Trace, read_trace
from ballast.reports.commands import replay_command
from ballast.reports.summary import decisive, verdict_phrase
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["FINGERPRINT_KEY", "SARIF_SCHEMA", "artifact_uri", "sarif_dict", "sarif_json",
           "trace_fingerprint"]

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "ballastTraceActions/v1"
"""The partialFingerprints key: versioned, so a change of the hash is a new key."""


def trace_fingerprint(trace: Trace) -> str:
    """SHA-256 of the trace's action sequence (names and arguments, nothing else)."""
    actions = [[st.action.name, st.action.to_dict()] for st in trace.steps]
    data = json.dumps(actions, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def artifact_uri(path: Path) -> str:
    """A relative URI for a file under the working folder, else a file: URI.

    >>> artifact_uri(Path("reports/out/x.jsonl"))
    'reports/out/x.jsonl'
    >>> artifact_uri(Path("my reports/x #1.jsonl"))
    'my%20reports/x%20%231.jsonl'
    """
    if not path.is_absolute():
        return quote(path.as_posix())  # a URI reference: a space is %20
    try:
        return quote(path.resolve().relative_to(Path.cwd().resolve()).as_posix())
    except ValueError:
        return path.resolve().as_uri()


def _doc(name: str) -> tuple[str, str]:
    if name in INVARIANTS:
        doc = INVARIANTS[name].doc
        full = " ".join(x.strip() for x in doc.splitlines() if x.strip())
        return INVARIANTS[name].summary, full
    if name in SOMETIMES:
        return SOMETIMES[name].doc, SOMETIMES[name].doc
    if name.startswith("action:") and name[7:] in ACTIONS:
        doc = ACTIONS[name[7:]].doc
        first = doc.splitlines()[0] if doc else f"the action {name[7:]} fires"
        return first, " ".join(x.strip() for x in doc.splitlines() if x.strip()) or first
    return name, name


def _rule(name: str, kind: str) -> dict[str, Any]:
    short, full = _doc(name)
    rule: dict[str, Any] = {
        "id": name, "name": name,
        "shortDescription": {"text": short}, "fullDescription": {"text": full},
        "help": {"text": full, "markdown": f"**{name}**: {full}"},
        "defaultConfiguration": {"level": "error" if kind == "invariant" else "warning"},
        "properties": {"kind": kind},
    }
    if name in INVARIANTS:
        rule["properties"]["scope"] = INVARIANTS[name].scope
    return rule


def _location(uri: str, line: int, text: str | None = None) -> dict[str, Any]:
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri},
                                                "region": {"startLine": line}}}
    if text is not None:
        loc["message"] = {"text": text}
    return loc


def _violation(r: PropertyResult, rule_index: int, cr: CheckResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ruleId": r.property, "ruleIndex": rule_index, "kind": "fail", "level": "error",
        "message": {"text": f"{r.property} violated ({r.checker})"
                    + (f": {r.detail}" if r.detail else "")},
        "properties": {"checker": r.checker,
                       **{k: v for k, v in r.evidence.items() if k in ("seed", "query")}},
    }
    if r.counterexample is None:
        return out
    trace = read_trace(r.counterexample)  # InputError names the file and line
    uri = artifact_uri(r.counterexample)
    result = replay(trace, keep_states=False)
    fail_step = result.step if result.step is not None else len(trace.steps)
    by_step = {st.step: st for st in trace.steps}
    fail_line = by_step[fail_step].line if fail_step in by_step else None
    out["locations"] = [_location(uri, fail_line or 1)]
    out["partialFingerprints"] = {FINGERPRINT_KEY: trace_fingerprint(trace)}
    out["properties"].update({"source": trace.header.source, "faults": list(trace.header.faults),
                              "replay": replay_command(r.counterexample)})
    flow = []
    for st in trace.steps:
        spec = ACTIONS.get(st.action.name)
        actor = spec.actor.value if spec else "?"
        loc: dict[str, Any] = {
            "location": _location(uri, st.line or st.step + 1,
                                  f"step {st.step} ({actor}): {st.action}"
                                  + (f" -- breaks {r.property}" if st.step == fail_step else "")),
            "executionOrder": st.step,
            "importance": "essential" if st.step == fail_step else "important",
        }
        flow.append(loc)
    out["codeFlows"] = [{"message": {"text": f"{len(trace.steps)} steps to {r.property}"},
                         "threadFlows": [{"locations": flow}]}]
    return out


def sarif_dict(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The SARIF log as plain data."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ballast_version = version("ballast")
    except PackageNotFoundError:  # running from a source tree
        ballast_version = "0"
    counted = {id(r) for r in decisive(results)}
    names: dict[str, str] = {}
    for cr in results:
        for r in cr.results:
            if id(r) in counted and r.verdict in (Verdict.VIOLATION, Verdict.INCONCLUSIVE,
                                                  Verdict.VACUOUS):
                names.setdefault(r.property, r.kind)
    order = sorted(names, key=lambda n: (list(INVARIANTS).index(n) if n in INVARIANTS
                                         else len(INVARIANTS), n))
    index = {n: i for i, n in enumerate(order)}
    findings: list[dict[str, Any]] = []
    for cr in results:
        for r in cr.results:
            if r.verdict is Verdict.VIOLATION:
                findings.append(_violation(r, index[r.property], cr))
            elif id(r) in counted and r.verdict in (Verdict.INCONCLUSIVE, Verdict.VACUOUS):
                findings.append({"ruleId": r.property, "ruleIndex": index[r.property],
                                 "kind": "open", "level": "none",
                                 "message": {"text": f"{r.property} ({r.checker}): "
                                             f"{verdict_phrase(r)}"},
                                 "properties": {"checker": r.checker,
                                                "verdict": r.verdict.value}})
    return {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ballast", "version": ballast_version,
                                "rules": [_rule(n, names[n]) for n in order]}},
            "results": findings,
            "columnKind": "unicodeCodePoints",
            "properties": {"checkers": [cr.checker for cr in results]},
        }],
    }


def sarif_json(results: Sequence[CheckResult]) -> str:
    """The SARIF log as indented JSON text."""
    return json.dumps(sarif_dict(results), indent=2, sort_keys=False, default=str) + "\n"
