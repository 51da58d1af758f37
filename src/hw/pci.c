#include "hw/pci.h"

#include <errno.h>
#include <string.h>

#include "snapshot/state_file.h"

/* Type 0 configuration header, PCI Local Bus Spec 3.0 §6.1 */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_CODE 0x09 /* 3 bytes: programming interface, subclass, base class */
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_INTERRUPT_LINE 0x3c

/* Command bits the guest may change (§6.2.2): I/O, memory, bus master, INTx disable. */
#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_COMMAND_WMASK                                                                          \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE)

/* BAR type bits (§6.2.5.1): read-only, below the address bits. */
#define PCI_BAR_IO 0x1
#define PCI_BAR_IO_MIN_SIZE 4
#define PCI_BAR_MEM_MIN_SIZE 16

/* CONFIG_ADDRESS, §3.2.2.3.2: enable, bus, device, function, dword register. */
#define PCI_CONFIG_ENABLE 0x80000000u
#define PCI_CONFIG_RESERVED 0x7f000000u /* non-zero in AMD's extended register number */
#define PCI_CONFIG_BUS(a) (((a) >> 16) & 0xff)
#define PCI_CONFIG_DEVICE(a) (((a) >> 11) & 0x1f)
#define PCI_CONFIG_FUNCTION(a) (((a) >> 8) & 0x7)
#define PCI_CONFIG_REGISTER(a) ((a)&0xfc)

/*
 * The host bridge's ids. kiln has no PCI vendor id of its own, so it borrows the one Red
 * Hat assigned to a generic virtual host bridge (1b36:0008, "QEMU PCIe host bridge" in
 * pci.ids): it has no registers beyond the standard header, and Linux has no quirks for
 * it. Pretending to be a real Intel chipset instead would pull in chipset quirks.
 */
#define PCI_HOST_BRIDGE_VENDOR 0x1b36
#define PCI_HOST_BRIDGE_DEVICE 0x0008
#define PCI_CLASS_HOST_BRIDGE 0x060000

static void pci_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void pci_put32(uint8_t *p, uint32_t v)
{
    pci_put16(p, (uint16_t)v);
    pci_put16(p + 2, (uint16_t)(v >> 16));
}

