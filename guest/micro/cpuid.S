/*
 * cpuid: prints what the guest sees of CPUID: the vendor, the hypervisor leaves
 * (0x40000000: "KVMKVMKVM\0\0\0"), leaf 1's hypervisor and APIC bits and the initial APIC ID.
 */
#include "micro.h"
#include "common.S"

	.text
/* put_reg_chars(%edi): prints the 4 bytes of a register as characters, NULs left out. */
put_reg_chars:
	push %rbx
	push %r12
	mov %edi, %ebx
	mov $4, %r12d
1:	movzbl %bl, %edi
	test %edi, %edi
	jz 2f
	call putc
2:	shr $8, %ebx
	dec %r12d
	jnz 1b
	pop %r12
	pop %rbx
	ret

main:
	push %rbx
	push %r12
	push %r13
	push %r14

	xor %eax, %eax
	cpuid
	mov %eax, %r12d
	mov %ebx, %r13d
	mov %edx, %r14d
	mov %ecx, %ebx
	PRINT "cpuid vendor \""
	mov %r13d, %edi
	call put_reg_chars
	mov %r14d, %edi
	call put_reg_chars
	mov %ebx, %edi
	call put_reg_chars
	PRINT "\" max-leaf "
	mov %r12, %rdi
	call put_hex
	PRINT "\n"

	mov $1, %eax
	cpuid
	mov %ebx, %r12d
	mov %ecx, %r13d
	mov %edx, %r14d
	PRINT "cpuid leaf1 eax "
	mov $1, %eax
	cpuid
	mov %eax, %edi
	call put_hex
	PRINT " ecx "
	mov %r13, %rdi
	call put_hex
	PRINT " edx "
	mov %r14, %rdi
	call put_hex
	PRINT "\n"
	mov %r13d, %edi
	shr $31, %edi
	STR %rsi, "cpuid-hypervisor-bit"
	call check
	mov %r14d, %edi
	shr $9, %edi
	and $1, %edi
	STR %rsi, "cpuid-apic-bit"
	call check
	PRINT "cpuid initial-apic-id "
	mov %r12d, %edi
	shr $24, %edi
	call put_dec
	PRINT "\n"
	mov %r12d, %edi
	shr $24, %edi
	xor %esi, %esi
	STR %rdx, "cpuid-bsp-apic-id"
	call check_eq

	mov $0x40000000, %eax
	xor %ecx, %ecx
	cpuid
	mov %eax, %r12d
	mov %ebx, %r13d
	mov %ecx, %r14d
	mov %edx, %ebx
	PRINT "cpuid hypervisor \""
	mov %r13d, %edi
	call put_reg_chars
	mov %r14d, %edi
	call put_reg_chars
	mov %ebx, %edi
	call put_reg_chars
	PRINT "\" max-leaf "
	mov %r12, %rdi
	call put_hex
	PRINT "\n"
	xor %edi, %edi
	cmp $0x4b4d564b, %r13d		/* "KVMK" */
	jne 1f
	cmp $0x564b4d56, %r14d		/* "VMKV" */
	jne 1f
	cmp $0x0000004d, %ebx		/* "M\0\0\0" */
	jne 1f
	mov $1, %edi
1:	STR %rsi, "cpuid-kvm-signature"
	call check

	mov $0x40000001, %eax
	xor %ecx, %ecx
	cpuid
	PRINT "cpuid kvm-features "
	mov %eax, %edi
	call put_hex
	PRINT "\n"

	/* brand string, when there is one */
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000004, %eax
	jb 3f
	PRINT "cpuid brand \""
	mov $0x80000002, %r12d
2:	mov %r12d, %eax
	cpuid
	mov %ebx, %r13d
	mov %ecx, %r14d
	mov %edx, %ebx
	mov %eax, %edi
	call put_reg_chars
	mov %r13d, %edi
	call put_reg_chars
	mov %r14d, %edi
	call put_reg_chars
	mov %ebx, %edi
	call put_reg_chars
	inc %r12d
	cmp $0x80000004, %r12d
	jbe 2b
	PRINT "\"\n"
3:
	PRINT "cpuid: done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret
