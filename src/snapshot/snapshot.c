#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "mem/dirty.h"
#include "snapshot/memory_file.h"
#include "snapshot/state_file.h"
#include "util.h"
#include "virtio/virtio.h"
#include "vmm/vm.h"

#define CONFIG_VERSION 1
#define MEMORY_VERSION 1
#define VCPU_ID_FMT "kvm.vcpu.%u"
#define VIRTIO_ID_FMT "virtio.%u"

_Static_assert(SNAPSHOT_MAX_VIRTIO == VM_MAX_VIRTIO_DEVICES, "one saved slot per device");

/* ---- parsing: bytes -> struct snapshot, every field checked ---- */

static int parse_config(struct snapshot *snap, struct state_reader *r, char *err, size_t errlen)
{
    char arch[17] = {0};
    uint8_t arch_len = state_get_u8(r);
    if (arch_len >= sizeof(arch)) {
        snprintf(err, errlen, "config: bad architecture name");
        return -EBADMSG;
    }
    state_get_bytes(r, arch, arch_len);
    snap->memory = state_get_u64(r);
    uint32_t ncpus = state_get_u32(r);
    uint32_t nvirtio = state_get_u32(r);
    if (state_reader_done(r) < 0) {
        snprintf(err, errlen, "config: malformed section");
        return -EBADMSG;
    }
    if (strcmp(arch, SNAPSHOT_ARCH) != 0) {
        snprintf(err, errlen, "the snapshot is for architecture '%s', not %s", arch,
                 SNAPSHOT_ARCH);
        return -EBADMSG;
    }
    if (snap->memory < X86_MIN_MEMORY || snap->memory > SNAPSHOT_MAX_MEMORY ||
        snap->memory % 4096) {
        snprintf(err, errlen, "config: guest memory size %llu is out of range",
                 (unsigned long long)snap->memory);
        return -EBADMSG;
    }
    if (ncpus == 0 || ncpus > VM_MAX_CPUS) {
        snprintf(err, errlen, "config: %u vCPUs is out of range", ncpus);
        return -EBADMSG;
    }
    if (nvirtio > SNAPSHOT_MAX_VIRTIO) {
        snprintf(err, errlen, "config: %u virtio devices is more than %d", nvirtio,
                 SNAPSHOT_MAX_VIRTIO);
        return -EBADMSG;
    }
    snap->ncpus = ncpus;
    snap->nvirtio = nvirtio;
    return 0;
}

/* The regions must be exactly the layout kiln gives this much RAM, back to back in the file. */
static int check_regions(const struct snapshot *snap, char *err, size_t errlen)
{
    uint64_t low = snap->memory < X86_PCI_HOLE_START ? snap->memory : X86_PCI_HOLE_START;
    struct snapshot_region want[2] = {{.gpa = 0, .size = low, .offset = 0},
                                      {.gpa = X86_HIGH_RAM_START, .size = snap->memory - low, .offset = low}};
    unsigned nwant = snap->memory > low ? 2 : 1;
    bool same = snap->nregions == nwant;
    for (unsigned i = 0; same && i < nwant; i++)
        same = snap->regions[i].gpa == want[i].gpa && snap->regions[i].size == want[i].size &&
               snap->regions[i].offset == want[i].offset;
    if (!same || snap->mem_file_size != snap->memory) {
        snprintf(err, errlen, "memory: the RAM layout does not match %llu bytes of guest memory",
                 (unsigned long long)snap->memory);
        return -EBADMSG;
    }
    return 0;
}

/* A length-prefixed absolute path. */
static void get_path(struct state_reader *r, char *out)
{
    uint16_t len = state_get_u16(r);
    if (len == 0 || len >= SNAPSHOT_PATH_MAX) {
        state_reader_fail(r);
        out[0] = '\0';
        return;
    }
    state_get_bytes(r, out, len);
    out[len] = '\0';
    if (out[0] != '/' || strlen(out) != len)
        state_reader_fail(r);
}

