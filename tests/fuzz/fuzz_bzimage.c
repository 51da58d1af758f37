/*
 * The bzImage loader (arch/x86/bzimage.c) on images the fuzzer writes: setup header
 * fields, sizes against the file, protocol version, load addresses, initrd placement.
 */
#include "arch/x86/boot.h"
#include "fuzz_guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_boot_run(KERNEL_FORMAT_BZIMAGE, data, size);
    return 0;
}
