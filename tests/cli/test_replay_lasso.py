"""``ballast replay`` of a liveness lasso: the cycle must close and be fair."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ballast.cli import main
from ballast.model.config import Config
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, read_trace, write_trace
from ballast.statespace.explore import explore
from ballast.statespace.liveness import REACHES, check_liveness
from ballast.statespace.traces import check_lasso, write_liveness

# The smallest configuration where the VMM may refuse pages: under weak fairness a VMM
# that refuses every report keeps the balloon from its target forever.
REFUSAL = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=1,
                 host_swap_slots=0, tokens=1, batch=1, host_use=False, refusal=True)


@pytest.fixture(scope="module")
def lasso_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ex = explore(BalloonModel(REFUSAL), keep_edges=True)
    [fair] = [r for r in check_liveness(ex, fairness="weak") if r.property == REACHES]
    assert not fair.holds
    return write_liveness(ex, fair, tmp_path_factory.mktemp("lasso"), "lasso")


def _rewrite(trace: Trace, path: Path, *, steps: int | None = None,
             **expect: object) -> Path:
    header = dataclasses.replace(trace.header, expect={**(trace.header.expect or {}), **expect})
    kept = trace.steps if steps is None else trace.steps[:steps]
    write_trace(path, Trace(header, tuple(kept)))
    return path


def test_a_lasso_is_confirmed_and_exits_1(lasso_trace: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(lasso_trace)]) == 1
    out = capsys.readouterr().out
    assert f"lasso confirmed: {REACHES}" in out
    assert "fairness 'weak'" in out
    assert ": ok:" not in out


def test_the_lasso_check_names_the_vm_and_the_cycle(lasso_trace: Path) -> None:
    trace = read_trace(lasso_trace)
    check = check_lasso(trace)
    assert check is not None and check.confirmed
    assert check.vm == 0 and check.fairness == "weak"
    assert check.start + check.cycle_steps - 1 == len(trace.steps)


def test_a_cycle_that_does_not_close_is_not_confirmed(
        lasso_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = read_trace(lasso_trace)
    cut = _rewrite(trace, tmp_path / "cut.jsonl", steps=len(trace.steps) - 1)
    # every step is allowed and no safety property breaks: the trace shows no violation
    assert main(["replay", str(cut)]) == 0
    out = capsys.readouterr().out
    assert "lasso not confirmed" in out and "does not return to its first state" in out


def test_an_unfair_cycle_is_not_confirmed(lasso_trace: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # The VMM refusing forever is fair only under weak fairness, not strong acceptance.
    trace = read_trace(lasso_trace)
    strong = _rewrite(trace, tmp_path / "strong.jsonl", fairness="strong-accept")
    assert main(["replay", str(strong)]) == 0
    assert "not strongly fair" in capsys.readouterr().out


def test_a_lasso_start_outside_the_trace_is_bad_input(
        lasso_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = read_trace(lasso_trace)
    bad = _rewrite(trace, tmp_path / "bad.jsonl", lasso_start=len(trace.steps) + 5)
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:" in err and "lasso_start" in err and "Traceback" not in err


def test_an_illegal_step_in_a_lasso_is_still_illegal(lasso_trace: Path, tmp_path: Path) -> None:
    lines = lasso_trace.read_text().splitlines()
    step = json.loads(lines[1])
    step["args"]["vm"] = 7
    lines[1] = json.dumps(step)
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(forged)]) == 1


@pytest.mark.parametrize("vm", [0.0, 0.5, "0", [0], True, -1, 7])
def test_a_claim_naming_no_vm_is_bad_input(lasso_trace: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           vm: object) -> None:
    """``expect.vm`` names a VM by its number: 0.0 (equal to 0), a string or a VM out of
    range is refused, for a lasso and for a claim about the last state, never read as some
    VM nor ignored."""
    trace = read_trace(lasso_trace)
    lasso = _rewrite(trace, tmp_path / "lasso.jsonl", vm=vm)
    assert main(["replay", str(lasso)]) == 2
    assert "expect.vm must be" in capsys.readouterr().err
    header = dataclasses.replace(trace.header, expect={
        "property": "balloon_can_reach_target", "step": len(trace.steps), "vm": vm})
    stuck = tmp_path / "stuck.jsonl"
    write_trace(stuck, Trace(header, trace.steps))
    assert main(["replay", str(stuck)]) == 2
    err = capsys.readouterr().err
    assert f"{stuck}:1: expect.vm must be a VM number" in err, err
