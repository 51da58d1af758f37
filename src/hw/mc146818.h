/*
 * MC146818 real-time clock and CMOS RAM (ports 0x70-0x71). The clock reads the host's
 * time plus an offset that changes when the guest sets the clock.
 */
#ifndef KILN_MC146818_H
#define KILN_MC146818_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct state_reader;
struct state_writer;

#define MC146818_BASE 0x70
#define MC146818_NR_PORTS 2
#define MC146818_CMOS_SIZE 128

/* Guest-visible state: plain data, savable. */
struct mc146818_state {
    uint8_t index;                    /* last value written to port 0x70 (low 7 bits) */
    uint8_t nmi_disabled;             /* bit 7 of port 0x70 */
    uint8_t cmos[MC146818_CMOS_SIZE]; /* registers A-D and NVRAM; time bytes are computed */
    int64_t offset_s;                 /* guest time minus host time, in seconds */
};

struct mc146818 {
    struct mc146818_state state;
    pthread_mutex_t lock;
    time_t (*now)(void); /* host clock, replaceable in tests */
};

void mc146818_init(struct mc146818 *rtc, time_t (*now)(void));
void mc146818_destroy(struct mc146818 *rtc);
void mc146818_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);


/* Snapshots (docs/snapshot.md). */
#define MC146818_STATE_VERSION 1
void mc146818_save(struct mc146818 *rtc, struct state_writer *w);
int mc146818_state_load(struct mc146818_state *s, struct state_reader *r);
void mc146818_restore(struct mc146818 *rtc, const struct mc146818_state *s);

#endif
