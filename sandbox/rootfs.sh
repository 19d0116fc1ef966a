#!/usr/bin/env bash
# Offline recipe of the execution image: a Debian bookworm root file system made with
# debootstrap from the distribution mirror (no image registry needed), configured by setup.sh,
# packed as a tarball for `docker import`.
#
#   sandbox/rootfs.sh OUT.tar
#
# Needs root and debootstrap. The mirror is $SYNCROX_DEBIAN_MIRROR, else the Debian mirror this
# machine's apt uses, else http://deb.debian.org/debian. Takes about a minute.
set -euo pipefail

out=${1:?usage: rootfs.sh OUT.tar}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm

detect_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
        | grep -v -- '-security' | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

mirror=${SYNCROX_DEBIAN_MIRROR:-$(detect_mirror)}
packages=$(grep -v '^#' "$here/packages" | grep -v '^[[:space:]]*$' | paste -sd, -)
root=$(mktemp -d "${TMPDIR:-/var/tmp}/syncrox-rootfs.XXXXXX")
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the tree when it fails.
    umount -R "$root/proc" "$root/sys" 2>/dev/null || true
    rm -rf --one-file-system "$root"
    rm -f "$out.partial"
}
trap cleanup EXIT

echo "rootfs: debootstrap $suite from $mirror with $packages" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
install -m 0755 "$here/setup.sh" "$root/setup.sh"
chroot "$root" /bin/sh /setup.sh
rm -f "$root/setup.sh"
tar --numeric-owner --one-file-system -C "$root" \
    --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -cf "$out.partial" .
mv "$out.partial" "$out"
echo "rootfs: wrote $out ($(du -h "$out" | cut -f1))" >&2
