/*
 * pci: scans bus 0 through configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2), prints
 * every function found and checks the host bridge at 00:00.0 and the mechanism's corners.
 */
#include "micro.h"
#include "common.S"

	.text
/* pci_cfg_addr(%edi bus, %esi slot, %edx func, %ecx reg) -> %eax: CONFIG_ADDRESS value. */
pci_cfg_addr:
	shl $16, %edi
	shl $11, %esi
	shl $8, %edx
	and $0xfc, %ecx
	mov $0x80000000, %eax
	or %edi, %eax
	or %esi, %eax
	or %edx, %eax
	or %ecx, %eax
	ret

/* pci_read32(%edi bus, %esi slot, %edx func, %ecx reg) -> %eax */
pci_read32:
	call pci_cfg_addr
	mov $PCI_CONFIG_ADDRESS, %edx
	out %eax, %dx
	mov $PCI_CONFIG_DATA, %edx
	in %dx, %eax
	ret

main:
	push %rbx
	push %r12
	push %r13
	push %r14

	/* CONFIG_ADDRESS reads back what was written */
	mov $0x80000000, %eax
	mov $PCI_CONFIG_ADDRESS, %edx
	out %eax, %dx
	in %dx, %eax
	mov %eax, %edi
	mov $0x80000000, %esi
	STR %rdx, "pci-cf8-readback"
	call check_eq

	xor %r14d, %r14d		/* functions found */
	xor %ebx, %ebx			/* slot */
1:	xor %r12d, %r12d		/* function */
2:	xor %edi, %edi
	mov %ebx, %esi
	mov %r12d, %edx
	xor %ecx, %ecx
	call pci_read32
	cmp $0xffff, %ax
	je 5f
	mov %eax, %r13d			/* device:vendor */
	inc %r14d
	PRINT "pci 00:"
	mov %rbx, %rdi
	mov $2, %esi
	call put_hexn
	PRINT "."
	mov %r12, %rdi
	mov $1, %esi
	call put_hexn
	PRINT " "
	movzwl %r13w, %edi
	mov $4, %esi
	call put_hexn
	PRINT ":"
	mov %r13d, %edi
	shr $16, %edi
	mov $4, %esi
	call put_hexn
	PRINT " class "
	xor %edi, %edi
	mov %ebx, %esi
	mov %r12d, %edx
	mov $0x08, %ecx
	call pci_read32
	mov %eax, %edi
	shr $8, %edi
	mov $6, %esi
	call put_hexn
	PRINT "\n"

	/* only function 0 of a single-function device */
	test %r12d, %r12d
	jnz 5f
	xor %edi, %edi
	mov %ebx, %esi
	xor %edx, %edx
	mov $0x0c, %ecx
	call pci_read32
	test $0x00800000, %eax		/* header type bit 7: multi-function */
	jz 6f
5:	inc %r12d
	cmp $8, %r12d
	jb 2b
6:	inc %ebx
	cmp $32, %ebx
	jb 1b

	PRINT "pci: "
	mov %r14, %rdi
	call put_dec
	PRINT " functions on bus 0\n"

	/* host bridge at 00:00.0: class 06 00 xx */
	xor %edi, %edi
	xor %esi, %esi
	xor %edx, %edx
	xor %ecx, %ecx
	call pci_read32
	mov %eax, %ebx
	xor %edi, %edi
	xor %esi, %esi
	xor %edx, %edx
	mov $0x08, %ecx
	call pci_read32
	shr $16, %eax
	xor %edi, %edi
	cmp $0xffff, %bx
	je 7f
	cmp $0x0600, %eax
	jne 7f
	mov $1, %edi
7:	STR %rsi, "pci-host-bridge"
	call check

	/* 16- and 8-bit data accesses see the same register as 32-bit ones */
	xor %edi, %edi
	xor %esi, %esi
	xor %edx, %edx
	xor %ecx, %ecx
	call pci_read32			/* leaves CONFIG_ADDRESS at 00:00.0 reg 0 */
	mov %eax, %r12d
	mov $PCI_CONFIG_DATA + 2, %edx
	xor %eax, %eax
	in %dx, %ax			/* device ID */
	shl $16, %eax
	mov %eax, %r13d
	mov $PCI_CONFIG_DATA, %edx
	xor %eax, %eax
	in %dx, %al			/* vendor low byte */
	or %eax, %r13d
	mov $PCI_CONFIG_DATA + 1, %edx
	xor %eax, %eax
	in %dx, %al			/* vendor high byte */
	shl $8, %eax
	or %eax, %r13d
	mov %r13, %rdi
	mov %r12, %rsi
	STR %rdx, "pci-narrow-access"
	call check_eq

	/* nothing behind bus 1 */
	mov $1, %edi
	xor %esi, %esi
	xor %edx, %edx
	xor %ecx, %ecx
	call pci_read32
	mov %eax, %edi
	mov $0xffffffff, %esi
	STR %rdx, "pci-bus1-absent"
	call check_eq

	/* with the enable bit clear, CONFIG_DATA is an ordinary (unclaimed) port */
	xor %eax, %eax
	mov $PCI_CONFIG_ADDRESS, %edx
	out %eax, %dx
	mov $PCI_CONFIG_DATA, %edx
	in %dx, %eax
	mov %eax, %edi
	mov $0xffffffff, %esi
	STR %rdx, "pci-disabled-reads-ones"
	call check_eq

	PRINT "pci: done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret
