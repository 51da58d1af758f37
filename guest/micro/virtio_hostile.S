/*
 * virtio_hostile: a malicious virtio driver for kiln's virtio-rng (`kiln run --rng`). It
 * feeds the device malformed rings and bad register writes and checks that kiln survives,
 * that the device reports DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) where it should, without
 * consuming anything, and that after a reset (status 0) a good request works again.
 *
 * Cases (each prints PASS/FAIL hostile-<case>, and hostile-<case>-recovered):
 *  - descriptor chains that loop, leave the table, point outside RAM or at MMIO;
 *  - indirect tables nested, combined with NEXT, of bad size, outside RAM, looping;
 *  - an avail index more than the queue size ahead; rings outside RAM at queue_enable;
 *  - valid but unusual layouts that must keep working (a chain as long as the queue, an
 *    indirect descriptor with WRITE set, direct descriptors followed by an indirect one);
 *  - feature negotiation and selector abuse, notifications for absent queues;
 *  - random writes (xorshift32, widths 1/2/4) over the BAR's structures, every PCI
 *    configuration register of the device and of the host bridge, the PCI_CFG window;
 *  - memory decoding off/on, BAR0 moved, bus mastering off;
 *  - a flood of NEEDS_RESET events, so that the runner can check kiln's log is limited;
 *  - with reboot=1, a VM reset while the device is live (MSI-X on, BAR0 moved, a buffer in
 *    flight); the second boot checks the device's power-on state and uses it again.
 * Command line: seed=N for the PRNG (printed either way), fuzz=N random BAR accesses
 * (default 400), reboot=1. Ends with
 * `hostile: done ...` (and `hostile: second boot done ...`).
 */
#include "micro.h"
#include "common.S"
#include "virtio.S"

#define FEATURES_LO (1 << VIRTIO_F_INDIRECT_DESC)
#define FEATURES_HI (1 << (VIRTIO_F_VERSION_1 - 32))
#define FUZZ_BAR_OPS 400
#define FLOOD_EVENTS 1000
#define SAFE_MSI_VECTOR 0xef
#define NV_FLAG 0x70			/* CMOS NVRAM: survives a VM reset */
#define NV_MAGIC 0xa5
#define NV_BAR 0x71			/* 4 bytes */

/* DESC table, index, addr, len, flags, next: one descriptor (addr may be a register). */
.macro DESC tbl, idx, addr, len, flags, next
	mov \addr, %rdx
	mov \tbl, %edi
	mov \idx, %esi
	mov \len, %ecx
	mov \flags, %r8d
	mov \next, %r9d
	call desc_set
.endm

/* RING_CASE fn, "name"[, expected len]: a case table entry, the name kept aside. */
.macro RING_CASE fn, name, len
	.quad \fn, .Lcase_name\@
	.ifnb \len
	.quad \len
	.endif
	.pushsection .rodata.names, "a"
.Lcase_name\@:
	.asciz "\name"
	.popsection
.endm

	.text
/* features() -> %rax: what this driver accepts (VERSION_1, INDIRECT_DESC). */
features:
	mov $FEATURES_HI, %eax
	shl $32, %rax
	or $FEATURES_LO, %rax
	ret

/* up() -> %eax: device reset and brought up on the standard rings (DRIVER_OK). */
up:
	call features
	mov %rax, %rdi
	call vio_up
	push %rax
	call vio_read_isr		/* start each case with a clean ISR */
	pop %rax
	ret

/* report(%edi ok, %rsi name, %rdx suffix) -> %eax = ok: "PASS name suffix" or "FAIL ...". */
report:
	push %rbx
	push %r12
	push %r13
	mov %edi, %ebx
	mov %rsi, %r12
	mov %rdx, %r13
	lea str_pass(%rip), %rdi
	test %ebx, %ebx
	jnz 1f
	incl fail_count(%rip)
	lea str_fail(%rip), %rdi
1:	call puts
	mov %r12, %rdi
	call puts
	mov %r13, %rdi
	call puts
	mov $'\n', %edi
	call putc
	mov %ebx, %eax
	pop %r13
	pop %r12
	pop %rbx
	ret

/* recover(%rsi name): reset, bring up again, one good request: "PASS name-recovered". */
recover:
	push %rbx
	mov %rsi, %rbx
	call up
	test %eax, %eax
	jz 1f
	call vio_good_request
1:	mov %eax, %edi
	mov %rbx, %rsi
	STR %rdx, "-recovered"
	call report
	pop %rbx
	ret

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

/* ram_end() -> %rax: the end of the highest e820 RAM entry. */
ram_end:
	mov boot_params(%rip), %rsi
	movzbl ZP_E820_ENTRIES(%rsi), %ecx
	lea ZP_E820_TABLE(%rsi), %rsi
	xor %eax, %eax
1:	test %ecx, %ecx
	jz 3f
	cmpl $E820_RAM, 16(%rsi)
	jne 2f
	mov (%rsi), %rdx
	add 8(%rsi), %rdx
	cmp %rax, %rdx
	jbe 2f
	mov %rdx, %rax
2:	add $E820_ENTRY_SIZE, %rsi
	dec %ecx
	jmp 1b
3:	ret

/* msix_safe(): every table entry aimed at this CPU, vector 0xef, fixed, masked. */
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

/* ---- malformed rings: the device must set NEEDS_RESET and use nothing ---- */

/*
 * bad_ring(%rdi prep, %rsi name): device up, prep() writes the ring and publishes it,
 * one kick; then NEEDS_RESET within ~2 s, used->idx still 0, and the configuration
 * change notification §2.1.2 requires (ISR bit 1, MSI-X being off). Then recovery.
 */
