#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/kvm.h>
#include <stdlib.h>

#include "arch/x86/cpuid.h"

#define LEAF1_ECX_VMX (1u << 5)
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR (1u << 31)

/* A KVM-like table with leaf 1 only, its ECX as KVM would report it. */
static struct kvm_cpuid2 *leaf1_table(uint32_t ecx)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = 1;
    c->entries[0].function = 1;
    c->entries[0].ecx = ecx;
    return c;
}

static void test_tsc_deadline_follows_kvm_capability(void **state)
{
    (void)state;
    /* Stock KVM leaves the bit clear in KVM_GET_SUPPORTED_CPUID. */
    struct kvm_cpuid2 *c = leaf1_table(0);
    cpuid_patch(c, 0, 1, true);
    assert_true(c->entries[0].ecx & LEAF1_ECX_TSC_DEADLINE);
    free(c);

    c = leaf1_table(0);
    cpuid_patch(c, 0, 1, false);
    assert_false(c->entries[0].ecx & LEAF1_ECX_TSC_DEADLINE);
    free(c);
}

static void test_leaf1_hypervisor_set_vmx_cleared(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = leaf1_table(LEAF1_ECX_VMX);
    cpuid_patch(c, 1, 2, false);
    assert_true(c->entries[0].ecx & LEAF1_ECX_HYPERVISOR);
    assert_false(c->entries[0].ecx & LEAF1_ECX_VMX);
    assert_int_equal(c->entries[0].ebx >> 24, 1); /* initial APIC ID */
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsc_deadline_follows_kvm_capability),
        cmocka_unit_test(test_leaf1_hypervisor_set_vmx_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
