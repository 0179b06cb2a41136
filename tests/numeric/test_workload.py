"""The workload draws state-dependent arguments among exactly what the model's guards admit."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Iterator

import numpy as np
import pytest

from ballast.model.actions import ACTIONS, enabled
from ballast.model.arguments import ARGUMENTS
from ballast.model.config import Config, preset
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.numeric.engine import Engine
from ballast.numeric.onehot import dense
from ballast.numeric.workload import draw_batch

CHOSEN = sorted(name for name, args in ARGUMENTS.items()
                if any(a.choices is not None for a in args.values()))


_LONGEST = 400
"""How long a run may go on until the action under test is enabled (40 steps at least)."""


_RARE: dict[str, int] = {"balloon_migrate_release": 4}
"""Actions that a rarer one leads to (a migration in flight): walks of this many seeds are
taken one after another until the action is enabled."""


def _walks(cfg: Config, name: str) -> Iterator[State]:
    """States of :func:`_walk` runs for action ``name``: one, or for a rare action one run
    per seed of :data:`_RARE` in turn."""
    for k in range(_RARE.get(name, 1)):
        yield from _walk(cfg, seed=len(name) + k, length=_LONGEST)


def _walk(cfg: Config, seed: int, length: int, resets_until: int = 40) -> Iterator[State]:
    """States of one random run of the model, rare actions as likely as common ones; after
    ``resets_until`` steps no guest resets (one undoes the balloon a deflate needs)."""
    model, rng = BalloonModel(cfg), random.Random(seed)
    s = model.init_states()[0]
    yield s
    for i in range(length):
        succ = list(model.successors(s))
        if not succ:
            break
        names = {a.name for a, _ in succ}
        if i >= resets_until:
            names = names - {"guest_reset"} or names
        pick = rng.choice(sorted(names))
        s = rng.choice([post for a, post in succ if a.name == pick])
        yield s


def _admitted(cfg: Config, s: State, name: str) -> tuple[dict[int, list[Any]], Any, Any]:
    """The arguments the model enables per VM, and the choices (and most) of the NumPy
    interpretation of the argument's kernel helpers for every VM."""
    key, arg = next((k, a) for k, a in ARGUMENTS[name].items() if a.choices is not None)
    ok: dict[int, list[Any]] = defaultdict(list)
    for act, _ in enabled(cfg, s, {name: ACTIONS[name]}):
        ok[act.kwargs["vm"]].append(act.kwargs[key])
    o = Engine.from_state(cfg, s)._ops(np.arange(cfg.vms, dtype=np.int64))
    pool = dense(arg.choices(o))
    most = None if arg.most is None else np.broadcast_to(arg.most(o), (cfg.vms,))
    return ok, pool, most


@pytest.mark.parametrize("name", CHOSEN)
@pytest.mark.parametrize("preset_name", ["default", "processors", "xen", "qemu", "vmware",
                                         "hinting"])
def test_choices_are_what_the_guard_admits(name: str, preset_name: str) -> None:
    cfg = preset(preset_name)
    if not ACTIONS[name].feature(cfg):
        pytest.skip(f"{name} is off in {preset_name}")
    seen = 0
    for i, s in enumerate(_walks(cfg, name)):
        if i >= 40 and seen:
            break
        ok, pool, most = _admitted(cfg, s, name)
        for vm in range(cfg.vms):
            chosen = set(np.flatnonzero(pool[vm]).tolist())
            if ARGUMENTS[name][next(iter(ARGUMENTS[name]))].kind == "refuse":
                # The VMM accepts among the valid reported pages, as many as it has room for.
                for refuse in ok[vm]:
                    accepted = chosen - set(refuse)
                    assert len(accepted) <= most[vm]
                seen += len(ok[vm])
            elif most is not None:
                # A set of pages: each enabled one is among the choices, no larger than most,
                # and every choice is taken by some enabled set.
                for ppns in ok[vm]:
                    assert set(ppns) <= chosen and len(ppns) <= most[vm], (s, vm, ppns)
                if ok[vm]:
                    assert set().union(*map(set, ok[vm])) == chosen
                    assert max(map(len, ok[vm])) == most[vm]
                seen += len(ok[vm])
            else:
                # One value: enabled ones are choices; once the action is enabled at all
                # (what the guard asks of the VM alone holds), the choices are exactly them.
                assert set(ok[vm]) <= chosen, (vm, ok[vm], chosen)
                if ok[vm]:
                    assert set(ok[vm]) == chosen
                seen += len(ok[vm])
    assert seen, f"{name} is never enabled on {_LONGEST} steps of {preset_name}"


