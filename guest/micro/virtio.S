/*
 * A minimal virtio 1.x driver over the modern PCI transport (virtio 1.2 §4.1), shared by the
 * virtio micro-guests. Included after common.S. It finds the device on bus 0 by its ids,
 * reads BAR addresses from configuration space and locates the common, notify, ISR and
 * device structures by walking the vendor capabilities, as a real driver does. One split
 * virtqueue (queue 0) lives at fixed addresses in the scratch area.
 *
 * Every access to the device is a VM exit (~7 µs here): keep loops short.
 */

/* Guest RAM used by the driver: scratch, above the image, below 8 MiB. */
#define VQ_DESC (SCRATCH_BASE + 0x300000)	/* 16-byte aligned descriptor table */
#define VQ_AVAIL (SCRATCH_BASE + 0x301000)
#define VQ_USED (SCRATCH_BASE + 0x302000)
#define VQ_BUF (SCRATCH_BASE + 0x303000)	/* request buffers */
#define VQ_IND (SCRATCH_BASE + 0x304000)	/* indirect descriptor tables */
#define VQ_DEFAULT_SIZE 8

/* Split ring flags (§2.7.5). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

/* Device status (§2.1). */
#define VS_ACKNOWLEDGE 0x01
#define VS_DRIVER 0x02
#define VS_DRIVER_OK 0x04
#define VS_FEATURES_OK 0x08
#define VS_NEEDS_RESET 0x40
#define VS_FAILED 0x80

/* Feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* struct virtio_pci_common_cfg (§4.1.4.3). */
#define CC_DFSELECT 0
#define CC_DF 4
#define CC_GFSELECT 8
#define CC_GF 12
#define CC_MSIX_CONFIG 16
#define CC_NUM_QUEUES 18
#define CC_STATUS 20
#define CC_CFG_GENERATION 21
#define CC_Q_SELECT 22
#define CC_Q_SIZE 24
#define CC_Q_MSIX_VECTOR 26
#define CC_Q_ENABLE 28
#define CC_Q_NOTIFY_OFF 30
#define CC_Q_DESC 32
#define CC_Q_DRIVER 40
#define CC_Q_DEVICE 48
#define CC_SIZE 56

/* virtio_pci_cap.cfg_type (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* PCI configuration header and capabilities (PCI Local Bus 3.0 §6). */
#define PCI_ID_VIRTIO_RNG 0x10441af4	/* device:vendor, modern virtio-rng */
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_BAR0 0x10
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_INTX 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_NO_VECTOR 0xffff

/* Common configuration access: one MMIO access of the field's natural width (§4.1.3.1). */
.macro CC_RD8 off
	mov vio_common(%rip), %r11
	movzbl \off(%r11), %eax
.endm
.macro CC_RD16 off
	mov vio_common(%rip), %r11
	movzwl \off(%r11), %eax
.endm
.macro CC_RD32 off
	mov vio_common(%rip), %r11
	movl \off(%r11), %eax
.endm
.macro CC_WR8 off, val
	mov vio_common(%rip), %r11
	movb \val, \off(%r11)
.endm
.macro CC_WR16 off, val
	mov vio_common(%rip), %r11
	movw \val, \off(%r11)
.endm
.macro CC_WR32 off, val
	mov vio_common(%rip), %r11
	movl \val, \off(%r11)
.endm

	.text
/* ---- PCI configuration mechanism #1 ---- */

/* pci_select(%edi slot, %esi reg) -> %edx: the data port that reaches reg (bus 0, fn 0). */
pci_select:
	mov %edi, %eax
	and $0x1f, %eax
	shl $11, %eax
	mov %esi, %ecx
	and $0xfc, %ecx
	or %ecx, %eax
	or $0x80000000, %eax
	mov $PCI_CONFIG_ADDRESS, %edx
	out %eax, %dx
	mov %esi, %edx
	and $3, %edx
	add $PCI_CONFIG_DATA, %edx
	ret

