"""The package data that ships is the data that exists, with no setuptools warning."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """Where a package's files are, from ``package-dir`` (a subpackage sits in its parent's)."""
    dirs: dict[str, str] = CONFIG["package-dir"]
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in dirs:
            return ROOT / dirs[head] / Path(*parts[n:])
    raise AssertionError(f"no package-dir for {package}")


def test_every_package_data_glob_matches_a_file() -> None:
    stale = [f"{package}: {glob}" for package, globs in CONFIG["package-data"].items()
             for glob in globs if not any(_folder(package).glob(glob))]
    assert stale == []


def test_every_data_folder_is_a_listed_package() -> None:
    r = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout: which folders are sources is unknown")
    tracked = {str(Path(f).parent) for f in r.stdout.splitlines()}
    for package in CONFIG["packages"]:
        folder = _folder(package)
        assert folder.is_dir(), package
        for sub in folder.iterdir():
            if sub.is_dir() and str(sub.relative_to(ROOT)) in tracked:
                assert f"{package}.{sub.name}" in CONFIG["packages"], sub


def test_building_gives_no_package_data_warning(tmp_path: Path) -> None:
    code = ("import sys; sys.argv = ['setup.py', '-q', 'egg_info', '-e', sys.argv[1], "
            "'build_py', '-d', sys.argv[2]]; from setuptools import setup; setup()")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "build")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Package would be ignored" not in r.stderr and "is deprecated" not in r.stderr, \
        r.stderr
    built = {str(p.relative_to(tmp_path / "build")) for p in (tmp_path / "build").rglob("*")
             if p.is_file() and p.suffix != ".py"}
    assert "ballast/validate/_initramfs/init" in built
    assert "ballast/model/trace_schema.json" in built
