/*
 * ACPI tables for the guest: RSDP, XSDT, FADT (hardware-reduced), DSDT, MADT. They are
 * built into a buffer that the guest sees at a fixed physical address in the BIOS area,
 * where Linux also finds the RSDP by scanning.
 */
#ifndef KILN_ACPI_H
#define KILN_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct acpi_params {
    unsigned ncpus;            /* one MADT local APIC entry each, APIC IDs 0..ncpus-1 */
    uint16_t pm_base;          /* port block of struct pm (sleep control/status, reset) */
    uint32_t ioapic_addr;      /* 0xfec00000 */
    uint32_t lapic_addr;       /* 0xfee00000 */
    uint32_t pci_mmio_start;   /* 32-bit PCI memory window, for the host bridge's _CRS */
    uint32_t pci_mmio_end;     /* inclusive */
    uint32_t power_button_gsi; /* the Generic Event Device's interrupt */
};

/*
 * Writes the RSDP at the start of `buf` followed by the other tables, with addresses as
 * the guest sees them when `buf` is placed at `gpa`. Returns the bytes used, or -ENOSPC.
 */
long acpi_build(void *buf, size_t size, uint64_t gpa, const struct acpi_params *params);

#endif
