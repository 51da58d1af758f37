#include "vmm/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/regs.h"
#include "util.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

/* The signal that knocks a vCPU thread out of KVM_RUN; it only needs to interrupt. */
#define VCPU_KICK_SIGNAL SIGUSR1

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned index)
{
    memset(vcpu, 0, sizeof(*vcpu));
    vcpu->vm = vm;
    vcpu->index = index;
    vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, index);
    if (vcpu->fd < 0) {
        vcpu->fd = -1;
        return -errno;
    }
    void *run = mmap(NULL, vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (run == MAP_FAILED) {
        int err = -errno;
        vcpu_destroy(vcpu);
        return err;
    }
    vcpu->run = run;
    int ret = cpuid_configure_vcpu(&vm->kvm, vcpu->fd, index, vm->ncpus);
    if (ret == 0)
        ret = x86_vcpu_init(vcpu->fd);
    if (ret < 0)
        vcpu_destroy(vcpu);
    return ret;
}

void vcpu_destroy(struct vcpu *vcpu)
{
    if (vcpu->run)
        munmap(vcpu->run, vcpu->vm->kvm.vcpu_mmap_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    vcpu->run = NULL;
    vcpu->fd = -1;
}

static void vcpu_handle_io(struct vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    uint32_t size = run->io.size;
    uint64_t bytes = (uint64_t)size * run->io.count;
    /* The data area is in the shared page; KVM filled these fields, but check anyway. */
    if (size == 0 || size > 8 || run->io.data_offset > vcpu->vm->kvm.vcpu_mmap_size ||
        bytes > vcpu->vm->kvm.vcpu_mmap_size - run->io.data_offset)
        return;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < run->io.count; i++)
        vm_handle_pio(vcpu->vm, run->io.port, data + i * size, size, is_write);
}

static void vcpu_handle_system_event(struct vcpu *vcpu)
{
    switch (vcpu->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_request_stop(vcpu->vm, VM_STOP_POWEROFF);
        break;
    case KVM_SYSTEM_EVENT_RESET:
        vm_request_stop(vcpu->vm, VM_STOP_RESET);
        break;
    default:
        log_error("vCPU %u: guest reported a crash (system event %u)", vcpu->index,
                  vcpu->run->system_event.type);
        vm_request_stop(vcpu->vm, VM_STOP_FAILED);
        break;
    }
}

static void vcpu_fail(struct vcpu *vcpu, const char *what)
{
    log_error("vCPU %u: %s", vcpu->index, what);
    vcpu_dump_state(vcpu);
    vm_request_stop(vcpu->vm, VM_STOP_FAILED);
}

/* One short case per exit reason; device work happens behind the bus. */
static void vcpu_handle_exit(struct vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    char msg[128];
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        vcpu_handle_io(vcpu);
        break;
    case KVM_EXIT_MMIO:
        vm_handle_mmio(vcpu->vm, run->mmio.phys_addr, run->mmio.data,
                       run->mmio.len <= 8 ? run->mmio.len : 8, run->mmio.is_write);
        break;
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT: /* the in-kernel LAPIC handles HLT; nothing to do if one leaks out */
        break;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: real hardware resets, and so does kiln. */
        log_warn("vCPU %u: guest triple-faulted (a reset, as on real hardware); its state:",
                 vcpu->index);
        vcpu_dump_state(vcpu); /* the only clue to why, once the reset has run */
        vm_request_stop(vcpu->vm, VM_STOP_RESET);
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        vcpu_handle_system_event(vcpu);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(msg, sizeof(msg), "KVM internal error (suberror %u%s)", run->internal.suberror,
                 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": emulation failure"
                                                                        : "");
        vcpu_fail(vcpu, msg);
        break;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(msg, sizeof(msg), "VM entry failed (hardware reason 0x%llx)",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        vcpu_fail(vcpu, msg);
        break;
    default:
        snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u", run->exit_reason);
        vcpu_fail(vcpu, msg);
        break;
    }
}

/*
 * KVM_RUN with immediate_exit set finishes what the last exit left pending (the data of an
 * I/O or MMIO read) and returns at once with EINTR, without entering the guest.
 */
static void vcpu_complete_io(struct vcpu *vcpu)
{
    __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (ioctl(vcpu->fd, KVM_RUN, 0) == 0)
        vcpu_handle_exit(vcpu); /* not expected with immediate_exit; handle it all the same */
    __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

static void vcpu_kick_handler(int sig)
{
    (void)sig;
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *vcpu = arg;
    struct vm *vm = vcpu->vm;
    char name[16];
    snprintf(name, sizeof(name), "kiln-vcpu%u", vcpu->index);
    pthread_setname_np(pthread_self(), name);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (vm->confined) {
        /* Adds to the VMM filter this thread inherited; before the guest's first instruction. */
        int ret = seccomp_install(SECCOMP_THREAD_VCPU);
        if (ret < 0) {
            char msg[96];
            snprintf(msg, sizeof(msg), "installing its seccomp filter: %s", strerror(-ret));
            vcpu_fail(vcpu, msg);
            return NULL;
        }
        seccomp_test_trigger(SECCOMP_THREAD_VCPU);
    }

    vm_vcpu_running(vm, true);
    bool io_pending = false; /* the last exit's I/O completes at the next KVM_RUN */
    while (atomic_load(&vm->stop_reason) == VM_STOP_NONE) {
        if (atomic_load(&vm->paused)) {
            /* Park with nothing half done, so a paused VM's state is consistent. */
            if (io_pending)
                vcpu_complete_io(vcpu);
            io_pending = false;
            vm_vcpu_park_if_paused(vm, vcpu);
            continue;
        }
        if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                /* Kicks check their flag (stop, pause) at the loop's top, set before this. */
                __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
                io_pending = false;
                continue;
            }
            char msg[96];
            snprintf(msg, sizeof(msg), "KVM_RUN failed: %s", strerror(errno));
            vcpu_fail(vcpu, msg);
            break;
        }
        vcpu->exits++;
        vcpu_handle_exit(vcpu);
        io_pending = true;
    }
    vm_vcpu_running(vm, false);
    return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
    struct sigaction sa = {.sa_handler =
                               vcpu_kick_handler}; /* no SA_RESTART: KVM_RUN must return */
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
    int ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
    if (ret != 0)
        return -ret;
    vcpu->thread_started = true;
    return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
    if (!vcpu->thread_started || !vcpu->run)
        return;
    /* immediate_exit covers a kick that lands just before the thread enters KVM_RUN. */
    __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *vcpu)
{
    if (!vcpu->thread_started)
        return;
    pthread_join(vcpu->thread, NULL);
    vcpu->thread_started = false;
}

void vcpu_dump_state(struct vcpu *vcpu)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
        return;
    log_error("  rip %016llx rsp %016llx rflags %016llx", r.rip, r.rsp, r.rflags);
    log_error("  rax %016llx rbx %016llx rcx %016llx rdx %016llx", r.rax, r.rbx, r.rcx, r.rdx);
    log_error("  rsi %016llx rdi %016llx rbp %016llx", r.rsi, r.rdi, r.rbp);
    log_error("  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx", s.cr0, s.cr2, s.cr3,
              s.cr4, s.efer);
    log_error("  cs %04x (base %llx, l=%u db=%u) ss %04x gs.base %llx", s.cs.selector,
              s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.gs.base);
    log_error("  idt %llx/%x gdt %llx/%x tr %04x (base %llx)", s.idt.base, s.idt.limit,
              s.gdt.base, s.gdt.limit, s.tr.selector, s.tr.base);
}
