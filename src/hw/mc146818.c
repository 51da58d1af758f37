/*
 * MC146818 RTC and CMOS RAM. Register numbers and bits follow the Motorola MC146818A
 * datasheet; 0x32 is the century byte of the IBM PC/AT CMOS map (also what ACPI's FADT
 * CENTURY field points at).
 *
 * The time registers are not counters here: while register B's SET bit is clear they are
 * computed on every read from now() + offset_s. Setting SET freezes them (the datasheet's
 * "update cycle inhibited") so the guest can write a new time; clearing SET turns what was
 * written into a new offset_s. No interrupts are modelled (periodic, alarm, update-ended).
 */
#include "hw/mc146818.h"

#include <string.h>

#include "snapshot/state_file.h"

/* CMOS indexes. */
enum {
    CMOS_SECONDS = 0x00,
    CMOS_MINUTES = 0x02,
    CMOS_HOURS = 0x04,
    CMOS_DAY_OF_WEEK = 0x06,
    CMOS_DAY_OF_MONTH = 0x07,
    CMOS_MONTH = 0x08,
    CMOS_YEAR = 0x09,
    CMOS_REG_A = 0x0a,
    CMOS_REG_B = 0x0b,
    CMOS_REG_C = 0x0c,
    CMOS_REG_D = 0x0d,
    CMOS_CENTURY = 0x32,
};

#define INDEX_MASK 0x7f
#define INDEX_NMI_DISABLE 0x80 /* port 0x70 bit 7 gates NMI on the PC, not an RTC bit */

#define REG_A_UIP 0x80     /* update in progress: never, since there is no update cycle */
#define REG_A_DEFAULT 0x26 /* DV = 32.768 kHz time base, RS = 1024 Hz, as a BIOS leaves it */
#define REG_B_SET 0x80
#define REG_B_UIE 0x10
#define REG_B_DM_BINARY 0x04
#define REG_B_24H 0x02
#define REG_B_DEFAULT REG_B_24H /* 24-hour, BCD */
#define REG_D_VRT 0x80          /* valid RAM and time: the battery is fine */

#define HOUR_PM 0x80 /* 12-hour mode: bit 7 of the hours byte */

static time_t mc146818_host_now(void)
{
    return time(NULL);
}

static bool mc146818_is_time_reg(uint8_t index)
{
    switch (index) {
    case CMOS_SECONDS:
    case CMOS_MINUTES:
    case CMOS_HOURS:
    case CMOS_DAY_OF_WEEK:
    case CMOS_DAY_OF_MONTH:
    case CMOS_MONTH:
    case CMOS_YEAR:
    case CMOS_CENTURY:
        return true;
    default:
        return false;
    }
}

/* Register B.DM selects binary or BCD for every time and date byte. */
static uint8_t mc146818_encode(uint8_t reg_b, unsigned val)
{
    val %= 100;
    if (reg_b & REG_B_DM_BINARY)
        return (uint8_t)val;
    return (uint8_t)((val / 10) << 4 | (val % 10));
}

static unsigned mc146818_decode(uint8_t reg_b, uint8_t byte)
{
    if (reg_b & REG_B_DM_BINARY)
        return byte;
    return (byte >> 4) * 10 + (byte & 0x0f);
}

/* 12-hour mode counts 12, 1, ..., 11 with bit 7 set for PM. */
static uint8_t mc146818_encode_hour(uint8_t reg_b, unsigned hour)
{
    if (reg_b & REG_B_24H)
        return mc146818_encode(reg_b, hour);
    unsigned h12 = hour % 12 ? hour % 12 : 12;
    return mc146818_encode(reg_b, h12) | (hour >= 12 ? HOUR_PM : 0);
}

/* Returns the hour in 0-23, or -1 when the byte is not a valid hour for the mode. */
static int mc146818_decode_hour(uint8_t reg_b, uint8_t byte)
{
    if (reg_b & REG_B_24H) {
        unsigned h = mc146818_decode(reg_b, byte);
        return h < 24 ? (int)h : -1;
    }
    unsigned h12 = mc146818_decode(reg_b, byte & ~HOUR_PM);
    if (h12 < 1 || h12 > 12)
        return -1;
    return (int)(h12 % 12 + ((byte & HOUR_PM) ? 12 : 0));
}

/* Guest time as broken-down UTC; the epoch if the offset is out of any sane range. */
static void mc146818_guest_tm(const struct mc146818 *rtc, struct tm *tm)
{
    int64_t t;
    time_t tt;

    if (__builtin_add_overflow((int64_t)rtc->now(), rtc->state.offset_s, &t))
        t = 0;
    tt = (time_t)t;
    if (!gmtime_r(&tt, tm)) {
        tt = 0;
        gmtime_r(&tt, tm);
    }
}

