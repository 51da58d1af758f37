#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "console/console_sock.h"
#include "mem/dirty.h"
#include "snapshot/snapshot.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "virtio/virtio.h"
#include "vmm/seccomp.h"

/* Where KVM keeps the real-mode TSS and identity map on Intel; inside the hole, above devices. */
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define KVM_TSS_ADDR 0xfffbd000ULL

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
    int expected = VM_STOP_NONE;
    while (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason)) {
        /* The first reason wins, but a pending reset gives way to one that ends the VM: a
         * Ctrl-A x or SIGTERM that lands while the guest reboots must not be lost. */
        if (expected != VM_STOP_RESET || reason == VM_STOP_RESET)
            return;
    }
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    /* Parked vCPUs and a waiting vm_pause() must see the stop too. */
    pthread_mutex_lock(&vm->run_lock);
    pthread_cond_broadcast(&vm->run_cond);
    pthread_mutex_unlock(&vm->run_lock);
    uint64_t one = 1;
    if (write(vm->stop_eventfd, &one, sizeof(one)) < 0) {
        /* The counter cannot overflow from one write; nothing useful to do otherwise. */
    }
}

/* ---- pause and resume ---- */

static bool vm_stopping(struct vm *vm)
{
    return atomic_load(&vm->stop_reason) != VM_STOP_NONE;
}

void vm_vcpu_running(struct vm *vm, bool running)
{
    pthread_mutex_lock(&vm->run_lock);
    if (running)
        vm->vcpus_running++;
    else
        vm->vcpus_running--;
    pthread_cond_broadcast(&vm->run_cond);
    pthread_mutex_unlock(&vm->run_lock);
}

void vm_vcpu_park_if_paused(struct vm *vm, struct vcpu *vcpu)
{
    if (!atomic_load(&vm->paused))
        return;
    pthread_mutex_lock(&vm->run_lock);
    vm->vcpus_parked++;
    pthread_cond_broadcast(&vm->run_cond);
    while (atomic_load(&vm->paused) && !vm_stopping(vm))
        pthread_cond_wait(&vm->run_cond, &vm->run_lock);
    vm->vcpus_parked--;
    pthread_mutex_unlock(&vm->run_lock);
    (void)vcpu;
}

/*
 * The guest's kvmclock is frozen while paused (as QEMU does for a stopped VM), so a guest
 * does not see the pause as lost time and its watchdogs do not fire. Its TSC keeps running:
 * this KVM has no TSC scaling/offset control to stop it.
 */