/* pci_rd8/16/32(%edi slot, %esi reg) -> %eax */
pci_rd8:
	call pci_select
	xor %eax, %eax
	in %dx, %al
	ret
pci_rd16:
	call pci_select
	xor %eax, %eax
	in %dx, %ax
	ret
pci_rd32:
	call pci_select
	in %dx, %eax
	ret

/* pci_wr8/16/32(%edi slot, %esi reg, %edx value) */
pci_wr8:
	mov %edx, %r8d
	call pci_select
	mov %r8d, %eax
	out %al, %dx
	ret
pci_wr16:
	mov %edx, %r8d
	call pci_select
	mov %r8d, %eax
	out %ax, %dx
	ret
pci_wr32:
	mov %edx, %r8d
	call pci_select
	mov %r8d, %eax
	out %eax, %dx
	ret

/* dev_rd8/16/32(%edi reg) -> %eax, dev_wr8/16/32(%edi reg, %esi value): the virtio function */
dev_rd8:
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_rd8
dev_rd16:
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_rd16
dev_rd32:
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_rd32
dev_wr8:
	mov %esi, %edx
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_wr8
dev_wr16:
	mov %esi, %edx
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_wr16
dev_wr32:
	mov %esi, %edx
	mov %edi, %esi
	mov vio_slot(%rip), %edi
	jmp pci_wr32

/* vio_find() -> %eax: 1 if a modern virtio-rng function is on bus 0 (its slot saved). */
vio_find:
	push %rbx
	xor %ebx, %ebx
1:	mov %ebx, %edi
	xor %esi, %esi
	call pci_rd32
	cmp $PCI_ID_VIRTIO_RNG, %eax
	je 2f
	inc %ebx
	cmp $32, %ebx
	jb 1b
	xor %eax, %eax
	pop %rbx
	ret
2:	mov %ebx, vio_slot(%rip)
	mov $1, %eax
	pop %rbx
	ret

/* vio_bar_addr(%edi bar) -> %rax: where memory BAR `bar` points (32- or 64-bit), 0 if none. */
vio_bar_addr:
	push %rbx
	push %r12
	xor %r12d, %r12d
	cmp $5, %edi
	ja 1f
	lea PCI_BAR0(, %rdi, 4), %ebx
	mov %ebx, %edi
	call dev_rd32
	test $1, %eax			/* an I/O BAR */
	jnz 1f
	mov %eax, %r12d
	and $0xfffffff0, %r12d
	and $6, %eax
	cmp $4, %eax			/* type 10b: 64-bit, the next BAR holds the high half */
	jne 1f
	lea 4(%rbx), %edi
	call dev_rd32
	shl $32, %rax
	or %rax, %r12
1:	mov %r12, %rax
	pop %r12
	pop %rbx
	ret

/*
 * vio_map() -> %eax: 1 if the common, notify and ISR structures were found. Walks the
 * capability list (bounded: a list that loops ends the walk) and records, for each
 * structure type, the first capability whose BAR is usable (§4.1.4: the driver uses the
 * first one it can); also the MSI-X table and PBA.
 */
vio_map:
	push %rbx
	push %r12
	push %r13
	push %r14
	lea vio_cap_addr(%rip), %rdi
	xor %eax, %eax
	mov $5, %ecx
1:	mov %rax, -8(%rdi, %rcx, 8)
	movl $0, vio_cap_len - vio_cap_addr - 4(%rdi, %rcx, 4)
	dec %ecx
	jnz 1b
	movl $0, vio_notify_mult(%rip)
	movl $0, vio_msix_cap(%rip)
	movl $0, vio_pcicfg_cap(%rip)
	movq $0, vio_msix_table(%rip)
	movq $0, vio_msix_pba(%rip)
	movl $0, vio_msix_nvec(%rip)
	mov $PCI_STATUS, %edi
	call dev_rd16
	test $PCI_STATUS_CAP_LIST, %eax
	jz 9f
	mov $PCI_CAP_PTR, %edi
	call dev_rd8
	and $0xfc, %eax
	mov %eax, %ebx			/* current capability */
	mov $48, %r12d			/* at most this many: 192 bytes / 4 */
