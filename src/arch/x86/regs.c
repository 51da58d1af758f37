#include "arch/x86/regs.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "hw/pm.h"
#include "mem/guest_mem.h"
#include "util.h"

#define PTE_PRESENT (1ULL << 0)
#define PTE_WRITE (1ULL << 1)
#define PTE_PS (1ULL << 7)

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE (1ULL << 11)
#define MTRR_TYPE_WRBACK 6ULL

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

/* GDT descriptors: flat 4 GiB segments. */
static const uint64_t boot_gdt[] = {
    0,                     /* null */
    0x00cf9b000000ffffULL, /* 0x08: 32-bit code, for PVH entry */
    0x00af9b000000ffffULL, /* 0x10: 64-bit code */
    0x00cf93000000ffffULL, /* 0x18: data */
};

/*
 * Real-mode code at the reset vector. There is no BIOS, but guests still jump here to
 * reboot: Linux does on hardware-reduced ACPI platforms, where it picks EFI, then "BIOS"
 * reboot (machine_real_restart). Write the ACPI reset value to the reset register, which
 * restarts the VM in kiln, and halt should that ever return.
 */
static const uint8_t reset_vector_stub[] = {
    0xb0,
    PM_RESET_VALUE, /* mov al, PM_RESET_VALUE */
    0xba,
    (PM_BASE + PM_RESET) & 0xff,
    (PM_BASE + PM_RESET) >> 8, /* mov dx, reset register */
    0xee,                      /* out dx, al */
    0xf4,                      /* 1: hlt */
    0xeb,
    0xfd, /* jmp 1b */
};

int x86_write_boot_tables(const struct guest_mem *mem)
{
    if (guest_mem_write(mem, X86_RESET_VECTOR, reset_vector_stub, sizeof(reset_vector_stub)) < 0)
        return -EFAULT;
    if (guest_mem_write(mem, X86_GDT_ADDR, boot_gdt, sizeof(boot_gdt)) < 0)
        return -EFAULT;
    uint64_t *pml4 = guest_mem_ptr(mem, X86_PML4_ADDR, 4096);
    uint64_t *pdpt = guest_mem_ptr(mem, X86_PDPT_ADDR, 4096);
    uint64_t *pd = guest_mem_ptr(mem, X86_PD_ADDR, 4 * 4096);
    if (!pml4 || !pdpt || !pd)
        return -EFAULT;
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = X86_PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (X86_PD_ADDR + i * 4096) | PTE_PRESENT | PTE_WRITE;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_PS;
    return 0;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
    return (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = code64 ? 0 : 1,
        .s = 1,
        .l = code64 ? 1 : 0,
        .g = 1,
    };
}

static void sregs_set_flat(struct kvm_sregs *s, const struct x86_entry *entry)
{
    bool long_mode = entry->mode == X86_ENTRY_LONG64;
    s->cs = long_mode ? flat_segment(X86_SEL_CODE64, 0xb, true)
                      : flat_segment(X86_SEL_CODE32, 0xb, false);
    s->ds = s->es = s->fs = s->gs = s->ss = flat_segment(X86_SEL_DATA, 0x3, false);
    s->gdt.base = X86_GDT_ADDR;
    s->gdt.limit = sizeof(boot_gdt) - 1;
    s->idt.base = 0;
    s->idt.limit = 0;
    /* A valid busy TSS and an LDT descriptor keep VM entry checks happy. */
    s->tr = (struct kvm_segment){.limit = 0xffff, .type = 0xb, .present = 1};
    s->ldt = (struct kvm_segment){.limit = 0xffff, .type = 0x2, .present = 1};
    if (long_mode) {
        s->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_AM |
                 X86_CR0_PG;
        s->cr3 = X86_PML4_ADDR;
        s->cr4 = X86_CR4_PAE;
        s->efer = X86_EFER_LME | X86_EFER_LMA;
    } else {
        /* PVH: protected mode, paging off (start_info.h's entry state). */
        s->cr0 = X86_CR0_PE | X86_CR0_ET;
        s->cr3 = 0;
        s->cr4 = 0;
        s->efer = 0;
    }
}

int x86_vcpu_set_entry(int vcpu_fd, const struct x86_entry *entry)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return -errno;
    sregs_set_flat(&sregs, entry);
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        return -errno;

    struct kvm_regs regs = {
        .rip = entry->rip,
        .rsi = entry->rsi,
        .rbx = entry->rbx,
        .rsp = entry->rsp,
        .rflags = 0x2, /* bit 1 is reserved-one; interrupts stay off */
    };
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        return -errno;

    struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
    if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return -errno;
    return 0;
}

static int x86_vcpu_set_msrs(int vcpu_fd)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } boot_msrs[] = {
        {MSR_IA32_SYSENTER_CS, 0},
        {MSR_IA32_SYSENTER_ESP, 0},
        {MSR_IA32_SYSENTER_EIP, 0},
        {MSR_STAR, 0},
        {MSR_CSTAR, 0},
        {MSR_KERNEL_GS_BASE, 0},
        {MSR_SYSCALL_MASK, 0},
        {MSR_LSTAR, 0},
        {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
        /* Firmware normally enables MTRRs with write-back as the default memory type. */
        {MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK},
    };
    const unsigned n = ARRAY_SIZE(boot_msrs);
    struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + n * sizeof(msrs->entries[0]));
    if (!msrs)
        return -ENOMEM;
    msrs->nmsrs = n;
    for (unsigned i = 0; i < n; i++) {
        msrs->entries[i].index = boot_msrs[i].index;
        msrs->entries[i].data = boot_msrs[i].value;
    }
    int done = ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
    free(msrs);
    if (done < 0)
        return -errno;
    return done == (int)n ? 0 : -EINVAL;
}

static void lapic_set_lvt_mode(struct kvm_lapic_state *lapic, unsigned reg, uint32_t mode)
{
    uint32_t v;
    memcpy(&v, &lapic->regs[reg], 4);
    v = (v & ~0x700u) | (mode << 8);
    memcpy(&lapic->regs[reg], &v, 4);
}

int x86_vcpu_init(int vcpu_fd)
{
    int ret = x86_vcpu_set_msrs(vcpu_fd);
    if (ret < 0)
        return ret;
    /* As firmware does: LINT0 takes the 8259's output (virtual wire), LINT1 is NMI. */
    struct kvm_lapic_state lapic;
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
        return -errno;
    lapic_set_lvt_mode(&lapic, APIC_LVT0, APIC_MODE_EXTINT);
    lapic_set_lvt_mode(&lapic, APIC_LVT1, APIC_MODE_NMI);
    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
        return -errno;
    return 0;
}