static void vm_save_clock(struct vm *vm)
{
    struct kvm_clock_data clock = {0};
    vm->paused_clock.saved = false;
    if (vm->fd < 0 || ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
        return;
    vm->paused_clock = (struct vm_paused_clock){true, vm->boots, clock.clock};
}

static void vm_restore_clock(struct vm *vm)
{
    if (!vm->paused_clock.saved || vm->fd < 0 || vm->paused_clock.boot != vm->boots)
        return;
    struct kvm_clock_data clock = {.clock = vm->paused_clock.clock};
    if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
        log_warn("resuming: KVM_SET_CLOCK: %s", strerror(errno));
    vm->paused_clock.saved = false;
}

int vm_pause(struct vm *vm)
{
    pthread_mutex_lock(&vm->run_lock);
    /*
     * Kicks happen under run_lock and only while no stop is under way: a vCPU thread takes
     * run_lock on its way out, so none is joined or destroyed during the loop.
     */
    if (!atomic_load(&vm->paused) && !vm_stopping(vm)) {
        atomic_store(&vm->paused, true);
        for (unsigned i = 0; i < vm->ncpus; i++)
            vcpu_kick(&vm->vcpus[i]);
    }
    while (vm->vcpus_parked < vm->vcpus_running && !vm_stopping(vm))
        pthread_cond_wait(&vm->run_cond, &vm->run_lock);
    int ret = vm_stopping(vm) ? -ESHUTDOWN : 0;
    if (ret == 0 && !vm->paused_clock.saved)
        vm_save_clock(vm);
    pthread_mutex_unlock(&vm->run_lock);
    return ret;
}

int vm_resume(struct vm *vm)
{
    pthread_mutex_lock(&vm->run_lock);
    if (atomic_load(&vm->paused)) {
        vm_restore_clock(vm);
        atomic_store(&vm->paused, false);
        pthread_cond_broadcast(&vm->run_cond);
    }
    pthread_mutex_unlock(&vm->run_lock);
    return 0;
}

int vm_send_ctrl_alt_del(struct vm *vm)
{
    pthread_mutex_lock(&vm->run_lock);
    int ret = vm_stopping(vm) ? -ESHUTDOWN : i8042_send_ctrl_alt_del(&vm->i8042);
    pthread_mutex_unlock(&vm->run_lock);
    return ret;
}

bool vm_is_paused(struct vm *vm)
{
    return atomic_load(&vm->paused);
}

static void vm_log_unhandled(struct vm *vm, const char *bus, uint64_t addr, uint32_t len,
                             bool is_write)
{
    /* Checked first: without -vv the rate limiter would only count, then warn about
     * suppressing messages that were never going to print, and cost every exit a clock read. */
    if (log_debug_enabled() && ratelimit_allow(&vm->unhandled_log))
        log_debug("guest %s of %u bytes at unclaimed %s address 0x%llx (ignored)",
                  is_write ? "write" : "read", len, bus, (unsigned long long)addr);
}

void vm_handle_pio(struct vm *vm, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
    if (!bus_dispatch(&vm->pio_bus, port, data, len, is_write)) {
        __atomic_add_fetch(&vm->unhandled_pio, 1, __ATOMIC_RELAXED);
        vm_log_unhandled(vm, "port", port, len, is_write);
    }
}

void vm_handle_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
    if (!bus_dispatch(&vm->mmio_bus, addr, data, len, is_write)) {
        __atomic_add_fetch(&vm->unhandled_mmio, 1, __ATOMIC_RELAXED);
        vm_log_unhandled(vm, "MMIO", addr, len, is_write);
    }
}

/* irq_line backend: ISA and IOAPIC lines of the in-kernel irqchip. */
static void vm_set_irq_level(void *ctx, unsigned gsi, bool level)
{
    struct vm *vm = ctx;
    struct kvm_irq_level irq = {.irq = gsi, .level = level};
    if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0 && ratelimit_allow(&vm->unhandled_log))
        log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

static void vm_on_poweroff(void *opaque)
{
    vm_request_stop(opaque, VM_STOP_POWEROFF);
}

static void vm_on_reset(void *opaque)
{
    vm_request_stop(opaque, VM_STOP_RESET);
}

void vm_console_rx_ready(struct vm *vm)
{
    uint64_t one = 1;
    if (write(vm->rx_ready_fd, &one, sizeof(one)) < 0) {
        /* eventfd full cannot happen with one-increments; a missed wake-up only delays input */
    }
}

static void vm_on_uart_rx_ready(void *opaque)
{
    vm_console_rx_ready(opaque);
}

static size_t vm_uart_receive(void *opaque, const uint8_t *buf, size_t len)
{
    return serial8250_receive(opaque, buf, len);
}

/* With --console virtio, COM1 still works but only the console log sees it. */
static void vm_uart_log_only(void *opaque, const uint8_t *buf, size_t len)
{
    struct console *con = opaque;
    if (con->log_fd >= 0 && write(con->log_fd, buf, len) < 0) {
        /* the log is best effort */
    }
}

static time_t host_time(void)
{
    return time(NULL);
}

/* A restored VM logs dirty pages from the start: a diff can refer to what it came from. */
static void vm_restored_base(struct vm *vm)
{
    struct vm_snapshot_base *b = &vm->snapshot_base;
    vm->dirty_log = true;
    b->id = vm->config->restore->id;
    b->valid = realpath(vm->config->restore_state_path, b->state_path) &&
               realpath(vm->config->restore_mem_path, b->mem_path);
}

