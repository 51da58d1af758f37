#include "arch/x86/kvm_state.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "snapshot/state_file.h"
#include "util.h"

/* Event flags kiln hands back to KVM; payload and triple-fault need opt-in capabilities. */
#define EVENT_FLAGS                                                                                \
    (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |                           \
     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM)

/* ---- MSR list ---- */

static bool msr_readable(int vcpu_fd, uint32_t index)
{
    /* struct kvm_msrs and its one entry, laid out as KVM expects (the header is 8 bytes). */
    uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8] = {0};
    struct kvm_msrs *one = (struct kvm_msrs *)buf;
    one->nmsrs = 1;
    one->entries[0].index = index;
    return ioctl(vcpu_fd, KVM_GET_MSRS, one) == 1;
}

/* KVM_GET_XSAVE / KVM_SET_XSAVE through a heap struct kvm_xsave (4 KiB region). */
static int xsave_io(int vcpu_fd, unsigned long req, uint32_t *region)
{
    struct kvm_xsave *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    _Static_assert(sizeof(x->region) == 4096, "kvm_xsave region is 4 KiB");
    if (req == KVM_SET_XSAVE)
        memcpy(x->region, region, sizeof(x->region));
    int ret = ioctl(vcpu_fd, req, x) < 0 ? -errno : 0;
    if (ret == 0 && req == KVM_GET_XSAVE)
        memcpy(region, x->region, sizeof(x->region));
    free(x);
    return ret;
}

int x86_msr_list(int kvm_fd, int vcpu_fd, uint32_t *indices, unsigned max)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return -errno;
    struct kvm_msr_list *list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
    if (!list)
        return -ENOMEM;
    list->nmsrs = probe.nmsrs;
    int n = 0;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        n = -errno;
        goto out;
    }
    for (uint32_t i = 0; i < list->nmsrs && (unsigned)n < max; i++)
        if (msr_readable(vcpu_fd, list->indices[i]))
            indices[n++] = list->indices[i];
out:
    free(list);
    return n;
}

/* ---- vCPU: KVM -> struct ---- */

static int get_msrs(int vcpu_fd, const uint32_t *msrs, unsigned n, struct x86_vcpu_state *s)
{
    struct kvm_msrs *req = calloc(1, sizeof(*req) + n * sizeof(struct kvm_msr_entry));
    if (!req)
        return -ENOMEM;
    req->nmsrs = n;
    for (unsigned i = 0; i < n; i++)
        req->entries[i].index = msrs[i];
    int got = ioctl(vcpu_fd, KVM_GET_MSRS, req);
    int ret = got < 0 ? -errno : (unsigned)got != n ? -EIO : 0;
    if (ret == 0) {
        s->nmsrs = n;
        memcpy(s->msrs, req->entries, n * sizeof(struct kvm_msr_entry));
    }
    free(req);
    return ret;
}

int x86_vcpu_state_get(int vcpu_fd, const uint32_t *msrs, unsigned nmsrs,
                       struct x86_vcpu_state *s)
{
    memset(s, 0, sizeof(*s));
    if (nmsrs > X86_MAX_SAVED_MSRS)
        return -E2BIG;
    if (ioctl(vcpu_fd, KVM_GET_REGS, &s->regs) < 0 ||
        ioctl(vcpu_fd, KVM_GET_SREGS, &s->sregs) < 0 ||
        ioctl(vcpu_fd, KVM_GET_XCRS, &s->xcrs) < 0 ||
        ioctl(vcpu_fd, KVM_GET_LAPIC, &s->lapic) < 0 ||
        ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events) < 0 ||
        ioctl(vcpu_fd, KVM_GET_MP_STATE, &s->mp_state) < 0 ||
        ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
        return -errno;
    return xsave_io(vcpu_fd, KVM_GET_XSAVE, s->xsave) ?: get_msrs(vcpu_fd, msrs, nmsrs, s);
}

/* ---- vCPU: struct <-> section ---- */

static void put_segment(struct state_writer *w, const struct kvm_segment *g)
{
    state_put_u64(w, g->base);
    state_put_u32(w, g->limit);
    state_put_u16(w, g->selector);
    uint8_t bits[] = {g->type, g->present, g->dpl, g->db, g->s, g->l, g->g, g->avl, g->unusable};
    state_put_bytes(w, bits, sizeof(bits));
}

static void get_segment(struct state_reader *r, struct kvm_segment *g)
{
    g->base = state_get_u64(r);
    g->limit = state_get_u32(r);
    g->selector = state_get_u16(r);
    g->type = state_get_u8(r);
    g->present = state_get_bool(r);
    g->dpl = state_get_u8(r);
    g->db = state_get_bool(r);
    g->s = state_get_bool(r);
    g->l = state_get_bool(r);
    g->g = state_get_bool(r);
    g->avl = state_get_bool(r);
    g->unusable = state_get_bool(r);
    if (g->type > 15 || g->dpl > 3)
        state_reader_fail(r);
}

static void put_dtable(struct state_writer *w, const struct kvm_dtable *t)
{
    state_put_u64(w, t->base);
    state_put_u16(w, t->limit);
}

static void get_dtable(struct state_reader *r, struct kvm_dtable *t)
{
    t->base = state_get_u64(r);
    t->limit = state_get_u16(r);
}

static const struct kvm_segment *sregs_segments(const struct kvm_sregs *s, unsigned i)
{
    const struct kvm_segment *segs[] = {&s->cs, &s->ds, &s->es, &s->fs,
                                        &s->gs, &s->ss, &s->tr, &s->ldt};
    return segs[i];
}

#define NSEGMENTS 8

static void put_sregs(struct state_writer *w, const struct kvm_sregs *s)
{
    for (unsigned i = 0; i < NSEGMENTS; i++)
        put_segment(w, sregs_segments(s, i));
    put_dtable(w, &s->gdt);
    put_dtable(w, &s->idt);
    uint64_t ctl[] = {s->cr0, s->cr2, s->cr3, s->cr4, s->cr8, s->efer, s->apic_base};
    for (size_t i = 0; i < ARRAY_SIZE(ctl); i++)
        state_put_u64(w, ctl[i]);
    for (size_t i = 0; i < ARRAY_SIZE(s->interrupt_bitmap); i++)
        state_put_u64(w, s->interrupt_bitmap[i]);
}

static void get_sregs(struct state_reader *r, struct kvm_sregs *s)
{
    for (unsigned i = 0; i < NSEGMENTS; i++)
        get_segment(r, (struct kvm_segment *)sregs_segments(s, i));
    get_dtable(r, &s->gdt);
    get_dtable(r, &s->idt);
    __u64 *ctl[] = {&s->cr0, &s->cr2, &s->cr3, &s->cr4, &s->cr8, &s->efer, &s->apic_base};
    for (size_t i = 0; i < ARRAY_SIZE(ctl); i++)
        *ctl[i] = state_get_u64(r);
    for (size_t i = 0; i < ARRAY_SIZE(s->interrupt_bitmap); i++)
        s->interrupt_bitmap[i] = state_get_u64(r);
    /* CR8 is a 4-bit TPR; APIC base bits 0-7 and 9 are reserved (SDM vol. 3 §10.4.4). */
    if (s->cr8 > 15 || (s->apic_base & 0x2ff))
        state_reader_fail(r);
}

static __u64 *regs_field(struct kvm_regs *g, unsigned i)
{
    __u64 *f[] = {&g->rax, &g->rbx, &g->rcx,
                     &g->rdx, &g->rsi, &g->rdi,
                     &g->rsp, &g->rbp, &g->r8,
                     &g->r9,  &g->r10, &g->r11,
                     &g->r12, &g->r13, &g->r14,
                     &g->r15, &g->rip, &g->rflags};
    return f[i];
}

#define NREGS 18

static void put_events(struct state_writer *w, const struct kvm_vcpu_events *e)
{
    uint8_t exc[] = {e->exception.injected, e->exception.nr, e->exception.has_error_code,
                     e->exception.pending};
    state_put_bytes(w, exc, sizeof(exc));
    state_put_u32(w, e->exception.error_code);
    uint8_t intr[] = {e->interrupt.injected, e->interrupt.nr, e->interrupt.soft,
                      e->interrupt.shadow, e->nmi.injected, e->nmi.pending, e->nmi.masked};
    state_put_bytes(w, intr, sizeof(intr));
    state_put_u32(w, e->sipi_vector);
    state_put_u32(w, e->flags & EVENT_FLAGS);
    uint8_t smi[] = {e->smi.smm, e->smi.pending, e->smi.smm_inside_nmi, e->smi.latched_init};
    state_put_bytes(w, smi, sizeof(smi));
}