/* Copies the current guest time into the time bytes, in register B's format. */
static void mc146818_latch_time(struct mc146818 *rtc)
{
    uint8_t *cmos = rtc->state.cmos;
    uint8_t b = cmos[CMOS_REG_B];
    struct tm tm;

    mc146818_guest_tm(rtc, &tm);
    long year = (long)tm.tm_year + 1900;
    if (year < 0)
        year = 0;
    cmos[CMOS_SECONDS] = mc146818_encode(b, (unsigned)tm.tm_sec);
    cmos[CMOS_MINUTES] = mc146818_encode(b, (unsigned)tm.tm_min);
    cmos[CMOS_HOURS] = mc146818_encode_hour(b, (unsigned)tm.tm_hour);
    cmos[CMOS_DAY_OF_WEEK] = mc146818_encode(b, (unsigned)tm.tm_wday + 1); /* Sunday is 1 */
    cmos[CMOS_DAY_OF_MONTH] = mc146818_encode(b, (unsigned)tm.tm_mday);
    cmos[CMOS_MONTH] = mc146818_encode(b, (unsigned)tm.tm_mon + 1);
    cmos[CMOS_YEAR] = mc146818_encode(b, (unsigned)(year % 100));
    cmos[CMOS_CENTURY] = mc146818_encode(b, (unsigned)(year / 100));
}

/*
 * Turns the time bytes, written in format `reg_b`, into a new offset. An impossible date
 * leaves the clock as it was rather than running from garbage. The day of week is not
 * stored: it always follows from the date.
 */
static void mc146818_commit_time(struct mc146818 *rtc, uint8_t reg_b)
{
    const uint8_t *cmos = rtc->state.cmos;
    struct tm tm = {0};
    int hour = mc146818_decode_hour(reg_b, cmos[CMOS_HOURS]);
    unsigned sec = mc146818_decode(reg_b, cmos[CMOS_SECONDS]);
    unsigned min = mc146818_decode(reg_b, cmos[CMOS_MINUTES]);
    unsigned mday = mc146818_decode(reg_b, cmos[CMOS_DAY_OF_MONTH]);
    unsigned mon = mc146818_decode(reg_b, cmos[CMOS_MONTH]);
    unsigned year = mc146818_decode(reg_b, cmos[CMOS_YEAR]);
    unsigned century = mc146818_decode(reg_b, cmos[CMOS_CENTURY]);

    if (hour < 0 || sec > 59 || min > 59 || mday < 1 || mday > 31 || mon < 1 || mon > 12 ||
        year > 99 || century > 99)
        return;
    tm.tm_sec = (int)sec;
    tm.tm_min = (int)min;
    tm.tm_hour = hour;
    tm.tm_mday = (int)mday;
    tm.tm_mon = (int)mon - 1;
    tm.tm_year = (int)(century * 100 + year) - 1900;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return;
    /* The host clock is whatever the host says: keep the old offset rather than overflow. */
    int64_t offset;
    if (!__builtin_sub_overflow((int64_t)t, (int64_t)rtc->now(), &offset))
        rtc->state.offset_s = offset;
}

/*
 * Register B. SET going 1 freezes the time bytes for the guest to rewrite (and clears UIE,
 * per the datasheet); SET going 0 starts the clock from what was written, decoded in the
 * format the guest used while writing.
 */
static void mc146818_write_reg_b(struct mc146818 *rtc, uint8_t val)
{
    uint8_t old = rtc->state.cmos[CMOS_REG_B];

    if (val & REG_B_SET)
        val &= ~REG_B_UIE;
    rtc->state.cmos[CMOS_REG_B] = val;
    if (!(old & REG_B_SET) && (val & REG_B_SET))
        mc146818_latch_time(rtc);
    else if ((old & REG_B_SET) && !(val & REG_B_SET))
        mc146818_commit_time(rtc, old);
}

/* Without SET the clock keeps running: a single write changes just that field, at once. */
static void mc146818_write_time(struct mc146818 *rtc, uint8_t index, uint8_t val)
{
    uint8_t *cmos = rtc->state.cmos;

    if (cmos[CMOS_REG_B] & REG_B_SET) {
        cmos[index] = val;
        return;
    }
    mc146818_latch_time(rtc);
    cmos[index] = val;
    mc146818_commit_time(rtc, cmos[CMOS_REG_B]);
}