/* Devices that keep their guest-visible state across resets are built once, here. */
static void vm_init_devices(struct vm *vm)
{
    struct irq_line com1_irq = {vm_set_irq_level, vm, SERIAL8250_COM1_IRQ};
    serial8250_init(&vm->com1, &com1_irq);
    vm->com1.output = vm->config->console == CONSOLE_VIRTIO ? vm_uart_log_only : console_output;
    vm->com1.output_opaque = &vm->console;
    vm->com1.rx_ready = vm_on_uart_rx_ready;
    vm->com1.rx_ready_opaque = vm;
    mc146818_init(&vm->rtc, host_time);
    i8042_init(&vm->i8042, vm_on_reset, vm);
    struct irq_line kbd_irq = {vm_set_irq_level, vm, I8042_KBD_IRQ};
    i8042_set_irq(&vm->i8042, &kbd_irq);
    pci_bus_init(&vm->pci);
    pci_bus_set_mmio_base(&vm->pci, X86_PCI_MMIO_START);
    pm_init(&vm->pm, vm_on_poweroff, vm_on_reset, vm);
}

static void vm_destroy_devices(struct vm *vm)
{
    serial8250_destroy(&vm->com1);
    mc146818_destroy(&vm->rtc);
    i8042_destroy(&vm->i8042);
    pci_bus_destroy(&vm->pci);
    pm_destroy(&vm->pm);
}

static int vm_register_devices(struct vm *vm)
{
    int ret = 0;
    ret = ret
              ?: bus_register(&vm->pio_bus, SERIAL8250_COM1_BASE, SERIAL8250_NR_PORTS, "com1",
                              serial8250_io, &vm->com1);
    ret = ret
              ?: bus_register(&vm->pio_bus, MC146818_BASE, MC146818_NR_PORTS, "rtc", mc146818_io,
                              &vm->rtc);
    ret = ret
              ?: bus_register(&vm->pio_bus, I8042_DATA_PORT, 1, "i8042-data", i8042_data_io,
                              &vm->i8042);
    ret =
        ret ?: bus_register(&vm->pio_bus, I8042_CMD_PORT, 1, "i8042-cmd", i8042_cmd_io, &vm->i8042);
    ret = ret
              ?: bus_register(&vm->pio_bus, PCI_CONFIG_ADDRESS_PORT, 4, "pci-address",
                              pci_config_address_io, &vm->pci);
    ret = ret
              ?: bus_register(&vm->pio_bus, PCI_CONFIG_DATA_PORT, 4, "pci-data", pci_config_data_io,
                              &vm->pci);
    ret = ret ?: bus_register(&vm->pio_bus, PM_BASE, PM_NR_PORTS, "acpi-pm", pm_io, &vm->pm);
    ret = ret
              ?: bus_register(&vm->mmio_bus, X86_PCI_MMIO_START,
                              X86_PCI_MMIO_END - X86_PCI_MMIO_START + 1, "pci-mmio", pci_mmio_io,
                              &vm->pci);
    return ret;
}

/* ---- console input: host terminal -> UART, with Ctrl-A commands filtered out ---- */

static void vm_feed_console(struct vm *vm)
{
    struct console *con = &vm->console;
    size_t done = vm->console_receive(vm->console_receive_opaque, con->pending, con->pending_len);
    memmove(con->pending, con->pending + done, con->pending_len - done);
    con->pending_len -= done;
    /*
     * Backpressure: stop reading the terminal only when the backlog is nearly full, so a
     * guest that takes no input still cannot keep Ctrl-A x from being seen.
     */
    bool full = con->pending_len > CONSOLE_PENDING_MAX - CONSOLE_READ_CHUNK;
    if (con->sock)
        console_sock_pause_input(con->sock, full);
    else if (!con->input_closed)
        event_loop_modify(&vm->loop, con->in_fd, full ? 0 : EPOLLIN);
}

/* console_sock_sink: client bytes join the same backlog as terminal input. */
static size_t vm_console_sock_room(void *opaque)
{
    struct vm *vm = opaque;
    return CONSOLE_PENDING_MAX - vm->console.pending_len;
}

