/* What a VM is made of, as the user asked for it. Filled by the command line (or the API). */
#ifndef KILN_VM_CONFIG_H
#define KILN_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <limits.h>

#include "jail/jail_config.h"
struct snapshot;
struct guest_mem;

enum kernel_format {
    KERNEL_FORMAT_AUTO,    /* bzImage or ELF, by magic number */
    KERNEL_FORMAT_BZIMAGE, /* Linux x86 boot protocol, 64-bit entry */
    KERNEL_FORMAT_ELF,     /* uncompressed vmlinux, entered through its PVH note */
    KERNEL_FORMAT_RAW,     /* flat binary at X86_RAW_LOAD_ADDR, 64-bit entry */
};

#define VM_DEFAULT_MEMORY (256ULL << 20)
#define VM_DEFAULT_CMDLINE "console=ttyS0 panic=1"
#define VM_MAX_CPUS 1024
#define VM_MAX_DISKS 8
#define VM_MAX_NETS 4
#define VM_MAX_HOSTFWD 8

enum disk_cache {
    DISK_CACHE_WRITEBACK, /* host page cache; flushes are fdatasync()ed */
    DISK_CACHE_NONE,      /* O_DIRECT */
};

/* --disk PATH[,ro][,id=NAME][,cache=none|writeback] */
struct disk_config {
    char path[4096];
    bool readonly;
    char id[21]; /* VIRTIO_BLK_ID_BYTES (20) + NUL; empty: none */
    enum disk_cache cache;
};

enum net_backend {
    NET_TAP,  /* --net tap=IFNAME */
    NET_USER, /* --net user: libslirp, no privileges needed */
};

struct net_hostfwd {
    bool udp;
    uint32_t host_addr; /* IPv4, host byte order; 0 = any */
    uint16_t host_port;
    uint16_t guest_port;
};

/* --net tap=IFNAME[,mac=MAC] | --net user[,mac=MAC][,hostfwd=tcp::HOSTPORT-:GUESTPORT]... */
struct net_config {
    enum net_backend backend;
    char ifname[16]; /* IFNAMSIZ */
    uint8_t mac[6];
    bool has_mac;
    struct net_hostfwd hostfwd[VM_MAX_HOSTFWD];
    unsigned nhostfwd;
};

/* --vsock cid=N,uds=PATH */
struct vsock_config {
    bool enabled;
    uint32_t guest_cid;
    char uds_path[108]; /* sun_path */
};

enum console_kind {
    CONSOLE_SERIAL, /* stdio is COM1 (ttyS0) */
    CONSOLE_VIRTIO, /* stdio is a virtio-console port (hvc0); COM1 output goes to the log */
};

struct vm_config {
    const char *kernel_path;
    enum kernel_format kernel_format;
    const char *initrd_path;
    const char *cmdline;
    uint64_t memory;
    unsigned cpus;
    bool no_reboot;
    const char *console_log;
    const char *console_sock; /* serve the console on this Unix socket, not the terminal */
    const char *kvm_path;
    bool rng; /* virtio-rng device */
    struct disk_config disks[VM_MAX_DISKS]; /* only the first ndisks are defined */
    unsigned ndisks;
    struct net_config nets[VM_MAX_NETS];
    unsigned nnets;
    struct vsock_config vsock;
    enum console_kind console;
    struct jail_config jail; /* --jail: where and as whom the VM process is confined */
    /* How the process is controlled, not what the VM is (kiln run --api-sock ...). */
    const char *api_sock;    /* serve the API here; boot only on InstanceStart */
    const char *config_file; /* boot from this Firecracker-schema JSON file */
    const char *instance_id; /* the id GET / reports */
    bool seccomp; /* per-thread system call filters (vmm/seccomp.c); on unless --seccomp=off */
    /* kiln run --restore DIR: the VM is rebuilt from this snapshot instead of booted. */
    const char *restore_dir;
    const struct snapshot *restore; /* parsed and checked; owned by the caller */
    const char *restore_state_path;
    const char *restore_mem_path;
    bool restore_paused; /* the restored VM waits for a resume (API: resume_vm false) */
    /* kiln run --incoming tcp:ADDR:PORT: the VM arrives by live migration (docs/migration.md). */
    const char *incoming;
    struct guest_mem *incoming_mem; /* RAM received with `restore`; vm_create takes it over */
};

#endif
