/*
 * Disk images as the block devices see them: an open, locked file descriptor, a size and the
 * alignment rules its I/O must follow. Image formats sit behind a small ops table (raw only
 * for now); the I/O itself goes through an engine (block/aio.h).
 */
#ifndef KILN_BLOCK_DISK_H
#define KILN_BLOCK_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct disk_config;
struct disk;

struct disk_format_ops {
    const char *name;
    /* Opens and locks the image. Returns 0 or -errno with a reason in `err`. */
    int (*open)(struct disk *disk, const struct disk_config *cfg, char *err, size_t errlen);
    void (*close)(struct disk *disk);
};

struct disk {
    const struct disk_format_ops *ops;
    int fd;
    uint64_t size; /* bytes the guest can address: a multiple of 512 */
    bool readonly;
    bool direct; /* O_DIRECT (cache=none) */
    bool blockdev;
    uint32_t block_size;    /* logical block size for the guest: 512 or what O_DIRECT needs */
    uint32_t dio_mem_align; /* with `direct`: buffer address and length alignment */
};

extern const struct disk_format_ops disk_raw_ops;

/* Opens `cfg->path` (a raw image or block device). Returns 0 or -errno, reason in `err`. */
int disk_open(struct disk *disk, const struct disk_config *cfg, char *err, size_t errlen);
void disk_close(struct disk *disk);

#endif