bad_ring:
	push %rbx
	push %r12
	push %r13
	mov %rdi, %rbx
	mov %rsi, %r12
	incl cases(%rip)
	call up
	test %eax, %eax
	jz 2f
	call *%rbx
	call vq_kick
	call vio_wait_needs_reset
	mov %eax, %r13d
	call vio_read_isr
	test $2, %eax
	jnz 1f
	incl config_irq_missing(%rip)
1:	xor %edi, %edi
	cmpw $0, VQ_USED + 2
	jne 2f
	mov %r13d, %edi
2:	mov %r12, %rsi
	STR %rdx, ""
	call report
	mov %r12, %rsi
	call recover
	pop %r13
	pop %r12
	pop %rbx
	ret

/* good_ring(%rdi prep, %rsi name, %edx expected used len): must work, no NEEDS_RESET. */
good_ring:
	push %rbx
	push %r12
	push %r13
	mov %rdi, %rbx
	mov %rsi, %r12
	mov %edx, %r13d
	incl cases(%rip)
	call up
	test %eax, %eax
	jz 1f
	call *%rbx
	call vq_kick
	call vq_wait
	test %eax, %eax
	js 1f
	mov %eax, %edi
	call used_len
	cmp %r13d, %eax
	jne 1f
	call vio_status
	test $VS_NEEDS_RESET, %eax
	jnz 1f
	mov $VQ_BUF, %edi
	mov %r13d, %esi
	call buf_nonzero
	jmp 2f
1:	xor %eax, %eax
2:	mov %eax, %edi
	mov %r12, %rsi
	STR %rdx, ""
	call report
	pop %r13
	pop %r12
	pop %rbx
	ret

/* The prep functions: build a ring in VQ_DESC / VQ_IND and publish head 0 (unless noted). */
prep_loop:				/* 0 -> 1 -> 0 -> ... */
	DESC $VQ_DESC, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $1
	DESC $VQ_DESC, $1, $VQ_BUF + 32, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $0
	xor %edi, %edi
	jmp vq_post
prep_self_loop:				/* 0 -> 0 */
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $0
	xor %edi, %edi
	jmp vq_post
prep_next_oob:				/* next = queue size */
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $VQ_DEFAULT_SIZE
	xor %edi, %edi
	jmp vq_post
prep_head_oob:				/* avail ring names descriptor 0xffff */
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	mov $0xffff, %edi
	jmp vq_post
prep_lapic:				/* the LAPIC page, not RAM */
	DESC $VQ_DESC, $0, $LAPIC_BASE, $64, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_own_bar:				/* the device's own registers */
	DESC $VQ_DESC, $0, vio_bar(%rip), $64, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_past_ram:				/* straddles the end of RAM */
	call ram_end
	sub $32, %rax
	DESC $VQ_DESC, $0, %rax, $64, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_addr_wrap:				/* address + length wraps around 2^64 */
	DESC $VQ_DESC, $0, $-64, $0x80, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_huge_len:				/* 4 GiB - 1 from a RAM address */
	DESC $VQ_DESC, $0, $VQ_BUF, $0xffffffff, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_write_then_read:			/* §2.7.4.2: readable after writable */
	DESC $VQ_DESC, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $1
	DESC $VQ_DESC, $1, $VQ_BUF + 32, $32, $0, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_nested:			/* an indirect descriptor inside an indirect table */
	DESC $VQ_IND, $0, $VQ_IND + 0x100, $16, $VRING_DESC_F_INDIRECT, $0
	DESC $VQ_IND + 0x100, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $16, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_next:				/* INDIRECT together with NEXT (§2.7.5.3.1) */
	DESC $VQ_IND, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $16, $VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, $1
	DESC $VQ_DESC, $1, $VQ_BUF + 32, $32, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_bad_len:			/* not a whole number of descriptors */
	DESC $VQ_IND, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $24, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_empty:				/* a table of no descriptors */
	DESC $VQ_DESC, $0, $VQ_IND, $0, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_outside:			/* the table itself is the LAPIC page */
	DESC $VQ_DESC, $0, $LAPIC_BASE, $64, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_loop:				/* a loop inside the table */
	DESC $VQ_IND, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $1
	DESC $VQ_IND, $1, $VQ_BUF + 32, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $0
	DESC $VQ_DESC, $0, $VQ_IND, $32, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_next_oob:			/* next leaves the 2-entry table */
	DESC $VQ_IND, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $2
	DESC $VQ_IND, $1, $VQ_BUF + 32, $32, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $32, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_huge:				/* a 1 MiB table: 65536 descriptors */
	DESC $VQ_DESC, $0, $VQ_IND, $0x100000, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post
prep_ind_many_segs:			/* 300 chained 1-byte segments: longer than any queue */
	push %rbx
	xor %ebx, %ebx
1:	lea 1(%rbx), %r9d
	lea VQ_BUF(%rbx), %edx
	mov %ebx, %esi
	mov $VQ_IND, %edi
	mov $1, %ecx
	mov $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, %r8d
	call desc_set
	inc %ebx
	cmp $300, %ebx
	jb 1b
	DESC $VQ_IND, $299, $VQ_BUF + 299, $1, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $4800, $VRING_DESC_F_INDIRECT, $0
	pop %rbx
	xor %edi, %edi
	jmp vq_post
prep_avail_ahead:			/* avail->idx = queue size + 1 */
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	movw $0, VQ_AVAIL + 4
	sfence
	movw $VQ_DEFAULT_SIZE + 1, VQ_AVAIL + 2
	mfence
	ret
prep_avail_back:			/* avail->idx moved backwards: 0xffff */
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	movw $0xffff, VQ_AVAIL + 2
	mfence
	ret

/* valid layouts */
good_full_chain:			/* 8 descriptors of 8 bytes: a chain as long as the queue */
	push %rbx
	xor %ebx, %ebx
