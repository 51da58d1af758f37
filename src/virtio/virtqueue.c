#include "virtio/virtqueue.h"

#include <errno.h>
#include <string.h>

#include "mem/dirty.h"
#include "mem/guest_mem.h"

/* Split ring layout, virtio 1.2 §2.7.5-2.7.8 (all fields little-endian, as is x86). */
#define DESC_SIZE 16
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1
#define AVAIL_RING_OFF 4
#define USED_RING_OFF 4
#define USED_ELEM_SIZE 8

struct vring_desc_view {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static size_t avail_bytes(uint16_t size)
{
    return AVAIL_RING_OFF + 2u * size + 2; /* flags, idx, ring, used_event */
}

static size_t used_bytes(uint16_t size)
{
    return USED_RING_OFF + USED_ELEM_SIZE * (size_t)size + 2; /* flags, idx, ring, avail_event */
}

/* The driver writes these concurrently: single, atomic loads and stores only. */
static uint16_t load16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

static void store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED);
}

/* The used ring is the device's: every store into it is a write to guest RAM. */
static void used_store16(struct virtq *vq, size_t off, uint16_t v)
{
    store16(vq->used + off, v);
    guest_mem_mark_dirty_hva(vq->mem, vq->used + off, 2);
}

int virtq_enable(struct virtq *vq, const struct guest_mem *mem, bool event_idx)
{
    uint16_t size = vq->state.size;
    if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)) != 0)
        return -EINVAL;
    /* Alignment per §2.7: descriptors 16, avail 2, used 4. */
    if ((vq->state.desc_addr & 15) || (vq->state.avail_addr & 1) || (vq->state.used_addr & 3))
        return -EINVAL;
    vq->desc = guest_mem_ptr(mem, vq->state.desc_addr, (uint64_t)DESC_SIZE * size);
    vq->avail = guest_mem_ptr(mem, vq->state.avail_addr, avail_bytes(size));
    vq->used = guest_mem_ptr(mem, vq->state.used_addr, used_bytes(size));
    if (!vq->desc || !vq->avail || !vq->used) {
        virtq_disable(vq);
        return -EINVAL;
    }
    vq->mem = mem;
    vq->event_idx = event_idx;
    vq->broken = false;
    vq->state.last_avail = 0;
    vq->state.used_idx = 0;
    vq->state.signalled_used = 0;
    vq->state.signalled_used_valid = 0;
    vq->state.ready = 1;
    return 0;
}

void virtq_disable(struct virtq *vq)
{
    vq->desc = vq->avail = vq->used = NULL;
    vq->state.ready = 0;
}

static struct vring_desc_view read_desc(const uint8_t *table, uint16_t i)
{
    const uint8_t *d = table + (size_t)i * DESC_SIZE;
    struct vring_desc_view v;
    /* One copy per field: what we validate is what we use, whatever the driver does next. */
    memcpy(&v.addr, d, 8);
    memcpy(&v.len, d + 8, 4);
    memcpy(&v.flags, d + 12, 2);
    memcpy(&v.next, d + 14, 2);
    return v;
}

static int virtq_fail(struct virtq *vq)
{
    vq->broken = true;
    return -EIO;
}

static int elem_add(struct virtq_elem *elem, const struct guest_mem *mem,
                    const struct vring_desc_view *d)
{
    bool writable = d->flags & DESC_F_WRITE;
    if (!writable && elem->in_num > 0)
        return -EIO; /* §2.7.4.2: readable descriptors come before writable ones */
    if (d->len == 0)
        return 0;
    if (elem->out_num + elem->in_num >= VIRTQ_MAX_SEGS)
        return -EIO;
    void *p = guest_mem_ptr(mem, d->addr, d->len);
    if (!p)
        return -EIO;
    elem->iov[elem->out_num + elem->in_num] = (struct iovec){p, d->len};
    if (writable) {
        elem->in_num++;
        elem->in_len += d->len;
    } else {
        elem->out_num++;
        elem->out_len += d->len;
    }
    return 0;
}

/* Walks the chain starting at `head`, following at most one indirect table. */
static int virtq_walk(struct virtq *vq, const struct guest_mem *mem, uint16_t head,
                      struct virtq_elem *elem)
{
    const uint8_t *table = vq->desc;
    uint32_t table_size = vq->state.size;
    uint32_t seen = 0;
    bool indirect = false;
    uint16_t i = head;
    for (;;) {
        if (i >= table_size || ++seen > table_size)
            return -EIO; /* out of the table, or a loop */
        struct vring_desc_view d = read_desc(table, i);
        if (d.flags & DESC_F_INDIRECT) {
            /* §2.7.5.3: one level only, not combined with NEXT, whole descriptors. */
            if (indirect || (d.flags & DESC_F_NEXT) || d.len == 0 || d.len % DESC_SIZE ||
                d.len / DESC_SIZE > VIRTQ_MAX_INDIRECT)
                return -EIO;
            table = guest_mem_ptr(mem, d.addr, d.len);
            if (!table)
                return -EIO;
            table_size = d.len / DESC_SIZE;
            indirect = true;
            seen = 0;
            i = 0;
            continue;
        }
        if (elem_add(elem, mem, &d) < 0)
            return -EIO;
        if (!(d.flags & DESC_F_NEXT))
            return 0;
        i = d.next;
    }
}

