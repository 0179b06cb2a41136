"""Ballast proofs: the model's invariants proved with Z3.

* :mod:`~ballast.proofs.encoding` -- the model's State as Z3 terms and back;
* :mod:`~ballast.proofs.transitions` -- every action as a transition relation;
* :mod:`~ballast.proofs.properties` -- the safety properties and the named
  conjuncts that make them inductive;
* :mod:`~ballast.proofs.faults` -- the seeded faults as broken relations;
* :mod:`~ballast.proofs.induction` -- the three induction steps, one query per pair;
* :mod:`~ballast.proofs.bmc` -- bounded model checking, producing traces;
* :mod:`~ballast.proofs.policy` -- the host's explicit-target policy and its proof;
* :mod:`~ballast.proofs.run`, :mod:`~ballast.proofs.suite`, :mod:`~ballast.cli.prove`
  -- one proof run, its ``ballast check`` integration and ``ballast prove``.
"""