@pytest.mark.parametrize("preset_name", ["default", "large-units"])
def test_draws_take_effect_where_the_guard_admits_them(preset_name: str) -> None:
    """Drawn among the choices, a batch of every chosen action mostly takes effect (with
    balloon units of several pages, drawn in whole units)."""
    cfg = preset(preset_name)
    for s in list(_walk(cfg, seed=3, length=60))[::10]:
        eng = Engine.from_state(cfg, s)
        rng = np.random.default_rng(0)
        for name in CHOSEN:
            if not ACTIONS[name].feature(cfg):
                continue
            vms, args = draw_batch(eng, rng, name, 1.0)
            ok, _, _ = _admitted(cfg, s, name)
            took = Engine.from_state(cfg, s).apply_batch(name, vms, **args)
            # A VM whose guard admits some value of the argument gets one that takes effect
            # (in a batch the host's free MPNs are shared; these actions take none).
            assert all(bool(took[k]) for k, vm in enumerate(vms.tolist()) if ok[vm]), name


def test_the_vmm_may_page_out_any_page_a_vm_over_its_target_holds() -> None:
    """The VMM's choice stays open: the choices of ``vmm_swap_over_target`` are exactly the
    pages the model lets it page out, every page the VM holds while over its target."""
    test_choices_are_what_the_guard_admits("vmm_swap_over_target", "hostile")


def test_the_host_gives_back_pages_it_took_among_many_host_pages() -> None:
    """At scale the host pages it uses are a few among tens of thousands: half the batches
    of host_return_page name one of them, so the action takes effect (drawn uniformly,
    it never did in ``ballast check``'s numeric runs)."""
    from ballast.numeric.scale import scaled

    cfg = scaled(preset("default"), vms=1024, pages=1024)
    eng = Engine(cfg)
    rng = np.random.default_rng(0)
    taken = returned = 0
    for _ in range(40):
        for name in ("host_take_page", "host_return_page"):
            hps, args = draw_batch(eng, rng, name, 0.5)
            ok = eng.apply_batch(name, hps, **args)
            taken += int(ok.sum()) if name == "host_take_page" else 0
            returned += int(ok.sum()) if name == "host_return_page" else 0
    assert cfg.host_pages > 500_000 and taken > 0
    assert returned >= 20, (taken, returned)  # 4 when drawn uniformly


def test_a_batch_of_no_vm_draws_whole_balloon_units_without_failing() -> None:
    # A batch's VMs are a random subset: on 4 VMs it is often none. Choosing whole balloon
    # units of no row used to stop the run with an internal error (`ballast fuzz --preset
    # large --fault oom_deflate_splits_unit --vms 4 --pages 16`, every seed but a few).
    from ballast.numeric.runner import fuzz_seed
    from ballast.numeric.scale import scaled, with_faults

    fault = "oom_deflate_splits_unit"
    cfg = with_faults(scaled(preset("large"), vms=4, pages=16), [fault], keep_sizes=True)
    assert cfg.balloon_unit_pages == 2
    runs = [fuzz_seed(cfg, seed=s, faults=(fault,), batches=100, shrink=False)
            for s in range(3)]
    assert all(r.error is None for r in runs)
    assert all(r.violation is not None or r.batches == 100 for r in runs)
    # The fault splits a unit: the runs that reach the OOM deflate see it.
    assert any(r.violation is not None and r.violation[0] == "balloon_units_whole"
               for r in runs)