static void vm_console_sock_input(void *opaque, const uint8_t *buf, size_t len)
{
    struct vm *vm = opaque;
    struct console *con = &vm->console;
    if (len > CONSOLE_PENDING_MAX - con->pending_len)
        len = CONSOLE_PENDING_MAX - con->pending_len; /* the socket asked room() first */
    memcpy(con->pending + con->pending_len, buf, len);
    con->pending_len += len;
    vm_feed_console(vm);
}

static void vm_on_console_input(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    struct console *con = &vm->console;
    uint8_t buf[CONSOLE_READ_CHUNK];
    if (con->pending_len > CONSOLE_PENDING_MAX - sizeof(buf))
        return; /* no room to filter into; rx_ready resumes reading */
    ssize_t n = read(con->in_fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        /* End of input: the guest keeps running, as with a terminal left alone. */
        con->input_closed = true;
        event_loop_modify(&vm->loop, con->in_fd, 0);
        return;
    }
    enum console_action action;
    size_t len =
        console_filter_input(con, buf, (size_t)n, con->pending + con->pending_len, &action);
    con->pending_len += len;
    if (action == CONSOLE_ACTION_QUIT) {
        vm_request_stop(vm, VM_STOP_QUIT);
        return;
    }
    if (action == CONSOLE_ACTION_HELP)
        console_print_help(con);
    if (action == CONSOLE_ACTION_POWER_BUTTON)
        vm_power_button(vm);
    vm_feed_console(vm);
    (void)events;
}

static void vm_on_rx_ready(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t count;
    if (read(vm->rx_ready_fd, &count, sizeof(count)) < 0)
        return;
    if (vm->console.pending_len)
        vm_feed_console(vm);
    (void)events;
}

void vm_power_button(struct vm *vm)
{
    if (write(vm->power_button_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
        /* cannot fail with one-increments */
    }
}

/* The GED's interrupt is edge-triggered (its _CRS says so): one pulse is one press. */
static void vm_on_power_button(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t count;
    (void)events;
    if (read(vm->power_button_fd, &count, sizeof(count)) < 0)
        return;
    log_verbose("power button pressed");
    vm_set_irq_level(vm, PM_POWER_BUTTON_GSI, true);
    vm_set_irq_level(vm, PM_POWER_BUTTON_GSI, false);
}

static void vm_on_signal(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    struct signalfd_siginfo si;
    if (read(vm->signal_fd, &si, sizeof(si)) != sizeof(si))
        return;
    log_info("received signal %u; stopping the VM", si.ssi_signo);
    vm_request_stop(vm, VM_STOP_QUIT);
    (void)events;
}

static void vm_on_stop(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t count;
    if (read(vm->stop_eventfd, &count, sizeof(count)) < 0) {
        /* spurious wake-up; vm_run checks stop_reason */
    }
    (void)events;
}

static int vm_init_event_loop(struct vm *vm)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Block these (and the vCPU kick signal) here; threads inherit the mask. */
    sigset_t blocked = set;
    sigaddset(&blocked, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    signal(SIGPIPE, SIG_IGN);

    vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->rx_ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->power_button_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->signal_fd < 0 || vm->stop_eventfd < 0 || vm->rx_ready_fd < 0 ||
        vm->power_button_fd < 0)
        return -errno;
    int ret = event_loop_init(&vm->loop);
    ret = ret ?: event_loop_add(&vm->loop, vm->signal_fd, EPOLLIN, vm_on_signal, vm);
    ret = ret ?: event_loop_add(&vm->loop, vm->stop_eventfd, EPOLLIN, vm_on_stop, vm);
    ret = ret ?: event_loop_add(&vm->loop, vm->rx_ready_fd, EPOLLIN, vm_on_rx_ready, vm);
    ret = ret ?: event_loop_add(&vm->loop, vm->power_button_fd, EPOLLIN, vm_on_power_button, vm);
    if (ret < 0)
        return ret;
    /* epoll refuses regular files and /dev/null: such input has nothing to wait for. */
    if (vm->console.in_fd < 0 ||
        event_loop_add(&vm->loop, vm->console.in_fd, EPOLLIN, vm_on_console_input, vm) < 0)
        vm->console.input_closed = true;
    return 0;
}

