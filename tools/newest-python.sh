#!/usr/bin/env bash
# Print the newest CPython after 3.11 this machine can run (one on PATH, or one that pyenv
# installed), or nothing (exit 1) when there is none.
#
#   PYTHON=$(bash tools/newest-python.sh) && echo "$PYTHON"
set -uo pipefail
for v in 3.14 3.13 3.12; do
    if command -v "python$v" >/dev/null 2>&1 && "python$v" -c pass >/dev/null 2>&1; then
        command -v "python$v"
        exit 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        # pyenv's shims answer only for the selected version: ask for the interpreter itself.
        full=$(pyenv latest "$v" 2>/dev/null) || continue
        prefix=$(pyenv prefix "$full" 2>/dev/null) || continue
        if [ -x "$prefix/bin/python$v" ] && "$prefix/bin/python$v" -c pass >/dev/null 2>&1; then
            echo "$prefix/bin/python$v"
            exit 0
        fi
    fi
done
exit 1
