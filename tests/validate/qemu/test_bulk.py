"""The bulk reader of trace files (page runs parsed in C-level passes) yields exactly what
the line-by-line reader yields, errors included, on the real sample and on random logs."""

from __future__ import annotations

import lzma
import random
from pathlib import Path

import pytest

import ballast.validate.qemu.bulk as bulk
from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.trace_reader import read_trace
from ballast.validate.suite import sample_dir

SAMPLE = sample_dir()


def _outcome(source: Path | list[str]) -> tuple[list[object], tuple[object, ...] | None]:
    events: list[object] = []
    try:
        for e in read_trace(source):
            events.append(e)
    except QemuLogError as exc:
        return events, (exc.line, exc.message)
    return events, None


def _lines_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(f)


@pytest.mark.skipif(SAMPLE is None, reason="the QEMU sample is not beside the repository")
def test_sample_bulk_equals_line_by_line() -> None:
    assert SAMPLE is not None
    path = SAMPLE / "trace.log.xz"
    with lzma.open(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
        lines = list(f)
    assert _outcome(path) == _outcome(lines)


def _random_log(rng: random.Random) -> list[str]:
    out: list[str] = []
    t = 1.0
    for _ in range(rng.randint(1, 25)):
        tid = rng.choice(["8", "9", "8", ""])
        queue = rng.choice([0, 1, 1, 2])

        def pre() -> str:
            return f"{tid}@{t:.6f}:" if tid else ""

        out.append(f"{pre()}virtio_queue_notify vdev 0x1 n {queue} vq 0x{queue + 10:x}\n")
        for _ in range(rng.randint(0, 12)):
            t += 0.001
            gpa = rng.randint(1, 300) * 4096
            line = f"{pre()}virtio_balloon_handle_output section name: pc.ram gpa: {gpa:#x}\n"
            r = rng.random()
            if r < 0.02:
                line = line.replace("000\n", "001\n")  # misaligned: an error
            elif r < 0.04:
                line = line.replace("\n", "\r\n")
            elif r < 0.06:
                line = "unrelated text " + line
            elif r < 0.08:
                line = f"9@{t:.6f}:" + line.split(":", 1)[-1] if ":" in line else line
            out.append(line)
        if rng.random() < 0.8:
            out.append(f"{pre()}virtio_notify vdev 0x1 vq 0x{queue + 10:x}\n")
        if rng.random() < 0.3:
            out.append(f"{pre()}virtio_balloon_set_config actual: {rng.randint(0, 9)} "
                       "oldactual: 0\n")
        if rng.random() < 0.05:
            out.append("a line that is no event at all\n")
    if rng.random() < 0.3:
        out[-1] = out[-1].rstrip("\n")  # a last line without its newline
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_logs_bulk_equals_line_by_line(tmp_path: Path, seed: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(bulk, "_BULK_CHUNK", rng.choice([64, 200, 1 << 17]))
    lines = _random_log(rng)
    plain = tmp_path / "t.log"
    plain.write_text("".join(lines), newline="")
    packed = tmp_path / "t.log.xz"
    packed.write_bytes(lzma.compress(plain.read_bytes()))
    slow = _outcome(_lines_of(plain))
    assert _outcome(plain) == slow
    assert _outcome(packed) == slow


def test_random_logs_cover_page_runs_and_errors(tmp_path: Path) -> None:
    """The random logs above do exercise both the bulk runs and the error paths."""
    runs = errors = 0
    for seed in range(40):
        lines = _random_log(random.Random(seed))
        plain = tmp_path / f"{seed}.log"
        plain.write_text("".join(lines), newline="")
        runs += sum(isinstance(i, bulk.PageRun) for i in bulk.bulk_items(str(plain)))
        errors += _outcome(plain)[1] is not None
    assert runs > 40 and 3 <= errors < 40
