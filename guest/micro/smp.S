/*
 * smp: brings up the application processors the way firmware does (Intel SDM Vol. 3
 * §9.4.4 / MP spec B.4): a 16-bit trampoline copied below 1 MiB, INIT then two STARTUP IPIs
 * per AP through the xAPIC ICR. Each AP goes straight from real mode to long mode with its
 * own GDT and kiln's page tables, prints "cpu N up" under a lock and counts itself in.
 * The BSP expects as many CPUs as the MADT lists ("cpus=N" on the command line overrides),
 * waits (at most ~10 s by the RTC) and prints "smp: N cpus up".
 * Command-line options, to test kiln's stop and reset paths with several vCPUs:
 *   finish=ap  the BSP halts with interrupts off once the IPIs are sent; the last AP up
 *              prints the summary and powers off (or resets), so kiln must stop a vCPU
 *              that sits in HLT inside KVM_RUN;
 *   reboot=1   reset once (ACPI) after all CPUs came up; the second boot brings them up
 *              again and powers off. CMOS NVRAM byte 0x53 counts the boots.
 */
#include "micro.h"
#include "common.S"
#include "acpi.S"

#define TRAMPOLINE 0x8000		/* STARTUP vector 0x08 */
#define SIPI_VECTOR (TRAMPOLINE >> 12)
#define MAX_AP_STACKS 256
#define NVRAM_BOOTS 0x53

	.text
/* ---- the AP trampoline: copied to TRAMPOLINE, entered in real mode at CS:IP = 0800:0000 ---- */
	.code16
	.balign 16
tramp_start:
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	lgdtl tramp_gdtr - tramp_start
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $BOOT_PML4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov $CR0_EXPECTED, %eax		/* PE and PG at once: long mode (compatibility) */
	mov %eax, %cr0
	ljmpl $SEL_CODE64, $ap_entry64	/* into the 64-bit code segment */
	.balign 8
tramp_gdt:
	.quad 0
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x10: 64-bit code, DPL 0 */
	.quad 0x00cf92000000ffff	/* 0x18: flat data */
tramp_gdt_end:
tramp_gdtr:
	.word tramp_gdt_end - tramp_gdt - 1
	.long TRAMPOLINE + (tramp_gdt - tramp_start)
tramp_end:
	.code64

/* ---- APs in long mode ---- */
ap_entry64:
	mov $SEL_DATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %eax, %fs
	mov %eax, %gs
	mov $1, %eax
	lock xadd %eax, ap_stack_next(%rip)
	cmp $MAX_AP_STACKS, %eax
	jae ap_park
	inc %eax
	shl $12, %rax
	add $AP_STACKS, %rax
	mov %rax, %rsp
	call cpu_report
	mov $1, %eax
	lock xadd %eax, cpus_up(%rip)
	inc %eax
	cmpb $0, smp_finish_ap(%rip)
	je ap_park
	cmp smp_expected(%rip), %eax
	jne ap_park
	call smp_finish			/* the last AP in: report and stop the VM */
ap_park:
	cli
1:	hlt
	jmp 1b

/* cpu_report: "cpu N up" (N: the LAPIC ID), under the print lock; complains when CPUID's
 * initial APIC ID disagrees with the LAPIC. */
cpu_report:
	push %rbx
	push %r12
	mov $LAPIC_BASE, %eax
	mov LAPIC_ID(%rax), %r12d
	shr $24, %r12d			/* LAPIC ID */
	mov $1, %eax
	cpuid
	shr $24, %ebx			/* CPUID initial APIC ID */
	lea print_lock(%rip), %rdi
	call spin_lock
	PRINT "cpu "
	mov %r12, %rdi
	call put_dec
	PRINT " up\n"
	cmp %r12d, %ebx
	je 1f
	PRINT "FAIL smp: cpuid apic id "
	mov %rbx, %rdi
	call put_dec
	PRINT " differs from lapic id\n"
1:	lea print_lock(%rip), %rdi
	call spin_unlock
	pop %r12
	pop %rbx
	ret

/* smp_finish: "smp: N cpus up", then power off, or reset on the first boot with reboot=1.
 * Called by the BSP, or by the last AP with finish=ap. */
smp_finish:
	lea print_lock(%rip), %rdi
	call spin_lock
	PRINT "smp: "
	mov cpus_up(%rip), %edi
	call put_dec
	PRINT " cpus up"
	cmpb $0, smp_finish_ap(%rip)
	je 1f
	PRINT " (reported by cpu "
	mov $LAPIC_BASE, %eax
	mov LAPIC_ID(%rax), %edi
	shr $24, %edi
	call put_dec
	PRINT ")"
1:	PRINT "\n"
	cmpb $0, smp_reboot(%rip)
	je 2f
	cmpl $1, smp_boot(%rip)
	jne 2f
	PRINT "smp: resetting\n"
	call reset_acpi
2:	mov $NVRAM_BOOTS, %edi
	xor %esi, %esi
	call cmos_write
	call poweroff

/* lapic_icr(%edi destination APIC ID, %esi ICR low): sends an IPI and waits (bounded) for the
 * delivery status to go idle. */
lapic_icr:
	mov $LAPIC_BASE, %eax
	shl $24, %edi
	mov %edi, LAPIC_ICR_HI(%rax)
	mov %esi, LAPIC_ICR_LO(%rax)
	mov $1000, %ecx
