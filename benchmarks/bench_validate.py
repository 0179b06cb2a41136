"""Benchmark: validating the real QEMU capture against only reading it, in CPU seconds.

Prints, for the shipped sample (``shared/samples/qemu-virtio-balloon/trace.log.xz`` beside
the repository, or ``$BALLAST_QEMU_SAMPLE``), the CPU time of

- the baseline: decompressing the file and splitting it into lines;
- reading the QEMU events only (:func:`ballast.validate.qemu.trace_reader.read_trace`);
- ``validate --format qemu --no-model`` (the VirtIO rules);
- ``validate --format qemu`` (the rules and the reference model, the default), with the
  model's share split into its guards and effects (applying the steps to a state whose
  large per-page records are held in tables, :class:`ballast.model.tables.StateTables`, as
  the judge does) and its properties (checking every property after every step, from what
  the step changed: :class:`ballast.model.incremental.StepChecker`); for comparison the
  same steps on frozen records (each step copies the records it changes whole), and every
  property re-read over the whole state after every step (``BalloonModel.step_violations``);
- how many steps replace (copy whole) a large per-page record of the frozen model (the
  guest's page table, the VMM's map, the balloon sets): what the tables save;

each as a ratio to the baseline measured in the same run.  The goal is validation within
3x the baseline.  Each figure is the best of several interleaved rounds (the machine may be
shared); the model is slow enough to be timed in fewer rounds (``--model-rounds``).

    python benchmarks/bench_validate.py [--rounds N] [--model-rounds M]
"""

from __future__ import annotations

import argparse
import lzma
import sys
import time
from collections import Counter
from typing import Callable

from ballast.model.incremental import StepChecker
from ballast.model.system import BalloonModel
from ballast.model.tables import StateTables
from ballast.validate.qemu.validation import validate_qemu
from ballast.validate.qemu.steps import GuestSize, StepConverter, profile_events, trace_config
from ballast.validate.qemu.trace_reader import read_trace
from ballast.validate.suite import sample_dir


def _cpu(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model-rounds", type=int, default=1)
    args = ap.parse_args()
    where = sample_dir()
    if where is None:
        print("the QEMU sample is not beside the repository; nothing to measure", file=sys.stderr)
        return 2
    path = where / "trace.log.xz"

    def baseline() -> int:
        with lzma.open(path, "rt") as stream:
            return sum(1 for _ in stream)

    def reader() -> int:
        return sum(1 for _ in read_trace(path))

    def rules() -> int:
        out = validate_qemu(path, frozenset(), model=False)
        assert out.report.violation is None, out.report.violation
        return int(out.report.events)

    def both() -> int:
        out = validate_qemu(path, frozenset())
        assert out.clean, (out.report.violation, out.model)
        assert out.model is not None
        return out.model.steps

    def model_steps() -> list[object]:
        size = GuestSize()
        conv = StepConverter(features=frozenset())
        steps = [st for item in profile_events(read_trace(path), frozenset(), size)
                 for st in conv.feed(*item)]
        return [size.pages, steps]

    pages, steps = model_steps()
    assert isinstance(pages, int) and isinstance(steps, list)
    model = BalloonModel(trace_config(pages, frozenset()))

    def effects() -> None:
        tables = StateTables(model.init_states()[0])
        s = tables.state
        for st in steps:
            s = tables.commit(model.next_state(s, st.action))[1]

    def properties() -> None:
        tables = StateTables(model.init_states()[0])
        s = tables.state
        checker = StepChecker(model)
        for st in steps:
            before, after = tables.commit(model.next_state(s, st.action))
            checker.same_state(s, before)
            assert not checker.check(before, st.action, after)
            s = after

    def frozen_effects() -> None:
        s = model.init_states()[0]
        for st in steps:
            s = model.next_state(s, st.action)

    # The large per-page records each step replaces (a new tuple or frozenset, told apart
    # by identity): the model is pure, so each such step copies the whole record.
    copied: Counter[str] = Counter()
    s = model.init_states()[0]
    for st in steps:
        post = model.next_state(s, st.action)
        for a, b in zip(s.vms, post.vms):
            for name, old, new in (("guest.ppn_use", a.guest.ppn_use, b.guest.ppn_use),
                                   ("p2m", a.p2m, b.p2m), ("ballooned", a.ballooned, b.ballooned),
                                   ("module.balloon", a.module.balloon, b.module.balloon)):
                if old is not new and len(new) > 4096:
                    copied[name] += 1
        s = post
    del s, post

    def properties_whole() -> None:
        s = model.init_states()[0]
        for st in steps:
            post = model.next_state(s, st.action)
            assert not model.step_violations(s, st.action, post)
            s = post

    def converted() -> int:
        size = GuestSize()
        conv = StepConverter(features=frozenset())
        return sum(1 for item in profile_events(read_trace(path), frozenset(), size)
                   for _ in conv.feed(*item))

    lines = baseline()
    best = {"baseline": float("inf"), "reader": float("inf"), "rules": float("inf"),
            "convert": float("inf")}
    for _ in range(args.rounds):
        for name, fn in (("baseline", baseline), ("reader", reader), ("rules", rules),
                         ("convert", converted)):
            best[name] = min(best[name], _cpu(fn, 1))
    best["both"] = _cpu(both, args.model_rounds)
    best["effects"] = _cpu(effects, args.model_rounds)
    best["properties"] = _cpu(properties, args.model_rounds) - best["effects"]
    best["frozen"] = _cpu(frozen_effects, 1)
    best["whole"] = _cpu(properties_whole, 1) - best["frozen"]
    base = best["baseline"]
    print(f"sample: {path} ({lines:,} lines, a guest of {pages:,} pages, "
          f"{len(steps):,} model steps)")
    print("CPU seconds, best of the rounds; ratio to the baseline measured in this run")
    rows = (
        ("decompress + split into lines [baseline]", "baseline"),
        ("read QEMU events only", "reader"),
        ("validate --no-model (VirtIO rules)", "rules"),
        ("read QEMU events and convert them to model steps", "convert"),
        ("validate (rules + reference model)", "both"),
        ("  of which: model guards and effects", "effects"),
        ("  of which: model properties after each step", "properties"),
        ("(guards and effects on frozen records, for comparison)", "frozen"),
        ("(every property re-read in full, for comparison)", "whole"),
    )
    for label, key in rows:
        print(f"{label:<55} {best[key]:9.3f} s  {best[key] / base:8.2f}x")
    print("large per-page records (over 4,096 entries) a frozen step copies whole: "
          + ", ".join(f"{name} {n:,}" for name, n in copied.most_common()))
    # What the 3x goal leaves the model: the rules and the conversion to steps cost what
    # they cost whatever the model does.
    conversion = max(0.0, best["convert"] - best["reader"])
    left = 3.0 * base - best["rules"] - conversion
    model_share = best["both"] - best["rules"] - conversion
    print(f"the 3x goal leaves the model {left * 1e3:.1f} ms, {left / len(steps) * 1e6:.1f} us a "
          f"step (3x baseline - rules - conversion {conversion * 1e3:.1f} ms); it takes "
          f"{model_share * 1e3:.1f} ms, {model_share / len(steps) * 1e6:.1f} us a step")
    for what, key in (("rules only", "rules"), ("rules + model", "both")):
        ratio = best[key] / base
        print(f"goal: validation ({what}) <= 3.00x baseline: "
              f"{'met' if ratio <= 3.0 else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
