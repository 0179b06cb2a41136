"""The model judge: the reference model applied to converted steps, its state in tables.

A step the model refuses or whose property breaks is named; the judge's state stays the one
before that step (the tables are rolled back), as the frozen model's would."""

from __future__ import annotations

from ballast.model.actions import Action
from ballast.model.incremental import StepChecker
from ballast.model.system import BalloonModel
from ballast.model.tables import frozen_copy
from ballast.model.trace import TraceStep
from ballast.validate.qemu.model_judge import ModelJudge
from ballast.validate.qemu.steps import GuestSize

OOM = frozenset({"DEFLATE_ON_OOM"})


def _steps() -> list[TraceStep]:
    acts = [Action.of("host_set_target", vm=0, pages=3), Action.of("balloon_poll", vm=0),
            Action.of("balloon_inflate", vm=0, ppns=(1, 4, 6)),
            Action.of("vmm_reclaim", vm=0, refuse=()), Action.of("balloon_complete", vm=0),
            Action.of("balloon_oom_deflate", vm=0, ppns=(4,)), Action.of("vmm_release", vm=0)]
    return [TraceStep(n, act, line=10 * n) for n, act in enumerate(acts, 1)]


def _judge(pages: int = 8) -> ModelJudge:
    size = GuestSize()
    size.pages = pages
    return ModelJudge(OOM, size)


def test_a_clean_trace_is_explained_and_its_state_is_the_frozen_models() -> None:
    judge = _judge()
    for st in _steps():
        judge.feed(st)
    verdict = judge.finish()
    assert verdict.ok and verdict.steps == 7 and verdict.guest_pages == 8
    assert judge.model is not None and judge.state is not None
    s = judge.model.init_states()[0]
    for st in _steps():
        s = judge.model.next_state(s, st.action)
    assert frozen_copy(judge.state) == s


def test_a_broken_property_is_named_and_the_step_is_not_taken() -> None:
    judge = _judge()
    steps = _steps()
    for st in steps[:5]:
        judge.feed(st)
    assert judge.model is not None and judge.state is not None
    before = frozen_copy(judge.state)
    # The same configuration with the OOM notifier's seeded fault: it frees balloon pages
    # without reporting them, which breaks guest_chooses_pages at the VMM.
    judge.model = BalloonModel(judge.model.cfg, ["oom_deflate_without_report"])
    judge.checker = StepChecker(judge.model)
    judge.feed(steps[5])
    verdict = judge.finish()
    assert not verdict.ok and verdict.steps == 5 and verdict.line == 60
    assert verdict.property in ("guest_chooses_pages", "balloon_accounting_exact")
    assert frozen_copy(judge.state) == before
    assert judge.tables is not None and frozen_copy(judge.tables.state) == before
    assert judge.tables.vms[0].use[4] == -2  # the page is the balloon's again in the table


def test_a_refused_step_is_named_with_the_guards_reason() -> None:
    judge = _judge()
    steps = _steps()
    for st in steps[:3] + steps[4:5]:
        judge.feed(st)
    verdict = judge.finish()
    assert not verdict.ok and verdict.steps == 3 and verdict.line == 50
    assert verdict.reason == "no acknowledgement is waiting"
