/*
 * hostile_io: a guest that attacks every register kiln exposes, then checks that kiln and
 * its devices still work. Run with every virtio device but the network one (whose garbage
 * frames would reach user networking's NAT); see tests/micro/run_micro.py (hostile-io).
 *
 *  1. ports: random reads and writes (widths 1/2/4) to kiln's ports (COM1, RTC, i8042,
 *     PCI configuration, ACPI PM) and to any port at all. Writes that would legitimately
 *     end the run are left out: i8042 commands (port 0x64) and the PM sleep-enable and
 *     reset values (bits 0 and 5 of each PM byte are cleared).
 *  2. config: random configuration-space writes to the first 8 PCI slots: BARs, command,
 *     capabilities, MSI-X control; then each virtio function's BAR is put back.
 *  3. bars: random accesses all over each virtio function's BAR: common configuration
 *     (absurd queue sizes, selectors, addresses, status), ISR, device configuration,
 *     notify area, MSI-X table (entries kept deliverable: fixed delivery, vector 0xef)
 *     and PBA. queue_enable is never written here: a random ring address could be RAM.
 *  4. rings: each virtio device is brought up with every queue on garbage rings (random
 *     descriptors into a scratch buffer or outside RAM, random flags, next indices, avail
 *     indices, indirect tables) and kicked; the device either copes or reports NEEDS_RESET.
 *  5. afterwards: every virtio function answers a reset and offers VERSION_1, and the
 *     entropy device serves a good request.
 * Command line: seed=N for the PRNG. Ends with "hostile-io: done, failures N".
 */
#include "micro.h"
#include "common.S"
#include "virtio.S"

#define PORT_OPS 3000
#define CFG_OPS 1000
#define BAR_OPS 1000
#define RING_ROUNDS 2
#define SETTLE_READS 300		/* status reads while the event loop walks the rings */
#define MAX_SLOTS 8
#define MAX_QUEUES 8
#define VIRTIO_VENDOR 0x1af4
#define BAR_SPAN 0x8000			/* kiln's virtio BAR (VIRTIO_PCI_BAR_SIZE) */
#define GARBAGE (SCRATCH_BASE + 0x380000)	/* rings: 0x1000 per queue */
#define GARBAGE_BUF (GARBAGE + 0x10000)	/* what garbage descriptors point at: 64 KiB */
#define SAFE_MSI_VECTOR 0xef
#define PM_END (ACPI_PM1_CNT + 8)
#define KILN_PORT_COUNT 28		/* entries in kiln_ports */

	.text
/* rand() -> %eax: xorshift32. */
rand:
	mov prng(%rip), %eax
	mov %eax, %ecx
	shl $13, %ecx
	xor %ecx, %eax
	mov %eax, %ecx
	shr $17, %ecx
	xor %ecx, %eax
	mov %eax, %ecx
	shl $5, %ecx
	xor %ecx, %eax
	mov %eax, prng(%rip)
	ret

/* rand_below(%edi n) -> %eax in [0, n) */
rand_below:
	push %rbx
	mov %edi, %ebx
	call rand
	xor %edx, %edx
	div %ebx
	mov %edx, %eax
	pop %rbx
	ret

/* width_of(%edi ctl) -> %eax: 1, 2, 4 or 4 */
width_of:
	and $3, %edi
	mov $4, %eax
	cmp $3, %edi
	je 1f
	mov %edi, %ecx
	mov $1, %eax
	shl %cl, %eax
1:	ret

/* overlaps(%edi lo, %esi len, %edx a, %ecx b) -> %eax: [lo, lo+len) meets [a, b) */
overlaps:
	xor %eax, %eax
	cmp %ecx, %edi
	jae 1f
	add %esi, %edi
	cmp %edx, %edi
	jbe 1f
	mov $1, %eax
1:	ret

/* ---- 1. ports ---- */

/* port_op(): one random port access, filtered as the header says. */
port_op:
	push %rbx
	push %r12
	push %r13
	call rand
	test $3, %eax
	jz 1f
	mov $KILN_PORT_COUNT, %edi
	call rand_below
	lea kiln_ports(%rip), %rcx
	movzwl (%rcx, %rax, 2), %ebx
	jmp 2f
1:	shr $16, %eax
	mov %eax, %ebx			/* any port */