static void get_events(struct state_reader *r, struct kvm_vcpu_events *e)
{
    e->exception.injected = state_get_bool(r);
    e->exception.nr = state_get_u8(r);
    e->exception.has_error_code = state_get_bool(r);
    e->exception.pending = state_get_bool(r);
    e->exception.error_code = state_get_u32(r);
    e->interrupt.injected = state_get_bool(r);
    e->interrupt.nr = state_get_u8(r);
    e->interrupt.soft = state_get_bool(r);
    e->interrupt.shadow = state_get_u8(r);
    e->nmi.injected = state_get_bool(r);
    e->nmi.pending = state_get_bool(r);
    e->nmi.masked = state_get_bool(r);
    e->sipi_vector = state_get_u32(r);
    e->flags = state_get_u32(r);
    e->smi.smm = state_get_bool(r);
    e->smi.pending = state_get_bool(r);
    e->smi.smm_inside_nmi = state_get_bool(r);
    e->smi.latched_init = state_get_bool(r);
    /* Exception vectors are 0-31; the shadow is STI/MOV-SS bits; SIPI vectors are 8-bit. */
    if (e->exception.nr > 31 || e->interrupt.shadow > 3 || e->sipi_vector > 0xff ||
        (e->flags & ~EVENT_FLAGS))
        state_reader_fail(r);
}

void x86_vcpu_state_save(const struct x86_vcpu_state *s, struct state_writer *w)
{
    struct kvm_regs regs = s->regs;
    for (unsigned i = 0; i < NREGS; i++)
        state_put_u64(w, *regs_field(&regs, i));
    put_sregs(w, &s->sregs);
    for (size_t i = 0; i < ARRAY_SIZE(s->xsave); i++)
        state_put_u32(w, s->xsave[i]);
    uint32_t nxcrs = s->xcrs.nr_xcrs <= KVM_MAX_XCRS ? s->xcrs.nr_xcrs : 0;
    state_put_u32(w, nxcrs);
    for (uint32_t i = 0; i < nxcrs; i++) {
        state_put_u32(w, s->xcrs.xcrs[i].xcr);
        state_put_u64(w, s->xcrs.xcrs[i].value);
    }
    state_put_bytes(w, s->lapic.regs, sizeof(s->lapic.regs));
    put_events(w, &s->events);
    state_put_u32(w, s->mp_state.mp_state);
    for (unsigned i = 0; i < 4; i++)
        state_put_u64(w, s->debugregs.db[i]);
    state_put_u64(w, s->debugregs.dr6);
    state_put_u64(w, s->debugregs.dr7);
    state_put_u32(w, s->nmsrs);
    for (uint32_t i = 0; i < s->nmsrs; i++) {
        state_put_u32(w, s->msrs[i].index);
        state_put_u64(w, s->msrs[i].data);
    }
}

int x86_vcpu_state_load(struct x86_vcpu_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < NREGS; i++)
        *regs_field(&s->regs, i) = state_get_u64(r);
    get_sregs(r, &s->sregs);
    for (size_t i = 0; i < ARRAY_SIZE(s->xsave); i++)
        s->xsave[i] = state_get_u32(r);
    s->xcrs.nr_xcrs = state_get_u32(r);
    if (s->xcrs.nr_xcrs > KVM_MAX_XCRS)
        return -EBADMSG;
    for (uint32_t i = 0; i < s->xcrs.nr_xcrs; i++) {
        s->xcrs.xcrs[i].xcr = state_get_u32(r);
        s->xcrs.xcrs[i].value = state_get_u64(r);
    }
    state_get_bytes(r, s->lapic.regs, sizeof(s->lapic.regs));
    get_events(r, &s->events);
    s->mp_state.mp_state = state_get_u32(r);
    if (s->mp_state.mp_state > KVM_MP_STATE_SUSPENDED)
        state_reader_fail(r);
    for (unsigned i = 0; i < 4; i++)
        s->debugregs.db[i] = state_get_u64(r);
    s->debugregs.dr6 = state_get_u64(r);
    s->debugregs.dr7 = state_get_u64(r);
    s->nmsrs = state_get_u32(r);
    if (s->nmsrs > X86_MAX_SAVED_MSRS)
        return -EBADMSG;
    for (uint32_t i = 0; i < s->nmsrs; i++) {
        s->msrs[i].index = state_get_u32(r);
        s->msrs[i].data = state_get_u64(r);
    }
    return state_reader_done(r);
}

/* ---- vCPU: struct -> KVM ---- */

/*
 * KVM_SET_MSRS stops at the first MSR it refuses and returns how many it set. An MSR this
 * KVM will not take back (a host-specific one) is skipped with a note, not fatal.
 */
