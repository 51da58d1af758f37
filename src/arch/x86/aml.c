#include "arch/x86/aml.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Opcodes and prefixes, ACPI 6.4 §20.2 */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_EXT_DEVICE_OP 0x82
#define AML_ROOT_CHAR '\\'
#define AML_PARENT_PREFIX_CHAR '^'
#define AML_RETURN_OP 0xa4
#define AML_ARG0_OP 0x68
#define AML_NOTIFY_OP 0x86
#define AML_LEQUAL_OP 0x93
#define AML_IF_OP 0xa0
#define AML_METHOD_MAX_ARGS 7
#define AML_METHOD_SERIALIZED 0x08 /* MethodFlags bit 3; bits 2:0 are the argument count */
#define AML_NAME_SEG_LEN 4

/* Resource descriptor tags, ACPI 6.4 §6.4.2 (small) and §6.4.3 (large) */
#define RES_IRQ_NOFLAGS 0x22   /* small item 0x04, length 2 */
#define RES_IO 0x47            /* small item 0x08, length 7 */
#define RES_END_TAG 0x79       /* small item 0x0f, length 1 */
#define RES_DWORD_ADDRESS 0x87 /* large item 0x07 */
#define RES_EXTENDED_IRQ 0x89  /* large item 0x09 */
#define RES_EXTENDED_IRQ_LEN 6 /* flags, table length, one interrupt number */
#define RES_IRQ_CONSUMER 0x01  /* extended IRQ flags: bit 0 consumer, bit 1 edge */
#define RES_IRQ_EDGE 0x02
#define RES_WORD_ADDRESS 0x88 /* large item 0x08 */
#define RES_WORD_ADDRESS_LEN 13
#define RES_DWORD_ADDRESS_LEN 23

/* Address space descriptor fields, ACPI 6.4 §6.4.3.5 */
#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO 1
#define RES_TYPE_BUS 2
#define RES_GEN_MIN_MAX_FIXED 0x0c /* _MIF | _MAF; _DEC = 0 (positive), producer */
#define RES_IO_ENTIRE_RANGE 0x03   /* _RNG */
#define RES_MEM_READ_WRITE 0x01    /* _RW; _MEM = 0: non-cacheable */

void aml_init(struct aml *a, void *buf, size_t cap)
{
    a->buf = buf;
    a->len = 0;
    a->cap = cap;
    a->err = 0;
}

static void aml_fail(struct aml *a, int err)
{
    if (!a->err)
        a->err = err;
}

void aml_byte(struct aml *a, uint8_t byte)
{
    if (a->err)
        return;
    if (a->len >= a->cap) {
        aml_fail(a, -ENOSPC);
        return;
    }
    a->buf[a->len++] = byte;
}

static void aml_le(struct aml *a, uint64_t value, unsigned nbytes)
{
    for (unsigned i = 0; i < nbytes; i++)
        aml_byte(a, (uint8_t)(value >> (8 * i)));
}

