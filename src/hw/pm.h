/*
 * Power management registers of a hardware-reduced ACPI platform (ACPI 6.x §4.8.3.7): the
 * sleep control and status registers and the reset register, all in one small port block
 * that the FADT points at. Writing SLP_EN with the \_S5 sleep type powers the VM off;
 * writing the reset value restarts it.
 */
#ifndef KILN_PM_H
#define KILN_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h" /* struct ratelimit */

struct state_reader;
struct state_writer;

#define PM_BASE 0x600
#define PM_NR_PORTS 8
#define PM_SLEEP_CONTROL 0 /* offset of the sleep control register */
#define PM_SLEEP_STATUS 1  /* offset of the sleep status register */
#define PM_RESET 4         /* offset of the reset register */
#define PM_RESET_VALUE 0x01
#define PM_S5_SLP_TYP 5 /* the sleep type kiln's \_S5 object returns */
/*
 * The power button's interrupt (the DSDT's Generic Event Device): an ISA line nothing else
 * uses. Hardware-reduced ACPI has no SCI or fixed power button, so events come this way.
 */
#define PM_POWER_BUTTON_GSI 5

/* Register bits, ACPI 6.4 §4.8.3.7 */
#define PM_SLP_EN 0x20     /* sleep control: enter the sleep state in SLP_TYP */
#define PM_SLP_TYP_SHIFT 2 /* sleep control bits 4:2 */
#define PM_SLP_TYP_MASK 0x07
#define PM_WAK_STS 0x80 /* sleep status: woke up; write 1 to clear */

struct pm_state {
    uint8_t sleep_status;
};

struct pm {
    struct pm_state state;
    pthread_mutex_t lock;      /* guards state and sleep_rl: any vCPU may write */
    struct ratelimit sleep_rl; /* warnings about sleep states kiln does not have */
    void (*poweroff)(void *opaque);
    void (*reset)(void *opaque);
    void *opaque;
};

void pm_init(struct pm *pm, void (*poweroff)(void *), void (*reset)(void *), void *opaque);
void pm_destroy(struct pm *pm);
/* bus_io_fn for the PM_NR_PORTS ports at PM_BASE; wider accesses act byte by byte. */
void pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);


/* Snapshots (docs/snapshot.md). */
#define PM_STATE_VERSION 1
void pm_save(struct pm *pm, struct state_writer *w);
int pm_state_load(struct pm_state *s, struct state_reader *r);
void pm_restore(struct pm *pm, const struct pm_state *s);

#endif
