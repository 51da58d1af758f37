#include "arch/x86/cpuid.h"

#include <cpuid.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/kvm.h"

#define CPUID_1_ECX_VMX (1u << 5)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_1_EDX_HTT (1u << 28)

/* x2APIC topology levels (leaf 0xb / 0x1f, ECX[15:8]). */
#define TOPO_LEVEL_SMT 1
#define TOPO_LEVEL_CORE 2

static unsigned bits_for(unsigned count)
{
    unsigned bits = 0;
    while ((1u << bits) < count)
        bits++;
    return bits;
}

static void cpuid_patch_topology_leaf(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
    /* One thread per core, all cores in one package: APIC ID = core number. */
    e->edx = index;
    switch (e->index) {
    case 0:
        e->eax = 0;
        e->ebx = 1;
        e->ecx = TOPO_LEVEL_SMT << 8;
        break;
    case 1:
        e->eax = bits_for(ncpus);
        e->ebx = ncpus;
        e->ecx = (TOPO_LEVEL_CORE << 8) | 1;
        break;
    default:
        e->eax = 0;
        e->ebx = 0;
        e->ecx = e->index;
        break;
    }
}

/*
 * The processor brand string (leaves 0x80000002-4): KVM reports these leaves empty, and
 * Linux then names the CPU by family and model only ("17/01"). Like QEMU's -cpu host, the
 * guest gets the host's.
 */
static void fill_brand_string(struct kvm_cpuid_entry2 *e)
{
    if (e->eax | e->ebx | e->ecx | e->edx)
        return;
    unsigned a, b, c, d;
    if (__get_cpuid(e->function, &a, &b, &c, &d)) {
        e->eax = a;
        e->ebx = b;
        e->ecx = c;
        e->edx = d;
    }
}

void cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned index, unsigned ncpus, bool tsc_deadline)
{
    for (unsigned i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 1:
            /* EBX: initial APIC ID in [31:24], logical processors per package in [23:16]. */
            e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xff) << 16);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            e->ecx &= ~CPUID_1_ECX_VMX; /* kiln offers no nested virtualization */
            /* One MSR write per timer event instead of the APIC timer's divide and count. */
            if (tsc_deadline)
                e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
            if (ncpus > 1)
                e->edx |= CPUID_1_EDX_HTT;
            break;
        case 4:
            /* Deterministic cache parameters: EAX[31:26] = cores per package - 1. */
            e->eax = (e->eax & 0x03ffffffu) | ((ncpus - 1) & 0x3f) << 26;
            break;
        case 0xb:
        case 0x1f:
            cpuid_patch_topology_leaf(e, index, ncpus);
            break;
        case 0x80000001:
            e->ecx &= ~CPUID_80000001_ECX_SVM;
            break;
        case 0x80000002:
        case 0x80000003:
        case 0x80000004:
            fill_brand_string(e);
            break;
        case 0x8000000a:
            /* SVM feature leaf: nothing to report without SVM. */
            e->eax = e->ebx = e->ecx = e->edx = 0;
            break;
        case 0x80000008:
            /* AMD: ECX[7:0] = cores - 1, ECX[15:12] = APIC ID bits for the core number. */
            e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xff) | (bits_for(ncpus) << 12);
            break;
        case 0x8000001e:
            /* AMD extended APIC ID and compute unit: one core per unit. */
            e->eax = index;
            e->ebx = index & 0xff;
            e->ecx = 0;
            break;
        default:
            break;
        }
    }
}

int cpuid_configure_vcpu(const struct kvm *kvm, int vcpu_fd, unsigned index, unsigned ncpus)
{
    size_t size = sizeof(*kvm->cpuid) + kvm->cpuid->nent * sizeof(kvm->cpuid->entries[0]);
    struct kvm_cpuid2 *c = malloc(size);
    if (!c)
        return -ENOMEM;
    memcpy(c, kvm->cpuid, size);
    cpuid_patch(c, index, ncpus, kvm->tsc_deadline);
    int ret = ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
    free(c);
    return ret;
}
