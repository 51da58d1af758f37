#include "vmm/irq_routing.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* A free entry, zeroed; the table grows at set-up time (main thread), never past the max. */
static struct kvm_irq_routing_entry *add_entry(struct irq_routing *r)
{
    if (r->count == r->capacity) {
        unsigned want = r->capacity * 2;
        if (want > IRQ_ROUTING_MAX)
            return NULL;
        struct kvm_irq_routing *t =
            realloc(r->table, sizeof(*t) + want * sizeof(struct kvm_irq_routing_entry));
        if (!t)
            return NULL;
        r->table = t;
        r->capacity = want;
    }
    struct kvm_irq_routing_entry *e = &r->table->entries[r->count++];
    memset(e, 0, sizeof(*e));
    return e;
}

static void add_irqchip(struct irq_routing *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
    struct kvm_irq_routing_entry *e = add_entry(r); /* within the initial capacity */
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

/* Called from vCPU threads too (MSI-X table writes): no allocation here. */
static int irq_routing_commit(struct irq_routing *r)
{
    r->table->nr = r->count;
    r->table->flags = 0;
    return ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, r->table) < 0 ? -errno : 0;
}

/*
 * ISA IRQs 0-15 reach both PICs and the IOAPIC; GSIs 16-23 only the IOAPIC. The MADT says
 * ISA IRQ 0 (the PIT) is on IOAPIC pin 2, so GSI 0 goes to pin 2 and GSI 2 to the PIC only
 * as the cascade, which has no route.
 */
int irq_routing_init(struct irq_routing *r, int vm_fd)
{
    memset(r, 0, sizeof(*r));
    r->capacity = IRQ_ROUTING_INITIAL;
    r->table = malloc(sizeof(*r->table) + r->capacity * sizeof(struct kvm_irq_routing_entry));
    if (!r->table)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    r->vm_fd = vm_fd;
    r->next_gsi = IRQ_ROUTING_FIRST_MSI_GSI;
    for (uint32_t i = 0; i < 16; i++) {
        if (i == 2)
            continue;
        add_irqchip(r, i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
    }
    for (uint32_t i = 0; i < 24; i++) {
        if (i == 2)
            continue;
        add_irqchip(r, i, KVM_IRQCHIP_IOAPIC, i == 0 ? 2 : i);
    }
    return irq_routing_commit(r);
}

void irq_routing_destroy(struct irq_routing *r)
{
    if (!r->table)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->table);
    r->table = NULL;
}

int irq_routing_alloc_msi(struct irq_routing *r)
{
    pthread_mutex_lock(&r->lock);
    struct kvm_irq_routing_entry *e = add_entry(r);
    int gsi = r->count >= IRQ_ROUTING_MAX ? -ENOSPC : -ENOMEM;
    if (e) {
        e->gsi = r->next_gsi++;
        e->type = KVM_IRQ_ROUTING_MSI;
        gsi = (int)e->gsi;
    }
    pthread_mutex_unlock(&r->lock);
    return gsi;
}

int irq_routing_set_msi(struct irq_routing *r, uint32_t gsi, uint64_t address, uint32_t data)
{
    int ret = -ENOENT;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->count; i++) {
        struct kvm_irq_routing_entry *e = &r->table->entries[i];
        if (e->gsi != gsi || e->type != KVM_IRQ_ROUTING_MSI)
            continue;
        if (e->u.msi.address_lo == (uint32_t)address &&
            e->u.msi.address_hi == (uint32_t)(address >> 32) && e->u.msi.data == data) {
            ret = 0; /* unchanged: skip the ioctl */
            break;
        }
        e->u.msi.address_lo = (uint32_t)address;
        e->u.msi.address_hi = (uint32_t)(address >> 32);
        e->u.msi.data = data;
        ret = irq_routing_commit(r);
        break;
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int irq_routing_irqfd(struct irq_routing *r, int eventfd, uint32_t gsi, int deassign)
{
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)eventfd,
        .gsi = gsi,
        .flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0,
    };
    return ioctl(r->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}
