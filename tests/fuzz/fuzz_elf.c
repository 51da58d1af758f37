/*
 * The ELF/PVH loader (arch/x86/pvh.c) on images the fuzzer writes: ELF header, program
 * headers, PT_LOAD segments against the file and guest RAM, the PVH entry note, initrd
 * placement.
 */
#include "arch/x86/boot.h"
#include "fuzz_guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_boot_run(KERNEL_FORMAT_ELF, data, size);
    return 0;
}
