/*
 * KVM's own state of an x86 VM and its vCPUs, for snapshots: read from KVM, written field
 * by field into a state section, read back with every field checked, and put into a fresh
 * VM. The structs hold KVM's types in memory only; the file never sees their layout.
 */
#ifndef KILN_X86_KVM_STATE_H
#define KILN_X86_KVM_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

struct state_reader;
struct state_writer;

#define X86_VCPU_STATE_VERSION 1
#define X86_VM_STATE_VERSION 1
#define X86_MAX_SAVED_MSRS 512

struct x86_vcpu_state {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint32_t xsave[1024]; /* the 4 KiB XSAVE area of struct kvm_xsave (which ends in a
                             flexible array, so it is not embedded here) */
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
    struct kvm_debugregs debugregs;
    uint32_t nmsrs;
    struct kvm_msr_entry msrs[X86_MAX_SAVED_MSRS];
};

struct x86_vm_state {
    uint64_t clock; /* kvmclock, ns */
    struct kvm_irqchip pic_master;
    struct kvm_irqchip pic_slave;
    struct kvm_irqchip ioapic;
    struct kvm_pit_state2 pit;
};

/*
 * The MSRs worth saving: KVM's index list, less those this KVM refuses to read back.
 * `indices` gets at most X86_MAX_SAVED_MSRS entries. Returns the count or -errno.
 */
int x86_msr_list(int kvm_fd, int vcpu_fd, uint32_t *indices, unsigned max);

/* vCPU: read from KVM (the vCPU must not be running), save, load (checked), put back. */
int x86_vcpu_state_get(int vcpu_fd, const uint32_t *msrs, unsigned nmsrs,
                       struct x86_vcpu_state *s);
void x86_vcpu_state_save(const struct x86_vcpu_state *s, struct state_writer *w);
int x86_vcpu_state_load(struct x86_vcpu_state *s, struct state_reader *r);
/* sregs first (modes), then regs, XCRs, LAPIC, debug registers, XSAVE, MSRs; events and MP state last. */
int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *s, const char **what);

/* VM: irqchip (PIC master/slave, IOAPIC), PIT; the clock is taken from the pause. */
int x86_vm_state_get(int vm_fd, uint64_t clock, struct x86_vm_state *s);
void x86_vm_state_save(const struct x86_vm_state *s, struct state_writer *w);
int x86_vm_state_load(struct x86_vm_state *s, struct state_reader *r);
/* Irqchip and PIT; before the vCPUs' LAPICs. */
int x86_vm_state_set_chips(int vm_fd, const struct x86_vm_state *s, const char **what);
/* The clock; last, just before the vCPUs run. */
int x86_vm_state_set_clock(int vm_fd, const struct x86_vm_state *s);

#endif
