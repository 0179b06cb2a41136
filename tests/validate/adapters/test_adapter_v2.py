"""Tests of protocol 2: the implementation chooses, the model judges.

Correct implementations whose guests allocate in other orders agree with the
model; seeded bugs that only contents, only the implementation's own choice,
only a long run or only a near-miss probe can show are each caught, with the
observation or the guard's reason named.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

import ballast.validate.adapters.nearmiss as adapter_nearmiss
import ballast.validate.adapters.v2 as adapter_v2
from ballast.model import BalloonModel, preset
from ballast.model.config import GuestPolicyName
from ballast.model.actions import Action
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.trace import Trace, TraceHeader, TraceStep, read_trace
from ballast.validate.adapters.diff import DiffOutcome, Divergence, Exchange, run_diff
from ballast.validate.adapters.handshake import Hello, ProtocolMismatch
from ballast.validate.adapters.nearmiss import NEAR_MISSES, near_miss, near_miss_for
from ballast.validate.adapters.observe import contents_digest, expand_keys, observe, read_back
from ballast.validate.adapters.report import write_report
from ballast.validate.trace.check import observed_difference
from ballast.verdict import Verdict

from .adapter_scripts import EXAMPLES, script

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
PYTHON = [sys.executable, str(EXAMPLES / "balloon_adapter.py"), "--protocol", "2"]
JS = ["node", str(EXAMPLES / "balloon_adapter.js"), "--protocol", "2"]


@pytest.mark.parametrize("module", [adapter_v2, adapter_nearmiss])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


# -- observations of contents ---------------------------------------------------

def _reachable(name: str, n: int) -> list:  # type: ignore[type-arg]
    """``n`` states of random walks of the model (restarted every 60 steps)."""
    import random

    model = BalloonModel(preset(name))
    rng = random.Random(7)
    out = []
    while len(out) < n:
        s = model.init_states()[0]
        for _ in range(60):
            succ = list(model.successors(s))
            if not succ:
                break
            s = rng.choice(succ)[1]
            out.append(s)
    return out[:n]


def test_read_back_tokens_are_what_the_guest_wrote_in_every_reachable_state() -> None:
    # guest_data_intact, read through the observation: a model that keeps data
    # must read back exactly what each process last wrote.
    states = _reachable("vmware", 400)
    assert any(any(v.guest.expected) for s in states for v in s.vms)
    for s in states:
        for vm, v in enumerate(s.vms):
            assert read_back(s, vm) == list(v.guest.expected)


def test_digest_and_scrubbing_keys() -> None:
    cfg = preset("virtio")
    keys = expand_keys(cfg, ["vms/*/guest/digest", "vms/*/guest/tokens", "host/unscrubbed_count"])
    for s in _reachable("virtio", 200):
        obs = observe(s, keys)
        resident = [(u, obs["vms/0/guest/tokens"][u]) for u in s.vms[0].guest.ppn_use if u >= 0]
        assert obs["vms/0/guest/digest"] == contents_digest(resident)
        assert obs["host/unscrubbed_count"] == 0
    assert contents_digest([(0, 1)]) != contents_digest([(0, 2)])


def test_validate_catches_lost_data_through_a_content_observation() -> None:
    cfg = preset("virtio")
    steps = (TraceStep(1, Action.of("guest_write", vm=0, vpn=1, token=2)),
             TraceStep(2, Action.of("guest_read", vm=0, vpn=0),
                       observe={"vms/0/guest/tokens": [0, 2, 0], "host/unscrubbed_count": 0}))
    good = Trace(TraceHeader(cfg, ()), steps)
    assert replay(good).outcome is ReplayOutcome.OK
    lost = Trace(TraceHeader(cfg, ()), steps[:1] + (TraceStep(
        2, steps[1].action, observe={"vms/0/guest/tokens": [0, 0, 0]}),))
    result = replay(lost)
    assert result.outcome is ReplayOutcome.ILLEGAL and result.step == 2
    assert "vms/0/guest/tokens is [0, 2, 0], observed [0, 0, 0]" in (result.reason or "")
    # The validator of partial traces reads content keys the same way.
    state = BalloonModel(cfg).next_state(BalloonModel(cfg).init_states()[0], steps[0].action)
    assert observed_difference(state, {"vms/0/guest/digest": 0}) is not None
    assert observed_difference(state, {"vms/0/guest/tokens": [0, 2, 0]}) is None


# -- near-miss probes ------------------------------------------------------------

def test_every_near_miss_probe_is_refused_by_the_guard_and_some_are_built() -> None:
    model = BalloonModel(preset("virtio"))
    built = set()
    everything = frozenset(a.name for a in model.action_specs())
    for s in _reachable("virtio", 300):
        for which in NEAR_MISSES:
            act = near_miss_for(model, s, 0, which, everything)
            if act is not None:
                built.add(which)
                assert model.try_next_state(s, act) is None, (which, act)
            raw = near_miss(model.cfg, s, 0, which)
            if raw is not None and act is None and raw.name in everything:
                # Not sent: the guard would allow it, so it is no near miss.
                assert model.try_next_state(s, raw) is not None
    assert {"inflate_over_limit", "deflate_not_above_target", "release_nothing"} <= built


# -- correct implementations that choose for themselves ---------------------------

@pytest.mark.parametrize("command, alloc, name, examples", [
    (PYTHON, "highest", "virtio", 20),
    (PYTHON, "random", "core", 40),
    pytest.param(JS, "random", "virtio", 20, marks=needs_node),
    pytest.param(JS, "highest", "hugepages", 20, marks=needs_node),
])
def test_implementation_choosing_its_own_pages_agrees(command: list[str], alloc: str,
                                                      name: str, examples: int) -> None:
    out = run_diff(command + ["--alloc", alloc], preset(name), examples=examples, seed=1)
    assert out.verdict is Verdict.PASS, out.describe()
    assert out.protocol == 2 and out.hello is not None
    # Its allocator's order is its own: the model admits any free pages.
    assert out.hello.widened == (("guest_policy", "any"),)
    assert out.cfg.guest_policy is GuestPolicyName.ANY
    for action in ("balloon_inflate", "vmm_reclaim", "balloon_deflate", "vmm_release"):
        assert out.carried_out.get(action, 0) > 0, action
    assert out.near_misses > 0


@pytest.mark.slow
@pytest.mark.parametrize("language", ["python", pytest.param("node", marks=needs_node)])
@pytest.mark.parametrize("alloc", ["lowest", "highest", "random"])
@pytest.mark.parametrize("name", ["core", "virtio", "hugepages"])
def test_every_allocation_order_agrees_on_every_preset(language: str, alloc: str,
                                                       name: str) -> None:
    command = PYTHON if language == "python" else JS
    # On hugepages the host reuses a reclaimed page only once a whole host page of 4
    # units is free; a guest allocating highest-first or at random rarely balloons a
    # page that was backed, so that takes many runs.
    examples = 300 if name == "hugepages" else 40
    out = run_diff(command + ["--alloc", alloc], preset(name), examples=examples, seed=2)
    assert out.verdict is Verdict.PASS, out.describe()


@pytest.mark.parametrize("command", [PYTHON, pytest.param(JS, marks=needs_node)])
def test_device_accepting_in_arrival_order_agrees_where_refusal_is_on(
        command: list[str]) -> None:
    cfg = preset("virtio").replace(refusal=True)
    out = run_diff(command + ["--alloc", "highest", "--accept", "arrival"], cfg,
                   examples=30, seed=1)
    assert out.verdict is Verdict.PASS, out.describe()


def test_device_accepting_in_arrival_order_agrees_without_refusal() -> None:
    out = run_diff(PYTHON + ["--alloc", "highest", "--accept", "arrival"], preset("virtio"),
                   examples=30, seed=1)
    assert out.verdict is Verdict.PASS, out.describe()


@pytest.mark.parametrize("command", [PYTHON, pytest.param(JS, marks=needs_node)])
def test_vmm_backing_deflated_pages_eagerly_agrees(command: list[str]) -> None:
    out = run_diff(command + ["--eager"], preset("virtio"), examples=30, seed=1)
    assert out.verdict is Verdict.PASS, out.describe()
    # The implementation declared eager backing and reported its backing steps, each
    # admitted by the model's guard.
    assert out.hello is not None and ("eager_backing", True) in out.hello.widened
    assert out.carried_out.get("vmm_back_page", 0) > 0, out.carried_out


def test_diff_names_the_configuration_the_implementation_declared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The command line says what the run checked against: the preset with the change
    # the implementation declared (eager backing), in its text and its JSON.
    from ballast.cli import main

    adapter = shlex.join(PYTHON + ["--eager"])
    base = ["diff", "-q", "--adapter", adapter, "--preset", "virtio", "--examples", "30",
            "--seed", "1", "--report-dir", str(tmp_path)]
    assert main(base) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines()
            if ln.startswith("configuration:")][0]
    assert line.startswith("configuration: preset virtio, with the implementation's "
                           "eager_backing=true: "), line
    assert "eager_backing" in line.split(";")[1], line


def test_the_json_summary_names_the_declared_configuration() -> None:
    from ballast.cli.diff import summary

    hello = Hello("impl", (), (), (), (), protocol=2, widened=(("eager_backing", True),))
    out = summary(DiffOutcome(Verdict.PASS, hello, preset("virtio"), 0, ()), None)
    assert json.loads(json.dumps(out))["declared_config"] == {"eager_backing": True}
    assert summary(DiffOutcome(Verdict.PASS, None, preset("virtio"), 0, ()),
                   None)["declared_config"] == {}


@pytest.mark.parametrize("command", [PYTHON, pytest.param(JS, marks=needs_node)])
def test_eager_backing_is_refused_where_the_configuration_forbids_it(
        command: list[str]) -> None:
    # The same steps without declaring eager backing never pass: the configuration
    # switches the action off, so the run stops at the first step that reports it.
    out = run_diff(command + ["--eager", "--no-declare"], preset("virtio"), examples=30,
                   seed=1)
    assert out.verdict is Verdict.INCONCLUSIVE, out.describe()
    assert "reported vmm_back_page, which the hello did not declare" in out.describe()


# -- seeded bugs, one per capability ----------------------------------------------

JS_BUGGY = ["node", str(EXAMPLES / "buggy_balloon_adapter.js"), "--protocol", "2"]
IMPLEMENTATIONS = [pytest.param("python", id="python"),
                   pytest.param("js", id="js", marks=needs_node)]
"""The seeded bugs of protocol 2 exist in both example implementations."""


def _bug(impl: str, name: str, *extra: str) -> list[str]:
    return (PYTHON if impl == "python" else JS_BUGGY) + list(extra) + ["--bug", name]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_unscrubbed_page_is_caught_through_contents_only(tmp_path: Path, impl: str) -> None:
    out = run_diff(_bug(impl, "no-scrub"), preset("virtio"), examples=50, seed=1,
                   shrink_runs=30)
    d = out.divergence
    assert d is not None and d.kind == "observation", out.describe()
    assert [k for k, _, _ in d.diffs] == ["host/unscrubbed_count"]
    assert d.last.action is not None and d.last.action.name == "vmm_reclaim"
    assert d.commands <= 10
    report = write_report(out, tmp_path)
    assert report is not None and "host/unscrubbed_count" in report.markdown_path.read_text()
    # The trace carries the content key, so replaying it shows the leak too.
    assert report.trace_path is not None
    again = replay(read_trace(report.trace_path))
    assert again.outcome is ReplayOutcome.ILLEGAL
    assert "host/unscrubbed_count is 0, observed 1" in (again.reason or "")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_allocator_handing_over_a_used_page_is_caught_through_its_own_choice(
        tmp_path: Path, impl: str) -> None:
    out = run_diff(_bug(impl, "alloc-in-use", "--alloc", "highest"), preset("virtio"),
                   examples=50,
                   seed=1, shrink_runs=30)
    d = out.divergence
    assert d is not None and d.kind == "accepted", out.describe()
    last = d.last
    assert last.request == "run module of VM 0"  # its own step, not one Ballast named
    assert last.action is not None and last.action.name == "balloon_inflate"
    assert last.model_reason is not None and "allocator" in last.model_reason
    assert d.commands <= 10
    report = write_report(out, tmp_path)
    assert report is not None and report.trace_path is not None
    again = replay(read_trace(report.trace_path))
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == len(
        read_trace(report.trace_path).steps)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_bug_only_a_near_miss_probe_reveals(impl: str) -> None:
    out = run_diff(_bug(impl, "deflate-ignores-target"), preset("virtio"), examples=50, seed=1,
                   shrink_runs=30)
    d = out.divergence
    assert d is not None and d.kind == "accepted", out.describe()
    assert d.last.request is None  # a probe Ballast built, not the driver's own step
    assert d.last.action is not None and d.last.action.name == "balloon_deflate"
    assert "not above its target" in (d.last.model_reason or "")
    assert d.commands <= 10


@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_bug_that_needs_more_than_a_hundred_commands(impl: str) -> None:
    short = run_diff(_bug(impl, "periodic-leak"), preset("virtio"), examples=30, steps=50,
                     seed=1)
    assert short.divergence is None
    out = run_diff(_bug(impl, "periodic-leak"), preset("virtio"), examples=30, seed=1)
    d = out.divergence
    assert d is not None and d.kind == "observation", out.describe()
    assert "host/free_count" in [k for k, _, _ in d.diffs]
    assert d.commands >= 120


# -- the protocol ----------------------------------------------------------------

def test_unknown_protocol_version_is_a_clear_usage_error(tmp_path: Path) -> None:
    cmd = script(tmp_path, "future", "    pass\n", protocol=3)
    with pytest.raises(ProtocolMismatch, match="version 3; Ballast speaks versions 1 and 2"):
        run_diff(cmd, preset("core"), examples=1)


def test_step_of_the_wrong_actor_is_garbage(tmp_path: Path) -> None:
    cmd = script(tmp_path, "confused", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    elif "run" in msg:
        send({"id": i, "steps": [{"actor": "vmm", "action": "vmm_release",
                                  "args": {"vm": 0}}], "observe": {}})
    else: send({"id": i, "ok": False, "reason": "no"})
''', actions=["balloon_poll", "vmm_release", "host_set_target"], protocol=2)
    out = run_diff(cmd, preset("core"), examples=5, seed=1)
    err = out.adapter_error
    assert err is not None and err.kind == "garbage", out.describe()
    assert "no step of the module" in err.message or "no step of the" in err.message
    assert out.verdict is Verdict.INCONCLUSIVE


def test_idle_actor_whose_state_changed_diverges(tmp_path: Path) -> None:
    cmd = script(tmp_path, "drifter", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {"host/free_count": 3}})
    elif "run" in msg: send({"id": i, "steps": [], "observe": {"host/free_count": 2}})
    else: send({"id": i, "ok": False, "reason": "no", "observe": {"host/free_count": 3}})
''', actions=["balloon_poll", "host_set_target"], observe=["host/free_count"], protocol=2)
    out = run_diff(cmd, preset("core"), examples=20, seed=1)
    d = out.divergence
    assert d is not None and d.kind == "observation", out.describe()
    assert d.last.action is None and d.last.request == "run module of VM 0"
    assert d.commands == 1
    report = write_report(out, tmp_path / "out")
    assert report is not None and report.trace_path is not None
    # The run took no step from the initial state: the header carries the observation.
    trace = read_trace(report.trace_path)
    assert trace.steps == () and trace.header.observe == {"host/free_count": 2}
    again = replay(trace)
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == 0


@pytest.mark.parametrize("args, shown", [
    ('{"vm": 0, "ppns": [True]}', 'argument ppns must be an array of integers: '
                                   '{"vm": 0, "ppns": [true]}'),
    ('{"vm": 0, "ppns": [1.5]}', "argument ppns must be an array of integers"),
    ('{"vm": 0, "ppns": "x"}', "argument ppns must be an array of integers"),
    ('{"vm": 0.0, "ppns": [0]}', 'argument vm must be an integer: {"vm": 0.0, '),
])
def test_reported_arguments_of_another_type_are_garbage(tmp_path: Path, args: str,
                                                        shown: str) -> None:
    # The schema lets these through; the model's guard would take true for PPN 1, and a
    # trace of them would not replay.
    cmd = script(tmp_path, "sloppy", f'''
    if "run" in msg:
        send({{"id": i, "steps": [{{"actor": "module", "action": "balloon_inflate",
                                   "args": {args}}}], "observe": {{}}}})
    else: send({{"id": i, "ok": True, "observe": {{}}}})
''', actions=["balloon_inflate", "host_set_target"], protocol=2)
    out = run_diff(cmd, preset("core"), examples=5, seed=1)
    err = out.adapter_error
    assert err is not None and err.kind == "garbage", out.describe()
    assert f"balloon_inflate reported with {shown}" in err.message
    assert out.verdict is Verdict.INCONCLUSIVE and out.divergence is None


def _diverging(cfg_name: str, actions: list[Action], impl_change: dict[str, int],
               last_without_step: bool) -> tuple[DiffOutcome, Divergence]:
    """An outcome whose implementation's counts differ from the model's after ``actions``
    (and, with ``last_without_step``, after a protocol-2 run in which it took no step)."""
    cfg = preset(cfg_name)
    model = BalloonModel(cfg)
    keys = ["host/free_count", "vms/0/backed_count", "vms/0/module/actual"]
    s = model.init_states()[0]
    exchanges = [Exchange(0, None, True, None, True, None, observe(s, keys), observe(s, keys))]
    for n, act in enumerate(actions, start=1):
        s = model.next_state(s, act)
        exchanges.append(Exchange(n, act, True, None, True, None, observe(s, keys),
                                  observe(s, keys)))
    if last_without_step:
        exchanges.append(Exchange(len(exchanges), None, True, None, True, None,
                                  observe(s, keys), observe(s, keys),
                                  request="run module of VM 0"))
    last = exchanges[-1]
    lied = {**(last.impl_observe or {}), **impl_change}
    exchanges[-1] = dataclasses.replace(last, impl_observe=lied)
    diffs = tuple((k, last.model_observe[k], v) for k, v in impl_change.items())
    d = Divergence("observation", tuple(exchanges), diffs)
    hello = Hello("counts", tuple(a.name for a in actions), (), tuple(keys), tuple(keys),
                  protocol=2)
    return DiffOutcome(Verdict.VIOLATION, hello, cfg, 0, ("counts",), divergence=d), d


@pytest.mark.parametrize("last_without_step", [False, True])
def test_a_divergence_in_counts_replays_from_its_trace(tmp_path: Path,
                                                       last_without_step: bool) -> None:
    """The trace of a divergence carries every key the implementation observed, counts
    included (``ballast replay`` of a host that lost a page said "every property holds"), and
    an observation after a run with no step goes on the step before it."""
    acts = [Action.of("host_set_target", vm=0, pages=1), Action.of("balloon_poll", vm=0)]
    out, d = _diverging("virtio", acts, {"host/free_count": 0}, last_without_step)
    report = write_report(out, tmp_path)
    assert report is not None and report.trace_path is not None
    trace = read_trace(report.trace_path)
    assert len(trace.steps) == 2 and trace.steps[-1].observe is not None
    assert trace.header.expect is not None and trace.header.expect["step"] == 2
    again = replay(trace)
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == 2
    assert "host/free_count is" in (again.reason or "") and "observed 0" in (again.reason or "")


@pytest.mark.parametrize("before", [0, 1])
def test_an_observation_after_a_command_both_refused_is_in_the_trace(tmp_path: Path,
                                                                    before: int) -> None:
    """A command both sides refused changed nothing in the model; the implementation's
    observation after it is of the state the steps before it left: the last of them carries
    it, or with none, the header (the initial state). It used to be left out, so the trace
    replayed clean."""
    cfg = preset("core")
    model = BalloonModel(cfg)
    keys = ["host/free_count", "vms/0/target"]
    s = model.init_states()[0]
    exchanges = [Exchange(0, None, True, None, True, None, observe(s, keys), observe(s, keys))]
    for n in range(1, before + 1):
        act = Action.of("host_set_target", vm=0, pages=n)
        s = model.next_state(s, act)
        exchanges.append(Exchange(n, act, True, None, True, None, observe(s, keys),
                                  observe(s, keys)))
    probe = Action.of("vmm_release", vm=0)
    assert model.try_next_state(s, probe) is None
    lied = {**observe(s, keys), "host/free_count": 0}
    exchanges.append(Exchange(before + 1, probe, False, "nothing to release", False, "no",
                              observe(s, keys), lied))
    d = Divergence("observation", tuple(exchanges),
                   (("host/free_count", observe(s, keys)["host/free_count"], 0),))
    hello = Hello("refuser", ("host_set_target", "vmm_release"), (), tuple(keys), tuple(keys))
    out = DiffOutcome(Verdict.VIOLATION, hello, cfg, 0, ("refuser",), divergence=d)
    report = write_report(out, tmp_path)
    assert report is not None and report.trace_path is not None
    trace = read_trace(report.trace_path)
    assert len(trace.steps) == before
    assert trace.header.expect is not None and trace.header.expect["step"] == before
    carried = trace.steps[-1].observe if before else trace.header.observe
    assert carried == {"host/free_count": 0, "vms/0/target": before}
    again = replay(trace)
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == before
    assert "observation differs: host/free_count is" in (again.reason or "")
