/* Initial vCPU state for x86: boot page tables and GDT, registers, FPU, MSRs, LAPIC LVTs. */
#ifndef KILN_X86_REGS_H
#define KILN_X86_REGS_H

#include <stdint.h>

struct guest_mem;
struct x86_entry;

/* GDT selectors kiln's boot GDT provides (Linux's boot protocol wants 0x10 and 0x18). */
#define X86_SEL_CODE32 0x08
#define X86_SEL_CODE64 0x10
#define X86_SEL_DATA 0x18

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_MP (1ULL << 1)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_NE (1ULL << 5)
#define X86_CR0_WP (1ULL << 16)
#define X86_CR0_AM (1ULL << 18)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)

/* Writes the boot GDT and an identity map of the first 4 GiB (2 MiB pages) to guest RAM. */
int x86_write_boot_tables(const struct guest_mem *mem);

/* State every vCPU needs before it first runs (MSRs, LAPIC LINT0/LINT1). */
int x86_vcpu_init(int vcpu_fd);

/* Puts the boot vCPU at the kernel's entry point in the mode the entry asks for. */
int x86_vcpu_set_entry(int vcpu_fd, const struct x86_entry *entry);

#endif