1:	testl $ICR_BUSY, LAPIC_ICR_LO(%rax)
	jz 2f
	pause
	dec %ecx
	jnz 1b
2:	ret

/* start_ap(%edi APIC ID): INIT, STARTUP, STARTUP. */
start_ap:
	push %rbx
	mov %edi, %ebx
	mov %ebx, %edi
	mov $ICR_INIT | ICR_ASSERT, %esi
	call lapic_icr
	mov %ebx, %edi
	mov $ICR_STARTUP | ICR_ASSERT | SIPI_VECTOR, %esi
	call lapic_icr
	mov %ebx, %edi
	mov $ICR_STARTUP | ICR_ASSERT | SIPI_VECTOR, %esi
	call lapic_icr
	pop %rbx
	ret

main:
	push %rbx
	push %r12
	push %r13
	push %r14

	mov $NVRAM_BOOTS, %edi
	call cmos_read
	inc %eax
	mov %eax, smp_boot(%rip)
	mov $NVRAM_BOOTS, %edi
	mov %eax, %esi
	call cmos_write
	PRINT "smp: boot "
	mov smp_boot(%rip), %edi
	call put_dec
	PRINT "\n"
	cmpl $3, smp_boot(%rip)
	jb 11f
	PRINT "FAIL smp: too many boots\n"
	jmp 9f
11:	STR %rdi, "finish="
	call cmdline_find
	test %rax, %rax
	jz 12f
	mov %rax, %rdi
	STR %rsi, "ap"
	call word_eq
	mov %al, smp_finish_ap(%rip)
12:	STR %rdi, "reboot="
	call cmdline_find
	test %rax, %rax
	jz 13f
	mov %rax, %rdi
	call parse_dec
	test %rax, %rax
	setnz smp_reboot(%rip)
13:
	call madt_cpus
	mov %eax, %r12d			/* CPUs in the MADT */
	mov %eax, %r13d			/* CPUs expected */
	STR %rdi, "cpus="
	call cmdline_find
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	call parse_dec
	mov %eax, %r13d
1:	PRINT "smp: madt lists "
	mov %r12, %rdi
	call put_dec
	PRINT " cpus, expecting "
	mov %r13, %rdi
	call put_dec
	PRINT "\n"
	test %r13d, %r13d
	jnz 2f
	PRINT "FAIL smp: no cpu count (no MADT and no cpus=N)\n"
	jmp 9f

2:	mov %r13d, smp_expected(%rip)
	/* the BSP counts itself in */
	mov $LAPIC_BASE, %ebx
	movl $0x1ff, LAPIC_SVR(%rbx)	/* software-enable the LAPIC, spurious vector 0xff */
	mov LAPIC_ID(%rbx), %r14d
	shr $24, %r14d			/* BSP APIC ID */
	call cpu_report
	lock incl cpus_up(%rip)
	cmp $1, %r13d
	jne 14f
	movb $0, smp_finish_ap(%rip)	/* no AP to finish */
14:
	/* trampoline below 1 MiB */
	lea tramp_start(%rip), %rsi
	mov $TRAMPOLINE, %edi
	mov $tramp_end - tramp_start, %ecx
	rep movsb

	/* wake every other CPU the MADT lists, or all of them by broadcast if it lists none */
	test %r12d, %r12d
	jz 4f
	xor %ebx, %ebx
3:	cmp %r12d, %ebx
	jae 5f
	cmp $MADT_MAX_IDS, %ebx
	jae 5f
	lea madt_ids(%rip), %rax
	mov (%rax, %rbx, 4), %edi
	cmp %r14d, %edi
	je 31f
	call start_ap
31:	inc %ebx
	jmp 3b
4:	mov $LAPIC_BASE, %eax
	movl $0x000c0000 | ICR_INIT | ICR_ASSERT, LAPIC_ICR_LO(%rax)	/* all but self */
	movl $0x000c0000 | ICR_STARTUP | ICR_ASSERT | SIPI_VECTOR, LAPIC_ICR_LO(%rax)
	movl $0x000c0000 | ICR_STARTUP | ICR_ASSERT | SIPI_VECTOR, LAPIC_ICR_LO(%rax)

5:	cmpb $0, smp_finish_ap(%rip)
	je 15f
	jmp halt_forever		/* with interrupts off: only kiln can end this */
15:	/* wait for them */
	mov $10, %edi
	call timeout_start
6:	mov cpus_up(%rip), %eax
	cmp %r13d, %eax
	jae 7f
	call timeout_expired
	test %eax, %eax
	jz 6b
	lea print_lock(%rip), %rdi
	call spin_lock
	PRINT "FAIL smp: timeout, "
	mov cpus_up(%rip), %edi
	call put_dec
	PRINT " of "
	mov %r13, %rdi
	call put_dec
	PRINT " cpus up\n"
	jmp 9f

7:	call smp_finish
9:	mov $NVRAM_BOOTS, %edi
	xor %esi, %esi
	call cmos_write
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

	.data
	.balign 8
cpus_up:	.long 0
ap_stack_next:	.long 0
smp_expected:	.long 0
smp_boot:	.long 0
smp_finish_ap:	.byte 0
smp_reboot:	.byte 0