void pci_device_init(struct pci_device *dev, uint16_t vendor_id, uint16_t device_id,
                     uint32_t class_code, uint16_t subsys_vendor_id, uint16_t subsys_id)
{
    memset(dev->config, 0, sizeof(dev->config));
    memset(dev->wmask, 0, sizeof(dev->wmask));
    memset(dev->bar_size, 0, sizeof(dev->bar_size));
    dev->config_write = NULL;
    dev->config_read = NULL;
    dev->bar_io = NULL;
    dev->opaque = NULL;
    dev->slot = -1;
    pci_put16(dev->config + PCI_VENDOR_ID, vendor_id);
    pci_put16(dev->config + PCI_DEVICE_ID, device_id);
    dev->config[PCI_REVISION_ID] = 0;
    dev->config[PCI_CLASS_CODE] = (uint8_t)class_code;
    dev->config[PCI_CLASS_CODE + 1] = (uint8_t)(class_code >> 8);
    dev->config[PCI_CLASS_CODE + 2] = (uint8_t)(class_code >> 16);
    dev->config[PCI_HEADER_TYPE] = 0; /* type 0, single function */
    pci_put16(dev->config + PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor_id);
    pci_put16(dev->config + PCI_SUBSYSTEM_ID, subsys_id);
    pci_put16(dev->wmask + PCI_COMMAND, PCI_COMMAND_WMASK);
    dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

static bool pci_is_power_of_two(uint32_t v)
{
    return v && !(v & (v - 1));
}

/*
 * The address bits above the size are writable, the ones below and the type bits are
 * not, so writing all ones reads back ~(size - 1) plus the type (§6.2.5.1).
 */
int pci_device_set_bar(struct pci_device *dev, unsigned index, uint32_t addr, uint32_t size,
                       bool is_io)
{
    uint32_t min = is_io ? PCI_BAR_IO_MIN_SIZE : PCI_BAR_MEM_MIN_SIZE;
    if (index >= PCI_NUM_BARS || !pci_is_power_of_two(size) || size < min)
        return -EINVAL;
    if (addr & (size - 1))
        return -EINVAL;
    unsigned off = PCI_BAR0 + 4 * index;
    pci_put32(dev->config + off, addr | (is_io ? PCI_BAR_IO : 0));
    pci_put32(dev->wmask + off, ~(size - 1));
    dev->bar_size[index] = size;
    return 0;
}

void pci_bus_init(struct pci_bus *bus)
{
    memset(bus, 0, sizeof(*bus));
    pthread_mutex_init(&bus->lock, NULL);
    pci_device_init(&bus->host_bridge, PCI_HOST_BRIDGE_VENDOR, PCI_HOST_BRIDGE_DEVICE,
                    PCI_CLASS_HOST_BRIDGE, 0, 0);
    bus->slots[0] = &bus->host_bridge;
}

void pci_bus_destroy(struct pci_bus *bus)
{
    pthread_mutex_destroy(&bus->lock);
    memset(bus->slots, 0, sizeof(bus->slots));
}

int pci_bus_add_device(struct pci_bus *bus, struct pci_device *dev)
{
    if (!dev)
        return -EINVAL;
    int slot = -ENOSPC;
    pthread_mutex_lock(&bus->lock);
    for (int i = 0; i < PCI_MAX_SLOTS; i++) {
        if (!bus->slots[i]) {
            bus->slots[i] = dev;
            slot = i;
            break;
        }
    }
    if (slot >= 0) {
        dev->slot = slot;
        if (dev->config[PCI_INTERRUPT_PIN])
            dev->config[PCI_INTERRUPT_LINE] = (uint8_t)PCI_INTX_GSI(slot);
    }
    pthread_mutex_unlock(&bus->lock);
    return slot;
}

void pci_device_add_capability(struct pci_device *dev, uint8_t offset, const uint8_t *cap,
                               unsigned len)
{
    /* Capabilities live after the standard header and are dword aligned (§6.7). */
    if (offset < 0x40 || offset & 3 || len < 2 || len > (unsigned)(PCI_CONFIG_SIZE - offset))
        return;
    memcpy(dev->config + offset, cap, len);
    dev->config[offset + 1] = dev->config[PCI_CAPABILITY_LIST];
    dev->config[PCI_CAPABILITY_LIST] = offset;
    dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
}

uint32_t pci_device_bar_address(const struct pci_device *dev, unsigned index)
{
    if (index >= PCI_NUM_BARS || !dev->bar_size[index])
        return 0;
    if (!(dev->config[PCI_COMMAND] & PCI_COMMAND_MEMORY))
        return 0;
    const uint8_t *b = dev->config + PCI_BAR0 + 4 * index;
    uint32_t v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return (v & PCI_BAR_IO) ? 0 : v & ~0xfu;
}

void pci_bus_set_mmio_base(struct pci_bus *bus, uint64_t base)
{
    bus->mmio_base = base;
}

void pci_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pci_bus *bus = opaque;
    uint64_t addr = bus->mmio_base + offset;
    struct pci_device *target = NULL;
    unsigned bar = 0;
    uint64_t bar_offset = 0;
    pthread_mutex_lock(&bus->lock);
    for (int s = 0; s < PCI_MAX_SLOTS && !target; s++) {
        struct pci_device *dev = bus->slots[s];
        for (unsigned i = 0; dev && i < PCI_NUM_BARS; i++) {
            uint32_t base = pci_device_bar_address(dev, i);
            if (base && addr >= base && addr - base < dev->bar_size[i] &&
                len <= dev->bar_size[i] - (addr - base)) {
                target = dev;
                bar = i;
                bar_offset = addr - base;
                break;
            }
        }
    }
    pthread_mutex_unlock(&bus->lock);
    if (target && target->bar_io)
        target->bar_io(target, bar, bar_offset, data, len, is_write);
}

/*
 * Only whole-dword accesses reach CONFIG_ADDRESS; narrower ones see a floating bus, which
 * is also what makes Linux's probe for configuration mechanism #2 (byte I/O) fail.
 */
void pci_config_address_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                           bool is_write)
{
    struct pci_bus *bus = opaque;
    if (offset != 0 || len != 4) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    pthread_mutex_lock(&bus->lock);
    if (is_write)
        bus->config_address = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                              (uint32_t)data[3] << 24;
    else
        pci_put32(data, bus->config_address);
    pthread_mutex_unlock(&bus->lock);
}

