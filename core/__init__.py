"""Ballast: a reference model and verification suite for memory ballooning in virtual machines.

Subpackages: :mod:`ballast.model` (the reference model), :mod:`ballast.proofs`
(Z3), :mod:`ballast.statespace` (exhaustive exploration), :mod:`ballast.numeric`
(vectorised large-scale runs), :mod:`ballast.validate` (checking other
implementations), :mod:`ballast.reports` (counterexample and CI reports).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
