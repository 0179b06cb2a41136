"""``ballast check`` integration: exhaustive exploration of small feature slices.

The configuration ``ballast check`` runs is far too large to explore completely
(the ``default`` preset's smallest copy with every feature on has well over a
million reachable states), so the explorer checks **slices** of it: for each
feature the configuration switches on, the smallest configuration that has the
protocol core plus that feature (:func:`feature_slices`). Each slice is explored
completely, with symmetry reduction; a property passes only if it held in every
reachable state of every slice, and a slice that runs out of budget (distinct
states per slice, ``budget.max_states``; wall-clock time only when the user
asked for it) makes the result inconclusive, naming the flag that raises it.
Liveness is checked, without symmetry, on the protocol slice under weak
fairness (``weak``) and on the refusal slice under
``strong-accept``: a host that refuses every page forever keeps any balloon
from its target (``ballast explore --liveness`` shows it as a lasso under
``weak``), so there the VMM's acceptance of a whole inflate report is assumed
strongly fair, i.e. the VMM does not refuse forever. The merged verdict names
the fairness each slice assumed. Scenarios and actions count as exercised if
any slice exercised them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ballast.model import encodings
from ballast.progress import Meter, meter
from ballast.budget import WorkBudget, out_of_budget, out_of_time
from ballast.model.actions import vmm_keeps_host_pages
from ballast.model.config import Config
from ballast.model.recovery import REACH_PROPERTIES
from ballast.statespace.configs import fewest_tokens
from ballast.statespace.encodes import sliced
from ballast.statespace.explore import Budget, Exploration
from ballast.statespace.liveness import REACHES, STRONG_ACCEPT, WEAK
from ballast.statespace.runner import run_explore, unchecked_liveness
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["DRIVER_FEATURES", "LIVENESS_MAX_STATES", "VIRTIO_1X_FEATURES", "feature_slices",
           "liveness_fairness", "reach_slice", "suite_check"]

LIVENESS_MAX_STATES = 30000
"""Liveness is checked in the suite only on slices this small (with symmetry)."""


def _memory_features_off(cfg: Config) -> Config:
    """``cfg`` with the memory features beyond the classic protocol switched off, and the
    one page content that is then enough (no poison value to tell from old data)."""
    return cfg.replace(deflate_on_oom=False, oom_notifier=False, reread_target=False,
                       migration=False, eager_backing=False, free_page_reporting=False,
                       page_poison=False, poison_val=0, stats_queue=False,
                       vmm_bounds_queues=False, reset_races_reports=False,
                       vmm_reclaims_over_target=False, tokens=1)


DRIVER_FEATURES = ("deflate_on_oom", "oom_notifier", "reread_target", "migration")
"""The guest driver's own paths beyond inflate and deflate (Linux's OOM notifier, compaction,
re-reading the target): explored in a ``driver`` slice of their own where a configuration
also has the virtio 1.x features."""

VIRTIO_1X_FEATURES = ("free_page_reporting", "page_poison", "stats_queue")
"""The virtio 1.x queues and their page contents: explored in a ``virtio-1x`` slice of their
own where a configuration also has the driver's features."""


def _split_memory_features(cfg: Config) -> bool:
    """Whether ``cfg`` has features of both groups, so that each group gets a slice of its
    own and the other slices none: all of them together in every slice multiply the states
    past any budget (the virtio 1.x features alone on the protocol slice reach about 263,000
    states with symmetry)."""
    return (any(getattr(cfg, f) for f in DRIVER_FEATURES)
            and any(getattr(cfg, f) for f in VIRTIO_1X_FEATURES))


