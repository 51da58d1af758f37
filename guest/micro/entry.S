/*
 * entry: checks kiln's raw-image entry state (registers, GDT, paging) and the boot_params
 * zero page (e820 map, command line), prints one PASS/FAIL line per check, the e820 map and
 * the memory it adds up to, then powers off.
 */
#include "micro.h"
#include "common.S"
#include "entrycheck.S"
#include "acpi.S"

	.text
main:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	call check_entry_regs

	/* ---- e820 ---- */
	mov boot_params(%rip), %rbx
	movzbl ZP_E820_ENTRIES(%rbx), %r12d
	PRINT "e820 entries "
	mov %r12, %rdi
	call put_dec
	PRINT "\n"
	xor %edi, %edi
	cmp $1, %r12d
	jb 1f
	cmp $E820_MAX_ENTRIES, %r12d
	ja 1f
	mov $1, %edi
1:	STR %rsi, "e820-count"
	call check
	test %eax, %eax
	jz 30f

	lea ZP_E820_TABLE(%rbx), %rbx	/* entry pointer */
	xor %r13d, %r13d		/* previous end, for the order check */
	movl $1, e_sorted(%rip)
20:	PRINT "e820 "
	mov (%rbx), %rdi
	call put_hex
	PRINT "-"
	mov (%rbx), %rdi
	add 8(%rbx), %rdi
	dec %rdi
	call put_hex
	PRINT " type "
	mov 16(%rbx), %edi
	call put_dec
	PRINT "\n"

	mov (%rbx), %rax		/* start */
	mov 8(%rbx), %rcx
	lea (%rax, %rcx), %rdx		/* end (exclusive) */
	cmp %r13, %rax
	jae 21f
	movl $0, e_sorted(%rip)
21:	mov %rdx, %r13
	cmpl $E820_RAM, 16(%rbx)
	jne 29f
	add %rcx, e_total(%rip)
	/* RAM at 0 covering the zero page, page tables, command line and stack */
	test %rax, %rax
	jnz 22f
	cmp $BOOT_STACK_TOP, %rdx
	jb 22f
	movl $1, e_ram0(%rip)
22:	/* RAM containing the image at 1 MiB */
	cmp $IMAGE_BASE, %rax
	ja 23f
	cmp $IMAGE_BASE + 0x100000, %rdx
	jb 23f
	movl $1, e_ram1m(%rip)
	mov %rdx, e_low_top(%rip)
23:	/* RAM in the legacy VGA/BIOS area [0xa0000, 1 MiB) or in the 32-bit hole [3 GiB, 4 GiB) */
	cmp $0xa0000, %rdx
	jbe 24f
	cmp $IMAGE_BASE, %rax
	jae 24f
	movl $1, e_bios_ram(%rip)
24:	mov $0xc0000000, %esi
	cmp %rsi, %rdx
	jbe 25f
	mov $0x100000000, %rsi
	cmp %rsi, %rax
	jae 25f
	movl $1, e_hole_ram(%rip)
25:	/* RAM above 4 GiB */
	mov $0x100000000, %rsi
	cmp %rsi, %rax
	jb 29f
	add %rcx, e_high(%rip)
29:	add $E820_ENTRY_SIZE, %rbx
	dec %r12d
	jnz 20b

	mov e_sorted(%rip), %edi
	STR %rsi, "e820-sorted"
	call check
	mov e_ram0(%rip), %edi
	STR %rsi, "e820-ram-at-0"
	call check
	mov e_ram1m(%rip), %edi
	STR %rsi, "e820-ram-at-1m"
	call check
	mov e_bios_ram(%rip), %edi
	xor $1, %edi
	STR %rsi, "e820-no-ram-in-bios-area"
	call check
	mov e_hole_ram(%rip), %edi
	xor $1, %edi
	STR %rsi, "e820-no-ram-in-pci-hole"
	call check
	PRINT "mem total "
	mov e_total(%rip), %rdi
	call put_hex
	PRINT " low-top "
	mov e_low_top(%rip), %rdi
	call put_hex
	PRINT " high "
	mov e_high(%rip), %rdi
	call put_hex
	PRINT "\n"

30:	/* ---- command line ---- */
	mov boot_params(%rip), %rbx
	mov ZP_CMD_LINE_PTR(%rbx), %edi
	mov $0x20000, %esi
	STR %rdx, "cmdline-ptr"
	call check_eq
	call cmdline
	mov %rax, %r14
	/* NUL within CMDLINE_MAX bytes? */
	xor %ecx, %ecx
31:	cmpb $0, (%r14, %rcx)
	je 32f
	inc %ecx
	cmp $CMDLINE_MAX, %ecx
	jb 31b
32:	xor %edi, %edi
	cmp $CMDLINE_MAX, %ecx
	setb %dil
	mov %ecx, %r15d
	STR %rsi, "cmdline-terminated"
	call check
	test %eax, %eax
	jz 33f
	PRINT "cmdline \""
	mov %r14, %rdi
	call puts
	PRINT "\" length "
	mov %r15, %rdi
	call put_dec
	PRINT "\n"
33:
	/* ---- ACPI ---- */
	call acpi_find_rsdp
	mov %rax, %rbx
	xor %edi, %edi
	test %rax, %rax
	setnz %dil
	STR %rsi, "acpi-rsdp"
	call check
	test %rbx, %rbx
	jz 34f
	PRINT "acpi rsdp "
	mov %rbx, %rdi
	call put_hex
	PRINT " revision "
	movzbl 15(%rbx), %edi
	call put_dec
	PRINT "\n"
	call madt_cpus
	mov %rax, %rbx
	xor %edi, %edi
	test %rax, %rax
	setnz %dil
	STR %rsi, "acpi-madt"
	call check
	PRINT "madt cpus "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
34:
	PRINT "entry: done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

	.data
	.balign 8
e_total:	.quad 0
e_high:		.quad 0
e_low_top:	.quad 0
e_sorted:	.long 0
e_ram0:		.long 0
e_ram1m:	.long 0
e_bios_ram:	.long 0
e_hole_ram:	.long 0
