import { CorruptDumpError, viewOf } from '../codec/index.js';
import type { MemoryReader } from '../machine/index.js';
import { HZ, INITIAL_JIFFIES, LOG_ALIGN, LOG_NEWLINE, LOGLEVEL_INFO } from './constants.js';
import type { Kernel } from './kernel.js';
import { printk_log } from './structs/printk_log.js';
import { pstoreConsoleWrite } from './pstore/console.js';

const HDR = printk_log.size;

export interface LogRecord {
  seq: bigint;
  ts_nsec: bigint;
  level: number;
  text: string;
}

/**
 * Advances the kernel's clock (local_clock) by `ns` and returns the new
 * time; jiffies follow it, HZ ticks a second from INITIAL_JIFFIES at boot.
 */
export function advanceClock(kernel: Kernel, ns: bigint): bigint {
  const now = kernel.readU64('sim_clock_ns') + ns;
  kernel.writeU64('sim_clock_ns', now);
  kernel.writeU64('jiffies', INITIAL_JIFFIES + (now * HZ) / 1_000_000_000n);
  return now;
}

/**
 * Appends one record to the structured printk buffer, as log_store() does
 * in kernels 3.5..5.9: drop the oldest records until there is room, wrap to
 * the start (leaving a zero-length header as the wrap marker) when the
 * record does not fit before the end.
 */
export function printk(kernel: Kernel, text: string, level = LOGLEVEL_INFO): void {
  const bufPhys = kernel.symPhys('__log_buf');
  const bufLen = kernel.readU32('log_buf_len');
  const body = Buffer.from(text.replace(/[^\x20-\x7e]/g, '?'), 'latin1');
  let size = HDR + body.length;
  size += (-size) & (LOG_ALIGN - 1);
  if (size + HDR > bufLen) throw new CorruptDumpError(`printk record of ${size} bytes exceeds log_buf_len ${bufLen}`);

  let firstIdx = kernel.readU32('log_first_idx');
  let nextIdx = kernel.readU32('log_next_idx');
  let firstSeq = kernel.readU64('log_first_seq');
  const nextSeq = kernel.readU64('log_next_seq');

  const broken = (why: string, offset: number): never => {
    throw new CorruptDumpError(`printk: ${why}`, { struct: 'printk_log', field: 'len', offset });
  };
  const lenAt = (idx: number): number => {
    if (idx < 0 || idx + HDR > bufLen) broken(`record index ${idx} lies outside log_buf_len ${bufLen}`, idx);
    return kernel.ram.read(bufPhys + BigInt(idx) + BigInt(printk_log.offsetOf.len), 2).readUInt16LE(0);
  };
  // log_next(): a zero length is the wrap marker, the next record is at the start.
  const logNext = (idx: number): number => {
    const len = lenAt(idx);
    const next = len === 0 ? lenAt(0) : idx + len;
    if ((len !== 0 && len < HDR) || next > bufLen) broken(`record at log_buf+${idx} has bad length ${len}`, idx);
    return next;
  };
  // Dropping old records can take no more steps than the buffer holds records.
  const maxRecords = Math.floor(bufLen / HDR);
  let dropped = 0;
  const hasSpace = (empty: boolean): boolean => {
    const free = nextIdx > firstIdx || empty ? Math.max(bufLen - nextIdx, firstIdx) : firstIdx - nextIdx;
    return free >= size + HDR;
  };
  while (firstSeq < nextSeq && !hasSpace(false)) {
    if (++dropped > maxRecords) broken(`log_first_seq..log_next_seq (${firstSeq}..${nextSeq}) never frees room: more records than log_buf_len ${bufLen} can hold`, firstIdx);
    firstIdx = logNext(firstIdx);
    firstSeq++;
  }
  if (firstSeq === nextSeq && !hasSpace(true)) {
    firstIdx = 0;
    nextIdx = 0;
  }
  if (nextIdx + size + HDR > bufLen) {
    kernel.ram.write(bufPhys + BigInt(nextIdx), new Uint8Array(HDR));
    nextIdx = 0;
  }
  const rec = Buffer.alloc(size);
  const tsNsec = kernel.readU64('sim_clock_ns');
  printk_log.encode({
    ts_nsec: tsNsec,
    len: size,
    text_len: body.length,
    dict_len: 0,
    facility: 0,
    flags_level: (LOG_NEWLINE & 0x1f) | ((level & 7) << 5),
  }, viewOf(rec));
  rec.set(body, HDR);
  kernel.ram.write(bufPhys + BigInt(nextIdx), rec);
  nextIdx += size;
  kernel.writeU32('log_first_idx', firstIdx);
  kernel.writeU32('log_next_idx', nextIdx);
  kernel.writeU64('log_first_seq', firstSeq);
  kernel.writeU64('log_next_seq', nextSeq + 1n);
  // Consoles print what the log stores; pstore's console keeps it in persistent RAM.
  pstoreConsoleWrite(kernel, level, tsNsec, body.toString('latin1'));
}

