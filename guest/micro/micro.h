/*
 * Shared definitions for kiln's micro-guests: tiny freestanding x86-64 guests that kiln boots
 * as raw images (loaded and entered at 0x100000 in 64-bit mode, see README.md here).
 *
 * Calling convention of the helpers in common.S: arguments in %rdi, %rsi, %rdx; result in
 * %rax; %rax, %rcx, %rdx, %rsi, %rdi, %r8-%r11 may be clobbered (as in the SysV ABI).
 * Every guest file includes this header, then common.S, then defines `main`.
 */
#ifndef KILN_MICRO_H
#define KILN_MICRO_H

/* Where kiln puts things (kiln's src/arch/x86/layout.h). */
#define IMAGE_BASE 0x100000
#define BOOT_GDT 0x500
#define ZERO_PAGE 0x7000
#define BOOT_PML4 0x9000
#define BOOT_STACK_TOP 0x8f000
#define CMDLINE_MAX 0x10000
#define ACPI_SCAN_START 0xe0000
#define ACPI_SCAN_END 0x100000

/* Linux boot protocol, struct boot_params offsets (arch/x86/include/uapi/asm/bootparam.h). */
#define ZP_EXT_CMD_LINE_PTR 0x0c8
#define ZP_E820_ENTRIES 0x1e8
#define ZP_CMD_LINE_PTR 0x228
#define ZP_E820_TABLE 0x2d0
#define E820_ENTRY_SIZE 20
#define E820_MAX_ENTRIES 128
#define E820_RAM 1

/* Guest-owned scratch memory: above any micro-guest image, below kiln's 8 MiB minimum. */
#define SCRATCH_BASE 0x400000
#define AP_STACKS (SCRATCH_BASE + 0x100000) /* one 4 KiB stack per AP, upwards */
#define AP_STACK_SIZE 0x1000
#define IDT_ADDR (SCRATCH_BASE + 0x200000)  /* 256 x 16-byte gates */

/* COM1, a 16550A. */
#define COM1 0x3f8
#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20

/* Hardware-reduced ACPI registers kiln exposes. */
#define ACPI_PM1_CNT 0x600
#define ACPI_SLP_POWEROFF 0x34 /* SLP_TYP 5 << 2 | SLP_EN */
#define ACPI_RESET_REG 0x604
#define ACPI_RESET_VALUE 0x01

/* QEMU's isa-debug-exit device, where the benchmarks put it: a write ends QEMU. */
#define QEMU_DEBUG_EXIT 0xf4

/* i8042 keyboard controller. */
#define KBD_DATA 0x60
#define KBD_STATUS 0x64 /* read */
#define KBD_CMD 0x64    /* write */
#define KBD_CMD_RESET 0xfe

/* MC146818 CMOS RTC. */
#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_CENTURY 0x32
#define RTC_A_UIP 0x80
#define RTC_B_24H 0x02
#define RTC_B_BINARY 0x04

/* PCI configuration mechanism #1. */
#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc

/* 8259 PICs. */
#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

/* xAPIC (MMIO) and IOAPIC. */
#define LAPIC_BASE 0xfee00000
#define LAPIC_ID 0x020
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_ASSERT 0x00004000
#define ICR_BUSY 0x00001000
#define LVT_MASKED 0x00010000
#define IOAPIC_BASE 0xfec00000
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))

/* Control registers and MSRs. */
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR0_EXPECTED 0x80050033 /* PE|MP|ET|NE|WP|PG */
#define CR4_PAE 0x20
#define CR4_ALLOWED 0x620       /* PAE|OSFXSR|OSXMMEXCPT */
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define EFER_EXPECTED 0x500     /* LME|LMA */

/* Segment selectors of kiln's boot GDT (and of the APs' own GDT in smp.S). */
#define SEL_CODE64 0x10
#define SEL_DATA 0x18

#else
#error "micro.h included twice"
#endif

#ifdef __ASSEMBLER__
/* PRINT "text": puts a string literal (clobbers the caller-saved registers). */
.macro PRINT s
	.pushsection .rodata
.Lprint_str\@:
	.asciz "\s"
	.popsection
	lea .Lprint_str\@(%rip), %rdi
	call puts
.endm

/* PRINT_HEX reg_or_mem, digits: prints a value in hex with 0x and a fixed number of digits. */
.macro PRINT_HEX val, digits=16
	mov \val, %rdi
	mov $\digits, %esi
	call put_hex
.endm

/* STR reg, "text": loads the address of a string literal into reg (for the check helpers). */
.macro STR reg, s
	.pushsection .rodata
.Lstr\@:
	.asciz "\s"
	.popsection
	lea .Lstr\@(%rip), \reg
.endm
#endif
