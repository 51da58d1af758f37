#include "snapshot/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"
#include "le.h"

#define HEADER_LEN (STATE_FILE_MAGIC_LEN + 4 + 4) /* magic, version, section count */
#define NSECTIONS_OFFSET (STATE_FILE_MAGIC_LEN + 4)
#define TRAILER_LEN 4                             /* CRC-32 */

/* ---- writer ---- */

void state_writer_init(struct state_writer *w)
{
    memset(w, 0, sizeof(*w));
    state_put_bytes(w, STATE_FILE_MAGIC, STATE_FILE_MAGIC_LEN);
    state_put_u32(w, STATE_FILE_VERSION);
    state_put_u32(w, 0); /* section count, fixed up by state_writer_finish */
}

void state_writer_free(struct state_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static bool writer_reserve(struct state_writer *w, size_t more)
{
    if (w->error)
        return false;
    if (more > STATE_FILE_MAX_SIZE || w->len + more > STATE_FILE_MAX_SIZE) {
        w->error = -EFBIG;
        return false;
    }
    if (w->len + more <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more)
        cap *= 2;
    uint8_t *buf = realloc(w->buf, cap);
    if (!buf) {
        w->error = -ENOMEM;
        return false;
    }
    w->buf = buf;
    w->cap = cap;
    return true;
}

static void put_le(struct state_writer *w, uint64_t v, unsigned bytes)
{
    if (!writer_reserve(w, bytes))
        return;
    for (unsigned i = 0; i < bytes; i++)
        w->buf[w->len++] = (uint8_t)(v >> (8 * i));
}

void state_put_u8(struct state_writer *w, uint8_t v) { put_le(w, v, 1); }
void state_put_u16(struct state_writer *w, uint16_t v) { put_le(w, v, 2); }
void state_put_u32(struct state_writer *w, uint32_t v) { put_le(w, v, 4); }
void state_put_u64(struct state_writer *w, uint64_t v) { put_le(w, v, 8); }
void state_put_bool(struct state_writer *w, bool v) { put_le(w, v ? 1 : 0, 1); }

void state_put_bytes(struct state_writer *w, const void *p, size_t len)
{
    if (len == 0 || !writer_reserve(w, len))
        return;
    memcpy(w->buf + w->len, p, len);
    w->len += len;
}

void state_section_begin(struct state_writer *w, const char *id, uint16_t version, uint16_t flags)
{
    size_t idlen = strlen(id);
    if (w->section_start || idlen == 0 || idlen > STATE_ID_MAX ||
        w->nsections >= STATE_MAX_SECTIONS) {
        if (!w->error)
            w->error = -EINVAL;
        return;
    }
    state_put_u8(w, (uint8_t)idlen);
    state_put_bytes(w, id, idlen);
    state_put_u16(w, version);
    state_put_u16(w, flags);
    if (w->error)
        return;
    w->section_start = w->len;
    state_put_u32(w, 0); /* payload length, fixed up by state_section_end */
}

void state_section_end(struct state_writer *w)
{
    if (w->error)
        return;
    if (!w->section_start) {
        w->error = -EINVAL;
        return;
    }
    size_t payload = w->len - w->section_start - 4;
    put_le32(w->buf + w->section_start, (uint32_t)payload);
    w->section_start = 0;
    w->nsections++;
}

int state_writer_finish(struct state_writer *w, const uint8_t **data, size_t *len)
{
    if (!w->error && w->section_start)
        w->error = -EINVAL;
    if (w->error)
        return w->error;
    put_le32(w->buf + NSECTIONS_OFFSET, w->nsections);
    uint32_t crc = (uint32_t)crc32(0L, w->buf, (uInt)w->len);
    state_put_u32(w, crc);
    if (w->error)
        return w->error;
    *data = w->buf;
    *len = w->len;
    return 0;
}

/* ---- durable write ---- */

/* ---- reader ---- */

void state_reader_init(struct state_reader *r, const uint8_t *p, size_t len)
{
    *r = (struct state_reader){.p = p, .len = len};
}

static bool reader_take(struct state_reader *r, size_t n)
{
    if (r->error || n > r->len - r->pos) {
        r->error = -EBADMSG;
        return false;
    }
    return true;
}

static uint64_t get_le(struct state_reader *r, unsigned bytes)
{
    if (!reader_take(r, bytes))
        return 0;
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += bytes;
    return v;
}

uint8_t state_get_u8(struct state_reader *r) { return (uint8_t)get_le(r, 1); }
uint16_t state_get_u16(struct state_reader *r) { return (uint16_t)get_le(r, 2); }
uint32_t state_get_u32(struct state_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t state_get_u64(struct state_reader *r) { return get_le(r, 8); }

bool state_get_bool(struct state_reader *r)
{
    uint8_t v = state_get_u8(r);
    if (v > 1)
        r->error = -EBADMSG;
    return v == 1;
}

void state_get_bytes(struct state_reader *r, void *out, size_t len)
{
    if (!reader_take(r, len)) {
        memset(out, 0, len);
        return;
    }
    if (len)
        memcpy(out, r->p + r->pos, len);
    r->pos += len;
}

void state_reader_fail(struct state_reader *r)
{
    r->error = -EBADMSG;
}

int state_reader_done(const struct state_reader *r)
{
    return r->error || r->pos != r->len ? -EBADMSG : 0;
}

/* ---- file parser ---- */

static bool valid_id(const char *id, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    }
    return len > 0;
}

static int parse_section(struct state_reader *r, struct state_section *s, char *err, size_t errlen,
                         uint32_t index)
{
    uint8_t idlen = state_get_u8(r);
    if (r->error || idlen == 0 || idlen > STATE_ID_MAX) {
        snprintf(err, errlen, "section %u: bad id length %u", index, idlen);
        return -EBADMSG;
    }
    state_get_bytes(r, s->id, idlen);
    s->id[idlen] = '\0';
    s->version = state_get_u16(r);
    s->flags = state_get_u16(r);
    s->len = state_get_u32(r);
    if (r->error) {
        snprintf(err, errlen, "section %u: truncated header", index);
        return -EBADMSG;
    }
    if (!valid_id(s->id, idlen)) {
        snprintf(err, errlen, "section %u: id is not a plain name", index);
        return -EBADMSG;
    }
    if (s->len > r->len - r->pos) {
        snprintf(err, errlen, "section '%s': length %u runs past the end of the file", s->id,
                 s->len);
        return -EBADMSG;
    }
    s->payload = r->p + r->pos;
    r->pos += s->len;
    return 0;
}

static int parse_header(const uint8_t *data, size_t len, uint32_t *version, uint32_t *nsections,
                        char *err, size_t errlen)
{
    if (len < HEADER_LEN + TRAILER_LEN || memcmp(data, STATE_FILE_MAGIC, STATE_FILE_MAGIC_LEN)) {
        snprintf(err, errlen, "not a kiln snapshot state file (bad magic or too short)");
        return -EBADMSG;
    }
    if (len > STATE_FILE_MAX_SIZE) {
        snprintf(err, errlen, "state file larger than %u MiB", STATE_FILE_MAX_SIZE >> 20);
        return -EBADMSG;
    }
    uint32_t crc = (uint32_t)crc32(0L, data, (uInt)(len - TRAILER_LEN));
    if (crc != get_le32(data + len - TRAILER_LEN)) {
        snprintf(err, errlen, "checksum mismatch: the state file is damaged or truncated");
        return -EBADMSG;
    }
    *version = get_le32(data + STATE_FILE_MAGIC_LEN);
    if (*version != STATE_FILE_VERSION) {
        snprintf(err, errlen, "format version %u is not supported (this kiln reads version %u)",
                 *version, STATE_FILE_VERSION);
        return -EBADMSG;
    }
    *nsections = get_le32(data + NSECTIONS_OFFSET);
    if (*nsections > STATE_MAX_SECTIONS) {
        snprintf(err, errlen, "%u sections: more than the %u allowed", *nsections,
                 STATE_MAX_SECTIONS);
        return -EBADMSG;
    }
    return 0;
}

int state_file_parse(struct state_file *f, const uint8_t *data, size_t len, char *err,
                     size_t errlen)
{
    memset(f, 0, sizeof(*f));
    uint32_t n;
    int ret = parse_header(data, len, &f->version, &n, err, errlen);
    if (ret < 0)
        return ret;
    f->sections = calloc(n ? n : 1, sizeof(*f->sections));
    if (!f->sections) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct state_reader r;
    state_reader_init(&r, data, len - TRAILER_LEN);
    r.pos = HEADER_LEN;
    for (uint32_t i = 0; i < n; i++) {
        ret = parse_section(&r, &f->sections[i], err, errlen, i);
        if (ret < 0)
            goto fail;
        if (state_file_find(f, f->sections[i].id)) {
            snprintf(err, errlen, "section '%s' appears twice", f->sections[i].id);
            ret = -EBADMSG;
            goto fail;
        }
        f->nsections = i + 1;
    }
    if (r.pos != r.len) {
        snprintf(err, errlen, "%zu stray bytes after the last section", r.len - r.pos);
        ret = -EBADMSG;
        goto fail;
    }
    return 0;
fail:
    state_file_free(f);
    return ret;
}

void state_file_free(struct state_file *f)
{
    free(f->sections);
    memset(f, 0, sizeof(*f));
}

const struct state_section *state_file_find(const struct state_file *f, const char *id)
{
    for (uint32_t i = 0; i < f->nsections; i++)
        if (strcmp(f->sections[i].id, id) == 0)
            return &f->sections[i];
    return NULL;
}
