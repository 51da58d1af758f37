#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

struct kvm_required_cap {
    int cap;
    const char *name;
};

/* Everything kiln uses; checked once at start so the error names the missing piece. */
static const struct kvm_required_cap required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

static int kvm_load_cpuid(struct kvm *kvm)
{
    for (unsigned nent = 128; nent <= 4096; nent *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
        if (!c)
            return -ENOMEM;
        c->nent = nent;
        if (ioctl(kvm->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            kvm->cpuid = c;
            return 0;
        }
        int err = errno;
        free(c);
        if (err != E2BIG)
            return -err;
    }
    return -E2BIG;
}

int kvm_open(struct kvm *kvm, const char *path)
{
    memset(kvm, 0, sizeof(*kvm));
    kvm->fd = open(path, O_RDWR | O_CLOEXEC);
    if (kvm->fd < 0) {
        int err = errno;
        if (err == ENOENT)
            log_error("%s: No such file or directory (is the kvm module loaded?)", path);
        else if (err == EACCES || err == EPERM)
            log_error("%s: Permission denied (add yourself to the kvm group or run as root)", path);
        else
            log_error("%s: %s", path, strerror(err));
        return -err;
    }
    int ret = -ENOTSUP;
    int version = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        log_error("%s: KVM API version %d, kiln needs %d", path, version, KVM_API_VERSION);
        goto fail;
    }
    for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
        if (ioctl(kvm->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
            log_error("%s: this KVM lacks %s, which kiln requires", path, required_caps[i].name);
            goto fail;
        }
    }
    int mmap_size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < (int)sizeof(struct kvm_run)) {
        log_error("%s: bad vCPU mmap size %d", path, mmap_size);
        goto fail;
    }
    kvm->vcpu_mmap_size = (size_t)mmap_size;
    int max = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0)
        max = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    kvm->max_vcpus = max > 0 ? (unsigned)max : 1;
    kvm->nr_memslots = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    kvm->tsc_deadline = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    ret = kvm_load_cpuid(kvm);
    if (ret < 0) {
        log_error("%s: KVM_GET_SUPPORTED_CPUID: %s", path, strerror(-ret));
        goto fail;
    }
    return 0;
fail:
    kvm_close(kvm);
    return ret;
}

void kvm_close(struct kvm *kvm)
{
    if (kvm->fd > 0)
        close(kvm->fd);
    free(kvm->cpuid);
    memset(kvm, 0, sizeof(*kvm));
    kvm->fd = -1;
}

int host_has_hw_virt(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -errno;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = strstr(line, " vmx") || strstr(line, " svm");
        break;
    }
    fclose(f);
    return found;
}
