"""The properties and scenarios the frontier engine checks over a batch.

:class:`StateChecks` checks the state properties on the new states of a batch (by their
kernels over the rows, else answered once per part where that is all they read);
:class:`StepChecks` checks the step properties and notes the scenarios witnessed over the
steps of a batch (planned per action when it is first met), by their kernels over the
rows where they have one.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import numpy as np
import numpy.typing as npt

from ballast.model.actions import ACTIONS, Action
from ballast.model.invariants import Property
from ballast.model.property_kernels import PROPERTY_KERNELS, StepKernel
from ballast.model.sometimes import Scenario
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.frontier_batch import Batch, Chosen, Flagged, Ordered
from ballast.statespace.frontier_exploration import FrontierExploration
from ballast.statespace.frontier_kernels import (UNREAD, property_kernel_of,
                                                 scenario_kernel_of, step_kernel_of,
                                                 without_state)
from ballast.statespace.frontier_parts import MISSING, REAL, Memos, PartIds, groups
from ballast.statespace.frontier_rows import (own_columns_read, property_holds_on_rows,
                                              step_holds_on_rows)
from ballast.statespace.keyset import unique_rows
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.transitions import ReadElsewhere, WatchedHost, WatchedVm

__all__ = ["Broken", "StateChecks", "StepChecks"]

Ints = npt.NDArray[np.int64]

_Answers = tuple[list[Any], dict[str, Any]]
"""Per step property of an action's plan its answer, per open scenario whether witnessed."""

Broken = list[tuple[str, str]]
"""(property, message) of each property broken."""


