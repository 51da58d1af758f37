/*
 * bare_kvm: the lower bound for exit cost. Runs a raw micro-guest (guest/micro, X.bin) with
 * the same entry state kiln gives it (README.md there) but no device model at all: the
 * KVM_RUN loop only copies COM1 output to stdout, answers the UART's line-status reads with
 * "transmitter empty", and stops at the ACPI power-off write. Every other exit returns to
 * the guest at once, so what bench/run.py measures here is KVM's own round trip.
 *
 *   bare_kvm GUEST.bin [MEMORY_MIB]
 *
 * Exits 0 on the guest's power-off, 1 on any other stop (KVM error, shutdown, bad image).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* kiln's raw-image layout (src/arch/x86/layout.h). */
#define GDT_ADDR 0x500
#define ZERO_PAGE 0x7000
#define PML4_ADDR 0x9000
#define PDPT_ADDR 0xa000
#define PD_ADDR 0xb000 /* four page directories: 4 GiB in 2 MiB pages */
#define STACK_TOP 0x8f000
#define IMAGE_BASE 0x100000

#define COM1_THR 0x3f8
#define COM1_LSR 0x3fd
#define LSR_TX_EMPTY 0x60
#define ACPI_PM1_CNT 0x600
#define CPUID_MAX_ENTRIES 256

struct bare_vm {
    int kvm, vm, vcpu;
    uint8_t *ram;
    size_t ram_size;
    struct kvm_run *run;
    char line[256];
    size_t line_len;
};

static int fail(const char *what)
{
    fprintf(stderr, "bare_kvm: %s: %s\n", what, strerror(errno));
    return -1;
}

static int load_image(struct bare_vm *b, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(path);
    size_t room = b->ram_size - IMAGE_BASE;
    ssize_t n = read(fd, b->ram + IMAGE_BASE, room);
    char extra;
    int too_big = n == (ssize_t)room && read(fd, &extra, 1) == 1;
    close(fd);
    if (n <= 0 || too_big) {
        fprintf(stderr, "bare_kvm: %s: empty, unreadable or larger than guest memory\n", path);
        return -1;
    }
    return 0;
}

/* GDT as kiln builds it: 0x08 32-bit code, 0x10 64-bit code, 0x18 data; identity page tables. */
static void build_tables(struct bare_vm *b)
{
    uint64_t gdt[4] = {0, 0x00cf9b000000ffffULL, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL};
    memcpy(b->ram + GDT_ADDR, gdt, sizeof(gdt));
    uint64_t *pml4 = (uint64_t *)(b->ram + PML4_ADDR);
    uint64_t *pdpt = (uint64_t *)(b->ram + PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(b->ram + PD_ADDR);
    pml4[0] = PDPT_ADDR | 0x3;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (PD_ADDR + i * 0x1000) | 0x3;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
}

static int setup_vcpu(struct bare_vm *b)
{
    struct {
        struct kvm_cpuid2 head;
        struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
    } cpuid = {.head.nent = CPUID_MAX_ENTRIES};
    if (ioctl(b->kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 ||
        ioctl(b->vcpu, KVM_SET_CPUID2, &cpuid) < 0)
        return fail("CPUID");

    struct kvm_sregs sregs;
    if (ioctl(b->vcpu, KVM_GET_SREGS, &sregs) < 0)
        return fail("KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 0x10,
                               .type = 11,
                               .present = 1,
                               .s = 1,
                               .l = 1,
                               .g = 1};
    struct kvm_segment data = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 0x18,
                               .type = 3,
                               .present = 1,
                               .s = 1,
                               .db = 1,
                               .g = 1};
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.cr0 = 0x80050033; /* PE MP ET NE WP PG */
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 = 0x20;   /* PAE */
    sregs.efer = 0x500; /* LME LMA */
    if (ioctl(b->vcpu, KVM_SET_SREGS, &sregs) < 0)
        return fail("KVM_SET_SREGS");

    struct kvm_regs regs = {.rip = IMAGE_BASE, .rsp = STACK_TOP, .rsi = ZERO_PAGE, .rflags = 2};
    if (ioctl(b->vcpu, KVM_SET_REGS, &regs) < 0)
        return fail("KVM_SET_REGS");
    return 0;
}

static int setup(struct bare_vm *b, const char *image, size_t mib)
{
    b->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (b->kvm < 0)
        return fail("/dev/kvm");
    b->vm = ioctl(b->kvm, KVM_CREATE_VM, 0);
    if (b->vm < 0)
        return fail("KVM_CREATE_VM");
    b->ram_size = mib << 20;
    b->ram = mmap(NULL, b->ram_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->ram == MAP_FAILED)
        return fail("guest memory");
    struct kvm_userspace_memory_region region = {.slot = 0,
                                                 .guest_phys_addr = 0,
                                                 .memory_size = b->ram_size,
                                                 .userspace_addr = (uintptr_t)b->ram};
    if (ioctl(b->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail("KVM_SET_USER_MEMORY_REGION");
    if (load_image(b, image) < 0)
        return -1;
    build_tables(b);

    b->vcpu = ioctl(b->vm, KVM_CREATE_VCPU, 0);
    if (b->vcpu < 0)
        return fail("KVM_CREATE_VCPU");
    int run_size = ioctl(b->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        return fail("KVM_GET_VCPU_MMAP_SIZE");
    b->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, b->vcpu, 0);
    if (b->run == MAP_FAILED)
        return fail("kvm_run");
    return setup_vcpu(b);
}

static void serial_out(struct bare_vm *b, uint8_t c)
{
    b->line[b->line_len++] = (char)c;
    if (c == '\n' || b->line_len == sizeof(b->line)) {
        if (write(STDOUT_FILENO, b->line, b->line_len) < 0) {
            /* a closed stdout only loses the guest's text; the run goes on */
        }
        b->line_len = 0;
    }
}

/* Returns 1 when the guest powered off, 0 to go on. */
static int handle_io(struct bare_vm *b)
{
    struct kvm_run *r = b->run;
    uint8_t *data = (uint8_t *)r + r->io.data_offset;
    if (r->io.direction == KVM_EXIT_IO_OUT) {
        if (r->io.port == ACPI_PM1_CNT)
            return 1;
        if (r->io.port == COM1_THR)
            for (uint32_t i = 0; i < r->io.count; i++)
                serial_out(b, data[i * r->io.size]);
        return 0;
    }
    memset(data, r->io.port == COM1_LSR ? LSR_TX_EMPTY : 0xff, (size_t)r->io.size * r->io.count);
    return 0;
}

static int run_loop(struct bare_vm *b)
{
    for (;;) {
        if (ioctl(b->vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return fail("KVM_RUN");
        }
        switch (b->run->exit_reason) {
        case KVM_EXIT_IO:
            if (handle_io(b))
                return 0;
            break;
        case KVM_EXIT_MMIO:
            if (!b->run->mmio.is_write)
                memset(b->run->mmio.data, 0xff, sizeof(b->run->mmio.data));
            break;
        default:
            fprintf(stderr, "bare_kvm: guest stopped: exit reason %u\n", b->run->exit_reason);
            return -1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bare_kvm GUEST.bin [MEMORY_MIB]\n");
        return 2;
    }
    unsigned long mib = argc == 3 ? strtoul(argv[2], NULL, 10) : 64;
    if (mib < 8 || mib > 3072) {
        fprintf(stderr, "bare_kvm: memory must be 8 to 3072 MiB\n");
        return 2;
    }
    struct bare_vm b = {.kvm = -1, .vm = -1, .vcpu = -1};
    if (setup(&b, argv[1], mib) < 0)
        return 1;
    return run_loop(&b) < 0 ? 1 : 0;
}