int vm_create(struct vm *vm, const struct vm_config *config, struct kvm *kvm,
              const struct boot_images *images)
{
    memset(vm, 0, sizeof(*vm));
    vm->config = config;
    vm->images = images;
    vm->kvm = *kvm;
    kvm->fd = -1;
    kvm->cpuid = NULL;
    vm->fd = -1;
    vm->signal_fd = vm->stop_eventfd = vm->rx_ready_fd = vm->power_button_fd = -1;
    vm->loop.epfd = -1;
    vm->ncpus = config->cpus;
    vm->unhandled_log = (struct ratelimit)RATELIMIT_INIT(5, 10);
    vm->start_ns = monotonic_ns();
    pthread_mutex_init(&vm->run_lock, NULL);
    pthread_cond_init(&vm->run_cond, NULL);
    bus_init(&vm->pio_bus, "pio");
    bus_init(&vm->mmio_bus, "mmio");

    vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
    if (!vm->vcpus)
        return -ENOMEM;
    for (unsigned i = 0; i < vm->ncpus; i++)
        vm->vcpus[i].fd = -1;
    /* With --console-sock the terminal is not touched: no raw mode, stdin may be /dev/null. */
    bool term = !config->console_sock;
    int ret = console_init(&vm->console, term ? STDIN_FILENO : -1, term ? STDOUT_FILENO : -1,
                       config->console_log);
    if (ret < 0) {
        log_error("console log '%s': %s", config->console_log, strerror(-ret));
        return ret;
    }
    vm_init_devices(vm);
    /* After the console and devices exist, so that vm_destroy() can undo a failure here. */
    if (config->restore && config->incoming_mem) {
        vm->mem = *config->incoming_mem; /* received by a migration: the VM's own now */
        memset(config->incoming_mem, 0, sizeof(*config->incoming_mem));
    } else if (config->restore) {
        char err[256];
        ret = snapshot_map_memory(config->restore, config->restore_mem_path, &vm->mem, err,
                                  sizeof(err));
        if (ret < 0) {
            log_error("restore: %s", err);
            return ret == -ENOMEM ? ret : -EBADMSG;
        }
        vm_restored_base(vm);
        /* kiln's own log too, from now on: devices write before the first diff. */
        ret = guest_mem_dirty_start(&vm->mem);
        if (ret < 0)
            return ret;
    } else {
        ret = guest_mem_alloc(&vm->mem, config->memory, X86_PCI_HOLE_START, X86_HIGH_RAM_START);
        if (ret < 0)
            return ret;
    }
    vm->next_bar = (uint32_t)X86_PCI_MMIO_START;
    vm->console_receive = vm_uart_receive;
    vm->console_receive_opaque = &vm->com1;
    ret = vm_register_devices(vm);
    if (ret == 0)
        ret = vm_init_event_loop(vm);
    return ret;
}

int vm_add_virtio(struct vm *vm, struct virtio_device *vdev)
{
    if (vm->nvirtio >= VM_MAX_VIRTIO_DEVICES ||
        vm->next_bar + VIRTIO_PCI_BAR_SIZE - 1 > X86_PCI_MMIO_END)
        return -ENOSPC;
    int ret = virtio_pci_init(vdev, &vm->mem, &vm->loop, vm->next_bar);
    if (ret < 0)
        return ret;
    vm->next_bar += VIRTIO_PCI_BAR_SIZE;
    vm->virtio[vm->nvirtio++] = vdev;
    return 0;
}

static int vm_add_rng(struct vm *vm)
{
    struct virtio_rng *rng = calloc(1, sizeof(*rng));
    if (!rng)
        return -ENOMEM;
    virtio_rng_init(rng);
    int ret = vm_add_virtio(vm, &rng->vdev);
    if (ret < 0)
        free(rng);
    return ret;
}

static int vm_add_console_sock(struct vm *vm)
{
    const struct console_sock_sink sink = {vm_console_sock_room, vm_console_sock_input, vm};
    int ret = console_attach_sock(&vm->console, vm->config->console_sock, &vm->loop, &sink);
    if (ret == -EADDRINUSE)
        log_error("console socket '%s': in use (another process listens there, or it is "
                  "not a socket)",
                  vm->config->console_sock);
    else if (ret < 0)
        log_error("console socket '%s': %s", vm->config->console_sock, strerror(-ret));
    return ret;
}