1:	lea 1(%rbx), %r9d
	lea VQ_BUF(, %rbx, 8), %edx
	mov %ebx, %esi
	mov $VQ_DESC, %edi
	mov $8, %ecx
	mov $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, %r8d
	cmp $VQ_DEFAULT_SIZE - 1, %ebx
	jne 2f
	mov $VRING_DESC_F_WRITE, %r8d
	xor %r9d, %r9d
2:	call desc_set
	inc %ebx
	cmp $VQ_DEFAULT_SIZE, %ebx
	jb 1b
	pop %rbx
	xor %edi, %edi
	jmp vq_post
good_indirect_write_flag:		/* §2.7.5.3.2: WRITE on the indirect descriptor is ignored */
	DESC $VQ_IND, $0, $VQ_BUF, $16, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $1
	DESC $VQ_IND, $1, $VQ_BUF + 16, $16, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $2
	DESC $VQ_IND, $2, $VQ_BUF + 32, $16, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $3
	DESC $VQ_IND, $3, $VQ_BUF + 48, $16, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_IND, $64, $VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	jmp vq_post
good_direct_then_indirect:		/* §2.7.5.3.2: direct descriptors, then one indirect */
	DESC $VQ_IND, $0, $VQ_BUF + 32, $32, $VRING_DESC_F_WRITE, $0
	DESC $VQ_DESC, $0, $VQ_BUF, $32, $VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, $1
	DESC $VQ_DESC, $1, $VQ_IND, $16, $VRING_DESC_F_INDIRECT, $0
	xor %edi, %edi
	jmp vq_post

/* ---- rings outside RAM when the queue is enabled ---- */

/*
 * bad_queue(%rdi desc, %rsi avail, %rdx used, %rcx name): negotiate, point queue 0 at the
 * rings, queue_enable = 1: the device must set NEEDS_RESET and leave queue_enable 0.
 */
bad_queue:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rdi, %rbx
	mov %rsi, %r12
	mov %rdx, %r13
	mov %rcx, %r14
	incl cases(%rip)
	call features
	mov %rax, %rdi
	call vio_negotiate
	mov $VQ_DEFAULT_SIZE, %edi
	mov %rbx, %rsi
	mov %r12, %rdx
	mov %r13, %rcx
	call vio_queue_at
	mov %eax, %r15d			/* queue_enable read back */
	call vio_status
	xor %edi, %edi
	test %r15d, %r15d
	jnz 1f
	test $VS_NEEDS_RESET, %eax
	setnz %dil
1:	mov %r14, %rsi
	STR %rdx, ""
	call report
	mov %r14, %rsi
	call recover
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* ---- registers ---- */

/* features_case(%rdi features, %rsi name): FEATURES_OK must not stick. */
features_refused:
	push %rbx
	mov %rsi, %rbx
	incl cases(%rip)
	call vio_negotiate
	xor %edi, %edi
	test %eax, %eax
	setz %dil
	mov %rbx, %rsi
	STR %rdx, ""
	call report
	mov %rbx, %rsi
	call recover
	pop %rbx
	ret

registers_case:
	push %rbx
	incl cases(%rip)
	/* device_feature_select beyond the feature words reads 0 (§4.1.4.3) */
	call vio_reset
	CC_WR32 CC_DFSELECT, $0xffffffff
	CC_RD32 CC_DF
	mov %eax, %edi
	xor %esi, %esi
	STR %rdx, "hostile-feature-select-beyond"
	call check_eq
	/* an absent queue: queue_size reads 0 (§4.1.4.3.2); writes to its fields do nothing */
	CC_WR16 CC_Q_SELECT, $0xffff
	CC_WR16 CC_Q_SIZE, $8
	CC_WR32 CC_Q_DESC, $VQ_DESC
	CC_WR16 CC_Q_ENABLE, $1
	CC_RD16 CC_Q_SIZE
	mov %eax, %ebx
	CC_RD16 CC_Q_ENABLE
	or %eax, %ebx
	mov %ebx, %edi
	xor %esi, %esi
	STR %rdx, "hostile-absent-queue"
	call check_eq
	/* features changed after FEATURES_OK, DRIVER_OK without a queue, status junk */
	call features
	mov %rax, %rdi
	call vio_negotiate
	CC_WR32 CC_GFSELECT, $1
	CC_WR32 CC_GF, $0
	CC_WR32 CC_GFSELECT, $0
	CC_WR32 CC_GF, $0xffffffff
	CC_WR8 CC_STATUS, $0x0f
	call vq_kick
	CC_WR8 CC_STATUS, $0xff
	CC_WR8 CC_STATUS, $0x04
	CC_WR16 CC_MSIX_CONFIG, $0x7fff
	CC_WR8 CC_CFG_GENERATION, $0x55
	CC_WR16 CC_NUM_QUEUES, $0x55
	CC_WR16 CC_Q_NOTIFY_OFF, $0x55
	CC_WR32 CC_Q_SIZE, $0xffffffff		/* size, vector */
	mov vio_common(%rip), %rax		/* 8-byte accesses across fields */
	movq $-1, CC_DFSELECT(%rax)
	mov CC_Q_DESC(%rax), %rcx
	movq $-1, CC_SIZE - 8(%rax)
	STR %rsi, "hostile-register-junk"
	call recover
	pop %rbx
	ret

/* notify_case: kicks for absent queues, odd widths, values, a kick storm; then recovery. */
notify_case:
	push %rbx
	incl cases(%rip)
	call up
	mov vio_notify(%rip), %rbx
	xor %ecx, %ecx
1:	movw $0, (%rbx, %rcx, 4)		/* queues 0-15, most of them absent */
	movw $0xffff, (%rbx, %rcx, 4)
	inc %ecx
	cmp $16, %ecx
	jb 1b
	movb $0, (%rbx)			/* queue 0 at 8 and 32 bits: no ioeventfd match */
	movl $0, (%rbx)
	movl $0xffffffff, 2(%rbx)	/* straddling two notify slots */
	mov $200, %ecx
