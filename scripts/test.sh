#!/bin/bash
# test.sh: set up, build, and run every test suite; ends with "N passed, N failed".
#   unit   cmocka tests of parsers and device models (no KVM)      normal + sanitizer build
#   micro  micro-guests on this machine's /dev/kvm                  normal + sanitizer build
#   linux  real Linux guests inside the stock-KVM host (QEMU/TCG)  normal build
#   fuzz   every libFuzzer target for 60 s from its seeds            fuzz build (clang)
# Options: --quick skips the linux suite and fuzzes each target for 10 s only.
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ ${1:-} == --quick ]] && quick=1

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
ninja -C build && ninja -C build-asan && ninja -C build-fuzz || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

if ((!quick)); then
    guest/build-guest.sh && tests/linux/build-host.sh ||
        { echo "guest or host image build failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# ASan reports must fail the test, and leaks count as defects too.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

suites=(--suite unit --suite micro)
((quick)) || suites+=(--suite linux)
status=0
# One meson run per build directory: each run rewrites its testlog.json.
meson test -C build "${suites[@]}" --print-errorlogs || status=1
meson test -C build-asan --suite unit --suite micro --print-errorlogs || status=1
# Fuzz targets run two at a time (meson's default on two cores), KILN_FUZZ_SECONDS each.
((quick)) && export KILN_FUZZ_SECONDS=${KILN_FUZZ_SECONDS:-10}
meson test -C build-fuzz --suite fuzz --print-errorlogs || status=1
cat build-fuzz/tests/fuzz/work/*/summary.txt 2>/dev/null

python3 scripts/test-summary.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
    build-fuzz/meson-logs/testlog.json
exit $status
