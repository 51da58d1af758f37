/*
 * dirty: counts like `count` ("count N" lines), and before each line rewrites the next
 * chunk of a window of RAM from 16 MiB up ("dirty=N" MiB, default 32; "chunk=N" pages per
 * line, default 256), sweep after sweep. Each page's first and last 8 bytes hold the number
 * of the sweep that last wrote it and are checked before they are written again, so a page
 * that a migration or a restore lost or left stale shows up as a FAIL line (the guest then
 * stops counting). Used by tests/micro/migrate_test.py.
 */
#include "micro.h"
#include "common.S"

#define DIRTY_BASE 0x1000000	/* 16 MiB: above the image and the scratch area */
#define DIRTY_LIMIT 0xc0000000	/* the PCI hole: RAM stops being contiguous here */
#define COUNT_SPIN 20000

	.text
/* Value of "name=N" on the command line (%rdi: "name="), or %rsi if it is absent. */
arg_or:
	push %rsi
	call cmdline_find
	pop %rsi
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	jmp parse_dec
1:	mov %rsi, %rax
	ret

main:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	STR %rdi, "dirty="
	mov $32, %esi
	call arg_or
	shl $20, %rax
	lea DIRTY_BASE(%rax), %r12	/* end of the window */
	mov $DIRTY_LIMIT, %ecx
	cmp %rcx, %r12
	ja .Ltoo_big
	lea -1(%r12), %rdi
	call e820_is_ram
	test %eax, %eax
	jz .Ltoo_big
	STR %rdi, "chunk="
	mov $256, %esi
	call arg_or
	mov %rax, %r15			/* pages per line */
	mov $DIRTY_BASE, %r13		/* next page to write */
	mov $1, %r14d			/* this sweep's number */
	xor %ebx, %ebx			/* the count */
.Lline:
	mov %r15, %rcx
.Lpage:
	lea -1(%r14), %rax		/* what the previous sweep left */
	cmp %rax, (%r13)
	jne .Lstale
	cmp %rax, 4088(%r13)
	jne .Lstale
	mov %r14, (%r13)
	mov %r14, 4088(%r13)
	add $0x1000, %r13
	cmp %r12, %r13
	jb 1f
	mov $DIRTY_BASE, %r13
	inc %r14
1:	dec %rcx
	jnz .Lpage
	PRINT "count "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
	inc %rbx
	mov $COUNT_SPIN, %ecx
2:	dec %ecx
	jnz 2b
	jmp .Lline
.Lstale:
	PRINT "FAIL dirty: page "
	PRINT_HEX %r13
	PRINT " holds "
	PRINT_HEX (%r13)
	PRINT " / "
	PRINT_HEX 4088(%r13)
	PRINT ", sweep "
	PRINT_HEX %r14
	PRINT "\n"
	call halt_forever
.Ltoo_big:
	PRINT "FAIL dirty: dirty=N reaches past the RAM below 3 GiB\n"
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret
