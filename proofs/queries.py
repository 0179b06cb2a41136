"""The names of ``ballast prove``'s queries, and how to re-run one of them alone.

Every query is named as the report prints it: ``init => C``, ``C preserved by
A``, ``P [step] preserved by A``, ``Inv => P``, the policy claims, and
``bmc P`` (printed as ``bmc P to depth K``). :func:`select` turns a name into
what :func:`ballast.proofs.run.prove` must run; a name that is not one of
them is a usage error naming the closest ones.

>>> from ballast.model.config import preset
>>> names = query_names(preset("core"))
>>> "init => memory_conservation" in names, "Inv => isolation" in names
(True, True)
>>> select(preset("core"), "bmc isolation to depth 4").kind
'bmc'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ballast.errors import UsageError
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.state import initial_state
from ballast.proofs.encoding import encode
from ballast.proofs.policy import POLICY_CLAIMS
from ballast.proofs.properties import SAFETY, STEPS, inductive_invariant
from ballast.proofs.transitions import encoded_actions

__all__ = ["Selection", "count_queries", "query_names", "select"]


@dataclass(frozen=True)
class Selection:
    """One query: its name, kind, conjunct and action."""

    name: str
    kind: str
    conjunct: str
    action: str | None = None

    def matches(self, name: str, kind: str, conjunct: str) -> bool:
        """Whether a result (by its name, kind and conjunct) is this query's."""
        if self.kind == "bmc":
            return kind == "bmc" and conjunct == self.conjunct
        return name == self.name


def _table(cfg: Config) -> dict[str, Selection]:
    conjuncts = list(inductive_invariant(encode(cfg, initial_state(cfg))))
    actions = encoded_actions(cfg)
    out: dict[str, Selection] = {}

    def add(sel: Selection) -> None:
        out[sel.name] = sel

    for c in conjuncts:
        add(Selection(f"init => {c}", "init", c))
    for a in actions:
        for c in conjuncts:
            add(Selection(f"{c} preserved by {a}", "consecution", c, a))
        for p in STEPS:
            if INVARIANTS[p].feature(cfg):
                add(Selection(f"{p} [step] preserved by {a}", "step", p, a))
    for p in SAFETY:
        if INVARIANTS[p].feature(cfg):
            add(Selection(f"Inv => {p}", "safety", p))
    for claim in POLICY_CLAIMS:
        add(Selection(claim, "policy", claim))
    for p, prop in INVARIANTS.items():
        if prop.feature(cfg):
            add(Selection(f"bmc {p}", "bmc", p))
    return out


def query_names(cfg: Config) -> list[str]:
    """Every query name of a proof run on ``cfg``, in the order the report prints them."""
    return list(_table(cfg))


def count_queries(cfg: Config, *, policy: bool = True, bmc: bool = False) -> int:
    """How many queries a whole proof run on ``cfg`` answers (with the policy claims if
    ``policy``, with one bounded search per property if ``bmc``)."""
    skip = {kind for kind, wanted in (("policy", policy), ("bmc", bmc)) if not wanted}
    return sum(sel.kind not in skip for sel in _table(cfg).values())


def select(cfg: Config, name: str) -> Selection:
    """The query called ``name`` (raises UsageError naming the closest valid names)."""
    table = _table(cfg)
    key = re.sub(r" to depth \d+$", "", " ".join(name.split()))
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
            "`ballast prove --list-queries` prints them")
    raise UsageError(f"no query named {name!r} in this configuration ({len(table)} queries); "
                     f"{hint}")
