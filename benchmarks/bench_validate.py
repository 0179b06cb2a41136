"""Benchmark: validating the real QEMU capture against only reading it.

Prints validated QEMU trace lines per second on the shipped sample
(``shared/samples/qemu-virtio-balloon/trace.log.xz`` beside the repository, or
``$BALLAST_QEMU_SAMPLE``), and, in the same run, the time to only decompress the file
and split it into lines (the baseline); the goal is validation at most 3x that.
Validation is measured by the VirtIO rules alone (``--no-model``) and by both judges,
the rules and the reference model (the default of ``ballast validate --format qemu``).
Each figure is the best of several interleaved rounds (the machine may be shared); the
model judge is slow enough to be timed in fewer rounds (``--model-rounds``).

    python benchmarks/bench_validate.py [--rounds N] [--model-rounds M]
"""

from __future__ import annotations

import argparse
import lzma
import sys
import time

from ballast.validate.cli import validate_qemu
from ballast.validate.qemu.trace_reader import read_trace
from ballast.validate.suite import sample_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
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

    def validate() -> int:
        out = validate_qemu(path, frozenset(), model=False)
        assert out.report.violation is None, out.report.violation
        return int(out.report.events)

    def both() -> int:
        out = validate_qemu(path, frozenset())
        assert out.clean, (out.report.violation, out.model)
        assert out.model is not None
        return out.model.steps

    lines = baseline()
    best = {"baseline": float("inf"), "reader": float("inf"), "validate": float("inf")}
    for _ in range(args.rounds):
        for name, fn in (("baseline", baseline), ("reader", reader), ("validate", validate)):
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    best["both"] = float("inf")
    for _ in range(args.model_rounds):
        start = time.perf_counter()
        steps = both()
        best["both"] = min(best["both"], time.perf_counter() - start)
    base = best["baseline"]
    print(f"sample: {path} ({lines:,} lines)")
    print(f"decompress + split into lines : {base * 1000:8.1f} ms  "
          f"({lines / base:,.0f} lines/s)  [baseline]")
    print(f"read QEMU events only         : {best['reader'] * 1000:8.1f} ms  "
          f"({lines / best['reader']:,.0f} lines/s)  {best['reader'] / base:.2f}x baseline")
    print(f"validate (read + check rules) : {best['validate'] * 1000:8.1f} ms  "
          f"({lines / best['validate']:,.0f} lines/s)  {best['validate'] / base:.2f}x baseline")
    print(f"validate (rules + model)      : {best['both'] * 1000:8.1f} ms  "
          f"({lines / best['both']:,.0f} lines/s, {steps:,} model steps)  "
          f"{best['both'] / base:.2f}x baseline")
    for what, key in (("rules only", "validate"), ("rules + model", "both")):
        ratio = best[key] / base
        print(f"goal: validation ({what}) <= 3.00x baseline: "
              f"{'met' if ratio <= 3.0 else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
