#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "util.h"
#include "le.h"

/*
 * Every table is written field by field at the offsets the spec gives, in little endian,
 * so the layout does not depend on the compiler's struct packing.
 */

#define ACPI_OEM_ID "KILN  "
#define ACPI_OEM_ID_LEN 6
#define ACPI_OEM_TABLE_PREFIX "KILN" /* + the table signature, e.g. "KILNFACP" */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "KILN"
#define ACPI_CREATOR_REVISION 1
#define ACPI_TABLE_ALIGN 16

/* Root System Description Pointer, ACPI 6.4 §5.2.5.3 */
#define RSDP_SIGNATURE "RSD PTR "
#define RSDP_CHECKSUM 8
#define RSDP_OEMID 9
#define RSDP_REVISION 15
#define RSDP_LENGTH 20
#define RSDP_XSDT_ADDRESS 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_SIZE 20 /* what the first checksum covers */
#define RSDP_SIZE 36
#define RSDP_REVISION_2 2

/* System Description Table header, §5.2.6 */
#define SDT_LENGTH 4
#define SDT_REVISION 8
#define SDT_CHECKSUM 9
#define SDT_OEMID 10
#define SDT_OEM_TABLE_ID 16
#define SDT_OEM_REVISION 24
#define SDT_CREATOR_ID 28
#define SDT_CREATOR_REVISION 32
#define SDT_HEADER_SIZE 36

/* XSDT, §5.2.8: the header, then 64-bit table addresses */
#define XSDT_REVISION 1
#define XSDT_ENTRIES 2 /* FADT, MADT; the DSDT is reached through the FADT */

/* Generic Address Structure, §5.2.3.2 */
#define GAS_SIZE 12
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* Fixed ACPI Description Table, §5.2.9 (Table 5.9) */
#define FADT_REVISION 6
#define FADT_MINOR_VERSION 4 /* ACPI 6.4; bits 7:4 (errata) are 0 */
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION_OFF 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_SLEEP_STATUS_REG 256
#define FADT_HYPERVISOR_VENDOR_ID 268
#define FADT_SIZE 276

/* IA-PC boot architecture flags, §5.2.9.3 */
#define FADT_BOOT_VGA_NOT_PRESENT (1u << 2)
#define FADT_BOOT_8042 (1u << 1) /* an 8042 keyboard controller is present */
/* Fixed feature flags, §5.2.9 (Table 5.10) */
#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

/* Multiple APIC Description Table, §5.2.12 */
#define MADT_REVISION 5
#define MADT_LAPIC_ADDRESS 36
#define MADT_FLAGS 40
#define MADT_HEADER_SIZE 44
#define MADT_PCAT_COMPAT 1u
#define MADT_TYPE_LAPIC 0 /* §5.2.12.2 */
#define MADT_LAPIC_SIZE 8
#define MADT_LAPIC_ENABLED 1u
#define MADT_TYPE_IOAPIC 1 /* §5.2.12.3 */
#define MADT_IOAPIC_SIZE 12
#define MADT_TYPE_ISO 2 /* Interrupt Source Override, §5.2.12.5 */
#define MADT_ISO_SIZE 10
#define MADT_TYPE_LAPIC_NMI 4 /* §5.2.12.7 */
#define MADT_LAPIC_NMI_SIZE 6
#define MADT_ALL_PROCESSORS 0xff
#define MPS_INTI_ACTIVE_HIGH 0x1 /* MPS INTI flags, §5.2.12.5 Table 5.26 */
#define MPS_INTI_EDGE 0x4
/*
 * KVM's IOAPIC resets its ID register to 0; the MADT says the same so a guest that reads
 * the register finds what the table promised.
 */
#define MADT_IOAPIC_ID 0
/* APIC IDs are 8 bits in the Processor Local APIC entry, and 0xff means broadcast. */
#define ACPI_MAX_CPUS 255

#define DSDT_REVISION 2 /* 64-bit AML integers */

/* PC platform resources the DSDT describes */
#define PCI_CONFIG_PORT 0xcf8
#define PCI_CONFIG_PORT_LEN 8
#define COM1_PORT 0x3f8
#define COM1_PORT_LEN 8
#define COM1_IRQ 4
#define I8042_PORT_DATA 0x60 /* hw/i8042.h, which this file does not depend on */
#define I8042_PORT_CMD 0x64
#define I8042_KBD_GSI 1
#define RTC_PORT 0x70
#define RTC_PORT_LEN 2
#define RTC_IRQ 8

/* The byte that makes `p[0..len)` sum to zero once stored in a byte that was 0. */
static uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