def feature_slices(cfg: Config) -> dict[str, Config]:
    """Small configurations that together cover the features ``cfg`` switches on.

    >>> from ballast.model.config import preset
    >>> sorted(feature_slices(preset("default")))
    ['hostile', 'processors', 'protocol', 'refusal', 'reset', 'sharing-and-host-swap', 'two-vms']

    Where a configuration has both the driver's paths and the virtio 1.x features (the
    hostile preset), each group is a slice of its own, the VMM's flood bound is in the hostile
    slice and reports racing a reset in the reset slice:

    >>> sorted(feature_slices(preset("hostile")))  # doctest: +NORMALIZE_WHITESPACE
    ['driver', 'hibernation', 'hinting', 'host-pages', 'hostile', 'hostile-processors',
     'over-target', 'processors', 'protocol', 'refusal', 'reset', 'sharing-and-host-swap',
     'two-vms', 'virtio-1x']
    """
    if _split_memory_features(cfg):
        return _split_slices(cfg)
    return _slices(cfg)


def _split_slices(cfg: Config) -> dict[str, Config]:
    """:func:`feature_slices` of a configuration with both groups of memory features."""
    out = _slices(_memory_features_off(cfg))
    core = out["protocol"]
    out["driver"] = core.replace(**{f: getattr(cfg, f) for f in DRIVER_FEATURES})
    # One PPN (one balloon unit) and the guest's disk: the guest frees, reports and reuses
    # its page (two PPNs reach about 44,000 states without the disk, 263,000 with it).
    unit = cfg.balloon_unit_pages
    out["virtio-1x"] = core.replace(guest_pages=unit, machine_pages=unit,
                                    poison_val=cfg.poison_val,
                                    tokens=fewest_tokens(cfg),
                                    **{f: getattr(cfg, f) for f in VIRTIO_1X_FEATURES})
    # The VMM backing pages ahead of use in the protocol slice alone: in every slice it grows
    # the hostile preset's exploration by more than a third.
    out["protocol"] = core.replace(eager_backing=cfg.eager_backing)
    # The VMM's flood bound where a hostile guest floods, reports racing a reset where a reset
    # happens; without either, the protocol slice keeps the switch (it changes nothing there).
    for switch, where in (("vmm_bounds_queues", "hostile"), ("reset_races_reports", "reset")):
        home = where if where in out else "protocol"
        out[home] = out[home].replace(**{switch: getattr(cfg, switch)})
    if "sharing-and-host-swap" in out:  # the VMM pages a VM over its target out to swap
        out["sharing-and-host-swap"] = out["sharing-and-host-swap"].replace(
            vmm_reclaims_over_target=cfg.vmm_reclaims_over_target)
    if cfg.vmm_reclaims_over_target:
        out["over-target"] = _slices(cfg)["over-target"]
    return out


