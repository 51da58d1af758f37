/*
 * A small AML (ACPI Machine Language) writer, enough for kiln's DSDT: names, integers,
 * strings, packages, buffers, resource templates, devices, scopes and methods that return
 * a constant (ACPI 6.4 §20.2). It writes into a caller-provided buffer and never allocates.
 *
 * Objects that carry a PkgLength are written as begin/end pairs: `*_begin` returns a mark,
 * the caller writes the contents, and `aml_end` (or `aml_buffer_end`) inserts the length in
 * front of them once it is known. Errors are sticky: after the first one every call is a
 * no-op and `err` says what went wrong (-ENOSPC: buffer full, -EINVAL: bad name or argument).
 */
#ifndef KILN_AML_H
#define KILN_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err;
};

void aml_init(struct aml *a, void *buf, size_t cap);
void aml_byte(struct aml *a, uint8_t byte);

/* "\\_SB.PCI0", "_S5", "^FOO": dotted segments of up to 4 characters, padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* The shortest encoding: ZeroOp, OneOp, or Byte/Word/DWord/QWord constant. */
void aml_integer(struct aml *a, uint64_t value);
/* Always a DWordConst, e.g. for _HID values that must keep their width. */
void aml_dword(struct aml *a, uint32_t value);
/* A compressed EISA id such as "PNP0A03", as the DWordConst that EisaId() produces. */
void aml_eisaid(struct aml *a, const char *id);
void aml_string(struct aml *a, const char *s);

/* NameOp: the caller writes the object right after. */
void aml_name(struct aml *a, const char *name);
/* Method (name, 0) { Return (value) } */
void aml_method_return_int(struct aml *a, const char *name, uint64_t value);
/* Method (name, nargs, Serialized or NotSerialized) { ... }, closed by aml_end. */
size_t aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized);
/* If (predicate) { ... }: the caller writes the predicate, then the body, then aml_end. */
size_t aml_if_begin(struct aml *a);
/* LEqual (operand, operand): the caller writes the two operands right after. */
void aml_lequal(struct aml *a);
/* ArgN, the method's N-th argument (0-6). */
void aml_arg(struct aml *a, unsigned n);
/* Notify (object, value) */
void aml_notify(struct aml *a, const char *object, uint64_t value);

size_t aml_scope_begin(struct aml *a, const char *name);
size_t aml_device_begin(struct aml *a, const char *name);
/* The caller writes exactly `count` data objects. */
size_t aml_package_begin(struct aml *a, uint8_t count);
/* Closes a scope, device or package. */
void aml_end(struct aml *a, size_t mark);

/* Buffer () { bytes }: the BufferSize is inserted by aml_buffer_end. */
size_t aml_buffer_begin(struct aml *a);
void aml_buffer_end(struct aml *a, size_t mark);

/* ResourceTemplate () { descriptors }: a buffer closed by an end tag (ACPI 6.4 §6.4). */
size_t aml_restemplate_begin(struct aml *a);
void aml_restemplate_end(struct aml *a, size_t mark);
/* IO (Decode16, min, max, align, len) */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags () { irq }: edge triggered, active high, exclusive */
void aml_res_irq_noflags(struct aml *a, unsigned irq);
/* Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi } (§6.4.3.6) */
void aml_res_interrupt_edge(struct aml *a, uint32_t gsi);
/* Windows a host bridge decodes (ResourceProducer, MinFixed, MaxFixed, PosDecode). */
void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max);

#endif
