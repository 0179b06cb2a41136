#!/usr/bin/env bash
# Reserve 2 MiB huge pages for Ballast's `huge-pages` capture scenario (guest RAM on huge
# pages), as root or with sudo:
#
#   bash .ci/reserve-huge-pages.sh [MIB]     # default 256 MiB (the scenario's guest), plus 32
#
# The capture itself never changes the host's settings; it refuses to start without enough
# free huge pages, and its test says why it skips. This script raises vm.nr_hugepages only
# when fewer are free than asked for, and exits 0 whether or not the kernel could reserve
# them (a container may not let it): the last line says how many MiB are free.
set -euo pipefail

MIB=${1:-256}
case "$MIB" in ''|*[!0-9]*) echo "reserve-huge-pages: MIB must be a whole number, not '$MIB'" >&2; exit 2 ;; esac

free_mib() {
    awk '/^HugePages_Free:/ {f=$2} /^Hugepagesize:/ {s=$2} END {print (s == 2048 ? f * 2 : 0)}' /proc/meminfo
}

have=$(free_mib)
if [ "$have" -lt "$MIB" ]; then
    total=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
    want=$(( total + (MIB - have) / 2 + 16 ))
    if [ "$(id -u)" -eq 0 ]; then
        echo "$want" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
    elif command -v sudo >/dev/null 2>&1; then
        echo "$want" | sudo -n tee /proc/sys/vm/nr_hugepages >/dev/null 2>&1 || true
    fi
fi
echo "reserve-huge-pages: $(free_mib) MiB of free 2 MiB huge pages (asked for $MIB)"