static uint8_t mc146818_read_reg(struct mc146818 *rtc, uint8_t index)
{
    uint8_t *cmos = rtc->state.cmos;

    switch (index) {
    case CMOS_REG_A:
        return cmos[CMOS_REG_A] & ~REG_A_UIP;
    case CMOS_REG_C: {
        /* Interrupt flags, cleared by the read. Nothing ever sets them here. */
        uint8_t val = cmos[CMOS_REG_C];
        cmos[CMOS_REG_C] = 0;
        return val;
    }
    case CMOS_REG_D:
        return REG_D_VRT;
    default:
        if (mc146818_is_time_reg(index) && !(cmos[CMOS_REG_B] & REG_B_SET))
            mc146818_latch_time(rtc);
        return cmos[index];
    }
}

static void mc146818_write_reg(struct mc146818 *rtc, uint8_t index, uint8_t val)
{
    switch (index) {
    case CMOS_REG_A:
        /* UIP is read-only; the divider and rate bits are kept for the guest to read back. */
        rtc->state.cmos[CMOS_REG_A] = val & ~REG_A_UIP;
        break;
    case CMOS_REG_B:
        mc146818_write_reg_b(rtc, val);
        break;
    case CMOS_REG_C:
    case CMOS_REG_D:
        break; /* read-only */
    default:
        if (mc146818_is_time_reg(index))
            mc146818_write_time(rtc, index, val);
        else
            rtc->state.cmos[index] = val; /* NVRAM, including the alarm bytes */
        break;
    }
}

/* One byte at port 0x70 (offset 0, index) or 0x71 (offset 1, data). */
static void mc146818_access(struct mc146818 *rtc, unsigned port, uint8_t *byte, bool is_write)
{
    struct mc146818_state *s = &rtc->state;

    if (port == 0 && is_write) {
        s->index = *byte & INDEX_MASK;
        s->nmi_disabled = (*byte & INDEX_NMI_DISABLE) ? 1 : 0;
    } else if (port == 0) {
        /* Write-only on real boards; give back what was written, which is harmless. */
        *byte = (uint8_t)(s->index | (s->nmi_disabled ? INDEX_NMI_DISABLE : 0));
    } else if (is_write) {
        mc146818_write_reg(rtc, s->index & INDEX_MASK, *byte);
    } else {
        *byte = mc146818_read_reg(rtc, s->index & INDEX_MASK);
    }
}

void mc146818_init(struct mc146818 *rtc, time_t (*now)(void))
{
    rtc->state = (struct mc146818_state){0};
    rtc->state.cmos[CMOS_REG_A] = REG_A_DEFAULT;
    rtc->state.cmos[CMOS_REG_B] = REG_B_DEFAULT;
    rtc->state.cmos[CMOS_REG_D] = REG_D_VRT;
    rtc->now = now ? now : mc146818_host_now;
    pthread_mutex_init(&rtc->lock, NULL);
}

void mc146818_destroy(struct mc146818 *rtc)
{
    pthread_mutex_destroy(&rtc->lock);
}

void mc146818_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct mc146818 *rtc = opaque;

    if (offset >= MC146818_NR_PORTS)
        return;
    pthread_mutex_lock(&rtc->lock);
    /* A word write to 0x70 is index then data, as ISA splits it into byte cycles. */
    for (uint32_t i = 0; i < len && offset + i < MC146818_NR_PORTS; i++)
        mc146818_access(rtc, (unsigned)offset + i, &data[i], is_write);
    pthread_mutex_unlock(&rtc->lock);
}

/* ---- snapshot ---- */

void mc146818_save(struct mc146818 *rtc, struct state_writer *w)
{
    pthread_mutex_lock(&rtc->lock);
    struct mc146818_state s = rtc->state;
    pthread_mutex_unlock(&rtc->lock);
    state_put_u8(w, s.index);
    state_put_u8(w, s.nmi_disabled);
    state_put_bytes(w, s.cmos, sizeof(s.cmos));
    state_put_u64(w, (uint64_t)s.offset_s);
}

/* Guest time stays within what a 4-digit year can say: +-10,000 years from the host's. */
#define MC146818_MAX_OFFSET_S (10000LL * 366 * 24 * 3600)

int mc146818_state_load(struct mc146818_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->index = state_get_u8(r);
    s->nmi_disabled = state_get_u8(r);
    state_get_bytes(r, s->cmos, sizeof(s->cmos));
    s->offset_s = (int64_t)state_get_u64(r);
    if (s->index >= MC146818_CMOS_SIZE || s->nmi_disabled > 1 ||
        s->offset_s > MC146818_MAX_OFFSET_S || s->offset_s < -MC146818_MAX_OFFSET_S)
        state_reader_fail(r);
    return state_reader_done(r);
}

void mc146818_restore(struct mc146818 *rtc, const struct mc146818_state *s)
{
    pthread_mutex_lock(&rtc->lock);
    rtc->state = *s;
    pthread_mutex_unlock(&rtc->lock);
}