def _slices(cfg: Config) -> dict[str, Config]:
    """:func:`feature_slices` where every slice keeps the configuration's memory features."""
    core = cfg.replace(
        vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=1, machine_pages=2,
        host_page_units=1, host_swap_slots=0, tokens=fewest_tokens(cfg),
        batch=cfg.balloon_unit_pages,  # one balloon unit a report (one page by default)
        kernel_reserve=min(cfg.kernel_reserve, 1), pin_limit=min(cfg.pin_limit, 1),
        refusal=False, sharing=False, host_swap=False, reset=False, processors=False,
        hostile_vms=frozenset(), free_page_hint=False, hibernation=False)
    quiet = core.replace(host_use=False)
    out = {"protocol": core}
    # Free page hinting and hibernation have slices of their own, as small as the pinned
    # one-VM configurations: with the protocol slice's host use and second MPN, a hint cycle's
    # sets and ids multiply its states by more than ten.
    one = quiet.guest_pages if cfg.guest_system else 1  # a guest system's pages are machine pages
    if cfg.free_page_hint:
        out["hinting"] = quiet.replace(free_page_hint=True, machine_pages=one, guest_disk_slots=0)
    if cfg.hibernation:
        out["hibernation"] = quiet.replace(hibernation=True, machine_pages=one, guest_disk_slots=0)
    if cfg.refusal:
        out["refusal"] = quiet.replace(refusal=True)
    if cfg.sharing or cfg.host_swap:
        out["sharing-and-host-swap"] = quiet.replace(
            sharing=cfg.sharing, host_swap=cfg.host_swap,
            host_swap_slots=1 if cfg.host_swap else 0)
    if cfg.reset:
        out["reset"] = quiet.replace(reset=True)
    if cfg.processors:
        out["processors"] = quiet.replace(processors=True, guest_pages=1, guest_data_pages=0,
                                          guest_disk_slots=0, machine_pages=1,
                                          vcpus=min(cfg.vcpus, 2), pcpus=min(cfg.vcpus, 2) + 1)
    if cfg.hostile_vms:
        out["hostile"] = quiet.replace(hostile_vms=frozenset({0}), guest_pages=1,
                                       guest_data_pages=0, guest_disk_slots=0, machine_pages=1)
    if cfg.hostile_vms and cfg.processors and cfg.vmm_enforces_cpu_target:
        # A hostile guest's rogue memory steps alone reach tens of thousands of states on one
        # page; the processor states multiply them, so every other memory feature (each
        # explored in a slice of its own) is off here, and the VM has one vCPU on one
        # processor: the hostile guest still parks it, unparks it and claims it back, and the
        # VMM still stops it beyond a CPU target of 0 (two vCPUs pass the explorer's budget).
        # Pinned as ``one-vm-hostile-processors``.
        out["hostile-processors"] = _memory_features_off(quiet).replace(
            processors=True, hostile_vms=frozenset({0}), guest_pages=1, guest_data_pages=0,
            guest_disk_slots=0, machine_pages=1, vcpus=1, pcpus=1)
    if cfg.vmm_reclaims_over_target:
        # The VMM paging out a VM over its target, beside another VM whose pages it must
        # leave alone: two honest VMs show it (the step is the VMM's, whatever the guest).
        out["over-target"] = _memory_features_off(quiet).replace(
            vmm_reclaims_over_target=True, vms=2, guest_pages=1, guest_disk_slots=0,
            machine_pages=2, host_swap_slots=1, hostile_vms=frozenset())
    if cfg.host_page_units > 1:
        out["host-pages"] = core.replace(host_page_units=2, machine_pages=4, guest_disk_slots=0)
    if cfg.vms > 1 and (cfg.sharing or cfg.host_use):
        out["two-vms"] = quiet.replace(vms=2, guest_pages=1, guest_disk_slots=0, machine_pages=2,
                                       sharing=cfg.sharing, host_use=cfg.host_use)
    if cfg.guest_system and cfg.vms > 1:
        # Two generic guest systems, each on its own machine pages.
        out["two-guests"] = quiet.replace(vms=2, guest_pages=1, guest_disk_slots=0,
                                          machine_pages=2)
    if vmm_keeps_host_pages(cfg):
        # Two VMs on host pages of two units: the VMM keeps each host page to one VM.
        out["host-pages-two-vms"] = quiet.replace(
            vms=2, guest_pages=1, guest_disk_slots=0, host_page_units=2, machine_pages=4,
            host_use=cfg.host_use)
    return out


def liveness_fairness(name: str, small: Config) -> str | None:
    """The fairness choice slice ``name`` checks liveness under, or None for no liveness.

    The protocol slice assumes weak fairness; a slice where the VMM may refuse pages
    assumes as well that it does not refuse forever (``strong-accept``).

    >>> from ballast.model.config import preset
    >>> slices = feature_slices(preset("default"))
    >>> {name: liveness_fairness(name, c) for name, c in slices.items()
    ...  if liveness_fairness(name, c)}
    {'protocol': 'weak', 'refusal': 'strong-accept'}
    """
    if small.refusal:
        return STRONG_ACCEPT
    return WEAK if name == "protocol" else None


