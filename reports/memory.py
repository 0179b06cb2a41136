"""Memory over the steps of a trace: the figures per VM and for the host, and their plot.

Per VM, in guest pages (PPNs): *backed* (an MPN behind it), *ballooned* (held by
the VMM as ballooned), *guest disk* (pages the guest paged out to its own
virtual disk), *host swap* (pages the host paged out behind the guest's back)
and *shared* (backed by a copy-on-write MPN). For the host, in MPNs: *free*,
*host use* and *backing guests*.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> figures(initial_state(cfg))["host"]
{'free': 2, 'host use': 0, 'backing guests': 0}
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

from ballast.model.state import UNBACKED, State, swap_of

__all__ = ["HOST_SERIES", "VM_SERIES", "FigureReader", "MemorySeries", "figures", "plot_png",
           "series", "series_of"]

VM_SERIES = ("backed", "ballooned", "guest disk", "host swap", "shared")
"""What is counted per VM, in PPNs."""
HOST_SERIES = ("free", "host use", "backing guests")
"""What is counted for the host, in MPNs."""


def figures(s: State) -> dict[str, dict[str, int]]:
    """The memory figures of one state: ``{"vm0": {...}, ..., "host": {...}}``."""
    out: dict[str, dict[str, int]] = {}
    for v, vm in enumerate(s.vms):
        out[f"vm{v}"] = {
            "backed": sum(1 for m in vm.p2m if m != UNBACKED),
            "ballooned": len(vm.ballooned),
            "guest disk": len(vm.guest.disk),
            "host swap": len(swap_of(s.host, v)),
            "shared": sum(1 for m in vm.p2m if m != UNBACKED and m in s.host.cow),
        }
    out["host"] = {"free": len(s.host.free), "host use": len(s.host.in_use),
                   "backing guests": len(s.mappers())}
    return out


@dataclass(frozen=True)
class MemorySeries:
    """The figures of every state of a replay: index 0 is the initial state."""

    steps: tuple[int, ...]
    """Step number after which each column was taken (0 = initial state)."""
    data: dict[str, dict[str, tuple[int, ...]]]
    """``panel -> series -> values``; panels are ``vm0``, ``vm1``, ..., ``host``."""

    def to_dict(self) -> dict[str, object]:
        return {"steps": list(self.steps),
                "panels": {p: {k: list(v) for k, v in d.items()} for p, d in self.data.items()}}


class FigureReader:
    """:func:`figures` of consecutive states of one replay, re-counting a VM's pages only
    when its page map or the host's shared set changed (the model shares unchanged parts)."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[object, object, int, int]] = {}
        self.host: tuple[tuple[object, ...], int] | None = None

    def figures(self, s: State) -> dict[str, dict[str, int]]:
        """The same as :func:`figures` (tested)."""
        out: dict[str, dict[str, int]] = {}
        for v, vm in enumerate(s.vms):
            old = self.seen.get(v)
            if old is not None and old[0] is vm.p2m and old[1] is s.host.cow:
                backed, shared = old[2], old[3]
            else:
                backed = sum(1 for m in vm.p2m if m != UNBACKED)
                shared = sum(1 for m in vm.p2m if m != UNBACKED and m in s.host.cow)
                self.seen[v] = (vm.p2m, s.host.cow, backed, shared)
            out[f"vm{v}"] = {"backed": backed, "ballooned": len(vm.ballooned),
                             "guest disk": len(vm.guest.disk),
                             "host swap": len(swap_of(s.host, v)), "shared": shared}
        maps = tuple(vm.p2m for vm in s.vms)
        if self.host is not None and len(maps) == len(self.host[0]) and all(
                a is b for a, b in zip(maps, self.host[0])):
            mapped = self.host[1]
        else:
            mapped = len(s.mappers())
            self.host = (maps, mapped)
        out["host"] = {"free": len(s.host.free), "host use": len(s.host.in_use),
                       "backing guests": mapped}
        return out


def series_of(per_state: Sequence[dict[str, dict[str, int]]]) -> MemorySeries:
    """Series over the steps from the :func:`figures` of each state, in order."""
    panels = list(per_state[0]) if per_state else []
    data = {p: {k: tuple(f[p][k] for f in per_state) for k in per_state[0][p]} for p in panels}
    return MemorySeries(tuple(range(len(per_state))), data)


def series(states: Sequence[State]) -> MemorySeries:
    """The memory figures of each state, as series over the steps.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=1, guest_pages=2, machine_pages=2))
    >>> series([s, s]).data["vm0"]["backed"]
    (0, 0)
    """
    return series_of([figures(s) for s in states])


_STYLE = {"backed": "#1f77b4", "ballooned": "#2ca02c", "guest disk": "#9467bd",
          "host swap": "#d62728", "shared": "#ff7f0e", "free": "#17becf",
          "host use": "#8c564b", "backing guests": "#7f7f7f"}


def plot_png(mem: MemorySeries, *, failing_step: int | None = None,
             cycle: tuple[int, int] | None = None, vms: Sequence[int] | None = None) -> bytes:
    """A PNG plot: one panel per VM and one for the host, memory over the steps.

    The failing step is marked with a red line, a lasso's cycle is shaded.
    Uses matplotlib's Agg backend (no display needed).
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [f"vm{v}" for v in vms] if vms is not None else [p for p in mem.data if p != "host"]
    panels.append("host")
    fig = Figure(figsize=(8.5, 1.9 * len(panels) + 0.6), dpi=100)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    # One extra column so the state after the last step is drawn as a segment too.
    xs = list(mem.steps) + [len(mem.steps)]
    for ax, panel in zip(axes, panels):
        for i, (name, values) in enumerate(mem.data[panel].items()):
            # A small offset per series keeps equal lines from hiding each other.
            ys = [y + 0.03 * (i - 2) for y in values + values[-1:]]
            ax.step(xs, ys, where="post", label=name, color=_STYLE.get(name), linewidth=1.8)
        if failing_step is not None:
            ax.axvline(failing_step, color="#b00020", linewidth=1.2, linestyle="--")
        if cycle is not None:
            ax.axvspan(cycle[0] - 1, cycle[1], color="#4a78c2", alpha=0.12)
        top = max(max(v) for v in mem.data[panel].values())
        ax.set_ylim(-0.35, max(1, top) + 0.35)  # all-zero series stay readable
        title = "host (MPNs)" if panel == "host" else f"VM {panel[2:]} (PPNs)"
        ax.set_ylabel(title, fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel("after step")
    axes[-1].set_xlim(-0.3, len(mem.steps) - 0.2)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if failing_step is not None:
        axes[0].set_title(f"memory over the steps (red: step {failing_step} fails)", fontsize=10)
    else:
        axes[0].set_title("memory over the steps", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
