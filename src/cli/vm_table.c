#include "cli/vm_table.h"

#include <inttypes.h>
#include <string.h>

#include "util.h"

void format_uptime(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "-");
    else if (s < 60)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
}

void format_mem_mib(unsigned long long mib, char *buf, size_t len)
{
    if (mib == 0)
        snprintf(buf, len, "-");
    else if (mib % 1024 == 0)
        snprintf(buf, len, "%lluG", mib / 1024);
    else
        snprintf(buf, len, "%lluM", mib);
}

enum { COL_NAME, COL_STATE, COL_PID, COL_VCPUS, COL_MEMORY, COL_UPTIME, NCOLS };

static const char *const headers[NCOLS] = {"NAME", "STATE", "PID", "VCPUS", "MEMORY", "UPTIME"};

/* The cells of one row as text; numbers are right-aligned when printed. */
static void row_cells(const struct vm_row *r, char cells[NCOLS][VM_NAME_MAX + 1])
{
    snprintf(cells[COL_NAME], sizeof(cells[0]), "%s", r->name);
    snprintf(cells[COL_STATE], sizeof(cells[0]), "%s", r->state);
    if (r->pid > 0)
        snprintf(cells[COL_PID], sizeof(cells[0]), "%d", r->pid);
    else
        snprintf(cells[COL_PID], sizeof(cells[0]), "-");
    if (r->vcpus)
        snprintf(cells[COL_VCPUS], sizeof(cells[0]), "%u", r->vcpus);
    else
        snprintf(cells[COL_VCPUS], sizeof(cells[0]), "-");
    format_mem_mib(r->mem_mib, cells[COL_MEMORY], sizeof(cells[0]));
    format_uptime(r->uptime_s, cells[COL_UPTIME], sizeof(cells[0]));
}

static void print_line(FILE *out, const char *const cells[NCOLS], const size_t width[NCOLS])
{
    static const bool right[NCOLS] = {[COL_PID] = true, [COL_VCPUS] = true, [COL_MEMORY] = true};
    for (int c = 0; c < NCOLS; c++) {
        /* The last column is not padded: no trailing blanks. */
        int w = c == NCOLS - 1 && !right[c] ? 0 : (int)width[c];
        fprintf(out, right[c] ? "%*s" : "%-*s", w, cells[c]);
        fputs(c == NCOLS - 1 ? "\n" : "  ", out);
    }
}

void vm_table_print(FILE *out, const struct vm_row *rows, size_t n)
{
    size_t width[NCOLS];
    for (int c = 0; c < NCOLS; c++)
        width[c] = strlen(headers[c]);
    char cells[NCOLS][VM_NAME_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        row_cells(&rows[i], cells);
        for (int c = 0; c < NCOLS; c++)
            if (strlen(cells[c]) > width[c])
                width[c] = strlen(cells[c]);
    }
    print_line(out, headers, width);
    for (size_t i = 0; i < n; i++) {
        row_cells(&rows[i], cells);
        const char *ptrs[NCOLS];
        for (int c = 0; c < NCOLS; c++)
            ptrs[c] = cells[c];
        print_line(out, ptrs, width);
    }
}
