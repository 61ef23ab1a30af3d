/**
 * The crashed kernel as a dump shows it, whatever wrote the dump: one place
 * that answers "where is X" (drgn's Program object), from the System.map
 * kept beside the dump when there is one, else from the VMCOREINFO the
 * dump file itself carries (an ELF vmcore's or kdump-compressed file's
 * note), which names what vmcore-dmesg and makedumpfile need: the page
 * tables, the printk buffer and its indexes, init_task, mem_map, phys_base.
 */
import { CorruptDumpError, hex, wrapError } from '../codec/index.js';
import { VMCOREINFO_BYTES, __START_KERNEL_map } from '../kernel/constants.js';
import {
  readLogRecords, readLogRecordsByIndex, type LogIndexSymbols, type LogRecord,
} from '../kernel/printk.js';
import { DumpMemory, kernelSymbolsFromMap } from './dump_memory.js';
import { vmcoreinfoKeys } from './formats/vmcore_notes.js';
import type { ProbedDump } from './formats/types.js';

/** What a reader of a dump's kernel memory can know, and from where. */
export interface KernelView {
  /** 'System.map' (kept beside the dump, or given to lkcd import) or 'VMCOREINFO' (the dump's own note). */
  readonly source: 'System.map' | 'VMCOREINFO';
  /** Physical address of the kernel's top-level page table. */
  readonly cr3: bigint;
  readonly memory: DumpMemory;
  /** init_task's address, or null. */
  readonly initTask: bigint | null;
  /** The variables holding mem_map and max_pfn, or null when the source does not name them. */
  readonly memMap: bigint | null;
  readonly maxPfn: bigint | null;
  /** The kernel text range [_text, _end), from System.map only. */
  readonly text: { start: bigint; end: bigint } | null;
  /** The crashed kernel's log (sequence numbers are the kernel's with System.map, 0.. with VMCOREINFO). */
  log(): LogRecord[];
  /** The VMCOREINFO text: the dump's note when it has one, else read from the dump's memory. */
  vmcoreinfo(): string;
  /** name+0xoff of an address (System.map), or its hex. */
  symbolize(addr: bigint): string;
}

/** The VMCOREINFO text the crashed kernel kept at vmcoreinfo_data / vmcoreinfo_size. */
export function readVmcoreinfoText(mem: DumpMemory, data: bigint, sizeSym: bigint): string {
  try {
    const size = Buffer.from(mem.read('virt', sizeSym, 8)).readBigUInt64LE(0);
    if (size > BigInt(VMCOREINFO_BYTES)) {
      throw new CorruptDumpError(`vmcoreinfo_size ${size} exceeds VMCOREINFO_BYTES ${VMCOREINFO_BYTES}`,
        { address: sizeSym, space: 'virt', field: 'vmcoreinfo_size' });
    }
    return Buffer.from(mem.read('virt', data, Number(size))).toString('latin1');
  } catch (e) {
    throw wrapError('reading VMCOREINFO from the dump', e);
  }
}

/** The value of NUMBER(phys_base) in VMCOREINFO text, or 0 (a kernel at its link address). */
function physBaseOf(info: ReadonlyMap<string, string> | null): bigint {
  const v = info?.get('NUMBER(phys_base)');
  if (v === undefined) return 0n;
  if (!/^-?\d+$/.test(v)) throw new CorruptDumpError(`VMCOREINFO NUMBER(phys_base)=${v} is not a number`, { struct: 'VMCOREINFO', field: 'NUMBER(phys_base)' });
  return BigInt(v);
}

/**
 * The kernel view of `dump`: through `systemMap` when given (every symbol
 * a reader needs must be there), else through the dump's VMCOREINFO note.
 * Throws CorruptDumpError naming what is missing when neither can place
 * the page tables.
 */
export function kernelViewOf(dump: ProbedDump, systemMap: ReadonlyMap<string, bigint> | null): KernelView {
  const noteText = dump.vmcoreinfoText?.() ?? null;
  const info = noteText !== null ? vmcoreinfoKeys(noteText) : null;
  const physBase = physBaseOf(info);
  if (systemMap) {
    const ks = kernelSymbolsFromMap(systemMap);
    const memory = new DumpMemory(dump, ks.cr3 + physBase);
    const sorted = [...systemMap].map(([n, a]) => [a, n] as [bigint, string]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return {
      source: 'System.map', cr3: ks.cr3 + physBase, memory,
      initTask: ks.init_task, memMap: systemMap.get('mem_map') ?? null, maxPfn: systemMap.get('max_pfn') ?? null,
      text: { start: ks._text, end: ks._end },
      log: () => readLogRecords(memory, ks.log),
      vmcoreinfo: () => noteText ?? readVmcoreinfoText(memory, ks.vmcoreinfo_data, ks.vmcoreinfo_size),
      symbolize: (addr) => symbolizeIn(sorted, addr),
    };
  }
  if (!info) {
    throw new CorruptDumpError(`${dump.attrs['file.format']} dump without a VMCOREINFO note: its kernel memory can only be read with the kernel's System.map`,
      { struct: 'VMCOREINFO' });
  }
  const sym = (name: string): bigint | null => {
    const v = info.get(`SYMBOL(${name})`);
    if (v === undefined) return null;
    if (!/^[0-9a-fA-F]{1,16}$/.test(v)) throw new CorruptDumpError(`VMCOREINFO SYMBOL(${name})=${v} is not an address`, { struct: 'VMCOREINFO', field: `SYMBOL(${name})` });
    return BigInt(`0x${v}`);
  };
  const pgt = sym('init_top_pgt') ?? sym('swapper_pg_dir');
  if (pgt === null) throw new CorruptDumpError('VMCOREINFO names no init_top_pgt (or swapper_pg_dir): the page tables cannot be found', { struct: 'VMCOREINFO', field: 'SYMBOL(init_top_pgt)' });
  if (pgt < __START_KERNEL_map) throw new CorruptDumpError(`VMCOREINFO init_top_pgt ${hex(pgt)} is not a kernel-text address`, { struct: 'VMCOREINFO', field: 'SYMBOL(init_top_pgt)' });
  const cr3 = pgt - __START_KERNEL_map + physBase;
  const memory = new DumpMemory(dump, cr3);
  const logSyms = (): LogIndexSymbols => {
    const need = (name: keyof LogIndexSymbols): bigint => {
      const v = sym(name);
      if (v === null) throw new CorruptDumpError(`VMCOREINFO names no ${name}: the log cannot be found (give the kernel's System.map)`, { struct: 'VMCOREINFO', field: `SYMBOL(${name})` });
      return v;
    };
    return { log_buf: need('log_buf'), log_buf_len: need('log_buf_len'), log_first_idx: need('log_first_idx'), log_next_idx: need('log_next_idx') };
  };
  return {
    source: 'VMCOREINFO', cr3, memory,
    initTask: sym('init_task'), memMap: sym('mem_map'), maxPfn: null, text: null,
    log: () => readLogRecordsByIndex(memory, logSyms()),
    vmcoreinfo: () => noteText!,
    symbolize: (addr) => hex(addr),
  };
}

function symbolizeIn(sorted: ReadonlyArray<[bigint, string]>, addr: bigint): string {
  let lo = 0;
  let hi = sorted.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid][0] <= addr) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (best < 0) return hex(addr);
  const [base, name] = sorted[best];
  return addr === base ? name : `${name}+0x${(addr - base).toString(16)}`;
}
