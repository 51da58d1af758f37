#!/bin/bash
# setup.sh: install what kiln needs to build, test and boot its guests on Debian 12, then
# configure the build directories. Safe to re-run.
#   build/       the normal build (-O2 -g)
#   build-asan/  the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   build-fuzz/  clang, libFuzzer harnesses only (tests/fuzz/), ASan + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, meson/ninja, pkg-config; libraries: liburing (virtio-blk I/O), libslirp
# and glib (user-mode networking), libmicrohttpd and jansson (the API: HTTP, JSON), zlib
# (snapshot state file checksums). Tests: cmocka, iasl/acpiexec (ACPI checks), e2fsprogs
# and iproute2 (disk and network tests). Guests: busybox-static, kernel packages unpacked
# with dpkg-deb, lz4 (cloud kernel payload), kmod (module dependencies). Stock-KVM host: QEMU.
# Lifecycle CLI: jansson (JSON), libcurl (its API client; loaded only by the CLI commands).
# Hardening: libseccomp (per-thread syscall filters), clang and its runtime (libFuzzer).
# Benchmarks (bench/run.py): QEMU as the peer, gnuplot for the charts.
PACKAGES=(gcc libc6-dev make meson ninja-build pkg-config liburing-dev libslirp-dev
          libglib2.0-dev libmicrohttpd-dev libjansson-dev zlib1g-dev libcmocka-dev acpica-tools binutils
          python3 busybox-static lz4 xz-utils cpio kmod qemu-system-x86 util-linux e2fsprogs
          iproute2 libcurl4-openssl-dev gnuplot-nox libseccomp-dev clang
          libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[[ -f build/build.ninja ]] || meson setup build
[[ -f build-asan/build.ninja ]] ||
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
[[ -f build-fuzz/build.ninja ]] ||
    CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
        -Db_sanitize=address,undefined -Db_lundef=false