def reach_slice(small: Config) -> bool:
    """Whether a slice has a property over runs of the model (``host_recovers_to_target``)
    whose assumption it can meet, so that its full graph is checked for it, with or without
    the balloon's liveness (a slice whose liveness is checked anyway reports the others
    skipped, naming why).

    >>> from ballast.model.config import preset
    >>> sorted(name for name, c in feature_slices(preset("hostile")).items()
    ...        if reach_slice(c) and liveness_fairness(name, c) is None)
    ['over-target', 'sharing-and-host-swap']

    Like liveness, it is checked only where the slice has at most :data:`LIVENESS_MAX_STATES`
    states (with symmetry); a larger slice reports these properties skipped, naming its size,
    and a slice stopped by its budget reports them inconclusive.
    """
    return any(p.feature(small) and p.unmet(small) is None for p in REACH_PROPERTIES.values())


def _with_reason(results: list[PropertyResult], why: str | None) -> list[PropertyResult]:
    """Inconclusive results of a stopped exploration, their detail saying which budget ran out."""
    if why is None:
        return results
    return [PropertyResult(r.property, r.checker, r.verdict, why, r.evidence,
                           r.counterexample, r.kind)
            if r.verdict is Verdict.INCONCLUSIVE else r for r in results]


def _skipped(results: list[PropertyResult]) -> list[PropertyResult]:
    """``results`` as skipped by design, with their reasons."""
    return [PropertyResult(r.property, r.checker, Verdict.SKIPPED, r.detail, r.evidence,
                           kind=r.kind) for r in results]


_RANK = {Verdict.VIOLATION: 3, Verdict.INCONCLUSIVE: 2, Verdict.VACUOUS: 1, Verdict.PASS: 0,
         Verdict.SKIPPED: -1}


def _merge(name: str, kind: str, rows: list[tuple[str, PropertyResult]]) -> PropertyResult:
    """One result per property over all slices: the worst verdict for a safety property,
    the best for a scenario or an action (exercised in any slice is enough)."""
    if kind == "invariant":
        worst = max(rows, key=lambda r: _RANK[r[1].verdict])
        verdict = worst[1].verdict
        if verdict is Verdict.PASS:
            # A slice where the property was skipped by design is named as such, not
            # counted among those where it held.
            skipped = [(s, r) for s, r in rows if r.verdict is Verdict.SKIPPED]
            rows = [(s, r) for s, r in rows if r.verdict is not Verdict.SKIPPED]
            states = sum(int(r.evidence.get("states", 0)) for _, r in rows)
            detail = (f"held in every reachable state of {len(rows)} slices "
                      f"({', '.join(s for s, _ in rows)}): {states:,} states")
            evidence: dict[str, object] = {"states": states, "slices": [s for s, _ in rows]}
            if skipped:
                detail += "; " + "; ".join(f"[{s}] {r.detail}" for s, r in skipped)
                evidence["skipped"] = {s: r.detail for s, r in skipped}
            # Eventual reach holds only under a fairness assumption, which may differ per slice.
            fairness = {s: r.evidence["fairness_choice"] for s, r in rows
                        if name == REACHES and "fairness_choice" in r.evidence}
            if fairness:
                detail += "; fairness: " + ", ".join(f"{s} {f}" for s, f in fairness.items())
                evidence["fairness"] = fairness
            return PropertyResult(name, "explore", verdict, detail, evidence, kind=kind)
        res = worst[1]
        return PropertyResult(name, "explore", verdict, f"[{worst[0]}] {res.detail}",
                              {**res.evidence, "slice": worst[0]}, res.counterexample, kind=kind)
    good = [(s, r) for s, r in rows if r.verdict is Verdict.PASS]
    if good:
        return PropertyResult(name, "explore", Verdict.PASS,
                              f"{good[0][1].detail} [{good[0][0]}]", kind=kind)
    worst = max(rows, key=lambda r: _RANK[r[1].verdict])
    return PropertyResult(name, "explore", worst[1].verdict,
                          f"in no slice: {worst[1].detail}", kind=kind)


