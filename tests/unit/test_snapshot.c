#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "snapshot/snapshot.h"
#include "snapshot/state_file.h"

#define MEM (64ULL << 20)

static char err[256];

struct build_opts {
    unsigned ncpus;        /* vCPUs the config claims */
    unsigned vcpu_sections; /* vCPU sections actually written */
    const char *arch;
    const char *skip;       /* a section id to leave out */
    const char *extra;      /* an extra section id */
    uint16_t extra_flags;
    uint64_t memory;
    bool diff;
    bool virtio; /* one virtio-rng-like device, 1 queue */
    const char *base_path;
    int bitmap_extra; /* bytes added to the right bitmap length */
};

/* Opens a section, or for the one to leave out, a scratch writer that is thrown away. */
static struct state_writer *section_begin(struct state_writer *w, struct state_writer *scratch,
                                          const struct build_opts *o, const char *id,
                                          uint16_t version)
{
    if (o->skip && strcmp(o->skip, id) == 0) {
        state_writer_free(scratch);
        state_writer_init(scratch);
        state_section_begin(scratch, id, version, 0);
        return scratch;
    }
    state_section_begin(w, id, version, STATE_SECTION_MANDATORY);
    return w;
}

/* A snapshot as kiln writes it (docs/snapshot.md), from devices in their power-on state. */
static uint8_t *build(const struct build_opts *o, size_t *len)
{
    struct state_writer w, scratch, *t;
    state_writer_init(&w);
    state_writer_init(&scratch);
    uint64_t memory = o->memory ? o->memory : MEM;
    t = section_begin(&w, &scratch, o, "config", 1);
    const char *arch = o->arch ? o->arch : "x86_64";
    state_put_u8(t, (uint8_t)strlen(arch));
    state_put_bytes(t, arch, strlen(arch));
    state_put_u64(t, memory);
    state_put_u32(t, o->ncpus);
    state_put_u32(t, o->virtio ? 1 : 0); /* virtio devices */
    state_section_end(t);
    t = section_begin(&w, &scratch, o, "memory", 1);
    state_put_u64(t, memory);
    state_put_u32(t, 1);
    state_put_u64(t, 0);
    state_put_u64(t, memory);
    state_put_u64(t, 0);
    state_put_u64(t, 0x1234); /* id */
    state_put_u8(t, o->diff ? 1 : 0);
    if (o->diff) {
        state_put_u64(t, 0x777); /* the base's id */
        const char *paths[] = {o->base_path ? o->base_path : "/snap/state", "/snap/memory"};
        for (int i = 0; i < 2; i++) {
            state_put_u16(t, (uint16_t)strlen(paths[i]));
            state_put_bytes(t, paths[i], strlen(paths[i]));
        }
        uint32_t maplen = (uint32_t)(memory / 4096 / 8 + (uint64_t)(int64_t)o->bitmap_extra);
        state_put_u32(t, maplen);
        uint8_t *map = calloc(1, maplen);
        assert_non_null(map);
        map[0] = 0x05; /* pages 0 and 2 */
        state_put_bytes(t, map, maplen);
        free(map);
    }
    state_section_end(t);

    struct x86_vm_state vms = {0};
    vms.ioapic.chip.ioapic.base_address = 0xfec00000;
    for (int i = 0; i < 3; i++)
        vms.pit.channels[i].mode = 0xff;
    t = section_begin(&w, &scratch, o, "kvm.vm", X86_VM_STATE_VERSION);
    x86_vm_state_save(&vms, t);
    state_section_end(t);
    struct x86_vcpu_state *vs = calloc(1, sizeof(*vs));
    assert_non_null(vs);
    vs->regs.rip = 0x100000;
    vs->sregs.apic_base = 0xfee00900;
    vs->nmsrs = 2;
    vs->msrs[0].index = 0x10;
    vs->msrs[1].index = 0xc0000080;
    for (unsigned i = 0; i < o->vcpu_sections; i++) {
        char id[32];
        snprintf(id, sizeof(id), "kvm.vcpu.%u", i);
        t = section_begin(&w, &scratch, o, id, X86_VCPU_STATE_VERSION);
        x86_vcpu_state_save(vs, t);
        state_section_end(t);
    }
    free(vs);

    struct serial8250 uart = {0};
    serial8250_init(&uart, NULL);
    t = section_begin(&w, &scratch, o, "serial8250.com1", SERIAL8250_STATE_VERSION);
    serial8250_save(&uart, t);
    state_section_end(t);
    serial8250_destroy(&uart);
    struct mc146818 rtc;
    mc146818_init(&rtc, NULL);
    t = section_begin(&w, &scratch, o, "mc146818", MC146818_STATE_VERSION);
    mc146818_save(&rtc, t);
    state_section_end(t);
    mc146818_destroy(&rtc);
    struct i8042 kbc;
    i8042_init(&kbc, NULL, NULL);
    t = section_begin(&w, &scratch, o, "i8042", I8042_STATE_VERSION);
    i8042_save(&kbc, t);
    state_section_end(t);
    i8042_destroy(&kbc);
    struct pm pm;
    pm_init(&pm, NULL, NULL, NULL);
    t = section_begin(&w, &scratch, o, "pm", PM_STATE_VERSION);
    pm_save(&pm, t);
    state_section_end(t);
    pm_destroy(&pm);
    struct pci_bus bus;
    pci_bus_init(&bus);
    t = section_begin(&w, &scratch, o, "pci", PCI_STATE_VERSION);
    pci_bus_save(&bus, t);
    state_section_end(t);
    pci_bus_destroy(&bus);
    if (o->virtio) {
        t = section_begin(&w, &scratch, o, "virtio.0", VIRTIO_PCI_STATE_VERSION);
        state_put_u16(t, 4); /* device type: rng */
        state_put_u8(t, 1);  /* queues */
        state_put_u32(t, 0);
        state_put_u32(t, 0);
        state_put_u64(t, 1ULL << 32); /* VERSION_1 */
        state_put_u16(t, 0);          /* config vector */
        state_put_u8(t, 0x0f);        /* status: ACK, DRIVER, DRIVER_OK, FEATURES_OK */
        state_put_u8(t, 0);
        state_put_u16(t, 0);
        state_put_u8(t, 0); /* isr */
        state_put_u16(t, 1);  /* queue vector */
        state_put_u16(t, 1);  /* enabled */
        state_put_u16(t, 64); /* size */
        state_put_u16(t, 1);  /* ready */
        state_put_u64(t, 0x10000);
        state_put_u64(t, 0x10400);
        state_put_u64(t, 0x11000);
        for (int i = 0; i < 4; i++)
            state_put_u16(t, 0);
        state_put_u8(t, 0); /* not broken */
        state_put_u8(t, 2); /* MSI-X vectors: queues + 1 */
        for (int i = 0; i < 8; i++)
            state_put_u32(t, 0);
        state_put_u64(t, 0); /* pending */
        state_put_u8(t, 0);  /* no device fields */
        state_section_end(t);
    }
    if (o->extra) {
        state_section_begin(&w, o->extra, 1, o->extra_flags);
        state_put_u32(&w, 42);
        state_section_end(&w);
    }
    const uint8_t *data;
    assert_int_equal(state_writer_finish(&w, &data, len), 0);
    uint8_t *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, data, *len);
    state_writer_free(&w);
    state_writer_free(&scratch);
    return copy;
}

