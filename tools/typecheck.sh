#!/usr/bin/env bash
# Type-check the whole package with mypy (strict, configured in pyproject.toml).
#
# The repository maps folders onto one namespace (core/ -> ballast, model/ ->
# ballast.model, ...), which mypy cannot follow by itself; this lays the same
# mapping out as a tree of symbolic links in a temporary folder and checks
# `ballast` there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/ballast"
for f in core/*.py; do ln -s "$root/$f" "$tree/ballast/$(basename "$f")"; done
for pkg in model proofs statespace numeric validate reports; do
    ln -s "$root/$pkg" "$tree/ballast/$pkg"
done
PY=${PYTHON:-python3}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
cd "$tree" && "$PY" -m mypy --config-file "$root/pyproject.toml" -p ballast "$@"