2:	call rand
	mov %eax, %r12d			/* value */
	call rand
	mov %eax, %r13d			/* control */
	mov %r13d, %edi
	call width_of
	mov %eax, %esi
	test $0xc, %r13d
	jz .Lport_read
	/* no i8042 commands: one could be a reset */
	push %rsi
	mov %ebx, %edi
	mov $KBD_CMD, %edx
	lea 1(%rdx), %ecx
	call overlaps
	pop %rsi
	test %eax, %eax
	jnz .Lport_done
	/* no PM sleep-enable (bit 5) and no reset value (1) in any byte */
	push %rsi
	mov %ebx, %edi
	mov $ACPI_PM1_CNT, %edx
	mov $PM_END, %ecx
	call overlaps
	pop %rsi
	test %eax, %eax
	jz 3f
	and $~0x21212121, %r12d
3:	mov %ebx, %edx
	mov %r12d, %eax
	cmp $1, %esi
	je 4f
	cmp $2, %esi
	je 5f
	out %eax, %dx
	jmp .Lport_done
4:	out %al, %dx
	jmp .Lport_done
5:	out %ax, %dx
	jmp .Lport_done
.Lport_read:
	mov %ebx, %edx
	cmp $1, %esi
	je 6f
	cmp $2, %esi
	je 7f
	in %dx, %eax
	jmp .Lport_done
6:	in %dx, %al
	jmp .Lport_done
7:	in %dx, %ax
.Lport_done:
	pop %r13
	pop %r12
	pop %rbx
	ret

port_storm:
	push %rbx
	mov $PORT_OPS, %ebx
1:	call port_op
	dec %ebx
	jnz 1b
	call serial_init		/* COM1 may be in loopback or DLAB mode now */
	PRINT "\nhostile-io: ports done\n"
	pop %rbx
	ret

/* ---- 2. configuration space ---- */

save_bars:
	push %rbx
	xor %ebx, %ebx
1:	mov %ebx, %edi
	mov $PCI_BAR0, %esi
	call pci_rd32
	lea saved_bar0(%rip), %rcx
	mov %eax, (%rcx, %rbx, 4)
	inc %ebx
	cmp $MAX_SLOTS, %ebx
	jb 1b
	pop %rbx
	ret

/* is_virtio(%edi slot) -> %eax */
is_virtio:
	xor %esi, %esi
	call pci_rd16
	cmp $VIRTIO_VENDOR, %eax
	sete %al
	movzbl %al, %eax
	ret

/* restore_bars(): each virtio function's BAR0 back, other BARs off, decoding and DMA on. */
restore_bars:
	push %rbx
	push %r12
	xor %ebx, %ebx
1:	mov %ebx, %edi
	call is_virtio
	test %eax, %eax
	jz 3f
	lea saved_bar0(%rip), %rcx
	mov (%rcx, %rbx, 4), %edx
	mov %ebx, %edi
	mov $PCI_BAR0, %esi
	call pci_wr32
	mov $PCI_BAR0 + 4, %r12d
2:	mov %ebx, %edi
	mov %r12d, %esi
	xor %edx, %edx
	call pci_wr32
	add $4, %r12d
	cmp $PCI_BAR0 + 24, %r12d
	jb 2b
	mov %ebx, %edi
	mov $PCI_COMMAND, %esi
	mov $PCI_CMD_MEMORY | PCI_CMD_MASTER, %edx
	call pci_wr16
3:	inc %ebx
	cmp $MAX_SLOTS, %ebx
	jb 1b
	pop %r12
	pop %rbx
	ret

cfg_op:
	push %rbx
	push %r12
	push %r13
	mov $MAX_SLOTS, %edi
	call rand_below
	mov %eax, %ebx			/* slot */
	call rand
	mov %eax, %r13d			/* control */
	shr $8, %eax
	and $0xff, %eax
	mov %eax, %r12d			/* register */
	mov %r13d, %edi
	call width_of
	lea -1(%rax), %ecx
	not %ecx
	and %ecx, %r12d			/* naturally aligned */
	cmp $2, %eax
	je 2f
	jb 1f
	call rand
	mov %eax, %edx
	mov %ebx, %edi
	mov %r12d, %esi
	test $0xc, %r13d
	jz 4f
	call pci_wr32
	jmp 9f
