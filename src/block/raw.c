/*
 * Raw images: a regular file or a block device, byte for byte. The image is locked with an
 * open file description lock (F_OFD_SETLK), shared for read-only use and exclusive for
 * read-write, so two VMs can share an image read-only but never both write it. The lock
 * lives as long as the descriptor, guest reboots included.
 */
#include "block/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vmm/vm_config.h"

#define RAW_SECTOR 512u
#define RAW_MAX_BLOCK 4096u

static int raw_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int raw_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return ret;
}

static int raw_open_fd(const struct disk_config *cfg, const struct stat *st, char *err,
                       size_t errlen)
{
    int flags = (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (cfg->cache == DISK_CACHE_NONE)
        flags |= O_DIRECT;
    /* A block device the host uses (mounted, or opened exclusively) must not be written. */
    if (S_ISBLK(st->st_mode) && !cfg->readonly)
        flags |= O_EXCL;
    int fd = open(cfg->path, flags);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == EINVAL && (flags & O_DIRECT))
        return raw_fail(err, errlen, -e, "cache=none: the file system does not support O_DIRECT");
    if (e == EBUSY && (flags & O_EXCL))
        return raw_fail(err, errlen, -e, "%s (mounted or in use on the host?)", strerror(e));
    if (!cfg->readonly && (e == EACCES || e == EPERM || e == EROFS) && access(cfg->path, R_OK) == 0)
        return raw_fail(err, errlen, -e, "%s (add ,ro to use it read-only)", strerror(e));
    return raw_fail(err, errlen, -e, "%s", strerror(e));
}

static int raw_lock(struct disk *disk, const char *path, char *err, size_t errlen)
{
    struct flock fl = {
        .l_type = disk->readonly ? F_RDLCK : F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = 0,
        .l_len = 0, /* the whole file, however it grows */
    };
    if (fcntl(disk->fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES)
        return raw_fail(err, errlen, -EBUSY, "locked by another process (is another VM using it?)");
    /* Some file systems cannot lock at all: run, but without the protection. */
    log_warn("--disk %s: cannot lock the image (%s); nothing stops another VM from using it", path,
             strerror(errno));
    return 0;
}

/* O_DIRECT alignment when the kernel does not report it: try a 512-byte aligned read. */
static uint32_t raw_probe_dio_align(int fd)
{
    void *buf;
    if (posix_memalign(&buf, RAW_MAX_BLOCK, 2 * RAW_MAX_BLOCK) != 0)
        return RAW_MAX_BLOCK;
    ssize_t n = pread(fd, (uint8_t *)buf + RAW_SECTOR, RAW_SECTOR, 0);
    free(buf);
    return n >= 0 ? RAW_SECTOR : RAW_MAX_BLOCK;
}

/* Sets block_size and dio_mem_align: what the guest must respect for O_DIRECT to work. */
static int raw_alignment(struct disk *disk, char *err, size_t errlen)
{
    uint32_t logical = RAW_SECTOR;
    int v;
    if (disk->blockdev && ioctl(disk->fd, BLKSSZGET, &v) == 0 && v > 0)
        logical = (uint32_t)v;
    uint32_t mem = 1, offset = logical;
    if (disk->direct) {
        mem = offset = 0;
#ifdef STATX_DIOALIGN
        struct statx stx;
        if (statx(disk->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
            (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
            mem = stx.stx_dio_mem_align;
            offset = stx.stx_dio_offset_align;
        }
#endif
        if (!offset)
            mem = offset = disk->blockdev ? logical : raw_probe_dio_align(disk->fd);
    }
    uint32_t block = offset > logical ? offset : logical;
    if (block < RAW_SECTOR || block > RAW_MAX_BLOCK || (block & (block - 1)) || mem > block)
        return raw_fail(err, errlen, -EINVAL, "unsupported block size %u (direct I/O: %u/%u)",
                        logical, offset, mem);
    disk->block_size = block;
    disk->dio_mem_align = mem ? mem : 1;
    return 0;
}

static int raw_size(struct disk *disk, const struct stat *st, const char *path, char *err,
                    size_t errlen)
{
    uint64_t size = (uint64_t)st->st_size;
    if (disk->blockdev && ioctl(disk->fd, BLKGETSIZE64, &size) < 0)
        return raw_fail(err, errlen, -errno, "cannot get the device size: %s", strerror(errno));
    disk->size = size & ~(uint64_t)(disk->block_size - 1);
    if (disk->size != size)
        log_warn("--disk %s: the last %llu bytes are not a whole %u-byte block; the guest "
                 "will not see them",
                 path, (unsigned long long)(size - disk->size), disk->block_size);
    return 0;
}

static int raw_open(struct disk *disk, const struct disk_config *cfg, char *err, size_t errlen)
{
    struct stat st;
    if (stat(cfg->path, &st) < 0)
        return raw_fail(err, errlen, -errno, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return raw_fail(err, errlen, -EISDIR, "%s", strerror(EISDIR));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return raw_fail(err, errlen, -EINVAL, "not a regular file or a block device");
    int fd = raw_open_fd(cfg, &st, err, errlen);
    if (fd < 0)
        return fd;
    disk->fd = fd;
    disk->readonly = cfg->readonly;
    disk->direct = cfg->cache == DISK_CACHE_NONE;
    /* Check again on what was opened: the path may have changed meanwhile. */
    int ret = fstat(fd, &st) < 0 ? raw_fail(err, errlen, -errno, "%s", strerror(errno)) : 0;
    if (ret == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        ret = raw_fail(err, errlen, -EINVAL, "not a regular file or a block device");
    disk->blockdev = S_ISBLK(st.st_mode);
    ret = ret ?: raw_lock(disk, cfg->path, err, errlen);
    ret = ret ?: raw_alignment(disk, err, errlen);
    ret = ret ?: raw_size(disk, &st, cfg->path, err, errlen);
    if (ret < 0) {
        close(fd);
        disk->fd = -1;
    }
    return ret;
}

static void raw_close(struct disk *disk)
{
    if (disk->fd >= 0)
        close(disk->fd); /* also drops the lock */
    disk->fd = -1;
}

const struct disk_format_ops disk_raw_ops = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
};
