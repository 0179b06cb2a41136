# mypy: disable-error-code="no-any-return"
"""Random workloads for the numeric core: one action applied to many VMs per NumPy call.

Each *batch* picks an action of the model and a random set of VMs (host pages for
the host's actions on them), draws each VM's arguments as
:data:`ballast.model.arguments.ARGUMENTS` describes them (the guest's allocator
gives random free PPNs, or the lowest ones under the ``lowest`` policy; the module
deflates random balloon pages; the VMM accepts a random choice of the reported pages
it has room for; the LRU victim is evicted, ...) and applies them. Arguments whose
admitted values depend on the state are drawn among the ``choices`` it names with
the guards' kernel helpers, the others over the values it describes, leaning where
it says to (``prefer``, ``draws``, ``also``). Only
operations that took effect are logged, so the log is a legal sequence of
model actions: :func:`log_actions` turns it into ``Action`` values for a
trace.

>>> from ballast.model.config import Config
>>> from ballast.numeric.engine import Engine
>>> eng = Engine(Config(vms=3, guest_pages=8, machine_pages=12))
>>> log = run_batches(eng, np.random.default_rng(1), 20)
>>> sum(len(b.vms) for b in log) == len(log_actions(log))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import numpy.typing as npt

from ballast.model.actions import ACTIONS, Action
from ballast.model.arguments import ARGUMENTS, Argument
from ballast.model.config import Config
from ballast.model.over_target_kernels import held_pages
from ballast.numeric.arrays import IN_USE_BIT, UNBACKED_MPN
from ballast.numeric.engine import Engine
from ballast.numeric.fault_watch import FaultWatch
from ballast.numeric.onehot import OneHot, dense

__all__ = ["Batch", "WEIGHTS", "batch_actions", "draw_batch", "drawn_actions", "log_actions",
           "run_batches"]

Rng = np.random.Generator

WEIGHTS: dict[str, float] = {
    "host_set_target": 3, "host_set_cpu_target": 1, "host_take_page": 2, "host_return_page": 2,
    "host_swap_out": 2, "vmm_back_page": 1, "vmm_reclaim": 4, "vmm_release": 3, "vmm_share": 1,
    "vmm_cpu_reclaim": 1, "guest_read": 6, "guest_write": 8, "guest_evict": 3,
    "guest_reset": 0.3, "balloon_poll": 3, "balloon_inflate": 5, "balloon_deflate": 3,
    "balloon_complete": 4, "balloon_free_refused": 1, "balloon_cpu_offline": 1,
    "balloon_cpu_online": 1, "rogue_report": 1, "rogue_touch": 1, "rogue_set_actual": 0.3,
    "balloon_migrate": 2, "balloon_migrate_release": 2, "balloon_oom_deflate": 1,
    "balloon_report_free_pages": 2, "vmm_discard_reported": 2, "balloon_report_done": 2,
    "balloon_report_stats": 1,
    "rogue_cpu_park": 1, "rogue_cpu_online": 1, "vmm_enforce_cpu_target": 1,
    "vmm_drop_stale_reports": 1,
    "vmm_request_hints": 1, "vmm_stop_hints": 1, "balloon_hint_start": 2,
    "balloon_hint_free_pages": 2, "vmm_skip_hinted": 2, "balloon_freeze": 0.3,
    "balloon_restore": 1, "vmm_swap_over_target": 1,
}
"""Relative frequency of each action in random workloads (guest activity dominates)."""


@dataclass
class Batch:
    """Operations of one action that took effect, on distinct VMs (or host pages)."""

    name: str
    vms: npt.NDArray[np.int64]
    args: dict[str, Any]


def _pick(args: dict[str, Any], ok: npt.NDArray[np.bool_]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in args.items():
        out[k] = v[ok] if isinstance(v, np.ndarray) else [x for x, keep in zip(v, ok) if keep]
    return out


def _subset(rng: Rng, n: int, frac: float) -> npt.NDArray[np.int64]:
    if frac >= 1:
        return np.arange(n, dtype=np.int64)
    if frac <= 0 or n == 1:
        return np.array([rng.integers(n)], dtype=np.int64)
    return np.flatnonzero(rng.random(n) < frac).astype(np.int64)


def draw_batch(eng: Engine, rng: Rng, name: str, frac: float) -> tuple[Any, dict[str, Any]]:
    """VMs (or host pages) and arguments for one batch of ``name``."""
    cfg = eng.cfg
    if name in ("host_take_page", "host_return_page"):
        k = max(1, min(64, int(cfg.host_pages * min(frac, 0.05))))
        hps = _uniform(rng, cfg, name, "host_page", k)
        low = eng._lowest_free(1)
        # Half the batches name one host page the action is likely to apply to (the coin is
        # tossed only where an MPN is free, as seeded workloads have always tossed it).
        if len(low) and rng.random() < 0.5:
            if name == "host_take_page":
                # The host page at the edge of guest memory (partly free).
                hps[0] = int(low[0]) // cfg.host_page_units
            else:
                # A host page the host uses: among thousands the few it took are rarely
                # drawn uniformly (the uniform draw picks which of them).
                using = _host_pages_in_use(eng)
                if len(using):
                    hps[0] = int(using[int(hps[0]) % len(using)])
        return np.unique(hps), {}
    if name.startswith("rogue_"):
        hostile = sorted(cfg.hostile_vms)
        vms = np.array([hostile[rng.integers(len(hostile))]], dtype=np.int64)
    elif name == "vmm_share":
        return _share_pair(eng, rng)
    else:
        vms = _subset(rng, cfg.vms, frac)
    args = _drawn(eng, rng, name, vms)
    if name == "host_set_target":
        args["pages"] = _target_pages(eng, rng, vms, args["pages"])
    return vms, args


def _host_pages_in_use(eng: Engine) -> npt.NDArray[np.int64]:
    """The host pages every unit of which the host uses (what ``host_return_page`` takes)."""
    units = eng.cfg.host_page_units
    used = (eng.arr.mpn_flags[:eng.cfg.host_pages * units] & IN_USE_BIT) != 0
    return np.flatnonzero(used.reshape(-1, units).all(axis=1)).astype(np.int64)


def _target_pages(eng: Engine, rng: Rng, vms: npt.NDArray[np.int64],
                  pages: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The host's targets for ``vms``, in whole balloon units (what its guard admits).

    With ``vmm_reclaims_over_target``, a fifth of the batches ask back one page more than
    each VM leaves the host (rounded up to a whole unit): the VM is over its target until
    its balloon catches up, and the VMM may page it out meanwhile."""
    cfg = eng.cfg
    P, unit = cfg.guest_pages, cfg.balloon_unit_pages
    if cfg.vmm_reclaims_over_target and rng.random() < 0.2:
        o = eng._ops(vms)
        held = np.asarray(o.count(held_pages(o)), dtype=np.int64)
        over = np.clip(P - held + 1, 0, P)
        return np.minimum(-(-over // unit) * unit, P - P % unit)
    return pages - pages % unit


def _drawn(eng: Engine, rng: Rng, name: str, vms: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Every argument of ``name`` but the VM, for each VM of the batch, as
    :data:`~ballast.model.arguments.ARGUMENTS` describes it: among its ``choices`` where the
    guard admits only some values (evaluated by the NumPy interpreter for every VM of the
    batch at once), else over its values. Numbers are drawn first, in the action's
    parameter order, then named values (a queue, a command): the order the random stream
    of seeded workloads has kept."""
    cfg, n = eng.cfg, len(vms)
    ops: list[Any] = []

    def o() -> Any:
        """The kernels' operations over the batch's VMs (made once, when first asked)."""
        if not ops:
            ops.append(eng._ops(vms))
        return ops[0]

    args = ARGUMENTS[name]
    named = [key for key, arg in args.items()
             if arg.choices is None and not isinstance(arg.values(cfg), range)]
    out: dict[str, Any] = {}
    for key, arg in args.items():
        if key in named:
            continue
        if arg.choices is not None:
            out[key] = _chosen(rng, cfg, name, key, arg, o())
            continue
        values = arg.values(cfg)
        assert isinstance(values, range)
        if arg.also is not None and rng.random() < arg.also[0]:
            values = arg.also[1](cfg)
        elif arg.draws is not None:
            values = arg.draws(cfg)
        x = _within(rng, values, n)
        if arg.outlier is not None:
            far = rng.random(n) < arg.outlier[0]
            if far.any():
                x[far] = _within(rng, arg.outlier[1](cfg), int(far.sum()))
        for prefer in arg.prefer(cfg):
            pick = _random_pick(rng, dense(prefer(o())), np.ones(n, dtype=np.int64))
            x = np.where(pick.any(axis=1) & (rng.random(n) < 0.5), pick.argmax(axis=1), x)
        out[key] = x
    for key in named:
        # Named values: each equally likely.
        values = args[key].values(cfg)
        out[key] = [values[int(r * len(values))] for r in rng.random(n).tolist()]
    return {key: out[key] for key in args}


def _chosen(rng: Rng, cfg: Config, name: str, key: str, arg: Argument, o: Any) -> Any:
    """One argument drawn among the values the guard admits in the current state (its
    ``choices``), for every VM of the batch."""
    n = o.rows.n
    assert arg.choices is not None
    admitted = arg.choices(o)
    pool = dense(admitted)
    if arg.kind == "refuse":
        # How many valid reported pages the VMM accepts (as many as it has room for,
        # or with ``refusal`` sometimes fewer); it refuses the rest.
        assert arg.most is not None
        most = np.minimum(pool.sum(axis=1), np.asarray(arg.most(o), dtype=np.int64))
        acc = _pick_pages(rng, cfg, pool, _counts(rng, most, 0 if cfg.refusal else None),
                          arg.whole_units)
        return [tuple(np.flatnonzero(pool[k] & ~acc[k]).tolist()) for k in range(n)]
    if arg.most is not None:
        most = np.asarray(arg.most(o), dtype=np.int64)
        prefer = arg.prefer(cfg)
        for some in prefer:
            # Half the time (where there are any) the actor takes its pages among these.
            mask = pool & dense(some(o))
            lean = mask.any(axis=1) & (rng.random(n) < 0.5)
            pool = np.where(lean[:, None], mask, pool)
        if prefer:
            most = np.minimum(most, pool.sum(axis=1))
        room = _counts(rng, most, 1)
        return (pool & (np.cumsum(pool, axis=1) <= room[:, None]) if arg.lowest(cfg)
                else _pick_pages(rng, cfg, pool, room, arg.whole_units))
    # One value: where the guard leaves one (the LRU victim) or the actor takes the lowest
    # there is nothing to draw; a VM with none gets a value its guard refuses, and it is
    # not logged.
    if isinstance(admitted, OneHot):
        one = pool
    elif arg.lowest(cfg):
        one = pool & (np.cumsum(pool, axis=1) <= 1)
    else:
        one = _random_pick(rng, pool, np.ones(n, dtype=np.int64))
    none = (_uniform(rng, cfg, name, key, n) if arg.draw_when_none
            else arg.values(cfg)[0])
    return np.where(one.any(axis=1), one.argmax(axis=1), none).astype(np.int64)


def _within(rng: Rng, values: range, n: int) -> Any:
    """``n`` uniform draws over a range of numbers."""
    assert values.step == 1
    return rng.integers(values.start, values.stop, size=n)


def _uniform(rng: Rng, cfg: Config, name: str, arg: str, n: int) -> Any:
    """Uniform draws of an argument over the values the model describes for it
    (:data:`ballast.model.arguments.ARGUMENTS`, the proofs' instance lists too)."""
    values = ARGUMENTS[name][arg].values(cfg)
    assert isinstance(values, range)
    return _within(rng, values, n)


def _counts(rng: Rng, most: npt.NDArray[np.int64], least: int | None
            ) -> npt.NDArray[np.int64]:
    """How many pages each actor takes: mostly ``most``, a quarter of the time any number
    from ``least`` up (``least=None``: always ``most``)."""
    most = np.asarray(most, dtype=np.int64)
    if least is None:
        return most
    low = np.minimum(least, most)
    some = low + np.floor(rng.random(len(most)) * (most - low + 1)).astype(np.int64)
    return np.where(rng.random(len(most)) < 0.25, some, most)


def _random_pick(rng: Rng, mask: npt.NDArray[np.bool_], counts: npt.NDArray[np.int64]
                 ) -> npt.NDArray[np.bool_]:
    """Per row, ``counts`` of the set entries of ``mask`` chosen uniformly at random."""
    keys = np.where(mask, rng.random(mask.shape), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    return mask & (rank < np.asarray(counts)[:, None])


def _pick_pages(rng: Rng, cfg: Config, pool: npt.NDArray[np.bool_],
                counts: npt.NDArray[np.int64], whole_units: bool) -> npt.NDArray[np.bool_]:
    """Per row, up to ``counts`` pages of ``pool`` chosen uniformly at random; with
    ``whole_units``, in whole balloon units (``balloon_unit_pages``): units wholly in the
    pool, as many as fit."""
    u = cfg.balloon_unit_pages
    if u == 1 or not whole_units:
        return _random_pick(rng, pool, counts)
    # The width is named, not inferred: a batch of no row has no width to infer it from.
    units: npt.NDArray[np.bool_] = np.asarray(
        pool.reshape(len(pool), pool.shape[1] // u, u).all(axis=2))
    return np.repeat(_random_pick(rng, units, np.asarray(counts) // u), u, axis=1)


def _share_pair(eng: Engine, rng: Rng) -> tuple[Any, dict[str, Any]]:
    """Two backed guest pages with equal contents on different MPNs (or none)."""
    cfg, a = eng.cfg, eng.arr
    vs = rng.integers(0, cfg.vms, size=64)
    ps = rng.integers(0, cfg.guest_pages, size=64)
    m = a.p2m[vs, ps].astype(np.int64)
    keep = m != int(UNBACKED_MPN)
    vs, ps, m = vs[keep], ps[keep], m[keep]
    tok = a.content[m].astype(np.int64)
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            if m[i] != m[j] and tok[i] == tok[j]:
                x, y = sorted([(int(vs[i]), int(ps[i])), (int(vs[j]), int(ps[j]))])
                return np.array([x[0]], dtype=np.int64), {
                    "ppn": np.array([x[1]]), "other_vm": np.array([y[0]]),
                    "other_ppn": np.array([y[1]])}
    return np.zeros(0, dtype=np.int64), {"ppn": np.zeros(0, dtype=np.int64),
                                         "other_vm": np.zeros(0, dtype=np.int64),
                                         "other_ppn": np.zeros(0, dtype=np.int64)}


def drawn_actions(cfg: Config) -> list[str]:
    """The actions the random workload draws under ``cfg``: those it switches on, with a
    weight, a rogue guest's only where a VM is hostile."""
    return [n for n, spec in ACTIONS.items() if spec.feature(cfg) and WEIGHTS.get(n, 0) > 0
            and (not n.startswith("rogue_") or cfg.hostile_vms)]


def enabled_names(eng: Engine) -> list[str]:
    """Actions that exist in the engine's configuration."""
    return drawn_actions(eng.cfg)


def run_batches(eng: Engine, rng: Rng, batches: int, *, frac: float = 0.5,
                check: Any = None) -> list[Batch]:
    """Apply ``batches`` random batches; return the log of operations that took effect.

    ``check(batch_index, batch)`` is called after each batch (invariant checks);
    a true result stops the run.
    """
    names = enabled_names(eng)
    w = np.array([WEIGHTS[n] for n in names], dtype=float)
    w /= w.sum()
    log: list[Batch] = []
    for i in range(batches):
        name = names[int(rng.choice(len(names), p=w))]
        b = step_batch(eng, rng, name, frac)
        if b is not None:
            log.append(b)
        if check is not None and check(i, b):
            break
    return log


def step_batch(eng: Engine, rng: Rng, name: str, frac: float,
               watch: FaultWatch | None = None, batch: int = 0) -> Batch | None:
    """Draw and apply one batch of ``name``; the applied part, or None. ``watch`` compares
    a seeded fault's step with the model's own (the batch is number ``batch``)."""
    vms, args = draw_batch(eng, rng, name, frac)
    if len(vms) == 0:
        return None
    probe = watch.before(name, vms, args) if watch is not None else None
    ok = eng.apply_batch(name, vms, **args)
    if watch is not None:
        watch.after(probe, ok, batch=batch)
    if not ok.any():
        return None
    return Batch(name, np.asarray(vms)[ok], _pick(args, ok))


def batch_actions(b: Batch) -> Iterator[Action]:
    """The model actions of one batch, in order."""
    spec = ACTIONS[b.name]
    first = "host_page" if "host_page" in spec.params else "vm"
    for k, v in enumerate(b.vms.tolist()):
        kw: dict[str, Any] = {first: v}
        for p in spec.params:
            if p == first:
                continue
            val = b.args[p][k]
            if isinstance(val, np.ndarray) and val.dtype == bool:
                kw[p] = tuple(int(x) for x in np.flatnonzero(val))
            elif isinstance(val, (tuple, list)):
                kw[p] = tuple(int(x) for x in val)
            elif isinstance(val, str):
                kw[p] = val
            else:
                kw[p] = int(val)
        yield Action.of(b.name, **{p: kw[p] for p in spec.params})


def log_actions(log: list[Batch]) -> list[Action]:
    """Every operation of a run as model actions, in the order applied."""
    return [act for b in log for act in batch_actions(b)]