/** Kernel virtual addresses of the printk variables a reader needs. */
export interface LogSymbols {
  log_buf: bigint;
  log_buf_len: bigint;
  log_first_idx: bigint;
  log_next_idx: bigint;
  log_first_seq: bigint;
  log_next_seq: bigint;
}

export function logSymbolsOf(kernel: Kernel): LogSymbols {
  const a = (n: string): bigint => kernel.sym(n).address;
  return {
    log_buf: a('log_buf'), log_buf_len: a('log_buf_len'), log_first_idx: a('log_first_idx'),
    log_next_idx: a('log_next_idx'), log_first_seq: a('log_first_seq'), log_next_seq: a('log_next_seq'),
  };
}

/**
 * Reads every record from the log buffer through a MemoryReader (the live
 * machine or a dump), checking each header so a corrupt buffer is reported,
 * not looped over.
 */
export function readLogRecords(mem: MemoryReader, syms: LogSymbols): LogRecord[] {
  const u32 = (va: bigint): number => Buffer.from(mem.read('virt', va, 4)).readUInt32LE(0);
  const u64 = (va: bigint): bigint => Buffer.from(mem.read('virt', va, 8)).readBigUInt64LE(0);
  const bufVa = u64(syms.log_buf);
  const bufLen = u32(syms.log_buf_len);
  const buf = mem.read('virt', bufVa, bufLen);
  const view = viewOf(buf);
  let idx = u32(syms.log_first_idx);
  let seq = u64(syms.log_first_seq);
  const nextIdx = u32(syms.log_next_idx);
  const nextSeq = u64(syms.log_next_seq);
  if (nextSeq < seq || nextSeq - seq > BigInt(Math.floor(bufLen / HDR))) {
    throw new CorruptDumpError(`printk sequence numbers ${seq}..${nextSeq} cannot fit in log_buf_len ${bufLen}`, { struct: 'printk_log', field: 'log_next_seq' });
  }
  // The older records run from log_first_idx to the wrap marker, the newer ones from 0 to log_next_idx:
  // a zero length is a wrap only once, and only while still in the older part.
  let wrapped = idx < nextIdx || (idx === nextIdx && seq === nextSeq);
  const out: LogRecord[] = [];
  while (seq < nextSeq) {
    if (idx + HDR > bufLen) throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} runs past log_buf_len`, { struct: 'printk_log', offset: idx });
    let h = printk_log.decode(view, idx);
    if (h.len === 0) {
      if (wrapped) throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} has length 0 where no wrap can be`, { struct: 'printk_log', field: 'len', offset: idx });
      wrapped = true;
      idx = 0;
      h = printk_log.decode(view, 0);
    }
    if (h.len < HDR || idx + h.len > bufLen || HDR + h.text_len + h.dict_len > h.len) {
      throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} has bad length ${h.len}`, { struct: 'printk_log', field: 'len', offset: idx });
    }
    if (wrapped && idx + h.len > nextIdx && idx < nextIdx) {
      throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} overlaps log_next_idx ${nextIdx}`, { struct: 'printk_log', field: 'len', offset: idx });
    }
    const text = Buffer.from(buf.subarray(idx + HDR, idx + HDR + h.text_len)).toString('latin1');
    out.push({ seq, ts_nsec: h.ts_nsec, level: h.flags_level >> 5, text });
    idx += h.len;
    seq++;
  }
  if (idx !== nextIdx && !(idx === bufLen && nextIdx === 0)) {
    throw new CorruptDumpError(`printk records end at log_buf+${idx}, log_next_idx says ${nextIdx}`, { struct: 'printk_log', field: 'log_next_idx' });
  }
  return out;
}

