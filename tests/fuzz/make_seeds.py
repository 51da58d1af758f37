#!/usr/bin/env python3
"""Writes the committed seed corpus (tests/fuzz/corpus/TARGET/) for every fuzz target:
small, well-formed inputs that reach each parser's interesting paths, from which the fuzzer
mutates. Re-run after changing an input layout (tests/fuzz/fuzz_guest.h describes them)."""
import os
import struct
import sys

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# ---- virtio: struct fuzz_vio_header + a guest RAM image (fuzz_guest.h) ----
RING = 0x1000
AVAIL, USED = 0x800, 0xC00
DATA = 0x4000
NEXT, WRITE, INDIRECT = 1, 2, 4


class Guest:
    """A driver's view of guest RAM: rings per queue, buffers from DATA upwards."""

    def __init__(self, qsize_log2=4):
        self.ram = bytearray(DATA)
        self.qsize = 1 << qsize_log2
        self.log2 = qsize_log2
        self.next_desc = {}
        self.avail = {}
        self.heap = DATA

    def buf(self, data=b"", size=None):
        size = len(data) if size is None else size
        addr = self.heap
        self.heap += (size + 15) & ~15
        if len(self.ram) < self.heap:
            self.ram.extend(bytes(self.heap - len(self.ram)))
        self.ram[addr:addr + len(data)] = data
        return addr

    def desc(self, table, i, addr, length, flags, nxt):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length, flags, nxt)

    def chain(self, q, segs):
        """segs: (addr, len, writable); returns the head. Direct descriptors."""
        head = self.next_desc.get(q, 0)
        for k, (addr, length, w) in enumerate(segs):
            i = (head + k) % self.qsize
            flags = (NEXT if k + 1 < len(segs) else 0) | (WRITE if w else 0)
            self.desc(RING * q, i, addr, length, flags, (i + 1) % self.qsize)
        self.next_desc[q] = (head + len(segs)) % self.qsize
        self.publish(q, head)
        return head

    def indirect_chain(self, q, segs):
        table = self.buf(size=16 * len(segs))
        for k, (addr, length, w) in enumerate(segs):
            flags = (NEXT if k + 1 < len(segs) else 0) | (WRITE if w else 0)
            self.desc(table, k, addr, length, flags, k + 1)
        head = self.next_desc.get(q, 0)
        self.desc(RING * q, head, table, 16 * len(segs), INDIRECT, 0)
        self.next_desc[q] = (head + 1) % self.qsize
        self.publish(q, head)

    def publish(self, q, head):
        n = self.avail.get(q, 0)
        struct.pack_into("<H", self.ram, RING * q + AVAIL + 4 + 2 * (n % self.qsize), head)
        self.avail[q] = n + 1
        struct.pack_into("<H", self.ram, RING * q + AVAIL + 2, n + 1)

    def seed(self, features=0x02, rounds=0, mask=0):
        hdr = bytes([self.log2, features, rounds | mask << 4, 0]) + bytes(8)
        # RAM past the image is zero anyway: trailing zeros need not be stored.
        return hdr + bytes(self.ram).rstrip(b"\0")


def rx_buffers(g, q, count, size):
    for _ in range(count):
        g.chain(q, [(g.buf(size=size), size, True)])


def seeds_virtqueue():
    g = Guest()
    a, b, c = g.buf(b"hello"), g.buf(size=64), g.buf(size=8)
    g.chain(0, [(a, 5, False), (b, 64, True)])
    g.indirect_chain(0, [(a, 5, False), (b, 32, True), (c, 8, True)])
    g.chain(0, [(a, 5, False)])
    yield "chains", g.seed(features=0x03)
    g = Guest(qsize_log2=2)
    g.chain(0, [(g.buf(size=16), 16, True)] * 4)
    yield "full", g.seed()


def blk_request(g, kind, sector, payload=b"", data_len=0, write_data=False):
    hdr = g.buf(struct.pack("<IIQ", kind, 0, sector))
    segs = [(hdr, 16, False)]
    if payload:
        segs.append((g.buf(payload), len(payload), False))
    if data_len:
        segs.append((g.buf(size=data_len), data_len, True))
    segs.append((g.buf(size=1), 1, True))
    g.chain(0, segs)


