"""``ballast check`` integration of trace validation.

Three checks, each cheap:

1. **model traces validate**: random runs of the configuration, logged partially (every
   other step dropped, only ``actual`` observed), must be explained by the model;
2. **seeded faults are caught**: for each seeded fault, a run of the broken model that
   breaks the fault's property, logged with full states, must *not* be explained by the
   correct model; the counterexample is replayed through the broken model and written;
3. **the real QEMU sample**: the shipped capture (``shared/samples/qemu-virtio-balloon``
   beside the repository, or ``$BALLAST_QEMU_SAMPLE``) validates against every VirtIO 5.5
   rule; one result per rule.  Skipped, with the reason, when the sample is absent;
4. **every action is projected**: an action the configuration switches on that the virtio
   profile does not project knowingly (:mod:`ballast.validate.virtio.encodes`) makes the
   ``virtio_projection`` result inconclusive, naming the action.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from ballast.budget import WorkBudget
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.replay import replay
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.model.virtio import VIRTIO_RULES, Level
from ballast.verdict import CheckResult, PropertyResult, Verdict
from ballast.validate.virtio.encodes import gaps_in as virtio_gaps
from ballast.validate.trace.check import validate_steps

__all__ = ["partial_log", "sample_dir", "suite_check"]

CHECKER = "validate"


def sample_dir() -> Path | None:
    """Where the shipped QEMU capture is, if it is there."""
    env = os.environ.get("BALLAST_QEMU_SAMPLE")
    if env:
        return Path(env) if Path(env, "trace.log.xz").is_file() else None
    here = Path(__file__).resolve().parent
    for up in (here.parent, here.parent.parent):
        cand = up.parent / "shared" / "samples" / "qemu-virtio-balloon"
        if (cand / "trace.log.xz").is_file():
            return cand
    return None


def partial_header(trace: Trace) -> TraceHeader:
    """The header of a partial log of ``trace``: it no longer claims to log every step."""
    h = trace.header
    source = {k: v for k, v in h.source.items() if k != "unlogged_actions"}
    return TraceHeader(h.config, h.faults, source, h.expect, h.initial, h.comment, h.observe)


def partial_log(trace: Trace, keep_every: int = 2) -> list[TraceStep]:
    """An implementation-like log of a model run: some steps dropped, the VMs observed.

    Steps are kept when their index is a multiple of ``keep_every``; each kept step
    observes every VM's own records (``vms/N``), never the host's machine pages.
    """
    kept: list[TraceStep] = []
    for i, st in enumerate(trace.steps):
        if i % keep_every:
            continue
        obs = None
        if st.state is not None:
            obs = {f"vms/{v}": vm for v, vm in enumerate(st.state["vms"])}
        kept.append(TraceStep(len(kept) + 1, st.action, observe=obs, line=len(kept) + 2))
    return kept


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget: WorkBudget = WorkBudget()) -> CheckResult:
    """Run the validation checks on ``cfg``; see the module docstring. The work is
    counted (runs); wall-clock time stops it only when ``budget.max_seconds`` is set."""
    from ballast.simulation.randomwalk import random_run

    start = time.monotonic()
    deadline = start + (math.inf if budget.max_seconds is None else budget.max_seconds)
    results: list[PropertyResult] = []

    # 1. Partial logs of correct runs are explained.
    runs = steps = 0
    failure: str | None = None
    timed_out = False
    clean = BalloonModel(cfg)
    for k in range(5):
        if time.monotonic() > deadline:
            timed_out = True
            break
        run = random_run(clean, seed + k, 30, checker=CHECKER)
        if run.violation is not None:
            continue  # the model's own checkers report that
        log = partial_log(run.trace)
        rep = validate_steps(partial_header(run.trace), iter(log), max_gap=1, max_states=20_000)
        runs += 1
        steps += len(log)
        if rep.outcome == "inconclusive":
            timed_out = True
        elif rep.outcome != "ok":
            m = rep.mismatch
            failure = f"seed {seed + k}: {m.reason if m else rep.detail}"
            break
    verdict = (Verdict.VIOLATION if failure else Verdict.INCONCLUSIVE if timed_out or not runs
               else Verdict.PASS)
    results.append(PropertyResult(
        "trace_validation_explains_model_runs", CHECKER, verdict,
        failure or f"{runs} partially logged runs ({steps} logged steps) explained",
        {"runs": runs, "logged_steps": steps, "seed": seed}, kind="scenario"))

    # 2. Seeded faults are caught, with a counterexample replayed through the broken model.
    for name in faults:
        results.append(_fault_caught(cfg, name, seed, report_dir, deadline))

    # 3. The real QEMU sample.
    results += _qemu_sample(deadline)

    # 4. Every action the configuration switches on is projected knowingly onto virtio.
    gaps = virtio_gaps(cfg)
    if gaps:
        results.append(PropertyResult(
            "virtio_projection", CHECKER, Verdict.INCONCLUSIVE,
            f"{CHECKER}: {gaps.what()}; the VirtIO rules cannot judge its steps",
            {"gap": gaps.what()}))
    return CheckResult(CHECKER, results, time.monotonic() - start,
                       {"runs": runs, "logged_steps": steps})


def _fault_caught(cfg: Config, name: str, seed: int, report_dir: Path,
                  deadline: float) -> PropertyResult:
    from ballast.simulation.randomwalk import random_run
    from ballast.reports.counterexample import write_counterexample

    fault = FAULTS.get(name)
    if fault is None:
        return PropertyResult(f"fault:{name}", CHECKER, Verdict.SKIPPED, "unknown fault")
    fcfg = cfg.replace(**fault.config)
    broken = BalloonModel(fcfg, (name,))
    tries = 0
    while time.monotonic() < deadline and tries < 400:
        run = random_run(broken, seed + tries, 40, checker=CHECKER)
        tries += 1
        if run.violation is None or fault.breaks not in {
                v.property for v in replay(run.trace).violations}:
            continue
        header = TraceHeader(fcfg)
        logged = [TraceStep(st.step, st.action, state=st.state, line=st.step + 1)
                  for st in run.trace.steps]
        rep = validate_steps(header, iter(logged), max_gap=0)
        if rep.outcome != "mismatch" or rep.mismatch is None:
            return PropertyResult(fault.breaks, CHECKER, Verdict.PASS,
                                  f"fault {name}: the correct model explains the broken run "
                                  f"(seed {seed + tries - 1}); not caught",
                                  {"seed": seed + tries - 1, "fault": name})
        cex = write_counterexample(run.trace, report_dir, f"validate-{name}-{seed}")
        m = rep.mismatch
        return PropertyResult(
            fault.breaks, CHECKER, Verdict.VIOLATION,
            f"fault {name}: line {m.line} not explained ({m.reason})"
            + (f"; property {m.property}" if m.property else ""),
            {"seed": seed + tries - 1, "fault": name, "runs": tries, "line": m.line,
             "blamed": m.property}, counterexample=cex.trace_path)
    return PropertyResult(fault.breaks, CHECKER, Verdict.INCONCLUSIVE,
                          f"fault {name}: no run broke {fault.breaks} in {tries} runs",
                          {"runs": tries, "fault": name})


def _qemu_sample(deadline: float) -> list[PropertyResult]:
    where = sample_dir()
    if where is None:
        return [PropertyResult(rule.name, "validate-qemu", Verdict.SKIPPED,
                               "the QEMU sample (shared/samples/qemu-virtio-balloon) is not "
                               "present beside the repository")
                for rule in VIRTIO_RULES.values()]
    from ballast.validate.qemu.validation import features_from, validate_qemu

    qmp = where / "qmp.log"
    features = features_from(None, str(qmp) if qmp.is_file() else None)
    out = validate_qemu(where / "trace.log.xz", features)
    rep = out.report
    evidence = {"events": rep.events, "pages": rep.pages, "seconds": round(out.seconds, 3),
                "sample": where.name}
    results = []
    for rule in VIRTIO_RULES.values():
        if rule.requires is not None and rule.requires not in features:
            results.append(PropertyResult(rule.name, "validate-qemu", Verdict.SKIPPED,
                                          f"{rule.requires} was not negotiated in the sample",
                                          evidence))
        elif rep.violation is not None and rep.violation.rule == rule.name:
            results.append(PropertyResult(rule.name, "validate-qemu", Verdict.VIOLATION,
                                          f"line {rep.violation.line}: {rep.violation.message}",
                                          evidence))
        elif rule.level is Level.SHOULD and any(w.rule == rule.name for w in rep.warnings):
            msg = next(w.message for w in rep.warnings if w.rule == rule.name)
            results.append(PropertyResult(rule.name, "validate-qemu", Verdict.PASS,
                                          f"warning (SHOULD): {msg}", evidence))
        elif rep.violation is not None:
            results.append(PropertyResult(rule.name, "validate-qemu", Verdict.INCONCLUSIVE,
                                          "the check stopped at an earlier violation", evidence))
        else:
            results.append(PropertyResult(
                rule.name, "validate-qemu", Verdict.PASS,
                f"held over the real QEMU capture: {rep.events:,} events, {rep.pages:,} pages",
                evidence))
    return results