/* A diff's page bitmaps: one per region, exactly as long as its pages need, no stray bits. */
static int get_dirty_maps(struct snapshot *snap, struct state_reader *r)
{
    for (unsigned i = 0; i < snap->nregions; i++) {
        struct snapshot_region *g = &snap->regions[i];
        uint32_t len = state_get_u32(r);
        if (r->error || g->size % SNAPSHOT_PAGE || len != snapshot_dirty_bytes(g->size) ||
            len > r->len - r->pos)
            return -EBADMSG;
        g->dirty = malloc(len ? len : 1);
        if (!g->dirty)
            return -ENOMEM;
        g->dirty_len = len;
        state_get_bytes(r, g->dirty, len);
        unsigned tail = (unsigned)(g->size / 4096 % 8);
        if (len && tail && (g->dirty[len - 1] >> tail))
            return -EBADMSG;
    }
    return r->error ? -EBADMSG : 0;
}

static int parse_memory(struct snapshot *snap, struct state_reader *r, char *err, size_t errlen)
{
    snap->mem_file_size = state_get_u64(r);
    uint32_t n = state_get_u32(r);
    if (n == 0 || n > GUEST_MEM_MAX_REGIONS) {
        snprintf(err, errlen, "memory: %u regions", n);
        return -EBADMSG;
    }
    for (uint32_t i = 0; i < n; i++) {
        snap->regions[i].gpa = state_get_u64(r);
        snap->regions[i].size = state_get_u64(r);
        snap->regions[i].offset = state_get_u64(r);
    }
    snap->nregions = n;
    snap->id = state_get_u64(r);
    uint8_t kind = state_get_u8(r);
    int ret = 0;
    if (kind == SNAPSHOT_DIFF) {
        snap->kind = SNAPSHOT_DIFF;
        snap->base_id = state_get_u64(r);
        get_path(r, snap->base_state_path);
        get_path(r, snap->base_mem_path);
        ret = get_dirty_maps(snap, r);
    } else if (kind != SNAPSHOT_FULL) {
        ret = -EBADMSG;
    }
    if (ret == -ENOMEM) {
        snprintf(err, errlen, "out of memory for the dirty-page maps");
        return ret;
    }
    if (ret < 0 || state_reader_done(r) < 0) {
        snprintf(err, errlen, "memory: malformed section");
        return -EBADMSG;
    }
    return 0;
}

/* A device section: the device's own loader checks the fields. */
static int parse_device(const struct state_file *f, const char *id, uint16_t version,
                        int (*load)(void *state, struct state_reader *r), void *state,
                        char *err, size_t errlen)
{
    const struct state_section *s = state_file_find(f, id);
    if (!s) {
        snprintf(err, errlen, "section '%s' is missing", id);
        return -EBADMSG;
    }
    if (s->version != version) {
        snprintf(err, errlen, "section '%s' has version %u; this kiln reads version %u", id,
                 s->version, version);
        return -EBADMSG;
    }
    struct state_reader r;
    state_reader_init(&r, s->payload, s->len);
    if (load(state, &r) < 0) {
        snprintf(err, errlen, "section '%s': a field is out of range or the length is wrong", id);
        return -EBADMSG;
    }
    return 0;
}

/* Adapters: each device loader takes its own state type. */
static int load_vm(void *p, struct state_reader *r) { return x86_vm_state_load(p, r); }
static int load_vcpu(void *p, struct state_reader *r) { return x86_vcpu_state_load(p, r); }
static int load_com1(void *p, struct state_reader *r) { return serial8250_state_load(p, r); }
static int load_rtc(void *p, struct state_reader *r) { return mc146818_state_load(p, r); }
static int load_i8042(void *p, struct state_reader *r) { return i8042_state_load(p, r); }
static int load_pm(void *p, struct state_reader *r) { return pm_state_load(p, r); }
static int load_pci(void *p, struct state_reader *r) { return pci_bus_state_load(p, r); }
static int load_virtio(void *p, struct state_reader *r) { return virtio_pci_saved_load(p, r); }

