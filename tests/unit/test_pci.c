#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/pci.h"

#define ALL_ONES 0xffffffffu

/* Port accesses as the guest makes them, through the two bus_io_fns. */

static void out32_cf8(struct pci_bus *bus, uint32_t value)
{
    uint8_t d[4] = {(uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
                    (uint8_t)(value >> 24)};
    pci_config_address_io(bus, 0, d, 4, true);
}

static uint32_t in_cf8(struct pci_bus *bus, unsigned offset, unsigned len)
{
    uint8_t d[8];
    memset(d, 0xee, sizeof(d));
    pci_config_address_io(bus, offset, d, len, false);
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        v |= (uint32_t)d[i] << (8 * i);
    return v;
}

static uint32_t in_cfc(struct pci_bus *bus, unsigned offset, unsigned len)
{
    uint8_t d[8];
    memset(d, 0xee, sizeof(d));
    pci_config_data_io(bus, offset, d, len, false);
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        v |= (uint32_t)d[i] << (8 * i);
    return v;
}

static void out_cfc(struct pci_bus *bus, unsigned offset, unsigned len, uint32_t value)
{
    uint8_t d[8] = {0};
    for (unsigned i = 0; i < len && i < 4; i++)
        d[i] = (uint8_t)(value >> (8 * i));
    pci_config_data_io(bus, offset, d, len, true);
}

static uint32_t cfg_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
    return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read(struct pci_bus *bus, unsigned dev, unsigned reg, unsigned len)
{
    out32_cf8(bus, cfg_addr(0, dev, 0, reg));
    return in_cfc(bus, reg & 3, len);
}

static void cfg_write(struct pci_bus *bus, unsigned dev, unsigned reg, unsigned len, uint32_t value)
{
    out32_cf8(bus, cfg_addr(0, dev, 0, reg));
    out_cfc(bus, reg & 3, len, value);
}

static int setup(void **state)
{
    struct pci_bus *bus = malloc(sizeof(*bus));
    if (!bus)
        return -1;
    pci_bus_init(bus);
    *state = bus;
    return 0;
}

static int teardown(void **state)
{
    pci_bus_destroy(*state);
    free(*state);
    return 0;
}

static void test_address_latch(void **state)
{
    struct pci_bus *bus = *state;
    assert_int_equal(in_cf8(bus, 0, 4), 0);
    out32_cf8(bus, 0x80001234);
    assert_int_equal(in_cf8(bus, 0, 4), 0x80001234);
    /* Linux's type 1 probe writes a byte to 0xcfb: only dword accesses latch. */
    uint8_t b = 0x01;
    pci_config_address_io(bus, 3, &b, 1, true);
    uint8_t w[2] = {0xff, 0xff};
    pci_config_address_io(bus, 0, w, 2, true);
    assert_int_equal(in_cf8(bus, 0, 4), 0x80001234);
    /* Narrow reads see nothing. */
    assert_int_equal(in_cf8(bus, 0, 1), 0xff);
    assert_int_equal(in_cf8(bus, 2, 2), 0xffff);
    out32_cf8(bus, 0);
    assert_int_equal(in_cf8(bus, 0, 4), 0);
}

static void test_host_bridge_ids(void **state)
{
    struct pci_bus *bus = *state;
    assert_int_equal(cfg_read(bus, 0, 0x00, 4), 0x00081b36);
    assert_int_equal(cfg_read(bus, 0, 0x00, 2), 0x1b36);
    assert_int_equal(cfg_read(bus, 0, 0x02, 2), 0x0008);
    assert_int_equal(cfg_read(bus, 0, 0x00, 1), 0x36);
    assert_int_equal(cfg_read(bus, 0, 0x01, 1), 0x1b);
    assert_int_equal(cfg_read(bus, 0, 0x02, 1), 0x08);
    assert_int_equal(cfg_read(bus, 0, 0x03, 1), 0x00);
    /* Class code 06/00/00 above revision 0. */
    assert_int_equal(cfg_read(bus, 0, 0x08, 4), 0x06000000);
    assert_int_equal(cfg_read(bus, 0, 0x0a, 2), 0x0600);
    assert_int_equal(cfg_read(bus, 0, 0x0b, 1), 0x06);
    assert_int_equal(cfg_read(bus, 0, 0x0e, 1), 0x00); /* header type 0, one function */
    /* A word at 0xcfd reaches register + 1. */
    out32_cf8(bus, cfg_addr(0, 0, 0, 0));
    assert_int_equal(in_cfc(bus, 1, 2), 0x081b);
}

static void test_missing_functions(void **state)
{
    struct pci_bus *bus = *state;
    assert_int_equal(cfg_read(bus, 5, 0, 4), ALL_ONES);
    assert_int_equal(cfg_read(bus, 31, 0, 2), 0xffff);
    cfg_write(bus, 5, 0x04, 2, 0x0007); /* dropped */
    assert_int_equal(cfg_read(bus, 5, 0x04, 4), ALL_ONES);
    /* Function 1 of the host bridge, and bus 1. */
    out32_cf8(bus, cfg_addr(0, 0, 1, 0));
    assert_int_equal(in_cfc(bus, 0, 4), ALL_ONES);
    out32_cf8(bus, cfg_addr(1, 0, 0, 0));
    assert_int_equal(in_cfc(bus, 0, 4), ALL_ONES);
    /* Enable bit clear. */
    out32_cf8(bus, cfg_addr(0, 0, 0, 0) & ~0x80000000u);
    assert_int_equal(in_cfc(bus, 0, 4), ALL_ONES);
    /* Extended register numbers (bits 27:24) are beyond the 256-byte space. */
    out32_cf8(bus, cfg_addr(0, 0, 0, 0) | 0x01000000u);
    assert_int_equal(in_cfc(bus, 0, 4), ALL_ONES);
}

static void test_odd_accesses(void **state)
{
    struct pci_bus *bus = *state;
    out32_cf8(bus, cfg_addr(0, 0, 0, 0xfc));
    /* Spilling past 0xcff, out of the window, or zero-length: all ones, no effect. */
    assert_int_equal(in_cfc(bus, 3, 4), ALL_ONES);
    assert_int_equal(in_cfc(bus, 2, 4), ALL_ONES);
    assert_int_equal(in_cfc(bus, 4, 1), 0xff);
    uint8_t d[8];
    memset(d, 0, sizeof(d));
    pci_config_data_io(bus, 0, d, 8, false);
    for (int i = 0; i < 8; i++)
        assert_int_equal(d[i], 0xff);
    pci_config_data_io(bus, 0, d, 8, true);
    pci_config_data_io(bus, UINT64_MAX, d, 4, true);
    pci_config_data_io(bus, 0, d, 0, true);
    pci_config_address_io(bus, 4, d, 4, true);
    assert_int_equal(in_cfc(bus, 0, 4), 0); /* register 0xfc is reserved: zero */
}

static void test_read_only_fields(void **state)
{
    struct pci_bus *bus = *state;
    cfg_write(bus, 0, 0x00, 4, ALL_ONES); /* ids */
    cfg_write(bus, 0, 0x08, 4, ALL_ONES); /* revision, class */
    cfg_write(bus, 0, 0x06, 2, ALL_ONES); /* status */
    cfg_write(bus, 0, 0x0c, 4, ALL_ONES); /* cache line, latency, header type, BIST */
    cfg_write(bus, 0, 0x2c, 4, ALL_ONES); /* subsystem ids */
    cfg_write(bus, 0, 0x3d, 1, 0xff);     /* interrupt pin */
    assert_int_equal(cfg_read(bus, 0, 0x00, 4), 0x00081b36);
    assert_int_equal(cfg_read(bus, 0, 0x08, 4), 0x06000000);
    assert_int_equal(cfg_read(bus, 0, 0x06, 2), 0);
    assert_int_equal(cfg_read(bus, 0, 0x0c, 4), 0);
    assert_int_equal(cfg_read(bus, 0, 0x2c, 4), 0);
    assert_int_equal(cfg_read(bus, 0, 0x3d, 1), 0);
    /* Command: I/O, memory, bus master and INTx disable only. */
    cfg_write(bus, 0, 0x04, 2, 0xffff);
    assert_int_equal(cfg_read(bus, 0, 0x04, 2), 0x0407);
    cfg_write(bus, 0, 0x04, 2, 0);
    assert_int_equal(cfg_read(bus, 0, 0x04, 2), 0);
    /* Interrupt line is the guest's scratch byte. */
    cfg_write(bus, 0, 0x3c, 1, 0x0b);
    assert_int_equal(cfg_read(bus, 0, 0x3c, 4), 0x0b);
}

struct write_log {
    unsigned calls, offset, len;
    uint32_t value;
};

static void log_config_write(struct pci_device *dev, unsigned offset, unsigned len, uint32_t value)
{
    struct write_log *log = dev->opaque;
    log->calls++;
    log->offset = offset;
    log->len = len;
    log->value = value;
}

static struct pci_device *make_device(void)
{
    struct pci_device *dev = calloc(1, sizeof(*dev));
    assert_non_null(dev);
    pci_device_init(dev, 0x1af4, 0x1042, 0x010000, 0x1af4, 0x0002);
    assert_int_equal(pci_device_set_bar(dev, 0, 0xc0001000, 0x1000, false), 0);
    assert_int_equal(pci_device_set_bar(dev, 1, 0xc040, 0x20, true), 0);
    return dev;
}

static void test_bar_sizing(void **state)
{
    struct pci_bus *bus = *state;
    struct pci_device *dev = make_device();
    assert_int_equal(pci_bus_add_device(bus, dev), 1);
    assert_int_equal(cfg_read(bus, 1, 0x00, 4), 0x10421af4);
    assert_int_equal(cfg_read(bus, 1, 0x10, 4), 0xc0001000);
    assert_int_equal(cfg_read(bus, 1, 0x14, 4), 0xc041);

    /* Memory BAR: all ones reads back ~(size - 1) with the type bits (32-bit, no prefetch). */
    cfg_write(bus, 1, 0x10, 4, ALL_ONES);
    assert_int_equal(cfg_read(bus, 1, 0x10, 4), 0xfffff000);
    cfg_write(bus, 1, 0x10, 4, 0xc0002000);
    assert_int_equal(cfg_read(bus, 1, 0x10, 4), 0xc0002000);
    cfg_write(bus, 1, 0x10, 4, 0xc0003fff); /* bits below the size stay 0 */
    assert_int_equal(cfg_read(bus, 1, 0x10, 4), 0xc0003000);

    /* I/O BAR: bit 0 stays set. */
    cfg_write(bus, 1, 0x14, 4, ALL_ONES);
    assert_int_equal(cfg_read(bus, 1, 0x14, 4), 0xffffffe1);
    cfg_write(bus, 1, 0x14, 4, 0xd000);
    assert_int_equal(cfg_read(bus, 1, 0x14, 4), 0xd001);

    /* Unused BARs and the expansion ROM read 0 even after the probe. */
    for (unsigned reg = 0x18; reg <= 0x24; reg += 4) {
        cfg_write(bus, 1, reg, 4, ALL_ONES);
        assert_int_equal(cfg_read(bus, 1, reg, 4), 0);
    }
    cfg_write(bus, 1, 0x30, 4, ALL_ONES);
    assert_int_equal(cfg_read(bus, 1, 0x30, 4), 0);
    free(dev);
}

static void test_set_bar_invalid(void **state)
{
    struct pci_device dev;
    pci_device_init(&dev, 1, 2, 0xff0000, 0, 0);
    assert_int_equal(pci_device_set_bar(&dev, 6, 0, 0x1000, false), -EINVAL);
    assert_int_equal(pci_device_set_bar(&dev, 0, 0, 0x1800, false), -EINVAL); /* not 2^n */
    assert_int_equal(pci_device_set_bar(&dev, 0, 0, 8, false), -EINVAL);      /* < 16 */
    assert_int_equal(pci_device_set_bar(&dev, 0, 0, 2, true), -EINVAL);       /* < 4 */
    assert_int_equal(pci_device_set_bar(&dev, 0, 0, 0, false), -EINVAL);
    assert_int_equal(pci_device_set_bar(&dev, 0, 0x800, 0x1000, false), -EINVAL);
    assert_int_equal(pci_device_set_bar(&dev, 5, 0x80000000, 0x80000000, false), 0);
    assert_int_equal(dev.bar_size[5], 0x80000000);
}

static void test_config_write_callback(void **state)
{
    struct pci_bus *bus = *state;
    struct pci_device *dev = make_device();
    struct write_log log = {0};
    dev->config_write = log_config_write;
    dev->opaque = &log;
    assert_int_equal(pci_bus_add_device(bus, dev), 1);
    cfg_write(bus, 1, 0x04, 2, 0x0006);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.offset, 0x04);
    assert_int_equal(log.len, 2);
    assert_int_equal(log.value, 0x0006);
    cfg_write(bus, 1, 0x11, 1, 0x50); /* byte at 0xcfd */
    assert_int_equal(log.calls, 2);
    assert_int_equal(log.offset, 0x11);
    assert_int_equal(log.len, 1);
    assert_int_equal(log.value, 0x50);
    assert_int_equal(cfg_read(bus, 1, 0x10, 4), 0xc0005000);
    cfg_read(bus, 1, 0x04, 4); /* reads do not call back */
    cfg_write(bus, 2, 0x04, 2, 0x0006);
    assert_int_equal(log.calls, 2);
    free(dev);
}

static void test_add_device(void **state)
{
    struct pci_bus *bus = *state;
    struct pci_device devs[PCI_MAX_SLOTS];
    for (int i = 1; i < PCI_MAX_SLOTS; i++) {
        pci_device_init(&devs[i], 0x1af4, (uint16_t)(0x1040 + i), 0xff0000, 0, 0);
        assert_int_equal(pci_bus_add_device(bus, &devs[i]), i);
    }
    assert_int_equal(pci_bus_add_device(bus, &devs[0]), -ENOSPC);
    assert_int_equal(pci_bus_add_device(bus, NULL), -EINVAL);
    assert_int_equal(cfg_read(bus, 31, 0x02, 2), 0x1040 + 31);
    assert_int_equal(cfg_read(bus, 0, 0x00, 4), 0x00081b36);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_address_latch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_bridge_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
        cmocka_unit_test(test_set_bar_invalid),
        cmocka_unit_test_setup_teardown(test_config_write_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_device, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
