"""The bulk reader of trace files (page runs checked and parsed with NumPy, a block at a
time) yields exactly what the line-by-line reader yields, errors included, on the real
sample, on the sample with odd or malformed page lines, and on random logs; and the rules
give the same verdict."""

from __future__ import annotations

import lzma
import random
from pathlib import Path
from typing import Callable

import pytest

import ballast.validate.qemu.bulk as bulk
import ballast.validate.qemu.trace_reader as trace_reader
from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.steps import GuestSize, profile_events
from ballast.validate.qemu.trace_reader import read_trace
from ballast.validate.suite import sample_dir
from ballast.validate.virtio.check import check_virtio

from .qemu_lines import QemuLog

SAMPLE = sample_dir()
FEATURES = frozenset({"STATS_VQ"})
"""The sample's negotiated features."""


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


# ------------------------------------------------- page lines of odd shapes, and verdicts

PREFIX_LINES = 6000
"""Lines of the sample kept for the mutants below (about twenty buffers, several blocks)."""


def _sample_prefix() -> list[str]:
    assert SAMPLE is not None
    with lzma.open(SAMPLE / "trace.log.xz", "rt", encoding="utf-8") as f:
        return [line for _, line in zip(range(PREFIX_LINES), f)]


def _page_indices(lines: list[str]) -> list[int]:
    return [i for i, text in enumerate(lines) if "virtio_balloon_handle_output" in text]


PAGE_MUTATIONS: dict[str, Callable[[str], str]] = {
    # Each turns one page line ("TID@SEC.USEC:virtio_balloon_handle_output section name:
    # pc.ram gpa: 0xADDR\n") into a line the line reader reads otherwise, or alike by
    # another route; the bulk reader must agree either way.
    "colon in the timestamp": lambda t: t.replace(".", ":", 1),
    "carriage return in the name": lambda t: t.replace("pc.ram", "pc\r.ram"),
    "name holding a gpa": lambda t: t.replace("pc.ram", "pc gpa: 0x5000"),
    "name holding the event": lambda t: t.replace(
        "pc.ram", "a:virtio_balloon_handle_output section name: b"),
    "colon in the name": lambda t: t.replace("pc.ram", "pc:ram"),
    "upper-case hex": lambda t: t.upper().replace("0X", "0x").replace(
        "VIRTIO_BALLOON_HANDLE_OUTPUT SECTION NAME: PC.RAM GPA", "virtio_balloon_handle_output "
        "section name: pc.ram gpa"),
    "misaligned gpa": lambda t: t.replace("000\n", "001\n"),
    "eight-digit thread": lambda t: "12345678@" + t.split("@", 1)[1],
    "another thread": lambda t: "10351@" + t.split("@", 1)[1],
    "no prefix": lambda t: t.split(":", 1)[1],
    "no at sign": lambda t: t.replace("@", "", 1),
    "widest gpa": lambda t: t.rsplit("0x", 1)[0] + "0xfffffffffffff000\n",
    "too wide a gpa": lambda t: t.rsplit("0x", 1)[0] + "0x1fffffffffffff000\n",
    "gpa past 64 bits": lambda t: t.rsplit("0x", 1)[0] + "0x" + "f" * 15 + "000\n",
    "underscore in the gpa": lambda t: t.replace("000\n", "_000\n"),
    "space after 0x": lambda t: t.replace("gpa: 0x", "gpa: 0x "),
    "tab for a space": lambda t: t.replace(" gpa", "\tgpa"),
    "no gpa": lambda t: t.rsplit(" gpa", 1)[0] + "\n",
    "empty gpa": lambda t: t.rsplit("0x", 1)[0] + "0x000\n",
    "nul byte": lambda t: t.replace("pc.ram", "pc\0ram"),
    "foreign digit in the gpa": lambda t: t.replace("000\n", "\u0663000\n"),
    "foreign digit in the thread": lambda t: "\u0661" + t,
    "foreign digit in the timestamp": lambda t: t.replace(".", ".\u0663", 1),
    "non-ASCII name": lambda t: t.replace("pc.ram", "pc.r\u00e4m"),
    "unrelated text first": lambda t: "unrelated " + t,
}


def _rules_verdict(source: Path | list[str]) -> tuple[object, ...]:
    """What the rules make of a trace: the broken rule, its line and message, the events."""
    try:
        rep = check_virtio(profile_events(read_trace(source), FEATURES, GuestSize()), FEATURES)
    except QemuLogError as exc:
        return ("error", exc.line, exc.message)
    found = rep.violation
    return (found and (found.rule, found.line, found.message), rep.events, rep.pages)


