/*
 * exits: the exit-cost benchmark. EXIT_LOOPS port writes, then EXIT_LOOPS MMIO writes, each
 * one a VM exit that nothing claims (so every VMM does its dispatch and nothing else). A
 * line marks each phase's start and end; the host times the lines and divides by the count.
 */
#include "micro.h"
#include "common.S"

#define EXIT_LOOPS 100000
#define BENCH_PORT 0xdead		/* unclaimed in kiln and in QEMU */
#define BENCH_MMIO 0xd0000000		/* in the 32-bit PCI hole, no device there */

	.text
main:
	PRINT "exits: pio begin\n"
	mov $BENCH_PORT, %edx
	mov $EXIT_LOOPS, %ecx
1:	out %al, %dx
	dec %ecx
	jnz 1b
	PRINT "exits: pio end\n"

	PRINT "exits: mmio begin\n"
	mov $BENCH_MMIO, %edi
	mov $EXIT_LOOPS, %ecx
1:	movl %eax, (%rdi)
	dec %ecx
	jnz 1b
	PRINT "exits: mmio end\n"
	ret
