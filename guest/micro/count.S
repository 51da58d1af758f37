/*
 * count: prints "count N" lines forever with a busy loop (no exits) between them, so a
 * host can watch the guest make progress, and stop making it while the VM is paused.
 */
#include "micro.h"
#include "common.S"

#define COUNT_SPIN 20000

	.text
main:
	xor %ebx, %ebx
1:	PRINT "count "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
	inc %rbx
	mov $COUNT_SPIN, %ecx
2:	dec %ecx
	jnz 2b
	jmp 1b