def seeds_virtio_blk():
    g = Guest()
    blk_request(g, 0, 0, data_len=512)  # read
    blk_request(g, 1, 8, payload=bytes(range(256)) * 2)  # write
    blk_request(g, 4, 0)  # flush
    blk_request(g, 8, 0, data_len=20)  # get id
    yield "rw", g.seed()
    g = Guest()
    seg = struct.pack("<QII", 16, 8, 0)
    blk_request(g, 11, 0, payload=seg)  # discard
    blk_request(g, 13, 0, payload=struct.pack("<QII", 64, 8, 1))  # write zeroes, unmap
    blk_request(g, 1, 511, payload=bytes(1024))  # past the end
    yield "discard", g.seed()
    g = Guest()
    hdr = g.buf(struct.pack("<IIQ", 0, 0, 2))
    g.indirect_chain(0, [(hdr, 16, False), (g.buf(size=512), 512, True), (g.buf(size=1), 1, True)])
    yield "indirect", g.seed()


def tcp_frame(payload_len, gso=False):
    eth = bytes(6) + bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + b"\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 20 + payload_len, 1, 0, 64, 6, 0,
                     bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]))
    tcp = struct.pack(">HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    return eth + ip + tcp + bytes((i * 7) & 0xFF for i in range(payload_len))


def net_hdr(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return struct.pack("<BBHHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, 0)


def seeds_virtio_net():
    g = Guest()
    rx_buffers(g, 0, 4, 1526)
    f = tcp_frame(100)
    g.chain(1, [(g.buf(net_hdr()), 12, False), (g.buf(f), len(f), False)])
    f = tcp_frame(3000)
    h = net_hdr(1, 1, 54, 1448, 34, 16)
    g.chain(1, [(g.buf(h + f), 12 + len(f), False)])
    s = g.seed(rounds=1)
    yield "tx_rx", s[:3] + bytes([0x30]) + s[4:]  # three receive frames offered
    g = Guest()
    rx_buffers(g, 0, 8, 64)  # mergeable: one frame over several buffers
    s = g.seed()
    yield "rx_merge", s[:3] + bytes([0x80]) + s[4:] + bytes(range(256)) * 8


def tcp6_frame(payload_len):
    eth = bytes(12) + b"\x86\xdd"
    ip6 = struct.pack(">IHBB16s16s", 6 << 28, 20 + payload_len, 6, 64, bytes(15) + b"\1",
                      bytes(15) + b"\2")
    tcp = struct.pack(">HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x19, 65535, 0, 0)
    return eth + ip6 + tcp + bytes(payload_len)


def seeds_net_offload():
    yield "csum", net_hdr(1, 0, 0, 0, 34, 16) + tcp_frame(200)
    yield "tso4", net_hdr(1, 1, 54, 536, 34, 16) + tcp_frame(2000)
    yield "tso6", net_hdr(1, 4, 74, 1220, 54, 16) + tcp6_frame(3000)
    yield "plain", net_hdr() + tcp_frame(10)


def vsock_pkt(op, src_port, dst_port, payload=b"", dst_cid=2, buf_alloc=65536, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", 3, dst_cid, src_port, dst_port, len(payload), 1, op, 0,
                       buf_alloc, fwd_cnt) + payload


def seeds_virtio_vsock():
    g = Guest()
    rx_buffers(g, 0, 4, 44 + 256)
    for pkt in (vsock_pkt(1, 1000, 5000), vsock_pkt(5, 1000, 5000, b"data"),
                vsock_pkt(6, 1000, 5000), vsock_pkt(4, 1000, 5000, dst_cid=9)):
        g.chain(1, [(g.buf(pkt[:44]), 44, False)] +
                ([(g.buf(pkt[44:]), len(pkt) - 44, False)] if len(pkt) > 44 else []))
    g.chain(2, [(g.buf(size=8), 8, True)])
    yield "packets", g.seed(rounds=1)


def seeds_vsock_proto():
    hdr = vsock_pkt(5, 1000, 5000, b"", dst_cid=2)[:44]
    script = bytes([1, 20, 0, 5, 1, 200, 0, 255, 3, 50])
    yield "rw_connect", hdr + bytes([len(script)]) + script + b"CONNECT 1234\r"
    yield "request", vsock_pkt(1, 7, 9)[:44] + bytes([0]) + b"CONNECT 4294967294"


def seeds_virtio_console():
    g = Guest()
    rx_buffers(g, 0, 2, 32)
    g.chain(1, [(g.buf(b"hello, console\n"), 15, False)])
    g.indirect_chain(1, [(g.buf(b"abc"), 3, False), (g.buf(b"def\n"), 4, False)])
    yield "io", g.seed(rounds=1) + b"typed input"


def seeds_virtio_rng():
    g = Guest()
    g.chain(0, [(g.buf(size=64), 64, True)])
    g.chain(0, [(g.buf(size=16), 16, True), (g.buf(size=300), 300, True)])
    g.indirect_chain(0, [(g.buf(size=32), 32, True)])
    yield "requests", g.seed()


# ---- register sequences: FUZZ_IO_OP = control, offset (16-bit), value (64-bit) ----
W1, W2, W4, W8 = 0, 1, 2, 3


def op(width, offset, value=0, write=False, target=0):
    return struct.pack("<BHQ", width | (4 if write else 0) | target << 3, offset, value)


def seeds_serial8250():
    # Offsets are relative to base - 4 (fuzz window): register r is offset r + 4.
    r = lambda n: n + 4
    yield "init_tx", b"".join([
        op(W1, r(3), 0x80, True), op(W1, r(0), 1, True), op(W1, r(1), 0, True),
        op(W1, r(3), 0x03, True), op(W1, r(2), 0xC7, True), op(W1, r(1), 0x0F, True),
        op(W1, r(0), ord("A"), True), op(W1, r(5)), op(W1, r(2)), op(W1, r(6))])
    yield "loopback_rx", b"".join([
        op(W1, r(4), 0x10, True), op(W1, r(0), 0x55, True), op(W1, r(0)),
        op(W1, r(4), 0x0B, True), op(W1, 0, 0, False, target=(7 << 1) | 1),
        op(W1, r(5)), op(W1, r(0)), op(W1, r(7), 0x42, True), op(W1, r(7)), op(W4, r(0))])


def seeds_mc146818():
    t = struct.pack("<q", 1700000000)
    r = lambda n: n + 4
    yield "time", t + b"".join(
        op(W1, r(0), i, True) + op(W1, r(1)) for i in (0, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 0x32))
    yield "modes", t + b"".join([
        op(W1, r(0), 11, True), op(W1, r(1), 0x86, True), op(W1, r(0), 0, True),
        op(W1, r(1), 0x59, True), op(W1, r(0), 11, True), op(W1, r(1), 0x06, True),
        op(W1, r(0), 0x80 | 0x40, True), op(W1, r(1), 0xAA, True), op(W1, r(1)),
        op(W1, r(0), 10, True), op(W1, r(1), 0x26, True), op(W1, r(0), 12, True), op(W1, r(1))])


def seeds_i8042():
    data, cmd = 4, 8  # 0x60 and 0x64 in the window starting at 0x5c
    yield "commands", b"".join([
        op(W1, cmd), op(W1, cmd, 0x20, True), op(W1, data), op(W1, cmd, 0x60, True),
        op(W1, data, 0x45, True), op(W1, cmd, 0xD0, True), op(W1, data), op(W1, cmd, 0xD1, True),
        op(W1, data, 0xDF, True), op(W1, cmd, 0xAA, True), op(W1, data), op(W1, cmd, 0xFE, True)])
    yield "pm", b"".join([
        op(W1, 4, 0, False, 1), op(W1, 4, 0x80, True, 1), op(W1, 8, 0x01, True, 1),
        op(W1, 4, (5 << 2) | 0x20, True, 1), op(W2, 4, 0, False, 1)])


def cfg_addr(dev, reg):
    return 0x80000000 | dev << 11 | (reg & 0xFC)


def seeds_pci():
    A, D = 2, 2  # CONFIG_ADDRESS at offset 2 of its window, CONFIG_DATA likewise
    ops = []
    for dev in (0, 1, 2):
        ops += [op(W4, A, cfg_addr(dev, 0), True, 0), op(W4, D, 0, False, 1)]
    ops += [op(W4, A, cfg_addr(1, 0x10), True, 0), op(W4, D, 0xFFFFFFFF, True, 1),
            op(W4, D, 0, False, 1), op(W4, D, 0xC0010000, True, 1),
            op(W4, A, cfg_addr(1, 0x04), True, 0), op(W2, D, 0x0007, True, 1),
            op(W4, A, cfg_addr(1, 0x34), True, 0), op(W1, D, 0, False, 1),
            op(W4, A, cfg_addr(1, 0x40), True, 0), op(W4, D, 0, False, 1),
            op(W4, 0x1000, 0x12345678, True, 16), op(W8, 0x1000, 0, False, 16),
            op(W4, A, cfg_addr(1, 0x14), True, 0), op(W4, D, 0xFFFFFFFF, True, 1),
            op(W4, D, 0, False, 1)]
    yield "probe_move", b"".join(ops)


# ---- loaders ----
def seeds_bzimage():
    setup_sects, ksize = 4, 4096
    img = bytearray((setup_sects + 1) * 512 + ksize)
    img[0x1F1] = setup_sects
    struct.pack_into("<I", img, 0x1F4, ksize // 16)
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x200:0x202] = b"\xeb\x6a"
    struct.pack_into("<IH", img, 0x202, 0x53726448, 0x020F)
    img[0x211] = 1
    struct.pack_into("<I", img, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<IBBH", img, 0x230, 0x200000, 1, 0, 1)
    struct.pack_into("<I", img, 0x238, 2048)
    struct.pack_into("<Q", img, 0x258, 0x1000000)
    struct.pack_into("<I", img, 0x260, 1 << 20)
    yield "minimal", bytes(img)


def seeds_elf():
    ehdr_size, phdr_size = 64, 56
    note = struct.pack("<III", 4, 8, 18) + b"Xen\0" + struct.pack("<Q", 0x100040)
    text = b"\x90" * 256
    note_off = ehdr_size + 2 * phdr_size
    text_off = note_off + len(note)
    eh = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) +
          struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x100040, ehdr_size, 0, 0, ehdr_size,
                      phdr_size, 2, 0, 0, 0))
    ph_load = struct.pack("<IIQQQQQQ", 1, 7, text_off, 0x100000, 0x100000, len(text),
                          len(text) + 4096, 0x1000)
    ph_note = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    yield "pvh", eh + ph_load + ph_note + note + text


# ---- command line ----
def argv(*args):
    return b"\0".join(a.encode() for a in args)


def seeds_run_options():
    yield "basic", argv("-k", "vmlinuz", "-i", "initrd", "-m", "1G", "-c", "2", "--no-reboot")
    yield "devices", argv("--kernel", "k", "--disk", "a.img,ro,id=root,cache=none",
                          "--net", "user,mac=52:54:00:12:34:56,hostfwd=tcp::8080-:80",
                          "--vsock", "cid=3,uds=/tmp/v.sock", "--rng", "--console", "virtio",
                          "--kernel-format", "elf", "--cmdline", "console=ttyS0", "-vv")
    yield "help", argv("--help")


def seeds_device_options():
    yield "disk", b"\0" + b"root.img,ro,id=disk0,cache=writeback"
    yield "net_tap", b"\1" + b"tap=tap0,mac=02:00:00:00:00:01"
    yield "net_user", b"\1" + b"user,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::53-:53"
    yield "vsock", b"\2" + b"cid=42,uds=/run/kiln/v.sock"
    yield "mac", b"\3" + b"52:54:00:ab:cd:ef"


# ---- live migration: a stream (migrate/stream.h) carrying a small VM ----
def mig_record(rtype, payload=b""):
    return struct.pack("<HHI", rtype, 0, len(payload)) + payload


def mig_run(rtype, first, count, data=b""):
    return mig_record(rtype, struct.pack("<IQI", 0, first, count) + data)


def seeds_migrate_stream():
    """A whole 8 MiB migration with the snapshot corpus's state file; an even first byte
    stands for the stream header (fuzz_migrate_stream.c)."""
    with open(os.path.join(CORPUS, "snapshot", "count-2vcpu-blk-rng"), "rb") as f:
        state = f.read()
    mem = 8 << 20
    setup = mig_record(1, struct.pack("<QI", mem, 1) + struct.pack("<QQ", 0, mem))
    records = (setup + mig_record(4, struct.pack("<IQ", 1, 2048)) +
               mig_run(2, 256, 2, bytes(range(256)) * 32) + mig_run(3, 0, 256) +
               mig_run(3, 258, 1790) + mig_record(4, struct.pack("<IQ", 2, 1)) +
               mig_run(2, 300, 1, b"\x5a" * 4096) + mig_record(5, state) + mig_record(6))
    yield "whole-stream", b"KILNMIGR" + struct.pack("<II", 1, 0) + records
    yield "records-only", b"\0" + records
    yield "setup-only", b"\0" + setup + mig_record(6)


def main():
    targets = {name[len("seeds_"):]: fn for name, fn in globals().items()
               if name.startswith("seeds_")}
    for target, fn in sorted(targets.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            # Seeds are remade; inputs that once crashed a target (regress-*) stay for good.
            if not old.startswith("regress-"):
                os.unlink(os.path.join(d, old))
        for name, data in fn():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print(f"seeds written for {len(targets)} targets", file=sys.stderr)


if __name__ == "__main__":
    main()
