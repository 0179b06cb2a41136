"""Hypothesis draws inside :func:`seed_only_draws` ignore constants mined from loaded modules."""

from __future__ import annotations

import pytest
from hypothesis.internal.conjecture import providers

from ballast.seeded_draws import seed_only_draws


def test_the_mining_is_switched_off_inside_and_restored_on_leaving() -> None:
    mined = providers._get_local_constants
    with pytest.raises(RuntimeError), seed_only_draws():
        assert providers._get_local_constants is not mined
        assert len(providers._get_local_constants()) == 0
        raise RuntimeError("a checker failed inside")
    assert providers._get_local_constants is mined


def test_docstring_examples() -> None:
    import doctest

    import ballast.seeded_draws as module
    assert doctest.testmod(module).failed == 0
