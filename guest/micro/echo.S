/*
 * echo: interrupt-driven serial input. COM1's RX interrupt goes IRQ 4 -> IOAPIC pin 4 ->
 * vector 0x24 on the BSP's LAPIC; the handler echoes every byte received, upper-cased.
 * A 'q' ends the run (power off). The 8259s are masked so that only the IOAPIC path counts.
 * The ACPI power button's line (GSI 5, kiln's Generic Event Device) is routed to vector 0x25:
 * each press prints "echo: power button".
 */
#include "micro.h"
#include "common.S"

#define SERIAL_VECTOR 0x24
#define SPURIOUS_VECTOR 0xff
#define COM1_GSI 4
#define POWER_BUTTON_VECTOR 0x25
#define POWER_BUTTON_GSI 5

	.text
/* idt_set(%edi vector, %rsi handler): a present 64-bit interrupt gate, DPL 0. */
idt_set:
	shl $4, %edi
	add $IDT_ADDR, %rdi
	mov %esi, %eax
	mov %ax, 0(%rdi)		/* offset 15:0 */
	movw $SEL_CODE64, 2(%rdi)
	movb $0, 4(%rdi)		/* IST */
	movb $0x8e, 5(%rdi)		/* P, DPL 0, 64-bit interrupt gate */
	shr $16, %eax
	mov %ax, 6(%rdi)		/* offset 31:16 */
	mov %rsi, %rax
	shr $32, %rax
	mov %eax, 8(%rdi)		/* offset 63:32 */
	movl $0, 12(%rdi)
	ret

/* ioapic_write(%edi register, %esi value) */
ioapic_write:
	mov $IOAPIC_BASE, %eax
	mov %edi, IOAPIC_REGSEL(%rax)
	mov %esi, IOAPIC_WIN(%rax)
	ret

main:
	push %rbx
	push %r12

	/* IDT: exception stubs for 0-31, a catch-all for the rest, then our two vectors */
	xor %ebx, %ebx
1:	lea unexpected_isr(%rip), %rsi
	cmp $32, %ebx
	jae 2f
	mov %ebx, %eax
	shl $4, %eax
	lea exc_stubs(%rip), %rsi
	add %rax, %rsi
2:	mov %ebx, %edi
	call idt_set
	inc %ebx
	cmp $256, %ebx
	jb 1b
	mov $SERIAL_VECTOR, %edi
	lea serial_isr(%rip), %rsi
	call idt_set
	mov $SPURIOUS_VECTOR, %edi
	lea spurious_isr(%rip), %rsi
	call idt_set
	mov $POWER_BUTTON_VECTOR, %edi
	lea power_button_isr(%rip), %rsi
	call idt_set
	lidt idt_desc(%rip)

	/* 8259s: all masked (OCW1) */
	mov $0xff, %al
	out %al, $PIC1_DATA
	out %al, $PIC2_DATA

	/* LAPIC: software-enabled, accept all priorities, LINT0 (ExtINT from the 8259) masked */
	mov $LAPIC_BASE, %ebx
	movl $0x100 | SPURIOUS_VECTOR, LAPIC_SVR(%rbx)
	movl $0, LAPIC_TPR(%rbx)
	movl $LVT_MASKED, LAPIC_LVT_LINT0(%rbx)
	mov LAPIC_ID(%rbx), %r12d
	shr $24, %r12d			/* our APIC ID */

	/* IOAPIC pin 4: vector 0x24, fixed, physical destination = us, edge, active high */
	mov $IOAPIC_REDTBL(COM1_GSI) + 1, %edi
	mov %r12d, %esi
	shl $24, %esi
	call ioapic_write
	mov $IOAPIC_REDTBL(COM1_GSI), %edi
	mov $SERIAL_VECTOR, %esi
	call ioapic_write
	/* IOAPIC pin 5 (the power button): vector 0x25, same destination, edge, active high */
	mov $IOAPIC_REDTBL(POWER_BUTTON_GSI) + 1, %edi
	mov %r12d, %esi
	shl $24, %esi
	call ioapic_write
	mov $IOAPIC_REDTBL(POWER_BUTTON_GSI), %edi
	mov $POWER_BUTTON_VECTOR, %esi
	call ioapic_write

	/* UART: OUT2 gates the IRQ line on a PC; then enable the RX-data interrupt */
	mov $COM1 + UART_MCR, %edx
	mov $0x0b, %al			/* DTR | RTS | OUT2 */
	out %al, %dx
	mov $COM1 + UART_IER, %edx
	mov $0x01, %al
	out %al, %dx

	PRINT "echo: ready\n"
3:	cli
	cmpb $0, echo_quit(%rip)
	jne 4f
	sti
	hlt
	jmp 3b

4:	mov $COM1 + UART_IER, %edx
	xor %eax, %eax
	out %al, %dx
	PRINT "\necho: bye, interrupts "
	mov echo_irqs(%rip), %edi
	call put_dec
	PRINT " bytes "
	mov echo_bytes(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r12
	pop %rbx
	ret

/* COM1 RX: drain the receiver, echo upper-cased, note a 'q'. */
serial_isr:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	push %rbx
	incl echo_irqs(%rip)
	mov $COM1 + UART_IIR, %edx
	in %dx, %al
	mov $64, %ebx			/* at most this many bytes per interrupt */
1:	mov $COM1 + UART_LSR, %edx
	in %dx, %al
	test $UART_LSR_DR, %al
	jz 3f
	mov $COM1 + UART_RBR, %edx
	in %dx, %al
	movzbl %al, %edi
	incl echo_bytes(%rip)
	cmp $'q', %edi
	jne 2f
	movb $1, echo_quit(%rip)
	jmp 3f
2:	lea -'a'(%rdi), %eax
	cmp $25, %eax
	ja 4f
	sub $0x20, %edi
4:	call putc
	dec %ebx
	jnz 1b
3:	mov $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	pop %rbx
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

spurious_isr:
	iretq

/* The power button was pressed: say so, acknowledge. */
power_button_isr:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	PRINT "echo: power button\n"
	mov $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* Any other vector: say so, acknowledge, carry on. */
unexpected_isr:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	PRINT "echo: unexpected interrupt\n"
	mov $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* Exceptions: one 16-byte stub per vector pushes its number; report and power off. */
	.balign 16
exc_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	push $vec
	jmp exc_common
	.set vec, vec + 1
	.endr
exc_common:
	PRINT "FAIL echo: exception "
	mov (%rsp), %rdi
	call put_dec
	PRINT "\n"
	call poweroff

	.data
	.balign 8
idt_desc:
	.word 256 * 16 - 1
	.quad IDT_ADDR
echo_irqs:	.long 0
echo_bytes:	.long 0
echo_quit:	.byte 0
	.balign 8
