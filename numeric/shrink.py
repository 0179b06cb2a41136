# mypy: disable-error-code="no-any-return"
"""Shrinking a failing numeric run before it is reported.

Three stages, each candidate checked by replaying it:

1. keep only the VMs that matter (those the violation names, else delta
   debugging over per-VM groups of operations), renumbered into a config with
   that many VMs, checked on the numeric core;
2. delta debugging over single operations, then halving the sizes of the
   configuration (PPNs, VPNs, MPNs) while the failure persists, on the numeric core;
3. a last pass with the reference model itself (``ballast.simulation.shrink``), which also
   cuts the run at the model's first violation.

>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2, host_page_units=2)
>>> acts = [Action.of("guest_write", vm=0, vpn=0, token=1),
...         Action.of("host_take_page", host_page=0)]
>>> reproduces(cfg, ("host_takes_partial_page",), acts, "memory_conservation")
True
"""

from __future__ import annotations

import re

import numpy as np
from typing import Callable, Sequence

from ballast.errors import BallastError, GuardError
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.system import BalloonModel
from ballast.numeric.engine import Engine
from ballast.numeric.invariants import NUMERIC_INVARIANTS

__all__ = ["ddmin", "project_vms", "reproduces", "shrink_run", "first_failure"]


def first_failure(cfg: Config, faults: Sequence[str], actions: Sequence[Action], prop: str,
                  *, check_every: int = 1, check_from: int = 0) -> int | None:
    """Number of leading actions after which the numeric core sees ``prop`` broken, or None
    (an action the model would refuse also gives None)."""
    try:
        eng = Engine(cfg, faults)
    except BallastError:
        return None
    state_check = NUMERIC_INVARIANTS.get(prop)
    for i, act in enumerate(actions):
        try:
            eng.apply(act)
        except (GuardError, IndexError, ValueError):
            return None
        if any(sv.property == prop for sv in eng.step_violations):
            return i + 1
        eng.step_violations.clear()
        last = i == len(actions) - 1
        if state_check is not None and (last or (i + 1) % check_every == 0) and i >= check_from \
                and state_check(eng.arr) is not None:
            return i + 1
    return None


def reproduces(cfg: Config, faults: Sequence[str], actions: Sequence[Action], prop: str) -> bool:
    """True if replaying ``actions`` on the numeric core breaks ``prop`` at the last step."""
    return first_failure(cfg, faults, actions, prop, check_every=max(1, len(actions))) \
        == len(actions) and len(actions) > 0


def ddmin(items: list[Action], test: Callable[[list[Action]], bool],
          *, max_tests: int = 2000) -> list[Action]:
    """Delta debugging: a 1-minimal sublist (within ``max_tests``) that still passes ``test``.
    The last item (the failing step) is always kept."""
    if not items:
        return items
    body, last = items[:-1], items[-1]
    n = 2
    tests = 0
    while len(body) >= 1 and tests < max_tests:
        chunk = max(1, len(body) // n)
        reduced = False
        for start in range(0, len(body), chunk):
            cand = body[:start] + body[start + chunk:]
            tests += 1
            if test(cand + [last]):
                body = cand
                n = max(n - 1, 2)
                reduced = True
                break
            if tests >= max_tests:
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(body), n * 2)
    return body + [last]


def _vms_of(act: Action) -> set[int]:
    kw = act.kwargs
    out = set()
    for key in ("vm", "other_vm"):
        value = kw.get(key)
        if isinstance(value, int):
            out.add(value)
    return out


def project_vms(cfg: Config, actions: Sequence[Action], keep: Sequence[int]
                ) -> tuple[Config, list[Action]]:
    """The config with only VMs ``keep`` (renumbered 0..) and the actions on them."""
    order = sorted(set(keep))
    new = {v: i for i, v in enumerate(order)}
    small = cfg.replace(vms=len(order), hostile_vms=frozenset(
        new[v] for v in cfg.hostile_vms if v in new))
    if small.processors:
        small = small.replace(pcpus=cfg.pcpus - (cfg.vms - len(order)) * cfg.vcpus)
    out = []
    for act in actions:
        vms = _vms_of(act)
        if not vms <= set(new):
            continue
        kw = act.kwargs
        for key in ("vm", "other_vm"):
            value = kw.get(key)
            if isinstance(value, int):
                kw[key] = new[value]
        out.append(Action.of(act.name, **kw))
    return small, out


def _named_vms(message: str) -> list[int]:
    return sorted({int(x) for x in re.findall(r"VMs? \[?(\d+)", message)} |
                  {int(x) for x in re.findall(r"VM (\d+)", message)})


def _lower_last(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str
                ) -> list[Action]:
    """Try page numbers 0, 1, ... in the failing step (a low host page needs fewer steps)."""
    last = actions[-1]
    for key in ("host_page", "ppn", "vpn"):
        val = last.kwargs.get(key)
        if not isinstance(val, int):
            continue
        for lower in range(min(val, 8)):
            kw = last.kwargs
            kw[key] = lower
            cand = actions[:-1] + [Action.of(last.name, **kw)]
            if reproduces(cfg, faults, cand, prop):
                return cand
    return actions


