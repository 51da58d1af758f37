#!/usr/bin/env python3
"""Pack a directory into an initramfs: a "newc" cpio archive, gzip-compressed.

Written here instead of using cpio(1) so that device nodes (the kernel needs
/dev/console before it runs /init) can be added without mknod and root, and
so the archive is reproducible: entries sorted, owner root, fixed mtime.

usage: mkcpio.py [--node PATH:c|b:MAJOR:MINOR[:MODE]]... ROOTDIR OUTPUT.cpio.gz
"""
import argparse
import gzip
import os
import stat
import sys

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


class Writer:
    def __init__(self, out):
        self.out = out
        self.ino = 300000  # arbitrary start; only needs to be unique
        self.size = 0

    def _write(self, data):
        self.out.write(data)
        self.size += len(data)

    def _pad(self):
        if self.size % 4:
            self._write(b"\0" * (4 - self.size % 4))

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        """One newc record: header, NUL-terminated name, data, each 4-aligned."""
        self.ino += 1
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, MTIME, len(data),
                  0, 0, rdev[0], rdev[1], len(name_b), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._write(hdr + name_b)
        self._pad()
        self._write(data)
        self._pad()

    def trailer(self):
        self.entry("TRAILER!!!", 0)


def walk(root):
    """Yield (archive name, host path) for everything under root, parents first."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            yield rel, dirpath
        for f in sorted(filenames) + [d for d in dirnames
                                      if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, f)
            yield os.path.normpath(os.path.join(rel, f)), p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node", action="append", default=[],
                    help="device node PATH:c|b:MAJOR:MINOR[:MODE], e.g. dev/console:c:5:1")
    ap.add_argument("root")
    ap.add_argument("output")
    args = ap.parse_args()

    tmp = args.output + ".tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=MTIME,
                                               compresslevel=9) as gz:
        w = Writer(gz)
        seen = set()
        for name, path in walk(args.root):
            st = os.lstat(path)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                w.entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                w.entry(name, stat.S_IFDIR | perm, nlink=2)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    w.entry(name, stat.S_IFREG | perm, f.read())
            else:
                sys.exit(f"mkcpio: {path}: unsupported file type")
            seen.add(name)
        for spec in args.node:
            parts = spec.split(":")
            if len(parts) not in (4, 5) or parts[1] not in ("c", "b"):
                sys.exit(f"mkcpio: bad --node '{spec}'")
            kind = stat.S_IFCHR if parts[1] == "c" else stat.S_IFBLK
            mode = int(parts[4], 8) if len(parts) == 5 else 0o600
            name = parts[0].strip("/")
            parent = os.path.dirname(name)
            if parent and parent not in seen:
                w.entry(parent, stat.S_IFDIR | 0o755, nlink=2)
                seen.add(parent)
            w.entry(name, kind | mode, rdev=(int(parts[2]), int(parts[3])))
        w.trailer()
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
