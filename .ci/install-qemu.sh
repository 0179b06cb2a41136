#!/usr/bin/env bash
# Install what Ballast's real virtio-balloon capture needs (Debian 12), idempotently:
#   - Debian packages qemu-system-x86, busybox-static, cpio, xz-utils;
#   - the Debian kernel (linux-image-amd64) *extracted*, not installed: `apt-get download` +
#     `dpkg -x` into a cache directory; only vmlinuz and the virtio modules are kept;
#   - an initramfs whose /init (validate/_initramfs/init, busybox sh) loads the virtio-balloon
#     driver and prints MEM lines on the serial console.
#
# Run as root (or a user with sudo) on a fresh Debian 12 machine. A second run that finds
# everything in place does no network access and takes well under a second.
#
# Environment:
#   BALLAST_QEMU_CACHE    cache directory (default: $HOME/.cache/ballast/qemu)
#   BALLAST_QEMU_INIT     the guest /init script (default: validate/_initramfs/init of this repo)
#   BALLAST_QEMU_REFRESH  set to 1 to download and extract the kernel again
#
# Output (last lines, also written to $BALLAST_QEMU_CACHE/env):
#   BALLAST_QEMU_KERNEL=<path to vmlinuz>
#   BALLAST_QEMU_INITRD=<path to initramfs.cpio>
set -euo pipefail

CACHE=${BALLAST_QEMU_CACHE:-$HOME/.cache/ballast/qemu}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SRC=${BALLAST_QEMU_INIT:-$HERE/../validate/_initramfs/init}
PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils)
MODULES=(virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci virtio_balloon)

say() { printf 'install-qemu: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        apt_updated=1
    fi
}

# --- 1. Debian packages ---------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not on PATH after install"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (package busybox-static)"

# --- 2. the kernel, extracted into the cache ------------------------------------------------
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
KVER_FILE=$CACHE/kernel.version
kver=""
[ -f "$KVER_FILE" ] && kver=$(cat "$KVER_FILE")
if [ "${BALLAST_QEMU_REFRESH:-0}" = 1 ] || [ -z "$kver" ] || [ ! -f "$CACHE/vmlinuz-$kver" ] \
    || [ ! -f "$CACHE/modules-$kver/order" ]; then
    apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt_update
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$kpkg" ]; then
        apt_update
        kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
    work=$(mktemp -d "$CACHE/extract.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    say "downloading $kpkg (not installing it)"
    sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$work" && apt-get "${sandbox[@]}" download "$kpkg" >&2)
    debs=("$work"/*.deb)
    deb=${debs[0]}
    [ -f "$deb" ] || die "apt-get download gave no .deb"
    say "extracting $(basename "$deb")"
    dpkg -x "$deb" "$work/root"
    kernels=("$work"/root/boot/vmlinuz-*)
    vmlinuz=${kernels[0]}
    [ -f "$vmlinuz" ] || die "no boot/vmlinuz-* in $kpkg"
    kver=${vmlinuz##*/vmlinuz-}
    moddir=$work/root/lib/modules/$kver
    [ -f "$moddir/modules.order" ] || die "no modules.order in $kpkg"
    mods=$work/modules-$kver
    mkdir -p "$mods"

    # The module's file (maybe compressed) under $moddir, by module name; empty if none.
    mod_file() {
        local rel ext
        rel=$(awk -v n="$1" '{ f = $0; sub(/.*\//, "", f); sub(/\.ko.*/, "", f); gsub(/-/, "_", f);
                               if (f == n) { print; exit } }' "$moddir/modules.order")
        [ -n "$rel" ] || return 0
        rel=${rel%.ko*}.ko
        for ext in "" .xz .gz .zst; do
            if [ -f "$moddir/$rel$ext" ]; then printf '%s\n' "$moddir/$rel$ext"; return 0; fi
        done
    }
    # Dependency closure in load order: depth first, dependencies before the module.
    # Dependencies come from the module's own .modinfo "depends=" (the .deb has no modules.dep).
    declare -A seen=()
    order=()
    visit() {
        local m=$1 src d deps
        [ -n "${seen[$m]:-}" ] && return 0
        seen[$m]=1
        src=$(mod_file "$m")
        if [ -z "$src" ]; then
            if grep -Eq "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" 2>/dev/null; then
                say "module $m is built into the kernel"
                return 0
            fi
            die "module $m not found in $kpkg"
        fi
        case $src in
            *.ko.xz) xz -dc "$src" >"$mods/$m.ko" ;;
            *.ko.gz) gzip -dc "$src" >"$mods/$m.ko" ;;
            *.ko.zst) zstd -qdc "$src" >"$mods/$m.ko" ;;
            *) cp "$src" "$mods/$m.ko" ;;
        esac
        deps=$(tr '\0' '\n' <"$mods/$m.ko" | sed -n 's/^depends=//p' | tr ',-' ' _')
        for d in $deps; do visit "$d"; done
        order+=("$m")
    }
    for m in "${MODULES[@]}"; do visit "$m"; done
    printf '%s\n' "${order[@]}" >"$mods/order"

    rm -rf "$CACHE/modules-$kver" "$CACHE/vmlinuz-$kver"
    mv "$mods" "$CACHE/modules-$kver"
    cp "$vmlinuz" "$CACHE/vmlinuz-$kver"
    printf '%s\n' "$kver" >"$KVER_FILE.tmp"
    mv "$KVER_FILE.tmp" "$KVER_FILE"
    rm -rf "$work"
    trap - EXIT
    say "kernel $kver cached"
fi
ln -sfn "vmlinuz-$kver" "$CACHE/vmlinuz"

# --- 3. the initramfs (rebuilt only when an input changed) ---------------------------------
[ -f "$INIT_SRC" ] || die "guest init script not found: $INIT_SRC (set BALLAST_QEMU_INIT)"
mods=$CACHE/modules-$kver
fingerprint=$( (
    sha256sum "$INIT_SRC" "$BUSYBOX" "$mods/order" "$mods"/*.ko | awk '{print $1}'
    id -u
) | sha256sum | awk '{print $1}')
INITRD=$CACHE/initramfs.cpio
if [ ! -f "$INITRD" ] || [ "$(cat "$INITRD.sha256" 2>/dev/null)" != "$fingerprint" ]; then
    stage=$(mktemp -d "$CACHE/initramfs.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,tmp,pressure,lib/modules}
    cp "$BUSYBOX" "$stage/bin/busybox"
    cp "$INIT_SRC" "$stage/init"
    chmod 0755 "$stage/init" "$stage/bin/busybox"
    cp "$mods"/*.ko "$mods/order" "$stage/lib/modules/"
    if [ "$(id -u)" -eq 0 ]; then
        # Lets the kernel open the console before /init mounts devtmpfs.
        mknod -m 0600 "$stage/dev/console" c 5 1
        mknod -m 0666 "$stage/dev/null" c 1 3
    fi
    # Same inputs, same bytes: fixed times, sorted names, no inode numbers.
    find "$stage" -exec touch -h -d @0 {} +
    (cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
        | cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) >"$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    printf '%s\n' "$fingerprint" >"$INITRD.sha256"
    rm -rf "$stage"
    trap - EXIT
    say "initramfs built ($(du -h "$INITRD" | cut -f1))"
fi

{
    printf 'BALLAST_QEMU_KERNEL=%s\n' "$CACHE/vmlinuz"
    printf 'BALLAST_QEMU_INITRD=%s\n' "$INITRD"
} >"$CACHE/env"
cat "$CACHE/env"