def _reduce_sizes(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str
                  ) -> Config:
    for field in ("machine_pages", "guest_pages", "guest_data_pages"):
        while True:
            cur = getattr(cfg, field)
            nxt = cur // 2
            if field == "machine_pages":
                nxt -= nxt % cfg.host_page_units
            if nxt < 1:
                break
            try:
                cand = cfg.replace(**{field: nxt})
            except BallastError:
                break
            if not reproduces(cand, faults, actions, prop):
                break
            cfg = cand
    return cfg


def shrink_run(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str,
               message: str = "", *, max_tests: int = 400, clean_prefix: int = 0
               ) -> tuple[Config, list[Action], str]:
    """A small (config, actions, property) that still fails, confirmed by the reference model
    where the config is small enough to replay. The property may change only when the
    model's first violation on the shrunk run is another one."""
    actions = _up_to_first_failure(cfg, faults, actions, prop, clean_prefix)
    # 1. VMs
    cfg, actions = _fewer_vms(cfg, faults, actions, prop, message, max_tests)
    # 2. smaller page numbers in the failing step, operations, then sizes
    actions = _lower_last(cfg, faults, actions, prop)
    actions = ddmin(actions, lambda c: reproduces(cfg, faults, c, prop), max_tests=max_tests)
    cfg = _reduce_sizes(cfg, faults, actions, prop)
    # 3. the reference model itself, on the small config
    if cfg.vms * cfg.guest_pages <= 4096 and cfg.machine_pages <= 4096:
        actions, prop = _confirmed_by_model(cfg, faults, actions, prop, max_tests)
    return cfg, actions, prop


def _up_to_first_failure(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str,
                         clean_prefix: int) -> list[Action]:
    """``actions`` up to the first that breaks ``prop``: found coarsely (a check every
    sixteenth of the run), then exactly within the last stretch. ``clean_prefix`` leading
    actions are known to keep every invariant."""
    every = max(1, (len(actions) - clean_prefix) // 16)
    cut = first_failure(cfg, faults, actions, prop, check_every=every,
                        check_from=max(0, clean_prefix - 1))
    if cut is not None:
        actions = list(actions[:cut])
        fine = first_failure(cfg, faults, actions, prop, check_from=max(0, cut - every - 1))
        if fine is not None:
            actions = actions[:fine]
    return actions


def _suspect_vms(cfg: Config, faults: Sequence[str], actions: list[Action],
                 message: str) -> list[list[int]]:
    """Sets of VMs worth trying alone first: those the violation's message names, and the
    VMs whose pages the MPNs it names back (or backed) at the failure."""
    vm_sets: list[list[int]] = []
    named = [v for v in _named_vms(message) if v < cfg.vms]
    if named:
        vm_sets.append(named)
    mpns = [int(x) for x in re.findall(r"MPNs? \[?(\d+)", message)]
    if mpns:
        eng = Engine(cfg, faults)
        for act in actions:
            eng.apply(act)
        holders = sorted({int(v) for v in np.nonzero(np.isin(eng.arr.p2m, mpns))[0]})
        if holders:
            vm_sets.append(holders)
        vm_sets.append([v for v in sorted(set().union(*(_vms_of(a) for a in actions)))][:1])
    return vm_sets


def _fewer_vms(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str,
               message: str, max_tests: int) -> tuple[Config, list[Action]]:
    """The run on fewer VMs where it still fails: a suspect set alone
    (:func:`_suspect_vms`), else groups of the VMs it uses taken away while it fails."""
    used = sorted(set().union(*(_vms_of(a) for a in actions)) or {0})
    for keep in _suspect_vms(cfg, faults, actions, message):
        small, acts = project_vms(cfg, actions, keep)
        if acts and reproduces(small, faults, acts, prop):
            return small, acts

    def keeps(vs: list[int]) -> bool:
        small, acts = project_vms(cfg, actions, vs)
        return bool(acts) and reproduces(small, faults, acts, prop)

    body = list(used)
    n = 2
    tests = 0
    while len(body) > 1 and tests < max_tests // 4:
        chunk = max(1, len(body) // n)
        done = False
        for start in range(0, len(body), chunk):
            cand = body[:start] + body[start + chunk:]
            tests += 1
            if cand and keeps(cand):
                body, n, done = cand, max(n - 1, 2), True
                break
        if not done:
            if chunk == 1:
                break
            n = min(len(body), n * 2)
    if len(body) < len(used) and keeps(body):
        return project_vms(cfg, actions, body)
    return cfg, actions


def _confirmed_by_model(cfg: Config, faults: Sequence[str], actions: list[Action], prop: str,
                        max_tests: int) -> tuple[list[Action], str]:
    """The run replayed through the reference model: cut at the model's first violation
    (whose property it then reports), and shrunk by the model's own shrinker."""
    model = BalloonModel(cfg, faults)
    s = model.init_states()[0]
    for i, act in enumerate(actions):
        try:
            post = model.next_state(s, act)
        except GuardError:
            break
        bad = model.step_violations(s, act, post)
        s = post
        if bad:
            actions = actions[:i + 1]
            prop = bad[0].property
            break
    from ballast.simulation.shrink import shrink_actions
    return shrink_actions(model, actions, prop, max_checks=max_tests), prop

