/* `kiln run`: boot one VM in the foreground. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/bzimage.h"
#include "arch/x86/pvh.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/run_options.h"
#include "cli/run_vm.h"
#include "jail/jail.h"
#include "util.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

#define MAX_KERNEL_SIZE (512 * MiB)
#define MAX_INITRD_SIZE (2 * GiB)

/* Paths of the default guest, filled when --kernel is absent. */
struct default_guest {
    char kernel[4096];
    char initrd[4096];
};

static int default_guest_dir(char *buf, size_t len)
{
    const char *cache = getenv("KILN_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (cache && *cache)
        n = snprintf(buf, len, "%s/guest", cache);
    else if (xdg && *xdg)
        n = snprintf(buf, len, "%s/kiln/guest", xdg);
    else
        n = snprintf(buf, len, "%s/.cache/kiln/guest", home ? home : "/root");
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static int use_default_guest(struct vm_config *cfg, struct default_guest *dg)
{
    char dir[3800];
    if (default_guest_dir(dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    snprintf(dg->kernel, sizeof(dg->kernel), "%s/vmlinuz", dir);
    snprintf(dg->initrd, sizeof(dg->initrd), "%s/initramfs.cpio.gz", dir);
    FILE *f = fopen(dg->kernel, "rb");
    if (!f) {
        log_error("no --kernel given and the default guest is not built (no %s); "
                  "build it with guest/build-guest.sh",
                  dg->kernel);
        return -ENOENT;
    }
    fclose(f);
    cfg->kernel_path = dg->kernel;
    if (!cfg->initrd_path)
        cfg->initrd_path = dg->initrd;
    return 0;
}

static int load_file(const char *what, const char *path, size_t max, uint8_t **data, size_t *size)
{
    int ret = read_file(path, data, size, max);
    if (ret == -EFBIG)
        log_error("%s '%s': larger than %zu MiB", what, path, (size_t)(max / MiB));
    else if (ret == -EINVAL)
        log_error("%s '%s': not a regular file", what, path);
    else if (ret < 0)
        log_error("%s '%s': %s", what, path, strerror(-ret));
    else if (*size == 0) {
        log_error("%s '%s': file is empty", what, path);
        free(*data);
        *data = NULL;
        ret = -ENOEXEC;
    }
    return ret;
}

/* Checks the kernel before KVM is touched, so a bad file is reported as such. */
static int validate_kernel(const struct vm_config *cfg, const struct boot_images *img)
{
    enum kernel_format format = img->format;
    if (format == KERNEL_FORMAT_AUTO)
        format = x86_detect_kernel_format(img->kernel, img->kernel_size);
    struct boot_error err = {{0}};
    int ret = 0;
    if (format == KERNEL_FORMAT_BZIMAGE) {
        struct bzimage_info info;
        ret = bzimage_parse(img->kernel, img->kernel_size, &info, &err);
    } else if (format == KERNEL_FORMAT_ELF) {
        struct elf_kernel_info info;
        ret = elf_kernel_parse(img->kernel, img->kernel_size, &info, &err);
    } else if (format == KERNEL_FORMAT_AUTO) {
        snprintf(err.msg, sizeof(err.msg),
                 "not a kernel kiln can boot (neither a bzImage nor an "
                 "ELF vmlinux; use --kernel-format raw for a flat "
                 "binary)");
        ret = -ENOEXEC;
    }
    if (ret < 0)
        log_error("kernel '%s': %s", cfg->kernel_path, err.msg);
    return ret;
}

static int check_host_memory(const struct vm_config *cfg)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        return 0;
    uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
    if (cfg->memory > host) {
        log_error("--memory %lluM: more than this host's %lluM of RAM and swap",
                  (unsigned long long)(cfg->memory >> 20), (unsigned long long)(host >> 20));
        return -ENOMEM;
    }
    return 0;
}

static int exit_for_stop(enum vm_stop_reason reason)
{
    return reason == VM_STOP_FAILED ? KILN_EXIT_VM_FAILED : KILN_EXIT_OK;
}

static void warn_if_no_hw_virt(const struct boot_images *img)
{
    if (!img || img->format == KERNEL_FORMAT_RAW || host_has_hw_virt() != 0)
        return;
    log_warn("this CPU reports no hardware virtualization (vmx/svm): /dev/kvm is likely "
             "emulated and may not run a full Linux kernel");
}

/* With --jail: device paths resolve inside the jail, and no privilege outlives the setup. */
static int add_devices(struct vm *vm, const struct jail *jail)
{
    int ret = jail ? jail_chdir(jail) : 0;
    if (ret < 0)
        return KILN_EXIT_JAIL;
    ret = vm_add_devices(vm);
    if (ret < 0)
        return ret == -ENOMEM ? KILN_EXIT_RESOURCES : KILN_EXIT_DEVICE;
    /* The filter compiler must have loaded libseccomp before pivot_root takes its root away
     * too (it shares the mount namespace). */
    if (jail && vm->config->seccomp && (ret = seccomp_prepare()) < 0) {
        log_error("compiling the seccomp filters: %s", strerror(-ret));
        return KILN_EXIT_VM_FAILED;
    }
    if (jail && jail_enter(jail) < 0)
        return KILN_EXIT_JAIL;
    return KILN_EXIT_OK;
}

/* Builds the VM and opens its devices (then enters the jail, if any). Returns the status. */
static int run_build(struct vm_config *cfg, struct boot_images *img, const struct jail *jail,
                     struct vm **out)
{
    /* The filters compile beside the set-up below, while libseccomp can still be loaded
     * (not in a jail yet); vm_run collects them. */
    int ret = cfg->seccomp ? seccomp_compile_start() : 0;
    if (ret < 0) {
        log_error("compiling the seccomp filters: %s", strerror(-ret));
        return KILN_EXIT_VM_FAILED;
    }
    struct kvm kvm;
    if (kvm_open(&kvm, cfg->kvm_path) < 0)
        return KILN_EXIT_NO_KVM;
    if (cfg->cpus > kvm.max_vcpus) {
        log_error("--cpus %u: this host's KVM allows at most %u", cfg->cpus, kvm.max_vcpus);
        kvm_close(&kvm);
        return KILN_EXIT_USAGE;
    }
    warn_if_no_hw_virt(img);
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        kvm_close(&kvm);
        return KILN_EXIT_RESOURCES;
    }
    int status;
    ret = vm_create(vm, cfg, &kvm, img);
    if (ret < 0) {
        if (ret == -ENOMEM)
            log_error("cannot allocate %lluM of guest memory",
                      (unsigned long long)(cfg->memory >> 20));
        else if (ret != -EBADMSG) /* an unusable snapshot was reported already */
            log_error("setting up the VM: %s", strerror(-ret));
        status = ret == -ENOMEM    ? KILN_EXIT_RESOURCES
                 : ret == -EBADMSG ? KILN_EXIT_BAD_IMAGE
                                   : KILN_EXIT_VM_FAILED;
    } else if ((status = add_devices(vm, jail)) == KILN_EXIT_OK) {
        *out = vm;
        return status;
    }
    vm_destroy(vm);
    free(vm);
    return status;
}

/* Runs a built VM until it stops, then destroys it. Returns the exit status. */
static int run_built(struct vm *vm, const struct run_hooks *hooks)
{
    enum vm_stop_reason reason = VM_STOP_NONE;
    if (hooks) {
        vm->on_boot = hooks->booted;
        vm->on_boot_opaque = hooks->opaque;
    }
    int status_fd = peak_rss_open();
    int ret = vm_run(vm, &reason);
    if (hooks && hooks->finished)
        hooks->finished(vm, hooks->opaque);
    int status;
    if (ret == -ENOEXEC || ret == -ENOMEM || ret == -E2BIG || ret == -EBADMSG)
        status = KILN_EXIT_BAD_IMAGE;
    else if (ret < 0)
        status = KILN_EXIT_VM_FAILED;
    else
        status = exit_for_stop(reason);
    log_verbose("VM ran %.3f s, booted %u time(s); %llu unclaimed port and %llu MMIO "
                "accesses; peak RSS %llu KiB",
                (double)(monotonic_ns() - vm->start_ns) / 1e9, vm->boots,
                (unsigned long long)vm->unhandled_pio, (unsigned long long)vm->unhandled_mmio,
                (unsigned long long)peak_rss_kib(status_fd));
    if (status_fd >= 0)
        close(status_fd);
    vm_destroy(vm);
    free(vm);
    return status;
}

int run_vm(struct vm_config *cfg, struct boot_images *img, const struct run_hooks *hooks,
           const struct jail *jail)
{
    struct vm *vm;
    int status = run_build(cfg, img, jail, &vm);
    return status == KILN_EXIT_OK ? run_built(vm, hooks) : status;
}

static void run_prepared_free(struct run_prepared *p)
{
    free(p->kernel);
    free(p->initrd);
    p->kernel = p->initrd = NULL;
    p->vm = NULL;
}

int run_prepare(struct vm_config *cfg, const struct jail *jail, struct run_prepared *p)
{
    *p = (struct run_prepared){0};
    if (check_host_memory(cfg) < 0)
        return KILN_EXIT_RESOURCES;
    p->img = (struct boot_images){.format = cfg->kernel_format, .cmdline = cfg->cmdline};
    int status = KILN_EXIT_BAD_IMAGE;
    if (load_file("kernel", cfg->kernel_path, MAX_KERNEL_SIZE, &p->kernel, &p->img.kernel_size) < 0)
        goto fail;
    p->img.kernel = p->kernel;
    if (cfg->initrd_path &&
        load_file("initrd", cfg->initrd_path, MAX_INITRD_SIZE, &p->initrd, &p->img.initrd_size) < 0)
        goto fail;
    p->img.initrd = p->initrd;
    if (validate_kernel(cfg, &p->img) < 0)
        goto fail;
    status = run_build(cfg, &p->img, jail, &p->vm);
    if (status == KILN_EXIT_OK)
        return status;
fail:
    run_prepared_free(p);
    return status;
}

int run_prepared(struct run_prepared *p, const struct run_hooks *hooks)
{
    int status = run_built(p->vm, hooks);
    run_prepared_free(p);
    return status;
}

void run_prepared_discard(struct run_prepared *p)
{
    if (p->vm) {
        vm_destroy(p->vm);
        free(p->vm);
    }
    run_prepared_free(p);
}

static int run_loaded(struct vm_config *cfg, const struct run_hooks *hooks, const struct jail *jail)
{
    struct run_prepared p;
    int status = run_prepare(cfg, jail, &p);
    return status == KILN_EXIT_OK ? run_prepared(&p, hooks) : status;
}

int run_configured(struct vm_config *cfg, const struct run_hooks *hooks)
{
    return run_loaded(cfg, hooks, NULL);
}

/* The jailed VM process bound its API socket before pivot_root and cannot reach its file
 * afterwards: the supervisor, outside, removes it (unless another process listens there:
 * the VM may have stopped because that socket was taken). */
static void remove_api_socket(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;
    if (!path || strlen(path) >= sizeof(addr.sun_path) || lstat(path, &st) < 0 ||
        !S_ISSOCK(st.st_mode))
        return;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno == ECONNREFUSED)
        unlink(path);
    close(fd);
}

/* --jail: fork into the jail; the parent returns the VM's status, the child runs it. */
static int run_jailed(struct vm_config *cfg)
{
    struct jail jail;
    char err[256];
    int status;
    int ret = jail_spawn(&jail, &cfg->jail, &status);
    if (ret == JAIL_PARENT) {
        remove_api_socket(cfg->api_sock);
        return status;
    }
    if (ret < 0)
        return KILN_EXIT_JAIL;
    if (jail_rewrite_paths(&jail, cfg, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return KILN_EXIT_USAGE;
    }
    if (cfg->api_sock)
        return run_controlled(cfg, &jail);
    struct default_guest dg;
    if (!cfg->kernel_path && use_default_guest(cfg, &dg) < 0)
        return KILN_EXIT_USAGE;
    return run_loaded(cfg, NULL, &jail);
}

int cmd_run(int argc, char **argv)
{
    struct vm_config cfg;
    char err[256];
    int ret = run_options_parse(argc, argv, &cfg, err, sizeof(err));
    if (ret == RUN_OPTIONS_HELP) {
        fputs(run_options_usage, stdout);
        return KILN_EXIT_OK;
    }
    if (ret < 0) {
        log_error("%s", err);
        return KILN_EXIT_USAGE;
    }
    cfg.kvm_path = KVM_DEVICE_PATH;
    if (cfg.jail.dir && (cfg.config_file || cfg.restore_dir || cfg.incoming)) {
        /* --jail --api-sock works because the VM is built on InstanceStart, before the API
         * thread exists; these boot at once and would need the API thread earlier. */
        log_error("--jail cannot be combined with --config-file, --restore or --incoming yet "
                  "(--api-sock alone is fine)");
        return KILN_EXIT_USAGE;
    }
    if (cfg.jail.dir)
        return run_jailed(&cfg);
    if (cfg.incoming && incoming_check(&cfg) != KILN_EXIT_OK)
        return KILN_EXIT_USAGE;
    if (cfg.incoming && !cfg.api_sock)
        return incoming_and_run(&cfg, incoming_listen(cfg.incoming), NULL);
    if (cfg.restore_dir)
        return run_restored(&cfg);
    /* Under the API or a config file there is no default guest: the client names one. */
    if (cfg.api_sock || cfg.config_file)
        return run_controlled(&cfg, NULL);
    struct default_guest dg;
    if (!cfg.kernel_path && use_default_guest(&cfg, &dg) < 0)
        return KILN_EXIT_USAGE;
    return run_configured(&cfg, NULL);
}