4:	call pci_rd32
	jmp 9f
1:	call rand
	mov %eax, %edx
	mov %ebx, %edi
	mov %r12d, %esi
	test $0xc, %r13d
	jz 5f
	call pci_wr8
	jmp 9f
5:	call pci_rd8
	jmp 9f
2:	call rand
	mov %eax, %edx
	mov %ebx, %edi
	mov %r12d, %esi
	test $0xc, %r13d
	jz 6f
	call pci_wr16
	jmp 9f
6:	call pci_rd16
9:	pop %r13
	pop %r12
	pop %rbx
	ret

cfg_storm:
	push %rbx
	mov $CFG_OPS, %ebx
1:	call cfg_op
	dec %ebx
	jnz 1b
	call restore_bars
	PRINT "hostile-io: config done\n"
	pop %rbx
	ret

/* ---- 3. BARs ---- */

/* msix_safe(): every MSI-X entry deliverable and harmless (masked, vector 0xef). */
msix_safe:
	mov vio_msix_table(%rip), %rax
	mov vio_msix_nvec(%rip), %ecx
	test %rax, %rax
	jz 2f
1:	test %ecx, %ecx
	jz 2f
	movl $LAPIC_BASE, (%rax)
	movl $0, 4(%rax)
	movl $SAFE_MSI_VECTOR, 8(%rax)
	movl $1, 12(%rax)
	add $16, %rax
	dec %ecx
	jmp 1b
2:	ret

/* select_device(%edi slot) -> %eax: 1 if its virtio structures were found */
select_device:
	mov %edi, vio_slot(%rip)
	call vio_bar_probe
	call vio_enable_pci
	call vio_map
	push %rax
	call msix_safe
	pop %rax
	ret

/* bar_op(): one random access inside the selected device's BAR. */
bar_op:
	push %rbx
	push %r12
	push %r13
	push %r14
	call rand
	mov %eax, %r13d			/* control */
	shr $8, %eax
	and $BAR_SPAN - 1, %eax
	mov %eax, %ebx			/* offset */
	mov %r13d, %edi
	call width_of
	mov %eax, %r14d			/* width */
	lea -1(%rax), %ecx
	not %ecx
	and %ecx, %ebx
	call rand
	mov %eax, %r12d			/* value */
	/* MSI-X table: only the vector-control words, so entries stay harmless */
	mov vio_msix_table(%rip), %rdx
	test %rdx, %rdx
	jz 1f
	sub vio_bar(%rip), %rdx
	mov vio_msix_nvec(%rip), %ecx
	shl $4, %ecx
	add %edx, %ecx
	mov %ebx, %edi
	mov %r14d, %esi
	call overlaps
	test %eax, %eax
	jz 1f
	and $~15, %ebx
	add $12, %ebx
	mov $4, %r14d
	and $1, %r12d
1:	test $0xc, %r13d
	jz .Lbar_read
	/* never queue_enable (common configuration +28) */
	mov vio_common(%rip), %rdx
	sub vio_bar(%rip), %rdx
	add $CC_Q_ENABLE, %edx
	lea 2(%rdx), %ecx
	mov %ebx, %edi
	mov %r14d, %esi
	call overlaps
	test %eax, %eax
	jnz .Lbar_done
	mov vio_bar(%rip), %rdx
	add %rbx, %rdx
	mov %r12d, %eax
	cmp $1, %r14d
	je 2f
	cmp $2, %r14d
	je 3f
	mov %eax, (%rdx)
	jmp .Lbar_done
2:	mov %al, (%rdx)
	jmp .Lbar_done
3:	mov %ax, (%rdx)
	jmp .Lbar_done
.Lbar_read:
	mov vio_bar(%rip), %rdx
	add %rbx, %rdx
	cmp $1, %r14d
	je 4f
	cmp $2, %r14d
	je 5f
	mov (%rdx), %eax
	jmp .Lbar_done
4:	mov (%rdx), %al
	jmp .Lbar_done
5:	mov (%rdx), %ax
.Lbar_done:
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* bar_storm(%edi slot) */
bar_storm:
	push %rbx
	call select_device
	test %eax, %eax
	jz 2f
	incl devices(%rip)
	mov $BAR_OPS, %ebx