static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(len - 4));
    for (int i = 0; i < 4; i++)
        p[len - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static int parse(const struct build_opts *o)
{
    size_t len;
    uint8_t *data = build(o, &len);
    struct snapshot snap;
    err[0] = '\0';
    int ret = snapshot_parse(data, len, &snap, err, sizeof(err));
    if (ret == 0) {
        assert_int_equal(snap.ncpus, o->ncpus);
        assert_true(snap.memory == (o->memory ? o->memory : MEM));
        assert_non_null(snap.vcpus);
        assert_true(snap.vcpus[o->ncpus - 1].regs.rip == 0x100000);
        assert_int_equal(snap.vcpus[0].nmsrs, 2);
        assert_true(snap.pci.present & 1); /* the host bridge */
        snapshot_free(&snap);
    } else {
        assert_null(snap.vcpus);
    }
    free(data);
    return ret;
}

static void expect_error(const struct build_opts *o, const char *why)
{
    assert_int_equal(parse(o), -EBADMSG);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'", why, err);
}

static void valid_round_trip(void **state)
{
    assert_int_equal(parse(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1}), 0);
    assert_int_equal(parse(&(struct build_opts){.ncpus = 4, .vcpu_sections = 4}), 0);
    /* an optional section kiln does not know is skipped */
    assert_int_equal(parse(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1,
                                                .extra = "future.thing"}),
                     0);
}