/** The printk variables VMCOREINFO names (no sequence numbers: vmcore-dmesg walks by index). */
export type LogIndexSymbols = Omit<LogSymbols, 'log_first_seq' | 'log_next_seq'>;

/**
 * Reads every record from log_first_idx to log_next_idx, as vmcore-dmesg
 * (kexec-tools dump_dmesg_structured) does with what VMCOREINFO gives it,
 * following log_store()'s wrap rule as readLogRecords does. Records are
 * numbered from 0 (the dump's sequence numbers are not in VMCOREINFO). The
 * walk is bounded by how many records log_buf_len can hold.
 */
export function readLogRecordsByIndex(mem: MemoryReader, syms: LogIndexSymbols): LogRecord[] {
  const u32 = (va: bigint): number => Buffer.from(mem.read('virt', va, 4)).readUInt32LE(0);
  const u64 = (va: bigint): bigint => Buffer.from(mem.read('virt', va, 8)).readBigUInt64LE(0);
  const bufVa = u64(syms.log_buf);
  const bufLen = u32(syms.log_buf_len);
  const buf = mem.read('virt', bufVa, bufLen);
  const view = viewOf(buf);
  let idx = u32(syms.log_first_idx);
  const nextIdx = u32(syms.log_next_idx);
  if (idx > bufLen || nextIdx > bufLen) {
    throw new CorruptDumpError(`printk indexes ${idx}..${nextIdx} lie outside log_buf_len ${bufLen}`, { struct: 'printk_log', field: 'log_first_idx' });
  }
  const most = Math.floor(bufLen / HDR);
  // log_store() always leaves room for a header between the newest record and the oldest: equal indexes mean an empty log.
  let wrapped = idx < nextIdx;
  const out: LogRecord[] = [];
  for (let seq = 0; idx !== nextIdx; seq++) {
    if (seq >= most) throw new CorruptDumpError(`printk records from log_first_idx never reach log_next_idx ${nextIdx} within log_buf_len ${bufLen}`, { struct: 'printk_log', field: 'log_next_idx' });
    if (idx + HDR > bufLen) {
      if (wrapped) throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} runs past log_buf_len`, { struct: 'printk_log', offset: idx });
      wrapped = true;
      idx = 0;
      continue;
    }
    let h = printk_log.decode(view, idx);
    if (h.len === 0) {
      if (wrapped) throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} has length 0 where no wrap can be`, { struct: 'printk_log', field: 'len', offset: idx });
      wrapped = true;
      idx = 0;
      if (idx === nextIdx) break;
      h = printk_log.decode(view, 0);
    }
    if (h.len < HDR || idx + h.len > bufLen || HDR + h.text_len + h.dict_len > h.len) {
      throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} has bad length ${h.len}`, { struct: 'printk_log', field: 'len', offset: idx });
    }
    if (wrapped && idx < nextIdx && idx + h.len > nextIdx) {
      throw new CorruptDumpError(`printk record ${seq} at log_buf+${idx} overlaps log_next_idx ${nextIdx}`, { struct: 'printk_log', field: 'len', offset: idx });
    }
    const text = Buffer.from(buf.subarray(idx + HDR, idx + HDR + h.text_len)).toString('latin1');
    out.push({ seq: BigInt(seq), ts_nsec: h.ts_nsec, level: h.flags_level >> 5, text });
    idx += h.len;
  }
  return out;
}

/** Formats records exactly as vmcore-dmesg prints structured-log records. */
export function formatDmesg(records: LogRecord[]): string {
  return records.map((r) => {
    const sec = r.ts_nsec / 1_000_000_000n;
    const usec = (r.ts_nsec % 1_000_000_000n) / 1000n;
    return `[${sec.toString().padStart(5, ' ')}.${usec.toString().padStart(6, '0')}] ${r.text}\n`;
  }).join('');
}
