/*
 * The i8042 controller (hw/i8042.c) and the ACPI PM registers (hw/pm.c), the guest's two
 * ways to reset or power off the VM: command, data and sleep/reset port sequences.
 * Target bit 0 of each operation picks the PM block instead of the i8042.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_guest.h"
#include "hw/i8042.h"
#include "hw/pm.h"
#include "vmm/bus.h"

struct kbc_fuzz {
    struct bus bus;
    unsigned resets, poweroffs;
};

static void count_reset(void *opaque)
{
    ((struct kbc_fuzz *)opaque)->resets++;
}

static void count_poweroff(void *opaque)
{
    ((struct kbc_fuzz *)opaque)->poweroffs++;
}

static void kbc_io(void *opaque, unsigned target, uint64_t offset, uint8_t *data, uint32_t len,
                   bool is_write)
{
    struct kbc_fuzz *f = opaque;
    uint64_t port = target & 1 ? PM_BASE - 4 + offset % (PM_NR_PORTS + 8)
                               : I8042_DATA_PORT - 4 + offset % 14; /* 0x5c..0x69 */
    if (!is_write)
        memset(data, 0xff, len);
    bus_dispatch(&f->bus, port, data, len, is_write);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kbc_fuzz f = {0};
    struct i8042 kbc;
    struct pm pm;
    memset(&kbc, 0, sizeof(kbc));
    memset(&pm, 0, sizeof(pm));
    i8042_init(&kbc, count_reset, &f);
    pm_init(&pm, count_poweroff, count_reset, &f);
    bus_init(&f.bus, "pio");
    if (bus_register(&f.bus, I8042_DATA_PORT, 1, "i8042-data", i8042_data_io, &kbc) < 0 ||
        bus_register(&f.bus, I8042_CMD_PORT, 1, "i8042-cmd", i8042_cmd_io, &kbc) < 0 ||
        bus_register(&f.bus, PM_BASE, PM_NR_PORTS, "acpi-pm", pm_io, &pm) < 0)
        abort();
    fuzz_io_run(data, size, 4, kbc_io, &f);
    bus_destroy(&f.bus);
    pm_destroy(&pm);
    i8042_destroy(&kbc);
    return 0;
}