2:	movw $0, (%rbx)			/* nothing posted */
	dec %ecx
	jnz 2b
	mov (%rbx), %eax			/* reads of the notify area */
	STR %rsi, "hostile-notify-abuse"
	call recover
	pop %rbx
	ret

/*
 * bar_fuzz: fuzz=N (FUZZ_BAR_OPS) random accesses (3 in 4 writes), widths 1/2/4, offsets aimed at
 * the common, ISR, notify, MSI-X table and PBA structures (each with a little slack past
 * its end) or anywhere in the BAR, device configuration space included. The one thing
 * filtered out: writing 1 to queue_enable, which would let random ring addresses point
 * the device at this guest's own code and make the run depend on where they land.
 */
bar_fuzz:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	incl cases(%rip)
	call up
	xor %ebx, %ebx
1:	mov $8, %edi
	call rand_below
	lea fuzz_regions(%rip), %rcx
	mov (%rcx, %rax, 8), %rcx
	jmp *%rcx
.Lfz_common:
	mov vio_common(%rip), %r12
	mov $CC_SIZE + 8, %r13d
	jmp 2f
.Lfz_isr:
	mov vio_isr(%rip), %r12
	mov $8, %r13d
	jmp 2f
.Lfz_notify:
	mov vio_notify(%rip), %r12
	mov vio_notify_len(%rip), %r13d
	add $16, %r13d
	jmp 2f
.Lfz_table:
	mov vio_msix_table(%rip), %r12
	mov vio_msix_nvec(%rip), %r13d
	shl $4, %r13d
	add $16, %r13d
	jmp 2f
.Lfz_pba:
	mov vio_msix_pba(%rip), %r12
	mov $16, %r13d
	jmp 2f
.Lfz_bar:
	mov vio_bar(%rip), %r12
	mov vio_bar_size(%rip), %r13d
2:	mov %r13d, %edi
	call rand_below
	add %rax, %r12			/* target address */
	mov $3, %edi
	call rand_below
	mov $1, %r14d
	mov %eax, %ecx
	shl %cl, %r14d			/* width 1, 2 or 4 */
	call rand
	test $0x100, %eax		/* half the time aligned to the width */
	jz 3f
	mov %r14d, %ecx
	neg %rcx
	and %rcx, %r12
3:	mov vio_bar(%rip), %rax		/* stay inside the BAR */
	mov vio_bar_size(%rip), %ecx
	add %rcx, %rax
	sub %r14, %rax
	cmp %rax, %r12
	jbe 4f
	mov %rax, %r12
4:	call rand
	mov %eax, %r15d			/* value */
	test $0x3000, %eax
	jz .Lfz_read			/* one in four */
	/* filter: a write covering queue_enable's low byte writes 0 there */
	mov vio_common(%rip), %rax
	add $CC_Q_ENABLE, %rax
	sub %r12, %rax			/* byte position of queue_enable in the value */
	cmp %r14, %rax
	jae 5f
	lea (, %rax, 8), %ecx
	mov $0xff, %eax
	shl %cl, %eax
	not %eax
	and %eax, %r15d
5:	cmp $1, %r14d
	je 6f
	cmp $2, %r14d
	je 7f
	mov %r15d, (%r12)
	jmp 8f
6:	mov %r15b, (%r12)
	jmp 8f
7:	mov %r15w, (%r12)
	jmp 8f
.Lfz_read:
	incl fuzz_reads(%rip)
	cmp $1, %r14d
	je 6f
	cmp $2, %r14d
	je 7f
	mov (%r12), %eax
	jmp 8f
6:	mov (%r12), %al
	jmp 8f
7:	mov (%r12), %ax
8:	inc %ebx
	cmp fuzz_ops(%rip), %ebx
	jb 1b
	PRINT "hostile: BAR fuzz: "
	mov fuzz_ops(%rip), %edi
	sub fuzz_reads(%rip), %edi
	call put_dec
	PRINT " writes, "
	mov fuzz_reads(%rip), %edi
	call put_dec
	PRINT " reads, status then "
	call vio_status
	mov %eax, %edi
	call put_hex
	PRINT "\n"
	call msix_safe			/* the table took random writes too */
	STR %rsi, "hostile-bar-fuzz"
	call recover
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/*
 * cfg_fuzz(%edi slot): to every register of the function's configuration space, at each
 * naturally aligned width, all ones, zeros and a random value; then reads them all.
 */
cfg_fuzz:
	push %rbx
	push %r12
	push %r13
	push %r14
	mov %edi, %r12d
	xor %ebx, %ebx			/* register */
1:	mov $1, %r13d			/* width */
2:	mov %ebx, %eax
	mov %r13d, %ecx
	dec %ecx
	test %ecx, %eax
	jnz 5f				/* not aligned to this width */
	xor %r14d, %r14d		/* value number */
3:	mov $0xffffffff, %edx
	cmp $1, %r14d
	jne 4f
	xor %edx, %edx
4:	cmp $2, %r14d
	jne 6f
	call rand
	mov %eax, %edx
6:	mov %r12d, %edi
	mov %ebx, %esi
	cmp $1, %r13d
	je 7f
	cmp $2, %r13d
	je 8f
	call pci_wr32
	jmp 9f
7:	call pci_wr8
	jmp 9f
8:	call pci_wr16
9:	inc %r14d
	cmp $3, %r14d
	jb 3b
5:	shl $1, %r13d
	cmp $4, %r13d
	jbe 2b
	inc %ebx
	cmp $256, %ebx
	jb 1b
	xor %ebx, %ebx
