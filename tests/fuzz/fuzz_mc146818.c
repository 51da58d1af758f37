/*
 * The RTC/CMOS (hw/mc146818.c) through the port bus: index and data port accesses of any
 * width, BCD/binary and 12/24-hour modes, alarms, NVRAM, at a wall-clock time the input
 * chooses (first 8 bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_guest.h"
#include "hw/mc146818.h"
#include "vmm/bus.h"

/* The clock the RTC reads; set from each input before the run (the hook takes no opaque). */
static time_t fuzz_now;

static time_t input_clock(void)
{
    return fuzz_now;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    int64_t t;
    memcpy(&t, data, 8);
    fuzz_now = (time_t)t;
    struct mc146818 rtc;
    memset(&rtc, 0, sizeof(rtc));
    mc146818_init(&rtc, input_clock);
    struct bus bus;
    bus_init(&bus, "pio");
    if (bus_register(&bus, MC146818_BASE, MC146818_NR_PORTS, "rtc", mc146818_io, &rtc) < 0)
        abort();
    fuzz_bus_run(&bus, MC146818_BASE, MC146818_NR_PORTS, 4, data + 8, size - 8);
    bus_destroy(&bus);
    mc146818_destroy(&rtc);
    return 0;
}
