#!/bin/bash
# fuzz.sh [SECONDS] [TARGET...]: runs each libFuzzer target (default: all of them) for
# SECONDS (default 60) from its committed seeds in tests/fuzz/corpus/TARGET, one after the
# other, and prints the executions per target and any crash. The fuzz build lives in
# build-fuzz/ (clang, ASan + UBSan); new inputs and crashes go to build-fuzz/tests/fuzz/work/.
# Exit status: 0 if no target crashed. A crash's input reproduces with
#   build-fuzz/tests/fuzz/fuzz_TARGET build-fuzz/tests/fuzz/work/TARGET/crash-...
set -uo pipefail
cd "$(dirname "$0")/.."
secs=60
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi

[[ -f build-fuzz/build.ninja ]] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
ninja -C build-fuzz >/dev/null || { echo "fuzz.sh: the fuzz build failed"; exit 1; }

targets=("$@")
if ((${#targets[@]} == 0)); then
    for f in tests/fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        [[ $t == fuzz_guest ]] && continue # shared code, not a target
        targets+=("${t#fuzz_}")
    done
fi

crashed=()
for t in "${targets[@]}"; do
    exe=build-fuzz/tests/fuzz/fuzz_$t
    [[ -x $exe ]] || { echo "fuzz.sh: no target '$t'"; crashed+=("$t"); continue; }
    tests/fuzz/run_fuzz.sh "$exe" "tests/fuzz/corpus/$t" "build-fuzz/tests/fuzz/work/$t" "$secs" ||
        crashed+=("$t")
done
if ((${#crashed[@]})); then
    echo "fuzz.sh: ${#crashed[@]} of ${#targets[@]} targets failed: ${crashed[*]}"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crash"