static bool known_section(const char *id, unsigned ncpus, unsigned nvirtio)
{
    static const char *const fixed[] = {"config", "memory", "kvm.vm", "serial8250.com1",
                                        "mc146818", "i8042", "pm", "pci"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        if (strcmp(id, fixed[i]) == 0)
            return true;
    unsigned index;
    char tail;
    if (sscanf(id, VCPU_ID_FMT "%c", &index, &tail) == 1)
        return index < ncpus;
    return sscanf(id, VIRTIO_ID_FMT "%c", &index, &tail) == 1 && index < nvirtio;
}

static int parse_sections(const struct state_file *f, struct snapshot *snap, char *err,
                          size_t errlen)
{
    /* config first, with its own messages: it says how many vCPUs to expect. */
    const struct state_section *cfg = state_file_find(f, "config");
    if (!cfg || cfg->version != CONFIG_VERSION) {
        snprintf(err, errlen, cfg ? "section 'config' has an unsupported version"
                                  : "section 'config' is missing");
        return -EBADMSG;
    }
    struct state_reader r;
    state_reader_init(&r, cfg->payload, cfg->len);
    int ret = parse_config(snap, &r, err, errlen);
    const struct state_section *mem = state_file_find(f, "memory");
    if (ret == 0 && (!mem || mem->version != MEMORY_VERSION)) {
        snprintf(err, errlen, "section 'memory' is missing or has an unsupported version");
        return -EBADMSG;
    }
    if (ret == 0) {
        state_reader_init(&r, mem->payload, mem->len);
        ret = parse_memory(snap, &r, err, errlen) ?: check_regions(snap, err, errlen);
    }
    for (uint32_t i = 0; ret == 0 && i < f->nsections; i++) {
        const struct state_section *s = &f->sections[i];
        if (!known_section(s->id, snap->ncpus, snap->nvirtio) &&
            (s->flags & STATE_SECTION_MANDATORY)) {
            snprintf(err, errlen, "section '%s' is unknown to this kiln and marked mandatory",
                     s->id);
            return -EBADMSG;
        }
    }
    return ret;
}

static int parse_state(const struct state_file *f, struct snapshot *snap, char *err,
                       size_t errlen)
{
    int ret = parse_sections(f, snap, err, errlen);
    if (ret < 0)
        return ret;
    snap->vcpus = calloc(snap->ncpus, sizeof(*snap->vcpus));
    if (!snap->vcpus) {
        snprintf(err, errlen, "out of memory for %u vCPU states", snap->ncpus);
        return -ENOMEM;
    }
    ret = parse_device(f, "kvm.vm", X86_VM_STATE_VERSION, load_vm, &snap->vm, err, errlen);
    for (unsigned i = 0; ret == 0 && i < snap->ncpus; i++) {
        char id[STATE_ID_MAX + 1];
        snprintf(id, sizeof(id), VCPU_ID_FMT, i);
        ret = parse_device(f, id, X86_VCPU_STATE_VERSION, load_vcpu, &snap->vcpus[i], err,
                           errlen);
    }
    ret = ret ?: parse_device(f, "serial8250.com1", SERIAL8250_STATE_VERSION, load_com1,
                              &snap->com1, err, errlen);
    ret = ret ?: parse_device(f, "mc146818", MC146818_STATE_VERSION, load_rtc, &snap->rtc, err,
                              errlen);
    ret = ret ?: parse_device(f, "i8042", I8042_STATE_VERSION, load_i8042, &snap->i8042, err,
                              errlen);
    ret = ret ?: parse_device(f, "pm", PM_STATE_VERSION, load_pm, &snap->pm, err, errlen);
    ret = ret ?: parse_device(f, "pci", PCI_STATE_VERSION, load_pci, &snap->pci, err, errlen);
    for (unsigned i = 0; ret == 0 && i < snap->nvirtio; i++) {
        char id[STATE_ID_MAX + 1];
        snprintf(id, sizeof(id), VIRTIO_ID_FMT, i);
        ret = parse_device(f, id, VIRTIO_PCI_STATE_VERSION, load_virtio, &snap->virtio[i], err,
                           errlen);
    }
    return ret;
}

int snapshot_parse(const uint8_t *data, size_t len, struct snapshot *snap, char *err,
                   size_t errlen)
{
    memset(snap, 0, sizeof(*snap));
    struct state_file f;
    int ret = state_file_parse(&f, data, len, err, errlen);
    if (ret < 0)
        return ret;
    ret = parse_state(&f, snap, err, errlen);
    state_file_free(&f);
    if (ret < 0)
        snapshot_free(snap);
    return ret;
}

int snapshot_read(const char *path, struct snapshot *snap, char *err, size_t errlen)
{
    uint8_t *data;
    size_t len;
    memset(snap, 0, sizeof(*snap));
    int ret = read_file(path, &data, &len, STATE_FILE_MAX_SIZE);
    if (ret < 0) {
        snprintf(err, errlen, "%s", ret == -EFBIG ? "too large for a state file" : strerror(-ret));
        return ret;
    }
    ret = snapshot_parse(data, len, snap, err, errlen);
    free(data);
    return ret;
}

void snapshot_free(struct snapshot *snap)
{
    for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(snap->regions[i].dirty);
    free(snap->vcpus);
    memset(snap, 0, sizeof(*snap));
}

/* ---- saving ---- */

/* What one snapshot_create call is writing. */
struct save_job {
    enum snapshot_kind kind;
    uint64_t id;
    uint8_t *dirty[GUEST_MEM_MAX_REGIONS]; /* diff: KVM's dirty log per region */
    bool log_touched; /* the dirty log was read or restarted: the old base is gone */
};

static void put_path(struct state_writer *w, const char *path)
{
    state_put_u16(w, (uint16_t)strlen(path));
    state_put_bytes(w, path, strlen(path));
}

static void put_config(struct state_writer *w, const struct vm *vm, const struct save_job *job)
{
    state_section_begin(w, "config", CONFIG_VERSION, STATE_SECTION_MANDATORY);
    state_put_u8(w, (uint8_t)strlen(SNAPSHOT_ARCH));
    state_put_bytes(w, SNAPSHOT_ARCH, strlen(SNAPSHOT_ARCH));
    state_put_u64(w, vm->mem.ram_size);
    state_put_u32(w, vm->ncpus);
    state_put_u32(w, vm->nvirtio);
    state_section_end(w);

    state_section_begin(w, "memory", MEMORY_VERSION, STATE_SECTION_MANDATORY);
    state_put_u64(w, vm->mem.ram_size);
    state_put_u32(w, vm->mem.nregions);
    uint64_t offset = 0;
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        state_put_u64(w, vm->mem.regions[i].gpa);
        state_put_u64(w, vm->mem.regions[i].size);
        state_put_u64(w, offset);
        offset += vm->mem.regions[i].size;
    }
    state_put_u64(w, job->id);
    state_put_u8(w, (uint8_t)job->kind);
    if (job->kind == SNAPSHOT_DIFF) {
        state_put_u64(w, vm->snapshot_base.id);
        put_path(w, vm->snapshot_base.state_path);
        put_path(w, vm->snapshot_base.mem_path);
        for (unsigned i = 0; i < vm->mem.nregions; i++) {
            size_t len = snapshot_dirty_bytes(vm->mem.regions[i].size);
            state_put_u32(w, (uint32_t)len);
            state_put_bytes(w, job->dirty[i], len);
        }
    }
    state_section_end(w);
}