/* Fills the common header and, last, the checksum over the whole table (§5.2.6). */
static void acpi_finish_table(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put_le32(t + SDT_LENGTH, len);
    t[SDT_REVISION] = rev;
    memcpy(t + SDT_OEMID, ACPI_OEM_ID, ACPI_OEM_ID_LEN);
    memcpy(t + SDT_OEM_TABLE_ID, ACPI_OEM_TABLE_PREFIX, 4);
    memcpy(t + SDT_OEM_TABLE_ID + 4, sig, 4);
    put_le32(t + SDT_OEM_REVISION, ACPI_OEM_REVISION);
    memcpy(t + SDT_CREATOR_ID, ACPI_CREATOR_ID, 4);
    put_le32(t + SDT_CREATOR_REVISION, ACPI_CREATOR_REVISION);
    t[SDT_CHECKSUM] = 0;
    t[SDT_CHECKSUM] = acpi_checksum(t, len);
}

static void acpi_write_rsdp(uint8_t *t, uint64_t xsdt_addr)
{
    memcpy(t, RSDP_SIGNATURE, 8);
    memcpy(t + RSDP_OEMID, ACPI_OEM_ID, ACPI_OEM_ID_LEN);
    t[RSDP_REVISION] = RSDP_REVISION_2;
    put_le32(t + RSDP_LENGTH, RSDP_SIZE);
    put_le64(t + RSDP_XSDT_ADDRESS, xsdt_addr); /* no RSDT: its address stays 0 */
    t[RSDP_CHECKSUM] = acpi_checksum(t, RSDP_V1_SIZE);
    t[RSDP_EXT_CHECKSUM] = acpi_checksum(t, RSDP_SIZE);
}

static uint32_t acpi_xsdt_size(void)
{
    return SDT_HEADER_SIZE + 8 * XSDT_ENTRIES;
}

static void acpi_write_xsdt(uint8_t *t, const uint64_t entries[XSDT_ENTRIES])
{
    for (unsigned i = 0; i < XSDT_ENTRIES; i++)
        put_le64(t + SDT_HEADER_SIZE + 8 * i, entries[i]);
    acpi_finish_table(t, "XSDT", acpi_xsdt_size(), XSDT_REVISION);
}

static void acpi_put_gas_io8(uint8_t *p, uint16_t port)
{
    p[0] = GAS_SYSTEM_IO;
    p[1] = 8; /* register bit width */
    p[2] = 0; /* bit offset */
    p[3] = GAS_ACCESS_BYTE;
    put_le64(p + 4, port);
}

/*
 * Hardware-reduced (§4.1): no PM1 blocks, GPEs, SCI or FACS; sleep and reset go through
 * the registers of struct pm. The 8042 is claimed, so Linux probes the i8042 and binds its
 * keyboard driver (for Ctrl+Alt+Del); the CMOS RTC is left present.
 */
static void acpi_write_fadt(uint8_t *t, uint64_t dsdt_addr, uint16_t pm_base)
{
    put_le16(t + FADT_IAPC_BOOT_ARCH, FADT_BOOT_VGA_NOT_PRESENT | FADT_BOOT_8042);
    put_le32(t + FADT_FLAGS, FADT_FLAG_HW_REDUCED_ACPI | FADT_FLAG_RESET_REG_SUP);
    acpi_put_gas_io8(t + FADT_RESET_REG, (uint16_t)(pm_base + PM_RESET));
    t[FADT_RESET_VALUE] = PM_RESET_VALUE;
    t[FADT_MINOR_VERSION_OFF] = FADT_MINOR_VERSION;
    /* An OS uses X_DSDT when it is set and ignores the 32-bit DSDT field, which stays 0. */
    put_le64(t + FADT_X_DSDT, dsdt_addr);
    acpi_put_gas_io8(t + FADT_SLEEP_CONTROL_REG, (uint16_t)(pm_base + PM_SLEEP_CONTROL));
    acpi_put_gas_io8(t + FADT_SLEEP_STATUS_REG, (uint16_t)(pm_base + PM_SLEEP_STATUS));
    memcpy(t + FADT_HYPERVISOR_VENDOR_ID, "KILN", 4);
    acpi_finish_table(t, "FACP", FADT_SIZE, FADT_REVISION);
}

static uint32_t acpi_madt_size(unsigned ncpus)
{
    return MADT_HEADER_SIZE + MADT_LAPIC_SIZE * ncpus + MADT_IOAPIC_SIZE + MADT_ISO_SIZE +
           MADT_LAPIC_NMI_SIZE;
}

static uint8_t *madt_entry(uint8_t *p, uint8_t type, uint8_t len)
{
    p[0] = type;
    p[1] = len;
    return p + len;
}

