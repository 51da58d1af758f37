/*
 * pvh_wrap: turns a raw micro-guest into a PVH ELF, so that QEMU (-kernel) boots the very
 * same bytes kiln boots. QEMU enters PVH kernels in 32-bit protected mode without paging;
 * this stub recreates kiln's raw-image entry state (guest/micro/README.md) — kiln's GDT at
 * 0x500, identity page tables at 0x9000, long mode, RSP 0x8f000, RSI at an empty zero page —
 * and jumps to the payload at 0x100000. PAYLOAD is the raw image's path (a string).
 * The zero page gets what kiln puts there too and some guests read: the command line
 * pointer and the e820 map, both taken from QEMU's hvm_start_info (%ebx at entry).
 */
#define GDT_ADDR 0x500
#define ZERO_PAGE 0x7000
#define PML4_ADDR 0x9000
#define PDPT_ADDR 0xa000
#define PD_ADDR 0xb000
#define STACK_TOP 0x8f000
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_MAGIC 0x336ec578	/* hvm_start_info.magic */
#define ZP_EXT_CMD_LINE_PTR 0x0c8	/* boot_params offsets, as in guest/micro/micro.h */
#define ZP_E820_ENTRIES 0x1e8
#define ZP_CMD_LINE_PTR 0x228
#define ZP_E820_TABLE 0x2d0
#define E820_MAX 128

	.section .payload, "awx"
	.incbin PAYLOAD

	/* The note QEMU looks for: name "Xen", type PHYS32_ENTRY, a 32-bit entry address. */
	.section .note.pvh, "a"
	.balign 4
	.long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_entry

	.section .text.pvh, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	/* zero the zero page and the page tables (0x7000..0xefff) */
	xor %eax, %eax
	mov $ZERO_PAGE, %edi
	mov $(PD_ADDR + 0x4000 - ZERO_PAGE) / 4, %ecx
	rep stosl
	/* GDT: null, 0x08 32-bit code, 0x10 64-bit code, 0x18 data */
	mov $GDT_ADDR, %edi
	mov $gdt_image, %esi
	mov $8, %ecx
	rep movsl
	lgdt gdt_desc
	/* command line and memory map from hvm_start_info, if QEMU gave one */
	cmpl $PVH_MAGIC, (%ebx)
	jne 3f
	mov 24(%ebx), %eax		/* cmdline_paddr (below 4 GiB) */
	mov %eax, ZERO_PAGE + ZP_CMD_LINE_PTR
	cmpl $1, 4(%ebx)		/* version 1 has the memory map */
	jb 3f
	mov 40(%ebx), %esi		/* memmap_paddr: entries of addr u64, size u64, type u32, pad */
	mov 48(%ebx), %ecx		/* memmap_entries */
	cmp $E820_MAX, %ecx
	jbe 1f
	mov $E820_MAX, %ecx
1:	movb %cl, ZERO_PAGE + ZP_E820_ENTRIES
	mov $ZERO_PAGE + ZP_E820_TABLE, %edi
	test %ecx, %ecx
	jz 3f
2:	mov %ecx, %edx
	mov $5, %ecx			/* 20 bytes: addr, size, type */
	rep movsl
	add $4, %esi
	mov %edx, %ecx
	loop 2b
3:
	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages */
	movl $(PDPT_ADDR | 3), PML4_ADDR
	mov $PDPT_ADDR, %edi
	mov $(PD_ADDR | 3), %eax
	mov $4, %ecx
1:	mov %eax, (%edi)
	add $0x1000, %eax
	add $8, %edi
	loop 1b
	mov $PD_ADDR, %edi
	mov $0x83, %eax			/* present, writable, 2 MiB page */
	xor %edx, %edx
	mov $2048, %ecx
1:	mov %eax, (%edi)
	mov %edx, 4(%edi)
	add $0x200000, %eax
	adc $0, %edx
	add $8, %edi
	loop 1b
	/* long mode: PAE, CR3, EFER.LME, then paging */
	mov $0x20, %eax
	mov %eax, %cr4
	mov $PML4_ADDR, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov $0x80050033, %eax
	mov %eax, %cr0
	ljmp $0x10, $long_entry

	.code64
long_entry:
	mov $0x18, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %eax, %fs
	mov %eax, %gs
	mov $STACK_TOP, %esp
	mov $ZERO_PAGE, %esi
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	xor %edi, %edi
	xor %ebp, %ebp
	push $0x2
	popf
	mov $0x100000, %r8d
	jmp *%r8

	.section .rodata.pvh, "a"
	.balign 8
gdt_image:
	.quad 0, 0x00cf9b000000ffff, 0x00af9b000000ffff, 0x00cf93000000ffff
gdt_desc:
	.word 4 * 8 - 1
	.long GDT_ADDR
