"""Pinned numbers of distinct reachable states (``state_counts.json``).

As TLA+ specifications record the state counts TLC finds, this manifest
records, for each configuration in
:data:`~ballast.statespace.configs.EXPLORE_CONFIGS`, how many distinct states
are reachable with and without symmetry reduction. Any change to the model's
semantics changes some count, and the tests say which. After an intended
change, regenerate with::

    python -m ballast.statespace.manifest --update
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS
from ballast.statespace.explore import explore

__all__ = ["MANIFEST", "count_states", "load_manifest", "main"]

MANIFEST = Path(__file__).with_name("state_counts.json")


def count_states(name: str) -> dict[str, Any]:
    """The manifest entry of configuration ``name``: states and transitions, both ways."""
    cfg = EXPLORE_CONFIGS[name]
    full = explore(BalloonModel(cfg))
    reduced = explore(BalloonModel(cfg), symmetry=True)
    assert full.complete and reduced.complete
    return {"config": cfg.to_dict(), "states": full.states, "transitions": full.transitions,
            "depth": full.max_depth, "states_symmetry": reduced.states,
            "transitions_symmetry": reduced.transitions}


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The pinned counts, by configuration name."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Print the counts, or rewrite the manifest with ``--update``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--update", action="store_true")
    args = p.parse_args(argv)
    counts = {name: count_states(name) for name in EXPLORE_CONFIGS}
    text = json.dumps(counts, indent=2, sort_keys=True) + "\n"
    if args.update:
        from ballast.model.trace import atomic_write_text
        atomic_write_text(MANIFEST, text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
