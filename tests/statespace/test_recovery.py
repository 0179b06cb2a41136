"""``host_recovers_to_target``: the host and the VMM alone bring every VM within its allowance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballast.cli import main
from ballast.model.config import Config
from ballast.model.recovery import RECOVERY, REACH_PROPERTIES
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.statespace.explore import explore
from ballast.statespace.liveness import SKIPPED, VACUOUS, check_reach
from ballast.statespace.traces import goal_unreachable, run_actions

FAULT = "vmm_stops_one_page_over"

TWO = Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0, machine_pages=2,
             host_swap_slots=1, tokens=1, batch=1, host_use=False,
             vmm_reclaims_over_target=True)
"""Two VMs of one page each on two MPNs, one host swap slot: the hostile preset's
over-target slice, where either VM may touch its page beyond a target of one page."""

SETS = [arg for key, value in (("vms", 2), ("guest_pages", 1), ("guest_data_pages", 1),
                               ("guest_disk_slots", 0), ("machine_pages", 2),
                               ("host_swap_slots", 1), ("host_use", "false"),
                               ("vmm_reclaims_over_target", "true"))
        for arg in ("--set", f"{key}={value}")]


def _graph(cfg: Config, faults: tuple[str, ...] = ()) -> object:
    return explore(BalloonModel(cfg, faults), symmetry=False, keep_edges=True)


def test_the_host_recovers_every_vm_and_the_fault_leaves_one_page_over() -> None:
    prop = REACH_PROPERTIES[RECOVERY]
    ok = check_reach(_graph(TWO), prop)  # type: ignore[arg-type]
    assert ok.holds and ok.outcome == "" and "outside the assumption" in ok.detail
    bad = check_reach(_graph(TWO, (FAULT,)), prop)  # type: ignore[arg-type]
    assert not bad.holds and bad.vm is not None
    model = BalloonModel(TWO, [FAULT])
    end = run_actions(model, bad.prefix)[-1]
    # The VM is one page over its allowance, and the VMM will not page that page out.
    from ballast.model.actions import over_target
    assert over_target(TWO, end, bad.vm) == 1
    assert goal_unreachable(model, prop, end)
    assert not goal_unreachable(BalloonModel(TWO), prop, end)


def test_the_assumption_is_reported_when_the_configuration_cannot_meet_it() -> None:
    prop = REACH_PROPERTIES[RECOVERY]
    skipped = check_reach(_graph(TWO.replace(host_swap_slots=0)), prop)  # type: ignore[arg-type]
    assert skipped.outcome == SKIPPED and "host_swap_slots = 0" in skipped.detail
    # No guest data and no hostile guest: no page is ever touched, nothing to recover.
    idle = check_reach(_graph(TWO.replace(guest_data_pages=0)), prop)  # type: ignore[arg-type]
    assert idle.outcome == VACUOUS


def test_explore_with_liveness_names_the_property_and_writes_a_replayable_prefix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "--preset", "core", *SETS, "--liveness", "--fault", FAULT,
                 "--json", "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    bad = [r for r in out["results"] if r["verdict"] == "violation"]
    assert [r["property"] for r in bad] == [RECOVERY]
    assert "free host swap slots" in bad[0]["evidence"]["assumes"]
    path = bad[0]["counterexample"]
    assert read_trace(path).header.expect["property"] == RECOVERY  # type: ignore[index]
    # The prefix breaks no safety property; its claim about the last state is decided again.
    assert main(["replay", path]) == 1
    capsys.readouterr()
    assert main(["explore", "--preset", "core", *SETS, "--liveness", "--json",
                 "--report-dir", str(tmp_path)]) == 0
    live = {r["property"]: r["verdict"] for r in json.loads(capsys.readouterr().out)["results"]
            if r["evidence"].get("form") == "liveness"}
    assert live[RECOVERY] == "pass"


def test_check_catches_the_fault_on_the_over_target_slice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--preset", "core", *SETS, "--checkers", "explore", "--fault", FAULT,
                 "--report-dir", str(tmp_path)])
    assert code == 1
    text = capsys.readouterr().out
    assert RECOVERY in text and "over-target" in text
    # The trace breaks no safety property; replayed, its claim about the last state is
    # decided again: with the fault, no run of the host's and VMM's steps recovers it.
    [trace] = tmp_path.glob(f"explore-{RECOVERY}-*.jsonl")
    assert main(["replay", str(trace)]) == 1
    assert f"{RECOVERY} confirmed after step" in capsys.readouterr().out
    fixed = tmp_path / "fixed.jsonl"
    lines = trace.read_text().splitlines()
    header = json.loads(lines[0])
    header["faults"] = []
    fixed.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    assert main(["replay", str(fixed)]) == 0
    assert f"{RECOVERY} not confirmed after step" in capsys.readouterr().out