bool virtq_has_work(struct virtq *vq)
{
    if (!vq->state.ready || vq->broken)
        return false;
    return load16(vq->avail + 2) != vq->state.last_avail;
}

int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct virtq_elem *elem)
{
    if (!vq->state.ready || vq->broken)
        return 0;
    uint16_t avail_idx = load16(vq->avail + 2);
    uint16_t pending = (uint16_t)(avail_idx - vq->state.last_avail);
    if (pending == 0)
        return 0;
    if (pending > vq->state.size)
        return virtq_fail(vq); /* the driver claims more buffers than the ring holds */
    /* Read the ring entry and descriptors only after seeing the index (§2.7.13.3). */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint16_t slot = vq->state.last_avail & (vq->state.size - 1);
    uint16_t head = load16(vq->avail + AVAIL_RING_OFF + 2u * slot);
    elem->head = head;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    if (virtq_walk(vq, mem, head, elem) < 0)
        return virtq_fail(vq);
    vq->state.last_avail++;
    return 1;
}

static void used_put(struct virtq *vq, uint16_t idx, uint16_t head, uint32_t len)
{
    uint8_t *e = vq->used + USED_RING_OFF + (size_t)USED_ELEM_SIZE * (idx & (vq->state.size - 1));
    uint32_t id = head;
    memcpy(e, &id, 4);
    memcpy(e + 4, &len, 4);
    guest_mem_mark_dirty_hva(vq->mem, e, USED_ELEM_SIZE);
}

/* The elements must be visible before the index that publishes them (§2.7.14). */
static void used_publish(struct virtq *vq, uint16_t idx)
{
    vq->state.used_idx = idx;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    used_store16(vq, 2, idx);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
    if (!vq->state.ready)
        return;
    used_put(vq, vq->state.used_idx, head, len);
    used_publish(vq, (uint16_t)(vq->state.used_idx + 1));
}

void virtq_push_batch(struct virtq *vq, const struct virtq_used *used, unsigned count)
{
    if (!vq->state.ready || count == 0)
        return;
    uint16_t idx = vq->state.used_idx;
    for (unsigned i = 0; i < count; i++, idx++)
        used_put(vq, idx, used[i].head, used[i].len);
    used_publish(vq, idx);
}

void virtq_written_iov(const struct virtq *vq, const struct iovec *iov, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        guest_mem_mark_dirty_hva(vq->mem, iov[i].iov_base, iov[i].iov_len);
}

void virtq_written(const struct virtq *vq, const struct virtq_elem *elem)
{
    virtq_written_iov(vq, elem->iov + elem->out_num, elem->in_num);
}

bool virtq_should_interrupt(struct virtq *vq)
{
    if (!vq->state.ready)
        return false;
    /* Order our used->idx store before reading the driver's suppression fields. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t new_idx = vq->state.used_idx;
    if (!vq->event_idx)
        return !(load16(vq->avail) & AVAIL_F_NO_INTERRUPT);
    uint16_t old = vq->state.signalled_used;
    bool valid = vq->state.signalled_used_valid;
    vq->state.signalled_used = new_idx;
    vq->state.signalled_used_valid = 1;
    if (!valid)
        return true;
    uint16_t used_event = load16(vq->avail + AVAIL_RING_OFF + 2u * vq->state.size);
    /* §2.7.10: interrupt if used_event lies in (old, new]. */
    return (uint16_t)(new_idx - used_event - 1) < (uint16_t)(new_idx - old);
}

void virtq_disable_notify(struct virtq *vq)
{
    if (!vq->state.ready || vq->event_idx)
        return; /* with EVENT_IDX, simply not moving avail_event suppresses notifications */
    used_store16(vq, 0, USED_F_NO_NOTIFY);
}

bool virtq_enable_notify(struct virtq *vq)
{
    if (!vq->state.ready)
        return false;
    if (vq->event_idx)
        used_store16(vq, USED_RING_OFF + (size_t)USED_ELEM_SIZE * vq->state.size,
                     vq->state.last_avail);
    else
        used_store16(vq, 0, 0);
    /* Publish the request before re-checking, or a notification could be lost. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return virtq_has_work(vq);
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done)
            chunk = len - done;
        memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done)
            chunk = len - done;
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}
