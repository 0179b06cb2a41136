"""Tests of the differential runner: agreement, shrunk divergences, misbehaving implementations."""

from __future__ import annotations

import doctest
import os
import shutil
import sys
import time
from pathlib import Path

import jsonschema
import pytest

import ballast.validate.adapters.diff as adapter
import ballast.validate.adapters.handshake as adapter_handshake
import ballast.validate.adapters.observe as adapter_observe
import ballast.validate.adapters.process as adapter_process
from ballast.model import BalloonModel, preset
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.state import state_from_dict
from ballast.model.trace import observe_matches, read_trace
from ballast.validate.adapters.diff import run_diff
from ballast.validate.adapters.handshake import ConfigMismatch
from ballast.validate.adapters.observe import OBSERVATIONS, expand_keys, is_state_path, observe
from ballast.validate.adapters.process import protocol_schema, schema_errors
from ballast.validate.adapters.report import write_report
from ballast.verdict import Verdict

from .adapter_scripts import EXAMPLES, script

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="the example adapters run on Node.js, "
                                                     "which is not installed")
CORRECT = f"node {EXAMPLES / 'balloon_adapter.js'}"
BUGGY = f"node {EXAMPLES / 'buggy_balloon_adapter.js'}"


@pytest.mark.parametrize("module", [adapter, adapter_observe, adapter_process,
                                    adapter_handshake])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


# -- the protocol and the observations ---------------------------------------

def test_schema_is_a_valid_schema_and_names_every_message() -> None:
    schema = protocol_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema_errors("request", {"id": 4, "action": "balloon_inflate",
                                     "args": {"vm": 0, "ppns": [0, 1]}}) == []
    assert schema_errors("request", {"id": 1, "reset": {}}) == []
    assert schema_errors("step_reply", {"id": 4, "ok": False, "reason": "no"}) == []
    assert schema_errors("step_reply", {"id": 4, "ok": "yes"})
    assert schema_errors("hello_reply", {"id": 0, "hello": {"protocol": 3, "actions": [],
                                                            "observe": []}})
    assert schema_errors("hello_reply", {"id": 0, "hello": {"protocol": 2, "actions": [],
                                                            "observe": []}}) == []
    assert schema_errors("request", {"id": 5, "run": {"actor": "module", "vm": 0}}) == []
    assert schema_errors("request", {"id": 5, "run": {"actor": "host", "vm": 0}})
    step = {"actor": "module", "action": "balloon_inflate", "args": {"vm": 0, "ppns": [3]}}
    assert schema_errors("run_reply", {"id": 5, "steps": [step], "observe": {}}) == []
    assert schema_errors("run_reply", {"id": 5, "steps": [], "observe": {}}) == []
    assert schema_errors("run_reply", {"id": 5, "steps": [step]})


def _reachable_states(n: int) -> list:
    model = BalloonModel(preset("virtio"))
    frontier = model.init_states()
    seen = list(frontier)
    while frontier and len(seen) < n:
        nxt = []
        for s in frontier:
            for _, post in model.successors(s):
                nxt.append(post)
        frontier = nxt[:50]
        seen += frontier
    return seen[:n]


def test_state_path_keys_agree_with_the_trace_format() -> None:
    cfg = preset("virtio")
    keys = [k for k in expand_keys(cfg, OBSERVATIONS) if is_state_path(k)]
    for s in _reachable_states(300):
        obs = observe(s, keys)
        # observe_matches is the model's own reading of a trace observation.
        assert observe_matches(s, obs) is None
        assert state_from_dict(s.to_dict()) == s


