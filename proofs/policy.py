"""The host's explicit-target allocation policy, and its proof.

The host decides how many pages each VM's balloon should hold. With the
explicit-target policy the host is given, per VM, a *minimum* and a *maximum*
of memory (in PPNs the guest may keep backed) and hands out balloon targets so
that every VM keeps at least its minimum, at most its maximum, and the memory
all guests keep plus what the host uses itself fits in machine memory:

* ``target[v] = guest_pages - keep[v]`` with ``keep[v]`` clamped to
  ``[min[v], max[v]]`` and to ``[0, guest_pages]``;
* VMs are served in order, each keeping as much as the machine pages left
  allow (after the host's own use and every later VM's minimum).

:func:`explicit_targets` is the policy as Python; :func:`prove_policy` proves
with Z3, for every demand and every min/max within the configuration, that the
targets it hands out lie in ``[0, guest_pages]``, respect every VM's min and
max, and that guest memory not ballooned plus host use never exceeds machine
memory whenever the minimums fit at all (the *feasible* case).

>>> explicit_targets(guest_pages=4, machine_pages=6, host_use=0,
...                  demand=[4, 4], minimum=[1, 1], maximum=[4, 4])
[0, 2]
"""

from __future__ import annotations

import time
from typing import Sequence

import z3

from ballast.model.config import Config
from ballast.proofs.induction import ProofVerdict, QueryResult
from ballast.proofs.limits import SolverLimit, checked, why_unknown

__all__ = ["POLICY_CLAIMS", "explicit_targets", "prove_policy"]

POLICY_CLAIMS = ("policy_targets_in_range", "policy_respects_min_max", "policy_fits_machine")
"""The names of the policy's claims, one query each."""


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


def explicit_targets(*, guest_pages: int, machine_pages: int, host_use: int,
                     demand: Sequence[int], minimum: Sequence[int],
                     maximum: Sequence[int]) -> list[int]:
    """The balloon target of each VM (pages to give back) under the explicit-target policy.

    ``demand[v]`` is how many PPNs VM ``v`` would like backed; ``minimum`` and
    ``maximum`` bound what it keeps; ``host_use`` MPNs are in the host's own use.
    """
    n = len(demand)
    targets = []
    left = machine_pages - host_use
    for v in range(n):
        lo = _clamp(minimum[v], 0, guest_pages)
        hi = _clamp(maximum[v], lo, guest_pages)
        later = sum(_clamp(minimum[w], 0, guest_pages) for w in range(v + 1, n))
        keep = _clamp(demand[v], lo, hi)
        keep = _clamp(min(keep, left - later), lo, hi)
        left -= keep
        targets.append(guest_pages - keep)
    return targets


def _symbolic_targets(G: int, M: int, host: z3.ArithRef, demand: list[z3.ArithRef],
                      lo_in: list[z3.ArithRef], hi_in: list[z3.ArithRef]
                      ) -> tuple[list[z3.ArithRef], list[z3.ArithRef], list[z3.ArithRef]]:
    def clamp(x: z3.ArithRef, lo: z3.ArithRef | int, hi: z3.ArithRef | int) -> z3.ArithRef:
        return z3.If(x < lo, lo, z3.If(x > hi, hi, x))

    n = len(demand)
    los = [clamp(lo_in[v], 0, G) for v in range(n)]
    his = [clamp(hi_in[v], los[v], G) for v in range(n)]
    left: z3.ArithRef = M - host
    targets = []
    for v in range(n):
        later = z3.Sum([los[w] for w in range(v + 1, n)]) if v + 1 < n else z3.IntVal(0)
        keep = clamp(demand[v], los[v], his[v])
        lim = left - later
        keep = clamp(z3.If(keep < lim, keep, lim), los[v], his[v])
        left = left - keep
        targets.append(G - keep)
    return targets, los, his


def prove_policy(cfg: Config, limit: SolverLimit = SolverLimit()) -> list[QueryResult]:
    """Prove the explicit-target policy's three promises for ``cfg``'s sizes.

    VM count, guest pages and machine pages come from ``cfg``; demands, minimums,
    maximums and host use are unbounded integers, so the proof covers every input.
    """
    G, M, n = cfg.guest_pages, cfg.machine_pages, cfg.vms
    demand = [z3.Int(f"demand{v}") for v in range(n)]
    lo = [z3.Int(f"min{v}") for v in range(n)]
    hi = [z3.Int(f"max{v}") for v in range(n)]
    host = z3.Int("host_use")
    targets, los, his = _symbolic_targets(G, M, host, demand, lo, hi)
    keeps = [G - t for t in targets]
    feasible = z3.And(host >= 0, host <= M, z3.Sum(los) + host <= M)
    claims = {
        "policy_targets_in_range": z3.And([z3.And(t >= 0, t <= G) for t in targets]),
        "policy_respects_min_max": z3.And([z3.And(keeps[v] >= los[v], keeps[v] <= his[v])
                                           for v in range(n)]),
        "policy_fits_machine": z3.Implies(feasible, z3.Sum(keeps) + host <= M),
    }
    assert tuple(claims) == POLICY_CLAIMS
    out = []
    for name, claim in claims.items():
        t0 = time.perf_counter()
        s = z3.Solver()
        s.add(z3.Not(claim))
        r, used = checked(s, limit)
        secs = time.perf_counter() - t0
        if r == z3.unsat:
            out.append(QueryResult(name, "policy", name, None, ProofVerdict.PROVED, secs,
                                   detail=f"for {n} VMs of {G} PPNs on {M} MPNs, any inputs",
                                   evidence={"rlimit": used}))
        elif r == z3.sat:
            m = s.model()
            vals = {str(d): m.eval(d, model_completion=True) for d in demand + lo + hi + [host]}
            out.append(QueryResult(name, "policy", name, None, ProofVerdict.VIOLATED, secs,
                                   detail=f"counterexample inputs {vals}",
                                   evidence={"rlimit": used}))
        else:
            out.append(QueryResult(name, "policy", name, None, ProofVerdict.UNKNOWN, secs,
                                   detail=why_unknown(limit, used, s.reason_unknown()),
                                   evidence={"rlimit": used}))
    return out
