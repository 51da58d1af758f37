/* The CPUID a vCPU reports: what KVM supports, plus its own APIC ID and the VM's topology. */
#ifndef KILN_CPUID_H
#define KILN_CPUID_H

#include <stdbool.h>

struct kvm;
struct kvm_cpuid2;

/*
 * Adjusts a copy of KVM's supported CPUID for vCPU `index` of `ncpus` (one core each).
 * `tsc_deadline`: KVM's LAPIC has TSC-deadline mode, which KVM leaves for the VMM to announce.
 */
void cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned index, unsigned ncpus, bool tsc_deadline);

/* Builds and installs the CPUID of one vCPU. Returns 0 or a negative errno. */
int cpuid_configure_vcpu(const struct kvm *kvm, int vcpu_fd, unsigned index, unsigned ncpus);

#endif
