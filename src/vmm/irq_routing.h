/*
 * The VM's GSI routing table (KVM_SET_GSI_ROUTING replaces it whole): the PC's ISA and
 * IOAPIC lines, plus one MSI route per MSI-X vector that devices allocate. Devices raise
 * MSIs by writing an irqfd bound to their GSI, so interrupts never need a VMM thread.
 */
#ifndef KILN_IRQ_ROUTING_H
#define KILN_IRQ_ROUTING_H

#include <pthread.h>
#include <stdint.h>

#define IRQ_ROUTING_MAX 1024
#define IRQ_ROUTING_INITIAL 64 /* the 38 PIC and IOAPIC routes, then room for MSI-X vectors */
#define IRQ_ROUTING_FIRST_MSI_GSI 24 /* after the 24 IOAPIC pins */

struct kvm_irq_routing;

struct irq_routing {
    pthread_mutex_t lock;
    int vm_fd;
    unsigned count;    /* entries in use */
    unsigned capacity; /* entries allocated, up to IRQ_ROUTING_MAX */
    uint32_t next_gsi;
    struct kvm_irq_routing *table; /* what KVM_SET_GSI_ROUTING takes, kept ready */
};

/* Installs the PC's default routes on `vm_fd`. Returns 0 or a negative errno. */
int irq_routing_init(struct irq_routing *r, int vm_fd);
void irq_routing_destroy(struct irq_routing *r);

/* Reserves a GSI for an MSI route (initially disabled). Returns it, or a negative errno. */
int irq_routing_alloc_msi(struct irq_routing *r);

/* Points an MSI GSI at a message (address, data) and commits the table to KVM. */
int irq_routing_set_msi(struct irq_routing *r, uint32_t gsi, uint64_t address, uint32_t data);

/* Binds (or with `deassign`, unbinds) an eventfd to a GSI in KVM. */
int irq_routing_irqfd(struct irq_routing *r, int eventfd, uint32_t gsi, int deassign);

#endif
