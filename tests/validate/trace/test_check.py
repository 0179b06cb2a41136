"""``ballast validate TRACE`` on the project's trace format: partial logs of model runs are
explained, divergences are reported with line, last state, possible actions and property,
and every relevant seeded fault is caught."""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from ballast.cli import main
from ballast.model.actions import Action
from ballast.model.config import Config, preset
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.model.trace import (Trace, TraceHeader, TraceStep, observe_matches, read_trace,
                                 write_trace)
from ballast.simulation.randomwalk import random_run
from ballast.validate.suite import _fault_caught, partial_header, partial_log
from ballast.validate.trace.check import observed_difference, validate_steps

CFG = Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1, machine_pages=3,
             host_swap_slots=0, tokens=1, batch=2, host_use=False)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _steps(*acts: Action, observe: dict[int, dict[str, object]] | None = None) -> list[TraceStep]:
    observe = observe or {}
    return [TraceStep(i + 1, a, observe=observe.get(i + 1), line=i + 2)
            for i, a in enumerate(acts)]


@pytest.mark.parametrize("name", ["core", "virtio", "processors"])
def test_partial_logs_of_model_runs_are_explained(name: str) -> None:
    model = BalloonModel(preset(name))
    for seed in range(3):
        run = random_run(model, seed, 30)
        if run.violation is not None:
            continue
        rep = validate_steps(partial_header(run.trace), iter(partial_log(run.trace)), max_gap=1)
        assert rep.outcome == "ok", (name, seed, rep.mismatch)
        assert rep.unlogged > 0


def test_unlogged_steps_are_bounded_by_max_gap() -> None:
    # target, then reclaim: the poll and the inflate in between are not logged.
    steps = _steps(Action.of("host_set_target", vm=0, pages=1),
                   Action.of("vmm_reclaim", vm=0, refuse=[]))
    assert validate_steps(TraceHeader(CFG), iter(steps), max_gap=2).outcome == "ok"
    rep = validate_steps(TraceHeader(CFG), iter(steps), max_gap=1)
    assert rep.outcome == "mismatch" and rep.mismatch is not None
    assert rep.mismatch.line == 3 and "reported no page" in rep.mismatch.reason


def test_the_whole_trace_must_be_consumed() -> None:
    good = [Action.of("host_set_target", vm=0, pages=1), Action.of("balloon_poll", vm=0)]
    bad = Action.of("balloon_deflate", vm=0, ppns=[0])
    rep = validate_steps(TraceHeader(CFG), iter(_steps(*good, bad)), max_gap=2)
    assert rep.outcome == "mismatch" and rep.steps == 2 and rep.mismatch is not None
    m = rep.mismatch
    assert m.line == 4 and m.step == 3
    assert m.property == "virtio_5_5_6_1_rule5_deflate_only_balloon_pages"
    assert "balloon_inflate(vm=0, ppns=[0])" in m.possible
    assert m.last_state.vms[0].module.target == 1


def test_an_observation_the_model_cannot_produce_names_the_broken_property() -> None:
    acts = [Action.of("host_set_target", vm=0, pages=1), Action.of("balloon_poll", vm=0),
            Action.of("balloon_inflate", vm=0, ppns=[0]), Action.of("vmm_reclaim", vm=0, refuse=[]),
            Action.of("balloon_complete", vm=0)]
    ok = validate_steps(TraceHeader(CFG),
                        iter(_steps(*acts, observe={5: {"vms/0/module/actual": 1}})), max_gap=0)
    assert ok.outcome == "ok"
    rep = validate_steps(TraceHeader(CFG),
                         iter(_steps(*acts, observe={5: {"vms/0/module/actual": 2}})), max_gap=0)
    assert rep.mismatch is not None and "observation differs" in rep.mismatch.reason
    assert rep.mismatch.property == "balloon_accounting_exact"


def test_too_many_explanations_is_inconclusive() -> None:
    steps = _steps(Action.of("host_set_target", vm=0, pages=1))
    rep = validate_steps(TraceHeader(CFG), iter(steps), max_gap=3, max_states=5)
    assert rep.outcome == "inconclusive" and "max-states" in rep.detail