static void acpi_write_madt(uint8_t *t, const struct acpi_params *params)
{
    put_le32(t + MADT_LAPIC_ADDRESS, params->lapic_addr);
    put_le32(t + MADT_FLAGS, MADT_PCAT_COMPAT);
    uint8_t *p = t + MADT_HEADER_SIZE;
    for (unsigned i = 0; i < params->ncpus; i++) {
        p[2] = (uint8_t)i; /* ACPI processor UID */
        p[3] = (uint8_t)i; /* APIC ID */
        put_le32(p + 4, MADT_LAPIC_ENABLED);
        p = madt_entry(p, MADT_TYPE_LAPIC, MADT_LAPIC_SIZE);
    }
    p[2] = MADT_IOAPIC_ID;
    put_le32(p + 4, params->ioapic_addr);
    put_le32(p + 8, 0); /* GSI base */
    p = madt_entry(p, MADT_TYPE_IOAPIC, MADT_IOAPIC_SIZE);
    /* The PIT's IRQ 0 is wired to IOAPIC pin 2 on PCs (§5.2.12.5). */
    p[2] = 0; /* bus: ISA */
    p[3] = 0; /* source IRQ */
    put_le32(p + 4, 2);
    put_le16(p + 8, MPS_INTI_ACTIVE_HIGH | MPS_INTI_EDGE);
    p = madt_entry(p, MADT_TYPE_ISO, MADT_ISO_SIZE);
    /* LINT1 of every local APIC is the NMI input. */
    p[2] = MADT_ALL_PROCESSORS;
    put_le16(p + 3, 0); /* flags: conforms to the bus */
    p[5] = 1;           /* LINT1 */
    madt_entry(p, MADT_TYPE_LAPIC_NMI, MADT_LAPIC_NMI_SIZE);
    acpi_finish_table(t, "APIC", acpi_madt_size(params->ncpus), MADT_REVISION);
}

/* \_S5 = {SLP_TYP, 0, 0, 0}: what Linux writes to the sleep control register (§7.4.2). */
static void dsdt_add_s5(struct aml *a)
{
    aml_name(a, "\\_S5");
    size_t pkg = aml_package_begin(a, 4);
    aml_integer(a, PM_S5_SLP_TYP);
    for (int i = 0; i < 3; i++)
        aml_integer(a, 0);
    aml_end(a, pkg);
}

/*
 * The host bridge and what it decodes for bus 0 (§6.2.2 _CRS): the bus number, the config
 * ports it consumes, and the I/O and memory windows left for device BARs.
 */
/*
 * _PRT (ACPI 6.4 §6.2.13): INTA# of every slot goes straight to a GSI (no link device),
 * the same wiring hw/pci.h's PCI_INTX_GSI describes. Only INTA# is used by kiln's devices.
 */
static void dsdt_add_pci_routing(struct aml *a)
{
    aml_name(a, "_PRT");
    size_t prt = aml_package_begin(a, PCI_MAX_SLOTS - 1);
    for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
        size_t entry = aml_package_begin(a, 4);
        aml_integer(a, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
        aml_integer(a, 0);                             /* INTA# */
        aml_integer(a, 0);                             /* no source: a GSI follows */
        aml_integer(a, PCI_INTX_GSI(slot));
        aml_end(a, entry);
    }
    aml_end(a, prt);
}

static void dsdt_add_pci0(struct aml *a, const struct acpi_params *params)
{
    size_t dev = aml_device_begin(a, "PCI0");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A03");
    aml_name(a, "_SEG");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_method_return_int(a, "_STA", 0x0f); /* present, enabled, shown, functioning */
    aml_name(a, "_CRS");
    size_t crs = aml_restemplate_begin(a);
    aml_res_word_bus_number(a, 0, 0);
    aml_res_io(a, PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, PCI_CONFIG_PORT_LEN);
    aml_res_word_io(a, 0x0000, PCI_CONFIG_PORT - 1);
    aml_res_word_io(a, 0x0d00, 0xffff);
    aml_res_dword_memory(a, params->pci_mmio_start, params->pci_mmio_end);
    aml_restemplate_end(a, crs);
    dsdt_add_pci_routing(a);
    aml_end(a, dev);
}

static void dsdt_add_legacy(struct aml *a, const char *name, const char *hid, uint16_t port,
                            uint8_t port_len, unsigned irq)
{
    size_t dev = aml_device_begin(a, name);
    aml_name(a, "_HID");
    aml_eisaid(a, hid);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    size_t crs = aml_restemplate_begin(a);
    aml_res_io(a, port, port, 1, port_len);
    aml_res_irq_noflags(a, irq);
    aml_restemplate_end(a, crs);
    aml_end(a, dev);
}

/*
 * The i8042's keyboard port (PNP0303: data 0x60, command/status 0x64, IRQ 1). Linux's
 * i8042 driver takes its ports and interrupt from here; on hardware-reduced ACPI no ISA
 * interrupt is set up unless a device's resources name it.
 */
