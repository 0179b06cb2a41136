"""Memory figures over the steps agree with the model's own state functions."""

from __future__ import annotations

from ballast.model.replay import replay
from ballast.model.state import UNBACKED, swap_of
from ballast.reports.memory import HOST_SERIES, VM_SERIES, figures, plot_png, series
from report_fixtures import reclaim_trace


def test_figures_agree_with_the_state() -> None:
    states = replay(reclaim_trace()).states
    for s in states:
        f = figures(s)
        assert f["host"]["backing guests"] == len(s.mappers())
        assert f["host"]["free"] + f["host"]["host use"] + f["host"]["backing guests"] == len(
            s.host.content)  # memory conservation holds in this trace
        for v, vm in enumerate(s.vms):
            assert tuple(f[f"vm{v}"]) == VM_SERIES
            assert f[f"vm{v}"]["backed"] == len([m for m in vm.p2m if m != UNBACKED])
            assert f[f"vm{v}"]["host swap"] == len(swap_of(s.host, v))
        assert tuple(f["host"]) == HOST_SERIES


def test_series_follow_the_trace() -> None:
    mem = series(replay(reclaim_trace()).states)
    assert mem.steps == tuple(range(11))
    assert mem.data["vm0"]["ballooned"][-2:] == (0, 2)
    assert mem.data["vm1"]["host swap"][4:6] == (0, 1)
    assert mem.data["host"]["host use"][3:5] == (0, 1)


def test_plot_is_a_png() -> None:
    mem = series(replay(reclaim_trace()).states)
    png = plot_png(mem, failing_step=10, cycle=(3, 5))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
