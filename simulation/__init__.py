"""Checkers that run the reference model itself: deterministic random walks, the Hypothesis
state machine, and shrinking of a failing run."""
