/*
 * Start-up code and helpers shared by the micro-guests: each guest includes micro.h, then this
 * file, then defines `main`. _start records the entry state for guests that check it, sets up
 * COM1 and calls main; when main returns, the VM is powered off.
 */

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	/* Record every register before touching any (entry.S checks them). */
	mov %rax, entry_rax(%rip)
	mov %rbx, entry_rbx(%rip)
	mov %rcx, entry_rcx(%rip)
	mov %rdx, entry_rdx(%rip)
	mov %rsi, entry_rsi(%rip)
	mov %rdi, entry_rdi(%rip)
	mov %rbp, entry_rbp(%rip)
	mov %rsp, entry_rsp(%rip)
	mov %r8, entry_r8(%rip)
	mov %r9, entry_r9(%rip)
	mov %r10, entry_r10(%rip)
	mov %r11, entry_r11(%rip)
	mov %r12, entry_r12(%rip)
	mov %r13, entry_r13(%rip)
	mov %r14, entry_r14(%rip)
	mov %r15, entry_r15(%rip)
	pushfq
	popq entry_rflags(%rip)
	xor %eax, %eax
	mov %cs, %ax
	mov %rax, entry_cs(%rip)
	mov %ds, %ax
	mov %rax, entry_ds(%rip)
	mov %es, %ax
	mov %rax, entry_es(%rip)
	mov %ss, %ax
	mov %rax, entry_ss(%rip)
	mov %fs, %ax
	mov %rax, entry_fs(%rip)
	mov %gs, %ax
	mov %rax, entry_gs(%rip)
	mov %cr0, %rax
	mov %rax, entry_cr0(%rip)
	mov %cr3, %rax
	mov %rax, entry_cr3(%rip)
	mov %cr4, %rax
	mov %rax, entry_cr4(%rip)
	mov $MSR_EFER, %ecx
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, entry_efer(%rip)
	sgdt entry_gdtr(%rip)
	sidt entry_idtr(%rip)

	cld
	/* boot_params comes in %rsi; fall back to the documented address. */
	mov entry_rsi(%rip), %rax
	test %rax, %rax
	jnz 1f
	mov $ZERO_PAGE, %eax
1:	mov %rax, boot_params(%rip)
	call serial_init
	call main
	call poweroff

	.text
/* ---- serial output ---- */

serial_init:
	mov $COM1 + UART_IER, %edx
	xor %eax, %eax
	out %al, %dx
	mov $COM1 + UART_LCR, %edx
	mov $0x03, %al			/* 8N1, DLAB off */
	out %al, %dx
	mov $COM1 + UART_MCR, %edx
	mov $0x03, %al			/* DTR | RTS */
	out %al, %dx
	ret

/* putc(%dil): waits (bounded) for THR empty, then writes the byte. */
	.globl putc
putc:
	mov $1000, %ecx
	mov $COM1 + UART_LSR, %edx
1:	in %dx, %al
	test $UART_LSR_THRE, %al
	jnz 2f
	pause
	dec %ecx
	jnz 1b
2:	mov $COM1 + UART_THR, %edx
	mov %edi, %eax
	out %al, %dx
	ret

/* puts(%rdi): writes a NUL-terminated string. */
puts:
	push %rbx
	mov %rdi, %rbx
1:	movzbl (%rbx), %edi
	test %edi, %edi
	jz 2f
	call putc
	inc %rbx
	jmp 1b
2:	pop %rbx
	ret

/* put_hexn(%rdi value, %esi digits): exactly `digits` hex digits, no prefix. */
put_hexn:
	push %rbx
	push %r12
	mov %rdi, %rbx
	mov %esi, %r12d
1:	dec %r12d
	js 2f
	lea (, %r12, 4), %ecx
	mov %rbx, %rax
	shr %cl, %rax
	and $0xf, %eax
	lea hex_digits(%rip), %rdx
	movzbl (%rdx, %rax), %edi
	call putc
	jmp 1b
2:	pop %r12
	pop %rbx
	ret

/* put_hex(%rdi value): 0x and as many digits as needed. */
put_hex:
	push %rbx
	mov %rdi, %rbx
	mov $'0', %edi
	call putc
	mov $'x', %edi
	call putc
	mov $1, %esi
	test %rbx, %rbx
	jz 1f
	bsr %rbx, %rsi
	shr $2, %esi
	inc %esi
1:	mov %rbx, %rdi
	call put_hexn
	pop %rbx
	ret

/* put_dec(%rdi value): unsigned decimal. */
put_dec:
	sub $40, %rsp
	lea 31(%rsp), %rsi
	movb $0, (%rsi)
	mov %rdi, %rax
	mov $10, %ecx
1:	xor %edx, %edx
	div %rcx
	add $'0', %dl
	dec %rsi
	mov %dl, (%rsi)
	test %rax, %rax
	jnz 1b
	mov %rsi, %rdi
	call puts
	add $40, %rsp
	ret

/* put_name_line(%rdi prefix, %rsi name): prints "prefix name\n". */
put_name_line:
	push %rbx
	mov %rsi, %rbx
	call puts
	mov %rbx, %rdi
	call puts
	mov $'\n', %edi
	call putc
	pop %rbx
	ret

