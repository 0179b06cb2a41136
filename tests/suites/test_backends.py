"""The registry of backends: complete for the shipped model, derived from the backends' own
tables, and printed by ``ballast list KIND --backends``."""

from __future__ import annotations

import doctest
import importlib
import json
from dataclasses import replace

import pytest

from ballast.suites import backends
from ballast.cli import main
from ballast.model.actions import ACTIONS
from ballast.model.config import PRESETS
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.recovery import REACH_PROPERTIES

ENCODES = ["ballast.model.encodings", "ballast.suites.backends", "ballast.proofs.encodes",
           "ballast.numeric.encodes", "ballast.statespace.encodes",
           "ballast.validate.virtio.encodes"]


@pytest.mark.parametrize("name", ENCODES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_every_item_is_encoded_by_every_backend_that_covers_its_kind() -> None:
    assert backends.incomplete() == []
    properties = [*INVARIANTS, *REACH_PROPERTIES]  # safety, then over runs
    for kind, names in (("actions", ACTIONS), ("invariants", properties), ("faults", FAULTS)):
        m = backends.matrix(kind)
        assert list(m) == list(names)
        for name, row in m.items():
            assert list(row) == list(backends.BACKENDS)
            assert row["model"].status == "encoded", (kind, name)
            for b, cell in row.items():
                assert cell.status in ("encoded", "known gap", "not covered"), (kind, name, b)
                assert cell.where, (kind, name, b)


GAPPED_PRESETS: set[str] = set()
"""Presets that switch on what Z3 and NumPy do not encode yet: none. They encode every
preset's features: host pages kept to one VM (``hugepages``), balloon units of several pages
(``large-units``), the generic guest system (``guest-system``), real drivers' behaviours,
free page reporting, page poison, statistics, the VMM's own flood bound, free page hinting,
hibernation, the hostile guest's processors, reports racing a reset and the VMM paging out a
VM over its target with the starvation property; the virtio profile judges the free page
hint queue's rules. A feature added to the model without kernels puts its preset here."""


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_no_checker_has_an_unexplained_gap_on_a_shipped_preset(preset: str) -> None:
    """Every gap a checker has on a shipped preset is a declared known gap, and only the
    presets made for the features some backend lacks (:data:`GAPPED_PRESETS`) have any."""
    from ballast.numeric.encodes import gaps_in as numeric_gaps
    from ballast.proofs.encodes import gaps_in as proof_gaps
    from ballast.statespace.encodes import sliced
    from ballast.statespace.suite import feature_slices
    from ballast.model.encodings import gaps
    from ballast.validate.virtio.encodes import gaps_in as virtio_gaps

    cfg = PRESETS[preset]
    found = [proof_gaps(cfg, list(FAULTS)), numeric_gaps(cfg, list(FAULTS)), virtio_gaps(cfg),
             gaps(sliced(feature_slices(cfg)), cfg, list(FAULTS))]
    for g in found:
        for kind in ("actions", "invariants", "faults"):
            for name in getattr(g, kind):
                assert (kind, name) in g.encodes.known_gaps, (preset, g.encodes.backend, name)
    gapped = {n for g in found for n in g.faults}
    encoded_faults = [f for f in FAULTS if f not in gapped]
    clean = [proof_gaps(cfg, encoded_faults), numeric_gaps(cfg, encoded_faults),
             virtio_gaps(cfg), gaps(sliced(feature_slices(cfg)), cfg, encoded_faults)]
    if preset not in GAPPED_PRESETS:
        assert not any(clean), preset
    else:
        assert any(clean), f"the {preset} preset switches on what some backend does not encode"


def test_the_registry_reads_the_backends_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking an entry out of a backend's own table shows as missing: nothing is copied."""
    from ballast.numeric import invariants as numeric_invariants
    from ballast.proofs import transitions
    from ballast.model import virtio

    monkeypatch.delitem(transitions.ENCODED, "vmm_share")
    monkeypatch.delitem(numeric_invariants.NUMERIC_INVARIANTS, "isolation")
    monkeypatch.delitem(virtio.PROJECTIONS, "balloon_poll")
    assert sorted(backends.incomplete()) == [("numeric", "invariants", "isolation"),
                                             ("prove", "actions", "vmm_share"),
                                             ("virtio", "actions", "balloon_poll")]
    cell = backends.matrix("actions")["vmm_share"]["prove"]
    assert cell.status == "missing" and cell.where == "no Z3 encoding of action vmm_share"


def test_a_known_gap_is_listed_with_its_reason() -> None:
    enc = backends.model_encodes()
    enc = replace(enc, actions={}, known_gaps={("actions", "guest_read"): "not modelled here"})
    assert backends._cell(enc, "actions", "guest_read").status == "known gap"
    assert backends._cell(enc, "actions", "guest_write").status == "missing"
    assert enc.unexplained("actions", ["guest_read", "guest_write"]) == ("guest_write",)
    # A known gap is still a gap: what the configuration switches on of it goes unchecked.
    assert enc.missing("actions", ["guest_read", "guest_write"]) == ("guest_read", "guest_write")


@pytest.mark.parametrize("kind", ["actions", "invariants", "faults"])
def test_list_backends_prints_the_matrix(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind, "--backends"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == [kind[:-1], *backends.BACKENDS]
    assert "0 missing encodings" in out
    assert main(["list", kind, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backends"] == list(backends.BACKENDS)
    assert set(data["rows"]) == set(backends.matrix(kind))


def test_list_backends_names_a_missing_encoding(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ballast.numeric.engine import Engine

    monkeypatch.delattr(Engine, "guest_evict")
    assert main(["list", "actions", "--backends"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" in out.splitlines()[[l.split()[0] for l in out.splitlines()].index(
        "guest_evict")]
    assert "missing: numeric: guest_evict: no NumPy encoding of action guest_evict" in out
    assert "1 missing encodings" in out


@pytest.mark.parametrize("flag", ["--backends", "--json"])
def test_list_backends_of_presets_is_bad_usage(capsys: pytest.CaptureFixture[str],
                                               flag: str) -> None:
    assert main(["list", "presets", flag]) == 2
    # The flag given is the one named.
    assert f"{flag} lists the backends of actions, invariants or faults, not presets" \
        in capsys.readouterr().err


def test_a_known_gap_leaves_what_it_touches_inconclusive() -> None:
    """A configuration that switches on something a backend deliberately lacks is not a
    pass for that backend: the gap is named, the verdict inconclusive."""
    from dataclasses import replace

    from ballast.model.config import preset
    from ballast.model.encodings import gaps
    from ballast.proofs.encodes import encodes

    enc = encodes()
    lacking = replace(enc, actions={k: v for k, v in enc.actions.items() if k != "balloon_migrate"},
                      known_gaps={**enc.known_gaps, ("actions", "balloon_migrate"): "a reason"})
    found = gaps(lacking, preset("qemu"), ())
    assert found and found.affects("memory_conservation")
    assert "balloon_migrate" in found.what()
    assert not gaps(enc, preset("qemu"), ())
