"""The explicit-target policy: the Python function and its Z3 proof."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.model.config import Config, preset
from ballast.proofs.induction import ProofVerdict
from ballast.proofs.policy import explicit_targets, prove_policy


@settings(max_examples=200, deadline=None)
@given(data=st.data(), vms=st.integers(1, 4), guest_pages=st.integers(1, 8),
       machine_pages=st.integers(1, 24))
def test_targets_respect_min_max_and_machine_memory(data: st.DataObject, vms: int,
                                                    guest_pages: int,
                                                    machine_pages: int) -> None:
    ints = st.integers(-2, guest_pages + 2)
    demand = data.draw(st.lists(ints, min_size=vms, max_size=vms))
    lo = data.draw(st.lists(ints, min_size=vms, max_size=vms))
    hi = data.draw(st.lists(ints, min_size=vms, max_size=vms))
    host = data.draw(st.integers(0, machine_pages))
    targets = explicit_targets(guest_pages=guest_pages, machine_pages=machine_pages,
                               host_use=host, demand=demand, minimum=lo, maximum=hi)
    keeps = [guest_pages - t for t in targets]
    los = [max(0, min(guest_pages, x)) for x in lo]
    assert all(0 <= t <= guest_pages for t in targets)
    for v in range(vms):
        assert keeps[v] >= los[v]
        assert keeps[v] <= max(los[v], min(guest_pages, hi[v]))
    if sum(los) + host <= machine_pages:
        assert sum(keeps) + host <= machine_pages


def test_policy_is_proved_for_the_default_sizes() -> None:
    out = prove_policy(preset("default"))
    assert [q.verdict for q in out] == [ProofVerdict.PROVED] * 3
    assert {q.name for q in out} == {"policy_targets_in_range", "policy_respects_min_max",
                                     "policy_fits_machine"}


def test_policy_proof_covers_more_vms() -> None:
    out = prove_policy(Config(vms=4, guest_pages=8, machine_pages=16))
    assert all(q.verdict is ProofVerdict.PROVED for q in out)
