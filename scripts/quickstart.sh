#!/bin/bash
# quickstart.sh: set up, build kiln and the default guest, and boot it to a shell.
#
# With hardware virtualization (vmx/svm) and /dev/kvm, kiln runs the guest directly.
# Without it (for example a software-emulated /dev/kvm such as kvm_pvm, which cannot run an
# unmodified Linux kernel), kiln runs inside the stock-KVM host: QEMU in software emulation
# with Debian's generic kernel and nested kvm_amd. Either way: `poweroff` in the guest, or
# Ctrl-A x, ends it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
ninja -C build
guest/build-guest.sh

if grep -qwE 'vmx|svm' /proc/cpuinfo && [[ -r /dev/kvm && -w /dev/kvm ]]; then
    echo "quickstart: booting the default guest with kiln (Ctrl-A x quits)"
    exec build/src/kiln run --rng
fi

echo "quickstart: this CPU has no hardware virtualization (no vmx/svm flag), so /dev/kvm here"
echo "quickstart: cannot run a Linux kernel. Booting the stock-KVM host (QEMU, software"
echo "quickstart: emulation, nested KVM) and running kiln inside it: about 15 s to the prompt."
tests/linux/build-host.sh
exec tests/linux/shell.sh build/src/kiln run --rng