class StateChecks:
    """The state properties: on the initial states, and on batches of new states by their
    kernels or answered per part where that is all they read."""

    def __init__(self, model: BalloonModel, lay: RowLayout, props: list[Property], memo: Memos,
                 local: Callable[[State, int | None], State]) -> None:
        cfg = self.cfg = model.cfg
        self.lay = lay
        self.memo = memo
        self.local = local
        self.props = [p for p in props if p.state is not None]
        self.p2m_ids = PartIds(lay, [list(lay.cols("p2m", v)) for v in range(cfg.vms)])
        self.by_kernel = [p for p in self.props if property_kernel_of(model, p) is not None]
        rest = [(pi, p) for pi, p in enumerate(self.props) if p not in self.by_kernel]
        self.vm_props = [(pi, p) for pi, p in rest if p.per_vm is not None]
        self.whole_props = [(pi, p) for pi, p in rest if p.per_vm is None]

    def of_initial(self, s: State) -> Broken:
        """The state properties ``s`` breaks, each checked on the whole state."""
        cfg = self.cfg
        return [(p.name, msg) for p in self.props if (msg := p.check_state(cfg, s)) is not None]

    def broken(self, s: State) -> Broken:
        """The state properties ``s`` breaks, answered per part where remembered."""
        cfg = self.cfg
        out = []
        for pi, p in enumerate(self.props):
            if p.per_vm is not None:
                msg = next((m for v in p.checked_vms(cfg)
                            if (m := self.vm_check(pi, p, s, v)) is not None), None)
            else:
                msg = self.global_check(pi, p, s)
            if msg is not None:
                out.append((p.name, msg))
        return out

    def vm_check(self, pi: int, p: Property, s: State, v: int) -> str | None:
        """Per-VM property ``p`` on VM ``v`` of ``s``, remembered by the host and VM parts."""
        assert p.per_vm is not None
        cfg, memo = self.cfg, self.memo.state
        key = (pi, v, id(s.host), id(s.vms[v]))
        got = memo.get(key, MISSING)
        if got is MISSING:
            try:
                got = p.per_vm(cfg, self.local(s, v), v)
            except ReadElsewhere:
                got = REAL
            memo[key] = got
        if got is REAL:
            return p.per_vm(cfg, s, v)
        return cast("str | None", got)

    def global_check(self, pi: int, p: Property, s: State) -> str | None:
        """A whole-state check, remembered by the host part and every VM's map when that is
        all it read (as the reference's state checks do)."""
        memo = self.memo.state
        key = (pi, id(s.host), tuple(vm.p2m for vm in s.vms))
        got = memo.get(key, MISSING)
        if got is not MISSING:
            return cast("str | None", got)
        watched = tuple(WatchedVm.of(vm) for vm in s.vms)
        msg = p.check_state(self.cfg, State(s.host, watched))
        if all(vm.fields_read <= {"p2m"} for vm in watched):
            memo[key] = msg
        return msg

    def kernels_broken(self, new_rows: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a property checked by its kernel breaks: every kernel on
        the whole batch of rows at once."""
        cfg, lay = self.cfg, self.lay
        broken = np.zeros(len(new_rows), dtype=bool)
        for p in self.by_kernel:
            kernel = PROPERTY_KERNELS[p.name]
            if kernel.host is not None:
                broken |= ~property_holds_on_rows(kernel.host, lay, new_rows)
            if kernel.each_vm is not None:
                for v in p.checked_vms(cfg):
                    broken |= ~property_holds_on_rows(kernel.each_vm, lay, new_rows, v)
        return broken

    def dirty(self, new_rows: npt.NDArray[np.int16], hid: Ints, vid: Ints, ks: Ints,
              state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether some state invariant may break (then it is checked on the
        state itself): answers per distinct (host, VM) part and per distinct (host, maps)."""
        dirty = (self.kernels_broken(new_rows) if self.by_kernel
                 else np.zeros(len(ks), dtype=bool))
        for v in range(self.cfg.vms) if self.vm_props else ():
            dirty |= self.vm_dirty(v, hid, vid, ks, state_of)
        if self.whole_props:
            dirty |= self.whole_dirty(new_rows, hid, ks, state_of)
        return dirty

    def vm_dirty(self, v: int, hid: Ints, vid: Ints, ks: Ints,
                 state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a per-VM property may break on VM ``v``: answered once per
        distinct (host part, VM part) on the VM's part alone."""
        cfg, memo, vm_props = self.cfg, self.memo.vm_checks, self.vm_props
        ids, firsts, inv = groups([hid, vid[:, v]])
        bad = []
        for g, ((h, x), i0) in enumerate(zip(ids, firsts)):
            key = (v, h, x)
            got = memo.get(key)
            if got is None:
                loc = self.local(state_of(int(ks[i0])), v)
                got = False
                for _, p in vm_props:
                    if v not in p.checked_vms(cfg):
                        continue
                    assert p.per_vm is not None
                    try:
                        got = p.per_vm(cfg, loc, v) is not None
                    except ReadElsewhere:
                        got = True
                    if got:
                        break
                memo[key] = got
            if got:
                bad.append(g)
        return np.isin(inv, bad) if bad else np.zeros(len(inv), dtype=bool)

    def whole_dirty(self, new_rows: npt.NDArray[np.int16], hid: Ints, ks: Ints,
                    state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a whole-state property may break: answered once per
        distinct (host part, every VM's map) where the properties read no more."""
        cfg, memo, whole_props = self.cfg, self.memo.whole_checks, self.whole_props
        maps = self.p2m_ids.of_columns(new_rows)
        ids, firsts, inv = groups([hid] + [maps[:, v] for v in range(cfg.vms)])
        bad = []
        for g, (key_ids, i0) in enumerate(zip(ids, firsts)):
            wkey = tuple(key_ids)
            got = memo.get(wkey)
            if got is None:
                s_ = state_of(int(ks[i0]))
                watched = tuple(WatchedVm.of(vm) for vm in s_.vms)
                local_s = State(s_.host, watched)
                broken = any(p.check_state(cfg, local_s) is not None for _, p in whole_props)
                got = broken or not all(vm.fields_read <= {"p2m"} for vm in watched)
                memo[wkey] = got
            if got:
                bad.append(g)
        return np.isin(inv, bad) if bad else np.zeros(len(inv), dtype=bool)


class StepChecks:
    """The step properties and the scenarios: planned per action when it is first met, and
    answered over the steps of each batch."""

    def __init__(self, model: BalloonModel, lay: RowLayout, props: list[Property],
                 ex: FrontierExploration, act_vm: list[int],
                 local: Callable[[State, int | None], State], memo: Memos,
                 part_ids: PartIds) -> None:
        cfg = self.cfg = model.cfg
        self.lay = lay
        self.ex = ex
        self.actions = ex.actions
        self.act_vm = act_vm
        """Per action id: the VM its ``vm`` argument names (-1: none)."""
        self.local = local
        self.memo = memo
        self.part_ids = part_ids
        self.props = [p for p in props if p.step is not None]
        scenarios = model.scenarios()
        self.witness_kernels = {sc.name: (sc, wk) for sc in scenarios
                                if (wk := scenario_kernel_of(model, sc)) is not None}
        """Per scenario witnessed over whole batches of steps by its kernel: the scenario and
        its kernel (the model's predicate confirms the step the kernel finds)."""
        self.open: list[Scenario] = [sc for sc in scenarios
                                     if sc.name not in self.witness_kernels]
        """The scenarios the model is asked of steps, not witnessed yet."""
        self.scenarios = list(self.open)
        self.may_witness: list[set[str]] = []
        """Per action id: the scenarios its steps may witness (the others it rules out by its
        name and arguments alone)."""
        self.plans: list[list[tuple[Property, str | None, bool]]] = []
        """Per action id: (property, constant answer, must run on the states)."""
        self.kernels = {p.name: k for p in self.props
                        if (k := step_kernel_of(model, p)) is not None}
        self.reads = {name: [None if k.covers == "actor" else own_columns_read(k.check, lay, v)
                             for v in range(cfg.vms)] for name, k in self.kernels.items()}
        """Per step form and VM: the VM's own columns the form reads, where it covers VMs
        besides the actor and reads nothing else (None: always run)."""
        self.order = {p.name: i for i, p in enumerate(self.props)}
        self._needed: tuple[tuple[int, int], npt.NDArray[np.bool_]] = (
            (-1, -1), np.zeros(0, dtype=bool))
        self.rows_plan: list[list[tuple[Property, StepKernel]]] = []
        """Per action id: the step properties checked by their kernels over whole batches of
        steps (the model's check runs only on the steps a kernel finds broken, for its
        words)."""
        self.rows_witness: list[list[str]] = []
        """Per action id: the scenarios its steps may witness that a kernel witnesses."""

    def plan(self, act: Action) -> None:
        """Plan the checks of the steps of ``act``, the action just given the next id."""
        cfg = self.cfg
        plan_row = []
        by_rows = []
        spec = ACTIONS.get(act.name)
        for p in self.props:
            def answer(p: Property = p) -> str | None:
                return p.check_step(cfg, UNREAD, act, UNREAD)
            known, msg = without_state(answer)
            sk = self.kernels.get(p.name)
            if not known and sk is not None and spec is not None and sk.constrains(spec):
                by_rows.append((p, sk))
            elif not known or msg is not None:
                plan_row.append((p, msg if known else None, not known))
        self.plans.append(plan_row)
        self.rows_plan.append(by_rows)
        may = set()
        for sc in self.scenarios:
            def witness(sc: Scenario = sc) -> bool:
                return sc.witness(cfg, UNREAD, act, UNREAD)
            known, seen = without_state(witness)
            if not known or seen:
                may.add(sc.name)
        self.may_witness.append(may)
        self.rows_witness.append([name for name, (_, k) in self.witness_kernels.items()
                                  if act.name in k.actions])

    def flagged(self, pre: npt.NDArray[np.int16], post: npt.NDArray[np.int16],
                aid: Ints, touched: npt.NDArray[np.bool_]) -> list[tuple[Ints, Flagged]]:
        """The steps (``pre[i]`` to ``post[i]`` by action ``aid[i]``; ``touched``: the
        columns some of them change) that a step property's kernel finds broken, with that
        property, and those that a scenario's kernel finds witness it, with that scenario
        (:meth:`witnessing`). Each property's kernel runs once per (property, acting VM)
        over every such step, on the rows as they were made (one action's steps usually all
        need it and have one acting VM: then nothing is gathered). A form that covers VMs
        besides the actor holds on a step that changes nothing, so it is not run for a VM
        none of whose columns it reads changed (:func:`own_columns_read`)."""
        out: list[tuple[Ints, Flagged]] = []
        if not len(aid):
            return out
        # Most calls bring the steps of one action.
        first = aid[0]
        kinds = [int(first)] if (aid == first).all() else np.unique(aid).tolist()
        if self.witness_kernels:
            out += self.witnessing(pre, post, aid, kinds)
        step_kernels = self.kernels
        if not step_kernels:
            return out
        cfg, lay, rows_plan, step_reads = self.cfg, self.lay, self.rows_plan, self.reads
        for sk in step_kernels.values():
            plan_of = {a: next((p for p, k_ in rows_plan[a] if k_ is sk), None) for a in kinds}
            checked = [a for a in kinds if plan_of[a] is not None]
            if not checked:
                continue
            # The VMs a step form covers depend on the acting VM only: group by it.
            for w, ours, kw in self.by_acting_vm(aid, kinds, checked):
                rows_pre, rows_post = (pre, post) if isinstance(kw, slice) else (pre[kw], post[kw])
                flagged = np.zeros(len(rows_pre), dtype=bool)
                for v in sk.vms(cfg, w if w >= 0 else None):
                    reads = step_reads[sk.name][v]
                    if reads is not None and not touched[reads].any():
                        continue
                    flagged |= ~step_holds_on_rows(sk.check, lay, rows_pre, rows_post, v)
                if flagged.any():
                    at = np.arange(len(aid))[kw][flagged]
                    for a in ours:
                        prop = plan_of[a]
                        assert prop is not None
                        out.append((at[aid[at] == a], prop))
        return out

    def witnessing(self, pre: npt.NDArray[np.int16], post: npt.NDArray[np.int16],
                   aid: Ints, kinds: list[int]) -> list[tuple[Ints, Flagged]]:
        """The steps (as for :meth:`flagged`; ``kinds``: the actions among ``aid``) that a
        scenario's kernel finds witness it, with that scenario: each kernel of a scenario not
        yet witnessed runs once per acting VM over the steps of the actions that may witness
        it."""
        out: list[tuple[Ints, Flagged]] = []
        witnessed, lay, rows_witness = self.ex.witnessed, self.lay, self.rows_witness
        for name, (sc, sk) in self.witness_kernels.items():
            if name in witnessed:
                continue
            ours = [a for a in kinds if name in rows_witness[a]]
            for w, _, kw in self.by_acting_vm(aid, kinds, ours):
                if isinstance(kw, slice):
                    at = np.arange(len(aid))
                    seen = step_holds_on_rows(sk.witness, lay, pre, post, max(w, 0))
                else:
                    at = kw
                    seen = step_holds_on_rows(sk.witness, lay, pre[at], post[at], max(w, 0))
                if seen.any():
                    out.append((at[seen], sc))
        return out

    def by_acting_vm(self, aid: Ints, kinds: list[int], chosen: list[int]
                     ) -> list[tuple[int, list[int], slice | Ints]]:
        """The actions ``chosen`` among ``kinds`` (the actions of the steps ``aid``) grouped
        by the VM that acts (-1: none): per group, that VM, its actions and its steps (every
        step, as a slice, where the group's actions are all the steps')."""
        act_vm = self.act_vm
        out: list[tuple[int, list[int], slice | Ints]] = []
        for w in sorted({act_vm[a] for a in chosen}):
            ours = [a for a in chosen if act_vm[a] == w]
            kw: slice | Ints = (slice(None) if len(ours) == len(kinds)
                                else np.nonzero(np.isin(aid, ours))[0])
            out.append((w, ours, kw))
        return out

    def step_answers_watched(self, aid: int, pre: State, post: State) -> tuple[_Answers, bool]:
        """:meth:`step_answers` of a step that changed the host and at most its own VM,
        and whether the answers read either host."""
        act = self.actions[aid]
        v = self.act_vm[aid]
        vv = v if v >= 0 else None
        local = self.local
        lpre, lpost = local(pre, vv), local(post, vv)
        wpre = WatchedHost.of(pre.host)
        wpost = wpre if post.host is pre.host else WatchedHost.of(post.host)
        got = self.step_answers_on(aid, act, State(wpre, lpre.vms), State(wpost, lpost.vms))
        return got, wpre.read or wpost.read

    def step_answers(self, aid: int, pre: State, post: State, *, local: bool = True) -> _Answers:
        """Per step property of the action's plan, its answer (or REAL: it read another
        VM); per open scenario, whether the step witnesses it (or REAL). ``local``: the
        step changed the host and at most its own VM, so the other VMs are stood in for."""
        act = self.actions[aid]
        v = self.act_vm[aid]
        vv = v if v >= 0 else None
        lpre, lpost = (self.local(pre, vv), self.local(post, vv)) if local else (pre, post)
        return self.step_answers_on(aid, act, lpre, lpost)

    def step_answers_on(self, aid: int, act: Action, lpre: State, lpost: State) -> _Answers:
        """:meth:`step_answers` on the states as given (parts stood in for or watched)."""
        cfg = self.cfg
        props: list[Any] = []
        for p, const, run in self.plans[aid]:
            ans: object = const
            if run:
                try:
                    ans = p.check_step(cfg, lpre, act, lpost)
                except ReadElsewhere:
                    ans = REAL
            props.append(ans)
        scen: dict[str, Any] = {}
        for sc in self.open:
            try:
                scen[sc.name] = sc.witness(cfg, lpre, act, lpost)
            except ReadElsewhere:
                scen[sc.name] = REAL
        return props, scen

    def check(self, batch: Batch, steps: Ordered) -> dict[int, Broken]:
        """The step properties broken by the steps of a batch, by their positions in
        ``steps``; the scenarios they witness are noted in the result."""
        broken: dict[int, Broken] = {}
        self.check_flagged(batch, steps, broken)
        self.check_planned(batch, steps, broken)
        return broken

    def check_flagged(self, batch: Batch, steps: Ordered, broken: dict[int, Broken]) -> None:
        """Into ``broken``: the model's check's words on each step a property's kernel
        flagged."""
        cfg, actions, states = self.cfg, self.actions, batch.states
        par, aid = steps.par, steps.aid
        witnessed = self.ex.witnessed
        for at_made, prop in batch.flagged:
            assert steps.where is not None
            if isinstance(prop, Scenario):
                # The model's predicate confirms the first step it holds of, in the
                # reference's order.
                if prop.name not in witnessed and any(
                        prop.witness(cfg, states[int(par[k])], actions[int(aid[k])],
                                     steps.post_state(k))
                        for k in sorted(steps.where[at_made].tolist())):
                    witnessed.add(prop.name)
                continue
            for k in steps.where[at_made].tolist():
                msg = prop.check_step(cfg, states[int(par[k])], actions[int(aid[k])],
                                      steps.post_state(k))
                if msg is not None:
                    broken.setdefault(k, []).append((prop.name, msg))

    def check_planned(self, batch: Batch, steps: Ordered, broken: dict[int, Broken]) -> None:
        """Into ``broken``: the step properties the kernels leave to the model, and the
        scenarios still open, on the steps of actions that have some."""
        # Only the steps of actions with a step property the kernels leave to the model, or
        # with an open scenario that the action's name alone does not rule out.
        need = self.needed()
        ksel = np.nonzero(need[steps.aid])[0] if steps.count else np.zeros(0, dtype=np.int64)
        if not len(ksel):
            return
        ch = Chosen(batch, steps, ksel)
        # Answered once per (action, parts before, parts after) where the step changed the
        # host and at most its own VM, else per step.
        others_kept, combo = self.combos(ch)
        local_k = np.nonzero(others_kept)[0]
        real_k = np.nonzero(~others_kept)[0].tolist()
        answers, inv = self.combo_answers(ch, combo, local_k)
        # Combos with a finding, or a property that read another VM: their steps one by
        # one; combos where only a scenario read another VM: that scenario, step by step.
        busy = [ci for ci, (pa, _) in enumerate(answers) if any(x is not None for x in pa)]
        if busy:
            real_k += local_k[np.isin(inv, busy)].tolist()
        self.witness_by_combos(ch, answers, inv, local_k, set(busy))
        witnessed = self.ex.witnessed
        self.open = [sc for sc in self.open if sc.name not in witnessed]
        self.check_each(ch, sorted(real_k), others_kept, broken)

    def needed(self) -> npt.NDArray[np.bool_]:
        """Per action id: whether its steps need the model's check (a step property the
        kernels leave to the model, or an open scenario its name does not rule out). Made
        again only when an action is met or a scenario witnessed (the actions only grow,
        the open scenarios only shrink, so their numbers tell when)."""
        size = (len(self.actions), len(self.open))
        if self._needed[0] != size:
            open_names = {sc.name for sc in self.open}
            plans, may_witness = self.plans, self.may_witness
            self._needed = (size, np.array([bool(plans[a]) or bool(may_witness[a] & open_names)
                                            for a in range(size[0])], dtype=bool))
        return self._needed[1]

    def combos(self, ch: Chosen) -> tuple[npt.NDArray[np.bool_], Ints]:
        """Per chosen step: whether it kept every VM but its own, and its combo (action, host
        part before and after, the acting VM's part before and after, -1 for none)."""
        batch, steps = ch.batch, ch.steps
        pre_h, pre_v = batch.pre_h, batch.pre_v
        ts = len(ch)
        s_aid, s_par = ch.aid, ch.par
        s_post_h, s_post_v = self.part_ids.of_keys(steps.keys[ch.at],
                                                   lambda: steps.rows_at(ch.at))
        vm_of = np.array(self.act_vm, dtype=np.int64)[s_aid]
        same = pre_v[s_par] == s_post_v
        others_kept = np.ones(ts, dtype=bool)
        for w in range(self.cfg.vms):
            others_kept &= same[:, w] | (vm_of == w)
        rng = np.arange(ts)
        vcol = np.maximum(vm_of, 0)
        combo = np.stack([s_aid, pre_h[s_par], s_post_h,
                          np.where(vm_of >= 0, pre_v[s_par, vcol], -1),
                          np.where(vm_of >= 0, s_post_v[rng, vcol], -1)], axis=1)
        return others_kept, combo

    def combo_answers(self, ch: Chosen, combo: Ints,
                      local_k: Ints) -> tuple[list[_Answers], Ints]:
        """The answers of the chosen steps ``local_k`` (those that kept the other VMs), once
        per combo: (the answers, each step's answer)."""
        by_ids = self.memo.by_ids
        states, pars, post = ch.batch.states, ch.pars, ch.post
        # First by (action, whether the host changed, the acting VM's parts): answers
        # that read neither host hold for every host. (The open scenarios only shrink,
        # so a remembered answer covers every scenario still open.)
        answers: list[_Answers] = []
        inv = np.empty(len(local_k), dtype=np.int64)
        vm_combo = combo[local_k][:, [0, 3, 4]]
        vm_combo[:, 0] = vm_combo[:, 0] * 2 + (combo[local_k, 1] == combo[local_k, 2])
        uniq, first_k, inv_v = unique_rows(vm_combo)
        host_read: list[int] = []
        for g, (c, k0) in enumerate(zip(uniq.tolist(), local_k[first_k].tolist())):
            ckey = (-1, *c)
            got = by_ids.get(ckey)
            if got is None:
                got = by_ids[ckey] = self.step_answers_watched(c[0] >> 1, states[pars[k0]],
                                                               post(k0))
            if got[1]:
                host_read.append(g)
            answers.append(got[0])
        inv[:] = inv_v
        fallback = np.isin(inv_v, host_read)
        if fallback.any():
            # Else by (action, host parts before and after, the acting VM's parts).
            rest = np.nonzero(fallback)[0]
            uniq, first_k, inv_r = unique_rows(combo[local_k[rest]])
            inv[rest] = inv_r + len(answers)
            for c, k0 in zip(uniq.tolist(), local_k[rest[first_k]].tolist()):
                ckey = tuple(c)
                got = by_ids.get(ckey)
                if got is None:
                    got = by_ids[ckey] = self.step_answers(c[0], states[pars[k0]], post(k0),
                                                           local=True)
                answers.append(got)
        return answers, inv

    def witness_by_combos(self, ch: Chosen, answers: list[_Answers], inv: Ints, local_k: Ints,
                          busy: set[int]) -> None:
        """Note the scenarios the combos' answers witness; a scenario that read another VM
        (in a combo not ``busy``: those go step by step anyway) is asked step by step."""
        witnessed = self.ex.witnessed
        for _, sa in answers:
            for name, seen in sa.items():
                if seen is True:
                    witnessed.add(name)
        scen_real: dict[str, list[int]] = {}
        for ci, (_, sa) in enumerate(answers):
            if ci in busy:
                continue
            for name, seen in sa.items():
                if seen is REAL and name not in witnessed:
                    scen_real.setdefault(name, []).append(ci)
        cfg, actions, states = self.cfg, self.actions, ch.batch.states
        for sc in self.open:
            cis = scen_real.get(sc.name)
            if not cis or sc.name in witnessed:
                continue
            for k in local_k[np.isin(inv, cis)].tolist():
                if sc.witness(cfg, states[ch.pars[k]], actions[ch.aids[k]], ch.post(k)):
                    witnessed.add(sc.name)
                    break

    def check_each(self, ch: Chosen, real_k: list[int], others_kept: npt.NDArray[np.bool_],
                   broken: dict[int, Broken]) -> None:
        """Into ``broken``: the chosen steps ``real_k`` checked one by one (and the open
        scenarios they witness noted)."""
        cfg, actions, plans, states = self.cfg, self.actions, self.plans, ch.batch.states
        for k in real_k:
            aid = ch.aids[k]
            if not plans[aid] and not self.open:
                continue
            pre, act = states[ch.pars[k]], actions[aid]
            post = ch.post(k)
            props_ans, scen_ans = self.step_answers(aid, pre, post, local=bool(others_kept[k]))
            found = []
            for (p, _, _), msg in zip(plans[aid], props_ans):
                if msg is REAL:
                    msg = p.check_step(cfg, pre, act, post)
                if msg is not None:
                    found.append((p.name, msg))
            if found:
                broken.setdefault(int(ch.at[k]), []).extend(found)
            if self.open:
                self.witness_step(scen_ans, pre, act, post)

    def witness_step(self, scen_ans: dict[str, Any], pre: State, act: Action,
                     post: State) -> None:
        """Note the open scenarios one step witnesses (``scen_ans``: its answers so far)."""
        witnessed = self.ex.witnessed
        still = []
        for sc in self.open:
            seen = scen_ans.get(sc.name, REAL)
            if seen is REAL:
                seen = sc.witness(self.cfg, pre, act, post)
            if seen:
                witnessed.add(sc.name)
            else:
                still.append(sc)
        self.open = still
