#include "vmm/irq_routing.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static void add_irqchip(struct irq_routing *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
    struct kvm_irq_routing_entry *e = &r->entries[r->count++];
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

static int irq_routing_commit(struct irq_routing *r)
{
    struct kvm_irq_routing *table =
        malloc(sizeof(*table) + r->count * sizeof(struct kvm_irq_routing_entry));
    if (!table)
        return -ENOMEM;
    table->nr = r->count;
    table->flags = 0;
    memcpy(table->entries, r->entries, r->count * sizeof(struct kvm_irq_routing_entry));
    int ret = ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
    free(table);
    return ret;
}

/*
 * ISA IRQs 0-15 reach both PICs and the IOAPIC; GSIs 16-23 only the IOAPIC. The MADT says
 * ISA IRQ 0 (the PIT) is on IOAPIC pin 2, so GSI 0 goes to pin 2 and GSI 2 to the PIC only
 * as the cascade, which has no route.
 */
int irq_routing_init(struct irq_routing *r, int vm_fd)
{
    memset(r, 0, sizeof(*r));
    r->entries = calloc(IRQ_ROUTING_MAX, sizeof(*r->entries));
    if (!r->entries)
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
    if (!r->entries)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->entries);
    r->entries = NULL;
}

int irq_routing_alloc_msi(struct irq_routing *r)
{
    pthread_mutex_lock(&r->lock);
    int gsi = -ENOSPC;
    if (r->count < IRQ_ROUTING_MAX) {
        struct kvm_irq_routing_entry *e = &r->entries[r->count++];
        memset(e, 0, sizeof(*e));
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
        struct kvm_irq_routing_entry *e = &r->entries[i];
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
