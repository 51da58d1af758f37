#!/usr/bin/env python3
"""Extract the uncompressed ELF kernel (vmlinux) from a bzImage and check
that it can be entered through PVH.

usage: extract-vmlinux.py BZIMAGE OUTPUT

The compressed kernel sits in the protected-mode part of the bzImage, which
starts at (setup_sects + 1) * 512 (setup_sects at 0x1f1; 0 means 4). The
setup header's payload_offset (0x248) and payload_length (0x24c) locate it
inside that part (Linux boot protocol >= 2.08). The kernel build appends the
uncompressed size as a little-endian u32 to the payload; we strip it before
decompressing (the decompressors treat it as trailing garbage) and use it to
check the result.
"""
import os
import struct
import subprocess
import sys

# Magic bytes of the payload -> decompressor command reading stdin.
DECOMPRESSORS = [
    (b"\x02\x21\x4c\x18", "lz4", ["lz4", "-dc"]),          # LZ4 legacy frame
    (b"\xfd7zXZ\x00", "xz", ["xz", "-dc"]),
    (b"\x1f\x8b", "gzip", ["gzip", "-dc"]),
    (b"\x28\xb5\x2f\xfd", "zstd", ["zstd", "-qdc"]),
]

XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4


def fail(msg):
    sys.exit(f"extract-vmlinux: {msg}")


def payload(image):
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        fail("not a bzImage (no HdrS setup header)")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        fail(f"boot protocol {version:#x} has no payload fields (needs 2.08)")
    setup_sects = image[0x1f1] or 4
    off, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + off
    data = image[start:start + length]
    if len(data) != length or length < 8:
        fail("payload runs past the end of the file")
    return data[:-4], struct.unpack("<I", data[-4:])[0]


def pvh_entry(elf):
    """Return the PVH 32-bit entry address from the Xen ELF notes, or None."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        fail("decompressed kernel is not a 64-bit ELF file")
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            desc_at = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                # Linux emits this note as a 4- or 8-byte value depending on version.
                fmt = "<Q" if descsz >= 8 else "<I"
                return struct.unpack_from(fmt, elf, desc_at)[0]
            pos = desc_at + (descsz + 3) // 4 * 4
    return None


def main():
    if len(sys.argv) != 3:
        fail("usage: extract-vmlinux.py BZIMAGE OUTPUT")
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    data, expect = payload(image)
    for magic, kind, cmd in DECOMPRESSORS:
        if data.startswith(magic):
            break
    else:
        fail(f"unknown payload compression (magic {data[:6].hex()})")
    tmp = sys.argv[2] + ".tmp"
    try:
        with open(tmp, "wb") as out:
            proc = subprocess.run(cmd, input=data, stdout=out)
    except FileNotFoundError:
        fail(f"'{cmd[0]}' not found; the payload is {kind}-compressed")
    if proc.returncode != 0:
        fail(f"{' '.join(cmd)} failed with status {proc.returncode}")
    size = os.path.getsize(tmp)
    if size != expect:
        fail(f"decompressed {size} bytes, the image says {expect}")
    with open(tmp, "rb") as f:
        entry = pvh_entry(f.read())
    if entry is None:
        fail("vmlinux has no Xen PVH note (PHYS32_ENTRY): kernel built without CONFIG_PVH?")
    os.replace(tmp, sys.argv[2])
    print(f"vmlinux: {size} bytes from {kind} payload, PVH entry {entry:#x}")


if __name__ == "__main__":
    main()
