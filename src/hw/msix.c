#include "hw/msix.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/pci.h"
#include "vmm/irq_routing.h"

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FUNCTION_MASK 0x4000
#define MSIX_VECTOR_MASKED 0x1
#define MSIX_ENTRY_CTRL 3

static uint16_t msix_control(const struct msix *m)
{
    return (uint16_t)(m->pci->config[m->cap + 2] | m->pci->config[m->cap + 3] << 8);
}

bool msix_enabled(const struct msix *m)
{
    return m->nvec && (msix_control(m) & MSIX_CTRL_ENABLE);
}

static bool msix_masked(const struct msix *m, unsigned v)
{
    return (msix_control(m) & MSIX_CTRL_FUNCTION_MASK) ||
           (m->state.entries[v][MSIX_ENTRY_CTRL] & MSIX_VECTOR_MASKED);
}

int msix_init(struct msix *m, struct pci_device *pci, struct irq_routing *routing, unsigned nvec,
              uint8_t cap, unsigned bar, uint32_t table_off, uint32_t pba_off)
{
    memset(m, 0, sizeof(*m));
    if (nvec == 0 || nvec > MSIX_MAX_VECTORS)
        return -EINVAL;
    m->nvec = nvec;
    m->cap = cap;
    m->pci = pci;
    m->routing = routing;
    for (unsigned v = 0; v < MSIX_MAX_VECTORS; v++)
        m->irqfd[v] = -1;
    uint8_t c[MSIX_CAP_SIZE] = {0x11, 0};
    uint16_t ctrl = (uint16_t)(nvec - 1);
    uint32_t table = table_off | bar, pba = pba_off | bar;
    memcpy(c + 2, &ctrl, 2);
    memcpy(c + 4, &table, 4);
    memcpy(c + 8, &pba, 4);
    pci_device_add_capability(pci, cap, c, sizeof(c));
    pci->wmask[cap + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK) >> 8;
    for (unsigned v = 0; v < nvec; v++) {
        m->gsi[v] = irq_routing_alloc_msi(routing);
        m->irqfd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->gsi[v] < 0 || m->irqfd[v] < 0)
            return m->gsi[v] < 0 ? m->gsi[v] : -errno;
        int ret = irq_routing_irqfd(routing, m->irqfd[v], (uint32_t)m->gsi[v], 0);
        if (ret < 0)
            return ret;
    }
    msix_reset(m);
    return 0;
}

void msix_destroy(struct msix *m)
{
    for (unsigned v = 0; v < MSIX_MAX_VECTORS; v++) {
        if (m->irqfd[v] < 0)
            continue;
        if (m->gsi[v] >= 0)
            irq_routing_irqfd(m->routing, m->irqfd[v], (uint32_t)m->gsi[v], 1);
        close(m->irqfd[v]);
        m->irqfd[v] = -1;
    }
}

void msix_reset(struct msix *m)
{
    memset(&m->state, 0, sizeof(m->state));
    for (unsigned v = 0; v < m->nvec; v++)
        m->state.entries[v][MSIX_ENTRY_CTRL] = MSIX_VECTOR_MASKED;
}

static void msix_fire(struct msix *m, unsigned v)
{
    const uint32_t *e = m->state.entries[v];
    /* Route first: the guest may have rewritten the message since the last interrupt. */
    irq_routing_set_msi(m->routing, (uint32_t)m->gsi[v], (uint64_t)e[1] << 32 | e[0], e[2]);
    uint64_t one = 1;
    if (write(m->irqfd[v], &one, sizeof(one)) < 0) {
        /* only fails if the counter would overflow: the interrupt is pending anyway */
    }
}

static void msix_deliver_pending(struct msix *m)
{
    if (!msix_enabled(m))
        return;
    for (unsigned v = 0; v < m->nvec; v++) {
        if ((m->state.pending >> v & 1) && !msix_masked(m, v)) {
            m->state.pending &= ~(1ULL << v);
            msix_fire(m, v);
        }
    }
}

void msix_notify(struct msix *m, uint16_t vector)
{
    if (vector >= m->nvec || !msix_enabled(m))
        return;
    if (msix_masked(m, vector))
        m->state.pending |= 1ULL << vector;
    else
        msix_fire(m, vector);
}

void msix_table_io(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    /* §6.8.2: dword or qword accesses, naturally aligned; anything else is undefined. */
    if ((len != 4 && len != 8) || (offset & (len - 1)) ||
        offset + len > (uint64_t)m->nvec * MSIX_ENTRY_SIZE) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    uint32_t *words = &m->state.entries[0][0];
    unsigned first = (unsigned)(offset / 4);
    for (unsigned i = 0; i < len / 4; i++) {
        unsigned w = first + i;
        if (is_write) {
            uint32_t val;
            memcpy(&val, data + 4 * i, 4);
            words[w] = (w % 4 == MSIX_ENTRY_CTRL) ? (val & MSIX_VECTOR_MASKED) : val;
        } else {
            memcpy(data + 4 * i, &words[w], 4);
        }
    }
    if (is_write)
        msix_deliver_pending(m);
}

void msix_pba_io(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    if (is_write)
        return; /* read-only */
    memset(data, 0, len);
    for (uint32_t i = 0; i < len; i++)
        if (offset + i < 8)
            data[i] = (uint8_t)(m->state.pending >> (8 * (offset + i)));
}

void msix_control_written(struct msix *m)
{
    msix_deliver_pending(m);
}