def test_counts_agree_with_the_state() -> None:
    cfg = preset("virtio")
    for s in _reachable_states(200):
        full = s.to_dict()
        obs = observe(s, expand_keys(cfg, ["host/free_count", "host/in_use_count",
                                           "vms/*/guest/free_count", "vms/*/backed_count"]))
        assert obs["host/free_count"] == len(full["host"]["free"])
        assert obs["host/in_use_count"] == len(full["host"]["in_use"])
        assert obs["vms/0/guest/free_count"] == sum(1 for u in full["vms"][0]["guest"]["ppn_use"]
                                                    if u == -1)
        assert obs["vms/0/backed_count"] == sum(1 for m in full["vms"][0]["p2m"] if m != -1)


# -- the example implementations ---------------------------------------------

PYTHON = [sys.executable, str(EXAMPLES / "balloon_adapter.py")]


def _buggy(language: str, bug: str) -> list[str] | str:
    if language == "python":
        return PYTHON + ["--bug", bug]
    return f"{BUGGY} --bug {bug}"


@pytest.mark.parametrize("command, name, examples", [
    (PYTHON, "core", 12),
    pytest.param(CORRECT, "virtio", 12, marks=needs_node),
    # The host reusing a reclaimed page needs a whole free host page of 4 units: deep.
    pytest.param(CORRECT, "hugepages", 15, marks=needs_node),
])
def test_independent_implementation_agrees(command: list[str] | str, name: str,
                                           examples: int) -> None:
    out = run_diff(command, preset(name), examples=examples, steps=150, seed=3)
    assert out.verdict is Verdict.PASS, out.describe()
    assert out.exit_code == 0
    assert out.examples >= examples
    assert out.never_happened == () and out.unreached == ()
    assert out.near_misses > 0
    # The run exercised the balloon itself, guards included.
    for action in ("balloon_inflate", "vmm_reclaim", "balloon_complete", "vmm_release"):
        assert out.carried_out.get(action, 0) + out.refused.get(action, 0) > 0, action
    assert sum(out.refused.values()) > 0


@pytest.mark.parametrize("language", [
    "python", pytest.param("node", marks=[needs_node, pytest.mark.slow])])
def test_seeded_bug_release_keeps_ballooned_is_caught_and_shrunk(tmp_path: Path,
                                                                  language: str) -> None:
    out = run_diff(_buggy(language, "release-keeps-ballooned"), preset("virtio"),
                   examples=100, steps=50, seed=0)
    assert out.verdict is Verdict.VIOLATION and out.exit_code == 1
    d = out.divergence
    assert d is not None and d.kind == "observation"
    assert d.last.action is not None and d.last.action.name == "vmm_release"
    assert [k for k, _, _ in d.diffs] == ["vms/0/ballooned"]
    assert d.commands <= 12
    report = write_report(out, tmp_path)
    assert report is not None and report.trace_path is not None
    trace = read_trace(report.trace_path)
    assert trace.header.source["checker"] == "adapter"
    again = replay(trace)
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == len(trace.steps)
    assert "vms/0/ballooned" in (again.reason or "")
    text = report.markdown_path.read_text()
    assert "vmm_release" in text and "**<- diverges**" in text


@pytest.mark.parametrize("language", ["python", pytest.param("node", marks=needs_node)])
def test_seeded_bug_reclaim_ignores_target_shrinks_to_five_commands(language: str) -> None:
    out = run_diff(_buggy(language, "reclaim-ignores-target"), preset("virtio"),
                   examples=100, seed=0)
    d = out.divergence
    assert d is not None and d.last.action is not None
    assert d.last.action.name == "vmm_reclaim"
    assert d.commands == 5
    names = [ex.action.name for ex in d.exchanges[1:] if ex.action is not None]
    assert names.count("host_set_target") == 2  # up, then down before the VMM processes


@needs_node
def test_configuration_the_implementation_does_not_run_is_bad_usage() -> None:
    with pytest.raises(ConfigMismatch, match="sharing"):
        run_diff(CORRECT, preset("vmware"), examples=1)


# -- divergences of each kind, with tiny scripts ------------------------------

