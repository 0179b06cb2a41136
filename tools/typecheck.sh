#!/usr/bin/env bash
# Type-check the whole package with mypy (strict, configured in pyproject.toml), then lint
# the repository with ruff (line length 100, pyflakes and syntax errors; [tool.ruff] in
# pyproject.toml): a finding of either fails the script.
#
# The repository maps folders onto one namespace (pyproject.toml's package-dir:
# core/ -> ballast, model/ -> ballast.model, ...), which mypy cannot follow by
# itself; this lays the same mapping out as a tree of symbolic links in a
# temporary folder and checks `ballast` there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
PY=${PYTHON:-python3}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
mkdir "$tree/ballast"
top=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]["ballast"])')
for f in "$top"/*.py; do ln -s "$root/$f" "$tree/ballast/$(basename "$f")"; done
# Every other package folder of pyproject.toml's package-dir, e.g. "ballast.model" = "model".
"$PY" -c 'import tomllib
for name, folder in tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"].items():
    if name != "ballast":
        print(name.removeprefix("ballast.").replace(".", "/"), folder)' |
while read -r pkg folder; do
    ln -s "$root/$folder" "$tree/ballast/$pkg"
done
cd "$tree" && "$PY" -m mypy --config-file "$root/pyproject.toml" -p ballast "$@"
cd "$root" && "$PY" -m ruff check .
