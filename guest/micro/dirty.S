/*
 * dirty: counts like `count` ("count N" lines), and before each line rewrites the next
 * chunk of a window of RAM from 16 MiB up ("dirty=N" MiB, default 32; "chunk=N" pages per
 * line, default 256), sweep after sweep. Each page's first and last 8 bytes hold the number
 * of the sweep that last wrote it and are checked before they are written again, so a page
 * that a migration or a restore lost or left stale shows up as a FAIL line (the guest then
 * stops counting). Used by tests/micro/migrate_test.py.
 *
 * With "rng=1" (and `kiln run --rng`), each line also has the virtio-rng device write 64
 * random bytes into the next of 64 buffers, one per page from 8 MiB up, and the guest keeps
 * their sums; a buffer is checked against its sum before it is refilled. Those pages are
 * written only by the device, so they reach a migration's destination only if kiln tracks
 * its own writes to guest RAM.
 */
#include "micro.h"
#include "common.S"
#include "virtio.S"

#define RNG_BUFS 64
#define RNG_BUF_BASE 0x800000		/* 8 MiB, below the window: a page per buffer */
#define RNG_LEN 64

#define DIRTY_BASE 0x1000000	/* 16 MiB: above the image and the scratch area */
#define DIRTY_LIMIT 0xc0000000	/* the PCI hole: RAM stops being contiguous here */
#define COUNT_SPIN 20000

	.text
/* rng_sum(%rdi buffer) -> %rax: the sum of its RNG_LEN bytes as 8-byte words. */
rng_sum:
	xor %eax, %eax
	mov $RNG_LEN / 8, %ecx
1:	add (%rdi), %rax
	add $8, %rdi
	dec %ecx
	jnz 1b
	ret

/* rng_setup() -> %eax: 1 if the virtio-rng device is up with queue 0 ready. */
rng_setup:
	call vio_find
	test %eax, %eax
	jz 1f
	call vio_bar_probe
	call vio_enable_pci
	call vio_map
	test %eax, %eax
	jz 1f
	mov $1, %rdi
	shl $VIRTIO_F_VERSION_1, %rdi
	call vio_up
1:	ret

/*
 * rng_refill(%rbx line number) -> %eax: 1 if buffer line % RNG_BUFS still held what the
 * device put there last time and was filled again (its new sum kept in rng_sums).
 */
rng_refill:
	push %r12
	mov %rbx, %r12
	and $RNG_BUFS - 1, %r12d
	mov %r12, %rdi
	shl $12, %rdi
	add $RNG_BUF_BASE, %rdi
	call rng_sum
	lea rng_sums(%rip), %rcx
	cmp %rax, (%rcx, %r12, 8)
	jne 2f
	mov $VQ_DESC, %edi
	xor %esi, %esi
	mov %r12, %rdx
	shl $12, %rdx
	add $RNG_BUF_BASE, %rdx
	mov $RNG_LEN, %ecx
	mov $VRING_DESC_F_WRITE, %r8d
	xor %r9d, %r9d
	call desc_set
	xor %edi, %edi
	call vq_submit
	call vq_wait
	test %eax, %eax
	js 2f
	mov %eax, %edi
	call used_len
	cmp $RNG_LEN, %eax
	jne 2f
	mov %r12, %rdi
	shl $12, %rdi
	add $RNG_BUF_BASE, %rdi
	call rng_sum
	lea rng_sums(%rip), %rcx
	mov %rax, (%rcx, %r12, 8)
	mov $1, %eax
	pop %r12
	ret
2:	xor %eax, %eax
	pop %r12
	ret

/* Value of "name=N" on the command line (%rdi: "name="), or %rsi if it is absent. */
arg_or:
	push %rsi
	call cmdline_find
	pop %rsi
	test %rax, %rax
	jz 1f
	mov %rax, %rdi
	jmp parse_dec
1:	mov %rsi, %rax
	ret

main:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	STR %rdi, "dirty="
	mov $32, %esi
	call arg_or
	shl $20, %rax
	lea DIRTY_BASE(%rax), %r12	/* end of the window */
	mov $DIRTY_LIMIT, %ecx
	cmp %rcx, %r12
	ja .Ltoo_big
	lea -1(%r12), %rdi
	call e820_is_ram
	test %eax, %eax
	jz .Ltoo_big
	STR %rdi, "chunk="
	mov $256, %esi
	call arg_or
	mov %rax, %r15			/* pages per line */
	STR %rdi, "rng="
	xor %esi, %esi
	call arg_or
	mov %al, use_rng(%rip)
	test %al, %al
	jz 3f
	call rng_setup
	test %eax, %eax
	jz .Lno_rng
3:
	mov $DIRTY_BASE, %r13		/* next page to write */
	mov $1, %r14d			/* this sweep's number */
	xor %ebx, %ebx			/* the count */
.Lline:
	mov %r15, %rcx
.Lpage:
	lea -1(%r14), %rax		/* what the previous sweep left */
	cmp %rax, (%r13)
	jne .Lstale
	cmp %rax, 4088(%r13)
	jne .Lstale
	mov %r14, (%r13)
	mov %r14, 4088(%r13)
	add $0x1000, %r13
	cmp %r12, %r13
	jb 1f
	mov $DIRTY_BASE, %r13
	inc %r14
1:	dec %rcx
	jnz .Lpage
	cmpb $0, use_rng(%rip)
	je 4f
	call rng_refill
	test %eax, %eax
	jz .Lrng_stale
4:	PRINT "count "
	mov %rbx, %rdi
	call put_dec
	PRINT "\n"
	inc %rbx
	mov $COUNT_SPIN, %ecx
2:	dec %ecx
	jnz 2b
	jmp .Lline
.Lstale:
	PRINT "FAIL dirty: page "
	PRINT_HEX %r13
	PRINT " holds "
	PRINT_HEX (%r13)
	PRINT " / "
	PRINT_HEX 4088(%r13)
	PRINT ", sweep "
	PRINT_HEX %r14
	PRINT "\n"
	call halt_forever
.Lrng_stale:
	PRINT "FAIL dirty: rng buffer "
	mov %rbx, %rdi
	and $RNG_BUFS - 1, %edi
	call put_dec
	PRINT " lost what the device wrote, or the request failed\n"
	call halt_forever
.Lno_rng:
	PRINT "FAIL dirty: rng=1 but no virtio-rng device came up\n"
	jmp .Lout
.Ltoo_big:
	PRINT "FAIL dirty: dirty=N reaches past the RAM below 3 GiB\n"
.Lout:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

	.data
use_rng:	.byte 0
	.balign 8
rng_sums:	.fill RNG_BUFS, 8, 0