1:	call bar_op
	dec %ebx
	jnz 1b
	call msix_safe
	call vio_reset
2:	pop %rbx
	ret

/* for_each_virtio(%rdi fn): fn(%edi slot) for every virtio function in the first slots */
for_each_virtio:
	push %rbx
	push %r12
	mov %rdi, %r12
	xor %ebx, %ebx
1:	mov %ebx, %edi
	call is_virtio
	test %eax, %eax
	jz 2f
	mov %ebx, %edi
	call *%r12
2:	inc %ebx
	cmp $MAX_SLOTS, %ebx
	jb 1b
	pop %r12
	pop %rbx
	ret

/* ---- 4. garbage rings ---- */

/* garbage_ring(%edi queue): 8 random descriptors, a random avail ring, a clean used ring. */
garbage_ring:
	push %rbx
	push %r12
	push %r13
	mov %edi, %eax
	shl $12, %eax
	lea GARBAGE(%rax), %r12		/* this queue's rings */
	xor %ebx, %ebx
1:	lea (%r12, %rbx, 8), %r13
	lea (%r13, %rbx, 8), %r13	/* descriptor rbx: 16 bytes */
	call rand
	test $3, %eax
	jz 2f
	shr $4, %eax
	and $0xfff0, %eax
	add $GARBAGE_BUF, %eax		/* into the scratch buffer */
	mov %rax, (%r13)
	jmp 3f
2:	call rand
	mov %eax, (%r13)
	call rand
	or $0x80000000, %eax		/* far outside RAM */
	mov %eax, 4(%r13)
3:	call rand
	and $0x7ff, %eax
	mov %eax, 8(%r13)		/* len */
	call rand
	mov %eax, %ecx
	and $7, %ecx
	mov %cx, 12(%r13)		/* flags: NEXT, WRITE, INDIRECT at random */
	shr $8, %eax
	test $7, %eax
	jnz 4f
	shr $3, %eax			/* 1 in 8: any next index */
	jmp 5f
4:	and $7, %eax
5:	mov %ax, 14(%r13)
	inc %ebx
	cmp $8, %ebx
	jb 1b
	/* avail: flags, idx up to 15 (more than 8 ahead is malformed), ring */
	call rand
	and $1, %eax
	mov %ax, 0x400(%r12)
	call rand
	and $15, %eax
	mov %ax, 0x402(%r12)
	xor %ebx, %ebx
6:	call rand
	and $15, %eax
	mov %ax, 0x404(%r12, %rbx, 2)
	inc %ebx
	cmp $8, %ebx
	jb 6b
	lea 0x800(%r12), %rdi
	xor %eax, %eax
	mov $0x80, %ecx
	rep stosb
	pop %r13
	pop %r12
	pop %rbx
	ret

/* garbage_buffer(): random bytes where the descriptors point (indirect tables included). */
garbage_buffer:
	push %rbx
	mov $GARBAGE_BUF, %ebx
1:	call rand
	mov %eax, (%rbx)
	add $4, %ebx
	cmp $GARBAGE_BUF + 0x10000, %ebx
	jb 1b
	pop %rbx
	ret

/* ring_round(): the selected device up on garbage rings, every queue kicked. */
ring_round:
	push %rbx
	push %r12
	call vio_reset
	mov $VS_ACKNOWLEDGE | VS_DRIVER, %edi
	call vio_set_status
	xor %ebx, %ebx			/* accept whatever the device offers */
1:	CC_WR32 CC_DFSELECT, %ebx
	CC_RD32 CC_DF
	mov %eax, %r12d
	CC_WR32 CC_GFSELECT, %ebx
	CC_WR32 CC_GF, %r12d
	inc %ebx
	cmp $2, %ebx
	jb 1b
	mov $VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK, %edi
	call vio_set_status
	CC_RD16 CC_NUM_QUEUES
	cmp $MAX_QUEUES, %eax
	jbe 2f
	mov $MAX_QUEUES, %eax
2:	mov %eax, %r12d
	xor %ebx, %ebx