def test_a_trace_of_no_step_is_judged_only_where_it_states_an_initial_state() -> None:
    """An empty log would otherwise pass: only the model's own initial state was checked."""
    cfg = Config(vms=1, guest_pages=2, machine_pages=2, host_use=False)
    rep = validate_steps(TraceHeader(cfg), iter([]))
    assert rep.outcome == "inconclusive" and "nothing of the implementation" in rep.detail
    s0 = BalloonModel(cfg).init_states()[0]
    assert validate_steps(TraceHeader(cfg, initial=s0.to_dict()), iter([])).outcome == "ok"


def test_observed_difference_agrees_with_the_models_observe_matches() -> None:
    rng = random.Random(4)
    model = BalloonModel(preset("default"))
    run = random_run(model, 3, 40)
    paths = ["vms/0/module/actual", "vms/1/ballooned", "host/free", "vms/0/guest/ppn_use",
             "vms/0/guest", "vms/1/module", "host/swap", "vms/0/p2m/2", "vms/3/target",
             "host/nothing"]
    for st in run.trace.steps:
        assert st.state is not None
        from ballast.model.state import state_from_dict
        s = state_from_dict(st.state)
        for path in paths:
            for want in (rng.choice([0, 1, [], [0], [1, 2]]), _at(st.state, path)):
                obs = {path: want}
                assert (observed_difference(s, obs) is None) == (observe_matches(s, obs) is None)


def _at(data: object, path: str) -> object:
    for part in path.split("/"):
        try:
            data = data[int(part)] if isinstance(data, list) else data[part]  # type: ignore[index]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return data


# ------------------------------------------------------------------- seeded faults


def _fault_config(name: str) -> Config:
    special = {"cpu_reclaim_keeps_parked": "processors", "cow_write_in_place": "vmware",
               "release_keeps_balloon_set": "core"}
    return preset(special.get(name, "virtio"))


@pytest.mark.parametrize("name", sorted(n for n, f in FAULTS.items() if f.breaks in INVARIANTS))
def test_every_seeded_fault_is_caught_and_replays(tmp_path: Path, name: str) -> None:
    """A run of the broken model, logged with full states, is not explained by the correct
    model; the counterexample replays through the broken model and breaks the property."""
    import time

    result = _fault_caught(_fault_config(name), name, 0, tmp_path, time.monotonic() + 20)
    assert result.verdict.value == "violation", result.detail
    assert result.counterexample is not None
    trace = read_trace(result.counterexample)
    again = replay(trace)
    assert again.outcome is ReplayOutcome.VIOLATION
    assert FAULTS[name].breaks in {v.property for v in again.violations}


# ------------------------------------------------------------------------- CLI


def test_cli_exit_codes_and_report(tmp_path: Path) -> None:
    run = random_run(BalloonModel(preset("core")), 1, 20)
    good = tmp_path / "good.jsonl"
    write_trace(good, Trace(partial_header(run.trace), tuple(partial_log(run.trace))))
    code, out, _ = _run("validate", str(good), "--no-progress")
    assert code == 0 and "explained by the model" in out

    bad = tmp_path / "bad.jsonl"
    write_trace(bad, Trace(TraceHeader(CFG), tuple(_steps(
        Action.of("host_set_target", vm=0, pages=1), Action.of("balloon_poll", vm=0),
        Action.of("balloon_deflate", vm=0, ppns=[0])))))
    code, out, _ = _run("validate", str(bad), "--no-progress")
    assert code == 1
    assert f"{bad}:4:" in out and "virtio_5_5_6_1_rule5_deflate_only_balloon_pages" in out
    assert "last matching state" in out and "actions the model allowed there" in out
    code, out, _ = _run("validate", str(bad), "--json", "--no-progress")
    data = json.loads(out)
    assert code == 1 and data["mismatch"]["line"] == 4 and data["mismatch"]["possible"]

    code, out, _ = _run("validate", str(good), "--max-gap", "3", "--max-states", "3",
                        "--no-progress")
    assert code == 3


def test_cli_bad_input_is_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    write_trace(broken, Trace(TraceHeader(CFG), tuple(_steps(
        Action.of("host_set_target", vm=0, pages=1)))))
    broken.write_text(broken.read_text() + "{not json\n")
    code, out, err = _run("validate", str(broken), "--no-progress")
    assert code == 2 and out == "" and f"{broken}:3" in err and "Traceback" not in err
    code, _, err = _run("validate", str(tmp_path / "none.jsonl"))
    assert code == 2 and "none.jsonl" in err


