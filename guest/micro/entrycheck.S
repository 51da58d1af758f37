/*
 * check_entry_regs: compares the register state recorded by _start with kiln's raw-image boot
 * convention (README.md) and walks the identity map from CR3. One PASS/FAIL line per check
 * (PASS lines are left out while check_quiet is set). Shared by entry.S and reset.S.
 */

	.text
check_entry_regs:
	push %rbx
	/* All GPRs but %rsi and %rsp are zero. */
	mov entry_rax(%rip), %rdi
	or entry_rbx(%rip), %rdi
	or entry_rcx(%rip), %rdi
	or entry_rdx(%rip), %rdi
	or entry_rdi(%rip), %rdi
	or entry_rbp(%rip), %rdi
	or entry_r8(%rip), %rdi
	or entry_r9(%rip), %rdi
	or entry_r10(%rip), %rdi
	or entry_r11(%rip), %rdi
	or entry_r12(%rip), %rdi
	or entry_r13(%rip), %rdi
	or entry_r14(%rip), %rdi
	or entry_r15(%rip), %rdi
	xor %esi, %esi
	STR %rdx, "gprs-zero"
	call check_eq

	mov entry_rsp(%rip), %rdi
	mov $BOOT_STACK_TOP, %esi
	STR %rdx, "rsp"
	call check_eq
	mov entry_rsi(%rip), %rdi
	mov $ZERO_PAGE, %esi
	STR %rdx, "rsi"
	call check_eq
	mov entry_rflags(%rip), %rdi
	mov $0x2, %esi
	STR %rdx, "rflags"
	call check_eq
	mov entry_rflags(%rip), %rdi
	not %edi
	shr $9, %edi
	and $1, %edi
	STR %rsi, "rflags-if-clear"
	call check

	mov entry_cs(%rip), %rdi
	mov $SEL_CODE64, %esi
	STR %rdx, "cs"
	call check_eq
	mov entry_ds(%rip), %rdi
	mov $SEL_DATA, %esi
	STR %rdx, "ds"
	call check_eq
	mov entry_es(%rip), %rdi
	mov $SEL_DATA, %esi
	STR %rdx, "es"
	call check_eq
	mov entry_ss(%rip), %rdi
	mov $SEL_DATA, %esi
	STR %rdx, "ss"
	call check_eq
	mov entry_fs(%rip), %rdi
	mov $SEL_DATA, %esi
	STR %rdx, "fs"
	call check_eq
	mov entry_gs(%rip), %rdi
	mov $SEL_DATA, %esi
	STR %rdx, "gs"
	call check_eq

	mov entry_cr0(%rip), %rdi
	mov $CR0_EXPECTED, %esi
	STR %rdx, "cr0"
	call check_eq
	mov entry_cr3(%rip), %rdi
	mov $BOOT_PML4, %esi
	STR %rdx, "cr3"
	call check_eq
	/* CR4: PAE, and nothing else but OSFXSR/OSXMMEXCPT. */
	mov entry_cr4(%rip), %rdi
	and $~(CR4_ALLOWED & ~CR4_PAE), %rdi
	mov $CR4_PAE, %esi
	STR %rdx, "cr4"
	call check_eq
	mov entry_efer(%rip), %rdi
	mov $EFER_EXPECTED, %esi
	STR %rdx, "efer"
	call check_eq

	/* GDT: at 0x500 with a 64-bit code segment at 0x10 and a flat data segment at 0x18. */
	mov entry_gdtr+2(%rip), %rdi
	mov $BOOT_GDT, %esi
	STR %rdx, "gdt-base"
	call check_eq
	movzwl entry_gdtr(%rip), %eax
	xor %edi, %edi
	cmp $SEL_DATA + 7, %eax
	setae %dil
	STR %rsi, "gdt-limit"
	call check
	mov entry_gdtr+2(%rip), %rbx
	/* code: P, S, code type, L set; D clear */
	mov SEL_CODE64(%rbx), %rax
	mov $0x0060980000000000, %rdi
	and %rdi, %rax
	mov $0x0020980000000000, %rdi
	xor %ecx, %ecx
	cmp %rdi, %rax
	sete %cl
	mov %ecx, %edi
	STR %rsi, "gdt-code64"
	call check
	/* data: P, S, data type (bit 43 clear), writable */
	mov SEL_DATA(%rbx), %rax
	mov $0x00009a0000000000, %rdi
	and %rdi, %rax
	mov $0x0000920000000000, %rdi
	xor %ecx, %ecx
	cmp %rdi, %rax
	sete %cl
	mov %ecx, %edi
	STR %rsi, "gdt-data"
	call check

	/* No IDT: limit 0. */
	movzwl entry_idtr(%rip), %edi
	xor %esi, %esi
	STR %rdx, "idt-limit-zero"
	call check_eq

	call count_identity_map_errors
	mov %rax, %rdi
	xor %esi, %esi
	STR %rdx, "identity-map-4g"
	call check_eq
	pop %rbx
	ret

/* count_identity_map_errors() -> %rax: how many of the 2048 2-MiB mappings below 4 GiB,
 * walked from CR3, are not present+writable identity mappings. */
count_identity_map_errors:
	push %rbx
	push %r12
	push %r13
	xor %r12d, %r12d		/* errors */
	mov entry_cr3(%rip), %rax
	mov $0x000ffffffffff000, %r13	/* address bits of a table entry */
	and %r13, %rax
	mov (%rax), %rax		/* PML4[0] */
	test $1, %al
	jz 9f
	and %r13, %rax			/* PDPT */
	xor %ebx, %ebx			/* 1 GiB index */
1:	mov (%rax, %rbx, 8), %rsi	/* PDPT[i] */
	mov %rsi, %rcx
	and $0x81, %ecx
	cmp $0x01, %ecx			/* present, not a 1 GiB page */
	jne 8f
	and %r13, %rsi			/* PD */
	xor %ecx, %ecx
2:	mov (%rsi, %rcx, 8), %rdx
	mov %rdx, %rdi
	and $0x83, %edi			/* P | RW | PS */
	cmp $0x83, %edi
	jne 3f
	mov $0x000fffffffe00000, %rdi
	and %rdi, %rdx
	mov %rbx, %rdi
	shl $9, %rdi
	add %rcx, %rdi
	shl $21, %rdi			/* expected address */
	cmp %rdi, %rdx
	je 4f
3:	inc %r12
4:	inc %ecx
	cmp $512, %ecx
	jb 2b
	jmp 7f
8:	add $512, %r12			/* whole GiB missing */
7:	inc %ebx
	cmp $4, %ebx
	jb 1b
	jmp 10f
9:	mov $2048, %r12d
10:	mov %r12, %rax
	pop %r13
	pop %r12
	pop %rbx
	ret
