/**
 * Memory of a saved dump through the MemoryReader interface, so the
 * decoders in src/kernel read a dump exactly as they read the running
 * machine (drgn's split of physical and virtual reads), plus the
 * System.map helpers that give a dump reader its symbols and its CR3.
 */
import { CorruptDumpError, FaultError, hex, type AddressSpace } from '../codec/index.js';
import { PAGE_SHIFT, translate, type MemoryReader } from '../machine/index.js';
import { __START_KERNEL_map } from '../kernel/constants.js';
import type { LogSymbols } from '../kernel/printk.js';
import type { ProbedDump } from './formats/types.js';

/** Decompressed pages kept by a DumpMemory; page-table walks hit the same few pages over and over. */
export const DUMP_MEMORY_CACHE_PAGES = 64;

/**
 * A MemoryReader over a ProbedDump. 'phys' reads assemble pages; a page
 * the dump lacks throws FaultError with the first missing byte's address.
 * 'virt' reads walk the 4-level page tables at `cr3`, read from the dump.
 */
export class DumpMemory implements MemoryReader {
  private readonly cache = new Map<bigint, Uint8Array>();
  private readonly pageSize: number;

  constructor(readonly dump: ProbedDump, readonly cr3?: bigint) {
    this.pageSize = dump.attrs['arch.page_size'];
  }

  /** The page at `pfn`, through a small LRU cache. */
  private page(pfn: bigint): Uint8Array {
    const hit = this.cache.get(pfn);
    if (hit) {
      this.cache.delete(pfn);
      this.cache.set(pfn, hit);
      return hit;
    }
    const bytes = this.dump.readPage(pfn);
    if (this.cache.size >= DUMP_MEMORY_CACHE_PAGES) {
      this.cache.delete(this.cache.keys().next().value as bigint);
    }
    this.cache.set(pfn, bytes);
    return bytes;
  }

  /** Copies physical [address, address + out.length) into `out`. */
  private readPhysInto(address: bigint, out: Uint8Array): void {
    const size = BigInt(this.pageSize);
    let done = 0;
    while (done < out.length) {
      const pa = address + BigInt(done);
      const pfn = pa >> BigInt(PAGE_SHIFT);
      const off = Number(pa % size);
      const n = Math.min(this.pageSize - off, out.length - done);
      let page: Uint8Array;
      try {
        page = this.page(pfn);
      } catch (e) {
        if (e instanceof FaultError) {
          throw new FaultError(`physical address ${hex(pa)} is not in the dump`, { ...e.where, address: pa, space: 'phys' },
            { cause: e });
        }
        throw e;
      }
      out.set(page.subarray(off, off + n), done);
      done += n;
    }
  }

  /** Physical address of `vaddr`, through the page tables at cr3. */
  virtToPhys(vaddr: bigint): bigint {
    if (this.cr3 === undefined) {
      throw new FaultError(`virtual address ${hex(vaddr)}: no page tables (cr3) given for this dump`, { address: vaddr, space: 'virt' });
    }
    const word = new Uint8Array(8);
    const readWord = (pa: bigint): bigint => {
      this.readPhysInto(pa, word);
      return Buffer.from(word.buffer, word.byteOffset, 8).readBigUInt64LE(0);
    };
    try {
      return translate(this.cr3, vaddr, readWord).paddr;
    } catch (e) {
      if (e instanceof FaultError && e.where.space === 'phys') {
        throw new FaultError(`virtual address ${hex(vaddr)}: page table at ${hex(e.where.address!)} is not in the dump`,
          { address: vaddr, space: 'virt' }, { cause: e });
      }
      throw e;
    }
  }

  read(space: AddressSpace, address: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(space, address, out);
    return out;
  }

