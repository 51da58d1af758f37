/*
 * The snapshot state file (docs/snapshot.md): a magic, a format version, a list of
 * sections (string id, section version, flags, length, payload) and a CRC-32 over all of
 * it. Fields are written one by one in little-endian, never as C structs. The writer
 * builds the file in memory section by section, so a stream (a migration socket) can carry
 * the same bytes later; the reader checks every length before it reads.
 */
#ifndef KILN_STATE_FILE_H
#define KILN_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_FILE_MAGIC "KILNSNAP"
#define STATE_FILE_MAGIC_LEN 8
#define STATE_FILE_VERSION 1
#define STATE_FILE_MAX_SIZE (64u << 20) /* a state file is small: memory lives elsewhere */
#define STATE_ID_MAX 32                 /* bytes in a section id */
#define STATE_MAX_SECTIONS 4096
/* Section flags: a reader that does not know a mandatory section must refuse the file. */
#define STATE_SECTION_MANDATORY 0x1

struct state_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t section_start; /* offset of the open section's length field, or 0 */
    uint32_t nsections;
    int error; /* first error (-ENOMEM, -EFBIG, -EINVAL); later puts do nothing */
};

void state_writer_init(struct state_writer *w);
void state_writer_free(struct state_writer *w);
void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bytes(struct state_writer *w, const void *p, size_t len);
void state_put_bool(struct state_writer *w, bool v);
/* Opens a section; the previous one must be closed. */
void state_section_begin(struct state_writer *w, const char *id, uint16_t version, uint16_t flags);
void state_section_end(struct state_writer *w);
/*
 * Appends the trailer (CRC-32) and hands out the finished bytes (header fixed up).
 * Returns 0 or the first error met while writing.
 */
int state_writer_finish(struct state_writer *w, const uint8_t **data, size_t *len);


/*
 * A bounded cursor over bytes. A get past the end sets `error` (-EBADMSG) and returns 0,
 * so a parser can read a run of fields and check once.
 */
struct state_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    int error;
};

void state_reader_init(struct state_reader *r, const uint8_t *p, size_t len);
uint8_t state_get_u8(struct state_reader *r);
uint16_t state_get_u16(struct state_reader *r);
uint32_t state_get_u32(struct state_reader *r);
uint64_t state_get_u64(struct state_reader *r);
void state_get_bytes(struct state_reader *r, void *out, size_t len);
/* A 0/1 byte; anything else is an error. */
bool state_get_bool(struct state_reader *r);
/* Marks the reader bad (e.g. a field out of range) so the caller fails. */
void state_reader_fail(struct state_reader *r);
/* 0 if every get succeeded and the whole payload was consumed, else -EBADMSG. */
int state_reader_done(const struct state_reader *r);

struct state_section {
    char id[STATE_ID_MAX + 1];
    uint16_t version;
    uint16_t flags;
    const uint8_t *payload;
    uint32_t len;
};

/* The sections of a checked file; they point into the caller's bytes. */
struct state_file {
    uint32_t version;
    struct state_section *sections;
    uint32_t nsections;
};

/*
 * Checks magic, version, every section header and length, and the checksum. On error
 * returns -EBADMSG (or -ENOMEM) with a one-line reason in `err`.
 */
int state_file_parse(struct state_file *f, const uint8_t *data, size_t len, char *err,
                     size_t errlen);
void state_file_free(struct state_file *f);
/* The section with this id, or NULL. */
const struct state_section *state_file_find(const struct state_file *f, const char *id);

#endif
