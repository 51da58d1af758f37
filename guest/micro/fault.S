/*
 * fault: makes the vCPU fail, for kiln's error paths. Chosen on the command line:
 *   fault=ud2  (default) ud2 with no IDT: #UD -> #GP -> double fault -> triple fault, which
 *              KVM reports as KVM_EXIT_SHUTDOWN and kiln treats as a reset;
 *   fault=emul lock cmpxchg16b, which this machine's KVM cannot emulate
 *              (KVM_EXIT_INTERNAL_ERROR: kiln should exit 1).
 * CMOS NVRAM byte 0x52 counts boots: the boot after a triple-fault reset prints
 * "fault: boot 2" and powers off, so "reset" and "--no-reboot" can both be tested.
 */
#include "micro.h"
#include "common.S"

#define NVRAM_BOOTS 0x52

	.text
main:
	push %rbx
	mov $NVRAM_BOOTS, %edi
	call cmos_read
	lea 1(%rax), %ebx
	mov $NVRAM_BOOTS, %edi
	mov %ebx, %esi
	call cmos_write
	PRINT "fault: boot "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
	cmp $1, %ebx
	je 1f
	PRINT "fault: rebooted after the fault\n"
	mov $NVRAM_BOOTS, %edi
	xor %esi, %esi
	call cmos_write
	pop %rbx
	ret

1:	STR %rdi, "fault="
	call cmdline_find
	test %rax, %rax
	jz 2f
	mov %rax, %rdi
	STR %rsi, "emul"
	call word_eq
	test %eax, %eax
	jnz 3f
2:	PRINT "fault: ud2 without an IDT (triple fault)\n"
	ud2
	PRINT "FAIL fault: ud2 returned\n"
	pop %rbx
	ret

3:	PRINT "fault: lock cmpxchg16b\n"
	lea cx16_buf(%rip), %rdi
	xor %eax, %eax
	xor %edx, %edx
	mov $1, %ebx
	xor %ecx, %ecx
	lock cmpxchg16b (%rdi)
	PRINT "fault: lock cmpxchg16b was emulated\n"
	pop %rbx
	ret

	.data
	.balign 16
cx16_buf:	.quad 0, 0