def _why_stopped(ex: Exploration, budget: WorkBudget) -> str | None:
    """Which budget stopped an incomplete exploration, and how to raise it (None if complete)."""
    if ex.complete or ex.stop_reason == "violation":
        return None
    done = f"stopped after {ex.states:,} states"
    if ex.stop_reason == "max_seconds":
        return out_of_time(done, budget.max_seconds or 0)
    return out_of_budget(done, "--max-states")


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget: WorkBudget = WorkBudget()) -> CheckResult:
    """Explore every feature slice of ``cfg``, each within ``budget.max_states`` states
    (and the wall-clock limit ``budget.max_seconds`` in all, if set); ``seed`` is unused:
    exploration is exhaustive. Every slice is run; one stopped by a budget is
    inconclusive."""
    start = time.monotonic()
    slices = feature_slices(cfg)
    rows: dict[tuple[str, str], list[tuple[str, PropertyResult]]] = {}
    stats: dict[str, object] = {}
    states = 0

    def limits() -> Budget:
        left = None if budget.max_seconds is None else \
            max(0.001, budget.max_seconds - (time.monotonic() - start))
        return Budget(max_states=budget.max_states, max_seconds=left)

    for name, small in slices.items():
        with meter(f"explore [{name}]", unit="states") as shown:
            run = run_explore(small, faults=faults, symmetry=True, budget=limits(),
                              report_dir=report_dir, progress=_show_on(shown))
            _show_on(shown)(run.exploration)
        ex = run.exploration
        states += ex.states
        stats[name] = {"states": ex.states, "complete": ex.complete,
                       "seconds": round(ex.seconds, 2)}
        results = _with_reason(list(run.result.results), _why_stopped(ex, budget))
        fairness = liveness_fairness(name, small)
        reach_only = fairness is None and reach_slice(small)

        def over_runs(found: list[PropertyResult]) -> list[PropertyResult]:
            """The results of the properties over runs this slice checks."""
            return [r for r in found if r.evidence.get("form") == "liveness" and (
                not reach_only or r.property in REACH_PROPERTIES)]

        if fairness is None and not reach_only:
            pass
        elif ex.complete and not ex.violations and ex.states <= LIVENESS_MAX_STATES:
            with meter(f"liveness [{name}]", unit="states") as shown:
                live = run_explore(small, faults=faults, symmetry=False, liveness=True,
                                   budget=limits(), report_dir=report_dir,
                                   fairness=fairness or WEAK, progress=_show_on(shown))
            assert live.liveness_exploration is not None
            why = _why_stopped(live.liveness_exploration, budget)
            results += _with_reason(over_runs(list(live.result.results)), why)
        elif ex.complete and not ex.violations:
            # By design: the full graph of a slice this large costs more than the check.
            results += _skipped(over_runs(unchecked_liveness(
                small, fairness or WEAK, f"the slice has {ex.states:,} states (with "
                f"symmetry), over the {LIVENESS_MAX_STATES:,} whose full graph is searched",
                {"states": ex.states})))
        else:
            why = ("a safety property is broken" if ex.violations else
                   f"the slice's exploration {_why_stopped(ex, budget)}")
            results += over_runs(unchecked_liveness(small, fairness or WEAK, why,
                                                    {"states": ex.states}))
        for r in results:
            rows.setdefault((r.kind, r.property), []).append((name, r))
    merged = [_merge(prop, kind, rs) for (kind, prop), rs in rows.items()]
    gaps = encodings.gaps(sliced(slices), cfg, faults)
    merged = [_with_gap(r, gaps) for r in merged]
    return CheckResult("explore", merged, time.monotonic() - start,
                       {"states": states, "slices": stats})


def _show_on(shown: Meter) -> Callable[[Exploration], None]:
    """An exploration's progress callback showing its states and depth on ``shown``."""
    return lambda ex: shown.update(ex.states, note=f"depth {ex.max_depth}")


def _with_gap(r: PropertyResult, gaps: encodings.Gaps) -> PropertyResult:
    """A pass on a property the slices do not fully cover becomes inconclusive."""
    if r.kind != "invariant" or r.verdict is not Verdict.PASS or not gaps.affects(r.property):
        return r
    return PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE,
                          gaps.reason(r.property, "explored"),
                          {**r.evidence, "gap": gaps.what(r.property)}, kind=r.kind)
