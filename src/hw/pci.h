/*
 * PCI bus 0 behind a host bridge using configuration mechanism #1 (ports 0xcf8 and 0xcfc).
 * Devices own a 256-byte configuration space plus a mask of the bits the guest may write;
 * BARs answer the standard size probe. The host bridge sits at 00:00.0.
 */
#ifndef KILN_PCI_H
#define KILN_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct state_reader;
struct state_writer;

#define PCI_CONFIG_ADDRESS_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
#define PCI_MAX_SLOTS 32
#define PCI_CONFIG_SIZE 256
#define PCI_NUM_BARS 6

struct pci_device;

/* Called after the guest wrote config space (under the bus lock), e.g. to move a BAR. */
typedef void (*pci_config_write_fn)(struct pci_device *dev, unsigned offset, unsigned len,
                                    uint32_t value);
/* Called before a config read returns (under the bus lock), for registers with side effects. */
typedef void (*pci_config_read_fn)(struct pci_device *dev, unsigned offset, uint8_t *data,
                                   unsigned len);
/* An access to memory BAR `bar` at `offset`, made outside the bus lock. */
typedef void (*pci_bar_io_fn)(struct pci_device *dev, unsigned bar, uint64_t offset, uint8_t *data,
                              uint32_t len, bool is_write);

/* INTx: slot S's INTA# is wired to IOAPIC pin 16 + S % 8 (the DSDT's _PRT says the same). */
#define PCI_INTX_GSI_BASE 16
#define PCI_INTX_GSI(slot) (PCI_INTX_GSI_BASE + (slot) % 8)
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_PIN 0x3d

struct pci_device {
    uint8_t config[PCI_CONFIG_SIZE]; /* guest-visible; savable */
    uint8_t wmask[PCI_CONFIG_SIZE];  /* bits the guest may change */
    uint32_t bar_size[PCI_NUM_BARS]; /* 0 = BAR unused; sizes are powers of two */
    pci_config_write_fn config_write;
    pci_config_read_fn config_read;
    pci_bar_io_fn bar_io;
    void *opaque;
    int slot; /* set by pci_bus_add_device */
};

struct pci_bus {
    pthread_mutex_t lock;
    uint32_t config_address; /* last value written to 0xcf8 */
    struct pci_device host_bridge;
    struct pci_device *slots[PCI_MAX_SLOTS];
    uint64_t mmio_base; /* guest address of the MMIO window registered with pci_mmio_io */
};

void pci_bus_init(struct pci_bus *bus);
void pci_bus_destroy(struct pci_bus *bus);

/*
 * Fills in the header of a type-0 function (ids, class code, writable command bits) and
 * clears its hooks; set config_write/config_read/bar_io/opaque afterwards.
 */
void pci_device_init(struct pci_device *dev, uint16_t vendor_id, uint16_t device_id,
                     uint32_t class_code, uint16_t subsys_vendor_id, uint16_t subsys_id);

/* Declares BAR `index` as a 32-bit memory (or I/O) BAR of `size` bytes at `addr`. */
int pci_device_set_bar(struct pci_device *dev, unsigned index, uint32_t addr, uint32_t size,
                       bool is_io);

/*
 * Puts `dev` in the first free slot and, if it has an interrupt pin, wires INTA# to
 * PCI_INTX_GSI(slot) (interrupt line register). Returns the slot number or -ENOSPC.
 */
int pci_bus_add_device(struct pci_bus *bus, struct pci_device *dev);

/* Adds a capability of `len` bytes at config offset `offset` to the capability list. */
void pci_device_add_capability(struct pci_device *dev, uint8_t offset, const uint8_t *cap,
                               unsigned len);

/* Where memory BAR `index` currently decodes, or 0 if memory decoding is off. */
uint32_t pci_device_bar_address(const struct pci_device *dev, unsigned index);

/*
 * bus_io_fn for the 32-bit PCI memory window: routes an access to the device BAR that
 * contains it, wherever the guest has placed that BAR. `opaque` is the pci_bus, the
 * range's base is passed as `base` at registration through pci_bus_set_mmio_base.
 */
void pci_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_bus_set_mmio_base(struct pci_bus *bus, uint64_t base);

/* bus_io_fns: 0xcf8 (4 bytes, dword access only) and 0xcfc (4 bytes, any width). */
void pci_config_address_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                           bool is_write);
void pci_config_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshots (docs/snapshot.md): the address latch and every present function's config
 * space. Restoring needs the same devices in the same slots; only the bits the guest may
 * write (wmask) are taken from the file, the rest stays as the device defines it.
 */
#define PCI_STATE_VERSION 1
struct pci_bus_state {
    uint32_t config_address;
    uint32_t present; /* bit per slot */
    uint8_t config[PCI_MAX_SLOTS][PCI_CONFIG_SIZE];
};
void pci_bus_save(struct pci_bus *bus, struct state_writer *w);
int pci_bus_state_load(struct pci_bus_state *s, struct state_reader *r);
/* -ENODEV if the slots or device ids differ from the file's. */
int pci_bus_restore(struct pci_bus *bus, const struct pci_bus_state *s);

#endif
