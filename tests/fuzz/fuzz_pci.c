/*
 * PCI configuration mechanism #1 and BAR dispatch (hw/pci.c) through the port and MMIO
 * buses: CONFIG_ADDRESS/CONFIG_DATA sequences of any width against the host bridge and two
 * functions (memory and I/O BARs, a capability list), BAR sizing and moves, command-register
 * decoding, and MMIO accesses that must reach a BAR only when wholly inside it.
 * Operation targets: 0 CONFIG_ADDRESS, 1 CONFIG_DATA, 2+ the MMIO window (offset * 16).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "fuzz_guest.h"
#include "hw/pci.h"
#include "vmm/bus.h"

#define BAR0_SIZE 0x4000
#define BAR1_SIZE 0x100

struct pci_fuzz {
    struct pci_bus pci;
    struct pci_device dev[2];
    struct bus pio, mmio;
};

static void bar_io(struct pci_device *dev, unsigned bar, uint64_t offset, uint8_t *data,
                   uint32_t len, bool is_write)
{
    if (bar >= PCI_NUM_BARS || offset + len > dev->bar_size[bar]) {
        fprintf(stderr, "BAR %u access at %#llx+%u outside its %#x bytes\n", bar,
                (unsigned long long)offset, len, dev->bar_size[bar]);
        abort();
    }
    if (!is_write)
        memset(data, (int)(offset & 0xff), len);
}

static void pci_fuzz_io(void *opaque, unsigned target, uint64_t offset, uint8_t *data,
                        uint32_t len, bool is_write)
{
    struct pci_fuzz *f = opaque;
    if (!is_write)
        memset(data, 0xff, len);
    if (target == 0)
        bus_dispatch(&f->pio, PCI_CONFIG_ADDRESS_PORT - 2 + offset % 8, data, len, is_write);
    else if (target == 1)
        bus_dispatch(&f->pio, PCI_CONFIG_DATA_PORT - 2 + offset % 8, data, len, is_write);
    else
        bus_dispatch(&f->mmio, X86_PCI_MMIO_START + offset * 16 + (target & 15), data, len,
                     is_write);
}

static void add_function(struct pci_fuzz *f, struct pci_device *dev, uint32_t bar0)
{
    static const uint8_t cap[8] = {0x09, 0, 8, 1, 2, 3, 4, 5}; /* a vendor capability */
    pci_device_init(dev, 0x1af4, 0x1041, 0x020000, 0x1af4, 1);
    pci_device_add_capability(dev, 0x40, cap, sizeof(cap));
    pci_device_add_capability(dev, 0x50, cap, sizeof(cap));
    dev->bar_io = bar_io;
    dev->config[PCI_INTERRUPT_PIN] = 1;
    if (pci_device_set_bar(dev, 0, bar0, BAR0_SIZE, false) < 0 ||
        pci_device_set_bar(dev, 1, 0xc000, BAR1_SIZE, true) < 0 ||
        pci_bus_add_device(&f->pci, dev) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pci_fuzz f;
    memset(&f, 0, sizeof(f));
    pci_bus_init(&f.pci);
    pci_bus_set_mmio_base(&f.pci, X86_PCI_MMIO_START);
    add_function(&f, &f.dev[0], X86_PCI_MMIO_START);
    add_function(&f, &f.dev[1], X86_PCI_MMIO_START + BAR0_SIZE);
    bus_init(&f.pio, "pio");
    bus_init(&f.mmio, "mmio");
    if (bus_register(&f.pio, PCI_CONFIG_ADDRESS_PORT, 4, "pci-address", pci_config_address_io,
                     &f.pci) < 0 ||
        bus_register(&f.pio, PCI_CONFIG_DATA_PORT, 4, "pci-data", pci_config_data_io, &f.pci) <
            0 ||
        bus_register(&f.mmio, X86_PCI_MMIO_START, X86_PCI_MMIO_END - X86_PCI_MMIO_START + 1,
                     "pci-mmio", pci_mmio_io, &f.pci) < 0)
        abort();
    fuzz_io_run(data, size, 8, pci_fuzz_io, &f);
    bus_destroy(&f.pio);
    bus_destroy(&f.mmio);
    pci_bus_destroy(&f.pci);
    return 0;
}
