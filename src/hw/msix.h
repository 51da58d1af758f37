/*
 * PCI MSI-X (PCI Local Bus 3.0 §6.8.2): the capability's message control, the vector table
 * and the pending-bit array in a memory BAR. Each vector owns a GSI with an MSI route and an
 * irqfd, so firing an unmasked vector is one eventfd write; a masked one only sets its
 * pending bit until the guest unmasks it. The owner serializes calls (its device lock).
 */
#ifndef KILN_MSIX_H
#define KILN_MSIX_H

#include <stdbool.h>
#include <stdint.h>

struct pci_device;
struct irq_routing;

#define MSIX_MAX_VECTORS 64
#define MSIX_ENTRY_SIZE 16
#define MSIX_CAP_SIZE 12
#define MSIX_NO_VECTOR 0xffff

/* Guest-visible table: plain data, savable. */
struct msix_state {
    uint32_t entries[MSIX_MAX_VECTORS][4]; /* address low, address high, data, vector control */
    uint64_t pending;
};

struct msix {
    struct msix_state state;
    unsigned nvec;
    uint8_t cap;            /* capability offset in config space */
    struct pci_device *pci; /* whose config space holds the capability */
    struct irq_routing *routing;
    int gsi[MSIX_MAX_VECTORS];
    int irqfd[MSIX_MAX_VECTORS];
};

/*
 * Adds the capability at config offset `cap` (table at `table_off`, PBA at `pba_off` in BAR
 * `bar`) and creates one GSI + irqfd per vector. Returns 0 or a negative errno.
 */
int msix_init(struct msix *m, struct pci_device *pci, struct irq_routing *routing, unsigned nvec,
              uint8_t cap, unsigned bar, uint32_t table_off, uint32_t pba_off);
void msix_destroy(struct msix *m);
/* Back to power-on state: all vectors masked, nothing pending, MSI-X disabled. */
void msix_reset(struct msix *m);

/* Table and PBA accesses, `offset` relative to their start. */
void msix_table_io(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void msix_pba_io(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Call after the guest wrote the capability: delivers what unmasking released. */
void msix_control_written(struct msix *m);

bool msix_enabled(const struct msix *m);

/* Fires `vector` (or marks it pending while masked). Ignores MSIX_NO_VECTOR and bad ones. */
void msix_notify(struct msix *m, uint16_t vector);

#endif
