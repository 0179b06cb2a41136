"""How long ``ballast report`` takes, against replaying the same trace (the baseline).

Builds seeded random runs of growing length on the ``default`` preset, then times,
per trace: the replay alone, the explanation (replay + diffs + diagram data), the
Markdown, the SVG diagram inside the HTML page, and the PNG plot. Prints seconds
and the ratio of the full report to the replay.

    python benchmarks/report_speed.py
"""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from ballast.model.config import preset
from ballast.model.replay import replay
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.reports.explain import explain
from ballast.reports.memory import plot_png
from ballast.reports.render_html import render_html
from ballast.reports.render_md import render_markdown

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    assert value is not None
    return best, value


def random_trace(steps: int, seed: int = 1) -> Trace:
    cfg = preset("default")
    model = BalloonModel(cfg)
    rng = random.Random(seed)
    s = model.init_states()[0]
    out = []
    for n in range(1, steps + 1):
        act, s = rng.choice(list(model.successors(s)))
        out.append(TraceStep(n, act))
    return Trace(TraceHeader(cfg, source={"checker": "random", "seed": seed}), tuple(out))


def main() -> None:
    print(f"{'steps':>6} {'replay s':>9} {'explain s':>10} {'md s':>7} {'plot s':>7} "
          f"{'html s':>7} {'html KiB':>9} {'report/replay':>14}")
    for n in (10, 50, 200):
        trace = random_trace(n)
        t_replay, _ = timed(lambda: replay(trace))
        t_explain, e = timed(lambda: explain(trace))
        t_md, _ = timed(lambda: render_markdown(e))
        t_plot, png = timed(lambda: plot_png(e.memory, failing_step=e.failing_step))
        t_html, page = timed(lambda: render_html(e, plot=png))
        total = t_explain + t_md + t_plot + t_html
        print(f"{n:>6} {t_replay:>9.4f} {t_explain:>10.4f} {t_md:>7.4f} {t_plot:>7.3f} "
              f"{t_html:>7.4f} {len(page) / 1024:>9.0f} {total / t_replay:>14.1f}")


if __name__ == "__main__":
    main()