def test_refusing_what_the_model_allows(tmp_path: Path) -> None:
    cmd = script(tmp_path, "refuser", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    else: send({"id": i, "ok": False, "reason": "never"})
''')
    out = run_diff(cmd, preset("core"), examples=5, seed=1)
    d = out.divergence
    assert d is not None and d.kind == "refused" and d.commands == 1
    assert d.last.impl_reason == "never"
    report = write_report(out, tmp_path / "out")
    assert report is not None and report.trace_path is not None
    assert replay(read_trace(report.trace_path)).outcome is ReplayOutcome.OK


def test_accepting_what_the_guard_refuses(tmp_path: Path) -> None:
    cmd = script(tmp_path, "yes", '''
    send({"id": i, "ok": True, "observe": {}})
''')
    out = run_diff(cmd, preset("core"), examples=50, seed=1)
    d = out.divergence
    assert d is not None and d.kind == "accepted" and d.commands == 1
    assert d.last.model_reason is not None
    report = write_report(out, tmp_path / "out")
    assert report is not None and report.trace_path is not None
    again = replay(read_trace(report.trace_path))
    assert again.outcome is ReplayOutcome.ILLEGAL and again.step == 1


def test_wrong_initial_observation(tmp_path: Path) -> None:
    cmd = script(tmp_path, "liar", '''
    send({"id": i, "ok": True, "observe": {"host/free_count": 99}})
''', observe=["host/free_count"])
    out = run_diff(cmd, preset("core"), examples=5)
    d = out.divergence
    assert d is not None and d.kind == "observation" and d.commands == 0
    assert d.diffs == (("host/free_count", 3, 99),)
    report = write_report(out, tmp_path / "out")
    assert report is not None and report.trace_path is not None
    # No step carries the observation: the header does, and the replay stops on it.
    trace = read_trace(report.trace_path)
    assert trace.steps == () and trace.header.observe == {"host/free_count": 99}
    assert trace.header.expect is not None and trace.header.expect["step"] == 0
    again = replay(trace)
    assert again.outcome is ReplayOutcome.ILLEGAL and (again.step, again.line) == (0, 1)
    assert again.reason == "observation differs: host/free_count is 3, observed 99"


# -- implementations that misbehave -------------------------------------------

def _bounded(fn, limit_s: float):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    out = fn()
    assert time.monotonic() - t0 < limit_s
    return out


def test_timeout_is_reported_with_its_request(tmp_path: Path) -> None:
    cmd = script(tmp_path, "sleeper", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    else: time.sleep(60)
''')
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=20, timeout_s=0.5), 15)
    err = out.adapter_error
    assert err is not None and err.kind == "timeout"
    assert err.request is not None and "action" in err.request
    assert out.error_action is not None and out.error_action.name == err.request["action"]
    assert out.verdict is Verdict.INCONCLUSIVE and out.exit_code == 3
    report = write_report(out, tmp_path / "out")
    assert report is not None and "timeout" in report.markdown_path.read_text()


def test_crash_is_reported_with_stderr(tmp_path: Path) -> None:
    cmd = script(tmp_path, "crasher", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    else:
        sys.stderr.write("segfault in balloon driver\\n"); sys.stderr.flush(); os._exit(139)
''')
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=20), 15)
    err = out.adapter_error
    assert err is not None and err.kind == "crash"
    assert "status 139" in err.message
    assert "segfault in balloon driver" in err.stderr
    assert out.exit_code == 3


def test_a_crash_is_a_crash_while_a_child_holds_the_stdout_open(tmp_path: Path) -> None:
    """The implementation exits (status 7) but a process it started keeps its stdout open:
    a crash named with its status at once, not a timeout after the whole --timeout."""
    cmd = script(tmp_path, "parent", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    else:
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        os._exit(7)
''')
    start = time.monotonic()
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5, timeout_s=20.0), 40)
    err = out.adapter_error
    assert err is not None and err.kind == "crash", out.describe()
    assert "status 7" in err.message and time.monotonic() - start < 15