3:	cmp %r12d, %ebx
	jae 4f
	mov %ebx, %edi
	call garbage_ring
	CC_WR16 CC_Q_SELECT, %bx
	CC_WR16 CC_Q_SIZE, $8
	mov %ebx, %eax
	shl $12, %eax
	add $GARBAGE, %eax
	CC_WR32 CC_Q_DESC, %eax
	CC_WR32 CC_Q_DESC + 4, $0
	add $0x400, %eax
	CC_WR32 CC_Q_DRIVER, %eax
	CC_WR32 CC_Q_DRIVER + 4, $0
	add $0x400, %eax
	CC_WR32 CC_Q_DEVICE, %eax
	CC_WR32 CC_Q_DEVICE + 4, $0
	CC_WR16 CC_Q_ENABLE, $1
	inc %ebx
	jmp 3b
4:	mov $VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK, %edi
	call vio_set_status
	xor %ebx, %ebx
5:	cmp %r12d, %ebx
	jae 6f
	CC_WR16 CC_Q_SELECT, %bx
	CC_RD16 CC_Q_NOTIFY_OFF
	imul vio_notify_mult(%rip), %eax
	add vio_notify(%rip), %rax
	mov %bx, (%rax)			/* kick */
	inc %ebx
	jmp 5b
6:	mov $SETTLE_READS, %ebx
7:	call vio_status
	dec %ebx
	jnz 7b
	test $VS_NEEDS_RESET, %eax
	jz 8f
	incl needs_reset(%rip)
8:	call vio_reset
	pop %r12
	pop %rbx
	ret

/* ring_storm(%edi slot) */
ring_storm:
	push %rbx
	call select_device
	test %eax, %eax
	jz 2f
	mov $RING_ROUNDS, %ebx
1:	call garbage_buffer
	call ring_round
	dec %ebx
	jnz 1b
2:	pop %rbx
	ret

/* ---- 5. still working ---- */

/* answers(%edi slot): after a reset, status reads 0 and VERSION_1 is offered. */
answers:
	push %rbx
	call select_device
	mov %eax, %ebx
	test %eax, %eax
	jz 1f
	call vio_reset
	and %eax, %ebx
	CC_WR32 CC_DFSELECT, $1
	CC_RD32 CC_DF
	and $1, %eax			/* VIRTIO_F_VERSION_1 - 32 */
	and %eax, %ebx
1:	mov %ebx, %edi
	STR %rsi, "hostile-io-device-answers"
	call check
	pop %rbx
	ret

rng_works:
	call vio_find
	test %eax, %eax
	jz 1f
	mov vio_slot(%rip), %edi
	call select_device
	test %eax, %eax
	jz 1f
	mov $1, %edi
	shl $VIRTIO_F_VERSION_1, %rdi
	call vio_up
	test %eax, %eax
	jz 1f
	call vio_good_request
1:	mov %eax, %edi
	STR %rsi, "hostile-io-rng-works"
	jmp check

main:
	PRINT "hostile-io: start\n"
	STR %rdi, "seed="
	call cmdline_find
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	call parse_dec
	test %eax, %eax
	jz 1f
	mov %eax, prng(%rip)
1:	PRINT "hostile-io: seed "
	mov prng(%rip), %edi
	call put_dec
	PRINT "\n"
	call idt_init			/* exceptions are reported; interrupts stay off */
	call save_bars			/* the port storm reaches configuration space too */
	call port_storm
	call cfg_storm
	lea bar_storm(%rip), %rdi
	call for_each_virtio
	PRINT "hostile-io: bars done, devices "
	mov devices(%rip), %edi
	call put_dec
	PRINT "\n"
	lea ring_storm(%rip), %rdi
	call for_each_virtio
	PRINT "hostile-io: rings done, needs-reset "
	mov needs_reset(%rip), %edi
	call put_dec
	PRINT "\n"
	lea answers(%rip), %rdi
	call for_each_virtio
	call rng_works
	PRINT "hostile-io: done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	ret

	.section .rodata
kiln_ports:
	.word 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff
	.word 0x70, 0x71, 0x60, 0x64
	.word 0xcf8, 0xcf9, 0xcfa, 0xcfb, 0xcfc, 0xcfd, 0xcfe, 0xcff
	.word 0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x606, 0x607

	.data
	.balign 4
prng:		.long 0x9e3779b9
devices:	.long 0
needs_reset:	.long 0
saved_bar0:	.fill MAX_SLOTS, 4, 0