static void diff_snapshots(void **state)
{
    size_t len;
    uint8_t *data = build(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .diff = true}, &len);
    struct snapshot snap;
    assert_int_equal(snapshot_parse(data, len, &snap, err, sizeof(err)), 0);
    assert_int_equal(snap.kind, SNAPSHOT_DIFF);
    assert_true(snap.base_id == 0x777);
    assert_string_equal(snap.base_state_path, "/snap/state");
    assert_string_equal(snap.base_mem_path, "/snap/memory");
    assert_int_equal(snap.regions[0].dirty_len, MEM / 4096 / 8);
    assert_int_equal(snap.regions[0].dirty[0], 0x05);
    snapshot_free(&snap);
    free(data);
    /* a bitmap of the wrong length, a relative base path */
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .diff = true,
                                      .bitmap_extra = 1},
                 "memory: malformed");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .diff = true,
                                      .bitmap_extra = -1},
                 "memory: malformed");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .diff = true,
                                      .base_path = "snap/state"},
                 "memory: malformed");
}

static void refused_shapes(void **state)
{
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .extra = "future.thing",
                                      .extra_flags = STATE_SECTION_MANDATORY},
                 "unknown to this kiln");
    expect_error(&(struct build_opts){.ncpus = 2, .vcpu_sections = 1}, "kvm.vcpu.1' is missing");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 2}, "kvm.vcpu.1");
    expect_error(&(struct build_opts){.ncpus = 0, .vcpu_sections = 0}, "0 vCPUs");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .arch = "aarch64"},
                 "architecture 'aarch64'");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .skip = "config"},
                 "'config' is missing");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .skip = "memory"},
                 "'memory' is missing");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .skip = "pci"},
                 "'pci' is missing");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .skip = "kvm.vm"},
                 "'kvm.vm' is missing");
    /* memory size must agree with the one region written */
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .memory = 4ULL << 30},
                 "RAM layout");
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .memory = 4097},
                 "out of range");
}

/* Finds a section's payload in a built file (for targeted field corruption). */
static uint8_t *payload_of(uint8_t *data, size_t len, const char *id, uint32_t *plen)
{
    struct state_file f;
    assert_int_equal(state_file_parse(&f, data, len, err, sizeof(err)), 0);
    const struct state_section *s = state_file_find(&f, id);
    assert_non_null(s);
    uint8_t *p = data + (s->payload - data);
    *plen = s->len;
    state_file_free(&f);
    return p;
}

struct corruption {
    const char *section;
    uint32_t offset; /* in the payload */
    uint8_t value;
};

