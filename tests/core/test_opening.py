"""Opening a file to read does not wait for a writer."""

from __future__ import annotations

import doctest
import os
import threading
from pathlib import Path

import ballast.opening
from ballast.opening import open_to_read


def test_docstring_examples_run() -> None:
    assert doctest.testmod(ballast.opening).failed == 0


def test_a_named_pipe_no_program_writes_to_opens_at_once_and_reads_empty(
        tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    got: list[str] = []

    def read() -> None:
        with open_to_read(fifo) as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "open() waited for a writer"
    assert got == [""]


def test_a_pipe_with_its_writer_is_read_whole(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, "é\n".encode())
        os.close(write_end)
        with open_to_read(f"/dev/fd/{read_end}") as f:
            assert f.read() == "é\n"
    finally:
        os.close(read_end)


def test_a_plain_file_in_bytes_or_text(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a\xc3\xa9")
    with open_to_read(p, binary=True) as fb:
        assert fb.read() == b"a\xc3\xa9"
    with open_to_read(p) as ft:
        assert ft.read() == "aé"
