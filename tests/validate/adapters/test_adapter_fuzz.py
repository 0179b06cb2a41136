"""Hostile adapters: malformed replies are the implementation's failure (exit 3), never a
crash of Ballast; every process an adapter starts is gone when ``diff`` returns; a missing
adapter program is bad usage (exit 2) and writes nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...hostile_cli import Outcome, assert_refused, fresh, run_cli, run_subprocess
from .adapter_scripts import script

FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _nest(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


bad_replies = st.one_of(
    st.integers(20, 50_000).map(lambda d: '{"id": %ID%, "ok": true, "observe": {"vms/0/target": '
                                + _nest(d) + "}}"),
    st.integers(21, 6_000).map(lambda n: '{"id": %ID%, "ok": true, "observe": {"vms/0/target": '
                               + "9" * n + "}}"),
    st.integers(21, 6_000).map(lambda n: '{"id": ' + "1" * n + ', "ok": true}'),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]).map(
        lambda v: '{"id": %ID%, "ok": true, "observe": {"vms/0/target": ' + v + "}}"),
    st.lists(st.lists(st.integers(0, 3), max_size=2), min_size=1, max_size=3).map(
        lambda v: '{"id": %ID%, "ok": true, "observe": {"vms/0/target": ' + str(v) + "}}"),
    st.integers(0xD800, 0xDFFF).map(
        lambda c: '{"id": %ID%, "ok": false, "reason": "no\\u' + f"{c:04x}" + '"}'),
    st.sampled_from(['{"id": %ID%, "ok": true, "observe": {"vms/0/target": {"a": [1, "x"]}}}',
                     '{"id": %ID%, "ok": "\xff"}', "\x00\x01\x02", "[]", "null", "{",
                     '{"id": %ID%, "ok": true, "observe": []}']),
)


def _pids_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    """The processes among ``pids`` still running (zombies count as gone) after a wait."""
    deadline = time.monotonic() + seconds
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        still = []
        for pid in alive:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            stat = Path(f"/proc/{pid}/stat")
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            except (OSError, IndexError):
                continue
            still.append(pid)
        alive = still
        if alive:
            time.sleep(0.05)
    return alive


def _diff(tmp: Path, command: list[str], *extra: str) -> Outcome:
    import shlex

    return run_cli(["diff", "--adapter", shlex.join(command), "--preset", "core",
                    "--examples", "3", "--steps", "5", "--timeout", "5",
                    "--report-dir", str(tmp / "reports"), *extra], seconds=60)


@FUZZ
@given(reply=bad_replies)
def test_malformed_replies_are_the_implementations_failure(tmp_path: Path, reply: str) -> None:
    tmp_path = fresh(tmp_path)
    raw = tmp_path / "reply.txt"
    raw.write_text(reply, encoding="utf-8", errors="surrogatepass")
    cmd = script(tmp_path, "hostile", f'''
    text = open({str(raw)!r}, encoding="utf-8", errors="surrogatepass").read()
    sys.stdout.write(text.replace("%ID%", str(i)) + "\\n"); sys.stdout.flush()
''', observe=["vms/0/target"])
    o = _diff(tmp_path, cmd)
    assert o.code == 3, o
    assert "Traceback" not in o.out + o.err, o
    assert "garbage" in o.out or "wrong-id" in o.out, o
    leftovers = [p.name for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_every_process_an_adapter_starts_is_gone_when_diff_returns(tmp_path: Path) -> None:
    """Children in the adapter's group, one in a session of its own (setsid), and a daemon
    that double-forked away from its parent: all ended when ``diff`` returns."""
    pids = tmp_path / "pids"
    cmd = script(tmp_path, "escaper", f'''
    if "reset" in msg and not os.path.exists({str(pids)!r}):
        import subprocess
        sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
        group = subprocess.Popen(sleeper)
        session = subprocess.Popen(sleeper, start_new_session=True)
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.close(r)
                os.write(w, str(os.getpid()).encode()); os.close(w)
                time.sleep(300)
            os._exit(0)
        os.close(w)
        daemon = int(os.read(r, 32)); os.close(r)
        open({str(pids)!r}, "w").write(f"{{group.pid}} {{session.pid}} {{daemon}}")
    send({{"id": i, "ok": True, "observe": {{}}}})
''')
    o = _diff(tmp_path, cmd)
    assert "Traceback" not in o.out + o.err, o
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 3
    assert _pids_gone(started) == [], "processes left running after diff returned"


def test_a_missing_adapter_program_is_bad_usage_and_writes_nothing(tmp_path: Path) -> None:
    for command in ("no-such-balloon-adapter --flag", "./not-here.py", str(tmp_path)):
        o = run_cli(["diff", "--adapter", command, "--preset", "virtio"], cwd=tmp_path)
        assert_refused(o, words="cannot start the adapter")
        assert list(tmp_path.iterdir()) == [], "diff created files for a missing adapter"


def test_a_missing_adapter_program_as_a_command(tmp_path: Path) -> None:
    o = run_subprocess(["diff", "--adapter", "no-such-balloon-adapter"], cwd=tmp_path)
    assert_refused(o, words="cannot start the adapter")
    assert not (tmp_path / "reports").exists()
