"""``ballast list faults``: each seeded fault, the properties it is caught as, and by whom."""

from __future__ import annotations

import pytest

from ballast.suites.backends import matrix
from ballast.suites.catchers import ENCODED_CHECKERS, MODEL_CHECKERS, catchers
from ballast.suites.check import BUILTIN, SUITES
from ballast.cli import main
from ballast.model.faults import FAULTS


def test_the_encoded_checkers_are_expected_exactly_where_their_backend_encodes_the_fault(
        ) -> None:
    # ... unless the fault table says why the checker misses it within its default budget.
    table = matrix("faults")
    for name in FAULTS:
        for checker in ENCODED_CHECKERS:
            encoded = table[name][checker].status == "encoded"
            expected = checker in catchers(name) or checker in FAULTS[name].missed_by
            assert expected == encoded, (name, checker)


def test_only_real_checkers_are_named_and_a_miss_gives_its_reason() -> None:
    known = set(BUILTIN) | set(SUITES)
    assert set(MODEL_CHECKERS + ENCODED_CHECKERS) <= known
    for f in FAULTS.values():
        assert set(f.missed_by) <= known and all(why.strip() for why in f.missed_by.values())
        assert not set(f.missed_by) & set(catchers(f.name))
        assert "explore" in catchers(f.name)  # the explorer finds every fault (its tests)


def test_list_faults_names_the_properties_and_checkers_of_each(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "faults"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(FAULTS)
    for line, f in zip(lines, FAULTS.values()):
        assert line.startswith(f"{f.name} ")
        assert f"caught as {' or '.join(f.caught_as)} by {', '.join(catchers(f.name))}:" \
            in line


def test_docstring_examples() -> None:
    import doctest

    import ballast.suites.catchers

    result = doctest.testmod(ballast.suites.catchers)
    assert result.attempted > 0 and result.failed == 0
