#!/usr/bin/env python3
"""Make a CUDA 11 build of intervene load CUDA 13 libraries (see tools/cuda-portable.md).

Usage: tools/cuda-portable.py IN_BINARY OUT_BINARY
Needs patchelf and readelf. Steps: replace the needed cuBLAS/cudart sonames by their CUDA 13
names, clear the symbol versions of the symbols taken from them, and mark their version
requirements weak (VER_FLG_WEAK) so the loader only warns about the missing version nodes.
"""
import shutil
import struct
import subprocess
import sys

src, dst = sys.argv[1], sys.argv[2]
shutil.copyfile(src, dst)
RENAME = {"libcublas.so.11": "libcublas.so.13", "libcublasLt.so.11": "libcublasLt.so.13", "libcudart.so.11.0": "libcudart.so.13"}
VERSIONS = ("libcublas.so.11", "libcublasLt.so.11", "libcudart.so.11.0", "libcurand.so.10")

# Symbols bound to those version nodes.
out = subprocess.run(["readelf", "--dyn-syms", "-W", dst], capture_output=True, text=True, check=True).stdout
syms = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 8 and "@" in parts[7]:
        name, ver = parts[7].split("@", 1)
        ver = ver.split(" ")[0]
        if any(v in ver for v in VERSIONS):
            syms.add(name)
cmd = ["patchelf"]
for a, b in RENAME.items():
    cmd += ["--replace-needed", a, b]
for s in sorted(syms):
    cmd += ["--clear-symbol-version", s]
subprocess.run(cmd + [dst], check=True)

# VER_FLG_WEAK on the remaining version requirements of those libraries.
data = bytearray(open(dst, "rb").read())
assert data[:4] == b"\x7fELF" and data[4] == 2, "64-bit ELF expected"
shoff = struct.unpack_from("<Q", data, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
verneed = next(s for s in secs if s[1] == 0x6FFFFFFE)
dynstr = secs[verneed[6]]  # sh_link → .dynstr
def cstr(off):
    start = dynstr[4] + off
    return data[start:data.index(b"\0", start)].decode()
off = verneed[4]
marked = 0
while True:
    vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, off)
    aux = off + vn_aux
    for _ in range(vn_cnt):
        vna_hash, vna_flags, vna_other, vna_name, vna_next = struct.unpack_from("<IHHII", data, aux)
        if cstr(vna_name) in VERSIONS:
            struct.pack_into("<H", data, aux + 4, vna_flags | 0x2)
            marked += 1
        if vna_next == 0:
            break
        aux += vna_next
    if vn_next == 0:
        break
    off += vn_next
open(dst, "wb").write(data)
print(f"{dst}: {len(syms)} symbols unversioned, {marked} version requirements weak")