/* Inserts `n` bytes at `pos`, moving what follows: how lengths get in front of contents. */
static void aml_insert(struct aml *a, size_t pos, const uint8_t *bytes, size_t n)
{
    if (a->err)
        return;
    if (pos > a->len) {
        aml_fail(a, -EINVAL);
        return;
    }
    if (n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
    memcpy(a->buf + pos, bytes, n);
    a->len += n;
}

/*
 * PkgLength counts itself (§20.2.4): one byte holds up to 63; otherwise bits 7:6 of the
 * lead byte give the number of following bytes, its bits 3:0 are the low nibble and the
 * following bytes the higher bits. Returns the encoded size, or 0 if too long.
 */
static size_t aml_pkglength_encode(size_t content, uint8_t out[4])
{
    if (content + 1 <= 0x3f) {
        out[0] = (uint8_t)(content + 1);
        return 1;
    }
    for (size_t n = 2; n <= 4; n++) {
        size_t total = content + n;
        if (total > ((size_t)1 << (4 + 8 * (n - 1))) - 1)
            continue; /* n bytes hold 4 + 8 * (n - 1) bits */
        out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
        for (size_t i = 1; i < n; i++)
            out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
        return n;
    }
    return 0;
}

void aml_end(struct aml *a, size_t mark)
{
    if (a->err)
        return;
    if (mark > a->len) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t enc[4];
    size_t n = aml_pkglength_encode(a->len - mark, enc);
    if (n == 0) {
        aml_fail(a, -ENOSPC);
        return;
    }
    aml_insert(a, mark, enc, n);
}

static bool aml_is_lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool aml_is_name_char(char c)
{
    return aml_is_lead_char(c) || (c >= '0' && c <= '9');
}

/* One NameSeg (§20.2.2) from `s`, `n` characters, padded to 4 with '_'. */
static void aml_name_seg(struct aml *a, const char *s, size_t n)
{
    if (n == 0 || n > AML_NAME_SEG_LEN || !aml_is_lead_char(s[0])) {
        aml_fail(a, -EINVAL);
        return;
    }
    for (size_t i = 0; i < AML_NAME_SEG_LEN; i++) {
        char c = i < n ? s[i] : '_';
        if (!aml_is_name_char(c)) {
            aml_fail(a, -EINVAL);
            return;
        }
        aml_byte(a, (uint8_t)c);
    }
}

void aml_name_string(struct aml *a, const char *path)
{
    if (*path == AML_ROOT_CHAR) {
        aml_byte(a, (uint8_t)*path++);
    } else {
        while (*path == AML_PARENT_PREFIX_CHAR)
            aml_byte(a, (uint8_t)*path++);
    }
    if (*path == '\0') {
        aml_byte(a, AML_ZERO_OP); /* NullName */
        return;
    }
    size_t nsegs = 1;
    for (const char *p = path; *p; p++)
        nsegs += *p == '.';
    if (nsegs > 255) {
        aml_fail(a, -EINVAL);
        return;
    }
    if (nsegs == 2) {
        aml_byte(a, AML_DUAL_NAME_PREFIX);
    } else if (nsegs > 2) {
        aml_byte(a, AML_MULTI_NAME_PREFIX);
        aml_byte(a, (uint8_t)nsegs);
    }
    while (*path) {
        size_t n = strcspn(path, ".");
        aml_name_seg(a, path, n);
        path += n;
        if (*path == '.' && *++path == '\0')
            aml_fail(a, -EINVAL); /* trailing dot */
    }
}

void aml_integer(struct aml *a, uint64_t value)
{
    if (value == 0) {
        aml_byte(a, AML_ZERO_OP);
    } else if (value == 1) {
        aml_byte(a, AML_ONE_OP);
    } else if (value <= UINT8_MAX) {
        aml_byte(a, AML_BYTE_PREFIX);
        aml_le(a, value, 1);
    } else if (value <= UINT16_MAX) {
        aml_byte(a, AML_WORD_PREFIX);
        aml_le(a, value, 2);
    } else if (value <= UINT32_MAX) {
        aml_byte(a, AML_DWORD_PREFIX);
        aml_le(a, value, 4);
    } else {
        aml_byte(a, AML_QWORD_PREFIX);
        aml_le(a, value, 8);
    }
}

void aml_dword(struct aml *a, uint32_t value)
{
    aml_byte(a, AML_DWORD_PREFIX);
    aml_le(a, value, 4);
}

static int aml_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * EISA ids pack three letters in 5 bits each ('A' = 1) and four hex digits, most
 * significant first in memory (ACPI 6.4 §6.1.5, _HID).
 */
void aml_eisaid(struct aml *a, const char *id)
{
    if (strlen(id) != 7) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t letters[3];
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            aml_fail(a, -EINVAL);
            return;
        }
        letters[i] = (uint8_t)(id[i] - 'A' + 1);
    }
    int digits[4];
    for (int i = 0; i < 4; i++) {
        digits[i] = aml_hex_digit(id[3 + i]);
        if (digits[i] < 0) {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    uint8_t bytes[4] = {
        (uint8_t)((letters[0] << 2) | (letters[1] >> 3)),
        (uint8_t)(((letters[1] & 7) << 5) | letters[2]),
        (uint8_t)((digits[0] << 4) | digits[1]),
        (uint8_t)((digits[2] << 4) | digits[3]),
    };
    aml_byte(a, AML_DWORD_PREFIX);
    for (int i = 0; i < 4; i++)
        aml_byte(a, bytes[i]);
}

/* String: ASCII 0x01-0x7f, NUL terminated (§20.2.3). */
void aml_string(struct aml *a, const char *s)
{
    aml_byte(a, AML_STRING_PREFIX);
    for (; *s; s++) {
        if ((unsigned char)*s > 0x7f) {
            aml_fail(a, -EINVAL);
            return;
        }
        aml_byte(a, (uint8_t)*s);
    }
    aml_byte(a, 0);
}

void aml_name(struct aml *a, const char *name)
{
    aml_byte(a, AML_NAME_OP);
    aml_name_string(a, name);
}

size_t aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized)
{
    if (nargs >= AML_METHOD_MAX_ARGS + 1)
        aml_fail(a, -EINVAL);
    aml_byte(a, AML_METHOD_OP);
    size_t mark = a->len;
    aml_name_string(a, name);
    /* MethodFlags: argument count, serialization, SyncLevel 0 (§19.6.85) */
    aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? AML_METHOD_SERIALIZED : 0)));
    return mark;
}

void aml_method_return_int(struct aml *a, const char *name, uint64_t value)
{
    size_t mark = aml_method_begin(a, name, 0, false);
    aml_byte(a, AML_RETURN_OP);
    aml_integer(a, value);
    aml_end(a, mark);
}

size_t aml_if_begin(struct aml *a)
{
    aml_byte(a, AML_IF_OP);
    return a->len;
}