10:	mov %r12d, %edi
	mov %ebx, %esi
	call pci_rd32
	add $4, %ebx
	cmp $256, %ebx
	jb 10b
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* dev_ids() -> %rax: vendor/device, class/revision, cap pointer, header type of the device. */
dev_ids:
	push %rbx
	xor %edi, %edi
	call dev_rd32
	mov %eax, %ebx
	mov $PCI_REVISION, %edi
	call dev_rd32
	shl $32, %rax
	xor %rax, %rbx
	mov $PCI_CAP_PTR, %edi
	call dev_rd8
	shl $8, %rax
	xor %rax, %rbx
	mov $0x0c, %edi
	call dev_rd32
	xor %rax, %rbx
	mov %rbx, %rax
	pop %rbx
	ret

config_case:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	incl cases(%rip)
	call up
	call msix_safe
	call dev_ids
	mov %rax, %r12
	mov vio_common(%rip), %r13
	mov vio_notify(%rip), %r14
	mov $PCI_INT_LINE, %edi
	call dev_rd8
	mov %eax, %r15d
	xor %edi, %edi
	xor %esi, %esi
	call pci_rd32			/* the host bridge's ids */
	mov %eax, %ebx
	xor %edi, %edi
	mov $PCI_REVISION, %esi
	call pci_rd32
	shl $32, %rax
	or %rax, %rbx
	push %rbx

	mov vio_slot(%rip), %edi
	call cfg_fuzz
	/* put back what a driver owns: BAR0, command, interrupt line, MSI-X off */
	mov $PCI_BAR0, %edi
	mov vio_bar(%rip), %esi
	call dev_wr32
	call vio_enable_pci
	mov $PCI_INT_LINE, %edi
	mov %r15d, %esi
	call dev_wr8
	mov vio_msix_cap(%rip), %edi
	add $2, %edi
	xor %esi, %esi
	call dev_wr16
	call dev_ids
	mov %rax, %rdi
	mov %r12, %rsi
	STR %rdx, "hostile-config-readonly-intact"
	call check_eq
	call vio_map			/* the capability chain must be unchanged too */
	xor %edi, %edi
	test %eax, %eax
	jz 1f
	cmp %r13, vio_common(%rip)
	jne 1f
	cmp %r14, vio_notify(%rip)
	jne 1f
	mov $1, %edi
1:	STR %rsi, "hostile-config-capabilities-intact"
	call check
	STR %rsi, "hostile-config-fuzz-device"
	call recover

	incl cases(%rip)
	xor %edi, %edi
	call cfg_fuzz			/* the host bridge, 00:00.0 */
	xor %edi, %edi
	xor %esi, %esi
	call pci_rd32
	mov %eax, %ebx
	xor %edi, %edi
	mov $PCI_REVISION, %esi
	call pci_rd32
	shl $32, %rax
	or %rax, %rbx
	pop %rsi
	mov %rbx, %rdi
	STR %rdx, "hostile-bridge-readonly-intact"
	call check_eq
	STR %rsi, "hostile-config-fuzz-bridge"
	call recover
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* The VIRTIO_PCI_CAP_PCI_CFG window (§4.1.4.9): a real read, then nonsense. */
window_case:
	push %rbx
	push %r12
	incl cases(%rip)
	call up
	mov vio_pcicfg_cap(%rip), %ebx
	xor %edi, %edi
	test %ebx, %ebx
	jz 1f
	lea 4(%rbx), %edi		/* cap.bar = 0 */
	xor %esi, %esi
	call dev_wr8
	lea 8(%rbx), %edi		/* cap.offset = device_status */
	mov vio_common(%rip), %rsi
	sub vio_bar(%rip), %rsi
	add $CC_STATUS, %esi
	call dev_wr32
	lea 12(%rbx), %edi		/* cap.length = 1 */
	mov $1, %esi
	call dev_wr32
	lea 16(%rbx), %edi		/* pci_cfg_data */
	call dev_rd8
	mov %eax, %r12d
	call vio_status
	xor %edi, %edi
	cmp %eax, %r12d
	jne 1f
	cmp $0x0f, %eax
	sete %dil
1:	STR %rsi, "hostile-pci-cfg-window-read"
	call check
	test %ebx, %ebx
	jz 3f
	/* nonsense: offsets past the BAR, bad lengths and BARs, every width */
	lea window_junk(%rip), %r12
2:	cmpl $0xdead, (%r12)
	je 3f
	lea 4(%rbx), %edi
	mov (%r12), %esi
	call dev_wr8
	lea 8(%rbx), %edi
	mov 4(%r12), %esi
	call dev_wr32
	lea 12(%rbx), %edi
	mov 8(%r12), %esi
	call dev_wr32
	lea 16(%rbx), %edi
	call dev_rd32
	lea 16(%rbx), %edi
	call dev_rd8
	lea 16(%rbx), %edi
	mov $0xffffffff, %esi
	call dev_wr32
	lea 17(%rbx), %edi
	mov $0xff, %esi
	call dev_wr8
	add $12, %r12
	jmp 2b
3:	STR %rsi, "hostile-pci-cfg-window-junk"
	call recover
	pop %r12
	pop %rbx
	ret

/* Memory decoding off: the BAR is gone (reads all ones); on again: the device works. */
decode_case:
	push %rbx
	incl cases(%rip)
	call up
	mov $PCI_COMMAND, %edi
	mov $PCI_CMD_MASTER, %esi
	call dev_wr16
	mov vio_common(%rip), %rax
	mov (%rax), %edi
	mov $0xffffffff, %esi
	STR %rdx, "hostile-decode-off-unclaimed"
	call check_eq
	mov vio_notify(%rip), %rax	/* a kick into the void */
	movw $0, (%rax)
	call vio_enable_pci
	incl cases(%rip)
	call vio_good_request		/* the ring is still set up: use it */
	mov %eax, %edi
	STR %rsi, "hostile-decode-toggle"
	call check
	pop %rbx
	ret

