"""The numeric core of this tree against the numeric core of an earlier commit, on the same
workload, in one process, in CPU seconds.

The earlier commit's package is built from ``git archive`` of that commit (``pip install
--no-deps --target``) and imported under another name beside this tree's, so the two engines
replay their workloads alternately in the same process: a machine whose load changes slows
both alike, and the ratio holds where the absolute times do not. The workload is
``bench_numeric.py``'s (preset ``large`` scaled to ``--vms`` x ``--pages``, ``--batches``
random batches, each engine drawing its own from the same seed); each replay runs on a fresh
engine with Python's garbage collector paused, and the fastest replay and the median of each
engine count. Then both replay the same operations one per call (as shrinking and trace
replay call the engine), in fewer rounds.

The default commit, ``9eaa607`` (``52d802a^``), is the last before the actions were written
once over an operations layer (:mod:`ballast.model.action_kernels`) that a NumPy interpreter
runs: its engine was written by hand, action by action. The goal is a batched replay at
least as fast as that engine's (ratio 1.0 or more).

    python benchmarks/bench_numeric_against.py [--against 9eaa607] [--rounds 40]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ballast.model.config import preset
from ballast.numeric.engine import Engine
from ballast.numeric.scale import scaled
from ballast.numeric.workload import run_batches

_BASE = "ballast_base"
"""The name the earlier commit's package is imported under."""


def build_base(commit: str, where: Path) -> None:
    """The package of ``commit`` under ``where / _BASE``, its imports of itself renamed."""
    root = Path(__file__).resolve().parent.parent
    tree, site = where / "tree", where / "site"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(tree)], check=True)
    pattern = re.compile(r"\bballast(?=[.\s])")
    for path in (site / "ballast").rglob("*.py"):
        out = where / _BASE / path.relative_to(site / "ballast")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(pattern.sub(_BASE, path.read_text()))


def _replay(engine: Any, cfg: Any, log: list[Any]) -> float:
    """CPU seconds of one replay of ``log`` on a fresh engine (the collector paused)."""
    gc.collect()
    eng = engine(cfg)
    gc.disable()
    try:
        start = time.process_time()
        for b in log:
            eng.apply_batch(b.name, b.vms, **b.args)
        return time.process_time() - start
    finally:
        gc.enable()


def _one_by_one(log: list[Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """The operations of ``log`` one at a time, in order (a batch's operations act on
    distinct VMs in ascending order: one at a time, they take the same steps)."""
    return [(b.name, b.vms[j:j + 1], {k: v[j:j + 1] for k, v in b.args.items()})
            for b in log for j in range(len(b.vms))]


def _replay_ops(engine: Any, cfg: Any, ops: list[tuple[str, Any, dict[str, Any]]]) -> float:
    """CPU seconds of one replay of ``ops``, one operation per call (as shrinking and trace
    replay call the engine), on a fresh engine."""
    gc.collect()
    eng = engine(cfg)
    gc.disable()
    try:
        start = time.process_time()
        for name, vms, args in ops:
            eng.apply_batch(name, vms, **args)
        return time.process_time() - start
    finally:
        gc.enable()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="9eaa607",
                    help="the earlier commit (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=40, help="replays of each engine")
    ap.add_argument("--vms", type=int, default=256)
    ap.add_argument("--pages", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_base(args.against, Path(tmp))
        sys.path.insert(0, tmp)
        base: dict[str, ModuleType] = {
            name: importlib.import_module(f"{_BASE}.{name}")
            for name in ("model.config", "numeric.engine", "numeric.scale", "numeric.workload")}
        cfg = scaled(preset("large"), vms=args.vms, pages=args.pages)
        base_cfg = base["numeric.scale"].scaled(base["model.config"].preset("large"),
                                                vms=args.vms, pages=args.pages)
        log = run_batches(Engine(cfg), np.random.default_rng(args.seed), args.batches)
        base_engine = base["numeric.engine"].Engine
        base_log = base["numeric.workload"].run_batches(
            base_engine(base_cfg), np.random.default_rng(args.seed), args.batches)
        now, before = [], []
        for _ in range(max(1, args.rounds)):
            now.append(_replay(Engine, cfg, log))
            before.append(_replay(base_engine, base_cfg, base_log))
        one_now, one_before = [], []
        ops, base_ops = _one_by_one(log), _one_by_one(base_log)
        for _ in range(max(1, args.rounds // 8)):
            one_now.append(_replay_ops(Engine, cfg, ops))
            one_before.append(_replay_ops(base_engine, base_cfg, base_ops))
    print(f"workload: preset 'large' scaled to {cfg.vms} VMs x {cfg.guest_pages} PPNs, "
          f"{len(log)} batches ({len(ops):,} operations), seed {args.seed}; "
          f"{len(now)} batched replays and {len(one_now)} replays one operation per call "
          f"of each engine, alternating")
    batched = _ratios("CPU milliseconds of one batched replay", args.against, before, now)
    _ratios("CPU milliseconds of one replay, one operation per call", args.against,
            one_before, one_now)
    print(f"goal: batched replay at least as fast as {args.against} (1.0x): "
          f"{'met' if min(batched) >= 1.0 else 'NOT met'}")
    return 0


def _ratios(title: str, against: str, before: list[float], now: list[float]
            ) -> tuple[float, float]:
    """Print the fastest and median times of both engines and their ratios; return those."""
    before, now = sorted(before), sorted(now)
    print(f"{title:<56}  fastest    median")
    for label, times in ((f"{against} [baseline]", before), ("this tree", now)):
        print(f"  {label:<54} {times[0] * 1e3:8.2f}  {times[len(times) // 2] * 1e3:8.2f}")
    fastest, median = before[0] / now[0], before[len(before) // 2] / now[len(now) // 2]
    print(f"  ratio baseline/this tree: {fastest:.3f}x fastest, {median:.3f}x median")
    return fastest, median


if __name__ == "__main__":
    sys.exit(main())
