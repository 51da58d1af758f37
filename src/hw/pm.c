#include "hw/pm.h"

#include <string.h>

#include "snapshot/state_file.h"

void pm_init(struct pm *pm, void (*poweroff)(void *), void (*reset)(void *), void *opaque)
{
    memset(pm, 0, sizeof(*pm));
    pthread_mutex_init(&pm->lock, NULL);
    pm->sleep_rl = (struct ratelimit)RATELIMIT_INIT(60, 5);
    pm->poweroff = poweroff;
    pm->reset = reset;
    pm->opaque = opaque;
}

void pm_destroy(struct pm *pm)
{
    pthread_mutex_destroy(&pm->lock);
}

/*
 * Sleep control register (ACPI 6.4 §4.8.3.7.1): SLP_EN starts the transition to the state
 * in SLP_TYP. kiln only has S5 (soft off); other states are refused, which the guest sees
 * as a sleep that did not happen.
 */
static void pm_sleep_control_write(struct pm *pm, uint8_t value)
{
    if (!(value & PM_SLP_EN))
        return;
    unsigned slp_typ = (value >> PM_SLP_TYP_SHIFT) & PM_SLP_TYP_MASK;
    if (slp_typ == PM_S5_SLP_TYP) {
        if (pm->poweroff)
            pm->poweroff(pm->opaque);
        return;
    }
    pthread_mutex_lock(&pm->lock);
    bool allow = ratelimit_allow(&pm->sleep_rl);
    pthread_mutex_unlock(&pm->lock);
    if (allow)
        log_warn("pm: guest asked for sleep type %u, only %u (S5) is supported; ignored", slp_typ,
                 PM_S5_SLP_TYP);
}

/* Sleep status register (§4.8.3.7.2): WAK_STS is cleared by writing 1 to it. */
static void pm_sleep_status_write(struct pm *pm, uint8_t value)
{
    pthread_mutex_lock(&pm->lock);
    pm->state.sleep_status &= (uint8_t) ~(value & PM_WAK_STS);
    pthread_mutex_unlock(&pm->lock);
}

/* Reset register (§4.8.3.6): only the value the FADT names resets the machine. */
static void pm_reset_write(struct pm *pm, uint8_t value)
{
    if (value == PM_RESET_VALUE && pm->reset)
        pm->reset(pm->opaque);
}

static void pm_write(struct pm *pm, uint64_t reg, uint8_t value)
{
    switch (reg) {
    case PM_SLEEP_CONTROL:
        pm_sleep_control_write(pm, value);
        break;
    case PM_SLEEP_STATUS:
        pm_sleep_status_write(pm, value);
        break;
    case PM_RESET:
        pm_reset_write(pm, value);
        break;
    default:
        break;
    }
}

static uint8_t pm_read(struct pm *pm, uint64_t reg)
{
    if (reg != PM_SLEEP_STATUS)
        return 0; /* sleep control and reset are write-only, the rest is reserved */
    pthread_mutex_lock(&pm->lock);
    uint8_t value = pm->state.sleep_status;
    pthread_mutex_unlock(&pm->lock);
    return value;
}

/*
 * The registers are a byte wide; a wider access touches consecutive registers, as it would
 * on a bus that splits it into byte cycles. The callbacks run without the lock held.
 */
void pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pm *pm = opaque;
    if (offset >= PM_NR_PORTS) { /* not from the bus; also keeps offset + i from wrapping */
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    for (uint32_t i = 0; i < len; i++) {
        if (is_write)
            pm_write(pm, offset + i, data[i]);
        else
            data[i] = pm_read(pm, offset + i);
    }
}

/* ---- snapshot ---- */

void pm_save(struct pm *pm, struct state_writer *w)
{
    pthread_mutex_lock(&pm->lock);
    state_put_u8(w, pm->state.sleep_status);
    pthread_mutex_unlock(&pm->lock);
}

int pm_state_load(struct pm_state *s, struct state_reader *r)
{
    s->sleep_status = state_get_u8(r);
    if (s->sleep_status & ~PM_WAK_STS) /* the only bit kiln's status register has */
        state_reader_fail(r);
    return state_reader_done(r);
}

void pm_restore(struct pm *pm, const struct pm_state *s)
{
    pthread_mutex_lock(&pm->lock);
    pm->state = *s;
    pthread_mutex_unlock(&pm->lock);
}