def _assert_bulk_reads_as_lines(tmp_path: Path, lines: list[str]) -> None:
    plain = tmp_path / "t.log"
    plain.write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
    packed = tmp_path / "t.log.xz"
    packed.write_bytes(lzma.compress(plain.read_bytes()))
    slow = _lines_of(plain)
    assert _outcome(plain) == _outcome(slow)
    assert _outcome(packed) == _outcome(slow)
    assert _rules_verdict(plain) == _rules_verdict(slow)


@pytest.mark.skipif(SAMPLE is None, reason="the QEMU sample is not beside the repository")
@pytest.mark.parametrize("mutation", sorted(PAGE_MUTATIONS))
def test_odd_page_lines_in_the_sample_read_as_line_by_line(tmp_path: Path, mutation: str) -> None:
    """One page line amid a buffer, at the start of one and at its end, mutated."""
    lines = _sample_prefix()
    pages = _page_indices(lines)
    for where in (pages[700], pages[256 * 5], pages[256 * 9 - 1]):
        lines[where] = PAGE_MUTATIONS[mutation](lines[where])
    _assert_bulk_reads_as_lines(tmp_path, lines)


@pytest.mark.skipif(SAMPLE is None, reason="the QEMU sample is not beside the repository")
@pytest.mark.parametrize("seed", range(12))
def test_randomly_mutated_sample_reads_as_line_by_line(tmp_path: Path, seed: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Several mutations at random page lines, in blocks of several sizes; the rules' verdict
    (a rule the mutants break, or an error at a line) is the same too."""
    rng = random.Random(seed)
    monkeypatch.setattr(bulk, "_BULK_CHUNK", rng.choice([4096, 1 << 15, 1 << 17]))
    lines = _sample_prefix()
    pages = _page_indices(lines)
    for _ in range(rng.choice([1, 2, 4])):
        where = rng.choice(pages)
        lines[where] = PAGE_MUTATIONS[rng.choice(sorted(PAGE_MUTATIONS))](lines[where])
    if rng.random() < 0.5:  # a page inflated twice: a broken rule, not a malformed line
        lines.insert(pages[256 * 3 + 5], lines[pages[10]])
    _assert_bulk_reads_as_lines(tmp_path, lines)


def test_threads_interleaved_without_prefix_and_in_capitals_read_as_line_by_line(
        tmp_path: Path) -> None:
    """Two threads' buffers interleaved, a trace without prefixes, upper-case addresses: each
    read in bulk (most pages in runs) and alike."""
    a = QemuLog(4096).target(600).inflate(list(range(100, 400)), ack=False).lines
    b = [line.replace("8@", "9@", 1) for line in
         QemuLog(4096).inflate(list(range(1000, 1300)), ack=False).lines]
    mixed = [line + "\n" for pair in zip(a, b) for line in pair]
    bare = [line.split(":", 1)[1] + "\n" for line in a]
    capitals = [line.upper().replace("0X", "0x").replace("VIRTIO_BALLOON_HANDLE_OUTPUT SECTION "
                "NAME: PC.RAM GPA", "virtio_balloon_handle_output section name: pc.ram gpa")
                + "\n" for line in a]
    for lines in (mixed[:1] + a[1:2] + mixed, bare, capitals):
        _assert_bulk_reads_as_lines(tmp_path, lines)
    for lines in (bare, capitals):
        plain = tmp_path / "t.log"
        plain.write_text("".join(lines))
        in_runs = sum(len(i.pfns) for i in bulk.bulk_items(str(plain))
                      if isinstance(i, bulk.PageRun))
        assert in_runs >= 290


@pytest.mark.skipif(SAMPLE is None, reason="the QEMU sample is not beside the repository")
def test_nearly_every_page_of_the_sample_is_read_in_bulk() -> None:
    """Only the first page line of each buffer (512) and of each block goes to the line reader."""
    assert SAMPLE is not None
    in_runs = lines = 0
    for item in bulk.bulk_items(str(SAMPLE / "trace.log.xz")):
        if isinstance(item, bulk.PageRun):
            in_runs += len(item.pfns)
        else:
            lines += 1
    assert in_runs + lines == 133_152
    assert in_runs >= 131_072 - 512 - 100


def test_a_buffer_past_the_bound_is_refused_at_the_same_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_reader, "MAX_BUFFER_PAGES", 10)
    lines = [line + "\n" for line in QemuLog(4096).target(64).inflate(list(range(100, 140))).lines]
    plain = tmp_path / "t.log"
    plain.write_text("".join(lines))
    events, error = _outcome(plain)
    assert (events, error) == _outcome(lines)
    assert error == (13, "buffer of more than 10 pages")  # the 11th page, after two lines
