/*
 * idle: prints `kiln-micro: ready`, then halts with interrupts off for good, so that a
 * benchmark can read the VMM's memory (/proc/PID/status, smaps) while the VM is up.
 */
#include "micro.h"
#include "common.S"

	.text
main:
	PRINT "kiln-micro: ready\n"
	jmp halt_forever
