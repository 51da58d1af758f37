/*
 * vm_request_stop: which reason wins when several threads ask at once. The first one does,
 * except that a pending reset gives way to a stop that ends the VM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vm.h"

static int setup(void **state)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    pthread_mutex_init(&vm->run_lock, NULL);
    pthread_cond_init(&vm->run_cond, NULL);
    vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(vm->stop_eventfd >= 0);
    *state = vm;
    return 0;
}

static int teardown(void **state)
{
    struct vm *vm = *state;
    close(vm->stop_eventfd);
    pthread_cond_destroy(&vm->run_cond);
    pthread_mutex_destroy(&vm->run_lock);
    free(vm);
    return 0;
}

/* How many requests woke the main loop. */
static uint64_t wakeups(struct vm *vm)
{
    uint64_t n = 0;
    if (read(vm->stop_eventfd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return n;
}

static void first_reason_wins(void **state)
{
    struct vm *vm = *state;
    vm_request_stop(vm, VM_STOP_POWEROFF);
    vm_request_stop(vm, VM_STOP_QUIT);
    vm_request_stop(vm, VM_STOP_RESET);
    assert_int_equal(atomic_load(&vm->stop_reason), VM_STOP_POWEROFF);
    assert_int_equal(wakeups(vm), 1);
}

/* Ctrl-A x pressed while the guest reboots (the harness does so on a triple fault). */
static void quit_overrides_a_pending_reset(void **state)
{
    struct vm *vm = *state;
    vm_request_stop(vm, VM_STOP_RESET);
    vm_request_stop(vm, VM_STOP_RESET);
    assert_int_equal(atomic_load(&vm->stop_reason), VM_STOP_RESET);
    vm_request_stop(vm, VM_STOP_QUIT);
    assert_int_equal(atomic_load(&vm->stop_reason), VM_STOP_QUIT);
    vm_request_stop(vm, VM_STOP_FAILED);
    assert_int_equal(atomic_load(&vm->stop_reason), VM_STOP_QUIT);
    assert_int_equal(wakeups(vm), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(first_reason_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(quit_overrides_a_pending_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
