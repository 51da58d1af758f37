#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cpuid.h>
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

/* KVM reports the brand string leaves empty: kiln passes the host's; a VMM-set value stays. */
static void test_brand_string_from_host(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = 4;
    c->entries[0].function = 0x80000002;
    c->entries[1].function = 0x80000003;
    c->entries[2].function = 0x80000001; /* not a brand leaf: left alone */
    c->entries[3] = (struct kvm_cpuid_entry2){.function = 0x80000004, .eax = 0x6e696b};
    cpuid_patch(c, 0, 1, false);
    unsigned a, b, cx, d;
    assert_true(__get_cpuid(0x80000002, &a, &b, &cx, &d));
    assert_int_equal(c->entries[0].eax, a);
    assert_int_equal(c->entries[0].ebx, b);
    assert_int_equal(c->entries[0].ecx, cx);
    assert_int_equal(c->entries[0].edx, d);
    assert_true(__get_cpuid(0x80000003, &a, &b, &cx, &d));
    assert_int_equal(c->entries[1].eax, a);
    assert_int_equal(c->entries[1].edx, d);
    assert_int_equal(c->entries[2].eax | c->entries[2].ebx | c->entries[2].edx, 0);
    assert_int_equal(c->entries[3].eax, 0x6e696b);
    assert_int_equal(c->entries[3].ebx, 0);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsc_deadline_follows_kvm_capability),
        cmocka_unit_test(test_leaf1_hypervisor_set_vmx_cleared),
        cmocka_unit_test(test_brand_string_from_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
