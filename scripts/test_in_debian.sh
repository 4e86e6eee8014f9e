#!/usr/bin/env bash
# The suite, without its end-to-end tests, on a Python this machine lacks but Debian's next
# release (forky) ships, 3.14 or 3.15: in a chroot that debootstrap makes once, as root, in
# DEBIAN_CHROOT (default /var/tmp/target-meta-capi-forky), with a virtualenv of its own there.
# The checkout's files (tracked, and untracked but not ignored) are copied in, so what runs is
# the working tree. When the chroot cannot be made or entered (not root, no apt, Debian's mirror
# unreachable, mounts refused), the version is skipped, and said so; a failing test fails.
# Usage: scripts/test_in_debian.sh 3.14 [pytest arguments]
set -uo pipefail

cd "$(dirname "$0")/.."
version=$1
shift
root=${DEBIAN_CHROOT:-/var/tmp/target-meta-capi-forky}
suite=forky
packages=ca-certificates,python3.14,python3.14-venv,python3.15,python3.15-venv

skip() {
    echo "==> Python $version: not on this machine, and $*: skipped"
    exit 0
}

[ "$(id -u)" -eq 0 ] || skip "a Debian chroot needs root"
git rev-parse --git-dir >/dev/null 2>&1 || skip "this is no git checkout to copy into a chroot"
install_debootstrap() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1
}
if ! command -v debootstrap >/dev/null; then
    # a fresh machine's package lists may be empty until updated
    command -v apt-get >/dev/null && { install_debootstrap || { apt-get update -qq && install_debootstrap; }; } ||
        skip "debootstrap cannot be installed"
fi
if [ ! -f "$root/.ready" ]; then
    echo "==> Python $version: making a Debian $suite chroot in $root (debootstrap, a few minutes)"
    umount "$root/dev/shm" "$root/proc" 2>/dev/null
    rm -rf "$root"
    # the debootstrap of Debian 12 has no script for forky by name; sid's makes any later suite
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" \
        http://deb.debian.org/debian /usr/share/debootstrap/scripts/sid >"$root.log" 2>&1 ||
        skip "debootstrap failed (its log: $root.log)"
    touch "$root/.ready"
fi

# proc for the suite's memory readings, a shared-memory tmpfs for multiprocessing's locks
mount -t proc proc "$root/proc" || skip "mounting proc in the chroot was refused"
trap 'umount "$root/dev/shm" "$root/proc" 2>/dev/null' EXIT
mount -t tmpfs tmpfs "$root/dev/shm" || skip "mounting a tmpfs in the chroot was refused"
# the host's name servers and certificates (a registry proxy's CA, say) and pip's settings
cp /etc/resolv.conf "$root/etc/resolv.conf"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"

rm -rf "$root/src"
mkdir -p "$root/src"
git ls-files -z --cached --others --exclude-standard |
    tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C "$root/src"

venv=/venv-py$version
echo "==> Python $version, in the Debian $suite chroot: installing into $root$venv"
chroot "$root" /bin/bash -c "cd /src && { [ -x $venv/bin/python ] || python$version -m venv $venv; } &&
    $venv/bin/python -m pip install --quiet --upgrade pip &&
    $venv/bin/python -m pip install --quiet -e '.[test]'" || {
    echo "Python $version: installing in the chroot FAILED" >&2
    exit 1
}
echo "==> pytest on Python $version ($(chroot "$root" "python$version" --version)), end-to-end tests left to make test"
chroot "$root" /bin/bash -c 'cd /src && exec "$0" -m pytest "$@"' "$venv/bin/python" \
    -q -m 'not e2e' -p no:cacheprovider "$@"