int vm_add_devices(struct vm *vm)
{
    const struct vm_config *cfg = vm->config;
    int ret = 0;
    if (cfg->console_sock)
        ret = vm_add_console_sock(vm);
    for (unsigned i = 0; ret == 0 && i < cfg->ndisks; i++)
        ret = virtio_blk_create(vm, &cfg->disks[i]);
    for (unsigned i = 0; ret == 0 && i < cfg->nnets; i++)
        ret = virtio_net_create(vm, &cfg->nets[i], i);
    if (ret == 0 && cfg->vsock.enabled)
        ret = virtio_vsock_create(vm, &cfg->vsock);
    if (ret == 0 && cfg->rng)
        ret = vm_add_rng(vm);
    if (ret == 0 && cfg->console == CONSOLE_VIRTIO)
        ret = virtio_console_create(vm);
    return ret;
}

static int vm_set_memory_slots(struct vm *vm)
{
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        const struct guest_region *r = &vm->mem.regions[i];
        struct kvm_userspace_memory_region slot = {
            .slot = i,
            .flags = vm->dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->hva,
        };
        if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
            return -errno;
    }
    return 0;
}

int vm_dirty_log_start(struct vm *vm)
{
    int ret = guest_mem_dirty_start(&vm->mem);
    if (ret < 0)
        return ret;
    if (!vm->dirty_log) {
        vm->dirty_log = true;
        ret = vm_set_memory_slots(vm); /* a slot that starts logging starts clean */
        if (ret < 0)
            vm->dirty_log = false;
        return ret;
    }
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        uint64_t *bitmap = calloc(guest_dirty_words(vm->mem.regions[i].size), sizeof(uint64_t));
        if (!bitmap)
            return -ENOMEM;
        ret = vm_dirty_log_collect(vm, i, bitmap);
        free(bitmap);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int vm_dirty_log_collect(struct vm *vm, unsigned region, uint64_t *bitmap)
{
    /* KVM_GET_DIRTY_LOG overwrites its buffer; the caller's bits must survive. */
    size_t words = guest_dirty_words(vm->mem.regions[region].size);
    uint64_t *kvm_log = calloc(words, sizeof(uint64_t));
    if (!kvm_log)
        return -ENOMEM;
    struct kvm_dirty_log log = {.slot = region, .dirty_bitmap = kvm_log};
    int ret = ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
    for (size_t w = 0; ret == 0 && w < words; w++)
        bitmap[w] |= kvm_log[w];
    free(kvm_log);
    if (ret == 0)
        guest_mem_dirty_take(&vm->mem, region, bitmap);
    return ret;
}

static int vm_setup_kvm(struct vm *vm)
{
    int fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
    if (fd < 0)
        return -errno;
    pthread_mutex_lock(&vm->run_lock); /* vm_pause/vm_resume read vm->fd */
    vm->fd = fd;
    pthread_mutex_unlock(&vm->run_lock);
    if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){KVM_IDENTITY_MAP_ADDR}) < 0 ||
        ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
        return -errno;
    int ret = vm_set_memory_slots(vm);
    if (ret < 0)
        return ret;
    if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return -errno;
    struct kvm_pit_config pit = {.flags = 0};
    if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
        return -errno;
    ret = irq_routing_init(&vm->routing, vm->fd);
    if (ret < 0)
        return ret;
    struct irq_line intx = {vm_set_irq_level, vm, 0};
    for (unsigned i = 0; i < vm->nvirtio; i++) {
        ret = virtio_pci_attach(vm->virtio[i], vm->fd, &vm->pci, &vm->routing, &intx);
        if (ret < 0)
            return ret;
    }
    pthread_mutex_lock(&vm->run_lock); /* vm_pause() may be reading the vCPUs */
    for (unsigned i = 0; ret == 0 && i < vm->ncpus; i++)
        ret = vcpu_create(vm, &vm->vcpus[i], i);
    pthread_mutex_unlock(&vm->run_lock);
    return ret;
}