  /** Fills `out` from `address` (a caller that reads many runs reuses one buffer). */
  readInto(space: AddressSpace, address: bigint, out: Uint8Array): void {
    const length = out.length;
    if (space === 'phys') {
      this.readPhysInto(address, out);
      return;
    }
    // Neighbouring virtual pages need not be physically contiguous: translate each piece.
    const size = BigInt(this.pageSize);
    let done = 0;
    while (done < length) {
      const va = address + BigInt(done);
      const n = Math.min(Number(size - (va % size)), length - done);
      const pa = this.virtToPhys(va);
      try {
        this.readPhysInto(pa, out.subarray(done, done + n));
      } catch (e) {
        if (e instanceof FaultError) {
          const missing = e.where.address! - pa;
          throw new FaultError(`virtual address ${hex(va + missing)} (physical ${hex(e.where.address!)}) is not in the dump`,
            { address: va + missing, space: 'virt' }, { cause: e });
        }
        throw e;
      }
      done += n;
    }
  }
}

// ---- System.map ----------------------------------------------------------------------------

/**
 * Parses System.map text ("ffffffff81000000 T _text" lines, as nm -n
 * prints). Blank lines are skipped; a malformed line is CorruptDumpError
 * naming its line and byte offset. The first of duplicate names wins.
 */
export function readSystemMap(text: string): Map<string, bigint> {
  const map = new Map<string, bigint>();
  let offset = 0;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const m = /^\s*([0-9a-fA-F]{1,16})\s+([A-Za-z?])\s+(\S+)\s*$/.exec(line);
    if (m) {
      if (!map.has(m[3])) map.set(m[3], BigInt(`0x${m[1]}`));
    } else if (line.trim() !== '') {
      throw new CorruptDumpError(`System.map line ${i + 1} is not "address type name": ${JSON.stringify(line.slice(0, 80))}`,
        { struct: 'System.map', offset });
    }
    offset += Buffer.byteLength(line, 'utf8') + 1;
  });
  return map;
}

/** Kernel symbols a dump reader needs, taken from System.map. */
export interface KernelSymbols {
  /** Physical address of init_top_pgt: the kernel's CR3. */
  cr3: bigint;
  /** The printk variables, for readLogRecords. */
  log: LogSymbols;
  init_task: bigint;
  vmcoreinfo_data: bigint;
  vmcoreinfo_size: bigint;
  _text: bigint;
  _end: bigint;
}

/** The symbols KernelSymbols holds, each required in System.map. */
export const KERNEL_SYMBOL_NAMES = [
  'init_top_pgt', 'log_buf', 'log_buf_len', 'log_first_idx', 'log_next_idx', 'log_first_seq', 'log_next_seq',
  'init_task', 'vmcoreinfo_data', 'vmcoreinfo_size', '_text', '_end',
] as const;

/**
 * Picks the symbols a dump reader needs out of a parsed System.map. CR3 is
 * init_top_pgt's physical address: its kernel-text address minus
 * __START_KERNEL_map (phys_base is 0). A missing symbol is CorruptDumpError
 * naming it.
 */
export function kernelSymbolsFromMap(map: ReadonlyMap<string, bigint>): KernelSymbols {
  const sym = (name: (typeof KERNEL_SYMBOL_NAMES)[number]): bigint => {
    const v = map.get(name);
    if (v === undefined) {
      throw new CorruptDumpError(`System.map has no symbol ${name}`, { struct: 'System.map', field: name });
    }
    return v;
  };
  const pgt = sym('init_top_pgt');
  if (pgt < __START_KERNEL_map) {
    throw new CorruptDumpError(`init_top_pgt ${hex(pgt)} is not a kernel-text address (below ${hex(__START_KERNEL_map)})`,
      { struct: 'System.map', field: 'init_top_pgt' });
  }
  const text = sym('_text');
  const end = sym('_end');
  if (end < text) {
    throw new CorruptDumpError(`_end ${hex(end)} is below _text ${hex(text)}`, { struct: 'System.map', field: '_end' });
  }
  return {
    cr3: pgt - __START_KERNEL_map,
    log: {
      log_buf: sym('log_buf'), log_buf_len: sym('log_buf_len'), log_first_idx: sym('log_first_idx'),
      log_next_idx: sym('log_next_idx'), log_first_seq: sym('log_first_seq'), log_next_seq: sym('log_next_seq'),
    },
    init_task: sym('init_task'),
    vmcoreinfo_data: sym('vmcoreinfo_data'),
    vmcoreinfo_size: sym('vmcoreinfo_size'),
    _text: text,
    _end: end,
  };
}
