/*
 * An interrupt line as a device sees it: a GSI and a way to set its level. Devices raise
 * and lower lines through this and never touch KVM directly, so unit tests can observe them.
 */
#ifndef KILN_IRQ_H
#define KILN_IRQ_H

#include <stdbool.h>

struct irq_line {
    void (*set_level)(void *ctx, unsigned gsi, bool level);
    void *ctx;
    unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *line, bool level)
{
    if (line->set_level)
        line->set_level(line->ctx, line->gsi, level);
}

#endif