static int vm_load_guest(struct vm *vm)
{
    struct acpi_params acpi = {
        .ncpus = vm->ncpus,
        .pm_base = PM_BASE,
        .ioapic_addr = (uint32_t)X86_IOAPIC_ADDR,
        .lapic_addr = (uint32_t)X86_LAPIC_ADDR,
        .pci_mmio_start = (uint32_t)X86_PCI_MMIO_START,
        .pci_mmio_end = (uint32_t)X86_PCI_MMIO_END,
        .power_button_gsi = PM_POWER_BUTTON_GSI,
    };
    void *acpi_buf = guest_mem_ptr(&vm->mem, X86_ACPI_ADDR, X86_ACPI_SIZE);
    if (!acpi_buf || acpi_build(acpi_buf, X86_ACPI_SIZE, X86_ACPI_ADDR, &acpi) < 0)
        return -EFAULT;
    int ret = x86_write_boot_tables(&vm->mem);
    if (ret < 0)
        return ret;
    struct boot_images img = *vm->images;
    img.rsdp_addr = X86_ACPI_ADDR;
    struct x86_entry entry;
    struct boot_error err = {{0}};
    ret = x86_boot_load(&vm->mem, &img, &entry, &err);
    if (ret < 0) {
        log_error("kernel '%s': %s", vm->config->kernel_path, err.msg);
        return ret;
    }
    return x86_vcpu_set_entry(vm->vcpus[0].fd, &entry);
}

/* The first boot of a VM made from a snapshot continues the snapshot instead. */
static bool vm_restoring(const struct vm *vm)
{
    return vm->config->restore && vm->boots == 0;
}

static int vm_restore(struct vm *vm)
{
    char err[256];
    int ret = snapshot_apply(vm, vm->config->restore, err, sizeof(err));
    if (ret < 0) {
        log_error("restore: %s", err);
        return -EBADMSG;
    }
    return 0;
}

static void vm_teardown_kvm(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_join(&vm->vcpus[i]);
    pthread_mutex_lock(&vm->run_lock); /* vm_pause() may be reading the vCPUs */
    for (unsigned i = 0; i < vm->ncpus; i++)
        if (vm->vcpus[i].run || vm->vcpus[i].fd >= 0)
            vcpu_destroy(&vm->vcpus[i]);
    pthread_mutex_unlock(&vm->run_lock);
    for (unsigned i = 0; i < vm->nvirtio; i++)
        virtio_pci_detach(vm->virtio[i]);
    irq_routing_destroy(&vm->routing);
    pthread_mutex_lock(&vm->run_lock);
    if (vm->fd >= 0)
        close(vm->fd);
    vm->fd = -1;
    pthread_mutex_unlock(&vm->run_lock);
}

/* A reset: what RAM held is gone (fresh zero pages), devices return to power-on state. */
static void vm_reset(struct vm *vm)
{
    for (unsigned i = 0; i < vm->mem.nregions; i++)
        madvise(vm->mem.regions[i].hva, vm->mem.regions[i].size, MADV_DONTNEED);
    struct mc146818_state rtc = vm->rtc.state; /* battery-backed: survives a reset */
    pthread_mutex_lock(&vm->run_lock); /* vm_send_ctrl_alt_del() may use the i8042 */
    vm_destroy_devices(vm);
    vm_init_devices(vm);
    pthread_mutex_unlock(&vm->run_lock);
    vm->rtc.state = rtc;
    int expected = VM_STOP_RESET; /* a stop that came meanwhile stays */
    atomic_compare_exchange_strong(&vm->stop_reason, &expected, VM_STOP_NONE);
}

/*
 * The main thread's seccomp filter goes on once, after everything that needs files, sockets
 * or new mappings is set up and before the guest's first instruction; it outlives resets, so
 * it allows what rebuilding the KVM VM takes. It covers this thread only (no TSYNC): the API
 * thread has its own already, vCPU threads started from here on inherit it.
 */