static int set_msrs(int vcpu_fd, const struct x86_vcpu_state *s)
{
    struct kvm_msrs *req = calloc(1, sizeof(*req) + s->nmsrs * sizeof(struct kvm_msr_entry));
    if (!req)
        return -ENOMEM;
    uint32_t done = 0;
    int ret = 0;
    while (done < s->nmsrs) {
        req->nmsrs = s->nmsrs - done;
        memcpy(req->entries, s->msrs + done, req->nmsrs * sizeof(struct kvm_msr_entry));
        int n = ioctl(vcpu_fd, KVM_SET_MSRS, req);
        if (n < 0) {
            ret = -errno;
            break;
        }
        done += (uint32_t)n;
        if (done < s->nmsrs) {
            log_debug("restore: KVM refused MSR 0x%x; skipped", s->msrs[done].index);
            done++;
        }
    }
    free(req);
    return ret;
}

int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *s, const char **what)
{
    struct kvm_vcpu_events events = s->events;
    events.flags &= EVENT_FLAGS;
    struct {
        unsigned long req;
        const void *arg;
        const char *name;
    } steps[] = {
        {KVM_SET_SREGS, &s->sregs, "KVM_SET_SREGS"},
        {KVM_SET_REGS, &s->regs, "KVM_SET_REGS"},
        {KVM_SET_XCRS, &s->xcrs, "KVM_SET_XCRS"},
        {KVM_SET_LAPIC, &s->lapic, "KVM_SET_LAPIC"},
        {KVM_SET_DEBUGREGS, &s->debugregs, "KVM_SET_DEBUGREGS"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        if (ioctl(vcpu_fd, steps[i].req, steps[i].arg) < 0) {
            *what = steps[i].name;
            return -errno;
        }
    }
    int ret = xsave_io(vcpu_fd, KVM_SET_XSAVE, (uint32_t *)s->xsave);
    if (ret < 0) {
        *what = "KVM_SET_XSAVE";
        return ret;
    }
    ret = set_msrs(vcpu_fd, s);
    if (ret < 0) {
        *what = "KVM_SET_MSRS";
        return ret;
    }
    /* Events and the MP state last: they may refer to the LAPIC and to MSR-held modes. */
    if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events) < 0) {
        *what = "KVM_SET_VCPU_EVENTS";
        return -errno;
    }
    if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &s->mp_state) < 0) {
        *what = "KVM_SET_MP_STATE";
        return -errno;
    }
    return 0;
}

/* ---- VM ---- */

int x86_vm_state_get(int vm_fd, uint64_t clock, struct x86_vm_state *s)
{
    memset(s, 0, sizeof(*s));
    s->clock = clock;
    s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    if (ioctl(vm_fd, KVM_GET_IRQCHIP, &s->pic_master) < 0 ||
        ioctl(vm_fd, KVM_GET_IRQCHIP, &s->pic_slave) < 0 ||
        ioctl(vm_fd, KVM_GET_IRQCHIP, &s->ioapic) < 0 || ioctl(vm_fd, KVM_GET_PIT2, &s->pit) < 0)
        return -errno;
    return 0;
}

static void put_pic(struct state_writer *w, const struct kvm_pic_state *p)
{
    uint8_t f[] = {p->last_irr,    p->irr,          p->imr,
                   p->isr,         p->priority_add, p->irq_base,
                   p->read_reg_select, p->poll,     p->special_mask,
                   p->init_state,  p->auto_eoi,     p->rotate_on_auto_eoi,
                   p->special_fully_nested_mode, p->init4, p->elcr,
                   p->elcr_mask};
    state_put_bytes(w, f, sizeof(f));
}

static void get_pic(struct state_reader *r, struct kvm_pic_state *p)
{
    p->last_irr = state_get_u8(r);
    p->irr = state_get_u8(r);
    p->imr = state_get_u8(r);
    p->isr = state_get_u8(r);
    p->priority_add = state_get_u8(r);
    p->irq_base = state_get_u8(r);
    p->read_reg_select = state_get_bool(r);
    p->poll = state_get_bool(r);
    p->special_mask = state_get_bool(r);
    p->init_state = state_get_u8(r);
    p->auto_eoi = state_get_bool(r);
    p->rotate_on_auto_eoi = state_get_bool(r);
    p->special_fully_nested_mode = state_get_bool(r);
    p->init4 = state_get_bool(r);
    p->elcr = state_get_u8(r);
    p->elcr_mask = state_get_u8(r);
    /* 8259A: priority rotation is a line number, ICW sequencing has four steps. */
    if (p->priority_add > 7 || p->init_state > 3 || (p->irq_base & 7))
        state_reader_fail(r);
}

