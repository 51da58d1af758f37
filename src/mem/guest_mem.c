#include "mem/guest_mem.h"

#include "mem/dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size, void *hva)
{
    if (mem->nregions >= GUEST_MEM_MAX_REGIONS || size == 0 || gpa + size < gpa)
        return -EINVAL;
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size)
            return -EEXIST;
    }
    mem->regions[mem->nregions++] = (struct guest_region){.gpa = gpa, .size = size, .hva = hva};
    mem->ram_size += size;
    return 0;
}

/* Lays RAM out below `hole_start` and, for what does not fit, from `high_start` upwards. */
static int guest_mem_layout(struct guest_mem *mem, void *p, uint64_t ram_size,
                            uint64_t hole_start, uint64_t high_start)
{
    /* Guest RAM is large and sparse: keep it out of core dumps and forked children. */
    madvise(p, ram_size, MADV_DONTDUMP);
    madvise(p, ram_size, MADV_DONTFORK);
    mem->mapping = p;
    mem->mapping_size = ram_size;

    uint64_t low = ram_size < hole_start ? ram_size : hole_start;
    int ret = guest_mem_add_region(mem, 0, low, p);
    if (ret == 0 && ram_size > low)
        ret = guest_mem_add_region(mem, high_start, ram_size - low, (uint8_t *)p + low);
    if (ret < 0)
        guest_mem_free(mem);
    return ret;
}

/* Maps guest RAM: anonymous (fd < 0) or a private, copy-on-write view of a file. */
static int guest_mem_map(struct guest_mem *mem, int fd, uint64_t ram_size, uint64_t hole_start,
                         uint64_t high_start)
{
    memset(mem, 0, sizeof(*mem));
    if (ram_size == 0 || hole_start > high_start)
        return -EINVAL;
    if (ram_size > SIZE_MAX)
        return -ENOMEM;
    int flags = MAP_PRIVATE | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0);
    void *p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    int ret = guest_mem_layout(mem, p, ram_size, hole_start, high_start);
    mem->anonymous = ret == 0 && fd < 0;
    return ret;
}

int guest_mem_alloc(struct guest_mem *mem, uint64_t ram_size, uint64_t hole_start,
                    uint64_t high_start)
{
    return guest_mem_map(mem, -1, ram_size, hole_start, high_start);
}

int guest_mem_map_file(struct guest_mem *mem, int fd, uint64_t ram_size, uint64_t hole_start,
                       uint64_t high_start)
{
    if (fd < 0) {
        memset(mem, 0, sizeof(*mem));
        return -EBADF; /* not an anonymous mapping by mistake */
    }
    return guest_mem_map(mem, fd, ram_size, hole_start, high_start);
}

void guest_mem_free(struct guest_mem *mem)
{
    if (mem->mapping)
        munmap(mem->mapping, mem->mapping_size);
    for (unsigned i = 0; i < mem->nregions; i++)
        free(mem->regions[i].dirty);
    memset(mem, 0, sizeof(*mem));
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        /* Written so that no sum can wrap: off < size, then len <= size - off. */
        if (off >= r->size || len > r->size - off)
            continue;
        return r->hva + off;
    }
    return NULL;
}

bool guest_mem_is_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
    return guest_mem_ptr(mem, gpa, len) != NULL;
}

int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *buf, size_t len)
{
    const void *src = guest_mem_ptr(mem, gpa, len);
    if (!src)
        return -EFAULT;
    memcpy(buf, src, len);
    return 0;
}

int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *buf, size_t len)
{
    void *dst = guest_mem_ptr(mem, gpa, len);
    if (!dst)
        return -EFAULT;
    memcpy(dst, buf, len);
    guest_mem_mark_dirty(mem, gpa, len);
    return 0;
}

uint64_t guest_mem_end(const struct guest_mem *mem)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < mem->nregions; i++) {
        uint64_t e = mem->regions[i].gpa + mem->regions[i].size;
        if (e > end)
            end = e;
    }
    return end;
}
