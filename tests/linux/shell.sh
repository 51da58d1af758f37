#!/bin/bash
# shell.sh [COMMAND [ARG...]]
#
# Boot the stock-KVM host (an outer QEMU TCG VM with its own nested KVM; see
# build-host.sh) on this terminal, with this machine's files at their usual
# paths (read-only) and the current directory as the working directory.
# Without a command: a login shell; exiting it powers the VM off. With a
# command: run it there, then power off; the exit status is the command's.
# Ctrl-] x ends the outer VM at any time; Ctrl-A x goes to kiln inside.
#
# Example, kiln's default guest on a machine without VT-x/AMD-V:
#   tests/linux/shell.sh build/src/kiln run --kernel ~/.cache/kiln/guest/vmlinuz \
#       --initrd ~/.cache/kiln/guest/initramfs.cpio.gz --cmdline console=ttyS0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/outerhost.py" shell "$@"