2:	test %ebx, %ebx
	jz 8f
	dec %r12d
	js 8f
	mov %ebx, %edi
	call dev_rd8
	cmp $PCI_CAP_ID_MSIX, %eax
	je 5f
	cmp $PCI_CAP_ID_VNDR, %eax
	jne 7f
	lea 3(%rbx), %edi
	call dev_rd8
	mov %eax, %r13d			/* cfg_type */
	cmp $VIRTIO_PCI_CAP_PCI_CFG, %r13d
	jne 3f
	cmpl $0, vio_pcicfg_cap(%rip)
	jne 7f
	mov %ebx, vio_pcicfg_cap(%rip)
	jmp 7f
3:	lea -1(%r13), %eax
	cmp $3, %eax
	ja 7f				/* a type this driver does not know */
	lea vio_cap_addr(%rip), %rcx
	cmpq $0, -8(%rcx, %r13, 8)
	jne 7f				/* not the first of its type */
	lea 4(%rbx), %edi
	call dev_rd8
	mov %eax, %edi
	call vio_bar_addr
	test %rax, %rax
	jz 7f
	mov %rax, %r14
	lea 8(%rbx), %edi
	call dev_rd32			/* offset within the BAR */
	add %rax, %r14
	lea vio_cap_addr(%rip), %rcx
	mov %r14, -8(%rcx, %r13, 8)
	lea 12(%rbx), %edi
	call dev_rd32			/* length */
	lea vio_cap_len(%rip), %rcx
	mov %eax, -4(%rcx, %r13, 4)
	cmp $VIRTIO_PCI_CAP_NOTIFY_CFG, %r13d
	jne 7f
	lea 16(%rbx), %edi
	call dev_rd32
	mov %eax, vio_notify_mult(%rip)
	jmp 7f
5:	/* MSI-X: table size in message control, table and PBA as BIR | offset */
	mov %ebx, vio_msix_cap(%rip)
	lea 2(%rbx), %edi
	call dev_rd16
	and $0x7ff, %eax
	inc %eax
	mov %eax, vio_msix_nvec(%rip)
	lea 4(%rbx), %edi
	call dev_rd32
	mov %eax, %r13d
	mov %eax, %edi
	and $7, %edi
	call vio_bar_addr
	and $~7, %r13d
	add %r13, %rax
	mov %rax, vio_msix_table(%rip)
	lea 8(%rbx), %edi
	call dev_rd32
	mov %eax, %r13d
	mov %eax, %edi
	and $7, %edi
	call vio_bar_addr
	and $~7, %r13d
	add %r13, %rax
	mov %rax, vio_msix_pba(%rip)
7:	lea 1(%rbx), %edi
	call dev_rd8
	and $0xfc, %eax
	mov %eax, %ebx
	jmp 2b
8:	xor %eax, %eax
	cmpq $0, vio_common(%rip)
	je 9f
	cmpq $0, vio_notify(%rip)
	je 9f
	cmpq $0, vio_isr(%rip)
	je 9f
	cmpl $CC_SIZE, vio_common_len(%rip)
	jb 9f
	mov $1, %eax
