/*
 * flood: a burst of console output for --console-sock tests. Prints "flood: ready", then
 * 128 KiB (twice kiln's console history) of 64-byte lines, each 63 copies of one letter
 * ('a' + line % 26) and '\n', then "flood: done", and powers off. The bytes go out with
 * `rep outsb` (on this machine's software KVM that is still about one exit per byte).
 */
#include "micro.h"
#include "common.S"

#define FLOOD_BUF SCRATCH_BASE
#define FLOOD_BUF_SIZE 4096
#define FLOOD_LINE 64
#define FLOOD_REPEAT 32 /* x 4 KiB = 128 KiB */

	.text
main:
	push %rbx
	PRINT "flood: ready\n"
	/* One 4 KiB page of lines: 63 copies of 'a' + line % 26, then '\n'. */
	mov $FLOOD_BUF, %edi
	xor %ebx, %ebx
1:	mov %ebx, %eax
	xor %edx, %edx
	mov $26, %ecx
	div %ecx
	lea 'a'(%rdx), %eax
	mov $FLOOD_LINE - 1, %ecx
	rep stosb
	movb $'\n', (%rdi)
	inc %rdi
	inc %ebx
	cmp $FLOOD_BUF_SIZE / FLOOD_LINE, %ebx
	jb 1b

	mov $FLOOD_REPEAT, %ebx
2:	mov $FLOOD_BUF, %esi
	mov $FLOOD_BUF_SIZE, %ecx
	mov $COM1 + UART_THR, %edx
	rep outsb
	dec %ebx
	jnz 2b
	PRINT "flood: done\n"
	pop %rbx
	ret
