/*
 * Builds kiln's ACPI tables and writes each one to DIR/<signature>.dat (rsdp, xsdt, facp,
 * apic, dsdt), reaching them the way a guest does: RSDP -> XSDT -> FADT -> X_DSDT.
 * check_acpi_iasl.sh then has ACPICA's iasl disassemble them.
 *
 * usage: acpi_dump DIR [NCPUS]
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "hw/pm.h"

static uint8_t tables[X86_ACPI_SIZE];

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The table at guest address `gpa`, or NULL if it does not lie inside the used area. */
static const uint8_t *table_at(uint64_t gpa, long used, uint32_t *len)
{
    if (gpa < X86_ACPI_ADDR || gpa - X86_ACPI_ADDR > (uint64_t)used - 8)
        return NULL;
    const uint8_t *t = tables + (gpa - X86_ACPI_ADDR);
    *len = get32(t + 4);
    if (*len < 8 || gpa - X86_ACPI_ADDR + *len > (uint64_t)used)
        return NULL;
    return t;
}

static int write_file(const char *dir, const char *sig, const uint8_t *data, size_t len)
{
    char path[4096], name[5];
    for (int i = 0; i < 4; i++)
        name[i] = (char)tolower((unsigned char)sig[i]);
    name[4] = '\0';
    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

static int dump_table(const char *dir, uint64_t gpa, long used, const char *expect)
{
    uint32_t len;
    const uint8_t *t = table_at(gpa, used, &len);
    if (!t || (expect && memcmp(t, expect, 4) != 0)) {
        fprintf(stderr, "acpi_dump: no valid %s at 0x%llx\n", expect ? expect : "table",
                (unsigned long long)gpa);
        return -1;
    }
    char sig[5] = {0};
    memcpy(sig, t, 4);
    return write_file(dir, sig, t, len);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [NCPUS]\n", argv[0]);
        return 2;
    }
    struct acpi_params params = {
        .ncpus = argc > 2 ? (unsigned)atoi(argv[2]) : 2,
        .pm_base = PM_BASE,
        .ioapic_addr = X86_IOAPIC_ADDR,
        .lapic_addr = X86_LAPIC_ADDR,
        .pci_mmio_start = X86_PCI_MMIO_START,
        .pci_mmio_end = X86_PCI_MMIO_END,
        .power_button_gsi = PM_POWER_BUTTON_GSI,
    };
    long used = acpi_build(tables, sizeof(tables), X86_ACPI_ADDR, &params);
    if (used < 36) {
        fprintf(stderr, "acpi_dump: acpi_build: %ld\n", used);
        return 1;
    }
    if (write_file(argv[1], "rsdp", tables, 36))
        return 1;
    uint64_t xsdt_gpa = get64(tables + 24);
    if (dump_table(argv[1], xsdt_gpa, used, "XSDT"))
        return 1;
    const uint8_t *xsdt = tables + (xsdt_gpa - X86_ACPI_ADDR);
    uint32_t n = (get32(xsdt + 4) - 36) / 8;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = get64(xsdt + 36 + 8 * i);
        if (dump_table(argv[1], gpa, used, NULL))
            return 1;
        uint32_t len;
        const uint8_t *t = table_at(gpa, used, &len);
        if (!memcmp(t, "FACP", 4) && len >= 148 &&
            dump_table(argv[1], get64(t + 140), used, "DSDT"))
            return 1;
    }
    return 0;
}