/* The pages written since the last snapshot, by the guest and by devices (and clears it). */
static int get_dirty_log(struct vm *vm, struct save_job *job)
{
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        job->dirty[i] = calloc(guest_dirty_words(vm->mem.regions[i].size), sizeof(uint64_t));
        if (!job->dirty[i])
            return -ENOMEM;
        int ret = vm_dirty_log_collect(vm, i, (uint64_t *)job->dirty[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static void put_devices(struct state_writer *w, struct vm *vm)
{
    state_section_begin(w, "serial8250.com1", SERIAL8250_STATE_VERSION, STATE_SECTION_MANDATORY);
    serial8250_save(&vm->com1, w);
    state_section_end(w);
    state_section_begin(w, "mc146818", MC146818_STATE_VERSION, STATE_SECTION_MANDATORY);
    mc146818_save(&vm->rtc, w);
    state_section_end(w);
    state_section_begin(w, "i8042", I8042_STATE_VERSION, STATE_SECTION_MANDATORY);
    i8042_save(&vm->i8042, w);
    state_section_end(w);
    state_section_begin(w, "pm", PM_STATE_VERSION, STATE_SECTION_MANDATORY);
    pm_save(&vm->pm, w);
    state_section_end(w);
    state_section_begin(w, "pci", PCI_STATE_VERSION, STATE_SECTION_MANDATORY);
    pci_bus_save(&vm->pci, w);
    state_section_end(w);
    for (unsigned i = 0; i < vm->nvirtio; i++) {
        char id[STATE_ID_MAX + 1];
        snprintf(id, sizeof(id), VIRTIO_ID_FMT, i);
        state_section_begin(w, id, VIRTIO_PCI_STATE_VERSION, STATE_SECTION_MANDATORY);
        virtio_pci_save(vm->virtio[i], w);
        state_section_end(w);
    }
}

/* KVM's state of the VM and every vCPU; run_lock is held and every vCPU is parked. */
static int put_kvm_state(struct state_writer *w, struct vm *vm, char *err, size_t errlen)
{
    struct x86_vm_state vms;
    int ret = x86_vm_state_get(vm->fd, vm->paused_clock.clock, &vms);
    if (ret < 0) {
        snprintf(err, errlen, "reading the irqchip and PIT: %s", strerror(-ret));
        return ret;
    }
    state_section_begin(w, "kvm.vm", X86_VM_STATE_VERSION, STATE_SECTION_MANDATORY);
    x86_vm_state_save(&vms, w);
    state_section_end(w);

    uint32_t msrs[X86_MAX_SAVED_MSRS];
    int nmsrs = x86_msr_list(vm->kvm.fd, vm->vcpus[0].fd, msrs, X86_MAX_SAVED_MSRS);
    struct x86_vcpu_state *vs = malloc(sizeof(*vs));
    if (nmsrs < 0 || !vs) {
        free(vs);
        snprintf(err, errlen, "listing MSRs: %s", strerror(nmsrs < 0 ? -nmsrs : ENOMEM));
        return nmsrs < 0 ? nmsrs : -ENOMEM;
    }
    for (unsigned i = 0; ret == 0 && i < vm->ncpus; i++) {
        ret = x86_vcpu_state_get(vm->vcpus[i].fd, msrs, (unsigned)nmsrs, vs);
        if (ret < 0) {
            snprintf(err, errlen, "reading vCPU %u: %s", i, strerror(-ret));
            break;
        }
        char id[STATE_ID_MAX + 1];
        snprintf(id, sizeof(id), VCPU_ID_FMT, i);
        state_section_begin(w, id, X86_VCPU_STATE_VERSION, STATE_SECTION_MANDATORY);
        x86_vcpu_state_save(vs, w);
        state_section_end(w);
    }
    free(vs);
    return ret;
}

static bool vm_parked(struct vm *vm)
{
    return atomic_load(&vm->paused) && vm->fd >= 0 && vm->vcpus_parked >= vm->vcpus_running &&
           vm->paused_clock.saved && atomic_load(&vm->stop_reason) == VM_STOP_NONE;
}

/*
 * Everything but RAM, while the vCPUs stay parked (run_lock held against a teardown). The
 * dirty log restarts here: RAM does not change until the VM is resumed, after the write.
 */
static int capture_state(struct vm *vm, struct save_job *job, struct state_writer *w, char *err,
                         size_t errlen)
{
    pthread_mutex_lock(&vm->run_lock);
    int ret = 0;
    if (!vm_parked(vm)) {
        snprintf(err, errlen, "the VM must be paused (PATCH /vm {\"state\": \"Paused\"}) first");
        ret = -EBUSY;
    } else if (job->kind == SNAPSHOT_DIFF && (!vm->dirty_log || !vm->snapshot_base.valid)) {
        snprintf(err, errlen, "a Diff snapshot needs a previous snapshot of this VM to refer to "
                              "(take a Full one first, or restore from one)");
        ret = -ENOTSUP;
    } else if (job->kind == SNAPSHOT_DIFF) {
        job->log_touched = true;
        if ((ret = get_dirty_log(vm, job)) < 0)
            snprintf(err, errlen, "reading the dirty-page log: %s", strerror(-ret));
    } else {
        job->log_touched = true;
        if ((ret = vm_dirty_log_start(vm)) < 0)
            snprintf(err, errlen, "starting dirty-page logging: %s", strerror(-ret));
    }
    if (ret == 0) {
        put_config(w, vm, job);
        ret = put_kvm_state(w, vm, err, errlen);
    }
    if (ret == 0)
        put_devices(w, vm);
    pthread_mutex_unlock(&vm->run_lock);
    return ret;
}

/* This snapshot becomes what the next diff refers to (by absolute paths). */
static void set_base(struct vm *vm, uint64_t id, const char *state_path, const char *mem_path)
{
    struct vm_snapshot_base *b = &vm->snapshot_base;
    b->valid = realpath(state_path, b->state_path) && realpath(mem_path, b->mem_path);
    b->id = id;
}

/* Never a snapshot that silently loses a device's state, nor one taken mid-I/O. */
int snapshot_freeze(struct vm *vm, unsigned *frozen, char *err, size_t errlen)
{
    for (*frozen = 0; *frozen < vm->nvirtio; (*frozen)++) {
        struct virtio_device *vdev = vm->virtio[*frozen];
        int ret = virtio_pci_freeze(vdev);
        if (ret == -ENOTSUP) {
            snprintf(err, errlen, "virtio-%s: saving this device is not supported yet",
                     vdev->ops->name);
            return ret;
        }
        if (ret < 0) {
            snprintf(err, errlen, "virtio-%s: not idle within 5 s (I/O in flight%s); try again",
                     vdev->ops->name,
                     vdev->ops->device_id == 19 ? ", or open vsock connections, which a "
                                                  "snapshot cannot carry" : "");
            return ret;
        }
    }
    return 0;
}

static uint64_t random_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = monotonic_ns() ^ ((uint64_t)getpid() << 32);
    return id;
}

void snapshot_thaw(struct vm *vm, unsigned frozen)
{
    for (unsigned i = 0; i < frozen; i++)
        virtio_pci_thaw(vm->virtio[i]);
}

int snapshot_capture(struct vm *vm, uint8_t **data, size_t *len, char *err, size_t errlen)
{
    struct save_job job = {.kind = SNAPSHOT_FULL, .id = random_id()};
    struct state_writer w;
    state_writer_init(&w);
    const uint8_t *bytes;
    int ret = capture_state(vm, &job, &w, err, errlen);
    if (ret == 0 && (ret = state_writer_finish(&w, &bytes, len)) < 0)
        snprintf(err, errlen, "building the state: %s", strerror(-ret));
    if (ret == 0 && !(*data = malloc(*len)))
        ret = -ENOMEM;
    if (ret == 0)
        memcpy(*data, bytes, *len);
    vm->snapshot_base.valid = false; /* the dirty log restarted */
    state_writer_free(&w);
    return ret;
}

int snapshot_create(struct vm *vm, enum snapshot_kind kind, const char *state_path,
                    const char *mem_path, char *err, size_t errlen)
{
    struct save_job job = {.kind = kind, .id = random_id()};
    struct state_writer w;
    state_writer_init(&w);
    unsigned frozen = 0;
    int ret = snapshot_freeze(vm, &frozen, err, errlen);
    if (ret == 0)
        ret = capture_state(vm, &job, &w, err, errlen);
    const uint8_t *data;
    size_t len;
    if (ret == 0 && (ret = state_writer_finish(&w, &data, &len)) < 0)
        snprintf(err, errlen, "building the state file: %s", strerror(-ret));
    if (ret == 0 && (ret = snapshot_memory_save(&vm->mem, mem_path, kind == SNAPSHOT_DIFF ? job.dirty
                                                                                 : NULL)) < 0)
        snprintf(err, errlen, "memory file '%s': %s", mem_path, strerror(-ret));
    if (ret == 0 && (ret = write_file_atomic(state_path, data, len)) < 0)
        snprintf(err, errlen, "state file '%s': %s", state_path, strerror(-ret));
    snapshot_thaw(vm, frozen);
    if (ret == 0)
        set_base(vm, job.id, state_path, mem_path);
    else if (job.log_touched)
        vm->snapshot_base.valid = false; /* the dirty log was consumed or restarted */
    state_writer_free(&w);
    for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(job.dirty[i]);
    return ret;
}

/* ---- restoring ---- */

int snapshot_dir_paths(const char *dir, char *state, size_t slen, char *mem, size_t mlen)
{
    int a = snprintf(state, slen, "%s/%s", dir, SNAPSHOT_STATE_NAME);
    int b = snprintf(mem, mlen, "%s/%s", dir, SNAPSHOT_MEMORY_NAME);
    return a < 0 || (size_t)a >= slen || b < 0 || (size_t)b >= mlen ? -ENAMETOOLONG : 0;
}


int snapshot_apply(struct vm *vm, const struct snapshot *snap, char *err, size_t errlen)
{
    if (vm->ncpus != snap->ncpus || vm->nvirtio != snap->nvirtio) {
        snprintf(err, errlen, "the VM has %u vCPUs and %u virtio devices, the snapshot %u and "
                              "%u: give the same devices (--disk, --net, --vsock, --rng, --console "
                              "virtio) at restore",
                 vm->ncpus, vm->nvirtio, snap->ncpus, snap->nvirtio);
        return -EINVAL;
    }
    const char *what = NULL;
    err[0] = '\0';
    int ret = x86_vm_state_set_chips(vm->fd, &snap->vm, &what);
    for (unsigned i = 0; ret == 0 && i < vm->ncpus; i++) {
        ret = x86_vcpu_state_set(vm->vcpus[i].fd, &snap->vcpus[i], &what);
        if (ret < 0)
            snprintf(err, errlen, "vCPU %u: %s: %s", i, what, strerror(-ret));
    }
    if (ret < 0 && what && !err[0])
        snprintf(err, errlen, "%s: %s", what, strerror(-ret));
    if (ret < 0)
        return ret;
    if (pci_bus_restore(&vm->pci, &snap->pci) < 0) {
        snprintf(err, errlen, "the PCI devices differ from the snapshot's");
        return -ENODEV;
    }
    for (unsigned i = 0; i < vm->nvirtio; i++) {
        ret = virtio_pci_restore(vm->virtio[i], &snap->virtio[i], err, errlen);
        if (ret < 0)
            return ret;
    }
    serial8250_restore(&vm->com1, &snap->com1);
    mc146818_restore(&vm->rtc, &snap->rtc);
    i8042_restore(&vm->i8042, &snap->i8042);
    pm_restore(&vm->pm, &snap->pm);
    ret = x86_vm_state_set_clock(vm->fd, &snap->vm);
    if (ret < 0)
        snprintf(err, errlen, "KVM_SET_CLOCK: %s", strerror(-ret));
    return ret;
}