/* BAR0 moved 64 KiB up while DRIVER_OK: the device follows, the old place is empty. */
move_case:
	push %rbx
	push %r12
	incl cases(%rip)
	call up
	mov vio_bar(%rip), %rbx
	mov $PCI_BAR0, %edi
	lea 0x10000(%rbx), %esi
	call dev_wr32
	mov (%rbx), %edi			/* the old common cfg */
	mov $0xffffffff, %esi
	STR %rdx, "hostile-bar-move-old-unclaimed"
	call check_eq
	call vio_map			/* addresses from the capabilities again */
	xor %edi, %edi
	lea 0x10000(%rbx), %rax
	cmp %rax, vio_common(%rip)
	jne 1f
	call vq_find_kick
	call vio_good_request
	mov %eax, %edi
1:	STR %rsi, "hostile-bar-move"
	call check
	mov $PCI_BAR0, %edi
	mov %ebx, %esi
	call dev_wr32
	call vio_map
	STR %rsi, "hostile-bar-move-back"
	call recover
	pop %r12
	pop %rbx
	ret

/*
 * Bus mastering off (PCI 3.0 §6.2.2, command bit 2): the function must not access memory,
 * so a kicked buffer stays unused; with bus mastering back on, a kick gets it served.
 */
master_case:
	push %rbx
	incl cases(%rip)
	call up
	mov $PCI_COMMAND, %edi
	mov $PCI_CMD_MEMORY, %esi
	call dev_wr16
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	call vq_submit
	mov $3000, %ecx
1:	in $CMOS_DATA, %al		/* ~20 ms for the device to (not) act */
	dec %ecx
	jnz 1b
	movzwl VQ_USED + 2, %edi
	xor %esi, %esi
	STR %rdx, "hostile-bus-master-off-no-dma"
	call check_eq
	call vio_enable_pci
	call vq_kick
	call vq_wait
	xor %edi, %edi
	test %eax, %eax
	js 2f
	mov %eax, %edi
	call used_len
	xor %edi, %edi
	cmp $64, %eax
	sete %dil
2:	STR %rsi, "hostile-bus-master-on-serves"
	call check
	STR %rsi, "hostile-bus-master"
	call recover
	pop %rbx
	ret

/*
 * NEEDS_RESET with MSI-X on (all vectors masked, config vector 1): the configuration change
 * notification leaves vector 1 pending, and §4.1.4.5.1 wants the ISR's configuration bit set
 * before any configuration change notification, MSI-X or not.
 */
msix_config_case:
	push %rbx
	incl cases(%rip)
	call up
	call msix_safe
	mov vio_msix_cap(%rip), %edi
	add $2, %edi
	mov $MSIX_CTRL_ENABLE, %esi
	call dev_wr16
	CC_WR16 CC_MSIX_CONFIG, $1
	call prep_loop
	call vq_kick
	call vio_wait_needs_reset
	mov %eax, %edi
	STR %rsi, "hostile-msix-needs-reset"
	call check
	mov vio_msix_pba(%rip), %rax
	mov (%rax), %edi
	and $2, %edi
	mov $2, %esi
	STR %rdx, "hostile-msix-needs-reset-config-vector"
	call check_eq
	call vio_read_isr
	mov %eax, %edi
	and $2, %edi
	mov $2, %esi
	STR %rdx, "hostile-msix-needs-reset-isr-config-bit"
	call check_eq
	mov vio_msix_cap(%rip), %edi
	add $2, %edi
	xor %esi, %esi
	call dev_wr16
	STR %rsi, "hostile-msix-needs-reset"
	call recover
	pop %rbx
	ret

/* Rings overlapping each other (all three at one address): survive, recover. */
overlap_case:
	incl cases(%rip)
	call features
	mov %rax, %rdi
	call vio_negotiate
	call vq_clear
	mov $VQ_DEFAULT_SIZE, %edi
	mov $VQ_DESC, %esi
	mov $VQ_DESC, %edx
	mov $VQ_DESC, %ecx
	call vio_queue_at
	call vio_driver_ok
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	movw $1, VQ_DESC + 2		/* avail->idx, inside descriptor 0's address */
	call vq_kick
	mov $300, %ecx
1:	in $CMOS_DATA, %al
	dec %ecx
	jnz 1b
	STR %rsi, "hostile-rings-overlap"
	jmp recover

/*
 * flood: FLOOD_EVENTS times reset + queue_enable with the descriptor table on the LAPIC:
 * each is a NEEDS_RESET event that kiln may log. The runner counts kiln's log lines.
 */
flood_case:
	push %rbx
	push %r12
	incl cases(%rip)
	xor %ebx, %ebx
	xor %r12d, %r12d
1:	CC_WR8 CC_STATUS, $0
	CC_WR16 CC_Q_SELECT, $0
	CC_WR32 CC_Q_DESC, $LAPIC_BASE
	CC_WR16 CC_Q_ENABLE, $1
	CC_RD8 CC_STATUS
	test $VS_NEEDS_RESET, %eax
	jz 2f
	inc %r12d
2:	inc %ebx
	cmp $FLOOD_EVENTS, %ebx
	jb 1b
	PRINT "hostile: flood: "
	mov %r12d, %edi
	call put_dec
	PRINT " needs-reset events\n"
	mov %r12d, %edi
	mov $FLOOD_EVENTS, %esi
	STR %rdx, "hostile-flood"
	call check_eq
	STR %rsi, "hostile-flood"
	call recover
	pop %r12
	pop %rbx
	ret

/*
 * reboot_now(): with reboot=1, the VM is reset while the device is live: MSI-X on, BAR0
 * moved, a buffer kicked and not waited for. NVRAM remembers the original BAR0.
 */
reboot_now:
	push %rbx
	call up
	call msix_safe
	mov vio_msix_table(%rip), %rax
	movl $0, 12(%rax)		/* vector 0 unmasked (IF stays 0: it just pends) */
	CC_WR16 CC_Q_SELECT, $0
	CC_WR16 CC_Q_MSIX_VECTOR, $0
	mov vio_msix_cap(%rip), %edi
	add $2, %edi
	mov $MSIX_CTRL_ENABLE, %esi
	call dev_wr16
	mov vio_bar(%rip), %rbx
	xor %ecx, %ecx
