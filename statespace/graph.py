"""The graph of reachable states as a networkx graph, and its DOT / GraphML export.

Nodes are state ids (0 is the initial state) with their depth, a short label
(targets, balloon sizes, free MPNs) and whether the state breaks a property;
edges carry the action (several actions joining the same two states are listed
together). Meant for small configurations: shortest paths, strongly connected
components, and pictures in which violating states stand out (red, filled).

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.explore import explore
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> g = state_graph(explore(BalloonModel(cfg), keep_edges=True))
>>> g.number_of_nodes() > 10, g.nodes[0]["depth"]
(True, 0)
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from ballast.errors import UsageError
from ballast.model.state import State
from ballast.model.trace import atomic_write_text
from ballast.statespace.explore import Exploration

__all__ = ["MAX_EXPORT_STATES", "state_graph", "state_label", "to_dot", "write_dot",
           "write_graphml"]

MAX_EXPORT_STATES = 20000
"""Larger graphs are refused for export: nobody can read them."""


def state_label(s: State) -> str:
    """A one-line summary: per VM target/actual/ballooned, then the free MPNs.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> state_label(initial_state(Config(vms=1, guest_pages=2, machine_pages=2)))
    'vm0 t0 a0 b0 | free 2'
    """
    parts = [f"vm{i} t{v.target} a{v.module.actual} b{len(v.ballooned)}"
             for i, v in enumerate(s.vms)]
    return " ".join(parts) + f" | free {len(s.host.free)}"


def state_graph(ex: Exploration) -> nx.DiGraph:
    """The explored states and stored transitions as a directed graph."""
    if not ex.keep_edges:
        raise UsageError("the exploration kept no edges; explore with keep_edges=True")
    g: nx.DiGraph = nx.DiGraph()
    bad = ex.violating
    for i in range(ex.states):
        g.add_node(i, depth=ex.depth[i], label=state_label(ex.state(i)), violating=i in bad)
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        name = str(ex.actions[a])
        if g.has_edge(s, d):
            g.edges[s, d]["action"] += "; " + name
        else:
            g.add_edge(s, d, action=name)
    return g


def _check_size(g: nx.DiGraph) -> None:
    if g.number_of_nodes() > MAX_EXPORT_STATES:
        raise UsageError(f"the graph has {g.number_of_nodes()} states; export is limited to "
                         f"{MAX_EXPORT_STATES} (use a smaller configuration)")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT text; violating states are red and filled, the initial state is bold.

    >>> g = nx.DiGraph(); g.add_node(0, label="s0", violating=False, depth=0)
    >>> print(to_dot(g).splitlines()[2])
      0 [label="s0", style=bold];
    """
    lines = ["digraph states {", "  node [shape=box, fontname=monospace];"]
    for n, data in g.nodes(data=True):
        attrs = [f"label={_quote(str(data.get('label', n)))}"]
        if data.get("violating"):
            attrs += ["color=red", "style=filled", "fillcolor=\"#ffcccc\""]
        elif n == 0:
            attrs.append("style=bold")
        lines.append(f"  {n} [{', '.join(attrs)}];")
    for s, d, data in g.edges(data=True):
        lines.append(f"  {s} -> {d} [label={_quote(str(data.get('action', '')))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(g: nx.DiGraph, path: str | Path) -> None:
    """Write ``g`` as a DOT file (atomically)."""
    _check_size(g)
    atomic_write_text(path, to_dot(g))


def write_graphml(g: nx.DiGraph, path: str | Path) -> None:
    """Write ``g`` as GraphML (atomically); node attribute ``violating`` marks bad states."""
    _check_size(g)
    text = "\n".join(nx.generate_graphml(g)) + "\n"
    atomic_write_text(path, text)
