"""What drgn (python3-drgn) finds in a vmlinux's DWARF and symbol table.

usage: drgn_layout.py VMLINUX STRUCT,STRUCT,... SYMBOL,SYMBOL,... ENUMERATOR,...
Prints one JSON object: for each struct, its size and members (name,
bit_offset, bit_field_size, byte size of the member type, the type name);
for each symbol, the ELF symbol's address and size, and when the DWARF has
a variable of that name, the variable's address, size and type name; for
each enumerator, its value. Addresses are hex strings (JSON numbers would
round them).
"""
import json
import sys

import drgn

prog = drgn.Program(drgn.host_platform)
prog.load_debug_info([sys.argv[1]])

structs = {}
for name in filter(None, sys.argv[2].split(",")):
    try:
        t = prog.type("struct " + name)
    except LookupError:
        structs[name] = None
        continue
    structs[name] = {
        "size": t.size,
        "members": [
            {
                "name": m.name,
                "bit_offset": m.bit_offset,
                "bit_field_size": m.bit_field_size,
                "size": drgn.sizeof(m.type),
                "type": m.type.type_name(),
            }
            for m in t.members
        ],
    }

symbols = {}
for name in filter(None, sys.argv[3].split(",")):
    entry = {}
    try:
        s = prog.symbol(name)
        entry["symbol"] = [hex(s.address), s.size]
    except LookupError:
        entry["symbol"] = None
    try:
        v = prog.variable(name)
        entry["variable"] = [None if v.address_ is None else hex(v.address_), drgn.sizeof(v.type_), v.type_.type_name()]
    except LookupError:
        entry["variable"] = None
    symbols[name] = entry

enumerators = {}
for name in filter(None, sys.argv[4].split(",")):
    try:
        enumerators[name] = prog.constant(name).value_()
    except LookupError:
        enumerators[name] = None

print(json.dumps({"structs": structs, "symbols": symbols, "enumerators": enumerators}))
