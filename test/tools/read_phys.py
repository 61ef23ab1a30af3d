#!/usr/bin/python3
"""Reads physical memory ranges from a dump with a real reader and prints
the sha1 of each, as test truth for what a dump holds.
Usage: read_phys.py kdumpfile|drgn DUMP RANGES
RANGES holds one "ADDR LEN" (hex, decimal) per line; the output has one
line per range: the sha1 of the bytes read, or NODATA when the reader
cannot read them."""
import hashlib
import sys

tool, dump, ranges = sys.argv[1], sys.argv[2], sys.argv[3]
if tool == 'kdumpfile':
    import kdumpfile
    k = kdumpfile.kdumpfile(dump)
    def read(addr, n):
        return bytes(k.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, n))
elif tool == 'drgn':
    import drgn
    prog = drgn.Program()
    prog.set_core_dump(dump)
    def read(addr, n):
        return prog.read(addr, n, True)
else:
    sys.exit('unknown reader ' + tool)
out = []
for line in open(ranges):
    a, n = line.split()
    try:
        out.append(hashlib.sha1(read(int(a, 16), int(n))).hexdigest())
    except Exception:
        out.append('NODATA')
sys.stdout.write('\n'.join(out) + '\n')