/* ---- PASS / FAIL reporting ---- */

/* check(%edi ok, %rsi name) -> %eax = ok: prints "PASS name" or "FAIL name". */
check:
	push %rbx
	push %r12
	push %r13
	mov %edi, %ebx
	mov %rsi, %r12
	test %ebx, %ebx
	jz 1f
	cmpb $0, check_quiet(%rip)
	jne 2f
	lea str_pass(%rip), %rdi
	mov %r12, %rsi
	call put_name_line
	jmp 2f
1:	incl fail_count(%rip)
	lea str_fail(%rip), %rdi
	mov %r12, %rsi
	call put_name_line
2:	mov %ebx, %eax
	pop %r13
	pop %r12
	pop %rbx
	ret

/* check_eq(%rdi got, %rsi want, %rdx name) -> %eax = (got == want).
 * Prints "PASS name" or "FAIL name got=0x.. want=0x..". */
check_eq:
	push %rbx
	push %r12
	push %r13
	mov %rdi, %rbx
	mov %rsi, %r12
	mov %rdx, %r13
	cmp %rsi, %rdi
	jne 1f
	cmpb $0, check_quiet(%rip)
	jne 2f
	lea str_pass(%rip), %rdi
	mov %r13, %rsi
	call put_name_line
	jmp 2f
1:	incl fail_count(%rip)
	lea str_fail(%rip), %rdi
	call puts
	mov %r13, %rdi
	call puts
	PRINT " got="
	mov %rbx, %rdi
	call put_hex
	PRINT " want="
	mov %r12, %rdi
	call put_hex
	mov $'\n', %edi
	call putc
2:	xor %eax, %eax
	cmp %r12, %rbx
	sete %al
	pop %r13
	pop %r12
	pop %rbx
	ret

/* ---- power ---- */

/* poweroff: ACPI S5. kiln should stop at once; if it has not after a second or two, say so. */
poweroff:
	mov $ACPI_PM1_CNT, %edx
	mov $ACPI_SLP_POWEROFF, %al
	out %al, %dx
	/* Still running: not kiln. bench/run.py gives QEMU an isa-debug-exit device here. */
	out %al, $QEMU_DEBUG_EXIT
	mov $2, %edi
	call rtc_wait_ticks
	PRINT "FAIL poweroff: guest still running\n"
	jmp halt_forever

/* reset_acpi: write the FADT reset register. */
reset_acpi:
	mov $ACPI_RESET_REG, %edx
	mov $ACPI_RESET_VALUE, %al
	out %al, %dx
	jmp reset_failed

/* reset_kbd: pulse the reset line through the i8042 (command 0xfe). */
reset_kbd:
	mov $1000, %ecx
	mov $KBD_STATUS, %edx
1:	in %dx, %al
	test $0x02, %al			/* input buffer full: wait */
	jz 2f
	dec %ecx
	jnz 1b
2:	mov $KBD_CMD, %edx
	mov $KBD_CMD_RESET, %al
	out %al, %dx
	/* fall through */
reset_failed:
	mov $2, %edi
	call rtc_wait_ticks
	PRINT "FAIL reset: guest still running\n"
	/* fall through */
halt_forever:
	cli
1:	hlt
	jmp 1b

/* ---- CMOS / RTC ---- */

/* cmos_read(%edi index) -> %eax */
cmos_read:
	mov %edi, %eax
	out %al, $CMOS_INDEX
	in $CMOS_DATA, %al
	movzbl %al, %eax
	ret

/* cmos_write(%edi index, %esi value) */
cmos_write:
	mov %edi, %eax
	out %al, $CMOS_INDEX
	mov %esi, %eax
	out %al, $CMOS_DATA
	ret

/* timeout_start(%edi seconds): arms a coarse timeout counted in RTC second changes. */
timeout_start:
	mov %edi, timeout_ticks(%rip)
	movl $0, timeout_polls(%rip)
	mov $RTC_SECONDS, %edi
	call cmos_read
	mov %eax, timeout_last(%rip)
	ret

/* timeout_expired() -> %eax = 1 once the RTC seconds changed `seconds` times (or, should the
 * RTC be stuck, after a large number of polls). One CMOS read per call. */
timeout_expired:
	incl timeout_polls(%rip)
	cmpl $2000000, timeout_polls(%rip)
	jae 2f
	mov $RTC_SECONDS, %edi
	call cmos_read
	cmp timeout_last(%rip), %eax
	je 1f
	mov %eax, timeout_last(%rip)
	decl timeout_ticks(%rip)
	jle 2f
1:	xor %eax, %eax
	ret
2:	mov $1, %eax
	ret

/* rtc_wait_ticks(%edi n): busy-waits until the RTC seconds changed n times. */
rtc_wait_ticks:
	call timeout_start
1:	call timeout_expired
	test %eax, %eax
	jz 1b
	ret

/* ---- command line ---- */

