/*
 * memtouch: writes to every 4 KiB page of N MiB of RAM from 16 MiB up ("touch=N" on the
 * command line), so that the host must back them all. Used to see a memory limit on the
 * VM process enforced (kiln run --jail-cgroup memory.max=...). Prints its progress every
 * 16 MiB and "kiln-micro: touched all" at the end, then powers off.
 */
#include "micro.h"
#include "common.S"

#define TOUCH_BASE 0x1000000	/* 16 MiB: above the image and the scratch area */
#define TOUCH_LIMIT 0xc0000000	/* the PCI hole: RAM stops being contiguous here */

	.text
main:
	push %rbx
	push %r12
	STR %rdi, "touch="
	call cmdline_find
	test %rax, %rax
	jz .Lno_arg
	mov %rax, %rdi
	call parse_dec
	shl $20, %rax
	lea TOUCH_BASE(%rax), %r12	/* end address */
	mov $TOUCH_LIMIT, %ecx
	cmp %rcx, %r12
	ja .Ltoo_big
	lea -1(%r12), %rdi
	call e820_is_ram
	test %eax, %eax
	jz .Ltoo_big
	mov $TOUCH_BASE, %ebx
1:	cmp %r12, %rbx
	jae .Ldone
	mov %rbx, (%rbx)		/* any write makes the host back the page */
	add $0x1000, %rbx
	test $0xffffff, %ebx		/* every 16 MiB */
	jnz 1b
	PRINT "kiln-micro: touched "
	lea -TOUCH_BASE(%rbx), %rdi
	shr $20, %rdi
	call put_dec
	PRINT " MiB\n"
	jmp 1b
.Ldone:
	PRINT "kiln-micro: touched all\n"
	jmp .Lout
.Lno_arg:
	PRINT "FAIL memtouch: no touch=N on the command line\n"
	jmp .Lout
.Ltoo_big:
	PRINT "FAIL memtouch: touch=N reaches past the RAM below 3 GiB\n"
.Lout:
	pop %r12
	pop %rbx
	ret