static void out_of_range_fields(void **state)
{
    /* Each is one byte made invalid; the checksum is fixed so the field check must catch it. */
    static const struct corruption cases[] = {
        {"serial8250.com1", 10, 16},  /* rx_head past the FIFO */
        {"serial8250.com1", 11, 17},  /* rx_count over the FIFO size */
        {"serial8250.com1", 0, 0xff}, /* IER reserved bits */
        {"mc146818", 0, 200},         /* CMOS index past 128 */
        {"mc146818", 1, 2},           /* NMI flag not a bool */
        {"i8042", 5, 17},             /* keyboard queue length */
        {"i8042", 7 + 16, 5},         /* scanning flag */
        {"pm", 0, 0x01},              /* a status bit that does not exist */
        {"kvm.vm", 8 + 4, 9},         /* PIC priority rotation */
        {"kvm.vm", 8 + 9, 7},         /* PIC init state */
        {"kvm.vm", 8 + 32 + 2, 0},    /* IOAPIC base address */
        {"kvm.vcpu.0", 18 * 8 + 8 + 4 + 2, 16}, /* CS type */
        {"kvm.vcpu.0", 18 * 8 + 8 + 4 + 2 + 2, 4}, /* CS DPL */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        uint8_t *data = build(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1}, &len);
        uint32_t plen;
        uint8_t *p = payload_of(data, len, cases[i].section, &plen);
        assert_true(cases[i].offset < plen);
        p[cases[i].offset] = cases[i].value;
        fix_crc(data, len);
        struct snapshot snap;
        assert_int_equal(snapshot_parse(data, len, &snap, err, sizeof(err)), -EBADMSG);
        if (!strstr(err, cases[i].section))
            fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].section, err);
        free(data);
    }
}

static void virtio_sections(void **state)
{
    size_t len;
    uint8_t *data = build(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .virtio = true},
                          &len);
    struct snapshot snap;
    assert_int_equal(snapshot_parse(data, len, &snap, err, sizeof(err)), 0);
    assert_int_equal(snap.nvirtio, 1);
    assert_int_equal(snap.virtio[0].device_id, 4);
    assert_int_equal(snap.virtio[0].queues[0].size, 64);
    assert_true(snap.virtio[0].queues[0].avail_addr == 0x10400);
    snapshot_free(&snap);
    free(data);
    expect_error(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .virtio = true,
                                      .skip = "virtio.0"},
                 "'virtio.0' is missing");
    /* field corruptions: offsets in the virtio.0 payload */
    static const struct corruption cases[] = {
        {"virtio.0", 2, 0},      /* no queues */
        {"virtio.0", 2, 9},      /* more queues than a device may have */
        {"virtio.0", 21, 0x30}, /* status bits that do not exist */
        {"virtio.0", 25, 0x04}, /* ISR bit that does not exist */
        {"virtio.0", 28, 0},    /* queue ready, but not enabled */
        {"virtio.0", 30, 3},    /* queue size not a power of two */
        {"virtio.0", 66, 2},    /* broken flag not a bool */
        {"virtio.0", 67, 3},    /* MSI-X vector count not queues + 1 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        data = build(&(struct build_opts){.ncpus = 1, .vcpu_sections = 1, .virtio = true}, &len);
        uint32_t plen;
        uint8_t *p = payload_of(data, len, cases[i].section, &plen);
        assert_true(cases[i].offset < plen);
        p[cases[i].offset] = cases[i].value;
        fix_crc(data, len);
        assert_int_equal(snapshot_parse(data, len, &snap, err, sizeof(err)), -EBADMSG);
        if (!strstr(err, "virtio.0"))
            fail_msg("case %zu: expected 'virtio.0' in '%s'", i, err);
        free(data);
    }
}

/* Random damage with a valid checksum (what a fuzzer does): errors, never a crash. */
static void random_mutations(void **state)
{
    size_t len;
    uint8_t *good = build(&(struct build_opts){.ncpus = 2, .vcpu_sections = 2}, &len);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    srand(1234);
    unsigned refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, good, len);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++)
            buf[(size_t)rand() % (len - 4)] = (uint8_t)rand();
        size_t cut = rand() % 8 == 0 ? (size_t)rand() % len : len;
        if (cut >= 4)
            fix_crc(buf, cut);
        struct snapshot snap;
        int ret = snapshot_parse(buf, cut, &snap, err, sizeof(err));
        if (ret == 0)
            snapshot_free(&snap);
        else
            refused++;
    }
    assert_true(refused > 0);
    free(buf);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_round_trip),
        cmocka_unit_test(refused_shapes),
        cmocka_unit_test(diff_snapshots),
        cmocka_unit_test(virtio_sections),
        cmocka_unit_test(out_of_range_fields),
        cmocka_unit_test(random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