void aml_lequal(struct aml *a)
{
    aml_byte(a, AML_LEQUAL_OP);
}

void aml_arg(struct aml *a, unsigned n)
{
    if (n >= AML_METHOD_MAX_ARGS) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, (uint8_t)(AML_ARG0_OP + n));
}

void aml_notify(struct aml *a, const char *object, uint64_t value)
{
    aml_byte(a, AML_NOTIFY_OP);
    aml_name_string(a, object);
    aml_integer(a, value);
}

size_t aml_scope_begin(struct aml *a, const char *name)
{
    aml_byte(a, AML_SCOPE_OP);
    size_t mark = a->len;
    aml_name_string(a, name);
    return mark;
}

size_t aml_device_begin(struct aml *a, const char *name)
{
    aml_byte(a, AML_EXT_OP_PREFIX);
    aml_byte(a, AML_EXT_DEVICE_OP);
    size_t mark = a->len;
    aml_name_string(a, name);
    return mark;
}

size_t aml_package_begin(struct aml *a, uint8_t count)
{
    aml_byte(a, AML_PACKAGE_OP);
    size_t mark = a->len;
    aml_byte(a, count); /* NumElements */
    return mark;
}

size_t aml_buffer_begin(struct aml *a)
{
    aml_byte(a, AML_BUFFER_OP);
    return a->len;
}

/* BufferSize is an integer object in front of the bytes, inside the PkgLength (§20.2.5.4). */
void aml_buffer_end(struct aml *a, size_t mark)
{
    if (a->err)
        return;
    if (mark > a->len) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t size_enc[9];
    struct aml size;
    aml_init(&size, size_enc, sizeof(size_enc));
    aml_integer(&size, a->len - mark);
    aml_insert(a, mark, size_enc, size.len);
    aml_end(a, mark);
}

size_t aml_restemplate_begin(struct aml *a)
{
    return aml_buffer_begin(a);
}

/* A zero checksum in the end tag means "treat as valid" (§6.4.2.9). */
void aml_restemplate_end(struct aml *a, size_t mark)
{
    aml_byte(a, RES_END_TAG);
    aml_byte(a, 0);
    aml_buffer_end(a, mark);
}

/* I/O port descriptor, §6.4.2.5; bit 0 of the information byte = 16-bit decode. */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    aml_byte(a, RES_IO);
    aml_byte(a, 0x01);
    aml_le(a, min, 2);
    aml_le(a, max, 2);
    aml_byte(a, align);
    aml_byte(a, len);
}

/* IRQ descriptor without the information byte, §6.4.2.1. */
void aml_res_irq_noflags(struct aml *a, unsigned irq)
{
    if (irq > 15) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, RES_IRQ_NOFLAGS);
    aml_le(a, 1u << irq, 2);
}

/* Extended interrupt descriptor with one interrupt and no resource source, §6.4.3.6. */
void aml_res_interrupt_edge(struct aml *a, uint32_t gsi)
{
    aml_byte(a, RES_EXTENDED_IRQ);
    aml_le(a, RES_EXTENDED_IRQ_LEN, 2);
    aml_byte(a, RES_IRQ_CONSUMER | RES_IRQ_EDGE); /* active high, exclusive, not wake */
    aml_byte(a, 1);                               /* interrupt table length */
    aml_le(a, gsi, 4);
}

/* Word address space descriptor, §6.4.3.5.3. */
static void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
                         uint16_t max)
{
    if (max < min || (min == 0 && max == UINT16_MAX)) {
        aml_fail(a, -EINVAL); /* the length would not fit in 16 bits */
        return;
    }
    aml_byte(a, RES_WORD_ADDRESS);
    aml_le(a, RES_WORD_ADDRESS_LEN, 2);
    aml_byte(a, type);
    aml_byte(a, RES_GEN_MIN_MAX_FIXED);
    aml_byte(a, type_flags);
    aml_le(a, 0, 2); /* _GRA */
    aml_le(a, min, 2);
    aml_le(a, max, 2);
    aml_le(a, 0, 2); /* _TRA */
    aml_le(a, (uint16_t)(max - min + 1), 2);
}

void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
    aml_res_word(a, RES_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
    aml_res_word(a, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, min, max);
}

/* DWord address space descriptor, §6.4.3.5.2. */
void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max)
{
    if (max < min || (min == 0 && max == UINT32_MAX)) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, RES_DWORD_ADDRESS);
    aml_le(a, RES_DWORD_ADDRESS_LEN, 2);
    aml_byte(a, RES_TYPE_MEMORY);
    aml_byte(a, RES_GEN_MIN_MAX_FIXED);
    aml_byte(a, RES_MEM_READ_WRITE);
    aml_le(a, 0, 4); /* _GRA */
    aml_le(a, min, 4);
    aml_le(a, max, 4);
    aml_le(a, 0, 4); /* _TRA */
    aml_le(a, max - min + 1, 4);
}
