/*
 * Guest physical memory map on x86 (docs/ARCHITECTURE.md draws it).
 *
 *   0x0000_0500  GDT used at entry
 *   0x0000_7000  boot_params ("zero page") / PVH start_info
 *   0x0000_8000  e820 table for PVH
 *   0x0000_9000  page tables: PML4, PDPT, then 4 page directories (identity map of 4 GiB)
 *   0x0002_0000  kernel command line (up to 64 KiB)
 *   0x0008_f000  initial stack top for raw images (grows down)
 *   0x0009_fc00  start of the reserved EBDA / VGA / BIOS area (not RAM in the e820 map)
 *   0x000e_0000  ACPI tables, RSDP first (the BIOS area Linux scans for the RSDP)
 *   0x000f_fff0  reset vector: a stub that resets the VM through the ACPI reset register
 *   0x0010_0000  kernel (bzImage protected-mode part, raw image, or ELF segments)
 *   ...          initrd, placed at the top of low RAM below initrd_addr_max
 *   0xc000_0000  32-bit PCI MMIO hole (devices, IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000)
 *   0x1_0000_0000 RAM above the hole, when the VM has more than 3 GiB
 */
#ifndef KILN_X86_LAYOUT_H
#define KILN_X86_LAYOUT_H

#define X86_GDT_ADDR 0x500ULL
#define X86_ZERO_PAGE_ADDR 0x7000ULL
#define X86_PVH_MEMMAP_ADDR 0x8000ULL
#define X86_PML4_ADDR 0x9000ULL
#define X86_PDPT_ADDR 0xa000ULL
#define X86_PD_ADDR 0xb000ULL /* 4 pages */
#define X86_CMDLINE_ADDR 0x20000ULL
#define X86_CMDLINE_MAX 0x10000ULL
#define X86_RAW_STACK_TOP 0x8f000ULL
#define X86_EBDA_START 0x9fc00ULL
#define X86_ACPI_ADDR 0xe0000ULL
#define X86_ACPI_SIZE 0x20000ULL
#define X86_RESET_VECTOR 0xffff0ULL /* where a CPU reset (and Linux's "BIOS reboot") jumps */
#define X86_KERNEL_ADDR 0x100000ULL
#define X86_RAW_LOAD_ADDR 0x100000ULL

#define X86_PCI_HOLE_START 0xc0000000ULL
#define X86_PCI_MMIO_START 0xc0000000ULL
#define X86_PCI_MMIO_END 0xfebfffffULL /* inclusive; the IOAPIC follows */
#define X86_IOAPIC_ADDR 0xfec00000ULL
#define X86_LAPIC_ADDR 0xfee00000ULL
#define X86_HIGH_RAM_START 0x100000000ULL

/* Smallest VM kiln accepts: room for the low-memory structures above and a kernel. */
#define X86_MIN_MEMORY (8ULL << 20)

#endif