static void put_ioapic(struct state_writer *w, const struct kvm_ioapic_state *a)
{
    state_put_u64(w, a->base_address);
    state_put_u32(w, a->ioregsel);
    state_put_u32(w, a->id);
    state_put_u32(w, a->irr);
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        state_put_u64(w, a->redirtbl[i].bits);
}

static void get_ioapic(struct state_reader *r, struct kvm_ioapic_state *a)
{
    a->base_address = state_get_u64(r);
    a->ioregsel = state_get_u32(r);
    a->id = state_get_u32(r);
    a->irr = state_get_u32(r);
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        a->redirtbl[i].bits = state_get_u64(r);
    if (a->base_address != X86_IOAPIC_ADDR || a->ioregsel > 0xff ||
        (a->irr >> KVM_IOAPIC_NUM_PINS))
        state_reader_fail(r);
}

#define PIT_MODE_UNSET 0xff

static void put_pit(struct state_writer *w, const struct kvm_pit_state2 *p)
{
    for (unsigned i = 0; i < 3; i++) {
        const struct kvm_pit_channel_state *c = &p->channels[i];
        state_put_u32(w, c->count);
        state_put_u16(w, c->latched_count);
        uint8_t f[] = {c->count_latched, c->status_latched, c->status, c->read_state,
                       c->write_state,   c->write_latch,    c->rw_mode, c->mode,
                       c->bcd,           c->gate};
        state_put_bytes(w, f, sizeof(f));
    }
    state_put_u32(w, p->flags);
}

static void get_pit(struct state_reader *r, struct kvm_pit_state2 *p)
{
    for (unsigned i = 0; i < 3; i++) {
        struct kvm_pit_channel_state *c = &p->channels[i];
        c->count = state_get_u32(r);
        c->latched_count = state_get_u16(r);
        c->count_latched = state_get_u8(r);
        c->status_latched = state_get_bool(r);
        c->status = state_get_u8(r);
        c->read_state = state_get_u8(r);
        c->write_state = state_get_u8(r);
        c->write_latch = state_get_u8(r);
        c->rw_mode = state_get_u8(r);
        c->mode = state_get_u8(r);
        c->bcd = state_get_bool(r);
        c->gate = state_get_bool(r);
        /*
         * 8254: a 16-bit counter (0 means 65536), modes 0-5 (KVM's 0xff: never
         * programmed), access modes 1-3, latch states as KVM's RW_STATE_* (1-4).
         */
        if (c->count > 0x10000 || (c->mode > 5 && c->mode != PIT_MODE_UNSET) || c->rw_mode > 3 || c->read_state > 4 ||
            c->write_state > 4 || c->count_latched > 4)
            state_reader_fail(r);
    }
    p->flags = state_get_u32(r);
    if (p->flags & ~(uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON))
        state_reader_fail(r);
}

void x86_vm_state_save(const struct x86_vm_state *s, struct state_writer *w)
{
    state_put_u64(w, s->clock);
    put_pic(w, &s->pic_master.chip.pic);
    put_pic(w, &s->pic_slave.chip.pic);
    put_ioapic(w, &s->ioapic.chip.ioapic);
    put_pit(w, &s->pit);
}

int x86_vm_state_load(struct x86_vm_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->clock = state_get_u64(r);
    s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    get_pic(r, &s->pic_master.chip.pic);
    get_pic(r, &s->pic_slave.chip.pic);
    get_ioapic(r, &s->ioapic.chip.ioapic);
    get_pit(r, &s->pit);
    return state_reader_done(r);
}

int x86_vm_state_set_chips(int vm_fd, const struct x86_vm_state *s, const char **what)
{
    const struct kvm_irqchip *chips[] = {&s->pic_master, &s->pic_slave, &s->ioapic};
    for (size_t i = 0; i < ARRAY_SIZE(chips); i++) {
        if (ioctl(vm_fd, KVM_SET_IRQCHIP, chips[i]) < 0) {
            *what = "KVM_SET_IRQCHIP";
            return -errno;
        }
    }
    if (ioctl(vm_fd, KVM_SET_PIT2, &s->pit) < 0) {
        *what = "KVM_SET_PIT2";
        return -errno;
    }
    return 0;
}

int x86_vm_state_set_clock(int vm_fd, const struct x86_vm_state *s)
{
    struct kvm_clock_data clock = {.clock = s->clock};
    return ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0 ? -errno : 0;
}
