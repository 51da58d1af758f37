/*
 * rtc: reads the CMOS clock the way firmware does (MC146818 datasheet: wait for UIP clear,
 * read twice until two reads agree, decode BCD/12-hour per register B) and prints
 * "rtc YYYY-MM-DD HH:MM:SS".
 */
#include "micro.h"
#include "common.S"

	.text
/* rtc_snapshot(%rdi buf): waits (bounded) for no update in progress, then reads the six time
 * registers and the century into buf[0..6]. */
rtc_snapshot:
	push %rbx
	push %r12
	mov %rdi, %rbx
	mov $100000, %r12d
1:	mov $RTC_REG_A, %edi
	call cmos_read
	test $RTC_A_UIP, %al
	jz 2f
	dec %r12d
	jnz 1b
2:	mov $RTC_SECONDS, %edi
	call cmos_read
	mov %al, 0(%rbx)
	mov $RTC_MINUTES, %edi
	call cmos_read
	mov %al, 1(%rbx)
	mov $RTC_HOURS, %edi
	call cmos_read
	mov %al, 2(%rbx)
	mov $RTC_DAY, %edi
	call cmos_read
	mov %al, 3(%rbx)
	mov $RTC_MONTH, %edi
	call cmos_read
	mov %al, 4(%rbx)
	mov $RTC_YEAR, %edi
	call cmos_read
	mov %al, 5(%rbx)
	mov $RTC_CENTURY, %edi
	call cmos_read
	mov %al, 6(%rbx)
	pop %r12
	pop %rbx
	ret

/* bcd(%edi) -> %eax: the binary value of a BCD byte */
bcd:
	mov %edi, %eax
	shr $4, %eax
	and $0xf, %eax
	imul $10, %eax, %eax
	and $0xf, %edi
	add %edi, %eax
	ret

/* put_2d(%edi): two decimal digits */
put_2d:
	push %rbx
	mov %edi, %eax
	xor %edx, %edx
	mov $10, %ecx
	div %ecx
	mov %edx, %ebx
	lea '0'(%rax), %edi
	call putc
	lea '0'(%rbx), %edi
	call putc
	pop %rbx
	ret

main:
	push %rbx
	push %r12
	push %r13
	/* read until two snapshots agree (an update may land between register reads) */
	mov $10, %r13d
1:	lea snap_a(%rip), %rdi
	call rtc_snapshot
	lea snap_b(%rip), %rdi
	call rtc_snapshot
	mov snap_a(%rip), %rax
	cmp snap_b(%rip), %rax
	je 2f
	dec %r13d
	jnz 1b
	PRINT "FAIL rtc-stable: no two reads agreed\n"
2:	mov $RTC_REG_B, %edi
	call cmos_read
	mov %eax, %r12d
	PRINT "rtc register-b "
	mov %r12, %rdi
	call put_hex
	PRINT "\n"

	/* decode in place: 0 sec, 1 min, 2 hour, 3 day, 4 month, 5 year, 6 century */
	lea snap_a(%rip), %rbx
	movzbl 2(%rbx), %eax
	mov %eax, %r13d
	and $0x80, %r13d		/* PM flag in 12-hour mode */
	and $0x7f, %eax
	mov %al, 2(%rbx)
	test $RTC_B_BINARY, %r12d
	jnz 4f
	xor %ecx, %ecx
3:	movzbl (%rbx, %rcx), %edi
	push %rcx
	call bcd
	pop %rcx
	mov %al, (%rbx, %rcx)
	inc %ecx
	cmp $7, %ecx
	jb 3b
4:	test $RTC_B_24H, %r12d
	jnz 5f
	/* 12-hour: 12 AM is 0, 12 PM is 12 */
	movzbl 2(%rbx), %eax
	cmp $12, %eax
	jne 6f
	xor %eax, %eax
6:	test %r13d, %r13d
	jz 7f
	add $12, %eax
7:	mov %al, 2(%rbx)
5:	/* century register: trust it only when it looks like 19..21 */
	movzbl 6(%rbx), %eax
	cmp $19, %eax
	jb 8f
	cmp $21, %eax
	jbe 9f
8:	mov $20, %eax
9:	imul $100, %eax, %eax
	movzbl 5(%rbx), %ecx
	add %ecx, %eax
	mov %eax, %r13d			/* full year */

	PRINT "rtc "
	mov %r13, %rdi
	call put_dec
	PRINT "-"
	movzbl 4(%rbx), %edi
	call put_2d
	PRINT "-"
	movzbl 3(%rbx), %edi
	call put_2d
	PRINT " "
	movzbl 2(%rbx), %edi
	call put_2d
	PRINT ":"
	movzbl 1(%rbx), %edi
	call put_2d
	PRINT ":"
	movzbl 0(%rbx), %edi
	call put_2d
	PRINT "\n"
	pop %r13
	pop %r12
	pop %rbx
	ret

	.data
	.balign 8
snap_a:	.quad 0
snap_b:	.quad 0