def test_half_a_reply_and_then_an_exit_is_a_crash(tmp_path: Path) -> None:
    cmd = script(tmp_path, "halfway", '''
    if "reset" in msg: send({"id": i, "ok": True, "observe": {}})
    else:
        sys.stdout.write('{"id": ' + str(i) + ', "ok": tr'); sys.stdout.flush(); os._exit(3)
''')
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5), 15)
    err = out.adapter_error
    assert err is not None and err.kind == "crash", out.describe()
    assert "in the middle of a reply" in err.message and "status 3" in err.message


def test_a_hello_whose_protocol_number_is_not_a_whole_number_is_garbage(
        tmp_path: Path) -> None:
    """``"protocol": 1.0`` is not version 1 of the protocol: it is not a whole number."""
    path = Path(script(tmp_path, "floaty", "    pass\n")[1])
    path.write_text(path.read_text().replace('"protocol": 1,', '"protocol": 1.0,'))
    out = _bounded(lambda: run_diff([sys.executable, str(path)], preset("core")), 15)
    err = out.adapter_error
    assert err is not None and err.kind == "garbage", out.describe()
    assert "protocol version must be a whole number, got 1.0" in err.message, err.message
    assert out.hello is None


def test_crash_before_hello(tmp_path: Path) -> None:
    path = tmp_path / "dead.py"
    path.write_text("import sys; sys.exit(4)\n")
    out = _bounded(lambda: run_diff([sys.executable, str(path)], preset("core")), 15)
    assert out.hello is None and out.adapter_error is not None
    assert out.adapter_error.kind == "crash" and out.adapter_error.request is not None
    assert "hello" in out.adapter_error.request


def test_a_failure_outside_a_command_names_the_request(tmp_path: Path) -> None:
    """A timeout at the hello, or at a reset, says which request it was."""
    path = tmp_path / "mute.py"
    path.write_text("import time; time.sleep(60)\n")
    out = _bounded(lambda: run_diff([sys.executable, str(path)], preset("core"),
                                    timeout_s=1.0), 15)
    assert out.adapter_error is not None and out.adapter_error.kind == "timeout"
    assert "failed (timeout) at request hello:" in out.describe(), out.describe()
    cmd = script(tmp_path, "deaf", "    time.sleep(60)\n")
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=2, timeout_s=1.0), 15)
    assert out.adapter_error is not None and out.adapter_error.kind == "timeout"
    assert "failed (timeout) at request 1 (reset):" in out.describe(), out.describe()


@pytest.mark.parametrize("body, kind", [
    ('    sys.stdout.write("ready!\\n"); sys.stdout.flush()\n', "garbage"),
    ('    send({"id": i, "ok": "maybe"})\n', "garbage"),
    ('    send({"id": i + 7, "ok": True, "observe": {}})\n', "wrong-id"),
    # 1.0 and true equal 1 in Python, but neither is the request number 1.
    ('    send({"id": float(i), "ok": True, "observe": {}})\n', "wrong-id"),
    ('    send({"id": i == 1 or i, "ok": True, "observe": {}})\n', "wrong-id"),
    ('    send({"id": i, "error": "internal assertion failed"})\n', "failed"),
    ('    send({"id": i, "ok": True, "observe": {"vms/0/target": 0}})\n', "garbage"),
])
def test_bad_replies_are_reported_as_such(tmp_path: Path, body: str, kind: str) -> None:
    cmd = script(tmp_path, "bad", body)
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5), 15)
    assert out.adapter_error is not None and out.adapter_error.kind == kind
    assert out.adapter_error.request is not None
    assert out.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("key, value", [
    ("vms/0/target", 0.0), ("vms/0/target", False),
    ("vms/0/ballooned", [0.0]), ("vms/0/ballooned", [1, "x"]),
    ("vms/0/ballooned", [[1], {"a": [2]}]), ("host/free_count", True),
    ("vms/0/guest/tokens", [[0], 1.5]),
])
def test_an_observation_of_another_kind_than_the_models_is_garbage(
        tmp_path: Path, key: str, value: object) -> None:
    """A float, truth value or string where the model has an integer (or an array of
    them) is no observation: it was compared loosely (0.0 equal to 0), or written into a
    divergence trace no replay reads, or made the report fail (exit 4)."""
    cmd = script(tmp_path, "loose", f'''
    if "reset" in msg or "action" in msg:
        send({{"id": i, "ok": True, "observe": {{{key!r}: {value!r}}}}})
''', observe=[key.replace("vms/0/", "vms/*/")])
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5), 15)
    assert out.verdict is Verdict.INCONCLUSIVE, out.describe()
    assert out.adapter_error is not None and out.adapter_error.kind == "garbage"
    assert f"observation {key} must be" in out.adapter_error.message


def test_process_group_is_cleaned_up(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cmd = script(tmp_path, "spawner", f'''
    if "reset" in msg:
        import subprocess, signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(120)
''')
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5, timeout_s=1.0), 20)
    assert out.adapter_error is not None and out.adapter_error.kind == "timeout"
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # A killed child may linger as a zombie until its parent is reaped.
            if Path(f"/proc/{pid}/stat").exists() and \
                    Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"process {pid} still runs after the run ended")


# -- processes that escape, stdin that is never read ----------------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and uses Linux pipe and prctl features")

_SLEEP = "import sys, time; time.sleep(float(sys.argv[1]))"

# An implementation whose descendants leave everything close() knew of before: each runs
# in a session of its own with an empty environment (no process group, no marker).
# Every request starts: a daemon (fork, setsid, fork: orphaned at once), a daemon that
# exits at once (an orphan that is only a zombie by close()), and a session leader with a
# child of its own that is still the implementation's child when it is closed.
_ESCAPER = '''
import json, os, sys, time
SLEEP = %r

def sleeper(seconds):
    os.execve(sys.executable, [sys.executable, "-c", SLEEP, str(seconds), TOKEN], {})

def forked(seconds, leader):
    r, w = os.pipe()
    first = os.fork()
    if first == 0:
        os.setsid()
        pid = os.fork()
        if pid == 0:
            os.close(r); os.close(w)
            sleeper(seconds)
        os.write(w, str(pid).encode()); os.close(r); os.close(w)
        if leader:
            sleeper(300)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32)); os.close(r)
    if not leader:
        os.waitpid(first, 0)
        return [pid]
    return [first, pid]

def ready(pid, running):
    try:
        if running:
            return TOKEN.encode() in open(f"/proc/{pid}/cmdline", "rb").read()
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return not running

for line in sys.stdin:
    msg = json.loads(line)
    if "bye" in msg:
        break
    TOKEN = msg["spawn"]
    running = forked(300, False) + forked(300, True)
    exited = forked(0, False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
            all(ready(p, True) for p in running) and all(ready(p, False) for p in exited)):
        time.sleep(0.01)
    print(json.dumps({"id": msg["id"], "running": running, "exited": exited}), flush=True)
''' % _SLEEP


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _carrying(token: str) -> list[int]:
    """Running processes whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _subreaper_flag() -> int:
    import ctypes

    value = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(value), 0, 0, 0)
    return value.value


@linux_only
def test_descendants_without_session_or_marker_are_ended_and_reaped(tmp_path: Path) -> None:
    """Descendants that left the implementation's process group and session and cleared
    their environment are ended by close() and reaped (no zombie is left), while the other
    children of this process, started before it or in this process's own session while it
    ran, are left alone with their exit statuses."""
    import signal
    import subprocess

    token = f"escaped-{os.getpid()}-{time.monotonic_ns()}"
    other = f"bystander-{os.getpid()}-{time.monotonic_ns()}"
    path = tmp_path / "escaper.py"
    path.write_text(_ESCAPER)
    flag = _subreaper_flag()
    early = subprocess.Popen([sys.executable, "-c", _SLEEP, "300", other],
                             start_new_session=True)
    later: list[subprocess.Popen[bytes]] = []
    p = adapter_process.AdapterProcess([sys.executable, str(path)], timeout_s=20)
    try:
        p.start()
        reply = p.request({"id": 1, "spawn": token}, validate=False)
        running, exited = reply["running"], reply["exited"]
        assert len(running) == 3 and len(exited) == 1
        assert sorted(_carrying(token)) == sorted(running)
        later = [subprocess.Popen([sys.executable, "-c", _SLEEP, "300", other]),
                 subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])]
        deadline = time.monotonic() + 10
        while _stat(later[1].pid)[:1] != ["Z"] and time.monotonic() < deadline:
            time.sleep(0.01)
        p.close()
        assert _carrying(token) == [], "descendants of the implementation outlived close()"
        zombies = [pid for pid in running + exited
                   if _stat(pid)[:2] == ["Z", str(os.getpid())]]
        assert zombies == [], "close() left its orphans unreaped"
        assert _subreaper_flag() == flag
        # The other children are untouched and still this process's to wait for.
        assert early.poll() is None and later[0].poll() is None
        assert later[1].wait(5) == 7
        for child in (early, later[0]):
            child.kill()
            assert child.wait(5) == -signal.SIGKILL
    finally:
        p.close()
        for pid in _carrying(token) + _carrying(other):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in [early, *later]:
            child.kill()
            child.wait(5)


def _within(seconds: float, fn, rescue):  # type: ignore[no-untyped-def]
    """Call ``fn`` in a thread; the exception it raised (None: none). One still running after
    ``seconds`` fails the test, once ``rescue`` has set it free."""
    import threading

    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        rescue()
        thread.join(10)
        pytest.fail(f"blocked for more than {seconds} s")
    return box.get("error")


def _kill_group(p: adapter_process.AdapterProcess):  # type: ignore[no-untyped-def]
    import signal

    pid = p._proc.pid if p._proc is not None else None

    def rescue() -> None:
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return rescue


_NEVER_READS = "import time; time.sleep(300)"
_FLOODS = 'import sys, time; sys.stdout.write("{}\\n" * 200000); sys.stdout.flush(); ' \
          'time.sleep(300)'


@pytest.mark.parametrize("program, size, count", [
    (_NEVER_READS, 4 << 20, 1),  # one request larger than any pipe buffer
    (_FLOODS, 1024, 1000),  # replies without reading: the requests pile up in the pipe
], ids=["one-large-request", "requests-pile-up"])
def test_an_implementation_that_does_not_read_its_stdin_times_out(program: str, size: int,
                                                                   count: int) -> None:
    p = adapter_process.AdapterProcess([sys.executable, "-c", program], timeout_s=0.5)
    p.start()
    try:
        def send() -> None:
            for i in range(1, count + 1):
                p.request({"id": i, "pad": "x" * size}, validate=False)
        started = time.monotonic()
        error = _within(5, send, _kill_group(p))
        assert time.monotonic() - started < 3
    finally:
        p.close()
    assert isinstance(error, adapter_process.AdapterTimeout), error
    assert error.message == "it did not read its stdin within 0.5 s"
    assert error.request is not None and 1 <= error.request["id"] <= count


@linux_only
def test_close_does_not_block_on_a_full_stdin() -> None:
    import fcntl

    program = ("import sys, time; sys.stdin.buffer.readline(); "
               "print('{\"id\": 1}', flush=True); time.sleep(300)")
    p = adapter_process.AdapterProcess([sys.executable, "-c", program], timeout_s=0.5)
    p.start()
    try:
        assert p.request({"id": 1}, validate=False) == {"id": 1}
        assert p._proc is not None and p._proc.stdin is not None
        capacity = fcntl.fcntl(p._proc.stdin.fileno(), 1032)  # F_GETPIPE_SZ
        # A request that fills the pipe but for one byte: written whole, never read.
        pad = "x" * (capacity - 1 - len('{"id":2,"pad":""}\n'))
        with pytest.raises(adapter_process.AdapterTimeout, match="no reply within"):
            p.request({"id": 2, "pad": pad}, validate=False)
        started = time.monotonic()
        assert _within(5, p.close, _kill_group(p)) is None
        assert time.monotonic() - started < 3
    finally:
        p.close()


def test_same_seed_same_counterexample() -> None:
    runs = [run_diff(_buggy("python", "reclaim-ignores-target"), preset("virtio"), examples=60,
                     seed=5) for _ in range(2)]
    shown = [[str(ex.action) for ex in r.divergence.exchanges] for r in runs
             if r.divergence is not None]
    assert len(shown) == 2 and shown[0] == shown[1]


# -- what a hostile implementation says about itself ---------------------------

@pytest.mark.parametrize("config, protocol", [
    ({"hostile_vms": [1, "a"]}, 1),  # a list whose items do not compare
    ({"vms": [[1], 2]}, 1),
    ({"hostile_vms": "x"}, 2),  # a protocol-2 widening checked against a list
])
def test_hello_configuration_of_any_shape_is_bad_usage(tmp_path: Path,
                                                       config: dict[str, object],
                                                       protocol: int) -> None:
    cmd = script(tmp_path, "odd", "    pass\n", config=config, protocol=protocol)
    with pytest.raises(ConfigMismatch, match="runs another configuration"):
        _bounded(lambda: run_diff(cmd, preset("core"), examples=1), 15)


def test_implementation_text_is_shown_as_one_bounded_line(tmp_path: Path) -> None:
    path = tmp_path / "noisy.py"
    path.write_text('''import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "hello" in msg:
        reply = {"id": 0, "hello": {"protocol": 1, "implementation": "evil\\n\\x1b[2Jname",
                 "actions": ["host_set_target"], "observe": []}}
    else:
        reply = {"id": msg["id"], "error": "line one\\nline two\\x1b[31m" + "x" * 100000}
    print(json.dumps(reply), flush=True)
''')
    out = _bounded(lambda: run_diff([sys.executable, str(path)], preset("core"), examples=1), 15)
    assert out.adapter_error is not None and out.adapter_error.kind == "failed"
    text = out.describe()
    assert "\n" not in text and "\x1b" not in text and len(text) < 600, text
    assert text.startswith("evil \\x1b[2Jname failed") and "line one line two" in text


def test_divergence_that_does_not_come_back_is_no_divergence(tmp_path: Path) -> None:
    # The first reset answers a wrong target, every later one the right one.
    cmd = script(tmp_path, "moody", '''
    if "reset" in msg:
        first, target = "target" not in globals(), 0
        send({"id": i, "ok": True, "observe": {"vms/0/target": 2 if first else 0}})
    else:
        a = msg["args"]
        ok = a["vm"] == 0 and 0 <= a["pages"] <= 3 and a["pages"] != target
        if ok: target = a["pages"]
        send({"id": i, "ok": ok, "observe": {"vms/0/target": target}})
''', observe=["vms/*/target"])
    out = _bounded(lambda: run_diff(cmd, preset("core"), examples=5), 15)
    assert out.verdict is Verdict.INCONCLUSIVE and out.flaky
    assert out.describe().startswith("moody is not deterministic"), out.describe()
    assert "diverges" not in out.describe()
    # Its report says so too: not a divergence report with shrunk commands.
    report = write_report(out, tmp_path / "report")
    assert report is not None and report.markdown_path.name.endswith("-flaky.md")
    text = report.markdown_path.read_text()
    assert text.startswith("# The implementation is not deterministic (inconclusive)"), text
    assert "diverges from the model" not in text and "(shrunk)" not in text
