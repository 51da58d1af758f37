/*
 * io: exercises accesses nobody claims. Port reads must return all ones and MMIO reads of
 * unmapped guest-physical addresses too; writes must be ignored; string port I/O (rep ins /
 * rep outs, several bytes per exit) must work. kiln must keep running throughout.
 */
#include "micro.h"
#include "common.S"

#define UNCLAIMED_PORT 0xdead
#define UNMAPPED_MMIO 0xd0000000	/* in the 32-bit PCI hole, no device there */
#define GAP_MMIO 0xbff00000		/* below the hole: unmapped unless the VM has ~3 GiB */

	.text
main:
	push %rbx
	push %r12

	/* ---- port reads ---- */
	mov $UNCLAIMED_PORT, %edx
	xor %eax, %eax
	inb %dx, %al
	movzbl %al, %edi
	mov $0xff, %esi
	STR %rdx, "io-inb"
	call check_eq
	mov $UNCLAIMED_PORT, %edx
	xor %eax, %eax
	inw %dx, %ax
	movzwl %ax, %edi
	mov $0xffff, %esi
	STR %rdx, "io-inw"
	call check_eq
	mov $UNCLAIMED_PORT, %edx
	xor %eax, %eax
	inl %dx, %eax
	mov %eax, %edi
	mov $0xffffffff, %esi
	STR %rdx, "io-inl"
	call check_eq
	/* a 4-byte read at the last port: the access runs past 0xffff */
	mov $0xffff, %edx
	inl %dx, %eax
	mov %eax, %edi
	mov $0xffffffff, %esi
	STR %rdx, "io-inl-last-port"
	call check_eq

	/* ---- port writes (must be ignored) ---- */
	mov $0x12345678, %eax
	mov $UNCLAIMED_PORT, %edx
	outb %al, %dx
	outw %ax, %dx
	outl %eax, %dx
	mov $0xffff, %edx
	outl %eax, %dx
	xor %edx, %edx			/* port 0: ISA DMA, not emulated */
	outb %al, %dx
	mov $0xed, %edx
	outb %al, %dx
	mov $1, %edi
	STR %rsi, "io-writes-survived"
	call check

	/* ---- string port I/O ---- */
	lea io_buf(%rip), %rdi
	mov $UNCLAIMED_PORT, %edx
	mov $16, %ecx
	rep insb
	lea io_buf(%rip), %rsi
	mov (%rsi), %rax
	and 8(%rsi), %rax
	mov %rax, %rdi
	mov $-1, %rsi
	STR %rdx, "io-rep-insb"
	call check_eq
	lea io_buf(%rip), %rdi
	mov $UNCLAIMED_PORT, %edx
	mov $4, %ecx
	rep insl
	lea io_buf(%rip), %rsi
	mov (%rsi), %rax
	and 8(%rsi), %rax
	mov %rax, %rdi
	mov $-1, %rsi
	STR %rdx, "io-rep-insl"
	call check_eq
	lea io_buf(%rip), %rsi
	mov $UNCLAIMED_PORT, %edx
	mov $16, %ecx
	rep outsb
	/* the same through COM1: the whole line goes out in one exit */
	lea outs_line(%rip), %rsi
	mov $COM1 + UART_THR, %edx
	mov $outs_line_len, %ecx
	rep outsb

	/* ---- MMIO reads and writes where nothing is mapped ---- */
	mov $UNMAPPED_MMIO, %ebx
	movzbl (%rbx), %edi
	mov $0xff, %esi
	STR %rdx, "mmio-readb"
	call check_eq
	movzwl (%rbx), %edi
	mov $0xffff, %esi
	STR %rdx, "mmio-readw"
	call check_eq
	mov (%rbx), %edi
	mov $0xffffffff, %esi
	STR %rdx, "mmio-readl"
	call check_eq
	mov (%rbx), %rdi
	mov $-1, %rsi
	STR %rdx, "mmio-readq"
	call check_eq
	mov 0x1(%rbx), %edi		/* unaligned */
	mov $0xffffffff, %esi
	STR %rdx, "mmio-read-unaligned"
	call check_eq
	mov 0xffc(%rbx), %rdi		/* crosses a page: two exits */
	mov $-1, %rsi
	STR %rdx, "mmio-read-page-split"
	call check_eq
	movb $0x5a, (%rbx)
	movw $0x5a5a, (%rbx)
	movl $0x5a5a5a5a, (%rbx)
	mov $0x5a5a5a5a5a5a5a5a, %rax
	mov %rax, (%rbx)
	mov %rax, 0xffc(%rbx)
	mov (%rbx), %rdi
	mov $-1, %rsi
	STR %rdx, "mmio-write-ignored"
	call check_eq

	/* below the hole, when that is not RAM */
	mov $GAP_MMIO, %edi
	call e820_is_ram
	test %eax, %eax
	jnz 1f
	mov $GAP_MMIO, %ebx
	mov (%rbx), %rdi
	mov $-1, %rsi
	STR %rdx, "mmio-read-above-ram"
	call check_eq
	movl $0, (%rbx)
	mov $1, %edi
	STR %rsi, "mmio-write-above-ram-survived"
	call check
1:
	PRINT "io: done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r12
	pop %rbx
	ret

	.section .rodata
outs_line:	.ascii "io: rep outsb to COM1 works\n"
	.set outs_line_len, . - outs_line

	.data
	.balign 16
io_buf:	.fill 16, 1, 0
