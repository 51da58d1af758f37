/*
 * The memory file of a snapshot (docs/snapshot.md): guest RAM regions back to back, zero
 * runs left as holes; for a diff, only the pages in its bitmap. Restoring maps a full
 * snapshot's file MAP_PRIVATE and reads each diff of a chain over it.
 */
#include "snapshot/memory_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "mem/dirty.h"
#include "snapshot/snapshot.h"

size_t snapshot_dirty_bytes(uint64_t size)
{
    return (size_t)((size / SNAPSHOT_PAGE + 7) / 8);
}

/* ---- saving ---- */

static bool page_is_zero(const uint8_t *p, size_t len)
{
    const uint64_t *q = (const uint64_t *)p;
    for (size_t i = 0; i < len / 8; i++)
        if (q[i])
            return false;
    return true;
}

#define MEM_CHUNK (64 * 1024) /* zero runs of this size become holes */

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

/* Whether every page of [start, start + len) is set in `untouched` (NULL: none known). */
static bool never_touched(const uint64_t *untouched, uint64_t start, size_t len)
{
    if (!untouched)
        return false;
    for (uint64_t p = start / SNAPSHOT_PAGE; p < (start + len) / SNAPSHOT_PAGE; p++)
        if (!page_bit(untouched, p))
            return false;
    return true;
}

static int write_region(int fd, const struct guest_mem *mem, const struct guest_region *r,
                        uint64_t offset)
{
    /* Pages the guest never touched are holes without being read (and faulted in). */
    uint64_t *untouched = calloc(guest_dirty_words(r->size), sizeof(uint64_t));
    if (untouched && guest_mem_untouched(mem, r, untouched) < 0) {
        free(untouched);
        untouched = NULL;
    }
    int ret = 0;
    for (uint64_t done = 0; done < r->size && ret == 0; done += MEM_CHUNK) {
        size_t n = r->size - done < MEM_CHUNK ? (size_t)(r->size - done) : MEM_CHUNK;
        if (!never_touched(untouched, done, n) && !page_is_zero(r->hva + done, n))
            ret = pwrite_all(fd, r->hva + done, n, offset + done);
    }
    free(untouched);
    return ret;
}

static bool page_dirty(const uint8_t *map, uint64_t page)
{
    return map[page / 8] & (1u << (page % 8));
}

/* A diff: only the dirty pages, each run of them in one write; the rest stays a hole. */
static int write_region_dirty(int fd, const struct guest_region *r, uint64_t offset,
                              const uint8_t *map)
{
    uint64_t pages = r->size / SNAPSHOT_PAGE;
    for (uint64_t p = 0; p < pages;) {
        if (!page_dirty(map, p)) {
            p++;
            continue;
        }
        uint64_t end = p;
        while (end < pages && page_dirty(map, end))
            end++;
        int ret = pwrite_all(fd, r->hva + p * SNAPSHOT_PAGE, (size_t)((end - p) * SNAPSHOT_PAGE), offset + p * SNAPSHOT_PAGE);
        if (ret < 0)
            return ret;
        p = end;
    }
    return 0;
}

/* Guest RAM, region after region; the file is sized first so what is not written is a hole. */
int snapshot_memory_save(const struct guest_mem *mem, const char *path, uint8_t *const *dirty)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int ret = ftruncate(fd, (off_t)mem->ram_size) < 0 ? -errno : 0;
    uint64_t offset = 0;
    for (unsigned i = 0; ret == 0 && i < mem->nregions; i++) {
        ret = dirty ? write_region_dirty(fd, &mem->regions[i], offset, dirty[i])
                    : write_region(fd, mem, &mem->regions[i], offset);
        offset += mem->regions[i].size;
    }
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret == 0 && rename(tmp, path) < 0)
        ret = -errno;
    if (ret < 0)
        unlink(tmp);
    return ret;
}

/* ---- restoring ---- */

