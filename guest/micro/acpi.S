/*
 * ACPI table lookup for micro-guests: the RSDP in the BIOS area (ACPI 6.4 §5.2.5.1), then the
 * XSDT (or RSDT) and the MADT's processor entries (§5.2.12).
 */

	.text
/* acpi_sum(%rdi addr, %esi len) -> %eax: byte sum mod 256 (0 for a valid table). */
acpi_sum:
	xor %eax, %eax
1:	test %esi, %esi
	jz 2f
	add (%rdi), %al
	inc %rdi
	dec %esi
	jmp 1b
2:	movzbl %al, %eax
	ret

/* acpi_find_rsdp() -> %rax: the RSDP's address in 0xe0000-0xfffff, or 0. */
acpi_find_rsdp:
	push %rbx
	mov $ACPI_SCAN_START, %ebx
1:	mov $0x2052545020445352, %rax	/* "RSD PTR " */
	cmp %rax, (%rbx)
	jne 2f
	mov %rbx, %rdi
	mov $20, %esi
	call acpi_sum
	test %eax, %eax
	jz 3f
2:	add $16, %ebx
	cmp $ACPI_SCAN_END, %ebx
	jb 1b
	xor %ebx, %ebx
3:	mov %rbx, %rax
	pop %rbx
	ret

/* acpi_find_table(%edi signature) -> %rax: the table's address, or 0. Uses the XSDT when the
 * RSDP has revision >= 2 and an XSDT address, else the RSDT. */
acpi_find_table:
	push %rbx
	push %r12
	push %r13
	mov %edi, %r12d
	call acpi_find_rsdp
	test %rax, %rax
	jz 9f
	mov $4, %r13d			/* entry size */
	mov 16(%rax), %ebx		/* RsdtAddress */
	cmpb $2, 15(%rax)
	jb 1f
	mov 24(%rax), %rcx		/* XsdtAddress */
	test %rcx, %rcx
	jz 1f
	mov %rcx, %rbx
	mov $8, %r13d
1:	test %rbx, %rbx
	jz 9f
	mov 4(%rbx), %ecx		/* length */
	lea (%rbx, %rcx), %rdx		/* end */
	lea 36(%rbx), %rsi		/* first entry */
2:	lea (%rsi, %r13), %rax
	cmp %rdx, %rax
	ja 9f
	mov (%rsi), %eax		/* 32-bit RSDT entry ... */
	cmp $8, %r13d
	jne 3f
	mov (%rsi), %rax		/* ... or 64-bit XSDT entry */
3:	test %rax, %rax
	jz 4f
	cmp %r12d, (%rax)
	je 10f
4:	add %r13, %rsi
	jmp 2b
9:	xor %eax, %eax
10:	pop %r13
	pop %r12
	pop %rbx
	ret

/* madt_cpus() -> %rax: enabled (or online-capable) processors in the MADT, 0 without a MADT.
 * Their APIC IDs go to madt_ids[] (the first MADT_MAX_IDS of them). */
#define MADT_MAX_IDS 64
madt_cpus:
	push %rbx
	mov $0x43495041, %edi		/* "APIC" */
	call acpi_find_table
	xor %ebx, %ebx			/* count */
	test %rax, %rax
	jz 9f
	mov 4(%rax), %ecx
	lea (%rax, %rcx), %rdx		/* end */
	lea 44(%rax), %rsi		/* first structure */
1:	lea 2(%rsi), %rax
	cmp %rdx, %rax
	ja 9f
	movzbl 1(%rsi), %ecx		/* length */
	cmp $2, %ecx
	jb 9f
	cmpb $0, (%rsi)			/* processor local APIC */
	jne 2f
	testl $3, 4(%rsi)		/* enabled | online capable */
	jz 4f
	movzbl 3(%rsi), %eax
	jmp 3f
2:	cmpb $9, (%rsi)			/* processor local x2APIC */
	jne 4f
	testl $3, 8(%rsi)
	jz 4f
	mov 4(%rsi), %eax
3:	cmp $MADT_MAX_IDS, %ebx
	jae 5f
	lea madt_ids(%rip), %rdi
	mov %eax, (%rdi, %rbx, 4)
5:	inc %ebx
4:	add %rcx, %rsi
	jmp 1b
9:	mov %rbx, %rax
	pop %rbx
	ret

	.data
	.balign 4
madt_ids:	.fill MADT_MAX_IDS, 4, 0