static int vm_confine(struct vm *vm)
{
    if (!vm->config->seccomp || vm->confined)
        return 0;
    int ret = seccomp_prepare();
    ret = ret ?: seccomp_install(SECCOMP_THREAD_VMM);
    if (ret < 0) {
        log_error("installing the seccomp filters: %s", strerror(-ret));
        return ret;
    }
    vm->confined = true;
    log_debug("seccomp: filters on (vmm %u, vcpu %u, worker %u, api %u system calls)",
              seccomp_allowed_count(SECCOMP_THREAD_VMM), seccomp_allowed_count(SECCOMP_THREAD_VCPU),
              seccomp_allowed_count(SECCOMP_THREAD_WORKER),
              seccomp_allowed_count(SECCOMP_THREAD_API));
    seccomp_test_trigger(SECCOMP_THREAD_VMM);
    return 0;
}

static int vm_boot(struct vm *vm)
{
    int ret = vm_setup_kvm(vm);
    if (ret < 0) {
        log_error("creating the VM: %s", strerror(-ret));
        return ret;
    }
    ret = vm_restoring(vm) ? vm_restore(vm) : vm_load_guest(vm);
    if (ret < 0)
        return ret;
    console_enter_raw(&vm->console);
    ret = vm_confine(vm);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&vm->run_lock);
    vm->boots++; /* vm_resume reads it */
    if (vm->boots == 1 && vm->config->restore && vm->config->restore_paused) {
        /* Restored but not resumed: the vCPUs park at once, the clock waits for resume. */
        atomic_store(&vm->paused, true);
        vm->paused_clock =
            (struct vm_paused_clock){true, vm->boots, vm->config->restore->vm.clock};
    }
    for (unsigned i = 0; ret == 0 && i < vm->ncpus; i++) {
        ret = vcpu_start(&vm->vcpus[i]);
        if (ret < 0)
            log_error("starting vCPU %u: %s", i, strerror(-ret));
    }
    pthread_mutex_unlock(&vm->run_lock);
    if (ret < 0) {
        vm_request_stop(vm, VM_STOP_FAILED);
        return 0;
    }
    if (vm->on_boot)
        vm->on_boot(vm, vm->on_boot_opaque);
    return 0;
}

int vm_run(struct vm *vm, enum vm_stop_reason *reason)
{
    for (;;) {
        int ret = vm_boot(vm);
        if (ret < 0) {
            vm_teardown_kvm(vm);
            return ret;
        }
        while (atomic_load(&vm->stop_reason) == VM_STOP_NONE)
            event_loop_run_once(&vm->loop, -1);
        vm_teardown_kvm(vm);
        *reason = atomic_load(&vm->stop_reason);
        if (*reason != VM_STOP_RESET || vm->config->no_reboot)
            break;
        if (!vm->images) {
            log_info("guest reset: a VM restored from a snapshot has no kernel to boot again; "
                     "exiting");
            break;
        }
        log_debug("guest reset: rebooting");
        vm->snapshot_base.valid = false; /* RAM starts over: no diff against it */
        vm_reset(vm);
        *reason = atomic_load(&vm->stop_reason);
        if (*reason != VM_STOP_NONE)
            break; /* quit while rebooting */
    }
    console_restore(&vm->console);
    return 0;
}

void vm_destroy(struct vm *vm)
{
    vm_teardown_kvm(vm);
    console_close(&vm->console);
    event_loop_destroy(&vm->loop);
    int fds[] = {vm->signal_fd, vm->stop_eventfd, vm->rx_ready_fd, vm->power_button_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    vm_destroy_devices(vm);
    for (unsigned i = 0; i < vm->nvirtio; i++) {
        struct virtio_device *vdev = vm->virtio[i];
        virtio_pci_destroy(vdev);
        if (vdev->ops->destroy)
            vdev->ops->destroy(vdev);
        else
            free(vdev->opaque);
    }
    bus_destroy(&vm->pio_bus);
    bus_destroy(&vm->mmio_bus);
    free(vm->vcpus);
    vm->vcpus = NULL;
    guest_mem_free(&vm->mem);
    kvm_close(&vm->kvm);
    pthread_cond_destroy(&vm->run_cond);
    pthread_mutex_destroy(&vm->run_lock);
}