9:	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* vio_print_map(): "virtio: 00:SS.0 bar0 0x... common +0x.. isr +0x.. ..." */
vio_print_map:
	push %rbx
	PRINT "virtio: device at 00:"
	mov vio_slot(%rip), %edi
	mov $2, %esi
	call put_hexn
	PRINT ".0, BAR0 "
	mov vio_bar(%rip), %rdi
	call put_hex
	PRINT " size "
	mov vio_bar_size(%rip), %edi
	call put_hex
	PRINT ", common +"
	mov vio_common(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
	PRINT " isr +"
	mov vio_isr(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
	PRINT " notify +"
	mov vio_notify(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
	PRINT " x"
	mov vio_notify_mult(%rip), %edi
	call put_dec
	cmpq $0, vio_devcfg(%rip)
	je 1f
	PRINT " device +"
	mov vio_devcfg(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
1:	PRINT " msix table +"
	mov vio_msix_table(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
	PRINT " pba +"
	mov vio_msix_pba(%rip), %rdi
	sub vio_bar(%rip), %rdi
	call put_hex
	PRINT " vectors "
	mov vio_msix_nvec(%rip), %edi
	call put_dec
	PRINT "\n"
	pop %rbx
	ret

/*
 * vio_bar_probe() -> %eax: BAR0's size by the standard probe (decoding off, all ones
 * written, the mask read back, the address restored); the address is kept in vio_bar.
 */
vio_bar_probe:
	push %rbx
	push %r12
	mov $PCI_COMMAND, %edi
	call dev_rd16
	mov %eax, %r12d
	mov %eax, %esi
	and $~PCI_CMD_MEMORY, %esi
	mov $PCI_COMMAND, %edi
	call dev_wr16
	mov $PCI_BAR0, %edi
	call dev_rd32
	mov %eax, %ebx
	mov $PCI_BAR0, %edi
	mov $0xffffffff, %esi
	call dev_wr32
	mov $PCI_BAR0, %edi
	call dev_rd32
	and $0xfffffff0, %eax
	neg %eax
	mov %eax, vio_bar_size(%rip)
	mov $PCI_BAR0, %edi
	mov %ebx, %esi
	call dev_wr32
	mov $PCI_COMMAND, %edi
	mov %r12d, %esi
	call dev_wr16
	xor %edi, %edi
	call vio_bar_addr
	mov %rax, vio_bar(%rip)
	mov vio_bar_size(%rip), %eax
	pop %r12
	pop %rbx
	ret

/* vio_enable_pci(): memory decoding and bus mastering on, INTx allowed. */
vio_enable_pci:
	mov $PCI_COMMAND, %edi
	call dev_rd16
	or $PCI_CMD_MEMORY | PCI_CMD_MASTER, %eax
	and $~PCI_CMD_INTX_DISABLE, %eax
	mov %eax, %esi
	mov $PCI_COMMAND, %edi
	jmp dev_wr16

/* ---- the device ---- */

/* vio_status() -> %eax */
vio_status:
	CC_RD8 CC_STATUS
	ret

/* vio_set_status(%edi status) */
vio_set_status:
	CC_WR8 CC_STATUS, %dil
	ret

/* vio_reset() -> %eax: 1 once device_status reads 0 again (§4.1.4.3.2), bounded wait. */
vio_reset:
	CC_WR8 CC_STATUS, $0
	mov $1000, %ecx
1:	CC_RD8 CC_STATUS
	test %eax, %eax
	jz 2f
	pause
	dec %ecx
	jnz 1b
	xor %eax, %eax
	ret
2:	mov $1, %eax
	ret

/*
 * vio_negotiate(%rdi driver features) -> %eax: 1 if FEATURES_OK stuck. Reset, ACKNOWLEDGE,
 * DRIVER, device features read into vio_dev_features, driver features written, FEATURES_OK
 * set and read back (§3.1.1 steps 1-6).
 */
vio_negotiate:
	push %rbx
	mov %rdi, %rbx
	call vio_reset
	CC_WR8 CC_STATUS, $VS_ACKNOWLEDGE
	CC_WR8 CC_STATUS, $VS_ACKNOWLEDGE | VS_DRIVER
	CC_WR32 CC_DFSELECT, $0
	CC_RD32 CC_DF
	mov %eax, vio_dev_features(%rip)
	CC_WR32 CC_DFSELECT, $1
	CC_RD32 CC_DF
	mov %eax, vio_dev_features + 4(%rip)
	CC_WR32 CC_GFSELECT, $0
	CC_WR32 CC_GF, %ebx
	shr $32, %rbx
	CC_WR32 CC_GFSELECT, $1
	CC_WR32 CC_GF, %ebx
	CC_WR8 CC_STATUS, $VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK
	CC_RD8 CC_STATUS
	shr $3, %eax			/* VS_FEATURES_OK */
	and $1, %eax
	pop %rbx
	ret

/*
 * vio_queue_at(%edi size, %rsi desc, %rdx avail, %rcx used) -> %eax: queue_enable as read
 * back after writing 1. Queue 0: size clamped to queue_size, ring addresses written as
 * two 32-bit halves each, notify address computed from queue_notify_off.
 */
vio_queue_at:
	push %rbx
	push %r12
	push %r13
	push %r14
	mov %edi, %ebx
	mov %rsi, %r12
	mov %rdx, %r13
	mov %rcx, %r14
	CC_WR16 CC_Q_SELECT, $0
	CC_RD16 CC_Q_SIZE
	mov %eax, vq_max(%rip)
	cmp %eax, %ebx
	jbe 1f
	mov %eax, %ebx
1:	mov %ebx, vq_size(%rip)
	CC_WR16 CC_Q_SIZE, %bx
	CC_WR32 CC_Q_DESC, %r12d
	shr $32, %r12
	CC_WR32 CC_Q_DESC + 4, %r12d
	CC_WR32 CC_Q_DRIVER, %r13d
	shr $32, %r13
	CC_WR32 CC_Q_DRIVER + 4, %r13d
	CC_WR32 CC_Q_DEVICE, %r14d
	shr $32, %r14
	CC_WR32 CC_Q_DEVICE + 4, %r14d
	call vq_find_kick
	CC_WR16 CC_Q_ENABLE, $1
	CC_RD16 CC_Q_ENABLE
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	ret

/* vq_find_kick(): queue 0's notify address, from queue_notify_off (§4.1.4.4). */
vq_find_kick:
	CC_WR16 CC_Q_SELECT, $0
	CC_RD16 CC_Q_NOTIFY_OFF
	imul vio_notify_mult(%rip), %eax
	add vio_notify(%rip), %rax
	mov %rax, vq_kick_addr(%rip)
	ret

/* vq_clear(): zeroes the rings and buffers, forgets what was posted and used. */
vq_clear:
	mov $VQ_DESC, %edi
	mov $(VQ_IND + 0x1000 - VQ_DESC) / 8, %ecx
	xor %eax, %eax
	rep stosq
	movw $0, vq_avail_idx(%rip)
	movw $0, vq_used_seen(%rip)
	ret

/* vio_queue(%edi size) -> %eax: 1 if queue 0 is enabled on the standard rings (cleared). */
vio_queue:
	push %rbx
	mov %edi, %ebx
	call vq_clear
	mov %ebx, %edi
	mov $VQ_DESC, %esi
	mov $VQ_AVAIL, %edx
	mov $VQ_USED, %ecx
	call vio_queue_at
	pop %rbx
	ret

/* vio_driver_ok() -> %eax: the status read back. */
vio_driver_ok:
	CC_WR8 CC_STATUS, $VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK
	CC_RD8 CC_STATUS
	ret

/*
 * vio_up(%rdi features) -> %eax: 1 if the device was reset, negotiated, queue 0 enabled
 * with VQ_DEFAULT_SIZE entries and DRIVER_OK set, status 0x0f.
 */
vio_up:
	call vio_negotiate
	test %eax, %eax
	jz 1f
	mov $VQ_DEFAULT_SIZE, %edi
	call vio_queue
	cmp $1, %eax
	jne 2f
	call vio_driver_ok
	cmp $0x0f, %eax
	jne 2f
	mov $1, %eax
	ret
2:	xor %eax, %eax
1:	ret

/* ---- the split ring, driver side ---- */

/* desc_set(%rdi table, %esi index, %rdx addr, %ecx len, %r8d flags, %r9d next) */
desc_set:
	mov %esi, %eax
	shl $4, %rax
	add %rdi, %rax
	mov %rdx, (%rax)
	mov %ecx, 8(%rax)
	mov %r8w, 12(%rax)
	mov %r9w, 14(%rax)
	ret

/* vq_post(%edi head): puts head in the next avail slot and publishes the new index. */
vq_post:
	movzwl vq_avail_idx(%rip), %eax
	mov vq_size(%rip), %ecx
	dec %ecx
	and %eax, %ecx
	mov %di, VQ_AVAIL + 4(, %rcx, 2)
	inc %eax
	mov %ax, vq_avail_idx(%rip)
	sfence				/* ring entry before the index (§2.7.13) */
	mov %ax, VQ_AVAIL + 2
	mfence				/* the index before the notification */
	ret

/* vq_kick(): queue 0's notification: its index, 16 bits, at its notify address (§4.1.4.4). */
vq_kick:
	mov vq_kick_addr(%rip), %rax
	movw $0, (%rax)
	ret

/* vq_submit(%edi head) */
vq_submit:
	call vq_post
	jmp vq_kick

/* vq_wait() -> %eax: the used ring slot of the next used element, or -1 after ~2 s. */
vq_wait:
	mov $2, %edi
	call timeout_start
1:	movzwl VQ_USED + 2, %eax
	cmp vq_used_seen(%rip), %ax
	jne 2f
	pause
	call timeout_expired
	test %eax, %eax
	jz 1b
	mov $-1, %eax
	ret
2:	lfence
	movzwl vq_used_seen(%rip), %eax
	lea 1(%rax), %ecx
	mov %cx, vq_used_seen(%rip)
	mov vq_size(%rip), %ecx
	dec %ecx
	and %ecx, %eax
	ret

/* used_id(%edi slot) -> %eax, used_len(%edi slot) -> %eax */
used_id:
	mov VQ_USED + 4(, %rdi, 8), %eax
	ret
used_len:
	mov VQ_USED + 8(, %rdi, 8), %eax
	ret

/* buf_nonzero(%rdi addr, %esi len) -> %eax: 1 if any byte is not zero. */
buf_nonzero:
	xor %eax, %eax
1:	test %esi, %esi
	jz 2f
	or (%rdi), %al
	inc %rdi
	dec %esi
	jmp 1b
2:	test %al, %al
	setnz %al
	ret

/*
 * vio_good_request() -> %eax: 1 if one 64-byte device-writable buffer came back whole
 * (used id 0, len 64), not all zeros, and the device did not ask for a reset.
 */
vio_good_request:
	push %rbx
	mov $VQ_BUF, %edi
	mov $8, %ecx
	xor %eax, %eax
	rep stosq
	mov $VQ_DESC, %edi
	xor %esi, %esi
	mov $VQ_BUF, %edx
	mov $64, %ecx
	mov $VRING_DESC_F_WRITE, %r8d
	xor %r9d, %r9d
	call desc_set
	xor %edi, %edi
	call vq_submit
	call vq_wait
	xor %ebx, %ebx
	test %eax, %eax
	js 1f
	mov %eax, %ebx
	mov %ebx, %edi
	call used_id
	test %eax, %eax
	jnz 2f
	mov %ebx, %edi
	call used_len
	cmp $64, %eax
	jne 2f
	mov $VQ_BUF, %edi
	mov $64, %esi
	call buf_nonzero
	test %eax, %eax
	jz 2f
	call vio_status
	test $VS_NEEDS_RESET, %eax
	jnz 2f
	mov $1, %ebx
	jmp 1f
2:	xor %ebx, %ebx
1:	mov %ebx, %eax
	pop %rbx
	ret

/* vio_wait_needs_reset() -> %eax: 1 once the device sets DEVICE_NEEDS_RESET (~2 s at most). */
vio_wait_needs_reset:
	mov $2, %edi
	call timeout_start
1:	call vio_status
	test $VS_NEEDS_RESET, %eax
	jnz 2f
	call timeout_expired
	test %eax, %eax
	jz 1b
	xor %eax, %eax
	ret
2:	mov $1, %eax
	ret

/* vio_read_isr() -> %eax: reads (and so acknowledges) the ISR status byte. */
vio_read_isr:
	mov vio_isr(%rip), %rax
	movzbl (%rax), %eax
	ret

/* ---- interrupts: IDT, LAPIC ---- */

/* idt_gate(%edi vector, %rsi handler): a present 64-bit interrupt gate, DPL 0. */
idt_gate:
	shl $4, %edi
	add $IDT_ADDR, %rdi
	mov %rsi, %rax
	mov %ax, (%rdi)
	movw $SEL_CODE64, 2(%rdi)
	movw $0x8e00, 4(%rdi)		/* IST 0; present, DPL 0, type 0xe */
	shr $16, %rax
	mov %ax, 6(%rdi)
	shr $16, %rax
	mov %eax, 8(%rdi)
	movl $0, 12(%rdi)
	ret

/*
 * idt_init(): exceptions report themselves and power off (a guest bug, never kiln's fault
 * to hide behind a triple fault); every other vector counts as stray and is acknowledged.
 * Also masks the 8259s and software-enables the LAPIC.
 */
idt_init:
	push %rbx
	xor %ebx, %ebx
1:	mov %ebx, %edi
	lea irq_stray(%rip), %rsi
	cmp $32, %ebx
	jae 2f
	lea exc_entry(%rip), %rsi
	mov %ebx, %eax
	shl $3, %eax
	add %rax, %rsi
2:	call idt_gate
	inc %ebx
	cmp $256, %ebx
	jb 1b
	lidt idt_ptr(%rip)
	mov $0xff, %al
	out %al, $PIC1_DATA
	out %al, $PIC2_DATA
	mov $LAPIC_BASE, %eax
	movl $0x1ff, LAPIC_SVR(%rax)	/* enabled, spurious vector 0xff */
	movl $0, LAPIC_TPR(%rax)
	movl $LVT_MASKED, LAPIC_LVT_LINT0(%rax)
	pop %rbx
	ret

lapic_eoi:
	mov $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	ret

/* Any vector nobody asked for. */
irq_stray:
	push %rax
	incl irq_stray_count(%rip)
	mov $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	pop %rax
	iretq

/* 32 entry points of 8 bytes: push the vector (imm8), jump to the common report. */
	.balign 8
exc_entry:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.balign 8
	pushq $\v
	jmp exc_report
	.endr
exc_report:
	PRINT "FAIL exception "
	mov (%rsp), %rdi
	call put_dec
	PRINT " in the guest\n"
	call poweroff

	.section .rodata
	.balign 8
idt_ptr:
	.word 256 * 16 - 1
	.quad IDT_ADDR

	.data
	.balign 8
vio_bar:	.quad 0
vio_cap_addr:				/* by cfg_type - 1 */
vio_common:	.quad 0
vio_notify:	.quad 0
vio_isr:	.quad 0
vio_devcfg:	.quad 0
		.quad 0			/* (zeroed with the others) */
vio_cap_len:
vio_common_len:	.long 0
vio_notify_len:	.long 0
vio_isr_len:	.long 0
vio_devcfg_len:	.long 0
		.long 0
	.balign 8
vio_msix_table:	.quad 0
vio_msix_pba:	.quad 0
vio_dev_features: .quad 0
vq_kick_addr:	.quad 0
vio_slot:	.long 0
vio_bar_size:	.long 0
vio_notify_mult: .long 0
vio_msix_cap:	.long 0
vio_msix_nvec:	.long 0
vio_pcicfg_cap:	.long 0
vq_size:	.long 0
vq_max:		.long 0
irq_stray_count: .long 0
vq_avail_idx:	.word 0
vq_used_seen:	.word 0
	.text
