"""What drgn (python3-drgn) reads, by name, from a vmcore with our debug vmlinux.

usage: drgn_facts.py VMCORE VMLINUX
Prints one JSON object: the release, get_dmesg(), for_each_task() with
task_state_to_char(), jiffies, _totalram_pages, and for every pfn below
max_pfn the struct page members mem_map[pfn] holds (flags, _refcount,
_mapcount, mapping, private). Everything is read through the DWARF types:
member names, not offsets. 64-bit values are hex strings (JSON numbers
would round them).
"""
import json
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_dmesg
from drgn.helpers.linux.sched import task_state_to_char

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])

mem_map = prog["mem_map"]
max_pfn = prog["max_pfn"].value_()
pages = {"flags": [], "refcount": [], "mapcount": [], "mapping": [], "private": []}
for pfn in range(max_pfn):
    page = mem_map[pfn].read_()
    pages["flags"].append(hex(page.flags.value_()))
    pages["refcount"].append(page._refcount.counter.value_())
    pages["mapcount"].append(page._mapcount.counter.value_())
    pages["mapping"].append(hex(page.mapping.value_()))
    pages["private"].append(hex(page.private.value_()))

print(json.dumps({
    "release": prog["init_uts_ns"].name.release.string_().decode("latin1"),
    "dmesg": get_dmesg(prog).decode("latin1"),
    "tasks": [
        [t.pid.value_(), t.comm.string_().decode("latin1"), task_state_to_char(t), hex(t.value_())]
        for t in for_each_task(prog)
    ],
    "jiffies": prog["jiffies"].value_(),
    "totalram_pages": prog["_totalram_pages"].counter.value_(),
    "max_pfn": max_pfn,
    "pages": pages,
}))