/* The function CONFIG_ADDRESS selects, or NULL: only bus 0, function 0 exist. */
static struct pci_device *pci_bus_selected(struct pci_bus *bus)
{
    uint32_t addr = bus->config_address;
    if (!(addr & PCI_CONFIG_ENABLE) || (addr & PCI_CONFIG_RESERVED))
        return NULL;
    if (PCI_CONFIG_BUS(addr) != 0 || PCI_CONFIG_FUNCTION(addr) != 0)
        return NULL;
    return bus->slots[PCI_CONFIG_DEVICE(addr)];
}

static void pci_config_write(struct pci_device *dev, unsigned reg, const uint8_t *data,
                             unsigned len)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < len; i++) {
        uint8_t mask = dev->wmask[reg + i];
        dev->config[reg + i] = (uint8_t)((dev->config[reg + i] & ~mask) | (data[i] & mask));
        value |= (uint32_t)data[i] << (8 * i);
    }
    if (dev->config_write)
        dev->config_write(dev, reg, len, value);
}

/*
 * 0xcfc-0xcff is a window on the selected dword: an access at 0xcfc + n reaches register
 * + n. Accesses that would spill past 0xcff, or to a missing function, read all ones.
 */
void pci_config_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pci_bus *bus = opaque;
    if (!is_write)
        memset(data, 0xff, len);
    if (offset >= 4 || len == 0 || len > 4 - offset)
        return;
    pthread_mutex_lock(&bus->lock);
    struct pci_device *dev = pci_bus_selected(bus);
    if (dev) {
        unsigned reg = PCI_CONFIG_REGISTER(bus->config_address) + (unsigned)offset;
        if (is_write) {
            pci_config_write(dev, reg, data, len);
        } else {
            memcpy(data, dev->config + reg, len);
            if (dev->config_read)
                dev->config_read(dev, reg, data, len);
        }
    }
    pthread_mutex_unlock(&bus->lock);
}

/* ---- snapshot ---- */

void pci_bus_save(struct pci_bus *bus, struct state_writer *w)
{
    pthread_mutex_lock(&bus->lock);
    state_put_u32(w, bus->config_address);
    uint32_t present = 0;
    for (unsigned i = 0; i < PCI_MAX_SLOTS; i++)
        if (bus->slots[i])
            present |= 1u << i;
    state_put_u32(w, present);
    for (unsigned i = 0; i < PCI_MAX_SLOTS; i++)
        if (bus->slots[i])
            state_put_bytes(w, bus->slots[i]->config, PCI_CONFIG_SIZE);
    pthread_mutex_unlock(&bus->lock);
}

int pci_bus_state_load(struct pci_bus_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->config_address = state_get_u32(r);
    s->present = state_get_u32(r);
    for (unsigned i = 0; i < PCI_MAX_SLOTS; i++)
        if (s->present & (1u << i))
            state_get_bytes(r, s->config[i], PCI_CONFIG_SIZE);
    return state_reader_done(r);
}

static bool pci_same_ids(const struct pci_device *dev, const uint8_t *saved)
{
    return memcmp(dev->config + PCI_VENDOR_ID, saved + PCI_VENDOR_ID, 4) == 0 &&
           memcmp(dev->config + PCI_CLASS_CODE, saved + PCI_CLASS_CODE, 3) == 0;
}

int pci_bus_restore(struct pci_bus *bus, const struct pci_bus_state *s)
{
    pthread_mutex_lock(&bus->lock);
    int ret = 0;
    for (unsigned i = 0; i < PCI_MAX_SLOTS && ret == 0; i++) {
        bool saved = s->present & (1u << i);
        if (saved != (bus->slots[i] != NULL) || (saved && !pci_same_ids(bus->slots[i], s->config[i])))
            ret = -ENODEV;
    }
    for (unsigned i = 0; i < PCI_MAX_SLOTS && ret == 0; i++) {
        struct pci_device *dev = bus->slots[i];
        if (!dev)
            continue;
        for (unsigned b = 0; b < PCI_CONFIG_SIZE; b++)
            dev->config[b] = (uint8_t)((dev->config[b] & ~dev->wmask[b]) |
                                       (s->config[i][b] & dev->wmask[b]));
    }
    if (ret == 0)
        bus->config_address = s->config_address;
    pthread_mutex_unlock(&bus->lock);
    return ret;
}

