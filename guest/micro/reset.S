/*
 * reset: reboots the VM once and checks that the second boot looks like the first.
 * CMOS NVRAM byte 0x50 (kept across a VM reset) tells the boots apart: not 0xa5 -> first
 * boot: set it, reset; 0xa5 -> second boot: clear it, power off. "via=kbd" on the command
 * line resets through the i8042 (command 0xfe), anything else through the ACPI reset
 * register (port 0x604). Byte 0x51 counts boots so a reset that loses NVRAM cannot loop.
 * "resets=N" resets N times in all (boots N+1 times) before powering off.
 */
#include "micro.h"
#include "common.S"
#include "entrycheck.S"

#define NVRAM_FLAG 0x50
#define NVRAM_BOOTS 0x51
#define FLAG_MAGIC 0xa5

	.text
main:
	push %rbx
	push %r12
	/* every boot must start in the documented state: report failures only */
	movb $1, check_quiet(%rip)
	call check_entry_regs
	movb $0, check_quiet(%rip)
	mov fail_count(%rip), %edi
	xor %esi, %esi
	STR %rdx, "reset-entry-state"
	call check_eq

	mov $1, %r12d			/* resets wanted */
	STR %rdi, "resets="
	call cmdline_find
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	call parse_dec
	mov %eax, %r12d
1:	mov $NVRAM_BOOTS, %edi
	call cmos_read
	lea 1(%rax), %ebx
	mov $NVRAM_BOOTS, %edi
	mov %ebx, %esi
	call cmos_write
	PRINT "reset: boot "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
	lea 2(%r12), %eax
	cmp %eax, %ebx
	jbe 2f
	PRINT "FAIL reset: too many boots\n"
	jmp 9f

2:	mov $NVRAM_FLAG, %edi
	call cmos_read
	cmp $FLAG_MAGIC, %eax
	je 5f

	/* first boot */
	mov $NVRAM_FLAG, %edi
	mov $FLAG_MAGIC, %esi
	call cmos_write
	mov $NVRAM_FLAG, %edi
	call cmos_read
	mov %eax, %edi
	mov $FLAG_MAGIC, %esi
	STR %rdx, "reset-nvram-write"
	call check_eq
	PRINT "reset: first boot, resetting via "
	jmp 6f

5:	/* a later boot: NVRAM survived the reset */
	cmp %r12d, %ebx
	jbe 7f
	cmp $2, %ebx
	jne 8f
	PRINT "reset: second boot\n"
8:	PRINT "reset: boot "
	mov %rbx, %rdi
	call put_dec
	PRINT " was the last\n"
	mov $NVRAM_FLAG, %edi
	xor %esi, %esi
	call cmos_write
9:	mov $NVRAM_BOOTS, %edi
	xor %esi, %esi
	call cmos_write
	pop %r12
	pop %rbx
	ret

7:	PRINT "reset: resetting again via "
6:	STR %rdi, "via="
	call cmdline_find
	test %rax, %rax
	jz 3f
	mov %rax, %rdi
	STR %rsi, "kbd"
	call word_eq
	test %eax, %eax
	jz 3f
	PRINT "i8042\n"
	call reset_kbd
3:	PRINT "acpi\n"
	call reset_acpi
