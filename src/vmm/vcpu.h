/* One virtual CPU: its KVM fd, the shared kvm_run area, and the thread that runs it. */
#ifndef KILN_VCPU_H
#define KILN_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct kvm_run;

struct vcpu {
    struct vm *vm;
    unsigned index; /* also its APIC ID */
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    uint64_t exits; /* statistics */
};

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned index);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_start(struct vcpu *vcpu);
/* Makes a running vCPU leave KVM_RUN soon (it then sees the VM's stop request). */
void vcpu_kick(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);
/* Prints registers, for post-mortems of a failed guest. */
void vcpu_dump_state(struct vcpu *vcpu);

#endif
