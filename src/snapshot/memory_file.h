/* Snapshot memory files: writing guest RAM (all of it, or a diff's pages) and mapping it. */
#ifndef KILN_SNAPSHOT_MEMORY_FILE_H
#define KILN_SNAPSHOT_MEMORY_FILE_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;

#define SNAPSHOT_PAGE 4096

/* Bytes of a page bitmap for a region of `size` bytes. */
size_t snapshot_dirty_bytes(uint64_t size);

/*
 * Writes guest RAM to `path` (a temporary name, fsync, rename): every region at its offset,
 * the file as large as RAM. With `dirty` (a bitmap per region), only those pages; else
 * everything but zero 64 KiB runs. Returns 0 or -errno.
 */
int snapshot_memory_save(const struct guest_mem *mem, const char *path, uint8_t *const *dirty);

#endif