static int open_mem_file(const struct snapshot *snap, const char *mem_path, char *err,
                         size_t errlen)
{
    int fd = open(mem_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int ret = -errno;
        snprintf(err, errlen, "memory file '%s': %s", mem_path, strerror(errno));
        return ret;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != snap->mem_file_size) {
        snprintf(err, errlen, "memory file '%s': not a regular file of %llu bytes", mem_path,
                 (unsigned long long)snap->mem_file_size);
        close(fd);
        return -EBADMSG;
    }
    return fd;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads a diff's pages over the memory its bases built (they become private copies). */
static int overlay_diff(const struct snapshot *snap, int fd, struct guest_mem *mem)
{
    for (unsigned i = 0; i < snap->nregions; i++) {
        const struct snapshot_region *g = &snap->regions[i];
        uint8_t *hva = guest_mem_ptr(mem, g->gpa, g->size);
        if (!hva)
            return -EFAULT;
        uint64_t pages = g->size / SNAPSHOT_PAGE;
        for (uint64_t p = 0; p < pages;) {
            if (!page_dirty(g->dirty, p)) {
                p++;
                continue;
            }
            uint64_t end = p;
            while (end < pages && page_dirty(g->dirty, end))
                end++;
            int ret = pread_all(fd, hva + p * SNAPSHOT_PAGE, (size_t)((end - p) * SNAPSHOT_PAGE),
                                g->offset + p * SNAPSHOT_PAGE);
            if (ret < 0)
                return ret;
            p = end;
        }
    }
    return 0;
}

/* The base a diff names: its own checks, then it must be the very snapshot the diff saw. */
static int read_base(const struct snapshot *snap, struct snapshot *base, char *err, size_t errlen)
{
    char why[256];
    int ret = snapshot_read(snap->base_state_path, base, why, sizeof(why));
    if (ret < 0) {
        snprintf(err, errlen, "base snapshot '%s': %s", snap->base_state_path, why);
        return ret == -ENOMEM ? ret : -EBADMSG;
    }
    if (base->id != snap->base_id || base->memory != snap->memory) {
        snprintf(err, errlen, "base snapshot '%s' is not the one this diff was taken on",
                 snap->base_state_path);
        snapshot_free(base);
        return -EBADMSG;
    }
    return 0;
}

static int map_chain(const struct snapshot *snap, const char *mem_path, struct guest_mem *mem,
                     unsigned depth, char *err, size_t errlen)
{
    int ret;
    if (snap->kind == SNAPSHOT_DIFF) {
        if (depth >= SNAPSHOT_MAX_CHAIN) {
            snprintf(err, errlen, "more than %d diff snapshots on top of each other",
                     SNAPSHOT_MAX_CHAIN);
            return -EBADMSG;
        }
        struct snapshot *base = calloc(1, sizeof(*base));
        if (!base)
            return -ENOMEM;
        ret = read_base(snap, base, err, errlen);
        if (ret == 0) {
            ret = map_chain(base, snap->base_mem_path, mem, depth + 1, err, errlen);
            snapshot_free(base);
        }
        free(base);
        if (ret < 0)
            return ret;
    }
    int fd = open_mem_file(snap, mem_path, err, errlen);
    if (fd < 0) {
        if (snap->kind == SNAPSHOT_DIFF)
            guest_mem_free(mem);
        return fd;
    }
    if (snap->kind == SNAPSHOT_FULL) {
        ret = guest_mem_map_file(mem, fd, snap->memory, X86_PCI_HOLE_START, X86_HIGH_RAM_START);
        if (ret < 0)
            snprintf(err, errlen, "mapping memory file '%s': %s", mem_path, strerror(-ret));
    } else {
        ret = overlay_diff(snap, fd, mem);
        if (ret < 0) {
            snprintf(err, errlen, "memory file '%s': %s", mem_path, strerror(-ret));
            guest_mem_free(mem);
        }
    }
    close(fd); /* a mapping keeps its file */
    return ret;
}

int snapshot_map_memory(const struct snapshot *snap, const char *mem_path,
                        struct guest_mem *mem, char *err, size_t errlen)
{
    return map_chain(snap, mem_path, mem, 0, err, errlen);
}
