/* What a VM is made of, as the user asked for it. Filled by the command line (or the API). */
#ifndef KILN_VM_CONFIG_H
#define KILN_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum kernel_format {
    KERNEL_FORMAT_AUTO,    /* bzImage or ELF, by magic number */
    KERNEL_FORMAT_BZIMAGE, /* Linux x86 boot protocol, 64-bit entry */
    KERNEL_FORMAT_ELF,     /* uncompressed vmlinux, entered through its PVH note */
    KERNEL_FORMAT_RAW,     /* flat binary at X86_RAW_LOAD_ADDR, 64-bit entry */
};

#define VM_DEFAULT_MEMORY (256ULL << 20)
#define VM_DEFAULT_CMDLINE "console=ttyS0 panic=1"
#define VM_MAX_CPUS 1024

struct vm_config {
    const char *kernel_path;
    enum kernel_format kernel_format;
    const char *initrd_path;
    const char *cmdline;
    uint64_t memory;
    unsigned cpus;
    bool no_reboot;
    const char *console_log;
    const char *kvm_path;
    bool rng; /* virtio-rng device */
};

#endif
