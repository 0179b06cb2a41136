"""A trace as a runnable Python program: the counterexample as code a developer can step through.

Like Hypothesis printing a failing state machine run as a program, this turns
any trace into a short script that rebuilds the configuration, applies each
step through the reference model and stops with an ``AssertionError`` naming
the property that breaks.

>>> from ballast.model import Action, preset
>>> from ballast.model.trace import Trace, TraceHeader, TraceStep
>>> t = Trace(TraceHeader(preset("core")),
...           (TraceStep(1, Action.of("host_set_target", vm=0, pages=1)),))
>>> code = python_program(t)
>>> exec(compile(code, "<trace>", "exec"), {})
"""

from __future__ import annotations


from ballast.model.trace import Trace

__all__ = ["python_program"]


def python_program(trace: Trace) -> str:
    """Python source that replays ``trace`` step by step through the reference model."""
    h = trace.header
    cfg = repr(h.config.to_dict())
    lines = [
        '"""Replays a Ballast trace through the reference model, one step at a time."""',
        "from ballast.model import Action, BalloonModel, Config",
        "",
        f"config = Config.from_dict({cfg})",
        f"model = BalloonModel(config, faults={list(h.faults)!r})",
        "state = model.init_states()[0]",
        "",
        "def step(name, **args):",
        "    global state",
        "    action = Action.of(name, **args)",
        "    after = model.next_state(state, action)  # raises GuardError if not allowed",
        "    broken = model.step_violations(state, action, after)",
        "    state = after",
        "    assert not broken, f'{action} breaks {broken[0].property}: {broken[0].message}'",
        "",
    ]
    for st in trace.steps:
        args = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v!r}"
                         for k, v in st.action.args)
        lines.append(f"step({st.action.name!r}{', ' if args else ''}{args})  # step {st.step}")
    return "\n".join(lines) + "\n"