static void dsdt_add_ps2_keyboard(struct aml *a)
{
    size_t dev = aml_device_begin(a, "PS2K");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0303");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    size_t crs = aml_restemplate_begin(a);
    aml_res_io(a, I8042_PORT_DATA, I8042_PORT_DATA, 1, 1);
    aml_res_io(a, I8042_PORT_CMD, I8042_PORT_CMD, 1, 1);
    aml_res_irq_noflags(a, I8042_KBD_GSI);
    aml_restemplate_end(a, crs);
    aml_end(a, dev);
}

/*
 * The power button of a hardware-reduced platform (ACPI 6.4 §4.8.2.2.1.2, §5.6.9): a
 * control-method button (PNP0C0C) and a Generic Event Device (ACPI0013) whose interrupt
 * runs _EVT, which notifies the button with 0x80 ("pressed"). Linux's evged driver owns
 * the interrupt and its button driver turns the notification into KEY_POWER.
 */
static void dsdt_add_power_button(struct aml *a, uint32_t gsi)
{
    size_t dev = aml_device_begin(a, "PWRB");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0C0C");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_end(a, dev);

    dev = aml_device_begin(a, "GED");
    aml_name(a, "_HID");
    aml_string(a, "ACPI0013");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    size_t crs = aml_restemplate_begin(a);
    aml_res_interrupt_edge(a, gsi);
    aml_restemplate_end(a, crs);
    size_t evt = aml_method_begin(a, "_EVT", 1, true); /* Arg0: the interrupt that fired */
    size_t cond = aml_if_begin(a);
    aml_lequal(a);
    aml_arg(a, 0);
    aml_integer(a, gsi);
    aml_notify(a, "\\_SB.PWRB", 0x80);
    aml_end(a, cond);
    aml_end(a, evt);
    aml_end(a, dev);
}

/* Returns the DSDT's length or a negative errno. */
static long acpi_write_dsdt(uint8_t *t, size_t cap, const struct acpi_params *params)
{
    if (cap < SDT_HEADER_SIZE)
        return -ENOSPC;
    struct aml a;
    aml_init(&a, t + SDT_HEADER_SIZE, cap - SDT_HEADER_SIZE);
    dsdt_add_s5(&a);
    size_t sb = aml_scope_begin(&a, "\\_SB");
    dsdt_add_pci0(&a, params);
    dsdt_add_legacy(&a, "COM1", "PNP0501", COM1_PORT, COM1_PORT_LEN, COM1_IRQ);
    dsdt_add_legacy(&a, "RTC", "PNP0B00", RTC_PORT, RTC_PORT_LEN, RTC_IRQ);
    dsdt_add_ps2_keyboard(&a);
    dsdt_add_power_button(&a, params->power_button_gsi);
    aml_end(&a, sb);
    if (a.err)
        return a.err;
    if (a.len > UINT32_MAX - SDT_HEADER_SIZE)
        return -ENOSPC;
    uint32_t len = (uint32_t)(SDT_HEADER_SIZE + a.len);
    acpi_finish_table(t, "DSDT", len, DSDT_REVISION);
    return len;
}

static size_t acpi_align(size_t off)
{
    return ALIGN_UP(off, (size_t)ACPI_TABLE_ALIGN);
}

long acpi_build(void *buf, size_t size, uint64_t gpa, const struct acpi_params *params)
{
    if (params->ncpus == 0 || params->ncpus > ACPI_MAX_CPUS)
        return -EINVAL;
    if (params->pci_mmio_end < params->pci_mmio_start)
        return -EINVAL;
    if (params->pm_base > UINT16_MAX - (PM_NR_PORTS - 1))
        return -EINVAL; /* the port block would wrap */
    uint8_t *base = buf;
    size_t xsdt = acpi_align(RSDP_SIZE);
    size_t fadt = acpi_align(xsdt + acpi_xsdt_size());
    size_t madt = acpi_align(fadt + FADT_SIZE);
    size_t dsdt = acpi_align(madt + acpi_madt_size(params->ncpus));
    if (size < dsdt + SDT_HEADER_SIZE)
        return -ENOSPC;
    /* The area may hold anything; reserved fields and padding must read as 0. Only what the
     * tables occupy is cleared (the AML after the DSDT header is written byte by byte):
     * clearing the whole area would fault in 128 KiB of fresh guest RAM, a third of a
     * micro-guest VM's resident memory. */
    memset(base, 0, dsdt + SDT_HEADER_SIZE);
    long dsdt_len = acpi_write_dsdt(base + dsdt, size - dsdt, params);
    if (dsdt_len < 0)
        return dsdt_len;
    acpi_write_fadt(base + fadt, gpa + dsdt, params->pm_base);
    acpi_write_madt(base + madt, params);
    const uint64_t entries[XSDT_ENTRIES] = {gpa + fadt, gpa + madt};
    acpi_write_xsdt(base + xsdt, entries);
    acpi_write_rsdp(base, gpa + xsdt);
    return (long)(dsdt + (size_t)dsdt_len);
}