/* cmdline() -> %rax: the kernel command line from boot_params (an empty string if none). */
cmdline:
	mov boot_params(%rip), %rdx
	mov ZP_CMD_LINE_PTR(%rdx), %eax
	mov ZP_EXT_CMD_LINE_PTR(%rdx), %ecx
	shl $32, %rcx
	or %rcx, %rax
	jnz 1f
	lea str_empty(%rip), %rax
1:	ret

/* cmdline_find(%rdi key, e.g. "via=") -> %rax: the text after the first word that starts
 * with key, or 0. */
cmdline_find:
	push %rbx
	mov %rdi, %rbx
	call cmdline
	mov %rax, %rsi			/* current position, at a word start */
1:	cmpb $' ', (%rsi)
	jne 2f
	inc %rsi
	jmp 1b
2:	cmpb $0, (%rsi)
	je 6f
	/* compare the key against the word at %rsi */
	mov %rbx, %rdi
	mov %rsi, %rdx
3:	movzbl (%rdi), %eax
	test %eax, %eax
	jz 5f				/* whole key matched */
	cmp (%rdx), %al
	jne 4f
	inc %rdi
	inc %rdx
	jmp 3b
4:	/* skip to the end of this word */
	movzbl (%rsi), %eax
	test %eax, %eax
	jz 6f
	cmp $' ', %eax
	je 1b
	inc %rsi
	jmp 4b
5:	mov %rdx, %rax
	pop %rbx
	ret
6:	xor %eax, %eax
	pop %rbx
	ret

/* word_eq(%rdi text, %rsi word) -> %eax: 1 if text starts with word followed by a space,
 * a NUL or a comma. */
word_eq:
1:	movzbl (%rsi), %eax
	test %eax, %eax
	jz 2f
	cmp (%rdi), %al
	jne 3f
	inc %rdi
	inc %rsi
	jmp 1b
2:	movzbl (%rdi), %eax
	test %eax, %eax
	jz 4f
	cmp $' ', %eax
	je 4f
	cmp $',', %eax
	je 4f
3:	xor %eax, %eax
	ret
4:	mov $1, %eax
	ret

/* parse_dec(%rdi text) -> %rax: the decimal number at text (0 if none). */
parse_dec:
	xor %eax, %eax
1:	movzbl (%rdi), %ecx
	sub $'0', %ecx
	cmp $9, %ecx
	ja 2f
	imul $10, %rax, %rax
	add %rcx, %rax
	inc %rdi
	jmp 1b
2:	ret

/* ---- e820 ---- */

/* e820_is_ram(%rdi addr) -> %eax: 1 if a type-1 e820 entry contains addr. */
e820_is_ram:
	mov boot_params(%rip), %rsi
	movzbl ZP_E820_ENTRIES(%rsi), %ecx
	lea ZP_E820_TABLE(%rsi), %rsi
1:	test %ecx, %ecx
	jz 3f
	cmpl $E820_RAM, 16(%rsi)
	jne 2f
	mov (%rsi), %rax
	cmp %rax, %rdi
	jb 2f
	add 8(%rsi), %rax
	cmp %rax, %rdi
	jae 2f
	mov $1, %eax
	ret
2:	add $E820_ENTRY_SIZE, %rsi
	dec %ecx
	jmp 1b
3:	xor %eax, %eax
	ret

/* ---- locks ---- */

/* spin_lock(%rdi lock) */
spin_lock:
1:	mov $1, %eax
	xchg %eax, (%rdi)
	test %eax, %eax
	jz 3f
2:	pause
	cmpl $0, (%rdi)
	jne 2b
	jmp 1b
3:	ret

/* spin_unlock(%rdi lock) */
spin_unlock:
	movl $0, (%rdi)
	ret

	.section .rodata
hex_digits:	.ascii "0123456789abcdef"
str_pass:	.asciz "PASS "
str_fail:	.asciz "FAIL "
str_empty:	.asciz ""

	.data
	.balign 8
boot_params:	.quad 0
entry_rax:	.quad 0
entry_rbx:	.quad 0
entry_rcx:	.quad 0
entry_rdx:	.quad 0
entry_rsi:	.quad 0
entry_rdi:	.quad 0
entry_rbp:	.quad 0
entry_rsp:	.quad 0
entry_r8:	.quad 0
entry_r9:	.quad 0
entry_r10:	.quad 0
entry_r11:	.quad 0
entry_r12:	.quad 0
entry_r13:	.quad 0
entry_r14:	.quad 0
entry_r15:	.quad 0
entry_rflags:	.quad 0
entry_cs:	.quad 0
entry_ds:	.quad 0
entry_es:	.quad 0
entry_ss:	.quad 0
entry_fs:	.quad 0
entry_gs:	.quad 0
entry_cr0:	.quad 0
entry_cr3:	.quad 0
entry_cr4:	.quad 0
entry_efer:	.quad 0
entry_gdtr:	.word 0
		.quad 0
		.balign 8
entry_idtr:	.word 0
		.quad 0
		.balign 8
fail_count:	.long 0
timeout_ticks:	.long 0
timeout_polls:	.long 0
timeout_last:	.long 0
print_lock:	.long 0
check_quiet:	.byte 0
	.balign 8
