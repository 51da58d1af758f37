/*
 * The KVM system handle: /dev/kvm, its API version and the capabilities kiln relies on.
 * Opening checks everything up front so a missing feature is one clear message at start-up
 * rather than a failure in the middle of a boot.
 */
#ifndef KILN_KVM_H
#define KILN_KVM_H

#include <stdbool.h>
#include <stddef.h>

struct kvm_cpuid2;

struct kvm {
    int fd;
    size_t vcpu_mmap_size;    /* size of each vCPU's shared kvm_run area */
    unsigned max_vcpus;       /* KVM_CAP_MAX_VCPUS */
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, malloc'd */
    int nr_memslots;
    bool tsc_deadline; /* KVM_CAP_TSC_DEADLINE_TIMER: the in-kernel LAPIC has the mode */
};

#define KVM_DEVICE_PATH "/dev/kvm"

/* Opens `path` and checks it. Logs what is wrong and returns a negative errno on failure. */
int kvm_open(struct kvm *kvm, const char *path);
void kvm_close(struct kvm *kvm);

/* True if the CPU advertises hardware virtualization (vmx or svm in /proc/cpuinfo). */
int host_has_hw_virt(void);

#endif
