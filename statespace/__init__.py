"""Exhaustive state-space exploration of small configurations (``ballast explore``).

* :mod:`.explore` -- breadth-first search, every invariant on every state and step,
  shortest counterexamples, budgets;
* :mod:`.parts` -- states packed as one integer of host and VM part ids;
* :mod:`.transitions` -- each part's steps computed once and reused, reads of other
  parts checked; :mod:`.state_checks` -- the same for the state invariants;
* :mod:`.symmetry` -- canonical forms up to renumbering VMs and MPNs;
* :mod:`.deadlock` -- what a stalled balloon protocol is;
* :mod:`.liveness` -- AG EF and fair eventual reach of the target (weak fairness, or
  also strong fairness of the VMM's acceptance), lassos;
* :mod:`.graph` -- the networkx graph of reachable states, DOT and GraphML;
* :mod:`.traces` -- counterexamples confirmed by replay, then written;
* :mod:`.runner`, :mod:`.cli`, :mod:`.suite` -- verdicts, the command, ``ballast check``;
* :mod:`.configs`, :mod:`.manifest` -- small configurations and their pinned state counts.
"""