def test_a_trace_that_logs_every_step_is_checked_exactly(tmp_path: Path) -> None:
    # A model run declares that it logs every action, so no unlogged step is inferred and
    # a long run validates without the candidate set growing.
    run = random_run(BalloonModel(preset("core")), 4, 400, record_states=False)
    assert run.trace.header.source["unlogged_actions"] == []
    rep = validate_steps(run.trace.header, iter(run.trace.steps))
    assert rep.outcome == "ok" and rep.unlogged == 0
    dropped = Trace(run.trace.header, tuple(
        TraceStep(n, st.action) for n, st in enumerate(run.trace.steps[1:], start=1)))
    assert validate_steps(dropped.header, iter(dropped.steps)).outcome == "mismatch"


def test_an_unlogged_target_is_taken_from_the_log_never_enumerated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The gap search tries only the target the next logged step observes, however large
    the guest: one host_set_target per candidate state, not one per possible target."""
    import ballast.model.system as system

    cfg = Config(vms=1, guest_pages=4096, machine_pages=4096, guest_data_pages=0,
                 guest_disk_slots=0, host_swap_slots=0, tokens=1, batch=2, host_use=False)
    tried: list[int] = []
    real = system.BalloonModel.try_next_state

    def counting(self: system.BalloonModel, s: object, act: Action) -> object:
        if act.name == "host_set_target":
            tried.append(act.kwargs["pages"])
        return real(self, s, act)  # type: ignore[arg-type]

    monkeypatch.setattr(system.BalloonModel, "try_next_state", counting)
    # The host's target step is not logged; the poll after it observes the target.
    steps = [TraceStep(1, Action.of("balloon_poll", vm=0), observe={"vms/0/target": 2}, line=2)]
    rep = validate_steps(TraceHeader(cfg), iter(steps), max_gap=1)
    assert rep.outcome == "ok" and rep.unlogged == 1, rep.mismatch
    assert tried == [2]
    # With no target stated, none is guessed: a poll of an unchanged target is not explained,
    # and since a target the log does not state might explain it, that is no verdict.
    rep = validate_steps(TraceHeader(cfg),
                         iter([TraceStep(1, Action.of("balloon_poll", vm=0), line=2)]), max_gap=1)
    assert rep.outcome == "inconclusive" and tried == [2], rep
    assert "line 2" in rep.detail and "observe vms/0/target" in rep.detail
    # Where the log logs every target (the header says host_set_target is never unlogged),
    # or no step goes unlogged, the same step is a mismatch.
    logged_all = TraceHeader(cfg, source={"unlogged_actions": ["vmm_reclaim"]})
    for header, gap in ((logged_all, 1), (TraceHeader(cfg), 0)):
        rep = validate_steps(header, iter([TraceStep(1, Action.of("balloon_poll", vm=0),
                                                     line=2)]), max_gap=gap)
        assert rep.outcome == "mismatch", (header.source, gap, rep)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_log_without_its_targets_is_explained_on_a_small_guest(seed: int) -> None:
    """A model run whose host_set_target steps are not logged (the header says so) is
    behaviour the model allows: on a small guest, where the targets the log states do not
    explain a step, every target the host may set is tried before a mismatch is claimed."""
    run = random_run(BalloonModel(preset("core")), seed, 80)
    assert run.violation is None
    kept = [st for st in run.trace.steps if st.action.name != "host_set_target"]
    assert len(kept) < len(run.trace.steps)
    header = TraceHeader(run.trace.header.config, run.trace.header.faults,
                         {"unlogged_actions": ["host_set_target"]})
    bare = [TraceStep(n, st.action, line=n + 1) for n, st in enumerate(kept, start=1)]
    rep = validate_steps(header, iter(bare), max_gap=1)
    assert rep.outcome == "ok", rep.mismatch
    # A step no target explains is still a mismatch.
    bad = bare + [TraceStep(len(bare) + 1, Action.of("balloon_deflate", vm=0, ppns=[99]),
                            line=len(bare) + 2)]
    assert validate_steps(header, iter(bad), max_gap=1).outcome == "mismatch"


def test_an_overwritten_unlogged_target_is_a_whole_balloon_unit() -> None:
    """A logged target equal to the current one is explained by an unlogged target set in
    between; with balloon units of two pages that stand-in is a whole unit (0, not 1)."""
    cfg = Config(vms=1, guest_pages=4, machine_pages=4, guest_data_pages=1, guest_disk_slots=0,
                 host_swap_slots=0, tokens=1, batch=2, host_use=False, balloon_unit_pages=2)
    steps = _steps(Action.of("host_set_target", vm=0, pages=2),
                   Action.of("host_set_target", vm=0, pages=2))
    rep = validate_steps(TraceHeader(cfg), iter(steps), max_gap=1)
    assert rep.outcome == "ok" and rep.unlogged == 1, rep.mismatch
    assert validate_steps(TraceHeader(cfg), iter(steps), max_gap=0).outcome == "mismatch"


@pytest.mark.parametrize("name", ["large-units"])
def test_partial_logs_of_runs_with_balloon_units_are_explained(name: str) -> None:
    model = BalloonModel(preset(name))
    for seed in range(5):
        run = random_run(model, seed, 30)
        assert run.violation is None
        rep = validate_steps(partial_header(run.trace), iter(partial_log(run.trace)), max_gap=1,
                             max_states=20_000)
        assert rep.outcome == "ok", (name, seed, rep.mismatch)


def test_the_gap_search_takes_the_pages_the_log_states_never_all_page_sets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.model import system
    from ballast.model.config import GuestPolicyName

    cfg = Config(vms=1, guest_pages=4096, machine_pages=4096, guest_data_pages=0,
                 guest_disk_slots=0, host_swap_slots=0, tokens=1, batch=4, host_use=False,
                 guest_policy=GuestPolicyName.ANY)
    tried: list[tuple[int, ...]] = []
    real = system.BalloonModel.try_next_state

    def counting(self: system.BalloonModel, s: object, act: Action) -> object:
        if act.name == "balloon_inflate":
            tried.append(tuple(act.kwargs["ppns"]))
        return real(self, s, act)  # type: ignore[arg-type]

    monkeypatch.setattr(system.BalloonModel, "try_next_state", counting)
    logged = [Action.of("host_set_target", vm=0, pages=2), Action.of("balloon_poll", vm=0)]
    # The inflate of PPNs 5 and 4000 is not logged; the reclaim after it observes them.
    reclaim = TraceStep(3, Action.of("vmm_reclaim", vm=0, refuse=[]), line=4,
                        observe={"vms/0/ballooned": [5, 4000]})
    rep = validate_steps(TraceHeader(cfg), iter(_steps(*logged) + [reclaim]), max_gap=1)
    assert rep.outcome == "ok" and rep.unlogged == 1, rep.mismatch
    assert (5, 4000) in tried and len(tried) <= 8, tried
    # No page stated: the search does not guess among millions of page sets; it says so.
    tried.clear()
    silent = TraceStep(3, Action.of("vmm_reclaim", vm=0, refuse=[]), line=4)
    rep = validate_steps(TraceHeader(cfg), iter(_steps(*logged) + [silent]), max_gap=1)
    assert rep.outcome == "inconclusive" and "balloon_inflate" in rep.detail, rep
    assert "line 4" in rep.detail and tried == []


def test_the_headers_observation_of_the_initial_state_is_judged(tmp_path: Path) -> None:
    """What the implementation observed before any step is checked against the initial
    state, before any unlogged step (a header observe was refused as unknown)."""
    acts = [Action.of("host_set_target", vm=0, pages=1), Action.of("balloon_poll", vm=0)]
    seen = {"host/free_count": CFG.machine_pages, "vms/0/target": 0}
    ok = validate_steps(TraceHeader(CFG, observe=seen), iter(_steps(*acts)), max_gap=1)
    assert ok.outcome == "ok"
    # Alone it judges something of the implementation: no longer an empty log.
    assert validate_steps(TraceHeader(CFG, observe=seen), iter([])).outcome == "ok"
    wrong = {"host/free_count": CFG.machine_pages - 1}
    rep = validate_steps(TraceHeader(CFG, observe=wrong), iter(_steps(*acts)), max_gap=1)
    assert rep.outcome == "mismatch" and rep.mismatch is None
    assert rep.detail == (f"line 1: the initial state (before step 1) is not explained by the "
                          f"model: observation differs: host/free_count is "
                          f"{CFG.machine_pages}, observed {CFG.machine_pages - 1}")
    path = tmp_path / "t.jsonl"
    write_trace(path, Trace(TraceHeader(CFG, observe=wrong), tuple(_steps(*acts))))
    code, out, _ = _run("validate", str(path))
    assert code == 1 and "line 1: the initial state" in out