1:	lea NV_BAR(%rcx), %edi		/* the original BAR0, byte by byte */
	mov %ebx, %esi
	and $0xff, %esi
	push %rcx
	call cmos_write
	pop %rcx
	shr $8, %ebx
	inc %ecx
	cmp $4, %ecx
	jb 1b
	mov $NV_FLAG, %edi
	mov $NV_MAGIC, %esi
	call cmos_write
	mov $PCI_BAR0, %edi
	mov vio_bar(%rip), %rsi
	add $0x10000, %esi
	call dev_wr32
	call vio_map
	call vq_find_kick
	DESC $VQ_DESC, $0, $VQ_BUF, $64, $VRING_DESC_F_WRITE, $0
	xor %edi, %edi
	call vq_submit
	PRINT "hostile: resetting the VM with the device live\n"
	call reset_acpi
	pop %rbx
	ret

/* second_boot(): after reboot_now, the device must be back in its power-on state. */
second_boot:
	push %rbx
	push %r12
	mov $NV_FLAG, %edi
	xor %esi, %esi
	call cmos_write
	PRINT "hostile: second boot\n"
	xor %ebx, %ebx			/* the BAR0 the first boot saw */
	mov $3, %r12d
1:	lea NV_BAR(%r12), %edi
	call cmos_read
	shl $8, %ebx
	or %eax, %ebx
	dec %r12d
	jns 1b
	call vio_find
	mov %eax, %edi
	STR %rsi, "hostile-reboot-found"
	call check
	test %eax, %eax
	jz 9f
	mov $PCI_COMMAND, %edi		/* PCI 3.0 §6.2.2: 0 after reset, decoding off */
	call dev_rd16
	and $0x0407, %eax
	mov %eax, %edi
	xor %esi, %esi
	STR %rdx, "hostile-reboot-pci-command"
	call check_eq
	xor %edi, %edi
	call vio_bar_addr
	mov %rax, %rdi
	mov %rbx, %rsi
	STR %rdx, "hostile-reboot-bar0"
	call check_eq
	call vio_bar_probe
	call vio_enable_pci
	call vio_map
	mov %eax, %edi
	STR %rsi, "hostile-reboot-capabilities"
	call check
	mov vio_msix_cap(%rip), %edi
	add $2, %edi
	call dev_rd16
	and $MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL, %eax
	mov %eax, %edi
	xor %esi, %esi
	STR %rdx, "hostile-reboot-msix-off"
	call check_eq
	mov vio_msix_table(%rip), %rax	/* every vector masked again (PCI 3.0 §6.8.2.9) */
	mov vio_msix_nvec(%rip), %ecx
	mov $1, %edi
2:	and 12(%rax), %edi
	add $16, %rax
	dec %ecx
	jnz 2b
	STR %rsi, "hostile-reboot-msix-masked"
	call check
	call vio_status			/* status, queue_enable and the ISR all 0 */
	mov %eax, %r12d
	CC_RD16 CC_Q_ENABLE
	or %eax, %r12d
	CC_RD32 CC_Q_DESC
	or %eax, %r12d
	call vio_read_isr
	or %eax, %r12d
	mov %r12d, %edi
	xor %esi, %esi
	STR %rdx, "hostile-reboot-device-reset"
	call check_eq
	call up
	test %eax, %eax
	jz 3f
	call vio_good_request
3:	mov %eax, %edi
	STR %rsi, "hostile-reboot-works"
	call check
	call vio_reset
9:	PRINT "hostile: second boot done, failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %r12
	pop %rbx
	ret

main:
	push %rbx
	push %r12
	push %r13
	mov $NV_FLAG, %edi
	call cmos_read
	cmp $NV_MAGIC, %eax
	jne 0f
	call second_boot
	jmp .Lout
0:	PRINT "hostile: start\n"
	STR %rdi, "seed="
	call cmdline_find
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	call parse_dec
	test %eax, %eax
	jz 1f
	mov %eax, prng(%rip)
1:	STR %rdi, "fuzz="
	call cmdline_find
	test %rax, %rax
	jz 2f
	mov %rax, %rdi
	call parse_dec
	test %eax, %eax
	jz 2f
	mov %eax, fuzz_ops(%rip)
2:	PRINT "hostile: seed "
	mov prng(%rip), %edi
	call put_dec
	PRINT "\n"

	call vio_find
	test %eax, %eax
	jz 2f
	call vio_bar_probe
	call vio_enable_pci
	call vio_map
2:	mov %eax, %edi
	STR %rsi, "hostile-setup"
	call check
	test %eax, %eax
	jz .Lend
	call vio_print_map
	call idt_init			/* exceptions are reported; interrupts stay off */
	call msix_safe
	PRINT "hostile: RAM ends at "
	call ram_end
	mov %rax, %rdi
	call put_hex
	PRINT "\n"

	call up
	test %eax, %eax
	jz 3f
	call vio_good_request
3:	mov %eax, %edi
	STR %rsi, "hostile-baseline"
	call check

	lea bad_rings(%rip), %rbx
4:	mov (%rbx), %rdi
	test %rdi, %rdi
	jz 5f
	mov 8(%rbx), %rsi
	call bad_ring
	add $16, %rbx
	jmp 4b
5:	mov config_irq_missing(%rip), %edi
	xor %esi, %esi
	STR %rdx, "hostile-needs-reset-notifies"
	call check_eq

	lea good_rings(%rip), %rbx
6:	mov (%rbx), %rdi
	test %rdi, %rdi
	jz 7f
	mov 8(%rbx), %rsi
	mov 16(%rbx), %edx
	call good_ring
	add $24, %rbx
	jmp 6b
7:
	/* rings outside RAM at queue_enable */
	call ram_end
	mov %rax, %r12
	mov $LAPIC_BASE, %edi
	mov $VQ_AVAIL, %esi
	mov $VQ_USED, %edx
	STR %rcx, "hostile-queue-desc-on-lapic"
	call bad_queue
	mov $VQ_DESC, %edi
	mov $VQ_AVAIL, %esi
	lea -8(%r12), %rdx
	STR %rcx, "hostile-queue-used-past-ram"
	call bad_queue
	mov $VQ_DESC, %edi
	mov $-4096, %rsi
	mov $VQ_USED, %edx
	STR %rcx, "hostile-queue-avail-wraps"
	call bad_queue
	mov vio_bar(%rip), %rdi
	mov $VQ_AVAIL, %esi
	mov $VQ_USED, %edx
	STR %rcx, "hostile-queue-desc-on-own-bar"
	call bad_queue
	mov $VQ_DESC + 8, %edi
	mov $VQ_AVAIL, %esi
	mov $VQ_USED, %edx
	STR %rcx, "hostile-queue-desc-misaligned"
	call bad_queue
	mov %r12, %rdi
	mov $VQ_AVAIL, %esi
	mov $VQ_USED, %edx
	STR %rcx, "hostile-queue-desc-past-ram"
	call bad_queue

	mov $FEATURES_LO, %edi		/* no VERSION_1 */
	STR %rsi, "hostile-features-no-version-1"
	call features_refused
	call features
	bts $63, %rax			/* a feature nobody offered */
	mov %rax, %rdi
	STR %rsi, "hostile-features-unoffered"
	call features_refused
	call registers_case
	call notify_case
	call window_case
	call decode_case
	call move_case
	call master_case
	call overlap_case
	call msix_config_case
	call bar_fuzz
	call config_case
	call flood_case

	incl cases(%rip)
	call up
	test %eax, %eax
	jz 8f
	call vio_good_request
8:	mov %eax, %edi
	STR %rsi, "hostile-final-request"
	call check
	mov irq_stray_count(%rip), %edi
	xor %esi, %esi
	STR %rdx, "hostile-no-stray-interrupts"
	call check_eq
	call vio_reset

.Lend:
	PRINT "hostile: done, cases "
	mov cases(%rip), %edi
	call put_dec
	PRINT ", failures "
	mov fail_count(%rip), %edi
	call put_dec
	PRINT "\n"
	STR %rdi, "reboot="
	call cmdline_find
	test %rax, %rax
	jz .Lout
	cmpb $'1', (%rax)
	jne .Lout
	call reboot_now
.Lout:
	pop %r13
	pop %r12
	pop %rbx
	ret

	.section .rodata
	.balign 8
bad_rings:
	RING_CASE prep_loop, "hostile-chain-loop"
	RING_CASE prep_self_loop, "hostile-chain-self-loop"
	RING_CASE prep_next_oob, "hostile-chain-next-out-of-table"
	RING_CASE prep_head_oob, "hostile-head-out-of-table"
	RING_CASE prep_lapic, "hostile-desc-on-lapic"
	RING_CASE prep_own_bar, "hostile-desc-on-own-bar"
	RING_CASE prep_past_ram, "hostile-desc-past-ram"
	RING_CASE prep_addr_wrap, "hostile-desc-addr-wraps"
	RING_CASE prep_huge_len, "hostile-desc-4g-len"
	RING_CASE prep_write_then_read, "hostile-desc-readable-after-writable"
	RING_CASE prep_ind_nested, "hostile-indirect-nested"
	RING_CASE prep_ind_next, "hostile-indirect-with-next"
	RING_CASE prep_ind_bad_len, "hostile-indirect-bad-len"
	RING_CASE prep_ind_empty, "hostile-indirect-empty"
	RING_CASE prep_ind_outside, "hostile-indirect-on-lapic"
	RING_CASE prep_ind_loop, "hostile-indirect-loop"
	RING_CASE prep_ind_next_oob, "hostile-indirect-next-out-of-table"
	RING_CASE prep_ind_huge, "hostile-indirect-huge-table"
	RING_CASE prep_ind_many_segs, "hostile-indirect-300-segments"
	RING_CASE prep_avail_ahead, "hostile-avail-idx-ahead"
	RING_CASE prep_avail_back, "hostile-avail-idx-backwards"
	.quad 0, 0
good_rings:
	RING_CASE good_full_chain, "hostile-good-chain-of-queue-size", 64
	RING_CASE good_indirect_write_flag, "hostile-good-indirect-write-flag", 64
	RING_CASE good_direct_then_indirect, "hostile-good-direct-then-indirect", 64
	.quad 0, 0, 0
fuzz_regions:
	.quad .Lfz_common, .Lfz_common, .Lfz_isr, .Lfz_notify, .Lfz_table, .Lfz_pba
	.quad .Lfz_bar, .Lfz_bar
	.balign 4
window_junk:				/* cap.bar, cap.offset, cap.length */
	.long 0, 0xfffffffc, 4
	.long 0, 0xffffffff, 4
	.long 0, 0x7fff, 4
	.long 0, 0x1000, 4
	.long 0, 0x14, 3
	.long 0, 0x14, 0
	.long 0, 0x14, 0xffffffff
	.long 5, 0x14, 1
	.long 0xff, 0x0, 4
	.long 0, 0x6000, 8
	.long 0, 0x4000, 4
	.long 0, 0x14, 1		/* device_status = 0xff, under the PCI bus lock */
	.long 0, 0x14, 4
	.long 0, 0x1c, 2		/* queue_enable */
	.long 0xdead, 0, 0


	.data
	.balign 4
prng:			.long 0x2545f491
fuzz_ops:		.long FUZZ_BAR_OPS
cases:			.long 0
fuzz_reads:		.long 0
config_irq_missing:	.long 0
